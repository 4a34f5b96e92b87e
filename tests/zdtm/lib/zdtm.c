// SPDX-License-Identifier: MIT
/* zdtm: shared helpers of the feature tests. Plain libc only. */
#include "zdtm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *test_arg;

static const char *out_path;	/* --out FILE, absolute */
static char out_dir[PATH_MAX];
static const char *out_base;
static pid_t root_pid;		/* getpid() at test_init: the test's root process */

/*
 * SIGTERM may land on any thread that does not block it, so the handler
 * sets a flag and wakes the futex the waiter sleeps on: the waiter does not
 * need to be the thread that took the signal.
 */
static atomic_int stop_flag;

static void sigterm_handler(int sig)
{
	(void)sig;
	int saved = errno;

	atomic_store(&stop_flag, 1);
	syscall(SYS_futex, &stop_flag, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	errno = saved;
}

static void usage(const char *prog)
{
	dprintf(2, "usage: %s --out /abs/result/file [--arg STR]\n", prog);
	_exit(2);
}

void test_init(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out_path = argv[++i];
		else if (!strcmp(argv[i], "--arg") && i + 1 < argc)
			test_arg = argv[++i];
		else
			usage(argv[0]);
	}
	if (out_path) {
		if (out_path[0] != '/')
			usage(argv[0]);
		const char *slash = strrchr(out_path, '/');
		size_t n = (size_t)(slash - out_path);

		if (n == 0)
			n = 1;	/* "/file" lives in "/" */
		if (n >= sizeof(out_dir))
			usage(argv[0]);
		memcpy(out_dir, out_path, n);
		out_dir[n] = '\0';
		out_base = slash + 1;
	} else {
		strcpy(out_dir, "/tmp");
		out_base = "zdtm";
	}
	root_pid = getpid();

	struct sigaction sa = { .sa_handler = sigterm_handler, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		fail_errno("sigaction(SIGTERM)");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* Write text to path through a temporary file. link() keeps the first verdict. */
static int publish(const char *path, const char *text, bool first_wins)
{
	char tmp[PATH_MAX + 64];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%ld", path, getpid(), (long)syscall(SYS_gettid));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (test_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
		int err = -errno;

		close(fd);
		unlink(tmp);
		return err;
	}
	close(fd);
	if (first_wins) {
		int r = link(tmp, path) ? -errno : 0;

		unlink(tmp);
		return r == -EEXIST ? 0 : r;
	}
	if (rename(tmp, path)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

static void verdict(const char *text)
{
	if (!out_path) {
		dprintf(1, "%s", text);
		return;
	}
	int r = publish(out_path, text, true);

	if (r < 0)
		dprintf(2, "zdtm: cannot write %s: %s\n", out_path, strerror(-r));
}

void test_ready(void)
{
	char self[32] = "", text[64], path[PATH_MAX + 16];
	ssize_t n;

	/*
	 * /proc is the runner's mount, so /proc/self names our pid as the
	 * runner sees it, also when we are pid 1 of our own PID namespace.
	 */
	n = readlink("/proc/self", self, sizeof(self) - 1);
	if (n <= 0)
		fail_errno("readlink(/proc/self)");
	self[n] = '\0';
	snprintf(text, sizeof(text), "READY %s\n", self);
	if (!out_path) {
		dprintf(1, "%s", text);
		return;
	}
	snprintf(path, sizeof(path), "%s.ready", out_path);
	int r = publish(path, text, false);

	if (r < 0) {
		errno = -r;
		fail_errno("write %s", path);
	}
	test_msg("ready");
}

bool test_stopped(void)
{
	return atomic_load(&stop_flag) != 0;
}

void test_wait_check(void)
{
	while (!atomic_load(&stop_flag))
		syscall(SYS_futex, &stop_flag, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

void pass(void)
{
	verdict("PASS\n");
	test_msg("PASS");
	fflush(NULL);
	_exit(0);
}

void fail(const char *fmt, ...)
{
	char msg[1024], text[1100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line: the runner prints it after the test's name. */
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	snprintf(text, sizeof(text), "FAIL: %s\n", msg);
	verdict(text);
	test_msg("FAIL: %s", msg);
	fflush(NULL);
	/*
	 * A failing root takes its process group down with it, so that no
	 * child is left behind waiting for a parent that is gone. (In a PID
	 * namespace the kernel does it anyway when pid 1 exits.)
	 */
	if (getpid() == root_pid && getpgrp() == root_pid)
		kill(-root_pid, SIGKILL);
	_exit(1);
}

void test_msg(const char *fmt, ...)
{
	char buf[1200];
	struct timespec ts;
	va_list ap;
	int n;
	int saved = errno;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(buf, sizeof(buf), "%ld.%03ld [%d/%ld] ", (long)ts.tv_sec, ts.tv_nsec / 1000000,
		     getpid(), (long)syscall(SYS_gettid));
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* One write per line: the log is O_APPEND and shared by the whole tree. */
	if (write(2, buf, n) < 0) {
		/* nothing sensible to do */
	}
	errno = saved;
}

const char *test_path(const char *name)
{
	static char bufs[4][2 * PATH_MAX + 300];
	static atomic_int slot;
	char *b = bufs[atomic_fetch_add(&slot, 1) & 3];

	snprintf(b, sizeof(bufs[0]), "%s/%s.%s", out_dir, name, out_base);
	return b;
}

uint64_t test_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void test_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

bool test_poll(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	uint64_t end = test_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		if (cond(arg))
			return true;
		if (test_now_ns() > end)
			return cond(arg);
		test_sleep_ms(1);
	}
}

ssize_t test_read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;

	if (fd < 0)
		return -errno;
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;

			close(fd);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return (ssize_t)len;
}

int test_status_field(const char *path, const char *key, char *buf, size_t size)
{
	char text[8192];
	size_t klen = strlen(key);
	ssize_t n = test_read_file(path, text, sizeof(text));

	if (n < 0)
		return (int)n;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			const char *v = line + klen + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(buf, size, "%s", v);
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

long test_pss_anon_kb(pid_t pid)
{
	char path[64], text[4096], *p;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/smaps_rollup");
	if (test_read_file(path, text, sizeof(text)) < 0)
		fail_errno("reading %s", path);
	p = strstr(text, "\nPss_Anon:");
	if (!p)
		fail("%s: no Pss_Anon line", path);
	return atol(p + strlen("\nPss_Anon:"));
}

int test_proc_children(pid_t *out, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int count = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[300], text[4096];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
		if (test_read_file(path, text, sizeof(text)) < 0)
			continue;
		for (char *p = text; *p;) {
			char *end;
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			if (count < max)
				out[count] = (pid_t)v;
			count++;
			p = end;
			while (*p == ' ' || *p == '\n')
				p++;
		}
	}
	closedir(d);
	return count;
}

void test_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = test_mix64(seed ^ (i * 0x9e3779b97f4a7c15ULL));
}

size_t test_check(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != test_mix64(seed ^ (i * 0x9e3779b97f4a7c15ULL)))
			return i * 8;
	return (size_t)-1;
}

int test_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int test_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void test_listener_accepts(int l, const struct sockaddr *a, unsigned al)
{
	char buf[2];
	int c = socket(a->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, a, al))
		fail_errno("connect to the restored listener");
	int x = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (x < 0 || test_write_all(c, "hi", 2) || test_read_all(x, buf, 2) || memcmp(buf, "hi", 2))
		fail("the restored listener's new connection does not work");
	close(x);
	close(c);
}

pid_t test_waitpid(pid_t pid, int *status, int options)
{
	pid_t r;

	do
		r = waitpid(pid, status, options);
	while (r < 0 && errno == EINTR);
	return r;
}

void test_reap_ok(pid_t pid, const char *what)
{
	int status;
	pid_t r = test_waitpid(pid, &status, 0);

	if (r < 0)
		fail_errno("waitpid(%s, pid %d)", what, pid);
	if (WIFSIGNALED(status))
		fail("%s (pid %d) killed by signal %d", what, r, WTERMSIG(status));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("%s (pid %d) exited with status %d", what, r, WEXITSTATUS(status));
}

pid_t test_proc_tid(void)
{
	char buf[64];
	ssize_t n = readlink("/proc/thread-self", buf, sizeof(buf) - 1);
	const char *p;

	if (n <= 0)
		fail_errno("readlink(/proc/thread-self)");
	buf[n] = '\0';
	p = strrchr(buf, '/');
	return (pid_t)atoi(p ? p + 1 : buf);
}

void test_barrier_init(int p[2])
{
	if (pipe2(p, O_CLOEXEC))
		fail_errno("pipe2(barrier)");
}

void test_barrier_done(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

void test_barrier_wait(int p[2])
{
	char c;
	ssize_t n;

	close(p[1]);
	p[1] = -1;
	do
		n = read(p[0], &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 0)
		fail("barrier: unexpected read result %zd", n);
	close(p[0]);
	p[0] = -1;
}

void test_stop_children(const pid_t *pids, int n, const char *what)
{
	for (int i = 0; i < n; i++)
		if (kill(pids[i], SIGTERM))
			fail_errno("kill(%s %d, SIGTERM)", what, pids[i]);
	for (int i = 0; i < n; i++)
		test_reap_ok(pids[i], what);
}

pid_t test_host_pid_of_child(pid_t nspid)
{
	pid_t host[256];
	int n = test_proc_children(host, 256);

	for (int i = 0; i < n && i < 256; i++) {
		char path[64], buf[256], *last;

		snprintf(path, sizeof(path), "/proc/%d/status", host[i]);
		if (test_status_field(path, "NSpid", buf, sizeof(buf)))
			continue;
		last = strrchr(buf, '\t');
		if (atoi(last ? last + 1 : buf) == nspid)
			return host[i];
	}
	return -1;
}

long test_task_syscall(pid_t host_pid, pid_t host_tid)
{
	char path[96], text[256];

	if (host_tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", host_pid, host_tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/syscall", host_pid);
	if (test_read_file(path, text, sizeof(text)) < 0 || !strncmp(text, "running", 7))
		return -1;
	return atol(text);
}
