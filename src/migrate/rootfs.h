/* SPDX-License-Identifier: MIT */
/*
 * The tree's files (issue 9): `dmigrate migrate pid:N --rootfs-dir DIR`
 * moves the tree's root directory DIR beside its memory, on two channels
 * of its own, from the freeze on: the rootfs channel (NET_ROLE_ROOTFS:
 * metadata and the files in the scheduler's order) and the miss channel
 * (NET_ROLE_ROOTFS_MISS: the destination's requests, and the chunks the
 * tree is blocked on), so that a miss never queues behind bulk data already
 * written into the rootfs channel's socket.
 *
 *   source                                      destination
 *   rootfs channel (rfs_sender's bulk thread)   (rfs_receiver's bulk thread)
 *   before the freeze (priority): the working set's files, read while the
 *   tree runs (watched with inotify from before their stat):
 *   PRE_FILE {pre, size}                    --->    an unnamed file (O_TMPFILE) in ROOT
 *   PRE_DATA {pre, off, len} + bytes ...    --->    written at off
 *   PRE_END {pre, size, crc}                --->    size and crc checked
 *   PREWALK                                 --->    the view waits for META_END
 *   META_BATCH ... (the walk, below, while the tree runs; every directory
 *   watched with inotify from before its listing; an ENTRY of a file
 *   sent before says presend = pre: the unnamed copy is linked there)
 *   PREWALK_END                             --->    (all made) WANT PREWALKED on
 *   the freeze waits for it                 <---    the miss channel
 *   the freeze: what changed since (inotify: the watched directories and
 *   files; the frozen tree's writers) is listed and stated again:
 *   META_BATCH {UPDATE {entry} (a regular file: its data again; a
 *     directory: its attributes), REMOVE {id}, ENTRY ... (new ids),
 *     DIR_END {dir} again (its times)} ---> applied; then META_END
 *   (lazy, eager: the walk from the freeze on, no PRE_*, no PREWALK)
 *   walk DIR, the working set's directories first; each directory's entries
 *   go as soon as it is listed:
 *   META_BATCH: records, in order           --->    dirs, empty sparse files, symlinks,
 *     ENTRY {id, path, mode, owner, times, ...}     hard links, devices made under ROOT;
 *     DIR_END {dir} after dir's last entry          a lookup in dir waits for its DIR_END
 *   META_END {entries, files, bytes}        --->    counts checked
 *   DATA {id, off, len} + bytes ...         --->    written at off (holes stay holes)
 *   CHUNK_END {id, chunk, crc}              --->    crc checked; reads of the chunk go on
 *   FILE_END {id, size, crc}                --->    size, crc of the chunks' crcs, times
 *   END                                     --->    (once every file is in, both channels)
 *                                           <---    DONE {stats}  (MigReply)
 *   miss channel (the sender's miss thread)     (the receiver's miss thread; the view)
 *                                           <---    WANT {id, MISS | TOUCH | RESUMED, off}
 *   DATA, CHUNK_END of a chunk asked for    --->    as above
 *   FILE_END when that chunk was the file's last
 *   (no request waiting: the exe and mapped files, which the restore reads)
 *
 * Files are sent in the order of rootfs-sched.h, chunk by chunk: chunk k of
 * a file is its bytes [k * RFS_CHUNK, (k + 1) * RFS_CHUNK), its data extents
 * in DATA frames (holes skipped), then CHUNK_END.  A chunk goes once, on
 * one of the two channels (the two threads claim it under a lock); a
 * file's FILE_END goes after its last chunk, on the channel of that chunk,
 * so it may arrive before chunks still travelling on the other channel:
 * the destination takes the file as arrived once it has both.  A MISS with
 * an offset asks for that chunk, which the miss thread sends at once, on
 * its own channel: a read of a large file waits for its chunk, not the whole
 * file, and not for the bulk data queued in front of it.  Paths from the
 * peer are checked (relative, no "..", no empty or "." component) and
 * every entry is made with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
 * below ROOT: nothing can land outside it.
 *
 * The frame format has a version, RFS_WIRE_VERSION, exchanged in START
 * (MigStart.rootfs_wire) and ACCEPT (MigReply.rootfs_wire): hosts that
 * speak different ones refuse the migration there, before anything is
 * frozen, naming both versions.
 */
#pragma once

#include "migrate/migrate.pb-c.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/net.h"

/* 1: one channel, no version exchanged (absent from START/ACCEPT);
 * 2: the miss channel, FILE_END possibly ahead of chunks on the other channel;
 * 3: the working set sent before the freeze (PRE_*, RootfsEntry.presend) */
#define RFS_WIRE_VERSION 3u
/* RFS_WIRE_VERSION, or for tests $DMIGRATE_TEST_RFS_WIRE (a host of another version) */
uint32_t rfs_wire_version(void);

enum rfs_frame_type {
	RFS_T_ENTRY = NET_T_ROOTFS + 1,    /* Dm__RootfsEntry (a record of META_BATCH) */
	RFS_T_META_END = NET_T_ROOTFS + 2, /* Dm__RootfsMetaEnd */
	RFS_T_DATA = NET_T_ROOTFS + 3,     /* struct rfs_wire_data + len bytes */
	RFS_T_FILE_END = NET_T_ROOTFS + 4, /* struct rfs_wire_file_end */
	RFS_T_END = NET_T_ROOTFS + 5,      /* empty */
	RFS_T_WANT = NET_T_ROOTFS + 6,     /* struct rfs_wire_want, destination -> source */
	RFS_T_DONE = NET_T_ROOTFS + 7,     /* Dm__MigReply {stats}, destination -> source */
	/* NET_T_ROOTFS + 8: not used */
	RFS_T_DIR_END = NET_T_ROOTFS + 9,  /* struct rfs_wire_dir_end (a record of META_BATCH) */
	RFS_T_CHUNK_END = NET_T_ROOTFS + 10, /* struct rfs_wire_chunk_end */
	RFS_T_META_BATCH = NET_T_ROOTFS + 11, /* records: struct rfs_wire_rec + len bytes, ... */
	RFS_T_PRE_FILE = NET_T_ROOTFS + 12, /* struct rfs_wire_pre (crc 0): a file sent before the freeze */
	RFS_T_PRE_DATA = NET_T_ROOTFS + 13, /* struct rfs_wire_data (id: its pre number) + len bytes */
	RFS_T_PRE_END = NET_T_ROOTFS + 14,  /* struct rfs_wire_pre: all of it came, crc32 of its data */
	RFS_T_PREWALK = NET_T_ROOTFS + 15,  /* empty, first: the entries come before the freeze, META_END after it */
	RFS_T_UPDATE = NET_T_ROOTFS + 16,   /* Dm__RootfsEntry of an entry sent before (a record of META_BATCH) */
	RFS_T_REMOVE = NET_T_ROOTFS + 17,   /* struct rfs_wire_dir_end: that entry is gone (a record) */
	RFS_T_PREWALK_END = NET_T_ROOTFS + 18, /* empty: every entry of the walk before the freeze is out */
	RFS_T_VOLUME_INDEX = NET_T_ROOTFS + 19, /* struct rfs_wire_volume: first on a volume channel (docs/docker.md) */
};

/* the volume (its place in MigStart.docker_volume_trees) a volume or
 * volume-miss channel carries; then the rootfs frames as on rootfs ones */
struct rfs_wire_volume {
	uint32_t index;
} __attribute__((packed));

/* PRE_FILE and PRE_END: file number pre (0, 1, ... in order), its size,
 * and at PRE_END the crc32 of its data extents in order (holes skipped) */
struct rfs_wire_pre {
	uint32_t pre;
	uint32_t crc;
	uint64_t size;
} __attribute__((packed));
_Static_assert(sizeof(struct rfs_wire_pre) == 16, "rootfs pre-send header is 16 bytes");
/* what goes before the freeze at most: the rest of the working set after it */
#define RFS_PRESEND_MAX (128ull << 20)
/* a container's layer (rfs_send_start's layer): every file of it goes before the
 * freeze, up to this (the rest after it, before the restore) */
#define RFS_LAYER_PRESEND_MAX (4ull << 30)
#define RFS_LAYER_PRESEND_FILES 65536u /* and half of inotify's max_user_watches */

/* one record of a META_BATCH frame: ENTRY or DIR_END (one frame and one
 * TLS record for many entries) */
struct rfs_wire_rec {
	uint32_t type;
	uint32_t len;
} __attribute__((packed));
#define RFS_BATCH_MAX (64u << 10)

#define RFS_CHUNK (1u << 20)
#define RFS_ENTRIES_MAX 2000000u
#define RFS_PATH_MAX 4096

struct rfs_wire_data {
	uint32_t id;
	uint32_t len;       /* 1..RFS_CHUNK bytes follow */
	uint64_t off;
} __attribute__((packed));
_Static_assert(sizeof(struct rfs_wire_data) == 16, "rootfs data header is 16 bytes");

/* every entry of directory id has been sent (after the last one) */
struct rfs_wire_dir_end {
	uint32_t id;
} __attribute__((packed));

/* chunk `chunk` of file id is complete: its data extents came in DATA
 * frames (none: a hole), crc is crc32 of those bytes in order */
struct rfs_wire_chunk_end {
	uint32_t id;
	uint32_t chunk;
	uint32_t crc;
	uint32_t reserved;  /* 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct rfs_wire_chunk_end) == 16, "rootfs chunk end is 16 bytes");

struct rfs_wire_file_end {
	uint32_t id;
	uint32_t crc;       /* crc32 of the chunks' crcs (little-endian uint32s, chunk order) */
	uint64_t size;
	uint32_t why;       /* enum rfs_why of its first chunk */
	uint32_t reserved;  /* 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct rfs_wire_file_end) == 24, "rootfs file end is 24 bytes");

/* RESUMED: the tree runs on the destination; until then the source sends
 * only what the restore may wait for (the working set, demands) */
enum { RFS_WANT_MISS = 1, RFS_WANT_TOUCH = 2, RFS_WANT_RESUMED = 3,
       RFS_WANT_PREWALKED = 4 /* PREWALK_END: every entry before it is made here */ };
#define RFS_WANT_WHOLE UINT64_MAX
struct rfs_wire_want {
	uint32_t id;        /* a regular file (MISS) or a directory (TOUCH) */
	uint32_t kind;
	uint64_t off;       /* MISS: the chunk holding this byte; RFS_WANT_WHOLE: the whole file */
} __attribute__((packed));
_Static_assert(sizeof(struct rfs_wire_want) == 16, "rootfs want is 16 bytes");
static inline uint32_t rfs_chunks(uint64_t size)
{
	return (uint32_t)((size + RFS_CHUNK - 1) / RFS_CHUNK);
}

enum rfs_mode { RFS_NONE = 0, RFS_PRIORITY, RFS_LAZY, RFS_EAGER };
const char *rfs_mode_name(enum rfs_mode m);
int rfs_mode_parse(const char *s, enum rfs_mode *ret);

/* ---- source ---- */
struct rfs_sender;
/* Before the freeze: starts the threads on c (metadata and the files in
 * order) and on miss (the destination's requests, the chunks it is blocked
 * on).  priority: the bulk thread sends the working set of the running tree
 * under root first (PRE_*), walks DIR with inotify watches (PREWALK), then
 * waits for rfs_send_frozen(); lazy, eager: it only waits.  The channels
 * stay the caller's.
 * layer (with eager; NULL: none): DIR is a container's layer, the upper
 * directory of the overlay the tree runs in ("/"), or a volume of it
 * mounted at that path in the container: every file of it goes before the
 * freeze (PRE_*, up to RFS_LAYER_PRESEND_MAX), then the walk and its
 * watches as for priority; at the freeze only what changed since.  The
 * tree's paths (the container's, from its root) below layer are DIR's. */
int rfs_send_start(struct net_chan *c, struct net_chan *miss, const char *dir, enum rfs_mode mode, const char *layer,
		   pid_t root, struct rfs_sender **ret);
/* the pre-send is over (0), -ETIMEDOUT after timeout_ms, or the sender's error */
int rfs_send_presend_wait(struct rfs_sender *s, int timeout_ms);
/* the tree is frozen: what was sent before is checked, DIR walked, the
 * working set taken again from the frozen tasks; the thread runs niced
 * until rfs_send_foreground() */
void rfs_send_frozen(struct rfs_sender *s);
/* the thread runs niced until this: the dump is over, the downtime waits for us now */
void rfs_send_foreground(struct rfs_sender *s);
/* 0 once the destination said DONE; -ETIMEDOUT after timeout_ms; the sender's error */
int rfs_send_wait(struct rfs_sender *s, int timeout_ms);
/* stop (shuts the channels down) and join the threads; NULL is fine */
void rfs_send_stop(struct rfs_sender *s);
/* tests: the miss thread has returned (it ends with the transfer) */
bool rfs_send_test_miss_ended(struct rfs_sender *s);
void rfs_send_free(struct rfs_sender *s); /* stops it first */
/* {mode, files, bytes, sent_by_priority{why: {files, bytes}}, misses, working_set_ready_ms,
 *  done_ms (from t0, ns clock), destination{...}} */
json_t *rfs_send_stats(struct rfs_sender *s, uint64_t t0);
/* one line for the progress display: "files 120/3000 (12.0/200.0 MiB)" */
void rfs_send_progress(struct rfs_sender *s, char *buf, size_t len);

/* ---- destination ---- */
struct rfs_receiver;
/* Receives into root (made here, must not exist) from c and miss (a thread
 * each).  root may exist (a container's layer, its directories made
 * beforehand by rfs_make_dirs): directories that are there already are kept */
int rfs_recv_start(struct net_chan *c, struct net_chan *miss, const char *root, struct rfs_receiver **ret);
/* The directories of a container's layer (parents first) under root, before
 * its overlay is mounted: the overlay then sees them as its upper ones, and
 * files that land in them later are found (docs/docker.md). */
int rfs_make_dirs(const char *root, Dm__RootfsEntry *const *dirs, size_t n);
/* every file arrived (0), -ETIMEDOUT after timeout_ms, or the receiver's error */
int rfs_recv_wait_all(struct rfs_receiver *r, int timeout_ms);
/* stop the threads (the channels shut down): the view's waiters get -EIO */
void rfs_recv_stop(struct rfs_receiver *r);
void rfs_recv_free(struct rfs_receiver *r);
/* after DONE was sent: stats the destination gave */
json_t *rfs_recv_stats(struct rfs_receiver *r);
uint64_t rfs_recv_bytes(struct rfs_receiver *r);
/* the receiver failed: its error (named), else 0 */
int rfs_recv_failed(struct rfs_receiver *r);

/* For the lazy view, which runs from before the freeze: an operation on a
 * path first waits for the entries of the directories it goes through
 * (rfs_recv_wait_path), so it never sees a directory half made. */
/* every directory of rel ("" the root; rel itself if it is a directory) is
 * complete: 0, or -EIO if the transfer broke */
int rfs_recv_wait_path(struct rfs_receiver *r, const char *rel);
/* the entry of a path (relative, "" for the root), -1 if it came from the
 * tree itself (or is not there yet: wait for its directory first) */
int64_t rfs_recv_lookup(struct rfs_receiver *r, const char *rel);
/* the tree looked into directory dir: its files go next (WANT TOUCH, once) */
void rfs_recv_touch(struct rfs_receiver *r, int64_t dir);
/* entry id's data has not arrived yet; times: what it will have */
bool rfs_recv_pending(struct rfs_receiver *r, int64_t id, struct timespec times[2]);
/* the tree opens entry id: counted.  write: it may change the file, which
 * must have all its data first (a miss if not: asked for at once, waited
 * for); a read-only open waits for nothing (its reads wait).  0, or -EIO
 * if the transfer broke; 1: it waited */
int rfs_recv_open(struct rfs_receiver *r, int64_t id, bool write);
/* the tree reads [off, off + len) of entry id: waits for the chunks not in
 * (each asked for at once, ahead of everything).  0, 1: it waited, -EIO */
int rfs_recv_read(struct rfs_receiver *r, int64_t id, uint64_t off, uint64_t len);
/* until rfs_recv_resumed(), the thread runs niced: it yields the CPU to the restore */
void rfs_recv_background(struct rfs_receiver *r);
/* the tree runs here: the source may send the rest (WANT RESUMED); the thread at full priority again */
void rfs_recv_resumed(struct rfs_receiver *r);
/* an open of the tree that had to wait (counted once per open) */
void rfs_recv_note_miss(struct rfs_receiver *r);
bool rfs_recv_all_in(struct rfs_receiver *r);
/* tests: hold the rootfs channel's reader (it reads nothing more until
 * released with 0: the bulk data stays queued in front of it) after the
 * next chunk it completes, or before its next frame; held: it is holding
 * now; entry_waits: the miss reader had data for an entry not made yet
 * (and waited for it) */
enum { RFS_HOLD_AFTER_CHUNK = 1, RFS_HOLD_BEFORE_FRAME = 2 };
void rfs_recv_test_hold(struct rfs_receiver *r, int hold);
bool rfs_recv_test_held(struct rfs_receiver *r);
uint64_t rfs_recv_test_entry_waits(struct rfs_receiver *r);
/* called by the receiver once a file has arrived, with the paths of its
 * names (for the view to drop what the kernel cached of it) */
void rfs_recv_on_arrival(struct rfs_receiver *r, void (*fn)(void *arg, const char *rel), void *arg);
/* called by the receiver once every file is in, before it answers DONE: its
 * result goes into DONE's stats as "read_overhead" (the view's probe) */
void rfs_recv_on_end(struct rfs_receiver *r, json_t *(*fn)(void *arg), void *arg);

/* The source's inode numbers: the copy's st_ino -> the source's.  The view
 * reports them (programs compare st_ino: sqlite refuses a database whose
 * inode changed).  A file the tree made here keeps the copy's number, with
 * bit 63 set if that number is one of the source's. */
struct rfs_inomap;
struct rfs_inomap *rfs_recv_inomap(struct rfs_receiver *r); /* a reference */
uint64_t rfs_inomap_get(struct rfs_inomap *m, uint64_t copy_ino);
void rfs_inomap_put(struct rfs_inomap *m);

/*
 * The lazy view (rootfs-fuse.c): a FUSE file system at mnt over the copy
 * being received in backing, so that the tree runs before its files are in.
 * Lookups and stat never block (the metadata is in first); an open of a
 * file whose data is not in blocks that thread only, until it is (a miss,
 * asked for at once); every directory the tree looks into sends its files
 * next.  Writes go to the copy (a file is complete before the tree can open
 * it, so nothing that arrives later overwrites them).  It lives as long as
 * the tree; rfs_view_detach() once every file is in (the receiver may go).
 */
struct rfs_view;
int rfs_view_start(struct rfs_receiver *r, const char *backing, const char *mnt, struct rfs_view **ret);
void rfs_view_detach(struct rfs_view *v);
/* the requests it served so far, by kind: {getattr: {n, ms, max_ms}, open: ...}
 * (their time includes the waits for the files) */
json_t *rfs_view_stats(struct rfs_view *v);
/* unmount (lazily: a tree still in it gets ENOTCONN) and free; NULL is fine */
void rfs_view_free(struct rfs_view *v);
