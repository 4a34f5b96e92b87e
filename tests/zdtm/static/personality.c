// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * The execution domain: personality(PER_LINUX | ADDR_NO_RANDOMIZE |
 * UNAME26). After restore personality(0xffffffff) reports the same, and
 * UNAME26 still acts (uname() says 2.6.x).
 */
#include "zdtm.h"

#include <string.h>
#include <sys/personality.h>
#include <sys/utsname.h>

int main(int argc, char **argv)
{
	unsigned int want = PER_LINUX | ADDR_NO_RANDOMIZE | UNAME26;
	struct utsname u;
	int cur;

	test_init(argc, argv);
	if (personality(want) < 0)
		fail_errno("personality");
	cur = personality(0xffffffff);
	if ((unsigned int)cur != want)
		fail("before: personality %#x, want %#x", cur, want);

	test_ready();
	test_wait_check();

	cur = personality(0xffffffff);
	if ((unsigned int)cur != want)
		fail("personality %#x, was %#x", cur, want);
	if (uname(&u) || strncmp(u.release, "2.6.", 4))
		fail("UNAME26 does not act: release '%s'", u.release);
	pass();
}
