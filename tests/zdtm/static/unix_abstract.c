// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Abstract names (no file, a leading NUL byte):
 *   - a stream listener bound to "\0zdtm-abstract-PID" with one accepted
 *     connection whose client is bound to an abstract name too;
 *   - a datagram socket given a name by autobind (bind with the family only:
 *     the kernel picks five hex digits);
 *   - a socket bound to an abstract name with a NUL byte inside it.
 * After restore every name is the same byte for byte, and
 * a new client reaches the listener by its name.
 */
#include "zdtm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct name {
	struct sockaddr_un sa;
	socklen_t len;
};

static void get_name(int fd, struct name *n, bool peer)
{
	n->len = sizeof(n->sa);
	memset(&n->sa, 0, sizeof(n->sa));
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&n->sa, &n->len))
		fail_errno("get%sname", peer ? "peer" : "sock");
}

static void same_name(int fd, const struct name *want, bool peer, const char *what)
{
	struct name got;

	get_name(fd, &got, peer);
	if (got.len != want->len || memcmp(&got.sa, &want->sa, want->len))
		fail("%s: its %s name differs after restore (%u bytes, was %u)", what,
		     peer ? "peer's" : "own", got.len, want->len);
}

int main(int argc, char **argv)
{
	struct name ln, cn, an, zn, sn;
	int l, c, s, au, z;
	char got[8];

	test_init(argc, argv);
	memset(&ln, 0, sizeof(ln));
	ln.sa.sun_family = AF_UNIX;
	snprintf(ln.sa.sun_path + 1, sizeof(ln.sa.sun_path) - 1, "zdtm-abstract-%d", getpid());
	ln.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(ln.sa.sun_path + 1));
	cn = ln;
	memcpy(cn.sa.sun_path + 1, "client", 6);
	zn = ln;
	zn.sa.sun_path[5] = 0; /* a NUL inside the name */
	memcpy(zn.sa.sun_path + 1, "zero", 4);

	l = socket(AF_UNIX, SOCK_STREAM, 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	au = socket(AF_UNIX, SOCK_DGRAM, 0);
	z = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (l < 0 || c < 0 || au < 0 || z < 0)
		fail_errno("socket");
	if (bind(l, (struct sockaddr *)&ln.sa, ln.len) || listen(l, 2) ||
	    bind(c, (struct sockaddr *)&cn.sa, cn.len) || connect(c, (struct sockaddr *)&ln.sa, ln.len) ||
	    (s = accept(l, NULL, NULL)) < 0)
		fail_errno("listener and connection");
	if (bind(au, (struct sockaddr *)&(struct sockaddr_un){ .sun_family = AF_UNIX }, sizeof(sa_family_t)))
		fail_errno("autobind");
	if (bind(z, (struct sockaddr *)&zn.sa, zn.len))
		fail_errno("bind with a NUL inside");
	get_name(au, &an, false);
	if (an.len != offsetof(struct sockaddr_un, sun_path) + 6)
		fail("autobind gave a name of %u bytes", an.len);
	get_name(s, &sn, false);

	test_ready();
	test_wait_check();

	same_name(l, &ln, false, "listener");
	same_name(c, &cn, false, "client");
	same_name(c, &ln, true, "client");
	same_name(s, &sn, false, "accepted socket");
	same_name(s, &cn, true, "accepted socket");
	same_name(au, &an, false, "autobound socket");
	same_name(z, &zn, false, "socket with a NUL in its name");
	if (write(c, "abc", 3) != 3 || test_read_all(s, got, 3) || memcmp(got, "abc", 3))
		fail("the connection does not carry data after restore");
	int c2 = socket(AF_UNIX, SOCK_STREAM, 0), s2;
	if (c2 < 0 || connect(c2, (struct sockaddr *)&ln.sa, ln.len) || (s2 = accept(l, NULL, NULL)) < 0)
		fail_errno("a new client after restore");
	if (write(s2, "xyz", 3) != 3 || test_read_all(c2, got, 3) || memcmp(got, "xyz", 3))
		fail("the new connection does not carry data");
	/* the autobound name is reachable */
	if (sendto(z, "d", 1, 0, (struct sockaddr *)&an.sa, an.len) != 1 || recv(au, got, 1, MSG_DONTWAIT) != 1)
		fail_errno("a datagram to the autobound name");
	pass();
}
