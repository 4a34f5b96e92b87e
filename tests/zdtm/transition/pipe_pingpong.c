// SPDX-License-Identifier: MIT
// zdtm: flags=transition,pidns
/*
 * Two processes playing ping-pong through two pipes while they are
 * dumped: the parent sends n, the child answers n+1, the parent sends
 * n+2... Each side checks every number, so a byte lost, doubled or
 * reordered in a pipe at the checkpoint is caught. After restore the game
 * must go on for a while before the parent ends it.
 */
#include "zdtm.h"

#include <unistd.h>

#define END UINT64_MAX

int main(int argc, char **argv)
{
	int ab[2], ba[2];
	uint64_t n = 0, got, at_term;
	pid_t child;

	test_init(argc, argv);
	if (pipe(ab) || pipe(ba))
		fail_errno("pipe");
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		uint64_t want = 0;

		close(ab[1]);
		close(ba[0]);
		for (;;) {
			if (test_read_all(ab[0], &got, sizeof(got)))
				fail_errno("child: read");
			if (got == END)
				_exit(0);
			if (got != want)
				fail("child: got %llu, want %llu", (unsigned long long)got, (unsigned long long)want);
			got++;
			if (test_write_all(ba[1], &got, sizeof(got)))
				fail_errno("child: write");
			want += 2;
		}
	}
	close(ab[0]);
	close(ba[1]);

	for (uint64_t rounds = 0;; rounds++) {
		if (rounds == 100)
			test_ready();
		if (rounds > 100 && test_stopped())
			break;
		if (test_write_all(ab[1], &n, sizeof(n)))
			fail_errno("parent: write");
		if (test_read_all(ba[0], &got, sizeof(got)))
			fail_errno("parent: read");
		if (got != n + 1)
			fail("parent: got %llu, want %llu", (unsigned long long)got, (unsigned long long)(n + 1));
		n += 2;
		if ((rounds & 63) == 63)
			test_sleep_ms(1);
	}
	at_term = n;
	while (n < at_term + 2000) {
		if (test_write_all(ab[1], &n, sizeof(n)) || test_read_all(ba[0], &got, sizeof(got)))
			fail_errno("parent: after restore");
		if (got != n + 1)
			fail("parent: got %llu, want %llu", (unsigned long long)got, (unsigned long long)(n + 1));
		n += 2;
	}
	got = END;
	if (test_write_all(ab[1], &got, sizeof(got)))
		fail_errno("parent: write END");
	test_reap_ok(child, "child");
	test_msg("%llu rounds", (unsigned long long)(n / 2));
	pass();
}
