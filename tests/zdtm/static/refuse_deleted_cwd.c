// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=working directory .* was deleted
/*
 * A working directory removed while the process is in it: the restore
 * cannot enter it again, so the checkpoint must refuse it, named, and the
 * process stays where it was.
 */
#include "zdtm.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char link[4096], want[4096];
	const char *path;
	ssize_t n;

	test_init(argc, argv);
	path = test_path("refuse_deleted_cwd");
	if (mkdir(path, 0700) || chdir(path) || rmdir(path))
		fail_errno("mkdir/chdir/rmdir");
	snprintf(want, sizeof(want), "%s (deleted)", path);

	test_ready();
	test_wait_check();

	n = readlink("/proc/self/cwd", link, sizeof(link) - 1);
	if (n < 0)
		fail_errno("readlink cwd");
	link[n] = 0;
	if (strcmp(link, want))
		fail("cwd is '%s', want '%s'", link, want);
	pass();
}
