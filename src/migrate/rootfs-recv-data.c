/* SPDX-License-Identifier: MIT */
/* The rootfs receiver's file data (rootfs-recv.c): DATA, CHUNK_END and
 * FILE_END from either reader, a chunk written by the first channel it comes
 * on and checked against the other's copy; the reader that completes a file
 * checks it and marks it arrived (finish_file).  And the files of the
 * working set sent before the freeze (PRE_FILE, PRE_DATA, PRE_END), kept
 * unnamed until an ENTRY names them. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-recv-internal.h"
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/log.h"
#include "base/sync.h"

#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

/* (lock) the entry of a file with data of its own (arrived or not).  The
 * source sends the files the restore reads on the miss channel as soon as
 * their entries are out on the rootfs channel: the miss reader may get
 * their data first, and waits for the bulk reader to make them (the bulk
 * reader's own data always comes after its entry). */
static struct rent *file_ent(struct rfs_reader *rd, uint32_t id)
{
	struct rfs_receiver *r = rd->r;
	/* (prewalk: the entry may be updated until META_END, which comes
	 * before any data but the files pushed on the miss channel) */
	bool wait = rd->miss && (id >= r->n_made || r->prewalk);
	if (wait && !r->meta_done)
		r->entry_waits++;
	while (wait && !r->meta_done && (id >= r->n_made || r->prewalk) && r->err > 0 && !r->stopping)
		cond_wait_ms(&r->cond, &r->lock, 1000);
	if (id >= r->n_made)
		return NULL;
	struct rent *e = ENT(r, id);
	/* (a removed file has no data: its name may be another entry's now) */
	return e->is_data && !e->removed ? e : NULL;
}

/* the reader's descriptor of entry id, for writing */
static int open_data(struct rfs_reader *rd, uint32_t id, const char *path)
{
	if (rd->fd >= 0 && rd->fd_id == id)
		return rd->fd;
	if (rd->fd >= 0)
		close(rd->fd);
	rd->fd_id = -1;
	rd->fd = rcv_open_beneath(rd->r, path, O_WRONLY | O_NOFOLLOW, 0);
	if (rd->fd < 0) {
		int k = rd->fd;
		rd->fd = -1;
		return dm_fail(k, "%s: %s", path, strerror(-k));
	}
	rd->fd_id = id;
	return rd->fd;
}

/* DATA: within one chunk, the frames of a chunk together, in order, on
 * one channel; written unless the chunk is in (from the other channel) */
static int on_data(struct rfs_reader *rd, uint32_t len, uint8_t *buf)
{
	struct rfs_receiver *r = rd->r;
	struct rfs_wire_data h;
	if (len < sizeof(h) || len - sizeof(h) > RFS_CHUNK)
		return dm_fail(-EBADMSG, "rootfs data frame of %u bytes", len);
	int k = net_recv_body(rd->c, &h, sizeof(h));
	if (k < 0)
		return k;
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_ent(rd, h.id);
	uint64_t c = h.off / RFS_CHUNK;
	bool ok = e && h.len == len - sizeof(h) && h.len && h.off <= e->size && h.len <= e->size - h.off &&
		  (h.off + h.len - 1) / RFS_CHUNK == c &&
		  (rd->cur_id < 0 ? !(e->chunk_in[c] & CH_BIT(rd)) : rd->cur_id == h.id && rd->cur_chunk == c);
	bool write = ok && !(e->chunk_in[c] & 1);
	if (ok)
		e->chunk_in[c] |= CH_BIT(rd);
	if (write)
		e->writers++;
	pthread_mutex_unlock(&r->lock);
	if (!ok)
		return dm_fail(-EBADMSG, "rootfs data %" PRIu64 "+%u of entry %u out of place", h.off, h.len, h.id);
	k = net_recv_body(rd->c, buf, h.len);
	if (k >= 0 && write) {
		int fd = open_data(rd, h.id, e->path);
		k = fd < 0 ? fd : pwrite_all(fd, buf, h.len, (off_t)h.off);
		if (k < 0 && fd >= 0)
			k = dm_fail(k, "%s: write: %s", e->path, strerror(-k));
	}
	if (write) {
		pthread_mutex_lock(&r->lock);
		e->writers--;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	}
	if (k < 0)
		return k;
	if (rd->cur_id < 0) {
		rd->cur_id = h.id;
		rd->cur_chunk = (uint32_t)c;
		rd->cur_crc = (uint32_t)crc32(0, NULL, 0);
	}
	rd->cur_crc = (uint32_t)crc32(rd->cur_crc, buf, h.len);
	if (write) {
		pthread_mutex_lock(&r->lock);
		r->bytes_in += h.len;
		pthread_mutex_unlock(&r->lock);
	}
	return 0;
}

/*
 * File id has its FILE_END and all its chunks: checked (size, crc of the
 * chunks' crcs), its times set, arrived.  Called by the reader that
 * completed it (e->finishing, taken under the lock).
 */
static int finish_file(struct rfs_reader *rd, uint32_t id)
{
	struct rfs_receiver *r = rd->r;
	struct rent *e = ENT(r, id);
	_cleanup_close_ int fd = rcv_open_beneath(r, e->path, O_WRONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return dm_fail(fd, "%s: %s", e->path, strerror(-fd));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return dm_fail(neg_errno(), "%s: %m", e->path);
	uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), (const uint8_t *)e->crcs, e->n_chunks * sizeof(*e->crcs));
	if ((uint64_t)st.st_size != e->size || e->end_crc != crc)
		return dm_fail(-EIO, "%s arrived damaged: size %" PRIu64 " (want %" PRIu64 "), crc %08x (want %08x)",
			       e->path, (uint64_t)st.st_size, e->size, crc, e->end_crc);
	if (futimens(fd, e->times) < 0)
		return dm_fail(neg_errno(), "%s: times: %m", e->path);
	/* the readers' descriptors of it go (no chunk of it comes any more) */
	if (rd->fd_id == id) {
		close(rd->fd);
		rd->fd = -1;
		rd->fd_id = -1;
	}
	pthread_mutex_lock(&r->lock);
	/* a write of a chunk that came on both channels at once may be going on */
	while (e->writers)
		cond_wait_ms(&r->cond, &r->lock, 100);
	e->arrived = true;
	r->files_in++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* what the kernel cached of it before (st_blocks, times) is stale now
	 * (not under r->lock: the kernel may wait for a read of the file to end) */
	pthread_mutex_lock(&r->arrival_lock);
	if (r->on_arrival)
		for (int64_t i = id; i >= 0; i = ENT(r, i)->next_link)
			r->on_arrival(r->on_arrival_arg, ENT(r, i)->path);
	pthread_mutex_unlock(&r->arrival_lock);
	return 0;
}

/* (lock) the file is complete and nobody checks it yet: this reader will */
static bool take_finish_locked(struct rent *e)
{
	if (!e->end_in || e->n_in != e->n_chunks || e->finishing)
		return false;
	e->finishing = true;
	return true;
}

/* CHUNK_END: checked, then the tree's reads of it go on (a chunk that came
 * on the other channel first: checked against it, dropped) */
static int on_chunk_end(struct rfs_reader *rd, const struct rfs_wire_chunk_end *ce)
{
	struct rfs_receiver *r = rd->r;
	uint32_t crc = rd->cur_id >= 0 ? rd->cur_crc : (uint32_t)crc32(0, NULL, 0);
	bool had_data = rd->cur_id >= 0;
	bool cur_ok = !had_data || (rd->cur_id == ce->id && rd->cur_chunk == ce->chunk);
	rd->cur_id = -1;
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_ent(rd, ce->id);
	if (!e || ce->reserved || ce->chunk >= e->n_chunks || !cur_ok ||
	    (!had_data && e->chunk_in[ce->chunk] & CH_BIT(rd))) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EBADMSG, "rootfs chunk end %u of entry %u out of place", ce->chunk, ce->id);
	}
	e->chunk_in[ce->chunk] |= CH_BIT(rd);
	if (crc != ce->crc || (e->chunk_in[ce->chunk] & 1 && le32toh(e->crcs[ce->chunk]) != crc)) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EIO, "%s arrived damaged: bytes %" PRIu64 "-%" PRIu64 ": crc %08x (want %08x)", e->path,
			       (uint64_t)ce->chunk * RFS_CHUNK, MIN((uint64_t)(ce->chunk + 1) * RFS_CHUNK, e->size), crc,
			       ce->crc);
	}
	if (e->chunk_in[ce->chunk] & 1) {
		/* the other channel's copy is in */
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	e->crcs[ce->chunk] = htole32(crc);
	e->chunk_in[ce->chunk] |= 1;
	e->n_in++;
	bool fin = take_finish_locked(e);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return fin ? finish_file(rd, ce->id) : 0;
}

/* FILE_END: the file is complete once its chunks are in (some may still
 * travel on the other channel); it may come on both channels */
static int on_file_end(struct rfs_reader *rd, const struct rfs_wire_file_end *fe)
{
	struct rfs_receiver *r = rd->r;
	pthread_mutex_lock(&r->lock);
	struct rent *e = file_ent(rd, fe->id);
	if (!e || fe->reserved || e->end_in & CH_BIT(rd) || rd->cur_id >= 0) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EBADMSG, "rootfs file end of entry %u out of place", fe->id);
	}
	if (fe->size != e->size || (e->end_in && fe->crc != e->end_crc)) {
		pthread_mutex_unlock(&r->lock);
		return dm_fail(-EIO, "%s arrived damaged: size %" PRIu64 " (want %" PRIu64 "), crc %08x (want %08x)",
			       e->path, fe->size, e->size, fe->crc, e->end_crc);
	}
	bool first = !e->end_in;
	e->end_in |= CH_BIT(rd);
	e->end_crc = fe->crc;
	bool fin = first && take_finish_locked(e);
	pthread_mutex_unlock(&r->lock);
	return fin ? finish_file(rd, fe->id) : 0;
}

/* one frame of file data (DATA, CHUNK_END, FILE_END), either channel; 1: not one of those */
int rcv_on_file_frame(struct rfs_reader *rd, const struct net_frame *f, uint8_t *buf)
{
	int k;
	switch (f->type) {
	case RFS_T_DATA:
		return on_data(rd, f->len, buf);
	case RFS_T_CHUNK_END: {
		struct rfs_wire_chunk_end ce;
		if (f->len != sizeof(ce))
			return dm_fail(-EBADMSG, "rootfs chunk end of %u bytes", f->len);
		k = net_recv_body(rd->c, &ce, sizeof(ce));
		return k < 0 ? k : on_chunk_end(rd, &ce);
	}
	case RFS_T_FILE_END: {
		struct rfs_wire_file_end fe;
		if (f->len != sizeof(fe))
			return dm_fail(-EBADMSG, "rootfs file end of %u bytes", f->len);
		k = net_recv_body(rd->c, &fe, sizeof(fe));
		return k < 0 ? k : on_file_end(rd, &fe);
	}
	default:
		return 1;
	}
}

/* the files sent before the freeze are not wanted any more: the unnamed ones go */
void rcv_staged_drop(struct rfs_receiver *r)
{
	for (size_t i = 0; i < r->n_staged; i++)
		if (r->staged[i].fd >= 0) {
			close(r->staged[i].fd);
			r->staged[i].fd = -1;
		}
}

/* PRE_FILE, PRE_DATA, PRE_END (before any entry): a file of the working
 * set, into an unnamed file in the root (O_TMPFILE, the same file system
 * as the copy: linked in place by its ENTRY).  Where none can be made, its
 * data is read and dropped, and its ENTRY asks for it again. */
int rcv_on_pre_frame(struct rfs_receiver *r, const struct net_frame *f, uint8_t *buf)
{
	struct rfs_staged *p;
	int k;
	if (r->n_ents)
		return dm_fail(-EBADMSG, "rootfs: a file sent before the freeze after the entries began");
	if (f->type == RFS_T_PRE_DATA) {
		struct rfs_wire_data h;
		if (f->len < sizeof(h) || f->len - sizeof(h) > RFS_CHUNK)
			return dm_fail(-EBADMSG, "rootfs pre-send data frame of %u bytes", f->len);
		k = net_recv_body(r->c, &h, sizeof(h));
		if (k < 0)
			return k;
		p = r->n_staged ? &r->staged[r->n_staged - 1] : NULL;
		if (!p || p->complete || h.id != r->n_staged - 1 || h.len != f->len - sizeof(h) || !h.len ||
		    h.off < p->next || h.off > p->size || h.len > p->size - h.off)
			return dm_fail(-EBADMSG, "rootfs pre-send data %" PRIu64 "+%u of file %u out of place", h.off, h.len,
				       h.id);
		k = net_recv_body(r->c, buf, h.len);
		if (k < 0)
			return k;
		if (p->fd >= 0 && (k = pwrite_all(p->fd, buf, h.len, (off_t)h.off)) < 0)
			return dm_fail(k, "%s: a file sent before the freeze: write: %s", r->root, strerror(-k));
		p->crc = (uint32_t)crc32(p->crc, buf, h.len);
		p->next = h.off + h.len;
		p->bytes += h.len;
		return 0;
	}
	struct rfs_wire_pre h;
	if (f->len != sizeof(h))
		return dm_fail(-EBADMSG, "rootfs pre-send frame %#x of %u bytes", f->type, f->len);
	k = net_recv_body(r->c, &h, sizeof(h));
	if (k < 0)
		return k;
	if (f->type == RFS_T_PRE_FILE) {
		if (h.pre != r->n_staged || h.crc || h.size > (1ULL << 46) ||
		    (r->n_staged && !r->staged[r->n_staged - 1].complete) || r->n_staged >= RFS_ENTRIES_MAX)
			return dm_fail(-EBADMSG, "rootfs pre-send file %u out of place", h.pre);
		/* room for it (the rest is checked once the walk has told us all) */
		struct statvfs sv;
		if (fstatvfs(r->rootfd, &sv) == 0 && h.size + RFS_ROOM_MARGIN > (uint64_t)sv.f_bavail * sv.f_frsize)
			return dm_fail(-ENOSPC, "not enough disk space here for the files: a file of %" PRIu64
				       " MiB to come in %s, %" PRIu64 " MiB free", (h.size + (1 << 20) - 1) >> 20,
				       r->root, ((uint64_t)sv.f_bavail * sv.f_frsize) >> 20);
		r->staged = xrealloc(r->staged, (r->n_staged + 1) * sizeof(*r->staged));
		p = &r->staged[r->n_staged++];
		*p = (struct rfs_staged){ .size = h.size, .crc = (uint32_t)crc32(0, NULL, 0) };
		/* (tests: $DMIGRATE_TEST_RFS_NO_TMPFILE, a file system without them) */
		p->fd = getenv("DMIGRATE_TEST_RFS_NO_TMPFILE") ? (errno = EOPNOTSUPP, -1)
							       : openat(r->rootfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		struct rlimit rl;
		if (p->fd < 0 && errno == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			/* a container's layer: every file of it is held here until
			 * the walk links it (as many as the hard limit allows) */
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
				p->fd = openat(r->rootfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
			else
				errno = EMFILE;
		}
		if (p->fd < 0) {
			pr_info("%s: no unnamed file (%m): the working set comes after the freeze", r->root);
		} else if (ftruncate(p->fd, (off_t)h.size) < 0) {
			return dm_fail(neg_errno(), "%s: a file sent before the freeze: %m", r->root);
		}
		return 0;
	}
	/* PRE_END */
	p = r->n_staged ? &r->staged[r->n_staged - 1] : NULL;
	if (!p || p->complete || h.pre != r->n_staged - 1 || h.size != p->size)
		return dm_fail(-EBADMSG, "rootfs pre-send end of file %u out of place", h.pre);
	if (h.crc != p->crc)
		return dm_fail(-EIO, "a file sent before the freeze arrived damaged: crc %08x (want %08x)", p->crc,
			       h.crc);
	p->complete = true;
	return 0;
}
