/* SPDX-License-Identifier: MIT */
#include "base/util.h"
#include "base/log.h"
#include "base/clock.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>

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

/*
 * Read fd to its end into *buf (*cap + 1 bytes, *len used), growing it with
 * grow (to ncap + 1 bytes; NULL: no memory) up to max: a file of exactly max
 * bytes is fine, -EFBIG only if more follows.  No allocation of its own: the
 * helper of read_full_fd_aside() runs it.
 */
static int read_fd_into(int fd, size_t max, char **buf, size_t *cap, size_t *len,
			char *(*grow)(char *buf, size_t cap, size_t ncap))
{
	for (;;) {
		if (*len == *cap) {
			if (*cap >= max) {
				char c;
				ssize_t n = read(fd, &c, 1);
				if (n < 0 && errno == EINTR)
					continue;
				return n < 0 ? neg_errno() : n > 0 ? -EFBIG : 0;
			}
			size_t ncap = *cap > max / 2 ? max : *cap * 2;
			char *b = grow(*buf, *cap, ncap);
			if (!b)
				return -ENOMEM;
			*buf = b;
			*cap = ncap;
		}
		ssize_t n = read(fd, *buf + *len, *cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? neg_errno() : 0;
		*len += (size_t)n;
	}
}

static char *grow_heap(char *buf, size_t cap, size_t ncap)
{
	(void)cap;
	return xrealloc(buf, ncap + 1);
}

static char *grow_mapped(char *buf, size_t cap, size_t ncap)
{
	void *m = mremap(buf, cap + 1, ncap + 1, MREMAP_MAYMOVE);
	return m == MAP_FAILED ? NULL : m;
}

struct aside_read {
	int fd, err;
	char *buf;
	size_t cap, len, max;
};

/* The child of read_full_fd_aside(): our memory, its own session; no malloc,
 * no lock (another thread of ours may hold one). */
static int aside_main(void *arg)
{
	struct aside_read *a = arg;
	if (setsid() >= 0) {
		int g = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
		if (g >= 0) {
			if (write(g, "19", 2) < 0) {
				/* no autogroups here (the cgroup weighs): the policy below */
			}
			close(g);
		}
	}
	struct sched_param sp = { 0 };
	sched_setscheduler(0, SCHED_IDLE, &sp);
	a->err = read_fd_into(a->fd, a->max, &a->buf, &a->cap, &a->len, grow_mapped);
	return 0;
}

int read_full_fd_aside(int fd, size_t hint, size_t max, char **ret_buf, size_t *ret_len)
{
	/* a guard page below the stack: an overflow faults, never writes ours */
	const size_t guard = 4096, stack_size = 64 << 10;
	struct aside_read a = { .fd = fd, .max = max, .err = -ECHILD };
	size_t first = MAX(hint, (size_t)4096);
	a.cap = MIN(first, max);
	a.buf = mmap(NULL, a.cap + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *stack = mmap(NULL, guard + stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
			   -1, 0);
	pid_t pid = -1;
	if (a.buf != MAP_FAILED && stack != MAP_FAILED && mprotect(stack, guard, PROT_NONE) == 0) {
		/* no signal handler of ours may run in the helper (our memory,
		 * the waiting thread's TLS): all blocked across the clone, the
		 * helper keeps the mask */
		sigset_t all, was;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &was);
		/* no exit signal: the process's own SIGCHLD handling never sees it */
		pid = clone(aside_main, stack + guard + stack_size, CLONE_VM | CLONE_VFORK, &a);
		pthread_sigmask(SIG_SETMASK, &was, NULL);
	}
	int r = 0;
	if (pid > 0) {
		int st = 0;
		while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
			;
		/* killed half-way: what it read is not the file */
		r = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? a.err : -ECHILD;
	}
	if (stack != MAP_FAILED)
		munmap(stack, guard + stack_size);
	if (pid <= 0) {
		/* no helper (refused, no memory): read it here */
		if (a.buf != MAP_FAILED)
			munmap(a.buf, a.cap + 1);
		return read_full_fd_hint(fd, hint, max, ret_buf, ret_len);
	}
	if (r >= 0) {
		char *b = xmalloc(a.len + 1);
		memcpy(b, a.buf, a.len);
		b[a.len] = 0;
		*ret_buf = b;
		if (ret_len)
			*ret_len = a.len;
	}
	munmap(a.buf, a.cap + 1);
	return r;
}

int read_full_fd_hint(int fd, size_t hint, size_t max, char **ret_buf, size_t *ret_len)
{
	size_t first = MAX(hint, (size_t)4096), cap = MIN(first, max), len = 0;
	_cleanup_free_ char *buf = xmalloc(cap + 1);
	int r = read_fd_into(fd, max, &buf, &cap, &len, grow_heap);
	if (r < 0)
		return r;
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
/* walk sections entered and not left (below) */
static __thread unsigned walk_depth, walk_over;
static __thread int bg_base, bg_nice;

void thread_background(void)
{
	int step = push_nice_step();
	if (bg_on)
		return;
	bg_base = thread_nice_get();
	int nice = step ? MAX(bg_base + step, step) : bg_base;
	bg_nice = MIN(nice, 19);
	bg_on = true; /* and it pauses (thread_background_breathe()), nice step or not */
	if (bg_nice != bg_base)
		thread_nice(bg_nice);
}

void thread_foreground_section(bool enter)
{
	if (bg_on && bg_nice != bg_base)
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), enter ? bg_base : bg_nice);
}

/* DMIGRATE_BG_RUN_US (0: never) */
static long bg_run_us(void)
{
	static _Atomic long v = -1;
	long r = atomic_load(&v);
	if (r < 0) {
		const char *e = getenv("DMIGRATE_BG_RUN_US");
		r = e && *e ? MAX(atol(e), 0L) : BG_RUN_US;
		atomic_store(&v, r);
	}
	return r;
}

static __thread uint64_t breath_ns;
static __thread long breath_nvcsw = -1;

void thread_background_breathe(void)
{
	long run = bg_run_us();
	if ((!bg_on && !walk_depth) || !run)
		return;
	struct rusage ru;
	uint64_t now = clock_ns();
	if (getrusage(RUSAGE_THREAD, &ru) < 0)
		return;
	/* asleep since the last look (waiting for the socket, a lock): the
	 * run starts again */
	if (ru.ru_nvcsw != breath_nvcsw) {
		breath_nvcsw = ru.ru_nvcsw;
		breath_ns = now;
		return;
	}
	if (now - breath_ns < (uint64_t)run * 1000)
		return;
	struct timespec ts = { 0, BG_PAUSE_US * 1000L };
	nanosleep(&ts, NULL);
	if (getrusage(RUSAGE_THREAD, &ru) == 0)
		breath_nvcsw = ru.ru_nvcsw;
	breath_ns = clock_ns();
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

#ifndef SCHED_FLAG_RESET_ON_FORK
#define SCHED_FLAG_RESET_ON_FORK 0x01
#endif

static __thread bool slice_custom;

/*
 * The walk sections nest: each enter pushes what it changes, each leave
 * gives back what its own enter took (a walk after the commit inside a
 * section before it comes back to the outer one's nice, not to the
 * thread's first state).  Deeper than WALK_DEPTH: counted, nothing changed.
 */
#define WALK_DEPTH 4
struct walk_frame {
	bool idle;    /* SCHED_IDLE set; was: the attributes before */
	bool aside;   /* thread_walk_section(): smaps read aside */
	int nice;     /* !idle: the nice before */
	struct dm_sched_attr was;
};
static __thread struct walk_frame walk_stack[WALK_DEPTH];

bool thread_walk_aside(void)
{
	return walk_depth && walk_stack[walk_depth - 1].aside;
}

static struct walk_frame *walk_push(void)
{
	if (walk_depth == WALK_DEPTH) {
		walk_over++;
		return NULL;
	}
	struct walk_frame *f = &walk_stack[walk_depth++];
	*f = (struct walk_frame){ 0 };
	return f;
}

static void walk_restore(struct walk_frame *f)
{
	if (!f->idle) {
		thread_nice(f->nice);
		return;
	}
	/* as it was: its policy, nice and slice; of the flags only the one a
	 * thread may set alone (the others need their own fields).  The slice
	 * read back is the default one where none was set (Linux 6.12 on):
	 * given back, it would become a custom one */
	f->was.size = sizeof(f->was);
	f->was.sched_flags &= SCHED_FLAG_RESET_ON_FORK;
	if (!slice_custom)
		f->was.sched_runtime = 0;
	if (syscall(SYS_sched_setattr, 0, &f->was, 0) < 0) {
		/* SCHED_OTHER at the nice it had, at least */
		struct sched_param sp = { 0 };
		sched_setscheduler(0, SCHED_OTHER, &sp);
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), f->was.sched_nice);
	}
}

static void walk_pop(void)
{
	if (walk_over) {
		walk_over--;
		return;
	}
	if (!walk_depth)
		return; /* a leave without its enter */
	walk_restore(&walk_stack[--walk_depth]);
}

void thread_prep_walk_section(bool enter)
{
	if (!enter) {
		walk_pop();
		return;
	}
	struct walk_frame *f = walk_push();
	if (f)
		f->nice = thread_nice(PREP_WALK_NICE);
}

void thread_walk_section(bool enter)
{
	if (!enter) {
		walk_pop();
		return;
	}
	struct walk_frame *f = walk_push();
	if (!f)
		return;
	struct dm_sched_attr idle = { .size = sizeof(idle), .sched_policy = SCHED_IDLE };
	f->aside = true;
	f->idle = syscall(SYS_sched_getattr, 0, &f->was, sizeof(f->was), 0) == 0 &&
		  syscall(SYS_sched_setattr, 0, &idle, 0) == 0;
	if (!f->idle)
		f->nice = thread_nice(PREP_WALK_NICE);
}

int thread_slice(int nice, uint64_t slice_ns)
{
	struct dm_sched_attr a = { .size = sizeof(a), .sched_policy = SCHED_OTHER, .sched_nice = nice,
				   .sched_runtime = slice_ns };
	if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
		return neg_errno();
	slice_custom = slice_ns != 0;
	return 0;
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
