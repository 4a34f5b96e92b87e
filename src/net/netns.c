/* SPDX-License-Identifier: MIT */
/*
 * Working in a container's network namespace from dmigrate's own: sock_diag
 * sockets, nft runs and socket() all take the namespace of the calling
 * thread, so the dump and the restore enter the container's on their own
 * thread for just those calls and come back.  setns(CLONE_NEWNET) moves
 * only the calling thread; a child it spawns (nft) is born in the namespace.
 */
#define LOG_PREFIX "netns: "
#include "net/inet.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int netns_of_pid(pid_t pid, int *ret_fd)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: cannot open its network namespace: %m", (int)pid);
	if (fstat(fd, &a) < 0 || stat("/proc/thread-self/ns/net", &b) < 0) {
		int r = dm_fail(neg_errno(), "network namespace of process %d: %m", (int)pid);
		close(fd);
		return r;
	}
	if (a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
		close(fd);
		*ret_fd = -1;
		return 0;
	}
	*ret_fd = fd;
	return 1;
}

int netns_enter(int nsfd, int *ret_back)
{
	if (nsfd < 0) {
		*ret_back = -1;
		return 0;
	}
	int back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (back < 0)
		return dm_fail(neg_errno(), "cannot open our own network namespace: %m");
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		int r = dm_fail(neg_errno(), "cannot enter the tree's network namespace: %m");
		close(back);
		return r;
	}
	*ret_back = back;
	return 0;
}

void netns_leave(int back)
{
	if (back < 0)
		return;
	/* a thread left in the container's namespace would make the rest of
	 * dmigrate's sockets there: never go on like that */
	if (setns(back, CLONE_NEWNET) < 0) {
		pr_err("cannot return to our own network namespace: %m");
		abort();
	}
	close(back);
}
