// SPDX-License-Identifier: MIT
// zdtm: flags=distinct-fs
/*
 * Path names whose socket file is gone, and one relative name:
 *   - a datagram socket bound to a path, the file then unlinked, with a
 *     datagram queued from a socket bound to a path that still exists;
 *   - a stream listener bound to a path, the file unlinked, with one
 *     accepted connection carrying data;
 *   - a datagram socket bound to a relative name in the working directory.
 * After restore getsockname() still gives each name, the deleted files are
 * not there again, the relative name's file is, and the sockets still work
 * through the connections they have.
 */
#include "zdtm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct name {
	struct sockaddr_un sa;
	socklen_t len;
};

static void mkname(struct name *n, const char *path)
{
	memset(n, 0, sizeof(*n));
	n->sa.sun_family = AF_UNIX;
	snprintf(n->sa.sun_path, sizeof(n->sa.sun_path), "%s", path);
	n->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static void same_name(int fd, const struct name *want, const char *what)
{
	struct sockaddr_un got;
	socklen_t gl = sizeof(got);

	if (getsockname(fd, (struct sockaddr *)&got, &gl) || gl != want->len ||
	    memcmp(&got, &want->sa, want->len))
		fail("%s: its name differs after restore", what);
}

int main(int argc, char **argv)
{
	struct name dn, sn, ln, rn;
	char dir[256], rel[64], got[16];
	struct stat st;
	int dg, snd, l, c, s, r;

	test_init(argc, argv);
	snprintf(dir, sizeof(dir), "%s", test_path("dir"));
	*strrchr(dir, '/') = 0;
	if (chdir(dir))
		fail_errno("chdir %s", dir);
	mkname(&dn, test_path("dgone"));
	mkname(&sn, test_path("dsender"));
	mkname(&ln, test_path("lgone"));
	snprintf(rel, sizeof(rel), "rel-%d", getpid());
	mkname(&rn, rel);
	unlink(dn.sa.sun_path);
	unlink(sn.sa.sun_path);
	unlink(ln.sa.sun_path);
	unlink(rel);

	dg = socket(AF_UNIX, SOCK_DGRAM, 0);
	snd = socket(AF_UNIX, SOCK_DGRAM, 0);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	r = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (dg < 0 || snd < 0 || l < 0 || c < 0 || r < 0)
		fail_errno("socket");
	if (bind(dg, (struct sockaddr *)&dn.sa, dn.len) || bind(snd, (struct sockaddr *)&sn.sa, sn.len) ||
	    bind(l, (struct sockaddr *)&ln.sa, ln.len) || listen(l, 1) ||
	    bind(r, (struct sockaddr *)&rn.sa, rn.len))
		fail_errno("bind");
	if (sendto(snd, "hello", 5, 0, (struct sockaddr *)&dn.sa, dn.len) != 5)
		fail_errno("sendto");
	if (connect(c, (struct sockaddr *)&ln.sa, ln.len) || (s = accept(l, NULL, NULL)) < 0)
		fail_errno("connect");
	if (write(c, "stream", 6) != 6)
		fail_errno("write");
	if (unlink(dn.sa.sun_path) || unlink(ln.sa.sun_path))
		fail_errno("unlink");

	test_ready();
	test_wait_check();

	same_name(dg, &dn, "datagram socket with a deleted file");
	same_name(l, &ln, "listener with a deleted file");
	same_name(s, &ln, "accepted socket of that listener");
	same_name(snd, &sn, "sender");
	same_name(r, &rn, "socket with a relative name");
	if (lstat(dn.sa.sun_path, &st) == 0 || lstat(ln.sa.sun_path, &st) == 0)
		fail("a deleted socket file is back after restore");
	if (lstat(sn.sa.sun_path, &st) || !S_ISSOCK(st.st_mode))
		fail("the sender's socket file is gone after restore");
	if (lstat(rel, &st) || !S_ISSOCK(st.st_mode))
		fail("the relative name's socket file is not in the working directory");
	struct sockaddr_un from;
	socklen_t fl = sizeof(from);
	if (recvfrom(dg, got, sizeof(got), MSG_DONTWAIT, (struct sockaddr *)&from, &fl) != 5 ||
	    memcmp(got, "hello", 5) || fl != sn.len || memcmp(&from, &sn.sa, sn.len))
		fail("the queued datagram or its sender's name differs");
	if (test_read_all(s, got, 6) || memcmp(got, "stream", 6))
		fail("the accepted connection's data differs");
	if (write(s, "back", 4) != 4 || test_read_all(c, got, 4) || memcmp(got, "back", 4))
		fail("the accepted connection does not carry data back");
	if (sendto(r, "x", 1, 0, (struct sockaddr *)&sn.sa, sn.len) != 1 ||
	    recvfrom(snd, got, 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fl) != 1)
		fail_errno("a datagram from the relative name");
	unlink(sn.sa.sun_path);
	unlink(rel);
	pass();
}
