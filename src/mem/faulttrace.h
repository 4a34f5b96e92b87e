/* SPDX-License-Identifier: MIT */
/*
 * The fault trace (DMIGRATE_FAULT_TRACE=FILE) of the destination's fault
 * handler (lazy.c): every fault event of the first DMIGRATE_FAULT_TRACE_MS
 * (default 1000) after the tree was let go (fault_trace_origin(), else the
 * first fault), written to FILE as JSON lines with the maps of each restored
 * process, to see what a tree touches right after the resume
 * (bench/faulttrace.py classifies it).  Off (NULL): one pointer test per
 * fault.  Records are added by the uffd thread; their latency, kind and
 * window may be filled by any thread (the trace's own lock).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum trace_kind {
	TR_REMOTE = 'R',  /* asked of the remote side */
	TR_LOCAL = 'L',   /* installed from a local source */
	TR_ZERO = 'Z',    /* not lazy memory: zero page */
	TR_HAVE = 'H',    /* installed meanwhile (arrived while the fault was queued) */
	TR_DUP = 'D',     /* asked already (another thread, or again) */
};

struct fault_trace;

/* The trace the environment asks for, or NULL. */
struct fault_trace *fault_trace_from_env(void);
void fault_trace_free(struct fault_trace *t);
/* When the tree was let go (clock_ns): the window's start. */
void fault_trace_origin(struct fault_trace *t, uint64_t ns);
/* A fault event; its record, or -1 when not traced (past the window, full, written). */
long fault_trace_add(struct fault_trace *t, uint64_t addr, uint32_t space, uint32_t tid, char kind, bool child);
void fault_trace_set_kind(struct fault_trace *t, long rec, char kind);
void fault_trace_set_window(struct fault_trace *t, long rec, uint64_t start, uint32_t n);
/* The time until its page was installed (at least 1 us: 0 is "never seen"). */
void fault_trace_set_latency(struct fault_trace *t, long rec, uint64_t us);
/* With DMIGRATE_FAULT_TRACE_PC=1: the faulting instruction of record rec,
 * whose thread is vtid (in its pid namespace) of process host_pid. */
void fault_trace_add_pc(struct fault_trace *t, long rec, pid_t host_pid, uint32_t vtid);
/* Its window is over and it is not written yet. */
bool fault_trace_due(struct fault_trace *t);
/* A restored process whose maps go with the trace. */
struct fault_trace_proc {
	uint32_t space;
	pid_t host_pid;
};
/* Write it once: the records, then the maps of these processes. */
void fault_trace_write(struct fault_trace *t, const struct fault_trace_proc *procs, size_t n);
