// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * socketpair(AF_UNIX, SOCK_STREAM) with data queued both ways:
 *   - a pair with 3000 bytes one way (three writes) and 100000 the other,
 *     SO_PASSCRED (the data keeps its sender's credentials) and a larger
 *     SO_SNDBUF on one end, O_NONBLOCK and
 *     SO_RCVTIMEO on the other, SO_PEEK_OFF set on one end;
 *   - a pair whose one end was shut down for writing after its data: the
 *     other reads the data, then EOF, and its own writes still arrive;
 *   - a pair whose other end was closed with data in flight: data, then EOF.
 * After restore every byte comes out once, in order, nothing more; the
 * options are the same; the ends are still connected to each other.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

static char buf[1 << 18], chk[1 << 18];

static void expect_data(int fd, size_t len, uint64_t seed, const char *what)
{
	if (test_read_all(fd, chk, len))
		fail_errno("%s: read %zu bytes", what, len);
	test_fill(buf, len + 8, seed);
	if (memcmp(chk, buf, len)) {
		size_t i = 0;
		while (chk[i] == buf[i])
			i++;
		fail("%s: byte %zu of %zu differs", what, i, len);
	}
}

static void expect_empty(int fd, const char *what)
{
	ssize_t n = recv(fd, chk, 1, MSG_DONTWAIT);
	if (!(n < 0 && errno == EAGAIN))
		fail("%s: more data than was queued (recv %zd)", what, n);
}

static int getint(int fd, int opt)
{
	int v = -2;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, opt, &v, &l))
		fail_errno("getsockopt %d", opt);
	return v;
}

int main(int argc, char **argv)
{
	int a[2], s[2], c[2], sndbuf, peek = 10;
	struct timeval tv = { 7, 250000 }, tv1, tv2;
	socklen_t l = sizeof(tv2);

	test_init(argc, argv);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) || socketpair(AF_UNIX, SOCK_STREAM, 0, s) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, c))
		fail_errno("socketpair");
	int one = 1, big = 300000;
	if (setsockopt(a[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
	    setsockopt(a[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)) ||
	    setsockopt(a[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(s[1], SOL_SOCKET, SO_PEEK_OFF, &peek, sizeof(peek)))
		fail_errno("setsockopt");
	fcntl(a[1], F_SETFL, O_NONBLOCK);
	sndbuf = getint(a[0], SO_SNDBUF);
	/* the kernel keeps jiffies: compare with what it gave back */
	if (getsockopt(a[1], SOL_SOCKET, SO_RCVTIMEO, &tv1, &l))
		fail_errno("SO_RCVTIMEO");

	test_fill(buf, 3008, 2100);
	for (int off = 0; off < 3000; off += 1000)
		test_write_all(a[0], buf + off, 1000);
	test_fill(buf, 100000, 2101);
	test_write_all(a[1], buf, 100000);

	test_fill(buf, 5000, 2102);
	test_write_all(s[0], buf, 5000);
	if (shutdown(s[0], SHUT_WR))
		fail_errno("shutdown");
	test_fill(buf, 800, 2103);
	test_write_all(s[1], buf, 800);

	test_fill(buf, 4096, 2104);
	test_write_all(c[0], buf, 4096);
	close(c[0]);

	test_ready();
	test_wait_check();

	if (getint(a[0], SO_PASSCRED) != 1 || getint(a[1], SO_PASSCRED) != 0)
		fail("SO_PASSCRED: %d %d, was 1 0", getint(a[0], SO_PASSCRED), getint(a[1], SO_PASSCRED));
	if (getint(a[0], SO_SNDBUF) != sndbuf)
		fail("SO_SNDBUF %d, was %d", getint(a[0], SO_SNDBUF), sndbuf);
	if (getsockopt(a[1], SOL_SOCKET, SO_RCVTIMEO, &tv2, &l) || tv2.tv_sec != tv1.tv_sec ||
	    tv2.tv_usec != tv1.tv_usec)
		fail("SO_RCVTIMEO %ld.%06ld, was %ld.%06ld", (long)tv2.tv_sec, (long)tv2.tv_usec,
		     (long)tv1.tv_sec, (long)tv1.tv_usec);
	if (!(fcntl(a[1], F_GETFL) & O_NONBLOCK) || (fcntl(a[0], F_GETFL) & O_NONBLOCK))
		fail("O_NONBLOCK flags differ");
	if (getint(s[1], SO_PEEK_OFF) != 10 || getint(s[0], SO_PEEK_OFF) != -1)
		fail("SO_PEEK_OFF %d %d, was 10 -1", getint(s[1], SO_PEEK_OFF), getint(s[0], SO_PEEK_OFF));
	if (recv(s[1], chk, 4, MSG_PEEK) != 4)
		fail_errno("peek at offset 10");
	test_fill(buf, 5000, 2102);
	if (memcmp(chk, buf + 10, 4))
		fail("SO_PEEK_OFF: a peek does not start at byte 10");
	peek = -1;
	setsockopt(s[1], SOL_SOCKET, SO_PEEK_OFF, &peek, sizeof(peek));

	/* SO_PASSCRED: the queued data carries its sender's credentials (this process) */
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { chk, 16 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	struct ucred uc;
	if (recvmsg(a[0], &mh, MSG_PEEK) <= 0 || !(cm = CMSG_FIRSTHDR(&mh)) ||
	    cm->cmsg_type != SCM_CREDENTIALS)
		fail("pair a: no credentials with the queued data (SO_PASSCRED)");
	memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
	if (uc.pid != getpid() || uc.uid != getuid() || uc.gid != getgid())
		fail("pair a: queued data from pid %d uid %u gid %u, sent by pid %d uid %u gid %u",
		     uc.pid, uc.uid, uc.gid, getpid(), getuid(), getgid());
	expect_data(a[1], 3000, 2100, "pair a, first end to second");
	expect_empty(a[1], "pair a, second end");
	fcntl(a[0], F_SETFL, 0);
	expect_data(a[0], 100000, 2101, "pair a, second end to first");
	expect_empty(a[0], "pair a, first end");
	if (write(a[0], "ping", 4) != 4 || read(a[1], chk, 4) != 4 || memcmp(chk, "ping", 4))
		fail("pair a is not connected after restore");
	if (write(a[1], "pong", 4) != 4 || read(a[0], chk, 4) != 4 || memcmp(chk, "pong", 4))
		fail("pair a is not connected back after restore");

	expect_data(s[1], 5000, 2102, "pair s, shut-down end's data");
	if (recv(s[1], chk, 1, MSG_DONTWAIT) != 0)
		fail("pair s: no EOF after the data of the end shut down for writing");
	expect_data(s[0], 800, 2103, "pair s, data to the end shut down");
	if (send(s[0], "x", 1, MSG_NOSIGNAL) >= 0 || errno != EPIPE)
		fail("pair s: the end shut down for writing can write again");
	if (write(s[1], "back", 4) != 4 || read(s[0], chk, 4) != 4 || memcmp(chk, "back", 4))
		fail("pair s: the end shut down for writing cannot read any more");

	expect_data(c[1], 4096, 2104, "pair c, data from the closed end");
	if (recv(c[1], chk, 1, MSG_DONTWAIT) != 0)
		fail("pair c: no EOF after the data of the closed end");
	pass();
}
