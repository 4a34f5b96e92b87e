/* SPDX-License-Identifier: MIT */
/*
 * net_throughput: TLS versus insecure channels over loopback.
 *
 *   net_throughput [total-MiB [frame-KiB [tls|insecure]]]
 *                    (default: 2048 MiB in 1024 KiB frames, both modes)
 *
 * For each mode: bulk throughput (one sender thread, one receiver thread,
 * raw frames), page batches (net_send_pages of 64 pages), and the round
 * trip of a fault-sized exchange (32-byte request, one 4 KiB page back).
 * Loopback measures the CPU cost of the channel (crypto, copies, syscalls),
 * not a network; on a shared machine the wall-clock rates vary with the load,
 * the CPU seconds per GiB (both ends together) much less.
 */
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>
#include <openssl/rand.h>

#include "base/clock.h"
#include "base/log.h"
#include "net/net.h"

struct rx {
	struct net_chan *c;
	uint64_t bytes;
	int r;
};

static void *bulk_receiver(void *p)
{
	struct rx *x = p;
	void *buf = xmalloc(NET_FRAME_MAX);

	for (;;) {
		struct net_frame f;
		x->r = net_recv_hdr(x->c, &f);
		if (x->r < 0 || f.len == 0) /* an empty frame ends the run */
			break;
		if (f.type == NET_T_PAGES) {
			struct net_wire_pages ph;
			x->r = net_recv_pages_hdr(x->c, &f, &ph);
			if (x->r == 0)
				x->r = net_recv_body(x->c, buf, (size_t)ph.npages * DM_PAGE_SIZE);
		} else {
			x->r = net_recv_body(x->c, buf, f.len);
		}
		if (x->r < 0)
			break;
		x->bytes += f.len;
	}
	free(buf);
	return NULL;
}

static void *fault_server(void *p)
{
	struct rx *x = p;
	uint8_t req[32], page[4096];

	memset(page, 0x5a, sizeof(page));
	for (;;) {
		struct net_frame f;
		x->r = net_recv_hdr(x->c, &f);
		if (x->r < 0 || f.len != sizeof(req))
			break;
		x->r = net_recv_body(x->c, req, sizeof(req));
		if (x->r < 0)
			break;
		struct iovec iov = { page, sizeof(page) };
		x->r = net_send_pages(x->c, 0, 0x1000, 1, 0, &iov, 1);
		if (x->r < 0)
			break;
	}
	return NULL;
}

struct accepted {
	struct net_listener *l;
	struct net_chan *c;
	int r;
};

static void *acceptor(void *p)
{
	struct accepted *a = p;
	a->r = net_accept(a->l, 5000, &a->c);
	return NULL;
}

static int open_pair(struct net_ctx *ctx, struct net_listener *l, enum net_role role,
		     const uint8_t *session, struct net_chan **cli, struct net_chan **srv)
{
	struct accepted a = { .l = l };
	pthread_t t;
	char addr[64];
	int r;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", net_listener_port(l));
	pthread_create(&t, NULL, acceptor, &a);
	r = net_connect(ctx, addr, role, session, cli);
	pthread_join(t, NULL);
	if (r < 0 || a.r < 0) {
		fprintf(stderr, "net_throughput: %s\n", dm_last_error());
		net_chan_close(a.c);
		return r < 0 ? r : a.r;
	}
	*srv = a.c;
	return 0;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* MB/s; *ret_cpu: CPU seconds per GiB moved */
static double run_bulk(struct net_chan *cli, struct net_chan *srv, uint64_t total, size_t frame,
		       bool pages, double *ret_cpu)
{
	struct rx x = { .c = srv };
	void *buf = xmalloc(frame);
	pthread_t t;
	uint64_t sent = 0, t0;
	int r = 0;

	memset(buf, 0x3c, frame);
	pthread_create(&t, NULL, bulk_receiver, &x);
	double cpu0 = cpu_seconds();
	t0 = clock_ns();
	while (sent < total && r == 0) {
		struct iovec iov = { buf, frame };
		if (pages)
			r = net_send_pages(cli, 0, 0x10000000, (uint32_t)(frame / DM_PAGE_SIZE), 0,
					   &iov, 1);
		else
			r = net_send_frame(cli, NET_T_RAW, buf, frame);
		sent += frame;
	}
	if (r == 0)
		r = net_send_frame(cli, NET_T_RAW, NULL, 0);
	pthread_join(t, NULL);
	double secs = (clock_ns() - t0) / 1e9;
	*ret_cpu = (cpu_seconds() - cpu0) / ((double)x.bytes / (1 << 30));
	free(buf);
	if (r < 0 || x.r < 0) {
		fprintf(stderr, "net_throughput: %s\n", dm_last_error());
		return -1;
	}
	return (double)x.bytes / secs / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* p50 and p99 of a fault-like round trip, in microseconds */
static int run_faults(struct net_chan *cli, struct net_chan *srv, double *p50, double *p99)
{
	enum { N = 5000 };
	static uint64_t lat[N];
	struct rx x = { .c = srv };
	uint8_t req[32] = { 0 }, page[4096];
	pthread_t t;
	int r = 0;

	pthread_create(&t, NULL, fault_server, &x);
	for (int i = 0; i < N && r == 0; i++) {
		struct net_frame f;
		struct net_wire_pages ph;
		uint64_t t0 = clock_ns();
		r = net_send_frame(cli, NET_T_MEM, req, sizeof(req));
		if (r == 0)
			r = net_recv_hdr(cli, &f);
		if (r == 0)
			r = net_recv_pages_hdr(cli, &f, &ph);
		if (r == 0)
			r = net_recv_body(cli, page, sizeof(page));
		lat[i] = clock_ns() - t0;
	}
	net_send_frame(cli, NET_T_RAW, NULL, 0); /* stops the server */
	pthread_join(t, NULL);
	if (r < 0) {
		fprintf(stderr, "net_throughput: %s\n", dm_last_error());
		return r;
	}
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	*p50 = lat[N / 2] / 1e3;
	*p99 = lat[N * 99 / 100] / 1e3;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long total_mib = 2048, frame_kib = 1024;
	const char *only = argc > 3 ? argv[3] : NULL;
	struct net_key key;

	if ((argc > 1 && parse_ulong(argv[1], &total_mib) < 0) ||
	    (argc > 2 && parse_ulong(argv[2], &frame_kib) < 0) || frame_kib == 0 ||
	    frame_kib * 1024 > NET_FRAME_MAX - sizeof(struct net_wire_pages) || frame_kib % 4 ||
	    (only && strcmp(only, "tls") && strcmp(only, "insecure"))) {
		fprintf(stderr, "usage: net_throughput [total-MiB [frame-KiB (multiple of 4) "
				"[tls|insecure]]]\n");
		return 2;
	}
	dm_log_init(LOG_ERR, -1); /* the insecure warnings are known here */
	if (RAND_bytes(key.bytes, sizeof(key.bytes)) != 1)
		return 1;

	printf("loopback, %lu MiB per run, %lu KiB frames\n", total_mib, frame_kib);
	printf("%-9s %10s %12s %11s %12s %14s %14s\n", "mode", "bulk MB/s", "cpu s/GiB",
	       "pages MB/s", "cpu s/GiB", "fault rtt p50", "fault rtt p99");
	for (int insecure = 0; insecure < 2; insecure++) {
		if (only && strcmp(only, insecure ? "insecure" : "tls"))
			continue;
		struct net_config cfg = { .insecure = insecure };
		struct net_ctx *ctx;
		struct net_listener *l;
		struct net_chan *ctl_c, *ctl_s, *bulk_c, *bulk_s, *fault_c, *fault_s;
		double p50 = 0, p99 = 0;

		if (net_ctx_new(&cfg, &key, &ctx) < 0 || net_listen(ctx, "127.0.0.1:0", &l) < 0) {
			fprintf(stderr, "net_throughput: %s\n", dm_last_error());
			return 1;
		}
		if (open_pair(ctx, l, NET_ROLE_CONTROL, NULL, &ctl_c, &ctl_s) < 0 ||
		    open_pair(ctx, l, NET_ROLE_BULK, net_chan_session(ctl_c), &bulk_c, &bulk_s) < 0 ||
		    open_pair(ctx, l, NET_ROLE_FAULT, net_chan_session(ctl_c), &fault_c, &fault_s) < 0)
			return 1;

		uint64_t total = (uint64_t)total_mib << 20;
		double cpu_bulk, cpu_pages;
		double bulk = run_bulk(bulk_c, bulk_s, total, frame_kib * 1024, false, &cpu_bulk);
		double pages = run_bulk(bulk_c, bulk_s, total, 64 * DM_PAGE_SIZE, true, &cpu_pages);
		if (bulk < 0 || pages < 0 || run_faults(fault_c, fault_s, &p50, &p99) < 0)
			return 1;
		printf("%-9s %10.0f %12.2f %11.0f %12.2f %11.1f us %11.1f us\n",
		       insecure ? "insecure" : "TLS", bulk, cpu_bulk, pages, cpu_pages, p50, p99);

		struct net_chan_stats st;
		net_chan_get_stats(bulk_c, &st);
		printf("          bulk channel: %.1f MiB of frames, %.1f MiB on the wire\n",
		       st.bytes_sent / 1048576.0, st.wire_sent / 1048576.0);
		net_chan_close(fault_c);
		net_chan_close(fault_s);
		net_chan_close(bulk_c);
		net_chan_close(bulk_s);
		net_chan_close(ctl_c);
		net_chan_close(ctl_s);
		net_listener_free(l);
		net_ctx_unref(ctx);
	}
	return 0;
}
