/* SPDX-License-Identifier: MIT */
/*
 * Logging.  Library code returns -errno and lets the front end log once with
 * context; pr_* are for the spot where the context is known (a file name, a
 * pid).  Each .c may define LOG_PREFIX before including this header.
 * pr_debug costs one predictable branch when debug logging is off.
 */
#pragma once

#include "base/util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>

enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

extern int dm_log_level;

void dm_log_init(int level, int fd);
void dm_log(int level, const char *file, int line, const char *fmt, ...) _printf_(4, 5);
/* Thread-local description of the last error (set by dm_error()); the CLI prints it. */
const char *dm_last_error(void);
/* Record a detailed error message for the caller to print, return err (a -errno). */
int dm_error(int err, const char *fmt, ...) _printf_(2, 3);
void dm_error_clear(void);
/* Make msg (copied; NULL or "" clears) the calling thread's error message. */
void dm_error_set_message(const char *msg);
/* dm_last_error() when set, else strerror(-err): what to show the user. */
const char *dm_error_text(int err);

#define DM_ERRMSG_MAX 1024

/*
 * An error that crosses threads.  dm_last_error() is per thread: a message
 * made on a worker (a pool task, a page server thread) would be lost where
 * only the code is passed on, and the user would read "Operation not
 * supported" instead of "unsupported fd 7 of process 1234: socket:[5678]".
 * A box keeps the first error put in it together with the message of the
 * thread that put it there; the thread that reports the error takes both.
 * The code is atomic (lock-free checks, cond_wait_flag()); the message is
 * under the box's lock.
 */
struct dm_errbox {
	_Atomic int code;
	pthread_mutex_t lock;
	char msg[DM_ERRMSG_MAX];
};
#define DM_ERRBOX_INIT { 0, PTHREAD_MUTEX_INITIALIZER, "" }
void dm_errbox_init(struct dm_errbox *b);
/*
 * Keep err (< 0; anything else counts as -EIO) and the calling thread's
 * dm_last_error() unless the box holds an error already.  Returns the code
 * the box holds.
 */
int dm_errbox_put(struct dm_errbox *b, int err);
/* The code in the box (0: none); lock-free. */
static inline int dm_errbox_code(struct dm_errbox *b)
{
	return atomic_load(&b->code);
}
/*
 * The code in the box; when it holds an error, its message becomes the
 * calling thread's dm_last_error() (cleared when the error came without one).
 */
int dm_errbox_take(struct dm_errbox *b);

#define pr_err(fmt, ...) dm_log(LOG_ERR, __FILE__, __LINE__, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) dm_log(LOG_WARN, __FILE__, __LINE__, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) dm_log(LOG_INFO, __FILE__, __LINE__, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...)                                                                  \
	do {                                                                                \
		if (_unlikely_(dm_log_level >= LOG_DEBUG))                                  \
			dm_log(LOG_DEBUG, __FILE__, __LINE__, LOG_PREFIX fmt, ##__VA_ARGS__); \
	} while (0)
#define pr_perror(fmt, ...) pr_err(fmt ": %m", ##__VA_ARGS__)

/*
 * Set the thread's error message and return the error:
 *   return dm_fail(-EBADMSG, "%s: vma %u: start %#lx not page aligned", file, i, start);
 */
#define dm_fail(err, fmt, ...) dm_error((err), fmt, ##__VA_ARGS__)

/*
 * dm_fail() with the current error message appended ("what: why").  The
 * message is copied first: dm_error() formats into the buffer that
 * dm_last_error() returns.
 */
#define dm_wrap(err, fmt, ...)                                                                     \
	({                                                                                         \
		char _why[768];                                                                    \
		int _e = (err);                                                                    \
		snprintf(_why, sizeof(_why), "%s", dm_last_error()[0] ? dm_last_error() : strerror(-_e)); \
		dm_fail(_e, fmt ": %s", ##__VA_ARGS__, _why);                                      \
	})
