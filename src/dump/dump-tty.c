/* SPDX-License-Identifier: MIT */
/* Pseudo terminals: which pty, master or slave, its settings. */
#define LOG_PREFIX "dump: "
#include "dump/dump-internal.h"
#include "base/log.h"

#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>

int dump_tty(struct dump_ctx *d, struct dproc *p, int fdnum, unsigned maj, unsigned min, Dm__File *f)
{
	_cleanup_close_ int fd = syscall(SYS_pidfd_getfd, p->pidfd, fdnum, 0);
	struct termios tio;
	struct winsize ws;
	unsigned idx = min;
	int lock = 0;

	(void)d;
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
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0) {
		t->has_winsize = true;
		t->winsize.len = sizeof(ws);
		t->winsize.data = xmalloc(sizeof(ws));
		memcpy(t->winsize.data, &ws, sizeof(ws));
	}
	return 0;
}
