// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Zombies: one child exited with code 42, one killed by SIGUSR2, both left
 * unreaped across the checkpoint. A third child stays alive. After restore
 * the zombies must still be zombies, and waitpid() must give the same
 * statuses.
 */
#include "zdtm.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* State letter of our child whose pid (in our namespace) is nspid. */
static char child_state(pid_t nspid)
{
	pid_t host[16];
	int n = test_proc_children(host, 16);

	for (int i = 0; i < n && i < 16; i++) {
		char path[64], buf[256], text[512];

		snprintf(path, sizeof(path), "/proc/%d/status", host[i]);
		if (test_status_field(path, "NSpid", buf, sizeof(buf)))
			continue;
		char *last = strrchr(buf, '\t');
		pid_t p = atoi(last ? last + 1 : buf);

		if (p != nspid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", host[i]);
		if (test_read_file(path, text, sizeof(text)) < 0)
			return '?';
		char *rp = strrchr(text, ')');

		return rp && rp[1] && rp[2] ? rp[2] : '?';
	}
	return '-';
}

static void wait_zombie(pid_t pid)
{
	siginfo_t si = { 0 };

	while (waitid(P_PID, pid, &si, WEXITED | WNOWAIT))
		if (errno != EINTR)
			fail_errno("waitid(%d, WNOWAIT)", pid);
}

int main(int argc, char **argv)
{
	pid_t exited, killed, alive;
	int status;
	char st;

	test_init(argc, argv);

	exited = fork();
	if (exited < 0)
		fail_errno("fork");
	if (exited == 0)
		_exit(42);

	killed = fork();
	if (killed < 0)
		fail_errno("fork");
	if (killed == 0) {
		signal(SIGUSR2, SIG_DFL);
		raise(SIGUSR2);
		_exit(1);
	}

	alive = fork();
	if (alive < 0)
		fail_errno("fork");
	if (alive == 0) {
		test_wait_check();
		_exit(0);
	}

	wait_zombie(exited);
	wait_zombie(killed);
	if ((st = child_state(exited)) != 'Z')
		fail("before: child %d in state %c, not Z", exited, st);

	test_ready();
	test_wait_check();

	if ((st = child_state(exited)) != 'Z')
		fail("exited child %d in state %c after restore, not Z", exited, st);
	if ((st = child_state(killed)) != 'Z')
		fail("killed child %d in state %c after restore, not Z", killed, st);

	siginfo_t si = { 0 };

	if (waitid(P_PID, exited, &si, WEXITED | WNOWAIT | WNOHANG))
		fail_errno("waitid(exited, WNOHANG|WNOWAIT)");
	if (si.si_pid != exited || si.si_code != CLD_EXITED || si.si_status != 42)
		fail("waitid(exited): pid %d code %d status %d, want pid %d CLD_EXITED 42",
		     si.si_pid, si.si_code, si.si_status, exited);

	if (test_waitpid(exited, &status, WNOHANG) != exited)
		fail("waitpid(exited child %d, WNOHANG) found no zombie", exited);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 42)
		fail("exited child: status 0x%x, want exit 42", status);

	if (test_waitpid(killed, &status, WNOHANG) != killed)
		fail("waitpid(killed child %d, WNOHANG) found no zombie", killed);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGUSR2 || WCOREDUMP(status))
		fail("killed child: status 0x%x, want killed by SIGUSR2 without core", status);

	if (test_waitpid(alive, &status, WNOHANG) != 0)
		fail("live child %d is gone after restore (status 0x%x)", alive, status);
	test_stop_children(&alive, 1, "live child");
	pass();
}
