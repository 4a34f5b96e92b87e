// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * The whole VmFlags line of each mapping, as /proc/self/smaps shows it,
 * for mappings whose flags depend on their history, not only on their
 * protection:
 *   - anonymous, written, then read-only / PROT_NONE: still charged ("ac");
 *   - anonymous, never written, then read-only: the kernel dropped "ac"
 *     (no anon_vma yet), it must not come back;
 *   - mapped PROT_NONE, then made writable: charged by mprotect;
 *   - MAP_NORESERVE ("nr", no "ac"), writable and read-only;
 *   - MAP_SHARED anonymous; MAP_GROWSDOWN ("gd");
 *   - madvise: DONTFORK, WIPEONFORK, DONTDUMP, SEQUENTIAL, RANDOM,
 *     HUGEPAGE / NOHUGEPAGE (where THP is built), MERGEABLE (where KSM is);
 *   - mlock ("lo") and mlock2(MLOCK_ONFAULT) ("lo lf"): where the
 *     memlock limit allows;
 *   - sealed (mseal, "sl", Linux 6.10+): mprotect fails with EPERM.
 * Each case is its own mapping, one unmapped page from the next (no
 * merging). After restore every line (range, perms, VmFlags minus the
 * flags the kernel sets itself: "sd" soft-dirty, "um"/"uw"/"ui"
 * userfaultfd registration) is the same, and the data is intact.
 */
#include "zdtm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

#define PG 4096UL
#define SLOT (4 * PG)	/* a case: up to 3 pages, then an unmapped page */
#define NSLOT 24

static char *base;
static int nslot;
static char before[16384], after[16384];

/* the next case's address: mapped with MAP_FIXED_NOREPLACE in the reserved range */
static char *map_case(size_t npg, int prot, int flags)
{
	char *at = base + (size_t)nslot++ * SLOT;
	void *p;

	if (nslot > NSLOT)
		fail("too many cases");
	p = mmap(at, npg * PG, prot, flags | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		fail_errno("mmap case %d", nslot - 1);
	return p;
}

static void fill(char *p, size_t npg, int seed)
{
	for (size_t i = 0; i < npg * PG; i += 512)
		p[i] = (char)(seed + i / 512);
}

static bool check_fill(const char *p, size_t npg, int seed)
{
	for (size_t i = 0; i < npg * PG; i += 512)
		if (p[i] != (char)(seed + i / 512))
			return false;
	return true;
}

static bool excluded(const char *f)
{
	return !strcmp(f, "sd") || !strcmp(f, "um") || !strcmp(f, "uw") || !strcmp(f, "ui");
}

/* "start-end perms flags...\n" for each mapping inside the reserved range */
static void snapshot(char *out, size_t size)
{
	static char text[1 << 20];
	unsigned long s = 0, e = 0, lo = (unsigned long)base, hi = lo + NSLOT * SLOT;
	char perms[8] = "";
	size_t len = 0;
	bool in = false;

	if (test_read_file("/proc/self/smaps", text, sizeof(text)) < 0)
		fail_errno("read smaps");
	out[0] = 0;
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
		if (sscanf(l, "%lx-%lx %7s", &s, &e, perms) == 3 && strchr(l, '-') < strchr(l, ' ')) {
			in = s >= lo && e <= hi;
			if (in)
				len += (size_t)snprintf(out + len, size - len, "%lx-%lx %s", s - lo, e - lo, perms);
		} else if (in && !strncmp(l, "VmFlags:", 8)) {
			for (char *f = strtok_r(l + 8, " ", &l); f; f = strtok_r(NULL, " ", &l))
				if (!excluded(f))
					len += (size_t)snprintf(out + len, size - len, " %s", f);
			len += (size_t)snprintf(out + len, size - len, "\n");
			in = false;
		}
		if (len >= size - 64)
			fail("smaps view too long");
	}
}

/* the first line that differs, for the verdict */
static void report(const char *a, const char *b)
{
	while (*a && *b) {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
		if (la != lb || memcmp(a, b, la))
			fail("VmFlags differ: was '%.*s', now '%.*s'", (int)la, a, (int)lb, b);
		a += la + (a[la] != 0);
		b += lb + (b[lb] != 0);
	}
	fail("VmFlags differ: a mapping %s: '%.*s'", *a ? "is gone" : "is new",
	     (int)strcspn(*a ? a : b, "\n"), *a ? a : b);
}

static void try_madvise(char *p, size_t len, int advice, const char *what)
{
	if (madvise(p, len, advice) && errno != EINVAL)	/* EINVAL: not built in this kernel */
		fail_errno("madvise(%s)", what);
}

int main(int argc, char **argv)
{
	const int A = MAP_PRIVATE | MAP_ANONYMOUS;
	char *p, *ro, *none, *raised, *nr, *shared, *sealed;

	test_init(argc, argv);
	base = mmap(NULL, NSLOT * SLOT, PROT_NONE, A | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		fail_errno("mmap reserve");
	if (munmap(base, NSLOT * SLOT))
		fail_errno("munmap reserve");

	/* written, then read-only: keeps "ac" */
	ro = map_case(2, PROT_READ | PROT_WRITE, A);
	fill(ro, 2, 1);
	if (mprotect(ro, 2 * PG, PROT_READ))
		fail_errno("mprotect ro");
	/* written, then PROT_NONE: keeps "ac" */
	none = map_case(1, PROT_READ | PROT_WRITE, A);
	fill(none, 1, 2);
	if (mprotect(none, PG, PROT_NONE))
		fail_errno("mprotect none");
	/* never written, then read-only: the kernel drops "ac" */
	p = map_case(2, PROT_READ | PROT_WRITE, A);
	if (mprotect(p, 2 * PG, PROT_READ))
		fail_errno("mprotect untouched");
	/* mapped PROT_NONE, made writable later: charged then */
	raised = map_case(2, PROT_NONE, A);
	if (mprotect(raised, 2 * PG, PROT_READ | PROT_WRITE))
		fail_errno("mprotect raise");
	fill(raised, 2, 3);
	/* never writable */
	p = map_case(1, PROT_READ, A);
	/* MAP_NORESERVE, writable and written; and made read-only */
	nr = map_case(2, PROT_READ | PROT_WRITE, A | MAP_NORESERVE);
	fill(nr, 2, 4);
	p = map_case(1, PROT_READ | PROT_WRITE, A | MAP_NORESERVE);
	fill(p, 1, 5);
	if (mprotect(p, PG, PROT_READ))
		fail_errno("mprotect noreserve");
	/* shared anonymous */
	shared = map_case(1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	fill(shared, 1, 6);
	/* grows down */
	p = map_case(2, PROT_READ | PROT_WRITE, A | MAP_GROWSDOWN);
	fill(p + PG, 1, 7);
	/* madvise flags, one mapping each */
	static const struct { int advice; const char *what; } adv[] = {
		{ MADV_DONTFORK, "DONTFORK" }, { MADV_WIPEONFORK, "WIPEONFORK" },
		{ MADV_DONTDUMP, "DONTDUMP" }, { MADV_SEQUENTIAL, "SEQUENTIAL" },
		{ MADV_RANDOM, "RANDOM" }, { MADV_HUGEPAGE, "HUGEPAGE" },
		{ MADV_NOHUGEPAGE, "NOHUGEPAGE" }, { MADV_MERGEABLE, "MERGEABLE" },
	};
	for (size_t i = 0; i < sizeof(adv) / sizeof(adv[0]); i++) {
		p = map_case(1, PROT_READ | PROT_WRITE, A);
		fill(p, 1, 10 + (int)i);
		try_madvise(p, PG, adv[i].advice, adv[i].what);
	}
	/* locked, and locked on fault (ENOMEM/EPERM/EAGAIN: the memlock limit) */
	p = map_case(1, PROT_READ | PROT_WRITE, A);
	fill(p, 1, 20);
	if (mlock(p, PG) && errno != ENOMEM && errno != EPERM && errno != EAGAIN)
		fail_errno("mlock");
	p = map_case(2, PROT_READ | PROT_WRITE, A);
	fill(p, 1, 21);
	if (syscall(SYS_mlock2, p, 2 * PG, MLOCK_ONFAULT) && errno != ENOMEM && errno != EPERM &&
	    errno != EAGAIN && errno != EINVAL)
		fail_errno("mlock2(MLOCK_ONFAULT)");

	/* sealed, read-only, written before */
	sealed = map_case(1, PROT_READ | PROT_WRITE, A);
	fill(sealed, 1, 22);
	if (mprotect(sealed, PG, PROT_READ))
		fail_errno("mprotect sealed");
	if (syscall(462 /* SYS_mseal */, sealed, PG, 0)) {
		if (errno != ENOSYS && errno != EINVAL && errno != EPERM)
			fail_errno("mseal");
		sealed = NULL;	/* not in this kernel */
	}

	snapshot(before, sizeof(before));
	test_msg("mappings:\n%s", before);

	test_ready();
	test_wait_check();

	snapshot(after, sizeof(after));
	if (strcmp(before, after))
		report(before, after);
	if (!check_fill(ro, 2, 1) || !check_fill(raised, 2, 3) || !check_fill(nr, 2, 4) ||
	    !check_fill(shared, 1, 6))
		fail("data of the mappings changed");
	if (sealed && (!check_fill(sealed, 1, 22) || !mprotect(sealed, PG, PROT_READ | PROT_WRITE) ||
		       errno != EPERM))
		fail("the sealed mapping: data changed, or mprotect did not fail with EPERM (%m)");
	if (mprotect(none, PG, PROT_READ))
		fail_errno("mprotect none readable");
	if (!check_fill(none, 1, 2))
		fail("data of the PROT_NONE mapping changed");
	pass();
}
