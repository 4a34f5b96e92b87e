/* SPDX-License-Identifier: MIT */
/*
 * The workload of bench/migrate.sh: MIB MiB of touched, incompressible
 * private memory; optionally a writer that dirties RATE random pages per
 * second; and a heartbeat thread that appends an 8-byte CLOCK_REALTIME
 * timestamp to BEATFILE every millisecond.  The largest gap between two
 * beats is the interruption a client of the program saw (the downtime
 * measured from outside the migration tool).  The heartbeat touches only its
 * own stack and code, so in post-copy it runs on while the writer waits for
 * pages.
 *
 *   migrate_hog MIB RATE BEATFILE      (RATE 0: idle)
 * prints "ready PID" on stdout once the memory is filled.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int beat_fd;

static void *beat(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
		if (write(beat_fd, &ns, sizeof(ns)) != sizeof(ns))
			_exit(3);
		struct timespec d = { 0, 1000000 };
		nanosleep(&d, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: migrate_hog MIB RATE BEATFILE\n");
		return 2;
	}
	size_t len = strtoull(argv[1], NULL, 10) << 20;
	long rate = atol(argv[2]);
	size_t npages = len / 4096;
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!len || p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < len / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
	beat_fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (beat_fd < 0) {
		perror(argv[3]);
		return 1;
	}
	pthread_t t;
	pthread_create(&t, NULL, beat, NULL);
	printf("ready %d\n", getpid());
	fflush(stdout);
	if (rate <= 0)
		for (;;)
			pause();
	/* RATE pages per second, in steps of one millisecond */
	long per_ms = rate / 1000 ? rate / 1000 : 1;
	long every = rate >= 1000 ? 1 : 1000 / rate;
	for (uint64_t i = 0;; i++) {
		for (long k = 0; k < per_ms; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[(x % npages) * 512] = i;
		}
		struct timespec d = { 0, every * 1000000 };
		nanosleep(&d, NULL);
	}
}
