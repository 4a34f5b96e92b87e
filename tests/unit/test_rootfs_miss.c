/* SPDX-License-Identifier: MIT */
/*
 * The rootfs transfer's miss path (src/migrate/rootfs-send-miss.c,
 * rootfs-recv-view.c) over loopback: a miss does not wait behind the bulk
 * data.
 *
 * A large file is being sent in bulk on the rootfs channel, and the
 * destination's reader of that channel is held after its first chunk, so
 * the rest of the large file stays queued in front of it (in the sockets,
 * as it would on a busy link; the destination's receive buffer is made
 * small, so that the queue cannot hold the whole large file).  A read of a small file then misses: its
 * chunk must come on the miss channel and the read return while the large
 * file has not arrived.  Checked by order of arrival (the large file is
 * still pending when the read returns), not by time: if the miss waited
 * behind the bulk data, the read could only return once the hold is
 * released (a guard thread releases it after 20 s), after the large file.
 *
 * And the files the restore reads (mapped by the frozen tree), which the
 * source pushes on the miss channel as soon as their entries are out on
 * the rootfs channel: their data may come before the destination made
 * their entries, or (the walk before the freeze) before it applied what
 * changed since (its reader of the rootfs channel held before the freeze's
 * frames here); the miss reader waits for them instead of refusing the
 * data, and every file arrives right.  Here the mapped file was sent
 * before the freeze (the working set of the running tree) and changed
 * after that: the source must send it again, and its new bytes arrive.
 *
 * The miss thread ends with the transfer (DONE read) while the destination
 * keeps the miss channel open and says nothing: its wait for requests is
 * as long as the transfer, which the session's watchdog bounds.
 *
 * And the working set sent before the freeze, unchanged at the freeze:
 * its entry links the copy that came before (no byte of it comes again);
 * a file the tree has open for writing is not sent before the freeze.
 *
 * And the walk before the freeze: the tree changes between it and the
 * freeze (a file written in place and one appended to, one removed, one
 * renamed, a directory removed with its file, one made with a file, a
 * chmod, the first name of a hard-linked file removed, a symlink pointed
 * elsewhere): the copy must be the tree as it is at the freeze.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "migrate/rootfs.h"
#include "net/net.h"

#define BIG_SIZE (8u << 20)
#define SMALL_SIZE 4096u

static char tmp[64];

static void fill(const char *path, size_t size, unsigned seed)
{
	uint8_t *b = malloc(size);
	assert_non_null(b);
	for (size_t i = 0; i < size; i++)
		b[i] = (uint8_t)((i * 131 + seed * 7 + i / 4096) & 0xff);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, size), (ssize_t)size);
	close(fd);
	free(b);
}

static bool same_file(const char *a, const char *b)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

struct accepting {
	struct net_listener *l;
	struct net_chan *c[3];
	int r;
	pthread_t thread;
};

static void *accept_main(void *arg)
{
	struct accepting *a = arg;
	for (int i = 0; i < 3 && a->r >= 0; i++)
		a->r = net_accept(a->l, 10000, &a->c[i]);
	return NULL;
}

/* loopback channels of one session: the source's rootfs and miss ends, the destination's */
struct rig {
	struct net_ctx *ctx;
	struct accepting a;
	struct net_chan *ctl, *rc, *mc, *drc, *dmc;
};

static void rig_open(struct rig *g)
{
	memset(g, 0, sizeof(*g));
	struct net_config cfg = { .insecure = true, .io_timeout_ms = 60000 };
	assert_int_equal(net_ctx_new(&cfg, NULL, &g->ctx), 0);
	assert_int_equal(net_listen(g->ctx, "127.0.0.1:0", &g->a.l), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", net_listener_port(g->a.l));
	assert_int_equal(pthread_create(&g->a.thread, NULL, accept_main, &g->a), 0);
	assert_int_equal(net_connect(g->ctx, addr, NET_ROLE_CONTROL, NULL, &g->ctl), 0);
	assert_int_equal(net_connect(g->ctx, addr, NET_ROLE_ROOTFS, net_chan_session(g->ctl), &g->rc), 0);
	assert_int_equal(net_connect(g->ctx, addr, NET_ROLE_ROOTFS_MISS, net_chan_session(g->ctl), &g->mc), 0);
	pthread_join(g->a.thread, NULL);
	assert_int_equal(g->a.r, 0);
	for (int i = 0; i < 3; i++) {
		if (net_chan_role(g->a.c[i]) == NET_ROLE_ROOTFS)
			g->drc = g->a.c[i];
		else if (net_chan_role(g->a.c[i]) == NET_ROLE_ROOTFS_MISS)
			g->dmc = g->a.c[i];
	}
	assert_non_null(g->drc);
	assert_non_null(g->dmc);
}

static void rig_close(struct rig *g)
{
	net_chan_close(g->rc);
	net_chan_close(g->mc);
	net_chan_close(g->ctl);
	for (int i = 0; i < 3; i++)
		net_chan_close(g->a.c[i]);
	net_listener_free(g->a.l);
	net_ctx_unref(g->ctx);
}

struct guard {
	struct rfs_receiver *r;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	pthread_t thread;
};

/* releases the hold after 20 s whatever happens, so that a miss stuck
 * behind the bulk data ends the test with a failure, not a hang */
static void *guard_main(void *arg)
{
	struct guard *g = arg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&g->lock);
	while (!g->done)
		if (pthread_cond_timedwait(&g->cond, &g->lock, &ts))
			break;
	pthread_mutex_unlock(&g->lock);
	rfs_recv_test_hold(g->r, 0);
	return NULL;
}

/* every file in at the receiver, and the sender done (each one's error printed) */
static void transfer_done(struct rfs_receiver *r, struct rfs_sender *s)
{
	int k = rfs_recv_wait_all(r, 60000);
	if (k < 0)
		print_error("receiver: %s\n", dm_last_error());
	assert_int_equal(k, 0);
	k = rfs_send_wait(s, 60000);
	if (k < 0)
		print_error("sender: %s\n", dm_last_error());
	assert_int_equal(k, 0);
}

static void test_miss_passes_bulk(void **state)
{
	(void)state;
	char src[128], dst[128], path[256], path2[256];
	snprintf(src, sizeof(src), "%s/src", tmp);
	snprintf(dst, sizeof(dst), "%s/dst", tmp);
	assert_int_equal(mkdir(src, 0755), 0);
	/* lazy mode sends in walk order: the large file first */
	snprintf(path, sizeof(path), "%s/a-big", src);
	fill(path, BIG_SIZE, 1);
	snprintf(path, sizeof(path), "%s/b-small", src);
	fill(path, SMALL_SIZE, 2);

	struct rig g;
	rig_open(&g);
	struct net_chan *drc = g.drc, *dmc = g.dmc, *rc = g.rc, *mc = g.mc;
	int rcvbuf = 256 << 10;
	assert_int_equal(setsockopt(net_chan_fd(drc), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);

	struct rfs_receiver *r;
	assert_int_equal(rfs_recv_start(drc, dmc, dst, &r), 0);
	rfs_recv_test_hold(r, RFS_HOLD_AFTER_CHUNK);
	struct rfs_sender *s;
	assert_int_equal(rfs_send_start(rc, mc, src, RFS_LAZY, NULL, getpid(), &s), 0);
	rfs_send_frozen(s);
	rfs_send_foreground(s);
	assert_int_equal(rfs_recv_wait_path(r, ""), 0);
	int64_t big = rfs_recv_lookup(r, "a-big"), small = rfs_recv_lookup(r, "b-small");
	assert_true(big > 0 && small > 0);

	/* the bulk starts; its reader stops after the large file's first chunk */
	rfs_recv_resumed(r);
	for (int i = 0; i < 3000 && !rfs_recv_test_held(r); i++)
		usleep(10000);
	assert_true(rfs_recv_test_held(r));
	assert_true(rfs_recv_pending(r, big, NULL));
	assert_true(rfs_recv_pending(r, small, NULL));

	struct guard gd = { .r = r };
	pthread_mutex_init(&gd.lock, NULL);
	pthread_cond_init(&gd.cond, NULL);
	assert_int_equal(pthread_create(&gd.thread, NULL, guard_main, &gd), 0);
	/* a miss on the small file: served while the large one is held up */
	int k = rfs_recv_read(r, small, 0, SMALL_SIZE);
	bool big_pending = rfs_recv_pending(r, big, NULL);
	bool still_held = rfs_recv_test_held(r);
	pthread_mutex_lock(&gd.lock);
	gd.done = true;
	pthread_cond_signal(&gd.cond);
	pthread_mutex_unlock(&gd.lock);
	pthread_join(gd.thread, NULL);
	assert_int_equal(k, 1);            /* it waited: a miss, now its bytes are there */
	assert_true(big_pending);          /* before the large file: it did not queue behind it */
	assert_true(still_held);
	snprintf(path, sizeof(path), "%s/b-small", src);
	snprintf(path2, sizeof(path2), "%s/b-small", dst);
	assert_true(same_file(path, path2));

	/* the rest arrives once the reader goes on */
	rfs_recv_test_hold(r, 0);
	transfer_done(r, s);
	/* the miss thread ends with the transfer, although the destination
	 * keeps its miss channel open and silent (it waited for it for ever) */
	for (int i = 0; i < 2000 && !rfs_send_test_miss_ended(s); i++)
		usleep(10000);
	assert_true(rfs_send_test_miss_ended(s));
	snprintf(path, sizeof(path), "%s/a-big", src);
	snprintf(path2, sizeof(path2), "%s/a-big", dst);
	assert_true(same_file(path, path2));
	json_t *st = rfs_send_stats(s, 0);
	/* the small file's bytes went (again) as a demand */
	json_t *by = json_object_get(json_object_get(st, "sent_by_priority"), "demand");
	assert_int_equal(json_integer_value(json_object_get(by, "bytes")), SMALL_SIZE);
	json_decref(st);

	rfs_send_free(s);
	rfs_recv_free(r);
	rig_close(&g);
	pthread_mutex_destroy(&gd.lock);
	pthread_cond_destroy(&gd.cond);
}

/* a child that maps path (the frozen tree's mapped file), has wpath (if
 * not NULL) open for writing, and waits */
static pid_t mapper(const char *path, const char *wpath)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)
			_exit(1);
		close(fd);
		if (wpath && open(wpath, O_RDWR) < 0)
			_exit(1);
		for (;;)
			pause();
	}
	char maps[64], line[512];
	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	for (int i = 0; i < 3000; i++) {
		FILE *f = fopen(maps, "re");
		bool found = false;
		while (f && fgets(line, sizeof(line), f))
			found |= strstr(line, path) != NULL;
		if (f)
			fclose(f);
		if (found)
			return pid;
		usleep(10000);
	}
	fail_msg("the child did not map %s", path);
	return -1;
}

static void test_push_before_entry(void **state)
{
	(void)state;
	char src[128], dst[128], path[256], path2[256];
	snprintf(src, sizeof(src), "%s/src2", tmp);
	snprintf(dst, sizeof(dst), "%s/dst2", tmp);
	assert_int_equal(mkdir(src, 0755), 0);
	snprintf(path, sizeof(path), "%s/ws", src);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/other", src);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/other/f", src);
	fill(path, 65536, 3);
	snprintf(path, sizeof(path), "%s/ws/lib.bin", src);
	fill(path, 2u << 20, 4);
	pid_t child = mapper(path, NULL);

	struct rig g;
	rig_open(&g);
	struct rfs_receiver *r;
	assert_int_equal(rfs_recv_start(g.drc, g.dmc, dst, &r), 0);
	struct rfs_sender *s;
	assert_int_equal(rfs_send_start(g.rc, g.mc, src, RFS_PRIORITY, NULL, child, &s), 0);
	/* sent while the tree runs, then changed (same size, new bytes); the
	 * reader of the rootfs channel held before what comes at the freeze
	 * (the change, META_END) */
	assert_int_equal(rfs_send_presend_wait(s, 60000), 0);
	rfs_recv_test_hold(r, RFS_HOLD_BEFORE_FRAME);
	fill(path, 2u << 20, 5);
	rfs_send_frozen(s);
	rfs_send_foreground(s);
	/* the mapped file's data on the miss channel, its entry not made yet */
	for (int i = 0; i < 3000 && !rfs_recv_test_entry_waits(r) && !rfs_recv_failed(r); i++)
		usleep(10000);
	int k = rfs_recv_failed(r);
	if (k < 0)
		print_error("receiver: %s\n", dm_last_error());
	assert_int_equal(k, 0);
	assert_true(rfs_recv_test_entry_waits(r) > 0);
	rfs_recv_test_hold(r, 0);
	rfs_recv_resumed(r);
	transfer_done(r, s);
	snprintf(path2, sizeof(path2), "%s/ws/lib.bin", dst);
	assert_true(same_file(path, path2));
	snprintf(path, sizeof(path), "%s/other/f", src);
	snprintf(path2, sizeof(path2), "%s/other/f", dst);
	assert_true(same_file(path, path2));
	/* it went as the working set, not as a miss; the copy sent before the
	 * freeze was stale, and dropped */
	json_t *st = rfs_send_stats(s, 0);
	json_t *ws = json_object_get(json_object_get(st, "sent_by_priority"), "working_set");
	assert_int_equal(json_integer_value(json_object_get(ws, "files")), 1);
	json_t *pre = json_object_get(st, "presend");
	assert_int_equal(json_integer_value(json_object_get(pre, "files")), 1);
	assert_int_equal(json_integer_value(json_object_get(pre, "stale_files")), 1);
	assert_int_equal(json_integer_value(json_object_get(pre, "used_files")), 0);
	json_decref(st);

	rfs_send_free(s);
	rfs_recv_free(r);
	rig_close(&g);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

/* lost: the destination can make no unnamed file (it asks for the file
 * again once its entry names it) */
static void presend_kept(const char *name, bool lost)
{
	char src[128], dst[128], path[256], path2[256], wpath[256];
	snprintf(src, sizeof(src), "%s/src-%s", tmp, name);
	snprintf(dst, sizeof(dst), "%s/dst-%s", tmp, name);
	if (lost)
		setenv("DMIGRATE_TEST_RFS_NO_TMPFILE", "1", 1);
	assert_int_equal(mkdir(src, 0755), 0);
	snprintf(path, sizeof(path), "%s/ws", src);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(wpath, sizeof(wpath), "%s/ws/log", src);
	fill(wpath, 8192, 6);
	snprintf(path, sizeof(path), "%s/ws/lib.bin", src);
	fill(path, (2u << 20) + 5000, 7);
	pid_t child = mapper(path, wpath);

	struct rig g;
	rig_open(&g);
	struct rfs_receiver *r;
	assert_int_equal(rfs_recv_start(g.drc, g.dmc, dst, &r), 0);
	struct rfs_sender *s;
	assert_int_equal(rfs_send_start(g.rc, g.mc, src, RFS_PRIORITY, NULL, child, &s), 0);
	assert_int_equal(rfs_send_presend_wait(s, 60000), 0);
	rfs_send_frozen(s);
	rfs_send_foreground(s);
	/* the restore's read of the mapped file waits for nothing (lost: for
	 * the copy asked for again) */
	assert_int_equal(rfs_recv_wait_path(r, "ws"), 0);
	int64_t lib = rfs_recv_lookup(r, "ws/lib.bin");
	assert_true(lib > 0);
	if (!lost) {
		assert_false(rfs_recv_pending(r, lib, NULL));
		assert_int_equal(rfs_recv_read(r, lib, 0, 2u << 20), 0);
	} else {
		assert_true(rfs_recv_read(r, lib, 0, 2u << 20) >= 0);
	}
	rfs_recv_resumed(r);
	transfer_done(r, s);
	snprintf(path2, sizeof(path2), "%s/ws/lib.bin", dst);
	assert_true(same_file(path, path2));
	snprintf(path2, sizeof(path2), "%s/ws/log", dst);
	assert_true(same_file(wpath, path2));
	struct stat a, b;
	assert_int_equal(stat(path, &a), 0);
	snprintf(path2, sizeof(path2), "%s/ws/lib.bin", dst);
	assert_int_equal(stat(path2, &b), 0);
	assert_int_equal((long)a.st_mode, (long)b.st_mode);
	assert_int_equal((long)a.st_mtim.tv_nsec, (long)b.st_mtim.tv_nsec);
	json_t *st = rfs_send_stats(s, 0);
	json_t *pre = json_object_get(st, "presend");
	/* the exe of the test is outside src: the mapped file only (the log is open for writing) */
	assert_int_equal(json_integer_value(json_object_get(pre, "files")), 1);
	assert_int_equal(json_integer_value(json_object_get(pre, "used_files")), 1);
	assert_int_equal(json_integer_value(json_object_get(pre, "stale_files")), 0);
	json_t *d = json_object_get(st, "destination");
	assert_int_equal(json_integer_value(json_object_get(d, "presend_files")), lost ? 0 : 1);
	/* no byte of it came again (lost: all of it) */
	assert_int_equal(json_integer_value(json_object_get(st, "bytes_sent")),
			 (lost ? 2 : 1) * ((2u << 20) + 5000) + 8192);
	assert_int_equal(json_integer_value(json_object_get(st, "files_sent")), 2);
	json_decref(st);
	unsetenv("DMIGRATE_TEST_RFS_NO_TMPFILE");

	rfs_send_free(s);
	rfs_recv_free(r);
	rig_close(&g);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

static void put(const char *dir, const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void prewalk_delta(const char *name)
{
	char src[128], dst[128], path[256];
	snprintf(src, sizeof(src), "%s/src-%s", tmp, name);
	snprintf(dst, sizeof(dst), "%s/dst-%s", tmp, name);
	assert_int_equal(sh("mkdir -p %1$s/a %1$s/b %1$s/ws && true %2$s", src, ""), 0);
	put(src, "a/keep.txt", "kept\n");
	put(src, "a/mod.txt", "before\n");
	put(src, "a/grow.txt", "line 1\n");
	put(src, "a/gone.txt", "gone\n");
	put(src, "a/old-name", "renamed\n");
	put(src, "a/chmod.txt", "mode\n");
	put(src, "a/h1", "hard\n");
	put(src, "b/x", "in b\n");
	assert_int_equal(sh("ln %s/a/h1 %s/a/h2", src, src), 0);
	assert_int_equal(sh("ln -s keep.txt %s/a/sym%s", src, ""), 0);
	snprintf(path, sizeof(path), "%s/ws/lib.bin", src);
	fill(path, 300000, 8);
	pid_t child = mapper(path, NULL);

	struct rig g;
	rig_open(&g);
	struct rfs_receiver *r;
	assert_int_equal(rfs_recv_start(g.drc, g.dmc, dst, &r), 0);
	struct rfs_sender *s;
	assert_int_equal(rfs_send_start(g.rc, g.mc, src, RFS_PRIORITY, NULL, child, &s), 0);
	assert_int_equal(rfs_send_presend_wait(s, 60000), 0);
	/* the walk is over, its entries sent; the tree changes */
	put(src, "a/mod.txt", "AFTER\n");
	assert_int_equal(sh("echo 'line 2' >> %s/a/grow.txt%s", src, ""), 0);
	assert_int_equal(sh("rm %s/a/gone.txt && rm -r %s/b", src, src), 0);
	assert_int_equal(sh("mv %s/a/old-name %s/a/new-name", src, src), 0);
	assert_int_equal(sh("mkdir %s/c && echo new > %s/c/y", src, src), 0);
	assert_int_equal(sh("chmod 600 %s/a/chmod.txt && rm %s/a/h1", src, src), 0);
	assert_int_equal(sh("ln -sfn mod.txt %s/a/sym%s", src, ""), 0);
	rfs_send_frozen(s);
	rfs_send_foreground(s);
	rfs_recv_resumed(r);
	transfer_done(r, s);
	/* the copy is the tree at the freeze: names, contents, modes, links */
	assert_int_equal(sh("diff -r --no-dereference %s %s", src, dst), 0);
	assert_int_equal(sh("cd %s && find . -printf '%%P %%M %%n %%s %%l\\n' | sort > %s.find", src, src), 0);
	assert_int_equal(sh("cd %s && find . -printf '%%P %%M %%n %%s %%l\\n' | sort > %s.find", dst, dst), 0);
	assert_int_equal(sh("cmp %s.find %s.find", src, dst), 0);
	json_t *st = rfs_send_stats(s, 0);
	json_t *pw = json_object_get(st, "prewalk");
	assert_non_null(pw);
	assert_true(json_integer_value(json_object_get(pw, "updated")) >= 3);
	assert_true(json_integer_value(json_object_get(pw, "removed")) >= 5);
	assert_true(json_integer_value(json_object_get(pw, "added")) >= 4);
	assert_int_equal(json_is_true(json_object_get(pw, "watch_failed")), getenv("DMIGRATE_TEST_RFS_NOWATCH") != NULL);
	/* the mapped file, unchanged, went before the freeze */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "presend"), "used_files")), 1);
	json_decref(st);

	rfs_send_free(s);
	rfs_recv_free(r);
	rig_close(&g);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

static void test_presend_kept(void **state)
{
	(void)state;
	presend_kept("kept", false);
}

static void test_presend_lost(void **state)
{
	(void)state;
	presend_kept("lost", true);
}

static void test_prewalk_delta(void **state)
{
	(void)state;
	prewalk_delta("events");
}

/* no directory could be watched (inotify's limit): all are listed again */
static void test_prewalk_delta_nowatch(void **state)
{
	(void)state;
	setenv("DMIGRATE_TEST_RFS_NOWATCH", "1", 1);
	prewalk_delta("nowatch");
	unsetenv("DMIGRATE_TEST_RFS_NOWATCH");
}

/* A container's layer (layer "/", eager): every file goes before the
 * freeze but the one the tree has open for writing; between the pre-send
 * and the freeze a file changes, one goes, one comes, the written one is
 * written: the copy is the layer at the freeze, with its whiteout, opaque
 * directory and hard links, and what did not change went once. */
static void test_layer_presend(void **state)
{
	(void)state;
	char src[128], dst[128], path[256], wpath[256];
	snprintf(src, sizeof(src), "%s/src-layer", tmp);
	snprintf(dst, sizeof(dst), "%s/dst-layer", tmp);
	assert_int_equal(sh("mkdir -p %1$s/a %1$s/b %1$s/ws && mknod %1$s/a/wh c 0 0", src), 0);
	snprintf(path, sizeof(path), "%s/b", src);
	assert_int_equal(setxattr(path, "trusted.overlay.opaque", "y", 1, 0), 0);
	snprintf(path, sizeof(path), "%s/a/keep", src);
	fill(path, 100000, 9);
	put(src, "a/mod", "before\n");
	put(src, "a/gone", "gone\n");
	put(src, "a/h1", "hard\n");
	put(src, "b/x", "in b\n");
	put(src, "a/empty", "");
	assert_int_equal(sh("ln %s/a/h1 %s/a/h2", src, src), 0);
	snprintf(wpath, sizeof(wpath), "%s/ws/log", src);
	put(src, "ws/log", "log 1\n");
	snprintf(path, sizeof(path), "%s/ws/lib.bin", src);
	fill(path, 300000, 10);
	pid_t child = mapper(path, wpath);

	struct rig g;
	rig_open(&g);
	struct rfs_receiver *r;
	assert_int_equal(rfs_recv_start(g.drc, g.dmc, dst, &r), 0);
	struct rfs_sender *s;
	assert_int_equal(rfs_send_start(g.rc, g.mc, src, RFS_EAGER, "/", child, &s), 0);
	assert_int_equal(rfs_send_presend_wait(s, 60000), 0);
	json_t *st = rfs_send_stats(s, 0);
	/* keep, mod, gone, h1 (h2: the same file), b/x, lib.bin; not the log */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "presend"), "files")), 6);
	assert_true(json_is_true(json_object_get(st, "layer")));
	json_decref(st);
	put(src, "a/mod", "AFTER, longer\n");
	assert_int_equal(sh("rm %s/a/gone && echo added > %s/a/added && echo 'log 2' >> %s", src, src, wpath), 0);
	rfs_send_frozen(s);
	rfs_send_foreground(s);
	transfer_done(r, s);
	/* (GNU diff reports two character devices as a difference now and then,
	 * identical as they are: they are compared by the listing below, and
	 * the whiteout by its device numbers) */
	assert_int_equal(sh("diff -r --no-dereference %s %s > %s.diff; [ $? -le 1 ] && ! grep -Ev '^File .* is a "
			    "character special file while file .* is a character special file$' %s.diff | grep .",
			    src, dst, src, src), 0);
	assert_int_equal(sh("cd %s && find . -printf '%%P %%M %%n %%s %%l %%y\\n' | sort > %s.find", src, src), 0);
	assert_int_equal(sh("cd %s && find . -printf '%%P %%M %%n %%s %%l %%y\\n' | sort > %s.find", dst, dst), 0);
	assert_int_equal(sh("stat -c '%%F %%t:%%T' %s/a/wh > %s.wh && stat -c '%%F %%t:%%T' %s/a/wh > %s.wh && "
			    "cmp %s.wh %s.wh", src, src, dst, dst, src, dst), 0);
	assert_int_equal(sh("cmp %s.find %s.find", src, dst), 0);
	char v[8] = "";
	snprintf(path, sizeof(path), "%s/b", dst);
	assert_int_equal(getxattr(path, "trusted.overlay.opaque", v, sizeof(v)), 1);
	assert_int_equal(v[0], 'y');
	st = rfs_send_stats(s, 0);
	json_t *pre = json_object_get(st, "presend"), *pw = json_object_get(st, "prewalk");
	/* keep, h1, b/x, lib.bin linked there; mod sent again; gone dropped */
	assert_int_equal(json_integer_value(json_object_get(pre, "used_files")), 4);
	assert_true(json_integer_value(json_object_get(pre, "stale_files")) >= 1);
	assert_true(json_integer_value(json_object_get(pw, "removed")) >= 1);
	assert_true(json_integer_value(json_object_get(pw, "added")) >= 1);
	/* (the destination linked all six at the walk, before the change) */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "destination"), "presend_files")), 6);
	/* after the freeze: mod, added, the log; nothing of the others again */
	assert_int_equal(json_integer_value(json_object_get(st, "bytes_sent")),
			 100000 + 5 + 5 + 300000 + (int)strlen("AFTER, longer\n") + 6 + 12);
	json_decref(st);

	rfs_send_free(s);
	rfs_recv_free(r);
	rig_close(&g);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/test_rootfs_miss.XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_miss_passes_bulk),
		cmocka_unit_test(test_push_before_entry),
		cmocka_unit_test(test_presend_kept),
		cmocka_unit_test(test_presend_lost),
		cmocka_unit_test(test_prewalk_delta),
		cmocka_unit_test(test_prewalk_delta_nowatch),
		cmocka_unit_test(test_layer_presend),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
