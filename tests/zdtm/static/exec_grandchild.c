// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * The root keeps a buffer that its child shares copy-on-write (the child
 * never writes it: the root's memory is restored before it forks); the
 * child's own child has exec'd this same program again, so it shares
 * nothing and holds the exe file it was cloned with.  The restore makes
 * the grandchild as a copy of a copy of the root: it has that exe file
 * already and must keep it (the kernel refuses to replace an exe file
 * that is still mapped: EBUSY).  A busybox shell's subshell that has just
 * exec'd an applet is such a grandchild.  After restore each checks its
 * pid and the buffer; the grandchild exits 0 on SIGTERM.
 */
#include "zdtm.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BUF_SIZE (256 << 10)
#define SEED 0x5eedULL

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* the grandchild, after exec: ready (a byte on fd), then until SIGTERM */
static int exec_child(int fd)
{
	pid_t me = getpid();
	struct sigaction sa = { .sa_handler = on_term };
	char c = 'r';

	sigaction(SIGTERM, &sa, NULL);
	if (write(fd, &c, 1) != 1)
		return 2;
	close(fd);
	while (!got_term)
		pause();
	return getpid() == me ? 0 : 3;
}

int main(int argc, char **argv)
{
	int barrier[2], ready[2];
	uint64_t *buf;
	pid_t child;

	if (argc == 3 && !strcmp(argv[1], "--exec-child"))
		return exec_child(atoi(argv[2]));
	test_init(argc, argv);
	buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail_errno("mmap");
	test_fill(buf, BUF_SIZE, SEED);
	test_barrier_init(barrier);
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		pid_t me = getpid(), grand;
		char c, fdarg[16];
		if (pipe(ready))
			fail_errno("pipe");
		grand = fork();
		if (grand < 0)
			fail_errno("fork");
		if (grand == 0) {
			close(ready[0]);
			snprintf(fdarg, sizeof(fdarg), "%d", ready[1]);
			execl("/proc/self/exe", "exec_grandchild", "--exec-child", fdarg, (char *)NULL);
			_exit(4);
		}
		close(ready[1]);
		if (read(ready[0], &c, 1) != 1)
			fail("the grandchild did not start");
		close(ready[0]);
		test_barrier_done(barrier);
		test_wait_check();
		if (getpid() != me)
			fail("child: getpid %d, was %d", getpid(), me);
		size_t bad = test_check(buf, BUF_SIZE, SEED);
		if (bad != (size_t)-1)
			fail("child: buffer differs at offset %zu", bad);
		test_stop_children(&grand, 1, "grandchild");
		_exit(0);
	}
	test_barrier_wait(barrier);
	test_ready();
	test_wait_check();
	size_t bad = test_check(buf, BUF_SIZE, SEED);
	if (bad != (size_t)-1)
		fail("buffer differs at offset %zu", bad);
	test_stop_children(&child, 1, "child");
	pass();
}
