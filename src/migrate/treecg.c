/* SPDX-License-Identifier: MIT */
/* A cgroup per migrated tree (treecg.h). */
#define LOG_PREFIX "cgroup: "
#include "migrate/treecg.h"
#include "base/log.h"
#include "base/util.h"
#include "proc/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- system calls only (the guardian) ------------------------------------ */

/* dst = a + "/" + b, truncated safely */
static void join(char *dst, size_t n, const char *a, const char *b)
{
	size_t k = 0;
	for (const char *p = a; *p && k + 1 < n; p++)
		dst[k++] = *p;
	if (k + 1 < n)
		dst[k++] = '/';
	for (const char *p = b; *p && k + 1 < n; p++)
		dst[k++] = *p;
	dst[k] = 0;
}

static int write_str(const char *dir, const char *file, const char *s)
{
	char path[600];
	join(path, sizeof(path), dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(s);
	ssize_t w = write(fd, s, n);
	int r = w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
	close(fd);
	return r;
}

/* the first len-1 bytes of dir/file, NUL-terminated: length or -errno */
static ssize_t read_str(const char *dir, const char *file, char *buf, size_t len)
{
	char path[600];
	join(path, sizeof(path), dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t k = 0;
	for (;;) {
		ssize_t n = read(fd, buf + k, len - 1 - k);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		k += (size_t)n;
		if (k == len - 1)
			break;
	}
	close(fd);
	buf[k] = 0;
	return (ssize_t)k;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGKILL every pid listed in cgroup.procs; returns how many were listed */
static int kill_listed(const struct treecg *cg)
{
	int fd, listed = 0;
	char path[600], buf[4096];
	size_t k = 0;
	long pid = -1;

	join(path, sizeof(path), cg->path, "cgroup.procs");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];
			if (ch >= '0' && ch <= '9') {
				pid = (pid < 0 ? 0 : pid * 10) + (ch - '0');
				continue;
			}
			if (pid > 0) {
				kill((pid_t)pid, SIGKILL);
				listed++;
			}
			pid = -1;
		}
		k += (size_t)n;
	}
	if (pid > 0) {
		kill((pid_t)pid, SIGKILL);
		listed++;
	}
	close(fd);
	(void)k;
	return listed;
}

bool treecg_populated(const struct treecg *cg)
{
	char buf[64];
	if (cg->version == TREECG_NONE)
		return false;
	ssize_t n = read_str(cg->path, "cgroup.procs", buf, sizeof(buf));
	return n > 0;
}

int treecg_kill(const struct treecg *cg, int timeout_ms)
{
	long end = now_ms() + timeout_ms;

	if (cg->version == TREECG_NONE)
		return -EOPNOTSUPP;
	if (cg->version == TREECG_V2) {
		/* the kernel kills every task of it and of what it forks meanwhile */
		int r = write_str(cg->path, "cgroup.kill", "1");
		if (r < 0)
			return r;
		while (treecg_populated(cg)) {
			if (now_ms() > end)
				return -ETIMEDOUT;
			nap_ms(2);
		}
		return 0;
	}
	/* v1: freeze, kill what is listed, thaw (a frozen task dies only once
	 * thawed), until nothing is listed */
	for (;;) {
		char st[32];
		write_str(cg->path, "freezer.state", "FROZEN");
		for (long t = now_ms(); now_ms() - t < 1000;) {
			if (read_str(cg->path, "freezer.state", st, sizeof(st)) > 0 && !strncmp(st, "FROZEN", 6))
				break;
			nap_ms(1);
		}
		int n = kill_listed(cg);
		write_str(cg->path, "freezer.state", "THAWED");
		if (!n)
			return 0;
		for (long t = now_ms(); now_ms() - t < 200 && treecg_populated(cg);)
			nap_ms(2);
		if (!treecg_populated(cg))
			return 0;
		if (now_ms() > end)
			return -ETIMEDOUT;
	}
}

int treecg_remove(const struct treecg *cg)
{
	if (cg->version == TREECG_NONE)
		return 0;
	if (rmdir(cg->path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* ---- the daemon ------------------------------------------------------------ */

/* mount point of the v2 hierarchy, or of the v1 one with the freezer */
static int find_mount(enum treecg_version v, char *out, size_t n)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list l = {};
	int r = proc_read_mountinfo(getpid(), &l);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l.n; i++) {
		const struct proc_mount *m = &l.mounts[i];
		bool ok = v == TREECG_V2 ? !strcmp(m->fstype, "cgroup2")
					 : !strcmp(m->fstype, "cgroup") && m->super_options &&
						   strstr(m->super_options, "freezer");
		if (ok && strcmp(m->root, "/") == 0) {
			snprintf(out, n, "%s", m->mountpoint);
			return 0;
		}
	}
	return -ENOENT;
}

static int try_create(const char *name, enum treecg_version v, struct treecg *ret)
{
	char mnt[256], base[512];
	int r = find_mount(v, mnt, sizeof(mnt));
	if (r < 0)
		return r;
	if (v == TREECG_V2) {
		/* cgroup.kill: Linux 5.14; a child cgroup has it, the root does not */
		char probe[300];
		join(probe, sizeof(probe), mnt, "cgroup.subtree_control");
		if (access(probe, F_OK) < 0)
			return -ENOENT;
	}
	join(base, sizeof(base), mnt, "dmigrate");
	if (mkdir(base, 0755) < 0 && errno != EEXIST)
		return -errno;
	ret->version = v;
	join(ret->path, sizeof(ret->path), base, name);
	if (mkdir(ret->path, 0755) < 0)
		return -errno;
	if (v == TREECG_V2) {
		char kill_file[600];
		join(kill_file, sizeof(kill_file), ret->path, "cgroup.kill");
		if (access(kill_file, W_OK) < 0) {
			r = -errno;
			rmdir(ret->path);
			return r;
		}
	}
	return 0;
}

/* rmdir every empty tree cgroup under MNT/dmigrate of hierarchy v whose
 * directory is older than min_age_s: how many were removed */
static int sweep_stale(enum treecg_version v, int min_age_s)
{
	char mnt[256], base[512];
	int n = 0;
	if (find_mount(v, mnt, sizeof(mnt)) < 0)
		return 0;
	join(base, sizeof(base), mnt, "dmigrate");
	_cleanup_(closedirp) DIR *d = opendir(base);
	if (!d)
		return 0;
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(d))) {
		struct treecg cg = { .version = v };
		struct stat st;
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		join(cg.path, sizeof(cg.path), base, e->d_name);
		if (stat(cg.path, &st) < 0 || now - st.st_mtime < min_age_s || treecg_populated(&cg))
			continue;
		if (treecg_remove(&cg) == 0) {
			pr_debug("removed the empty cgroup %s, left by an earlier daemon", cg.path);
			n++;
		}
	}
	return n;
}

int treecg_sweep_stale(int min_age_s)
{
	return sweep_stale(TREECG_V2, min_age_s) + sweep_stale(TREECG_V1_FREEZER, min_age_s);
}

int treecg_create(const char *name, enum treecg_version want, struct treecg *ret)
{
	int r = -ENOENT;

	memset(ret, 0, sizeof(*ret));
	if (want != TREECG_V1_FREEZER) {
		r = try_create(name, TREECG_V2, ret);
		if (r >= 0 || want == TREECG_V2)
			goto out;
		pr_debug("no usable cgroup v2 (%s): trying the v1 freezer", strerror(-r));
	}
	r = try_create(name, TREECG_V1_FREEZER, ret);
out:
	if (r < 0) {
		memset(ret, 0, sizeof(*ret));
		return dm_fail(r, "no cgroup for the tree (%s): neither cgroup v2 with cgroup.kill nor the v1 "
				  "freezer hierarchy is usable here", strerror(-r));
	}
	pr_debug("tree cgroup %s (%s)", ret->path, ret->version == TREECG_V2 ? "v2" : "v1 freezer");
	return 0;
}

int treecg_add(const struct treecg *cg, pid_t pid)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", pid);
	int r = write_str(cg->path, "cgroup.procs", buf);
	if (r < 0)
		return dm_fail(r, "process %d into %s: %s", pid, cg->path, strerror(-r));
	return 0;
}

int treecg_freeze(const struct treecg *cg, bool frozen)
{
	if (cg->version != TREECG_V2)
		return -EOPNOTSUPP;
	int r = write_str(cg->path, "cgroup.freeze", frozen ? "1" : "0");
	if (r < 0)
		return dm_fail(r, "%s: cgroup.freeze: %s", cg->path, strerror(-r));
	return 0;
}
