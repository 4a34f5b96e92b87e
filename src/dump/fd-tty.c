/* SPDX-License-Identifier: MIT */
/*
 * Pseudo terminals: which pty, master or slave, its settings, the bytes
 * buffered in the pair; and the controlling terminal of each session leader.
 * Other terminals (consoles, serial lines) are refused.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"
#include "files/tty-data.h"

#include <fcntl.h>

#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>

static int dump_tty(struct dump_ctx *d, struct dproc *p, int fdnum, unsigned maj, unsigned min, Dm__File *f)
{
	_cleanup_close_ int fd = syscall(SYS_pidfd_getfd, p->pidfd, fdnum, 0);
	struct termios tio;
	struct winsize ws;
	unsigned idx = min;
	int lock = 0;

	if (maj != 136 && !(maj == 5 && min == 2))
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d: terminal %s (%u:%u): only ptys",
			       fdnum, p->pid, f->path, maj, min);
	if (fd < 0)
		return dm_fail(neg_errno(), "process %d: fd %d: pidfd_getfd: %m", p->pid, fdnum);
	Dm__TtyInfo *t = PB_NEW(Dm__TtyInfo, dm__tty_info__init);
	f->tty = t;
	t->master = maj == 5;
	if (t->master) {
		if (ioctl(fd, TIOCGPTN, &idx) < 0)
			return dm_fail(neg_errno(), "process %d: fd %d: TIOCGPTN: %m", p->pid, fdnum);
		if (ioctl(fd, TIOCGPTLCK, &lock) == 0) {
			t->has_locked = true;
			t->locked = lock;
		}
	}
	t->index = idx;
	if (ioctl(fd, TCGETS, &tio) == 0) {
		t->has_termios = true;
		t->termios.len = sizeof(tio);
		t->termios.data = xmalloc(sizeof(tio));
		memcpy(t->termios.data, &tio, sizeof(tio));
	}
	if (t->master) {
		/*
		 * Bytes buffered in the pair: read (destructively) through the
		 * master and a new slave description, then put straight back, so
		 * a tree that goes on running loses nothing.
		 */
		_cleanup_close_ int slave = ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		uint8_t *in = NULL, *out = NULL;
		size_t in_len = 0, out_len = 0;
		if (slave < 0)
			return dm_fail(neg_errno(), "process %d: fd %d: TIOCGPTPEER: %m", p->pid, fdnum);
		int r = tty_data_read(fd, slave, &in, &in_len, &out, &out_len);
		if (r >= 0)
			r = tty_data_write(fd, slave, in, in_len, out, out_len);
		if (r < 0) {
			free(in);
			free(out);
			return dm_fail(r, "process %d: fd %d: pty %u: buffered data: %s", p->pid, fdnum, idx,
				       strerror(-r));
		}
		if (in_len) {
			t->has_input = true;
			t->input.data = in;
			t->input.len = in_len;
		}
		if (out_len) {
			t->has_output = true;
			t->output.data = out;
			t->output.len = out_len;
		}
	}
	/* the slave node's owner and permissions: a new pty's are its
	 * creator's and the devpts mount's defaults */
	{
		struct stat sst;
		_cleanup_close_ int sl = -1;
		int r = 0;
		if (t->master) {
			sl = ioctl(fd, TIOCGPTPEER, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
			r = sl < 0 ? -1 : fstat(sl, &sst);
		} else {
			r = fstat(fd, &sst);
		}
		if (r == 0) {
			t->has_slave_uid = t->has_slave_gid = t->has_slave_mode = true;
			t->slave_uid = sst.st_uid;
			t->slave_gid = sst.st_gid;
			t->slave_mode = sst.st_mode & 07777;
		}
	}
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0) {
		t->has_winsize = true;
		t->winsize.len = sizeof(ws);
		t->winsize.data = xmalloc(sizeof(ws));
		memcpy(t->winsize.data, &ws, sizeof(ws));
	}
	return 0;
}

static bool is_tty(dev_t rdev)
{
	unsigned maj = major(rdev), min = minor(rdev);
	return maj == 136 || (maj == 5 && min == 2) || maj == 4 || (maj == 5 && min == 0);
}

/* A deleted node of another terminal is fd-chr.c's ("device node ... was deleted"). */
static bool tty_match(const struct dump_fd *x)
{
	return x->pf->kind == PROC_FD_FILE && S_ISCHR(x->st->st_mode) && is_tty(x->st->st_rdev) &&
	       (!x->pf->deleted || major(x->st->st_rdev) == 136);
}

static int tty_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	/* a devpts node goes when its master is closed */
	if (x->pf->deleted)
		return dm_fail(-ENOTSUP, "fd %d of process %d: pty slave %s whose master was closed: "
			       "the pty cannot be made again", x->pf->fd, x->p->pid, x->pf->target);
	f->type = DM__FILE_TYPE__FILE_TTY;
	f->has_rdev = true;
	f->rdev = x->st->st_rdev;
	f->path = xstrdup(x->pf->target);
	return dump_tty(d, x->p, x->pf->fd, major(x->st->st_rdev), minor(x->st->st_rdev), f);
}

const struct dump_fd_type dump_fd_tty = { .name = "tty", .match = tty_match, .dump = tty_dump };

/*
 * Controlling terminals: a session leader's /proc stat names the device of
 * its terminal and the foreground group.  (TIOCGSID on a slave answers only
 * to a member of the session.)  Run after the pool, on the frozen tree.
 */
int dump_ctty(struct dump_ctx *d)
{
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		struct proc_stat st;
		if (p->zombie || !p->msg || p->msg->sid != p->msg->pid)
			continue;
		if (proc_read_stat(p->pid, 0, &st) < 0 || st.tty_nr == 0)
			continue;
		int32_t fg = 0;
		for (size_t k = 0; k < d->nprocs; k++)
			if (d->procs[k]->pid == st.tpgid)
				fg = d->procs[k]->vpid;
		Dm__File *any = NULL;
		for (size_t k = 0; k < d->nfiles; k++) {
			Dm__File *f = d->files[k];
			if (f->type != DM__FILE_TYPE__FILE_TTY || !f->tty || f->tty->master ||
			    f->rdev != (uint64_t)(unsigned)st.tty_nr)
				continue;
			f->tty->has_sid = true;
			f->tty->sid = p->vpid;
			if (fg) {
				f->tty->has_pgrp = true;
				f->tty->pgrp = fg;
			}
			if (!any)
				any = f;
		}
		if (!any)
			return dm_fail(-ENOTSUP, "process %d leads a session whose controlling terminal "
				       "(device %u:%u) is not open in the tree: it cannot be given back",
				       p->pid, major((dev_t)st.tty_nr), minor((dev_t)st.tty_nr));
		/* the restore gives it to the leader before it forks its
		 * members (they inherit it at fork), held by the leader or not */
		p->msg->has_ctty_file_id = true;
		p->msg->ctty_file_id = any->id;
	}
	/* a terminal is per process: the members of such a session that have none */
	for (size_t i = 0; i < d->nprocs; i++) {
		struct dproc *p = d->procs[i];
		struct proc_stat st;
		const Dm__Process *leader = NULL;
		if (p->zombie || !p->msg || p->msg->sid == p->msg->pid)
			continue;
		for (size_t k = 0; k < d->nprocs && !leader; k++)
			if (d->procs[k]->msg && d->procs[k]->msg->pid == p->msg->sid)
				leader = d->procs[k]->msg;
		if (!leader || !leader->has_ctty_file_id)
			continue;
		if (proc_read_stat(p->pid, 0, &st) < 0)
			return dm_fail(-ESRCH, "process %d: cannot read its /proc stat", p->pid);
		if (st.tty_nr == 0)
			p->msg->has_no_ctty = p->msg->no_ctty = true;
	}
	return 0;
}
