// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=own mount namespace
/*
 * A process in a mount namespace of its own (unshare(CLONE_NEWNS), with a
 * private tmpfs mounted in it). The engine does not restore mount
 * namespaces: a restore would put it in the host's, where its mounts are
 * missing. The checkpoint must refuse it, naming the mount namespace, and
 * leave it running: its mount is still there afterwards.
 */
#include "zdtm.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *dir;
	struct stat a, b;

	test_init(argc, argv);
	dir = test_path("mnt");
	if (mkdir(dir, 0700) && errno != EEXIST)
		fail_errno("mkdir");
	if (unshare(CLONE_NEWNS))
		fail_errno("unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		fail_errno("make / private");
	if (mount("zdtm", dir, "tmpfs", 0, "size=64k"))
		fail_errno("mount tmpfs");
	if (stat(dir, &a))
		fail_errno("stat");

	test_ready();
	test_wait_check();

	if (stat(dir, &b))
		fail_errno("stat after");
	if (a.st_dev != b.st_dev)
		fail("the private mount is gone (dev %lx, was %lx)", (long)b.st_dev, (long)a.st_dev);
	umount(dir);
	pass();
}
