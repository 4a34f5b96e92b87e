// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,nocmp=fds
/*
 * Open /proc files: the process's own status (through /proc/self) read
 * part way, its child's comm, and /proc/meminfo.  Their mtime changes all
 * the time, so the restore cannot treat them as files that must not have
 * changed: after restore each fd reads the file of the same (restored)
 * process, at the same offset for the status file.  (nocmp=fds: the runner
 * compares fd targets, and these name host pids, which change.)
 */
#include "zdtm.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int status_fd, comm_fd, meminfo_fd;

/* "Pid:" of a status text */
static long pid_of(const char *text)
{
	const char *p = strstr(text, "\nPid:");
	long v = -1;
	if (p)
		sscanf(p + 5, "%ld", &v);
	return v;
}

static void check(const char *when)
{
	char a[4096], b[4096];
	ssize_t n;

	/* status from the fd (offset kept) against a fresh open */
	n = pread(status_fd, a, sizeof(a) - 1, 0);
	if (n <= 0)
		fail_errno("%s: pread status fd", when);
	a[n] = 0;
	if (test_read_file("/proc/self/status", b, sizeof(b)) < 0)
		fail_errno("read /proc/self/status");
	if (pid_of(a) <= 0 || pid_of(a) != pid_of(b))
		fail("%s: the status fd shows pid %ld, this process is %ld", when, pid_of(a), pid_of(b));
	if (strncmp(a, "Name:\tproc_files\n", 17))
		fail("%s: the status fd is not this process's: %.40s", when, a);
	if (lseek(status_fd, 0, SEEK_CUR) != 10)
		fail("%s: status offset %lld, was 10", when, (long long)lseek(status_fd, 0, SEEK_CUR));
	n = pread(comm_fd, a, sizeof(a) - 1, 0);
	if (n <= 0)
		fail_errno("%s: pread comm fd", when);
	a[n] = 0;
	if (strcmp(a, "zdtm-child\n"))
		fail("%s: the child's comm fd reads '%s'", when, a);
	n = pread(meminfo_fd, a, sizeof(a) - 1, 0);
	if (n <= 0 || strncmp(a, "MemTotal:", 9))
		fail("%s: the meminfo fd reads badly", when);
}

int main(int argc, char **argv)
{
	char path[64], buf[16];
	int bar[2];
	pid_t c;

	test_init(argc, argv);
	test_barrier_init(bar);
	c = fork();
	if (c < 0)
		fail_errno("fork");
	if (c == 0) {
		prctl(PR_SET_NAME, "zdtm-child");
		test_barrier_done(bar);
		test_wait_check();
		_exit(0);
	}
	test_barrier_wait(bar);
	status_fd = open("/proc/self/status", O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%d/comm", test_host_pid_of_child(c));
	comm_fd = open(path, O_RDONLY);
	meminfo_fd = open("/proc/meminfo", O_RDONLY);
	if (status_fd < 0 || comm_fd < 0 || meminfo_fd < 0)
		fail_errno("open");
	if (read(status_fd, buf, 10) != 10)
		fail_errno("read status");
	check("before");

	test_ready();
	test_wait_check();

	check("after");
	test_stop_children(&c, 1, "child");
	pass();
}
