// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * MAP_NORESERVE mappings: private anonymous, shared anonymous and a private
 * file mapping, each with data in it. After restore each still shows "nr"
 * in its smaps VmFlags (no swap reserved for it), a plain private mapping
 * next to them still does not, and the data is intact.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SZ (8 * 4096UL)

static bool vmflag(void *addr, const char *flag)
{
	static char text[1 << 20];
	unsigned long s, e;
	bool in = false;

	if (test_read_file("/proc/self/smaps", text, sizeof(text)) < 0)
		fail_errno("read smaps");
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
		if (sscanf(l, "%lx-%lx ", &s, &e) == 2 && strchr(l, '-') < strchr(l, ' '))
			in = (unsigned long)addr >= s && (unsigned long)addr < e;
		else if (in && !strncmp(l, "VmFlags:", 8)) {
			char pat[8];

			snprintf(pat, sizeof(pat), " %s", flag);
			return strstr(l, pat) != NULL;
		}
	}
	fail("no mapping at %p in smaps", addr);
}

struct area {
	const char *name;
	char *p;
	bool nr;
	uint64_t seed;
};

int main(int argc, char **argv)
{
	struct area a[4] = {
		{ "private anonymous", NULL, true, 1 },
		{ "shared anonymous", NULL, true, 2 },
		{ "private file", NULL, true, 3 },
		{ "plain private anonymous", NULL, false, 4 },
	};
	int fd;

	test_init(argc, argv);
	a[0].p = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	a[1].p = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	fd = open(test_path("file"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, SZ))
		fail_errno("file");
	a[2].p = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	close(fd);
	/* a guard page between, so that no two areas merge */
	a[3].p = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 4; i++) {
		if (a[i].p == MAP_FAILED)
			fail_errno("mmap %s", a[i].name);
		test_fill(a[i].p, SZ, a[i].seed);
		if (vmflag(a[i].p, "nr") != a[i].nr)
			fail("before: %s: nr is %s in VmFlags", a[i].name, a[i].nr ? "missing" : "set");
	}

	test_ready();
	test_wait_check();

	for (int i = 0; i < 4; i++) {
		if (vmflag(a[i].p, "nr") != a[i].nr)
			fail("%s: nr %s in VmFlags after restore", a[i].name,
			     a[i].nr ? "lost" : "appeared");
		if (test_check(a[i].p, SZ, a[i].seed) != (size_t)-1)
			fail("%s: data differ", a[i].name);
	}
	unlink(test_path("file"));
	pass();
}
