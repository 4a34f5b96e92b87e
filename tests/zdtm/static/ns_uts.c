// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,expect=dump-fail,dump-err=process [0-9]+ is in its own UTS namespace
/*
 * A child in a UTS namespace of its own, with its own host name (the root
 * owns its PID namespace, which the engine does restore). The child would
 * come back in the host's UTS namespace: the checkpoint must refuse it,
 * naming the UTS namespace, and leave both running (the child still has
 * its host name).
 */
#include "zdtm.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int bar[2];
	pid_t child;

	test_init(argc, argv);
	test_barrier_init(bar);
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		char name[64];
		if (unshare(CLONE_NEWUTS))
			fail_errno("child: unshare(CLONE_NEWUTS)");
		if (sethostname("zdtm-uts", 8))
			fail_errno("child: sethostname");
		test_barrier_done(bar);
		test_wait_check();
		if (gethostname(name, sizeof(name)) || strcmp(name, "zdtm-uts"))
			fail("child: host name '%s', was 'zdtm-uts'", name);
		_exit(0);
	}
	test_barrier_wait(bar);

	test_ready();
	test_wait_check();

	test_stop_children(&child, 1, "child");
	pass();
}
