/* SPDX-License-Identifier: MIT */
#include "base/sync.h"
#include "base/clock.h"

#include <errno.h>
#include <time.h>

void cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cond, lock, &ts);
}

int cond_wait_flag(pthread_cond_t *cond, pthread_mutex_t *lock, const bool *done, _Atomic int *err,
		   int timeout_ms)
{
	uint64_t deadline = timeout_ms >= 0 ? clock_ns() + (uint64_t)timeout_ms * 1000000 : 0;
	int r;

	while (!*done) {
		if ((r = atomic_load(err)))
			return r;
		if (deadline && clock_ns() >= deadline)
			return -ETIMEDOUT;
		cond_wait_ms(cond, lock, 100);
	}
	return 0;
}
