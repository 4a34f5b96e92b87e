// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,expect=dump-fail,dump-err=process group [0-9]+ cannot be restored: its leader is gone
/*
 * A process group whose leader has exited while a member runs on, as a
 * shell pipeline's whose first command ended:
 *
 *   R ── P   setpgid(0, 0), forks C, exits (R reaps it)
 *        C   in group P, whose leader is gone
 *
 * A group can only be made by its leader (setpgid(0, 0)), so the restore
 * cannot make group P again: the checkpoint refuses it, named, and leaves
 * the tree running: afterwards C is still there, in group P.
 */
#include "zdtm.h"

#include <signal.h>
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
		_exit(0);
	}
	test_barrier_done(barrier); /* only P waits on it, for C */
	if (read(ids[0], &c, sizeof(c)) != sizeof(c))
		fail_errno("read");
	test_reap_ok(p, "P");
	if (getpgid(c) != p)
		fail("C is in group %d, not %d", getpgid(c), p);

	test_ready();
	test_wait_check();

	if (kill(c, 0))
		fail_errno("C is gone");
	else if (getpgid(c) != p)
		fail("C is in group %d after the refusal, not %d", getpgid(c), p);
	kill(c, SIGKILL);
	test_waitpid(c, &status, 0);
	pass();
}
