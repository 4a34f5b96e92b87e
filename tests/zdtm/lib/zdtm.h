/* SPDX-License-Identifier: MIT */
/*
 * zdtm: the tiny library every feature test links.
 *
 * Life of a test (see tests/zdtm/README.md):
 *
 *   test_init(argc, argv);     parse --out FILE [--arg STR], install SIGTERM
 *   ... set the state up ...
 *   test_ready();              FILE.ready <- "READY <pid>\n"   (runner checkpoints now)
 *   test_wait_check();         sleep until SIGTERM              (runner restores, then TERMs)
 *   ... check every piece of state ...
 *   pass();  or  fail("...");  FILE <- "PASS\n" / "FAIL: reason\n", exit
 *
 * The result file is published with link(2) from a temporary name, so the
 * first verdict wins: a child that fails first cannot be overwritten by the
 * root's later PASS.
 */
#ifndef ZDTM_H
#define ZDTM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* --arg value, or NULL. */
extern const char *test_arg;

void test_init(int argc, char **argv);

/* Tell the runner the state is set up. Call once, from the root process. */
void test_ready(void);

/* Block until SIGTERM arrives (any thread may take it). */
void test_wait_check(void);

/* True once SIGTERM has arrived: transition tests loop on !test_stopped(). */
bool test_stopped(void);

/* Verdicts. fail() may be called from any process or thread of the test. */
__attribute__((noreturn)) void pass(void);
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);

/* fail() with ": strerror(errno)" appended. */
#define fail_errno(fmt, ...) fail(fmt ": %m", ##__VA_ARGS__)

/* Log line to stderr (the runner's log file), prefixed with the pid. */
__attribute__((format(printf, 1, 2))) void test_msg(const char *fmt, ...);

/*
 * A scratch path private to this test run: "<dir of --out>/<name>.<base of --out>".
 * Returns a static buffer per call slot (4 slots, round robin).
 */
const char *test_path(const char *name);

/* Clock helpers (CLOCK_MONOTONIC, nanoseconds). */
uint64_t test_now_ns(void);

/*
 * Wait until cond(arg) is true, polling every ms, for at most timeout_ms.
 * Returns true when it became true.
 */
bool test_poll(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* Sleep this many milliseconds (restarted after signals). */
void test_sleep_ms(int ms);

/* Read a whole small file into buf (NUL terminated). Returns length or -errno. */
ssize_t test_read_file(const char *path, char *buf, size_t size);

/* Value of a "Key:\tvalue" line of /proc/self/status (or another status file). */
int test_status_field(const char *path, const char *key, char *buf, size_t size);

/*
 * Children of this process as seen in /proc (host PIDs even in a PID namespace,
 * because /proc is the runner's). Returns the count, fills up to max.
 */
int test_proc_children(pid_t *out, int max);

/* Pss_Anon of one process (host pid, or 0 for this one), in kB, from its
 * smaps_rollup: what a tree's copy-on-write sharing is measured by.  Fails
 * the test when it cannot be read. */
long test_pss_anon_kb(pid_t pid);

/* Deterministic patterns for memory checks. */
static inline uint64_t test_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Fill / check len bytes (multiple of 8) with a pattern made of seed and the offset. */
void test_fill(void *p, size_t len, uint64_t seed);
/* Returns the offset of the first bad byte, or (size_t)-1 when all is well. */
size_t test_check(const void *p, size_t len, uint64_t seed);

/* Write all / read all, retrying on EINTR and short transfers. */
int test_write_all(int fd, const void *buf, size_t len);
int test_read_all(int fd, void *buf, size_t len);

/* A listener (l, its address a/al) still accepts: a new connection to it
 * carries bytes; fail()s if not. */
struct sockaddr;
void test_listener_accepts(int l, const struct sockaddr *a, unsigned al);

/* waitpid() restarted on EINTR. */
pid_t test_waitpid(pid_t pid, int *status, int options);

/*
 * Wait for a child and require a clean exit(0); otherwise fail() naming what.
 * (A child that failed has normally already published its own FAIL line.)
 */
void test_reap_ok(pid_t pid, const char *what);

/*
 * The id of the calling thread in the runner's /proc (host tid), from
 * /proc/thread-self: valid as /proc/self/task/<id> also inside a PID namespace.
 */
pid_t test_proc_tid(void);

/*
 * Readiness barrier across processes: the parent makes the pipe, every
 * descendant that inherits it calls test_barrier_done() once its state is
 * set up, and the parent's test_barrier_wait() returns when all write ends
 * are closed (EOF). Nothing of it is left open at checkpoint time.
 */
void test_barrier_init(int p[2]);
void test_barrier_done(int p[2]);
void test_barrier_wait(int p[2]);

/*
 * Host pid (as in /proc) of our child whose pid in our own namespace is
 * nspid, or -1. Works with or without a PID namespace.
 */
pid_t test_host_pid_of_child(pid_t nspid);

/* The syscall number a task is blocked in (/proc/PID/syscall), -1 if running. */
long test_task_syscall(pid_t host_pid, pid_t host_tid);

/* SIGTERM each child, then test_reap_ok() each. */
void test_stop_children(const pid_t *pids, int n, const char *what);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
