// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * An epoll with registrations of several kinds, each with its own data:
 *   - a pipe's read end with 5 bytes in it (EPOLLIN: ready);
 *   - an eventfd with a count of 1 (EPOLLIN: ready);
 *   - an empty eventfd (EPOLLIN: not ready until written);
 *   - another pipe's write end (EPOLLOUT: ready);
 *   - an eventfd registered EPOLLONESHOT that fired before the checkpoint
 *     (disarmed: not reported even though ready);
 *   - a second epoll, itself ready (it watches a ready eventfd);
 *   - a target registered through an fd that was dup'ed: the registration
 *     is by number, the dup is another number of the same description.
 * The epoll fd itself is dup'ed too.  After restore: the registrations in
 * fdinfo (fd, events, data) are the same; epoll_wait reports exactly the
 * ready ones with their data; writing the empty eventfd makes it ready.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { D_PIPE = 0x1111, D_EV = 0x2222, D_EMPTY = 0x3333, D_OUT = 0x4444, D_ONESHOT = 0x5555,
       D_INNER = 0x6666, D_DUPED = 0x7777, D_IN_INNER = 0x8888 };

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fail_errno("epoll_ctl(ADD, %d)", fd);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The "tfd:" lines of fdinfo without pos/ino/sdev (the files are new after
 * restore), sorted (the kernel lists them in the order of its file pointers).
 */
static void registrations(int ep, char *out, size_t size)
{
	char path[64], buf[8192], *lines[32];
	size_t len = 0, n = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail_errno("%s", path);
	out[0] = 0;
	for (char *s = strstr(buf, "tfd:"); s && n < 32; s = strstr(s + 1, "tfd:")) {
		char *pos = strstr(s, " pos:");
		if (!pos)
			fail("%s: a tfd line without pos", path);
		*pos = 0;
		lines[n++] = s;
		s = pos;
	}
	qsort(lines, n, sizeof(*lines), cmp_str);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, size - len, "%s\n", lines[i]);
}

/* The ready set as text, sorted by data. */
static void ready(int ep, char *out, size_t size)
{
	struct epoll_event ev[16];
	int n = epoll_wait(ep, ev, 16, 0);
	size_t len = 0;
	if (n < 0)
		fail_errno("epoll_wait");
	for (int i = 0; i < n; i++)
		for (int k = i + 1; k < n; k++)
			if (ev[k].data.u64 < ev[i].data.u64) {
				struct epoll_event t = ev[i];
				ev[i] = ev[k];
				ev[k] = t;
			}
	out[0] = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, size - len, "%#llx:%#x ",
					(unsigned long long)ev[i].data.u64, ev[i].events);
}

int main(int argc, char **argv)
{
	int ep, ep_dup, inner, p[2], q[2], ev, empty, oneshot, inner_ev, duped, duped2;
	char regs_before[2048], regs_after[2048], want[512], got[512];
	uint64_t one = 1;

	test_init(argc, argv);
	ep = epoll_create1(EPOLL_CLOEXEC);
	inner = epoll_create1(0);
	ev = eventfd(1, EFD_NONBLOCK);
	empty = eventfd(0, EFD_NONBLOCK);
	oneshot = eventfd(1, EFD_NONBLOCK);
	inner_ev = eventfd(1, EFD_NONBLOCK);
	duped = eventfd(0, EFD_NONBLOCK);
	if (ep < 0 || inner < 0 || ev < 0 || empty < 0 || oneshot < 0 || inner_ev < 0 || duped < 0 ||
	    pipe2(p, O_NONBLOCK) || pipe2(q, O_NONBLOCK))
		fail_errno("setup");
	if (write(p[1], "hello", 5) != 5)
		fail_errno("write");
	add(ep, p[0], EPOLLIN, D_PIPE);
	add(ep, ev, EPOLLIN, D_EV);
	add(ep, empty, EPOLLIN | EPOLLRDHUP, D_EMPTY);
	add(ep, q[1], EPOLLOUT, D_OUT);
	add(ep, oneshot, EPOLLIN | EPOLLONESHOT, D_ONESHOT);
	add(inner, inner_ev, EPOLLIN, D_IN_INNER);
	add(ep, inner, EPOLLIN, D_INNER);
	add(ep, duped, EPOLLIN, D_DUPED);
	duped2 = dup(duped);
	ep_dup = dup(ep);

	/* the one-shot fires once: disarmed afterwards */
	snprintf(want, sizeof(want), "%#x:%#x %#x:%#x %#x:%#x %#x:%#x %#x:%#x ", D_PIPE, EPOLLIN,
		 D_EV, EPOLLIN, D_OUT, EPOLLOUT, D_ONESHOT, EPOLLIN, D_INNER, EPOLLIN);
	ready(ep, got, sizeof(got));
	if (strcmp(got, want))
		fail("before: ready '%s', expected '%s'", got, want);
	snprintf(want, sizeof(want), "%#x:%#x %#x:%#x %#x:%#x %#x:%#x ", D_PIPE, EPOLLIN, D_EV,
		 EPOLLIN, D_OUT, EPOLLOUT, D_INNER, EPOLLIN);
	ready(ep, got, sizeof(got));
	if (strcmp(got, want))
		fail("before, again: ready '%s', expected '%s'", got, want);
	registrations(ep, regs_before, sizeof(regs_before));

	test_ready();
	test_wait_check();

	registrations(ep_dup, regs_after, sizeof(regs_after));
	if (strcmp(regs_before, regs_after))
		fail("registrations:\n%s\nwere:\n%s", regs_after, regs_before);
	ready(ep, got, sizeof(got));
	if (strcmp(got, want))
		fail("ready '%s', expected '%s'", got, want);
	/* the data is still there, the empty eventfd wakes it, the dup'ed target is the same file */
	char buf[8];
	if (read(p[0], buf, sizeof(buf)) != 5 || memcmp(buf, "hello", 5))
		fail("the pipe lost its data");
	if (write(empty, &one, sizeof(one)) != sizeof(one) || write(duped2, &one, sizeof(one)) != sizeof(one))
		fail_errno("write eventfd");
	snprintf(want, sizeof(want), "%#x:%#x %#x:%#x %#x:%#x %#x:%#x %#x:%#x ", D_EV, EPOLLIN,
		 D_EMPTY, EPOLLIN, D_OUT, EPOLLOUT, D_INNER, EPOLLIN, D_DUPED, EPOLLIN);
	ready(ep_dup, got, sizeof(got));
	if (strcmp(got, want))
		fail("after writes: ready '%s', expected '%s'", got, want);
	pass();
}
