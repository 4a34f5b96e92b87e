/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the source's page server (mem/server.c) on a live child:
 * what a fault request gets back (pointer chasing), and its page reads.
 *
 * Reading a page must leave it as it was: in particular a page the child
 * still shares copy-on-write with its parent stays one page.  A pinning
 * read (process_vm_readv) makes the kernel give the child its own copy
 * first, so a pre-copy round over a prefork server would multiply its
 * memory by its workers while it runs, and for good after a rollback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mem/mem.h"
#include "base/util.h"
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGES 64
#define PAGE 4096UL
#define PM_PFN(x) ((x) & ((1ULL << 55) - 1))
#define PM_PRESENT (1ULL << 63)

/* The pagemap entry of one page of pid. */
static uint64_t pm_entry(pid_t pid, const void *addr)
{
	char path[64];
	uint64_t e = 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / PAGE * sizeof(e))),
			 sizeof(e));
	close(fd);
	return e;
}

static void test_read_keeps_cow(void **state)
{
	(void)state;
	uint8_t *m = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	for (size_t i = 0; i < PAGES * PAGE; i++)
		m[i] = (uint8_t)(i * 7 + 1);
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		close(ready[0]);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);

	uint64_t before = pm_entry(pid, m);
	if (!PM_PFN(before)) { /* no PFNs without CAP_SYS_ADMIN: nothing to compare */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		munmap(m, PAGES * PAGE);
		skip();
	}
	assert_true(before & PM_PRESENT);
	assert_int_equal(PM_PFN(before), PM_PFN(pm_entry(getpid(), m)));

	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int memfd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(memfd >= 0);
	uint8_t *buf = xmalloc(PAGES * PAGE);
	int r = mem_read_remote(pid, memfd, (uint64_t)(uintptr_t)m, buf, PAGES * PAGE);
	size_t unshared = 0;
	for (size_t k = 0; k < PAGES; k++)
		unshared += PM_PFN(pm_entry(pid, m + k * PAGE)) != PM_PFN(pm_entry(getpid(), m + k * PAGE));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(memfd);
	assert_int_equal(r, 0);
	assert_memory_equal(buf, m, PAGES * PAGE);
	if (unshared)
		fail_msg("%zu of %d pages of the child are no longer shared with its parent after the read",
			 unshared, PAGES);
	free(buf);
	munmap(m, PAGES * PAGE);
}

/* An unreadable page (PROT_NONE) is read too (FOLL_FORCE), a hole is an error. */
static void test_read_prot_none(void **state)
{
	(void)state;
	uint8_t *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	memset(m, 0x5a, PAGE);
	assert_int_equal(mprotect(m, PAGE, PROT_NONE), 0);
	assert_int_equal(munmap(m + PAGE, PAGE), 0);
	int memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	assert_true(memfd >= 0);
	uint8_t buf[PAGE];
	assert_int_equal(mem_read_remote(getpid(), memfd, (uint64_t)(uintptr_t)m, buf, PAGE), 0);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(buf[PAGE - 1], 0x5a);
	assert_int_equal(mem_read_remote(getpid(), memfd, (uint64_t)(uintptr_t)(m + PAGE), buf, PAGE),
			 -EFAULT);
	close(memfd);
	munmap(m, PAGE);
}

/* ---- pointer chasing ---------------------------------------------------- */

struct accepting {
	struct net_listener *l;
	struct net_chan *c[3];
	int n; /* connections to accept (0: 2) */
	int r;
};

static void *accept_main(void *arg)
{
	struct accepting *a = arg;
	for (int i = 0; i < (a->n ? a->n : 2) && a->r >= 0; i++)
		a->r = net_accept(a->l, 10000, &a->c[i]);
	return NULL;
}

/* np private anonymous pages, every byte fill: the memory a test serves */
static uint8_t *area(size_t np, int fill)
{
	uint8_t *m = mmap(NULL, np * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	memset(m, fill, np * PAGE);
	return m;
}

/* np pages whose first 16 words point to a node on each of pages 1-16
 * (at offset 64): an array of pointers whose every node the chase follows */
static uint8_t *pointer_array_area(size_t np)
{
	uint8_t *m = area(np, 0);
	for (size_t k = 0; k < 16; k++) {
		uint64_t node = (uint64_t)(uintptr_t)m + (1 + k) * PAGE + 64;
		memcpy(m + k * 8, &node, 8);
	}
	return m;
}

/* A child that holds m (inherited) and waits; killed by the caller. */
static pid_t hold_child(void)
{
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

/* Ask for the page holding byte fault (window: that page alone); the pages
 * of the reply in the order they come, until the reply to a request for
 * page `until` (which ends the list: the frames of one channel stay in order). */
/*
 * One fault request; the pages that come for it (the page, then its extras),
 * until the channel stays quiet for 300 ms.  (A second request sent at once,
 * to mark the end, would cut the extras short: the server serves a waiting
 * request before sending more of them, mem/server.c fault_waits().)
 */
static size_t ask(struct net_chan *d, uint64_t fault, uint64_t until, uint64_t *ret, size_t max, uint32_t *ret_flags)
{
	(void)until;
	struct mem_wire_req q = { .space = 7, .npages = 1, .addr = fault & ~(PAGE - 1), .fault_addr = fault };
	assert_int_equal(net_send_frame(d, MEM_T_REQ, &q, sizeof(q)), 0);
	size_t n = 0;
	uint8_t *page = xmalloc(MEM_FRAME_PAGES_MAX * PAGE);
	while (net_chan_poll_in(d, 300) > 0) {
		struct net_frame f;
		struct net_wire_pages h;
		assert_int_equal(net_recv_hdr(d, &f), 0);
		assert_int_equal(f.type, NET_T_PAGES);
		assert_int_equal(net_recv_pages_hdr(d, &f, &h), 0);
		assert_int_equal(net_recv_body(d, page, (size_t)h.npages * PAGE), 0);
		for (uint32_t k = 0; k < h.npages && n < max; k++) {
			ret_flags[n] = h.flags;
			ret[n++] = h.addr + k * PAGE;
		}
	}
	free(page);
	return n;
}

struct srv_rig {
	pid_t pid;
	struct net_ctx *ctx;
	struct accepting a;
	struct net_chan *ctl, *fault, *bulk;
	struct mem_server *srv;
};

/*
 * A page server for process 7 = a child holding m (np pages, one lazy run),
 * its fault channel; with bulk_held its bulk channel too, the push held
 * (mem_server_hold) from its start.
 */
static void rig_open(struct srv_rig *g, uint8_t *m, size_t np, bool bulk_held)
{
	memset(g, 0, sizeof(*g));
	g->a.n = bulk_held ? 3 : 2;
	g->pid = hold_child();
	Dm__PagemapEntry e = DM__PAGEMAP_ENTRY__INIT, *ep = &e;
	e.vaddr = (uint64_t)(uintptr_t)m;
	e.nr_pages = (uint32_t)np;
	e.has_lazy = e.lazy = true;
	e.has_remote = e.remote = true;
	Dm__Process img = DM__PROCESS__INIT;
	img.pid = 7;
	img.n_pagemap = 1;
	img.pagemap = &ep;
	struct net_config cfg = { .insecure = true, .io_timeout_ms = 20000 };
	pthread_t th;
	char addr[64];
	assert_int_equal(net_ctx_new(&cfg, NULL, &g->ctx), 0);
	assert_int_equal(net_listen(g->ctx, "127.0.0.1:0", &g->a.l), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", net_listener_port(g->a.l));
	assert_int_equal(pthread_create(&th, NULL, accept_main, &g->a), 0);
	assert_int_equal(net_connect(g->ctx, addr, NET_ROLE_CONTROL, NULL, &g->ctl), 0);
	assert_int_equal(net_connect(g->ctx, addr, NET_ROLE_FAULT, net_chan_session(g->ctl), &g->fault), 0);
	if (bulk_held)
		assert_int_equal(net_connect(g->ctx, addr, NET_ROLE_BULK, net_chan_session(g->ctl), &g->bulk), 0);
	pthread_join(th, NULL);
	assert_int_equal(g->a.r, 0);
	struct net_chan *sf = NULL, *sb = NULL;
	for (int i = 0; i < g->a.n; i++) {
		if (net_chan_role(g->a.c[i]) == NET_ROLE_FAULT)
			sf = g->a.c[i];
		if (net_chan_role(g->a.c[i]) == NET_ROLE_BULK)
			sb = g->a.c[i];
	}
	assert_non_null(sf);
	assert_true(!bulk_held || sb);
	assert_int_equal(mem_server_new(&g->srv), 0);
	assert_int_equal(mem_server_add(g->srv, 7, g->pid, &img), 0);
	if (bulk_held)
		mem_server_hold(g->srv, true);
	assert_int_equal(mem_server_start(g->srv, sf, sb, MEM_PHASE_INSTALL), 0);
}

static void rig_close(struct srv_rig *g)
{
	mem_server_free(g->srv);
	kill(g->pid, SIGKILL);
	waitpid(g->pid, NULL, 0);
	net_chan_close(g->fault);
	net_chan_close(g->bulk);
	net_chan_close(g->ctl);
	for (int i = 0; i < g->a.n; i++)
		net_chan_close(g->a.c[i]);
	net_listener_free(g->a.l);
	net_ctx_unref(g->ctx);
}

/*
 * A request that waits is served before the extras of the one before it
 * (mem/server.c fault_waits()): a fault on an array of pointers to 16 node
 * pages (each chased) and a second request, both in the server's socket
 * before it reads the first (sent corked: one segment): the second's page
 * comes, and the server says it cut the first's extras short.
 */
static void test_fault_waits(void **state)
{
	(void)state;
	const size_t np = 32;
	uint8_t *m = pointer_array_area(np);
	uint64_t base = (uint64_t)(uintptr_t)m;
	struct srv_rig g;
	rig_open(&g, m, np, false);
	uint8_t *page = xmalloc(MEM_FRAME_PAGES_MAX * PAGE);
	uint64_t arr = base, other = base + 20 * PAGE;
	int fd = net_chan_fd(g.fault), on = 1, off = 0;
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)), 0);
	struct mem_wire_req q = { .space = 7, .npages = 1, .addr = arr, .fault_addr = arr };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	q = (struct mem_wire_req){ .space = 7, .npages = 1, .addr = other, .fault_addr = other };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off)), 0);
	bool got_other = false;
	while (net_chan_poll_in(g.fault, 300) > 0) {
		struct net_frame f;
		struct net_wire_pages h;
		assert_int_equal(net_recv_hdr(g.fault, &f), 0);
		assert_int_equal(net_recv_pages_hdr(g.fault, &f, &h), 0);
		assert_int_equal(net_recv_body(g.fault, page, (size_t)h.npages * PAGE), 0);
		got_other |= h.addr == other && (h.flags & MEM_PF_FAULT);
	}
	assert_true(got_other);
	struct mem_server_stats st;
	mem_server_get_stats(g.srv, &st);
	assert_true(st.fault_yields > 0);
	free(page);
	rig_close(&g);
	munmap(m, np * PAGE);
}

/*
 * A fault's extras wait for the fault channel to drain (fault_waits()): a
 * destination that reads nothing, its receive buffer full (the server's end
 * holds more than the bound unacknowledged), gets the faulting page and one
 * chased page, and the server waits for the channel, then leaves the other
 * extras (the chase of an array of 16 pointers would send 8).  Unbounded (DMIGRATE_FAULT_AHEAD=0),
 * all 8 go into the same full channel.  Returns the chased pages' count.
 */
static uint64_t chased_into_full_channel(bool bounded, struct mem_server_stats *st)
{
	const size_t np = 32;
	uint8_t *m = pointer_array_area(np);
	uint64_t base = (uint64_t)(uintptr_t)m;
	struct srv_rig g;
	/* bounded: and the link said to take 1 byte/s (no acknowledgement ever
	 * comes, so only the estimate of what the link took could let them go) */
	setenv(bounded ? "DMIGRATE_FAULT_RATE" : "DMIGRATE_FAULT_AHEAD", bounded ? "1" : "0", 1);
	rig_open(&g, m, np, false);
	unsetenv("DMIGRATE_FAULT_AHEAD");
	unsetenv("DMIGRATE_FAULT_RATE");
	struct net_chan *sf = NULL;
	for (int i = 0; i < g.a.n; i++)
		if (net_chan_role(g.a.c[i]) == NET_ROLE_FAULT)
			sf = g.a.c[i];
	assert_non_null(sf);
	/* the destination's window closes: a small buffer it never reads; the
	 * server's end takes the pages without blocking */
	int cfd = net_chan_fd(g.fault), sfd = net_chan_fd(sf), small = 4096, big = 4 << 20;
	assert_int_equal(setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
	static uint8_t junk[PAGE];
	size_t junk_bytes = 0;
	int outq = 0;
	for (int tries = 0; outq < (int)(4 * PAGE) && tries < 100000; tries++) {
		ssize_t w = send(sfd, junk, sizeof(junk), MSG_DONTWAIT);
		if (w > 0)
			junk_bytes += (size_t)w;
		else
			usleep(100);
		assert_int_equal(ioctl(sfd, SIOCOUTQ, &outq), 0);
	}
	assert_true(outq >= (int)(4 * PAGE));
	struct mem_wire_req q = { .space = 7, .npages = 1, .addr = base, .fault_addr = base + 8 };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	/* the faulting page went; the extras waited for the channel, then were
	 * left (or went, unbounded) */
	for (int i = 0; i < 500; i++) {
		mem_server_get_stats(g.srv, st);
		if (st->pages_fault && (st->fault_pace_gaveup || st->pages_chased == 8))
			break;
		usleep(10000);
	}
	/* then the destination reads it all: the junk, the page first */
	uint8_t *page = xmalloc(MEM_FRAME_PAGES_MAX * PAGE);
	for (size_t got = 0; got < junk_bytes;) {
		struct pollfd pf = { .fd = cfd, .events = POLLIN };
		assert_int_equal(poll(&pf, 1, 5000), 1);
		ssize_t r = read(cfd, page, MIN(junk_bytes - got, MEM_FRAME_PAGES_MAX * PAGE));
		assert_true(r > 0 || (r < 0 && errno == EAGAIN));
		got += r > 0 ? (size_t)r : 0;
	}
	struct net_frame f;
	struct net_wire_pages h;
	assert_int_equal(net_recv_hdr(g.fault, &f), 0);
	assert_int_equal(net_recv_pages_hdr(g.fault, &f, &h), 0);
	assert_true(h.addr == base && (h.flags & MEM_PF_FAULT));
	mem_server_get_stats(g.srv, st);
	free(page);
	rig_close(&g);
	munmap(m, np * PAGE);
	return st->pages_chased;
}

static void test_fault_ahead(void **state)
{
	(void)state;
	struct mem_server_stats st;
	/* the faulting page and one chased page are under the bound (8 KiB)
	 * by the estimate, which knows only the server's own frames */
	assert_int_equal(chased_into_full_channel(true, &st), 1);
	assert_true(st.fault_paced >= 1 && st.fault_pace_gaveup >= 1);
	assert_int_equal(chased_into_full_channel(false, &st), 8);
	assert_int_equal(st.fault_paced, 0);
}

/*
 * An array of pointers (a hash table's buckets) to nodes on pages of their
 * own: a fault in the array brings the nodes of the 16 words around it (8:
 * the budget); a later fault on a node the array points to further on
 * brings the nodes of the words after that one (a thread iterating the
 * array), where the node's own page points nowhere.
 */
static void test_chase_on(void **state)
{
	(void)state;
	const size_t np = 64;
	uint8_t *m = area(np, 0);
	uint64_t base = (uint64_t)(uintptr_t)m, *arr = (uint64_t *)(m + 5 * PAGE);
	for (size_t i = 0; i < 32; i++)
		arr[i] = base + (30 + i) * PAGE + 512 + i * 8; /* node i on page 30 + i */
	struct srv_rig g;
	rig_open(&g, m, np, false);
	uint64_t got[32];
	uint32_t fl[32];
	size_t n = ask(g.fault, base + 5 * PAGE + 8, base + 2 * PAGE, got, 32, fl);
	assert_int_equal(n, 9);
	assert_int_equal(got[0], base + 5 * PAGE);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(got[1 + i], base + (30 + i) * PAGE);
	/* node 10 faults (its page holds no pointer): nodes 11..18 follow */
	n = ask(g.fault, arr[10], base + 3 * PAGE, got, 32, fl);
	assert_int_equal(n, 9);
	assert_int_equal(got[0], base + 40 * PAGE);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(got[1 + i], base + (41 + i) * PAGE);
	struct mem_server_stats st;
	mem_server_get_stats(g.srv, &st);
	assert_int_equal(st.chases_on, 1);
	assert_int_equal(st.pages_chased, 16);
	rig_close(&g);
	munmap(m, np * PAGE);
}

/* The next frame of pages on c (other frames skipped): its first page, count, flags; false: none within ms. */
static bool next_pages(struct net_chan *c, int ms, uint64_t *addr, uint32_t *n, uint32_t *flags)
{
	uint8_t *buf = xmalloc(MEM_FRAME_PAGES_MAX * PAGE);
	bool got = false;
	while (!got && net_chan_poll_in(c, ms) > 0) {
		struct net_frame f;
		struct net_wire_pages h;
		assert_int_equal(net_recv_hdr(c, &f), 0);
		if (f.type != NET_T_PAGES) {
			assert_int_equal(net_skip_body(c), 0);
			continue;
		}
		assert_int_equal(net_recv_pages_hdr(c, &f, &h), 0);
		assert_int_equal(net_recv_body(c, buf, (size_t)h.npages * PAGE), 0);
		/* as the destination's fault thread does (mem/netsrc.c): the source
		 * paces a fault's extras on this channel's acknowledgements */
		net_chan_quickack(c);
		*addr = h.addr;
		*n = h.npages;
		*flags = h.flags;
		got = true;
	}
	free(buf);
	return got;
}

/*
 * The same chase into a destination that reads as the pages come (and asks
 * for quick acknowledgements, as mem/netsrc.c does), the link said to take
 * 1 byte/s: the estimate lets one extra go at most, the acknowledgements
 * let the others go; none is left (the wait's bound raised to 10 s: a reader
 * late on a loaded machine must not make it give up).
 */
static void test_fault_ahead_acked(void **state)
{
	(void)state;
	const size_t np = 32;
	uint8_t *m = pointer_array_area(np);
	uint64_t base = (uint64_t)(uintptr_t)m;
	struct srv_rig g;
	/* a reader late by a loaded machine is waited for */
	setenv("DMIGRATE_FAULT_RATE", "1", 1);
	setenv("DMIGRATE_FAULT_AHEAD_WAIT_MS", "10000", 1);
	rig_open(&g, m, np, false);
	unsetenv("DMIGRATE_FAULT_RATE");
	unsetenv("DMIGRATE_FAULT_AHEAD_WAIT_MS");
	struct mem_wire_req q = { .space = 7, .npages = 1, .addr = base, .fault_addr = base + 8 };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	uint64_t at;
	uint32_t n, fl;
	size_t pages = 0;
	while (pages < 9 && next_pages(g.fault, 2000, &at, &n, &fl))
		pages += n;
	struct mem_server_stats st;
	mem_server_get_stats(g.srv, &st);
	assert_int_equal(st.pages_fault, 1);
	assert_int_equal(st.pages_chased, 8);
	assert_int_equal(st.fault_pace_gaveup, 0);
	rig_close(&g);
	munmap(m, np * PAGE);
}

/*
 * A forward walk over a table of pointers while the push is held (until
 * the commit, and in the quiet window after it): the fault's reply brings
 * the page, then its next neighbours, then the pages its words point to
 * (neighbours first: the walk touches the next page before those); the
 * rest of the window the destination asked for comes on the bulk channel
 * at once, though the push is held, and nothing beyond it until the hold
 * ends.  Without the held window push a walk faulted on every page.
 */
static void test_walk_window_held(void **state)
{
	(void)state;
	const size_t np = 64;
	uint8_t *m = area(np, 0);
	uint64_t base = (uint64_t)(uintptr_t)m, *arr = (uint64_t *)(m + 5 * PAGE);
	for (size_t i = 0; i < 16; i++)
		arr[i] = base + (40 + i) * PAGE + 64; /* bucket i -> a node on page 40 + i */
	struct srv_rig g;
	rig_open(&g, m, np, true);

	/* a forward walk: the window starts at the faulting page, 32 pages */
	struct mem_wire_req q = { .space = 7, .npages = 32, .addr = base + 5 * PAGE, .fault_addr = base + 5 * PAGE + 8 };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	uint64_t at, want[] = { 5, 6, 7, 8, 40, 41, 42, 43, 44, 45, 46, 47 };
	uint32_t n, fl;
	size_t k = 0;
	while (k < ARRAY_SIZE(want)) {
		assert_true(next_pages(g.fault, 5000, &at, &n, &fl));
		for (uint32_t j = 0; j < n; j++, k++) {
			assert_true(k < ARRAY_SIZE(want));
			assert_int_equal(at + j * PAGE, base + want[k] * PAGE);
			assert_int_equal(fl, k == 0 ? MEM_PF_FAULT : MEM_PF_PREFETCH);
		}
	}
	/* the rest of the window, [9, 37), on the bulk channel while held */
	bool seen[64] = { false };
	size_t pushed = 0;
	while (pushed < 37 - 9) {
		assert_true(next_pages(g.bulk, 5000, &at, &n, &fl));
		assert_int_equal(fl, MEM_PF_PUSH);
		for (uint32_t j = 0; j < n; j++) {
			uint64_t pg = (at - base) / PAGE + j;
			assert_true(pg >= 9 && pg < 37);
			assert_false(seen[pg]);
			seen[pg] = true;
			pushed++;
		}
	}
	/* and nothing else while held */
	assert_false(next_pages(g.bulk, 300, &at, &n, &fl));
	/* let go: the rest (pages 0-4, 37-39, 48-63) */
	mem_server_hold(g.srv, false);
	size_t rest = 0;
	while (rest < 5 + 3 + 16) {
		assert_true(next_pages(g.bulk, 5000, &at, &n, &fl));
		for (uint32_t j = 0; j < n; j++) {
			uint64_t pg = (at - base) / PAGE + j;
			assert_true(pg < 5 || (pg >= 37 && pg < 40) || pg >= 48);
			rest++;
		}
	}
	rig_close(&g);
	munmap(m, np * PAGE);
}

/*
 * A walk that outruns the push: the pages after a walk's fault go on the
 * fault channel even where the window handed to the pusher before claimed
 * them (they are in its frames on the bulk channel, behind the rest); each
 * page of the walk was a fault of its own.  Pages this channel carried
 * already do not go again.
 */
static void test_walk_outruns_push(void **state)
{
	(void)state;
	const size_t np = 64;
	uint8_t *m = area(np, 0);
	uint64_t base = (uint64_t)(uintptr_t)m, at;
	uint32_t n, fl;
	struct srv_rig g;
	rig_open(&g, m, np, true);

	/* a walk at page 5: the page and its next 3 inline, [9, 37) pushed */
	struct mem_wire_req q = { .space = 7, .npages = 32, .addr = base + 5 * PAGE, .fault_addr = base + 5 * PAGE };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	for (size_t k = 0; k < 4;) {
		assert_true(next_pages(g.fault, 5000, &at, &n, &fl));
		k += n;
	}
	for (size_t k = 0; k < 37 - 9;) {
		assert_true(next_pages(g.bulk, 5000, &at, &n, &fl));
		k += n;
	}
	/* a walk's fault on page 6, whose next pages this channel carried:
	 * the page alone, nothing again */
	q = (struct mem_wire_req){ .space = 7, .npages = 32, .addr = base + 6 * PAGE, .fault_addr = base + 6 * PAGE };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	assert_true(next_pages(g.fault, 5000, &at, &n, &fl));
	assert_int_equal(at, base + 6 * PAGE);
	assert_int_equal(n, 1);
	assert_false(next_pages(g.fault, 300, &at, &n, &fl));
	/* the walk goes on at page 9, which the push claimed with what follows */
	q = (struct mem_wire_req){ .space = 7, .npages = 32, .addr = base + 9 * PAGE, .fault_addr = base + 9 * PAGE };
	assert_int_equal(net_send_frame(g.fault, MEM_T_REQ, &q, sizeof(q)), 0);
	uint64_t want[] = { 9, 10, 11, 12 };
	for (size_t k = 0; k < ARRAY_SIZE(want);) {
		assert_true(next_pages(g.fault, 5000, &at, &n, &fl));
		for (uint32_t j = 0; j < n && k < ARRAY_SIZE(want); j++, k++) {
			assert_int_equal(at + j * PAGE, base + want[k] * PAGE);
			assert_int_equal(fl, k == 0 ? MEM_PF_FAULT : MEM_PF_PREFETCH);
		}
	}
	rig_close(&g);
	munmap(m, np * PAGE);
}

static void *stop_main(void *arg)
{
	mem_server_stop(arg);
	return NULL;
}

/*
 * A stop while the held push sends a frame (its lock let go): the stop ends
 * the hold and signals before the pusher waits again, and the pusher must
 * see both when it comes back, not wait on a window computed from a hold
 * that is over (it waited 49 days: a migration's rollback joined it for
 * ever).  The test point holds the pusher right after the frame.
 */
static void test_stop_while_pushing_held(void **state)
{
	(void)state;
	const size_t np = 8;
	char dir[] = "/tmp/dm-test-mem-XXXXXX", mark[64];
	uint8_t *m = area(np, 1);
	assert_non_null(mkdtemp(dir));
	snprintf(mark, sizeof(mark), "%s/push-held-frame", dir);
	setenv("DMIGRATE_TEST_PAUSE", "push-held-frame", 1);
	setenv("DMIGRATE_TEST_MARK", dir, 1);
	setenv("DMIGRATE_TEST_PAUSE_MS", "400", 1);
	struct srv_rig g;
	rig_open(&g, m, np, true);
	for (int i = 0; i < 500 && access(mark, F_OK) != 0; i++)
		usleep(10000);
	assert_int_equal(access(mark, F_OK), 0);	/* the pusher is after a frame */
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, stop_main, g.srv), 0);
	struct timespec by;
	clock_gettime(CLOCK_REALTIME, &by);
	by.tv_sec += 10;
	int jr = pthread_timedjoin_np(th, NULL, &by);
	unsetenv("DMIGRATE_TEST_PAUSE");
	unsetenv("DMIGRATE_TEST_MARK");
	unsetenv("DMIGRATE_TEST_PAUSE_MS");
	assert_int_equal(jr, 0);	/* the stop came back */
	rig_close(&g);
	munmap(m, np * PAGE);
	unlink(mark);
	rmdir(dir);
}

/*
 * A linked list over the pages of a lazy area: a fault on a node's next
 * pointer brings, after the faulting page, the next node's page and the
 * one its next pointer points to (two levels), then nothing else (a
 * window of one page: no neighbours); pointers outside the lazy memory and
 * to the faulting page itself are not followed, and a page is sent once.
 */
static void test_chase(void **state)
{
	(void)state;
	const size_t np = 64;
	uint8_t *m = area(np, 0);
	/* node A at page 10 +200 -> B at page 40 +1000 -> C at page 20 +8 -> D at page 50 */
	uint64_t A = (uint64_t)(uintptr_t)(m + 10 * PAGE + 200), B = (uint64_t)(uintptr_t)(m + 40 * PAGE + 1000);
	uint64_t C = (uint64_t)(uintptr_t)(m + 20 * PAGE + 8), D = (uint64_t)(uintptr_t)(m + 50 * PAGE + 16);
	memcpy((void *)(uintptr_t)A, &B, 8);
	memcpy((void *)(uintptr_t)B, &C, 8);
	memcpy((void *)(uintptr_t)C, &D, 8);
	/* beside A: a pointer to the stack (not lazy memory) and one to A's own page */
	uint64_t stack = (uint64_t)(uintptr_t)&np, self = A + 64;
	memcpy((void *)(uintptr_t)(A + 8), &stack, 8);
	memcpy((void *)(uintptr_t)(A + 16), &self, 8);
	struct srv_rig g;
	rig_open(&g, m, np, false);

	uint64_t got[16], base = (uint64_t)(uintptr_t)m;
	uint32_t fl[16];
	size_t n = ask(g.fault, A, base + 60 * PAGE, got, 16, fl);
	assert_int_equal(n, 3);
	assert_int_equal(got[0], base + 10 * PAGE);
	assert_true(fl[0] & MEM_PF_FAULT);
	assert_int_equal(got[1], base + 40 * PAGE); /* B */
	assert_int_equal(got[2], base + 20 * PAGE); /* C, B's next */
	assert_true((fl[1] & MEM_PF_PREFETCH) && (fl[2] & MEM_PF_PREFETCH));
	/* B faults again (its page was on its way): C went already, nothing more */
	n = ask(g.fault, B, base + 61 * PAGE, got, 16, fl);
	assert_int_equal(n, 1);
	assert_int_equal(got[0], base + 40 * PAGE);
	/* C faults: D follows */
	n = ask(g.fault, C, base + 63 * PAGE, got, 16, fl);
	assert_int_equal(n, 2);
	assert_int_equal(got[0], base + 20 * PAGE);
	assert_int_equal(got[1], base + 50 * PAGE);
	/* a page-aligned request (a destination that does not say the byte): the page alone */
	n = ask(g.fault, base + 30 * PAGE, base + 62 * PAGE, got, 16, fl);
	assert_int_equal(n, 1);
	struct mem_server_stats st;
	mem_server_get_stats(g.srv, &st);
	assert_int_equal(st.pages_chased, 3);

	rig_close(&g);
	munmap(m, np * PAGE);
}

/* The written pages a mem_dirty scan reports, page by page. */
struct page_list {
	uint64_t *a;
	size_t n, cap;
};

static int collect(void *arg, uint32_t space, pid_t pid, uint64_t addr, uint64_t npages)
{
	struct page_list *l = arg;
	(void)space;
	(void)pid;
	for (uint64_t k = 0; k < npages; k++) {
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 256;
			l->a = xrealloc(l->a, l->cap * sizeof(*l->a));
		}
		l->a[l->n++] = addr + k * PAGE;
	}
	return 0;
}

/* The scan as the fast two-pass walk does it and as one exact pass does:
 * the same pages, and only those written. */
static void scan_both(struct mem_dirty *d, struct page_list *fast, struct page_list *exact)
{
	fast->n = exact->n = 0;
	unsetenv("DMIGRATE_SCAN_FAST");
	assert_int_equal(mem_dirty_scan(d, false, collect, fast, NULL), 0);
	setenv("DMIGRATE_SCAN_FAST", "0", 1);
	assert_int_equal(mem_dirty_scan(d, false, collect, exact, NULL), 0);
	unsetenv("DMIGRATE_SCAN_FAST");
	assert_int_equal(fast->n, exact->n);
	assert_memory_equal(fast->a, exact->a, fast->n * sizeof(*fast->a));
}

static bool listed(const struct page_list *l, const void *p)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->a[i] == (uint64_t)(uintptr_t)p)
			return true;
	return false;
}

/* The pages of [m, m + n pages) in l. */
static size_t listed_in(const struct page_list *l, const uint8_t *m, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < l->n; i++)
		c += l->a[i] >= (uint64_t)(uintptr_t)m && l->a[i] < (uint64_t)(uintptr_t)(m + n * PAGE);
	return c;
}

struct test_area {
	const uint8_t *m;
	size_t n; /* pages */
};

/* The pages of the n areas ar in l. */
static size_t listed_in_areas(const struct page_list *l, const struct test_area *ar, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += listed_in(l, ar[i].m, ar[i].n);
	return c;
}

/*
 * A child of the test (its memory as the test's was at the fork) that runs
 * step(k, arg) for each command k of writer_do(), answering when it is done.
 */
struct writer {
	pid_t pid;
	int cmd, ack;
};

static struct writer writer_start(void (*step)(char k, void *arg), void *arg)
{
	int cmd[2], ack[2];
	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(ack), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char k;
		if (write(ack[1], "r", 1) != 1)
			_exit(1);
		while (read(cmd[0], &k, 1) == 1) {
			step(k, arg);
			if (write(ack[1], "k", 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	close(cmd[0]);
	close(ack[1]);
	char k;
	assert_int_equal(read(ack[0], &k, 1), 1);
	return (struct writer){ pid, cmd[1], ack[0] };
}

static void writer_do(struct writer *w, char k)
{
	assert_int_equal(write(w->cmd, &k, 1), 1);
	assert_int_equal(read(w->ack, &k, 1), 1);
}

static void writer_stop(struct writer *w)
{
	close(w->cmd);
	close(w->ack);
	kill(w->pid, SIGKILL);
	waitpid(w->pid, NULL, 0);
}

struct scan_fast_areas {
	uint8_t *a, *b, *c, *z;
	size_t na; /* pages of a */
};

static void scan_fast_step(char k, void *arg)
{
	struct scan_fast_areas *m = arg;
	volatile uint8_t sink = 0;
	if (k == '1') {
		m->a[0] = m->a[PAGE] = m->a[2 * PAGE] = m->a[500 * PAGE] = m->a[(m->na - 1) * PAGE] = 2;
		m->b[1 * PAGE] = 2; /* a hole: a new page */
		m->b[5 * PAGE] = 2;
		sink += m->b[2 * PAGE]; /* a hole read: the zero page */
		m->c[20 * PAGE] = 2;    /* a file page copied */
		m->z[7 * PAGE] = 2;     /* the zero page replaced */
	} else if (k == '2') {
		m->a[3 * PAGE] = 3;
		m->b[2 * PAGE] = 3; /* the zero page read in round 1 */
		m->c[3 * PAGE] = 3;
	}
	(void)sink;
}

/*
 * mem_dirty's written scan goes in two passes (the kernel's fast path for
 * written entries finds candidates, the exact scan runs on them): it must
 * report what one exact pass reports, over what the fast pass also sees and
 * the exact one does not: empty entries of a populated page table, the zero
 * page, a private file mapping's file pages; and reprotect what it reports.
 */
static void test_dirty_scan_fast(void **state)
{
	(void)state;
	enum { A = 1024, B = 1024, C = 64, D = 64 };
	char tmpl[] = "/tmp/dm-test-dirty.XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(ftruncate(fd, C * PAGE), 0);
	uint8_t *a = mmap(NULL, A * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *b = mmap(NULL, B * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *c = mmap(NULL, C * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	uint8_t *z = mmap(NULL, D * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(a != MAP_FAILED && b != MAP_FAILED && c != MAP_FAILED && z != MAP_FAILED);
	close(fd);
	volatile uint8_t sink = 0;
	for (size_t i = 0; i < A; i++)
		a[i * PAGE] = 1;
	for (size_t i = 0; i < B; i += 5)
		b[i * PAGE] = 1; /* holes between, in populated page tables */
	for (size_t i = 0; i < C; i++)
		sink += c[i * PAGE]; /* the file's pages */
	c[3 * PAGE] = 1;         /* an anonymous copy */
	for (size_t i = 0; i < D; i++)
		sink += z[i * PAGE]; /* the zero page */
	(void)sink;
	const struct test_area ar[] = { { a, A }, { b, B }, { c, C }, { z, D } };

	struct scan_fast_areas m = { a, b, c, z, A };
	struct writer w = writer_start(scan_fast_step, &m);

	struct mem_dirty *d = NULL;
	assert_int_equal(mem_dirty_new(w.pid, &d), 0);
	/* the first scan reports what is there and protects it */
	struct page_list fast = {}, exact = {};
	assert_int_equal(mem_dirty_scan(d, true, collect, &fast, NULL), 0);
	assert_int_equal(listed_in(&fast, a, A), A);
	assert_int_equal(listed_in(&fast, b, B), (B + 4) / 5);
	assert_int_equal(listed_in(&fast, c, C), 1);
	/* a read of an empty entry maps the zero page, or (as on this VM)
	 * a page of its own, which reads as written */
	bool zp = PM_PFN(pm_entry(getpid(), z)) == PM_PFN(pm_entry(getpid(), z + PAGE));
	assert_int_equal(listed_in(&fast, z, D), zp ? 0 : D);
	scan_both(d, &fast, &exact);
	assert_int_equal(listed_in_areas(&fast, ar, ARRAY_SIZE(ar)), 0);

	writer_do(&w, '1');
	scan_both(d, &fast, &exact);
	assert_int_equal(listed_in(&fast, a, A), 5);
	assert_true(listed(&fast, a) && listed(&fast, a + 500 * PAGE) && listed(&fast, a + (A - 1) * PAGE));
	assert_int_equal(listed_in(&fast, b, B), zp ? 2 : 3);
	assert_true(listed(&fast, b + PAGE) && listed(&fast, b + 5 * PAGE));
	assert_int_equal(listed_in(&fast, c, C), 1);
	assert_true(listed(&fast, c + 20 * PAGE));
	assert_int_equal(listed_in(&fast, z, D), 1);
	assert_true(listed(&fast, z + 7 * PAGE));

	/* reprotected by the two-pass scan: nothing left written */
	fast.n = 0;
	assert_int_equal(mem_dirty_scan(d, true, collect, &fast, NULL), 0);
	assert_int_equal(listed_in_areas(&fast, ar, ARRAY_SIZE(ar)), zp ? 9 : 10);
	scan_both(d, &fast, &exact);
	assert_int_equal(listed_in_areas(&fast, ar, ARRAY_SIZE(ar)), 0);

	writer_do(&w, '2');
	scan_both(d, &fast, &exact);
	assert_int_equal(listed_in_areas(&fast, ar, ARRAY_SIZE(ar)), 3);
	assert_true(listed(&fast, a + 3 * PAGE) && listed(&fast, b + 2 * PAGE) && listed(&fast, c + 3 * PAGE));

	mem_dirty_free(d);
	writer_stop(&w);
	free(fast.a);
	free(exact.a);
	munmap(a, A * PAGE);
	munmap(b, B * PAGE);
	munmap(c, C * PAGE);
	munmap(z, D * PAGE);
}

/*
 * An exact scan asks the kernel for 32 MiB at a time (it holds the mmap
 * lock for a whole call): over an area of 80 MiB, the first (protecting)
 * scan reports every page once, and the writes on both sides of each 32 MiB
 * boundary are reported, nothing else.
 */
enum { CHUNKS_N = 20480 }; /* 80 MiB: boundaries at pages 8192 and 16384 */
static const size_t chunk_writes[] = { 0, 8191, 8192, 16383, 16384, CHUNKS_N - 1 };

static void scan_chunks_step(char k, void *arg)
{
	uint8_t *a = arg;
	(void)k;
	for (size_t i = 0; i < ARRAY_SIZE(chunk_writes); i++)
		a[chunk_writes[i] * PAGE] = 2;
}

static void test_dirty_scan_chunks(void **state)
{
	(void)state;
	enum { N = CHUNKS_N };
	uint8_t *a = mmap(NULL, (size_t)N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(a != MAP_FAILED);
	for (size_t i = 0; i < N; i++)
		a[i * PAGE] = 1;
	struct writer w = writer_start(scan_chunks_step, a);
	struct mem_dirty *d = NULL;
	assert_int_equal(mem_dirty_new(w.pid, &d), 0);
	struct page_list fast = {}, exact = {};
	setenv("DMIGRATE_SCAN_FAST", "0", 1);
	assert_int_equal(mem_dirty_scan(d, true, collect, &exact, NULL), 0);
	unsetenv("DMIGRATE_SCAN_FAST");
	assert_int_equal(listed_in(&exact, a, N), N);
	scan_both(d, &fast, &exact);
	assert_int_equal(listed_in(&fast, a, N), 0);

	writer_do(&w, '1');
	scan_both(d, &fast, &exact);
	assert_int_equal(listed_in(&fast, a, N), ARRAY_SIZE(chunk_writes));
	for (size_t i = 0; i < ARRAY_SIZE(chunk_writes); i++)
		assert_true(listed(&exact, a + chunk_writes[i] * PAGE));

	mem_dirty_free(d);
	writer_stop(&w);
	free(fast.a);
	free(exact.a);
	munmap(a, (size_t)N * PAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chase),
		cmocka_unit_test(test_walk_window_held),
		cmocka_unit_test(test_walk_outruns_push),
		cmocka_unit_test(test_chase_on),
		cmocka_unit_test(test_fault_waits),
		cmocka_unit_test(test_fault_ahead),
		cmocka_unit_test(test_fault_ahead_acked),
		cmocka_unit_test(test_read_keeps_cow),
		cmocka_unit_test(test_read_prot_none),
		cmocka_unit_test(test_dirty_scan_fast),
		cmocka_unit_test(test_dirty_scan_chunks),
		cmocka_unit_test(test_stop_while_pushing_held),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
