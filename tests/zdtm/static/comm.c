// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Task names: the process renamed with PR_SET_NAME, and each thread with
 * its own name (pthread_setname_np). After restore PR_GET_NAME in every
 * thread and /proc/self/task/T/comm give the same names.
 */
#include "zdtm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#define NR_THREADS 3

static const char *names[NR_THREADS + 1] = { "zdtm-worker-0", "w1", "a b c (x)", "zdtm-comm-main" };
static atomic_int ready;
static char errs[NR_THREADS][128];

static int check_self(int i, char *err, size_t size)
{
	char name[17] = "", path[64], comm[32];

	prctl(PR_GET_NAME, name);
	if (strcmp(name, names[i])) {
		snprintf(err, size, "thread %d: PR_GET_NAME '%s', want '%s'", i, name, names[i]);
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", test_proc_tid());
	if (test_read_file(path, comm, sizeof(comm)) < 0)
		snprintf(comm, sizeof(comm), "?");
	comm[strcspn(comm, "\n")] = '\0';
	if (strcmp(comm, names[i])) {
		snprintf(err, size, "thread %d: comm '%s', want '%s'", i, comm, names[i]);
		return -1;
	}
	return 0;
}

static void *run(void *arg)
{
	int i = (int)(long)arg;

	pthread_setname_np(pthread_self(), names[i]);
	atomic_fetch_add(&ready, 1);
	test_wait_check();
	check_self(i, errs[i], sizeof(errs[i]));
	return NULL;
}

static bool all_ready(void *arg)
{
	(void)arg;
	return atomic_load(&ready) == NR_THREADS;
}

int main(int argc, char **argv)
{
	pthread_t th[NR_THREADS];
	char err[128];

	test_init(argc, argv);
	prctl(PR_SET_NAME, names[NR_THREADS]);
	for (long i = 0; i < NR_THREADS; i++)
		if (pthread_create(&th[i], NULL, run, (void *)i))
			fail("pthread_create");
	if (!test_poll(all_ready, NULL, 10000))
		fail("threads did not start");

	test_ready();
	test_wait_check();

	if (check_self(NR_THREADS, err, sizeof(err)))
		fail("%s", err);
	for (int i = 0; i < NR_THREADS; i++) {
		pthread_join(th[i], NULL);
		if (errs[i][0])
			fail("%s", errs[i]);
	}
	pass();
}
