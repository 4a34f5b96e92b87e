// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Per-thread signal masks: each thread blocks a different set (SIGTERM
 * always stays unblocked). After restore every thread's mask must be
 * exactly what it was, as seen by the thread itself and in
 * /proc/self/task/T/status (SigBlk).
 */
#include "zdtm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NR_THREADS 4

struct slot {
	pthread_t th;
	sigset_t want;
	char sigblk[64];
	atomic_int host_tid;
	atomic_int ready;
	char err[256];
};

static struct slot slots[NR_THREADS + 1];	/* [NR_THREADS] is the main thread */

static void make_mask(int i, sigset_t *set)
{
	sigemptyset(set);
	if (i & 1)
		sigaddset(set, SIGUSR1);
	if (i & 2)
		sigaddset(set, SIGUSR2);
	sigaddset(set, SIGRTMIN + i);
	sigaddset(set, SIGRTMAX - 2 * i);
	if (i == NR_THREADS) {	/* main: a wide mask */
		sigaddset(set, SIGHUP);
		sigaddset(set, SIGPIPE);
		sigaddset(set, SIGCHLD);
		sigaddset(set, SIGWINCH);
	}
}

static void sigblk_of(pid_t tid, char *buf, size_t size)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	if (test_status_field(path, "SigBlk", buf, size))
		fail("no SigBlk in %s", path);
}

static int check_self(struct slot *s, int i)
{
	sigset_t cur;

	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == 32 || sig == 33)	/* glibc-internal, never ours */
			continue;
		if (sigismember(&cur, sig) != sigismember(&s->want, sig)) {
			snprintf(s->err, sizeof(s->err), "thread %d: signal %d %s", i, sig,
				 sigismember(&cur, sig) ? "blocked, should not be" : "not blocked");
			return -1;
		}
	}
	return 0;
}

static void *run(void *arg)
{
	int i = (int)(long)arg;
	struct slot *s = &slots[i];

	pthread_sigmask(SIG_SETMASK, &s->want, NULL);
	atomic_store(&s->host_tid, test_proc_tid());
	atomic_store(&s->ready, 1);
	test_wait_check();
	check_self(s, i);
	return NULL;
}

static bool all_ready(void *arg)
{
	(void)arg;
	for (int i = 0; i < NR_THREADS; i++)
		if (!atomic_load(&slots[i].ready))
			return false;
	return true;
}

int main(int argc, char **argv)
{
	char now[64];

	test_init(argc, argv);
	for (int i = 0; i <= NR_THREADS; i++)
		make_mask(i, &slots[i].want);
	pthread_sigmask(SIG_SETMASK, &slots[NR_THREADS].want, NULL);
	atomic_store(&slots[NR_THREADS].host_tid, test_proc_tid());
	for (long i = 0; i < NR_THREADS; i++)
		if (pthread_create(&slots[i].th, NULL, run, (void *)i))
			fail("pthread_create");
	if (!test_poll(all_ready, NULL, 10000))
		fail("threads did not start");
	for (int i = 0; i <= NR_THREADS; i++)
		sigblk_of(slots[i].host_tid, slots[i].sigblk, sizeof(slots[i].sigblk));

	test_ready();
	test_wait_check();

	if (check_self(&slots[NR_THREADS], NR_THREADS))
		fail("%s", slots[NR_THREADS].err);
	for (int i = 0; i < NR_THREADS; i++) {
		if (pthread_join(slots[i].th, NULL))
			fail("pthread_join");
		if (slots[i].err[0])
			fail("%s", slots[i].err);
	}
	/* Threads are gone now; the main thread's view in /proc is still comparable. */
	sigblk_of(test_proc_tid(), now, sizeof(now));
	if (strcmp(now, slots[NR_THREADS].sigblk))
		fail("main thread SigBlk %s, was %s", now, slots[NR_THREADS].sigblk);
	pass();
}
