/* SPDX-License-Identifier: MIT */
/*
 * timerfd: made on its clock and armed with the time that was left and its
 * interval: relative, or, when it was set with TFD_TIMER_ABSTIME (and
 * TFD_TIMER_CANCEL_ON_SET, which needs it), absolute at now + the time left
 * on this host's clock (the source's absolute expiry may mean nothing here),
 * so that it keeps its flags (a CLOCK_REALTIME one then follows clock
 * changes as it did).  The expirations not read yet
 * are put back with TFD_IOC_SET_TICKS (a kernel with
 * CONFIG_CHECKPOINT_RESTORE); a kernel without it fails the restore, named.
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/log.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>

#define NSEC 1000000000ULL
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t) /* <linux/timerfd.h>, which clashes with glibc's */
#endif

static struct timespec ts_of(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / NSEC), .tv_nsec = (long)(ns % NSEC) };
}

static int timerfd_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	const Dm__TimerfdFile *t = f->timerfd;
	_cleanup_close_ int fd = -1;
	struct itimerspec its = { 0 };
	int flags = 0, r;

	(void)fs;
	if (!t)
		return dm_fail(-EBADMSG, "timerfd without its timer");
	fd = timerfd_create(t->clockid, TFD_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "timerfd on clock %d: %m", t->clockid);
	if (t->value_ns) {
		uint64_t value = t->value_ns;
		if (t->settime_flags & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)) {
			struct timespec now;
			clock_gettime(t->clockid, &now);
			value += (uint64_t)now.tv_sec * NSEC + (uint64_t)now.tv_nsec;
			flags = TFD_TIMER_ABSTIME | (t->settime_flags & TFD_TIMER_CANCEL_ON_SET);
		}
		its.it_value = ts_of(value);
		its.it_interval = ts_of(t->interval_ns);
		if (timerfd_settime(fd, flags, &its, NULL) < 0)
			return dm_fail(neg_errno(), "timerfd on clock %d: arming it: %m", t->clockid);
	}
	if (t->ticks && ioctl(fd, TFD_IOC_SET_TICKS, &t->ticks) < 0) {
		if (errno == ENOTTY)
			return dm_fail(-ENOTSUP, "timerfd: %" PRIu64 " expirations not yet read cannot be "
				       "put back: this kernel has no TFD_IOC_SET_TICKS "
				       "(CONFIG_CHECKPOINT_RESTORE)", t->ticks);
		return dm_fail(neg_errno(), "timerfd: TFD_IOC_SET_TICKS %" PRIu64 ": %m", t->ticks);
	}
	r = rst_set_status_flags(f, fd);
	if (r < 0)
		return dm_fail(r, "timerfd: status flags: %s", strerror(-r));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

const struct rst_file_type rst_file_timerfd = { .name = "timerfd", .open = timerfd_open };
