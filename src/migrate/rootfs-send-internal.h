/* SPDX-License-Identifier: MIT */
/* Inside the rootfs sender (rootfs-send*.c): its state, shared by its
 * modules and its two threads.  Lock order and what s->lock guards:
 * rootfs-send.c's header comment.  A "(lock)" function is called with
 * s->lock held. */
#pragma once

#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct rfs_ent {
	char *path;        /* relative to the rootfs, "" for itself */
	struct stat st;
	uint32_t parent;   /* entry id of its directory */
	int64_t link_id;   /* hard link of an earlier entry, or -1 */
	int64_t file;      /* index among the files with data (the scheduler's), or -1 */
	int32_t pre;       /* its data went before the freeze, unchanged since: that pre-send, or -1 */
	bool removed;      /* gone between the walk and the freeze (REMOVE sent) */
};

/* a file of the working set sent before the freeze (PRE_*) */
struct rfs_pre {
	int fd;
	int wd;            /* its inotify watch, set before its stat */
	struct stat st;    /* before its data was read */
	uint64_t bytes;    /* of data sent */
	bool bad;          /* changed since (an inotify event), or not sent whole */
	bool used;         /* an ENTRY names it */
	uint32_t ent;      /* that ENTRY */
};

/* a file the tree may write without its times changing (open for writing,
 * mapped shared and writable) */
struct rfs_writer {
	dev_t dev;
	ino_t ino;
};

struct rfs_file_state {
	uint32_t ent;
	int fd;
	enum rfs_why why;       /* of its first chunk */
	uint32_t n_chunks, next, n_sent;
	bool done;              /* FILE_END sent */
	bool presend;           /* its data went before the freeze (done from the start) */
	bool removed;           /* its entry is gone (done, nothing of it goes) */
	bool ending;            /* its last chunk is sent: FILE_END is on its way (lock) */
	uint8_t end_sent;       /* FILE_END went: SENT_BULK, SENT_MISS (lock) */
	uint8_t end_ch;         /* the channel its last chunk's thread sends FILE_END on (lock) */
	uint64_t end_at;        /* on the bulk channel: its bytes on the wire before it (lock) */
	int users;              /* threads reading fd (lock) */
	uint8_t *sent;          /* per chunk: SENT_* and BUSY_* (lock) */
	uint64_t *bulk_at;      /* per chunk sent on the bulk channel: its bytes on the wire before it (lock) */
	uint32_t *crcs;         /* per chunk: crc32 of its data */
};

struct dir_done {
	uint32_t dir;
	size_t at;              /* its last entry is entry at - 1 */
};

struct chunk_want {
	uint32_t f, chunk;
};

struct rfs_sender {
	struct net_chan *c;    /* rootfs: metadata, files in order (the bulk thread) */
	struct net_chan *mc;   /* miss: requests in, the chunks asked for out (the miss thread) */
	pthread_t miss_thread;
	bool miss_started;
	bool miss_ended;       /* the miss thread returned (lock) */
	bool stopping;         /* rfs_send_stop() (lock) */
	char *dir;
	int dirfd;
	enum rfs_mode mode;
	bool layer;            /* a container's layer or volume: every file before the freeze */
	char *layer_at;        /* where the tree sees it ("/", or a volume's mount point), no trailing / */
	pid_t root;
	pthread_t thread;
	bool started;
	struct rfs_ent *ents;
	size_t n_ents, cap_ents;
	struct rfs_file_state *files;
	size_t n_files, cap_files;
	void *inodes;          /* tsearch: struct inode_key of files with more than one name */
	struct rfs_sched *sched;
	uint8_t *buf, *mbuf;   /* a chunk, the bulk thread's and the miss thread's */
	uint8_t batch[RFS_BATCH_MAX];   /* META_BATCH being filled */
	size_t batch_len;
	int batch_err;
	size_t meta_next;               /* entries put in batches */
	size_t meta_dirs;               /* of dirs_done, DIR_ENDs put */
	/* the walk: directories in the order their entries were complete; the
	 * working set's paths (relative), whose directories are walked first */
	struct dir_done *dirs_done;
	size_t n_dirs_done;
	char **ws;
	bool *ws_mapped;
	size_t n_ws;
	uint32_t *early;       /* mapped files of the working set, not sent yet (the restore reads them) */
	bool ws_walked;        /* every directory on the working set's paths is listed */
	uint32_t *deferred;    /* directories off those paths, walked after them */
	size_t n_deferred;
	size_t n_early;
	uint32_t *touched;     /* directories touched during the snd_walk (lock) */
	size_t n_touched;
	/* the files the restore reads (the exe, mapped files), handed to the
	 * miss thread as their entries go out: it sends them on its channel,
	 * a chunk at a time, when no miss waits (lock); wake: an eventfd */
	uint32_t *push;
	size_t push_head, push_n;
	int wake;
	/* the working set sent before the freeze, checked at the walk; the
	 * tree's writers (rfs_writer) when the working set was taken */
	struct rfs_pre *pre;
	size_t n_pre;
	int32_t *wd_pre;       /* [wd]: the pre-send watched by wd, + 1 (0: none) */
	size_t n_wd_pre;
	uint32_t *pre_by_ino;  /* the pre-sends by inode, sorted (presend_take) */
	int ino_fd;            /* inotify: the pre-sent files' watches */
	struct rfs_writer *writers;
	size_t n_writers;
	struct rfs_writer *pre_writers;  /* before and after the snd_walk (prewalk) */
	size_t n_pre_writers;
	/* priority: the walk before the freeze (prewalk); each directory watched
	 * (wd_dir[wd] = its id + 1) from before its listing; at the freeze what
	 * changed is listed and stated again (delta) */
	bool prewalk, walking_pre, watch_failed;
	uint32_t *wd_dir;
	size_t n_wd_dir;
	uint8_t *dirty;        /* per entry, at the freeze: D_* */
	size_t n_dirty;
	uint32_t *kids, *kid_off;  /* the entries walked before the freeze, by directory */
	size_t n_kids_ents;
	size_t delta_updates, delta_removes, delta_adds;
	bool presend_done;     /* (lock) */
	bool frozen;           /* rfs_send_frozen() (lock) */
	uint64_t t_pre_done, pre_bytes, pre_used_bytes;
	uint64_t walk_cpu_ns;  /* the bulk thread's CPU from the freeze to the walk's end */
	uint64_t t_prewalked;  /* the walk before the freeze ended */
	bool prewalk_acked;    /* WANT PREWALKED: the destination made those entries (lock) */
	uint64_t t_prewalk_acked;
	size_t pre_used, pre_stale;
	/* chunks the tree is blocked on, FIFO (the miss thread's) */
	struct chunk_want *cw;
	size_t cw_head, cw_n, cw_cap;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int err;               /* the thread's end: > 0 running, 0 DONE, < 0 error */
	char errmsg[512];
	/* the destination's refusal (DONE with its error), once either thread
	 * read it: it stays the answer to both (lock); peer_lock: one reader
	 * of the rootfs channel at a time, taken before lock */
	pthread_mutex_t peer_lock;
	int peer_err;
	char peer_msg[512];
	bool peer_done;        /* DONE without an error, read by either thread (lock) */
	/* stats (lock) */
	bool resumed;          /* the destination said RESUMED (eager: from the start) (lock) */
	pid_t tid;             /* the thread's (lock) */
	bool background;       /* niced while the tree is dumped (lock) */
	int base_nice;         /* the starter's nice: foreground; background is 10 more */
	uint64_t t_resumed;
	uint64_t t_start, t_walked, t_meta_sent, t_ws_ready, t_end, t_done;
	uint64_t files_by[_RFS_WHY_MAX], bytes_by[_RFS_WHY_MAX];
	uint64_t files_sent, bytes_sent, bytes_total, misses, touches;
	json_t *dest;
};

struct inode_key {
	dev_t dev;
	ino_t ino;
	uint32_t id;
};

/* per chunk (fs->sent), and per file for its FILE_END (fs->end_sent): on
 * which channel it went or is going.  The bulk thread sends a chunk once.
 * The miss thread sends a chunk asked for that nobody sent, and sends again,
 * on its channel, one that the bulk thread sent when more than
 * RFS_RESEND_AHEAD bytes of the bulk channel were not yet acknowledged in
 * front of it: it may wait there behind that much bulk data (in the socket,
 * in the host's queue), longer than its journey on the miss channel, whose
 * frames pass the bulk channel's in a priority queue.  Less than that, and
 * the copy on its way comes about as soon as a second one would. */
enum { SENT_BULK = 1, SENT_MISS = 2, BUSY_BULK = 4, BUSY_MISS = 8 };
#define ON_MISS(miss, bulk_bit) ((miss) ? (bulk_bit) << 1 : (bulk_bit))
#define RFS_RESEND_AHEAD (2ull * RFS_CHUNK)
/* the bulk channel's unsent bytes in its socket: what a new file waits behind */
#define RFS_BULK_NOTSENT (256u << 10)

/* ---- rootfs-send.c ---- */
void snd_set_err(struct rfs_sender *s, int r);
int snd_read_peer(struct rfs_sender *s, int timeout_ms, bool *ret_done);
int snd_peer_reason(struct rfs_sender *s, int r);

/* ---- rootfs-send-walk.c ---- */
int snd_cmp_inode(const void *a, const void *b);
int snd_add_ent(struct rfs_sender *s, const char *path, const struct stat *st, uint32_t parent);
int snd_add_ent_locked(struct rfs_sender *s, const char *path, const struct stat *st, uint32_t parent);
int snd_cmp_name(const void *a, const void *b);
char **snd_dir_names(DIR *d, size_t *ret_n);
bool snd_on_ws_path(struct rfs_sender *s, const char *dir);
int snd_walk(struct rfs_sender *s, const char *rel, uint32_t self);
void snd_make_sched(struct rfs_sender *s);
int64_t ent_of(struct rfs_sender *s, const char *rel);
int snd_walk_all(struct rfs_sender *s, bool pre);

/* ---- rootfs-send-pre.c ---- */
void snd_ws_free(struct rfs_sender *s);
void snd_working_set_paths(struct rfs_sender *s);
void snd_working_set(struct rfs_sender *s);
int snd_presend(struct rfs_sender *s);
bool snd_presend_take(struct rfs_sender *s, struct rfs_ent *e, struct rfs_file_state *fs);
/* the pre-sent files' fds; all: the inotify instance too (rfs_send_free) */
void snd_presend_close(struct rfs_sender *s, bool all);

/* ---- rootfs-send-meta.c ---- */
int snd_meta_batch_flush(struct rfs_sender *s);
uint8_t *snd_meta_batch_add(struct rfs_sender *s, uint32_t type, size_t len);
int snd_send_entry_as(struct rfs_sender *s, uint32_t id, uint32_t type);
int snd_emit(struct rfs_sender *s);

/* ---- rootfs-send-chunk.c ---- */
bool snd_chunk_taken(const struct rfs_file_state *fs, uint32_t c, bool miss);
bool snd_bulk_has_it(struct rfs_sender *s, const struct rfs_file_state *fs, uint32_t c);
int snd_send_chunk(struct rfs_sender *s, struct net_chan *ch, uint8_t *buf, uint32_t f, uint32_t c,
	       enum rfs_why why, bool *ret_done);
int snd_send_whole_on_miss(struct rfs_sender *s, uint32_t f);

/* ---- rootfs-send-miss.c ---- */
void *snd_miss_thread_main(void *arg);
int snd_send_early(struct rfs_sender *s);

/* ---- rootfs-send-delta.c ---- */
int snd_delta(struct rfs_sender *s);
