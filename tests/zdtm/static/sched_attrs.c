// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Scheduling and process attributes, per thread where the kernel keeps them
 * per thread: after restore each thread has the same nice value, policy
 * (with SCHED_RESET_ON_FORK), RT priority, timer slack and CPU mask (two
 * threads pinned to one CPU each, the others on every CPU: the dump pins
 * the threads for its injected calls and must give the masks back, with
 * --leave-running too); the process the
 * same oom_score_adj, loginuid, PR_GET_THP_DISABLE, and its membarrier
 * registrations still act (MEMBARRIER_CMD_PRIVATE_EXPEDITED and
 * ..._SYNC_CORE succeed instead of failing with EPERM).
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct want {
	const char *name;
	int policy;		/* with SCHED_RESET_ON_FORK */
	int prio;
	int nice;
	unsigned long slack;
	int cpu;		/* pinned to the nth CPU allowed at start (0: first, -1: last), or every CPU (-2) */
	pthread_t th;
	atomic_int ready;
	char err[256];
};

static struct want wants[] = {
	{ "main", SCHED_OTHER, 0, 7, 70000, -2 },
	{ "batch", SCHED_BATCH | SCHED_RESET_ON_FORK, 0, 3, 123000, -1 },
	{ "fifo", SCHED_FIFO, 7, 0, 0, -2 },	/* RT tasks have no slack */
	{ "rr", SCHED_RR | SCHED_RESET_ON_FORK, 3, 0, 0, 0 },
	{ "idle", SCHED_IDLE, 0, 0, 999000, -2 },
};

static cpu_set_t start_cpus; /* allowed at start */

/* The mask w asks for. */
static void want_cpus(const struct want *w, cpu_set_t *set)
{
	int n = CPU_COUNT(&start_cpus), k = 0;

	*set = start_cpus;
	if (w->cpu == -2 || n < 2)
		return;
	CPU_ZERO(set);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &start_cpus) && k++ == (w->cpu == -1 ? n - 1 : w->cpu)) {
			CPU_SET(c, set);
			return;
		}
}

static int membarrier(int cmd, unsigned flags)
{
	return (int)syscall(SYS_membarrier, cmd, flags, 0);
}

/* Sets this thread's attributes up. */
static void setup(struct want *w)
{
	struct sched_param sp = { .sched_priority = w->prio };
	pid_t tid = (pid_t)syscall(SYS_gettid);

	if (sched_setscheduler(0, w->policy, &sp))
		fail_errno("%s: sched_setscheduler(%d, %d)", w->name, w->policy, w->prio);
	if ((w->policy & ~SCHED_RESET_ON_FORK) != SCHED_FIFO &&
	    (w->policy & ~SCHED_RESET_ON_FORK) != SCHED_RR &&
	    setpriority(PRIO_PROCESS, (id_t)tid, w->nice))
		fail_errno("%s: setpriority(%d)", w->name, w->nice);
	if (prctl(PR_SET_TIMERSLACK, w->slack, 0, 0, 0))
		fail_errno("%s: PR_SET_TIMERSLACK", w->name);
	cpu_set_t set;
	want_cpus(w, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fail_errno("%s: sched_setaffinity", w->name);
}

/* Compares this thread's attributes; returns false with w->err set. */
static bool check(struct want *w)
{
	struct sched_param sp;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int pol = sched_getscheduler(0), nice;
	long slack;

	if (pol != w->policy) {
		snprintf(w->err, sizeof(w->err), "%s: policy %#x, was %#x", w->name, pol, w->policy);
		return false;
	}
	if (sched_getparam(0, &sp) || sp.sched_priority != w->prio) {
		snprintf(w->err, sizeof(w->err), "%s: rt priority %d, was %d", w->name,
			 sp.sched_priority, w->prio);
		return false;
	}
	errno = 0;
	nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno == 0 && nice != w->nice && (w->policy & ~SCHED_RESET_ON_FORK) != SCHED_FIFO &&
	    (w->policy & ~SCHED_RESET_ON_FORK) != SCHED_RR) {
		snprintf(w->err, sizeof(w->err), "%s: nice %d, was %d", w->name, nice, w->nice);
		return false;
	}
	slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (slack != (long)w->slack) {
		snprintf(w->err, sizeof(w->err), "%s: timer slack %ld, was %lu", w->name, slack,
			 w->slack);
		return false;
	}
	cpu_set_t set, have;
	want_cpus(w, &set);
	if (sched_getaffinity(0, sizeof(have), &have) || !CPU_EQUAL(&set, &have)) {
		snprintf(w->err, sizeof(w->err), "%s: CPU mask of %d CPUs, was %d", w->name,
			 CPU_COUNT(&have), CPU_COUNT(&set));
		return false;
	}
	return true;
}

static void *thread_fn(void *arg)
{
	struct want *w = arg;

	setup(w);
	if (!check(w))
		fail("before: %s", w->err);
	atomic_store(&w->ready, 1);
	test_wait_check();
	check(w);
	atomic_store(&w->ready, 2);
	return NULL;
}

static bool all_ready(void *arg)
{
	(void)arg;
	for (size_t i = 1; i < ARRAY_SIZE(wants); i++)
		if (atomic_load(&wants[i].ready) != 1)
			return false;
	return true;
}

static void check_process(const char *when)
{
	char buf[64];

	if (test_read_file("/proc/self/oom_score_adj", buf, sizeof(buf)) < 0)
		fail_errno("%s: read oom_score_adj", when);
	if (atoi(buf) != 321)
		fail("%s: oom_score_adj %d, was 321", when, atoi(buf));
	if (test_read_file("/proc/self/loginuid", buf, sizeof(buf)) < 0)
		fail_errno("%s: read loginuid", when);
	if (strtoul(buf, NULL, 10) != 4321)
		fail("%s: loginuid %s, was 4321", when, buf);
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
		fail("%s: PR_GET_THP_DISABLE is %d, was 1", when,
		     prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0))
		fail_errno("%s: membarrier(PRIVATE_EXPEDITED) (registered before)", when);
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0))
		fail_errno("%s: membarrier(PRIVATE_EXPEDITED_SYNC_CORE) (registered before)", when);
}

int main(int argc, char **argv)
{
	int fd;

	test_init(argc, argv);
	if (sched_getaffinity(0, sizeof(start_cpus), &start_cpus))
		fail_errno("sched_getaffinity");
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || write(fd, "321", 3) != 3)
		fail_errno("write oom_score_adj");
	close(fd);
	fd = open("/proc/self/loginuid", O_WRONLY);
	if (fd < 0 || write(fd, "4321", 4) != 4)
		fail_errno("write loginuid");
	close(fd);
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		fail_errno("PR_SET_THP_DISABLE");
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0 || errno != EPERM)
		fail("membarrier(PRIVATE_EXPEDITED) before registering: not EPERM");
	if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0))
		fail_errno("membarrier(REGISTER_PRIVATE_EXPEDITED)");
	if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0))
		fail_errno("membarrier(REGISTER_PRIVATE_EXPEDITED_SYNC_CORE)");

	setup(&wants[0]);
	for (size_t i = 1; i < ARRAY_SIZE(wants); i++)
		if ((errno = pthread_create(&wants[i].th, NULL, thread_fn, &wants[i])))
			fail_errno("pthread_create");
	if (!test_poll(all_ready, NULL, 10000))
		fail("threads not ready");
	if (!check(&wants[0]))
		fail("before: %s", wants[0].err);
	check_process("before");

	test_ready();
	test_wait_check();

	check_process("after");
	if (!check(&wants[0]))
		fail("%s", wants[0].err);
	for (size_t i = 1; i < ARRAY_SIZE(wants); i++) {
		pthread_join(wants[i].th, NULL);
		if (wants[i].err[0])
			fail("%s", wants[i].err);
	}
	pass();
}
