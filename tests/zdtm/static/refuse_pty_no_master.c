// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=master was closed
/*
 * A pty slave whose master was closed (its devpts node is gone, a read
 * finds a hangup: end of file or EIO): no pty can be made again with that state, so the checkpoint
 * must refuse it, named, and leave the process running with the slave as
 * it was.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[4];
	int m, s;

	test_init(argc, argv);
	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m))
		fail_errno("posix_openpt");
	s = open(ptsname(m), O_RDWR | O_NOCTTY);
	if (s < 0)
		fail_errno("open slave");
	close(m);

	test_ready();
	test_wait_check();

	ssize_t n = read(s, buf, 1);
	if (n > 0 || (n < 0 && errno != EIO))
		fail("reading the slave without a master: %zd (%m), want end of file or EIO", n);
	pass();
}
