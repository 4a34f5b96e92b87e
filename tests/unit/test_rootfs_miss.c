/* SPDX-License-Identifier: MIT */
/*
 * The rootfs transfer's miss path (src/migrate/rootfs-send.c, rootfs-recv.c)
 * over loopback: a miss does not wait behind the bulk data.
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
#include <sys/socket.h>
#include <sys/stat.h>
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
	rfs_recv_test_hold(g->r, false);
	return NULL;
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

	struct net_config cfg = { .insecure = true, .io_timeout_ms = 60000 };
	struct net_ctx *ctx;
	assert_int_equal(net_ctx_new(&cfg, NULL, &ctx), 0);
	struct accepting a = { 0 };
	assert_int_equal(net_listen(ctx, "127.0.0.1:0", &a.l), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", net_listener_port(a.l));
	assert_int_equal(pthread_create(&a.thread, NULL, accept_main, &a), 0);
	struct net_chan *ctl, *rc, *mc;
	assert_int_equal(net_connect(ctx, addr, NET_ROLE_CONTROL, NULL, &ctl), 0);
	assert_int_equal(net_connect(ctx, addr, NET_ROLE_ROOTFS, net_chan_session(ctl), &rc), 0);
	assert_int_equal(net_connect(ctx, addr, NET_ROLE_ROOTFS_MISS, net_chan_session(ctl), &mc), 0);
	pthread_join(a.thread, NULL);
	assert_int_equal(a.r, 0);
	struct net_chan *drc = NULL, *dmc = NULL;
	for (int i = 0; i < 3; i++) {
		if (net_chan_role(a.c[i]) == NET_ROLE_ROOTFS)
			drc = a.c[i];
		else if (net_chan_role(a.c[i]) == NET_ROLE_ROOTFS_MISS)
			dmc = a.c[i];
	}
	assert_non_null(drc);
	assert_non_null(dmc);
	int rcvbuf = 256 << 10;
	assert_int_equal(setsockopt(net_chan_fd(drc), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);

	struct rfs_receiver *r;
	assert_int_equal(rfs_recv_start(drc, dmc, dst, &r), 0);
	rfs_recv_test_hold(r, true);
	struct rfs_sender *s;
	assert_int_equal(rfs_send_start(rc, mc, src, RFS_LAZY, getpid(), &s), 0);
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

	struct guard g = { .r = r };
	pthread_mutex_init(&g.lock, NULL);
	pthread_cond_init(&g.cond, NULL);
	assert_int_equal(pthread_create(&g.thread, NULL, guard_main, &g), 0);
	/* a miss on the small file: served while the large one is held up */
	int k = rfs_recv_read(r, small, 0, SMALL_SIZE);
	bool big_pending = rfs_recv_pending(r, big, NULL);
	bool still_held = rfs_recv_test_held(r);
	pthread_mutex_lock(&g.lock);
	g.done = true;
	pthread_cond_signal(&g.cond);
	pthread_mutex_unlock(&g.lock);
	pthread_join(g.thread, NULL);
	assert_int_equal(k, 1);            /* it waited: a miss, now its bytes are there */
	assert_true(big_pending);          /* before the large file: it did not queue behind it */
	assert_true(still_held);
	snprintf(path, sizeof(path), "%s/b-small", src);
	snprintf(path2, sizeof(path2), "%s/b-small", dst);
	assert_true(same_file(path, path2));

	/* the rest arrives once the reader goes on */
	rfs_recv_test_hold(r, false);
	k = rfs_recv_wait_all(r, 60000);
	if (k < 0)
		print_error("receiver: %s\n", dm_last_error());
	assert_int_equal(k, 0);
	k = rfs_send_wait(s, 60000);
	if (k < 0)
		print_error("sender: %s\n", dm_last_error());
	assert_int_equal(k, 0);
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
	net_chan_close(rc);
	net_chan_close(mc);
	net_chan_close(ctl);
	for (int i = 0; i < 3; i++)
		net_chan_close(a.c[i]);
	net_listener_free(a.l);
	net_ctx_unref(ctx);
	pthread_mutex_destroy(&g.lock);
	pthread_cond_destroy(&g.cond);
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
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
