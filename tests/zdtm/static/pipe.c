// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Pipes with data in flight, both ends open in this process:
 *   - a pipe with 3000 bytes queued, written in several chunks;
 *   - a pipe filled to the last byte (64 KiB): the writer must still get
 *     EAGAIN after restore, not find room;
 *   - a pipe whose capacity was raised with F_SETPIPE_SZ, half full;
 *   - a pipe whose write end is closed: the reader gets the data, then EOF.
 * After restore the bytes come out in order, capacities are kept, and the
 * ends are still connected.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static char buf[1 << 20], chk[1 << 20];

static void expect_data(int fd, size_t len, uint64_t seed, const char *what)
{
	if (test_read_all(fd, chk, len))
		fail_errno("%s: read %zu bytes", what, len);
	test_fill(buf, len + 8, seed);
	if (memcmp(chk, buf, len)) {
		size_t i = 0;

		while (chk[i] == buf[i])
			i++;
		fail("%s: byte %zu of %zu differs", what, i, len);
	}
}

static void expect_empty(int fd, const char *what)
{
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	n = read(fd, chk, 1);
	if (!(n < 0 && errno == EAGAIN))
		fail("%s: not empty after its data (read %zd)", what, n);
	fcntl(fd, F_SETFL, fl);
}

int main(int argc, char **argv)
{
	int small[2], full[2], big[2], closed[2];
	int full_size, big_size;

	test_init(argc, argv);
	if (pipe(small) || pipe2(full, O_NONBLOCK) || pipe(big) || pipe(closed))
		fail_errno("pipe");

	test_fill(buf, 3008, 1500);
	for (int off = 0; off < 3000; off += 1000)
		test_write_all(small[1], buf + off, 1000);

	full_size = fcntl(full[0], F_GETPIPE_SZ);
	test_fill(buf, (size_t)full_size, 1501);
	if (test_write_all(full[1], buf, (size_t)full_size))
		fail_errno("fill pipe");
	if (write(full[1], "x", 1) >= 0 || errno != EAGAIN)
		fail("before: a full pipe took one more byte");

	big_size = fcntl(big[1], F_SETPIPE_SZ, 256 << 10);
	if (big_size < (256 << 10))
		fail_errno("F_SETPIPE_SZ");
	test_fill(buf, 128 << 10, 1502);
	test_write_all(big[1], buf, 128 << 10);

	test_fill(buf, 512, 1503);
	test_write_all(closed[1], buf, 512);
	close(closed[1]);

	test_ready();
	test_wait_check();

	expect_data(small[0], 3000, 1500, "small pipe");
	expect_empty(small[0], "small pipe");
	if (write(full[1], "x", 1) >= 0 || errno != EAGAIN)
		fail("the full pipe took one more byte after restore");
	if (fcntl(full[0], F_GETPIPE_SZ) != full_size)
		fail("full pipe: capacity %d, was %d", fcntl(full[0], F_GETPIPE_SZ), full_size);
	fcntl(full[0], F_SETFL, 0);
	expect_data(full[0], (size_t)full_size, 1501, "full pipe");
	if (fcntl(big[0], F_GETPIPE_SZ) != big_size)
		fail("big pipe: capacity %d, was %d", fcntl(big[0], F_GETPIPE_SZ), big_size);
	expect_data(big[0], 128 << 10, 1502, "big pipe");
	expect_data(closed[0], 512, 1503, "pipe with closed write end");
	if (read(closed[0], chk, 1) != 0)
		fail("pipe with closed write end: no EOF after its data");
	/* Still connected. */
	if (write(small[1], "ping", 4) != 4 || read(small[0], chk, 4) != 4 || memcmp(chk, "ping", 4))
		fail("small pipe's ends are not connected after restore");
	pass();
}
