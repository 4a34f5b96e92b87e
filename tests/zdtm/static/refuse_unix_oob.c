// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=out-of-band data \(MSG_OOB\)
/*
 * A unix stream with a byte sent MSG_OOB waiting in its receive queue, after
 * ordinary bytes: the byte waits apart from the stream at its mark, and
 * peeking the queue would give it back inline, at another place.  The
 * checkpoint refuses it, named, and the process runs on with the queue as
 * it was: the out-of-band byte by MSG_OOB, the ordinary bytes by read.
 */
#include "zdtm.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[8] = { 0 }, oob = 0;
	int sv[2];

	test_init(argc, argv);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		fail_errno("socketpair");
	if (send(sv[0], "abc", 3, 0) != 3)
		fail_errno("send");
	if (send(sv[0], "X", 1, MSG_OOB) != 1)
		fail_errno("send(MSG_OOB)"); /* (unix sockets have it since Linux 5.15) */

	test_ready();
	test_wait_check();

	if (recv(sv[1], &oob, 1, MSG_OOB | MSG_DONTWAIT) != 1 || oob != 'X')
		fail("the out-of-band byte: %d (%c)", (int)oob, oob ? oob : '-');
	if (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) != 3 || memcmp(buf, "abc", 3))
		fail("the stream: '%s'", buf);
	pass();
}
