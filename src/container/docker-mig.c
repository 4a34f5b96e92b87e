/* SPDX-License-Identifier: MIT */
/*
 * Docker containers as migration targets: the source's and the destination's
 * steps around the ordinary runc-container migration (docker-mig.h,
 * docs/docker.md).
 */
#define LOG_PREFIX "docker: "
#include "container/docker-mig.h"
#include "container/docker.h"
#include "container/image-tar.h"
#include "container/runc-internal.h"
#include "base/child.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "migrate/migrate.h"
#include "net/inet.h"
#include "proc/proc.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>

/* how long `docker start` of the restored container may take, the runtime's
 * hand-off included */
#define DOCKER_START_WAIT_MS 60000

/* Runs argv; the last line it wrote on stderr into err.  The exit status,
 * or -errno. */
static int run_cmd(const char *const argv[], char *err, size_t errlen)
{
	_cleanup_free_ char *e = NULL;
	int r = ctr_run(argv, NULL, 0, CHILD_WAIT_COPY_MS, NULL, &e);

	err[0] = 0;
	if (e) {
		size_t l = strlen(e);
		while (l && e[l - 1] == '\n')
			e[--l] = 0;
		char *last = strrchr(e, '\n');
		snprintf(err, errlen, "%s", last ? last + 1 : e);
	}
	return r;
}

#define VOLUMES_FILE "docker-volumes.json"

/* ------------------------------------------------------------ source */

struct docker_src {
	struct docker *dk;
	json_t *inspect;
	char *inspect_text;
	struct docker_ctr ctr;
	struct runc_ct *ct;
	json_t *policy;         /* the restart policy before docker_src_hold() */
	bool held;
	Dm__RootfsEntry **dirs; /* its layer's directories (docker_src_layer_dirs) */
	size_t n_dirs;
	bool dirs_walked, dirs_all;
	char **layers;          /* its image's diff IDs, lowest first */
	size_t n_layers;
	/* its address changes: the lock's removal at the switch-over, made
	 * ahead in its namespace (docker_src_committed()) */
	struct netlock_opener *opener;
};

static int held_check(struct docker_src *ds);

/* A container's address is another one on another host: it is on a default
 * bridge (inspect: Docker's view of it) */
static bool address_changes(json_t *inspect)
{
	const char *nm = json_str(json_object_get(inspect, "HostConfig"), "NetworkMode");
	return !nm || !strcmp(nm, "default") || !strcmp(nm, "bridge");
}

/* The removal of the network lock of pid's namespace, made there ahead
 * (one sendmsg when it is used); NULL if it cannot be (the lock's removal
 * is nft's script then).  what: for the log. */
static struct netlock_opener *opener_in(pid_t pid, const char *what)
{
	struct netlock_opener *o = NULL;
	_cleanup_close_ int ns = -1;
	int back = -1;
	if (netns_of_pid(pid, &ns) > 0 && netns_enter(ns, &back) >= 0) {
		if (netlock_opener_new(NETLOCK_NETNS_NAME, &o) < 0)
			pr_debug("%s is not prepared: %s", what, dm_last_error());
		netns_leave(back);
	}
	dm_error_clear();
	return o;
}

/*
 * Docker's runc keeps its containers' state under the exec root's
 * runtime-<runtime name>/moby (Docker 20.10), or containerd's
 * /run/containerd/runc/moby (newer Docker with containerd's runc shim).
 */
static int find_runc_root(const char *runtime, const char *id, char **ret)
{
	char *cands[] = { xasprintf("/run/docker/runtime-%s/moby", runtime),
			  xasprintf("/var/run/docker/runtime-%s/moby", runtime),
			  xstrdup("/run/containerd/runc/moby") };
	for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
		_cleanup_free_ char *root = TAKE_PTR(cands[i]);
		_cleanup_free_ char *st = xasprintf("%s/%s/state.json", root, id);
		if (access(st, F_OK) == 0) {
			*ret = TAKE_PTR(root);
			for (size_t k = i + 1; k < ARRAY_SIZE(cands); k++)
				free(cands[k]);
			return 0;
		}
	}
	return dm_fail(-ENOENT, "the runc state of Docker container %.12s was not found (runtime %s; "
		       "--runc-root names Docker's runc state root)", id, runtime);
}

/* the source keeps an image with layers to leave out here while it reads
 * its manifest (an unnamed file: nothing stays if we die) */
#define IMAGE_SPOOL_DIR "/var/tmp"

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* An image's RootFS.Layers (diff IDs, lowest first); none if it is gone. */
static int image_layers(struct docker *dk, const char *ref, char ***ret, size_t *ret_n)
{
	json_t *img = NULL;
	int r = docker_image_inspect(dk, ref, &img);

	*ret = NULL;
	*ret_n = 0;
	if (r == -ENOENT) {
		dm_error_clear();
		return 0;
	}
	if (r < 0)
		return r;
	json_t *l = json_object_get(json_object_get(img, "RootFS"), "Layers");
	size_t n = json_array_size(l);
	char **v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		const char *d = json_string_value(json_array_get(l, i));
		if (!d) {
			free_strv(v);
			json_decref(img);
			return dm_fail(-EBADMSG, "image %.19s: its RootFS.Layers is not a list of digests", ref);
		}
		v[i] = xstrdup(d);
	}
	json_decref(img);
	*ret = v;
	*ret_n = n;
	return 0;
}

int docker_src_open(const char *name, const char *runc_root, struct docker_src **ret)
{
	struct docker_src *ds = xcalloc(1, sizeof(*ds));
	_cleanup_free_ char *root = NULL;
	int r;

	r = docker_open(NULL, &ds->dk);
	if (r < 0)
		goto fail;
	r = docker_inspect(ds->dk, name, &ds->inspect);
	if (r < 0)
		goto fail;
	r = docker_ctr_parse(ds->inspect, &ds->ctr);
	if (r < 0)
		goto fail;
	if (!ds->ctr.running || ds->ctr.paused) {
		r = dm_fail(-EINVAL, "Docker container %s is not running%s", ds->ctr.name,
			    ds->ctr.paused ? " (paused)" : "");
		goto fail;
	}
	r = held_check(ds);
	if (r < 0)
		goto fail;
	json_t *cfg = json_object_get(ds->inspect, "Config");
	if (json_is_true(json_object_get(cfg, "Tty"))) {
		r = dm_fail(-ENOTSUP, "Docker container %s has a terminal (docker run -t): not supported",
			    ds->ctr.name);
		goto fail;
	}
	if (json_is_true(json_object_get(cfg, "OpenStdin"))) {
		r = dm_fail(-ENOTSUP, "Docker container %s keeps its stdin open (docker run -i): not "
			    "supported", ds->ctr.name);
		goto fail;
	}
	/* a namespace shared with another container, which the destination lacks */
	json_t *hc = json_object_get(ds->inspect, "HostConfig");
	static const char *const modes[] = { "NetworkMode", "PidMode", "IpcMode" };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		const char *v = json_str(hc, modes[i]);
		if (v && !strncmp(v, "container:", 10)) {
			r = dm_fail(-ENOTSUP, "Docker container %s shares a namespace with another container "
				    "(%s %s): not supported", ds->ctr.name, modes[i], v);
			goto fail;
		}
	}
	const char *driver = json_str(json_object_get(ds->inspect, "GraphDriver"), "Name");
	if (!ds->ctr.upperdir) {
		r = dm_fail(-ENOTSUP, "Docker container %s: its storage driver %s is not overlay2: its "
			    "layer cannot move", ds->ctr.name, driver ? driver : "?");
		goto fail;
	}
	r = image_layers(ds->dk, ds->ctr.image, &ds->layers, &ds->n_layers);
	if (r < 0)
		goto fail;
	if (runc_root) {
		root = xstrdup(runc_root);
	} else {
		const char *rt = json_str(json_object_get(ds->inspect, "HostConfig"), "Runtime");
		r = find_runc_root(rt && rt[0] ? rt : "runc", ds->ctr.id, &root);
		if (r < 0)
			goto fail;
	}
	r = runc_open(root, ds->ctr.id, &ds->ct);
	if (r < 0)
		goto fail;
	if (runc_init_pid(ds->ct) != ds->ctr.pid) {
		r = dm_fail(-ESRCH, "Docker says container %s runs as pid %d, runc says %d: is this "
			    "dmigrate in dockerd's PID namespace?", ds->ctr.name, ds->ctr.pid,
			    runc_init_pid(ds->ct));
		goto fail;
	}
	runc_set_managed(ds->ct);
	ds->inspect_text = json_dumps(ds->inspect, JSON_COMPACT);
	if (docker_src_address_changes(ds))
		ds->opener = opener_in(ds->ctr.pid, "the unlock at the switch-over");
	*ret = ds;
	return 0;
fail:
	docker_src_free(ds);
	return r;
}

struct runc_ct *docker_src_runc(struct docker_src *ds)
{
	return ds->ct;
}

const char *docker_src_inspect_text(const struct docker_src *ds)
{
	return ds->inspect_text;
}

const char *docker_src_layer(const struct docker_src *ds)
{
	return ds->ctr.upperdir;
}

const char *const *docker_src_image_layers(const struct docker_src *ds, size_t *ret_n)
{
	*ret_n = ds->n_layers;
	return (const char *const *)ds->layers;
}

int docker_src_save_image(struct docker_src *ds, int fd, uint32_t layers_here, uint64_t *ret_skipped)
{
	/* by the name it was run with, where that is still its image: the
	 * destination gets the tag too */
	const char *ref = json_str(json_object_get(ds->inspect, "Config"), "Image");
	json_t *img = NULL;
	bool byref = ref && docker_image_inspect(ds->dk, ref, &img) == 0 &&
		     !strcmp(json_str(img, "Id") ? json_str(img, "Id") : "", ds->ctr.image);
	json_decref(img);
	dm_error_clear();
	ref = byref ? ref : ds->ctr.image;
	*ret_skipped = 0;
	if (!layers_here || !ds->n_layers) {
		int r = docker_image_save(ds->dk, ref, fd);
		if (r == -ENOENT) {
			dm_error_clear();
			return dm_fail(r, "the image of container %s (%.19s) is not on this host either: it "
				       "cannot be sent", ds->ctr.name, ds->ctr.image);
		}
		return r;
	}
	/* the layers the destination has are left out: save's manifest, which
	 * says which file is which layer, comes last, so the tar is kept here
	 * first (on disk, not in memory: an image may be large) */
	_cleanup_close_ int spool = open(IMAGE_SPOOL_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (spool < 0)
		return dm_fail(neg_errno(), "%s: cannot make a file to keep the image in: %m", IMAGE_SPOOL_DIR);
	int r = docker_image_save(ds->dk, ref, spool);
	if (r == -ENOENT) {
		dm_error_clear();
		return dm_fail(r, "the image of container %s (%.19s) is not on this host either: it cannot "
			       "be sent", ds->ctr.name, ds->ctr.image);
	}
	if (r < 0)
		return r;
	return image_tar_without_layers(spool, fd, (const char *const *)ds->layers, ds->n_layers,
					layers_here, ret_skipped);
}

/* at most this many directories go in START (beyond, the destination
 * starts the container once every file is in) */
#define LAYER_DIRS_MAX 20000

static int walk_dirs(struct docker_src *ds, const char *rel, int dfd)
{
	_cleanup_closedir_ DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (!d) {
		close(dfd);
		return dm_fail(neg_errno(), "%s/%s: %m", ds->ctr.upperdir, rel);
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (ds->n_dirs >= LAYER_DIRS_MAX) {
			ds->dirs_all = false;
			return 0;
		}
		_cleanup_free_ char *path = rel[0] ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
		Dm__RootfsEntry *e = xmalloc(sizeof(*e));
		dm__rootfs_entry__init(e);
		e->id = (uint32_t)ds->n_dirs;
		e->path = xstrdup(path);
		e->mode = st.st_mode;
		e->has_uid = e->has_gid = true;
		e->uid = st.st_uid;
		e->gid = st.st_gid;
		/* an opaque directory hides the layers below it: the overlay
		 * must see that when it looks it up */
		_cleanup_free_ char *full = xasprintf("%s/%s", ds->ctr.upperdir, path);
		char v[16];
		static const char *const names[] = { "trusted.overlay.opaque", "user.overlay.opaque" };
		for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
			ssize_t l = lgetxattr(full, names[k], v, sizeof(v));
			if (l <= 0)
				continue;
			Dm__RootfsXattr *x = xmalloc(sizeof(*x));
			dm__rootfs_xattr__init(x);
			x->name = xstrdup(names[k]);
			x->value.len = (size_t)l;
			x->value.data = xmalloc((size_t)l);
			memcpy(x->value.data, v, (size_t)l);
			e->xattrs = xrealloc(e->xattrs, (e->n_xattrs + 1) * sizeof(*e->xattrs));
			e->xattrs[e->n_xattrs++] = x;
		}
		ds->dirs = xrealloc(ds->dirs, (ds->n_dirs + 1) * sizeof(*ds->dirs));
		ds->dirs[ds->n_dirs++] = e;
		int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		int r = walk_dirs(ds, path, sub);
		if (r < 0 || !ds->dirs_all)
			return r;
	}
	return 0;
}

int docker_src_layer_dirs(struct docker_src *ds, Dm__RootfsEntry ***ret, size_t *ret_n, bool *ret_all)
{
	if (!ds->dirs_walked) {
		ds->dirs_walked = true;
		ds->dirs_all = true;
		int fd = open(ds->ctr.upperdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return dm_fail(neg_errno(), "%s: %m", ds->ctr.upperdir);
		int r = walk_dirs(ds, "", fd);
		if (r < 0)
			return r;
	}
	*ret = ds->dirs;
	*ret_n = ds->n_dirs;
	*ret_all = ds->dirs_all;
	return 0;
}

/*
 * While frozen: the contents of its named volumes (the local driver's),
 * one tar each in the image with a list (docker-volumes.json), as the
 * tmpfs mounts of a runc container: they move with the state.
 */
int docker_src_record_volumes(struct docker_src *ds, const char *images_dir)
{
	json_t *mounts = json_object_get(ds->inspect, "Mounts"), *m, *list = json_array();
	size_t i, n = 0;
	int r = 0;

	json_array_foreach(mounts, i, m) {
		const char *type = json_str(m, "Type"), *name = json_str(m, "Name"), *src = json_str(m, "Source");
		const char *drv = json_str(m, "Driver");
		if (!type || strcmp(type, "volume") || !name || !src)
			continue;
		if (drv && strcmp(drv, "local")) {
			r = dm_fail(-ENOTSUP, "container %s: volume %s has the driver %s: its data cannot move",
				    ds->ctr.name, name, drv);
			break;
		}
		_cleanup_free_ char *archive = xasprintf("docker-volume-%zu.tar", n++);
		_cleanup_free_ char *path = xasprintf("%s/%s", images_dir, archive);
		char err[512];
		int k = run_cmd((const char *const[]){ "tar", "--numeric-owner", "--xattrs", "--acls",
						       "--sparse", "-cf", path, "-C", src, ".", NULL },
				err, sizeof(err));
		if (k < 0) {
			r = dm_wrap(k, "container %s: volume %s", ds->ctr.name, name);
			break;
		}
		if (k) {
			r = dm_fail(-EIO, "container %s: volume %s: tar: %s", ds->ctr.name, name,
				    err[0] ? err : "failed");
			break;
		}
		json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "name", name, "destination",
						      json_str(m, "Destination") ? json_str(m, "Destination") : "",
						      "archive", archive));
	}
	if (r >= 0 && n) {
		_cleanup_free_ char *lp = xasprintf("%s/" VOLUMES_FILE, images_dir);
		if (json_dump_file(list, lp, JSON_COMPACT) < 0)
			r = dm_fail(-EIO, "cannot write %s", lp);
	}
	json_decref(list);
	return r;
}

int docker_src_volumes(struct docker_src *ds, struct mig_volume **ret, size_t *ret_n)
{
	json_t *mounts = json_object_get(ds->inspect, "Mounts"), *m;
	struct mig_volume *v = NULL;
	size_t i, n = 0;

	json_array_foreach(mounts, i, m) {
		const char *type = json_str(m, "Type"), *name = json_str(m, "Name"), *src = json_str(m, "Source");
		const char *drv = json_str(m, "Driver"), *at = json_str(m, "Destination");
		if (!type || strcmp(type, "volume") || !name || !src)
			continue;
		if (drv && strcmp(drv, "local")) {
			free(v);
			return dm_fail(-ENOTSUP, "container %s: volume %s has the driver %s: its data cannot move",
				       ds->ctr.name, name, drv);
		}
		if (!at || at[0] != '/') {
			free(v);
			return dm_fail(-EINVAL, "container %s: volume %s has no mount point", ds->ctr.name, name);
		}
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = (struct mig_volume){ .name = name, .dir = src, .at = at };
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void docker_src_committed(struct docker_src *ds, const struct inet_sk_diag *tcp, size_t n_tcp)
{
	_cleanup_close_ int ns = -1;
	unsigned n = 0;
	int back = -1, r;

	if (!docker_src_address_changes(ds))
		return;
	/*
	 * Its address changed: its connections went on nowhere (the copy there
	 * reads EOF on them), and their peers would wait here for a frozen
	 * process until they time out.  The namespace's lock goes and every
	 * TCP socket of it is destroyed: each peer gets a reset now, and
	 * connects again (to the published port there).
	 */
	uint64_t t = clock_ns();
	/* the lock first (the resets must get out), prepared: one sendmsg,
	 * where a fresh libnftables context cost milliseconds before the
	 * peers learnt anything */
	bool unlocked = ds->opener && netlock_unlock_with(ds->opener) >= 0;
	dm_error_clear();
	r = netns_of_pid(ds->ctr.pid, &ns);
	if (r > 0)
		r = netns_enter(ns, &back);
	if (r >= 0 && ns >= 0) {
		if (!unlocked)
			r = netlock_unlock(NETLOCK_NETNS_NAME);
		/* the tree's sockets by their addresses, as the dump found them
		 * (a dump of the namespace's walks the host's whole table of
		 * established sockets: 4-12 ms here); else every one there */
		if (r >= 0)
			r = n_tcp ? inet_diag_destroy_these(tcp, n_tcp, &n) : inet_diag_destroy_tcp(&n);
		netns_leave(back);
	}
	if (r < 0)
		pr_warn("container %s: its connections here could not be reset: %s", ds->ctr.name,
			dm_last_error());
	else if (n)
		pr_info("container %s: %u TCP sockets here reset (its address changed) in %.1f ms", ds->ctr.name, n,
			ns_to_ms(t, clock_ns()));
	dm_error_clear();
}

bool docker_src_address_changes(const struct docker_src *ds)
{
	return address_changes(ds->inspect);
}

const char *docker_src_name(const struct docker_src *ds)
{
	return ds->ctr.name;
}

/*
 * A restart policy held at "no" by a migration has a record, HELD_DIR/<id>:
 * the policy (JSON) and the holder's pid and start time.  The migration's
 * end removes it (its policy put back, or the container gone); a holder
 * killed before that (kill -9 before COMMIT: its tree ran on) leaves it,
 * and the next migration of that container puts the policy back first
 * (held_check): else the container ran on without its restart policy.
 */
#define HELD_DIR "/var/lib/dmigrate/held"

static char *held_path(const char *id)
{
	return xasprintf(HELD_DIR "/%s", id);
}

static void held_note(struct docker_src *ds)
{
	struct proc_stat st;
	_cleanup_free_ char *path = held_path(ds->ctr.id), *pol = json_dumps(ds->policy, JSON_COMPACT);
	_cleanup_free_ char *text = NULL;
	int fd;

	if (proc_read_stat(getpid(), 0, &st) < 0 || !pol)
		return;
	text = xasprintf("%d %llu\n%s\n", (int)getpid(), (unsigned long long)st.start_time, pol);
	if (mkdir_p(HELD_DIR, 0700) < 0 || (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		pr_warn("container %s: cannot note its held restart policy in %s: %m", ds->ctr.name, HELD_DIR);
		return;
	}
	if (write_all(fd, text, strlen(text)) < 0)
		pr_warn("container %s: %s: %m", ds->ctr.name, path);
	close(fd);
}

static void held_forget(struct docker_src *ds)
{
	docker_src_held_forget(ds->ctr.id);
}

void docker_src_held_forget(const char *id)
{
	_cleanup_free_ char *path = held_path(id);
	unlink(path);
}

/*
 * Before a migration of the container: a record left by a holder that is
 * gone puts its policy back (and into our inspect, which saw "no"); one
 * whose holder lives refuses (the container is being migrated).  -errno.
 */
static int held_check(struct docker_src *ds)
{
	_cleanup_free_ char *path = held_path(ds->ctr.id);
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC), pid = 0;
	unsigned long long start = 0;
	ssize_t k;

	if (fd < 0)
		return 0;
	k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[k > 0 ? k : 0] = 0;
	char *nl = strchr(buf, '\n');
	json_error_t je;
	json_t *pol = nl ? json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, &je) : NULL;
	if (!nl || sscanf(buf, "%d %llu", &pid, &start) != 2 || !json_is_object(pol)) {
		json_decref(pol);
		pr_warn("%s: not a record of a held restart policy; removed", path);
		unlink(path);
		return 0;
	}
	struct proc_stat st;
	if (pid > 0 && proc_read_stat(pid, 0, &st) == 0 && st.start_time == start) {
		json_decref(pol);
		return dm_fail(-EBUSY, "Docker container %s is being migrated by process %d", ds->ctr.name, pid);
	}
	const char *name = json_str(pol, "Name");
	int r = docker_update_restart_policy(ds->dk, ds->ctr.id, pol);
	if (r < 0) {
		json_decref(pol);
		return dm_wrap(r, "container %s: putting back the restart policy a migration that did not end "
			       "held", ds->ctr.name);
	}
	pr_warn("container %s: restart policy %s put back (a migration by process %d held it and did not end)",
		ds->ctr.name, name ? name : "?", pid);
	json_object_set_new(json_object_get(ds->inspect, "HostConfig"), "RestartPolicy", pol);
	unlink(path);
	return 0;
}

int docker_src_hold(struct docker_src *ds)
{
	json_t *pol = json_object_get(json_object_get(ds->inspect, "HostConfig"), "RestartPolicy");
	const char *name = json_str(pol, "Name");

	if (!name || !name[0] || !strcmp(name, "no"))
		return 0;
	json_t *no = json_pack("{s:s,s:i}", "Name", "no", "MaximumRetryCount", 0);
	int r = docker_update_restart_policy(ds->dk, ds->ctr.id, no);
	json_decref(no);
	if (r < 0)
		return r;
	ds->policy = json_incref(pol);
	ds->held = true;
	held_note(ds);
	pr_info("container %s: restart policy %s -> no until the migration ends", ds->ctr.name, name);
	return 0;
}

bool docker_src_held(const struct docker_src *ds, const char **ret_host, const char **ret_id, char **ret_policy)
{
	if (!ds || !ds->held)
		return false;
	*ret_host = docker_host(ds->dk);
	*ret_id = ds->ctr.id;
	*ret_policy = json_dumps(ds->policy, JSON_COMPACT);
	return *ret_policy != NULL;
}

void docker_src_end(struct docker_src *ds, bool moved, bool keep)
{
	if (!ds)
		return;
	if (!moved) {
		if (ds->held && docker_update_restart_policy(ds->dk, ds->ctr.id, ds->policy) < 0)
			pr_warn("container %s: its restart policy could not be put back: %s", ds->ctr.name,
				dm_last_error());
		else if (ds->held)
			held_forget(ds);
		ds->held = false;
		return;
	}
	/* moved: the policy stays "no" here (the container goes, or stays stopped) */
	if (ds->held)
		held_forget(ds);
	/* its tree was killed: Docker sees it exit */
	if (docker_wait_stopped(ds->dk, ds->ctr.id, 10) < 0)
		pr_warn("container %s: %s", ds->ctr.name, dm_last_error());
	if (keep) {
		pr_info("container %s: left stopped here (--keep-source)%s", ds->ctr.name,
			ds->held ? ", restart policy no" : "");
		return;
	}
	if (docker_remove(ds->dk, ds->ctr.id, true, false) < 0)
		pr_warn("container %s moved, but it could not be removed here: %s", ds->ctr.name,
			dm_last_error());
	dm_error_clear();
}

void docker_src_free(struct docker_src *ds)
{
	if (!ds)
		return;
	netlock_opener_free(ds->opener);
	if (ds->ct)
		runc_free(ds->ct);
	docker_ctr_free(&ds->ctr);
	for (size_t i = 0; i < ds->n_dirs; i++)
		dm__rootfs_entry__free_unpacked(ds->dirs[i], NULL);
	free(ds->dirs);
	free_strv(ds->layers);
	json_decref(ds->inspect);
	json_decref(ds->policy);
	free(ds->inspect_text);
	if (ds->dk)
		docker_close(ds->dk);
	free(ds);
}

/* ------------------------------------------------------------ destination */

struct docker_dst {
	struct docker *dk;
	json_t *inspect;        /* the source's */
	struct docker_ctr src;  /* what the source's inspect says */
	char *id;               /* the container made here */
	char *layer;            /* its upper directory */
	json_t *policy;         /* the source's restart policy (ours is "no" until complete) */
	int lfd;                /* the hand-off socket */
	bool need_image;        /* the image is not here (yet) */
	uint32_t layers_here;   /* then: how many of its first layers are */
	bool started;           /* docker_dst_start() done: h is the stub */
	bool net_locked;        /* and its network namespace is locked (NETLOCK_NETNS_NAME) */
	struct netlock_opener *opener; /* that lock's removal, made there ahead */
	struct handoff h;
};

static int check_binds(struct docker_dst *dd)
{
	for (size_t i = 0; i < dd->src.n_binds; i++) {
		struct stat st;
		if (stat(dd->src.binds[i], &st) < 0)
			return dm_fail(-ENOENT, "container %s bind-mounts %s, which is not on this host",
				       dd->src.name, dd->src.binds[i]);
	}
	return 0;
}

/* Is the IPv4 address a in the CIDR subnet? */
static bool in_subnet(const char *a, const char *cidr)
{
	_cleanup_free_ char *net = xstrdup(cidr);
	char *slash = strchr(net, '/');
	struct in_addr x, n;
	long p;

	if (!slash || parse_long(slash + 1, &p) < 0 || p < 0 || p > 32)
		return false;
	*slash = 0;
	if (inet_pton(AF_INET, a, &x) != 1 || inet_pton(AF_INET, net, &n) != 1)
		return false;
	uint32_t mask = p ? htonl(~0u << (32 - p)) : 0;
	return (x.s_addr & mask) == (n.s_addr & mask);
}

/*
 * The networks it is on, other than Docker's own (bridge, host, none): each
 * must be here, and a fixed address it keeps must be in its subnet here.
 */
static int check_networks(struct docker_dst *dd)
{
	json_t *nets = json_object_get(json_object_get(dd->inspect, "NetworkSettings"), "Networks"), *ep;
	const char *name;

	json_object_foreach(nets, name, ep) {
		if (docker_network_is_builtin(name))
			continue;
		json_t *net = NULL;
		int r = docker_network_inspect(dd->dk, name, &net);
		if (r < 0) {
			if (r == -ENOENT) {
				dm_error_clear();
				r = dm_fail(-ENOENT, "container %s is on network %s, which is not on this host",
					    dd->src.name, name);
			}
			return r;
		}
		const char *ip = json_str(json_object_get(ep, "IPAMConfig"), "IPv4Address");
		bool ok = !ip || !ip[0];
		json_t *cfgs = json_object_get(json_object_get(net, "IPAM"), "Config"), *c;
		size_t i;
		json_array_foreach(cfgs, i, c) {
			const char *sub = json_str(c, "Subnet");
			if (!ok && sub && in_subnet(ip, sub))
				ok = true;
		}
		json_decref(net);
		if (!ok)
			return dm_fail(-EADDRNOTAVAIL, "container %s keeps the address %s on network %s, which "
				       "is not in that network's subnet here", dd->src.name, ip, name);
	}
	return 0;
}

/*
 * How many of the first layers of an image (diff IDs, lowest first) this
 * dockerd has: the longest prefix they share with the layers of an image
 * here (image-tar.h: chain IDs).  0 when the images cannot be listed: the
 * whole image is sent then.
 */
static uint32_t count_layers_here(struct docker_dst *dd, const char *const *layers, size_t n)
{
	json_t *list = NULL;
	long status = 0;
	size_t best = 0, i;
	json_t *it;

	if (!n || docker_request(dd->dk, "GET", "/images/json?all=1", NULL, &status, &list) < 0 ||
	    status != 200 || !json_is_array(list)) {
		pr_warn("the images of dockerd at %s cannot be listed: the whole image comes", docker_host(dd->dk));
		dm_error_clear();
		json_decref(list);
		return 0;
	}
	json_array_foreach(list, i, it) {
		json_t *img = NULL;
		const char *id = json_str(it, "Id");
		if (!id || docker_image_inspect(dd->dk, id, &img) < 0) {
			dm_error_clear();
			continue;
		}
		json_t *l = json_object_get(json_object_get(img, "RootFS"), "Layers");
		size_t k = 0;
		while (k < n && k < json_array_size(l) && json_string_value(json_array_get(l, k)) &&
		       !strcmp(json_string_value(json_array_get(l, k)), layers[k]))
			k++;
		best = MAX(best, k);
		json_decref(img);
		if (best == n)
			break;
	}
	json_decref(list);
	return (uint32_t)best;
}

int docker_dst_prepare(const char *inspect_text, const char *const *layers, size_t n_layers,
		       struct docker_dst **ret)
{
	struct docker_dst *dd = xcalloc(1, sizeof(*dd));
	json_error_t je;
	json_t *mine = NULL, *img = NULL;
	int r;

	dd->lfd = -1;
	dd->h = (struct handoff){ .sock = -1, .stdio = { -1, -1, -1 } };
	dd->inspect = json_loads(inspect_text, 0, &je);
	if (!json_is_object(dd->inspect)) {
		r = dm_fail(-EBADMSG, "the source's container description is not JSON: %s", je.text);
		goto fail;
	}
	r = docker_ctr_parse(dd->inspect, &dd->src);
	if (r < 0)
		goto fail;
	r = docker_open(NULL, &dd->dk);
	if (r < 0)
		goto fail;
	r = docker_has_runtime(dd->dk, DOCKER_RUNTIME_NAME, NULL);
	if (r <= 0) {
		r = r < 0 ? r : dm_fail(-ENOTSUP, "dockerd at %s has no runtime \"%s\" (run `dmigrate "
					"setup` on this host)", docker_host(dd->dk), DOCKER_RUNTIME_NAME);
		goto fail;
	}
	r = docker_inspect(dd->dk, dd->src.name, &mine);
	if (r == 0) {
		r = dm_fail(-EEXIST, "a container named %s exists on this host already", dd->src.name);
		goto fail;
	}
	if (r != -ENOENT)
		goto fail;
	dm_error_clear();
	r = check_binds(dd);
	if (r >= 0)
		r = check_networks(dd);
	for (size_t i = 0; r >= 0 && i < dd->src.n_volumes; i++) {
		/* its data comes with the state: a volume here of that name would
		 * be mixed with it */
		json_t *vol = NULL;
		r = docker_volume_inspect(dd->dk, dd->src.volumes[i], &vol);
		json_decref(vol);
		if (r == 0)
			r = dm_fail(-EEXIST, "container %s has the volume %s, and a volume of that name exists "
				    "on this host already", dd->src.name, dd->src.volumes[i]);
		else if (r == -ENOENT) {
			dm_error_clear();
			r = 0;
		}
	}
	if (r < 0)
		goto fail;
	r = docker_image_inspect(dd->dk, dd->src.image, &img);
	if (r == -ENOENT) {
		/* the source sends it (docker_dst_load_image) */
		dm_error_clear();
		dd->need_image = true;
		dd->layers_here = count_layers_here(dd, layers, n_layers);
		r = 0;
	}
	if (r < 0)
		goto fail;
	json_decref(img);
	*ret = dd;
	return 0;
fail:
	json_decref(img);
	json_decref(mine);
	docker_dst_free(dd);
	return r;
}

bool docker_dst_needs_image(const struct docker_dst *dd)
{
	return dd->need_image;
}

uint32_t docker_dst_layers_here(const struct docker_dst *dd)
{
	return dd->layers_here;
}

const char *docker_dst_image_name(const struct docker_dst *dd)
{
	const char *ref = json_str(json_object_get(dd->inspect, "Config"), "Image");
	return ref ? ref : dd->src.image;
}

int docker_dst_load_image(struct docker_dst *dd, int fd)
{
	json_t *img = NULL;
	int r = docker_image_load(dd->dk, fd);

	if (r < 0)
		return r;
	r = docker_image_inspect(dd->dk, dd->src.image, &img);
	json_decref(img);
	if (r < 0) {
		dm_error_clear();
		return dm_fail(-EBADMSG, "the image the source sent is not %.19s, the container's", dd->src.image);
	}
	dd->need_image = false;
	pr_info("image %s (%.19s) loaded from the source", docker_dst_image_name(dd), dd->src.image);
	return 0;
}

int docker_dst_create(struct docker_dst *dd)
{
	json_t *body = docker_create_body(dd->inspect, DOCKER_RUNTIME_NAME);
	int r;

	if (!body)
		return dm_fail(-EBADMSG, "the source's container description has no Config or HostConfig");
	/* restart policy "no" until the migration is complete (docker_dst_complete) */
	json_t *hcb = json_object_get(body, "HostConfig");
	json_t *pol = json_object_get(hcb, "RestartPolicy");
	json_decref(dd->policy);
	dd->policy = pol ? json_deep_copy(pol) : NULL;
	json_object_set_new(hcb, "RestartPolicy", json_pack("{s:s, s:i}", "Name", "no", "MaximumRetryCount", 0));
	/* the image by the name the user gave it, where that name is the same
	 * image here (docker ps shows it), else by its id */
	const char *ref = json_str(json_object_get(dd->inspect, "Config"), "Image");
	json_t *byref = NULL;
	if (ref && docker_image_inspect(dd->dk, ref, &byref) == 0 &&
	    !strcmp(json_str(byref, "Id") ? json_str(byref, "Id") : "", dd->src.image))
		json_object_set_new(body, "Image", json_string(ref));
	json_decref(byref);
	dm_error_clear();
	r = docker_create(dd->dk, dd->src.name, body, &dd->id);
	json_decref(body);
	if (r < 0)
		return r;
	json_t *ins = NULL;
	struct docker_ctr here = {};
	r = docker_inspect(dd->dk, dd->id, &ins);
	if (r >= 0)
		r = docker_ctr_parse(ins, &here);
	json_decref(ins);
	if (r >= 0 && !here.upperdir)
		r = dm_fail(-ENOTSUP, "this dockerd's storage driver is not overlay2: the container's layer "
			    "has nowhere to go");
	dd->layer = here.upperdir ? xstrdup(here.upperdir) : NULL;
	docker_ctr_free(&here);
	if (r >= 0)
		r = handoff_listen(dd->id, &dd->lfd);
	if (r < 0) {
		docker_dst_abort(dd);
		return r;
	}
	pr_info("container %s made here (%.12s), waiting for its tree", dd->src.name, dd->id);
	return 0;
}

const char *docker_dst_id(const struct docker_dst *dd)
{
	return dd->id;
}

const char *docker_dst_layer(const struct docker_dst *dd)
{
	return dd->layer;
}

struct starter {
	struct docker *dk;
	const char *id;
	int r;
	char err[DM_ERRMSG_MAX];
};

static void *start_thread(void *arg)
{
	struct starter *st = arg;
	st->r = docker_start(st->dk, st->id);
	if (st->r < 0)
		snprintf(st->err, sizeof(st->err), "%s", dm_last_error());
	return NULL;
}

int docker_dst_take_handoff(struct docker_dst *dd, struct handoff *h)
{
	if (!dd->started) {
		int r = docker_dst_start(dd);
		if (r < 0)
			return r;
	}
	*h = dd->h;
	dd->h = (struct handoff){ .sock = -1, .stdio = { -1, -1, -1 } };
	return 0;
}

int docker_dst_start(struct docker_dst *dd)
{
	struct starter st = { .id = dd->id };
	struct handoff *h = &dd->h;
	pthread_t t;
	int r;

	if (dd->started)
		return 0;
	/* a connection of its own: the start may run beside the session's
	 * other requests (MigStart.ready_later), and a handle serves one at a
	 * time */
	r = docker_open(NULL, &st.dk);
	if (r < 0)
		return r;
	r = -pthread_create(&t, NULL, start_thread, &st);
	if (r < 0) {
		docker_close(st.dk);
		return dm_fail(r, "cannot start a thread: %s", strerror(-r));
	}
	r = handoff_accept(dd->lfd, DOCKER_START_WAIT_MS, h);
	pthread_join(t, NULL);
	docker_close(st.dk);
	if (st.r < 0) {
		handoff_close(h);
		dm_error_set_message(st.err);
		return dm_fail(st.r, "docker start %s: %s", dd->src.name, st.err);
	}
	if (r < 0)
		return r;
	dd->started = true;
	pr_info("container %s started, its init %d waits for the tree", dd->src.name, h->pid);
	/*
	 * Its network namespace locked now, as the restore would (no packet in
	 * or out but loopback until the tree's sockets are in place): nothing
	 * runs in it yet, and the lock's nft transaction (libnftables' start-up
	 * in a fresh context: 7-9 ms here) leaves the downtime.  The container
	 * goes if the migration does not come through.
	 */
	struct runc_started locked = { .sock = -1, .root_fd = -1 };
	r = runc_net_lock(h->pid, &locked);
	dd->net_locked = locked.net_locked;
	if (r < 0)
		return dm_wrap(r, "container %s: locking its network", dd->src.name);
	/* its removal, for docker_dst_unlock_early() */
	dd->opener = opener_in(h->pid, "the early unlock");
	return 0;
}

bool docker_dst_net_locked(const struct docker_dst *dd)
{
	return dd->net_locked;
}

bool docker_dst_unlock_early(struct docker_dst *dd)
{
	if (!dd->net_locked || !address_changes(dd->inspect))
		return false;
	/* opened (its chains go, the table and its counters stay for the
	 * restore, which removes it as the tree runs) */
	if (!dd->opener || netlock_open_with(dd->opener) < 0) {
		pr_warn("container %s: its network stays locked until it runs: %s", dd->src.name,
			dd->opener ? dm_last_error() : "no unlock prepared");
		dm_error_clear();
		return false;
	}
	pr_debug("container %s: network unlocked before the switch-over (its address changed)", dd->src.name);
	return true;
}

int docker_dst_put_volumes(struct docker_dst *dd, const char *images_dir)
{
	_cleanup_free_ char *lp = xasprintf("%s/" VOLUMES_FILE, images_dir);
	json_error_t je;
	json_t *list, *v, *ins = NULL;
	size_t i;
	int r = 0;

	if (access(lp, F_OK) < 0)
		return 0;
	list = json_load_file(lp, 0, &je);
	if (!json_is_array(list)) {
		json_decref(list);
		return dm_fail(-EBADMSG, "%s: %s", lp, je.text);
	}
	r = docker_inspect(dd->dk, dd->id, &ins);
	json_array_foreach(list, i, v) {
		const char *name = json_str(v, "name"), *archive = json_str(v, "archive"), *src = NULL;
		if (r < 0)
			break;
		if (!name || !archive || strchr(archive, '/')) {
			r = dm_fail(-EBADMSG, "%s: a bad entry", lp);
			break;
		}
		json_t *m;
		size_t k;
		json_array_foreach(json_object_get(ins, "Mounts"), k, m) {
			const char *n = json_str(m, "Name");
			if (n && !strcmp(n, name) && json_str(m, "Type") && !strcmp(json_str(m, "Type"), "volume"))
				src = json_str(m, "Source");
		}
		if (!src) {
			r = dm_fail(-ENOENT, "container %s here has no volume %s", dd->src.name, name);
			break;
		}
		_cleanup_free_ char *path = xasprintf("%s/%s", images_dir, archive);
		char err[512];
		int c = run_cmd((const char *const[]){ "tar", "--numeric-owner", "--xattrs", "--acls", "-xpf",
						       path, "-C", src, NULL },
				err, sizeof(err));
		if (c < 0)
			r = dm_wrap(c, "volume %s", name);
		else if (c)
			r = dm_fail(-EIO, "volume %s: tar: %s", name, err[0] ? err : "failed");
	}
	json_decref(ins);
	json_decref(list);
	return r;
}

bool docker_dst_has_volume(const struct docker_dst *dd, const char *name)
{
	for (size_t i = 0; i < dd->src.n_volumes; i++)
		if (!strcmp(dd->src.volumes[i], name))
			return true;
	return false;
}

/* every entry of the directory dir, not dir itself (a mount point) */
static int empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return dm_fail(neg_errno(), "%s: %m", dir);
	struct dirent *de;
	int r = 0;
	while (r >= 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
		r = rm_rf(p);
		if (r < 0)
			r = dm_fail(r, "%s: %s", p, strerror(-r));
	}
	closedir(d);
	return r;
}

int docker_dst_volume_dir(struct docker_dst *dd, const char *name, char **ret)
{
	json_t *ins = NULL, *m;
	size_t k;
	int r = docker_inspect(dd->dk, dd->id, &ins);
	if (r < 0)
		return r;
	/* where the source's container has it: an anonymous volume (an
	 * image's VOLUME, `-v /data`) has another name here, the same place */
	const char *at = NULL, *src = NULL;
	json_array_foreach(json_object_get(dd->inspect, "Mounts"), k, m) {
		const char *n = json_str(m, "Name"), *t = json_str(m, "Type");
		if (n && !strcmp(n, name) && t && !strcmp(t, "volume"))
			at = json_str(m, "Destination");
	}
	json_array_foreach(json_object_get(ins, "Mounts"), k, m) {
		const char *n = json_str(m, "Name"), *t = json_str(m, "Type"), *d = json_str(m, "Destination");
		if (t && !strcmp(t, "volume") && ((n && !strcmp(n, name)) || (!src && at && d && !strcmp(d, at))))
			src = json_str(m, "Source");
	}
	if (!src || src[0] != '/')
		r = dm_fail(-ENOENT, "container %s here has no volume %s", dd->src.name, name);
	else
		r = empty_dir(src);
	if (r >= 0)
		*ret = xstrdup(src);
	json_decref(ins);
	return r;
}

void docker_dst_abort(struct docker_dst *dd)
{
	if (!dd)
		return;
	handoff_unlisten(dd->id, dd->lfd);
	dd->lfd = -1;
	if (dd->id && dd->dk) {
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
		/* with its volumes: made for it here (none of those names was
		 * here before), they hold nothing else */
		if (docker_remove(dd->dk, dd->id, true, true) < 0)
			pr_warn("container %s (%.12s) could not be removed: %s", dd->src.name, dd->id,
				dm_last_error());
		for (size_t i = 0; i < dd->src.n_volumes; i++) {
			_cleanup_free_ char *path = xasprintf("/volumes/%s", dd->src.volumes[i]);
			long st = 0;
			json_t *rep = NULL;
			if (docker_request(dd->dk, "DELETE", path, NULL, &st, &rep) < 0 || (st != 204 && st != 404))
				pr_warn("volume %s made for container %s could not be removed (HTTP %ld)",
					dd->src.volumes[i], dd->src.name, st);
			json_decref(rep);
		}
		dm_error_set_message(msg);
	}
	free(dd->id);
	dd->id = NULL;
}

int docker_dst_complete(struct docker_dst *dd)
{
	const char *name = json_str(dd->policy, "Name");

	if (!dd->id || !name || !name[0] || !strcmp(name, "no"))
		return 0;
	int r = docker_update_restart_policy(dd->dk, dd->id, dd->policy);
	if (r >= 0)
		pr_info("container %s: restart policy %s, as on the source", dd->src.name, name);
	return r;
}

char *docker_dst_early_record(const struct docker_dst *dd)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		abort();
	fprintf(f, "%s\n%s\n", docker_host(dd->dk), dd->id ? dd->id : "");
	for (size_t i = 0; i < dd->src.n_volumes; i++)
		fprintf(f, "%s\n", dd->src.volumes[i]);
	fclose(f);
	return s;
}

int docker_sweep_early(char *record)
{
	char *save = NULL, *host = strtok_r(record, "\n", &save), *id = strtok_r(NULL, "\n", &save);
	struct docker *dk = NULL;
	json_t *ins = NULL;
	int r;

	if (!host || !id || strspn(id, "0123456789abcdef") != strlen(id))
		return dm_fail(-EINVAL, "not a record of a Docker container made here");
	r = docker_open(host, &dk);
	if (r < 0)
		return r;
	r = docker_inspect(dk, id, &ins);
	if (r == -ENOENT) {
		r = 1;	/* gone already; its volumes may not be */
	} else if (r >= 0) {
		bool running = json_is_true(json_object_get(json_object_get(ins, "State"), "Running"));
		r = running ? 0 : docker_remove(dk, id, true, true);
		if (r == 0 && !running)
			r = 1;
	}
	json_decref(ins);
	for (char *v; r > 0 && (v = strtok_r(NULL, "\n", &save));) {
		/* made for it here (the destination refuses a name it has), holding nothing else */
		_cleanup_free_ char *path = xasprintf("/volumes/%s", v);
		long st = 0;
		json_t *rep = NULL;
		if (docker_request(dk, "DELETE", path, NULL, &st, &rep) < 0 || (st != 204 && st != 404))
			pr_warn("volume %s could not be removed (HTTP %ld)", v, st);
		json_decref(rep);
	}
	docker_close(dk);
	return r;
}

void docker_dst_free(struct docker_dst *dd)
{
	if (!dd)
		return;
	json_decref(dd->policy);
	netlock_opener_free(dd->opener);
	handoff_close(&dd->h);
	handoff_unlisten(dd->id, dd->lfd);
	json_decref(dd->inspect);
	docker_ctr_free(&dd->src);
	free(dd->id);
	free(dd->layer);
	if (dd->dk)
		docker_close(dd->dk);
	free(dd);
}
