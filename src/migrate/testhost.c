/* SPDX-License-Identifier: MIT */
/*
 * Two test hosts on one machine: see testhost.h for the picture.
 *
 * Records: one file per object under TESTHOST_STATE_DIR/PREFIX/, written
 * right after the object exists, so that testhost_down() removes exactly
 * what was made even when testhost_up() failed half way:
 *   route        we added "unreachable 198.18.0.0/15" (it was not there)
 *   vardir       we created /var/lib/dmigrate (the tmpfs mount point)
 *   netns-a/-b   ip netns add
 *   init-a/-b    "PID STARTTIME" of the host's init (the start time guards
 *                against killing a recycled pid)
 *   route6       we added "unreachable 2001:db8:d1::/64" (the segment's v6)
 *   netns-c      ip netns add PREFIX-c (the client on the bridges' segment)
 *   runcdir      we created /run/runc (the mount point of each host's own)
 *   cgroups-a/-b the host's cgroups, one directory a line (under the caller's
 *                cgroup of each hierarchy), written before they are made
 *   runc-a/-b    the host's runc state root (its /run/runc), a directory
 * and, shared by all sets, TESTHOST_STATE_DIR/.pid_max: kernel.pid_max as it
 * was before the first set raised it (put back when the last set goes).
 * The veth pair lives in the two network namespaces and goes with them.
 */
#define LOG_PREFIX "testhost: "
#include "migrate/testhost.h"
#include "base/log.h"
#include "base/util.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define VARDIR "/var/lib/dmigrate"
#define TEST_NET "198.18.0.0/15"
#define TEST_NET6 TESTHOST_SEG6_NET
#define RUNC_DIR "/run/runc"
#define CGROUP_DIR "/sys/fs/cgroup"

static const char *const host_names[2] = { "a", "b" };
static const char *const host_addrs[2] = { "198.18.0.1", "198.18.0.2" };
static const char *const seg_addrs[3] = { TESTHOST_SEG_PREFIX "1", TESTHOST_SEG_PREFIX "2",
					  TESTHOST_SEG_PREFIX "3" };
static const char *const seg6_addrs[3] = { TESTHOST_SEG6_PREFIX "1", TESTHOST_SEG6_PREFIX "2",
					   TESTHOST_SEG6_PREFIX "3" };

const char *testhost_addr(int host)
{
	return host == 1 ? host_addrs[1] : host_addrs[0];
}

int testhost_parse(const char *name)
{
	if (!name)
		return -EINVAL;
	if (!strcmp(name, "a") || !strcmp(name, "A") || !strcmp(name, "0"))
		return 0;
	if (!strcmp(name, "b") || !strcmp(name, "B") || !strcmp(name, "1"))
		return 1;
	return -EINVAL;
}

static int check_prefix(const char *prefix)
{
	size_t n = strlen(prefix);
	if (n == 0 || n > 10)
		return dm_fail(-EINVAL, "test host prefix '%s': 1 to 10 characters", prefix);
	for (size_t i = 0; i < n; i++)
		if (!((prefix[i] >= 'a' && prefix[i] <= 'z') || (prefix[i] >= '0' && prefix[i] <= '9')))
			return dm_fail(-EINVAL, "test host prefix '%s': only a-z and 0-9", prefix);
	return 0;
}

static char *state_path(const char *prefix, const char *item)
{
	return item ? xasprintf(TESTHOST_STATE_DIR "/%s/%s", prefix, item)
		    : xasprintf(TESTHOST_STATE_DIR "/%s", prefix);
}

static int record(const char *prefix, const char *item, const char *content)
{
	_cleanup_free_ char *p = state_path(prefix, item);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return dm_fail(neg_errno(), "%s: %m", p);
	return write_all(fd, content, strlen(content));
}

static bool recorded(const char *prefix, const char *item)
{
	_cleanup_free_ char *p = state_path(prefix, item);
	return access(p, F_OK) == 0;
}

static void unrecord(const char *prefix, const char *item)
{
	_cleanup_free_ char *p = state_path(prefix, item);
	unlink(p);
}

/* Move fd to a number >= 3 that nothing else uses, so that dup2 onto 0-2 is safe. */
static void child_stdio(const char *out_path, bool keep)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out = -1;

	if (keep)
		return;
	if (out_path)
		out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (out < 0)
		out = null;
	dup2(null, 0);
	dup2(out, 1);
	dup2(out, 2);
}

/*
 * Run a command (iproute2) and wait.  Its stdout goes to /dev/null, its
 * stderr is kept for the error message.  The caller's stdio is not
 * inherited: ip/tc must not hold a pipe the caller reads.
 */
static int run_cmd_out(const char *const argv[], char *out, size_t outlen)
{
	int pfd[2];
	char err[512] = "";
	size_t n = 0;
	int st;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return neg_errno();
	pid_t pid = fork();
	if (pid < 0) {
		int r = neg_errno();
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(null, 0);
		dup2(out ? pfd[1] : null, 1);
		dup2(pfd[1], 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t k = read(pfd[0], err + n, sizeof(err) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += k;
		if (n == sizeof(err) - 1) {
			char sink[256];
			while (read(pfd[0], sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	close(pfd[0]);
	err[n] = 0;
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return neg_errno();
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		if (out)
			snprintf(out, outlen, "%s", err);
		return 0;
	}
	char cmd[256] = "";
	for (size_t i = 0; argv[i]; i++) {
		size_t l = strlen(cmd);
		snprintf(cmd + l, sizeof(cmd) - l, "%s%s", i ? " " : "", argv[i]);
	}
	return dm_fail(-EIO, "'%s' failed%s%s", cmd, err[0] ? ": " : "", err);
}

#define RUN(...) run_cmd_out((const char *const[]){ __VA_ARGS__, NULL }, NULL, 0)

static int read_starttime(pid_t pid, uint64_t *ret)
{
	struct proc_stat st;
	int r = proc_read_stat(pid, 0, &st);
	if (r < 0)
		return r;
	if (st.state == 'Z' || st.state == 'X')
		return -ESRCH;
	*ret = st.start_time;
	return 0;
}

int testhost_init_pid(const char *prefix, int host, pid_t *ret_pid)
{
	char item[16], *buf = NULL;
	long pid;
	unsigned long long start;
	uint64_t now;
	int r;

	if (!prefix)
		prefix = TESTHOST_PREFIX_DEFAULT;
	if (host < 0 || host > 1 || check_prefix(prefix) < 0)
		return -EINVAL;
	snprintf(item, sizeof(item), "init-%s", host_names[host]);
	_cleanup_free_ char *p = state_path(prefix, item);
	r = read_full_file(p, 256, &buf, NULL);
	if (r < 0)
		return r == -ENOENT ? dm_fail(-ENOENT, "test host %s-%s is not up", prefix, host_names[host]) : r;
	_cleanup_free_ char *b = buf;
	if (sscanf(b, "%ld %llu", &pid, &start) != 2 || pid <= 1 || pid > INT_MAX)
		return dm_fail(-EBADMSG, "%s: malformed", p);
	r = read_starttime(pid, &now);
	if (r < 0 || now != start)
		return dm_fail(-ESRCH, "test host %s-%s: its init %ld is gone", prefix, host_names[host], pid);
	*ret_pid = pid;
	return 0;
}

/* pid 1 of a test host: reap whatever is reparented to us, forever. */
_Noreturn static void init_loop(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		while (waitpid(-1, NULL, __WALL | WNOHANG) > 0)
			;
		siginfo_t si;
		sigwaitinfo(&set, &si);
	}
}

struct init_msg {
	char tag;      /* 'P': pid is the init; 'R': ready; 'E': error (err = -errno) */
	int32_t val;
	char what[48];
} __attribute__((packed));

static void init_send(int fd, char tag, int32_t val, const char *what)
{
	struct init_msg m = { .tag = tag, .val = val };
	snprintf(m.what, sizeof(m.what), "%s", what ? what : "");
	ssize_t w = write(fd, &m, sizeof(m));
	(void)w;
}

/*
 * Both hosts' pid counters run through [1, pid_max).  With the usual 32768,
 * a's pids (from 10000) reach b's (from 20000) after ten thousand processes,
 * and a pid that moves from a is then taken in b: the migration refuses it.
 * A large pid_max (which new pid namespaces inherit) gives each host a range
 * of its own.  Returns where b's pids start.
 */
#define TESTHOST_PID_MAX 4194304L
#define PID_MAX_PATH "/proc/sys/kernel/pid_max"
#define PID_MAX_ORIG TESTHOST_STATE_DIR "/.pid_max"

/* A number in a file of one line (-1: none) */
static long read_long(const char *path)
{
	_cleanup_free_ char *buf = NULL;
	long v;

	if (read_full_file(path, 64, &buf, NULL) < 0)
		return -1;
	buf[strcspn(buf, "\n")] = 0;
	return parse_long(buf, &v) < 0 ? -1 : v;
}

static int write_long(const char *path, long v, int flags)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", v);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		return neg_errno();
	return write_all(fd, buf, (size_t)n);
}

static long raise_pid_max(void)
{
	long cur = read_long(PID_MAX_PATH);
	if (cur > 0 && cur < TESTHOST_PID_MAX) {
		/* the first set to raise it keeps the old value (O_EXCL) */
		write_long(PID_MAX_ORIG, cur, O_CREAT | O_EXCL);
		if (write_long(PID_MAX_PATH, TESTHOST_PID_MAX, 0) == 0)
			cur = TESTHOST_PID_MAX;
		else
			pr_warn("cannot raise kernel.pid_max from %ld: the two hosts share pids 10000-%ld", cur, cur);
	}
	return cur >= TESTHOST_PID_MAX ? TESTHOST_PID_MAX / 2 : 20000;
}

static void restore_pid_max(void)
{
	long orig = read_long(PID_MAX_ORIG);
	if (orig > 0)
		write_long(PID_MAX_PATH, orig, 0);
	unlink(PID_MAX_ORIG);
}

/* ---- each host's cgroups --------------------------------------------------
 *
 * A host gets a cgroup of its own in every hierarchy the machine mounts
 * (testhost-PREFIX-a, below the caller's cgroup there), and a cgroup
 * namespace rooted in them: its init mounts the hierarchies again in its
 * mount namespace, so the host sees its cgroups as the roots of
 * /sys/fs/cgroup/..., and runc in host b cannot see (or touch) host a's
 * containers.  Every process that enters the host joins them first.
 */
#define TH_MAX_CG 16

struct host_cg {
	char mnt[128];      /* where the machine mounts the hierarchy */
	char fstype[16];    /* cgroup | cgroup2 */
	char opts[160];     /* options that mount the same hierarchy again */
	char dir[2][400];   /* host a's and b's cgroup in it */
};

/* v1 super options that are not the hierarchy's controllers or name */
static bool cg_option_is_flag(const char *t)
{
	static const char *const flags[] = { "rw", "ro", "xattr", "noprefix", "clone_children",
					     "cpuset_v2_mode", "favordynmods", "nsdelegate",
					     "memory_localevents", "memory_recursiveprot" };
	for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
		if (!strcmp(t, flags[i]))
			return true;
	return !strncmp(t, "release_agent=", 14);
}

/* the controllers (and name=) of a v1 mount's super options, comma-joined */
static void cg_controllers(const char *super, char *out, size_t n)
{
	char buf[256], *save = NULL;
	size_t k = 0;

	snprintf(buf, sizeof(buf), "%s", super ? super : "");
	out[0] = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (cg_option_is_flag(t))
			continue;
		int w = snprintf(out + k, n - k, "%s%s", k ? "," : "", t);
		if (w < 0 || (size_t)w >= n - k)
			break;
		k += (size_t)w;
	}
}

/* same comma-separated sets? */
static bool cg_same_set(const char *a, const char *b)
{
	char x[256], y[256], *sa = NULL, *sb = NULL;
	int na = 0, nb = 0;

	snprintf(y, sizeof(y), "%s", b);
	for (char *t = strtok_r(y, ",", &sb); t; t = strtok_r(NULL, ",", &sb))
		nb++;
	snprintf(x, sizeof(x), "%s", a);
	for (char *t = strtok_r(x, ",", &sa); t; t = strtok_r(NULL, ",", &sa)) {
		char pat[260];
		snprintf(pat, sizeof(pat), ",%s,", t);
		char whole[260];
		snprintf(whole, sizeof(whole), ",%s,", b);
		if (!strstr(whole, pat))
			return false;
		na++;
	}
	return na == nb;
}

/*
 * The machine's hierarchies and the caller's cgroup in each (from
 * /proc/self/cgroup), and each host's cgroup below it.  A hierarchy whose
 * mount does not show the caller's cgroup is left out.
 */
static int cg_discover(const char *prefix, struct host_cg *cgs, size_t *ncg)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list l = {};
	_cleanup_free_ char *self = NULL;
	char *save = NULL;
	int r;

	*ncg = 0;
	r = proc_read_mountinfo(getpid(), &l);
	if (r < 0)
		return dm_fail(r, "/proc/self/mountinfo: %s", strerror(-r));
	r = read_full_file("/proc/self/cgroup", 64 << 10, &self, NULL);
	if (r < 0)
		return dm_fail(r, "/proc/self/cgroup: %s", strerror(-r));
	for (char *line = strtok_r(self, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = 0;
		const char *ctrls = c1 + 1, *path = c2 + 1;
		bool v2 = !strcmp(line, "0") && !*ctrls;
		const struct proc_mount *found = NULL;
		char mine[256] = "";

		for (size_t i = 0; i < l.n && !found; i++) {
			const struct proc_mount *m = &l.mounts[i];
			if (v2 ? strcmp(m->fstype, "cgroup2") : strcmp(m->fstype, "cgroup"))
				continue;
			if (!v2) {
				cg_controllers(m->super_options, mine, sizeof(mine));
				if (!cg_same_set(ctrls, mine))
					continue;
			}
			found = m;
		}
		if (!found)
			continue;
		/* the caller's cgroup, relative to what the mount shows */
		size_t rl = strlen(found->root);
		const char *rel;
		if (!strcmp(found->root, "/"))
			rel = path;
		else if (!strncmp(path, found->root, rl) && (path[rl] == '/' || !path[rl]))
			rel = path + rl;
		else {
			pr_warn("cgroup hierarchy %s: the caller's cgroup %s is not under its mount %s: left out",
				found->mountpoint, path, found->mountpoint);
			continue;
		}
		if (*ncg == TH_MAX_CG)
			return dm_fail(-E2BIG, "more than %d cgroup hierarchies", TH_MAX_CG);
		struct host_cg *cg = &cgs[*ncg];
		memset(cg, 0, sizeof(*cg));
		snprintf(cg->mnt, sizeof(cg->mnt), "%s", found->mountpoint);
		snprintf(cg->fstype, sizeof(cg->fstype), "%s", found->fstype);
		if (!v2) {
			/* only a name: "none" keeps the kernel from adding every controller */
			bool named_only = !strncmp(mine, "name=", 5) && !strchr(mine, ',');
			snprintf(cg->opts, sizeof(cg->opts), "%s%s", named_only ? "none," : "", mine);
		}
		size_t relen = strlen(rel);
		const char *sep = relen && rel[relen - 1] == '/' ? "" : "/";
		for (int h = 0; h < 2; h++) {
			int w = snprintf(cg->dir[h], sizeof(cg->dir[h]), "%s%s%stesthost-%s-%s", found->mountpoint,
					 rel, sep, prefix, host_names[h]);
			if (w < 0 || (size_t)w >= sizeof(cg->dir[h]))
				return dm_fail(-ENAMETOOLONG, "cgroup path under %s%s too long", found->mountpoint, rel);
		}
		(*ncg)++;
	}
	return 0;
}

/* cpuset: a new v1 cgroup has no cpus nor mems: the parent's */
static void cg_cpuset_inherit(const char *dir)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	_cleanup_free_ char *parent = xstrdup(dir);
	char *slash = strrchr(parent, '/');

	if (!slash)
		return;
	*slash = 0;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *src = xasprintf("%s/%s", parent, files[i]);
		_cleanup_free_ char *dst = xasprintf("%s/%s", dir, files[i]);
		_cleanup_free_ char *buf = NULL;
		if (access(src, F_OK) < 0 || read_full_file(src, 4096, &buf, NULL) < 0)
			continue;
		_cleanup_close_ int fd = open(dst, O_WRONLY | O_CLOEXEC);
		if (fd >= 0 && write_all(fd, buf, strlen(buf)) < 0)
			pr_warn("%s: %m", dst);
	}
}

/*
 * With RT group scheduling, a new cpu cgroup has no real-time runtime: no
 * task in it may take SCHED_FIFO or SCHED_RR (EPERM), where the machine's
 * root cgroup allows it.  Each host gets a little, so that real-time
 * threads run (and migrate) in it; the sum of all sets' hosts must stay
 * within the parent's (950 ms of each second by default): 20 ms each.
 */
#define TESTHOST_RT_RUNTIME_US "20000"

static void cg_rt_runtime(const char *dir)
{
	_cleanup_free_ char *f = xasprintf("%s/cpu.rt_runtime_us", dir);
	_cleanup_close_ int fd = open(f, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* no RT group scheduling: nothing to give */
	int r = write_all(fd, TESTHOST_RT_RUNTIME_US, strlen(TESTHOST_RT_RUNTIME_US));
	if (r < 0)
		pr_warn("%s: cannot give the test host %s us of real-time runtime (%s): SCHED_FIFO and "
			"SCHED_RR fail in it", f, TESTHOST_RT_RUNTIME_US, strerror(-r));
}

/* record host h's cgroups, then make them */
static int cg_make(const char *prefix, int h, const struct host_cg *cgs, size_t ncg)
{
	char item[16];
	size_t len = 0;
	int r;

	for (size_t i = 0; i < ncg; i++)
		len += strlen(cgs[i].dir[h]) + 1;
	_cleanup_free_ char *rec = xcalloc(1, len + 1);
	for (size_t i = 0; i < ncg; i++) {
		strcat(rec, cgs[i].dir[h]);
		strcat(rec, "\n");
	}
	snprintf(item, sizeof(item), "cgroups-%s", host_names[h]);
	r = record(prefix, item, rec);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ncg; i++) {
		if (mkdir(cgs[i].dir[h], 0755) < 0 && errno != EEXIST)
			return dm_fail(neg_errno(), "mkdir %s: %m", cgs[i].dir[h]);
		if (strcmp(cgs[i].fstype, "cgroup") == 0 && strstr(cgs[i].opts, "cpuset"))
			cg_cpuset_inherit(cgs[i].dir[h]);
		cg_rt_runtime(cgs[i].dir[h]);
	}
	return 0;
}

/* the calling process into the cgroups of a list (one directory a line):
 * 0 or -errno with the directory named */
static int cg_join(const char *list)
{
	const char *p = list;

	while (p && *p) {
		size_t n = strcspn(p, "\n");
		char path[512];
		if (n && n < sizeof(path) - 16) {
			memcpy(path, p, n);
			memcpy(path + n, "/cgroup.procs", 14);
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				return neg_errno();
			ssize_t w = write(fd, "0", 1);
			int e = errno;
			close(fd);
			if (w != 1)
				return -e;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

/* rmdir a cgroup and the cgroups below it (what runc left) */
static int cg_rmdir_tree(const char *dir, int depth)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : neg_errno();
	if (depth < 16)
		while ((de = readdir(d))) {
			if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			_cleanup_free_ char *sub = xasprintf("%s/%s", dir, de->d_name);
			cg_rmdir_tree(sub, depth + 1);
		}
	return rmdir(dir) < 0 && errno != ENOENT ? neg_errno() : 0;
}

/*
 * Thaw every cgroup of a tree (v1 freezer.state, v2 cgroup.freeze) and
 * SIGKILL the processes in it: what the host's init took with it is gone
 * already, but a task of a frozen v1 cgroup (a container paused, or frozen
 * by a checkpoint that failed half-way) does not die of SIGKILL before it is
 * thawed, and a process may have joined the host's cgroups without its pid
 * namespace.  Killed first, thawed after: they die on waking.
 */
static void cg_kill_tree(const char *dir, int depth)
{
	_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", dir);
	_cleanup_free_ char *buf = NULL;

	if (read_full_file(procs, 1 << 20, &buf, NULL) == 0) {
		char *save = NULL;
		for (char *t = strtok_r(buf, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
			long pid;
			if (parse_long(t, &pid) == 0 && pid > 1 && pid != getpid())
				kill((pid_t)pid, SIGKILL);
		}
	}
	static const struct { const char *file, *thawed; } thaw[] = {
		{ "freezer.state", "THAWED" }, { "cgroup.freeze", "0" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(thaw); i++) {
		_cleanup_free_ char *f = xasprintf("%s/%s", dir, thaw[i].file);
		_cleanup_close_ int fd = open(f, O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			(void)write_all(fd, thaw[i].thawed, strlen(thaw[i].thawed));
	}
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	while (d && depth < 16 && (de = readdir(d))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *sub = xasprintf("%s/%s", dir, de->d_name);
		cg_kill_tree(sub, depth + 1);
	}
}

/* cg_kill_tree() on each of host h's cgroups */
static void cg_kill_host(const char *prefix, int h)
{
	char item[16];
	_cleanup_free_ char *buf = NULL;
	char *save = NULL;

	snprintf(item, sizeof(item), "cgroups-%s", host_names[h]);
	_cleanup_free_ char *p = state_path(prefix, item);
	if (read_full_file(p, 64 << 10, &buf, NULL) < 0)
		return;
	for (char *dir = strtok_r(buf, "\n", &save); dir; dir = strtok_r(NULL, "\n", &save))
		cg_kill_tree(dir, 0);
}

/* host h's cgroups go, with what is left in them (10 s at most); the record
 * stays when one could not be removed, so that down can be tried again */
static int cg_remove(const char *prefix, int h)
{
	char item[16];
	_cleanup_free_ char *buf = NULL;
	const char *dirs[TH_MAX_CG];
	size_t n = 0;
	int r = 0;

	snprintf(item, sizeof(item), "cgroups-%s", host_names[h]);
	_cleanup_free_ char *p = state_path(prefix, item);
	if (read_full_file(p, 64 << 10, &buf, NULL) < 0)
		return 0;
	char *save = NULL;
	for (char *dir = strtok_r(buf, "\n", &save); dir && n < TH_MAX_CG; dir = strtok_r(NULL, "\n", &save))
		dirs[n++] = dir;
	for (int tries = 0; tries < 200; tries++) {
		const char *busy = NULL;
		r = 0;
		for (size_t i = 0; i < n; i++) {
			int k = cg_rmdir_tree(dirs[i], 0);
			if (k == -EBUSY && !busy)
				busy = dirs[i];
			else if (k < 0 && k != -EBUSY && !r)
				r = dm_fail(k, "cannot remove the test host's cgroup %s: %s", dirs[i], strerror(-k));
		}
		if (!busy)
			break;
		r = dm_fail(-EBUSY, "cannot remove the test host's cgroup %s: processes are left in it", busy);
		/* the freezer hierarchy may be any of them: every one, every time */
		for (size_t i = 0; i < n; i++)
			cg_kill_tree(dirs[i], 0);
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
	}
	if (r == 0)
		unrecord(prefix, item);
	return r;
}

/* in the host's init, after unshare(CLONE_NEWNS | CLONE_NEWCGROUP): the
 * hierarchies again, now rooted in the host's cgroups; -errno, *what set */
static int cg_mount_own(const struct host_cg *cgs, size_t ncg, const char **what)
{
	bool under = false, at = false;

	for (size_t i = 0; i < ncg; i++) {
		if (!strcmp(cgs[i].mnt, CGROUP_DIR))
			at = true;
		else if (!strncmp(cgs[i].mnt, CGROUP_DIR "/", sizeof(CGROUP_DIR)))
			under = true;
	}
	/* the machine's mounts go (they would show the host's cgroups as "/.."
	 * to whoever reads mountinfo: runc, treecg), then v1 (or hybrid): a
	 * tmpfs of mount points, as the machine has */
	if ((under || at) && umount2(CGROUP_DIR, MNT_DETACH) < 0 && errno != EINVAL) {
		*what = "umount " CGROUP_DIR;
		return neg_errno();
	}
	if (under && !at && mount("tmpfs", CGROUP_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") < 0) {
		*what = "mount tmpfs " CGROUP_DIR;
		return neg_errno();
	}
	for (size_t i = 0; i < ncg; i++) {
		if (strcmp(cgs[i].mnt, CGROUP_DIR) && strncmp(cgs[i].mnt, CGROUP_DIR "/", sizeof(CGROUP_DIR)))
			umount2(cgs[i].mnt, MNT_DETACH);
		mkdir(cgs[i].mnt, 0755);
		if (mount("cgroup", cgs[i].mnt, cgs[i].fstype, MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  cgs[i].opts[0] ? cgs[i].opts : NULL) < 0) {
			*what = cgs[i].mnt;
			return neg_errno();
		}
	}
	return 0;
}

static int start_init(const char *prefix, int host, long pid_base, const struct host_cg *cgs, size_t ncg,
		      const char *cg_list)
{
	char ns[64], hostname[32], rec[64], item[16];
	_cleanup_free_ char *runc_root = NULL;
	struct init_msg m;
	pid_t init = -1;
	int pfd[2], st, r = 0;

	snprintf(ns, sizeof(ns), "/run/netns/%s-%s", prefix, host_names[host]);
	snprintf(hostname, sizeof(hostname), "%s-%s", prefix, host_names[host]);
	snprintf(item, sizeof(item), "runc-%s", host_names[host]);
	runc_root = state_path(prefix, item);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return neg_errno();
	pid_t c1 = fork();
	if (c1 < 0) {
		r = neg_errno();
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (c1 == 0) {
		int w = pfd[1];
		setsid();
		child_stdio(NULL, false);
		/* nothing of the caller stays open in a long-lived process */
		if (dup2(w, 3) < 0)
			_exit(1);
		w = 3;
		syscall(SYS_close_range, 4, ~0U, 0);
		int nfd = open(ns, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0) {
			init_send(w, 'E', neg_errno(), "setns(net)");
			_exit(1);
		}
		close(nfd);
		/* into the host's cgroups, which become the roots of its cgroup namespace */
		int cr = cg_join(cg_list);
		if (cr < 0) {
			init_send(w, 'E', cr, "join the host's cgroups");
			_exit(1);
		}
		if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWCGROUP) < 0) {
			init_send(w, 'E', neg_errno(), "unshare");
			_exit(1);
		}
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			init_send(w, 'E', neg_errno(), "mount --make-rprivate /");
			_exit(1);
		}
		const char *what = NULL;
		cr = cg_mount_own(cgs, ncg, &what);
		if (cr < 0) {
			char msg[48];
			snprintf(msg, sizeof(msg), "mount cgroup %s", what);
			init_send(w, 'E', cr, msg);
			_exit(1);
		}
		/* runc's default state root is the host's own */
		if (mount(runc_root, RUNC_DIR, NULL, MS_BIND, NULL) < 0) {
			init_send(w, 'E', neg_errno(), "bind the host's runc root on " RUNC_DIR);
			_exit(1);
		}
		if (sethostname(hostname, strlen(hostname)) < 0) {
			init_send(w, 'E', neg_errno(), "sethostname");
			_exit(1);
		}
		if (mount("tmpfs", VARDIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0) {
			init_send(w, 'E', neg_errno(), "mount tmpfs " VARDIR);
			_exit(1);
		}
		pid_t c2 = fork();
		if (c2 < 0) {
			init_send(w, 'E', neg_errno(), "fork");
			_exit(1);
		}
		if (c2 == 0) {
			/* pid 1: a /proc of this pid namespace */
			if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
				init_send(w, 'E', neg_errno(), "mount /proc");
				_exit(1);
			}
			/*
			 * Start the pids of each host in its own range: a process
			 * migrated from a keeps its pid in b, which must be free there
			 * (b's own daemon has a small one).
			 */
			int lp = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
			if (lp >= 0) {
				char base[16];
				int n = snprintf(base, sizeof(base), "%ld", host == 0 ? 10000 : pid_base);
				ssize_t wr = write(lp, base, n);
				(void)wr;
				close(lp);
			}
			init_send(w, 'R', 0, NULL);
			close(w);
			init_loop();
		}
		init_send(w, 'P', c2, NULL);
		_exit(0);
	}
	close(pfd[1]);
	/* the init ('R') and its parent ('P') write to the pipe independently:
	 * either may come first */
	bool ready = false;
	while ((!ready || init <= 0) && r == 0) {
		ssize_t n = read(pfd[0], &m, sizeof(m));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(m)) {
			r = dm_fail(-EIO, "test host %s: its init died while starting", hostname);
			break;
		}
		m.what[sizeof(m.what) - 1] = 0;
		if (m.tag == 'P') {
			init = m.val;
			uint64_t start;
			if (read_starttime(init, &start) == 0) {
				snprintf(rec, sizeof(rec), "%d %" PRIu64 "\n", init, start);
				snprintf(item, sizeof(item), "init-%s", host_names[host]);
				r = record(prefix, item, rec);
			}
		} else if (m.tag == 'R') {
			ready = true;
		} else {
			r = dm_fail(m.val < 0 ? m.val : -EIO, "test host %s: %s: %s", hostname, m.what,
				    strerror(m.val < 0 ? -m.val : EIO));
		}
	}
	close(pfd[0]);
	while (waitpid(c1, &st, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && init <= 0)
		r = dm_fail(-EIO, "test host %s: no init", hostname);
	return r;
}

/* Are test hosts with another prefix up? */
static bool other_sets(const char *prefix)
{
	_cleanup_closedir_ DIR *d = opendir(TESTHOST_STATE_DIR);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && strcmp(de->d_name, prefix))
			return true;
	return false;
}

/*
 * The containers' segment: a bridge in each host (TESTHOST_BRIDGE, the same
 * name in both, as on two machines), the two linked by a veth pair
 * (PREFIX-al in a, PREFIX-bl in b), the client namespace PREFIX-c on a's
 * bridge (PREFIX-c0 there, PREFIX-cl its port); addresses from
 * TESTHOST_SEG_NET / TESTHOST_SEG6_NET.  IPv6 addresses are added without
 * duplicate address detection: usable at once.
 */
static int setup_segment(const char *prefix, char ns[2][32])
{
	char link[2][32], cns[32], c0[32], cl[32], cidr[40];
	int r;

	/* nothing for the segment's v6 range may leave the machine either */
	{
		char out[512] = "";
		r = run_cmd_out((const char *const[]){ "ip", "-6", "route", "show", "exact", TEST_NET6, NULL },
				out, sizeof(out));
		if (r < 0)
			return r;
		r = RUN("ip", "-6", "route", "replace", "unreachable", TEST_NET6);
		if (r < 0)
			return r;
		if (!strstr(out, TEST_NET6) || other_sets(prefix)) {
			r = record(prefix, "route6", "unreachable " TEST_NET6 "\n");
			if (r < 0)
				return r;
		}
	}
	snprintf(cns, sizeof(cns), "%s-c", prefix);
	snprintf(c0, sizeof(c0), "%s-c0", prefix);
	snprintf(cl, sizeof(cl), "%s-cl", prefix);
	{
		char p[64];
		snprintf(p, sizeof(p), "/run/netns/%s", cns);
		if (access(p, F_OK) == 0)
			return dm_fail(-EEXIST, "network namespace %s exists already", cns);
	}
	if ((r = RUN("ip", "netns", "add", cns)) < 0 || (r = record(prefix, "netns-c", cns)) < 0)
		return r;
	for (int h = 0; h < 2; h++) {
		snprintf(link[h], sizeof(link[h]), "%s-%sl", prefix, host_names[h]);
		/*
		 * Its MAC fixed: a bridge whose address was not set takes the
		 * lowest of its ports', so a container's veth joining or leaving
		 * it (a migration) changed the address of host b under host a's
		 * neighbour entry, and a's next connect to b's dmigrated timed
		 * out until the entry went stale.
		 */
		char mac[18];
		snprintf(mac, sizeof(mac), "02:00:c6:13:00:%02x", h + 1);
		if ((r = RUN("ip", "-n", ns[h], "link", "add", TESTHOST_BRIDGE, "address", mac, "type", "bridge",
			     "forward_delay", "0")) < 0)
			return r;
		snprintf(cidr, sizeof(cidr), "%s/%d", seg_addrs[h], TESTHOST_SEG_LEN);
		if ((r = RUN("ip", "-n", ns[h], "addr", "add", cidr, "dev", TESTHOST_BRIDGE)) < 0)
			return r;
		snprintf(cidr, sizeof(cidr), "%s/%d", seg6_addrs[h], TESTHOST_SEG6_LEN);
		if ((r = RUN("ip", "-n", ns[h], "addr", "add", cidr, "dev", TESTHOST_BRIDGE, "nodad")) < 0 ||
		    (r = RUN("ip", "-n", ns[h], "link", "set", TESTHOST_BRIDGE, "up")) < 0)
			return r;
	}
	/* made here, moved into the namespaces: they go with them */
	if ((r = RUN("ip", "link", "add", link[0], "type", "veth", "peer", "name", link[1])) < 0)
		return r;
	for (int h = 0; h < 2; h++)
		if ((r = RUN("ip", "link", "set", link[h], "netns", ns[h])) < 0) {
			RUN("ip", "link", "del", link[h]);
			return r;
		}
	if ((r = RUN("ip", "link", "add", c0, "type", "veth", "peer", "name", cl)) < 0)
		return r;
	if ((r = RUN("ip", "link", "set", c0, "netns", cns)) < 0 ||
	    (r = RUN("ip", "link", "set", cl, "netns", ns[0])) < 0) {
		RUN("ip", "link", "del", cl);
		return r;
	}
	for (int h = 0; h < 2; h++)
		if ((r = RUN("ip", "-n", ns[h], "link", "set", link[h], "master", TESTHOST_BRIDGE, "up")) < 0)
			return r;
	if ((r = RUN("ip", "-n", ns[0], "link", "set", cl, "master", TESTHOST_BRIDGE, "up")) < 0)
		return r;
	snprintf(cidr, sizeof(cidr), "%s/%d", seg_addrs[2], TESTHOST_SEG_LEN);
	if ((r = RUN("ip", "-n", cns, "addr", "add", cidr, "dev", c0)) < 0)
		return r;
	snprintf(cidr, sizeof(cidr), "%s/%d", seg6_addrs[2], TESTHOST_SEG6_LEN);
	if ((r = RUN("ip", "-n", cns, "addr", "add", cidr, "dev", c0, "nodad")) < 0 ||
	    (r = RUN("ip", "-n", cns, "link", "set", "lo", "up")) < 0 ||
	    (r = RUN("ip", "-n", cns, "link", "set", c0, "up")) < 0)
		return r;
	return 0;
}

int testhost_up(const struct testhost_opts *o)
{
	const char *prefix = o->prefix ? o->prefix : TESTHOST_PREFIX_DEFAULT;
	const char *rate = o->rate ? o->rate : "1gbit";
	char ns[2][32], dev[2][32], cidr[2][32];
	struct stat st;
	int r;

	r = check_prefix(prefix);
	if (r < 0)
		return r;
	if (strlen(rate) > 32 || strspn(rate, "0123456789.kmgtbitps") != strlen(rate))
		return dm_fail(-EINVAL, "bad rate '%s'", rate);
	_cleanup_free_ char *dir = state_path(prefix, NULL);
	if (access(dir, F_OK) == 0)
		return dm_fail(-EEXIST, "test hosts '%s' exist (dmigrate testhost down --prefix %s)", prefix,
			       prefix);
	/* another set's `down` removes the shared parent when it finds it empty
	 * (rmdir TESTHOST_STATE_DIR), maybe between our two mkdirs: again */
	for (int k = 0; (r = mkdir_p(dir, 0700)) == -ENOENT && k < 10; k++)
		;
	if (r < 0)
		return dm_fail(r, "%s: %s", dir, strerror(-r));
	for (int h = 0; h < 2; h++) {
		snprintf(ns[h], sizeof(ns[h]), "%s-%s", prefix, host_names[h]);
		snprintf(dev[h], sizeof(dev[h]), "%s-%s0", prefix, host_names[h]);
		snprintf(cidr[h], sizeof(cidr[h]), "%s/24", host_addrs[h]);
		char p[64];
		snprintf(p, sizeof(p), "/run/netns/%s", ns[h]);
		if (access(p, F_OK) == 0) {
			r = dm_fail(-EEXIST, "network namespace %s exists already", ns[h]);
			goto fail;
		}
	}

	/* Nothing for 198.18.0.0/15 may leave the machine by the default route. */
	{
		char out[512] = "";
		r = run_cmd_out((const char *const[]){ "ip", "route", "show", "exact", TEST_NET, NULL }, out,
				sizeof(out));
		if (r < 0)
			goto fail;
		r = RUN("ip", "route", "replace", "unreachable", TEST_NET);
		if (r < 0)
			goto fail;
		/* a route that was there before (not by other test hosts) is not ours to remove */
		if (!strstr(out, "198.18.0.0/15") || other_sets(prefix)) {
			r = record(prefix, "route", "unreachable " TEST_NET "\n");
			if (r < 0)
				goto fail;
		}
	}
	if (stat(VARDIR, &st) < 0) {
		r = mkdir_p(VARDIR, 0755);
		if (r < 0) {
			r = dm_fail(r, "mkdir %s: %s", VARDIR, strerror(-r));
			goto fail;
		}
		r = record(prefix, "vardir", VARDIR "\n");
		if (r < 0)
			goto fail;
	}
	for (int h = 0; h < 2; h++) {
		char item[16];
		r = RUN("ip", "netns", "add", ns[h]);
		if (r < 0)
			goto fail;
		snprintf(item, sizeof(item), "netns-%s", host_names[h]);
		r = record(prefix, item, ns[h]);
		if (r < 0)
			goto fail;
	}
	r = RUN("ip", "link", "add", dev[0], "type", "veth", "peer", "name", dev[1]);
	if (r < 0)
		goto fail;
	for (int h = 0; h < 2; h++) {
		r = RUN("ip", "link", "set", dev[h], "netns", ns[h]);
		if (r < 0) {
			RUN("ip", "link", "del", dev[0]);
			goto fail;
		}
	}
	for (int h = 0; h < 2; h++) {
		if ((r = RUN("ip", "-n", ns[h], "addr", "add", cidr[h], "dev", dev[h])) < 0 ||
		    (r = RUN("ip", "-n", ns[h], "link", "set", "lo", "up")) < 0 ||
		    (r = RUN("ip", "-n", ns[h], "link", "set", dev[h], "up")) < 0)
			goto fail;
		if (o->tbf) {
			r = RUN("tc", "-n", ns[h], "qdisc", "add", "dev", dev[h], "root", "handle", "1:", "tbf",
				"rate", rate, "burst", "256kb", "latency", "50ms");
			if (r >= 0 && !o->fifo_link)
				r = RUN("tc", "-n", ns[h], "qdisc", "add", "dev", dev[h], "parent", "1:1", "handle",
					"10:", "pfifo_fast");
			if (r < 0)
				goto fail;
		}
	}
	r = setup_segment(prefix, ns);
	if (r < 0)
		goto fail;

	/* each host's cgroups and runc state root */
	struct host_cg cgs[TH_MAX_CG];
	size_t ncg = 0;
	r = cg_discover(prefix, cgs, &ncg);
	if (r < 0)
		goto fail;
	if (stat(RUNC_DIR, &st) < 0) {
		r = mkdir_p(RUNC_DIR, 0700);
		if (r < 0) {
			r = dm_fail(r, "mkdir %s: %s", RUNC_DIR, strerror(-r));
			goto fail;
		}
		r = record(prefix, "runcdir", RUNC_DIR "\n");
		if (r < 0)
			goto fail;
	}
	char *cg_list[2] = { NULL, NULL };
	for (int h = 0; h < 2 && r >= 0; h++) {
		char item[16];
		snprintf(item, sizeof(item), "runc-%s", host_names[h]);
		_cleanup_free_ char *rr = state_path(prefix, item);
		if (mkdir(rr, 0700) < 0 && errno != EEXIST)
			r = dm_fail(neg_errno(), "mkdir %s: %m", rr);
		else
			r = cg_make(prefix, h, cgs, ncg);
		if (r >= 0) {
			snprintf(item, sizeof(item), "cgroups-%s", host_names[h]);
			_cleanup_free_ char *p = state_path(prefix, item);
			r = read_full_file(p, 64 << 10, &cg_list[h], NULL);
		}
	}
	long pid_base = raise_pid_max();
	for (int h = 0; h < 2 && r >= 0; h++)
		r = start_init(prefix, h, pid_base, cgs, ncg, cg_list[h]);
	free(cg_list[0]);
	free(cg_list[1]);
	if (r < 0)
		goto fail;
	pr_info("test hosts %s-a (%s) and %s-b (%s) are up%s", prefix, host_addrs[0], prefix,
		host_addrs[1], !o->tbf ? "" : o->fifo_link ? " (tbf, one fifo)" : " (tbf > pfifo_fast)");
	return 0;
fail:;
	char saved[1024];
	snprintf(saved, sizeof(saved), "%s", dm_last_error());
	testhost_down(prefix);
	dm_fail(r, "%s", saved);
	return r;
}

static int kill_init(const char *prefix, int host)
{
	char item[16];
	pid_t pid;

	snprintf(item, sizeof(item), "init-%s", host_names[host]);
	if (!recorded(prefix, item))
		return 0;
	if (testhost_init_pid(prefix, host, &pid) == 0) {
		int pfd = syscall(SYS_pidfd_open, pid, 0);
		/* SIGKILL to a pid namespace's init kills every process in it */
		kill(pid, SIGKILL);
		if (pfd >= 0) {
			/* it exits once every process of its namespace has: frozen
			 * ones (a paused container) only after a thaw */
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			for (int i = 0; i < 100 && poll(&p, 1, 50) == 0; i++)
				cg_kill_host(prefix, host);
			close(pfd);
		}
	}
	unrecord(prefix, item);
	return 0;
}

int testhost_down(const char *prefix)
{
	int r, err = 0;

	if (!prefix)
		prefix = TESTHOST_PREFIX_DEFAULT;
	r = check_prefix(prefix);
	if (r < 0)
		return r;
	for (int h = 0; h < 2; h++)
		kill_init(prefix, h);
	for (int h = 0; h < 2; h++) {
		char item[16];
		r = cg_remove(prefix, h);
		if (r < 0 && !err)
			err = r;
		snprintf(item, sizeof(item), "runc-%s", host_names[h]);
		_cleanup_free_ char *rr = state_path(prefix, item);
		rm_rf(rr);
	}
	for (int h = 0; h < 3; h++) {
		static const char *const all[3] = { "a", "b", "c" };
		char item[16], ns[32];
		snprintf(item, sizeof(item), "netns-%s", all[h]);
		snprintf(ns, sizeof(ns), "%s-%s", prefix, all[h]);
		if (!recorded(prefix, item))
			continue;
		r = RUN("ip", "netns", "del", ns);
		if (r < 0 && !err)
			err = r;
		unrecord(prefix, item);
	}
	if (recorded(prefix, "route")) {
		/* other sets of test hosts still rely on it */
		if (!other_sets(prefix))
			RUN("ip", "route", "del", "unreachable", TEST_NET);
		unrecord(prefix, "route");
	}
	if (recorded(prefix, "route6")) {
		if (!other_sets(prefix))
			RUN("ip", "-6", "route", "del", "unreachable", TEST_NET6);
		unrecord(prefix, "route6");
	}
	if (recorded(prefix, "runcdir")) {
		if (!other_sets(prefix))
			rmdir(RUNC_DIR); /* only if empty: runc of the machine may use it now */
		unrecord(prefix, "runcdir");
	}
	if (recorded(prefix, "vardir")) {
		/* the mount point of the other sets' hosts' own tmpfs: removed
		 * under them, the kernel would take their mounts away with it */
		if (!other_sets(prefix))
			rmdir(VARDIR);
		unrecord(prefix, "vardir");
	}
	_cleanup_free_ char *dir = state_path(prefix, NULL);
	if (rmdir(dir) < 0 && errno != ENOENT && !err)
		err = dm_fail(neg_errno(), "%s: %m", dir);
	if (!other_sets(prefix))
		restore_pid_max();
	rmdir(TESTHOST_STATE_DIR);
	return err;
}

/*
 * In a fresh child: join the host's cgroups (cg_list, NULL for hosts made
 * without), then its namespaces (cgroup first: its root is the cgroups just
 * joined; mount last: it resets cwd).
 */
static int enter_host(pid_t init, const char *cg_list)
{
	static const struct { const char *name; int type; } nss[] = {
		{ "cgroup", CLONE_NEWCGROUP }, { "net", CLONE_NEWNET }, { "uts", CLONE_NEWUTS },
		{ "pid", CLONE_NEWPID }, { "mnt", CLONE_NEWNS },
	};
	char cwd[PATH_MAX];
	bool have_cwd = getcwd(cwd, sizeof(cwd)) != NULL;

	if (cg_list) {
		int r = cg_join(cg_list);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(nss); i++) {
		if (!cg_list && nss[i].type == CLONE_NEWCGROUP)
			continue;
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/%s", init, nss[i].name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
		int r = setns(fd, nss[i].type);
		close(fd);
		if (r < 0)
			return neg_errno();
	}
	if (!have_cwd || chdir(cwd) < 0)
		if (chdir("/") < 0)
			return neg_errno();
	return 0;
}

struct spawn_msg {
	char tag; /* 'P' pid, 'E' error */
	int32_t val;
} __attribute__((packed));

static int spawn_common(const char *prefix, int host, char *const argv[], const char *out_path,
			bool background, pid_t *ret_pid)
{
	struct spawn_msg m;
	pid_t init;
	int pfd[2], r, st;

	if (!prefix)
		prefix = TESTHOST_PREFIX_DEFAULT;
	if (!argv || !argv[0])
		return -EINVAL;
	r = testhost_init_pid(prefix, host, &init);
	if (r < 0)
		return r;
	_cleanup_free_ char *cg_list = NULL;
	{
		char item[16];
		snprintf(item, sizeof(item), "cgroups-%s", host_names[host]);
		_cleanup_free_ char *p = state_path(prefix, item);
		r = read_full_file(p, 64 << 10, &cg_list, NULL);
		if (r < 0 && r != -ENOENT)
			return dm_fail(r, "%s: %s", p, strerror(-r));
	}
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return neg_errno();
	pid_t helper = fork();
	if (helper < 0) {
		r = neg_errno();
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (helper == 0) {
		close(pfd[0]);
		r = enter_host(init, cg_list);
		if (r < 0) {
			m = (struct spawn_msg){ 'E', r };
			ssize_t w = write(pfd[1], &m, sizeof(m));
			(void)w;
			_exit(126);
		}
		pid_t g = fork();
		if (g < 0)
			_exit(126);
		if (g == 0) {
			if (background) {
				setsid();
				child_stdio(out_path, false);
			}
			signal(SIGPIPE, SIG_DFL);
			execvp(argv[0], argv);
			m = (struct spawn_msg){ 'E', neg_errno() };
			ssize_t w = write(pfd[1], &m, sizeof(m));
			(void)w;
			_exit(127);
		}
		m = (struct spawn_msg){ 'P', g };
		ssize_t w = write(pfd[1], &m, sizeof(m));
		(void)w;
		close(pfd[1]);
		if (background)
			_exit(0);
		while (waitpid(g, &st, 0) < 0)
			if (errno != EINTR)
				_exit(126);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	close(pfd[1]);
	pid_t got = -1;
	r = 0;
	for (;;) {
		ssize_t n = read(pfd[0], &m, sizeof(m));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(m))
			break;
		if (m.tag == 'P')
			got = m.val;
		else if (m.tag == 'E')
			r = m.val < 0 ? m.val : -EIO;
	}
	close(pfd[0]);
	while (waitpid(helper, &st, 0) < 0)
		if (errno != EINTR)
			return neg_errno();
	if (r < 0)
		return dm_fail(r, "cannot start %s in test host %s-%s: %s", argv[0], prefix, host_names[host],
			       strerror(-r));
	if (got <= 0)
		return dm_fail(-EIO, "cannot start %s in test host %s-%s", argv[0], prefix, host_names[host]);
	if (ret_pid)
		*ret_pid = got;
	if (background)
		return 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int testhost_spawn(const char *prefix, int host, char *const argv[], const char *out_path,
		   pid_t *ret_pid)
{
	return spawn_common(prefix, host, argv, out_path, true, ret_pid);
}

int testhost_run(const char *prefix, int host, char *const argv[])
{
	return spawn_common(prefix, host, argv, NULL, false, NULL);
}

int testhost_info(const char *prefix, FILE *out)
{
	int r;

	if (!prefix)
		prefix = TESTHOST_PREFIX_DEFAULT;
	r = check_prefix(prefix);
	if (r < 0)
		return r;
	fprintf(out, "prefix=%s\n", prefix);
	for (int h = 0; h < 2; h++) {
		const char *n = host_names[h];
		char item[16];
		pid_t init;
		r = testhost_init_pid(prefix, h, &init);
		if (r < 0)
			return r;
		snprintf(item, sizeof(item), "runc-%s", n);
		_cleanup_free_ char *rr = state_path(prefix, item);
		fprintf(out, "%s.netns=%s-%s\n%s.init=%d\n%s.addr=%s\n", n, prefix, n, n, init, n, host_addrs[h]);
		fprintf(out, "%s.dev=%s-%s0\n%s.bridge=%s\n%s.seg_addr=%s\n%s.seg_addr6=%s\n", n, prefix, n, n,
			TESTHOST_BRIDGE, n, seg_addrs[h], n, seg6_addrs[h]);
		fprintf(out, "%s.runc_root=%s\n", n, rr);
		snprintf(item, sizeof(item), "cgroups-%s", n);
		_cleanup_free_ char *p = state_path(prefix, item);
		_cleanup_free_ char *cgl = NULL;
		if (read_full_file(p, 64 << 10, &cgl, NULL) == 0) {
			char *save = NULL;
			for (char *d = strtok_r(cgl, "\n", &save); d; d = strtok_r(NULL, "\n", &save))
				fprintf(out, "%s.cgroup=%s\n", n, d);
		}
	}
	fprintf(out, "client.netns=%s-c\nclient.dev=%s-c0\nclient.addr=%s\nclient.addr6=%s\n", prefix, prefix,
		seg_addrs[2], seg6_addrs[2]);
	fprintf(out, "seg.prefix=%s\nseg.len=%d\nseg.prefix6=%s\nseg.len6=%d\nseg.first_free=%d\n",
		TESTHOST_SEG_PREFIX, TESTHOST_SEG_LEN, TESTHOST_SEG6_PREFIX, TESTHOST_SEG6_LEN,
		TESTHOST_SEG_FIRST_FREE);
	return 0;
}
