// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * A process tree: the root, 3 children, 2 grandchildren under each.
 * Every process keeps its own pid, its parent's pid, a per-process value
 * and a private buffer seeded by it (COW-shared with the parent until
 * written). After restore each checks its own state, stops its children
 * and reaps them; the root reports.
 */
#include "zdtm.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define NR_CHILDREN	3
#define NR_GRAND	2
#define BUF_SIZE	(64 << 10)

struct node {
	int level, idx;
	pid_t pid, ppid;
	uint64_t value;
	pid_t kids[NR_CHILDREN];
	int nr_kids;
};

static struct node self;
static uint64_t *buf;

static uint64_t node_value(int level, int idx)
{
	return test_mix64(0xf0f0ULL + (uint64_t)level * 100 + (uint64_t)idx);
}

static void node_setup(int level, int idx)
{
	self.level = level;
	self.idx = idx;
	self.pid = getpid();
	self.ppid = getppid();
	self.value = node_value(level, idx);
	self.nr_kids = 0;
	test_fill(buf, BUF_SIZE, self.value);
}

static void node_check(void)
{
	size_t bad;

	if (getpid() != self.pid)
		fail("level %d #%d: getpid %d, was %d", self.level, self.idx, getpid(), self.pid);
	if (self.level > 0 && getppid() != self.ppid)
		fail("level %d #%d (pid %d): getppid %d, was %d", self.level, self.idx, self.pid,
		     getppid(), self.ppid);
	if (self.value != node_value(self.level, self.idx))
		fail("level %d #%d: value changed", self.level, self.idx);
	bad = test_check(buf, BUF_SIZE, self.value);
	if (bad != (size_t)-1)
		fail("level %d #%d: buffer differs at offset %zu", self.level, self.idx, bad);
}

static void spawn(int level, int n, int barrier[2]);

static __attribute__((noreturn)) void node_main(int level, int idx, int barrier[2])
{
	node_setup(level, idx);
	if (level < 2)
		spawn(level + 1, NR_GRAND, barrier);
	test_barrier_done(barrier);
	test_wait_check();
	node_check();
	test_stop_children(self.kids, self.nr_kids, level == 0 ? "child" : "grandchild");
	_exit(0);
}

static void spawn(int level, int n, int barrier[2])
{
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0)
			fail_errno("fork");
		if (pid == 0)
			node_main(level, self.idx * 10 + i, barrier);
		self.kids[self.nr_kids++] = pid;
	}
}

int main(int argc, char **argv)
{
	int barrier[2];

	test_init(argc, argv);
	buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail_errno("mmap");
	node_setup(0, 0);
	test_barrier_init(barrier);
	spawn(1, NR_CHILDREN, barrier);
	test_barrier_wait(barrier);

	test_ready();
	test_wait_check();

	node_check();
	test_stop_children(self.kids, self.nr_kids, "child");
	pass();
}
