// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Resource limits: every RLIMIT_* set to its own distinctive soft and hard
 * values (hard ones can only go down: root here lacks CAP_SYS_RESOURCE).
 * After restore prlimit() reports the same pairs.
 */
#include "zdtm.h"

#include <stdio.h>
#include <sys/resource.h>

#define KEEP ((rlim_t)-2)	/* leave the hard limit as it is */

static const struct {
	int res;
	const char *name;
	rlim_t soft, hard;
} want[] = {
	{ RLIMIT_CPU, "CPU", 3600, 7200 },
	{ RLIMIT_FSIZE, "FSIZE", 1ULL << 30, 2ULL << 30 },
	{ RLIMIT_DATA, "DATA", 8ULL << 30, KEEP },
	{ RLIMIT_STACK, "STACK", 12ULL << 20, KEEP },
	{ RLIMIT_CORE, "CORE", 0, 1ULL << 20 },
	{ RLIMIT_RSS, "RSS", 1ULL << 30, KEEP },
	{ RLIMIT_NPROC, "NPROC", 5000, 6000 },
	{ RLIMIT_NOFILE, "NOFILE", 900, 2000 },
	{ RLIMIT_MEMLOCK, "MEMLOCK", 64ULL << 10, 1ULL << 20 },
	{ RLIMIT_AS, "AS", 64ULL << 30, KEEP },
	{ RLIMIT_LOCKS, "LOCKS", 1000, 2000 },
	{ RLIMIT_SIGPENDING, "SIGPENDING", 500, 600 },
	{ RLIMIT_MSGQUEUE, "MSGQUEUE", 100000, 200000 },
	{ RLIMIT_NICE, "NICE", 5, 10 },
	{ RLIMIT_RTPRIO, "RTPRIO", 3, 4 },
	{ RLIMIT_RTTIME, "RTTIME", 1000000, 2000000 },
};

int main(int argc, char **argv)
{
	struct rlimit before[ARRAY_SIZE(want)], now;

	test_init(argc, argv);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		struct rlimit cur, rl;

		getrlimit(want[i].res, &cur);
		rl.rlim_max = want[i].hard == KEEP || want[i].hard > cur.rlim_max ? cur.rlim_max : want[i].hard;
		rl.rlim_cur = want[i].soft > rl.rlim_max ? rl.rlim_max : want[i].soft;
		if (setrlimit(want[i].res, &rl))
			fail_errno("setrlimit(RLIMIT_%s)", want[i].name);
		getrlimit(want[i].res, &before[i]);
	}

	test_ready();
	test_wait_check();

	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		if (prlimit(0, want[i].res, NULL, &now))
			fail_errno("prlimit(RLIMIT_%s)", want[i].name);
		if (now.rlim_cur != before[i].rlim_cur || now.rlim_max != before[i].rlim_max)
			fail("RLIMIT_%s: %llu/%llu, was %llu/%llu", want[i].name,
			     (unsigned long long)now.rlim_cur, (unsigned long long)now.rlim_max,
			     (unsigned long long)before[i].rlim_cur, (unsigned long long)before[i].rlim_max);
	}
	pass();
}
