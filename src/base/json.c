/* SPDX-License-Identifier: MIT */
#include "base/json.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int json_write_file(json_t *obj, const char *path)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());

	errno = 0;
	if (json_dump_file(obj, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
		int r = errno ? neg_errno() : -EIO;
		unlink(tmp);
		return r;
	}
	if (rename(tmp, path) < 0) {
		int r = neg_errno();
		unlink(tmp);
		return r;
	}
	return 0;
}

int json_check_writable(const char *path)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0)
		return neg_errno();
	close(fd);
	unlink(tmp);
	return 0;
}
