// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Several threads, each with its own counter, its own TLS (__thread)
 * values and stack contents. They run across the checkpoint; after
 * restore each must keep counting (the counters move again), and its tid,
 * TLS and stack must be intact.  threads_many.c is this program with more
 * threads than the restore makes in one batch.
 */
#include "zdtm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef NR_THREADS
#define NR_THREADS 4
#endif

static __thread uint64_t tls_value;
static __thread uint64_t tls_buf[64];

struct slot {
	int idx;
	pthread_t th;
	pthread_t self;		/* what pthread_self() said inside */
	pid_t tid;		/* gettid() at its start */
	atomic_ulong count;
	atomic_int quit;
	char err[256];
};

static struct slot slots[NR_THREADS];

static void *worker(void *arg)
{
	struct slot *s = arg;
	uint64_t stack_buf[128];
	uint64_t seed = test_mix64(0x5eed0000ULL + (uint64_t)s->idx);
	unsigned long local = 0;

	tls_value = seed;
	test_fill(tls_buf, sizeof(tls_buf), seed + 1);
	test_fill(stack_buf, sizeof(stack_buf), seed + 2);
	s->self = pthread_self();
	s->tid = (pid_t)syscall(SYS_gettid);

	while (!atomic_load(&s->quit)) {
		pid_t now = (pid_t)syscall(SYS_gettid);
		if (now != s->tid) {
			snprintf(s->err, sizeof(s->err), "thread %d: tid %d, was %d", s->idx, now, s->tid);
			break;
		}
		if (tls_value != seed) {
			snprintf(s->err, sizeof(s->err), "thread %d: TLS value %#llx, want %#llx", s->idx,
				 (unsigned long long)tls_value, (unsigned long long)seed);
			break;
		}
		if (test_check(tls_buf, sizeof(tls_buf), seed + 1) != (size_t)-1) {
			snprintf(s->err, sizeof(s->err), "thread %d: TLS buffer corrupted", s->idx);
			break;
		}
		if (test_check(stack_buf, sizeof(stack_buf), seed + 2) != (size_t)-1) {
			snprintf(s->err, sizeof(s->err), "thread %d: stack buffer corrupted", s->idx);
			break;
		}
		if (local != atomic_load(&s->count)) {
			snprintf(s->err, sizeof(s->err), "thread %d: counter %lu, local copy %lu", s->idx,
				 atomic_load(&s->count), local);
			break;
		}
		local++;
		atomic_store(&s->count, local);
		test_sleep_ms(1);
	}
	return NULL;
}

static bool all_counting(void *arg)
{
	unsigned long *base = arg;

	for (int i = 0; i < NR_THREADS; i++)
		if (atomic_load(&slots[i].count) <= base[i])
			return false;
	return true;
}

static int nr_threads(void)
{
	char buf[64];

	if (test_status_field("/proc/self/status", "Threads", buf, sizeof(buf)))
		fail("no Threads: in /proc/self/status");
	return atoi(buf);
}

int main(int argc, char **argv)
{
	unsigned long base[NR_THREADS] = { 0 };

	test_init(argc, argv);
	tls_value = 0x1234;
	for (int i = 0; i < NR_THREADS; i++) {
		slots[i].idx = i;
		if (pthread_create(&slots[i].th, NULL, worker, &slots[i]))
			fail("pthread_create");
	}
	if (!test_poll(all_counting, base, 10000))
		fail("threads did not start counting");
	if (nr_threads() != NR_THREADS + 1)
		fail("before: %d threads", nr_threads());

	test_ready();
	test_wait_check();

	if (nr_threads() != NR_THREADS + 1)
		fail("%d threads after restore, want %d", nr_threads(), NR_THREADS + 1);
	if (tls_value != 0x1234)
		fail("main thread TLS value %#llx", (unsigned long long)tls_value);
	for (int i = 0; i < NR_THREADS; i++)
		base[i] = atomic_load(&slots[i].count);
	if (!test_poll(all_counting, base, 10000)) {
		for (int i = 0; i < NR_THREADS; i++)
			if (slots[i].err[0])
				fail("%s", slots[i].err);
		fail("some thread stopped counting after restore");
	}
	for (int i = 0; i < NR_THREADS; i++)
		atomic_store(&slots[i].quit, 1);
	for (int i = 0; i < NR_THREADS; i++) {
		if (pthread_join(slots[i].th, NULL))
			fail("pthread_join(%d)", i);
		if (slots[i].err[0])
			fail("%s", slots[i].err);
		if (!pthread_equal(slots[i].th, slots[i].self))
			fail("thread %d: pthread_self differs from pthread_create's", i);
	}
	pass();
}
