// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A tree in the host's PID namespace (no pidns flag): the root and a child.
 * The checkpoint kills both; the child's zombie goes to the host's init,
 * which may reap it late, and until then its pid (and its group and session
 * numbers) stays in use: a restore right after the checkpoint failed with
 * "pid N is in use". After restore the child runs again: it answers on a
 * pipe, and exits on SIGTERM.
 */
#include "zdtm.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int req[2], ans[2];
	pid_t child;
	char c;
	struct pollfd pfd;

	test_init(argc, argv);
	if (pipe(req) || pipe(ans))
		fail_errno("pipe");
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		close(req[1]);
		close(ans[0]);
		while (read(req[0], &c, 1) == 1)
			if (write(ans[1], &c, 1) != 1)
				fail_errno("child: write");
		_exit(0);
	}
	close(req[0]);
	close(ans[1]);

	test_ready();
	test_wait_check();

	if (write(req[1], "p", 1) != 1)
		fail_errno("write to the child");
	pfd = (struct pollfd){ .fd = ans[0], .events = POLLIN };
	if (poll(&pfd, 1, 10000) != 1 || read(ans[0], &c, 1) != 1 || c != 'p')
		fail("the child does not answer after restore");
	close(req[1]);	/* EOF: the child exits */
	test_reap_ok(child, "child");
	pass();
}
