/* SPDX-License-Identifier: MIT */
/* The rootfs sender's file data, from either thread (rootfs-send.c): a
 * chunk is claimed under s->lock by the thread that sends it (fs->sent),
 * read outside the lock and sent as DATA frames (holes skipped) and
 * CHUNK_END; the thread that sends a file's last chunk sends its FILE_END.
 * The miss thread leaves to the bulk channel what went there with little in
 * front of it (bulk_has_it), else sends it again on its own channel. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-send-internal.h"
#include "migrate/rootfs.h"
#include "migrate/rootfs-sched.h"
#include "migrate/mig-internal.h"
#include "base/log.h"

#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

/* (lock) chunk c of file f is sent or being sent on that thread's channel
 * (the bulk thread: on any) */
bool snd_chunk_taken(const struct rfs_file_state *fs, uint32_t c, bool miss)
{
	if (miss)
		return fs->sent && fs->sent[c] & (SENT_MISS | BUSY_MISS);
	return fs->done || fs->ending || (fs->sent && fs->sent[c]);
}

/* bytes of the bulk channel the peer acknowledged (TCP), 0 if unknown */
static uint64_t bulk_acked(struct rfs_sender *s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(net_chan_fd(s->c), IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return 0;
	return ti.tcpi_bytes_acked;
}

/* (lock) the miss thread leaves chunk c to the bulk channel: it went there
 * (or is going) with little in front of it */
bool snd_bulk_has_it(struct rfs_sender *s, const struct rfs_file_state *fs, uint32_t c)
{
	if (!fs->sent || !(fs->sent[c] & (SENT_BULK | BUSY_BULK)))
		return false;
	if (!fs->n_chunks)
		return true; /* an empty file: its FILE_END only (send_whole_on_miss) */
	return fs->bulk_at[c] <= bulk_acked(s) + RFS_RESEND_AHEAD;
}

/* the file's FILE_END on channel ch: its size, the crc of its chunks' crcs */
static int send_file_end(struct rfs_sender *s, struct net_chan *ch, uint32_t f)
{
	pthread_mutex_lock(&s->lock);
	const struct rfs_file_state *fs = &s->files[f];
	struct rfs_wire_file_end fe = { .id = fs->ent, .size = (uint64_t)s->ents[fs->ent].st.st_size, .why = fs->why,
					.crc = (uint32_t)crc32(crc32(0, NULL, 0), (const uint8_t *)fs->crcs,
							       fs->n_chunks * sizeof(*fs->crcs)) };
	pthread_mutex_unlock(&s->lock);
	return net_send_frame(ch, RFS_T_FILE_END, &fe, sizeof(fe));
}

/*
 * Chunk c of file f on channel ch (buf: RFS_CHUNK bytes of the thread's):
 * its data extents (holes are skipped), CHUNK_END; then FILE_END if it was
 * the file's last (an empty file has only that).  Nothing if it is taken
 * (chunk_taken).  *ret_done: this call completed the file.
 */
int snd_send_chunk(struct rfs_sender *s, struct net_chan *ch, uint8_t *buf, uint32_t f, uint32_t c,
	       enum rfs_why why, bool *ret_done)
{
	bool miss = ch == s->mc;
	uint64_t sent = 0;
	int r;

	*ret_done = false;
	pthread_mutex_lock(&s->lock);
	struct rfs_file_state *fs = &s->files[f];
	const struct rfs_ent *e = &s->ents[fs->ent];
	const char *path = e->path;
	uint64_t size = (uint64_t)e->st.st_size;
	uint32_t ent = fs->ent, n_chunks = fs->n_chunks;
	if (snd_chunk_taken(fs, c, miss) || (!n_chunks && (fs->ending || fs->done))) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (!fs->sent) {
		fs->why = why;
		fs->sent = xcalloc(fs->n_chunks + 1, 1);
		fs->crcs = xcalloc(fs->n_chunks + 1, sizeof(*fs->crcs));
		fs->bulk_at = xcalloc(fs->n_chunks + 1, sizeof(*fs->bulk_at));
	}
	fs->sent[c] |= ON_MISS(miss, BUSY_BULK);
	if (!miss) {
		struct net_chan_stats cs;
		net_chan_get_stats(ch, &cs);
		fs->bulk_at[c] = cs.wire_sent;
	}
	if (fs->fd < 0 && n_chunks) {
		fs->fd = openat(s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
		if (fs->fd < 0 && errno == EPERM)
			fs->fd = openat(s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fs->fd < 0) {
			r = dm_fail(neg_errno(), "%s/%s: %m", s->dir, path);
			pthread_mutex_unlock(&s->lock);
			return r;
		}
	}
	int fd = fs->fd;
	fs->users++;
	pthread_mutex_unlock(&s->lock);

	/* the data, outside the lock (the other thread sends other chunks meanwhile) */
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	r = 0;
	if (c < n_chunks) {
		uint64_t pos = (uint64_t)c * RFS_CHUNK, end = MIN(pos + RFS_CHUNK, size);
		while (pos < end) {
			off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
			if (data < 0 || (uint64_t)data >= end)
				break; /* only a hole is left in this chunk */
			off_t hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > end)
				hole = (off_t)end;
			uint32_t len = (uint32_t)((uint64_t)hole - (uint64_t)data);
			r = pread_exact(fd, buf, len, data);
			if (r < 0) {
				r = dm_fail(r, "%s/%s: read: %s (did it shrink?)", s->dir, path, strerror(-r));
				break;
			}
			struct rfs_wire_data h = { .id = ent, .len = len, .off = (uint64_t)data };
			struct iovec iov[2] = { { &h, sizeof(h) }, { buf, len } };
			r = net_send_framev(ch, RFS_T_DATA, iov, 2);
			if (r < 0)
				break;
			crc = (uint32_t)crc32(crc, buf, len);
			pos = (uint64_t)data + len;
			sent += len;
		}
		if (r >= 0) {
			struct rfs_wire_chunk_end ce = { .id = ent, .chunk = c, .crc = crc };
			r = net_send_frame(ch, RFS_T_CHUNK_END, &ce, sizeof(ce));
		}
	}

	pthread_mutex_lock(&s->lock);
	fs = &s->files[f];
	fs->users--;
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	bool first = !(fs->sent[c] & (SENT_BULK | SENT_MISS));
	fs->sent[c] = (uint8_t)((fs->sent[c] & ~ON_MISS(miss, BUSY_BULK)) | ON_MISS(miss, SENT_BULK));
	if (first && c < n_chunks) {
		fs->crcs[c] = htole32(crc);
		fs->n_sent++;
	}
	while (fs->next < fs->n_chunks && fs->sent[fs->next])
		fs->next++;
	s->bytes_by[why] += sent;
	s->bytes_sent += sent;
	bool last = first && fs->n_sent == fs->n_chunks && !fs->ending;
	if (last) {
		fs->ending = true;
		fs->end_ch = ON_MISS(miss, SENT_BULK);
		if (!miss) {
			struct net_chan_stats cs;
			net_chan_get_stats(ch, &cs);
			fs->end_at = cs.wire_sent;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!last)
		return 0;
	r = send_file_end(s, ch, f);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	fs = &s->files[f];
	fs->end_sent |= ON_MISS(miss, SENT_BULK);
	if (fs->fd >= 0 && !fs->users) {
		close(fs->fd);
		fs->fd = -1;
	}
	fs->done = true;
	if (!fs->presend) {
		/* (a pre-sent file counted when its ENTRY went: this is a copy the
		 * destination asked for, having lost that one) */
		s->files_by[fs->why]++;
		s->files_sent++;
	}
	if (s->sched)
		rfs_sched_sent(s->sched, f, true);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	*ret_done = true;
	return 0;
}

/* A whole file the tree is blocked on (an open that may change it): its
 * chunks on the miss channel (bulk_has_it: those left to the bulk
 * channel), then its FILE_END there too if it went on the bulk channel
 * with more than RFS_RESEND_AHEAD in front of it. */
int snd_send_whole_on_miss(struct rfs_sender *s, uint32_t f)
{
	pthread_mutex_lock(&s->lock);
	uint32_t n = MAX(s->files[f].n_chunks, 1u);
	pthread_mutex_unlock(&s->lock);
	for (uint32_t c = 0; c < n; c++) {
		pthread_mutex_lock(&s->lock);
		bool skip = snd_bulk_has_it(s, &s->files[f], c);
		pthread_mutex_unlock(&s->lock);
		bool fdone;
		int r = skip ? 0 : snd_send_chunk(s, s->mc, s->mbuf, f, c, RFS_DEMAND, &fdone);
		if (r < 0)
			return r;
	}
	/* every chunk went on some channel (the crcs are known once the file
	 * is ending): its end here too, unless it went here already or the
	 * bulk channel has it close */
	pthread_mutex_lock(&s->lock);
	const struct rfs_file_state *fs = &s->files[f];
	bool again = fs->ending && fs->end_ch == SENT_BULK && !(fs->end_sent & SENT_MISS) &&
		     fs->end_at > bulk_acked(s) + RFS_RESEND_AHEAD;
	if (again)
		s->files[f].end_sent |= SENT_MISS;
	pthread_mutex_unlock(&s->lock);
	return again ? send_file_end(s, s->mc, f) : 0;
}
