// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Protections: a read-write area fenced by PROT_NONE guard areas, with
 * sub-ranges mprotect'ed read-only, execute-only-ish (r-x) and PROT_NONE
 * (holding data written before), plus a read-only mapping that was
 * written before its protection was dropped.
 *
 *   [guard ---][rw- rw- r-- r-- rw- --- rw- r-x][guard ---]
 *
 * After restore: the same permissions in /proc/self/maps, the data in
 * every page (PROT_NONE pages made readable again), writes to read-only
 * pages and reads of guard pages fault.
 */
#include "zdtm.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define PG 4096UL
#define GUARD 4
#define NPAGES 8

static const char *prot_of[NPAGES] = { "rw-p", "rw-p", "r--p", "r--p", "rw-p", "---p", "rw-p", "r-xp" };
static const int prot_val[NPAGES] = {
	PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ, PROT_READ,
	PROT_READ | PROT_WRITE, PROT_NONE, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
};

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

static bool faults(volatile char *p, bool write)
{
	if (sigsetjmp(jb, 1))
		return true;
	if (write)
		*p = 1;
	else
		(void)*p;
	return false;
}

static const char *perms_at(char *addr)
{
	static char text[65536], perm[8];
	unsigned long s, e;

	if (test_read_file("/proc/self/maps", text, sizeof(text)) < 0)
		fail_errno("read maps");
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"))
		if (sscanf(l, "%lx-%lx %7s", &s, &e, perm) == 3 && (unsigned long)addr >= s &&
		    (unsigned long)addr < e)
			return perm;
	return "unmapped";
}

static void check_perms(char *area, const char *when)
{
	for (int i = 0; i < NPAGES; i++)
		if (strcmp(perms_at(area + i * PG), prot_of[i]))
			fail("%s: page %d is %s, want %s", when, i, perms_at(area + i * PG), prot_of[i]);
	if (strcmp(perms_at(area - PG), "---p") || strcmp(perms_at(area + NPAGES * PG), "---p"))
		fail("%s: guard areas are not ---p", when);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_segv, .sa_flags = SA_NODEFER };
	char *whole, *area, *ro;

	test_init(argc, argv);
	sigaction(SIGSEGV, &sa, NULL);
	whole = mmap(NULL, (NPAGES + 2 * GUARD) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (whole == MAP_FAILED)
		fail_errno("mmap");
	area = whole + GUARD * PG;
	if (mprotect(area, NPAGES * PG, PROT_READ | PROT_WRITE))
		fail_errno("mprotect");
	for (int i = 0; i < NPAGES; i++)
		test_fill(area + i * PG, PG, 500 + i);
	for (int i = 0; i < NPAGES; i++)
		if (mprotect(area + i * PG, PG, prot_val[i]))
			fail_errno("mprotect(page %d)", i);
	ro = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED)
		fail_errno("mmap");
	test_fill(ro, 2 * PG, 600);
	mprotect(ro, 2 * PG, PROT_READ);
	check_perms(area, "before");

	test_ready();
	test_wait_check();

	check_perms(area, "after restore");
	if (strcmp(perms_at(ro), "r--p"))
		fail("read-only mapping is %s", perms_at(ro));
	if (!faults(area + 2 * PG, true))
		fail("write to a read-only page did not fault");
	if (!faults(area + 5 * PG, false))
		fail("read of a PROT_NONE page did not fault");
	if (!faults(area - PG, false) || !faults(area + NPAGES * PG, false))
		fail("read of a guard page did not fault");
	if (!faults(ro, true))
		fail("write to the read-only mapping did not fault");
	if (mprotect(area + 5 * PG, PG, PROT_READ))
		fail_errno("mprotect");
	for (int i = 0; i < NPAGES; i++)
		if (test_check(area + i * PG, PG, 500 + i) != (size_t)-1)
			fail("page %d (%s) differs after restore", i, prot_of[i]);
	if (test_check(ro, 2 * PG, 600) != (size_t)-1)
		fail("read-only mapping differs after restore");
	pass();
}
