/* SPDX-License-Identifier: MIT */
/*
 * The resource-aware task pool (paper, mechanism 1).
 *
 * A dump is a graph of tasks: the main task adds one control task per
 * process, each control task adds that process's independent sub-tasks, and
 * any task may add more while it runs.  pool_run() runs them all and returns
 * when the task list is empty and no running task is left to add more.
 *
 * Workers.  The thread that calls pool_run() (the "owner") is worker 0.  The
 * pool starts with that one worker and grows by slow increase: once the
 * newest worker has started and sample_ms has passed, the manager thread asks
 * the CPU and memory sensors whether the host has room; if both say yes, and
 * unpinned tasks are waiting, and workers < max_threads, it starts one more
 * worker and repeats.  When a sensor says no it asks again every sample_ms
 * while work is queued.  The pool never shrinks before the end.  The first
 * window opens at pool_create(), not at pool_run(): the owner is running
 * already, so its load is in that window, and a caller that creates the
 * pool ahead of its work (the dump: before the freeze) has its first
 * worker as soon as unpinned work is queued, if the host had room
 * meanwhile.
 * fixed_threads = N skips the sensors and runs exactly N workers from the
 * start (N = 1 is the serial dump: no thread is created at all).
 *
 * Pinned tasks.  ptrace requests are accepted only from the thread that
 * seized the tracee, so a task added with POOL_PINNED is run by the owner
 * thread only.  The owner prefers pinned tasks and runs unpinned ones when no
 * pinned task is queued.  Tasks are taken in FIFO order within each class.
 * A task must not block waiting for a pinned task while it runs on the owner.
 *
 * Errors.  The first negative return of a task is kept and returned by
 * pool_run(), with the message the task set (dm_fail()): pool_run() makes it
 * the caller's dm_last_error(), whichever thread ran the task (each task
 * starts with its thread's message cleared); every task still queued is then dropped (not run; its free_arg
 * is called) and pool_add() drops new tasks with -ECANCELED.  Tasks already
 * running finish; long ones should poll pool_failed() and stop early.
 *
 * Thread safety and locking.  pool_add() and pool_failed() may be called from
 * any task (any thread) while pool_run() runs, and from the owner before it.
 * pool_create(), pool_run(), pool_stats*() and pool_free() belong to the
 * owner.  The pool has one mutex; it is a leaf lock: no task, free_arg or
 * sensor callback is ever called with it held, so callbacks may take their
 * own locks in any order and call pool_add() freely.  Sensors are called from
 * the manager thread only (and from the owner's pool_decide_ahead(), before
 * the manager may call them), one call at a time.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "base/util.h"

struct pool;

typedef int (*pool_fn)(struct pool *p, void *arg);

/* Run the task on the thread that called pool_run() (ptrace users). */
#define POOL_PINNED (1U << 0)

/*
 * Host resource sensors.  Each returns 0 and a fraction in [0, 1] through
 * ret_*, or -errno.  -EAGAIN means "no fresh measurement yet": the pool asks
 * again at the next sample.  Any other error counts as "no room".
 *
 * cpu_idle measures the window since its previous call: pool_create() calls
 * it once, and the manager once as soon as a new worker has started (the
 * result is ignored, the call opens the window), and again sample_ms later
 * (at the earliest), so the new worker's load is part of the answer.  The
 * fraction is relative to the host's online CPUs.
 */
struct pool_sensors {
	int (*cpu_idle)(void *ctx, double *ret_idle);
	int (*mem_avail)(void *ctx, double *ret_avail);
	/* optional: from the next cpu_idle() window on, count this process's
	 * own CPU time as idle (on) or not (off) */
	void (*credit_self)(void *ctx, bool on);
	void *ctx;
};

struct pool_opts {
	unsigned max_threads;       /* 0: number of online CPUs */
	unsigned fixed_threads;     /* > 0: exactly this many workers, no sensors */
	const struct pool_sensors *sensors; /* NULL: the /proc sensors below */
	unsigned sample_ms;         /* 0: POOL_SAMPLE_MS_DEFAULT */
	double cpu_idle_min;        /* <= 0: 0.75 of one CPU, i.e. 0.75 / online CPUs */
	double mem_avail_min;       /* <= 0: POOL_MEM_AVAIL_MIN_DEFAULT */
	/*
	 * The first window (from pool_create() to the first decision) counts
	 * this process's own CPU time as spare: a caller whose work before
	 * pool_run() ends when the run begins (the dump: its walks over the
	 * running tree before the freeze, at nice 19, which kept the window
	 * busy and the frozen dump at one worker).  Later windows do not:
	 * there our time is the pool's own workers'.
	 */
	bool credit_own_first;
	/*
	 * sensors (the caller's) have measured since the caller made them,
	 * ahead of the work: their window is open already and pool_create()
	 * leaves it so; the first decision is taken as soon as unpinned work
	 * is queued, over that whole window.  A pool made right before a short
	 * run (a frozen dump: 2-6 ms) has no window of its own long enough:
	 * /proc/stat moves in 10 ms ticks, every sample said "cannot tell"
	 * and the run ended with one worker.
	 */
	bool window_open;
	bool owner_pinned_only;     /* with fixed_threads >= 2: the owner runs pinned
				     * tasks only, the others run on the workers
				     * (tests of what crosses threads) */
};

/* /proc/stat counts in USER_HZ ticks (10 ms): a shorter window says nothing. */
#define POOL_SAMPLE_MS_DEFAULT 10
#define POOL_MEM_AVAIL_MIN_DEFAULT 0.10

/* opts may be NULL (all defaults). */
int pool_create(const struct pool_opts *opts, struct pool **ret_pool);
void pool_free(struct pool *p);
static inline void pool_freep(struct pool **p) { pool_free(*p); }
#define _cleanup_pool_ _cleanup_(pool_freep)

/*
 * Queue fn(p, arg).  name is for debug logs and must outlive the task (use a
 * literal).  pool_add_full() hands arg over: free_arg(arg) is called exactly
 * once, after fn returns or when the task is dropped, even when pool_add_full()
 * fails.  Returns 0, -ECANCELED after a task failed, -ESHUTDOWN after
 * pool_run() returned, -EINVAL on bad flags.
 */
int pool_add_full(struct pool *p, pool_fn fn, void *arg, void (*free_arg)(void *arg),
		  unsigned flags, const char *name);
static inline int pool_add(struct pool *p, pool_fn fn, void *arg, unsigned flags, const char *name)
{
	return pool_add_full(p, fn, arg, NULL, flags, name);
}

/*
 * Owner, before pool_run(): take the pool's first decision now, on the
 * caller's thread (the sensors read over the window opened so far), instead
 * of when the first unpinned task is queued.  The dump calls it just before
 * the freeze: then its second worker is let in as the frozen dump queues its
 * first unpinned task, not after the manager read /proc (0.2-0.5 ms into the
 * freeze).  A "no" is asked again a sample period after it, as always.  No
 * effect on a fixed pool, a pool of one, or one already running.
 */
void pool_decide_ahead(struct pool *p);

/* Run until every task has run (or an error stopped the rest); once per pool. */
int pool_run(struct pool *p);

/* True once a task has failed: long tasks poll this to stop early.  Lock-free. */
bool pool_failed(const struct pool *p);

/* Statistics, valid after pool_run() returned and until pool_free(). */
struct pool_timeline_point {
	double ms;        /* since pool_run() started */
	unsigned workers; /* workers alive from then on */
};

struct pool_worker_stats {
	uint64_t tasks;   /* tasks this worker ran */
	double busy_ms;   /* time spent inside tasks */
};

struct pool_stats {
	unsigned threads_max;
	unsigned n_timeline;
	const struct pool_timeline_point *timeline;
	unsigned n_workers;                       /* == threads_max; [0] is the owner */
	const struct pool_worker_stats *workers;
	uint64_t tasks_run, tasks_skipped;
	double wall_ms;                           /* pool_run() start to end */
};

void pool_get_stats(const struct pool *p, struct pool_stats *ret_stats);

/*
 * Add the stats to a JSON object under "<prefix>_max", "_timeline" ([[ms,
 * workers], ...]), "_tasks" and "_busy_ms" (per worker), "_tasks_skipped" and
 * "_wall_ms".  prefix NULL: "dump_threads".  Returns 0 or -ENOMEM.
 */
int pool_stats_to_json(const struct pool *p, const char *prefix, json_t *obj);

/*
 * The real sensors: CPU from /proc/stat deltas (and the cgroup v2 cpu.max
 * quota with cpu.stat usage when one is set), memory from /proc/meminfo
 * MemAvailable/MemTotal (and memory.max - memory.current of a cgroup v2 limit,
 * whichever is smaller).  pool_create() makes its own when opts->sensors is
 * NULL; these are for callers (and tests) that want them directly.
 */
int pool_proc_sensors_new(struct pool_sensors **ret_sensors);
void pool_proc_sensors_free(struct pool_sensors *s);
