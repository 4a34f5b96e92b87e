// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * A process group orphaned while its members are stopped by job control.
 * The root R is the init of its PID namespace:
 *
 *   R ── M   setsid(), forks A and B into group A, stops both with SIGTSTP
 *        ├─ A   SIGHUP blocked, SIGCONT handler
 *        └─ B   SIGHUP ignored, SIGCONT handler
 *
 * M exits: A and B go to R (another session), group A is orphaned with
 * stopped members, and the kernel sends it SIGHUP, then SIGCONT: both run
 * again (once), A with SIGHUP pending, B without it. R then stops B with
 * SIGSTOP (the one stop signal an orphaned group still obeys). A checks
 * that a SIGTSTP it sends itself is discarded (its group is orphaned).
 *
 * After restore, nothing was sent again: B is still stopped, by SIGSTOP;
 * A has SIGHUP pending, saw one SIGCONT, and SIGTSTP is still discarded
 * (the group is still orphaned); B, continued, saw two.
 */
#include "zdtm.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t conts;

static void on_cont(int sig)
{
	(void)sig;
	conts++;
}

static int stop_sig(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOWAIT | WNOHANG))
		fail_errno("waitid(%d, WSTOPPED)", pid);
	return si.si_pid == pid && si.si_code == CLD_STOPPED ? si.si_status : 0;
}

static bool stopped(void *arg)
{
	return stop_sig(*(pid_t *)arg) != 0;
}

/* A sends itself SIGTSTP: in an orphaned group the kernel discards it */
static void tstp_discarded(const char *when)
{
	int before = conts;

	if (kill(getpid(), SIGTSTP))
		fail_errno("A: kill(SIGTSTP)");
	/* had it stopped, we would be here only after a SIGCONT */
	if (conts != before)
		fail("A %s: SIGTSTP stopped it: its group is not orphaned", when);
}

static bool hup_pending(void)
{
	sigset_t s;

	if (sigpending(&s))
		fail_errno("sigpending");
	return sigismember(&s, SIGHUP);
}

static __attribute__((noreturn)) void member(bool is_a, int rep)
{
	struct sigaction sa = { .sa_handler = on_cont };
	sigset_t hup;

	sigaction(SIGCONT, &sa, NULL);
	if (is_a) {
		sigemptyset(&hup);
		sigaddset(&hup, SIGHUP);
		sigprocmask(SIG_BLOCK, &hup, NULL);
	} else {
		signal(SIGHUP, SIG_IGN);
	}
	if (write(rep, is_a ? "A" : "B", 1) != 1)	/* set up */
		fail_errno("member: write");
	while (!conts)
		test_sleep_ms(5);
	if (is_a) {
		if (!hup_pending())
			fail("A: no SIGHUP pending after its group was orphaned");
		tstp_discarded("before");
	}
	if (write(rep, is_a ? "a" : "b", 1) != 1)	/* continued */
		fail_errno("member: write");
	close(rep);
	test_wait_check();
	if (is_a) {
		if (!hup_pending())
			fail("A: SIGHUP is no longer pending after restore");
		if (conts != 1)
			fail("A: %d SIGCONT after restore, want 1", (int)conts);
		tstp_discarded("after restore");
	} else {
		/* R sent SIGCONT before SIGTERM: its handler may run after ours */
		for (int i = 0; i < 1000 && conts < 2; i++)
			test_sleep_ms(10);
		if (conts != 2)
			fail("B: %d SIGCONT after restore and R's SIGCONT, want 2", (int)conts);
	}
	_exit(0);
}

static void read_byte(int fd, char want, const char *what)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c = 0;

	if (poll(&pfd, 1, 10000) != 1 || read(fd, &c, 1) != 1)
		fail("no word from %s", what);
	if (c != want)
		fail("%s: got '%c', want '%c'", what, c, want);
}

int main(int argc, char **argv)
{
	int rep[2], ids[2], status, sig;
	pid_t m, kids[2];

	test_init(argc, argv);
	if (pipe(rep) || pipe(ids))
		fail_errno("pipe");
	m = fork();
	if (m < 0)
		fail_errno("fork");
	if (m == 0) {
		pid_t a, b;

		if (setsid() < 0)
			fail_errno("M: setsid");
		a = fork();
		if (a == 0) {
			close(rep[0]);
			setpgid(0, 0);
			member(true, rep[1]);
		}
		if (a < 0 || (setpgid(a, a) && errno != EACCES))
			fail_errno("M: fork A, setpgid");
		read_byte(rep[0], 'A', "A (set up)");
		b = fork();
		if (b == 0) {
			close(rep[0]);
			if (setpgid(0, a))
				fail_errno("B: setpgid");
			member(false, rep[1]);
		}
		if (b < 0)
			fail_errno("M: fork B");
		read_byte(rep[0], 'B', "B (set up)");
		if (kill(-a, SIGTSTP))
			fail_errno("M: kill(group A, SIGTSTP)");
		if (!test_poll(stopped, &a, 10000) || !test_poll(stopped, &b, 10000))
			fail("M: A and B did not stop on SIGTSTP");
		if (stop_sig(a) != SIGTSTP || stop_sig(b) != SIGTSTP)
			fail("M: A, B stopped by %d, %d, want SIGTSTP", stop_sig(a), stop_sig(b));
		if (write(ids[1], &a, sizeof(a)) != sizeof(a) || write(ids[1], &b, sizeof(b)) != sizeof(b))
			fail_errno("M: write ids");
		_exit(0);	/* orphans group A */
	}
	close(rep[1]);
	close(ids[1]);
	if (test_read_all(ids[0], kids, sizeof(kids)))
		fail("no pids from M");
	close(ids[0]);
	if (test_waitpid(m, &status, 0) != m || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("M ended with status 0x%x", status);
	/* the kernel's SIGHUP + SIGCONT to the orphaned group: both run again */
	{
		char c[2];
		struct pollfd pfd = { .fd = rep[0], .events = POLLIN };
		for (int i = 0; i < 2; i++)
			if (poll(&pfd, 1, 10000) != 1 || read(rep[0], &c[i], 1) != 1)
				fail("A and B were not continued when their group was orphaned");
		if (!((c[0] == 'a' && c[1] == 'b') || (c[0] == 'b' && c[1] == 'a')))
			fail("continued: got '%c%c'", c[0], c[1]);
	}
	close(rep[0]);
	if (kill(kids[1], SIGSTOP))
		fail_errno("kill(B, SIGSTOP)");
	if (!test_poll(stopped, &kids[1], 10000))
		fail("B did not stop on SIGSTOP");

	test_ready();
	test_wait_check();

	if (!test_poll(stopped, &kids[1], 10000))
		fail("B is not stopped after restore");
	if ((sig = stop_sig(kids[1])) != SIGSTOP)
		fail("B stopped by %d (%s) after restore, was SIGSTOP", sig, strsignal(sig));
	if (kill(kids[1], SIGCONT))
		fail_errno("kill(B, SIGCONT)");
	/* A: a SIGTSTP that stopped it would show as a stop here */
	if (kill(kids[0], SIGTERM))
		fail_errno("kill(A, SIGTERM)");
	for (int i = 0; i < 1000; i++) {
		pid_t w = test_waitpid(kids[0], &status, WUNTRACED | WNOHANG);
		if (w == kids[0] && WIFSTOPPED(status)) {
			kill(kids[0], SIGKILL);
			fail("A stopped on SIGTSTP (%d) after restore: its group is no longer orphaned",
			     WSTOPSIG(status));
		}
		if (w == kids[0]) {
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				fail("A ended with status 0x%x", status);
			break;
		}
		if (i == 999)
			fail("A did not end on SIGTERM");
		test_sleep_ms(10);
	}
	test_stop_children(&kids[1], 1, "B");
	pass();
}
