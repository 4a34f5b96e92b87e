/* SPDX-License-Identifier: MIT */
/*
 * e2e mem/local-fault-event: a tree one of whose threads frees memory
 * (MADV_DONTNEED, what a thread's exit does to its stack: a REMOVE event on
 * the destination's userfaultfd) while a fault of another thread on a page
 * of the destination's store is being handled there.
 *
 *   localfault LOG TRIGGER
 *
 * DATA_PAGES pages of a pattern, never written again (clean after hybrid's
 * pre-copy pass: on the destination they are in its store, and a fault on
 * one is a local fault), SCRATCH_PAGES pages of another pattern, and a
 * second thread, the freer, which ticks every millisecond.  "ready
 * uts=HOST" once all is set.  Once the freer has ticked ARMED_TICKS times in
 * another host (its uts name), the main thread says "armed uts=HOST" and
 * waits for the file TRIGGER.read, then reads DATA (faults on it are local
 * ones); the freer, as soon as the file TRIGGER.free exists, drops SCRATCH
 * with MADV_DONTNEED (the kernel queues the event, and the freer waits for
 * it to be read).  Then every DATA page must hold its pattern and every
 * SCRATCH page read zeros: "check N uts=HOST ok" (or "check N uts=HOST BAD
 * ..."), again every 200 ms.
 *
 * The test holds the destination's first local fault after "armed": its
 * handler then serves no other fault until TRIGGER.free has done its work,
 * so from "armed" on the freer must not fault.  Its loop is the same on
 * every tick from the start (after ARMED_TICKS ticks in the new host every
 * page it touches is in) and touches only its stack, its errno and the `hot`
 * page, with its syscalls made through syscall() (no cancellation or
 * stack-protector reads of the thread's TCB) and their arguments in `hot`
 * (the kernel reads the path: TRIGGER copied there, not read from argv's
 * page).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / sizeof(uint64_t))
#define DATA_PAGES 4096u /* 16 MiB */
#define SCRATCH_PAGES 64u
#define ARMED_TICKS 50

struct hot {
	volatile uint64_t ticks;
	volatile int armed, freed;
	volatile long freed_rc;
	struct utsname home, u;
	struct timespec ms;
	uint8_t *scratch;
	char trigger[512];
};

static uint64_t pattern(uint64_t page, unsigned w, uint64_t salt)
{
	return (page * 1000003u + w * 7u + 11u) ^ salt;
}

/* the same host name; no libc call (see above) */
static int same_host(const struct utsname *a, const struct utsname *b)
{
	for (size_t i = 0; i < sizeof(a->nodename); i++) {
		if (a->nodename[i] != b->nodename[i])
			return 0;
		if (!a->nodename[i])
			break;
	}
	return 1;
}

static void *freer(void *arg)
{
	struct hot *h = arg;
	unsigned away = 0;

	for (;;) {
		h->ticks++;
		syscall(SYS_uname, &h->u);
		if (!same_host(&h->u, &h->home) && away < ARMED_TICKS && ++away == ARMED_TICKS)
			h->armed = 1;
		/* on every tick, armed or not: the same pages every time */
		if (syscall(SYS_access, h->trigger, F_OK) == 0 && h->armed) {
			h->freed_rc = syscall(SYS_madvise, h->scratch, SCRATCH_PAGES * PAGE, MADV_DONTNEED);
			h->freed = 1;
			return NULL;
		}
		syscall(SYS_nanosleep, &h->ms, NULL);
	}
}

/* the first word of p[0, pages) that is not what it should be, or -1 */
static long bad_word(const volatile uint64_t *p, uint64_t pages, uint64_t salt, int zero)
{
	for (uint64_t pg = 0; pg < pages; pg++)
		for (unsigned w = 0; w < WORDS; w++)
			if (p[pg * WORDS + w] != (zero ? 0 : pattern(pg, w, salt)))
				return (long)(pg * WORDS + w);
	return -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	if (argc < 3 || strlen(argv[2]) + sizeof(".free") > sizeof(((struct hot *)0)->trigger))
		return 2;
	FILE *log = fopen(argv[1], "a");
	char *go_read = NULL;
	const uint64_t dsalt = 0x5a5a0000u;
	struct hot *h = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *data = mmap(NULL, DATA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *scratch = mmap(NULL, SCRATCH_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!log || h == MAP_FAILED || data == MAP_FAILED || scratch == MAP_FAILED ||
	    asprintf(&go_read, "%s.read", argv[2]) < 0)
		return 2;
	setvbuf(log, NULL, _IOLBF, 0);
	for (uint64_t pg = 0; pg < DATA_PAGES; pg++)
		for (unsigned w = 0; w < WORDS; w++)
			data[pg * WORDS + w] = pattern(pg, w, dsalt);
	for (uint64_t pg = 0; pg < SCRATCH_PAGES; pg++)
		for (unsigned w = 0; w < WORDS; w++)
			scratch[pg * WORDS + w] = pattern(pg, w, ~dsalt);
	uname(&h->home);
	h->ms = (struct timespec){ 0, 1000000 };
	h->scratch = (uint8_t *)scratch;
	snprintf(h->trigger, sizeof(h->trigger), "%s.free", argv[2]);
	pthread_t t;
	if (pthread_create(&t, NULL, freer, h))
		return 2;
	fprintf(log, "ready uts=%s data=%p scratch=%p\n", h->home.nodename, (void *)data, (void *)scratch);

	while (!h->armed)
		sleep_ms(5);
	struct utsname u;
	uname(&u);
	fprintf(log, "armed uts=%s ticks=%llu\n", u.nodename, (unsigned long long)h->ticks);
	while (access(go_read, F_OK) != 0)
		sleep_ms(1);
	long bd = bad_word(data, DATA_PAGES, dsalt, 0);
	while (!h->freed)
		sleep_ms(1);
	long bs = h->freed_rc ? -2 : bad_word(scratch, SCRATCH_PAGES, 0, 1);
	for (unsigned n = 1;; n++) {
		uname(&u);
		if (bd >= 0 || bs != -1) {
			fprintf(log, "check %u uts=%s BAD %s\n", n, u.nodename,
				bd >= 0 ? "a DATA word is not its pattern" :
				bs == -2 ? "madvise failed" : "a SCRATCH word is not 0 after MADV_DONTNEED");
			return 1;
		}
		fprintf(log, "check %u uts=%s ok\n", n, u.nodename);
		sleep_ms(200);
		bd = bad_word(data, DATA_PAGES, dsalt, 0);
		bs = bad_word(scratch, SCRATCH_PAGES, 0, 1);
	}
}
