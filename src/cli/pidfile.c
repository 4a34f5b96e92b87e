/* SPDX-License-Identifier: MIT */
/*
 * The --pidfile of restore and migrate: opened before anything is frozen or
 * restored (a path that cannot be written is refused while nothing has
 * happened), written once the tree runs.
 */
#include "cli/cli.h"
#include "base/util.h"

#include <stdio.h>
#include <unistd.h>

int cli_pidfile_write(int fd, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", pid);

	if (ftruncate(fd, 0) < 0)
		return neg_errno();
	return write_all(fd, buf, (size_t)n);
}
