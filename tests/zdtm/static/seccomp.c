// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * no_new_privs and seccomp filters:
 *   filter 1 (all threads, SECCOMP_FILTER_FLAG_TSYNC): getpriority -> EPERM
 *   filter 2 (main thread only): sysinfo -> ENOMSG
 * Thread T existed before both, so it has filter 1 only. After restore
 * NoNewPrivs and Seccomp/Seccomp_filters of each thread are the same and
 * the filters act: main gets EPERM and ENOMSG, T gets EPERM and a working
 * sysinfo.
 * (pidns: the per-thread status is read by tid.)
 */
#include "zdtm.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/resource.h>
#include <unistd.h>

static atomic_int t_ready;
static pid_t t_host;
static char t_err[768];
static char t_before[256];
static void status_of(pid_t host_tid, char *out, size_t size);

static void install(int nr, int err, unsigned int flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned int)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = ARRAY_SIZE(f), .filter = f };

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog))
		fail_errno("seccomp(filter for syscall %d)", nr);
}

static int try(long nr)
{
	struct sysinfo si;

	errno = 0;
	if (nr == SYS_getpriority)
		return syscall(SYS_getpriority, PRIO_PROCESS, 0) < 0 ? errno : 0;
	return syscall(SYS_sysinfo, &si) < 0 ? errno : 0;
}

static void status_of(pid_t host_tid, char *out, size_t size)
{
	char path[96], a[32], b[32], c[32];

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", host_tid);
	if (test_status_field(path, "NoNewPrivs", a, sizeof(a)) || test_status_field(path, "Seccomp", b, sizeof(b)) ||
	    test_status_field(path, "Seccomp_filters", c, sizeof(c)))
		fail("no seccomp fields in %s", path);
	snprintf(out, size, "NoNewPrivs %s Seccomp %s Seccomp_filters %s", a, b, c);
}

static void *thread_main(void *arg)
{
	(void)arg;
	t_host = test_proc_tid();
	atomic_store(&t_ready, 1);
	test_wait_check();
	/* Our host tid is new after a restore: ask /proc/thread-self again. */
	char now[256];

	status_of(test_proc_tid(), now, sizeof(now));
	if (strcmp(now, t_before))
		snprintf(t_err, sizeof(t_err), "T: '%s', was '%s'", now, t_before);
	else if (try(SYS_getpriority) != EPERM)
		snprintf(t_err, sizeof(t_err), "T: getpriority gave errno %d, want EPERM", try(SYS_getpriority));
	else if (try(SYS_sysinfo) != 0)
		snprintf(t_err, sizeof(t_err), "T: sysinfo failed (%d): filter 2 leaked into T", try(SYS_sysinfo));
	return NULL;
}

static bool ready(void *arg)
{
	(void)arg;
	return atomic_load(&t_ready) != 0;
}

int main(int argc, char **argv)
{
	char main_before[256], now[256];
	pthread_t t;

	test_init(argc, argv);
	if (pthread_create(&t, NULL, thread_main, NULL))
		fail("pthread_create");
	if (!test_poll(ready, NULL, 10000))
		fail("thread did not start");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		fail_errno("PR_SET_NO_NEW_PRIVS");
	install(SYS_getpriority, EPERM, SECCOMP_FILTER_FLAG_TSYNC);
	install(SYS_sysinfo, ENOMSG, 0);
	status_of(test_proc_tid(), main_before, sizeof(main_before));
	status_of(t_host, t_before, sizeof(t_before));
	if (!strstr(t_before, "Seccomp_filters 1") || !strstr(main_before, "Seccomp_filters 2"))
		fail("before: main '%s', T '%s'", main_before, t_before);

	test_ready();
	test_wait_check();

	status_of(test_proc_tid(), now, sizeof(now));
	if (strcmp(now, main_before))
		fail("main: '%s', was '%s'", now, main_before);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		fail("no_new_privs lost");
	if (try(SYS_getpriority) != EPERM)
		fail("main: getpriority gave errno %d, want EPERM", try(SYS_getpriority));
	if (try(SYS_sysinfo) != ENOMSG)
		fail("main: sysinfo gave errno %d, want ENOMSG", try(SYS_sysinfo));
	pthread_join(t, NULL);
	if (t_err[0])
		fail("%s", t_err);
	pass();
}
