/* SPDX-License-Identifier: MIT */
/*
 * What the source's modules share (source.c: the phases of a migration;
 * source-start.c: the first, the connection and START; source-mem.c: the
 * memory before the freeze, i.e. the pre-copy rounds, post-copy's working
 * set and its pre-send).  Not an interface: the
 * migration's is migrate.h.
 */
#pragma once

#include "migrate/mig-internal.h"
#include "migrate/srcguard.h"
#include "base/log.h"
#include "dump/dump.h"
#include "image/image.h"
#include "mem/mem.h"

#include <pthread.h>
#include <stdatomic.h>

/* The eager pages sent before the freeze at most (MigStart.store_bytes). */
#define PRESEND_MAX_PAGES (16384u)

struct src {
	const struct mig_source_opts *o;
	json_t *image_stats;	/* the image sent (NULL: none was asked for) */
	double container_record_ms; /* the container's own state, recorded while frozen */
	double frozen_scan_ms;      /* what was written since the pages went before the freeze, found while frozen */
	double server_load_ms, server_add_ms; /* setup_server(): the image read back, the page sets */
	double state_send_ms;       /* send_state(): the image's files and the dirty list out */
	/* that record, made by a thread beside the dump (record_main()) */
	struct {
		pthread_t th;
		bool started, joined;
		int r;
		char msg[DM_ERRMSG_MAX];
	} rec;
	double container_record_beside_ms; /* its time */
	double container_record_wait_ms;   /* the dump's wait for it before its inventory */
	struct net_ctx *ctx;
	struct net_chan *ctl, *fault, *bulk;
	struct dump_ctx *d;
	/* the dump pool's sensors, measuring from START on (dump_opts.pool_sensors) */
	struct pool_sensors *pool_sensors;
	struct dm_image *img;
	struct dm_checkpoint *ck;
	struct mem_server *srv;
	struct mem_dirty *dirty;
	char *workdir;
	struct mig_watchdog wd;
	struct net_egress egress; /* the queue in front of the bulk channel's link */
	struct mig_result *ret;
	struct dump_opts dopts;
	bool peer_net_frames;   /* ACCEPT: the destination takes NET_FRAMES */
	bool commit_unsent;     /* COMMIT could not be sent and the tree's SIGSTOP stays (unqueue_stop()) */
	/* the tree's files (--rootfs-dir): their channel and sender */
	char *rootfs_dir;        /* realpath of o->rootfs_dir */
	struct net_chan *rfs_chan;
	struct net_chan *rfs_miss;  /* the chunks the tree is blocked on (rootfs.h) */
	struct rfs_sender *rfs;
	/* a Docker container's named volumes, each a tree of its own (ACCEPT
	 * took them: MigReply.docker_volume_trees): channels and senders */
	size_t n_vol;
	struct net_chan **vol_chan, **vol_miss;
	struct rfs_sender **vol;
	enum mig_phase cur_phase;

	uint64_t t0, t_freeze, t_dumped, t_state, t_resume, t_done; /* ns */
	uint64_t t_commit, t_committed; /* COMMIT sent; the container's own switch done (a Docker one's resets) */
	struct timespec t0_wall; /* t0 on the wall clock: the stats' start_unix */
	uint64_t t_presend;      /* the working set's files sent before the freeze */
	uint64_t t_connected;    /* ACCEPT read, every channel joined */
	/* post-copy: the pages the tree writes while the migration prepares
	 * (its working set), pushed first after the resume */
	struct mem_dirty *hot;
	double hot_track_ms, hot_attach_ms, hot_scan_ms;
	double quiet_ms; /* after the commit, faults only (ph_memory_after) */
	uint64_t hot_pages;
	uint64_t hot_max;        /* pages of it pushed first at most ($DMIGRATE_HOT_MAX_MB) */
	bool hot_tried;
	/* post-copy: the pages the dump would send in the freeze (private file
	 * mappings' copies) went before it, into the destination's store */
	bool eager_store;        /* asked in START and taken in ACCEPT */
	uint64_t presend_pages, presend_written;
	/* of them, the stacks of the threads blocked then (the dump's eager
	 * pages around each stack pointer) and a parent's pages its children
	 * share, and their ranges: the freeze's scan of the written ones
	 * covers them too */
	uint64_t presend_stack_pages;
	uint64_t presend_shared_pages; /* a parent's, shared with its children */
	struct src_presend_range { uint32_t space; uint64_t start, end; } *presend_ranges;
	size_t n_presend_ranges, cap_presend_ranges;
	double presend_ms;
	double presend_drain_ms;    /* waited before the freeze for the pre-send to be acknowledged */
	uint64_t presend_in_flight; /* bytes of it unacknowledged when that wait began */
	/* and pages of the lazy memory while the destination starts the
	 * container (MigStart.store_lazy): asked, taken, sent, cut by READY */
	bool store_lazy_asked, store_lazy;
	uint64_t presend_lazy_pages, store_pages;
	bool presend_cut;
	bool peer_early_push;    /* ACCEPT: the push may start before the resume */
	bool push_held;          /* the early push stops after the working set until the commit */
	bool ready_later;        /* ACCEPT: READY follows when its container runs */
	uint64_t t_ready;
	bool push_started;
	uint64_t t_push;         /* the push of what is left began */
	_Atomic(const char *) phase;
	pthread_mutex_t out_lock;
	bool tty, status_shown;
	uint64_t last_bytes, last_ns;
	double rate;

	json_t *rounds;          /* pre-copy rounds */
	json_t *dest_restore;    /* from RESUMED */
	json_t *dest_mem;        /* from MEM_DONE */
	json_t *dump_stats;
	uint64_t precopy_pages;
	struct mig_wire_range *dirty_ranges;
	size_t n_dirty, cap_dirty;
	uint64_t state_files, state_bytes;
	size_t vma_fixes;
	double vma_check_ms;
	double ns_check_ms;        /* the threads' namespaces, checked in ph_resume */
	_Atomic bool switched_over, mem_done; /* for the watchdog thread */
	uint64_t stall_bytes, stall_since;    /* watchdog thread only */
	bool stall_warned;
	pid_t dest_pid;
	bool committed;
	/*
	 * SIGHUP, SIGINT, SIGTERM, SIGPIPE: blocked in every thread and read
	 * from sigfd by the watchdog.  Before the switch-over one rolls the
	 * migration back; from the moment COMMIT may be on its way it is only
	 * reported.  commit_state decides which, atomically: the main thread
	 * moves it RUNNING -> COMMITTING before it sends COMMIT, the watchdog
	 * RUNNING -> ABORTING when a signal comes first.
	 */
	int sigfd;
	_Atomic int commit_state;
	_Atomic int interrupted; /* the signal that made us roll back */
};

enum { SRC_RUNNING, SRC_COMMITTING, SRC_ABORTING };

/* A line of the display (and of the log at info level). */
_printf_(2, 3) void src_say(struct src *s, const char *fmt, ...);
/* ms from the start to t (-1: never) */
double src_ms_since(const struct src *s, uint64_t t);
/* bytes over every channel so far, both ways */
uint64_t src_bytes_moved(const struct src *s);

/* ---- source-stats.c ----------------------------------------------------- */

/* --stats: what the migration did (err: its outcome) */
json_t *src_build_stats(struct src *s, int err);

/* ---- source-start.c, source.c ------------------------------------------ */

/* connect, START -> ACCEPT, the data channels (a phase) */
int src_ph_connect(struct src *s);
/* source.c: a reply of type want (or ABORT: its error); src_expect_reply_of
 * takes one of type also too (0: none), *ret_type says which */
int src_expect_reply(struct src *s, uint16_t want, Dm__MigReply **ret);
int src_expect_reply_of(struct src *s, uint16_t want, uint16_t also, Dm__MigReply **ret,
			uint16_t *ret_type);

/* ---- source-mem.c ------------------------------------------------------- */

/* pre-copy and hybrid: the rounds of written pages while the tree runs
 * (hybrid: one, cut by READY for a Docker container) */
int src_precopy(struct src *s);
/* post-copy: is the working set tracked (from START), do the eager pages
 * go before the freeze */
bool src_hot_wanted(const struct src *s);
bool src_presend_wanted(const struct src *s);
/* After the commit, faults only so long (ns; DMIGRATE_QUIET_MS) */
uint64_t src_quiet_ns(void);
/* post-copy, once START is sent: the tracking of the tree's writes */
void src_hot_track(struct src *s);
/* post-copy, before the freeze: the eager pages, then (store_lazy) the
 * lazy memory until READY, into the destination's store */
int src_presend(struct src *s);
/* dump_opts.page_at_dest: the page is at the destination, unchanged */
bool src_page_at_dest(void *arg, pid_t vpid, uint64_t addr);
/* in the freeze: what was sent before and written since -> DIRTY list */
int src_mem_frozen(struct src *s);
/* after the freeze: the working set to the page server, to go first */
void src_hot_scan(struct src *s);
/* the page server: what the destination holds unchanged is sent */
void src_mark_clean_sent(struct src *s, pid_t pid);
