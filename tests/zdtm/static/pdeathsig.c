// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * The parent-death signal: root -> mid -> leaf, the leaf with
 * PR_SET_PDEATHSIG(SIGUSR1) and running as uid/gid 1000 (a change of
 * credentials clears the signal: a restore must set it after them). After restore the leaf still reports
 * SIGUSR1 from PR_GET_PDEATHSIG, and when mid exits the leaf gets SIGUSR1
 * (it tells the root through a pipe, then exits; the root, init of the PID
 * namespace, reaps it).
 */
#include "zdtm.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

int main(int argc, char **argv)
{
	int rep[2], bar[2], status;
	pid_t mid;
	struct pollfd pfd;
	char c;

	test_init(argc, argv);
	if (pipe(rep))
		fail_errno("pipe");
	test_barrier_init(bar);
	mid = fork();
	if (mid < 0)
		fail_errno("fork");
	if (mid == 0) {
		pid_t leaf = fork();
		if (leaf < 0)
			fail_errno("mid: fork");
		if (leaf == 0) {
			struct sigaction sa = { .sa_handler = on_usr1 };
			int pd = 0;
			close(rep[0]);
			sigaction(SIGUSR1, &sa, NULL);
			if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
				fail_errno("leaf: setresuid(1000)");
			if (prctl(PR_SET_PDEATHSIG, SIGUSR1))
				fail_errno("leaf: PR_SET_PDEATHSIG");
			test_barrier_done(bar);
			while (!got_usr1)
				test_sleep_ms(5);
			if (prctl(PR_GET_PDEATHSIG, &pd) || pd != SIGUSR1)
				fail("leaf: PR_GET_PDEATHSIG %d, was SIGUSR1", pd);
			if (write(rep[1], "u", 1) != 1)
				fail_errno("leaf: write");
			_exit(0);
		}
		close(rep[0]);
		close(rep[1]);
		test_barrier_done(bar);
		test_wait_check();
		_exit(0);	/* without reaping the leaf: it gets SIGUSR1 */
	}
	close(rep[1]);
	test_barrier_wait(bar);

	test_ready();
	test_wait_check();

	test_stop_children(&mid, 1, "mid");
	pfd = (struct pollfd){ .fd = rep[0], .events = POLLIN };
	if (poll(&pfd, 1, 10000) != 1 || read(rep[0], &c, 1) != 1)
		fail("the leaf got no parent-death signal when its parent exited");
	/* the leaf is ours now (we are the namespace's init) */
	if (test_waitpid(-1, &status, 0) < 0)
		fail_errno("wait for the leaf");
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("leaf ended with status 0x%x", status);
	pass();
}
