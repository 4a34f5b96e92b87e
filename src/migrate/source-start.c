/* SPDX-License-Identifier: MIT */
/*
 * The source's first phase (source.c's "connect"): the control channel,
 * START with what the destination checks before anything is frozen (the
 * tree's size, this CPU's features, the container and its files), ACCEPT
 * (or, for a Docker container whose image the destination lacks, the
 * image first), then the data channels: fault, bulk, the files' and the
 * volumes'.  Nothing of the tree is touched here but the working set's
 * tracking, begun while the destination prepares.
 */
#define LOG_PREFIX "migrate: "
#include "migrate/source-int.h"
#include "base/clock.h"
#include "pool/pool.h"
#include "proc/proc.h"
#include "restore/restore.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Private anonymous memory of the tree (an upper bound of what pre-copy and
 * stop-and-copy put in the destination's store), and its process count.
 * RssAnon of status is a counter (smaps_rollup would walk every page). */
static uint64_t tree_anon_bytes(pid_t root, unsigned *ret_n)
{
	_cleanup_free_ pid_t *v = NULL;
	size_t n = proc_tree_pids(root, &v);
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++) {
		struct proc_status st = {};
		if (proc_read_status(v[i], 0, &st) >= 0)
			total += st.rss_anon_kb * 1024;
		proc_status_done(&st);
	}
	dm_error_clear();
	*ret_n = (unsigned)n;
	return total;
}

/* Tests: DMIGRATE_TEST_FORGE_MEM_BYTES=N announces a tree of N bytes of
 * memory and a store of as many, whatever the tree has: the destination
 * makes its store that large (64 MiB at least), a larger tree's pages
 * overflow it, and it refuses them in the memory phase (0: not forged). */
static uint64_t forged_mem_bytes(void)
{
	unsigned long n;
	return parse_ulong(getenv("DMIGRATE_TEST_FORGE_MEM_BYTES"), &n) < 0 ? 0 : (uint64_t)n;
}

/* Tests: DMIGRATE_TEST_FORGE_XCR0=HEX claims xsave components this CPU may
 * not have (the destination must refuse them before the freeze). */
static uint64_t forged_xfeatures(void)
{
	const char *v = getenv("DMIGRATE_TEST_FORGE_XCR0");
	unsigned long long x;
	char *end;
	if (!v || !*v)
		return 0;
	errno = 0;
	x = strtoull(v, &end, 16);
	return errno || *end ? 0 : (uint64_t)x;
}

static int connect_all(struct src *s)
{
	const struct mig_source_opts *o = s->o;
	struct net_config cfg = { .insecure = o->insecure, .io_timeout_ms = -1 };
	int r;

	r = net_ctx_new(&cfg, o->key, &s->ctx);
	if (r < 0)
		return r;
	r = net_connect(s->ctx, o->to, NET_ROLE_CONTROL, NULL, &s->ctl);
	if (r < 0)
		return r;
	mig_tune_chan(s->ctl, true);
	return 0;
}

static int connect_data(struct src *s)
{
	int r = net_connect(s->ctx, s->o->to, NET_ROLE_FAULT, net_chan_session(s->ctl), &s->fault);
	if (r < 0)
		return r;
	mig_tune_chan(s->fault, true);
	r = net_connect(s->ctx, s->o->to, NET_ROLE_BULK, net_chan_session(s->ctl), &s->bulk);
	if (r < 0)
		return r;
	mig_tune_chan(s->bulk, false);
	r = net_egress_of(net_chan_fd(s->bulk), &s->egress);
	if (r < 0)
		pr_debug("egress queue of the bulk channel: %s", strerror(-r));
	else
		pr_info("link queue (%s): %s, %s", s->egress.ifname, s->egress.desc,
			s->egress.queueing == NET_Q_PRIORITY ?
				"fault replies pass the push: it fills the link" :
				"fault replies would wait behind the push: it keeps little in flight");
	s->wd.chans[0] = s->ctl;
	s->wd.chans[1] = s->fault;
	s->wd.chans[2] = s->bulk;
	return 0;
}

/* ---- a Docker container's image ------------------------------------------ */

struct image_saver {
	const struct mig_source_opts *o;
	int fd;
	uint32_t layers_here;
	uint64_t skipped;
	int r;
	char err[DM_ERRMSG_MAX];
};

static void *image_save_thread(void *arg)
{
	struct image_saver *v = arg;
	v->r = v->o->image_save(v->o->container_arg, v->fd, v->layers_here, &v->skipped);
	if (v->r < 0)
		snprintf(v->err, sizeof(v->err), "%s", dm_last_error());
	shutdown(v->fd, SHUT_RDWR);
	return NULL;
}

/* The destination lacks the container's image: its `docker save` (without
 * the layers the destination has), before anything is frozen, as
 * IMAGE_DATA frames and IMAGE_END (or ABORT). */
static int send_image(struct src *s, uint32_t layers_here)
{
	struct image_saver v = { .o = s->o, .fd = -1, .layers_here = layers_here };
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t total = 0;
	pthread_t t;
	int sp[2], r = 0;

	if (!s->o->image_save)
		return dm_fail(-EPROTO, "the destination asks for an image: the tree is not a Docker container");
	if (layers_here > s->o->n_image_layers)
		return dm_fail(-EPROTO, "the destination claims %u layers of an image of %zu", layers_here,
			       s->o->n_image_layers);
	if (layers_here)
		src_say(s, "the destination lacks the container's image: sending it (it has %u of its %zu layers)",
		    layers_here, s->o->n_image_layers);
	else
		src_say(s, "the destination lacks the container's image: sending it");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return dm_fail(neg_errno(), "socketpair: %m");
	v.fd = sp[1];
	r = -pthread_create(&t, NULL, image_save_thread, &v);
	if (r < 0) {
		close(sp[0]);
		close(sp[1]);
		return dm_fail(r, "cannot start a thread: %s", strerror(-r));
	}
	mig_watchdog_arm(&s->wd, "sending the image", MIG_WAIT_IMAGE_LOAD_MS);
	buf = xmalloc(MIG_DATA_MAX);
	for (;;) {
		ssize_t n = read(sp[0], buf, MIG_DATA_MAX);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r = net_send_frame(s->ctl, MIG_T_IMAGE_DATA, buf, (size_t)n);
		if (r < 0)
			break;
		total += (uint64_t)n;
	}
	shutdown(sp[0], SHUT_RDWR);
	pthread_join(t, NULL);
	close(sp[0]);
	close(sp[1]);
	if (r < 0)
		return dm_wrap(r, "sending the image");
	if (v.r < 0) {
		r = dm_fail(v.r, "%s", v.err);
		mig_send_reply(s->ctl, MIG_T_ABORT, false, r, v.err, 0, NULL);
		return r;
	}
	r = net_send_frame(s->ctl, MIG_T_IMAGE_END, NULL, 0);
	if (r >= 0)
		s->image_stats = json_pack("{s:I,s:I,s:I,s:I}", "bytes", (json_int_t)total, "bytes_left_out",
					   (json_int_t)v.skipped, "layers", (json_int_t)s->o->n_image_layers,
					   "layers_at_destination", (json_int_t)layers_here);
	if (r >= 0 && v.skipped)
		src_say(s, "image sent (%.1f MiB; %.1f MiB of layers the destination has left out)",
		    (double)total / (1 << 20), (double)v.skipped / (1 << 20));
	else if (r >= 0)
		src_say(s, "image sent (%.1f MiB)", (double)total / (1 << 20));
	return r;
}

/* prepare: connect, START -> ACCEPT (MIG_WAIT_ACCEPT_MS), the data channels */
int src_ph_connect(struct src *s)
{
	const struct mig_source_opts *o = s->o;
	Dm__MigReply *rep = NULL;
	int r;

	r = mig_watchdog_start(&s->wd);
	if (r < 0)
		return r;
	/* the frozen dump's pool decides at once whether the host has room for
	 * a second worker from what its CPUs did since now (a window of its own,
	 * opened at the freeze, is shorter than a /proc/stat tick: it could not
	 * tell, and stayed at one); without the sensors, it opens its own */
	if (!o->dump_threads && pool_proc_sensors_new(&s->pool_sensors) < 0) {
		s->pool_sensors = NULL;
		dm_error_clear();
	}
	r = connect_all(s);
	if (r < 0)
		return r;
	s->wd.chans[0] = s->ctl;
	{
		unsigned nprocs = 0;
		uint64_t anon = tree_anon_bytes(o->pid, &nprocs);
		Dm__MigStart m = DM__MIG_START__INIT;
		struct utsname u;
		_cleanup_free_ char *target = xasprintf("pid:%d", o->pid);
		m.mode = (char *)mig_mode_name(o->mode);
		m.target = target;
		if (uname(&u) == 0)
			m.source_host = u.nodename;
		if (o->mode != MIG_POST_COPY) {
			m.has_store_bytes = true;
			m.store_bytes = anon + anon / 4 + (64u << 20);
			if (forged_mem_bytes())
				m.store_bytes = forged_mem_bytes();
		}
		m.has_processes = true;
		m.processes = nprocs;
		/* our page server takes the faulting byte's address */
		m.has_fault_exact = true;
		m.fault_exact = true;
		/* a Docker container: it may start there while we prepare */
		m.has_ready_later = m.ready_later = o->docker_inspect != NULL &&
						    !getenv("DMIGRATE_TEST_READY_AT_ACCEPT");
		/* post-copy: the eager pages go before the freeze, into a store */
		if (src_presend_wanted(s)) {
			m.has_eager_store = m.eager_store = true;
			m.has_store_bytes = true;
			m.store_bytes = (uint64_t)PRESEND_MAX_PAGES * DM_PAGE_SIZE;
			/* and, while its container starts there, the lazy memory */
			if (m.ready_later && !env_off("DMIGRATE_PRESEND_LAZY")) {
				m.has_store_lazy = m.store_lazy = true;
				s->store_lazy_asked = true;
				m.store_bytes += anon + anon / 8;
			}
			s->store_pages = m.store_bytes / DM_PAGE_SIZE;
		}
		/* for the destination's checks before the freeze */
		m.has_xcr0 = true;
		m.xcr0 = host_xcr0() | forged_xfeatures();
		m.has_tree_bytes = true;
		m.tree_bytes = forged_mem_bytes() ? forged_mem_bytes() : anon;
		uint32_t cf[HOST_CPU_WORDS];
		host_cpu_flags(cf);
		m.has_cpuid_1_ecx = m.has_cpuid_7_ebx = m.has_cpuid_7_ecx = true;
		m.cpuid_1_ecx = cf[0];
		m.cpuid_7_ebx = cf[1];
		m.cpuid_7_ecx = cf[2];
		if (s->rootfs_dir && o->rootfs_mode != RFS_NONE) {
			m.rootfs_mode = (char *)rfs_mode_name(o->rootfs_mode);
			m.rootfs_dir = s->rootfs_dir;
			m.has_rootfs_wire = true;
			m.rootfs_wire = rfs_wire_version();
		}
		m.container_id = (char *)o->container_id;
		m.container_rootfs = (char *)o->container_rootfs;
		if (o->container_base) {
			m.has_container_base = true;
			m.container_base.data = (uint8_t *)o->container_base;
			m.container_base.len = o->container_base_len;
		}
		m.container_bridges = o->container_bridges;
		m.n_container_bridges = o->n_container_bridges;
		m.docker_inspect = (char *)o->docker_inspect;
		m.docker_layer_dirs = o->layer_dirs;
		m.n_docker_layer_dirs = o->n_layer_dirs;
		m.has_docker_layer_dirs_all = o->docker_inspect != NULL;
		m.docker_layer_dirs_all = o->layer_dirs_all;
		m.docker_image_layers = (char **)o->image_layers;
		m.n_docker_image_layers = o->n_image_layers;
		_cleanup_free_ char **vn = xcalloc(o->n_volumes + 1, sizeof(*vn));
		for (size_t i = 0; i < o->n_volumes; i++)
			vn[i] = (char *)o->volumes[i].name;
		m.docker_volume_trees = vn;
		m.n_docker_volume_trees = o->n_volumes <= MIG_VOLUME_TREES_MAX ? o->n_volumes : 0;
		r = net_send_msg(s->ctl, MIG_T_START, &m.base);
		if (r < 0)
			return r;
	}
	/* the tracking begins while the destination prepares (a container's
	 * launch there is the longest step): out of the way of START */
	src_hot_track(s);
	/* a Docker container is made and started there before it accepts */
	mig_watchdog_arm(&s->wd, "the destination to accept",
			 o->docker_inspect ? MIG_WAIT_DOCKER_ACCEPT_MS : MIG_WAIT_ACCEPT_MS);
	uint16_t got = 0;
	r = src_expect_reply_of(s, MIG_T_ACCEPT, MIG_T_NEED_IMAGE, &rep, &got);
	if (r < 0)
		return r;
	if (got == MIG_T_NEED_IMAGE) {
		uint32_t here = rep->has_docker_layers_here ? rep->docker_layers_here : 0;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		r = send_image(s, here);
		if (r < 0)
			return r;
		mig_watchdog_arm(&s->wd, "the destination to load the image", MIG_WAIT_IMAGE_LOAD_MS);
		r = src_expect_reply(s, MIG_T_ACCEPT, &rep);
		if (r < 0)
			return r;
	}
	if (s->rootfs_dir && o->rootfs_mode != RFS_NONE) {
		/* the files' frames: the same format on both hosts, or nothing moves */
		uint32_t theirs = rep->has_rootfs_wire ? rep->rootfs_wire : 1;
		if (theirs != rfs_wire_version()) {
			r = dm_fail(-EPROTONOSUPPORT, "dmigrated on %s speaks rootfs wire protocol version %u%s, this "
				    "dmigrate version %u: run the same dmigrate version on both hosts (nothing was changed)",
				    o->to, theirs, rep->has_rootfs_wire ? "" : " (it names none)", rfs_wire_version());
			protobuf_c_message_free_unpacked(&rep->base, NULL);
			return r;
		}
	}
	s->peer_net_frames = rep->has_net_frames && rep->net_frames;
	s->ready_later = rep->has_ready_later && rep->ready_later;
	s->peer_early_push = rep->has_early_push && rep->early_push && !getenv("DMIGRATE_TEST_LATE_PUSH");
	s->eager_store = src_presend_wanted(s) && rep->has_eager_store && rep->eager_store;
	s->store_lazy = s->eager_store && s->ready_later && s->store_lazy_asked && rep->has_store_lazy &&
			rep->store_lazy;
	/* the volumes as trees of their own; else (an older destination) as
	 * tars in the freeze */
	if (o->n_volumes && o->n_volumes <= MIG_VOLUME_TREES_MAX && rep->has_docker_volume_trees &&
	    rep->docker_volume_trees) {
		s->n_vol = o->n_volumes;
		s->vol = xcalloc(s->n_vol, sizeof(*s->vol));
		s->vol_chan = xcalloc(s->n_vol, sizeof(*s->vol_chan));
		s->vol_miss = xcalloc(s->n_vol, sizeof(*s->vol_miss));
		if (o->volumes_moved)
			*o->volumes_moved = true;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	r = connect_data(s);
	if (r < 0)
		return r;
	if (s->rootfs_dir && o->rootfs_mode != RFS_NONE) {
		r = net_connect(s->ctx, o->to, NET_ROLE_ROOTFS, net_chan_session(s->ctl), &s->rfs_chan);
		if (r < 0)
			return r;
		mig_tune_chan(s->rfs_chan, false);
		s->wd.chans[3] = s->rfs_chan;
		/* misses pass the bulk data queued on the rootfs channel */
		r = net_connect(s->ctx, o->to, NET_ROLE_ROOTFS_MISS, net_chan_session(s->ctl), &s->rfs_miss);
		if (r < 0)
			return r;
		mig_tune_chan(s->rfs_miss, true);
		s->wd.chans[4] = s->rfs_miss;
	}
	for (size_t i = 0; i < s->n_vol; i++) {
		/* each says which volume it carries: they may join in any order */
		struct rfs_wire_volume vi = { .index = (uint32_t)i };
		r = net_connect(s->ctx, o->to, NET_ROLE_VOLUME, net_chan_session(s->ctl), &s->vol_chan[i]);
		if (r >= 0)
			r = net_send_frame(s->vol_chan[i], RFS_T_VOLUME_INDEX, &vi, sizeof(vi));
		if (r >= 0)
			r = net_connect(s->ctx, o->to, NET_ROLE_VOLUME_MISS, net_chan_session(s->ctl), &s->vol_miss[i]);
		if (r >= 0)
			r = net_send_frame(s->vol_miss[i], RFS_T_VOLUME_INDEX, &vi, sizeof(vi));
		if (r < 0)
			return dm_wrap(r, "volume %s", o->volumes[i].name);
		mig_tune_chan(s->vol_chan[i], false);
		mig_tune_chan(s->vol_miss[i], true);
		s->wd.chans[5 + 2 * i] = s->vol_chan[i];
		s->wd.chans[6 + 2 * i] = s->vol_miss[i];
	}
	mig_watchdog_arm(&s->wd, NULL, 0);
	s->t_connected = clock_ns();
	src_say(s, "connected to %s (%s), mode %s", o->to, net_chan_is_secure(s->ctl) ? "TLS 1.3, key verified" : "INSECURE",
	    mig_mode_name(o->mode));
	mig_test_point("src-connected");
	return 0;
}
