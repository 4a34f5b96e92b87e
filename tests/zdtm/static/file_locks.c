// SPDX-License-Identifier: MIT
// zdtm: flags=distinct-fs
/*
 * distinct-fs: between two test hosts of one machine the destination's
 * locks would conflict with the frozen source's own (one file for both).
 *
 * File locks as sqlite takes them, and the two other kinds: POSIX record
 * locks (a WRITE lock on the PENDING byte at 1 GiB, a READ lock on the
 * SHARED range after it, a READ lock from 1 GiB + 1 KiB to the end of the file),
 * an OFD WRITE lock on a second description of the same file, and an
 * exclusive flock on another file (also held through a dup).  After restore
 * the process holds exactly the same locks: the fdinfo "lock:" lines are the
 * same (ids and pids aside), and a child, another owner, finds each lock
 * where it was, of the same type and owner, and nothing else.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#define PENDING 0x40000000LL

static int db, db2, other, other_dup;
static const char *db_path, *other_path;

static const struct {
	int *fd;
	short type;
	long long start, len;
	bool ofd;
} want[] = {
	{ &db, F_WRLCK, PENDING, 1, false },
	{ &db, F_RDLCK, PENDING + 2, 510, false },
	{ &db, F_RDLCK, PENDING + 1024, 0, false },
	{ &db2, F_WRLCK, 10, 5, true },
};

/* fdinfo "lock:" lines of fd without the id and the pid, in one string */
static void lock_lines(int fd, char *out, size_t size)
{
	char path[64], buf[4096], *line, *save = NULL;
	size_t used = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail_errno("read %s", path);
	out[0] = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char kind[16], adv[16], type[8], dev[64], start[32], end[32];
		int pid;
		if (strncmp(line, "lock:", 5))
			continue;
		if (sscanf(line, "lock: %*d: %15s %15s %7s %d %63s %31s %31s", kind, adv, type, &pid, dev,
			   start, end) != 7)
			fail("fd %d: unexpected lock line '%s'", fd, line);
		used += snprintf(out + used, size - used, "[%s %s %s %s %s]", kind, type, dev, start, end);
		if (used >= size)
			fail("too many lock lines");
	}
}

/* From a child (another lock owner): every lock is where it was, nothing else. */
static void probe_from_child(void)
{
	pid_t parent = getpid(), c = fork();

	if (c < 0)
		fail_errno("fork");
	if (c == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
					    .l_start = want[i].start, .l_len = want[i].len };
			/* a new description: the child's POSIX probe must not see its own */
			if (fcntl(db, F_GETLK, &fl) < 0)
				fail_errno("child: F_GETLK");
			if (fl.l_type != want[i].type || fl.l_start != want[i].start ||
			    fl.l_len != want[i].len || fl.l_pid != (want[i].ofd ? -1 : parent))
				fail("lock %zu: found type %d %lld+%lld pid %d, want type %d %lld+%lld pid %d",
				     i, fl.l_type, (long long)fl.l_start, (long long)fl.l_len, fl.l_pid,
				     want[i].type, want[i].start, want[i].len, want[i].ofd ? -1 : parent);
		}
		/* the gaps are free */
		struct flock gap = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 15, .l_len = 85 };
		if (fcntl(db, F_GETLK, &gap) < 0 || gap.l_type != F_UNLCK)
			fail("bytes 15-99 are locked (type %d, pid %d)", gap.l_type, gap.l_pid);
		int o = open(other_path, O_RDONLY);
		if (o < 0)
			fail_errno("child: open %s", other_path);
		if (flock(o, LOCK_SH | LOCK_NB) == 0)
			fail("the exclusive flock on %s is gone", other_path);
		if (errno != EWOULDBLOCK)
			fail_errno("child: flock");
		_exit(0);
	}
	test_reap_ok(c, "lock probe child");
}

int main(int argc, char **argv)
{
	static char before[4][1024], after[1024];
	int *fds[] = { &db, &db2, &other, &other_dup };

	test_init(argc, argv);
	db_path = test_path("file_locks.db");
	other_path = test_path("file_locks.other");
	db = open(db_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	db2 = open(db_path, O_RDWR);
	other = open(other_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (db < 0 || db2 < 0 || other < 0)
		fail_errno("open");
	if (write(db, "sqlite format 3", 16) != 16)
		fail_errno("write");
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		struct flock fl = { .l_type = want[i].type, .l_whence = SEEK_SET,
				    .l_start = want[i].start, .l_len = want[i].len };
		if (fcntl(*want[i].fd, want[i].ofd ? F_OFD_SETLK : F_SETLK, &fl) < 0)
			fail_errno("lock %zu", i);
	}
	if (flock(other, LOCK_EX | LOCK_NB) < 0)
		fail_errno("flock");
	other_dup = dup(other);
	if (other_dup < 0)
		fail_errno("dup");
	for (int i = 0; i < 4; i++)
		lock_lines(*fds[i], before[i], sizeof(before[i]));
	if (!strstr(before[3], "FLOCK"))
		fail("the dup does not show the flock: '%s'", before[3]);
	probe_from_child();

	test_ready();
	test_wait_check();

	for (int i = 0; i < 4; i++) {
		lock_lines(*fds[i], after, sizeof(after));
		if (strcmp(before[i], after))
			fail("fd %d: locks were %s, now %s", *fds[i], before[i], after);
	}
	probe_from_child();
	pass();
}
