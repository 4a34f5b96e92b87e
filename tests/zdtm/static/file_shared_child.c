// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * An fd inherited by a child: one open file shared by two processes. After
 * restore a read in the child moves the parent's offset too, and the
 * parent reads on from where the child stopped.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define SIZE 8192

static char buf[SIZE];
static int fd;

int main(int argc, char **argv)
{
	char chk[64];
	int go[2], barrier[2];
	const char *path;
	pid_t child;

	test_init(argc, argv);
	path = test_path("file_shared_child.dat");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail_errno("open");
	test_fill(buf, SIZE, 1400);
	test_write_all(fd, buf, SIZE);
	lseek(fd, 1000, SEEK_SET);
	if (pipe(go))
		fail_errno("pipe");
	test_barrier_init(barrier);

	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		char c;

		close(go[1]);
		test_barrier_done(barrier);
		/* Blocked here across the checkpoint; the parent says when. */
		if (test_read_all(go[0], &c, 1))
			fail("child: no go from the parent");
		if (lseek(fd, 0, SEEK_CUR) != 1000)
			fail("child: offset %lld, want 1000", (long long)lseek(fd, 0, SEEK_CUR));
		if (read(fd, chk, 24) != 24 || memcmp(chk, buf + 1000, 24))
			fail("child: read at the shared offset is wrong");
		_exit(0);
	}
	close(go[0]);
	test_barrier_wait(barrier);

	test_ready();
	test_wait_check();

	if (lseek(fd, 0, SEEK_CUR) != 1000)
		fail("parent: offset %lld, want 1000", (long long)lseek(fd, 0, SEEK_CUR));
	if (test_write_all(go[1], "g", 1))
		fail_errno("write(go)");
	test_reap_ok(child, "child");
	if (lseek(fd, 0, SEEK_CUR) != 1024)
		fail("parent's offset %lld after the child read 24 bytes, want 1024: not shared",
		     (long long)lseek(fd, 0, SEEK_CUR));
	if (read(fd, chk, 8) != 8 || memcmp(chk, buf + 1024, 8))
		fail("parent's read is wrong");
	unlink(path);
	pass();
}
