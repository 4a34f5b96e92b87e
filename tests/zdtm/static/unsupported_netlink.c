// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=netlink|socket
/*
 * An object the engine does not checkpoint: a bound AF_NETLINK socket.
 * The checkpoint must fail with an error that names it, and leave this
 * process running unharmed: afterwards the socket still answers a
 * RTM_GETLINK dump, memory is intact, and the process goes on normally.
 */
#include "zdtm.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define SIZE (1 << 20)

int main(int argc, char **argv)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = { 0 };
	char buf[8192];
	struct pollfd p;
	void *mem;
	int fd;

	test_init(argc, argv);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		fail_errno("netlink socket");
	mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail_errno("mmap");
	test_fill(mem, SIZE, 1800);

	test_ready();
	test_wait_check();

	if (test_check(mem, SIZE, 1800) != (size_t)-1)
		fail("memory differs after the failed checkpoint");
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = 1;
	req.g.rtgen_family = AF_UNSPEC;
	if (send(fd, &req, sizeof(req), 0) != sizeof(req))
		fail_errno("netlink send");
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		fail("no netlink answer");
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	struct nlmsghdr *h = (void *)buf;

	if (n < (ssize_t)sizeof(*h) || !NLMSG_OK(h, (size_t)n) || h->nlmsg_seq != 1 ||
	    (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != NLMSG_DONE))
		fail("bad netlink answer (%zd bytes, type %d)", n, n > 0 ? h->nlmsg_type : -1);
	pass();
}
