// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A 32 MiB area aligned to 2 MiB with MADV_HUGEPAGE, written in full.
 * After restore the data is intact and the area is still marked for
 * transparent huge pages ("hg" in VmFlags). Whether the kernel actually
 * backs it with huge pages (AnonHugePages) is logged, not required.
 */
#include "zdtm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SIZE (32UL << 20)
#define HPAGE (2UL << 20)

static char smaps_text[1 << 20];

/* VmFlags and AnonHugePages (kB) of the VMA holding addr. */
static bool vma_info(void *addr, char *flags, size_t fsize, long *ret_thp)
{
	unsigned long s, e;
	bool in = false;

	*ret_thp = -1;
	flags[0] = '\0';
	if (test_read_file("/proc/self/smaps", smaps_text, sizeof(smaps_text)) < 0)
		fail_errno("read smaps");
	for (char *l = strtok(smaps_text, "\n"); l; l = strtok(NULL, "\n")) {
		if (sscanf(l, "%lx-%lx ", &s, &e) == 2 && strchr(l, '-') < strchr(l, ' '))
			in = (unsigned long)addr >= s && (unsigned long)addr < e;
		else if (in && !strncmp(l, "AnonHugePages:", 14))
			*ret_thp = atol(l + 14);
		else if (in && !strncmp(l, "VmFlags:", 8)) {
			snprintf(flags, fsize, "%s", l + 8);
			return true;
		}
	}
	return false;
}

int main(int argc, char **argv)
{
	char *raw, *mem, flags[256];
	long thp_before, thp_after;

	test_init(argc, argv);
	raw = mmap(NULL, SIZE + HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		fail_errno("mmap");
	mem = (char *)(((unsigned long)raw + HPAGE - 1) & ~(HPAGE - 1));
	if (madvise(mem, SIZE, MADV_HUGEPAGE))
		fail_errno("madvise(MADV_HUGEPAGE)");
	test_fill(mem, SIZE, 900);
	if (!vma_info(mem, flags, sizeof(flags), &thp_before) || !strstr(flags, " hg"))
		fail("before: VmFlags '%s' lack hg", flags);

	test_ready();
	test_wait_check();

	if (!vma_info(mem, flags, sizeof(flags), &thp_after))
		fail("the THP area is gone from smaps");
	if (!strstr(flags, " hg"))
		fail("VmFlags '%s' lack hg after restore", flags);
	size_t bad = test_check(mem, SIZE, 900);

	if (bad != (size_t)-1)
		fail("data differs at %zu (huge page %zu)", bad, bad / HPAGE);
	test_msg("AnonHugePages: %ld kB before, %ld kB after", thp_before, thp_after);
	pass();
}
