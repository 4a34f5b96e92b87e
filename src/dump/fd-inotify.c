/* SPDX-License-Identifier: MIT */
/*
 * inotify: its watches (wd, mask) from fdinfo.  fdinfo names each watched
 * inode by a file handle: opened with open_by_handle_at() on a mount of its
 * file system (mountinfo, by device), its path is read back from
 * /proc/self/fd, and the restore watches that path again.  A watched inode
 * without a path (deleted) is refused.  Events queued and not yet read are
 * not carried: a warning says how many bytes are dropped.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define MAX_HANDLE 128

static bool inotify_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_ANON && x->pf->anon == PROC_ANON_INOTIFY;
}

/* "fhandle-bytes:%x fhandle-type:%x f_handle:%s" into h */
static int parse_handle(const char *s, struct file_handle *h)
{
	unsigned bytes, type;
	int n = 0;

	if (!s || sscanf(s, "fhandle-bytes:%x fhandle-type:%x f_handle:%n", &bytes, &type, &n) != 2 ||
	    !n || bytes > MAX_HANDLE)
		return -EBADMSG;
	s += n;
	for (unsigned i = 0; i < bytes; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EBADMSG;
		h->f_handle[i] = (unsigned char)v;
	}
	h->handle_bytes = bytes;
	h->handle_type = (int)type;
	return 0;
}

/* A directory of a mount of the file system with kernel device number sdev (as the process sees it). */
static int open_mount(pid_t pid, uint32_t sdev, int *ret_fd)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list ml = {};
	const struct proc_mount *best = NULL;
	char path[4200];
	int r = proc_read_mountinfo(pid, &ml);

	if (r < 0)
		return r;
	for (size_t i = 0; i < ml.n; i++) {
		const struct proc_mount *m = &ml.mounts[i];
		if (m->major != sdev >> 20 || m->minor != (sdev & 0xfffff))
			continue;
		if (!best || (strcmp(best->root, "/") && !strcmp(m->root, "/")))
			best = m;
	}
	if (!best)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/root%s", pid, best->mountpoint);
	int fd = open(path, O_RDONLY | O_CLOEXEC); /* open_by_handle_at takes no O_PATH fd */
	if (fd < 0)
		return neg_errno();
	*ret_fd = fd;
	return 0;
}

static int watch_path(const struct dump_fd *x, const struct proc_inotify_wd *w, char **ret)
{
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE];
	} u;
	_cleanup_close_ int mnt = -1, fd = -1;
	char link[64], path[4096];
	struct stat st;
	ssize_t n;
	int r;

	if (parse_handle(w->fhandle, &u.h) < 0)
		return dm_fail(-EBADMSG, "process %d: fd %d (inotify): watch %d: no file handle in fdinfo",
			       x->p->pid, x->pf->fd, w->wd);
	r = open_mount(x->p->pid, w->sdev, &mnt);
	if (r < 0)
		return dm_fail(r, "process %d: fd %d (inotify): watch %d: no mount of device %u:%u: %s",
			       x->p->pid, x->pf->fd, w->wd, w->sdev >> 20, w->sdev & 0xfffff, strerror(-r));
	fd = (int)open_by_handle_at(mnt, &u.h, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d (inotify): watch %d (inode %" PRIu64 "): "
			       "cannot open it by its handle: %m", x->p->pid, x->pf->fd, w->wd, w->ino);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return dm_fail(neg_errno(), "process %d: fd %d (inotify): watch %d: %m", x->p->pid,
			       x->pf->fd, w->wd);
	path[n] = 0;
	if (fstat(fd, &st) < 0 || st.st_ino != w->ino || path[0] != '/' ||
	    (n > 10 && !strcmp(path + n - 10, " (deleted)")))
		return dm_fail(-ENOTSUP, "process %d: fd %d (inotify): watch %d is on inode %" PRIu64
			       " (%s), which has no path any more: it cannot be watched again",
			       x->p->pid, x->pf->fd, w->wd, w->ino, path);
	*ret = xstrdup(path);
	return 0;
}

static int inotify_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	_cleanup_free_ struct proc_inotify_wd *w = NULL;
	size_t n;
	int r = proc_fdinfo_inotify(x->fi, &w, &n);

	(void)d;
	if (r < 0)
		return dm_fail(r, "process %d: fd %d (inotify): cannot parse its watches in fdinfo",
			       x->p->pid, x->pf->fd);
	f->type = DM__FILE_TYPE__FILE_INOTIFY;
	Dm__InotifyFile *m = f->inotify = PB_NEW(Dm__InotifyFile, dm__inotify_file__init);
	m->watches = xcalloc(n ? n : 1, sizeof(*m->watches));
	for (size_t i = 0; i < n; i++) {
		Dm__InotifyWatch *iw = PB_NEW(Dm__InotifyWatch, dm__inotify_watch__init);
		m->watches[m->n_watches++] = iw;
		iw->wd = w[i].wd;
		iw->mask = w[i].mask;
		r = watch_path(x, &w[i], &iw->path);
		if (r < 0)
			return r;
	}
	/* the restore adds them in this order (wd numbers are handed out increasing) */
	for (size_t i = 1; i < m->n_watches; i++)
		for (size_t k = i; k > 0 && m->watches[k - 1]->wd > m->watches[k]->wd; k--) {
			Dm__InotifyWatch *t = m->watches[k];
			m->watches[k] = m->watches[k - 1];
			m->watches[k - 1] = t;
		}

	_cleanup_close_ int fd = -1;
	int queued = 0;
	if (dump_fd_dup(x, &fd) >= 0 && ioctl(fd, FIONREAD, &queued) == 0 && queued > 0)
		pr_warn("process %d: fd %d (inotify): %d bytes of events not yet read are dropped (the "
			"watches are kept)", x->p->pid, x->pf->fd, queued);
	dm_error_clear();
	return 0;
}

const struct dump_fd_type dump_fd_inotify = { .name = "inotify", .match = inotify_match,
					      .dump = inotify_dump };
