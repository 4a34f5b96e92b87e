/* SPDX-License-Identifier: MIT */
/*
 * Internals of the restore engine, shared by its files (not a public API).
 *
 *   restore.c   the flow: load, phases in order, failure cleanup, detach
 *   stub.c      the root stub: clone3 (set_tid or new pid ns), blob, transport, seize
 *   tree.c      the other processes (injected clone3), sessions, groups, zombies
 *   mm.c        address space: stub VMAs out, vDSO moved, image VMAs in, PR_SET_MM_MAP
 *   pages.c     private page contents, shared memory objects
 *   files.c     the file engine: descriptions opened here, installed over the transport
 *   files-*.c   one file type each (open() runs in the restorer)
 *   threads.c   threads and per-thread state, final registers
 *   signals.c   sigactions, timers, pending signals
 *   creds.c     rlimits and identity, creds, seccomp
 *   lazy.c      userfaultfd registration for lazy pages
 *   rbatch.c    batches that flush themselves when full
 *
 * Every process is stopped under our ptrace from its creation to the final
 * detach; every injected syscall runs on the thread that seized it (the
 * caller of restore_tree).
 */
#pragma once

#include <sched.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/util.h"
#include "image/image.h"
#include "inject/inject.h"
#include "restore/restore.h"

#define RST_GUARD (1UL << 20) /* space kept free around the blob (stack guard gap) */

struct rst_files;

struct rst_thread {
	const Dm__Thread *img;
	struct tracee t;        /* t.memfd is the process's (not owned here) */
	bool seized;            /* under our ptrace */
	uint64_t pcount;        /* times switched in (schedstat) before the detach */
};

enum rst_proc_state {
	RST_NONE = 0,           /* not created */
	RST_SEIZED,             /* exists, stopped under our ptrace */
	RST_DETACHED,           /* running (or a zombie) on its own */
};

struct rst_proc {
	const Dm__Process *img;
	struct rst_proc *parent;
	struct rst_proc **children;
	size_t n_children;
	enum rst_proc_state state;
	pid_t host_pid;
	int pidfd;              /* -1 until created */
	bool zombie;            /* PROC_ZOMBIE: exits once its children exist */
	struct rst_thread *threads; /* [0] is the main thread; n_threads >= 1 once created */
	size_t n_threads;
	size_t sid_done;        /* setsid done (tree.c) */
	bool had_zombie_child;  /* drain the SIGCHLD its zombie children sent */
	bool cow_parent;        /* a child inherits pages: memory before it forks (tree.c) */
	bool mm_done;           /* mm_restore() ran */
	bool membarrier_done;   /* registered before its threads (membarrier_restore) */
	uint64_t hostpid_seen;  /* unused */
};

struct rst_ctx {
	const struct restore_opts *o;
	/* the CPU the restorer keeps to (cpu_pin_here), -1: none; a container's
	 * stub, made by runc and not our child, is put on it too (ext_mask:
	 * the mask it had, given back to the tree before it runs) */
	int pin_cpu;
	bool ext_pinned;
	cpu_set_t ext_mask;
	/* the CPUs we had before the pin: the page writers' (pages.c), who
	 * would otherwise share the restorer's one CPU */
	bool have_free_mask;
	cpu_set_t free_mask;
	/* a bare tree's root stub exec'd from the static stub (stub.c,
	 * exec_stub_spawn()), until stub_create_root() takes it: 0 when none */
	pid_t xs_pid;
	int xs_sock, xs_pidfd;
	bool xs_taken;          /* it is the root now (its sock and pidfd too) */
	struct dm_image *img;
	struct dm_checkpoint *ck;
	/* fetch_run()'s buffer, made once with its pages in (pages.c) */
	uint8_t *fetch_buf;
	struct rst_proc *procs; /* in inventory order: parents first */
	size_t nprocs;
	bool own_pidns;
	bool lazy;              /* o->lazy and the image has lazy pages */

	uint64_t blob;          /* the blob's address, the same in every process */
	uint64_t hop;           /* temporary spot for moving [vvar]/[vdso] */
	uint64_t hop_size;
	int tfd;                /* transport socket's fd number inside the tracees */
	int sock;               /* the restorer's end of the transport */
	uint64_t cap_all;       /* our permitted capabilities (what a stub starts with) */
	uint64_t cap_bnd;       /* our bounding set */
	uint64_t bnd_early;     /* of it, dropped in the root before the tree is made (creds_early_add) */

	struct rst_proc **helpers; /* stand-ins for gone session leaders (tree.c) */
	size_t n_helpers;

	struct rst_files *files;
	struct rst_shm {
		uint64_t id;
		int fd;
	} *shm;                 /* shared memory objects, one fd each (pages.c) */
	size_t n_shm;
	struct restore_stats st;
	uint64_t round_trips;
};

/* rbatch.c: a batch on one tracee that runs itself whenever it is full. */
struct rbatch {
	struct inj_batch b;
	struct rst_ctx *c;
	unsigned tx_pending;    /* datagrams sent whose recvmsg has not run yet */
	bool hold;              /* never run when full: rb_room() fails with -E2BIG (rb_run_threads) */
};
void rb_init(struct rbatch *rb, struct rst_ctx *c, struct tracee *t);
/* Make room for n entries and bytes of staging (runs the batch if needed). */
int rb_room(struct rbatch *rb, unsigned n, size_t bytes);
/* Stage bytes (after rb_room) */
uint64_t rb_put(struct rbatch *rb, const void *src, size_t len);
int rb_add(struct rbatch *rb, const char *what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
	   uint64_t a4, uint64_t a5, uint64_t a6);
/* rb_room(1, len) + rb_put: the staged copy of src (0 on error, dm_error set) */
int rb_stage(struct rbatch *rb, const void *src, size_t len, uint64_t *ret_remote);
int rb_run(struct rbatch *rb);
/*
 * The threads [from, to) of p, each with the entries build(c, p, i, rb, arg)
 * adds for thread i, in one batch split between them (batch_run_parts):
 * they run their parts at once, one wait of all instead of a round trip
 * each.  build() only adds entries (rb_add, rb_stage): when the batch is
 * full the thread's part is taken back, the parts before it run, and it is
 * built again in an empty batch; a part larger than a batch runs alone, in
 * pieces.  0, or the first failure (every started part waited for) with
 * *ret_failed its thread.
 */
typedef int (*rb_build_fn)(struct rst_ctx *c, struct rst_proc *p, size_t i, struct rbatch *rb,
			   void *arg);
int rb_run_threads(struct rst_ctx *c, struct rst_proc *p, size_t from, size_t to, rb_build_fn build,
		   void *arg, size_t *ret_failed);
/* One syscall (single round trip) through the blob; returns its result. */
long rst_inject(struct rst_ctx *c, struct tracee *t, long nr, uint64_t a1, uint64_t a2,
		uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6);

/* Give a tracee a sane state for injection (rsp inside the blob). */
int rst_tracee_init(struct rst_ctx *c, struct tracee *t, pid_t tid, int memfd);

static inline struct tracee *rst_main(struct rst_proc *p) { return &p->threads[0].t; }
static inline bool rst_alive(const struct rst_proc *p) { return !p->zombie; }

/* stub.c */
int stub_pick_hole(struct rst_ctx *c);
/* The exec'd root stub, if the restore failed before it took it: killed, reaped. */
void stub_drop_unused(struct rst_ctx *c);
int stub_create_root(struct rst_ctx *c, struct rst_proc *root);
/* p->threads for every thread of the image, [0] in use (memfds -1) */
void rst_alloc_threads(struct rst_proc *p);
/* Wait for the first stop of a new auto-attached task and prepare its tracee. */
int stub_adopt(struct rst_ctx *c, struct rst_proc *p, pid_t host_tid, struct rst_thread *th);

/* tree.c */
int tree_build(struct rst_ctx *c);
int tree_create(struct rst_ctx *c);
int tree_finish_zombies(struct rst_ctx *c);

/* mm.c, pages.c */
int mm_clean_stub(struct rst_ctx *c, struct rst_proc *p);
/* creds.c: the bounding-set caps no thread of the tree keeps, dropped in
 * the root's batch rb before it makes a process or thread (they inherit
 * its set: each thread's credentials then drop only the rest) */
int creds_early_add(struct rst_ctx *c, struct rbatch *rb);
int mm_restore(struct rst_ctx *c, struct rst_proc *p);
/* How many fds the mappings of p take at once (their files, shared memory, the exe). */
size_t mm_map_fds(const Dm__Process *p);
int pages_write(struct rst_ctx *c, struct rst_proc *p);
void pages_fini(struct rst_ctx *c); /* the fetch buffer (ctx_free) */
int mm_seal(struct rst_ctx *c, struct rst_proc *p);
/* A parent whose children inherit pages: its DONTFORK/WIPEONFORK, once they exist. */
int mm_fork_madvise(struct rst_ctx *c, struct rst_proc *p);
/* Does p inherit pages from its parent in [start, end)?  The end of the first such run, or 0. */
uint64_t mm_inherited_in(const Dm__Process *p, uint64_t start, uint64_t end, uint64_t *run_start);
/* A private VMA holding lazy pages: registered on the uffd (lazy restore only). */
bool pages_vma_lazy(struct rst_ctx *c, const Dm__Process *p, const Dm__Vma *v);
/* A page map entry left to the page server (lazy, in a registered VMA). */
bool pages_entry_deferred(struct rst_ctx *c, const Dm__Process *p, const Dm__PagemapEntry *e);
int shmem_get_fd(struct rst_ctx *c, const Dm__Vma *v, int *ret_fd);
/* The shared memory object id (made and filled on first use; vname "/memfd:NAME" or any), our fd. */
int shmem_get(struct rst_ctx *c, uint64_t id, const char *vname, int *ret_fd);
void shmem_fini(struct rst_ctx *c);

/* files.c */
int files_init(struct rst_ctx *c);
void files_fini(struct rst_ctx *c);
int files_restore(struct rst_ctx *c, struct rst_proc *p);
int files_finish(struct rst_ctx *c);
/* F_SETOWN_EX of every description that had a SIGIO owner (after the threads exist). */
int files_set_owners(struct rst_ctx *c);
/* Send fds to the transport and add the matching recvmsg calls to rb: they
 * land at the lowest free numbers of the tracee, in order. */
int files_send(struct rst_ctx *c, struct rbatch *rb, const int *fds, size_t n);
/* clone3(set_tid = [pid]) failed with r: the cause named for a pid in use
 * (EEXIST: what holds it) or at or above kernel.pid_max (EINVAL), else 0 */
int rst_clone_pid_error(pid_t pid, int r);
/* How long a restore waits for a pid that only ending processes hold: the
 * tree just checkpointed in this PID namespace, its killed processes still
 * zombies of a slow reaper (their pid, group and session numbers in use) */
#define RST_PID_FREE_WAIT_MS 2000
/* pid is held only by ending processes (zombies, dying): wait for it, at
 * most RST_PID_FREE_WAIT_MS; 1: free now (clone3 again), 0: not free */
int rst_pid_wait_free(pid_t pid);
/* A session leader takes its controlling terminal (after setsid, before its members exist). */
int files_ctty_early(struct rst_ctx *c, struct rst_proc *p);
int files_ctty_drop(struct rst_ctx *c, struct rst_proc *p);
/* A description of file id for mapping it (accmode O_RDONLY or O_RDWR). */
int files_open_for_map(struct rst_ctx *c, uint32_t file_id, int accmode, int *ret_fd);

/* threads.c */
int threads_create(struct rst_ctx *c, struct rst_proc *p);
int threads_state(struct rst_ctx *c, struct rst_proc *p);
int threads_finalize(struct rst_ctx *c, struct rst_proc *p);

/* signals.c: into the main thread's state batch */
int signals_add(struct rst_ctx *c, struct rst_proc *p, struct rbatch *rb);
int signals_pending_add(struct rst_proc *p, struct rst_thread *th, struct rbatch *rb);

/* threads.c: scheduling attributes of every thread, last before the detach */
int threads_sched(struct rst_ctx *c, struct rst_proc *p);
int threads_affinity(struct rst_ctx *c, struct rst_proc *p); /* the dumped CPU masks, last */

/* creds.c */
int ident_add(struct rst_ctx *c, struct rst_proc *p, struct rbatch *rb);
/*
 * membarrier's registrations, in a batch of their own on the main thread
 * while it is the only user of its mm: with more (its threads made), each
 * registration waits for an RCU grace period (sync_runqueues_membarrier_state).
 * A process with one thread leaves them to ident_add()'s batch.
 */
int membarrier_restore(struct rst_ctx *c, struct rst_proc *p);
int creds_restore(struct rst_ctx *c, struct rst_proc *p);
/* The audit login uid: only the task itself may write it (before the creds). */
int loginuid_restore(struct rst_ctx *c, struct rst_proc *p);

/* lazy.c */
int lazy_register(struct rst_ctx *c, struct rst_proc *p);

/* restore.c */
/* dm_error() "<fmt>: <the error already set>", to add context on the way up. */
int rst_wrap(int err, const char *fmt, ...) _printf_(2, 3);
struct rst_proc *rst_find(struct rst_ctx *c, pid_t pid);
const char *rst_vma_desc(const Dm__Vma *v, char *buf, size_t size);
