/* SPDX-License-Identifier: MIT */
/*
 * The real CPU and memory sensors of the pool.
 *
 * CPU: idle share of the host from /proc/stat deltas.  /proc/stat counts in
 * USER_HZ ticks (10 ms on every arch we run on), so a window with less than
 * one tick per CPU says nothing and the sensor answers -EAGAIN, keeping the
 * window open.  When this process's cgroup (or an ancestor) has a cgroup v2
 * cpu.max quota, the unused part of the quota, from cpu.stat usage_usec, caps
 * the answer: a container limited to 2 CPUs has no room once it burns 2,
 * however idle the host.
 *
 * Memory: MemAvailable / MemTotal, capped by every cgroup v2 memory.max on the
 * way to the root as (max - (current - inactive_file)) / max: inactive page
 * cache is reclaimed before the limit bites, as the kernel's own working set
 * accounting assumes.
 *
 * cgroup v1 limits are not read.
 */
#define LOG_PREFIX "pool-sensors: "
#include "pool/pool.h"
#include "pool/sensors.h"
#include "base/clock.h"
#include "base/log.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define CG_LEVELS_MAX 16
#define SMALL_FILE_MAX ((size_t)64 * 1024)

struct cg_cpu_limit {
	char *dir;
	double quota_cpus;
	uint64_t prev_usage_us, prev_ns;
	bool have_prev;
};

struct proc_sensors {
	struct pool_sensors ops; /* first: the handle we give out points here */
	unsigned ncpus;
	uint64_t prev_idle, prev_total;
	uint64_t prev_self;      /* our utime + stime at the window's start */
	bool have_self, credit_self;
	struct cg_cpu_limit cpu[CG_LEVELS_MAX];
	unsigned n_cpu;
	char *mem[CG_LEVELS_MAX];
	unsigned n_mem;
};

static double clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

int pool_parse_proc_stat(const char *buf, uint64_t *ret_idle, uint64_t *ret_total)
{
	unsigned long long f[8] = { 0 };
	uint64_t total = 0;

	/* user nice system idle iowait irq softirq steal; guest is inside user. */
	int n = sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2],
		       &f[3], &f[4], &f[5], &f[6], &f[7]);
	if (n < 4)
		return -EBADMSG;
	for (int i = 0; i < n; i++)
		total += f[i];
	*ret_idle = f[3] + f[4];
	*ret_total = total;
	return 0;
}

int pool_parse_key_u64(const char *buf, const char *key, uint64_t *ret)
{
	size_t klen = strlen(key);

	for (const char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, klen) != 0 || (l[klen] != ':' && l[klen] != ' ' && l[klen] != '\t'))
			continue;
		const char *v = l + klen + (l[klen] == ':');
		char *end;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v < '0' || *v > '9')
			return -EBADMSG;
		errno = 0;
		unsigned long long x = strtoull(v, &end, 10);
		if (errno || (*end != '\0' && *end != '\n' && *end != ' '))
			return -EBADMSG;
		*ret = x;
		return 0;
	}
	return -ENOENT;
}

static bool is_max(const char *buf)
{
	return strncmp(buf, "max", 3) == 0 && (buf[3] == '\0' || buf[3] == '\n' || buf[3] == ' ');
}

int pool_parse_cpu_max(const char *buf, double *ret_cpus)
{
	unsigned long long quota, period;

	if (is_max(buf))
		return -ENODATA;
	if (sscanf(buf, "%llu %llu", &quota, &period) != 2 || period == 0)
		return -EBADMSG;
	*ret_cpus = (double)quota / (double)period;
	return 0;
}

int pool_parse_memory_max(const char *buf, uint64_t *ret_bytes)
{
	unsigned long long x;
	char *end;

	if (is_max(buf))
		return -ENODATA;
	if (*buf < '0' || *buf > '9')
		return -EBADMSG;
	errno = 0;
	x = strtoull(buf, &end, 10);
	if (errno || (*end != '\0' && *end != '\n'))
		return -EBADMSG;
	*ret_bytes = x;
	return 0;
}

int pool_parse_cgroup2_path(const char *buf, char **ret_path)
{
	for (const char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, "0::/", 4) != 0)
			continue;
		const char *end = strchrnul(l, '\n');
		*ret_path = strndup(l + 3, end - (l + 3));
		return *ret_path ? 0 : -ENOMEM;
	}
	return -ENOENT;
}

/* Read a small file under dir; files in /proc and cgroupfs are a few KB. */
static int read_at(const char *dir, const char *name, char **ret_buf)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	return read_full_file(path, SMALL_FILE_MAX, ret_buf, NULL);
}

static int read_proc_stat(uint64_t *ret_idle, uint64_t *ret_total)
{
	/* Only the first line: the whole file is large on big hosts. */
	_cleanup_close_ int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
	char buf[512];
	ssize_t n;

	if (fd < 0)
		return neg_errno();
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return neg_errno();
	buf[n] = '\0';
	return pool_parse_proc_stat(buf, ret_idle, ret_total);
}

/* our process's utime + stime, in the ticks /proc/stat counts */
static int read_self_ticks(uint64_t *ret)
{
	struct proc_stat st;
	int r = proc_read_stat(getpid(), 0, &st);
	if (r < 0)
		return r;
	*ret = st.utime + st.stime;
	return 0;
}

static void proc_credit_self(void *ctx, bool on)
{
	struct proc_sensors *s = ctx;
	s->credit_self = on;
}

static int read_cg_cpu_usage(const char *dir, uint64_t *ret_us)
{
	_cleanup_free_ char *buf = NULL;
	int r = read_at(dir, "cpu.stat", &buf);
	return r < 0 ? r : pool_parse_key_u64(buf, "usage_usec", ret_us);
}

static int proc_cpu_idle(void *ctx, double *ret_idle)
{
	struct proc_sensors *s = ctx;
	uint64_t idle = 0, total = 0, didle, dtotal, now;
	double idle_cpus;
	int r;

	r = read_proc_stat(&idle, &total);
	if (r < 0)
		return r;
	if (total < s->prev_total + s->ncpus)
		return -EAGAIN;
	/* iowait may go backwards (it is an estimate): never a negative idle. */
	didle = idle > s->prev_idle ? idle - s->prev_idle : 0;
	dtotal = total - s->prev_total;
	/* our own time in the window, spare where the caller says it ends
	 * when the pool's work begins (pool_opts.credit_own_first) */
	uint64_t self = 0;
	bool have_self = read_self_ticks(&self) >= 0;
	if (s->credit_self && have_self && s->have_self && self > s->prev_self)
		didle += self - s->prev_self;
	s->prev_self = self;
	s->have_self = have_self;
	idle_cpus = (double)MIN(didle, dtotal) / (double)dtotal * s->ncpus;
	s->prev_idle = idle;
	s->prev_total = total;

	now = clock_ns();
	for (unsigned i = 0; i < s->n_cpu; i++) {
		struct cg_cpu_limit *c = &s->cpu[i];
		uint64_t usage;

		if (read_cg_cpu_usage(c->dir, &usage) < 0)
			continue;
		if (c->have_prev && now > c->prev_ns && usage >= c->prev_usage_us) {
			double used = (double)(usage - c->prev_usage_us) * 1000.0 / (double)(now - c->prev_ns);
			idle_cpus = MIN(idle_cpus, c->quota_cpus - used);
		}
		c->prev_usage_us = usage;
		c->prev_ns = now;
		c->have_prev = true;
	}
	*ret_idle = clamp01(idle_cpus / s->ncpus);
	return 0;
}

static int proc_mem_avail(void *ctx, double *ret_avail)
{
	struct proc_sensors *s = ctx;
	_cleanup_free_ char *meminfo = NULL;
	uint64_t total, avail;
	double frac;
	int r;

	r = read_full_file("/proc/meminfo", SMALL_FILE_MAX, &meminfo, NULL);
	if (r < 0)
		return r;
	r = pool_parse_key_u64(meminfo, "MemTotal", &total);
	if (r >= 0)
		r = pool_parse_key_u64(meminfo, "MemAvailable", &avail);
	if (r < 0)
		return r;
	if (total == 0)
		return -EBADMSG;
	frac = (double)MIN(avail, total) / (double)total;

	for (unsigned i = 0; i < s->n_mem; i++) {
		_cleanup_free_ char *bmax = NULL, *bcur = NULL, *bstat = NULL;
		uint64_t max, cur, inactive = 0;

		if (read_at(s->mem[i], "memory.max", &bmax) < 0 || pool_parse_memory_max(bmax, &max) < 0 ||
		    max == 0 || read_at(s->mem[i], "memory.current", &bcur) < 0 ||
		    pool_parse_memory_max(bcur, &cur) < 0)
			continue;
		if (read_at(s->mem[i], "memory.stat", &bstat) >= 0)
			(void)pool_parse_key_u64(bstat, "inactive_file", &inactive);
		cur -= MIN(inactive, cur);
		frac = MIN(frac, cur >= max ? 0.0 : (double)(max - cur) / (double)max);
	}
	*ret_avail = clamp01(frac);
	return 0;
}

/*
 * Our cgroup v2 directory.  With a cgroup namespace, or with the container's
 * own cgroup mounted on /sys/fs/cgroup, the path in /proc/self/cgroup does not
 * exist under the mount: then the mount root is our cgroup.
 */
static void find_cgroup2(char **ret_dir, size_t *ret_root_len)
{
	static const char *const mounts[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	_cleanup_free_ char *buf = NULL, *path = NULL;

	*ret_dir = NULL;
	if (read_full_file("/proc/self/cgroup", SMALL_FILE_MAX, &buf, NULL) < 0 ||
	    pool_parse_cgroup2_path(buf, &path) < 0)
		return;
	/* A path outside our view ("/../x": another cgroup namespace) means the mount root. */
	for (int pass = strstr(path, "/..") ? 1 : 0; pass < 2; pass++) {
		for (size_t i = 0; i < ARRAY_SIZE(mounts); i++) {
			_cleanup_free_ char *dir = xasprintf("%s%s", mounts[i], pass ? "" : path);
			_cleanup_free_ char *probe = xasprintf("%s/cgroup.controllers", dir);
			if (access(probe, F_OK) == 0) {
				/* "/sys/fs/cgroup/" for path "/": drop the trailing slash. */
				size_t len = strlen(dir);
				if (len > strlen(mounts[i]) && dir[len - 1] == '/')
					dir[len - 1] = '\0';
				*ret_root_len = strlen(mounts[i]);
				*ret_dir = TAKE_PTR(dir);
				return;
			}
		}
	}
}

/* Collect the cpu.max and memory.max limits from our cgroup up to the mount root. */
static void find_cgroup_limits(struct proc_sensors *s)
{
	_cleanup_free_ char *dir = NULL;
	size_t root_len = 0;

	find_cgroup2(&dir, &root_len);
	if (!dir)
		return;
	for (;;) {
		_cleanup_free_ char *cpu_max = NULL, *mem_max = NULL;
		double cpus;
		uint64_t bytes;

		if (s->n_cpu < CG_LEVELS_MAX && read_at(dir, "cpu.max", &cpu_max) >= 0 &&
		    pool_parse_cpu_max(cpu_max, &cpus) >= 0 && cpus > 0) {
			struct cg_cpu_limit *c = &s->cpu[s->n_cpu++];
			c->dir = xstrdup(dir);
			c->quota_cpus = cpus;
			c->prev_ns = clock_ns();
			c->have_prev = read_cg_cpu_usage(dir, &c->prev_usage_us) >= 0;
			pr_debug("%s: cpu quota %.2f CPUs", dir, cpus);
		}
		if (s->n_mem < CG_LEVELS_MAX && read_at(dir, "memory.max", &mem_max) >= 0 &&
		    pool_parse_memory_max(mem_max, &bytes) >= 0) {
			s->mem[s->n_mem++] = xstrdup(dir);
			pr_debug("%s: memory limit %" PRIu64 " bytes", dir, bytes);
		}
		char *slash = strrchr(dir, '/');
		if (strlen(dir) <= root_len || !slash || (size_t)(slash - dir) < root_len)
			break;
		*slash = '\0';
	}
}

int pool_proc_sensors_new(struct pool_sensors **ret_sensors)
{
	struct proc_sensors *s = xcalloc(1, sizeof(*s));
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	int r;

	s->ops = (struct pool_sensors){ .cpu_idle = proc_cpu_idle, .mem_avail = proc_mem_avail,
					.credit_self = proc_credit_self, .ctx = s };
	s->ncpus = n > 0 ? (unsigned)n : 1;
	/* The first window starts now. */
	r = read_proc_stat(&s->prev_idle, &s->prev_total);
	if (r < 0) {
		free(s);
		return r;
	}
	s->have_self = read_self_ticks(&s->prev_self) >= 0;
	find_cgroup_limits(s);
	*ret_sensors = &s->ops;
	return 0;
}

void pool_proc_sensors_free(struct pool_sensors *ops)
{
	struct proc_sensors *s = (struct proc_sensors *)ops;

	if (!s)
		return;
	for (unsigned i = 0; i < s->n_cpu; i++)
		free(s->cpu[i].dir);
	for (unsigned i = 0; i < s->n_mem; i++)
		free(s->mem[i]);
	free(s);
}
