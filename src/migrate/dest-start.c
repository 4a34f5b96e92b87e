/* SPDX-License-Identifier: MIT */
/*
 * START on the destination (dest-int.h): what it checks before the source
 * freezes anything (the tree's CPU and kernel features, its container's
 * name and bridges, room for its memory and its images), what it prepares
 * meanwhile (the store, the work dir, a runc container's stub, a Docker
 * container made, its image received, started beside the source's
 * preparation), and the ACCEPT reply that says what was agreed.  The
 * containers it makes are noted in the state dir, so that a daemon that
 * dies before the session ends leaves none behind (the next one's
 * sweep_early).
 */
#define LOG_PREFIX "dmigrated: "
#include "migrate/dest-int.h"
#include "base/clock.h"
#include "base/log.h"
#include "proc/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ---- the containers made at START ----------------------------------------- */

/*
 * Containers made at START for a restore (`runc run -d` of the restore's
 * stub; a Docker container made through the API) have a record,
 * <state>/early/<session>: "runc", runc's root, the ID, the temporary
 * bundle; or "docker", DOCKER_HOST, the container's ID, the volumes made
 * for it.  It goes when the session ends (settled: a container its tree
 * does not run in is removed).  A daemon that dies first leaves it; the
 * stub exits when our end of its transport closes, runc (or dockerd) shows
 * the container stopped, and the next daemon removes it (sweep_early):
 * else its name would stay taken and every later migration of that
 * container here would be refused.
 */
static char *early_dir(const struct mig_daemon_opts *o)
{
	return xasprintf("%s/early", o->state_dir ? o->state_dir : "/var/lib/dmigrate");
}

void early_note(struct dsess *s)
{
	_cleanup_free_ char *dir = early_dir(s->o), *path = xasprintf("%s/%s", dir, s->hex), *text = NULL;
	int fd;

	if (s->docker) {
		_cleanup_free_ char *rec = docker_dst_early_record(s->docker);
		text = xasprintf("docker\n%s", rec);
	} else {
		text = xasprintf("runc\n%s\n%s\n%s\n", s->runc_early.root, s->runc_early.id,
				 s->runc_early.tmp_bundle ? s->runc_early.tmp_bundle : "");
	}

	if (mkdir_p(dir, 0700) < 0 ||
	    (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		pr_warn("migration %.8s: cannot note the container started at START in %s: %m", s->hex, dir);
		return;
	}
	if (write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0)
		pr_warn("migration %.8s: %s: %m", s->hex, path);
	close(fd);
}

/*
 * The container a record names: deleted if runc shows it stopped, the
 * record with it (1); left, with its record, if it runs (0); -errno.
 */
static int early_sweep_one(const char *path)
{
	char buf[64 * 1024], *f[3] = { NULL }, *p = buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC), n = 0, r;
	ssize_t k;

	if (fd < 0)
		return errno == ENOENT ? 1 : neg_errno();
	k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[k > 0 ? k : 0] = 0;
	char *kind = strsep(&p, "\n");
	if (kind && p && !strcmp(kind, "docker")) {
		r = docker_sweep_early(p);
		if (r > 0) {
			pr_info("the Docker container of a migration that did not complete (%s) removed", path);
			unlink(path);
		} else if (r < 0) {
			pr_warn("the Docker container of a migration (%s): %s", path, dm_last_error());
		}
		return r;
	}
	if (kind && p && !strcmp(kind, "runc")) {
		/* strsep keeps the empty bundle line */
		for (; n < 3 && p; n++)
			f[n] = strsep(&p, "\n");
	}
	/* a record we cannot read names nothing we could delete safely */
	if (n < 3 || f[0][0] != '/' || !f[1][0] || strchr(f[1], '/') || (f[2][0] && f[2][0] != '/')) {
		pr_warn("%s: not a record of a container started here; removed", path);
		unlink(path);
		return 1;
	}
	r = runc_sweep_early(f[0], f[1], f[2]);
	if (r > 0) {
		pr_info("container %s, started for a migration that did not complete, removed", f[1]);
		unlink(path);
	} else if (r < 0) {
		pr_warn("container %s, started for a migration: %s", f[1], dm_last_error());
	}
	return r;
}

/* at the session's end: a container it started and that its tree no longer
 * runs in (a restore that failed, a tree killed after COMMIT) goes */
void early_settle(struct dsess *s)
{
	_cleanup_free_ char *dir = early_dir(s->o), *path = xasprintf("%s/%s", dir, s->hex);
	if (early_sweep_one(path) == 0)
		unlink(path);	/* it runs: the tree's container now */
}

void sweep_early(const struct mig_daemon_opts *o)
{
	_cleanup_free_ char *dir = early_dir(o);
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, e->d_name);
		early_sweep_one(path);
	}
	closedir(d);
}

/* ---- START ------------------------------------------------------------- */

/* The eager pages a post-copy's source may send before its freeze, at most. */
#define EAGER_STORE_MAX (256ULL << 20)

/* memory the migrations in progress may still take (their stores, their
 * trees): a new one counts it as gone (MemAvailable only drops as they fill) */
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t store_reserved;

static uint64_t mem_available(void)
{
	struct proc_meminfo mi;
	if (proc_read_meminfo(&mi) < 0)
		return 0;
	return mi.mem_available;
}

struct image_loader {
	struct docker_dst *dd;
	int fd;
	int r;
	char err[DM_ERRMSG_MAX];
};

static void *image_load_thread(void *arg)
{
	struct image_loader *l = arg;
	l->r = docker_dst_load_image(l->dd, l->fd);
	if (l->r < 0)
		snprintf(l->err, sizeof(l->err), "%s", dm_last_error());
	/* the receiver's writes fail from here on, if it still writes */
	shutdown(l->fd, SHUT_RDWR);
	return NULL;
}

/*
 * A Docker container whose image is not here: NEED_IMAGE instead of ACCEPT;
 * the source sends the image's `docker save` tar (IMAGE_DATA frames, then
 * IMAGE_END), which goes into dockerd as it arrives.  Before anything is
 * frozen at the source: the images' layers do not change.
 */
static int recv_image(struct dsess *s)
{
	struct image_loader l = { .dd = s->docker, .fd = -1 };
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t total = 0;
	pthread_t t;
	int sp[2], r;

	Dm__MigReply need = DM__MIG_REPLY__INIT;
	need.ok = true;
	need.has_docker_layers_here = true;
	need.docker_layers_here = docker_dst_layers_here(s->docker);
	pr_info("migration %.8s: image %s is not here (%u of its layers are): the source sends it",
		s->hex, docker_dst_image_name(s->docker), need.docker_layers_here);
	r = net_send_msg(s->ctl, MIG_T_NEED_IMAGE, &need.base);
	if (r < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return dm_fail(neg_errno(), "socketpair: %m");
	l.fd = sp[0];
	r = -pthread_create(&t, NULL, image_load_thread, &l);
	if (r < 0) {
		close(sp[0]);
		close(sp[1]);
		return dm_fail(r, "cannot start a thread: %s", strerror(-r));
	}
	buf = xmalloc(MIG_DATA_MAX);
	mig_watchdog_arm_silent(&s->wd, "the image", peer_timeout_ms(s));
	for (;;) {
		ProtobufCMessage *m = NULL;
		uint16_t type;
		uint32_t len;
		r = mig_recv(s->ctl, &type, &len, &m);
		if (r < 0)
			break;
		if (type == MIG_T_IMAGE_END)
			break;
		if (type == MIG_T_ABORT) {
			Dm__MigReply *rep = (Dm__MigReply *)m;
			r = dm_fail(-EREMOTEIO, "the source could not send the image: %s",
				    rep->error ? rep->error : "no reason given");
			protobuf_c_message_free_unpacked(m, NULL);
			break;
		}
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		if (type != MIG_T_IMAGE_DATA || len == 0 || len > MIG_DATA_MAX) {
			if (!m)
				net_skip_body(s->ctl);
			r = dm_fail(-EBADMSG, "unexpected frame %#x (%u bytes) in the image", type, len);
			break;
		}
		r = net_recv_body(s->ctl, buf, len);
		if (r < 0)
			break;
		total += len;
		/* once the loader failed, the rest is read and dropped */
		if (send(sp[1], buf, len, MSG_NOSIGNAL) != (ssize_t)len && !l.err[0])
			pr_debug("image: dockerd stopped reading: %m");
	}
	close(sp[1]);
	mig_watchdog_arm(&s->wd, "dockerd to load the image", MIG_WAIT_IMAGE_LOAD_MS);
	pthread_join(t, NULL);
	close(sp[0]);
	if (r >= 0 && l.r < 0)
		r = dm_fail(l.r, "%s", l.err);
	if (r < 0)
		return r;
	pr_info("migration %.8s: image in (%.1f MiB)", s->hex, (double)total / (1 << 20));
	mig_watchdog_arm(&s->wd, "START", MIG_WAIT_START_MS);
	return 0;
}

/* a step of the preparation done: its time in the stats' "prepare" */
static void prep_mark(struct dsess *s, const char *name)
{
	if (!s->prep_stats)
		s->prep_stats = json_object();
	json_object_set_new(s->prep_stats, name, json_real(ns_to_ms(s->t_start, clock_ns())));
}

/*
 * docker start of the container made at START, in a thread of its own when
 * the source waits for READY: the source sends its files and sets up its
 * tracking (pre-copy: sends memory) meanwhile, and freezes only once READY
 * said the container runs.  Failed: READY says why, and the source rolls
 * back (its ABORT ends this session).
 */
static void *dk_start_thread(void *arg)
{
	struct dsess *s = arg;
	int r = docker_dst_start(s->docker);
	s->dk_r = r;
	if (r < 0) {
		snprintf(s->dk_err, sizeof(s->dk_err), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-r));
		mig_send_reply(s->ctl, MIG_T_READY, false, r, s->dk_err, 0, NULL);
		return NULL;
	}
	prep_mark(s, "docker_started_ms");
	mig_test_point("dst-docker-started");
	if (mig_send_reply(s->ctl, MIG_T_READY, true, 0, NULL, 0, NULL) < 0)
		pr_debug("migration %.8s: READY not sent: %s", s->hex, dm_last_error());
	return NULL;
}

/* The container's start, if it runs in its thread: over, and how it went. */
int dk_start_join(struct dsess *s)
{
	if (!s->dk_thread_on)
		return 0;
	pthread_join(s->dk_thread, NULL);
	s->dk_thread_on = false;
	return s->dk_r < 0 ? dm_fail(s->dk_r, "docker start: %s", s->dk_err) : 0;
}

int handle_start(struct dsess *s)
{
	_cleanup_free_ char *base = NULL;
	ProtobufCMessage *m = NULL;
	uint16_t type;
	uint32_t len;
	bool ready_later = false, lazy_asked, lazy_sized;
	int r;

	r = mig_recv(s->ctl, &type, &len, &m);
	if (r < 0)
		return r;
	if (type != MIG_T_START || !m) {
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		return dm_fail(-EBADMSG, "expected START, got frame %#x", type);
	}
	Dm__MigStart *st = (Dm__MigStart *)m;
	r = mig_mode_parse(st->mode, &s->mode);
	if (r < 0) {
		r = dm_fail(-EINVAL, "unknown mode '%.32s'", st->mode);
		goto out;
	}
	/* post-copy: the source reads the VMA flags before its freeze and says
	 * after the switch-over which changed meanwhile (maybe none) */
	s->vma_checked = s->mode != MIG_POST_COPY;
	/* the source chases pointers around a faulting byte: our uffds report it */
	s->fault_exact = st->has_fault_exact && st->fault_exact && mem_uffd_has(UFFD_FEATURE_EXACT_ADDRESS);
	/* the store's size: the eager pages' bound, or, when the lazy memory
	 * may come into it too (asked only with READY later), the memory check
	 * below bounds it as the store modes' (lazy_sized); whether the lazy
	 * memory comes (s->store_lazy) is known at ACCEPT */
	lazy_asked = st->has_store_lazy && st->store_lazy && st->has_ready_later && st->ready_later;
	s->eager_store = s->mode == MIG_POST_COPY && st->has_eager_store && st->eager_store && st->has_store_bytes &&
			 st->store_bytes >= DM_PAGE_SIZE && (st->store_bytes <= EAGER_STORE_MAX || lazy_asked);
	lazy_sized = lazy_asked && s->eager_store;
	if (st->target && strlen(st->target) < 32)
		s->target = xstrdup(st->target);
	if (st->rootfs_mode) {
		if (rfs_mode_parse(st->rootfs_mode, &s->rfs_mode) < 0 || s->rfs_mode == RFS_NONE || !st->rootfs_dir ||
		    st->rootfs_dir[0] != '/' || strlen(st->rootfs_dir) >= RFS_PATH_MAX || !strcmp(st->rootfs_dir, "/")) {
			r = dm_fail(-EINVAL, "unknown rootfs mode '%.32s' or bad rootfs dir", st->rootfs_mode);
			goto out;
		}
		s->rfs_src_dir = xstrdup(st->rootfs_dir);
		/* the files' frames: the same format on both hosts, or nothing moves */
		uint32_t theirs = st->has_rootfs_wire ? st->rootfs_wire : 1;
		if (theirs != rfs_wire_version()) {
			r = dm_fail(-EPROTONOSUPPORT, "the source speaks rootfs wire protocol version %u%s, this dmigrated "
				    "version %u: run the same dmigrate version on both hosts", theirs,
				    st->has_rootfs_wire ? "" : " (it names none)", rfs_wire_version());
			goto out;
		}
	}
	pr_info("migration %.8s from %s: %s, mode %s, %u processes", s->hex, net_chan_peer(s->ctl),
		st->target ? st->target : "?", st->mode, st->has_processes ? st->processes : 0);
	/*
	 * Refuse here, before the source freezes anything, what could not run
	 * here: the tree's CPU features, the kernel features the restore uses,
	 * room for its memory and its images.
	 */
	{
		uint32_t cf[HOST_CPU_WORDS] = { st->has_cpuid_1_ecx ? st->cpuid_1_ecx : 0,
						st->has_cpuid_7_ebx ? st->cpuid_7_ebx : 0,
						st->has_cpuid_7_ecx ? st->cpuid_7_ecx : 0 };
		r = host_check_tree(st->has_xcr0 ? st->xcr0 : 0, cf, LAZY_FEATURES,
				    "the tree (its CPU offered them at the source)");
		if (r < 0)
			goto out;
	}
	if (st->container_id) {
		r = runc_check_here(NULL, st->container_id, st->container_rootfs);
		/* dmigrated --bridge: every veth goes there instead */
		char *given[] = { (char *)s->o->bridge };
		if (r >= 0 && s->o->bridge && st->n_container_bridges)
			r = runc_check_bridges(st->container_id, given, 1, true);
		else if (r >= 0)
			r = runc_check_bridges(st->container_id, st->container_bridges, st->n_container_bridges,
					       false);
		if (r < 0)
			goto out;
	}
	if (st->docker_inspect) {
		/* its layer lands in the container's own one, before it starts */
		if (s->rfs_mode != RFS_EAGER) {
			r = dm_fail(-EINVAL, "a Docker container's layer moves eagerly here (got rootfs mode %s)",
				    s->rfs_mode ? rfs_mode_name(s->rfs_mode) : "none");
			goto out;
		}
		/* made (and its image asked for) last, once every check passed */
		prep_mark(s, "checked_ms");
		r = docker_dst_prepare(st->docker_inspect, (const char *const *)st->docker_image_layers,
				       st->n_docker_image_layers, &s->docker);
		if (r < 0)
			goto out;
		/* its volumes as trees: each one of its volumes, once */
		if (st->n_docker_volume_trees > MIG_VOLUME_TREES_MAX) {
			r = dm_fail(-EINVAL, "%zu volumes to move as trees (at most %d)", st->n_docker_volume_trees,
				    MIG_VOLUME_TREES_MAX);
			goto out;
		}
		for (size_t i = 0; i < st->n_docker_volume_trees; i++) {
			bool dup = false;
			for (size_t k = 0; k < i; k++)
				dup |= !strcmp(st->docker_volume_trees[k], st->docker_volume_trees[i]);
			if (dup || !docker_dst_has_volume(s->docker, st->docker_volume_trees[i])) {
				r = dm_fail(-EINVAL, "volume %.64s to move is not one of the container's (once)",
					    st->docker_volume_trees[i]);
				goto out;
			}
		}
		for (size_t i = 0; i < st->n_docker_volume_trees; i++)
			s->vol_name[i] = xstrdup(st->docker_volume_trees[i]);
		pthread_mutex_lock(&s->lock);
		s->n_vol = st->n_docker_volume_trees;
		pthread_mutex_unlock(&s->lock);
	}
	base = xasprintf("%s/incoming", s->o->state_dir ? s->o->state_dir : "/var/lib/dmigrate");
	r = mkdir_p(base, 0700);
	if (r < 0) {
		r = dm_fail(r, "%s: %s", base, strerror(-r));
		goto out;
	}
	r = host_check_disk(base, MIG_STATE_DISK_MIN);
	if (r < 0)
		goto out;
	if (s->rfs_mode) {
		_cleanup_free_ char *rb = xasprintf("%s/rootfs", s->o->state_dir ? s->o->state_dir : "/var/lib/dmigrate");
		r = mkdir_p(rb, 0700);
		if (r < 0) {
			r = dm_fail(r, "%s: %s", rb, strerror(-r));
			goto out;
		}
	}
	{
		/* the tree's memory lands here in every mode; the store modes
		 * first hold it in the store (the source's bound, above its RSS) */
		uint64_t want = st->has_tree_bytes ? st->tree_bytes : 0, avail = mem_available();
		if (s->mode != MIG_POST_COPY || lazy_sized) {
			uint64_t store = st->has_store_bytes ? st->store_bytes : 0;
			if (store < (64u << 20))
				store = 64u << 20;
			want = MAX(want, store);
		}
		/* what the other migrations may still take is not available */
		pthread_mutex_lock(&reserve_lock);
		uint64_t others = store_reserved;
		uint64_t room = avail - MIN(avail, (uint64_t)(256u << 20) + others);
		if (avail && want > room) {
			pthread_mutex_unlock(&reserve_lock);
			r = dm_fail(-ENOMEM, "not enough memory here for %s: %" PRIu64 " MiB needed, %" PRIu64
					     " MiB available%s",
				    st->mode, want >> 20, room >> 20,
				    others ? " (beside what the migrations in progress may still take)" : "");
			goto out;
		}
		store_reserved += want;
		s->reserved = want;
		pthread_mutex_unlock(&reserve_lock);
		if (s->mode != MIG_POST_COPY) {
			r = mem_store_new(want, &s->store);
			if (r < 0)
				goto out;
		} else if (s->eager_store) {
			/* within the tree's memory, reserved above */
			r = mem_store_new(st->store_bytes, &s->store);
			if (r < 0)
				goto out;
		}
	}
	s->dir = xasprintf("%s/%s", base, s->hex);
	if (mkdir(s->dir, 0700) < 0) {
		r = dm_fail(neg_errno(), "%s: %m", s->dir);
		free(s->dir);
		s->dir = NULL;
		goto out;
	}
	if (st->container_id && st->has_container_base) {
		/*
		 * `runc run` of the stub is the slowest step of a runc container's
		 * restore: done now, before the source freezes anything, it is out
		 * of the downtime.  What runc does not make (network, host name,
		 * tmpfs files, IPC, limits) comes with the state.  The new network
		 * namespace stays empty until then: the source's addresses are
		 * still in use on the segment.
		 */
		s->runc_base = dm__container__unpack(NULL, st->container_base.len, st->container_base.data);
		if (!s->runc_base || strcmp(s->runc_base->id, st->container_id)) {
			r = dm_fail(-EBADMSG, "START: the container's description does not unpack, or names "
				    "another container than %s", st->container_id);
			goto out;
		}
		struct runc_restore_opts rro = { .images_dir = s->dir, .bridge = s->o->bridge };
		r = runc_restore_launch(s->runc_base, &rro, &s->runc_early);
		/* and its network, locked, with our ends of its veths down */
		if (r >= 0)
			r = runc_restore_prepare(s->runc_base, &rro, &s->runc_early);
		if (r < 0)
			goto out;
		early_note(s);
		prep_mark(s, "runc_launched_ms");
		pr_info("migration %.8s: container %s started (its init waits for the restore)", s->hex,
			st->container_id);
	}
	prep_mark(s, "prepared_ms");
	if (s->docker && docker_dst_needs_image(s->docker)) {
		r = recv_image(s);
		if (r < 0)
			goto out;
		prep_mark(s, "image_ms");
	}
	if (s->docker) {
		r = docker_dst_create(s->docker);
		if (r < 0)
			goto out;
		prep_mark(s, "docker_created_ms");
		early_note(s);
		s->docker_early = true;
		/*
		 * With every directory of its layer made in its upper directory
		 * before dockerd mounts the overlay, the container starts now,
		 * before the source freezes (docker start is the slowest step of
		 * its restore): the files that land in those directories later
		 * are found through the mounted overlay (docs/docker.md).
		 */
		if (st->has_docker_layer_dirs_all && st->docker_layer_dirs_all) {
			r = rfs_make_dirs(docker_dst_layer(s->docker), st->docker_layer_dirs, st->n_docker_layer_dirs);
			if (r >= 0 && st->has_ready_later && st->ready_later) {
				/* beside the source's preparation: READY when it runs */
				r = -pthread_create(&s->dk_thread, NULL, dk_start_thread, s);
				if (r < 0)
					r = dm_fail(r, "cannot start a thread: %s", strerror(-r));
				else
					s->dk_thread_on = ready_later = true;
			} else if (r >= 0) {
				r = docker_dst_start(s->docker);
				if (r >= 0)
					prep_mark(s, "docker_started_ms");
			}
			if (r < 0)
				goto out;
		}
	}
	{
		Dm__MigReply acc = DM__MIG_REPLY__INIT;
		acc.ok = true;
		if (s->rfs_mode) {
			acc.has_rootfs_wire = true;
			acc.rootfs_wire = rfs_wire_version();
		}
		acc.has_net_frames = acc.net_frames = true;
		/* post-copy: the push may come before the resume (netsrc holds it) */
		acc.has_early_push = acc.early_push = s->mode == MIG_POST_COPY;
		acc.has_ready_later = acc.ready_later = ready_later;
		acc.has_eager_store = acc.eager_store = s->eager_store;
		/* the lazy memory: asked, into a store sized for it, and only
		 * while the container starts here */
		s->store_lazy = lazy_sized && ready_later;
		acc.has_store_lazy = acc.store_lazy = s->store_lazy;
		if (s->n_vol)
			acc.has_docker_volume_trees = acc.docker_volume_trees = true;
		r = net_send_msg(s->ctl, MIG_T_ACCEPT, &acc.base);
	}
out:
	protobuf_c_message_free_unpacked(m, NULL);
	return r;
}

/* at the session's end: what START reserved for it is free again */
void dst_unreserve(struct dsess *s)
{
	pthread_mutex_lock(&reserve_lock);
	store_reserved -= s->reserved;
	s->reserved = 0;
	pthread_mutex_unlock(&reserve_lock);
}
