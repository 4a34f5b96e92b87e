// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=unsupported fd [0-9]+ of process [0-9]+: .*pidfd
/*
 * A pidfd (of the test itself): not restored, so the checkpoint must refuse
 * it, naming the fd and its kind, and leave the test running.
 */
#include "zdtm.h"

#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int pfd;

	test_init(argc, argv);
	pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pfd < 0)
		fail_errno("pidfd_open");

	test_ready();
	test_wait_check();

	if (syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0))
		fail_errno("the pidfd no longer works");
	pass();
}
