/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of the fuzz targets with the real encoders: the
 * frames are what net_send_*() puts on an insecure channel (a socketpair),
 * the image seeds are the files of an image directory that dmigrate made.
 *
 *   build/tests/fuzz/fuzz_seeds OUTDIR [IMAGE_DIR]
 *
 * writes the directories OUTDIR/wire, OUTDIR/mem and, with IMAGE_DIR,
 * OUTDIR/image
 * (see tests/fuzz/README.md for the command that makes the image).  The
 * first byte of each seed selects what the target does with the rest (see
 * the header of each target).
 */
#include "base/log.h"
#include "mem/mem.h"
#include "migrate/mig-internal.h"
#include "net/net-priv.h"
#include "rpc.pb-c.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

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
	if (argc == 3)
		image_seeds(argv[2]);
	net_ctx_unref(ctx);
	return 0;
}
