/* SPDX-License-Identifier: MIT */
/*
 * What runc made from the config but the container had changed since, put
 * back in the restored container: its network, host name, IPC objects, the
 * files of its tmpfs mounts and its cgroup limits; in a migration beside
 * the restore, on a thread of its own that the restore waits for where it
 * needs it (runc_restore_wait()).
 */
#define LOG_PREFIX "runc: "
#include "container/runc-internal.h"
#include "container/runc.h"
#include "container/ipc.h"
#include "base/child.h"
#include "base/clock.h"
#include "base/log.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An empty tmpfs: runc made it empty too; its top (fd) gets the recorded
 * mode, owner and time (what the archive's "." entry would have given it). */
static int put_back_empty_tmpfs(const Dm__ContainerTmpfs *t, int fd)
{
	if (!t->has_root_mode || !t->has_root_uid || !t->has_root_gid || !t->has_root_mtime_ns ||
	    t->root_mode > 07777)
		return dm_fail(-EBADMSG, "the empty tmpfs at %s: its attributes are not recorded", t->mountpoint);
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = t->root_mtime_ns / 1000000000, .tv_nsec = t->root_mtime_ns % 1000000000 } };
	if (fchown(fd, t->root_uid, t->root_gid) < 0 || fchmod(fd, (mode_t)t->root_mode) < 0 ||
	    futimens(fd, ts) < 0)
		return dm_fail(neg_errno(), "the tmpfs at %s: its mode, owner or time: %m", t->mountpoint);
	return 0;
}

/* The tmpfs mounts' top directories, opened now (the restore may change
 * the process's root later: the files go where the mounts are now). */
static int tmpfs_dirs(const Dm__Container *m, pid_t pid, int **ret)
{
	int *fds = xmalloc((m->n_tmpfs ? m->n_tmpfs : 1) * sizeof(*fds));

	for (size_t i = 0; i < m->n_tmpfs; i++)
		fds[i] = -1;
	*ret = fds;
	for (size_t i = 0; i < m->n_tmpfs; i++) {
		const Dm__ContainerTmpfs *t = m->tmpfs[i];
		_cleanup_free_ char *dir = xasprintf("/proc/%d/root%s", pid, t->mountpoint);
		fds[i] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] < 0)
			return dm_fail(neg_errno(), "the tmpfs at %s: %m", t->mountpoint);
	}
	return 0;
}

static void tmpfs_dirs_close(int *fds, size_t n)
{
	for (size_t i = 0; fds && i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

/* The files of the tmpfs mounts (dirs: tmpfs_dirs()): each archive
 * extracted by tar into its mount, an empty one's top set. */
static int put_back_tmpfs(const Dm__Container *m, const char *images_dir, const int *dirs)
{
	int r;

	for (size_t i = 0; i < m->n_tmpfs; i++) {
		const Dm__ContainerTmpfs *tf = m->tmpfs[i];
		if (tf->has_files && !tf->files) {
			r = put_back_empty_tmpfs(tf, dirs[i]);
			if (r < 0)
				return r;
			continue;
		}
		if (!tf->archive[0] || strchr(tf->archive, '/'))
			return dm_fail(-EBADMSG, "bad tmpfs archive name '%s'", tf->archive);
		_cleanup_free_ char *src = xasprintf("%s/%s", images_dir, tf->archive);
		_cleanup_free_ char *err = NULL;
		/* the mount's directory is tar's fd 3 */
		r = ctr_run((const char *const[]){ "tar", "--numeric-owner", "--xattrs", "-xpf", src, "-C",
					       "/proc/self/fd/3", NULL },
			    &dirs[i], 1, CHILD_WAIT_COPY_MS, NULL, &err);
		if (r < 0)
			return dm_wrap(r, "the files of the tmpfs at %s", tf->mountpoint);
		if (r)
			return dm_fail(-EIO, "the files of the tmpfs at %s: tar: %s", tf->mountpoint,
				       err ? err : "failed");
	}
	return 0;
}

static int put_back_ipc(const Dm__Container *m, const char *images_dir, struct runc_started *s)
{
	if (!m->ipc)
		return 0;
	int r = ipc_restore(s->pid, images_dir, m->ipc);
	free(s->shm_rmid);
	s->n_shm_rmid = ipc_removed_shm(m->ipc, &s->shm_rmid);
	if (r < 0) {
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
		return dm_fail(r, "the container's IPC namespace: %s", msg);
	}
	return 0;
}

/* What runc made from the config but the container had changed since. */
int runc_put_back(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s)
{
	int r;

	uint64_t t = clock_ns();
	if (!o->runtime_made) {
		r = runc_put_back_net(m, s->pid, o->bridge, s, NULL);
		s->t.net = ns_to_ms(t, clock_ns()) - s->t.netlock;
		if (r < 0)
			return r;
	}

	if (m->hostname) {
		t = clock_ns();
		r = runc_uts_hostname(s->pid, NULL, m->hostname);
		s->t.hostname = ns_to_ms(t, clock_ns());
		if (r < 0)
			return r;
	}
	/* before any process of the tree: they attach to the segments */
	t = clock_ns();
	r = put_back_ipc(m, o->images_dir, s);
	s->t.ipc = ns_to_ms(t, clock_ns());
	if (r < 0)
		return r;
	t = clock_ns();
	int *dirs = NULL;
	r = tmpfs_dirs(m, s->pid, &dirs);
	if (r >= 0)
		r = put_back_tmpfs(m, o->images_dir, dirs);
	tmpfs_dirs_close(dirs, m->n_tmpfs);
	s->t.tmpfs = ns_to_ms(t, clock_ns());
	return r;
}

int runc_restore_put_back(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s)
{
	int r = runc_put_back(m, o, s);

	if (r >= 0) {
		uint64_t t = clock_ns();
		r = runc_put_back_cgroup(m, s);
		s->t.cgroup = ns_to_ms(t, clock_ns());
	}
	if (r < 0)
		runc_restore_done(s, false);
	return r;
}

/*
 * A migration's put-back beside the restore (runc_restore_put_back_async()):
 * a thread of ours does what needs neither the tree nor the session's
 * thread (no ptrace: children of its own, files, cgroup files) while the
 * restore makes the tree, which waits for it where it needs it
 * (runc_restore_wait()).
 */
struct runc_job {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;               /* RST_BESIDE_MM, then RST_BESIDE_ALL: its steps done */
	bool tree_made;         /* the restore has made the tree's processes */
	bool stop;              /* runc_restore_done(): do no more */
	int err;                /* the first failure, its message in msg */
	char msg[DM_ERRMSG_MAX];
	Dm__Container *m;       /* its own copy of the record */
	char *images_dir;
	int *dirs;              /* tmpfs_dirs() */
	bool attach;            /* our ends of the veths made at START: up, on their bridges */
	char *bridge;
	struct runc_started *s;
};

static void job_step_done(struct runc_job *j, int done, int r)
{
	pthread_mutex_lock(&j->lock);
	if (r < 0 && !j->err) {
		j->err = r;
		snprintf(j->msg, sizeof(j->msg), "%s", dm_last_error());
	}
	j->done = r < 0 ? RST_BESIDE_ALL : done;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/* Before any process of the tree maps or opens anything: the SysV
 * segments they attach, the tmpfs files they map or open. */
static int job_before_mm(struct runc_job *j)
{
	struct runc_started *s = j->s;
	uint64_t t = clock_ns();
	int r = put_back_ipc(j->m, j->images_dir, s);
	s->t.ipc = ns_to_ms(t, clock_ns());
	t = clock_ns();
	if (r >= 0)
		r = put_back_tmpfs(j->m, j->images_dir, j->dirs);
	s->t.tmpfs = ns_to_ms(t, clock_ns());
	return r;
}

/*
 * That step is a few syscalls when there is no IPC object to make and no
 * tmpfs archive to unpack (an empty tmpfs): then the caller does it before
 * the thread starts, and the restore does not wait for a thread to be
 * scheduled before it maps the tree's memory (0.5-0.9 ms of the downtime in
 * some of redis's migrations here, for 0.02 ms of work).
 */
static bool before_mm_light(const Dm__Container *m)
{
	if (m->ipc) /* even empty, ipc_restore() enters the namespace by a child */
		return false;
	for (size_t i = 0; i < m->n_tmpfs; i++)
		if (!(m->tmpfs[i]->has_files && !m->tmpfs[i]->files))
			return false;
	return true;
}

/* Whether runc_restore_done() stopped the job; tree: first wait until the
 * restore has made the tree's processes (or it is stopped) */
static bool job_stopped(struct runc_job *j, bool tree)
{
	pthread_mutex_lock(&j->lock);
	while (tree && !j->tree_made && !j->stop)
		pthread_cond_wait(&j->cond, &j->lock);
	bool stop = j->stop;
	pthread_mutex_unlock(&j->lock);
	return stop;
}

static void *job_main(void *arg)
{
	struct runc_job *j = arg;
	struct runc_started *s = j->s;
	const Dm__Container *m = j->m;
	uint64_t t;
	int r = 0;

	if (j->done < RST_BESIDE_MM) {
		r = job_before_mm(j);
		job_step_done(j, RST_BESIDE_MM, r);
		if (r < 0)
			return NULL;
	}
	/* nothing of the restore needs the host's side of the network before
	 * the tree runs (its addresses are in its namespace, locked); a
	 * restore that failed meanwhile (the source runs on) gets none.  (This
	 * thread is in the network namespace of the session's, ours.) */
	if (job_stopped(j, false))
		return NULL;
	if (j->attach) {
		t = clock_ns();
		r = runc_net_attach(m, j->bridge);
		s->t.net += ns_to_ms(t, clock_ns());
		if (r < 0) {
			job_step_done(j, RST_BESIDE_ALL, r);
			return NULL;
		}
	}
	/*
	 * The host name and cgroup limits once the tree's processes exist (a
	 * pids.max lowered below the count the tree had, which the kernel lets
	 * stand, would fail their clone3), and before they are given their
	 * credentials and CPUs and run (runc_restore_wait(RST_BESIDE_ALL)): a
	 * cpuset changed after their affinity was set would reset it.
	 */
	if (job_stopped(j, true))
		return NULL;
	if (m->hostname) {
		t = clock_ns();
		r = runc_uts_hostname(s->pid, NULL, m->hostname);
		s->t.hostname = ns_to_ms(t, clock_ns());
	}
	if (r >= 0) {
		t = clock_ns();
		r = runc_put_back_cgroup(m, s);
		s->t.cgroup = ns_to_ms(t, clock_ns());
	}
	job_step_done(j, RST_BESIDE_ALL, r);
	return NULL;
}

/* what the job holds, once its thread ended or never started */
static void job_free(struct runc_job *j)
{
	tmpfs_dirs_close(j->dirs, j->m->n_tmpfs);
	dm__container__free_unpacked(j->m, NULL);
	free(j->images_dir);
	free(j->bridge);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
}

void runc_job_end(struct runc_started *s)
{
	struct runc_job *j = s->job;

	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stop = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->th, NULL);
	job_free(j);
	s->job = NULL;
}

int runc_restore_put_back_async(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s)
{
	uint64_t t = clock_ns();
	bool attach = false;
	int r = runc_put_back_net(m, s->pid, o->bridge, s, &attach);

	s->t.net = ns_to_ms(t, clock_ns()) - s->t.netlock;
	struct runc_job *j = xcalloc(1, sizeof(*j));
	j->attach = attach;
	j->bridge = o->bridge ? xstrdup(o->bridge) : NULL;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->s = s;
	j->images_dir = xstrdup(o->images_dir);
	/* its own copy: the caller's may go before the thread ends */
	size_t len = dm__container__get_packed_size(m);
	_cleanup_free_ uint8_t *buf = xmalloc(len ? len : 1);
	dm__container__pack(m, buf);
	j->m = dm__container__unpack(NULL, len, buf);
	if (!j->m)
		abort();
	if (r >= 0)
		r = tmpfs_dirs(m, s->pid, &j->dirs);
	if (r >= 0 && before_mm_light(j->m)) {
		r = job_before_mm(j);
		if (r >= 0)
			j->done = RST_BESIDE_MM;
	}
	if (r >= 0) {
		r = -pthread_create(&j->th, NULL, job_main, j);
		if (r < 0)
			dm_fail(r, "cannot start a thread: %s", strerror(-r));
	}
	if (r < 0) {
		job_free(j);
		runc_restore_done(s, false);
		return r;
	}
	s->job = j;
	return 0;
}

int runc_restore_wait(void *arg, int stage)
{
	struct runc_started *s = arg;
	struct runc_job *j = s->job;
	int r;

	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	if (stage >= RST_BESIDE_MM && !j->tree_made) {
		j->tree_made = true;
		pthread_cond_broadcast(&j->cond);
	}
	while (j->done < stage)
		pthread_cond_wait(&j->cond, &j->lock);
	r = j->err;
	pthread_mutex_unlock(&j->lock);
	if (r < 0)
		dm_error_set_message(j->msg);
	return r;
}

json_t *runc_putback_stats_json(const struct runc_started *s)
{
	return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "launch_ms", s->t.launch, "early_lock_ms",
			 s->t.early_lock, "early_net_ms", s->t.early_net, "netlock_ms", s->t.netlock,
			 "net_ms", s->t.net, "hostname_ms", s->t.hostname, "ipc_ms", s->t.ipc, "tmpfs_ms",
			 s->t.tmpfs, "cgroup_ms", s->t.cgroup);
}
