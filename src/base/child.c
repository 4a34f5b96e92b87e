/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "child: "
#include "base/child.h"
#include "base/clock.h"
#include "base/log.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int child_limit_ms(int limit_ms)
{
	const char *e = getenv("DMIGRATE_CHILD_TIMEOUT_MS");
	long v = e ? strtol(e, NULL, 10) : 0;
	return v > 0 && v < limit_ms ? (int)v : limit_ms;
}

/*
 * Until pid has ended or deadline (clock_ns()) passes: 1 ended (reaped,
 * its status in *st), 0 not yet, -errno.  Woken by its pidfd when there is
 * one (no latency added to a runc on the downtime's path), else by polling.
 */
static int reap_until(pid_t pid, int pidfd, uint64_t deadline, int *st)
{
	unsigned nap_us = 500;

	for (;;) {
		pid_t w = waitpid(pid, st, __WALL | WNOHANG);
		if (w == pid)
			return 1;
		if (w < 0 && errno != EINTR)
			return neg_errno();
		uint64_t now = clock_ns();
		if (now >= deadline)
			return 0;
		if (pidfd >= 0) {
			uint64_t left = (deadline - now + 999999) / 1000000;
			struct pollfd p = { .fd = pidfd, .events = POLLIN };
			if (poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR)
				return neg_errno();
		} else {
			struct timespec ts = { 0, (long)nap_us * 1000 };
			nanosleep(&ts, NULL);
			nap_us = MIN(nap_us * 2, 20000u);
		}
	}
}

int child_wait_limit(pid_t pid, int limit_ms, int *ret_status, const char *fmt, ...)
{
	int ms = child_limit_ms(limit_ms), st = 0, r;
	/* (a child not reaped yet keeps its pid: the fd is its own) */
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	r = reap_until(pid, pidfd, clock_ns() + (uint64_t)ms * 1000000ULL, &st);
	if (r > 0) {
		*ret_status = st;
		return 0;
	}
	if (r < 0)
		return dm_fail(r, "waiting for process %d: %s", pid, strerror(-r));

	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* its group too: what it started (runc's hooks, a shell's commands)
	 * would hold what it held */
	if (getpgid(pid) == pid)
		kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	r = reap_until(pid, pidfd, clock_ns() + (uint64_t)CHILD_WAIT_KILL_MS * 1000000ULL, &st);
	if (r <= 0)
		return dm_fail(-ETIMEDOUT, "%s did not finish in %g s, and process %d did not end when "
			       "killed", what, ms / 1000.0, pid);
	return dm_fail(-ETIMEDOUT, "%s did not finish in %g s (killed)", what, ms / 1000.0);
}
