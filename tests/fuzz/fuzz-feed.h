/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz targets feed the daemon's code through: the daemon's end of
 * a unix socket pair (non-blocking) from which it reads the input, written
 * at once (the buffers hold it whole), then EOF unless eof is false (a
 * channel that stays open, silent); *ret_peer is the other end, ours to
 * close.
 */
#pragma once

#include "base/util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

static inline int fuzz_feed(const uint8_t *data, size_t size, bool eof, int *ret_peer)
{
	int sv[2], big = 8 << 20;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (size && write_all(sv[1], data, size) < 0)
		abort();
	if (eof)
		shutdown(sv[1], SHUT_WR);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	*ret_peer = sv[1];
	return sv[0];
}
