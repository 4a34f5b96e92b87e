// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Processes stopped inside sleeping syscalls by the checkpoint; each must
 * come back in a state where the syscall completes as it would have:
 *   C1 nanosleep(3 s) (glibc: clock_nanosleep) in a loop on EINTR with the remaining time: ends
 *      no earlier than 3 s after it began, and no later than 3 s plus the
 *      time the tree was frozen (measured by a ticker thread) plus slack
 *   C2 read() on an empty pipe: returns exactly the bytes written after
 *      restore (never EINTR: a stop does not interrupt it)
 *   C3 pause(): returns EINTR once the SIGUSR1 sent after restore has run
 *      its handler
 *   C4 waitpid() on its own child G (blocked in read): returns G's exit
 *      status 7 once G is released after restore
 * Before READY each child is seen blocked in its syscall.
 */
#include "zdtm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLEEP_NS 3000000000ULL
#define MSG "after-restore"

static int c2_pipe[2], g_pipe[2], c1_report[2];
static atomic_ullong frozen_ns;	/* sum of the ticker's gaps */
static atomic_int ticker_quit;
static volatile sig_atomic_t usr1_hits;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_hits++;
}

/* Gaps in a 10 ms tick are time the tree spent frozen. */
static void *ticker(void *arg)
{
	uint64_t last = test_now_ns();

	(void)arg;
	while (!atomic_load(&ticker_quit)) {
		test_sleep_ms(10);
		uint64_t now = test_now_ns();

		if (now - last > 100000000ULL)
			atomic_fetch_add(&frozen_ns, now - last);
		last = now;
	}
	return NULL;
}

static __attribute__((noreturn)) void c1(void)
{
	struct timespec req = { SLEEP_NS / 1000000000ULL, SLEEP_NS % 1000000000ULL }, rem;
	uint64_t t0 = test_now_ns(), dt;

	while (nanosleep(&req, &rem))
		if (errno == EINTR)
			req = rem;
		else
			fail_errno("C1: nanosleep");
	dt = test_now_ns() - t0;
	test_write_all(c1_report[1], &dt, sizeof(dt));
	_exit(0);
}

static __attribute__((noreturn)) void c2(void)
{
	char buf[64];
	ssize_t n = read(c2_pipe[0], buf, sizeof(buf));

	if (n < 0)
		fail_errno("C2: read");
	if (n != (ssize_t)strlen(MSG) || memcmp(buf, MSG, (size_t)n))
		fail("C2: read returned %zd bytes '%.*s', want '%s'", n, (int)(n > 0 ? n : 0), buf, MSG);
	_exit(0);
}

static __attribute__((noreturn)) void c3(void)
{
	int r = pause();

	if (r != -1 || errno != EINTR)
		fail("C3: pause returned %d errno %d, want -1 EINTR", r, errno);
	if (usr1_hits != 1)
		fail("C3: SIGUSR1 handler ran %d times, want 1", (int)usr1_hits);
	_exit(0);
}

static __attribute__((noreturn)) void c4(void)
{
	int status;
	pid_t g = fork();

	if (g < 0)
		fail_errno("C4: fork");
	if (g == 0) {
		char c;

		if (read(g_pipe[0], &c, 1) != 1)
			fail_errno("G: read");
		_exit(7);
	}
	pid_t r = waitpid(g, &status, 0);

	if (r != g)
		fail("C4: waitpid returned %d (errno %d), want %d", r, errno, g);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
		fail("C4: G's status 0x%x, want exit 7", status);
	_exit(0);
}

static bool blocked_in(pid_t nspid, long nr)
{
	pid_t host = test_host_pid_of_child(nspid);

	return host > 0 && test_task_syscall(host, 0) == nr;
}

struct kid {
	pid_t pid;
	long nr;
	const char *name;
};

static bool all_blocked(void *arg)
{
	struct kid *k = arg;

	for (int i = 0; i < 4; i++)
		if (!blocked_in(k[i].pid, k[i].nr))
			return false;
	return true;
}

int main(int argc, char **argv)
{
	void (*fns[4])(void) = { c1, c2, c3, c4 };
	struct kid kids[4] = { { 0, SYS_clock_nanosleep, "C1 nanosleep" }, { 0, SYS_read, "C2 read" },
			       { 0, SYS_pause, "C3 pause" }, { 0, SYS_wait4, "C4 waitpid" } };
	struct sigaction sa = { .sa_handler = on_usr1 };
	pthread_t tk;
	uint64_t dt;

	test_init(argc, argv);
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(c2_pipe) || pipe(g_pipe) || pipe(c1_report))
		fail_errno("pipe");
	for (int i = 0; i < 4; i++) {
		kids[i].pid = fork();
		if (kids[i].pid < 0)
			fail_errno("fork");
		if (kids[i].pid == 0)
			fns[i]();
	}
	if (!test_poll(all_blocked, kids, 10000)) {
		for (int i = 0; i < 4; i++)
			if (!blocked_in(kids[i].pid, kids[i].nr))
				fail("%s is not blocked in syscall %ld", kids[i].name, kids[i].nr);
	}
	if (pthread_create(&tk, NULL, ticker, NULL))
		fail("pthread_create");

	test_ready();
	test_wait_check();

	/* C1 ends by itself. */
	if (test_read_all(c1_report[0], &dt, sizeof(dt)))
		fail("C1 did not report");
	test_reap_ok(kids[0].pid, "C1");
	atomic_store(&ticker_quit, 1);
	pthread_join(tk, NULL);
	if (dt < SLEEP_NS)
		fail("C1: nanosleep(3 s) ended after %llu ms", (unsigned long long)(dt / 1000000));
	if (dt > SLEEP_NS + atomic_load(&frozen_ns) + 5000000000ULL)
		fail("C1: nanosleep(3 s) ended after %llu ms, frozen %llu ms",
		     (unsigned long long)(dt / 1000000), (unsigned long long)(atomic_load(&frozen_ns) / 1000000));

	if (test_write_all(c2_pipe[1], MSG, strlen(MSG)))
		fail_errno("write C2");
	test_reap_ok(kids[1].pid, "C2");

	if (kill(kids[2].pid, SIGUSR1))
		fail_errno("kill C3");
	test_reap_ok(kids[2].pid, "C3");

	if (test_write_all(g_pipe[1], "g", 1))
		fail_errno("write G");
	test_reap_ok(kids[3].pid, "C4");
	pass();
}
