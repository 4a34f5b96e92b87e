// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * timerfds, none read before the checkpoint:
 *   - periodic: CLOCK_MONOTONIC, every 20 ms: still fires, same interval;
 *   - past: CLOCK_REALTIME, absolute, first expiry 5.5 h ago, every hour:
 *     6 expirations are owed (counted by the kernel at the first look),
 *     the next one within half an hour;
 *   - fired: a one-shot of 1 ms that expired: 1 expiration, then disarmed;
 *   - armed: a one-shot of an hour: time left in (0, 1 h], nothing to read;
 *   - cancel: CLOCK_REALTIME, absolute, TFD_TIMER_CANCEL_ON_SET, in an
 *     hour: its settime flags stay 03;
 *   - idle: never armed.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000LL
#define HOUR 3600LL

static long long ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

static void fdinfo_line(int fd, const char *key, char *out, size_t size)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail_errno("%s", path);
	char *s = strstr(buf, key);
	if (!s)
		fail("%s: no %s line", path, key);
	snprintf(out, size, "%.*s", (int)strcspn(s, "\n"), s);
}

static bool has_fired(void *arg)
{
	char line[64];
	fdinfo_line(*(int *)arg, "ticks:", line, sizeof(line));
	return strcmp(line, "ticks: 0") != 0;
}

static void arm(int fd, int flags, long long value_ns, long long interval_ns)
{
	struct itimerspec its = {
		.it_value = { value_ns / 1000000000LL, value_ns % 1000000000LL },
		.it_interval = { interval_ns / 1000000000LL, interval_ns % 1000000000LL },
	};
	if (timerfd_settime(fd, flags, &its, NULL))
		fail_errno("timerfd_settime");
}

static uint64_t ticks(int fd, const char *what)
{
	uint64_t n;
	if (read(fd, &n, sizeof(n)) != sizeof(n))
		fail_errno("%s: read", what);
	return n;
}

static void expect_empty(int fd, const char *what)
{
	uint64_t n;
	if (read(fd, &n, sizeof(n)) >= 0 || errno != EAGAIN)
		fail("%s: readable (%llu expirations)", what, (unsigned long long)n);
}

int main(int argc, char **argv)
{
	int periodic, past, fired, armed, cancel, idle;
	struct timespec now;
	struct itimerspec its;
	char before[64], after[64];
	uint64_t n;

	test_init(argc, argv);
	periodic = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	past = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	fired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	armed = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	cancel = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	idle = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	if (periodic < 0 || past < 0 || fired < 0 || armed < 0 || cancel < 0 || idle < 0)
		fail_errno("timerfd_create");
	arm(periodic, 0, 20 * MS, 20 * MS);
	clock_gettime(CLOCK_REALTIME, &now);
	arm(past, TFD_TIMER_ABSTIME, ns(&now) - (5 * HOUR + HOUR / 2) * 1000000000LL, HOUR * 1000000000LL);
	arm(fired, 0, 1 * MS, 0);
	arm(armed, 0, HOUR * 1000000000LL, 0);
	arm(cancel, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, ns(&now) + HOUR * 1000000000LL, 0);
	if (!test_poll(has_fired, &fired, 10000) || !test_poll(has_fired, &past, 10000))
		fail("the timers did not fire within 10 s");
	fdinfo_line(cancel, "settime flags:", before, sizeof(before));

	test_ready();
	test_wait_check();

	/* periodic: same interval, fires (blocking read) */
	if (timerfd_gettime(periodic, &its))
		fail_errno("timerfd_gettime");
	if (ns(&its.it_interval) != 20 * MS || ns(&its.it_value) > 20 * MS)
		fail("periodic: interval %lld ns, next in %lld ns", ns(&its.it_interval), ns(&its.it_value));
	if (ticks(periodic, "periodic") < 1)
		fail("periodic: no expiration");
	if (ticks(periodic, "periodic again") < 1)
		fail("periodic: no second expiration");

	/* past: the 6 owed expirations, next within half an hour */
	if ((n = ticks(past, "past")) != 6)
		fail("past: %llu expirations, not 6", (unsigned long long)n);
	if (timerfd_gettime(past, &its))
		fail_errno("timerfd_gettime");
	if (ns(&its.it_interval) != HOUR * 1000000000LL || ns(&its.it_value) <= 0 ||
	    ns(&its.it_value) > HOUR / 2 * 1000000000LL)
		fail("past: interval %lld ns, next in %lld ns", ns(&its.it_interval), ns(&its.it_value));
	expect_empty(past, "past after its read");

	/* fired: one expiration, then nothing, disarmed */
	if ((n = ticks(fired, "fired")) != 1)
		fail("fired: %llu expirations, not 1", (unsigned long long)n);
	expect_empty(fired, "fired after its read");
	if (timerfd_gettime(fired, &its) || ns(&its.it_value) || ns(&its.it_interval))
		fail("fired: armed again (%lld ns)", ns(&its.it_value));

	/* armed: time left in (0, 1 h], nothing to read */
	expect_empty(armed, "armed");
	if (timerfd_gettime(armed, &its) || ns(&its.it_value) <= 0 ||
	    ns(&its.it_value) > HOUR * 1000000000LL || ns(&its.it_interval))
		fail("armed: next in %lld ns, interval %lld", ns(&its.it_value), ns(&its.it_interval));

	/* cancel: absolute with cancel-on-set, in about an hour */
	fdinfo_line(cancel, "settime flags:", after, sizeof(after));
	if (strcmp(before, after))
		fail("cancel: '%s', was '%s'", after, before);
	expect_empty(cancel, "cancel");
	if (timerfd_gettime(cancel, &its) || ns(&its.it_value) <= 0 ||
	    ns(&its.it_value) > HOUR * 1000000000LL)
		fail("cancel: next in %lld ns", ns(&its.it_value));

	expect_empty(idle, "idle");
	if (timerfd_gettime(idle, &its) || ns(&its.it_value) || ns(&its.it_interval))
		fail("idle: armed after restore");
	pass();
}
