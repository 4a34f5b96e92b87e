// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * A child stopped by SIGSTOP before the checkpoint. It must still be
 * stopped after restore (state T, and it makes no progress), and resume
 * on SIGCONT: waitpid(WCONTINUED) reports it, and it writes again.
 *
 * The child writes a byte into a non-blocking pipe every few ms while it
 * runs: an empty pipe over a while means it is not running.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int host_state(pid_t *ret_host)
{
	pid_t host[4];
	char path[64], text[512];

	if (test_proc_children(host, 4) != 1)
		fail("expected exactly one child in /proc/self/task/*/children");
	*ret_host = host[0];
	snprintf(path, sizeof(path), "/proc/%d/stat", host[0]);
	if (test_read_file(path, text, sizeof(text)) < 0)
		fail_errno("read %s", path);
	char *rp = strrchr(text, ')');

	return rp ? rp[2] : '?';
}

static int drain(int fd)
{
	char buf[4096];
	int total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (int)n;
	if (n < 0 && errno != EAGAIN)
		fail_errno("read(pipe)");
	return total;
}

int main(int argc, char **argv)
{
	int p[2], status, st;
	pid_t child, host;
	struct pollfd pfd;

	test_init(argc, argv);
	if (pipe2(p, O_NONBLOCK))
		fail_errno("pipe2");

	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		close(p[0]);
		while (!test_stopped()) {
			if (write(p[1], "x", 1) < 0 && errno != EAGAIN)
				fail_errno("child: write");
			test_sleep_ms(5);
		}
		_exit(0);
	}
	close(p[1]);

	/* Wait until it runs, then stop it. */
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	if (poll(&pfd, 1, 10000) != 1)
		fail("child never wrote");
	if (kill(child, SIGSTOP))
		fail_errno("kill(SIGSTOP)");
	if (test_waitpid(child, &status, WUNTRACED) != child || !WIFSTOPPED(status))
		fail("waitpid(WUNTRACED): status 0x%x, not stopped", status);
	drain(p[0]);
	if ((st = host_state(&host)) != 'T')
		fail("before: child state %c, want T", st);

	test_ready();
	test_wait_check();

	if ((st = host_state(&host)) != 'T')
		fail("child (host pid %d) state %c after restore, want T", host, st);
	test_sleep_ms(300);
	if ((st = drain(p[0])) != 0)
		fail("stopped child wrote %d bytes after restore", st);
	if ((st = host_state(&host)) != 'T')
		fail("child state %c after 300 ms, want T", st);

	if (kill(child, SIGCONT))
		fail_errno("kill(SIGCONT)");
	if (test_waitpid(child, &status, WCONTINUED) != child || !WIFCONTINUED(status))
		fail("waitpid(WCONTINUED): status 0x%x, not continued", status);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	if (poll(&pfd, 1, 10000) != 1)
		fail("child did not run after SIGCONT");

	test_stop_children(&child, 1, "stopped child");
	pass();
}
