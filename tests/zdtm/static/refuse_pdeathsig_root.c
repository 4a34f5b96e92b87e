// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=the root of the tree, has a parent-death signal
/*
 * The root of the tree with a parent-death signal (PR_SET_PDEATHSIG): it
 * is tied to the root's parent, which is outside the tree. After a restore
 * the root's parent is another process (the restorer, which exits at once,
 * or the daemon): firing the signal on its exit, or dropping it, are both
 * wrong, so the checkpoint refuses it, named, and the root runs on with
 * its signal still set (and not delivered).
 */
#include "zdtm.h"

#include <signal.h>
#include <sys/prctl.h>

static volatile sig_atomic_t got;

static void on_usr2(int sig)
{
	(void)sig;
	got = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr2 };
	int pd = 0;

	test_init(argc, argv);
	sigaction(SIGUSR2, &sa, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2))
		fail_errno("PR_SET_PDEATHSIG");

	test_ready();
	test_wait_check();

	if (prctl(PR_GET_PDEATHSIG, &pd) || pd != SIGUSR2)
		fail("PR_GET_PDEATHSIG is %d, was SIGUSR2", pd);
	if (got)
		fail("the parent-death signal came, its parent is alive");
	pass();
}
