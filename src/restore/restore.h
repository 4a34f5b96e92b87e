/* SPDX-License-Identifier: MIT */
/*
 * The restore engine: rebuild a process tree from an image directory and let
 * it run (docs/design.md, "Engine: restore").
 *
 *   struct restore_opts o = { .images_dir = "/tmp/img", .root_fd = -1 };
 *   struct restore_result res;
 *   int r = restore_tree(&o, &res);    // -errno, dm_last_error() says why
 *
 * restore_tree() returns once every process of the tree runs, detached from
 * the restorer.  On failure it has killed (and reaped, where it can) every
 * process it created: nothing half-restored stays behind.  All ptrace work
 * happens on the calling thread.
 *
 * Lazy memory (post-copy, local lazy restore): with o.lazy set, pages marked
 * lazy in the image that lie in private anonymous VMAs (anon, [heap],
 * [stack]: what userfaultfd MISSING takes) are not written.  Instead, once a
 * process's own fds are in place, a userfaultfd is created inside it, every
 * such VMA holding lazy pages is registered whole (UFFDIO_REGISTER_MODE_MISSING),
 * the uffd is taken over with pidfd_getfd and o.lazy_cb gets it (see
 * struct restore_lazy_proc).  Lazy pages elsewhere (COWed pages of private
 * file mappings) are written before the resume, from the image or, when the
 * image does not hold them (PagemapEntry.remote), through o.lazy_fetch.  Pages the kernel itself writes for a task
 * before the task runs (rseq area, robust list head, clear_child_tid word,
 * the stack just below each thread's rsp and the top of an enabled
 * sigaltstack, where signal frames go) are written eagerly anyway: a fault
 * there would block an injected syscall on a uffd nobody serves yet.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/image.h"

/* One registered range: a whole VMA of the restored process. */
struct restore_lazy_area {
	uint64_t start, end;
};

struct restore_lazy_proc {
	pid_t pid;       /* pid in the image (= in the tree's pid namespace) */
	pid_t host_pid;  /* pid in the restorer's pid namespace */
	int uffd;        /* restorer-side userfaultfd: the callee owns it from the call on */
	uint64_t features; /* UFFDIO_API features the kernel granted */
	const struct restore_lazy_area *areas;
	size_t n_areas;
	/*
	 * The image of the process (valid during the call only; copy what you
	 * keep).  Its pagemap says which pages are lazy (to be served from the
	 * page source) and which pages of a registered area never existed
	 * (serve them with UFFDIO_ZEROPAGE).  Pages already written eagerly
	 * make UFFDIO_COPY fail with EEXIST, which is harmless.
	 */
	const Dm__Process *img;
};

/*
 * Called once per process that has lazy pages, after its uffd is registered
 * and before any process of the tree resumes.  Must not block: start serving
 * (another thread, an event loop) and return.  The uffd must stay open until
 * every registered page has been served or pushed: closing it unregisters the
 * areas and unserved pages then read as zeros.  A negative return aborts the
 * restore.
 */
typedef int (*restore_lazy_cb)(void *arg, const struct restore_lazy_proc *lp);

/*
 * Read one lazy page now, synchronously (4096 bytes to page).  Used for the
 * few lazy pages that must be present before the tree resumes (see above);
 * a dump normally keeps those pages in the image, so this is rarely called.
 * NULL: such a page is an error.
 */
typedef int (*restore_lazy_fetch)(void *arg, pid_t pid, uint64_t addr, void *page);

/*
 * Optional, asked before lazy_fetch: where such pages of pid lie in our own
 * memory already (a migration's store), as a pointer to the page at addr
 * that stays valid and unchanged until the process's memory is written
 * (before its lazy_cb: a hybrid's install may release them after), and in *run
 * how many (1..max) follow it there contiguously.  NULL: not there (then
 * lazy_fetch).  The restore writes them from there with the image's pages,
 * by the same writers, without a copy in between.
 */
typedef const void *(*restore_lazy_peek)(void *arg, pid_t pid, uint64_t addr, uint32_t max,
					  uint32_t *run);

struct restore_stats;

/*
 * Called once the tree is complete and before any of it runs: every thread
 * is at its final state, stopped and traced by the calling thread.  pids are
 * the host pids of its live processes, the root first; st the stats so far.
 * 0 lets the tree run; a negative return kills it instead (it never ran) and
 * restore_tree() fails with that error.  Migration: wait here for the
 * source's COMMIT, so that the two copies never run at once.
 */
typedef int (*restore_before_resume_cb)(void *arg, const pid_t *pids, size_t n, const struct restore_stats *st);
/*
 * Called once the tree runs (every thread let go), before the restore's own
 * cleanup: what others must learn at once goes here (a container's
 * addresses announced on its new segment).  The restore's cleanup after it
 * may take tens of ms (the close of its nftables socket waits for the
 * table's destruction: an RCU grace period).
 */
typedef void (*restore_after_resume_cb)(void *arg, const struct restore_stats *st);

struct restore_opts {
	const char *images_dir;
	/* its inventory, read already by the caller (a migration's destination,
	 * for the container in it): the restore takes it (freed with the rest
	 * of the image) instead of reading it again */
	Dm__Inventory *inventory;
	int root_fd;            /* the tree's root directory; -1: the host's / */
	bool lazy;              /* do not write lazy pages, hand them to lazy_cb */
	restore_lazy_cb lazy_cb;
	restore_lazy_fetch lazy_fetch;
	restore_lazy_peek lazy_peek; /* NULL: every such page is fetched */
	void *lazy_arg;         /* first argument of lazy_cb, lazy_fetch and lazy_peek */
	uint64_t lazy_features; /* UFFD_FEATURE_* asked for in UFFDIO_API (0: none) */
	restore_before_resume_cb before_resume; /* NULL: none */
	void *before_resume_arg;
	restore_after_resume_cb after_resume;   /* NULL: none */
	void *after_resume_arg;
	/* paths of the image under path_from (a directory: "/a/b" and below) are
	 * opened under path_to instead (a tree's rootfs copied elsewhere) */
	const char *path_from, *path_to;
	/*
	 * The root stub runs already, made by a container runtime as the init
	 * of the container (src/container/, docs/containers.md): its host pid
	 * and our end of its transport (SOCK_SEQPACKET: the stub sees our end close; it holds the other at
	 * EXT_STUB_SOCK).  It is sent struct ext_stub_args and then does what
	 * our own cloned stub does.  0: we clone the stub.
	 */
	pid_t stub_pid;
	int stub_sock;
	/*
	 * Optional (0 or less: none): a cgroup v2
	 * directory the tree is born in: our own stub is cloned into it
	 * (clone3 CLONE_INTO_CGROUP) and every process of the tree is its
	 * descendant.  Moving the tree there later writes cgroup.procs, which
	 * waits for an RCU grace period (cgroup_threadgroup_rwsem's write
	 * side): 8-12 ms of downtime on some machines.  Refused by the kernel
	 * (before 5.7, a v1 directory): the stub is cloned as without, and
	 * restore_stats.cgroup_born says which.
	 */
	int cgroup_fd;
	/*
	 * The tree's network namespace (stub_pid's) is locked already as a
	 * whole, under NETLOCK_NETNS_NAME, by the caller (runc.h: before its
	 * interfaces were made): the restore of the sockets keeps that lock
	 * instead of installing it again, and removes it as its own after the
	 * resume.
	 */
	bool netns_locked;
	/*
	 * Optional: set (by before_resume, say) when that lock was opened
	 * already (its chains deleted: a Docker container whose address
	 * changes, docker_dst_unlock_early()): the restore does not open it
	 * again after the resume.  A transaction that fails (the chains are
	 * gone) aborts, and nf_tables' abort waits an RCU grace period: 13 ms
	 * here between the commit and the tree's run.
	 */
	const bool *lock_opened;
	/*
	 * Optional: what the caller makes beside the restore, in a thread of
	 * its own (a container's put-back, runc.h), waited for where the
	 * restore needs it: beside_wait(beside_arg, RST_BESIDE_MM) once the
	 * tree's processes exist, before their address spaces and files;
	 * RST_BESIDE_ALL before their credentials and scheduling.  < 0 fails
	 * the restore (its message set).
	 */
	int (*beside_wait)(void *arg, int stage);
	void *beside_arg;
	/*
	 * The new container's stdin, stdout, stderr as its runtime gave them
	 * to the stub (taken before the stub closes them; -1: none): a pipe
	 * the image marks as the container's stdio N (PipeData.container_stdio)
	 * is this fd instead of a new pipe.  Only with stub_pid and stdio_given.
	 */
	bool stdio_given;
	int stdio_fds[3];
	/* The runtime gave the tree's network namespace its own addresses (a
	 * Docker container on a default bridge): a TCP connection whose address
	 * is not there ends (the tree reads EOF) instead of failing the restore. */
	bool inet_close_foreign;
	/*
	 * TCP packets to deliver into the tree's network namespace once its
	 * connections are its sockets again (the lock open, repair mode off),
	 * before the tree runs: the packets the source's lock dropped
	 * (net/replay.h records).  The caller owns them and may fill them as
	 * late as before_resume; the restore says how many it delivered.
	 */
	struct restore_packets *packets;
};

struct restore_packets {
	uint8_t *buf;
	size_t len;
	size_t delivered;
};

enum { RST_BESIDE_MM = 1, RST_BESIDE_ALL = 2 };

struct restore_stats {
	double restore_ms;      /* restore_tree() from call to return */
	double load_ms;         /* image_load() */
	double stub_ms;         /* the root stub: clone, blob, seize */
	double tree_ms;         /* the other processes, sessions, groups, zombies */
	double mem_ms;          /* address spaces and page contents */
	double mem_map_ms;      /* of which the mappings (maps read, the mmap batch) */
	double mem_fetch_ms;    /* of which the pages fetched from the page source (lazy_fetch) */
	double mem_write_ms;    /* of which the pages written into the processes */
	double fds_ms;          /* files, cwd, root */
	double threads_ms;      /* threads, their state, signals, timers, identity */
	double lazy_ms;         /* lazy registration (userfaultfd) */
	double creds_ms;        /* rlimits, creds and seccomp */
	double resume_ms;       /* final registers, blob removal, detach */
	double netlock_ms;      /* of fds_ms: the network lock taken (rst_inet_lock) */
	double inet_ms;         /* of fds_ms: TCP/UDP sockets made (TCP repair) */
	double unlock_ms;       /* of resume_ms: the lock opened, connections out of repair */
	double settle_ms;       /* after the tree runs: the lock's counters read, the lock removed */
	uint64_t detached_ns;   /* clock_ns() when the tree was let go (it runs from then) */
	double beside_wait_ms;  /* waiting for restore_opts.beside_wait */
	uint64_t processes;
	uint64_t threads;
	uint64_t fds;
	uint64_t vmas;
	uint64_t pages_written;
	uint64_t pages_lazy;
	uint64_t pages_fetched; /* of pages_written: asked of the page source (lazy_fetch) */
	uint64_t injected;      /* injected syscalls (batched ones count one each) */
	uint64_t round_trips;   /* ptrace round trips used to run them */
	/* TCP packets the restore's network lock dropped: from the peers, and
	 * from the tree's sockets (none: the lock goes before the tree runs) */
	uint64_t lock_tcp_dropped_in;
	uint64_t lock_tcp_dropped_out;
	bool lock_counted;      /* the two above were read */
	unsigned tcp_reset;     /* connections their peers reset before the tree ran (rst_inet_resume) */
	bool lock_removed;      /* the restore removed its network lock after the resume */
	bool lock_taken;        /* it holds its namespace's lock (opens it at the resume, then removes it) */
	bool cgroup_born;       /* the tree was born in restore_opts.cgroup_fd's cgroup */
	bool unlock_prepared;   /* ... opened with its prepared messages (netlock_opener), not a script */
};

struct restore_result {
	pid_t root_pid;         /* host pid of the root */
	int root_pidfd;         /* pidfd of the root (caller closes it) */
	struct restore_stats stats;
};

int restore_tree(const struct restore_opts *o, struct restore_result *ret);

/*
 * The madvise() advice behind each Vma.madv bit (DM_MADV_*, all but LOCKED,
 * which is mlock2): `on` sets it, `off` clears it (-1: no advice does).
 * The restore applies `on`; a later fix-up of a running process both.
 */
struct restore_madv {
	uint32_t bit;
	int on, off;
	const char *what;
};
extern const struct restore_madv restore_madv_table[];
extern const size_t restore_madv_count;

/* Stats as a JSON object (jansson json_t *, returned as void * to keep this header light). */
void *restore_stats_json(const struct restore_stats *st);

/*
 * What this host offers a restored tree (hostcheck.c).  The checks return 0
 * or -errno with a message that names what is missing (-EOPNOTSUPP for CPU
 * and kernel features, -ENOMEM, -ENOSPC).  restore_tree() runs
 * restore_check_host() before it creates anything; dmigrated runs the parts
 * it can at START, before the source freezes.
 */
struct dm_checkpoint;
uint64_t host_xcr0(void); /* the xsave components enabled here; 0 without xsave */
const char *xfeature_names(uint64_t mask, char *buf, size_t len);
/* cpuid flags of instruction sets (leaf 1 ECX, leaf 7 EBX, ECX), only the ones user code picks */
#define HOST_CPU_WORDS 3
void host_cpu_flags(uint32_t w[HOST_CPU_WORDS]);
/* What a tree's CPU may use (xsave components, instruction sets: whose
 * they are, for the message) and the kernel features the restore uses:
 * clone3, userfaultfd with these features (0: none) */
int host_check_tree(uint64_t xfeatures, const uint32_t cpu[HOST_CPU_WORDS], uint64_t uffd_features,
		    const char *whose);
int host_check_memory(uint64_t need_bytes, const char *what);
int host_check_disk(const char *dir, uint64_t need_bytes);
/* XSTATE_BV of every dumped thread, or'ed */
uint64_t image_xfeatures_used(const struct dm_checkpoint *ck);
/* The image's CPU needs (recorded XCR0 of its host, xstate in use), the
 * kernel features, and (unless lazy) memory for its pages. */
int restore_check_host(const struct dm_checkpoint *ck, uint64_t uffd_features, bool lazy);
