/* SPDX-License-Identifier: MIT */
/*
 * runc containers: what runc knows of one (its state and the config it was
 * made from), the dump's hooks, and its deletion after a migration
 * (runc.h, docs/containers.md).  The rest, each with its own header
 * comment: runc-cmd.c (runs runc and helpers), runc-cgroup.c (the cgroup:
 * its processes, its limits), runc-record.c (what the image keeps of a
 * container), runc-net.c (its network: read, checked, made again),
 * runc-restore.c (its restore under runc: the stub's launch and handoff),
 * runc-putback.c (what runc does not make again, put back); what they
 * share is in runc-internal.h.
 */
#define LOG_PREFIX "runc: "
#include "container/runc-internal.h"
#include "container/runc.h"
#include "base/child.h"
#include "base/json.h"
#include "base/log.h"
#include "proc/proc.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int runc_parse_target(const char *arg, const char **ret_id, pid_t *ret_pid)
{
	long v;

	if (strncmp(arg, "runc:", 5) == 0) {
		if (!arg[5] || strchr(arg + 5, '/'))
			return dm_fail(-EINVAL, "bad container id in '%s'", arg);
		*ret_id = arg + 5;
		return 1;
	}
	if (strncmp(arg, "pid:", 4) == 0 && parse_long(arg + 4, &v) == 0 && v > 0 && v <= (1 << 22)) {
		*ret_pid = (pid_t)v;
		return 0;
	}
	return dm_fail(-EINVAL, "bad target '%s' (pid:PID or runc:ID)", arg);
}

static bool file_exists(const char *dir, const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

int runc_open(const char *root, const char *id, struct runc_ct **ret)
{
	_cleanup_free_ char *out = NULL, *err = NULL, *sp = NULL, *cp = NULL;
	struct runc_ct *ct;
	json_error_t je;
	json_t *st;
	int r;

	root = root ? root : RUNC_DEFAULT_ROOT;
	/* nicer than us (a Go start: 20-40 ms of CPU): where we share a parent
	 * cgroup with the container's (a test host), its service comes first */
	r = ctr_run_nicer((const char *const[]){ "runc", "--root", root, "state", id, NULL }, NULL, 0,
			  CHILD_WAIT_RUNC_MS, PREP_NICE_INC, &out, &err);
	if (r < 0)
		return r;
	if (r == 127)
		return dm_fail(-ENOENT, "cannot run runc: %s", err);
	if (r)
		return dm_fail(-ENOENT, "no runc container '%s' under %s: %s", id, root, runc_msg(err));
	st = json_loads(out, 0, &je);
	if (!st)
		return dm_fail(-EBADMSG, "runc state %s: not JSON: %s", id, je.text);
	const char *status = json_str(st, "status"), *bundle = json_str(st, "bundle");
	json_t *annot = json_object_get(st, "annotations");
	json_int_t pid = json_integer_value(json_object_get(st, "pid"));
	if (!status || strcmp(status, "running")) {
		r = dm_fail(-ESRCH, "container '%s' is %s, not running", id, status ? status : "in no state");
		json_decref(st);
		return r;
	}
	ct = xcalloc(1, sizeof(*ct));
	ct->net_watch[0] = ct->net_watch[1] = -1;
	pthread_mutex_init(&ct->ipc_lock, NULL);
	pthread_cond_init(&ct->ipc_cond, NULL);
	ct->root = xstrdup(root);
	ct->id = xstrdup(id);
	ct->pid = (pid_t)pid;
	/* a container we restored runs from a config copy: the user's bundle is kept */
	const char *ub = annot ? json_str(annot, RUNC_BUNDLE_ANNOTATION) : NULL;
	ct->bundle = xstrdup(ub ? ub : bundle ? bundle : "");
	if (ub && bundle && !strncmp(bundle, RUNC_COPY_PREFIX, strlen(RUNC_COPY_PREFIX)))
		ct->copy_bundle = xstrdup(bundle);
	json_decref(st);

	/* cgroups and namespaces: runc's own state file */
	sp = xasprintf("%s/%s/state.json", root, id);
	ct->state = json_load_file(sp, 0, &je);
	if (!ct->state) {
		r = dm_fail(-EBADMSG, "%s: %s", sp, je.text);
		goto fail;
	}
	json_t *paths = json_object_get(ct->state, "cgroup_paths");
	const char *fz = paths ? json_str(paths, "freezer") : NULL, *v2 = paths ? json_str(paths, "") : NULL;
	/* tests: the v2 path on a hybrid host (runc puts the container in both) */
	const char *force = getenv("DMIGRATE_TEST_FREEZER");
	bool want_v2 = force && !strcmp(force, "v2");
	if (fz && file_exists(fz, "freezer.state") && !want_v2)
		ct->freezer = xstrdup(fz);
	else if (v2 && file_exists(v2, "cgroup.freeze"))
		ct->cg2 = xstrdup(v2);
	else {
		r = dm_fail(-ENOTSUP, "container '%s' has no cgroup freezer (neither a v1 freezer nor "
			    "cgroup.freeze in %s's cgroup paths)", id, sp);
		goto fail;
	}
	/* the config it was made from */
	if (ub && !file_exists(ct->bundle, "config.json")) {
		r = dm_fail(-ENOENT, "container '%s': its bundle %s has no config.json", id, ct->bundle);
		goto fail;
	}
	cp = xasprintf("%s/config.json", ct->bundle);
	ct->config = json_load_file(cp, 0, &je);
	if (!ct->config) {
		r = dm_fail(-EBADMSG, "container '%s': %s: %s", id, cp, je.text);
		goto fail;
	}
	const char *rp = json_str(json_object_get(ct->config, "root"), "path");
	if (!rp) {
		r = dm_fail(-EBADMSG, "container '%s': %s has no root.path", id, cp);
		goto fail;
	}
	ct->rootfs = rp[0] == '/' ? xstrdup(rp) : xasprintf("%s/%s", ct->bundle, rp);
	json_t *proc = json_object_get(ct->config, "process");
	if (json_is_true(json_object_get(proc, "terminal"))) {
		r = dm_fail(-ENOTSUP, "container '%s' runs on a terminal (process.terminal): not "
			    "supported", id);
		goto fail;
	}
	*ret = ct;
	return 0;
fail:
	runc_free(ct);
	return r;
}

pid_t runc_init_pid(const struct runc_ct *ct)
{
	return ct->pid;
}

const char *runc_id(const struct runc_ct *ct)
{
	return ct->id;
}

const char *runc_rootfs(const struct runc_ct *ct)
{
	return ct->rootfs;
}

/* An executable runc in PATH, as execvp would find it */
static bool runc_in_path(void)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;

	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *f = xasprintf("%s/runc", *d ? d : ".");
		if (access(f, X_OK) == 0)
			return true;
	}
	return false;
}

int runc_check_here(const char *root, const char *id, const char *rootfs)
{
	_cleanup_free_ char *err = NULL;
	struct stat st;
	int r;

	root = root ? root : RUNC_DEFAULT_ROOT;
	if (!id[0] || strchr(id, '/') || strlen(id) > 1024)
		return dm_fail(-EINVAL, "bad container id");
	/* runc keeps a container's state in ROOT/ID: where there is none, no
	 * container has the id and no runc need start (a Go runtime: 20-40 ms
	 * of CPU, while the source's tree prepares to move); runc must be
	 * there all the same */
	_cleanup_free_ char *dir = xasprintf("%s/%s", root, id);
	if (access(dir, F_OK) < 0 && errno == ENOENT) {
		if (!runc_in_path())
			return dm_fail(-ENOENT, "the container cannot be made here: no runc in PATH");
		r = 1;
	} else {
		r = ctr_run((const char *const[]){ "runc", "--root", root, "state", id, NULL }, NULL, 0,
			    CHILD_WAIT_RUNC_MS, NULL, &err);
	}
	if (r == 127)
		return dm_fail(-ENOENT, "the container cannot be made here: cannot run runc: %s", err);
	if (r == 0)
		return dm_fail(-EEXIST, "a container '%s' exists here already (runc state root %s)", id, root);
	if (r < 0)
		return r;
	if (rootfs && (stat(rootfs, &st) < 0 || !S_ISDIR(st.st_mode)))
		return dm_fail(-ENOENT, "the container's rootfs %s is not here (its bundle must be at the "
			       "same path on both hosts)", rootfs);
	return 0;
}

void runc_free(struct runc_ct *ct)
{
	if (!ct)
		return;
	free(ct->root);
	free(ct->id);
	free(ct->bundle);
	free(ct->copy_bundle);
	free(ct->rootfs);
	free(ct->freezer);
	free(ct->cg2);
	if (ct->state)
		json_decref(ct->state);
	if (ct->config)
		json_decref(ct->config);
	if (ct->msg)
		protobuf_c_message_free_unpacked(&ct->msg->base, NULL);
	runc_net_early_drop(ct);
	pthread_mutex_destroy(&ct->ipc_lock);
	pthread_cond_destroy(&ct->ipc_cond);
	free(ct);
}

/* The record's IPC objects are complete (runc_record_tail() read them). */
static int wait_ipc(void *arg)
{
	struct runc_ct *ct = arg;

	pthread_mutex_lock(&ct->ipc_lock);
	while (ct->ipc_expected && !ct->ipc_done)
		pthread_cond_wait(&ct->ipc_cond, &ct->ipc_lock);
	pthread_mutex_unlock(&ct->ipc_lock);
	return 0;
}

/* the dumped container is killed next: its veths go while it is locked
 * (runc_net_remove_ours()) */
static void before_kill(void *arg)
{
	struct runc_ct *ct = arg;
	if (!ct->managed)
		runc_net_remove_ours(ct->msg);
}

const struct dump_container *runc_dump_hooks(struct runc_ct *ct)
{
	Dm__Container *m = xmalloc(sizeof(*m));
	size_t len = 0;
	char *cfg = json_dumps(ct->config, JSON_COMPACT);

	dm__container__init(m);
	m->runtime = xstrdup("runc");
	m->id = xstrdup(ct->id);
	m->bundle = xstrdup(ct->bundle);
	len = strlen(cfg);
	m->config.data = (uint8_t *)cfg;
	m->config.len = len;
	m->runc_root = xstrdup(ct->root);
	m->cgroup_freezer = xstrdup(ct->freezer ? "v1" : "v2");
	ct->msg = m;
	ct->hooks = (struct dump_container){ .list = runc_list_procs, .check_tree = runc_check_tree,
					     .wait_ipc = wait_ipc, .before_kill = before_kill, .arg = ct,
					     .msg = m };
	return &ct->hooks;
}

void runc_set_managed(struct runc_ct *ct)
{
	ct->managed = true;
}

int runc_finish(struct runc_ct *ct, bool left_running)
{
	_cleanup_free_ char *err = NULL;
	int r;

	if (left_running || ct->managed)
		return 0;
	/* its init was killed: once it is a zombie or gone (its parent is not
	 * ours to wait for), runc sees the container stopped and deletes it:
	 * its id must be free for the restore */
	for (int i = 0; i < 10000; i++) {
		struct proc_stat ps;
		if (proc_read_stat(ct->pid, 0, &ps) < 0 || ps.state == 'Z' || ps.state == 'X')
			break;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	dm_error_clear();
	/* not -f: it refuses an init that is a zombie its parent did not reap yet */
	r = ctr_run((const char *const[]){ "runc", "--root", ct->root, "delete", ct->id, NULL }, NULL, 0,
		CHILD_WAIT_RUNC_MS, NULL, &err);
	if (r < 0)
		return r;
	if (r)
		return dm_fail(-EIO, "runc delete %s: %s", ct->id, err ? runc_msg(err) : "failed");
	if (ct->copy_bundle)
		rm_rf(ct->copy_bundle);
	return 0;
}
