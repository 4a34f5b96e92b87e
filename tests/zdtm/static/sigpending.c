// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Blocked and pending signals, shared and per thread:
 *   shared:   SIGUSR1 by kill(), SIGRTMIN queued 3 times by sigqueue()
 *             with values 1, 2, 3
 *   thread A: SIGUSR2 by tgkill(), SIGRTMIN+1 queued twice (values 11, 12)
 *   thread B: SIGRTMIN+2 (value 21)
 *   main:     SIGRTMIN+2 (value 31)
 * After restore SigPnd/ShdPnd of every task are the same, and each
 * thread dequeues exactly its signals, rt ones in order with their values
 * and si_code.
 */
#include "zdtm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RT(n) (SIGRTMIN + (n))

struct want {
	int sig, code, value;
};

static struct task {
	pthread_t th;
	pid_t tid, host_tid;
	char sigpnd[32], shdpnd[32];
	atomic_int ready, refreshed;
	char err[256];
} tasks[3];	/* 0 main, 1 A, 2 B */

static atomic_int go;
static int tkill_code;	/* si_code the kernel gives tgkill'ed signals (SI_TKILL or SI_USER) */	/* main has looked at the pending sets: threads may drain */

static void handler(int sig)
{
	(void)sig;	/* never runs: everything stays blocked */
}

static void queue_to(pid_t tid, int sig, int value)
{
	siginfo_t si = { 0 };

	si.si_signo = sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = value;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, &si))
		fail_errno("rt_tgsigqueueinfo(%d, %d)", tid, sig);
}

static void pending_of(struct task *t, char *pnd, char *shd)
{
	char path[96];

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", t->host_tid);
	if (test_status_field(path, "SigPnd", pnd, 32) || test_status_field(path, "ShdPnd", shd, 32))
		fail("no SigPnd/ShdPnd in %s", path);
}

/* Dequeue everything of set in this thread and compare with want[]. */
static int drain(struct task *t, const int *sigs, int nsigs, const struct want *want, int nwant)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;
	siginfo_t si;

	sigemptyset(&set);
	for (int i = 0; i < nsigs; i++)
		sigaddset(&set, sigs[i]);
	for (int i = 0; i <= nwant; i++) {
		int s = sigtimedwait(&set, &si, &zero);

		if (i == nwant) {
			if (s >= 0) {
				snprintf(t->err, sizeof(t->err), "task %d: extra signal %d pending", t->tid, s);
				return -1;
			}
			break;
		}
		if (s != want[i].sig || si.si_code != want[i].code ||
		    (want[i].code == SI_QUEUE && si.si_value.sival_int != want[i].value) ||
		    si.si_pid != getpid()) {
			snprintf(t->err, sizeof(t->err),
				 "task %d: dequeued #%d: sig %d code %d value %d pid %d, want sig %d code %d value %d pid %d",
				 t->tid, i, s, s < 0 ? 0 : si.si_code, s < 0 ? 0 : si.si_value.sival_int,
				 s < 0 ? 0 : si.si_pid, want[i].sig, want[i].code, want[i].value, getpid());
			return -1;
		}
	}
	return 0;
}

static void *thread_main(void *arg)
{
	struct task *t = arg;

	t->tid = (pid_t)syscall(SYS_gettid);
	t->host_tid = test_proc_tid();
	atomic_store(&t->ready, 1);
	test_wait_check();
	/* Host tids are new after a restore (ns tids are not). */
	t->host_tid = test_proc_tid();
	atomic_store(&t->refreshed, 1);
	while (!atomic_load(&go))
		test_sleep_ms(1);
	if (t == &tasks[1]) {
		int sigs[] = { SIGUSR2, RT(1) };
		struct want w[] = { { SIGUSR2, tkill_code, 0 }, { RT(1), SI_QUEUE, 11 }, { RT(1), SI_QUEUE, 12 } };

		drain(t, sigs, 2, w, 3);
	} else {
		int sigs[] = { RT(2) };
		struct want w[] = { { RT(2), SI_QUEUE, 21 } };

		drain(t, sigs, 1, w, 1);
	}
	return NULL;
}

static bool threads_ready(void *arg)
{
	(void)arg;
	return atomic_load(&tasks[1].ready) && atomic_load(&tasks[2].ready);
}

int main(int argc, char **argv)
{
	int all[] = { SIGUSR1, SIGUSR2, RT(0), RT(1), RT(2) };
	struct sigaction sa = { .sa_handler = handler };
	sigset_t block;

	test_init(argc, argv);
	/* Handlers, so that pid 1 of the namespace does not drop them. */
	sigemptyset(&block);
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		sigaction(all[i], &sa, NULL);
		sigaddset(&block, all[i]);
	}
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	tasks[0].tid = getpid();
	tasks[0].host_tid = test_proc_tid();
	for (int i = 1; i < 3; i++)
		if (pthread_create(&tasks[i].th, NULL, thread_main, &tasks[i]))
			fail("pthread_create");
	if (!test_poll(threads_ready, NULL, 10000))
		fail("threads did not start");

	/* Learn what this kernel reports for tgkill(), with a signal of the set. */
	{
		struct timespec zero = { 0, 0 };
		siginfo_t si;
		sigset_t one;

		sigemptyset(&one);
		sigaddset(&one, SIGUSR2);
		syscall(SYS_tgkill, getpid(), tasks[0].tid, SIGUSR2);
		if (sigtimedwait(&one, &si, &zero) != SIGUSR2)
			fail("probe: tgkill'ed SIGUSR2 not pending");
		tkill_code = si.si_code;
	}
	if (kill(getpid(), SIGUSR1))
		fail_errno("kill");
	for (int v = 1; v <= 3; v++)
		if (sigqueue(getpid(), RT(0), (union sigval){ .sival_int = v }))
			fail_errno("sigqueue");
	if (syscall(SYS_tgkill, getpid(), tasks[1].tid, SIGUSR2))
		fail_errno("tgkill");
	queue_to(tasks[1].tid, RT(1), 11);
	queue_to(tasks[1].tid, RT(1), 12);
	queue_to(tasks[2].tid, RT(2), 21);
	queue_to(tasks[0].tid, RT(2), 31);
	for (int i = 0; i < 3; i++)
		pending_of(&tasks[i], tasks[i].sigpnd, tasks[i].shdpnd);

	test_ready();
	test_wait_check();

	tasks[0].host_tid = test_proc_tid();
	while (!atomic_load(&tasks[1].refreshed) || !atomic_load(&tasks[2].refreshed))
		test_sleep_ms(1);
	for (int i = 0; i < 3; i++) {
		char pnd[32], shd[32];

		pending_of(&tasks[i], pnd, shd);
		if (strcmp(pnd, tasks[i].sigpnd) || strcmp(shd, tasks[i].shdpnd))
			fail("task %d: SigPnd %s ShdPnd %s, were %s %s", tasks[i].tid, pnd, shd,
			     tasks[i].sigpnd, tasks[i].shdpnd);
	}
	/* Threads drain their own. */
	atomic_store(&go, 1);
	for (int i = 1; i < 3; i++) {
		pthread_join(tasks[i].th, NULL);
		if (tasks[i].err[0])
			fail("%s", tasks[i].err);
	}
	{
		int sigs[] = { RT(2) };
		struct want w[] = { { RT(2), SI_QUEUE, 31 } };

		if (drain(&tasks[0], sigs, 1, w, 1))
			fail("%s", tasks[0].err);
	}
	{
		int sigs[] = { SIGUSR1, SIGUSR2, RT(0), RT(1), RT(2) };
		struct want w[] = { { SIGUSR1, SI_USER, 0 }, { RT(0), SI_QUEUE, 1 }, { RT(0), SI_QUEUE, 2 },
				    { RT(0), SI_QUEUE, 3 } };

		if (drain(&tasks[0], sigs, 5, w, 4))
			fail("shared queue: %s", tasks[0].err);
	}
	pass();
}
