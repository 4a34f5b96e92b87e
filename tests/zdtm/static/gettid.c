// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Thread ids in a PID namespace: getpid() is 1, every thread's gettid()
 * is what it was, glibc's cached tids still work (pthread_kill reaches
 * the right thread), and thread exit still wakes pthread_join
 * (clear_child_tid).
 */
#include "zdtm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_THREADS 3

static struct slot {
	pthread_t th;
	pid_t tid;
	atomic_int got;		/* tid that ran the SIGUSR1 handler for this slot */
	atomic_int quit;
	char err[128];
} slots[NR_THREADS];

static __thread int my_slot = -1;

static void on_usr1(int sig)
{
	(void)sig;
	if (my_slot >= 0)
		atomic_store(&slots[my_slot].got, (int)syscall(SYS_gettid));
}

static void *run(void *arg)
{
	int i = (int)(long)arg;

	my_slot = i;
	slots[i].tid = (pid_t)syscall(SYS_gettid);
	test_wait_check();
	if (syscall(SYS_gettid) != slots[i].tid)
		snprintf(slots[i].err, sizeof(slots[i].err), "thread %d: gettid %ld, was %d", i,
			 syscall(SYS_gettid), slots[i].tid);
	while (!atomic_load(&slots[i].quit))
		test_sleep_ms(1);
	return NULL;
}

static bool got_all(void *arg)
{
	(void)arg;
	for (int i = 0; i < NR_THREADS; i++)
		if (!atomic_load(&slots[i].got))
			return false;
	return true;
}

static bool tids_set(void *arg)
{
	(void)arg;
	for (int i = 0; i < NR_THREADS; i++)
		if (!slots[i].tid)
			return false;
	return true;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	pid_t pid;

	test_init(argc, argv);
	sigaction(SIGUSR1, &sa, NULL);
	pid = getpid();
	if (pid != 1)
		fail("not pid 1 of a PID namespace (pid %d): run with flags=pidns", pid);
	for (long i = 0; i < NR_THREADS; i++)
		if (pthread_create(&slots[i].th, NULL, run, (void *)i))
			fail("pthread_create");
	if (!test_poll(tids_set, NULL, 10000))
		fail("threads did not start");

	test_ready();
	test_wait_check();

	if (getpid() != pid || syscall(SYS_gettid) != pid)
		fail("main: getpid %d gettid %ld, was %d", getpid(), syscall(SYS_gettid), pid);
	/* pthread_kill() sends to the tid glibc cached at creation. */
	for (int i = 0; i < NR_THREADS; i++)
		if ((errno = pthread_kill(slots[i].th, SIGUSR1)))
			fail_errno("pthread_kill(thread %d)", i);
	if (!test_poll(got_all, NULL, 10000))
		fail("SIGUSR1 from pthread_kill did not reach every thread");
	for (int i = 0; i < NR_THREADS; i++)
		if (atomic_load(&slots[i].got) != slots[i].tid)
			fail("thread %d (tid %d): pthread_kill's signal was handled by tid %d", i,
			     slots[i].tid, atomic_load(&slots[i].got));
	for (int i = 0; i < NR_THREADS; i++) {
		atomic_store(&slots[i].quit, 1);
		if (pthread_join(slots[i].th, NULL))
			fail("pthread_join(%d)", i);
		if (slots[i].err[0])
			fail("%s", slots[i].err);
	}
	pass();
}
