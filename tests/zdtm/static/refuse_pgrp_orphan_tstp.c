// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,expect=dump-fail,dump-err=stopped by SIGTSTP in an orphaned process group
/*
 * A process stopped by SIGTSTP whose group was orphaned afterwards without
 * the kernel's SIGHUP + SIGCONT (those come only when a parent exits; a
 * setpgid() does not send them):
 *
 *   R ── Q   setsid(), forks P, exits: P goes to R (another session)
 *        P   forks C into group C, stops it with SIGTSTP, then joins
 *            group C itself: no member has a parent in another group of
 *            the session any more, the group is orphaned
 *        C   stopped by SIGTSTP
 *
 * The kernel discards SIGTSTP sent to an orphaned group, so a restore could
 * not stop C the same way: the checkpoint refuses it, named, and leaves the
 * tree running: afterwards C is still stopped by SIGTSTP, and resumes on
 * SIGCONT.
 */
#include "zdtm.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
	int ids[2], barrier[2], status;
	pid_t q, p = 0;

	test_init(argc, argv);
	if (pipe(ids))
		fail_errno("pipe");
	test_barrier_init(barrier);
	q = fork();
	if (q < 0)
		fail_errno("fork");
	if (q == 0) {
		if (setsid() < 0)
			fail_errno("Q: setsid");
		p = fork();
		if (p < 0)
			fail_errno("Q: fork");
		if (p == 0) {
			int sig, up[2];
			pid_t c;
			char b;

			close(ids[0]);
			close(ids[1]);
			/* until Q has exited: P's parent is then R */
			while (getppid() != 1)
				test_sleep_ms(5);
			if (pipe(up))
				fail_errno("P: pipe");
			c = fork();
			if (c < 0)
				fail_errno("P: fork");
			if (c == 0) {
				setpgid(0, 0);
				test_barrier_done(barrier);
				if (write(up[1], "c", 1) != 1)	/* before it can be stopped */
					fail_errno("C: write");
				close(up[0]);
				close(up[1]);
				for (;;)
					pause();
			}
			close(up[1]);
			if (read(up[0], &b, 1) != 1)
				fail("P: no word from C");
			close(up[0]);
			if (setpgid(c, c) && errno != EACCES)
				fail_errno("P: setpgid(C)");
			if (kill(c, SIGTSTP))
				fail_errno("P: kill(C, SIGTSTP)");
			if (!test_poll(stopped, &c, 10000) || stop_sig(c) != SIGTSTP)
				fail("P: C did not stop on SIGTSTP");
			if (setpgid(0, c))
				fail_errno("P: setpgid(0, C)");
			test_barrier_done(barrier);
			test_wait_check();
			/* the tree ran on: C is still stopped by SIGTSTP */
			if ((sig = stop_sig(c)) != SIGTSTP)
				fail("P: C is stopped by %d after the refused checkpoint, want SIGTSTP", sig);
			if (kill(c, SIGCONT) || kill(c, SIGKILL))
				fail_errno("P: kill(C)");
			if (test_waitpid(c, &status, 0) != c || !WIFSIGNALED(status))
				fail("P: C ended with status 0x%x", status);
			_exit(0);
		}
		if (write(ids[1], &p, sizeof(p)) != sizeof(p))
			fail_errno("Q: write");
		_exit(0);
	}
	close(ids[1]);
	if (test_read_all(ids[0], &p, sizeof(p)))
		fail("no pid from Q");
	close(ids[0]);
	if (test_waitpid(q, &status, 0) != q || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("Q ended with status 0x%x", status);
	test_barrier_wait(barrier);

	test_ready();
	test_wait_check();

	test_stop_children(&p, 1, "P");
	pass();
}
