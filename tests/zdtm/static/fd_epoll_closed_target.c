// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=fd [0-9]+ \(epoll\): its registration of fd [0-9]+ .* no longer open at that number
/*
 * An epoll registration whose fd was dup'ed and then closed: the
 * registration lives on (its file is still open through the dup) but its
 * fd number names nothing; the restore could not make it again with
 * epoll_ctl.  The checkpoint must refuse it, naming it, and leave the test
 * running (the epoll still reports the eventfd through the dup).
 */
#include "zdtm.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 };
	uint64_t one = 1;
	int ep, efd, keep;

	test_init(argc, argv);
	ep = epoll_create1(0);
	efd = eventfd(0, EFD_NONBLOCK);
	if (ep < 0 || efd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev))
		fail_errno("setup");
	keep = dup(efd);
	close(efd);

	test_ready();
	test_wait_check();

	if (write(keep, &one, sizeof(one)) != sizeof(one))
		fail_errno("write");
	if (epoll_wait(ep, &ev, 1, 0) != 1 || ev.data.u64 != 42)
		fail("the registration does not report its eventfd");
	pass();
}
