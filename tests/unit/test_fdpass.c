/* SPDX-License-Identifier: MIT */
/* base/fdpass: descriptors over a unix socket, and none leaked on the way. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/fdpass.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void pair(int sp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
}

/* Two pipe ends go across and still work; the bytes come with them. */
static void test_passes_fds(void **state)
{
	(void)state;
	int sp[2], p[2], got[4] = { -1, -1, -1, -1 };
	size_t n = 4;
	char buf[16] = { 0 };

	pair(sp);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fdpass_send(sp[0], "hello", 6, p, 2, 0), 6);
	assert_int_equal(fdpass_recv(sp[1], buf, sizeof(buf), got, &n, 0), 6);
	assert_string_equal(buf, "hello");
	assert_int_equal(n, 2);
	assert_true(got[0] != p[0] && got[1] != p[1]);
	close(p[0]);
	close(p[1]);
	assert_int_equal(write(got[1], "x", 1), 1);
	assert_int_equal(read(got[0], buf, 1), 1);
	assert_int_equal(buf[0], 'x');
	close(got[0]);
	close(got[1]);
	close(sp[0]);
	close(sp[1]);
}

/* More descriptors than the receiver has room for: the rest are closed. */
static void test_extra_fds_closed(void **state)
{
	(void)state;
	int sp[2], p[2], fds[3], got = -1;
	size_t n = 1;
	char c;

	pair(sp);
	assert_int_equal(pipe(p), 0);
	fds[0] = p[0];
	fds[1] = p[1];
	fds[2] = p[0];
	int before = open_fds();
	assert_int_equal(fdpass_send(sp[0], "z", 1, fds, 3, 0), 1);
	assert_int_equal(fdpass_recv(sp[1], &c, 1, &got, &n, 0), 1);
	assert_int_equal(n, 1);
	assert_true(got >= 0);
	/* one new descriptor in our table, not three */
	assert_int_equal(open_fds(), before + 1);
	close(got);
	close(p[0]);
	close(p[1]);
	close(sp[0]);
	close(sp[1]);
}

/* A message without descriptors; then end of file; then bad arguments. */
static void test_plain_eof_bounds(void **state)
{
	(void)state;
	int sp[2], got = -1, fd = 0;
	size_t n = 1;
	int32_t v = 42, w = 0;

	pair(sp);
	assert_int_equal(fdpass_send(sp[0], &v, sizeof(v), NULL, 0, 0), sizeof(v));
	assert_int_equal(fdpass_recv(sp[1], &w, sizeof(w), &got, &n, 0), sizeof(w));
	assert_int_equal(w, 42);
	assert_int_equal(n, 0);
	/* a receiver that wants no descriptors closes any that come */
	int before = open_fds();
	assert_int_equal(fdpass_send(sp[0], &v, sizeof(v), &fd, 1, 0), sizeof(v));
	assert_int_equal(fdpass_recv(sp[1], &w, sizeof(w), NULL, NULL, 0), sizeof(w));
	assert_int_equal(open_fds(), before);
	assert_int_equal(fdpass_send(sp[0], &v, sizeof(v), &fd, FDPASS_MAX + 1, 0), -EINVAL);
	close(sp[0]);
	assert_int_equal(fdpass_recv(sp[1], &w, sizeof(w), &got, &n, 0), 0);
	assert_int_equal(n, 0);
	assert_int_equal(fdpass_send(sp[1], &v, sizeof(v), NULL, 0, 0), -EPIPE);
	close(sp[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passes_fds),
		cmocka_unit_test(test_extra_fds_closed),
		cmocka_unit_test(test_plain_eof_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
