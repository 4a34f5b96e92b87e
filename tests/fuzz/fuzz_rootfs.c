/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: what dmigrated does with the bytes a source sends on the
 * rootfs channels, through the receiver it runs (rfs_recv_start(),
 * src/migrate/rootfs-recv*.c: its two reader threads, the entries, the files
 * and their data it makes as root), over insecure channels on socketpairs.
 * The first input byte:
 *   bit 0  0: the rest is the rootfs (bulk) channel's stream (PRE_*,
 *          PREWALK, META_BATCH {ENTRY, UPDATE, REMOVE, DIR_END}, PREWALK_END,
 *          META_END, DATA, CHUNK_END, FILE_END, END); the miss channel is
 *          held open, silent
 *          1: the next 4 bytes (little-endian) are the length of the rootfs
 *          channel's stream, which follows; the rest is the miss channel's
 *          stream (DATA, CHUNK_END, FILE_END: the chunks the destination
 *          asked for, and those the source pushes)
 *   bit 1  the host has no unnamed files (DMIGRATE_TEST_RFS_NO_TMPFILE): the
 *          data of files sent before the freeze is dropped, asked for again
 * The receive root is /dev/shm/dm-fuzz-rootfs/PID/root.  The receiver is
 * waited for until it is done or failed, or until its threads wait for
 * nothing the input still holds (both stopped in a wait: the silent miss
 * channel, a file that never comes), at most 5 s; then stopped and freed.
 * Nothing may crash, leak memory or a descriptor, or read out of bounds,
 * and nothing may appear outside the root: after each input the per-process
 * directory holds only "root" and /dev/shm/dm-fuzz-rootfs only what it held
 * before (and another fuzz_rootfs's directory); abort() if not, so that an
 * escape (a path with "..", a symlink followed) is a finding.  The root is
 * removed after each input.
 *   tests/fuzz/build.sh [SECONDS] fuzz_rootfs     builds and runs it
 *   DM_FUZZ_DEBUG=1 tests/fuzz/out/fuzz_rootfs INPUT   says how the receiver ended
 */
#include "fuzz-feed.h"
#include "base/log.h"
#include "migrate/rootfs.h"
#include "net/net-priv.h"

#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BASE "/dev/shm/dm-fuzz-rootfs"
#define WAIT_MAX_NS (5ull * 1000000000ull)
#define MAX_TASKS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct net_ctx *ctx;
static char scratch[128], root[160];
static bool debug;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		fprintf(stderr, "fuzz_rootfs: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void cleanup(void)
{
	rm_tree(scratch);
	rmdir(BASE); /* (unless another fuzz_rootfs runs) */
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* the scratch directories of fuzzers that died (a crash leaves its root) */
static void remove_stale(void)
{
	DIR *d = opendir(BASE);
	struct dirent *e;
	char p[300];

	while (d && (e = readdir(d)))
		if (all_digits(e->d_name) && kill(atoi(e->d_name), 0) < 0 && errno == ESRCH) {
			snprintf(p, sizeof(p), "%s/%s", BASE, e->d_name);
			rm_tree(p);
		}
	if (d)
		closedir(d);
}

static void setup(void)
{
	struct net_config cfg = { .insecure = true, .io_timeout_ms = 60000 };

	debug = getenv("DM_FUZZ_DEBUG") != NULL;
	dm_log_init(-1, -1);
	setenv("DMIGRATE_NO_RT", "1", 1);
	if (net_ctx_new(&cfg, NULL, &ctx) < 0)
		abort();
	if (mkdir(BASE, 0700) < 0 && errno != EEXIST)
		abort();
	remove_stale();
	snprintf(scratch, sizeof(scratch), "%s/%d", BASE, (int)getpid());
	snprintf(root, sizeof(root), "%s/root", scratch);
	rm_tree(scratch);
	if (mkdir(scratch, 0700) < 0)
		abort();
	atexit(cleanup);
}

/* the names in BASE before the input */
struct names {
	char n[16][256];
	size_t len;
};

static void list_base(struct names *ns)
{
	DIR *d = opendir(BASE);
	struct dirent *e;

	if (!d)
		abort();
	ns->len = 0;
	while ((e = readdir(d)) && ns->len < ARRAY_SIZE(ns->n))
		snprintf(ns->n[ns->len++], sizeof(ns->n[0]), "%s", e->d_name);
	closedir(d);
}

/* another fuzz_rootfs's scratch directory (made while this input ran) */
static bool other_scratch(const struct dirent *e)
{
	char p[300], comm[64] = "";
	int fd;
	ssize_t n;

	if (e->d_type != DT_DIR || !all_digits(e->d_name) || atoi(e->d_name) == (int)getpid())
		return false;
	snprintf(p, sizeof(p), "/proc/%s/comm", e->d_name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return n > 0 && !strncmp(comm, "fuzz_rootfs", 11);
}

static void escaped(const char *dir, const char *name)
{
	fprintf(stderr, "fuzz_rootfs: %s/%s was made outside the receive root\n", dir, name);
	abort();
}

/* Nothing outside the root: the scratch directory holds "root" at most;
 * BASE what it held before (scratch directories), and at most the scratch
 * directory of another fuzz_rootfs.  abort() if something escaped. */
static void check_confined(const struct names *before)
{
	DIR *d;
	struct dirent *e;

	d = opendir(scratch);
	if (!d)
		abort();
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "root"))
			escaped(scratch, e->d_name);
	closedir(d);
	d = opendir(BASE);
	if (!d)
		abort();
	while ((e = readdir(d))) {
		bool known = false;
		for (size_t i = 0; i < before->len && !known; i++)
			known = !strcmp(before->n[i], e->d_name);
		if (!all_digits(e->d_name) && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			escaped(BASE, e->d_name);
		if (!known && !other_scratch(e))
			escaped(BASE, e->d_name);
	}
	closedir(d);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static size_t list_tasks(pid_t *t, size_t max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	size_t n = 0;

	if (!d)
		abort();
	while ((e = readdir(d)) && n < max)
		if (all_digits(e->d_name))
			t[n++] = atoi(e->d_name);
	closedir(d);
	return n;
}

/* The thread waits for another one or for its channel (futex, poll), or is
 * gone; false while it runs or is in any other system call. */
static bool task_waits(pid_t tid)
{
	char p[64], b[128], *end;
	int fd;
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return true;
	b[n] = 0;
	long nr = strtol(b, &end, 10);
	return end != b && (nr == SYS_futex || nr == SYS_poll || nr == SYS_ppoll);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The daemon's end of a channel that reads data (then EOF if eof: the
 * bulk channel; the miss channel stays open); *ret_peer is ours. */
static struct net_chan *chan_with(const uint8_t *data, size_t size, bool eof, int *ret_peer)
{
	struct net_chan *c;

	if (net_chan_new(ctx, fuzz_feed(data, size, eof, ret_peer), true, &c) < 0)
		abort();
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pid_t before[MAX_TASKS], after[MAX_TASKS], mine[2];
	struct rfs_receiver *r = NULL;
	size_t bulk_len, nb, na, nm = 0;
	int pb, pm, k;

	if (!ctx)
		setup();
	if (size < 1 || size > (4u << 20))
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	bulk_len = size;
	if (sel & 1) {
		uint32_t l = 0;
		memcpy(&l, data, MIN(size, sizeof(l)));
		data += MIN(size, sizeof(l));
		size -= MIN(size, sizeof(l));
		bulk_len = MIN((size_t)le32toh(l), size);
	}
	if (sel & 2)
		setenv("DMIGRATE_TEST_RFS_NO_TMPFILE", "1", 1);
	else
		unsetenv("DMIGRATE_TEST_RFS_NO_TMPFILE");

	int fds = count_fds();
	struct names base;
	list_base(&base);
	struct net_chan *bulk = chan_with(data, bulk_len, true, &pb);
	struct net_chan *miss = chan_with(data + bulk_len, size - bulk_len, false, &pm);
	nb = list_tasks(before, MAX_TASKS);
	k = rfs_recv_start(bulk, miss, root, &r);
	if (k < 0) {
		/* (the root is made here: that must work) */
		fprintf(stderr, "fuzz_rootfs: rfs_recv_start: %s\n", dm_last_error());
		abort();
	}
	na = list_tasks(after, MAX_TASKS);
	for (size_t i = 0; i < na && nm < 2; i++) {
		bool old = false;
		for (size_t j = 0; j < nb && !old; j++)
			old = after[i] == before[j];
		if (!old)
			mine[nm++] = after[i];
	}

	/* until done or failed, or both threads wait for what will not come
	 * (seen waiting 3 times in a row, over 1 ms at least); most inputs are
	 * refused within a few hundred us: the checks start often */
	uint64_t t0 = now_ns(), end = t0 + WAIT_MAX_NS, idle_since = 0;
	int idle = 0;
	useconds_t nap = 50;
	for (;;) {
		k = rfs_recv_wait_all(r, 0);
		uint64_t now = now_ns();
		if (k != -ETIMEDOUT || now > end)
			break;
		bool waits = true;
		for (size_t i = 0; i < nm; i++)
			waits = waits && task_waits(mine[i]);
		idle = waits ? idle + 1 : 0;
		if (idle == 1)
			idle_since = now;
		if (idle >= 3 && now - idle_since >= 1000000)
			break;
		usleep(nap);
		nap = MIN(nap * 2, 1000u);
	}
	if (debug)
		fprintf(stderr, "fuzz_rootfs: %s (%.1f ms)\n",
			k == 0 ? "every file in" : k == -ETIMEDOUT ? "stopped while it waited" : dm_last_error(),
			(double)(now_ns() - t0) / 1e6);
	rfs_recv_stop(r);
	rfs_recv_free(r);
	net_chan_close(bulk);
	net_chan_close(miss);
	close(pb);
	close(pm);

	check_confined(&base);
	rm_tree(root);
	if (count_fds() != fds) {
		fprintf(stderr, "fuzz_rootfs: %d descriptors before the input, %d after\n", fds, count_fds());
		abort();
	}
	return 0;
}
