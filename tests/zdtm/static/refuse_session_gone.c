// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,expect=dump-fail,dump-err=the leader of its session [0-9]+ is gone, and its parent [0-9]+ is not the reaper
/*
 * A session whose leader has exited, kept by a process whose parent is not
 * the tree's reaper:
 *
 *   R ── A   setsid(), forks B, exits once B has its own session (R reaps A)
 *        B   forks C, then setsid(): B leads session B; B's parent is R now
 *        C   child of B, still in session A, whose leader is gone
 *
 * A session can only be inherited or made by setsid(); the restore makes a
 * gone leader's session with a helper under the reaper, whose children it
 * then forks: C is B's child, not the reaper's, so session A cannot be made
 * for it.  The checkpoint refuses it, named, and leaves the tree running:
 * afterwards C is still in session A and B leads session B.
 */
#include "zdtm.h"

#include <signal.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int ids[2], barrier[2];
	pid_t a, got[2];

	test_init(argc, argv);
	if (pipe(ids))
		fail_errno("pipe");
	test_barrier_init(barrier);
	a = fork();
	if (a < 0)
		fail_errno("fork");
	if (a == 0) {
		int bsid[2];
		pid_t b;

		if (setsid() < 0)
			fail_errno("A: setsid");
		if (pipe(bsid))
			fail_errno("A: pipe");
		b = fork();
		if (b < 0)
			fail_errno("A: fork");
		if (b == 0) {
			pid_t c = fork();
			if (c < 0)
				fail_errno("B: fork");
			if (c == 0) {
				test_barrier_done(barrier);
				for (;;)
					pause();
			}
			test_barrier_wait(barrier);
			if (setsid() < 0)
				fail_errno("B: setsid");
			got[0] = getpid();
			got[1] = c;
			if (write(ids[1], got, sizeof(got)) != sizeof(got))
				fail_errno("B: write");
			if (write(bsid[1], "b", 1) != 1)
				fail_errno("B: write");
			for (;;)
				pause();
		}
		char ch;
		test_barrier_done(barrier); /* only B waits on it, for C */
		if (read(bsid[0], &ch, 1) != 1)
			fail_errno("A: read");
		_exit(0);
	}
	test_barrier_done(barrier);
	if (read(ids[0], got, sizeof(got)) != sizeof(got))
		fail_errno("read");
	test_reap_ok(a, "A");
	if (getsid(got[1]) != a || getsid(got[0]) != got[0])
		fail("C in session %d (want %d), B in %d", getsid(got[1]), a, getsid(got[0]));

	test_ready();
	test_wait_check();

	if (kill(got[1], 0) || kill(got[0], 0))
		fail("B or C is gone");
	else if (getsid(got[1]) != a || getsid(got[0]) != got[0])
		fail("after the refusal C is in session %d (want %d), B in %d", getsid(got[1]), a,
		     getsid(got[0]));
	kill(got[1], SIGKILL);
	kill(got[0], SIGKILL);
	pass();
}
