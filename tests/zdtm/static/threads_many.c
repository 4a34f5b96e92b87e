// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * More threads than the restore makes in one batch (32): each keeps its
 * tid, its own stack contents and its counting across the checkpoint, and
 * the process has them all, no more.
 */
#include "zdtm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_THREADS 40

struct slot {
	int idx;
	pthread_t th;
	pid_t tid;		/* gettid() at its start */
	atomic_ulong count;
	atomic_int quit;
	char err[256];
};

static struct slot slots[NR_THREADS];

static void *worker(void *arg)
{
	struct slot *s = arg;
	uint64_t stack_buf[64];
	uint64_t seed = test_mix64(0x7ead0000ULL + (uint64_t)s->idx);

	s->tid = (pid_t)syscall(SYS_gettid);
	test_fill(stack_buf, sizeof(stack_buf), seed);
	while (!atomic_load(&s->quit)) {
		pid_t now = (pid_t)syscall(SYS_gettid);
		if (now != s->tid) {
			snprintf(s->err, sizeof(s->err), "thread %d: tid %d, was %d", s->idx, now, s->tid);
			break;
		}
		if (test_check(stack_buf, sizeof(stack_buf), seed) != (size_t)-1) {
			snprintf(s->err, sizeof(s->err), "thread %d: stack buffer corrupted", s->idx);
			break;
		}
		atomic_fetch_add(&s->count, 1);
		test_sleep_ms(2);
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
	for (int i = 0; i < NR_THREADS; i++) {
		slots[i].idx = i;
		if (pthread_create(&slots[i].th, NULL, worker, &slots[i]))
			fail("pthread_create");
	}
	if (!test_poll(all_counting, base, 10000))
		fail("threads did not start counting");

	test_ready();
	test_wait_check();

	if (nr_threads() != NR_THREADS + 1)
		fail("%d threads after restore, want %d", nr_threads(), NR_THREADS + 1);
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
	}
	pass();
}
