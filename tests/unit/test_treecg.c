/* SPDX-License-Identifier: MIT */
/*
 * The migrated tree's cgroup (src/migrate/treecg.c), on this machine's
 * hierarchies: a process put in it forks a grandchild that leaves the
 * process tree (setsid + double fork: no walk of children finds it); a kill
 * of the cgroup must end both, and the cgroup must go afterwards.  Once
 * with cgroup v2 (cgroup.kill), once with the v1 freezer; each is skipped
 * where this host lacks it.  Needs root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "migrate/treecg.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char pstate(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] ? p[2] : 0;
}

static void kill_whole(enum treecg_version v)
{
	struct treecg cg;
	char name[64];
	int go[2], back[2];

	if (geteuid() != 0)
		skip();
	snprintf(name, sizeof(name), "unit-%d-v%d", getpid(), (int)v);
	if (treecg_create(name, v, &cg) < 0)
		skip(); /* this host has no such hierarchy */
	assert_int_equal(cg.version, v);
	/* the grandchild, reparented, comes to us */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(back), 0);
	pid_t a = fork();
	assert_true(a >= 0);
	if (a == 0) {
		char ch;
		if (read(go[0], &ch, 1) != 1)
			_exit(1);
		pid_t b = fork();
		if (b == 0) {
			setsid();
			pid_t c = fork();
			if (c == 0) {
				for (;;)
					pause();
			}
			if (write(back[1], &c, sizeof(c)) != sizeof(c))
				_exit(1);
			_exit(0);
		}
		waitpid(b, NULL, 0);
		for (;;)
			pause();
	}
	assert_int_equal(treecg_add(&cg, a), 0);
	assert_int_equal(write(go[1], "x", 1), 1);
	pid_t c = 0;
	assert_int_equal(read(back[0], &c, sizeof(c)), (ssize_t)sizeof(c));
	assert_true(c > 0);
	/* c outside a's tree: reparented to us once b exited */
	for (int i = 0; i < 200 && getppid() != 0; i++) {
		char path[64], buf[256];
		snprintf(path, sizeof(path), "/proc/%d/stat", c);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		int ppid = 0;
		char *p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == getpid())
			break;
		usleep(10000);
	}
	assert_true(treecg_populated(&cg));
	assert_int_not_equal(pstate(c), 'Z');

	assert_int_equal(treecg_kill(&cg, 10000), 0);
	int st;
	assert_int_equal(waitpid(a, &st, 0), a);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(waitpid(c, &st, 0), c);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_false(treecg_populated(&cg));
	assert_int_equal(treecg_remove(&cg), 0);
	struct stat sb;
	assert_int_equal(stat(cg.path, &sb), -1);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	close(go[0]);
	close(go[1]);
	close(back[0]);
	close(back[1]);
}

static void test_v2(void **state)
{
	(void)state;
	kill_whole(TREECG_V2);
}

static void test_v1_freezer(void **state)
{
	(void)state;
	kill_whole(TREECG_V1_FREEZER);
}

/* v2: a frozen tree does not run (cgroup.freeze), thawed it does */
static void test_v2_freeze(void **state)
{
	struct treecg cg;
	char name[64];
	int p[2];
	(void)state;

	if (geteuid() != 0)
		skip();
	snprintf(name, sizeof(name), "unit-%d-freeze", getpid());
	if (treecg_create(name, TREECG_V2, &cg) < 0)
		skip();
	assert_int_equal(pipe(p), 0);
	pid_t a = fork();
	if (a == 0) {
		for (;;) {
			if (write(p[1], "x", 1) != 1)
				_exit(1);
			usleep(1000);
		}
	}
	assert_int_equal(treecg_add(&cg, a), 0);
	assert_int_equal(treecg_freeze(&cg, true), 0);
	char events[256] = "";
	for (int i = 0; i < 500 && !strstr(events, "frozen 1"); i++) {
		char path[600];
		snprintf(path, sizeof(path), "%s/cgroup.events", cg.path);
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(events, 1, sizeof(events) - 1, f) : 0;
		events[n] = 0;
		if (f)
			fclose(f);
		usleep(10000);
	}
	assert_non_null(strstr(events, "frozen 1"));
	/* drain, then nothing more comes while frozen */
	int fl = O_NONBLOCK;
	fcntl(p[0], F_SETFL, fl);
	char buf[4096];
	while (read(p[0], buf, sizeof(buf)) > 0)
		;
	usleep(50000);
	assert_true(read(p[0], buf, sizeof(buf)) < 0 && errno == EAGAIN);
	assert_int_equal(treecg_freeze(&cg, false), 0);
	int got = 0;
	for (int i = 0; i < 500 && !got; i++) {
		got = read(p[0], buf, sizeof(buf)) > 0;
		usleep(10000);
	}
	assert_true(got);
	assert_int_equal(treecg_kill(&cg, 10000), 0);
	waitpid(a, NULL, 0);
	assert_int_equal(treecg_remove(&cg), 0);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	dm_log_init(LOG_WARN, -1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2),
		cmocka_unit_test(test_v1_freezer),
		cmocka_unit_test(test_v2_freeze),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
