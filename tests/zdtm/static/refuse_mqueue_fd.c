// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=unsupported fd [0-9]+ of process [0-9]+: the POSIX message queue /zdtm-mq-[0-9]+ of the host's IPC namespace
/*
 * An open POSIX message queue descriptor of a plain tree: a file of the
 * mqueue file system of the host's IPC namespace, which the restore does not
 * make (a container's is: tests/containers, dm-ipc).  Refused, named
 * (before, it was dumped as a regular file "/NAME", a path the restore would
 * open on the host); the test runs on with its queue and the message in it.
 * The name is unlinked at once: the queue lives as long as the descriptor.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct mq_attr at = { .mq_maxmsg = 2, .mq_msgsize = 16 };
	char name[64], buf[16];
	unsigned prio;
	mqd_t q;

	test_init(argc, argv);
	snprintf(name, sizeof(name), "/zdtm-mq-%d", getpid());
	q = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0600, &at);
	if (q == (mqd_t)-1)
		fail_errno("mq_open");
	if (mq_unlink(name))
		fail_errno("mq_unlink");
	if (mq_send(q, "kept", 4, 3))
		fail_errno("mq_send");

	test_ready();
	test_wait_check();

	if (mq_receive(q, buf, sizeof(buf), &prio) != 4 || memcmp(buf, "kept", 4) || prio != 3)
		fail("the queue lost its message");
	pass();
}
