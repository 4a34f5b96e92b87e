// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=SIGIO owner \(F_SETOWN\), process [0-9]+, is not in the tree
/*
 * A pipe whose SIGIO owner (F_SETOWN) is a process outside the tree (the
 * test's parent): the owner cannot be named after a restore elsewhere (its
 * pid means another process there, or none).  The checkpoint refuses it,
 * named, and the owner stays as it was.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int p[2];
	pid_t owner;

	test_init(argc, argv);
	owner = getppid();
	if (pipe(p) || fcntl(p[0], F_SETOWN, owner))
		fail_errno("pipe / F_SETOWN");

	test_ready();
	test_wait_check();

	if (fcntl(p[0], F_GETOWN) != owner)
		fail("the owner is %d after the refusal, not %d", fcntl(p[0], F_GETOWN), owner);
	pass();
}
