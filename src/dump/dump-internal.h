/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the dump's files.
 *
 * Lock order: dump_ctx.lock (files table, ids, totals) and dump_ctx.copy_lock
 * (the page chunks not taken yet) are leaves; no other lock is taken while
 * holding either.  A dproc is written only by its own tasks:
 * the pinned control task fills threads/sigactions/..., the unpinned tasks
 * fill vmas+pagemap (mm task), fds (fd task); they touch disjoint fields.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/user.h>

#include "dump/dump.h"
#include "image/image.h"
#include "inject/inject.h"
#include "pool/pool.h"
#include "proc/proc.h"

struct dthread {
	pid_t tid;   /* host */
	pid_t vtid;  /* in the tree's pid namespace */
	struct user_regs_struct regs;  /* as seized (before any injection) */
	bool seized;
	bool reaped;  /* dump_detach_all(): its death collected after the kill */
	uint64_t runs;  /* dump_detach_all(): times scheduled before the detach */
	/* its /proc status, read once stopped (dump_seize_tree): ids, creds,
	 * what the later phases take from it (NULL: not read) */
	struct proc_status *st;
};

/* A thread of a container's cgroup seized and stopped before the walk
 * (dump-seize.c): the walk takes it over when it reaches it. */
struct dpre {
	pid_t pid, tid;
	int status;     /* its stop, as waitpid() gave it */
	bool stopped;   /* seized and stopped (else: gone meanwhile) */
	bool taken;     /* the walk took it over */
};

/* a piece of a process's page contents: [vaddr, vaddr + len) at file_off of its page file */
struct dump_chunk {
	uint64_t vaddr, len, file_off;
};

struct dproc {
	pid_t pid;   /* host pid */
	pid_t vpid;  /* pid in the tree's pid namespace (image pid) */
	pid_t ppid;  /* host pid of the parent (0 for the root) */
	bool zombie;
	bool stopped;  /* in a job-control stop when seized */
	int stop_sig;  /* the signal of that stop (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) */
	uint64_t start_time; /* stat: with the pid, its identity */
	struct dthread *threads;
	size_t nthreads;
	struct proc_vma_list vmas;
	Dm__Process *msg;            /* built by the tasks, freed by dump_free */
	int pages_fd;                /* pages-<vpid>.img */
	int mem_fd;                  /* /proc/PID/mem, for the page copies */
	uint64_t pages_bytes;
	bool pages_trim;             /* pages_fd is longer than its pages: cut after the release */
	uint64_t nr_pages;         /* pages with data (known) */
	uint64_t deferred_pages;   /* pages of sparse runs: page map not read */
	bool vmflags_early;        /* VMA flags from the read before the freeze */
	/* its page contents, in chunks (dump-mm.c, under dump_ctx.copy_lock) */
	struct dump_chunk *chunks;
	size_t n_chunks, next_chunk; /* chunks[next_chunk..] are not taken yet */
	unsigned copiers;            /* workers copying one of its chunks now */
	int pidfd;
	uint32_t exe_file_id;       /* set by the fd task, stored at finalize */
	uint32_t securebits;        /* set by the core task */
};

/*
 * Where the frozen window goes.  Each task times its own steps with a lap
 * clock (wall and thread CPU time) and adds them to the phase they belong to;
 * laps never nest, so on one thread the phases add up to at most the time it
 * spent, and summed over the pool's workers to at most frozen_ms x workers.
 */
enum dump_phase {
	DPH_POOL,      /* the pool: creating workers, taking tasks (owner, outside tasks) */
	DPH_PROC,      /* /proc parsing: maps, smaps, status, stat, creds, rlimits */
	DPH_PARASITE,  /* ptrace: registers, xstate, signals, injected syscalls */
	DPH_VMAS,      /* the VMA list, shared memory objects */
	DPH_PAGEMAP,   /* PAGEMAP_SCAN of private memory */
	DPH_COW,       /* pages a child shares with its parent: both page maps (cow_split) */
	DPH_ALLOC,     /* image space: linking the reserved file, sizing it */
	DPH_READ,      /* the tree's memory: /proc/PID/mem (no pin: chunk_copy) */
	DPH_WRITE,     /* page contents into pages-*.img */
	DPH_FDS,       /* fds, cwd, root, exe, the files table */
	DPH_IMAGE,     /* process and table images, lazy split, at the end */
	DPH_N
};

/* the fd types dump-files.c asks (dump_fd_types[]) */
#define DUMP_FD_TYPES 16

struct dump_phase_acc {
	_Atomic uint64_t wall_ns, cpu_ns, n;
};

struct dump_lap {
	uint64_t wall, cpu;
};

struct dump_ctx {
	struct dump_opts opts;
	struct dm_image *img;
	struct dproc **procs;        /* parents before children */
	size_t nprocs;
	bool own_pidns;
	unsigned ns_level;           /* index into NSpid of the tree's namespace */
	pthread_mutex_t lock;        /* guards files, next ids, the totals */
	/* dump_file_path(): a file known by path is looked up and made under
	 * it, so that two workers meeting one file make one entry */
	pthread_mutex_t path_lock;
	Dm__File **files;
	size_t nfiles, files_cap;
	uint32_t next_file_id;
	uint64_t next_ghost_id;
	/* fd identity for sharing detection: which (pid, fd) first held file id
	 * N; pending while its file is being dumped (another fd of the same
	 * description waits for its id on owner_done: dump-files.c) */
	struct fd_owner { pid_t pid; int fd; uint64_t dev, ino; uint32_t id; bool pending; } *owners;
	size_t nowners, owners_cap;
	pthread_cond_t owner_done;
	uint64_t shmem_done[256];    /* shmem objects already saved (inode numbers) */
	size_t nshmem_done;
	/* stats */
	uint64_t t_start, t_frozen, t_collected;
	/* the freeze (t_start .. t_frozen), step by step (dump_stats_json
	 * "freeze_steps"): a container's every thread seized and interrupted
	 * at once (its cgroup listed), until every one has taken its ptrace
	 * stop; the walk of the tree from its root; the checks of the stopped
	 * tree */
	uint64_t fz_all_ns, fz_walk_ns, fz_check_ns, fz_ns_ns;
	struct dpre *pre;            /* a container's threads seized before the walk */
	size_t npre;
	_Atomic uint64_t total_pages;
	_Atomic uint64_t deferred_pages;
	/* copy-on-write inheritance (dump_inherit_finish) */
	_Atomic uint64_t inherit_found;  /* pages children share with their parent (Process.inherited) */
	uint64_t inherit_eager;      /* the parents' pages those are: eager in a lazy image */
	uint64_t inherit_copies;     /* found, then stored as the child's own (over the bound) */
	uint64_t inherit_at_dest;    /* of inherit_eager: at the destination already (page_at_dest) */
	uint64_t eager_at_dest;      /* eager pages that became PagemapEntry.now (any reason) */
	struct prealloc { pid_t pid; int fd; } *prealloc; /* page files reserved before the freeze */
	size_t n_prealloc;
	double prealloc_ms;
	uint64_t prealloc_bytes;     /* reserved for all page files */
	const char *images_fs;       /* the image directory's file system (stats) */
	bool pretouch;               /* the reserved files were written before the freeze */
	bool img_dir_made;           /* the image directory is ours: removed if the freeze fails */
	struct early_vmas *early;    /* early_vmflags: VMAs read before the freeze */
	size_t n_early;
	double early_ms;
	_Atomic unsigned procs_vmflags_early;
	unsigned threads_total;
	size_t vmas_total;
	struct pool *pool;           /* made by dump_freeze(), run by dump_collect() */
	json_t *pool_stats;
	bool released;
	uint64_t t_release, t_released; /* dump_release(): start, the tree runs again (or is dead) */
	struct dump_phase_acc phase[DPH_N];
	/* the fds phase by type (dump-files.c): wall time of each fd's dump, n fds */
	struct dump_phase_acc fd_type[DUMP_FD_TYPES];
	uint64_t inet_prepare_ns;    /* the sockets' lock and repair (dump_inet_prepare) */
	/* the processes with page chunks not taken yet (dump-mm.c); a leaf
	 * lock of its own, beside .lock */
	pthread_mutex_t copy_lock;
	struct dproc **copy_q;
	size_t n_copy_q, copy_q_cap;
	_Atomic uint64_t chunks_shared; /* chunks copied beside another worker on their process */
	/* copy buffers, mapped and faulted in before the freeze */
	uint8_t **bufs;
	size_t nbufs, bufs_free;
	_Atomic uint64_t bufs_late;  /* chunks that had to map a buffer in the freeze */
	struct dump_inet *inet;      /* fd-inet.c: the tree's TCP/UDP sockets, the network lock */
	struct dump_unix *unix_sks;  /* fd-unix.c: the unix sockets seen (under lock) */
};

/* dump.c: phase accounting (lock-free; any thread) */
void dump_lap_start(struct dump_lap *l);
/* Add the time since l to phase ph and restart l. */
void dump_lap(struct dump_ctx *d, enum dump_phase ph, struct dump_lap *l);

/* dump-mm.c: after every mm task, before the processes are written: the
 * totals, and over opts.inherit_max_pages every inherited run back into its
 * child's page map (copies) */
void dump_inherit_finish(struct dump_ctx *d);

/* dump-seize.c */
int dump_seize_tree(struct dump_ctx *d);
int dump_detach_all(struct dump_ctx *d, bool kill_tree);

/* dump-proc.c: the pinned per-process task (ptrace, injection) */
int dump_proc_core(struct dump_ctx *d, struct dproc *p);
int dump_proc_fill_static(struct dump_ctx *d, struct dproc *p);
/* A `syscall` instruction in the process's vDSO (to inject without a blob). */
int dump_syscall_insn(struct dproc *p, uint64_t *ret);

/* dump-mm.c: VMAs, page maps, page contents */
int dump_proc_mm(struct pool *pool, struct dump_ctx *d, struct dproc *p);
/*
 * dump-mm.c, under copy_lock: the process whose next chunk a copy task takes
 * (the chunk in *ret_chunk, the process's copiers counted up: the caller
 * counts it down when the copy is done), or NULL if no chunk is left.
 */
struct dproc *dump_copy_pick(struct dump_ctx *d, struct dump_chunk *ret_chunk);

/* dump-vmflags.c: VMA flags read before the freeze (opts.early_vmflags) */
int dump_vmflags_preread(struct dump_ctx *d);
/* Take p's flags from the early read if its VMAs are the same; false: read smaps. */
bool dump_vmflags_from_early(struct dump_ctx *d, struct dproc *p);
void dump_vmflags_free(struct dump_ctx *d);

/* dump-mm.c: a shared memory object (inode ino, fd open for reading) into shmem-<ino>.img, once */
int dump_shmem_fd(struct dump_ctx *d, int fd, uint64_t ino, const char *what);

/* dump-mm.c: page files reserved before the freeze (RssAnon of each process) */
void dump_prealloc_pages(struct dump_ctx *d);
void dump_prealloc_free(struct dump_ctx *d);
/* dump-mm.c: cut the reserved page files to their pages, after the release
 * (a truncate is a journal transaction on ext4: not in the freeze) */
void dump_trim_pages(struct dump_ctx *d);
/* dump-mm.c: copy buffers for the page chunks, one per possible worker */
void dump_bufs_alloc(struct dump_ctx *d);
void dump_bufs_free(struct dump_ctx *d);

/* dump-files.c: fds, cwd, root, exe, files table (the fd types: fd.h) */
int dump_proc_fds(struct dump_ctx *d, struct dproc *p);
/* the fds phase by type and the sockets' lock and repair, into a --stats object */
void dump_fd_type_stats(const struct dump_ctx *d, json_t *obj);
uint32_t dump_file_path(struct dump_ctx *d, Dm__FileType type, const char *path, bool deleted,
			pid_t pid, const char *link, int *ret_err);
uint32_t dump_add_file(struct dump_ctx *d, Dm__File *f);
int dump_ctty(struct dump_ctx *d);
/* fd-reg.c: the contents of a deleted file (fd open for reading) */
int dump_write_ghost(struct dump_ctx *d, int fd, const struct stat *st, Dm__File *f);
/* fd-inet.c: TCP and UDP sockets.  Before the fds are read (frozen tree):
 * match the tree's sockets with sock_diag, lock and repair its connections. */
/* Before the freeze: a container's network namespace, and its lock's
 * nftables context made there ahead (netlock_ctx_new()). */
int dump_inet_warm(struct dump_ctx *d);
/* Before the freeze (and its lock): the tree's next answer waited for,
 * dump_opts.quiet_wait_ms at most.  Stats: quiet_wait. */
void dump_inet_quiet(struct dump_ctx *d);
/*
 * Before the freeze: a container's own network namespace that has a TCP
 * listener is locked while the tree still runs, and the tree gets up to
 * DUMP_ACCEPT_WAIT_MS to accept the connections queued on its listeners
 * (they cannot be restored; nothing new is queued once locked).  The
 * freeze's dump_inet_prepare() keeps that lock.
 */
#define DUMP_ACCEPT_WAIT_MS 500 /* dump_opts.accept_wait_ms 0 */
int dump_inet_prelock(struct dump_ctx *d);
int dump_inet_prepare(struct dump_ctx *d);
/* Stats: inet_sockets, tcp_connections_locked, net_lock_ms (nft's run in the freeze). */
void dump_inet_stats(const struct dump_ctx *d, json_t *obj);
/* The network lock's name (nft table), or NULL if there is none. */
const char *dump_inet_lock(const struct dump_ctx *d);
/* Leave repair mode and unlock (tree resumed), or keep quiet (tree killed). */
void dump_inet_release(struct dump_ctx *d, bool killed);
/* Once the tree runs or is killed: the lock's nftables context and the
 * capture of what it dropped are closed (each close waits for an RCU grace
 * period, which no frozen window or switch-over must). */
void dump_inet_close(struct dump_ctx *d);
void dump_inet_free(struct dump_ctx *d);
/* Refuse processes that share one fd table (CLONE_FILES). */
int dump_check_fd_tables(struct dump_ctx *d);

/* fd-unix.c: unix sockets */
/* Once every fd is dumped: peers, listeners' pending connections, senders. */
int dump_unix_finish(struct dump_ctx *d);
void dump_unix_free(struct dump_ctx *d);

/* allocation helpers for protobuf-c messages built by hand */
#define PB_NEW(type, init_fn) ({ type *_m = xcalloc(1, sizeof(type)); init_fn(_m); _m; })
