// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * CPU affinity, which the kernel keeps per thread: the main thread pinned
 * to the last online CPU, a second thread to the first, and a child that
 * was never pinned.  After the move each has its mask: the pinned ones
 * exactly, the child every CPU online (on a machine of one CPU there is
 * nothing to pin apart: the masks are then all that one).
 */
#include "zdtm.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static cpu_set_t online, first, last;
static atomic_int ready, stop;
static char terr[128];

static void *pinned_thread(void *arg)
{
	cpu_set_t now;
	(void)arg;
	if (sched_setaffinity(0, sizeof(first), &first))
		fail_errno("thread: sched_setaffinity");
	ready = 1;
	while (!stop)
		test_sleep_ms(5);
	if (sched_getaffinity(0, sizeof(now), &now))
		fail_errno("thread: sched_getaffinity");
	if (!CPU_EQUAL(&now, &first))
		snprintf(terr, sizeof(terr), "the thread's mask has %d CPUs, not its one", CPU_COUNT(&now));
	return NULL;
}

static bool is_ready(void *arg)
{
	(void)arg;
	return ready;
}

int main(int argc, char **argv)
{
	cpu_set_t now;
	pthread_t th;
	int n = 0, lo = -1, hi = -1, status;
	pid_t child;

	test_init(argc, argv);
	if (sched_getaffinity(0, sizeof(online), &online))
		fail_errno("sched_getaffinity");
	for (int k = 0; k < CPU_SETSIZE; k++)
		if (CPU_ISSET(k, &online)) {
			if (lo < 0)
				lo = k;
			hi = k;
			n++;
		}
	CPU_ZERO(&first);
	CPU_SET(lo, &first);
	CPU_ZERO(&last);
	CPU_SET(hi, &last);
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		for (;;)
			pause();
	}
	if (sched_setaffinity(0, sizeof(last), &last))
		fail_errno("sched_setaffinity");
	if (pthread_create(&th, NULL, pinned_thread, NULL))
		fail("pthread_create");
	if (!test_poll(is_ready, NULL, 10000))
		fail("the thread did not start");

	test_ready();
	test_wait_check();

	stop = 1;
	pthread_join(th, NULL);
	if (terr[0])
		fail("%s", terr);
	if (sched_getaffinity(0, sizeof(now), &now))
		fail_errno("sched_getaffinity");
	if (!CPU_EQUAL(&now, &last))
		fail("the main thread's mask has %d CPUs, not CPU %d alone", CPU_COUNT(&now), hi);
	if (sched_getaffinity(child, sizeof(now), &now))
		fail_errno("sched_getaffinity(child)");
	if (!CPU_EQUAL(&now, &online))
		fail("the child's mask has %d CPUs, not the %d online", CPU_COUNT(&now), n);
	kill(child, SIGKILL);
	test_waitpid(child, &status, 0);
	pass();
}
