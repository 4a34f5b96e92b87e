// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Many open file descriptions shared by many processes at once: 120 pipes
 * (both ends) made by the root and inherited by 6 children, which the
 * dump's workers go through in parallel.  After restore every shared fd is
 * still one description in all seven: a child sets O_NONBLOCK on its copy
 * of each end and the root sees it on its own (with two descriptions it
 * would not), and the bytes written by one child are read by the root.
 * (Two workers that met the same description at once each made it anew,
 * and the second came back as a reopen of its own.)
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define NPIPES 120
#define NKIDS 6

static int p[NPIPES][2];

int main(int argc, char **argv)
{
	int go[NKIDS][2], done[2], barrier[2];
	pid_t kid[NKIDS];

	test_init(argc, argv);
	for (int i = 0; i < NPIPES; i++)
		if (pipe(p[i]))
			fail_errno("pipe");
	if (pipe(done))
		fail_errno("pipe");
	test_barrier_init(barrier);
	for (int k = 0; k < NKIDS; k++) {
		if (pipe(go[k]))
			fail_errno("pipe");
		kid[k] = fork();
		if (kid[k] < 0)
			fail_errno("fork");
		if (kid[k] == 0) {
			char c;
			close(go[k][1]);
			test_barrier_done(barrier);
			if (test_read_all(go[k][0], &c, 1))
				fail("child %d: no go from the root", k);
			/* the first child flips every end, each writes one byte */
			for (int i = 0; k == 0 && i < NPIPES; i++)
				for (int e = 0; e < 2; e++)
					if (fcntl(p[i][e], F_SETFL, fcntl(p[i][e], F_GETFL) | O_NONBLOCK))
						fail_errno("child: F_SETFL");
			for (int i = 0; i < NPIPES; i++)
				if (write(p[i][1], &"abcdef"[k], 1) != 1)
					fail_errno("child %d: write to pipe %d", k, i);
			if (write(done[1], "d", 1) != 1)
				fail_errno("child: done");
			_exit(0);
		}
		close(go[k][0]);
	}
	test_barrier_wait(barrier);

	test_ready();
	test_wait_check();

	if (test_write_all(go[0][1], "g", 1))
		fail_errno("write(go)");
	char c;
	if (test_read_all(done[0], &c, 1))
		fail("child 0 did not finish");
	for (int i = 0; i < NPIPES; i++)
		for (int e = 0; e < 2; e++)
			if (!(fcntl(p[i][e], F_GETFL) & O_NONBLOCK))
				fail("pipe %d end %d: O_NONBLOCK set by a child is not seen by the root: "
				     "two descriptions", i, e);
	for (int k = 1; k < NKIDS; k++)
		if (test_write_all(go[k][1], "g", 1))
			fail_errno("write(go)");
	for (int k = 1; k < NKIDS; k++)
		if (test_read_all(done[0], &c, 1))
			fail("a child did not finish");
	for (int i = 0; i < NPIPES; i++) {
		char got[NKIDS + 1] = { 0 };
		if (read(p[i][0], got, NKIDS) != NKIDS)
			fail("pipe %d: not every child's byte", i);
	}
	for (int k = 0; k < NKIDS; k++)
		test_reap_ok(kid[k], "child");
	pass();
}
