// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * POSIX timers (timer_create):
 *   T1 CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN   value 101, every 50 ms
 *   T2 CLOCK_REALTIME,  SIGEV_SIGNAL SIGRTMIN+1 value 102, once in 1000 s
 *   T3 CLOCK_MONOTONIC, SIGEV_THREAD_ID -> thread W, SIGRTMIN+2 value 103,
 *      every 100 ms
 *   T4 CLOCK_BOOTTIME,  SIGEV_NONE, disarmed
 * After restore the timer ids are the same (the handles still work, and
 * /proc/self/timers lists the same ids, signals and clocks), intervals are
 * kept, T2's remaining time roughly kept, T1 keeps firing with its value
 * and timer id in siginfo, and T3 keeps firing into thread W.
 * (pidns: SIGEV_THREAD_ID names W by its tid.)
 */
#include "zdtm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define RT(n) (SIGRTMIN + (n))
#define NT 4

static timer_t ids[NT];
static atomic_int t1_hits, t1_bad, t3_hits, t3_wrong_thread;
static pid_t w_tid;
static atomic_int w_quit;
static char t1_err[128];

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == RT(0)) {
		if (si->si_code != SI_TIMER || si->si_value.sival_int != 101) {
			if (!atomic_exchange(&t1_bad, 1))
				snprintf(t1_err, sizeof(t1_err), "T1 signal: code %d value %d",
					 si->si_code, si->si_value.sival_int);
		}
		atomic_fetch_add(&t1_hits, 1);
	} else if (sig == RT(2)) {
		if (syscall(SYS_gettid) != w_tid)
			atomic_fetch_add(&t3_wrong_thread, 1);
		atomic_fetch_add(&t3_hits, 1);
	}
}

static void *w_main(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, RT(2));
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	w_tid = (pid_t)syscall(SYS_gettid);
	while (!atomic_load(&w_quit))
		test_sleep_ms(5);
	return NULL;
}

/* /proc/self/timers with the notify target's pid cut (it is a host pid). */
static void timers_text(char *buf, size_t size)
{
	char raw[8192];
	size_t len = 0;

	if (test_read_file("/proc/self/timers", raw, sizeof(raw)) < 0)
		fail_errno("read /proc/self/timers");
	for (char *l = strtok(raw, "\n"); l; l = strtok(NULL, "\n")) {
		char *dot = strncmp(l, "notify:", 7) ? NULL : strrchr(l, '.');

		if (dot)
			*dot = '\0';
		len += (size_t)snprintf(buf + len, size - len, "%s|", l);
	}
}

static bool fired_more(void *arg)
{
	int *base = arg;

	return atomic_load(&t1_hits) >= base[0] + 3 && atomic_load(&t3_hits) >= base[1] + 3;
}

static int64_t ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_rt, .sa_flags = SA_SIGINFO | SA_RESTART };
	struct itimerspec spec[NT] = {
		{ .it_value = { 0, 50000000 }, .it_interval = { 0, 50000000 } },
		{ .it_value = { 1000, 0 }, .it_interval = { 0, 0 } },
		{ .it_value = { 0, 100000000 }, .it_interval = { 0, 100000000 } },
		{ { 0, 0 }, { 0, 0 } },
	};
	struct itimerspec before[NT], after[NT];
	char text0[8192], text1[8192];
	int base[2];
	pthread_t w;
	sigset_t set;
	uint64_t t0;

	test_init(argc, argv);
	sigaction(RT(0), &sa, NULL);
	sigaction(RT(2), &sa, NULL);
	/* Only W takes T3's signal. */
	sigemptyset(&set);
	sigaddset(&set, RT(2));
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&w, NULL, w_main, NULL))
		fail("pthread_create");
	while (!w_tid)
		test_sleep_ms(1);

	struct sigevent ev[NT] = { 0 };

	ev[0] = (struct sigevent){ .sigev_notify = SIGEV_SIGNAL, .sigev_signo = RT(0),
				   .sigev_value.sival_int = 101 };
	ev[1] = (struct sigevent){ .sigev_notify = SIGEV_SIGNAL, .sigev_signo = RT(1),
				   .sigev_value.sival_int = 102 };
	ev[2] = (struct sigevent){ .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = RT(2),
				   .sigev_value.sival_int = 103 };
	ev[2].sigev_notify_thread_id = w_tid;
	ev[3] = (struct sigevent){ .sigev_notify = SIGEV_NONE };
	clockid_t clocks[NT] = { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME };

	for (int i = 0; i < NT; i++) {
		if (timer_create(clocks[i], &ev[i], &ids[i]))
			fail_errno("timer_create(T%d)", i + 1);
		if (timer_settime(ids[i], 0, &spec[i], NULL))
			fail_errno("timer_settime(T%d)", i + 1);
	}
	for (int i = 0; i < NT; i++)
		timer_gettime(ids[i], &before[i]);
	t0 = test_now_ns();
	timers_text(text0, sizeof(text0));

	test_ready();
	test_wait_check();

	timers_text(text1, sizeof(text1));
	if (strcmp(text0, text1))
		fail("/proc/self/timers differs: before '%s' after '%s'", text0, text1);
	for (int i = 0; i < NT; i++) {
		if (timer_gettime(ids[i], &after[i]))
			fail_errno("timer_gettime(T%d, id %ld) after restore", i + 1, (long)(intptr_t)ids[i]);
		if (ns(&after[i].it_interval) != ns(&before[i].it_interval))
			fail("T%d: interval %lld ns, was %lld", i + 1, (long long)ns(&after[i].it_interval),
			     (long long)ns(&before[i].it_interval));
	}
	if (ns(&after[3].it_value) != 0)
		fail("T4 got armed");
	int64_t elapsed = (int64_t)(test_now_ns() - t0);

	if (ns(&after[1].it_value) == 0 || ns(&after[1].it_value) > ns(&before[1].it_value) ||
	    ns(&after[1].it_value) < ns(&before[1].it_value) - elapsed - 1000000000LL)
		fail("T2: %lld ns left, was %lld ns %lld ns ago", (long long)ns(&after[1].it_value),
		     (long long)ns(&before[1].it_value), (long long)elapsed);
	base[0] = atomic_load(&t1_hits);
	base[1] = atomic_load(&t3_hits);
	if (!test_poll(fired_more, base, 10000))
		fail("periodic timers stopped: T1 %d -> %d, T3 %d -> %d hits", base[0],
		     atomic_load(&t1_hits), base[1], atomic_load(&t3_hits));
	if (atomic_load(&t1_bad))
		fail("%s", t1_err);
	if (atomic_load(&t3_wrong_thread))
		fail("T3's signal ran in another thread than W %d times", atomic_load(&t3_wrong_thread));
	for (int i = 0; i < NT; i++)
		timer_delete(ids[i]);
	atomic_store(&w_quit, 1);
	pthread_join(w, NULL);
	pass();
}
