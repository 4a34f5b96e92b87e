// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * A process group whose leader is a zombie not yet reaped, with a member
 * that runs: the group still has its leader (as a zombie), so it can be
 * made again: the zombie is created alive, makes the group, the member
 * joins it, then the zombie exits with its status.
 *
 *   R ── P   setpgid(0, 0), forks C, exits with 7 (R does not reap it yet)
 *        C   in group P
 *
 * After the move: C is in group P, and R reaps P with status 7.
 */
#include "zdtm.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int ids[2], barrier[2], status;
	pid_t p, c;

	test_init(argc, argv);
	if (pipe(ids))
		fail_errno("pipe");
	test_barrier_init(barrier);
	p = fork();
	if (p < 0)
		fail_errno("fork");
	if (p == 0) {
		if (setpgid(0, 0))
			fail_errno("P: setpgid");
		c = fork();
		if (c < 0)
			fail_errno("P: fork");
		if (c == 0) {
			test_barrier_done(barrier);
			for (;;)
				pause();
		}
		test_barrier_wait(barrier);
		if (write(ids[1], &c, sizeof(c)) != sizeof(c))
			fail_errno("P: write");
		_exit(7);
	}
	test_barrier_done(barrier); /* only P waits on it, for C */
	if (read(ids[0], &c, sizeof(c)) != sizeof(c))
		fail_errno("read");
	/* P is a zombie from here on (not reaped) */
	siginfo_t si = { 0 };
	if (waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT))
		fail_errno("waitid");

	test_ready();
	test_wait_check();

	if (getpgid(c) != p)
		fail("C is in group %d, not %d", getpgid(c), p);
	if (test_waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
		fail("P: status %#x, not an exit with 7", status);
	kill(c, SIGKILL);
	test_waitpid(c, &status, 0);
	pass();
}
