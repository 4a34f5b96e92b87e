// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Working directory, root and umask: cwd is a scratch directory, the root
 * is the real "/" (no chroot), the umask is 027. After restore getcwd(),
 * the root (same device and inode, /proc/self/root -> "/"), and the umask
 * (as returned and as applied to a new file) are the same.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char cwd0[PATH_MAX], cwd[PATH_MAX], root[PATH_MAX], field[32];
	struct stat r0, r, c0, c;
	const char *dir;
	mode_t m;
	ssize_t n;
	int fd;

	test_init(argc, argv);
	dir = test_path("cwd.d");
	if (mkdir(dir, 0755) || chdir(dir))
		fail_errno("mkdir/chdir %s", dir);
	if (!getcwd(cwd0, sizeof(cwd0)))
		fail_errno("getcwd");
	umask(027);
	stat("/", &r0);
	stat(".", &c0);

	test_ready();
	test_wait_check();

	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, cwd0))
		fail("cwd '%s', was '%s'", cwd, cwd0);
	if (stat(".", &c) || c.st_ino != c0.st_ino || c.st_dev != c0.st_dev)
		fail("'.' is another directory after restore");
	if (stat("/", &r) || r.st_ino != r0.st_ino || r.st_dev != r0.st_dev)
		fail("'/' is another directory after restore");
	n = readlink("/proc/self/root", root, sizeof(root) - 1);
	if (n < 0)
		fail_errno("readlink /proc/self/root");
	root[n] = '\0';
	if (strcmp(root, "/"))
		fail("/proc/self/root -> '%s', want '/'", root);
	if (test_status_field("/proc/self/status", "Umask", field, sizeof(field)) || strcmp(field, "0027"))
		fail("Umask in /proc/self/status is '%s', want 0027", field);
	fd = open("newfile", O_CREAT | O_WRONLY | O_EXCL, 0666);
	if (fd < 0)
		fail_errno("create newfile");
	fstat(fd, &c);
	if ((c.st_mode & 0777) != 0640)
		fail("new file has mode %o, want 640 (umask not applied)", c.st_mode & 0777);
	close(fd);
	unlink("newfile");
	m = umask(0);
	if (m != 027)
		fail("umask %03o, was 027", m);
	if (chdir("/") || rmdir(dir))
		fail_errno("cleanup");
	pass();
}
