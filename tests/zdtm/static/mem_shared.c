// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Shared anonymous memory between a parent and its child
 * (MAP_SHARED|MAP_ANONYMOUS before fork). Each writes its half before the
 * checkpoint; after restore both see both halves, and a write by one is
 * seen by the other: one shmem object, not two private copies.
 */
#include "zdtm.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE (4UL << 20)

struct ctl {
	atomic_int child_done;	/* child wrote its half */
	atomic_ulong ping;	/* parent -> child after restore */
	atomic_ulong pong;	/* child -> parent */
};

static char *mem;
static struct ctl *ctl;

static void check_halves(const char *who)
{
	size_t bad = test_check(mem, SIZE / 2, 1);

	if (bad != (size_t)-1)
		fail("%s: parent's half differs at %zu", who, bad);
	bad = test_check(mem + SIZE / 2, SIZE / 2, 2);
	if (bad != (size_t)-1)
		fail("%s: child's half differs at %zu", who, SIZE / 2 + bad);
}

static bool pinged(void *arg)
{
	(void)arg;
	return atomic_load(&ctl->ping) == 0xabcdef;
}

static bool ponged(void *arg)
{
	(void)arg;
	return atomic_load(&ctl->pong) == 0x123456;
}

int main(int argc, char **argv)
{
	pid_t child;

	test_init(argc, argv);
	mem = mmap(NULL, SIZE + 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail_errno("mmap");
	ctl = (struct ctl *)(mem + SIZE);
	test_fill(mem, SIZE / 2, 1);

	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		test_fill(mem + SIZE / 2, SIZE / 2, 2);
		atomic_store(&ctl->child_done, 1);
		test_wait_check();
		check_halves("child");
		/* The parent writes after restore; we must see it. */
		if (!test_poll(pinged, NULL, 10000) || atomic_load(&ctl->ping) != 0xabcdef)
			fail("child does not see the parent's write after restore");
		mem[SIZE / 2 - 1] ^= 0x5a;	/* parent checks this */
		atomic_store(&ctl->pong, 0x123456);
		_exit(0);
	}
	while (!atomic_load(&ctl->child_done))
		test_sleep_ms(1);
	check_halves("parent, before");

	test_ready();
	test_wait_check();

	check_halves("parent");
	if (kill(child, SIGTERM))
		fail_errno("kill(child)");
	atomic_store(&ctl->ping, 0xabcdef);
	if (!test_poll(ponged, NULL, 10000))
		fail("parent does not see the child's write after restore");
	mem[SIZE / 2 - 1] ^= 0x5a;
	check_halves("parent, after exchange");
	test_reap_ok(child, "child");
	pass();
}
