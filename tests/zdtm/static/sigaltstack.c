// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Alternate signal stacks, per thread, and a thread caught inside a
 * handler running on its alternate stack:
 *   main:     altstack A; SIGUSR1 (SA_ONSTACK) must run on A
 *   thread T: altstack B; took SIGUSR2 (SA_ONSTACK) before the checkpoint
 *             and waits inside that handler across it
 * After restore sigaltstack() reports A for main (not on it), T's handler
 * still sees itself on B (SS_ONSTACK, its locals intact), returns through
 * its signal frame to the interrupted code with the mask it had, and
 * later signals run on each thread's own stack.
 */
#include "zdtm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SS_SIZE (64 << 10)

static char *stack_a, *stack_b;
static atomic_int in_handler, usr1_on_a, usr1_on_b, handler_ok, t_has_stack;
static pthread_t t;
static char err[256];

static bool on(char *stack, void *addr)
{
	return (char *)addr >= stack && (char *)addr < stack + SS_SIZE;
}

static void on_usr1(int sig)
{
	char local;

	(void)sig;
	if (on(stack_a, &local))
		atomic_fetch_add(&usr1_on_a, 1);
	if (on(stack_b, &local))
		atomic_fetch_add(&usr1_on_b, 1);
}

/* Runs in T on stack B and stays there across the checkpoint. */
static void on_usr2(int sig)
{
	uint64_t locals[32];
	stack_t ss;
	sigset_t cur;

	(void)sig;
	test_fill(locals, sizeof(locals), 1700);
	atomic_store(&in_handler, 1);
	test_wait_check();
	sigaltstack(NULL, &ss);
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	if (!on(stack_b, locals))
		snprintf(err, sizeof(err), "handler is not on stack B");
	else if (!(ss.ss_flags & SS_ONSTACK))
		snprintf(err, sizeof(err), "sigaltstack in the handler lacks SS_ONSTACK (%#x)", ss.ss_flags);
	else if (!sigismember(&cur, SIGUSR2))
		snprintf(err, sizeof(err), "SIGUSR2 is not blocked inside its own handler");
	else if (test_check(locals, sizeof(locals), 1700) != (size_t)-1)
		snprintf(err, sizeof(err), "handler's locals on stack B differ");
	else
		atomic_store(&handler_ok, 1);
}

static void *thread_main(void *arg)
{
	uint64_t before[16];
	stack_t ss = { .ss_sp = stack_b, .ss_size = SS_SIZE }, now;
	sigset_t cur;

	(void)arg;
	test_fill(before, sizeof(before), 1701);
	if (sigaltstack(&ss, NULL))
		snprintf(err, sizeof(err), "sigaltstack(B): %s", strerror(errno));
	atomic_store(&t_has_stack, 1);
	/* SIGUSR2 arrives here: the handler runs on B until SIGTERM. */
	while (!atomic_load(&handler_ok) && !err[0])
		test_sleep_ms(1);
	if (err[0])
		return NULL;
	/* Back from the handler: the frame restored our state. */
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	sigaltstack(NULL, &now);
	if (sigismember(&cur, SIGUSR2))
		snprintf(err, sizeof(err), "after the handler returned SIGUSR2 is still blocked");
	else if (now.ss_flags & SS_ONSTACK)
		snprintf(err, sizeof(err), "after the handler returned, still SS_ONSTACK");
	else if (now.ss_sp != stack_b || now.ss_size != SS_SIZE)
		snprintf(err, sizeof(err), "T's altstack is %p/%zu, was %p/%d", now.ss_sp, now.ss_size,
			 (void *)stack_b, SS_SIZE);
	else if (test_check(before, sizeof(before), 1701) != (size_t)-1)
		snprintf(err, sizeof(err), "T's locals differ after the handler");
	while (!err[0] && atomic_load(&usr1_on_b) == 0)
		test_sleep_ms(1);
	return NULL;
}

static bool handler_entered(void *arg)
{
	(void)arg;
	return atomic_load(&in_handler) != 0;
}

static bool b_used(void *arg)
{
	(void)arg;
	return atomic_load(&usr1_on_b) != 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
	stack_t ss, now;

	test_init(argc, argv);
	stack_a = malloc(SS_SIZE);
	stack_b = malloc(SS_SIZE);
	if (!stack_a || !stack_b)
		fail("malloc");
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	ss = (stack_t){ .ss_sp = stack_a, .ss_size = SS_SIZE };
	if (sigaltstack(&ss, NULL))
		fail_errno("sigaltstack(A)");
	if (pthread_create(&t, NULL, thread_main, NULL))
		fail("pthread_create");
	while (!atomic_load(&t_has_stack))
		test_sleep_ms(1);
	pthread_kill(t, SIGUSR2);
	if (!test_poll(handler_entered, NULL, 10000))
		fail("thread T never entered its SIGUSR2 handler");

	test_ready();
	test_wait_check();

	sigaltstack(NULL, &now);
	if (now.ss_sp != stack_a || now.ss_size != SS_SIZE || now.ss_flags != 0)
		fail("main's altstack %p/%zu flags %#x, was %p/%d flags 0", now.ss_sp, now.ss_size,
		     now.ss_flags, (void *)stack_a, SS_SIZE);
	raise(SIGUSR1);
	if (atomic_load(&usr1_on_a) != 1)
		fail("SIGUSR1 in main did not run on stack A");
	/* T returns from its handler by itself (SIGTERM woke it). */
	pthread_kill(t, SIGUSR1);
	if (!test_poll(b_used, NULL, 10000) && !err[0])
		fail("SIGUSR1 in T did not run on stack B");
	pthread_join(t, NULL);
	if (err[0])
		fail("%s", err);
	pass();
}
