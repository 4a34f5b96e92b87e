// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * eventfds:
 *   - a counter of 42 (made 5, written 37), blocking, with a dup: one
 *     description, read through either fd;
 *   - a semaphore (EFD_SEMAPHORE) of 3, non-blocking: three reads of 1,
 *     then EAGAIN;
 *   - an empty one: EAGAIN;
 *   - a counter near the top (2^64 - 16): one more write of 15 fits, of 16
 *     would block (EAGAIN).
 * After restore each counter, flag and the sharing are as they were.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

static uint64_t get(int fd, const char *what)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		fail_errno("%s: read", what);
	return v;
}

static void expect_eagain(int fd, const char *what)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) >= 0 || errno != EAGAIN)
		fail("%s: readable when it should be empty", what);
}

int main(int argc, char **argv)
{
	uint64_t v = 37, top = UINT64_MAX - 16;
	int plain, plain_dup, sem, empty, high;

	test_init(argc, argv);
	plain = eventfd(5, EFD_CLOEXEC);
	sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	empty = eventfd(0, EFD_NONBLOCK);
	high = eventfd(0, EFD_NONBLOCK);
	if (plain < 0 || sem < 0 || empty < 0 || high < 0)
		fail_errno("eventfd");
	if (write(plain, &v, sizeof(v)) != sizeof(v) || write(high, &top, sizeof(top)) != sizeof(top))
		fail_errno("write");
	plain_dup = dup(plain);

	test_ready();
	test_wait_check();

	if (fcntl(plain, F_GETFL) & O_NONBLOCK)
		fail("the blocking eventfd is non-blocking");
	if (!(fcntl(sem, F_GETFL) & O_NONBLOCK))
		fail("the semaphore lost O_NONBLOCK");
	if (!(fcntl(plain, F_GETFD) & FD_CLOEXEC) || (fcntl(plain_dup, F_GETFD) & FD_CLOEXEC))
		fail("close-on-exec flags changed");
	fcntl(plain_dup, F_SETFL, O_NONBLOCK); /* one description: both fds are non-blocking now */
	if (!(fcntl(plain, F_GETFL) & O_NONBLOCK))
		fail("the dup of the eventfd is another description");
	if ((v = get(plain_dup, "counter")) != 42)
		fail("counter: %llu, was 42", (unsigned long long)v);
	expect_eagain(plain, "counter after its read");
	for (int i = 0; i < 3; i++)
		if ((v = get(sem, "semaphore")) != 1)
			fail("semaphore: read %d gave %llu, not 1", i, (unsigned long long)v);
	expect_eagain(sem, "semaphore after three reads");
	expect_eagain(empty, "empty eventfd");
	v = 16;
	if (write(high, &v, sizeof(v)) >= 0 || errno != EAGAIN)
		fail("the high counter took 16 more: it was not 2^64 - 16");
	v = 15;
	if (write(high, &v, sizeof(v)) != sizeof(v))
		fail_errno("the high counter did not take 15 more");
	if ((v = get(high, "high counter")) != UINT64_MAX - 1)
		fail("high counter: %llu", (unsigned long long)v);
	/* still an eventfd that wakes */
	v = 7;
	if (write(sem, &v, sizeof(v)) != sizeof(v) || get(sem, "semaphore") != 1)
		fail("the semaphore does not count after restore");
	pass();
}
