/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: what dmigrated does with the bytes a source sends on the
 * page channels, through the receiver it runs (mem_netsrc: the bodies of its
 * fault and bulk threads, run here on the fuzzer's thread, the page store,
 * the userfaultfd handler's checks), over insecure channels on socketpairs.  The first input byte:
 *   bit 0  the stream goes to the bulk channel (PHASE, PAGES, ABSENT,
 *          PUSH_END) or to the fault channel (PAGES replies)
 *   bit 1  a store session (stop-and-copy, pre-copy: PHASE STORE allowed)
 * The rest is the byte stream.  The handler serves one address space, 1234:
 * a scratch mapping of the fuzzer's own at FUZZ_BASE, registered with a
 * userfaultfd, whose lazy pages are FUZZ_BASE + [0, 32) and [40, 56) pages
 * (the seeds use them): pages and holes there are installed (UFFDIO_COPY
 * into the scratch mapping, nothing else), any other range or space must be
 * refused.  Nothing may crash, leak or read out of bounds.
 * The static thread bodies are reached by including src/mem/netsrc.c.
 *   tests/fuzz/build.sh [SECONDS]      builds and runs every target
 */
#include "../../src/mem/netsrc.c"
#include "fuzz-feed.h"

#include "net/net-priv.h"
#include "restore/restore.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* far from the libraries, the heap and ASan's regions */
#define FUZZ_BASE 0x500000000000ULL
#define FUZZ_PAGES 64u
#define FUZZ_SPACE 1234

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct net_ctx *ctx;

static void setup(void)
{
	struct net_config cfg = { .insecure = true, .io_timeout_ms = 2000 };

	dm_log_init(-1, -1);
	/* the fault thread's body asks for SCHED_FIFO: not on a shared machine */
	setenv("DMIGRATE_NO_RT", "1", 1);
	if (net_ctx_new(&cfg, NULL, &ctx) < 0)
		abort();
}

/* Space FUZZ_SPACE for the handler: a fresh scratch mapping and its uffd. */
static int add_space(struct mem_lazy *l)
{
	static Dm__PagemapEntry e[2] = { DM__PAGEMAP_ENTRY__INIT, DM__PAGEMAP_ENTRY__INIT };
	static Dm__PagemapEntry *pe[2] = { &e[0], &e[1] };
	Dm__Process img = DM__PROCESS__INIT;
	struct restore_lazy_area area = { FUZZ_BASE, FUZZ_BASE + FUZZ_PAGES * DM_PAGE_SIZE };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { FUZZ_BASE, FUZZ_PAGES * DM_PAGE_SIZE },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };

	/* MAP_FIXED over the last run's mapping: empty again, unregistered */
	if (mmap((void *)FUZZ_BASE, FUZZ_PAGES * DM_PAGE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (void *)FUZZ_BASE)
		abort();
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return -1; /* no userfaultfd here: the refusals are still fuzzed */
	if (ioctl(uffd, UFFDIO_API, &api) < 0 || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		abort();
	e[0].vaddr = FUZZ_BASE;
	e[0].nr_pages = 32;
	e[1].vaddr = FUZZ_BASE + 40 * DM_PAGE_SIZE;
	e[1].nr_pages = 16;
	e[1].offset = 32 * DM_PAGE_SIZE;
	e[0].has_lazy = e[1].has_lazy = true;
	e[0].lazy = e[1].lazy = true;
	img.pid = FUZZ_SPACE;
	img.n_pagemap = 2;
	img.pagemap = pe;
	struct restore_lazy_proc lp = { .pid = FUZZ_SPACE, .host_pid = getpid(), .uffd = uffd,
					.features = api.features, .areas = &area, .n_areas = 1, .img = &img };
	return mem_lazy_add(l, &lp);
}

/* The daemon's end of a channel that reads data, then EOF; *ret_peer is ours. */
static struct net_chan *chan_with(const uint8_t *data, size_t size, int *ret_peer)
{
	struct net_chan *c;

	if (net_chan_new(ctx, fuzz_feed(data, size, true, ret_peer), true, &c) < 0)
		abort();
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem_store *store = NULL;
	struct mem_netsrc *n = NULL;
	struct mem_lazy *l = NULL;
	struct mem_lazy_opts lo = {};
	struct net_chan *fault, *bulk;
	int pf, pb;

	if (!ctx)
		setup();
	if (size < 1 || size > (4u << 20))
		return 0;
	bool to_bulk = data[0] & 1, store_mode = data[0] & 2;
	data++;
	size--;

	fault = chan_with(to_bulk ? NULL : data, to_bulk ? 0 : size, &pf);
	bulk = chan_with(to_bulk ? data : NULL, to_bulk ? size : 0, &pb);
	if (store_mode && mem_store_new(1u << 20, &store) < 0)
		abort();
	if (mem_netsrc_new(fault, bulk, store, &n) < 0)
		abort();
	mem_netsrc_ops(n, &lo.ops);
	if (mem_lazy_new(&lo, &l) < 0)
		abort();
	add_space(l);
	mem_netsrc_set_lazy(n, l);
	/* the receiver reads until the end of the input or a refusal */
	if (to_bulk)
		bulk_thread(n);
	else
		fault_thread(n);
	mem_netsrc_error(n);
	mem_netsrc_free(n);
	mem_lazy_free(l);
	mem_store_free(store);
	net_chan_close(fault);
	net_chan_close(bulk);
	close(pf);
	close(pb);
	return 0;
}
