/* SPDX-License-Identifier: MIT */
/* Inside migrate/: helpers shared by the source and the destination. */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <pthread.h>

#include "base/log.h"
#include "migrate/migrate.h"
#include "migrate/wire.h"
#include "migrate/migrate.pb-c.h"

/* TCP keepalive and user timeout: a cut link is noticed in seconds, not at
 * the 15-minute retransmission limit (~7 s idle, 10 s with data unacknowledged;
 * DMIGRATE_TEST_LINK_DEAD_S=N, 2 to 9, makes both about N s for the tests).  Nagle off on the control and fault
 * channels (small frames that someone waits for), which go first in the
 * host's queues (interactive priority); the bulk channel goes last. */
void mig_tune_chan(struct net_chan *c, bool nodelay);
#define MIG_DSCP_LE 1 /* lower effort (RFC 8622): the bulk push */
/*
 * After the switch-over a broken link is worse than a slow one: the tree
 * runs on the destination and needs its pages, the source's copy is
 * stopped.  The channel then waits for a dead link (TCP retransmits; the
 * connection survives an outage) for about `seconds` instead of ~7.
 */
void mig_chan_patience(struct net_chan *c, unsigned seconds);
#define MIG_LINK_PATIENCE_S 120

int mig_send_empty(struct net_chan *c, uint16_t type);
/* ok = false: an ABORT-style reply (error and err set). stats may be NULL. */
int mig_send_reply(struct net_chan *c, uint16_t type, bool ok, int err, const char *error, pid_t root_pid,
		   json_t *stats);

/*
 * Next control frame: its type, and for the protobuf types the decoded
 * message (MigReply for ACCEPT/RESUMED/MEM_DONE/ABORT, MigStart, MigFile,
 * MigStateEnd).  Raw frames (DATA, DIRTY) and empty ones are left for the
 * caller to read (ret_msg NULL, *ret_len their length).  Unknown types and
 * malformed messages are -EBADMSG.
 */
int mig_recv(struct net_chan *c, uint16_t *ret_type, uint32_t *ret_len, ProtobufCMessage **ret_msg);
/* The stats JSON of a reply (an object), or NULL. */
json_t *mig_reply_stats(const Dm__MigReply *r);
/* The error an ABORT carries: its code (-EREMOTEIO when it names none that
 * fits), its reason (or the code's text) as the dm error. */
int mig_abort_error(const Dm__MigReply *r);

/*
 * What the peer said on the control channel c before it closed the others:
 * a peer that gives up says why there (ABORT, with its reason), then closes
 * its channels.  A send into one of them then fails (EPIPE; ECONNRESET when
 * its kernel resets a connection that data reaches after the close) and a
 * read sees its end, before anyone has read that ABORT, which the net
 * layer keeps for reading (net.h).  Reads c for it up to timeout_ms
 * (frames before it are passed over: the migration has failed).  < 0: its
 * error (mig_abort_error()); 0: none came (the channel ended, failed or
 * stayed silent), the calling thread's dm error as it was.
 */
int mig_peer_abort(struct net_chan *c, int timeout_ms);
/* errors that say the peer closed or reset the channel (see mig_peer_abort()) */
static inline bool mig_peer_closed(int err)
{
	return err == -EPIPE || err == -ECONNRESET;
}

/* Send one file of dirfd (sparse: only its data extents). */
/*
 * An image file: its size, then its extents of data (SEEK_DATA), and of
 * those only the runs that hold data: zeros from MIG_ZERO_GAP bytes on (in
 * MIG_ZERO_LINE steps, buf_next_data()) are left out, the receiver's file is made at its
 * size and reads zeros there.  A raw image's header page (a few bytes, a
 * pipe's 6), the zero parts of the stack and TLS pages in a post-copy's
 * state: a container's state 124 -> 45 KB (memcached), 77 -> 47 (redis),
 * 93 -> 47 (nginx), on the wire in the downtime.
 */
#define MIG_ZERO_LINE 64u
#define MIG_ZERO_GAP 256u
int mig_send_file(struct net_chan *c, int dirfd, const char *name, uint64_t *io_bytes);
/* File names the destination accepts: [A-Za-z0-9._-], no leading '.', at most MIG_NAME_MAX. */
bool mig_name_ok(const char *name);

/* Stats of the channels, as {"control": bytes, "fault": ..., "bulk": ..., "total": ...}:
 * bytes on the wire, both directions. */
json_t *mig_bytes_json(struct net_chan *control, struct net_chan *fault, struct net_chan *bulk);
uint64_t mig_chan_bytes(struct net_chan *c);

/* SIGKILL a process tree (stopped first so that it cannot fork away). */
/* Pids of the tree under root (root included), parents first; *ret is malloc'ed. */

/*
 * The migration as phases, the same names on both sides (source.c and
 * dest.c each run a table of them, in order, and undo a failed one in one
 * place).  A stream that moves beside the others (the memory, the files)
 * starts in the phase that makes its data available and ends in its own.
 *
 *   prepare   connect, START -> ACCEPT, the data channels; pre-copy rounds
 *   freeze    (source) freeze, dump without memory
 *   state     the image files -> the destination; (source) the page server
 *   memory    before the resume: every page (stop-and-copy, pre-copy);
 *             after it: the rest (post-copy, hybrid)
 *   resume    the restore, RESUMED, COMMIT: the switch-over
 *   rootfs    the tree's files (issue 9)
 *   commit    MEM_DONE: the destination has everything, the tree is its own
 *   release   the source's copy killed, FIN, everything freed
 */
enum mig_phase {
	MIG_PH_PREPARE,
	MIG_PH_FREEZE,
	MIG_PH_STATE,
	MIG_PH_RESUME,
	MIG_PH_MEMORY,
	MIG_PH_ROOTFS,
	MIG_PH_COMMIT,
	MIG_PH_RELEASE,
	_MIG_PH_MAX,
};
const char *mig_phase_name(enum mig_phase p);

/*
 * Every wait on the peer has a limit, and they are all here, by phase.
 * Expiring one is an error that names what was waited for.  "Silent"
 * limits count from the last byte that moved on any channel of the
 * migration (a big memory on a slow link takes long, but never says
 * nothing); the others from the start of the wait.
 */
/* prepare */
#define MIG_WAIT_START_MS 15000     /* dest: START after the control channel's Hello */
#define MIG_WAIT_IMAGE_LOAD_MS 300000 /* both: dockerd loads an image the destination lacked */
#define MIG_WAIT_DOCKER_ACCEPT_MS 90000 /* source: ACCEPT after START, a Docker container made and started */
#define MIG_WAIT_ACCEPT_MS 15000    /* source: ACCEPT after START */
#define MIG_WAIT_JOIN_MS 15000      /* dest: the fault and bulk channels after ACCEPT */
/* source, before the freeze: the pre-sent memory acknowledged (a silent limit:
 * while the peer acknowledges, the wait goes on; then the freeze goes on) */
#define MIG_WAIT_DRAIN_STALL_MS 500
/* state, memory before the resume */
#define MIG_WAIT_SILENT_MS 60000    /* dest, silent: the state, then the memory before the
				     * restore (dmigrated --peer-timeout); source, silent: the
				     * destination taking the memory */
/* resume */
#define MIG_WAIT_RESTORE_MS 300000  /* source: RESUMED after the state */
/* dest: COMMIT after RESUMED.  Our copy stays stopped until COMMIT (see
 * hold_until_commit() in dest.c), so this bound is for freeing the slot, not
 * for safety: the two copies cannot overlap whatever its value */
#define MIG_WAIT_COMMIT_MS 10000
/* memory after the resume */
#define MIG_WAIT_VMA_FIX_MS 30000   /* dest: the VMA fix-ups once every page is in */
/* dest, silent, after COMMIT: the pages still missing (MIG_LINK_PATIENCE_S + 10 s);
 * source: a silent link is only reported (watch_link), up to MIG_LINK_PATIENCE_S */
/* source: MEM_DONE after COMMIT, while nothing moves on the channels (pages
 * moving push it back).  Longer than the destination's own silent bound after
 * COMMIT (MIG_LINK_PATIENCE_S + 10 s), so that a destination that gives up
 * first says why (ABORT) before this fires; a stopped or wedged destination
 * (its kernel still answers TCP keepalives: the link's patience never ends)
 * is given up on here.  Tests: DMIGRATE_TEST_WAIT_MEM_DONE_MS. */
#define MIG_WAIT_MEM_DONE_MS ((MIG_LINK_PATIENCE_S + 30) * 1000)
/* release */
#define MIG_WAIT_FIN_MS 30000       /* dest: FIN after MEM_DONE (its absence changes nothing) */

/* dmigrated: free disk space its state dir must have to take a migration
 * (the image of the state: no memory, but files, ghosts, pipes) */
#define MIG_STATE_DISK_MIN (64ULL << 20)

/* dmigrated: migrations served at once (draining a host moves many trees);
 * one more is told "busy" */
#define MIG_SESSIONS_MAX 8

/* A thread that shuts the channels down when a deadline passes. */
struct mig_watchdog {
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	_Atomic uint64_t deadline_ns;   /* 0: none */
	pthread_mutex_t arm_lock;       /* arming vs the thread moving a silent deadline (zeroed: ready) */
	_Atomic int idle_ms;            /* > 0: the deadline moves while bytes move (arm_silent) */
	uint64_t idle_bytes;            /* watchdog thread only */
	_Atomic bool fired;
	char fired_msg[256];            /* why it fired, once fired */
	/* control, fault, bulk, rootfs, rootfs miss, then the volumes' two each (NULL: none) */
	struct net_chan *chans[5 + 2 * MIG_VOLUME_TREES_MAX];
	const char *what;               /* the phase waited for */
	void (*tick)(void *arg);        /* called ~4 times a second (progress display) */
	void *tick_arg;
	/* a negative return fires it too (a worker failed); the control
	 * channel (chans[0]) then stays open when the error says the peer
	 * closed a channel (mig_peer_closed()): what it said there before, its
	 * reason, is for the thread that reads it (mig_peer_abort()) */
	int (*check)(void *arg);
	void *check_arg;
	struct dm_errbox check_err; /* the first error check() returned, with its message */
};
int mig_watchdog_start(struct mig_watchdog *w);
/* what must not come later than timeout_ms from now (<= 0: disarm) */
void mig_watchdog_arm(struct mig_watchdog *w, const char *what, int timeout_ms);
/* what may take any time, as long as no idle_ms pass without a byte on chans[] */
void mig_watchdog_arm_silent(struct mig_watchdog *w, const char *what, int idle_ms);
/* After a failure: if the watchdog fired for a deadline, the timeout, which
 * names the phase (-ETIMEDOUT); if for a worker's failure and err is what
 * its shutdown did (-ECANCELED: a channel shut; -ETIMEDOUT: a wait cut
 * short), the worker's error with its message; else err. */
int mig_watchdog_error(struct mig_watchdog *w, int err);
void mig_watchdog_stop(struct mig_watchdog *w);
