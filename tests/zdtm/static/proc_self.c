// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * What /proc shows of a process's own image: /proc/self/exe (same link,
 * same file), cmdline (with argv[0] rewritten in place, as a daemon
 * setting its title does), environ, auxv, and the mm layout fields of
 * /proc/self/stat (code, data, brk, stack, args and env bounds, set on
 * restore with PR_SET_MM_MAP). After restore all are byte for byte the
 * same, and AT_EXECFN and AT_RANDOM still point at the same data.
 */
#include "zdtm.h"

#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

struct view {
	char exe[4096];
	struct stat exe_st;
	char cmdline[8192], environ[65536], auxv[4096];
	ssize_t cmdline_len, environ_len, auxv_len;
	char mm[512];
	char execfn[4096];
	unsigned char random[16];
};

static struct view before, after;

/* Fields 26-28 and 45-51 of /proc/self/stat: startcode endcode startstack,
 * start_data end_data start_brk arg_start arg_end env_start env_end. */
static void mm_fields(char *out, size_t size)
{
	char text[4096];
	size_t len = 0;
	int field = 3;	/* the one after ")" */

	if (test_read_file("/proc/self/stat", text, sizeof(text)) < 0)
		fail_errno("read /proc/self/stat");
	char *p = strrchr(text, ')') + 2;

	for (char *tok = strtok(p, " \n"); tok; tok = strtok(NULL, " \n"), field++)
		if ((field >= 26 && field <= 28) || (field >= 45 && field <= 51))
			len += (size_t)snprintf(out + len, size - len, "%d=%s ", field, tok);
}

static void take(struct view *v)
{
	ssize_t n = readlink("/proc/self/exe", v->exe, sizeof(v->exe) - 1);

	if (n < 0)
		fail_errno("readlink /proc/self/exe");
	v->exe[n] = '\0';
	if (stat("/proc/self/exe", &v->exe_st))
		fail_errno("stat /proc/self/exe");
	v->cmdline_len = test_read_file("/proc/self/cmdline", v->cmdline, sizeof(v->cmdline));
	v->environ_len = test_read_file("/proc/self/environ", v->environ, sizeof(v->environ));
	v->auxv_len = test_read_file("/proc/self/auxv", v->auxv, sizeof(v->auxv));
	if (v->cmdline_len < 0 || v->environ_len < 0 || v->auxv_len < 0)
		fail("cannot read cmdline/environ/auxv");
	mm_fields(v->mm, sizeof(v->mm));
	snprintf(v->execfn, sizeof(v->execfn), "%s", (const char *)getauxval(AT_EXECFN));
	memcpy(v->random, (const void *)getauxval(AT_RANDOM), 16);
}

int main(int argc, char **argv)
{
	test_init(argc, argv);
	/* Rewrite argv[0] in place: cmdline must show the new bytes. */
	size_t l = strlen(argv[0]);

	memset(argv[0], 'Z', l > 8 ? 8 : l);
	take(&before);
	if (!memchr(before.cmdline, 'Z', (size_t)before.cmdline_len))
		fail("before: cmdline does not show the rewritten argv[0]");

	test_ready();
	test_wait_check();

	take(&after);
	if (strcmp(after.exe, before.exe))
		fail("/proc/self/exe -> '%s', was '%s'", after.exe, before.exe);
	if (after.exe_st.st_ino != before.exe_st.st_ino || after.exe_st.st_dev != before.exe_st.st_dev)
		fail("/proc/self/exe is another file");
	if (after.cmdline_len != before.cmdline_len || memcmp(after.cmdline, before.cmdline, (size_t)after.cmdline_len))
		fail("cmdline differs (%zd bytes, was %zd)", after.cmdline_len, before.cmdline_len);
	if (after.environ_len != before.environ_len || memcmp(after.environ, before.environ, (size_t)after.environ_len))
		fail("environ differs (%zd bytes, was %zd)", after.environ_len, before.environ_len);
	if (after.auxv_len != before.auxv_len || memcmp(after.auxv, before.auxv, (size_t)after.auxv_len))
		fail("auxv differs (%zd bytes, was %zd)", after.auxv_len, before.auxv_len);
	if (strcmp(after.mm, before.mm))
		fail("mm fields of /proc/self/stat: '%s', were '%s'", after.mm, before.mm);
	if (strcmp(after.execfn, before.execfn) || memcmp(after.random, before.random, 16))
		fail("AT_EXECFN or AT_RANDOM data differ");
	pass();
}
