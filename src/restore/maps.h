/* SPDX-License-Identifier: MIT */
/*
 * The VMAs of a stub (or of the restorer), as the restore needs them: range
 * and kind.  A small reader of /proc/PID/maps, to be replaced by proc/'s
 * parser (proc_read_maps) once that module is in the tree.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

enum rmap_kind { RMAP_OTHER = 0, RMAP_VVAR, RMAP_VVAR_VCLOCK, RMAP_VDSO, RMAP_VSYSCALL, RMAP_SPECIAL };

struct rmap {
	uint64_t start, end;
	enum rmap_kind kind;
};

struct rmaps {
	struct rmap *v;
	size_t n;
};

int maps_read(pid_t pid, struct rmaps *ret);
void maps_free(struct rmaps *m);
static inline void maps_freep(struct rmaps *m) { maps_free(m); }
