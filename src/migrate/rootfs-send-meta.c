/* SPDX-License-Identifier: MIT */
/* The rootfs sender's metadata (rootfs-send.c): ENTRY and UPDATE records
 * (attributes, link target, extended attributes), REMOVE and DIR_END, packed
 * into META_BATCH frames on the rootfs channel; snd_emit() puts out what the walk
 * listed since the last call, each directory's DIR_END after its last
 * entry. */
#define LOG_PREFIX "rootfs: "
#include "migrate/rootfs-send-internal.h"
#include "migrate/rootfs.h"
#include "migrate/mig-internal.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

int snd_meta_batch_flush(struct rfs_sender *s)
{
	if (!s->batch_len)
		return 0;
	int r = net_send_frame(s->c, RFS_T_META_BATCH, s->batch, s->batch_len);
	s->batch_len = 0;
	return r;
}

/* room for a record of len bytes in the batch (sent first if full) */
uint8_t *snd_meta_batch_add(struct rfs_sender *s, uint32_t type, size_t len)
{
	struct rfs_wire_rec h = { .type = type, .len = (uint32_t)len };
	if (s->batch_len + sizeof(h) + len > RFS_BATCH_MAX)
		s->batch_err = s->batch_err ?: snd_meta_batch_flush(s);
	memcpy(s->batch + s->batch_len, &h, sizeof(h));
	uint8_t *p = s->batch + s->batch_len + sizeof(h);
	s->batch_len += sizeof(h) + len;
	return p;
}

static int send_entry(struct rfs_sender *s, uint32_t id)
{
	return snd_send_entry_as(s, id, RFS_T_ENTRY);
}

/* ENTRY (a new one) or UPDATE (one sent before the freeze, changed since) */
int snd_send_entry_as(struct rfs_sender *s, uint32_t id, uint32_t type)
{
	const struct rfs_ent *e = &s->ents[id];
	Dm__RootfsEntry m = DM__ROOTFS_ENTRY__INIT;
	char target[RFS_PATH_MAX];
	char names[8192];
	Dm__RootfsXattr xa[32], *xp[32];
	uint8_t *vals[32] = {};
	int r;

	m.id = id;
	m.path = e->path;
	m.mode = e->st.st_mode;
	m.has_uid = m.has_gid = true;
	m.uid = e->st.st_uid;
	m.gid = e->st.st_gid;
	m.has_atime_ns = m.has_mtime_ns = true;
	m.atime_ns = (int64_t)e->st.st_atim.tv_sec * 1000000000LL + e->st.st_atim.tv_nsec;
	m.mtime_ns = (int64_t)e->st.st_mtim.tv_sec * 1000000000LL + e->st.st_mtim.tv_nsec;
	m.has_ino = true;
	m.ino = e->st.st_ino;
	if (e->pre >= 0) {
		m.has_presend = true;
		m.presend = (uint32_t)e->pre;
	}
	if (e->link_id >= 0) {
		m.has_link_id = true;
		m.link_id = (uint32_t)e->link_id;
	} else if (S_ISREG(e->st.st_mode)) {
		m.has_size = true;
		m.size = (uint64_t)e->st.st_size;
	} else if (S_ISLNK(e->st.st_mode)) {
		ssize_t k = readlinkat(s->dirfd, e->path, target, sizeof(target) - 1);
		if (k < 0)
			return dm_fail(neg_errno(), "%s/%s: %m", s->dir, e->path);
		target[k] = 0;
		m.target = target;
	} else if (S_ISCHR(e->st.st_mode) || S_ISBLK(e->st.st_mode)) {
		m.has_rdev = true;
		m.rdev = e->st.st_rdev;
	}
	/* extended attributes (not of symlinks: a user.* one cannot be on a link) */
	if (!S_ISLNK(e->st.st_mode) && e->link_id < 0) {
		_cleanup_free_ char *full = xasprintf("%s/%s", s->dir, e->path);
		ssize_t k = llistxattr(full, names, sizeof(names));
		size_t nx = 0;
		for (ssize_t o = 0; k > 0 && o < k && nx < 32; o += (ssize_t)strlen(names + o) + 1) {
			ssize_t vl = lgetxattr(full, names + o, NULL, 0);
			if (vl < 0)
				continue;
			vals[nx] = xmalloc((size_t)vl + 1);
			vl = lgetxattr(full, names + o, vals[nx], (size_t)vl);
			if (vl < 0) {
				free(vals[nx]);
				vals[nx] = NULL;
				continue;
			}
			dm__rootfs_xattr__init(&xa[nx]);
			xa[nx].name = names + o;
			xa[nx].value.data = vals[nx];
			xa[nx].value.len = (size_t)vl;
			xp[nx] = &xa[nx];
			nx++;
		}
		m.n_xattrs = nx;
		m.xattrs = xp;
	}
	size_t len = protobuf_c_message_get_packed_size(&m.base);
	r = 0;
	if (len > RFS_BATCH_MAX - sizeof(struct rfs_wire_rec))
		r = dm_fail(-E2BIG, "%s/%s: its metadata (%zu bytes of extended attributes and names) is too large",
			    s->dir, e->path, len);
	else
		protobuf_c_message_pack(&m.base, snd_meta_batch_add(s, type, len));
	for (size_t i = 0; i < 32; i++)
		free(vals[i]);
	return r;
}

/* the entries walked and not sent yet, a directory's DIR_END after its
 * last entry; the batch goes when it is full and at the end of the root
 * or of a directory on the working set's paths (what the restore looks
 * into first) */
int snd_emit(struct rfs_sender *s)
{
	int r = 0;
	for (;;) {
		for (; r >= 0 && s->meta_dirs < s->n_dirs_done && s->dirs_done[s->meta_dirs].at <= s->meta_next;
		     s->meta_dirs++) {
			struct rfs_wire_dir_end de = { .id = s->dirs_done[s->meta_dirs].dir };
			memcpy(snd_meta_batch_add(s, RFS_T_DIR_END, sizeof(de)), &de, sizeof(de));
			if (!de.id || snd_on_ws_path(s, s->ents[de.id].path))
				r = snd_meta_batch_flush(s);
		}
		if (r < 0 || s->meta_next >= s->n_ents)
			break;
		size_t i = s->meta_next++;
		r = send_entry(s, (uint32_t)i);
		r = r ?: s->batch_err;
	}
	return r ?: s->batch_err;
}
