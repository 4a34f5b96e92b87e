// SPDX-License-Identifier: MIT
/*
 * zdtm_launch [--pidns] -- PROG ARGS...
 *
 * Starts a zdtm test as the leader of its own session, so that the
 * checkpointed tree shares no session or process group with the runner.
 * With --pidns the test becomes pid 1 of a new PID namespace (the same
 * PIDs and TIDs can then be given back on restore); the launcher stays
 * outside as its parent and only reaps it. No new mount namespace: /proc
 * stays the runner's, which is why tests name themselves through
 * /proc/self and /proc/thread-self.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void run(char **argv)
{
	/* The test's fd table is 0, 1, 2 and what it opens itself. */
	if (syscall(SYS_close_range, 3, ~0U, 0)) {
		dprintf(2, "zdtm_launch: close_range: %s\n", strerror(errno));
		_exit(127);
	}
	if (setsid() < 0) {
		dprintf(2, "zdtm_launch: setsid: %s\n", strerror(errno));
		_exit(127);
	}
	execv(argv[0], argv);
	dprintf(2, "zdtm_launch: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int main(int argc, char **argv)
{
	int pidns = 0, i = 1, status;
	pid_t pid;

	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--pidns"))
			pidns = 1;
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else
			break;
	}
	if (i >= argc) {
		dprintf(2, "usage: zdtm_launch [--pidns] -- PROG ARGS...\n");
		return 2;
	}
	if (pidns && unshare(CLONE_NEWPID)) {
		dprintf(2, "zdtm_launch: unshare(CLONE_NEWPID): %s\n", strerror(errno));
		return 127;
	}
	if (!pidns && getpgrp() != getpid())
		run(argv + i);	/* not a group leader: setsid works in place */

	pid = fork();
	if (pid < 0) {
		dprintf(2, "zdtm_launch: fork: %s\n", strerror(errno));
		return 127;
	}
	if (pid == 0)
		run(argv + i);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 127;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
