/* SPDX-License-Identifier: MIT */
/*
 * Checks, from outside, that a (restored) memhog root process still holds the
 * memory memhog wrote: MIB MiB of its xorshift sequence for seed 0 (the root),
 * starting on a page boundary of a private anonymous writable mapping.  Read
 * with process_vm_readv; the process is not stopped (memhog without --write
 * does not change its memory).
 *   memcheck PID MIB
 * Exit 0 and "ok PID MIB MiB at ADDR" when every byte matches, 1 otherwise
 * (with the first mismatch), 2 on usage or access errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (4u << 20)

static uint64_t first_value(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL; /* memhog: seed 0 */

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

static int peek(pid_t pid, uintptr_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

	return n == (ssize_t)len ? 0 : -1;
}

/* Compares [addr, addr+len) with the sequence; 0 when equal. */
static int verify(pid_t pid, uintptr_t addr, size_t len, uint64_t *buf)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (size_t off = 0; off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;

		if (peek(pid, addr + off, buf, n) < 0) {
			fprintf(stderr, "memcheck: read %#" PRIxPTR ": %s\n", addr + off, strerror(errno));
			return -1;
		}
		for (size_t i = 0; i < n / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (buf[i] != x) {
				fprintf(stderr, "memcheck: mismatch at %#" PRIxPTR ": %#" PRIx64 " != %#" PRIx64 "\n",
					addr + off + i * 8, buf[i], x);
				return -1;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: memcheck PID MIB\n");
		return 2;
	}
	pid_t pid = atoi(argv[1]);
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	uint64_t want = first_value(), *buf = malloc(CHUNK);
	char path[64], line[512];
	long pg = sysconf(_SC_PAGESIZE);

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f || !buf || len == 0) {
		fprintf(stderr, "memcheck: %s: %s\n", path, strerror(errno));
		return 2;
	}
	/* Candidates: anonymous rw private areas at least len long (the
	 * buffer may have been merged with a neighbour). */
	while (fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		char perms[8];
		unsigned long long off;
		unsigned maj, min;
		unsigned long ino;
		int name = 0;

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %x:%x %lu %n", &lo, &hi, perms, &off, &maj,
			   &min, &ino, &name) < 7)
			continue;
		if (strncmp(perms, "rw-p", 4) || ino != 0 || (name && line[name] && line[name] != '\n') ||
		    hi - lo < len)
			continue;
		for (uintptr_t a = lo; a + len <= hi; a += pg) {
			uint64_t v;

			if (peek(pid, a, &v, sizeof(v)) < 0 || v != want)
				continue;
			if (verify(pid, a, len, buf) < 0) {
				fclose(f);
				return 1;
			}
			printf("ok %d %zu MiB at %#" PRIxPTR "\n", (int)pid, len >> 20, a);
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	fprintf(stderr, "memcheck: no %zu MiB memhog buffer found in %d\n", len >> 20, (int)pid);
	return 1;
}
