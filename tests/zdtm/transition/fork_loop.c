// SPDX-License-Identifier: MIT
// zdtm: flags=transition,pidns
/*
 * A process that forks without pause while it is dumped: each child
 * sends back its index and a value made of it through a pipe, lives a
 * few ms, and exits with a status made of it. The root checks every
 * answer and status in order. After restore the loop goes on (a child
 * caught mid-life at the checkpoint must finish its job), and must make
 * progress before the root stops.
 */
#include "zdtm.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

struct msg {
	uint64_t idx, val;
};

static uint64_t iter;
static int p[2];

static void one(void)
{
	struct msg m;
	int status;
	pid_t pid = fork();

	if (pid < 0)
		fail_errno("fork #%llu", (unsigned long long)iter);
	if (pid == 0) {
		m = (struct msg){ iter, test_mix64(iter) };
		test_sleep_ms((int)(iter % 4));
		if (test_write_all(p[1], &m, sizeof(m)))
			_exit(100);
		test_sleep_ms((int)(iter % 3));
		_exit((int)(iter % 100));
	}
	if (test_read_all(p[0], &m, sizeof(m)))
		fail_errno("read answer of child #%llu", (unsigned long long)iter);
	if (m.idx != iter || m.val != test_mix64(iter))
		fail("child #%llu answered #%llu/%#llx", (unsigned long long)iter, (unsigned long long)m.idx,
		     (unsigned long long)m.val);
	if (test_waitpid(pid, &status, 0) != pid)
		fail_errno("waitpid(child #%llu, pid %d)", (unsigned long long)iter, pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != (int)(iter % 100))
		fail("child #%llu: status 0x%x, want exit %d", (unsigned long long)iter, status,
		     (int)(iter % 100));
	iter++;
}

int main(int argc, char **argv)
{
	uint64_t at_term;

	test_init(argc, argv);
	if (pipe(p))
		fail_errno("pipe");
	while (iter < 20)
		one();

	test_ready();
	while (!test_stopped())
		one();
	at_term = iter;
	while (iter < at_term + 50)
		one();
	test_msg("%llu children", (unsigned long long)iter);
	pass();
}
