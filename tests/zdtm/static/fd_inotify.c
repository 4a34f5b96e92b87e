// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * An inotify instance watching a directory (IN_CREATE | IN_DELETE) and a
 * file in it (IN_MODIFY), with a gap in the watch numbers (a watch removed
 * in between), and the events queued by the removal read.  After restore:
 * the watches (fdinfo: wd, ino, mask) are the same; creating a file in the
 * directory and writing the file give events with the right wd, mask and
 * name.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* "inotify wd:... ino:... sdev:... mask:... ignored_mask:..." lines without the handle */
static void watches(int fd, char *out, size_t size)
{
	char path[64], buf[8192];
	size_t len = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail_errno("%s", path);
	out[0] = 0;
	for (char *s = strstr(buf, "inotify wd:"); s; s = strstr(s + 1, "inotify wd:")) {
		char *h = strstr(s, " fhandle-bytes:");
		char *nl = strchr(s, '\n');
		int n = (int)((h && (!nl || h < nl)) ? h - s : nl ? nl - s : (long)strlen(s));
		len += (size_t)snprintf(out + len, size - len, "%.*s\n", n, s);
	}
}

static struct {
	struct inotify_event ev;
	char name[256];
} e;

static bool readable(void *arg)
{
	ssize_t n = read(*(int *)arg, &e, sizeof(e));
	if (n < 0 && errno != EAGAIN)
		fail_errno("read inotify");
	return n > 0;
}

static void expect(int fd, int wd, uint32_t mask, const char *name, const char *what)
{
	if (!test_poll(readable, &fd, 10000))
		fail("%s: no event within 10 s", what);
	if (e.ev.wd != wd || !(e.ev.mask & mask) || strcmp(e.ev.len ? e.ev.name : "", name))
		fail("%s: event wd %d mask %#x name '%s', expected wd %d mask %#x name '%s'", what,
		     e.ev.wd, e.ev.mask, e.ev.len ? e.ev.name : "", wd, mask, name);
}

int main(int argc, char **argv)
{
	char dir[4096], file[4200], other[4200], created[4200], before[2048], after[2048];
	int fd, wd_dir, wd_gap, wd_file, f;

	test_init(argc, argv);
	snprintf(dir, sizeof(dir), "%s", test_path("watched"));
	snprintf(file, sizeof(file), "%s/file", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	snprintf(created, sizeof(created), "%s/new", dir);
	if (mkdir(dir, 0755) && errno != EEXIST)
		fail_errno("mkdir %s", dir);
	unlink(created);
	if ((f = open(file, O_CREAT | O_WRONLY, 0644)) < 0 || close(f) ||
	    (f = open(other, O_CREAT | O_WRONLY, 0644)) < 0 || close(f))
		fail_errno("create files");

	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		fail_errno("inotify_init1");
	wd_dir = inotify_add_watch(fd, dir, IN_CREATE | IN_DELETE);
	wd_gap = inotify_add_watch(fd, other, IN_ATTRIB);
	wd_file = inotify_add_watch(fd, file, IN_MODIFY);
	if (wd_dir < 0 || wd_gap < 0 || wd_file < 0)
		fail_errno("inotify_add_watch");
	if (inotify_rm_watch(fd, wd_gap))
		fail_errno("inotify_rm_watch");
	expect(fd, wd_gap, IN_IGNORED, "", "removal");
	watches(fd, before, sizeof(before));

	test_ready();
	test_wait_check();

	watches(fd, after, sizeof(after));
	if (strcmp(before, after))
		fail("watches:\n%s\nwere:\n%s", after, before);
	if (!(fcntl(fd, F_GETFL) & O_NONBLOCK))
		fail("inotify lost O_NONBLOCK");
	if (readable(&fd))
		fail("an event is queued after restore: wd %d mask %#x", e.ev.wd, e.ev.mask);
	if ((f = open(created, O_CREAT | O_WRONLY, 0644)) < 0 || close(f))
		fail_errno("create %s", created);
	expect(fd, wd_dir, IN_CREATE, "new", "create in the directory");
	if ((f = open(file, O_WRONLY)) < 0 || write(f, "x", 1) != 1 || close(f))
		fail_errno("write %s", file);
	expect(fd, wd_file, IN_MODIFY, "", "write to the file");
	unlink(created);
	pass();
}
