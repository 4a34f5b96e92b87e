// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * A child in its own process group (so that the group is not orphaned and
 * job-control signals act), stopped by SIGTSTP, its stop not yet waited for.
 * After restore it is still stopped, and its parent learns the same stop
 * signal: waitid(WSTOPPED | WNOWAIT) reports SIGTSTP, not SIGSTOP. It
 * resumes on SIGCONT.
 */
#include "zdtm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int stop_sig(pid_t child)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)child, &si, WSTOPPED | WNOWAIT | WNOHANG))
		fail_errno("waitid(WSTOPPED)");
	if (si.si_pid != child)
		return 0;
	if (si.si_code != CLD_STOPPED)
		fail("waitid: si_code %d, not CLD_STOPPED", si.si_code);
	return si.si_status;
}

static bool stopped(void *arg)
{
	return stop_sig(*(pid_t *)arg) != 0;
}

int main(int argc, char **argv)
{
	int status, sig;
	pid_t child;

	test_init(argc, argv);
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		if (setpgid(0, 0))
			fail_errno("child: setpgid");
		while (!test_stopped())
			test_sleep_ms(5);
		_exit(0);
	}
	setpgid(child, child);
	if (kill(child, SIGTSTP))
		fail_errno("kill(SIGTSTP)");
	if (!test_poll(stopped, &child, 10000))
		fail("child did not stop on SIGTSTP");
	if ((sig = stop_sig(child)) != SIGTSTP)
		fail("before: stopped by signal %d, want SIGTSTP", sig);

	test_ready();
	test_wait_check();

	if (!test_poll(stopped, &child, 10000))
		fail("child is not stopped after restore (no stop to wait for)");
	if ((sig = stop_sig(child)) != SIGTSTP)
		fail("child stopped by signal %d (%s) after restore, was SIGTSTP", sig, strsignal(sig));
	if (kill(child, SIGCONT))
		fail_errno("kill(SIGCONT)");
	if (test_waitpid(child, &status, WCONTINUED) != child || !WIFCONTINUED(status))
		fail("waitpid(WCONTINUED): status 0x%x, not continued", status);
	test_stop_children(&child, 1, "stopped child");
	pass();
}
