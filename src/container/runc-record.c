/* SPDX-License-Identifier: MIT */
/*
 * What the image keeps of a runc container (runc_record*): its namespaces,
 * host name, network, cgroup limits, mounts (a tmpfs's files and those made
 * in runc's /dev, in tar files), and its IPC objects, read by a thread of
 * their own beside the dump; and what it holds that would not come back is
 * refused, named.  runc_base_record(): what the destination can prepare
 * before the freeze.
 */
#define LOG_PREFIX "runc: "
#include "container/runc-internal.h"
#include "container/runc.h"
#include "container/dirtar.h"
#include "container/ipc.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "proc/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define MQUEUE_MAGIC 0x19800202 /* ipc/mqueue.c: not in linux/magic.h */

/*
 * The host name of pid's UTS namespace: read (set NULL) or set.  The
 * calling thread joins the namespace for the call (a UTS namespace is per
 * thread) and comes back: no fork while the container is frozen.
 */
int runc_uts_hostname(pid_t pid, char **ret_get, const char *set)
{
	char path[64], name[HOST_NAME_MAX + 1];
	_cleanup_close_ int ns = -1, back = -1;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/ns/uts", pid);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	back = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC);
	if (back < 0)
		return dm_fail(neg_errno(), "cannot open our own UTS namespace: %m");
	if (setns(ns, CLONE_NEWUTS) < 0)
		return dm_fail(neg_errno(), "cannot enter the UTS namespace of process %d: %m", pid);
	if (set && sethostname(set, strlen(set)) < 0)
		r = dm_fail(neg_errno(), "sethostname(%s) in the UTS namespace of process %d: %m", set, pid);
	else if (!set && gethostname(name, sizeof(name)) < 0)
		r = dm_fail(neg_errno(), "gethostname in the UTS namespace of process %d: %m", pid);
	if (setns(back, CLONE_NEWUTS) < 0) {
		/* a thread left in the container's namespace must not go on */
		pr_err("cannot return to our own UTS namespace: %m");
		abort();
	}
	if (r >= 0 && ret_get) {
		name[sizeof(name) - 1] = 0;
		*ret_get = xstrdup(name);
	}
	return r;
}

static bool config_has_mount(struct runc_ct *ct, const char *mp)
{
	json_t *ms = json_object_get(ct->config, "mounts"), *m;
	size_t i;

	json_array_foreach(ms, i, m) {
		const char *dst = json_str(m, "destination");
		if (!dst)
			continue;
		size_t l = strlen(dst);
		while (l > 1 && dst[l - 1] == '/')
			l--;
		if (strlen(mp) == l && strncmp(dst, mp, l) == 0)
			return true;
	}
	return false;
}

static bool under(const char *mp, const char *dir)
{
	size_t l = strlen(dir);
	return strncmp(mp, dir, l) == 0 && (mp[l] == '/' || mp[l] == 0);
}

static int record_ns(struct runc_ct *ct)
{
	static const enum proc_ns_type types[] = { PROC_NS_CGROUP, PROC_NS_IPC, PROC_NS_MNT,
						   PROC_NS_NET, PROC_NS_PID, PROC_NS_UTS };
	static const char *const oci[] = { "cgroup", "ipc", "mount", "network", "pid", "uts" };
	Dm__Container *m = ct->msg;

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		uint64_t ino = 0, ours = 0;
		int r = proc_read_ns(ct->pid, types[i], &ino);
		if (r < 0)
			return dm_fail(r, "container '%s': %s namespace: %s", ct->id,
				       proc_ns_name(types[i]), strerror(-r));
		/* the calling thread's own (not the process's: the record runs
		 * beside the dump, whose thread enters the container's network
		 * namespace to lock it) */
		if (proc_read_ns((pid_t)gettid(), types[i], &ours) == 0 && ours == ino)
			continue;
		dm_error_clear();
		Dm__ContainerNs *n = xmalloc(sizeof(*n));
		dm__container_ns__init(n);
		n->type = xstrdup(proc_ns_name(types[i]));
		n->ino = ino;
		json_t *nss = json_object_get(json_object_get(ct->config, "linux"), "namespaces"), *e;
		size_t k;
		json_array_foreach(nss, k, e) {
			const char *t = json_str(e, "type"), *path = json_str(e, "path");
			if (t && path && !strcmp(t, oci[i]))
				n->path = xstrdup(path);
		}
		APPEND(m->namespaces, m->n_namespaces, n);
	}
	return 0;
}

/*
 * What runc makes in its /dev tmpfs from the config, made again by runc at
 * restore: the default devices and links (libcontainer's), the config's
 * linux.devices, and the mount points on it (pts, shm, mqueue: mounts of
 * their own).
 */
static bool runc_makes(struct runc_ct *ct, const char *rel)
{
	static const char *const made[] = { "null", "zero", "full", "random", "urandom", "tty",
					    "console", "ptmx", "fd", "stdin", "stdout", "stderr",
					    "core", "pts", "shm", "mqueue" };
	json_t *devs = json_object_get(json_object_get(ct->config, "linux"), "devices"), *e;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(made); i++)
		if (!strcmp(rel, made[i]))
			return true;
	json_array_foreach(devs, i, e) {
		const char *p = json_str(e, "path");
		if (p && !strncmp(p, "/dev/", 5) && !strcmp(p + 5, rel))
			return true;
	}
	return false;
}

struct dev_walk {
	struct runc_ct *ct;
	dev_t dev;              /* the /dev tmpfs: another file system is a mount */
	char **names;           /* "./REL" each (dirtar_create's only) */
	size_t n;
};

/* The entries of dir (rel: its path under /dev, "" for /dev) runc does not make. */
static int walk_dev(struct dev_walk *w, int dfd, const char *rel, int depth)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	int fd = dup(dfd);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return dm_fail(neg_errno(), "container '%s': /dev/%s: %m", w->ct->id, rel);
	}
	while ((e = readdir(d))) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		_cleanup_free_ char *p = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return dm_fail(neg_errno(), "container '%s': /dev/%s: %m", w->ct->id, p);
		/* a socket file is the name of a bound unix socket: the restore of
		 * that socket binds it again (docs/net.md) */
		if (st.st_dev != w->dev || S_ISSOCK(st.st_mode) || (!rel[0] && runc_makes(w->ct, e->d_name)))
			continue;
		if (w->n >= 100000 || depth > 64)
			return dm_fail(-E2BIG, "container '%s': too many files in /dev", w->ct->id);
		APPEND(w->names, w->n, xasprintf("./%s", p));
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							 O_CLOEXEC);
			if (sub < 0)
				return dm_fail(neg_errno(), "container '%s': /dev/%s: %m", w->ct->id, p);
			int r = walk_dev(w, sub, p, depth + 1);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * runc's /dev tmpfs: the files, directories, links, FIFOs and nodes a
 * service made there (not runc's devices and links, which runc makes again
 * from the config), in one more tar file restored like a tmpfs's.
 */
static int record_dev(struct runc_ct *ct, const char *images_dir)
{
	_cleanup_free_ char *src = xasprintf("/proc/%d/root/dev", ct->pid), *dst = NULL;
	_cleanup_close_ int dfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	Dm__Container *m = ct->msg;
	struct stat st;
	int r;

	if (dfd < 0 || fstat(dfd, &st) < 0)
		return dm_fail(neg_errno(), "container '%s': its /dev: %m", ct->id);
	struct dev_walk w = { .ct = ct, .dev = st.st_dev };
	r = walk_dev(&w, dfd, "", 0);
	if (r < 0 || !w.n)
		goto out;
	Dm__ContainerTmpfs *t = xmalloc(sizeof(*t));
	dm__container_tmpfs__init(t);
	t->mountpoint = xstrdup("/dev");
	t->archive = xasprintf("tmpfs-%zu.tar", m->n_tmpfs);
	t->has_files = true;
	t->files = w.n;
	APPEND(m->tmpfs, m->n_tmpfs, t);
	dst = xasprintf("%s/%s", images_dir, t->archive);
	r = dirtar_create(src, (const char *const *)w.names, w.n, dst, NULL);
	if (r < 0)
		r = dm_wrap(r, "container '%s': saving the files made in its /dev", ct->id);
out:
	for (size_t i = 0; i < w.n; i++)
		free(w.names[i]);
	free(w.names);
	return r;
}

/* 1 when dir holds nothing (its attributes in *st), 0 when it holds
 * something, or -errno */
static int tmpfs_empty(const char *dir, struct stat *st)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *e;

	if (!d || fstat(dirfd(d), st) < 0)
		return dm_fail(neg_errno(), "%s: %m", dir);
	while ((errno = 0, e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			return 0;
	return errno ? dm_fail(neg_errno(), "%s: %m", dir) : 1;
}

static int record_mounts(struct runc_ct *ct, const struct proc_mount_list *ml, const char *images_dir)
{
	Dm__Container *m = ct->msg;
	int r;

	for (size_t i = 0; i < ml->n; i++) {
		const struct proc_mount *pm = &ml->mounts[i];
		const char *mp = pm->mountpoint;
		Dm__ContainerMount *cm = xmalloc(sizeof(*cm));
		dm__container_mount__init(cm);
		cm->mountpoint = xstrdup(mp);
		cm->fstype = xstrdup(pm->fstype ? pm->fstype : "");
		cm->source = xstrdup(pm->source ? pm->source : "");
		cm->options = xstrdup(pm->options ? pm->options : "");
		APPEND(m->mounts, m->n_mounts, cm);
		/* runc's own: the root, /proc and /sys masks, /dev and its devices */
		bool configured = config_has_mount(ct, mp);
		if (!strcmp(mp, "/") || under(mp, "/proc") || under(mp, "/sys") ||
		    (under(mp, "/dev") && !configured))
			continue;
		if (!configured)
			return dm_fail(-ENOTSUP, "container '%s': the %s mount at %s was made at run time "
				       "(it is not in the config): it would not come back", ct->id,
				       pm->fstype, mp);
		if (!pm->fstype || strcmp(pm->fstype, "tmpfs"))
			continue;
		/* runc's /dev: what runc makes there comes again, the rest is ours */
		if (!strcmp(mp, "/dev")) {
			r = record_dev(ct, images_dir);
			if (r < 0)
				return r;
			continue;
		}
		/* a tmpfs of the config: runc makes it empty, its files are ours */
		Dm__ContainerTmpfs *t = xmalloc(sizeof(*t));
		dm__container_tmpfs__init(t);
		t->mountpoint = xstrdup(mp);
		APPEND(m->tmpfs, m->n_tmpfs, t);
		_cleanup_free_ char *src = xasprintf("/proc/%d/root%s", ct->pid, mp);
		struct stat st;
		r = tmpfs_empty(src, &st);
		if (r < 0)
			return dm_wrap(r, "container '%s': the tmpfs at %s", ct->id, mp);
		if (r > 0) {
			/* nothing in it (often so: /dev/shm): its top's attributes only */
			t->archive = xstrdup("");
			t->has_files = true;
			t->files = 0;
			t->has_root_mode = t->has_root_uid = t->has_root_gid = t->has_root_mtime_ns = true;
			t->root_mode = st.st_mode & 07777;
			t->root_uid = st.st_uid;
			t->root_gid = st.st_gid;
			t->root_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			continue;
		}
		t->archive = xasprintf("tmpfs-%zu.tar", m->n_tmpfs - 1);
		_cleanup_free_ char *dst = xasprintf("%s/%s", images_dir, t->archive);
		r = dirtar_create(src, NULL, 0, dst, NULL);
		if (r < 0)
			return dm_wrap(r, "container '%s': saving the files of the tmpfs at %s", ct->id, mp);
	}
	return 0;
}

/*
 * The restore opens a file by its path inside the container: a file or
 * directory the tree holds on a mount of another mount namespace (a log file
 * of the host given to runc as stdout) would be another file there.  Devices
 * are the same device on either side; pipes and sockets have no path.
 */
static int check_fds(struct runc_ct *ct, const struct proc_mount_list *ml)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n_pids = 0;
	int r = runc_list_procs(ct, &pids, &n_pids);
	if (r < 0)
		return r;
	for (size_t k = 0; k < n_pids; k++) {
		long pid = pids[k];
		_cleanup_free_ char *dir = xasprintf("/proc/%ld/fd", pid);
		_cleanup_closedir_ DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[320], link[512] = "", info[4096];
			struct stat st;
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid, de->d_name);
			if (stat(path, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
				continue;
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			link[n > 0 ? n : 0] = 0;
			if (!strncmp(link, "/memfd:", 7) || !link[0] || link[0] != '/')
				continue;
			/* a POSIX queue's descriptor: the fd layer's (dump/fd-mqueue.c) */
			struct statfs sfs;
			if (statfs(path, &sfs) == 0 && sfs.f_type == MQUEUE_MAGIC)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fdinfo/%s", pid, de->d_name);
			_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
			ssize_t l = fd < 0 ? -1 : read(fd, info, sizeof(info) - 1);
			const char *mi = l > 0 ? (info[l] = 0, strstr(info, "mnt_id:")) : NULL;
			if (!mi)
				continue;
			int mnt_id = atoi(mi + 7);
			bool found = false;
			for (size_t i = 0; i < ml->n && !found; i++)
				found = ml->mounts[i].mnt_id == mnt_id;
			if (found)
				continue;
			char comm[PROC_COMM_MAX + 1] = "?";
			proc_read_comm((pid_t)pid, 0, comm);
			dm_error_clear();
			return dm_fail(-ENOTSUP, "fd %s of process %ld (%s) in container '%s' is %s, on a "
				       "mount outside the container (given from the host?): the restore "
				       "would not find it", de->d_name, pid, comm, ct->id, link);
		}
	}
	return 0;
}

/* The container has a namespace of that type that runc made (not the
 * dumper's, not one the config joins by path). */
static bool own_ns(const Dm__Container *m, const char *type)
{
	for (size_t k = 0; k < m->n_namespaces; k++)
		if (!strcmp(m->namespaces[k]->type, type))
			return !m->namespaces[k]->path;
	return false;
}

/* The IPC thread's result (its refusal named), ipc its handle */
static int record_ipc_finish(struct runc_ct *ct, struct ipc_dump *ipc)
{
	int ri = ipc_dump_finish(ipc, &ct->msg->ipc);
	if (ri < 0) {
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
		return dm_fail(ri, "container '%s': its IPC namespace: %s", ct->id, msg);
	}
	return 0;
}

/* SysV objects and POSIX queues (runc makes the namespace empty): read by a
 * child of ours.  Only a namespace runc made: one the config joins by path,
 * or the host's, outlives the container with what it holds */
static int record_ipc_start(struct runc_ct *ct, const char *images_dir, struct ipc_dump **ret)
{
	*ret = NULL;
	return own_ns(ct->msg, "ipc") ? ipc_dump_start(ct->pid, images_dir, ret) : 0;
}

/* What the dump of the tree reads of the record: the namespaces (whose
 * network and IPC namespace are the container's own), its IPC objects (a
 * descriptor of a POSIX queue is one of them); and the host name. */
static int record_head(struct runc_ct *ct, uint64_t *t)
{
	int r = record_ns(ct);
	ct->rt.ns = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	if (r < 0)
		return r;
	r = runc_uts_hostname(ct->pid, &ct->msg->hostname, NULL);
	ct->rt.hostname = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	return r;
}

/* The rest, which the dump does not read: network, fds held on host
 * mounts, cgroup limits, mounts and tmpfs files (the mount table read
 * once for the last two: in the freeze, on the CPU the dump's second
 * worker wants; its time is in fds_ms). */
static int record_tail(struct runc_ct *ct, const char *images_dir, uint64_t *t)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list ml = {};
	int r = runc_record_net_frozen(ct);
	ct->rt.net = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	if (r >= 0) {
		r = proc_read_mountinfo(ct->pid, &ml);
		if (r < 0)
			r = dm_fail(r, "container '%s': mountinfo: %s", ct->id, strerror(-r));
	}
	if (r >= 0)
		r = check_fds(ct, &ml);
	ct->rt.fds = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	if (r >= 0) {
		runc_record_cgroup(ct);
		ct->rt.cgroup = ns_to_ms(*t, clock_ns());
		*t = clock_ns();
		r = record_mounts(ct, &ml, images_dir);
		ct->rt.mounts = ns_to_ms(*t, clock_ns());
		*t = clock_ns();
	}
	return r;
}

int runc_record(struct runc_ct *ct, const char *images_dir)
{
	struct ipc_dump *ipc = NULL;
	uint64_t t = clock_ns();
	int r;

	r = record_head(ct, &t);
	if (r < 0)
		return r;
	/* the IPC thread runs beside the steps below, in the same freeze */
	r = record_ipc_start(ct, images_dir, &ipc);
	if (r >= 0)
		r = record_tail(ct, images_dir, &t);
	if (!ipc)
		return r;
	/* its refusal first: it is the older step */
	t = clock_ns();
	int ri = record_ipc_finish(ct, ipc);
	ct->rt.ipc_wait = ns_to_ms(t, clock_ns());
	return ri < 0 ? ri : r;
}

int runc_record_head(struct runc_ct *ct, const char *images_dir)
{
	uint64_t t = clock_ns();
	int r = record_head(ct, &t);

	ct->ipc_expected = r >= 0 && own_ns(ct->msg, "ipc");
	return r;
}

int runc_record_tail(struct runc_ct *ct, const char *images_dir)
{
	struct ipc_dump *ipc = NULL;
	uint64_t t = clock_ns();
	int r = 0, ri = 0;

	/* the IPC thread beside the steps below (and the dump) */
	if (ct->ipc_expected)
		ri = ipc_dump_start(ct->pid, images_dir, &ipc);
	if (ri >= 0)
		r = record_tail(ct, images_dir, &t);
	if (ipc) {
		t = clock_ns();
		ri = record_ipc_finish(ct, ipc);
		ct->rt.ipc_wait = ns_to_ms(t, clock_ns());
	}
	pthread_mutex_lock(&ct->ipc_lock);
	ct->ipc_done = true;
	pthread_cond_broadcast(&ct->ipc_cond);
	pthread_mutex_unlock(&ct->ipc_lock);
	/* its refusal first: it is the older step */
	return ri < 0 ? ri : r;
}

json_t *runc_record_stats_json(const struct runc_ct *ct)
{
	return json_pack("{s:f,s:f,s:f,s:b,s:f,s:f,s:f,s:f}", "namespaces_ms", ct->rt.ns, "hostname_ms",
			 ct->rt.hostname, "net_ms", ct->rt.net, "net_from_start", ct->net_early_used, "fds_ms",
			 ct->rt.fds, "cgroup_ms", ct->rt.cgroup, "mounts_ms", ct->rt.mounts, "ipc_ms", ct->rt.ipc_wait);
}

int runc_base_record(struct runc_ct *ct, uint8_t **ret, size_t *ret_len)
{
	Dm__Container *m = ct->msg;
	Dm__Container b = DM__CONTAINER__INIT;

	if (!m)
		return dm_fail(-EINVAL, "container '%s': not described yet", ct->id);
	b.runtime = m->runtime;
	b.id = m->id;
	b.bundle = m->bundle;
	b.config = m->config;
	b.runc_root = m->runc_root;
	/*
	 * Its network as it is now, while it runs: the destination makes it
	 * before the freeze (runc_restore_prepare()), and only attaches it in
	 * the downtime if the record made while frozen says the same.  What
	 * cannot be read or would be refused is left out here (the frozen
	 * record refuses it, named): the destination then makes it all then.
	 */
	Dm__Container *net = xmalloc(sizeof(*net));
	dm__container__init(net);
	ct->msg = net;
	/* and the frozen record takes it if nothing changed since (the watches
	 * opened before the read) */
	runc_net_early_watch(ct);
	int r = record_ns(ct);
	if (r >= 0)
		r = runc_record_net(ct);
	ct->msg = m;
	if (r >= 0) {
		b.n_interfaces = net->n_interfaces;
		b.interfaces = net->interfaces;
		b.n_routes = net->n_routes;
		b.routes = net->routes;
	} else {
		pr_debug("container '%s': its network is not described at START: %s", ct->id, dm_last_error());
		dm_error_clear();
	}
	*ret_len = dm__container__get_packed_size(&b);
	*ret = xmalloc(*ret_len ? *ret_len : 1);
	dm__container__pack(&b, *ret);
	if (r >= 0) {
		runc_net_early_keep(ct, net);
	} else {
		runc_net_early_drop(ct);
		dm__container__free_unpacked(net, NULL);
	}
	return 0;
}
