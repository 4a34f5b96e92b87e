// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,expect=dump-fail,dump-err=main thread has exited while thread [0-9]+ still runs
/*
 * A child whose main thread has exited (pthread_exit) while another thread
 * goes on: a zombie thread-group leader with a live thread. The restore
 * cannot make such a process (it came back as a zombie without threads,
 * and outside a PID namespace the checkpoint succeeded while it kept
 * running): the checkpoint must refuse it, naming it, and leave it
 * running. Its thread still counts afterwards.
 */
#include "zdtm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int bar[2];
static atomic_ulong counter;

static void *worker(void *arg)
{
	(void)arg;
	test_barrier_done(bar);
	while (!test_stopped()) {
		atomic_fetch_add(&counter, 1);
		test_sleep_ms(2);
	}
	/* still counting after the refused checkpoint */
	if (atomic_load(&counter) < 2)
		fail("child: the thread did not run");
	_exit(0);
}

static bool leader_zombie(void *arg)
{
	char path[64], text[512], *rp;
	pid_t host = *(pid_t *)arg;

	snprintf(path, sizeof(path), "/proc/%d/stat", host);
	if (test_read_file(path, text, sizeof(text)) < 0)
		return false;
	rp = strrchr(text, ')');
	return rp && rp[2] == 'Z';
}

int main(int argc, char **argv)
{
	pid_t child, host;

	test_init(argc, argv);
	test_barrier_init(bar);
	child = fork();
	if (child < 0)
		fail_errno("fork");
	if (child == 0) {
		pthread_t th;
		if ((errno = pthread_create(&th, NULL, worker, NULL)))
			fail_errno("child: pthread_create");
		pthread_exit(NULL);
	}
	test_barrier_wait(bar);
	host = test_host_pid_of_child(child);
	if (host < 0)
		fail("no host pid for the child");
	if (!test_poll(leader_zombie, &host, 10000))
		fail("the child's main thread did not become a zombie");

	test_ready();
	test_wait_check();

	test_stop_children(&child, 1, "child");
	pass();
}
