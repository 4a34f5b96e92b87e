/* SPDX-License-Identifier: MIT */
/* Condition-variable waits with a bound, shared by the page movers. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* pthread_cond_timedwait for at most ms milliseconds (the caller holds lock). */
void cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, unsigned ms);

/*
 * Wait (the caller holds lock) until *done, an error in *err, or timeout_ms
 * has passed (< 0: no limit).  Wakes every 100 ms, since *err may be set by a
 * thread that does not broadcast.  Returns 0, the error, or -ETIMEDOUT.
 */
int cond_wait_flag(pthread_cond_t *cond, pthread_mutex_t *lock, const bool *done, _Atomic int *err,
		   int timeout_ms);
