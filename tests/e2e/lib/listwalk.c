/* SPDX-License-Identifier: MIT */
/*
 * e2e mem/chase: a program that walks a linked list whose nodes lie one per
 * page, in a random order, over MIB MiB: in post-copy each node it reaches
 * is a fault unless the source followed the pointers of the faulting node.
 *
 *   listwalk LOG MIB   builds the list, says "ready", then walks it again
 *                      and again, each walk checked (count and sum of the
 *                      nodes' values): "walk N uts=HOST ok" every 100 ms, or
 *                      "walk N uts=HOST BAD ..." and exit
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

struct node {
	struct node *next;
	uint64_t value;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	FILE *log = fopen(argv[1], "a");
	size_t np = (size_t)atoi(argv[2]) * 256;
	if (!log || np < 2)
		return 2;
	setvbuf(log, NULL, _IOLBF, 0);
	uint8_t *m = mmap(NULL, np * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t *order = malloc(np * sizeof(*order));
	if (m == MAP_FAILED || !order)
		return 1;
	/* a random order of the pages; each node at a random 16-byte slot of its page */
	srandom(12345);
	for (size_t i = 0; i < np; i++)
		order[i] = i;
	for (size_t i = np - 1; i > 0; i--) {
		size_t j = (size_t)random() % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	struct node *head = NULL;
	uint64_t want = 0;
	for (size_t i = np; i-- > 0;) {
		struct node *n = (struct node *)(m + order[i] * PAGE + ((size_t)random() % (PAGE / 16)) * 16);
		n->value = (uint64_t)random();
		n->next = head;
		head = n;
		want += n->value;
	}
	free(order);
	fprintf(log, "ready %zu nodes\n", np);
	uint64_t last = 0;
	for (unsigned long walk = 1;; walk++) {
		uint64_t sum = 0;
		size_t count = 0;
		for (struct node *n = head; n && count <= np; n = n->next) {
			sum += n->value;
			count++;
		}
		struct utsname u;
		uname(&u);
		if (count != np || sum != want) {
			fprintf(log, "walk %lu uts=%s BAD count %zu of %zu, sum %#llx want %#llx\n", walk, u.nodename,
				count, np, (unsigned long long)sum, (unsigned long long)want);
			return 1;
		}
		if (now_ms() - last >= 100) {
			fprintf(log, "walk %lu uts=%s ok\n", walk, u.nodename);
			last = now_ms();
		}
		usleep(1000);
	}
}
