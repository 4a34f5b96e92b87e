// SPDX-License-Identifier: MIT
// zdtm: flags=transition,pidns
/*
 * Two processes playing ping-pong over unix sockets while they are dumped:
 * the parent sends bursts of 8 numbers, on a SOCK_SEQPACKET pair and on a
 * SOCK_STREAM pair in turn; the child answers each n with n+1 on the same
 * socket.  Each side checks every number, so a message lost, doubled,
 * reordered or cut at the checkpoint (queued in either direction) is
 * caught.  After restore the game must go on for a while before the parent
 * ends it.
 */
#include "zdtm.h"

#include <sys/socket.h>
#include <unistd.h>

#define END UINT64_MAX
#define BURST 8

static void put(int fd, uint64_t v, const char *who)
{
	if (test_write_all(fd, &v, sizeof(v)))
		fail_errno("%s: write", who);
}

static uint64_t get(int fd, const char *who)
{
	uint64_t v;
	if (test_read_all(fd, &v, sizeof(v)))
		fail_errno("%s: read", who);
	return v;
}

int main(int argc, char **argv)
{
	int sp[2], st[2];
	uint64_t n = 0, at_term = 0;
	pid_t child;

	test_init(argc, argv);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) || socketpair(AF_UNIX, SOCK_STREAM, 0, st))
		fail_errno("socketpair");
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		uint64_t want = 0;
		close(sp[0]);
		close(st[0]);
		for (;;) {
			/* bursts alternate: seqpacket, then stream */
			int fd = (want / (2 * BURST)) % 2 ? st[1] : sp[1];
			uint64_t got = get(fd, "child");
			if (got == END)
				_exit(0);
			if (got != want)
				fail("child: got %llu, want %llu", (unsigned long long)got, (unsigned long long)want);
			put(fd, got + 1, "child");
			want += 2;
		}
	}
	close(sp[1]);
	close(st[1]);

	for (uint64_t rounds = 0;; rounds++) {
		if (rounds == 50)
			test_ready();
		if (rounds > 50 && test_stopped()) {
			if (!at_term)
				at_term = n;
			if (n >= at_term + 500 * 2 * BURST)
				break;
		}
		int fd = (n / (2 * BURST)) % 2 ? st[0] : sp[0];
		for (int k = 0; k < BURST; k++)
			put(fd, n + 2 * (uint64_t)k, "parent");
		for (int k = 0; k < BURST; k++) {
			uint64_t got = get(fd, "parent"), want = n + 2 * (uint64_t)k + 1;
			if (got != want)
				fail("parent: got %llu, want %llu", (unsigned long long)got, (unsigned long long)want);
		}
		n += 2 * BURST;
		if ((rounds & 15) == 15)
			test_sleep_ms(1);
	}
	/* on the socket the child reads next */
	put((n / (2 * BURST)) % 2 ? st[0] : sp[0], END, "parent");
	test_reap_ok(child, "child");
	test_msg("%llu numbers", (unsigned long long)(n / 2));
	pass();
}
