/* SPDX-License-Identifier: MIT */
/*
 * The file engine's type interface.  One file per type (files-reg.c,
 * files-pipe.c, ...), the twin of the dump's (src/dump/fd.h):
 *
 *   open()      runs in the restorer and returns a new open file description
 *               (an O_CLOEXEC fd of ours) for one files.img entry.  The
 *               engine (files.c) calls it once per file id and installs the
 *               result in every process that holds that id, so shared
 *               descriptions stay shared and the offset and status flags are
 *               set once, here.
 *   in_tracee() optional: runs for every fd of the type in every process,
 *               once that process has all its fds at their numbers, and
 *               queues on rb the syscalls the process must make itself with
 *               its own fd numbers (epoll_ctl of its registrations, ...):
 *               rb_stage() the arguments, rb_add() the syscall with a static
 *               description ("epoll_ctl(ADD)"); a failing one fails the
 *               restore, named.  The engine runs the batch.
 *   finish()    optional: once every process has its fds.
 */
#pragma once

#include "restore/rst.h"

struct rst_pipe {
	uint64_t id;
	int fds[2];           /* pipe2() ends (for a FIFO: [0] is the O_RDWR keeper) */
	bool handed[2];       /* the end's own description is taken: reopen for more */
};

struct rst_tty {
	uint32_t index;       /* in the image */
	uint32_t new_index;   /* here: a pty index cannot be chosen */
	int master;           /* our fd of the master (owned by the desc cache) */
	bool locked;
	bool state_set;       /* termios/winsize applied */
};

struct rst_files {
	struct rst_ctx *c;
	int *desc;            /* file id -> our fd of its description, -1 if not opened */
	int *mapfd[2];        /* file id -> fd to mmap: [0] O_RDONLY, [1] O_RDWR */
	bool *async_set;      /* file id -> O_ASYNC set by a process already */
	struct rst_pipe *pipes;
	size_t n_pipes;
	struct rst_tty *ttys;
	size_t n_ttys;
	int *keep;            /* fds held until every process has its files */
	size_t n_keep;
	struct { uint64_t id, dev; int fd; } *ghosts; /* deleted files (by inode), recreated */
	size_t n_ghosts;
	bool warned_tty;
	struct rst_inet *inet; /* files-inet.c: connections in repair mode, the network lock */
	struct rst_unix *unix_sks; /* files-unix.c: every unix socket, made at the first */
};

struct rst_file_type {
	const char *name;
	int (*open)(struct rst_files *fs, const Dm__File *f, int *ret_fd);
	/* optional: fd (f, our description desc) is installed in process p, as all its fds */
	int (*in_tracee)(struct rst_files *fs, struct rbatch *rb, const Dm__Process *p,
			 const Dm__Fd *fd, const Dm__File *f, int desc);
	/* optional, once every process has its fds */
	int (*finish)(struct rst_files *fs);
};

extern const struct rst_file_type rst_file_reg;
extern const struct rst_file_type rst_file_dir;
extern const struct rst_file_type rst_file_pipe;
extern const struct rst_file_type rst_file_fifo;
extern const struct rst_file_type rst_file_chr;
extern const struct rst_file_type rst_file_tty;
extern const struct rst_file_type rst_file_inet;

/* files-inet.c: lock the image's TCP connections (before any socket is made) */
int rst_inet_lock(struct rst_ctx *c);
/* files-inet.c: connections out of repair mode (the tree is about to run) */
int rst_inet_resume(struct rst_ctx *c);
/* files-inet.c: once the tree runs: what the lock dropped into c->st, then it goes */
void rst_inet_settled(struct rst_ctx *c);
/* files-inet.c: unlock (after the descriptions are closed); frees */
void rst_inet_fini(struct rst_files *fs);
extern const struct rst_file_type rst_file_unix;
/* files-unix.c: close the sockets no process took */
void rst_unix_fini(struct rst_files *fs);
extern const struct rst_file_type rst_file_eventfd;
extern const struct rst_file_type rst_file_signalfd;
extern const struct rst_file_type rst_file_timerfd;
extern const struct rst_file_type rst_file_epoll;
extern const struct rst_file_type rst_file_inotify;
extern const struct rst_file_type rst_file_memfd;
extern const struct rst_file_type rst_file_mqueue;

/* Open path as the tree sees it (inside o->root_fd, if set). */
int rst_open_path(struct rst_files *fs, const char *path, int flags, mode_t mode, int *ret_fd);
/* The open() flags of a description, made safe for reopening it. */
int rst_open_flags(const Dm__File *f);
/* F_SETFL with the status flags of f (O_APPEND, O_NONBLOCK, O_DIRECT, O_NOATIME; not O_ASYNC). */
int rst_set_status_flags(const Dm__File *f, int fd);
/* Keep fd open until files_finish() */
void rst_files_keep(struct rst_files *fs, int fd);
/* The description of file id (opened on first use). */
int rst_files_desc(struct rst_files *fs, uint32_t id, int *ret_fd);
/* A regular file for mmap: accmode O_RDONLY or O_RDWR (files-reg.c). */
int rst_reg_open_for_map(struct rst_files *fs, const Dm__File *f, int accmode, int *ret_fd);
/* A memfd for mmap (a private mapping of it): accmode O_RDONLY or O_RDWR (files-memfd.c). */
int rst_memfd_open_for_map(struct rst_files *fs, const Dm__File *f, int accmode, int *ret_fd);

/* files-lock.c: the OFD and flock locks of f, on our new description fd. */
int rst_locks_desc(const Dm__File *f, int fd);
/* The POSIX locks of fd (a file f, our description desc), taken by the process in rb. */
int rst_locks_posix(struct rbatch *rb, const Dm__File *f, const Dm__Fd *fd, int desc);
