// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * SIGIO delivery set up with F_SETOWN_EX and F_SETSIG on pipes with
 * O_ASYNC: one owned by the process with a real-time signal, one by a
 * second thread (F_OWNER_TID) with the default SIGIO, one by the process
 * group.  After restore the owners and signals read back the same, and a
 * write into each pipe raises its signal for its owner (the real-time one
 * carrying the fd in si_fd).
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int pp[3][2];
static pid_t thread_tid;
static atomic_int thread_got, thread_go;

static void *thread_fn(void *arg)
{
	sigset_t s;
	siginfo_t si;
	struct timespec to = { 30, 0 };

	(void)arg;
	thread_tid = (pid_t)syscall(SYS_gettid);
	sigemptyset(&s);
	sigaddset(&s, SIGIO);
	for (;;) {
		while (!atomic_load(&thread_go))
			test_sleep_ms(1);
		atomic_store(&thread_go, 0);
		int sig = sigtimedwait(&s, &si, &to);
		atomic_store(&thread_got, sig == SIGIO ? 1 : -1);
	}
	return NULL;
}

static bool got_set(void *arg)
{
	(void)arg;
	return atomic_load(&thread_got) != 0;
}

static void expect_owner(int fd, int type, pid_t pid, int sig)
{
	struct f_owner_ex o;
	if (fcntl(fd, F_GETOWN_EX, &o) < 0)
		fail_errno("F_GETOWN_EX %d", fd);
	if ((int)o.type != type || o.pid != pid)
		fail("fd %d: owner type %d pid %d, want type %d pid %d", fd, o.type, o.pid, type, pid);
	if (fcntl(fd, F_GETSIG) != sig)
		fail("fd %d: F_GETSIG %d, want %d", fd, fcntl(fd, F_GETSIG), sig);
}

static void check(void)
{
	struct timespec to = { 30, 0 };
	siginfo_t si;
	sigset_t s;
	char c;

	expect_owner(pp[0][0], F_OWNER_PID, getpid(), SIGRTMIN + 1);
	expect_owner(pp[1][0], F_OWNER_TID, thread_tid, 0);
	expect_owner(pp[2][0], F_OWNER_PGRP, getpgrp(), 0);

	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 1);
	if (write(pp[0][1], "x", 1) != 1)
		fail_errno("write");
	if (sigtimedwait(&s, &si, &to) != SIGRTMIN + 1 || si.si_fd != pp[0][0])
		fail("no SIGRTMIN+1 for fd %d (si_fd %d)", pp[0][0], si.si_fd);
	if (read(pp[0][0], &c, 1) != 1)
		fail_errno("read");

	atomic_store(&thread_got, 0);
	atomic_store(&thread_go, 1);
	test_sleep_ms(1);
	if (write(pp[1][1], "x", 1) != 1)
		fail_errno("write");
	if (!test_poll(got_set, NULL, 30000) || atomic_load(&thread_got) != 1)
		fail("the owner thread got no SIGIO for fd %d", pp[1][0]);
	if (read(pp[1][0], &c, 1) != 1)
		fail_errno("read");

	sigemptyset(&s);
	sigaddset(&s, SIGIO);
	if (write(pp[2][1], "x", 1) != 1)
		fail_errno("write");
	if (sigtimedwait(&s, &si, &to) != SIGIO)
		fail("no SIGIO for the process group (fd %d)", pp[2][0]);
	if (read(pp[2][0], &c, 1) != 1)
		fail_errno("read");
}

int main(int argc, char **argv)
{
	struct f_owner_ex o;
	pthread_t th;
	sigset_t s;

	test_init(argc, argv);
	sigemptyset(&s);
	sigaddset(&s, SIGIO);
	sigaddset(&s, SIGRTMIN + 1);
	if (pthread_sigmask(SIG_BLOCK, &s, NULL))
		fail("sigmask");
	if (pthread_create(&th, NULL, thread_fn, NULL))
		fail("pthread_create");
	while (!__atomic_load_n(&thread_tid, __ATOMIC_SEQ_CST))
		test_sleep_ms(1);
	for (int i = 0; i < 3; i++)
		if (pipe(pp[i]) || fcntl(pp[i][0], F_SETFL, O_ASYNC | O_NONBLOCK))
			fail_errno("pipe %d", i);
	o = (struct f_owner_ex){ F_OWNER_PID, getpid() };
	if (fcntl(pp[0][0], F_SETOWN_EX, &o) || fcntl(pp[0][0], F_SETSIG, SIGRTMIN + 1))
		fail_errno("F_SETOWN_EX pid");
	o = (struct f_owner_ex){ F_OWNER_TID, thread_tid };
	if (fcntl(pp[1][0], F_SETOWN_EX, &o))
		fail_errno("F_SETOWN_EX tid");
	o = (struct f_owner_ex){ F_OWNER_PGRP, getpgrp() };
	if (fcntl(pp[2][0], F_SETOWN_EX, &o))
		fail_errno("F_SETOWN_EX pgrp");
	check();

	test_ready();
	test_wait_check();

	check();
	pass();
}
