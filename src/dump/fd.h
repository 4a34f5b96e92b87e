/* SPDX-License-Identifier: MIT */
/*
 * The dump's fd layer: one small module per kind of fd (fd-reg.c,
 * fd-pipe.c, fd-tty.c, fd-chr.c, ...), the dump's twin of the restore's
 * struct rst_file_type (src/restore/files.h).
 *
 * dump-files.c reads what every fd has (fdinfo, stat of /proc/PID/fd/N, the
 * readlink target), then asks the types of dump_fd_types[] in order; the
 * first whose match() says yes owns the fd.  No type: the dump is refused,
 * the fd named ("unsupported fd 9 of process 17: anon_inode:[io_uring]").
 * If the fd shares its open file description with one seen before (kcmp),
 * it only gets that file id; otherwise dump-files.c makes the File message
 * with what every description has (flags, pos, mode, ino, dev, locks, SIGIO
 * owner) and the type's dump() adds the rest: f->type, and its own fields
 * (numbers 200-249 of File, or a message named after the type).  dump()
 * returns -errno after dm_fail() naming the process, the fd and the cause;
 * a refusal leaves the tree running unchanged.  dump() runs on a pool
 * worker, in parallel with other processes' fds: shared state goes through
 * d->lock; the tree is frozen.  To read the description itself, take a copy
 * of the fd: dump_fd_dup() (pidfd_getfd).
 *
 * Adding a type: a file fd-NAME.c defining `const struct dump_fd_type
 * dump_fd_NAME`, its line in dump_fd_types[] (dump-files.c; before the
 * types with broader matches), meson.build, and the restore's module.
 */
#pragma once

#include "dump/dump-internal.h"

/* What the fd layer knows about one fd when it asks the types. */
struct dump_fd {
	struct dproc *p;               /* the process (p->pid host pid, p->vpid, p->pidfd) */
	const struct proc_fd *pf;      /* number, kind (PROC_FD_*), anon name, readlink target */
	const struct proc_fdinfo *fi;  /* its parsed /proc/PID/fdinfo/N */
	const struct stat *st;         /* stat() of link */
	const char *link;              /* "/proc/PID/fd/N": open() it for a new description */
};

struct dump_fd_type {
	const char *name;
	/* Is this fd of this type?  No side effects. */
	bool (*match)(const struct dump_fd *x);
	/* Fill f (a new description) or refuse: 0 or -errno (dm_fail'ed). */
	int (*dump)(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f);
};

extern const struct dump_fd_type dump_fd_reg;   /* fd-reg.c: regular files, /proc files */
extern const struct dump_fd_type dump_fd_dir;   /* fd-reg.c */
extern const struct dump_fd_type dump_fd_pipe;  /* fd-pipe.c: pipes */
extern const struct dump_fd_type dump_fd_fifo;  /* fd-pipe.c: named pipes */
extern const struct dump_fd_type dump_fd_tty;   /* fd-tty.c: ptys */
extern const struct dump_fd_type dump_fd_chr;   /* fd-chr.c: memory devices */
extern const struct dump_fd_type dump_fd_inet;  /* fd-inet.c: TCP and UDP sockets, IPv4 and IPv6 */
extern const struct dump_fd_type dump_fd_unix;  /* fd-unix.c: unix sockets */
extern const struct dump_fd_type dump_fd_eventfd;  /* fd-eventfd.c */
extern const struct dump_fd_type dump_fd_signalfd; /* fd-signalfd.c */
extern const struct dump_fd_type dump_fd_timerfd;  /* fd-timerfd.c */
extern const struct dump_fd_type dump_fd_epoll;    /* fd-epoll.c */
extern const struct dump_fd_type dump_fd_inotify;  /* fd-inotify.c */
extern const struct dump_fd_type dump_fd_memfd;    /* fd-memfd.c */
extern const struct dump_fd_type dump_fd_mqueue;   /* fd-mqueue.c: POSIX message queues */

/* fd-memfd.c: f (path "/memfd:NAME" set) as the memfd fd (open for reading, st its stat) is. */
int dump_memfd_fill(struct dump_ctx *d, int fd, const struct stat *st, const char *what, Dm__File *f);
/* A copy of the fd in the dumper (pidfd_getfd): same description.  -errno, dm_fail'ed. */
int dump_fd_dup(const struct dump_fd *x, int *ret_fd);
