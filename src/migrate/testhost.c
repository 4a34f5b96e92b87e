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

static const char *const host_names[2] = { "a", "b" };
static const char *const host_addrs[2] = { "198.18.0.1", "198.18.0.2" };

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

static int start_init(const char *prefix, int host, long pid_base)
{
	char ns[64], hostname[32], rec[64], item[16];
	struct init_msg m;
	pid_t init = -1;
	int pfd[2], st, r = 0;

	snprintf(ns, sizeof(ns), "/run/netns/%s-%s", prefix, host_names[host]);
	snprintf(hostname, sizeof(hostname), "%s-%s", prefix, host_names[host]);
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
		if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS) < 0) {
			init_send(w, 'E', neg_errno(), "unshare");
			_exit(1);
		}
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			init_send(w, 'E', neg_errno(), "mount --make-rprivate /");
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
	r = mkdir_p(dir, 0700);
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
	long pid_base = raise_pid_max();
	for (int h = 0; h < 2; h++) {
		r = start_init(prefix, h, pid_base);
		if (r < 0)
			goto fail;
	}
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
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			poll(&p, 1, 5000);
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
		char item[16], ns[32];
		snprintf(item, sizeof(item), "netns-%s", host_names[h]);
		snprintf(ns, sizeof(ns), "%s-%s", prefix, host_names[h]);
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
	if (recorded(prefix, "vardir")) {
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

/* In a fresh child: join the host's namespaces (mount last: it resets cwd). */
static int enter_host(pid_t init)
{
	static const struct { const char *name; int type; } nss[] = {
		{ "net", CLONE_NEWNET }, { "uts", CLONE_NEWUTS }, { "pid", CLONE_NEWPID }, { "mnt", CLONE_NEWNS },
	};
	char cwd[PATH_MAX];
	bool have_cwd = getcwd(cwd, sizeof(cwd)) != NULL;

	for (size_t i = 0; i < ARRAY_SIZE(nss); i++) {
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
		r = enter_host(init);
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
