// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * The vDSO after restore: clock_gettime (monotonic does not go backwards,
 * and agrees with the real syscall, which catches a vDSO reading the
 * wrong [vvar] page), gettimeofday and time agree with the syscalls, and
 * AT_SYSINFO_EHDR still points at the [vdso] mapping.
 */
#include "zdtm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static unsigned long vdso_in_maps(void)
{
	char text[65536];
	unsigned long s;

	if (test_read_file("/proc/self/maps", text, sizeof(text)) < 0)
		fail_errno("read maps");
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"))
		if (strstr(l, "[vdso]") && sscanf(l, "%lx-", &s) == 1)
			return s;
	return 0;
}

static void compare_clocks(clockid_t id, const char *name, int64_t slack_ns)
{
	struct timespec v, s;

	for (int i = 0; i < 1000; i++) {
		if (clock_gettime(id, &v))
			fail_errno("clock_gettime(%s)", name);
		if (syscall(SYS_clock_gettime, id, &s))
			fail_errno("syscall clock_gettime(%s)", name);
		int64_t d = ns(&s) - ns(&v);

		if (d < 0 || d > slack_ns)
			fail("%s: vDSO says %lld.%09ld, syscall says %lld.%09ld right after", name,
			     (long long)v.tv_sec, v.tv_nsec, (long long)s.tv_sec, s.tv_nsec);
	}
}

int main(int argc, char **argv)
{
	struct timespec m0, m1, prev, cur;
	struct timeval tv, stv;
	unsigned long ehdr;

	test_init(argc, argv);
	ehdr = getauxval(AT_SYSINFO_EHDR);
	if (!ehdr || ehdr != vdso_in_maps())
		fail("before: AT_SYSINFO_EHDR %#lx, [vdso] at %#lx", ehdr, vdso_in_maps());
	clock_gettime(CLOCK_MONOTONIC, &m0);

	test_ready();
	test_wait_check();

	if (getauxval(AT_SYSINFO_EHDR) != vdso_in_maps())
		fail("AT_SYSINFO_EHDR %#lx, but [vdso] is at %#lx after restore",
		     getauxval(AT_SYSINFO_EHDR), vdso_in_maps());
	clock_gettime(CLOCK_MONOTONIC, &m1);
	if (ns(&m1) < ns(&m0))
		fail("CLOCK_MONOTONIC went backwards: %lld ns before the checkpoint, %lld after",
		     (long long)ns(&m0), (long long)ns(&m1));
	/* Monotonic within the restored process, over many calls. */
	prev = m1;
	for (int i = 0; i < 100000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &cur);
		if (ns(&cur) < ns(&prev))
			fail("CLOCK_MONOTONIC went backwards between two calls");
		prev = cur;
	}
	compare_clocks(CLOCK_MONOTONIC, "CLOCK_MONOTONIC", 50000000);
	compare_clocks(CLOCK_REALTIME, "CLOCK_REALTIME", 50000000);
	compare_clocks(CLOCK_BOOTTIME, "CLOCK_BOOTTIME", 50000000);
	gettimeofday(&tv, NULL);
	syscall(SYS_gettimeofday, &stv, NULL);
	if (stv.tv_sec - tv.tv_sec > 1 || stv.tv_sec < tv.tv_sec)
		fail("gettimeofday %ld vs syscall %ld", (long)tv.tv_sec, (long)stv.tv_sec);
	time_t t = time(NULL);

	if (labs((long)(t - stv.tv_sec)) > 1)
		fail("time() %ld vs gettimeofday %ld", (long)t, (long)stv.tv_sec);
	pass();
}
