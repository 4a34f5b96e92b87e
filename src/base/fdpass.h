/* SPDX-License-Identifier: MIT */
/*
 * Passing descriptors over a unix socket (SCM_RIGHTS): one message, its
 * bytes and up to FDPASS_MAX descriptors.  Every place that hands an fd to
 * another process (the source's guard, the destination's guardian, the
 * runtime's hand-off, the restore's transport, the mqueue opener) uses
 * these, so the control-message layout is built and checked in one place.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#define FDPASS_MAX 253 /* SCM_MAX_FD */

/*
 * sendmsg of len bytes with nfds descriptors (none when nfds is 0), retried
 * on EINTR, MSG_NOSIGNAL added to flags.  Returns the bytes sent or -errno.
 */
ssize_t fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds, int flags);

/*
 * recvmsg into buf (len bytes at most), retried on EINTR, MSG_CMSG_CLOEXEC
 * added to flags.  The descriptors that came with the message go into fds
 * (at most *nfds of them; *nfds is set to how many); any beyond that, and
 * any of a truncated control message, are closed, never leaked.  Returns
 * the bytes received (0 at EOF) or -errno.
 */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds, size_t *nfds, int flags);
