/* SPDX-License-Identifier: MIT */
/*
 * A runc container's cgroup (its freezer's, v1, or its v2 directory): the
 * processes in it, which the dump seizes and checks against the tree; the
 * limits `runc update` may have changed, recorded and set again on the
 * restored container (with `runc update`, or written when runc cannot).
 */
#define LOG_PREFIX "runc: "
#include "container/runc-internal.h"
#include "container/runc.h"
#include "base/child.h"
#include "base/json.h"
#include "base/log.h"
#include "proc/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/inotify.h>
#include <unistd.h>

static int write_str(const char *dir, const char *name, const char *val)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		return dm_fail(neg_errno(), "%s: %m", p);
	return 0;
}

static int read_str(const char *dir, const char *name, char **ret)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	size_t len;
	int r = read_full_file(p, 1 << 20, ret, &len);
	if (r < 0)
		return dm_fail(r, "%s: %s", p, strerror(-r));
	return 0;
}

/* A limit file's value: its first line */
static int read_limit(const char *dir, const char *name, char **ret)
{
	int r = read_str(dir, name, ret);
	if (r >= 0)
		(*ret)[strcspn(*ret, "\n")] = 0;
	return r;
}

/* Every process of the container's cgroup: the dump seizes them at once. */
int runc_list_procs(void *arg, pid_t **ret, size_t *ret_n)
{
	struct runc_ct *ct = arg;
	_cleanup_free_ char *procs = NULL;
	pid_t *v = NULL;
	size_t n = 0;
	int r = read_str(ct->freezer ? ct->freezer : ct->cg2, "cgroup.procs", &procs);

	if (r < 0)
		return r;
	for (char *s = procs, *e; *s; s = e) {
		long pid = strtol(s, &e, 10);
		if (e == s)
			break;
		APPEND(v, n, (pid_t)pid);
		while (*e == '\n')
			e++;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Everything in the container's cgroup must be the tree: a process left by
 * `runc exec` (its runc still waits for it outside) would be lost. */
int runc_check_tree(void *arg, const pid_t *pids, size_t n)
{
	struct runc_ct *ct = arg;
	_cleanup_free_ pid_t *in_cg = NULL;
	size_t n_cg = 0;
	int r = runc_list_procs(ct, &in_cg, &n_cg);

	if (r < 0)
		return r;
	for (size_t k = 0; k < n_cg; k++) {
		long v = in_cg[k];
		bool in = false;
		for (size_t i = 0; i < n && !in; i++)
			in = pids[i] == v;
		if (!in) {
			char comm[PROC_COMM_MAX + 1] = "?";
			proc_read_comm((pid_t)v, 0, comm);
			dm_error_clear();
			return dm_fail(-ENOTSUP, "process %ld (%s) is in container '%s' but not below its "
				       "init (a `runc exec` whose runc still waits for it): it would "
				       "be lost", v, comm, ct->id);
		}
	}
	return 0;
}

static const struct cg_file {
	const char *ctl, *file, *runc_flag;
} cg_files[] = {
	{ "memory", "memory.limit_in_bytes", "--memory" },
	{ "memory", "memory.soft_limit_in_bytes", "--memory-reservation" },
	{ "memory", "memory.memsw.limit_in_bytes", "--memory-swap" },
	{ "cpu", "cpu.shares", "--cpu-share" },
	{ "cpu", "cpu.cfs_period_us", "--cpu-period" },
	{ "cpu", "cpu.cfs_quota_us", "--cpu-quota" },
	{ "cpuset", "cpuset.cpus", "--cpuset-cpus" },
	{ "cpuset", "cpuset.mems", "--cpuset-mems" },
	{ "pids", "pids.max", "--pids-limit" },
	{ "blkio", "blkio.weight", "--blkio-weight" },
	{ "", "memory.max", "--memory" },
	{ "", "memory.low", "--memory-reservation" },
	{ "", "pids.max", "--pids-limit" },
	{ "", "cpu.weight", NULL },
	{ "", "cpu.max", NULL },
	{ "", "cpuset.cpus", "--cpuset-cpus" },
	{ "", "cpuset.mems", "--cpuset-mems" },
};

static const char *cg_dir(json_t *state, const char *ctl)
{
	return json_str(json_object_get(state, "cgroup_paths"), ctl);
}

void runc_record_cgroup(struct runc_ct *ct)
{
	Dm__Container *m = ct->msg;

	for (size_t i = 0; i < ARRAY_SIZE(cg_files); i++) {
		const char *dir = cg_dir(ct->state, cg_files[i].ctl);
		_cleanup_free_ char *v = NULL;
		if (!dir || read_limit(dir, cg_files[i].file, &v) < 0) {
			dm_error_clear();
			continue;
		}
		Dm__ContainerCgroupValue *cv = xmalloc(sizeof(*cv));
		dm__container_cgroup_value__init(cv);
		cv->controller = xstrdup(cg_files[i].ctl);
		cv->file = xstrdup(cg_files[i].file);
		cv->value = TAKE_PTR(v);
		APPEND(m->cgroup, m->n_cgroup, cv);
	}
}

/* runc's state of the container s made (its cgroup_paths) */
static int started_state(const struct runc_started *s, json_t **ret)
{
	_cleanup_free_ char *sp = xasprintf("%s/%s/state.json", s->root, s->id);
	json_error_t je;

	*ret = json_load_file(sp, 0, &je);
	return *ret ? 0 : dm_fail(-EBADMSG, "%s: %s", sp, je.text);
}

void runc_cgroup_snapshot(struct runc_started *s)
{
	json_t *st = NULL;

	runc_cgroup_snapshot_free(s);
	if (started_state(s, &st) < 0) {
		dm_error_clear();
		return;
	}
	s->cg_watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	s->cg_watch_open = s->cg_snap = s->cg_watch >= 0;
	for (size_t i = 0; i < ARRAY_SIZE(cg_files) && s->cg_snap; i++) {
		const char *dir = cg_dir(st, cg_files[i].ctl);
		_cleanup_free_ char *path = dir ? xasprintf("%s/%s", dir, cg_files[i].file) : NULL;
		char *v = NULL;
		/* watched before it is read: a write after the read is told */
		if (!path || access(path, F_OK) < 0)
			continue;
		if (inotify_add_watch(s->cg_watch, path, IN_MODIFY) < 0 || read_limit(dir, cg_files[i].file, &v) < 0) {
			dm_error_clear();
			runc_cgroup_snapshot_free(s);
			break;
		}
		s->cg_now = xrealloc(s->cg_now, (s->n_cg_now + 1) * sizeof(*s->cg_now));
		s->cg_now[s->n_cg_now++] = (struct runc_cg_now){ xstrdup(cg_files[i].ctl), xstrdup(cg_files[i].file),
								 xstrdup(dir), v };
	}
	json_decref(st);
}

/*
 * The snapshot's values gone, its watch left open: closing an inotify fd
 * that holds watches waits for an SRCU grace period (the marks'
 * destruction: one such close took 15.9 ms here), and the put-back runs in
 * the downtime.  runc_cgroup_snapshot_free() closes it (from
 * runc_restore_done(): the tree runs by then).
 */
static void snapshot_forget(struct runc_started *s)
{
	for (size_t i = 0; i < s->n_cg_now; i++) {
		free(s->cg_now[i].controller);
		free(s->cg_now[i].file);
		free(s->cg_now[i].dir);
		free(s->cg_now[i].value);
	}
	free(s->cg_now);
	s->cg_now = NULL;
	s->n_cg_now = 0;
	s->cg_snap = false;
}

void runc_cgroup_snapshot_free(struct runc_started *s)
{
	snapshot_forget(s);
	if (s->cg_watch_open)
		close(s->cg_watch);
	s->cg_watch_open = false;
	s->cg_watch = -1;
}

/* The snapshot still says what the files hold: no write to any of them
 * since (an operator's `runc update`, a cgroup manager's own) */
static bool snapshot_holds(struct runc_started *s)
{
	char b[sizeof(struct inotify_event) + NAME_MAX + 1];

	if (!s->cg_snap)
		return false;
	ssize_t n = read(s->cg_watch, b, sizeof(b));
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The directory of v's controller and v's file's value now: from the
 * snapshot, else read (st: runc's state, loaded on the first need). */
static int cg_now(struct runc_started *s, json_t **st, const Dm__ContainerCgroupValue *v, const char **ret_dir,
		  char **ret_now)
{
	*ret_dir = NULL;
	*ret_now = NULL;
	/* (a file the snapshot did not read is read now) */
	for (size_t i = 0; s->cg_snap && i < s->n_cg_now; i++)
		if (!strcmp(s->cg_now[i].controller, v->controller) && !strcmp(s->cg_now[i].file, v->file)) {
			*ret_dir = s->cg_now[i].dir;
			*ret_now = xstrdup(s->cg_now[i].value);
			return 0;
		}
	if (!*st) {
		int r = started_state(s, st);
		if (r < 0)
			return r;
	}
	const char *dir = cg_dir(*st, v->controller);
	if (!dir || read_limit(dir, v->file, ret_now) < 0) {
		dm_error_clear();
		return -ENOENT;
	}
	*ret_dir = dir;
	return 0;
}

/*
 * Limits changed with `runc update` since the container was made: the same
 * update on the new one (a file runc cannot update is written directly).
 * What the new one has is compared with as runc_cgroup_snapshot() read it
 * at its launch, unless a file was written since (its inotify watch says
 * so: an operator's `runc update`, a cgroup manager's) or a limit is
 * changed here; then the files are read.  A change the kernel makes by
 * itself (a cpuset shrunk when a CPU went offline) is not told.
 */
int runc_put_back_cgroup(const Dm__Container *m, struct runc_started *s)
{
	json_t *st = NULL;
	int r = 0;

	if (!snapshot_holds(s))
		snapshot_forget(s);

	for (size_t i = 0; i < m->n_cgroup && r >= 0; i++) {
		const Dm__ContainerCgroupValue *v = m->cgroup[i];
		const char *dir, *flag = NULL;
		_cleanup_free_ char *now = NULL, *err = NULL;
		r = cg_now(s, &st, v, &dir, &now);
		if (r == -ENOENT) {
			r = dm_fail(-ENOENT, "the container's cgroup has no %s%s%s: its limit %s cannot "
				    "be set", v->controller, v->controller[0] ? "/" : "", v->file, v->value);
			break;
		}
		if (r < 0)
			break;
		if (!strcmp(now, v->value))
			continue;
		for (size_t k = 0; k < ARRAY_SIZE(cg_files); k++)
			if (!strcmp(cg_files[k].ctl, v->controller) && !strcmp(cg_files[k].file, v->file))
				flag = cg_files[k].runc_flag;
		pr_debug("%s: %s is %s, was %s", s->id, v->file, now, v->value);
		/* a change may change other files too (runc update --memory, the
		 * kernel's own bounds): those are read again from here on */
		if (!flag) {
			r = write_str(dir, v->file, v->value);
			snapshot_forget(s);
			continue;
		}
		snapshot_forget(s);
		unsigned long long n;
		const char *val = v->value;
		if (!strcmp(val, "max") || (sscanf(val, "%llu", &n) == 1 && n >= (1ULL << 62)))
			val = "-1";
		int rc = ctr_run((const char *const[]){ "runc", "--root", s->root, "update", flag, val, s->id,
						    NULL },
			     NULL, 0, CHILD_WAIT_RUNC_MS, NULL, &err);
		if (rc < 0)
			r = rc;
		else if (rc)
			r = dm_fail(-EIO, "runc update %s %s %s (the limit at the "
				    "checkpoint): %s", flag, val, s->id, err ? runc_msg(err) : "failed");
	}
	json_decref(st);
	return r;
}
