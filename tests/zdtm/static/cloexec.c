// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Close-on-exec flags: fds opened with O_CLOEXEC, set with F_SETFD, and
 * cleared again, next to plain ones. After restore F_GETFD is the same for
 * each, and an exec'ed shell sees exactly the fds without the flag.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 6

int main(int argc, char **argv)
{
	int fds[N], want[N], p[2];
	char cmd[512], got[N + 1] = "", expect[N + 1];
	pid_t pid;

	test_init(argc, argv);
	for (int i = 0; i < N; i++) {
		fds[i] = open("/dev/null", O_RDONLY | ((i % 3 == 0) ? O_CLOEXEC : 0));
		if (fds[i] < 0)
			fail_errno("open");
	}
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);		/* set later */
	fcntl(fds[3], F_SETFD, 0);			/* opened with it, cleared */
	for (int i = 0; i < N; i++) {
		want[i] = fcntl(fds[i], F_GETFD);
		expect[i] = want[i] & FD_CLOEXEC ? '0' : '1';
	}
	expect[N] = '\0';

	test_ready();
	test_wait_check();

	for (int i = 0; i < N; i++)
		if (fcntl(fds[i], F_GETFD) != want[i])
			fail("fd %d: F_GETFD %d, was %d", fds[i], fcntl(fds[i], F_GETFD), want[i]);

	int len = snprintf(cmd, sizeof(cmd), "for f in");

	for (int i = 0; i < N; i++)
		len += snprintf(cmd + len, sizeof(cmd) - len, " %d", fds[i]);
	snprintf(cmd + len, sizeof(cmd) - len,
		 "; do if [ -e /proc/self/fd/$f ]; then printf 1; else printf 0; fi; done");
	if (pipe2(p, O_CLOEXEC))
		fail_errno("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (test_read_all(p[0], got, N))
		fail("exec'ed shell printed too little (%s)", got);
	test_reap_ok(pid, "shell");
	if (strcmp(got, expect))
		fail("after exec the fds open are %s, want %s (1 = open)", got, expect);
	pass();
}
