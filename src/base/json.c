/* SPDX-License-Identifier: MIT */
#include "base/json.h"
#include "base/util.h"

#include <stdio.h>
#include <string.h>

int json_write_file(json_t *obj, const char *path)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());

	if (json_dump_file(obj, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
		unlink(tmp);
		return -EIO;
	}
	if (rename(tmp, path) < 0) {
		int r = neg_errno();
		unlink(tmp);
		return r;
	}
	return 0;
}
