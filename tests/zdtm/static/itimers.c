// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Interval timers: ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF armed with
 * long values and distinct intervals (none fires during the test). After
 * restore the intervals are the same, and the remaining times were kept
 * roughly: not more than before, and not less than before minus the time
 * (wall or CPU) that has passed since.
 */
#include "zdtm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>

static atomic_int fired[3];
static const int sigs[3] = { SIGALRM, SIGVTALRM, SIGPROF };
static const char *names[3] = { "ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF" };

static void on_timer(int sig)
{
	for (int i = 0; i < 3; i++)
		if (sig == sigs[i])
			atomic_fetch_add(&fired[i], 1);
}

static int64_t us(const struct timeval *tv)
{
	return (int64_t)tv->tv_sec * 1000000 + tv->tv_usec;
}

static int64_t cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return us(&ru.ru_utime) + us(&ru.ru_stime);
}

int main(int argc, char **argv)
{
	struct itimerval set[3] = {
		{ .it_value = { 1000, 0 }, .it_interval = { 500, 250000 } },
		{ .it_value = { 100, 0 }, .it_interval = { 7, 0 } },
		{ .it_value = { 200, 0 }, .it_interval = { 3, 500000 } },
	};
	struct itimerval before[3], after[3];
	struct sigaction sa = { .sa_handler = on_timer, .sa_flags = SA_RESTART };
	int64_t t0, cpu0, elapsed, cpu;

	test_init(argc, argv);
	for (int i = 0; i < 3; i++) {
		sigaction(sigs[i], &sa, NULL);
		if (setitimer(i, &set[i], NULL))
			fail_errno("setitimer(%s)", names[i]);
	}
	for (int i = 0; i < 3; i++)
		getitimer(i, &before[i]);
	t0 = (int64_t)(test_now_ns() / 1000);
	cpu0 = cpu_us();

	test_ready();
	test_wait_check();

	for (int i = 0; i < 3; i++)
		getitimer(i, &after[i]);
	elapsed = (int64_t)(test_now_ns() / 1000) - t0;
	cpu = cpu_us() - cpu0;
	for (int i = 0; i < 3; i++) {
		int64_t slack = (i == 0 ? elapsed : cpu) + 1000000;	/* + 1 s */

		if (atomic_load(&fired[i]))
			fail("%s fired", names[i]);
		if (llabs(us(&after[i].it_interval) - us(&before[i].it_interval)) > 1000)
			fail("%s: interval %lld us, was %lld us", names[i],
			     (long long)us(&after[i].it_interval), (long long)us(&before[i].it_interval));
		if (us(&after[i].it_value) == 0)
			fail("%s is disarmed after restore", names[i]);
		/* a CPU timer may read back a tick (4 ms at HZ=250) more than
		 * it was set to: the process's CPU time is sampled when it is
		 * set and when it is read, and its accounting moves by ticks
		 * (one post-copy run of the full suite read 4 ms more) */
		int64_t over = i == 0 ? 1000 : 10000;
		if (us(&after[i].it_value) > us(&before[i].it_value) + over)
			fail("%s: %lld us left, more than the %lld before", names[i],
			     (long long)us(&after[i].it_value), (long long)us(&before[i].it_value));
		if (us(&after[i].it_value) < us(&before[i].it_value) - slack)
			fail("%s: %lld us left, was %lld us %lld us ago", names[i],
			     (long long)us(&after[i].it_value), (long long)us(&before[i].it_value),
			     (long long)(i == 0 ? elapsed : cpu));
	}
	pass();
}
