/* SPDX-License-Identifier: MIT */
/* Test points: see testpoint.h. */
#define LOG_PREFIX ""
#include "base/testpoint.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool dm_test_listed(const char *name)
{
	const char *list = getenv("DMIGRATE_TEST_PAUSE");
	if (!list || !*list)
		return false;
	size_t n = strlen(name);
	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ',') && (!p[n] || p[n] == ','))
			return true;
	return false;
}

static long pause_ms(void)
{
	const char *ms = getenv("DMIGRATE_TEST_PAUSE_MS");
	long v = 3000;
	if (ms)
		parse_long(ms, &v);
	return v;
}

/* $DMIGRATE_TEST_MARK/name, made (empty) */
static void put_mark(const char *name)
{
	const char *mark = getenv("DMIGRATE_TEST_MARK");
	if (!mark)
		return;
	_cleanup_free_ char *path = xasprintf("%s/%s", mark, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

/* $DMIGRATE_TEST_MARK/name.go, or NULL without marks (malloc'd) */
static char *go_path(const char *name)
{
	const char *mark = getenv("DMIGRATE_TEST_MARK");
	return mark ? xasprintf("%s/%s.go", mark, name) : NULL;
}

bool dm_test_armed(const char *name)
{
	const char *mark = getenv("DMIGRATE_TEST_MARK");
	if (!mark)
		return false;
	_cleanup_free_ char *path = xasprintf("%s/%s.arm", mark, name);
	return access(path, F_OK) == 0;
}

void dm_test_point(const char *name)
{
	if (!dm_test_listed(name))
		return;
	put_mark(name);
	long v = pause_ms();
	pr_warn("test point %s: pausing %ld ms", name, v);
	/* $DMIGRATE_TEST_MARK/name.go ends the pause early */
	_cleanup_free_ char *go = go_path(name);
	for (long t = 0; t < v; t += 20) {
		struct timespec ts = { 0, MIN(20L, v - t) * 1000000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (go && access(go, F_OK) == 0)
			break;
	}
}

bool dm_test_held(const char *name, uint64_t *since_ns)
{
	if (!dm_test_listed(name))
		return false;
	long v = pause_ms();
	if (!*since_ns) {
		*since_ns = clock_ns();
		pr_warn("test point %s: holding up to %ld ms", name, v);
		put_mark(name);
	}
	_cleanup_free_ char *go = go_path(name);
	if (go && access(go, F_OK) == 0)
		return false;
	return clock_ns() - *since_ns < (uint64_t)v * 1000000;
}
