// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Threads blocked in syscalls across the checkpoint:
 *   read(2) on an empty pipe, poll(2) on another, FUTEX_WAIT, a condition
 *   variable wait, and clock_nanosleep(TIMER_ABSTIME) to a deadline.
 * Before READY each is seen in its syscall (/proc/.../task/T/syscall).
 * After restore the blocking calls must not fail with EINTR (a stop does
 * not interrupt them; poll is the exception, see below), must return the
 * data that arrives after restore, and the sleeper must not wake before
 * its deadline.  The deadline is an hour away, so that the sleeper cannot
 * end before the runner's view of the tree after the restore however slow
 * the machine is (a 3 s deadline did: one thread fewer): it must still be
 * asleep when the test is checked, and wake with EINTR only for SIGUSR1,
 * which every other thread blocks.
 */
#include "zdtm.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MSG "data-after-restore"
#define SLEEP_S 3600

enum { T_READ, T_POLL, T_FUTEX, T_COND, T_SLEEP, NR_T };
static const char *names[NR_T] = { "read", "poll", "futex", "cond", "sleep" };
static const long nrs[NR_T] = { SYS_read, SYS_poll, SYS_futex, SYS_futex, SYS_clock_nanosleep };

static struct {
	pthread_t th;
	atomic_int host_tid;
	char err[256];
} t[NR_T];

static int pipe_read[2], pipe_poll[2];
static atomic_int futex_word;
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int cond_flag;
static struct timespec deadline;
static volatile sig_atomic_t usr1_hits;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_hits++;
}

#define ERR(i, ...) snprintf(t[i].err, sizeof(t[i].err), __VA_ARGS__)

static void *run(void *arg)
{
	int i = (int)(long)arg;
	char buf[64];
	ssize_t n;

	atomic_store(&t[i].host_tid, test_proc_tid());
	switch (i) {
	case T_READ:
		n = read(pipe_read[0], buf, sizeof(buf));
		if (n < 0)
			ERR(i, "read: %s", strerror(errno));
		else if (n != (ssize_t)strlen(MSG) || memcmp(buf, MSG, n))
			ERR(i, "read returned %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
		break;
	case T_POLL: {
		struct pollfd pfd = { .fd = pipe_poll[0], .events = POLLIN };
		int r, eintr = 0;

		/*
		 * poll() stopped in the kernel returns -ERESTART_RESTARTBLOCK,
		 * which a restore turns into EINTR (see DESIGN.md), as CRIU
		 * does; programs retry poll on EINTR, and so do we.
		 */
		while ((r = poll(&pfd, 1, -1)) < 0 && errno == EINTR)
			eintr++;
		if (eintr)
			test_msg("poll returned EINTR %d time(s)", eintr);
		if (r != 1)
			ERR(i, "poll returned %d: %s", r, r < 0 ? strerror(errno) : "");
		else if (!(pfd.revents & POLLIN))
			ERR(i, "poll revents %#x", pfd.revents);
		break;
	}
	case T_FUTEX:
		while (atomic_load(&futex_word) == 0) {
			long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);

			if (r < 0 && errno != EAGAIN) {
				ERR(i, "futex wait: %s", strerror(errno));
				break;
			}
		}
		break;
	case T_COND:
		pthread_mutex_lock(&mtx);
		while (!cond_flag)
			pthread_cond_wait(&cond, &mtx);
		pthread_mutex_unlock(&mtx);
		break;
	case T_SLEEP: {
		sigset_t usr1;
		struct timespec now;
		int r;

		/* the only thread that takes the SIGUSR1 sent to the process */
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
		while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL)) == EINTR &&
		       !usr1_hits)
			;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (r == 0)
			ERR(i, "clock_nanosleep to a deadline %d s away returned 0 (no SIGUSR1 yet)", SLEEP_S);
		else if (r != EINTR)
			ERR(i, "clock_nanosleep: %s", strerror(r));
		break;
	}
	}
	return NULL;
}

static int in_syscall(int i)
{
	char path[128], text[256];
	pid_t tid = atomic_load(&t[i].host_tid);

	if (!tid)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	if (test_read_file(path, text, sizeof(text)) < 0)
		return 0;
	return atol(text) == nrs[i];
}

static bool all_blocked(void *arg)
{
	(void)arg;
	for (int i = 0; i < NR_T; i++)
		if (!in_syscall(i))
			return false;
	return true;
}

int main(int argc, char **argv)
{
	test_init(argc, argv);
	if (pipe(pipe_read) || pipe(pipe_poll))
		fail_errno("pipe");
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SLEEP_S;
	/* SIGUSR1 ends the sleeper's wait: only it unblocks the signal */
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigset_t usr1;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (sigaction(SIGUSR1, &sa, NULL) || pthread_sigmask(SIG_BLOCK, &usr1, NULL))
		fail_errno("SIGUSR1");

	for (long i = 0; i < NR_T; i++)
		if (pthread_create(&t[i].th, NULL, run, (void *)i))
			fail("pthread_create");
	if (!test_poll(all_blocked, NULL, 10000)) {
		for (int i = 0; i < NR_T; i++)
			if (!in_syscall(i))
				fail("thread '%s' is not blocked in syscall %ld", names[i], nrs[i]);
	}

	test_ready();
	test_wait_check();

	for (int i = 0; i < NR_T; i++)
		if (t[i].err[0])
			fail("%s thread: %s", names[i], t[i].err);
	/* (a sleep that ended by itself has set its error above) */
	if (kill(getpid(), SIGUSR1))
		fail_errno("kill SIGUSR1");
	if (test_write_all(pipe_read[1], MSG, strlen(MSG)) || test_write_all(pipe_poll[1], "p", 1))
		fail_errno("write");
	atomic_store(&futex_word, 1);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_mutex_lock(&mtx);
	cond_flag = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&mtx);

	for (int i = 0; i < NR_T; i++) {
		if (pthread_join(t[i].th, NULL))
			fail("pthread_join(%s)", names[i]);
		if (t[i].err[0])
			fail("%s thread: %s", names[i], t[i].err);
	}
	pass();
}
