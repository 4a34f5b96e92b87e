// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * A robust mutex held by a thread across the checkpoint. The futex word
 * holds the owner's tid and the thread's robust list head is registered
 * with the kernel (set_robust_list); both must survive. After restore the
 * mutex is still busy, and when the owner exits without unlocking, the
 * kernel's robust-list walk marks it: the next lock gets EOWNERDEAD.
 */
#include "zdtm.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t mtx;
static atomic_int locked, quit;
static pid_t owner_tid;
static void *owner_head;
static size_t owner_len;
static char err[256];

static void *owner(void *arg)
{
	(void)arg;
	int r = pthread_mutex_lock(&mtx);

	if (r) {
		snprintf(err, sizeof(err), "lock: %s", strerror(r));
		atomic_store(&locked, -1);
		return NULL;
	}
	owner_tid = (pid_t)syscall(SYS_gettid);
	syscall(SYS_get_robust_list, 0, &owner_head, &owner_len);
	atomic_store(&locked, 1);
	while (!atomic_load(&quit))
		test_sleep_ms(1);
	{
		void *head;
		size_t len;

		syscall(SYS_get_robust_list, 0, &head, &len);
		if (head != owner_head || len != owner_len)
			snprintf(err, sizeof(err), "robust list head %p/%zu, was %p/%zu", head, len,
				 owner_head, owner_len);
	}
	return NULL;	/* exits holding the mutex */
}

static bool is_locked(void *arg)
{
	(void)arg;
	return atomic_load(&locked) != 0;
}

int main(int argc, char **argv)
{
	pthread_mutexattr_t attr;
	pthread_t th;
	unsigned int word;
	int r;

	test_init(argc, argv);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&mtx, &attr);
	if (pthread_create(&th, NULL, owner, NULL))
		fail("pthread_create");
	if (!test_poll(is_locked, NULL, 10000) || atomic_load(&locked) < 0)
		fail("owner did not lock: %s", err);

	test_ready();
	test_wait_check();

	word = (unsigned int)mtx.__data.__lock;
	if ((word & FUTEX_TID_MASK) != (unsigned int)owner_tid)
		fail("futex word %#x does not name owner tid %d", word, owner_tid);
	r = pthread_mutex_trylock(&mtx);
	if (r != EBUSY)
		fail("trylock while held: %s, want EBUSY", strerror(r));
	atomic_store(&quit, 1);
	if (pthread_join(th, NULL))
		fail("pthread_join");
	if (err[0])
		fail("%s", err);
	r = pthread_mutex_lock(&mtx);
	if (r != EOWNERDEAD)
		fail("lock after owner died: %s, want EOWNERDEAD (robust list lost?)", strerror(r));
	if (pthread_mutex_consistent(&mtx))
		fail("pthread_mutex_consistent");
	pthread_mutex_unlock(&mtx);
	pass();
}
