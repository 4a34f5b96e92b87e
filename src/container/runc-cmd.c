/* SPDX-License-Identifier: MIT */
/*
 * The commands runc containers need (runc.h: ctr_run): a program run with
 * its output in memfds and a time limit, runc's own error line, and a
 * helper run in a namespace of a container's process.
 */
#define LOG_PREFIX "runc: "
#include "container/runc-internal.h"
#include "container/runc.h"
#include "base/child.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int memfd(const char *name)
{
	return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

static char *read_memfd(int fd)
{
	char *buf = NULL;
	size_t len = 0;

	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0 || read_full_fd(fd, 1 << 20, &buf, &len) < 0)
		return xstrdup("");
	/* one line for messages: runc's log lines end with newlines */
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = 0;
	return buf;
}

/*
 * What a command is called in a message: "runc delete ct1" for runc (its
 * command and the container), else the command line, cut short.
 */
static void cmd_name(const char *const argv[], char *buf, size_t len)
{
	size_t n = 0, k = 0;

	while (argv[n])
		n++;
	if (n >= 5 && !strcmp(argv[0], "runc") && !strcmp(argv[1], "--root")) {
		snprintf(buf, len, "runc %s %s", argv[3], argv[n - 1]);
		return;
	}
	buf[0] = 0;
	for (size_t i = 0; i < n && k + 1 < len; i++) {
		int w = snprintf(buf + k, len - k, "%s%s", i ? " " : "", argv[i]);
		if (w < 0 || (size_t)w >= len - k) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		k += (size_t)w;
	}
}

/*
 * Runs argv with stdin /dev/null, stdout and stderr into memfds (no pipe to
 * drain: a detached container keeps what it inherited).  extra: fds put at
 * 3, 4, ... in the child.  It leads a process group of its own, and may take
 * limit_ms (CHILD_WAIT_*): then the group is killed and -ETIMEDOUT comes
 * back, named ("runc delete ct1 did not finish in 30 s (killed)").
 * Returns the exit status (>= 0) or -errno (its message set).
 */
int ctr_run(const char *const argv[], const int *extra, size_t n_extra, int limit_ms, char **ret_out,
	    char **ret_err)
{
	return ctr_run_nicer(argv, extra, n_extra, limit_ms, 0, ret_out, ret_err);
}

int ctr_run_nicer(const char *const argv[], const int *extra, size_t n_extra, int limit_ms, int nice_inc,
		  char **ret_out, char **ret_err)
{
	_cleanup_close_ int out = memfd("runc-out"), err = memfd("runc-err");
	int st, nice = 0;

	if (out < 0 || err < 0)
		return dm_fail(neg_errno(), "memfd_create: %m");
	if (nice_inc)
		nice = MIN(thread_nice_get() + nice_inc, 19);
	pid_t pid = fork();
	if (pid < 0)
		return dm_fail(neg_errno(), "fork: %m");
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		int fds[8];
		/* above every target number first, then into place */
		for (size_t i = 0; i < n_extra && i < 8; i++)
			fds[i] = fcntl(extra[i], F_DUPFD, 64);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(127);
		for (size_t i = 0; i < n_extra && i < 8; i++)
			if (fds[i] < 0 || dup2(fds[i], 3 + (int)i) < 0)
				_exit(127);
		syscall(SYS_close_range, 3 + n_extra, ~0U, 0);
		/* its group is killed with it if it hangs (runc's hooks) */
		setpgid(0, 0);
		if (nice_inc)
			setpriority(PRIO_PROCESS, 0, nice);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	char name[160];
	cmd_name(argv, name, sizeof(name));
	int r = child_wait_limit(pid, limit_ms, &st, "%s", name);
	if (r < 0)
		return r;
	if (ret_out)
		*ret_out = read_memfd(out);
	if (ret_err)
		*ret_err = read_memfd(err);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* runc's error line: the msg="..." of its last log line, or all of it */
const char *runc_msg(char *err)
{
	char *m = strstr(err, "msg=\"");
	if (!m)
		return err;
	char *last = m;
	while ((m = strstr(last + 1, "msg=\"")))
		last = m;
	last += 5;
	char *end = strrchr(last, '"');
	if (end)
		*end = 0;
	return last;
}

/*
 * Runs fn in a child that entered the namespace nstype ("uts", "net", "ipc")
 * of pid; the child's stdout (fd 1) is returned in *ret_out.  fn returns the
 * exit code; it may exec.
 */
int runc_in_ns(pid_t pid, const char *nstype, int (*fn)(void *), void *arg, char **ret_out)
{
	char path[64];
	_cleanup_close_ int nsfd = -1, out = memfd("ns-out"), err = memfd("ns-err");
	int st;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, nstype);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	if (out < 0 || err < 0)
		return dm_fail(neg_errno(), "memfd_create: %m");
	pid_t c = fork();
	if (c < 0)
		return dm_fail(neg_errno(), "fork: %m");
	if (c == 0) {
		if (setns(nsfd, 0) < 0) {
			dprintf(err, "setns(%s): %s", path, strerror(errno));
			_exit(126);
		}
		if (dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		_exit(fn(arg));
	}
	int r = child_wait_limit(c, CHILD_WAIT_HELPER_MS, &st, "a helper in the %s namespace of process %d",
				 nstype, pid);
	if (r < 0)
		return r;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		_cleanup_free_ char *e = read_memfd(err);
		return dm_fail(-EIO, "in the %s namespace of process %d: %s", nstype, pid,
			       e[0] ? e : "failed");
	}
	if (ret_out)
		*ret_out = read_memfd(out);
	return 0;
}
