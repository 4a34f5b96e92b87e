/* SPDX-License-Identifier: MIT */
/*
 * Minimal /proc/PID/maps reader for the restore (see maps.h).  It reads only
 * the range and the bracketed names of special mappings; a path that looks
 * like "[vdso]" cannot fool it, because a file path always starts with '/'.
 */
#include "restore/maps.h"
#include "base/log.h"
#include "base/util.h"

#include <inttypes.h>
#include <string.h>

static enum rmap_kind kind_of(const char *name)
{
	if (name[0] != '[')
		return RMAP_OTHER;
	if (!strcmp(name, "[vvar]"))
		return RMAP_VVAR;
	if (!strcmp(name, "[vvar_vclock]"))
		return RMAP_VVAR_VCLOCK;
	if (!strcmp(name, "[vdso]"))
		return RMAP_VDSO;
	if (!strcmp(name, "[vsyscall]"))
		return RMAP_VSYSCALL;
	if (!strcmp(name, "[heap]") || !strcmp(name, "[stack]") || !strncmp(name, "[anon:", 6) ||
	    !strncmp(name, "[anon_shmem:", 12) || !strncmp(name, "[stack:", 7))
		return RMAP_OTHER;
	return RMAP_SPECIAL;
}

int maps_read(pid_t pid, struct rmaps *ret)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	size_t len, cap = 64, n = 0;
	struct rmap *v;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	r = read_full_file(path, 64 << 20, &buf, &len);
	if (r < 0)
		return r;
	v = xcalloc(cap, sizeof(*v));
	for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
		nl = memchr(line, '\n', buf + len - line);
		if (!nl) {
			free(v);
			return -EBADMSG;
		}
		*nl = 0;
		uint64_t s, e;
		int pos = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %*s %*s %*s %n", &s, &e, &pos) < 2 ||
		    pos == 0 || s >= e) {
			free(v);
			return -EBADMSG;
		}
		if (n == cap) {
			cap *= 2;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct rmap){ s, e, kind_of(line + pos) };
	}
	ret->v = v;
	ret->n = n;
	return 0;
}

void maps_free(struct rmaps *m)
{
	free(m->v);
	m->v = NULL;
	m->n = 0;
}
