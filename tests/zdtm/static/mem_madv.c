// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * madvise state that only shows at fork: MADV_DONTFORK (the child does
 * not get the area) and MADV_WIPEONFORK (the child gets zeros), next to a
 * plain area (the child gets the data). The flags must survive the
 * restore: checked through a fork made after restore, and in VmFlags
 * ("dc", "wf") of /proc/self/smaps.
 */
#include "zdtm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define SZ (16 * 4096UL)

static char *plain, *dontfork, *wipe;

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
	return false;
}

static void check_fork(const char *when)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		fail_errno("fork");
	if (pid == 0) {
		unsigned char vec[16];

		if (test_check(plain, SZ, 700) != (size_t)-1)
			_exit(10);
		if (mincore(dontfork, SZ, vec) == 0 || errno != ENOMEM)
			_exit(11);
		for (size_t i = 0; i < SZ; i++)
			if (wipe[i])
				_exit(12);
		_exit(0);
	}
	if (test_waitpid(pid, &status, 0) != pid)
		fail_errno("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("%s: forked child: %s", when,
		     !WIFEXITED(status)	       ? "died"
		     : WEXITSTATUS(status) == 10 ? "plain area differs"
		     : WEXITSTATUS(status) == 11 ? "MADV_DONTFORK area was inherited"
		     : WEXITSTATUS(status) == 12 ? "MADV_WIPEONFORK area not wiped"
						 : "failed");
}

int main(int argc, char **argv)
{
	test_init(argc, argv);
	plain = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dontfork = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wipe = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (plain == MAP_FAILED || dontfork == MAP_FAILED || wipe == MAP_FAILED)
		fail_errno("mmap");
	test_fill(plain, SZ, 700);
	test_fill(dontfork, SZ, 701);
	test_fill(wipe, SZ, 702);
	if (madvise(dontfork, SZ, MADV_DONTFORK) || madvise(wipe, SZ, MADV_WIPEONFORK))
		fail_errno("madvise");
	check_fork("before");

	test_ready();
	test_wait_check();

	if (!vmflag(dontfork, "dc"))
		fail("VmFlags of the MADV_DONTFORK area lack 'dc' after restore");
	if (!vmflag(wipe, "wf"))
		fail("VmFlags of the MADV_WIPEONFORK area lack 'wf' after restore");
	if (test_check(dontfork, SZ, 701) != (size_t)-1 || test_check(wipe, SZ, 702) != (size_t)-1)
		fail("the areas' own data differ after restore");
	check_fork("after restore");
	pass();
}
