// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * High fd numbers: a pipe's ends moved to fd 1000 and (if RLIMIT_NOFILE
 * allows) 4000, with everything between closed. After restore the fds
 * are at the same numbers, still connected, and the gap is still closed.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct rlimit rl;
	int p[2], lo = 1000, hi = 4000;
	char buf[8];

	test_init(argc, argv);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur <= (rlim_t)hi) {
		rl.rlim_cur = rl.rlim_max > 4096 ? 4096 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur <= (rlim_t)hi)
		hi = (int)rl.rlim_cur - 1;
	if (pipe(p) || dup2(p[0], lo) != lo || dup2(p[1], hi) != hi)
		fail_errno("pipe/dup2");
	close(p[0]);
	close(p[1]);
	test_write_all(hi, "hi!", 3);

	test_ready();
	test_wait_check();

	if (fcntl(lo, F_GETFD) < 0 || fcntl(hi, F_GETFD) < 0)
		fail("fd %d or %d is not open after restore", lo, hi);
	for (int fd = lo + 1; fd < hi; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			fail("fd %d is open after restore", fd);
	if (read(lo, buf, 3) != 3 || memcmp(buf, "hi!", 3))
		fail("bytes in flight from fd %d to fd %d lost", hi, lo);
	if (write(hi, "x", 1) != 1 || read(lo, buf, 1) != 1)
		fail("fds %d and %d are not connected after restore", hi, lo);
	pass();
}
