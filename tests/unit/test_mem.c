/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the source's page reads (mem/server.c) on a live child.
 *
 * Reading a page must leave it as it was: in particular a page the child
 * still shares copy-on-write with its parent stays one page.  A pinning
 * read (process_vm_readv) makes the kernel give the child its own copy
 * first, so a pre-copy round over a prefork server would multiply its
 * memory by its workers while it runs, and for good after a rollback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mem/mem.h"
#include "base/util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGES 64
#define PAGE 4096UL
#define PM_PFN(x) ((x) & ((1ULL << 55) - 1))
#define PM_PRESENT (1ULL << 63)

/* The pagemap entry of one page of pid. */
static uint64_t pm_entry(pid_t pid, const void *addr)
{
	char path[64];
	uint64_t e = 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / PAGE * sizeof(e))),
			 sizeof(e));
	close(fd);
	return e;
}

static void test_read_keeps_cow(void **state)
{
	(void)state;
	uint8_t *m = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	for (size_t i = 0; i < PAGES * PAGE; i++)
		m[i] = (uint8_t)(i * 7 + 1);
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		close(ready[0]);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);

	uint64_t before = pm_entry(pid, m);
	if (!PM_PFN(before)) { /* no PFNs without CAP_SYS_ADMIN: nothing to compare */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		munmap(m, PAGES * PAGE);
		skip();
	}
	assert_true(before & PM_PRESENT);
	assert_int_equal(PM_PFN(before), PM_PFN(pm_entry(getpid(), m)));

	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int memfd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(memfd >= 0);
	uint8_t *buf = xmalloc(PAGES * PAGE);
	int r = mem_read_remote(pid, memfd, (uint64_t)(uintptr_t)m, buf, PAGES * PAGE);
	size_t unshared = 0;
	for (size_t k = 0; k < PAGES; k++)
		unshared += PM_PFN(pm_entry(pid, m + k * PAGE)) != PM_PFN(pm_entry(getpid(), m + k * PAGE));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(memfd);
	assert_int_equal(r, 0);
	assert_memory_equal(buf, m, PAGES * PAGE);
	if (unshared)
		fail_msg("%zu of %d pages of the child are no longer shared with its parent after the read",
			 unshared, PAGES);
	free(buf);
	munmap(m, PAGES * PAGE);
}

/* An unreadable page (PROT_NONE) is read too (FOLL_FORCE), a hole is an error. */
static void test_read_prot_none(void **state)
{
	(void)state;
	uint8_t *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	memset(m, 0x5a, PAGE);
	assert_int_equal(mprotect(m, PAGE, PROT_NONE), 0);
	assert_int_equal(munmap(m + PAGE, PAGE), 0);
	int memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	assert_true(memfd >= 0);
	uint8_t buf[PAGE];
	assert_int_equal(mem_read_remote(getpid(), memfd, (uint64_t)(uintptr_t)m, buf, PAGE), 0);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(buf[PAGE - 1], 0x5a);
	assert_int_equal(mem_read_remote(getpid(), memfd, (uint64_t)(uintptr_t)(m + PAGE), buf, PAGE),
			 -EFAULT);
	close(memfd);
	munmap(m, PAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_keeps_cow),
		cmocka_unit_test(test_read_prot_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
