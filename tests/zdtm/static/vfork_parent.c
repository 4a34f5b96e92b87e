// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,expect=dump-fail,dump-err=blocked in vfork
/*
 * A child blocked in vfork() while its vfork child waits (in pause()). A
 * vfork parent sleeps uninterruptibly until its child execs or exits: it
 * cannot be stopped, and the checkpoint used to wait for its stop forever.
 * The checkpoint must refuse it, naming vfork, and leave the tree running:
 * once the vfork child exits, the parent goes on.
 */
#include "zdtm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int p[2], status;
	pid_t child, grand = 0;

	test_init(argc, argv);
	if (pipe(p))
		fail_errno("pipe");
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		pid_t g;
		close(p[0]);
		g = vfork();
		if (g < 0)
			fail_errno("child: vfork");
		if (g == 0) {
			/* the vfork child: its own signal table, the parent's memory */
			pid_t me = getpid();
			signal(SIGTERM, SIG_DFL);
			if (write(p[1], &me, sizeof(me)) != sizeof(me))
				_exit(2);
			for (;;)
				pause();
		}
		if (test_waitpid(g, &status, 0) != g || !WIFSIGNALED(status) ||
		    WTERMSIG(status) != SIGTERM)
			fail("child: vfork child ended with status 0x%x", status);
		test_wait_check();
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &grand, sizeof(grand)) != sizeof(grand))
		fail("no pid from the vfork child");

	test_ready();
	test_wait_check();

	/* the vfork child first: until it ends, its parent cannot take SIGTERM */
	if (kill(grand, SIGTERM))
		fail_errno("kill(vfork child)");
	test_stop_children(&child, 1, "vfork parent");
	pass();
}
