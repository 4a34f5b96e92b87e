/* SPDX-License-Identifier: MIT */
/*
 * e2e vmflags: a VMA whose madvise state changes between the source's early
 * read of the VMA flags and its freeze must have the new state on the
 * destination.
 *
 *   madv_flip LOG     maps 64 pages, says "ready";
 *   SIGUSR1           madvise(MADV_DONTFORK) over the whole VMA, "flipped";
 *   SIGTERM           checks that smaps shows "dc" for it: "PASS" or "FAIL ..."
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t flip, term;
static void on_usr1(int s) { (void)s; flip = 1; }
static void on_term(int s) { (void)s; term = 1; }

static int has_dc(unsigned long start)
{
	char line[512];
	int in = 0, r = -1;
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s == start;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			r = strstr(line, " dc") != NULL;
			break;
		}
	}
	fclose(f);
	return r;
}

int main(int argc, char **argv)
{
	FILE *log = argc > 1 ? fopen(argv[1], "a") : stdout;
	size_t len = 64 * 4096;
	/* a guard page on each side keeps the VMA apart from its neighbours */
	char *g = mmap(NULL, len + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!log || g == MAP_FAILED)
		return 2;
	char *m = mmap(g + 4096, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	memset(m, 0x5a, len);
	setvbuf(log, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	signal(SIGTERM, on_term);
	fprintf(log, "ready %d\n", has_dc((unsigned long)m));
	for (;;) {
		if (flip) {
			flip = 0;
			if (madvise(m, len, MADV_DONTFORK) < 0)
				fprintf(log, "madvise failed\n");
			fprintf(log, "flipped %d\n", has_dc((unsigned long)m));
		}
		if (term) {
			int dc = has_dc((unsigned long)m);
			int ok = dc == 1 && m[len - 1] == 0x5a;
			fprintf(log, ok ? "PASS\n" : "FAIL dc=%d byte=%#x\n", dc, (unsigned char)m[len - 1]);
			return ok ? 0 : 1;
		}
		usleep(10000);
	}
}
