/* SPDX-License-Identifier: MIT */
/* Helpers shared by the /proc parser tests (test_proc.c, test_proc_live.c). */
#pragma once

#include "proc/proc.h"

#include <string.h>

static inline const struct proc_vma *find_vma_path(const struct proc_vma_list *l, const char *path)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->vmas[i].path, path) == 0)
			return &l->vmas[i];
	return NULL;
}

static inline const struct proc_vma *find_vma_kind(const struct proc_vma_list *l, enum proc_vma_kind k)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->vmas[i].kind == k)
			return &l->vmas[i];
	return NULL;
}
