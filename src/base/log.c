/* SPDX-License-Identifier: MIT */
#include "base/log.h"
#include "base/clock.h"

#include <stdarg.h>
#include <string.h>
#include <pthread.h>

int dm_log_level = LOG_WARN;
static int log_fd = STDERR_FILENO;
static _Thread_local char last_error[DM_ERRMSG_MAX];

void dm_log_init(int level, int fd)
{
	dm_log_level = level;
	if (fd >= 0)
		log_fd = fd;
}

void dm_log(int level, const char *file, int line, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char buf[2048];
	int saved = errno, n;
	va_list ap;

	if (level > dm_log_level)
		return;
	if (level <= LOG_ERR || dm_log_level >= LOG_DEBUG)
		n = snprintf(buf, sizeof(buf), "(%8.3f) %s: %s:%d: ", clock_ms() / 1000.0,
			     names[level], file, line);
	else
		n = snprintf(buf, sizeof(buf), "(%8.3f) %s: ", clock_ms() / 1000.0, names[level]);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	errno = saved;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n = MIN((size_t)(n + m), sizeof(buf) - 2);
	buf[n++] = '\n';
	ssize_t r = write(log_fd, buf, n);
	(void)r;
	errno = saved;
}

int dm_error(int err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	errno = saved;
	pr_debug("error set: %s (%s)", last_error, strerror(err < 0 ? -err : err));
	return err;
}

const char *dm_last_error(void)
{
	return last_error;
}

void dm_error_clear(void)
{
	last_error[0] = 0;
}

void dm_error_set_message(const char *msg)
{
	snprintf(last_error, sizeof(last_error), "%s", msg ? msg : "");
}

const char *dm_error_text(int err)
{
	return last_error[0] ? last_error : strerror(err < 0 ? -err : err);
}

void dm_errbox_init(struct dm_errbox *b)
{
	atomic_init(&b->code, 0);
	pthread_mutex_init(&b->lock, NULL);
	b->msg[0] = 0;
}

int dm_errbox_put(struct dm_errbox *b, int err)
{
	int zero = 0, code = err < 0 ? err : -EIO;

	pthread_mutex_lock(&b->lock);
	if (atomic_compare_exchange_strong(&b->code, &zero, code))
		snprintf(b->msg, sizeof(b->msg), "%s", last_error);
	else
		code = zero;
	pthread_mutex_unlock(&b->lock);
	return code;
}

int dm_errbox_take(struct dm_errbox *b)
{
	int code;

	pthread_mutex_lock(&b->lock);
	code = atomic_load(&b->code);
	if (code)
		snprintf(last_error, sizeof(last_error), "%s", b->msg);
	pthread_mutex_unlock(&b->lock);
	return code;
}
