/* SPDX-License-Identifier: MIT */
/*
 * Micro-benchmark of the ways to move a process's private pages to an image
 * file and back, to choose the dump's and the restore's page paths.  No
 * dmigrate code: the kernel interfaces only, on MIB MiB of touched memory of
 * a child process, images in DIR.  Strategies run alternately, ROUNDS times;
 * prints the median ms and GiB/s of each.
 *   pagecopy DIR MIB ROUNDS [dump|restore|all]
 *
 * dump (child memory -> DIR/pages, a fresh file each time, no fsync):
 *   pvr+pwrite/C   process_vm_readv into a C-byte buffer, pwrite (dmigrate today: 4M)
 *   mem+pwrite     pread of /proc/PID/mem into a 4M buffer, pwrite
 *   pvr->mmap      process_vm_readv straight into a MAP_SHARED mapping of the file (one copy)
 *   pvr->mmap+pop  the same with MADV_POPULATE_WRITE of each 4M chunk first
 *   vmsplice       the child vmsplices its memory into a pipe, we splice it to the file
 *                  (CRIU's parasite path)
 *   pvr+pwrite x2  pvr+pwrite/4M on two threads (4M chunks taken in turn)
 *   fallocate      fallocate() of the whole file (what could run before the freeze)
 *   prealloc+pvr   pvr+pwrite/4M into that preallocated file (what would stay frozen)
 * restore (DIR/pages -> fresh anonymous memory of a new child):
 *   mem-pwrite     pwrite to /proc/PID/mem from an mmap of the file (4M)
 *   pvw            process_vm_writev from an mmap of the file (4M)
 *   pop+pvw        MADV_POPULATE_WRITE in the child, then process_vm_writev
 *   self-read      the child read()s the file into its memory (an injected read)
 *   uffd-copy      UFFDIO_COPY from an mmap of the file into the child's range
 *                  (registered by the child; no zeroing, no per-page fault)
 *   mem-pwrite x2, uffd-copy x2: the same on two threads
 * Every restore is checked against the written pattern.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CH (4UL << 20)
#define MAXR 64

static char dir[4096], file[4200];
static size_t len;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void fill(uint64_t *p, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (size_t i = 0; i < n / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
}

static int check(const uint64_t *p, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (size_t i = 0; i < n / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (p[i] != x)
			return -1;
	}
	return 0;
}

static void xwrite(int fd, const void *b, size_t n)
{
	if (write(fd, b, n) != (ssize_t)n)
		die("write");
}

static void xread(int fd, void *b, size_t n)
{
	if (read(fd, b, n) != (ssize_t)n)
		die("read");
}

static void send_fd(int sock, int fd)
{
	char c = 'f', cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec io = { &c, 1 };
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(sock, &m, 0) != 1)
		die("sendmsg");
}

static int recv_fd(int sock)
{
	char c, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec io = { &c, 1 };
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	int fd;

	if (recvmsg(sock, &m, 0) != 1)
		die("recvmsg");
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
	return fd;
}

/*
 * A child with len bytes at *addr: filled (source of a dump) or untouched
 * (target of a restore).  It obeys one-byte commands on a socketpair:
 *   'v' vmsplice its memory into the pipe it inherited, 1M at a time
 *   'p' MADV_POPULATE_WRITE its memory
 *   'r' read the file into its memory
 *   'u' create a userfaultfd on its memory, send it over
 *   'c' check its memory against the pattern (answers 'y' or 'n')
 * and answers each with one byte.
 */
struct child {
	pid_t pid;
	int sock;
	uintptr_t addr;
	int pipe_r; /* vmsplice pipe (dump source only) */
};

static struct child spawn(int filled)
{
	int sv[2], pp[2];
	struct child c = { 0 };

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(pp) < 0)
		die("socketpair");
	fcntl(pp[1], F_SETPIPE_SZ, 1 << 20);
	c.pid = fork();
	if (c.pid < 0)
		die("fork");
	if (c.pid == 0) {
		close(sv[0]);
		close(pp[0]);
		uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			die("mmap");
		if (filled)
			fill((uint64_t *)p, len);
		uintptr_t a = (uintptr_t)p;
		xwrite(sv[1], &a, sizeof(a));
		for (;;) {
			char cmd, ok = 'y';
			if (read(sv[1], &cmd, 1) != 1)
				_exit(0);
			if (cmd == 'v') {
				for (size_t o = 0; o < len;) {
					struct iovec io = { p + o, len - o < (1 << 20) ? len - o : (1 << 20) };
					ssize_t n = vmsplice(pp[1], &io, 1, 0);
					if (n <= 0)
						die("vmsplice");
					o += n;
				}
			} else if (cmd == 'p') {
				if (madvise(p, len, MADV_POPULATE_WRITE) < 0)
					die("madvise");
			} else if (cmd == 'r') {
				int fd = open(file, O_RDONLY);
				for (size_t o = 0; o < len;) {
					ssize_t n = pread(fd, p + o, len - o < CH ? len - o : CH, o);
					if (n <= 0)
						die("pread");
					o += n;
				}
				close(fd);
			} else if (cmd == 'u') {
				int u = syscall(SYS_userfaultfd, O_CLOEXEC);
				struct uffdio_api api = { .api = UFFD_API };
				struct uffdio_register reg = { .range = { a, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
				if (u < 0 || ioctl(u, UFFDIO_API, &api) < 0 || ioctl(u, UFFDIO_REGISTER, &reg) < 0)
					die("userfaultfd");
				send_fd(sv[1], u);
				close(u);
				continue;
			} else if (cmd == 'c') {
				ok = check((uint64_t *)p, len) ? 'n' : 'y';
			}
			xwrite(sv[1], &ok, 1);
		}
	}
	close(sv[1]);
	close(pp[1]);
	c.sock = sv[0];
	c.pipe_r = pp[0];
	xread(c.sock, &c.addr, sizeof(c.addr));
	return c;
}

static char cmd(struct child *c, char x)
{
	char r;

	xwrite(c->sock, &x, 1);
	xread(c->sock, &r, 1);
	return r;
}

static void reap(struct child *c)
{
	close(c->sock);
	close(c->pipe_r);
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
}

static int create_file(void)
{
	unlink(file);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die(file);
	return fd;
}

/* ---- two threads over the 4M chunks of [0, len) ---- */

struct par {
	int (*fn)(void *ctx, size_t off, size_t n);
	void *ctx;
	int idx, nthr;
};

static void *par_run(void *arg)
{
	struct par *a = arg;

	for (size_t o = (size_t)a->idx * CH; o < len; o += (size_t)a->nthr * CH)
		if (a->fn(a->ctx, o, CH) < 0)
			die("parallel copy");
	return NULL;
}

static void parallel(int nthr, int (*fn)(void *, size_t, size_t), void *ctx)
{
	pthread_t th[8];
	struct par a[8];

	for (int i = 0; i < nthr; i++) {
		a[i] = (struct par){ fn, ctx, i, nthr };
		if (pthread_create(&th[i], NULL, par_run, &a[i]))
			die("pthread_create");
	}
	for (int i = 0; i < nthr; i++)
		pthread_join(th[i], NULL);
}

/* ---- dump ---- */

struct pvr_ctx {
	pid_t pid;
	uintptr_t addr;
	int fd;
};

static int pvr_chunk(void *arg, size_t o, size_t n)
{
	struct pvr_ctx *x = arg;
	static __thread uint8_t *buf;

	if (!buf)
		buf = malloc(CH); /* one per thread, kept */
	struct iovec l = { buf, n }, r = { (void *)(x->addr + o), n };
	if (process_vm_readv(x->pid, &l, 1, &r, 1, 0) != (ssize_t)n)
		return -1;
	return pwrite(x->fd, buf, n, o) == (ssize_t)n ? 0 : -1;
}

static double dump_prealloc(struct child *src, double *falloc_ms)
{
	double t = now_ms();
	struct pvr_ctx x = { src->pid, src->addr, create_file() };

	if (fallocate(x.fd, 0, 0, len) < 0)
		die("fallocate");
	*falloc_ms = now_ms() - t;
	t = now_ms();
	parallel(1, pvr_chunk, &x);
	close(x.fd);
	return now_ms() - t;
}

static double dump_pvr_par(struct child *src, int nthr)
{
	double t = now_ms();
	struct pvr_ctx x = { src->pid, src->addr, create_file() };

	if (ftruncate(x.fd, len) < 0)
		die("ftruncate");
	parallel(nthr, pvr_chunk, &x);
	close(x.fd);
	return now_ms() - t;
}

static double dump_pvr(struct child *src, size_t chunk)
{
	uint8_t *buf = malloc(chunk);
	double t = now_ms();
	int fd = create_file();

	for (size_t o = 0; o < len; o += chunk) {
		size_t n = len - o < chunk ? len - o : chunk;
		struct iovec l = { buf, n }, r = { (void *)(src->addr + o), n };
		if (process_vm_readv(src->pid, &l, 1, &r, 1, 0) != (ssize_t)n)
			die("process_vm_readv");
		if (pwrite(fd, buf, n, o) != (ssize_t)n)
			die("pwrite");
	}
	close(fd);
	t = now_ms() - t;
	free(buf);
	return t;
}

static double dump_mem(struct child *src)
{
	uint8_t *buf = malloc(CH);
	char path[64];
	double t = now_ms();
	int fd = create_file();

	snprintf(path, sizeof(path), "/proc/%d/mem", src->pid);
	int mem = open(path, O_RDONLY);
	for (size_t o = 0; o < len; o += CH) {
		if (pread(mem, buf, CH, src->addr + o) != (ssize_t)CH)
			die("pread mem");
		if (pwrite(fd, buf, CH, o) != (ssize_t)CH)
			die("pwrite");
	}
	close(mem);
	close(fd);
	t = now_ms() - t;
	free(buf);
	return t;
}

static double dump_mmap(struct child *src, int populate)
{
	double t = now_ms();
	int fd = create_file();

	if (ftruncate(fd, len) < 0)
		die("ftruncate");
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap file");
	for (size_t o = 0; o < len; o += CH) {
		if (populate && madvise(m + o, CH, MADV_POPULATE_WRITE) < 0)
			die("MADV_POPULATE_WRITE");
		struct iovec l = { m + o, CH }, r = { (void *)(src->addr + o), CH };
		if (process_vm_readv(src->pid, &l, 1, &r, 1, 0) != (ssize_t)CH)
			die("process_vm_readv");
	}
	munmap(m, len);
	close(fd);
	return now_ms() - t;
}

static double dump_vmsplice(struct child *src)
{
	double t = now_ms();
	int fd = create_file();
	char x = 'v', r;
	loff_t off = 0;

	xwrite(src->sock, &x, 1);
	while ((size_t)off < len) {
		ssize_t n = splice(src->pipe_r, NULL, fd, &off, 1 << 20, SPLICE_F_MOVE);
		if (n <= 0)
			die("splice");
	}
	xread(src->sock, &r, 1);
	close(fd);
	return now_ms() - t;
}

/* ---- restore ---- */

static uint8_t *map_file(int *fdp)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	uint8_t *m = fd < 0 ? MAP_FAILED : mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

	if (m == MAP_FAILED)
		die("map pages file");
	*fdp = fd;
	return m;
}

struct rst_ctx {
	int fd; /* /proc/PID/mem or the userfaultfd */
	uintptr_t addr;
	const uint8_t *src;
};

static int mem_chunk(void *arg, size_t o, size_t n)
{
	struct rst_ctx *x = arg;
	return pwrite(x->fd, x->src + o, n, x->addr + o) == (ssize_t)n ? 0 : -1;
}

static int uffd_chunk(void *arg, size_t o, size_t n)
{
	struct rst_ctx *x = arg;
	struct uffdio_copy cp = { .dst = x->addr + o, .src = (uintptr_t)(x->src + o), .len = n };
	return ioctl(x->fd, UFFDIO_COPY, &cp);
}

static double restore_one(int how, int *bad)
{
	struct child c = spawn(0);
	int fd;
	uint8_t *m = map_file(&fd);
	double t = now_ms();

	if (how == 0) { /* /proc/PID/mem */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", c.pid);
		int mem = open(path, O_RDWR);
		for (size_t o = 0; o < len; o += CH)
			if (pwrite(mem, m + o, CH, c.addr + o) != (ssize_t)CH)
				die("pwrite mem");
		close(mem);
	} else if (how == 1 || how == 2) { /* [populate +] process_vm_writev */
		if (how == 2)
			cmd(&c, 'p');
		for (size_t o = 0; o < len; o += CH) {
			struct iovec l = { m + o, CH }, r = { (void *)(c.addr + o), CH };
			if (process_vm_writev(c.pid, &l, 1, &r, 1, 0) != (ssize_t)CH)
				die("process_vm_writev");
		}
	} else if (how == 3) { /* the child reads */
		cmd(&c, 'r');
	} else if (how == 5) { /* /proc/PID/mem, two threads */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", c.pid);
		struct rst_ctx x = { open(path, O_RDWR), c.addr, m };
		parallel(2, mem_chunk, &x);
		close(x.fd);
	} else if (how == 6) { /* UFFDIO_COPY, two threads */
		char q = 'u';
		xwrite(c.sock, &q, 1);
		struct rst_ctx x = { recv_fd(c.sock), c.addr, m };
		parallel(2, uffd_chunk, &x);
		close(x.fd);
	} else { /* UFFDIO_COPY */
		char x = 'u';
		xwrite(c.sock, &x, 1);
		int u = recv_fd(c.sock);
		for (size_t o = 0; o < len; o += CH) {
			struct uffdio_copy cp = { .dst = c.addr + o, .src = (uintptr_t)(m + o), .len = CH };
			if (ioctl(u, UFFDIO_COPY, &cp) < 0)
				die("UFFDIO_COPY");
		}
		close(u);
	}
	t = now_ms() - t;
	if (cmd(&c, 'c') != 'y')
		*bad = 1;
	munmap(m, len);
	close(fd);
	reap(&c);
	return t;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *name, double *v, int n)
{
	qsort(v, n, sizeof(*v), cmpd);
	double m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	printf("  %-16s %9.1f ms %7.2f GiB/s   (min %.1f, max %.1f)\n", name, m, (double)len / (1 << 30) / (m / 1e3),
	       v[0], v[n - 1]);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: pagecopy DIR MIB ROUNDS [dump|restore|all]\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	snprintf(file, sizeof(file), "%s/pagecopy-%d.img", dir, (int)getpid());
	len = strtoull(argv[2], NULL, 10) << 20;
	int rounds = atoi(argv[3]);
	const char *what = argc > 4 ? argv[4] : "all";
	if (len == 0 || len % CH || rounds < 1 || rounds > MAXR) {
		fprintf(stderr, "pagecopy: MIB a multiple of 4, 1 <= ROUNDS <= %d\n", MAXR);
		return 2;
	}
	printf("# pagecopy: %zu MiB, %s, median of %d alternating rounds\n", len >> 20, dir, rounds);

	if (strcmp(what, "restore")) {
		static const size_t chunks[] = { 256 << 10, 1 << 20, 4 << 20, 16 << 20 };
		static const char *names[] = { "pvr+pwrite/256K", "pvr+pwrite/1M", "pvr+pwrite/4M", "pvr+pwrite/16M" };
		static double t[11][MAXR];
		struct child src = spawn(1);
		for (int r = 0; r < rounds; r++) {
			for (int k = 0; k < 4; k++)
				t[k][r] = dump_pvr(&src, chunks[k]);
			t[4][r] = dump_mem(&src);
			t[5][r] = dump_mmap(&src, 0);
			t[6][r] = dump_mmap(&src, 1);
			t[7][r] = dump_vmsplice(&src);
			t[8][r] = dump_pvr_par(&src, 2);
			t[10][r] = dump_prealloc(&src, &t[9][r]);
		}
		reap(&src);
		printf("dump (memory -> file):\n");
		for (int k = 0; k < 4; k++)
			report(names[k], t[k], rounds);
		report("mem+pwrite/4M", t[4], rounds);
		report("pvr->mmap", t[5], rounds);
		report("pvr->mmap+pop", t[6], rounds);
		report("vmsplice+splice", t[7], rounds);
		report("pvr+pwrite x2", t[8], rounds);
		report("fallocate", t[9], rounds);
		report("prealloc+pvr", t[10], rounds);
	}
	if (strcmp(what, "dump")) {
		static const char *names[] = { "mem-pwrite", "pvw", "pop+pvw", "self-read", "uffd-copy",
					       "mem-pwrite x2", "uffd-copy x2" };
		static double t[7][MAXR];
		int bad = 0;
		struct child src = spawn(1);
		dump_pvr(&src, CH);
		reap(&src);
		for (int r = 0; r < rounds; r++)
			for (int k = 0; k < 7; k++)
				t[k][r] = restore_one(k, &bad);
		printf("restore (file -> fresh anonymous memory):\n");
		for (int k = 0; k < 7; k++)
			report(names[k], t[k], rounds);
		if (bad) {
			printf("pagecopy: a restored copy differs\n");
			unlink(file);
			return 1;
		}
	}
	unlink(file);
	return 0;
}
