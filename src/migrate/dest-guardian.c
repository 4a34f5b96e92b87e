/* SPDX-License-Identifier: MIT */
/*
 * The guardian of a restored tree (dest-int.h): a child process, forked
 * before the restore, that kills the tree if this daemon dies before the
 * migration is complete, and holds its userfaultfds until then.
 */
#define LOG_PREFIX "dmigrated: "
#include "migrate/dest-int.h"
#include "base/fdpass.h"
#include "base/log.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

/*
 * A restored tree runs from COMMIT on, but belongs here only once it has
 * every page (post-copy) or from COMMIT (store modes).  If this daemon dies
 * in between (killed, crashed), nobody would remove it, and the source keeps
 * its complete copy stopped.  So a small child process, forked before the
 * restore, kills it when its pipe from us closes without the commit byte: it
 * sees our death as EOF.  It kills the tree's cgroup as a whole (treecg.h),
 * so what the tree forked since the resume dies too; pidfds of the restored
 * processes are the fallback where no cgroup is usable.  Until COMMIT the
 * tree is also frozen in its cgroup (v2): if we die while we hold it traced,
 * the kernel detaches it and it must not run even for the moment the
 * guardian needs.  It only uses system calls (we are multithreaded when it
 * forks) and keeps no other fd of ours.
 */
#define GUARD_MAX 4096
#define GUARD_UFFD_MAX 4096

/*
 * What really prevents zero reads is not the kill but the userfaultfds:
 * when the last reference to one closes, the kernel unregisters its ranges
 * and a missing page reads as zeros from then on.  Our death closes ours;
 * so in the lazy modes the guardian holds a reference to every uffd of the
 * tree too (the restored processes' ones before anything runs, each fork's
 * as soon as its event is read).  After our death a fault in the tree then
 * waits on a uffd nobody reads (killably) instead of reading zeros, until
 * the guardian has killed the whole cgroup; only then does it let the
 * uffds go (at its exit).
 *
 * Messages on the SOCK_SEQPACKET pair: an int32, a pid, 0 for the commit,
 * or -1 with a uffd in SCM_RIGHTS.
 */
_Noreturn static void guardian_main(int rfd, const struct treecg *cg, long delay_ms)
{
	int fds[GUARD_MAX], n = 0, n_uffd = 0;
	for (;;) {
		int32_t v;
		int ufd;
		size_t nfd = 1;
		ssize_t k = fdpass_recv(rfd, &v, sizeof(v), &ufd, &nfd, 0);
		if (k != (ssize_t)sizeof(v))
			break; /* EOF: the daemon is gone, or it aborted */
		if (nfd)
			n_uffd++; /* kept open: closed by our exit, after the kill */
		if (v < 0)
			continue; /* a uffd (dropped if our fd table was full) */
		if (v == 0) {
			/* committed and complete: the tree is the destination's now.
			 * Let its uffds and pidfds go.  The daemon removes its cgroup
			 * once it is empty (sweep_cgroups); one left by a daemon that
			 * died meanwhile goes at the next daemon's start
			 * (treecg_sweep_stale) */
			_exit(0);
		}
		if (n < GUARD_MAX) {
			int fd = (int)syscall(SYS_pidfd_open, (pid_t)v, 0);
			if (fd >= 0)
				fds[n++] = fd;
		}
	}
	(void)n_uffd;
	if (delay_ms > 0) {
		/* tests: a guardian that is slow to run (a loaded host) */
		struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (cg->version != TREECG_NONE)
		treecg_kill(cg, 10000);
	for (int i = 0; i < n; i++)
		syscall(SYS_pidfd_send_signal, fds[i], SIGSTOP, NULL, 0);
	for (int i = 0; i < n; i++)
		syscall(SYS_pidfd_send_signal, fds[i], SIGKILL, NULL, 0);
	/* the uffds go only once nothing of the tree can fault any more */
	for (int i = 0; i < n; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		poll(&p, 1, 5000);
	}
	if (cg->version != TREECG_NONE)
		treecg_remove(cg);
	_exit(0);
}

int guardian_start(struct dsess *s)
{
	int p[2];
	long delay = 0;
	const char *d = getenv("DMIGRATE_TEST_GUARDIAN_DELAY_MS");
	if (d)
		parse_long(d, &delay);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) < 0)
		return neg_errno();
	pid_t pid = fork();
	if (pid < 0) {
		int r = neg_errno();
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		if (dup2(p[0], 3) < 0)
			_exit(1);
		syscall(SYS_close_range, 4, ~0U, 0);
		guardian_main(3, &s->cg, delay);
	}
	close(p[0]);
	s->guard_fd = p[1];
	s->guard_pid = pid;
	return 0;
}

static void guardian_send(int gfd, int32_t v, int fd)
{
	fdpass_send(gfd, &v, sizeof(v), &fd, fd >= 0 ? 1 : 0, 0);
}

void guardian_add(struct dsess *s, pid_t pid)
{
	pthread_mutex_lock(&s->guard_lock);
	if (s->guard_fd >= 0 && pid > 0)
		guardian_send(s->guard_fd, pid, -1);
	pthread_mutex_unlock(&s->guard_lock);
}

/* a uffd of the tree: the guardian keeps it open until the tree is dead
 * (lazy modes; forks come from the handler's thread) */
void guardian_add_uffd(struct dsess *s, int uffd)
{
	pthread_mutex_lock(&s->guard_lock);
	if (s->guard_fd >= 0 && uffd >= 0)
		guardian_send(s->guard_fd, -1, uffd);
	pthread_mutex_unlock(&s->guard_lock);
}

void guardian_fork_uffd(void *arg, int uffd)
{
	guardian_add_uffd(arg, uffd);
}

/* commit: the guardian leaves the tree alone; else it kills it */
void guardian_end(struct dsess *s, bool commit)
{
	pthread_mutex_lock(&s->guard_lock);
	int fd = s->guard_fd;
	s->guard_fd = -1;
	if (fd >= 0 && commit)
		guardian_send(fd, 0, -1);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&s->guard_lock);
	if (fd < 0)
		return;
	while (waitpid(s->guard_pid, NULL, 0) < 0 && errno == EINTR)
		;
}
