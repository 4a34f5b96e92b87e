/* SPDX-License-Identifier: MIT */
/*
 * Pseudo terminals.
 *
 * A pair whose master is in the image is made anew: /dev/ptmx (of the tree's
 * root), unlocked, the slave opened through the master (TIOCGPTPEER: no path
 * lookup, no race on the index).  The kernel picks the index, so
 * /dev/pts/N may differ from the checkpoint's: programs that stored the
 * name (ttyname at startup) still show the old one.  termios (TCSETS2) and
 * the window size are set once per terminal, on whichever end comes first
 * (both ioctls act on the slave side from either end).  A terminal locked at
 * dump is locked again once every process has its fds.  Bytes buffered in
 * the pair both ways (TtyInfo.input/output) are put back raw through a slave
 * description of ours, held until every process has its fds (the slave's
 * buffers live only while a slave is open).
 *
 * A slave whose master is not in the image (the terminal of the shell the
 * tree was started from) is reopened by its path, if it still exists.
 *
 * The controlling terminal and its foreground group are set by files.c in
 * the session leader (TIOCSCTTY, TIOCSPGRP).
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"
#include "files/tty-data.h"

#include <asm/termbits.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <sys/stat.h>

/* <asm/termbits.h> and <termios.h> do not mix: the few ioctls we need */
#ifndef TIOCGPTN
#define TIOCGPTN _IOR('T', 0x30, unsigned int)
#define TIOCSPTLCK _IOW('T', 0x31, int)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

static struct rst_tty *tty_find(struct rst_files *fs, uint32_t index)
{
	for (size_t i = 0; i < fs->n_ttys; i++)
		if (fs->ttys[i].index == index)
			return &fs->ttys[i];
	return NULL;
}

static const Dm__File *master_of(struct rst_files *fs, uint32_t index)
{
	const Dm__FileTable *ft = fs->c->ck->files;
	for (size_t i = 0; i < ft->n_files; i++) {
		const Dm__File *f = ft->files[i];
		if (f->type == DM__FILE_TYPE__FILE_TTY && f->tty->master && f->tty->index == index)
			return f;
	}
	return NULL;
}

static int set_state(struct rst_tty *t, const Dm__File *f, int fd)
{
	const Dm__TtyInfo *ti = f->tty;

	if (t->state_set)
		return 0;
	if (ti->has_termios) {
		/* struct termios2 (44 bytes), or the kernel's struct termios (36) as TCGETS
		 * filled it, possibly inside glibc's larger struct (60) */
		uint8_t buf[64] = { 0 };
		if (ti->termios.len < sizeof(struct termios) || ti->termios.len > sizeof(buf))
			return dm_fail(-EBADMSG, "tty %u: termios of %zu bytes", ti->index,
				       ti->termios.len);
		memcpy(buf, ti->termios.data, ti->termios.len);
		if (ti->termios.len == sizeof(struct termios2) ? ioctl(fd, TCSETS2, buf) < 0
							       : ioctl(fd, TCSETS, buf) < 0)
			return dm_fail(neg_errno(), "tty %u: setting termios: %m", ti->index);
	}
	if (ti->has_winsize) {
		struct winsize ws;
		if (ti->winsize.len != sizeof(ws))
			return dm_fail(-EBADMSG, "tty %u: winsize of %zu bytes", ti->index,
				       ti->winsize.len);
		memcpy(&ws, ti->winsize.data, sizeof(ws));
		if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
			return dm_fail(neg_errno(), "tty %u: TIOCSWINSZ: %m", ti->index);
	}
	t->state_set = ti->has_termios || ti->has_winsize;
	return 0;
}

static int open_master(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	unsigned int idx = 0;
	int unlock = 0, r;

	r = rst_open_path(fs, "/dev/ptmx", rst_open_flags(f) | O_NOCTTY, 0, &fd);
	if (r < 0)
		return dm_fail(r, "/dev/ptmx: %s", strerror(-r));
	if (ioctl(fd, TIOCSPTLCK, &unlock) < 0 || ioctl(fd, TIOCGPTN, &idx) < 0)
		return dm_fail(neg_errno(), "pty: unlock/index: %m");
	fs->ttys = xrealloc(fs->ttys, (fs->n_ttys + 1) * sizeof(*fs->ttys));
	struct rst_tty *t = &fs->ttys[fs->n_ttys++];
	*t = (struct rst_tty){ .index = f->tty->index, .new_index = idx, .master = fd,
			       .locked = f->tty->has_locked && f->tty->locked };
	if (idx != f->tty->index)
		pr_info("pty %u is restored as /dev/pts/%u", f->tty->index, idx);
	r = set_state(t, f, fd);
	if (r < 0)
		return r;
	if (f->tty->has_slave_uid) {
		/* the slave node as it was: owner, group, permissions */
		_cleanup_close_ int sl = ioctl(fd, TIOCGPTPEER, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (sl < 0)
			return dm_fail(neg_errno(), "pty %u: TIOCGPTPEER: %m", f->tty->index);
		if (fchown(sl, f->tty->slave_uid, f->tty->slave_gid) < 0 ||
		    (f->tty->has_slave_mode && fchmod(sl, f->tty->slave_mode & 07777) < 0))
			return dm_fail(neg_errno(), "pty %u: owner %u:%u, mode %#o of /dev/pts/%u: %m",
				       f->tty->index, f->tty->slave_uid, f->tty->slave_gid,
				       f->tty->slave_mode, idx);
	}
	if (f->tty->has_input || f->tty->has_output) {
		int slave = ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (slave < 0)
			return dm_fail(neg_errno(), "pty %u: TIOCGPTPEER: %m", f->tty->index);
		rst_files_keep(fs, slave);
		r = tty_data_write(fd, slave, f->tty->input.data, f->tty->input.len,
				   f->tty->output.data, f->tty->output.len);
		if (r < 0)
			return dm_fail(r, "pty %u: buffered data: %s", f->tty->index, strerror(-r));
	}
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "pty master: status flags: %s", strerror(-r));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int open_slave(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	const Dm__File *mf = master_of(fs, f->tty->index);
	int flags = rst_open_flags(f) | O_NOCTTY;
	int fd, r;

	if (!mf) {
		char path[64];
		if (!fs->warned_tty)
			pr_warn("tty %u: its master is outside the image, reopening /dev/pts/%u",
				f->tty->index, f->tty->index);
		fs->warned_tty = true;
		snprintf(path, sizeof(path), "/dev/pts/%u", f->tty->index);
		r = rst_open_path(fs, path, flags, 0, &fd);
		if (r < 0)
			return dm_fail(r, "%s (terminal outside the image): %s", path, strerror(-r));
	} else {
		int mfd;
		r = rst_files_desc(fs, mf->id, &mfd); /* the master first: it makes the pair */
		if (r < 0)
			return r;
		struct rst_tty *t = tty_find(fs, f->tty->index);
		/* TIOCGPTPEER keeps O_CLOEXEC in the description's f_flags (visible in
		 * fdinfo ever after): ask without it, set it on our fd only */
		fd = ioctl(t->master, TIOCGPTPEER, flags & ~O_CLOEXEC);
		if (fd < 0)
			return dm_fail(neg_errno(), "pty %u: TIOCGPTPEER: %m", f->tty->index);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		r = set_state(t, f, fd);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	r = rst_set_status_flags(f, fd);
	if (r < 0) {
		close(fd);
		return dm_fail(r, "tty %u: status flags: %s", f->tty->index, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

static int tty_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	return f->tty->master ? open_master(fs, f, ret_fd) : open_slave(fs, f, ret_fd);
}

static int tty_finish(struct rst_files *fs)
{
	int one = 1;
	for (size_t i = 0; i < fs->n_ttys; i++)
		if (fs->ttys[i].locked && ioctl(fs->ttys[i].master, TIOCSPTLCK, &one) < 0)
			return dm_fail(neg_errno(), "pty %u: relock: %m", fs->ttys[i].index);
	return 0;
}

const struct rst_file_type rst_file_tty = { .name = "tty", .open = tty_open, .finish = tty_finish };
