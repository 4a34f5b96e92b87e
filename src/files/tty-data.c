/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "tty: "
#include "files/tty-data.h"
#include "base/log.h"

#include <asm/termbits.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>

/* <asm/termbits.h> (termios2) and <termios.h> do not mix */
#ifndef FIONREAD
#define FIONREAD 0x541B
#endif

static int avail(int fd, size_t *ret)
{
	int n = 0;
	if (ioctl(fd, FIONREAD, &n) < 0)
		return neg_errno();
	*ret = n > 0 ? (size_t)n : 0;
	return 0;
}

/* Read what is buffered without ever blocking (the fd may be blocking). */
static int drain(int fd, uint8_t **ret, size_t *ret_len)
{
	size_t n, len = 0;
	uint8_t *buf = NULL;
	int r = avail(fd, &n);

	if (r < 0)
		return r;
	while (n && len < TTY_DATA_MAX) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
			break;
		buf = xrealloc(buf, len + n);
		ssize_t got = read(fd, buf + len, n);
		if (got <= 0)
			break;
		len += got;
		r = avail(fd, &n);
		if (r < 0)
			break;
	}
	*ret = len ? buf : NULL;
	if (!len)
		free(buf);
	*ret_len = len;
	return 0;
}

int tty_data_read(int master, int slave, uint8_t **ret_in, size_t *ret_in_len, uint8_t **ret_out,
		  size_t *ret_out_len)
{
	struct termios2 saved, raw;
	int r;

	if (ioctl(slave, TCGETS2, &saved) < 0)
		return neg_errno();
	/* a partial line of a canonical terminal is readable only without ICANON */
	raw = saved;
	raw.c_lflag &= ~(ICANON | ECHO | ISIG | IEXTEN);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (ioctl(slave, TCSETS2, &raw) < 0)
		return neg_errno();
	r = drain(slave, ret_in, ret_in_len);
	if (ioctl(slave, TCSETS2, &saved) < 0 && r >= 0)
		r = neg_errno();
	if (r < 0)
		return r;
	return drain(master, ret_out, ret_out_len);
}

static int wait_avail(int fd, size_t want)
{
	for (int i = 0; i < 2000; i++) {
		size_t n;
		int r = avail(fd, &n);
		if (r < 0)
			return r;
		if (n >= want)
			return 0;
		usleep(500);
	}
	return -ETIMEDOUT;
}

int tty_data_write(int master, int slave, const uint8_t *in, size_t in_len, const uint8_t *out,
		   size_t out_len)
{
	struct termios2 saved, raw;
	size_t before;
	int r = 0;

	if (!in_len && !out_len)
		return 0;
	if (ioctl(slave, TCGETS2, &saved) < 0)
		return neg_errno();
	raw = saved;
	raw.c_iflag = 0;
	raw.c_oflag &= ~OPOST;
	raw.c_lflag &= ~(ICANON | ECHO | ECHONL | ISIG | IEXTEN);
	if (ioctl(slave, TCSETS2, &raw) < 0)
		return neg_errno();
	if (in_len) {
		/* the line discipline takes master writes asynchronously: wait for them */
		r = avail(slave, &before);
		if (r >= 0)
			r = write_all(master, in, in_len);
		if (r >= 0)
			r = wait_avail(slave, before + in_len);
	}
	if (r >= 0 && out_len) {
		r = avail(master, &before);
		if (r >= 0)
			r = write_all(slave, out, out_len);
		if (r >= 0)
			r = wait_avail(master, before + out_len);
	}
	if (ioctl(slave, TCSETS2, &saved) < 0 && r >= 0)
		r = neg_errno();
	return r;
}
