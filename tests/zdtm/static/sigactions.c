// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Signal dispositions: handlers with SA_SIGINFO, SA_RESTART, SA_NODEFER,
 * SA_RESETHAND, SA_NOCLDSTOP and various sa_mask sets, SIG_IGN, SIG_DFL.
 * After restore sigaction() reports the same handler, flags, mask and
 * restorer for every signal, and they behave: sa_mask is blocked inside
 * the handler, SA_NODEFER leaves the signal itself unblocked, SA_RESETHAND
 * resets after one delivery, SA_RESTART restarts an interrupted read
 * while its absence makes it fail with EINTR, SIG_IGN ignores.
 * (pidns: the restart check signals a thread with pthread_kill.)
 */
#include "zdtm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int hits[NSIG];
static sigset_t in_handler_mask[NSIG];
static siginfo_t last_info[NSIG];
static int tkill_code;

static void h_plain(int sig)
{
	pthread_sigmask(SIG_SETMASK, NULL, &in_handler_mask[sig]);
	atomic_fetch_add(&hits[sig], 1);
}

static void h_info(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	pthread_sigmask(SIG_SETMASK, NULL, &in_handler_mask[sig]);
	last_info[sig] = *info;
	atomic_fetch_add(&hits[sig], 1);
}

#define RT(n) (SIGRTMIN + (n))

struct disp {
	int sig;
	int flags;
	int info;	/* 1: h_info, 0: h_plain, 2: SIG_IGN */
	int mask[3];
};

static struct disp disps[8];
static int ndisp;
static struct sigaction saved[NSIG];

static void setup(void)
{
	struct disp d[] = {
		{ SIGUSR1, SA_SIGINFO | SA_RESTART, 1, { SIGUSR2, 0, 0 } },
		{ SIGUSR2, SA_NODEFER, 0, { 0 } },
		{ SIGHUP, 0, 2, { 0 } },
		{ SIGWINCH, SA_RESETHAND, 0, { SIGINT, 0, 0 } },
		{ SIGCHLD, SA_NOCLDSTOP | SA_RESTART, 0, { 0 } },
		{ 0 /* RT(5) */, SA_SIGINFO, 1, { SIGQUIT, SIGINT, 0 } },
	};

	d[5].sig = RT(5);
	d[0].mask[1] = RT(3);
	ndisp = (int)ARRAY_SIZE(d);
	memcpy(disps, d, sizeof(d));
	for (int i = 0; i < ndisp; i++) {
		struct sigaction sa = { 0 };

		if (disps[i].info == 1)
			sa.sa_sigaction = h_info;
		else if (disps[i].info == 0)
			sa.sa_handler = h_plain;
		else
			sa.sa_handler = SIG_IGN;
		sa.sa_flags = disps[i].flags;
		sigemptyset(&sa.sa_mask);
		for (int j = 0; j < 3 && disps[i].mask[j]; j++)
			sigaddset(&sa.sa_mask, disps[i].mask[j]);
		if (sigaction(disps[i].sig, &sa, NULL))
			fail_errno("sigaction(%d)", disps[i].sig);
	}
}

static int blocker_fd[2];
static atomic_int read_result, read_errno, reader_tid;

static void *reader(void *arg)
{
	(void)arg;
	char c;

	atomic_store(&reader_tid, test_proc_tid());
	ssize_t n = read(blocker_fd[0], &c, 1);

	atomic_store(&read_errno, n < 0 ? errno : 0);
	atomic_store(&read_result, n < 0 ? -1 : (int)n);
	return NULL;
}

static bool read_done(void *arg)
{
	(void)arg;
	return atomic_load(&read_result) != 0;
}

static bool reader_in_read(void *arg)
{
	char path[96];
	int tid = atomic_load(&reader_tid);

	(void)arg;
	if (!tid)
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	char text[128];

	return test_read_file(path, text, sizeof(text)) > 0 && atol(text) == SYS_read;
}

/*
 * Interrupt a read blocked in a thread with sig. With restart, the read
 * must still be blocked window_ms later (then it gets a byte); without,
 * it must fail with EINTR within window_ms. Returns the read's result.
 */
static int interrupted_read(int sig, int window_ms, int *ret_errno)
{
	pthread_t th;

	atomic_store(&read_result, 0);
	atomic_store(&reader_tid, 0);
	if (pipe(blocker_fd) || pthread_create(&th, NULL, reader, NULL))
		fail("pipe/pthread_create");
	if (!test_poll(reader_in_read, NULL, 10000))
		fail("reader thread never blocked in read");
	pthread_kill(th, sig);
	if (!test_poll(read_done, NULL, window_ms))
		test_write_all(blocker_fd[1], "x", 1);	/* restarted: still blocked, feed it */
	pthread_join(th, NULL);
	close(blocker_fd[0]);
	close(blocker_fd[1]);
	*ret_errno = atomic_load(&read_errno);
	return atomic_load(&read_result);
}

int main(int argc, char **argv)
{
	int err;

	test_init(argc, argv);
	setup();
	for (int s = 1; s < NSIG; s++)
		sigaction(s, NULL, &saved[s]);
	/* What this kernel puts in si_code for raise() (tgkill): SI_TKILL or SI_USER. */
	raise(SIGUSR1);
	tkill_code = last_info[SIGUSR1].si_code;
	atomic_store(&hits[SIGUSR1], 0);

	test_ready();
	test_wait_check();

	for (int s = 1; s < NSIG; s++) {
		struct sigaction now;

		if (s == SIGKILL || s == SIGSTOP || s == 32 || s == 33)
			continue;
		sigaction(s, NULL, &now);
		if (now.sa_handler != saved[s].sa_handler)
			fail("signal %d: handler %p, was %p", s, (void *)now.sa_handler,
			     (void *)saved[s].sa_handler);
		if (now.sa_flags != saved[s].sa_flags)
			fail("signal %d: sa_flags %#x, were %#x", s, now.sa_flags, saved[s].sa_flags);
		if (now.sa_handler != SIG_DFL && now.sa_handler != SIG_IGN &&
		    now.sa_restorer != saved[s].sa_restorer)
			fail("signal %d: sa_restorer %p, was %p", s, (void *)now.sa_restorer,
			     (void *)saved[s].sa_restorer);
		for (int m = 1; m < NSIG; m++)
			if (m != 32 && m != 33 && sigismember(&now.sa_mask, m) != sigismember(&saved[s].sa_mask, m))
				fail("signal %d: sa_mask differs at signal %d", s, m);
	}

	/* Behaviour. */
	raise(SIGUSR1);
	if (hits[SIGUSR1] != 1 || last_info[SIGUSR1].si_signo != SIGUSR1 ||
	    last_info[SIGUSR1].si_code != tkill_code || last_info[SIGUSR1].si_pid != getpid())
		fail("SIGUSR1 (SA_SIGINFO) handler: hits %d signo %d code %d pid %d", hits[SIGUSR1],
		     last_info[SIGUSR1].si_signo, last_info[SIGUSR1].si_code, last_info[SIGUSR1].si_pid);
	if (!sigismember(&in_handler_mask[SIGUSR1], SIGUSR2) ||
	    !sigismember(&in_handler_mask[SIGUSR1], RT(3)) ||
	    !sigismember(&in_handler_mask[SIGUSR1], SIGUSR1))
		fail("SIGUSR1 handler ran without its sa_mask (SIGUSR2, SIGRTMIN+3) or itself blocked");
	raise(SIGUSR2);
	if (hits[SIGUSR2] != 1 || sigismember(&in_handler_mask[SIGUSR2], SIGUSR2))
		fail("SIGUSR2 (SA_NODEFER): hits %d, blocked in its handler %d", hits[SIGUSR2],
		     sigismember(&in_handler_mask[SIGUSR2], SIGUSR2));
	raise(SIGHUP);	/* ignored: we live on */
	raise(SIGWINCH);
	if (hits[SIGWINCH] != 1 || !sigismember(&in_handler_mask[SIGWINCH], SIGINT))
		fail("SIGWINCH handler: hits %d or SIGINT not blocked in it", hits[SIGWINCH]);
	{
		struct sigaction now;

		sigaction(SIGWINCH, NULL, &now);
		if (now.sa_handler != SIG_DFL)
			fail("SA_RESETHAND did not reset SIGWINCH to SIG_DFL");
	}
	raise(RT(5));
	if (hits[RT(5)] != 1 || !sigismember(&in_handler_mask[RT(5)], SIGQUIT))
		fail("SIGRTMIN+5 handler: hits %d or SIGQUIT not blocked in it", hits[RT(5)]);
	/* SA_RESTART: the read goes on and gets the byte; without it: EINTR. */
	if (interrupted_read(SIGUSR1, 300, &err) != 1)
		fail("read interrupted by SIGUSR1 (SA_RESTART) was not restarted (errno %d)", err);
	if (interrupted_read(RT(5), 10000, &err) != -1 || err != EINTR)
		fail("read interrupted by SIGRTMIN+5 (no SA_RESTART) did not fail with EINTR");
	pass();
}
