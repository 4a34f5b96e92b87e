/* SPDX-License-Identifier: MIT */
/*
 * Running system calls inside a stopped tracee, singly or in batches.
 *
 * A tracee has a small code area ("blob") in its address space:
 *
 *   code + 0   syscall; int3                 one syscall, regs set by us
 *   code + 16  batch loop                    runs N entries from the data area
 *                                            (stops at the first failure unless r13)
 *   data       staging area (args, results)  written/read with one pwrite/pread
 *
 * On the restore side the blob is mapped by the stub itself at a hole of the
 * image's address space; on the dump side it is a parasite mapping injected
 * with a syscall instruction found in the target's vDSO (PTRACE_SYSCALL
 * stops), and removed before the target is released.
 *
 * One round trip (setregs, PTRACE_CONT, wait for SIGTRAP, getregs) costs
 * ~35 us here: batch whenever a sequence of syscalls has no decision between
 * them.  All calls on one tracee must come from the thread that seized it.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "base/util.h"

#define INJ_CODE_SIZE 4096UL
#define INJ_DATA_SIZE (60UL * 1024)
#define INJ_BLOB_SIZE (INJ_CODE_SIZE + INJ_DATA_SIZE)

struct tracee {
	pid_t tid;      /* host tid */
	int memfd;      /* /proc/tid/mem, O_RDWR */
	uint64_t code;  /* remote address of the code page */
	uint64_t data;  /* remote address of the data area */
	pid_t last_clone; /* tid of the last thread/process created by an injected clone */
	pid_t *clones;    /* if set: the tids of the clones, in order, up to clones_max */
	size_t n_clones, clones_max;
	unsigned long n_injected;
};

/* Code bytes for the blob (syscall;int3 at 0, batch loop at 16). */
#define INJ_BLOB_CODE_MAX 128
void inject_blob_code(uint8_t out[INJ_BLOB_CODE_MAX], size_t *ret_len);

int inject_open_mem(struct tracee *t);
void tracee_release(struct tracee *t);

int ptrace_getregs(pid_t tid, struct user_regs_struct *r);
int ptrace_setregs(pid_t tid, const struct user_regs_struct *r);
int ptrace_getxstate(pid_t tid, void *buf, size_t size, size_t *ret_len);
int ptrace_setxstate(pid_t tid, const void *buf, size_t len);
/* Wait for a ptrace stop of tid; returns the status. -ECHILD if it died. */
int ptrace_wait_stop(pid_t tid, int *ret_status);
/* The same, giving up after timeout_ms with -ETIMEDOUT (nothing logged). */
int ptrace_wait_stop_bounded(pid_t tid, int *ret_status, int timeout_ms);
/* The bound on a round of injected work (run of a syscall or a batch):
 * past it the thread is interrupted and the call fails with -ETIMEDOUT. */
#define INJECT_TIMEOUT_MS 30000

/* Remote memory */
int tracee_write(struct tracee *t, uint64_t addr, const void *buf, size_t len);
int tracee_read(struct tracee *t, uint64_t addr, void *buf, size_t len);

/* One syscall through code+0.  Returns the syscall's result (>= 0 or -errno). */
long inject_syscall(struct tracee *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		    uint64_t a4, uint64_t a5, uint64_t a6);
#define inject0(t, nr) inject_syscall(t, nr, 0, 0, 0, 0, 0, 0)
#define inject1(t, nr, a) inject_syscall(t, nr, (uint64_t)(a), 0, 0, 0, 0, 0)
#define inject2(t, nr, a, b) inject_syscall(t, nr, (uint64_t)(a), (uint64_t)(b), 0, 0, 0, 0)
#define inject3(t, nr, a, b, c) \
	inject_syscall(t, nr, (uint64_t)(a), (uint64_t)(b), (uint64_t)(c), 0, 0, 0)
#define inject6(t, nr, a, b, c, d, e, f)                                                    \
	inject_syscall(t, nr, (uint64_t)(a), (uint64_t)(b), (uint64_t)(c), (uint64_t)(d), \
		       (uint64_t)(e), (uint64_t)(f))

/* Without a blob: use a `syscall` instruction at insn (e.g. in the vDSO) and
 * stop at syscall exit (two PTRACE_SYSCALL stops).  Clobbers registers. */
long inject_syscall_at(pid_t tid, uint64_t insn, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		       uint64_t a4, uint64_t a5, uint64_t a6);

/*
 * A batch: entries {nr, a1..a6, result} and a data staging area, written with
 * one pwrite, run by the blob's loop, read back with one pread.  The loop
 * stops at the first failing syscall.
 */
#define INJ_BATCH_MAX 256
struct inj_entry {
	uint64_t nr, a[6], ret;
};
_Static_assert(sizeof(struct inj_entry) == 64, "batch entry is 8 qwords (blob layout)");

struct inj_batch {
	struct tracee *t;
	unsigned n;
	bool all;                    /* every entry runs, whatever the results */
	size_t used;                 /* bytes of staging used */
	struct inj_entry e[INJ_BATCH_MAX];
	const char *what[INJ_BATCH_MAX]; /* for error messages */
	uint8_t staging[INJ_DATA_SIZE - INJ_BATCH_MAX * sizeof(struct inj_entry)];
};

void batch_init(struct inj_batch *b, struct tracee *t);
/* Room for n more entries and bytes more staged bytes (each put is 16-byte aligned)? */
bool batch_fits(const struct inj_batch *b, unsigned n, size_t bytes);
/* Copy len bytes into the staging area; returns their remote address (0 if full). */
uint64_t batch_put(struct inj_batch *b, const void *src, size_t len);
/* Reserve zeroed remote bytes for an output; returns their remote address (0 if full). */
uint64_t batch_reserve(struct inj_batch *b, size_t len);
/* Local view of a remote staging address after batch_run(). */
void *batch_local(struct inj_batch *b, uint64_t remote);
int batch_add(struct inj_batch *b, const char *what, long nr, uint64_t a1, uint64_t a2,
	      uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6);
/* Run the batch.  0 if all succeeded; else the first failure's -errno, with
 * *ret_failed (may be NULL) set to its index and dm_error() naming it. */
int batch_run(struct inj_batch *b, unsigned *ret_failed);
/*
 * One batch split between threads of one process (they share its memory,
 * and b->t is one of them): part k, entries [first, first + n), runs on
 * thread t.  The staging and the entries are written once, every part is
 * started, then all are waited for and the results read once: the threads
 * run their parts at once, and a process of N threads costs one wait of all
 * instead of N round trips.  Each part runs to its end or its first
 * failure.  0, or the first failing part's error, *ret_part its index and
 * *ret_failed the entry (either may be NULL), dm_error() naming the syscall.
 */
struct inj_part {
	struct tracee *t;
	unsigned first, n;
};
int batch_run_parts(struct inj_batch *b, const struct inj_part *parts, unsigned n_parts,
		    unsigned *ret_part, unsigned *ret_failed);
/* Run every entry whatever the results (a probe that may fail); 0 if the
 * batch ran: each entry's result is batch_result(). */
int batch_run_all(struct inj_batch *b);

static inline long batch_result(const struct inj_batch *b, unsigned i) { return (long)b->e[i].ret; }

/*
 * Syscalls in a live process (live.c): begin seizes and stops thread tid and
 * finds a syscall instruction in its vDSO; call runs one (registers are
 * clobbered); end puts the registers back (an interrupted syscall restarts)
 * and detaches.  end is a no-op after a failed begin.
 */
struct inject_live {
	pid_t tid;
	bool seized;
	uint64_t insn;
	struct user_regs_struct saved;
};
int inject_find_vdso_syscall(pid_t pid, uint64_t *ret);
int inject_live_begin(pid_t tid, struct inject_live *l);
long inject_live_call(struct inject_live *l, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		      uint64_t a5, uint64_t a6);
int inject_live_end(struct inject_live *l);

/* Interrupted-syscall fix-up of saved registers (see arch notes in inject.c). */
void regs_fixup_restart(struct user_regs_struct *r, bool live);
