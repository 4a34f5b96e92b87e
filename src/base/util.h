/* SPDX-License-Identifier: MIT */
/*
 * Small helpers used everywhere: cleanup attributes, ownership hand-over,
 * array sizes.  Conventions (see docs/design.md):
 *   - a function that can fail returns int: >= 0 success, -errno failure;
 *   - out-parameters are named ret_* and are written only on success;
 *   - every resource is held by a _cleanup_*_ local and handed over with
 *     TAKE_PTR()/TAKE_FD().
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>
#include <sched.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE_SIZE_4K 4096UL
#define DM_PAGE_SIZE 4096UL
#define PAGE_ALIGNED(x) (((x) & (DM_PAGE_SIZE - 1)) == 0)

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void closedirp(DIR **d) { if (*d) closedir(*d); }

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_closedir_ _cleanup_(closedirp)

#define TAKE_PTR(p) ({ typeof(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

/* -errno of the last failed libc call, never 0 */
static inline int neg_errno(void) { return errno > 0 ? -errno : -EIO; }

#define MIN(a, b) ({ typeof(a) _a = (a); typeof(b) _b = (b); _a < _b ? _a : _b; })
#define MAX(a, b) ({ typeof(a) _a = (a); typeof(b) _b = (b); _a > _b ? _a : _b; })

/* Checked allocation: dmigrate treats OOM in its own bookkeeping as fatal. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
/*
 * len bytes of zeroed anonymous memory of a mapping of its own, its first
 * touch bytes faulted in now (MADV_POPULATE_WRITE): for the buffers of
 * threads whose first use is on a latency path (a fault's reply), where a
 * page fault on fresh memory costs ~12 us on a VM.  Freed by xunmap(p, len).
 */
void *xmap(size_t len, size_t touch);
void xunmap(void *p, size_t len);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

/* Read a whole (small) file, NUL-terminated. At most max bytes (else -EFBIG). */
int read_full_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);
int read_full_fd(int fd, size_t max, char **ret_buf, size_t *ret_len);
/* The same, starting with a buffer of hint bytes (files of known typical size). */
int read_full_fd_hint(int fd, size_t hint, size_t max, char **ret_buf, size_t *ret_len);
/*
 * The same, read by a helper process of its own session at the lowest weight
 * there is: its autogroup at nice 19 (where the host's processes sit in the
 * root cgroup, the scheduler shares a CPU between sessions first) and
 * SCHED_IDLE.  For a read that walks page tables in one system call
 * (/proc/PID/smaps: 15-36 ms of CPU for 1.3 GiB), which no pause can cut:
 * in the caller's group it kept a CPU a tick (4 ms) at a time from the
 * tree's threads, which live in other groups.  The helper shares our memory
 * (CLONE_VM|CLONE_VFORK: the calling thread waits; no exit signal); where it
 * cannot be made, the caller reads the file itself.
 */
int read_full_fd_aside(int fd, size_t hint, size_t max, char **ret_buf, size_t *ret_len);
/* write()/read() loops that handle short counts; return 0 or -errno (-EPIPE on EOF for read). */
int write_all(int fd, const void *buf, size_t len);
int read_exact(int fd, void *buf, size_t len);
int pwrite_all(int fd, const void *buf, size_t len, off_t off);
int pread_exact(int fd, void *buf, size_t len, off_t off);
/* Parse a decimal integer that must fill the whole string. */
int parse_long(const char *s, long *ret);
int parse_ulong(const char *s, unsigned long *ret);
int mkdir_p(const char *path, mode_t mode);
/* Remove a directory tree (used for failed images and temp dirs). */
int rm_rf(const char *path);
/* A switch that is on unless the environment variable says 0. */
bool env_off(const char *name);

/* Are the len bytes at p all zero? */
bool buf_is_zero(const void *p, size_t len);
/*
 * The next run of data in buf[from, n), in lines of `line` bytes (the last
 * may be shorter): lines of zeros before it are skipped, and it ends where
 * `gap` or more bytes of zero lines begin (or at n, without the zero lines
 * there).  Returns its start (n: none left), its end in *ret_end.  A sparse
 * file's writer and a sender of extents keep the rest holes.
 */
size_t buf_next_data(const void *buf, size_t n, size_t from, size_t line, size_t gap, size_t *ret_end);

/*
 * Pin the calling thread to the CPU it is on, its mask until now in *orig
 * (to give back with sched_setaffinity).  Returns that CPU, or -1 when it
 * was not pinned (one CPU allowed anyway, or the kernel refused).  The
 * restore and the dump's parasite use it to keep a chain of ptrace round
 * trips on one CPU: a wake-up across CPUs costs more than the round trip on
 * a VM.
 */
int cpu_pin_here(cpu_set_t *orig);
/*
 * Set the calling thread's nice value (Linux: per thread, by tid); returns
 * the one it had, to give back.  Best effort: a refusal leaves it as it was.
 */
int thread_nice(int nice);
/* The calling thread's nice value (0 where it cannot be read).  A thread
 * niced "in the background" goes some steps above it, not to an absolute
 * value: under `nice` that would be no lower. */
int thread_nice_get(void);
/* This thread at nice with a time slice of slice_ns (sched_setattr's
 * sched_runtime for a normal thread, Linux 6.12 on: under EEVDF a woken
 * thread with a shorter slice than the running one preempts it); -errno
 * where refused (older kernels: the caller may set the nice alone). */
int thread_slice(int nice, uint64_t slice_ns);
/* The nice value of our walks over a running tree's memory (its page tables,
 * for written pages or VMA flags) before the freeze: its threads first.
 * thread_prep_walk_section(): around such a walk, the calling thread at it
 * (enter) and back (leave), pausing where it breathes
 * (thread_background_breathe()). */
#define PREP_WALK_NICE 19
void thread_prep_walk_section(bool enter);
/* The calling thread is in a walk after the commit (thread_walk_section()):
 * a file that walks page tables is read aside (read_full_fd_aside()).  Not
 * before the freeze: on a busy host the helper would get next to nothing,
 * and the freeze waits for it. */
bool thread_walk_aside(void);
/*
 * Around a walk of a frozen copy's page tables once the tree runs on the
 * destination (its VMA flags through smaps, its sparse runs through
 * PAGEMAP_SCAN: 15-36 ms of CPU for 1.3 GiB): the calling thread at SCHED_IDLE
 * (enter), then as it was (leave).  A nice is weighed only against the
 * threads of its own task group (an autogroup: a session, or a cgroup with
 * the cpu controller): the tree's threads and the fault path live in other
 * groups, and a walk at nice 19 kept a CPU a whole tick (4 ms at HZ=250)
 * after each of them woke, on both CPUs at the push's start (ftrace: every
 * hop of a fault waited, 3-4 ms faults).  A waking thread of any group
 * preempts a SCHED_IDLE one at once.  Before the freeze a walk stays at
 * PREP_WALK_NICE: it gates the migration, and SCHED_IDLE on a busy host
 * gets next to nothing.  Where SCHED_IDLE is refused: PREP_WALK_NICE.  Both
 * pause where they breathe (thread_background_breathe()).
 */
void thread_walk_section(bool enter);
/* Both sections nest (up to 4 deep; deeper ones change nothing but stay
 * balanced): a leave gives back what its own enter took, and a walk is read
 * aside only in thread_walk_section()'s own level. */
/*
 * In a thread in the background (thread_background()) or in a walk
 * (thread_walk_section()), at the end of each piece of its work (a frame, a
 * chunk of a walk): when it has run BG_RUN_US without sleeping, it sleeps
 * BG_PAUSE_US (and the timer's slack).  Neither a nice nor SCHED_IDLE holds
 * against another task group: under EEVDF the group that runs keeps its
 * slice, and the kernel (without preemption) looks again at the next tick;
 * ftrace showed a redis woken by its fault's reply wait 3.6 ms for the
 * source's pusher, another process's thread in another session.  A thread
 * that sleeps gives its CPU to whatever waits, whatever its group.
 * DMIGRATE_BG_RUN_US=N: another run, 0: never.
 */
#define BG_RUN_US 500
#define BG_PAUSE_US 20
void thread_background_breathe(void);
/*
 * How much nicer than us the threads that move a post-copy's remaining pages
 * in the background run once the tree runs on the destination (the source's
 * pusher after the quiet window, the destination's receiver of the pushed
 * pages): the tree's requests and their faults come first; the push takes
 * what they leave.  DMIGRATE_PUSH_NICE=N on either side: another step, 0: off.
 */
#define PUSH_NICE_STEP 10
int push_nice_step(void);
/* The calling thread goes PUSH_NICE_STEP nicer than it is (at least to nice
 * PUSH_NICE_STEP, at most 19), once. */
void thread_background(void);
/* In a thread gone to the background: around a section that holds a lock
 * the fault path waits for, its nice from before (enter) and back (leave):
 * preempted there at its background nice, it would hold the faults as long
 * (a priority inversion).  Elsewhere nothing. */
void thread_foreground_section(bool enter);
/* How much nicer than us the helpers of a migration's preparation run (the
 * destination's runc launching the container): in our cgroup, the other
 * migrations' downtime comes first (a nice weighs against siblings in a
 * cgroup only). */
#define PREP_NICE_INC 10
