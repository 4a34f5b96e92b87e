/* SPDX-License-Identifier: MIT */
#pragma once
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in various units, since the process started for clock_ms(). */
static inline uint64_t clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
static inline uint64_t clock_us(void) { return clock_ns() / 1000; }
/* the calling thread's CPU time */
static inline uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
/* milliseconds as a double, relative to the first call in this process */
double clock_ms(void);
/* milliseconds between two clock_ns() values */
static inline double ns_to_ms(uint64_t a, uint64_t b) { return (double)(b - a) / 1e6; }
