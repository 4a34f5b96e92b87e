/* SPDX-License-Identifier: MIT */
/*
 * src/container/runc.c without a container: the target syntax, the
 * destination's checks before a migration freezes anything, and the stub
 * runc runs as the container's init (it must be static, with no loader: the
 * rootfs may have none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "container/runc.h"
#include "base/log.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

extern const unsigned char runc_stub_bin[];
extern const size_t runc_stub_bin_len;

static void test_parse_target(void **state)
{
	const char *id = NULL;
	pid_t pid = 0;

	(void)state;
	assert_int_equal(runc_parse_target("runc:web-1", &id, &pid), 1);
	assert_string_equal(id, "web-1");
	assert_int_equal(runc_parse_target("pid:1234", &id, &pid), 0);
	assert_int_equal(pid, 1234);
	assert_int_equal(runc_parse_target("runc:", &id, &pid), -EINVAL);
	assert_non_null(strstr(dm_last_error(), "bad container id"));
	assert_int_equal(runc_parse_target("runc:../x", &id, &pid), -EINVAL);
	assert_int_equal(runc_parse_target("pid:0", &id, &pid), -EINVAL);
	assert_int_equal(runc_parse_target("pid:x", &id, &pid), -EINVAL);
	assert_int_equal(runc_parse_target("1234", &id, &pid), -EINVAL);
	assert_non_null(strstr(dm_last_error(), "pid:PID or runc:ID"));
}

static void test_check_here(void **state)
{
	(void)state;
	/* an empty state root knows no container */
	char root[] = "/tmp/dm-unit-runc.XXXXXX";
	assert_non_null(mkdtemp(root));
	int r = runc_check_here(root, "nosuch", "/");
	if (r == -ENOENT && strstr(dm_last_error(), "cannot run runc")) {
		rmdir(root);
		skip();
	}
	assert_int_equal(r, 0);
	assert_int_equal(runc_check_here(root, "nosuch", "/nonexistent/rootfs"), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "rootfs /nonexistent/rootfs is not here"));
	assert_int_equal(runc_check_here(root, "a/b", "/"), -EINVAL);
	rmdir(root);
}

static void test_stub_static(void **state)
{
	(void)state;
	assert_true(runc_stub_bin_len > sizeof(Elf64_Ehdr));
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)runc_stub_bin;
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
	assert_int_equal(eh->e_type, ET_EXEC);	/* not PIE: nothing to relocate */
	assert_true(eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf64_Phdr) <= runc_stub_bin_len);
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(runc_stub_bin + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++) {
		assert_int_not_equal(ph[i].p_type, PT_INTERP);	/* no loader */
		assert_int_not_equal(ph[i].p_type, PT_DYNAMIC);	/* no libraries */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_target),
		cmocka_unit_test(test_check_here),
		cmocka_unit_test(test_stub_static),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
