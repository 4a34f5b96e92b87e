// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Character devices: /dev/null (read-write), /dev/zero (read-only, at an
 * offset), /dev/urandom. After restore each fd names the same device
 * (st_rdev), has its mode, and behaves like it.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const struct {
	const char *path;
	int flags;
	unsigned maj, min;
} devs[] = {
	{ "/dev/null", O_RDWR, 1, 3 },
	{ "/dev/zero", O_RDONLY, 1, 5 },
	{ "/dev/urandom", O_RDONLY, 1, 9 },
};

int main(int argc, char **argv)
{
	int fds[3];
	char buf[4096];
	struct stat st;

	test_init(argc, argv);
	for (int i = 0; i < 3; i++) {
		fds[i] = open(devs[i].path, devs[i].flags);
		if (fds[i] < 0)
			fail_errno("open %s", devs[i].path);
	}
	if (read(fds[1], buf, 100) != 100)
		fail_errno("read /dev/zero");

	test_ready();
	test_wait_check();

	for (int i = 0; i < 3; i++) {
		if (fstat(fds[i], &st) || !S_ISCHR(st.st_mode) || major(st.st_rdev) != devs[i].maj ||
		    minor(st.st_rdev) != devs[i].min)
			fail("fd %d is not %s after restore", fds[i], devs[i].path);
		if ((fcntl(fds[i], F_GETFL) & O_ACCMODE) != devs[i].flags)
			fail("fd %d (%s): access mode changed", fds[i], devs[i].path);
	}
	if (read(fds[0], buf, sizeof(buf)) != 0 || write(fds[0], buf, 10) != 10)
		fail("/dev/null does not behave");
	memset(buf, 0x55, sizeof(buf));
	if (read(fds[1], buf, sizeof(buf)) != sizeof(buf))
		fail_errno("read /dev/zero");
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i])
			fail("/dev/zero gave a non-zero byte");
	memset(buf, 0, sizeof(buf));
	if (read(fds[2], buf, 64) != 64)
		fail_errno("read /dev/urandom");
	int nz = 0;

	for (int i = 0; i < 64; i++)
		nz += buf[i] != 0;
	if (nz < 32)
		fail("/dev/urandom gave %d non-zero bytes of 64", nz);
	pass();
}
