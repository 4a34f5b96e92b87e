// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Processes stopped inside sleeping syscalls by the checkpoint; each must
 * come back in a state where the syscall completes as it would have:
 *   C1 nanosleep(1 h) (glibc: clock_nanosleep) in a loop on EINTR with the
 *      remaining time, as programs do: still asleep when the test is checked
 *      (it must not end early), then interrupted by SIGUSR1; the time slept
 *      so far plus the remaining time it reports must be no less than 1 h
 *      (the restarted sleep kept its end) and no more than 1 h plus the time
 *      the tree was frozen (measured by a ticker thread) plus slack.  The
 *      sleep is an hour, not a few seconds, so that it cannot end before
 *      the runner's view of the tree after the restore, however slow the
 *      machine (a 3 s sleep did, on a loaded machine: "state=Z")
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

#define SLEEP_NS 3600000000000ULL
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

/* What C1 tells the root once SIGUSR1 has interrupted its sleep. */
struct c1_report {
	uint64_t slept_ns;	/* from the first nanosleep() to the EINTR of SIGUSR1 */
	uint64_t rem_ns;	/* the remaining time nanosleep() reported then */
	int ended;		/* 1: the sleep ended by itself (1 h: it must not) */
	int spurious;		/* EINTRs without SIGUSR1 (a restore may cause them) */
};

static __attribute__((noreturn)) void c1(void)
{
	struct timespec req = { SLEEP_NS / 1000000000ULL, SLEEP_NS % 1000000000ULL }, rem;
	struct c1_report r = { 0 };
	uint64_t t0 = test_now_ns();

	for (;;) {
		if (nanosleep(&req, &rem) == 0) {
			r.ended = 1;
			break;
		}
		if (errno != EINTR)
			fail_errno("C1: nanosleep");
		if (usr1_hits) {
			r.rem_ns = (uint64_t)rem.tv_sec * 1000000000ULL + (uint64_t)rem.tv_nsec;
			break;
		}
		r.spurious++;
		req = rem;
	}
	r.slept_ns = test_now_ns() - t0;
	test_write_all(c1_report[1], &r, sizeof(r));
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
	struct c1_report rep;
	uint64_t total;

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

	/* C1 must still be asleep; SIGUSR1 ends its sleep early, with what remains. */
	/* a sleep resumed in the same task (dump mode) runs as restart_syscall */
	if (!blocked_in(kids[0].pid, kids[0].nr) && !blocked_in(kids[0].pid, SYS_restart_syscall))
		fail("C1 is not asleep in nanosleep(1 h) any more");
	if (kill(kids[0].pid, SIGUSR1))
		fail_errno("kill C1");
	if (test_read_all(c1_report[0], &rep, sizeof(rep)))
		fail("C1 did not report");
	test_reap_ok(kids[0].pid, "C1");
	atomic_store(&ticker_quit, 1);
	pthread_join(tk, NULL);
	if (rep.spurious)
		test_msg("C1: nanosleep returned EINTR %d time(s) without a signal", rep.spurious);
	if (rep.ended)
		fail("C1: nanosleep(1 h) ended by itself after %llu ms",
		     (unsigned long long)(rep.slept_ns / 1000000));
	total = rep.slept_ns + rep.rem_ns;
	/* nanosleep rounds the remaining time: allow a millisecond below */
	if (total + 1000000ULL < SLEEP_NS)
		fail("C1: slept %llu ms with %llu ms left of 1 h: the restarted sleep lost %llu ms",
		     (unsigned long long)(rep.slept_ns / 1000000), (unsigned long long)(rep.rem_ns / 1000000),
		     (unsigned long long)((SLEEP_NS - total) / 1000000));
	if (total > SLEEP_NS + atomic_load(&frozen_ns) + 5000000000ULL)
		fail("C1: slept %llu ms with %llu ms left of 1 h, frozen %llu ms: the restarted sleep grew",
		     (unsigned long long)(rep.slept_ns / 1000000), (unsigned long long)(rep.rem_ns / 1000000),
		     (unsigned long long)(atomic_load(&frozen_ns) / 1000000));

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
