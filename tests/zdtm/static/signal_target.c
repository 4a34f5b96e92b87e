// SPDX-License-Identifier: MIT
// zdtm: flags=signal-after-move=USR1
/*
 * Which thread takes a process-directed signal: the main thread waits in
 * pause() with SIGUSR1 unblocked, three other threads run with it
 * unblocked too. The kernel gives the signal to the main thread (the
 * leader wants it). The runner sends SIGUSR1 the instant the move
 * (restore) returns: the main thread must take it, as it would have
 * without the checkpoint. (A restore that returned before every thread
 * had run after its detach let another thread take it.)
 */
#include "zdtm.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int taker;	/* 1: main thread, 2: another one */

static void on_usr1(int sig)
{
	(void)sig;
	atomic_store(&taker, syscall(SYS_gettid) == getpid() ? 1 : 2);
}

static void *busy(void *arg)
{
	volatile unsigned long n = 0;
	(void)arg;
	/* spinning: the CPUs are busy when the restored main thread wakes */
	while (!test_stopped())
		n++;
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	pthread_t th[3];

	test_init(argc, argv);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		fail_errno("sigaction");
	for (int i = 0; i < 3; i++)
		if ((errno = pthread_create(&th[i], NULL, busy, NULL)))
			fail_errno("pthread_create");

	test_ready();
	while (!atomic_load(&taker) && !test_stopped())
		pause();
	test_wait_check();

	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&taker) == 0)
		fail("SIGUSR1 never came");
	if (atomic_load(&taker) != 1)
		fail("SIGUSR1 was taken by another thread than the main one (in pause())");
	pass();
}
