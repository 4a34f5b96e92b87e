/* SPDX-License-Identifier: MIT */
/*
 * e2e mem/eager-presend: a program whose own data segment (a private file
 * mapping: its pages, once written, are copies a userfaultfd cannot serve,
 * so a post-copy sends them eagerly) is partly written all the time.
 *
 *   datawrite LOG   writes a pattern into all DATA_PAGES pages of its data
 *                   array, then every millisecond a counter into the first
 *                   HOT_PAGES of them and into a copy on the heap; checks
 *                   on every tick that the hot pages hold the counter and
 *                   the others the pattern: "tick N uts=HOST ok" every
 *                   100 ms, or "tick N uts=HOST BAD ..." and exit
 *
 * A migration that sent the data pages before the freeze must send again
 * those written since (the hot ones), and may take the others as they were.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define DATA_PAGES 16
#define HOT_PAGES 4
#define WORDS (4096 / sizeof(uint64_t))

/* initialized: in .data, mapped from the executable */
static volatile uint64_t data[DATA_PAGES][WORDS] __attribute__((aligned(4096))) = { { 1 } };

static uint64_t pattern(unsigned p, unsigned w)
{
	return (uint64_t)p * 1000003u + w * 7u + 11u;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	FILE *log = fopen(argv[1], "a");
	uint64_t *mirror = calloc(1, sizeof(*mirror));
	if (!log || !mirror)
		return 2;
	setvbuf(log, NULL, _IOLBF, 0);
	for (unsigned p = 0; p < DATA_PAGES; p++)
		for (unsigned w = 0; w < WORDS; w++)
			data[p][w] = pattern(p, w);
	struct timespec tick = { 0, 1000000 };
	for (uint64_t n = 1;; n++) {
		for (unsigned p = 0; p < HOT_PAGES; p++)
			data[p][0] = n;
		*mirror = n;
		nanosleep(&tick, NULL);
		struct utsname u;
		uname(&u);
		for (unsigned p = 0; p < DATA_PAGES; p++) {
			uint64_t want = p < HOT_PAGES ? *mirror : pattern(p, 0);
			if (data[p][0] != want || data[p][WORDS - 1] != pattern(p, WORDS - 1)) {
				fprintf(log, "tick %llu uts=%s BAD page %u holds %llu, %llu expected\n",
					(unsigned long long)n, u.nodename, p, (unsigned long long)data[p][0],
					(unsigned long long)want);
				return 1;
			}
		}
		if (n % 100 == 0)
			fprintf(log, "tick %llu uts=%s ok\n", (unsigned long long)n, u.nodename);
	}
}
