// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A signalfd for SIGUSR1 and SIGRTMIN+2 (both blocked), non-blocking, and
 * SIGUSR2 blocked but not in its set.  Before the checkpoint SIGRTMIN+2 is
 * queued with a value and left pending.  After restore: the signalfd's set
 * is the same (fdinfo sigmask), it reads the pending SIGRTMIN+2 with its
 * value, then a new SIGUSR1; a SIGUSR2 stays pending and the signalfd
 * stays empty.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void fdinfo_sigmask(int fd, char *out, size_t size)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail_errno("%s", path);
	char *s = strstr(buf, "sigmask:");
	if (!s)
		fail("%s: no sigmask line", path);
	snprintf(out, size, "%.*s", (int)strcspn(s, "\n"), s);
}

static struct signalfd_siginfo take(int fd, const char *what)
{
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		fail_errno("%s: read", what);
	return si;
}

int main(int argc, char **argv)
{
	sigset_t set, block, pend;
	char before[128], after[128];
	struct signalfd_siginfo si;
	int sfd;

	test_init(argc, argv);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 2);
	block = set;
	sigaddset(&block, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &block, NULL))
		fail_errno("sigprocmask");
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		fail_errno("signalfd");
	if (sigqueue(getpid(), SIGRTMIN + 2, (union sigval){ .sival_int = 4242 }))
		fail_errno("sigqueue");
	fdinfo_sigmask(sfd, before, sizeof(before));

	test_ready();
	test_wait_check();

	fdinfo_sigmask(sfd, after, sizeof(after));
	if (strcmp(before, after))
		fail("signalfd set: '%s', was '%s'", after, before);
	if (!(fcntl(sfd, F_GETFL) & O_NONBLOCK))
		fail("signalfd lost O_NONBLOCK");
	si = take(sfd, "pending SIGRTMIN+2");
	if ((int)si.ssi_signo != SIGRTMIN + 2 || si.ssi_int != 4242)
		fail("read signal %u value %d, not SIGRTMIN+2 with 4242", si.ssi_signo, si.ssi_int);
	if (raise(SIGUSR2) || raise(SIGUSR1))
		fail_errno("raise");
	si = take(sfd, "SIGUSR1");
	if (si.ssi_signo != SIGUSR1)
		fail("read signal %u, not SIGUSR1", si.ssi_signo);
	if (read(sfd, &si, sizeof(si)) >= 0 || errno != EAGAIN)
		fail("the signalfd read a signal outside its set (%u)", si.ssi_signo);
	if (sigpending(&pend) || !sigismember(&pend, SIGUSR2))
		fail("SIGUSR2 is not pending");
	pass();
}
