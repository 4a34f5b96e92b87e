// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * An epoll shared by a parent and its child (fork), with a registration
 * whose fd number names its file only in the parent (the child closed its
 * copy, and holds another file at that number) and one made by the child
 * with its own fd (the parent has another file at that number).  After
 * restore the epoll reports both with their data, and each registration is
 * of the right process's file: the child reading its eventfd empties it.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define D_PARENT 0xAAAA
#define D_CHILD 0xCCCC

static int ready_mask(int ep)
{
	struct epoll_event ev[8];
	int n = epoll_wait(ep, ev, 8, 0), m = 0;
	if (n < 0)
		fail_errno("epoll_wait");
	for (int i = 0; i < n; i++)
		m |= ev[i].data.u64 == D_PARENT ? 1 : ev[i].data.u64 == D_CHILD ? 2 : 4;
	return m;
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = D_PARENT };
	int ep, pe, cmd[2], rep[2], go[2];
	pid_t child;
	char c;

	test_init(argc, argv);
	ep = epoll_create1(0);
	pe = eventfd(1, EFD_NONBLOCK);
	if (ep < 0 || pe < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pe, &ev) || pipe(cmd) || pipe(rep) || pipe(go))
		fail_errno("setup");
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		uint64_t v;
		close(cmd[1]);
		close(rep[0]);
		close(go[0]);
		close(pe);
		/* another file at the parent's number, then our own registration */
		int other = eventfd(0, 0), ce = eventfd(1, EFD_NONBLOCK);
		ev.data.u64 = D_CHILD;
		if (other != pe || ce < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ce, &ev))
			fail_errno("child: setup (other %d, pe %d)", other, pe);
		if (write(go[1], "g", 1) != 1)
			_exit(1);
		while (read(cmd[0], &c, 1) == 1) {
			if (read(ce, &v, sizeof(v)) != sizeof(v))
				fail_errno("child: its eventfd");
			if (write(rep[1], "d", 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	close(cmd[0]);
	close(rep[1]);
	close(go[1]);
	if (read(go[0], &c, 1) != 1)
		fail("the child did not set up");
	/* the parent's file at the child's number */
	int mine = eventfd(0, 0);
	if (mine < 0)
		fail_errno("eventfd");
	if (ready_mask(ep) != 3)
		fail("before: ready %#x, expected both registrations", ready_mask(ep));

	test_ready();
	test_wait_check();

	int m = ready_mask(ep);
	if (m != 3)
		fail("after restore: ready %#x, expected both registrations (1: parent's, 2: child's)", m);
	if (write(cmd[1], "r", 1) != 1 || read(rep[0], &c, 1) != 1)
		fail_errno("child");
	if ((m = ready_mask(ep)) != 1)
		fail("after the child read its eventfd: ready %#x, expected the parent's only", m);
	close(cmd[1]);
	close(mine);
	test_reap_ok(child, "child");
	pass();
}
