/* SPDX-License-Identifier: MIT */
#include "base/util.h"
#include "base/log.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <sys/syscall.h>
#include <sys/resource.h>

static void oom(void)
{
	static const char msg[] = "dmigrate: out of memory\n";
	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		oom();
	return p;
}

void *xmap(size_t len, size_t touch)
{
	void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		oom();
	touch = MIN(touch, len);
	if (touch && madvise(p, touch, MADV_POPULATE_WRITE) < 0)
		memset(p, 0, touch); /* before Linux 5.14: the same faults, one by one */
	return p;
}

void xunmap(void *p, size_t len)
{
	if (p)
		munmap(p, len ? len : 1);
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		oom();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	return s;
}

int read_full_fd_hint(int fd, size_t hint, size_t max, char **ret_buf, size_t *ret_len)
{
	size_t cap = hint < 4096 ? 4096 : hint, len = 0;

	cap = MIN(cap, max);
	_cleanup_free_ char *buf = xmalloc(cap + 1);

	for (;;) {
		if (len == cap) {
			/* a file of exactly max bytes is fine: only fail if more follows */
			if (cap >= max) {
				char c;
				ssize_t n = read(fd, &c, 1);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0)
					return neg_errno();
				if (n == 0)
					break;
				return -EFBIG;
			}
			cap = cap > max / 2 ? max : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*ret_buf = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

int read_full_fd(int fd, size_t max, char **ret_buf, size_t *ret_len)
{
	return read_full_fd_hint(fd, 4096, max, ret_buf, ret_len);
}

int read_full_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	return read_full_fd(fd, max, ret_buf, ret_len);
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		p += n;
		len -= n;
	}
	return 0;
}

int read_exact(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= n;
	}
	return 0;
}

int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

int pread_exact(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

bool env_off(const char *name)
{
	const char *e = getenv(name);
	return e && strcmp(e, "0") == 0;
}

bool buf_is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t acc = 0;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		acc |= w;
	}
	for (; i < len; i++)
		acc |= b[i];
	return acc == 0;
}

size_t buf_next_data(const void *buf, size_t n, size_t from, size_t line, size_t gap, size_t *ret_end)
{
	const uint8_t *b = buf;
	size_t a = from;
	while (a < n && buf_is_zero(b + a, MIN(line, n - a)))
		a += MIN(line, n - a);
	if (a >= n)
		return n;
	size_t e = a, zeros = 0;
	while (e < n && zeros < gap) {
		size_t l = MIN(line, n - e);
		zeros = buf_is_zero(b + e, l) ? zeros + l : 0;
		e += l;
	}
	*ret_end = e - zeros;
	return a;
}

int parse_long(const char *s, long *ret)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_ulong(const char *s, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = xstrdup(path);

	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return neg_errno();
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return neg_errno();
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path)
{
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return neg_errno();
	return 0;
}

int thread_nice_get(void)
{
	errno = 0;
	int n = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	return n == -1 && errno ? 0 : n;
}

int push_nice_step(void)
{
	const char *e = getenv("DMIGRATE_PUSH_NICE");
	return e ? MAX(atoi(e), 0) : PUSH_NICE_STEP;
}

static __thread bool bg_on;
static __thread int bg_base, bg_nice;

void thread_background(void)
{
	int step = push_nice_step();
	if (!step || bg_on)
		return;
	bg_base = thread_nice_get();
	int nice = MAX(bg_base + step, step);
	bg_nice = MIN(nice, 19);
	bg_on = true;
	thread_nice(bg_nice);
}

void thread_foreground_section(bool enter)
{
	if (bg_on && bg_nice != bg_base)
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), enter ? bg_base : bg_nice);
}

int thread_nice(int nice)
{
	int was = thread_nice_get();
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
	return was;
}

/* struct sched_attr of sched_setattr(2) (glibc has no wrapper) */
struct dm_sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

int thread_slice(int nice, uint64_t slice_ns)
{
	struct dm_sched_attr a = { .size = sizeof(a), .sched_policy = SCHED_OTHER, .sched_nice = nice,
				   .sched_runtime = slice_ns };
	return syscall(SYS_sched_setattr, 0, &a, 0) < 0 ? neg_errno() : 0;
}

int cpu_pin_here(cpu_set_t *orig)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof(*orig), orig) < 0 || CPU_COUNT(orig) < 2)
		return -1;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof(one), &one) == 0 ? cpu : -1;
}
