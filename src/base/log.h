/* SPDX-License-Identifier: MIT */
/*
 * Logging.  Library code returns -errno and lets the front end log once with
 * context; pr_* are for the spot where the context is known (a file name, a
 * pid).  Each .c may define LOG_PREFIX before including this header.
 * pr_debug costs one predictable branch when debug logging is off.
 */
#pragma once

#include "base/util.h"

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
