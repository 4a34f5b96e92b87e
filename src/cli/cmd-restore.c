/* SPDX-License-Identifier: MIT */
/*
 * dmigrate restore --images DIR [--pidfile FILE] [--stats FILE] [--lazy]
 *
 * --lazy: local lazy restore (post-copy from the image): the pages a task
 * needs only after it runs are not written before the resume; mem_lazy
 * serves their faults from the image and pushes the rest in the background,
 * and the command returns once every page is in.
 */
#include "base/json.h"
#include "base/clock.h"
#include "base/log.h"
#include "cli/cli.h"
#include "compat.h"
#include "container/runc.h"
#include "mem/mem.h"
#include "migrate/migrate.h"
#include "proc/proc.h"
#include "restore/restore.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>

#define LAZY_FEATURES                                                                     \
	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |   \
	 UFFD_FEATURE_EVENT_UNMAP)
#define LAZY_TIMEOUT_MS (10 * 60 * 1000)

/* ---- the image as a local page source for mem_lazy --------------------- */

struct img_run {
	uint64_t vaddr, npages, offset;
};

struct img_space {
	uint32_t space;
	const uint8_t *map;
	size_t map_len;
	uint64_t payload;
	struct img_run *runs; /* lazy entries in the file, sorted */
	size_t n;
};

struct img_src {
	struct dm_image *img;
	struct mem_lazy *lazy;
	struct img_space *s;
	size_t n;
};

static const void *img_local(void *ctx, uint32_t space, uint64_t addr, uint32_t max_run,
			     uint32_t *ret_run)
{
	struct img_src *src = ctx;
	for (size_t i = 0; i < src->n; i++) {
		const struct img_space *sp = &src->s[i];
		if (sp->space != space)
			continue;
		size_t lo = 0, hi = sp->n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			const struct img_run *r = &sp->runs[mid];
			if (addr < r->vaddr)
				hi = mid;
			else if (addr >= r->vaddr + r->npages * DM_PAGE_SIZE)
				lo = mid + 1;
			else {
				uint64_t k = (addr - r->vaddr) / DM_PAGE_SIZE;
				uint64_t off = r->offset + k * DM_PAGE_SIZE;
				uint64_t run = MIN(r->npages - k, (uint64_t)(max_run ? max_run : 1));
				if (off > sp->payload || run * DM_PAGE_SIZE > sp->payload - off)
					return NULL;
				*ret_run = (uint32_t)run;
				return sp->map + DM_IMG_DATA_OFF + off;
			}
		}
	}
	return NULL;
}

/* restore_lazy_cb: remember where this process's lazy pages are, hand its uffd over */
static int img_add(void *arg, const struct restore_lazy_proc *lp)
{
	struct img_src *src = arg;
	_cleanup_close_ int fd = -1;
	char name[64];
	uint64_t payload;
	int r;

	snprintf(name, sizeof(name), IMG_PAGES_FMT, lp->pid);
	r = image_open_raw(src->img, name, IMG_PAGES, &fd, &payload);
	if (r < 0) {
		close(lp->uffd);
		return r;
	}
	src->s = xrealloc(src->s, (src->n + 1) * sizeof(*src->s));
	struct img_space *sp = &src->s[src->n];
	memset(sp, 0, sizeof(*sp));
	sp->space = (uint32_t)lp->pid;
	sp->payload = payload;
	if (payload) {
		sp->map_len = DM_IMG_DATA_OFF + payload;
		void *m = mmap(NULL, sp->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			close(lp->uffd);
			return dm_fail(neg_errno(), "%s: mmap: %m", name);
		}
		sp->map = m;
	}
	sp->runs = xcalloc(lp->img->n_pagemap + 1, sizeof(*sp->runs));
	for (size_t i = 0; i < lp->img->n_pagemap; i++) {
		const Dm__PagemapEntry *e = lp->img->pagemap[i];
		if (e->has_lazy && e->lazy && !(e->has_remote && e->remote))
			sp->runs[sp->n++] = (struct img_run){ e->vaddr, e->nr_pages, e->offset };
	}
	src->n++;
	return mem_lazy_add(src->lazy, lp);
}

static void img_src_free(struct img_src *src)
{
	for (size_t i = 0; i < src->n; i++) {
		if (src->s[i].map)
			munmap((void *)src->s[i].map, src->s[i].map_len);
		free(src->s[i].runs);
	}
	free(src->s);
	image_close(src->img);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: dmigrate restore --images DIR [--pidfile FILE] [--stats FILE] [--lazy]\n"
		     "                        [--runc-bundle DIR] [--name ID] [--runc-root DIR]\n"
		     "  Restores the process tree of the image directory DIR and lets it run.\n"
		     "  An image of a runc container is restored under runc: the container ID (or\n"
		     "  --name) is made from its recorded bundle (or --runc-bundle) under runc's\n"
		     "  state root (--runc-root, default " RUNC_DEFAULT_ROOT "), and the tree runs in it.\n"
		     "  --pidfile FILE receives the pid of the restored root (opened first: a path\n"
		     "  it cannot write fails before anything is restored); --stats FILE a JSON\n"
		     "  object with the restore time and its phases.  --lazy: the pages marked\n"
		     "  lazy (checkpoint --lazy) are served on demand after the resume and pushed\n"
		     "  in the background; the command returns once all of them are in.\n");
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images", required_argument, NULL, 'D' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "stats", required_argument, NULL, 's' },
		{ "lazy", no_argument, NULL, 'L' },
		{ "runc-bundle", required_argument, NULL, 'B' },
		{ "name", required_argument, NULL, 'N' },
		{ "runc-root", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct restore_opts o = { .root_fd = -1 };
	struct runc_restore_opts ro = { 0 };
	struct runc_started rs = { .sock = -1, .root_fd = -1 };
	Dm__Inventory *inv = NULL;
	struct restore_result res = { .root_pidfd = -1 };
	const char *pidfile = NULL, *stats = NULL;
	struct img_src src = { 0 };
	bool lazy = false;
	_cleanup_close_ int sigfd = -1, pidfd_file = -1;
	double lazy_ms = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "D:P:s:LB:N:T:h", opts, NULL)) != -1) {
		switch (c) {
		case 'B':
			ro.bundle = optarg;
			break;
		case 'N':
			ro.name = optarg;
			break;
		case 'T':
			ro.root = optarg;
			break;
		case 'D':
			o.images_dir = optarg;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 's':
			stats = optarg;
			break;
		case 'L':
			lazy = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.images_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (stats && (r = json_check_writable(stats)) < 0) {
		fprintf(stderr, "dmigrate: restore: cannot write the statistics to %s: %s (nothing was "
			"restored)\n", stats, strerror(-r));
		return 1;
	}
	if (pidfile) {
		pidfd_file = open(pidfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (pidfd_file < 0) {
			fprintf(stderr, "dmigrate: restore: cannot write the pid file %s: %s (nothing was "
				"restored)\n", pidfile, strerror(errno));
			return 1;
		}
	}
	/* a container's image: runc makes the container, its init is our stub.
	 * Nothing is made before the image is known good and fits this host. */
	{
		_cleanup_image_ struct dm_image *img = NULL;
		r = image_open(o.images_dir, false, &img);
		if (r >= 0)
			r = image_read_msg(img, IMG_INVENTORY_FILE, IMG_INVENTORY, &dm__inventory__descriptor,
					   (ProtobufCMessage **)&inv);
		if (r >= 0 && inv->container) {
			struct dm_checkpoint *ck = NULL;
			r = image_load(img, &ck);
			if (r >= 0)
				r = restore_check_host(ck, 0, false);
			checkpoint_free(ck);
		}
		if (r < 0) {
			if (inv)
				protobuf_c_message_free_unpacked(&inv->base, NULL);
			fprintf(stderr, "dmigrate: restore failed: %s\n", dm_error_text(r));
			return 1;
		}
	}
	if (!inv->container && (ro.bundle || ro.name || ro.root)) {
		fprintf(stderr, "dmigrate: restore: --runc-bundle, --name and --runc-root are for images of "
			"containers; %s is a process tree's\n", o.images_dir);
		protobuf_c_message_free_unpacked(&inv->base, NULL);
		return 2;
	}
	if (inv->container) {
		ro.images_dir = o.images_dir;
		r = runc_restore_start(inv->container, &ro, &rs);
		protobuf_c_message_free_unpacked(&inv->base, NULL);
		if (r < 0) {
			fprintf(stderr, "dmigrate: restore failed: %s\n", dm_error_text(r));
			return 1;
		}
		o.stub_pid = rs.pid;
		o.stub_sock = rs.sock;
		o.root_fd = rs.root_fd;
		o.netns_locked = rs.net_locked;
	} else {
		protobuf_c_message_free_unpacked(&inv->base, NULL);
	}

	if (lazy) {
		struct mem_lazy_opts lo = { .ops = { .local = img_local, .ctx = &src }, .push_local = true };
		r = image_open(o.images_dir, false, &src.img);
		if (r >= 0)
			r = mem_lazy_new(&lo, &src.lazy);
		if (r < 0) {
			fprintf(stderr, "dmigrate: restore failed: %s\n",
				dm_last_error()[0] ? dm_last_error() : strerror(-r));
			return 1;
		}
		/*
		 * From the resume on, the tree's missing pages come from this
		 * process only: if it ended, its userfaultfds would close, the
		 * lazy areas would be unregistered and every page not yet in would
		 * read as zeros.  So HUP, INT, TERM and PIPE are blocked (the
		 * restored tasks get their own masks from the image) and only
		 * reported while pages are missing.
		 */
		sigset_t ss;
		sigemptyset(&ss);
		sigaddset(&ss, SIGHUP);
		sigaddset(&ss, SIGINT);
		sigaddset(&ss, SIGTERM);
		sigaddset(&ss, SIGPIPE);
		sigprocmask(SIG_BLOCK, &ss, NULL);
		sigfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
		o.lazy = true;
		o.lazy_cb = img_add;
		o.lazy_arg = &src;
		o.lazy_features = LAZY_FEATURES;
	}

	r = restore_tree(&o, &res);
	/* the lock went with the restore's own (restore_opts.netns_locked) */
	if (r >= 0 && res.stats.lock_removed)
		rs.net_locked = false;
	if (o.stub_pid > 0)
		runc_restore_done(&rs, r >= 0);
	if (r < 0) {
		fprintf(stderr, "dmigrate: restore failed: %s\n",
			dm_last_error()[0] ? dm_last_error() : strerror(-r));
		if (lazy) {
			mem_lazy_free(src.lazy);
			img_src_free(&src);
		}
		return 1;
	}
	if (res.root_pidfd >= 0)
		close(res.root_pidfd);
	if (lazy) {
		/*
		 * The tree runs; its faults wait for the handler, started now that it
		 * knows every process (its pusher walks the processes it has at start).
		 * Stay until every lazy page is in.
		 */
		double t0 = clock_ms();
		mig_test_point("restore-lazy-serving"); /* tests: the tree runs, nothing serves it yet */
		r = mem_lazy_start(src.lazy);
		while (r >= 0) {
			struct signalfd_siginfo si;
			r = mem_lazy_wait(src.lazy, 200);
			while (sigfd >= 0 && read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				fprintf(stderr,
					"dmigrate: SIG%s ignored: the restored tree (pid %d) needs the pages only this "
					"command serves (without them it would read zeros); exiting once they are all "
					"in (%" PRIu64 " left)\n",
					sigabbrev_np((int)si.ssi_signo), res.root_pid, mem_lazy_missing(src.lazy));
			if (r != -ETIMEDOUT)
				break;
			if (clock_ms() - t0 > LAZY_TIMEOUT_MS) {
				r = dm_fail(-ETIMEDOUT, "not every lazy page was installed in %d s", LAZY_TIMEOUT_MS / 1000);
				break;
			}
			r = 0;
		}
		lazy_ms = clock_ms() - t0;
		/* pages it never got would read as zeros once the handler is gone:
		 * a tree that cannot be completed must not run on */
		if (r < 0)
			proc_kill_tree(res.root_pid);
		mem_lazy_free(src.lazy);
		img_src_free(&src);
		if (r < 0) {
			fprintf(stderr, "dmigrate: lazy pages: %s (the restored tree, pid %d, was killed)\n",
				dm_last_error()[0] ? dm_last_error() : strerror(-r), res.root_pid);
			return 1;
		}
	}
	if (pidfile) {
		r = cli_pidfile_write(pidfd_file, res.root_pid);
		if (r < 0) {
			fprintf(stderr, "dmigrate: restore: the tree runs (root pid %d), but its pid could "
				"not be written to %s: %s\n", res.root_pid, pidfile, strerror(-r));
			return 1;
		}
	}
	if (stats) {
		json_t *j = restore_stats_json(&res.stats);
		if (lazy)
			json_object_set_new(j, "lazy_done_ms", json_real(lazy_ms));
		r = json_write_file(j, stats);
		json_decref(j);
		if (r < 0) {
			fprintf(stderr, "dmigrate: restore: the tree runs (root pid %d), but its statistics "
				"could not be written to %s: %s\n", res.root_pid, stats, strerror(-r));
			return 1;
		}
	}
	return 0;
}
