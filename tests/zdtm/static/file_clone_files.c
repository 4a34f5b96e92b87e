// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,expect=dump-fail,dump-err=share one fd table
/*
 * A child made with clone(CLONE_FILES) shares its parent's fd table (an
 * fd opened by one is the other's).  The restore gives every process its
 * own table, so the checkpoint must refuse the tree, naming the sharing,
 * and leave both running: afterwards the table is still shared.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int child_fn(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	static char stack[64 * 1024] __attribute__((aligned(16)));
	pid_t c;
	int fd;

	test_init(argc, argv);
	c = clone(child_fn, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	if (c < 0)
		fail_errno("clone");

	test_ready();
	test_wait_check();

	/* still one table: an fd the parent opens now is open in the child */
	fd = open("/dev/null", O_RDONLY);
	char link[64], t[64];
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", test_host_pid_of_child(c), fd);
	ssize_t n = readlink(link, t, sizeof(t) - 1);
	kill(c, SIGKILL);
	test_waitpid(c, NULL, 0);
	if (n != 9)
		fail("fd %d of the parent is not in the child: the table is no longer shared", fd);
	pass();
}
