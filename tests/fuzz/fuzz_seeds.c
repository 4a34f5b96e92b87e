/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of the fuzz targets with the real encoders: the
 * frames are what net_send_*() puts on an insecure channel (a socketpair),
 * the image seeds are the files of an image directory that dmigrate made.
 *
 *   build/tests/fuzz/fuzz_seeds OUTDIR [IMAGE_DIR]
 *
 * writes the directories OUTDIR/wire, OUTDIR/mem, OUTDIR/rootfs and, with
 * IMAGE_DIR, OUTDIR/image
 * (see tests/fuzz/README.md for the command that makes the image).  The
 * first byte of each seed selects what the target does with the rest (see
 * the header of each target).
 */
#include "base/log.h"
#include "mem/mem.h"
#include "migrate/mig-internal.h"
#include "net/net-priv.h"
#include "migrate/rootfs.h"
#include "rpc.pb-c.h"

#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>

static struct net_ctx *ctx;
static const char *outdir;
static struct net_chan *tx;
static int rx = -1;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_seeds: %s: %s\n", what, dm_last_error()[0] ? dm_last_error() : strerror(errno));
	exit(1);
}

/* A fresh channel whose bytes we collect at the other end (seq from 0). */
static void begin(void)
{
	int sv[2], big = 8 << 20;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (net_chan_new(ctx, sv[0], false, &tx) < 0)
		die("net_chan_new");
	rx = sv[1];
}

/* Write "selector + every byte sent since begin()" to OUTDIR/dir/name. */
static void end(const char *dir, const char *name, uint8_t selector)
{
	char path[512], buf[65536];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", outdir, dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, &selector, 1) < 0)
		die(path);
	while ((n = read(rx, buf, sizeof(buf))) > 0)
		if (write_all(fd, buf, (size_t)n) < 0)
			die(path);
	close(fd);
	net_chan_close(tx);
	close(rx);
}

static void send_msg(uint16_t type, const ProtobufCMessage *m)
{
	if (net_send_msg(tx, type, m) < 0)
		die("net_send_msg");
}

static void send_raw(uint16_t type, const void *p, size_t len)
{
	if (net_send_frame(tx, type, p, len) < 0)
		die("net_send_frame");
}

static void send_page(uint32_t space, uint64_t addr, uint32_t flags)
{
	static uint8_t page[DM_PAGE_SIZE];
	struct iovec iov = { page, sizeof(page) };

	memset(page, 0xa5, sizeof(page));
	if (net_send_pages(tx, space, addr, 1, flags, &iov, 1) < 0)
		die("net_send_pages");
}

static void hello(const char *role, const char *name)
{
	static uint8_t session[NET_SESSION_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	Dm__Hello h = DM__HELLO__INIT;

	h.version = NET_PROTO_VERSION;
	h.has_min_version = true;
	h.min_version = NET_PROTO_VERSION_MIN;
	h.role = (char *)role;
	h.has_session = true;
	h.session.data = session;
	h.session.len = sizeof(session);
	begin();
	send_msg(NET_T_HELLO, &h.base);
	end("wire", name, 0);
}

static void wire_seeds(void)
{
	hello("control", "hello-control");
	hello("fault", "hello-fault");
	hello("bulk", "hello-bulk");

	static const char *modes[] = { "post-copy", "pre-copy", "stop-and-copy", "hybrid" };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		Dm__MigStart m = DM__MIG_START__INIT;
		char name[64];
		m.mode = (char *)modes[i];
		m.target = "pid:1234";
		m.source_host = "a";
		m.has_store_bytes = i == 1 || i == 2;
		m.store_bytes = 1 << 20;
		m.has_processes = true;
		m.processes = 3;
		begin();
		send_msg(MIG_T_START, &m.base);
		snprintf(name, sizeof(name), "start-%s", modes[i]);
		end("wire", name, 1);
	}

	/* the state: two files, sparse data, dirty ranges, the end */
	begin();
	static const char *files[] = { "inventory.img", "pages-1234.img" };
	uint8_t data[300];
	memset(data, 0x3c, sizeof(data));
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		Dm__MigFile f = DM__MIG_FILE__INIT;
		f.name = (char *)files[i];
		f.size = 8192;
		send_msg(MIG_T_FILE, &f.base);
		struct mig_wire_extent e = { .off = 4096 * i, .len = sizeof(data) };
		struct iovec iov[2] = { { &e, sizeof(e) }, { data, sizeof(data) } };
		if (net_send_framev(tx, MIG_T_DATA, iov, 2) < 0)
			die("DATA");
		send_raw(MIG_T_FILE_END, NULL, 0);
	}
	struct mig_wire_range d[2] = { { .space = 1234, .addr = 0x400000, .npages = 3 },
				       { .space = 1234, .addr = 0x7f0000000000, .npages = 1 } };
	send_raw(MIG_T_DIRTY, d, sizeof(d));
	Dm__MigStateEnd se = DM__MIG_STATE_END__INIT;
	se.files = 2;
	se.has_bytes = true;
	se.bytes = 2 * sizeof(data);
	send_msg(MIG_T_STATE_END, &se.base);
	end("wire", "state", 2);

	begin();
	Dm__MigReply a = DM__MIG_REPLY__INIT;
	a.ok = false;
	a.has_err = true;
	a.err = -EIO;
	a.error = "the source gave up";
	send_msg(MIG_T_ABORT, &a.base);
	end("wire", "state-abort", 2);

	begin();
	struct mig_wire_vma_fix v[2] = {
		{ .space = 1234, .madv = 1, .madv_was = 0, .start = 0x400000, .end = 0x401000 },
		{ .space = 1235, .madv = 0, .madv_was = 2, .start = 0x7f0000000000, .end = 0x7f0000004000 },
	};
	send_raw(MIG_T_VMA_FIX, v, sizeof(v));
	end("wire", "vma-fix", 3);
	begin();
	send_raw(MIG_T_VMA_FIX, NULL, 0);
	end("wire", "vma-fix-none", 3);

	/* before COMMIT: the packets the source's lock kept (an IPv4 and an
	 * IPv6 TCP packet, 4-byte little-endian lengths), then COMMIT */
	uint8_t rec[2 * 4 + 40 + 60];
	memset(rec, 0, sizeof(rec));
	uint8_t *p4 = rec + 4, *p6 = rec + 4 + 40 + 4;
	rec[0] = 40;
	p4[0] = 0x45, p4[3] = 40, p4[8] = 64, p4[9] = 6, p4[20 + 12] = 5 << 4;
	rec[4 + 40] = 60;
	p6[0] = 0x60, p6[5] = 20, p6[6] = 6, p6[7] = 64, p6[40 + 12] = 5 << 4;
	begin();
	send_raw(MIG_T_NET_FRAMES, rec, sizeof(rec));
	send_raw(MIG_T_COMMIT, NULL, 0);
	end("wire", "commit-frames", 4);
	begin();
	send_raw(MIG_T_COMMIT, NULL, 0);
	end("wire", "commit", 4);
}

/* fuzz_mem serves address space 1234: lazy pages at MEM_BASE + [0, 32) and
 * [40, 56) pages (see its header) */
#define MEM_SPACE 1234
#define MEM_BASE 0x500000000000ULL
#define PG(n) (MEM_BASE + (uint64_t)(n) * DM_PAGE_SIZE)

static void mem_seeds(void)
{
	struct mem_wire_phase ph = { .phase = MEM_PHASE_INSTALL };
	struct mem_wire_end e = { .pages = 3 };
	struct {
		struct mem_wire_absent h;
		struct mem_wire_absent_range r[2];
	} __attribute__((packed)) ab = { { MEM_SPACE, 2 }, { { PG(4), 4 }, { PG(41), 2 } } };

	/* post-copy: install phase, pushed pages, holes, the end */
	begin();
	send_raw(MEM_T_PHASE, &ph, sizeof(ph));
	send_page(MEM_SPACE, PG(0), MEM_PF_PUSH);
	send_raw(MEM_T_ABSENT, &ab, sizeof(ab));
	send_page(MEM_SPACE, PG(1), MEM_PF_PUSH);
	send_page(MEM_SPACE, PG(40), MEM_PF_PUSH);
	send_raw(MEM_T_PUSH_END, &e, sizeof(e));
	end("mem", "bulk-install", 1);

	/* stop-and-copy, pre-copy: store phase first */
	begin();
	ph.phase = MEM_PHASE_STORE;
	e.pages = 2;
	send_raw(MEM_T_PHASE, &ph, sizeof(ph));
	send_page(MEM_SPACE, PG(0), MEM_PF_PRECOPY);
	send_page(MEM_SPACE, PG(0), MEM_PF_PUSH);
	send_raw(MEM_T_PUSH_END, &e, sizeof(e));
	ph.phase = MEM_PHASE_INSTALL;
	send_raw(MEM_T_PHASE, &ph, sizeof(ph));
	send_page(MEM_SPACE, PG(2), MEM_PF_PUSH);
	e.pages = 1;
	send_raw(MEM_T_PUSH_END, &e, sizeof(e));
	end("mem", "bulk-store", 3);

	/* fault replies */
	begin();
	send_page(MEM_SPACE, PG(3), MEM_PF_FAULT);
	send_page(MEM_SPACE, PG(42), MEM_PF_PREFETCH);
	end("mem", "fault", 0);
}

/* Image seeds: each message file alone (selector 0 inventory, 1 process,
 * 2 file table), and the whole directory (selector 3): records of
 * [u8 kind][i32 id][u32 len][len bytes]. */
static int add_file(int out, const char *dir, const char *name, uint8_t kind, int32_t id, size_t cap)
{
	char path[4096];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	uint32_t len = (uint32_t)MIN((size_t)st.st_size, cap);
	_cleanup_free_ uint8_t *buf = xmalloc(len ? len : 1);
	if (read_exact(fd, buf, len) < 0)
		die(path);
	close(fd);
	if (kind != 0xff && (write_all(out, &kind, 1) < 0 || write_all(out, &id, 4) < 0 || write_all(out, &len, 4) < 0))
		die("write");
	return write_all(out, buf, len);
}

static int seed_file(const char *name, uint8_t selector)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/image", outdir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/image/%s", outdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, &selector, 1) < 0)
		die(path);
	return fd;
}

static void image_seeds(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *e;
	int all = seed_file("dir", 3);

	if (!d)
		die(dir);
	while ((e = readdir(d))) {
		int32_t id = -1;
		uint8_t kind;
		char *n = e->d_name;
		if (!strcmp(n, "inventory.img"))
			kind = 0;
		else if (!strcmp(n, "files.img"))
			kind = 1;
		else if (sscanf(n, "proc-%d.img", &id) == 1)
			kind = 2;
		else if (sscanf(n, "pages-%d.img", &id) == 1)
			kind = 3;
		else if (sscanf(n, "pipe-%d.img", &id) == 1)
			kind = 4;
		else
			continue;
		add_file(all, dir, n, kind, id, SIZE_MAX);
		if (kind <= 2) {
			char sname[300];
			snprintf(sname, sizeof(sname), "msg-%s", n);
			int fd = seed_file(sname, kind == 0 ? 0 : kind == 2 ? 1 : 2);
			add_file(fd, dir, n, 0xff, 0, SIZE_MAX);
			close(fd);
		}
	}
	close(all);
}

/* ---- fuzz_rootfs: the rootfs channels ---- */

/* a directory with one of each kind of entry the sender sends */
static void rootfs_tree(const char *d)
{
	static const struct timespec t[2] = { { 1700000000, 0 }, { 1700000000, 0 } };
	char p[4096];
	uint8_t blk[4096];
	int fd;

#define P(rel) (snprintf(p, sizeof(p), "%s/%s", d, rel), p)
	if (mkdir(P("dir"), 0755) < 0 || mkdir(P("dir/sub"), 0750) < 0)
		die(p);
	/* small files; one with an extended attribute */
	static const struct { const char *rel; const char *text; } small[] = {
		{ "dir/a", "hello\n" }, { "dir/sub/b", "a small file of the tree\n" }, { "c.conf", "key = value\n" },
		{ "empty", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(small); i++) {
		fd = open(P(small[i].rel), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write_all(fd, small[i].text, strlen(small[i].text)) < 0)
			die(p);
		close(fd);
	}
	if (setxattr(P("dir/a"), "user.fuzz", "seed", 4, 0) < 0)
		fprintf(stderr, "fuzz_seeds: %s: no user xattr here (%s)\n", p, strerror(errno));
	/* a larger file of several chunks (a few KiB of data in each, holes
	 * between, so that the seed stays small), and a sparse one */
	memset(blk, 0x5a, sizeof(blk));
	fd = open(P("big"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	for (uint64_t c = 0; fd >= 0 && c < 3; c++)
		if (pwrite_all(fd, blk, sizeof(blk), (off_t)(c * RFS_CHUNK)) < 0)
			die(p);
	if (fd < 0 || pwrite_all(fd, blk, 100, 3 * RFS_CHUNK) < 0)
		die(p);
	close(fd);
	fd = open(P("sparse"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || pwrite_all(fd, blk, 512, 65536) < 0 || ftruncate(fd, 262144) < 0)
		die(p);
	close(fd);
	/* the working set (mapped by the generator: sent before the freeze in priority mode) */
	fd = open(P("lib.so"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	memset(blk, 0x7f, sizeof(blk));
	if (fd < 0 || write_all(fd, blk, sizeof(blk)) < 0)
		die(p);
	close(fd);
	char target[4096];
	snprintf(target, sizeof(target), "%s/dir/a", d);
	if (symlink("dir/a", P("link")) < 0 || link(target, P("dir/hard")) < 0 || mkfifo(P("fifo"), 0600) < 0)
		die(p);
	/* fixed times: the same seeds each time */
	static const char *all[] = { "dir/sub/b", "dir/sub", "dir/a", "dir", "c.conf", "empty", "big", "sparse",
				     "lib.so", "fifo", "" };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		utimensat(AT_FDCWD, P(all[i]), t, 0);
	utimensat(AT_FDCWD, P("link"), t, AT_SYMLINK_NOFOLLOW);
#undef P
}

/* one captured stream, and how far its frames were looked at */
struct cap {
	int fd;
	uint8_t *buf;
	size_t len, size, seen;
};

static bool cap_read(struct cap *c)
{
	uint8_t b[65536];
	ssize_t n;
	bool got = false;

	while ((n = read(c->fd, b, sizeof(b))) > 0) {
		if (c->len + (size_t)n > c->size) {
			c->size = MAX(2 * c->size, c->len + (size_t)n);
			c->buf = xrealloc(c->buf, c->size);
		}
		memcpy(c->buf + c->len, b, (size_t)n);
		c->len += (size_t)n;
		got = true;
	}
	return got;
}

/* the next whole frame of c not looked at yet: its header, payload */
static bool cap_next(struct cap *c, struct net_wire_hdr *h, const uint8_t **payload)
{
	if (c->len - c->seen < sizeof(*h))
		return false;
	memcpy(h, c->buf + c->seen, sizeof(*h));
	if (c->len - c->seen - sizeof(*h) < h->len)
		return false;
	*payload = c->buf + c->seen + sizeof(*h);
	c->seen += sizeof(*h) + h->len;
	return true;
}

static void write_seed(const char *name, uint8_t sel, const struct cap *bulk, const struct cap *miss)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/rootfs", outdir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/rootfs/%s", outdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, &sel, 1) < 0)
		die(path);
	if (sel & 1) {
		uint32_t l = htole32((uint32_t)bulk->len);
		if (write_all(fd, &l, sizeof(l)) < 0)
			die(path);
	}
	if (write_all(fd, bulk->buf, bulk->len) < 0 || ((sel & 1) && write_all(fd, miss->buf, miss->len) < 0))
		die(path);
	close(fd);
}

/*
 * The real sender (rfs_send_start) over dir, the destination played here:
 * every byte it sends on the rootfs and the miss channel is kept.  Priority:
 * WANT PREWALKED at PREWALK_END; after META_END, requests (a chunk of
 * "big", the whole of "dir/sub/b", a directory touched), then RESUMED once
 * those came on the miss channel.  DONE after END.
 */
static void run_sender(const char *dir, enum rfs_mode mode, struct cap *bulk, struct cap *miss)
{
	struct net_chan *sc, *sm, *dc, *dm;
	struct rfs_sender *s;
	int a[2], b[2];
	int64_t big = -1, small = -1, subdir = -1;
	bool asked = false, resumed = mode == RFS_EAGER, end = false;
	int want_left = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, a) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, b) < 0)
		die("socketpair");
	if (net_chan_new(ctx, a[0], false, &sc) < 0 || net_chan_new(ctx, b[0], false, &sm) < 0 ||
	    net_chan_new(ctx, a[1], true, &dc) < 0 || net_chan_new(ctx, b[1], true, &dm) < 0)
		die("net_chan_new");
	*bulk = (struct cap){ .fd = a[1] };
	*miss = (struct cap){ .fd = b[1] };
	if (rfs_send_start(sc, sm, dir, mode, NULL, getpid(), &s) < 0)
		die("rfs_send_start");
	if (mode == RFS_EAGER)
		rfs_send_frozen(s);
	while (!end) {
		struct pollfd p[2] = { { .fd = a[1], .events = POLLIN }, { .fd = b[1], .events = POLLIN } };
		if (poll(p, 2, 30000) <= 0)
			die("the sender sent nothing for 30 s");
		cap_read(bulk);
		cap_read(miss);
		struct net_wire_hdr h;
		const uint8_t *pl;
		struct rfs_wire_want w = { 0 };
		while (cap_next(bulk, &h, &pl)) {
			if (h.type == RFS_T_PREWALK_END) {
				w.kind = RFS_WANT_PREWALKED;
				if (net_send_frame(dm, RFS_T_WANT, &w, sizeof(w)) < 0)
					die("WANT");
				rfs_send_frozen(s);
			} else if (h.type == RFS_T_META_BATCH) {
				/* the ids of the entries asked for */
				for (uint32_t off = 0; off + sizeof(struct rfs_wire_rec) <= h.len;) {
					struct rfs_wire_rec rec;
					memcpy(&rec, pl + off, sizeof(rec));
					off += sizeof(rec);
					Dm__RootfsEntry *m = rec.type == RFS_T_ENTRY ? dm__rootfs_entry__unpack(NULL, rec.len, pl + off) : NULL;
					if (m && !strcmp(m->path, "big"))
						big = m->id;
					else if (m && !strcmp(m->path, "dir/sub/b"))
						small = m->id;
					else if (m && !strcmp(m->path, "dir/sub"))
						subdir = m->id;
					if (m)
						dm__rootfs_entry__free_unpacked(m, NULL);
					off += rec.len;
				}
			} else if (h.type == RFS_T_META_END && !resumed && big > 0 && small > 0 && subdir > 0) {
				struct rfs_wire_want ws[3] = {
					{ .id = (uint32_t)big, .kind = RFS_WANT_MISS, .off = RFS_CHUNK + 10 },
					{ .id = (uint32_t)small, .kind = RFS_WANT_MISS, .off = RFS_WANT_WHOLE },
					{ .id = (uint32_t)subdir, .kind = RFS_WANT_TOUCH },
				};
				for (size_t i = 0; i < ARRAY_SIZE(ws); i++)
					if (net_send_frame(dm, RFS_T_WANT, &ws[i], sizeof(ws[i])) < 0)
						die("WANT");
				asked = true;
				want_left = 2;
			} else if (h.type == RFS_T_END) {
				if (mig_send_reply(dc, RFS_T_DONE, true, 0, NULL, 0, NULL) < 0)
					die("DONE");
				end = true;
			}
		}
		while (cap_next(miss, &h, &pl)) {
			struct rfs_wire_chunk_end ce;
			struct rfs_wire_file_end fe;
			if (h.type == RFS_T_CHUNK_END && h.len == sizeof(ce)) {
				memcpy(&ce, pl, sizeof(ce));
				want_left -= ce.id == big && ce.chunk == 1;
			} else if (h.type == RFS_T_FILE_END && h.len == sizeof(fe)) {
				memcpy(&fe, pl, sizeof(fe));
				want_left -= fe.id == small;
			}
		}
		if (asked && !resumed && want_left <= 0) {
			w.kind = RFS_WANT_RESUMED;
			if (net_send_frame(dm, RFS_T_WANT, &w, sizeof(w)) < 0)
				die("WANT");
			resumed = true;
		}
	}
	if (rfs_send_wait(s, 30000) < 0)
		die("the sender");
	rfs_send_free(s);
	cap_read(miss);
	net_chan_close(sc);
	net_chan_close(sm);
	net_chan_close(dc);
	net_chan_close(dm);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

/* hand-made hostile streams: records of one META_BATCH */
struct batch {
	uint8_t buf[8192];
	size_t len;
};

static void batch_entry(struct batch *b, uint32_t type, Dm__RootfsEntry *m)
{
	struct rfs_wire_rec rec = { .type = type, .len = (uint32_t)dm__rootfs_entry__get_packed_size(m) };
	if (b->len + sizeof(rec) + rec.len > sizeof(b->buf))
		die("batch");
	memcpy(b->buf + b->len, &rec, sizeof(rec));
	b->len += sizeof(rec);
	b->len += dm__rootfs_entry__pack(m, b->buf + b->len);
}

static void batch_id(struct batch *b, uint32_t type, uint32_t id)
{
	struct rfs_wire_rec rec = { .type = type, .len = sizeof(struct rfs_wire_dir_end) };
	memcpy(b->buf + b->len, &rec, sizeof(rec));
	memcpy(b->buf + b->len + sizeof(rec), &id, sizeof(id));
	b->len += sizeof(rec) + sizeof(id);
}

static Dm__RootfsEntry ent(uint32_t id, const char *path, uint32_t mode)
{
	Dm__RootfsEntry m = DM__ROOTFS_ENTRY__INIT;
	m.id = id;
	m.path = (char *)path;
	m.mode = mode;
	return m;
}

static Dm__RootfsEntry file_ent(uint32_t id, const char *path, uint64_t size)
{
	Dm__RootfsEntry m = ent(id, path, S_IFREG | 0644);
	m.has_size = true;
	m.size = size;
	return m;
}

static void send_data(uint32_t id, uint64_t off, const char *text)
{
	struct rfs_wire_data h = { .id = id, .len = (uint32_t)strlen(text), .off = off };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)text, h.len } };
	if (net_send_framev(tx, RFS_T_DATA, iov, 2) < 0)
		die("DATA");
}

static void send_meta_end(uint32_t entries, uint32_t files, uint64_t bytes)
{
	Dm__RootfsMetaEnd me = DM__ROOTFS_META_END__INIT;
	me.entries = entries;
	me.files = files;
	me.bytes = bytes;
	send_msg(RFS_T_META_END, &me.base);
}

static void rootfs_hostile(void)
{
	struct batch b;
	Dm__RootfsEntry r = ent(0, "", S_IFDIR | 0755), m;

	/* paths with ".." */
	static const char *dotdot[] = { "../escape", "dir/../../escape", "./escape", "/escape" };
	for (size_t i = 0; i < ARRAY_SIZE(dotdot); i++) {
		char name[64];
		begin();
		b.len = 0;
		batch_entry(&b, RFS_T_ENTRY, &r);
		m = file_ent(1, dotdot[i], 5);
		batch_entry(&b, RFS_T_ENTRY, &m);
		batch_id(&b, RFS_T_DIR_END, 0);
		send_raw(RFS_T_META_BATCH, b.buf, b.len);
		send_data(1, 0, "owned");
		snprintf(name, sizeof(name), "hostile-dotdot-%zu", i);
		end("rootfs", name, 0);
	}

	/* symlinks out of the root (absolute: to the fuzzer's directory of
	 * roots; relative: up), then an entry through it */
	static const char *targets[] = { "/dev/shm/dm-fuzz-rootfs", ".." };
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
		begin();
		b.len = 0;
		batch_entry(&b, RFS_T_ENTRY, &r);
		m = ent(1, "out", S_IFLNK | 0777);
		m.target = (char *)targets[i];
		batch_entry(&b, RFS_T_ENTRY, &m);
		m = file_ent(2, "out/escape", 5);
		batch_entry(&b, RFS_T_ENTRY, &m);
		m = ent(3, "out/escape-dir", S_IFDIR | 0755);
		batch_entry(&b, RFS_T_ENTRY, &m);
		batch_id(&b, RFS_T_DIR_END, 0);
		send_raw(RFS_T_META_BATCH, b.buf, b.len);
		send_meta_end(4, 1, 5);
		send_data(2, 0, "owned");
		end("rootfs", i ? "hostile-symlink-up" : "hostile-symlink-abs", 0);
	}

	/* a hard link to a later entry, and to a directory */
	begin();
	b.len = 0;
	batch_entry(&b, RFS_T_ENTRY, &r);
	m = file_ent(1, "early", 0);
	m.has_link_id = true;
	m.link_id = 2;
	batch_entry(&b, RFS_T_ENTRY, &m);
	m = file_ent(2, "later", 5);
	batch_entry(&b, RFS_T_ENTRY, &m);
	batch_id(&b, RFS_T_DIR_END, 0);
	send_raw(RFS_T_META_BATCH, b.buf, b.len);
	end("rootfs", "hostile-link-later", 0);
	begin();
	b.len = 0;
	batch_entry(&b, RFS_T_ENTRY, &r);
	m = ent(1, "d", S_IFDIR | 0755);
	batch_entry(&b, RFS_T_ENTRY, &m);
	m = file_ent(2, "to-dir", 0);
	m.has_link_id = true;
	m.link_id = 1;
	batch_entry(&b, RFS_T_ENTRY, &m);
	send_raw(RFS_T_META_BATCH, b.buf, b.len);
	end("rootfs", "hostile-link-dir", 0);

	/* before the freeze: a file removed, another made with its name,
	 * then a hard link to the one removed */
	begin();
	send_raw(RFS_T_PREWALK, NULL, 0);
	b.len = 0;
	batch_entry(&b, RFS_T_ENTRY, &r);
	m = file_ent(1, "f", 5);
	batch_entry(&b, RFS_T_ENTRY, &m);
	batch_id(&b, RFS_T_DIR_END, 0);
	send_raw(RFS_T_META_BATCH, b.buf, b.len);
	send_raw(RFS_T_PREWALK_END, NULL, 0);
	b.len = 0;
	batch_id(&b, RFS_T_REMOVE, 1);
	m = file_ent(2, "f", 7);
	batch_entry(&b, RFS_T_ENTRY, &m);
	m = file_ent(3, "g", 0);
	m.has_link_id = true;
	m.link_id = 1;
	batch_entry(&b, RFS_T_ENTRY, &m);
	batch_id(&b, RFS_T_DIR_END, 0);
	send_raw(RFS_T_META_BATCH, b.buf, b.len);
	send_meta_end(4, 1, 7);
	end("rootfs", "hostile-link-removed", 0);

	/* huge sizes: the largest file allowed, written at its end; a file
	 * sent before the freeze larger than any disk */
	begin();
	b.len = 0;
	batch_entry(&b, RFS_T_ENTRY, &r);
	m = file_ent(1, "huge", 1ULL << 46);
	batch_entry(&b, RFS_T_ENTRY, &m);
	m = file_ent(2, "huger", (1ULL << 46) + 1);
	batch_entry(&b, RFS_T_ENTRY, &m);
	batch_id(&b, RFS_T_DIR_END, 0);
	send_raw(RFS_T_META_BATCH, b.buf, b.len);
	send_data(1, (1ULL << 46) - 5, "owned");
	send_meta_end(3, 2, 1ULL << 47);
	end("rootfs", "hostile-huge", 0);
	begin();
	struct rfs_wire_pre pre = { .pre = 0, .size = 1ULL << 46 };
	send_raw(RFS_T_PRE_FILE, &pre, sizeof(pre));
	end("rootfs", "hostile-huge-presend", 0);

	/* before the freeze: a file removed and its name made again as a
	 * fifo, then data for the file that was removed */
	begin();
	send_raw(RFS_T_PREWALK, NULL, 0);
	b.len = 0;
	batch_entry(&b, RFS_T_ENTRY, &r);
	m = file_ent(1, "f", 5);
	batch_entry(&b, RFS_T_ENTRY, &m);
	batch_id(&b, RFS_T_DIR_END, 0);
	send_raw(RFS_T_META_BATCH, b.buf, b.len);
	send_raw(RFS_T_PREWALK_END, NULL, 0);
	b.len = 0;
	batch_id(&b, RFS_T_REMOVE, 1);
	m = ent(2, "f", S_IFIFO | 0600);
	batch_entry(&b, RFS_T_ENTRY, &m);
	batch_id(&b, RFS_T_DIR_END, 0);
	send_raw(RFS_T_META_BATCH, b.buf, b.len);
	send_data(1, 0, "owned");
	end("rootfs", "bug-removed-file-data", 0); /* (the bug fuzz_rootfs found first) */

	/* a META_END larger than the receiver's buffer (RFS_CHUNK): within a
	 * frame's limit, it was read into the buffer past its end */
	begin();
	uint8_t *big = xcalloc(1, RFS_CHUNK + 4096);
	send_raw(RFS_T_META_END, big, RFS_CHUNK + 4096);
	free(big);
	end("rootfs", "bug-meta-end-overflow", 0);
}

static void rootfs_seeds(void)
{
	char dir[] = "/dev/shm/dm-fuzz-seeds-XXXXXX", lib[128];
	struct cap bulk, miss;

	if (!mkdtemp(dir))
		die("mkdtemp");
	rootfs_tree(dir);
	/* eager, nothing mapped from the tree: everything on the rootfs channel */
	run_sender(dir, RFS_EAGER, &bulk, &miss);
	write_seed("eager", 0, &bulk, &miss);
	free(bulk.buf);
	free(miss.buf);
	/* the tree maps lib.so: the working set, pushed on the miss channel
	 * (eager), sent before the freeze (priority) */
	snprintf(lib, sizeof(lib), "%s/lib.so", dir);
	int fd = open(lib, O_RDONLY | O_CLOEXEC);
	void *map = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		die(lib);
	close(fd);
	run_sender(dir, RFS_EAGER, &bulk, &miss);
	write_seed("eager-miss", 1, &bulk, &miss);
	free(bulk.buf);
	free(miss.buf);
	run_sender(dir, RFS_PRIORITY, &bulk, &miss);
	write_seed("priority", 1, &bulk, &miss);
	write_seed("priority-no-tmpfile", 3, &bulk, &miss);
	free(bulk.buf);
	free(miss.buf);
	munmap(map, 4096);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	rootfs_hostile();
}

int main(int argc, char **argv)
{
	struct net_config cfg = { .insecure = true };

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: fuzz_seeds OUTDIR [IMAGE_DIR]\n");
		return 2;
	}
	outdir = argv[1];
	dm_log_init(-1, -1);
	mkdir(outdir, 0755);
	if (net_ctx_new(&cfg, NULL, &ctx) < 0)
		die("net_ctx_new");
	wire_seeds();
	mem_seeds();
	rootfs_seeds();
	if (argc == 3)
		image_seeds(argv[2]);
	net_ctx_unref(ctx);
	return 0;
}
