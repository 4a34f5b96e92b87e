/* SPDX-License-Identifier: MIT */
/*
 * inotify: the instance is made here and each watch added again by path
 * (inside the tree's root), with its mask.  A watch must keep its number
 * (the process compares the wd of each event): the kernel hands wds out
 * increasing, so the watches are added in wd order, and while the kernel
 * gives a lower number the watch is removed and added again.  Those
 * removals queue IN_IGNORED events; the queue is emptied at the end (the
 * checkpoint carried no queued events either).
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WD_TRIES_MAX (1 << 20)

static int add_watch(struct rst_files *fs, int ifd, const Dm__InotifyWatch *w)
{
	_cleanup_close_ int pfd = -1;
	char path[64];
	int r = rst_open_path(fs, w->path, O_PATH | O_NOFOLLOW, 0, &pfd);

	if (r < 0)
		return dm_fail(r, "inotify: watch %d: %s: %s", w->wd, w->path, strerror(-r));
	/* through the magic link: the inode found inside the tree's root, not followed again */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pfd);
	for (int tries = 0; tries < WD_TRIES_MAX; tries++) {
		int wd = inotify_add_watch(ifd, path, w->mask);
		if (wd < 0)
			return dm_fail(neg_errno(), "inotify: watch %d: %s (mask %#x): %m", w->wd, w->path,
				       w->mask);
		if (wd == w->wd)
			return 0;
		if (wd > w->wd)
			return dm_fail(-EEXIST, "inotify: watch %d: %s got number %d: the numbers in between "
				       "are taken", w->wd, w->path, wd);
		if (inotify_rm_watch(ifd, wd) < 0)
			return dm_fail(neg_errno(), "inotify: removing watch %d: %m", wd);
	}
	return dm_fail(-ERANGE, "inotify: watch %d: %s: number too high to reach", w->wd, w->path);
}

static int inotify_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	const Dm__InotifyFile *m = f->inotify;
	_cleanup_close_ int fd = -1;
	char buf[4096];
	int r;

	if (!m)
		return dm_fail(-EBADMSG, "inotify without its watches");
	fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0)
		return dm_fail(neg_errno(), "inotify_init1: %m");
	for (size_t i = 0; i < m->n_watches; i++) {
		r = add_watch(fs, fd, m->watches[i]);
		if (r < 0)
			return r;
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "inotify: status flags: %s", strerror(-r));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

const struct rst_file_type rst_file_inotify = { .name = "inotify", .open = inotify_open };
