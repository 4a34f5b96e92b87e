/* SPDX-License-Identifier: MIT */
/*
 * Benchmark workload: a tree of NPROC processes (the root and NPROC-1
 * children) with MIB MiB of touched, non-zero private memory each.  Prints
 * "ready <pid>" on stdout once every process has filled its memory, then all
 * sleep (idle) or keep writing a page every few microseconds (--write).
 *   memhog NPROC MIB [--write]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t *fill(size_t len, uint64_t seed)
{
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	for (size_t i = 0; i < len / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
	return p;
}

static void __attribute__((noreturn)) run(uint64_t *p, size_t len, int writer)
{
	for (uint64_t i = 0;; i++) {
		if (!writer) {
			pause();
			continue;
		}
		p[(i * 512 * 7919) % (len / 8)] = i;
		if (i % 256 == 0)
			usleep(1000);
	}
}

int main(int argc, char **argv)
{
	int pfd[2];

	if (argc < 3) {
		fprintf(stderr, "usage: memhog NPROC MIB [--write]\n");
		return 2;
	}
	int n = atoi(argv[1]), writer = argc > 3 && !strcmp(argv[3], "--write");
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	if (n < 1 || len == 0 || pipe(pfd) < 0)
		return 2;
	for (int i = 1; i < n; i++) {
		if (fork() == 0) {
			close(pfd[0]);
			uint64_t *p = fill(len, i);
			char c = 'r';
			if (write(pfd[1], &c, 1) != 1)
				_exit(1);
			close(pfd[1]);
			run(p, len, writer);
		}
	}
	close(pfd[1]);
	uint64_t *p = fill(len, 0);
	for (int i = 1; i < n; i++) {
		char c;
		if (read(pfd[0], &c, 1) != 1)
			return 1;
	}
	close(pfd[0]);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	run(p, len, writer);
}
