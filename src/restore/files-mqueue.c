/* SPDX-License-Identifier: MIT */
/*
 * A POSIX message queue's descriptor (File.mqueue_name): the queue was made
 * again in the container's new IPC namespace before the tree (container/
 * ipc.c); the descriptor is a new mq_open() of it there, with the access
 * mode and O_NONBLOCK it had.  mq_open acts on the caller's IPC namespace:
 * a child of ours enters the container's (the stub's, restore_opts.stub_pid)
 * and passes the descriptor back over a socket pair (SCM_RIGHTS).
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/child.h"
#include "base/fdpass.h"
#include "base/log.h"

#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int send_fd(int sock, int fd)
{
	char c = 0;
	return fdpass_send(sock, &c, 1, &fd, 1, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock, int *ret_fd)
{
	char c;
	size_t n = 1;
	ssize_t k = fdpass_recv(sock, &c, 1, ret_fd, &n, 0);

	if (k != 1) {
		if (n)
			close(*ret_fd);
		return k < 0 ? (int)k : -EIO;
	}
	return n == 1 ? 0 : -EBADMSG;
}

static int mqueue_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	const char *name = f->mqueue_name;
	pid_t ns_pid = fs->c->o->stub_pid;
	_cleanup_close_ int nsfd = -1;
	int sp[2], st, r;
	char path[64];

	if (!name || !name[0] || strchr(name, '/') || strlen(name) > 255)
		return dm_fail(-EBADMSG, "a POSIX message queue descriptor without a valid name");
	if (ns_pid <= 0)
		return dm_fail(-ENOTSUP, "the POSIX message queue /%s: its descriptor is restored only in "
			       "a container's IPC namespace", name);
	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", ns_pid);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0)
		return dm_fail(neg_errno(), "socketpair: %m");
	pid_t c = fork();
	if (c < 0) {
		r = dm_fail(neg_errno(), "fork: %m");
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	if (c == 0) {
		char qn[260];
		int flags = (int)(f->has_flags ? f->flags : O_RDWR) & (O_ACCMODE | O_NONBLOCK);
		snprintf(qn, sizeof(qn), "/%s", name);
		if (setns(nsfd, CLONE_NEWIPC) < 0)
			_exit(1);
		mqd_t q = mq_open(qn, flags | O_CLOEXEC);
		if (q == (mqd_t)-1) {
			int e = errno;
			if (write(sp[1], &e, sizeof(e)) != sizeof(e))
				_exit(1);
			_exit(0);
		}
		_exit(send_fd(sp[1], q) < 0 ? 1 : 0);
	}
	close(sp[1]);
	r = child_wait_limit(c, CHILD_WAIT_HELPER_MS, &st, "the helper opening the POSIX message queue /%s "
			     "in the container's IPC namespace", name);
	if (r < 0) {
		close(sp[0]);
		return r;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		close(sp[0]);
		return dm_fail(-EIO, "the POSIX message queue /%s: the helper in the container's IPC namespace "
			       "failed", name);
	}
	/* either the descriptor (SCM_RIGHTS), or mq_open's errno as the datagram */
	int fd = -1;
	char peek[sizeof(int)];
	ssize_t n = recv(sp[0], peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	if (n == (ssize_t)sizeof(int)) {
		int e;
		memcpy(&e, peek, sizeof(e));
		close(sp[0]);
		return dm_fail(-e, "the POSIX message queue /%s in the container's IPC namespace: mq_open: %s",
			       name, strerror(e));
	}
	r = recv_fd(sp[0], &fd);
	close(sp[0]);
	if (r < 0)
		return dm_fail(r, "the POSIX message queue /%s: its descriptor did not come back", name);
	*ret_fd = fd;
	return 0;
}

const struct rst_file_type rst_file_mqueue = { .name = "mqueue", .open = mqueue_open };
