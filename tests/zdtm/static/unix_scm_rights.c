// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=unix.socket.fd.[0-9]+.of.process.[0-9]+.\(unix_scm_rights\).has.file.descriptors.in.flight.\(SCM_RIGHTS\)
/*
 * A file descriptor in flight: sent with SCM_RIGHTS over a socketpair and
 * not received yet.  The checkpoint must be refused, naming the socket, and
 * leave the message in the queue: afterwards it is received with its data
 * and a working fd (a pipe end with data of its own).
 */
#include "zdtm.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int sp[2], pp[2];
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, b[8] = { 0 };
	struct iovec iov = { "fd", 2 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	test_init(argc, argv);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) || pipe(pp))
		fail_errno("socketpair/pipe");
	if (write(pp[1], "pipe", 4) != 4)
		fail_errno("write");
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pp[0], sizeof(int));
	if (sendmsg(sp[0], &mh, 0) != 2)
		fail_errno("sendmsg");
	close(pp[0]);

	test_ready();
	test_wait_check();

	iov = (struct iovec){ b, sizeof(b) };
	mh = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	if (recvmsg(sp[1], &mh, MSG_DONTWAIT) != 2 || memcmp(b, "fd", 2))
		fail("the message with the fd is not in the queue after the refused checkpoint");
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		fail("the fd in flight is gone");
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	if (read(fd, b, 4) != 4 || memcmp(b, "pipe", 4))
		fail("the fd received is not the pipe");
	pass();
}
