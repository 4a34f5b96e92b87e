/* SPDX-License-Identifier: MIT */
/* Inside the rootfs receiver (rootfs-recv*.c): its state, shared by its
 * modules, its two readers and the lazy view's threads.  r->lock guards
 * what they share (each field says so); a "(lock)" function is called with
 * it held.  r->arrival_lock is taken without r->lock held. */
#pragma once

#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct rent {
	char *path;
	uint32_t mode;
	uint64_t size;
	struct timespec times[2];
	int64_t link_id;
	int64_t next_link; /* the next name of the same file (a chain from the file's entry), or -1 */
	bool arrived;
	uint8_t end_in;    /* FILE_END came: on CH_BULK, CH_MISS (lock) */
	bool finishing;    /* a reader checks it, the file is complete (lock) */
	uint32_t end_crc;  /* FILE_END's crc of the chunks' crcs */
	int writers;       /* readers writing a chunk of it (lock) */
	bool is_data;      /* a regular file with data of its own */
	bool dir_done;     /* a directory whose entries are all made (DIR_END) */
	bool removed;      /* REMOVE: gone (its id is not used again) */
	uint8_t asked;     /* WANT sent: 1 the whole file, 2 touch (lock) */
	uint32_t n_chunks, n_in;
	uint8_t *chunk_in; /* per chunk: 1 in, 2 asked for, CH_BULK, CH_MISS: came there (lock) */
	uint32_t *crcs;    /* per chunk: crc32 of its data (little-endian) */
};

#define RBLK 4096u
#define ENT(r, id) (&(r)->blk[(size_t)(id) / RBLK][(size_t)(id) % RBLK])

/* while the restore runs the receiver makes the entries the restore does
 * not look into: it yields the CPU to it (the restore waits for what it
 * needs on the FUSE threads, which keep their priority) */
#define RFS_BACKGROUND_NICE 10

/* what the copy's file system keeps free beside the files (check_room) */
#define RFS_ROOM_MARGIN (16ULL << 20)

/* one channel's reader: the chunk whose DATA frames are arriving, and the
 * file it writes to */
struct rfs_reader {
	struct rfs_receiver *r;
	struct net_chan *c;
	bool miss;              /* the miss channel's */
	pthread_t thread;
	bool started;
	int64_t cur_id;
	uint32_t cur_chunk, cur_crc;
	int fd;                 /* open on entry fd_id, or -1 */
	int64_t fd_id;
};

/* a file of the working set sent before the freeze (PRE_*): an unnamed
 * file in the root until an ENTRY names it (linked there) or META_END */
struct rfs_staged {
	int fd;            /* -1: none could be made (no O_TMPFILE here): its data was dropped */
	uint64_t size, next, bytes;  /* next: where its data may go on (in order) */
	uint32_t crc;
	bool complete;     /* PRE_END came, size and crc right */
};

struct rfs_receiver {
	struct net_chan *c;     /* rootfs: metadata, files, END, DONE */
	struct net_chan *mc;    /* miss: WANTs out, the chunks asked for in */
	struct rfs_reader bulk, miss;
	char *root;
	int rootfd;
	/* entries in blocks that never move (the view holds pointers to
	 * them); a new block and a larger hash table are made under lock */
	struct rent *blk[RFS_ENTRIES_MAX / RBLK + 1];
	size_t n_ents;             /* made (lock for the view) */
	size_t n_made;             /* entries made on disk, files ready for data (lock) */
	uint32_t *hash;            /* path -> entry id + 1, open addressing (lock) */
	struct rfs_inomap *inos;
	size_t hash_mask;
	uint32_t files_announced;
	uint64_t bytes_announced;
	bool prewalk;              /* PREWALK: the entries until META_END may change (lock) */
	bool room_checked;         /* the copy's file system has room for the files */
	struct rfs_staged *staged;  /* the bulk reader's */
	size_t n_staged;
	uint64_t pre_files, pre_bytes;  /* taken in (linked) */
	uint64_t made_ino;         /* the copy's st_ino of the entry just made, if known (0: not) */
	/* the bulk reader's CPU at its first entry (after the freeze; prewalk:
	 * at PREWALK_END), and from then to the resume: what the files cost
	 * while the tree is frozen */
	uint64_t cpu_meta0, cpu_frozen;
	bool cpu_meta0_set;
	bool meta_done;
	bool ended;                /* END handled, DONE on its way: the channels may close (lock) */
	bool stopping;             /* rfs_recv_stop() (lock) */
	int hold;                  /* tests: rfs_recv_test_hold() (lock) */
	bool held;
	uint64_t entry_waits;      /* the miss reader waited for an entry to be made (lock) */
	pthread_mutex_t arrival_lock; /* held while on_arrival runs */
	pid_t tid;                 /* the thread's (lock) */
	bool background;           /* niced while the restore runs (lock) */
	int base_nice;             /* the starter's nice: foreground; background is 10 more */
	int waiting;               /* the tree's threads waiting for data (lock) */
	void (*on_arrival)(void *arg, const char *rel);
	void *on_arrival_arg;
	json_t *(*on_end)(void *arg);  /* every file in, before DONE (arrival_lock) */
	void *on_end_arg;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int err;          /* > 0 running, 0 every file in, < 0 error */
	char errmsg[512];
	uint64_t t_start, t_meta, t_done;
	uint64_t files_in, bytes_in;
	/* the lazy view's side */
	uint64_t opens, misses, waits, miss_wait_ns, miss_wait_max_ns;
	uint64_t t_resumed, misses_1s;  /* the tree runs here; its misses in the first second after */
	uint64_t t_first_miss;
	char first_miss[128];    /* the path and byte of the first wait */
};

/* A chunk may come twice, once on each channel: the source sends again on
 * the miss channel a chunk the tree is blocked on that it sent on the bulk
 * channel (it may be queued there behind bulk data).  The first to come
 * is written; the other is checked and dropped.  The same for FILE_END. */
enum { CH_BULK = 4, CH_MISS = 8 };

#define CH_BIT(rd) ((rd)->miss ? CH_MISS : CH_BULK)

/* ---- rootfs-recv.c ---- */
/* a WANT on the miss channel (a failure is only logged) */
void rcv_want(struct rfs_receiver *r, uint32_t id, uint32_t kind, uint64_t off);

/* ---- rootfs-recv-entries.c ---- */
int rcv_open_beneath(struct rfs_receiver *r, const char *path, int flags, mode_t mode);
int64_t hash_find(struct rfs_receiver *r, const char *rel);
int rcv_on_meta_batch(struct rfs_receiver *r, const uint8_t *buf, uint32_t len);

/* ---- rootfs-recv-data.c ---- */
int rcv_on_file_frame(struct rfs_reader *rd, const struct net_frame *f, uint8_t *buf);
void rcv_staged_drop(struct rfs_receiver *r);
int rcv_on_pre_frame(struct rfs_receiver *r, const struct net_frame *f, uint8_t *buf);

/* ---- rootfs-recv-inomap.c ---- */
struct rfs_inomap *rcv_inomap_new(void);
void rcv_inomap_add(struct rfs_inomap *m, uint64_t copy_ino, uint64_t src_ino);
