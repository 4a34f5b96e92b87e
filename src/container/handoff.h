/* SPDX-License-Identifier: MIT */
/*
 * The hand-off between `dmigrate-runc` (the OCI runtime Docker runs for a
 * container, runtime.c) and the `dmigrated` that restores a migrated tree into
 * that container (docs/docker.md).
 *
 * dmigrated announces a container it is about to start by listening on
 * HANDOFF_DIR/<container id>.sock (SOCK_SEQPACKET, mode 0600, in its mount
 * namespace).  When the container's shim runs `dmigrate-runc create ... ID`
 * and the socket is there, dmigrate-runc starts the restore's stub as the
 * container's init (the config's process made into the stub, fd 3 the stub's
 * memfd, fd 4 its transport, `runc create --preserve-fds 2`) and sends one
 * message: struct handoff_msg with, on success, four fds: our end of the
 * stub's transport and the stdin, stdout, stderr the shim gave the container.
 * dmigrated answers one byte ('K') once it has them.  Anything else (no
 * socket, a stale one) is plain runc: every other command is runc's.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#define HANDOFF_DIR "/run/dmigrate/docker"
#define HANDOFF_MAGIC 0x444d484fu
#define HANDOFF_ACK_WAIT_MS 10000

struct handoff_msg {
	uint32_t magic;
	int32_t status;         /* 0: the stub runs (created); else runc's exit status or -errno */
	int32_t pid;            /* the stub, the container's init (pid in the runtime's namespace) */
	char error[480];        /* status != 0: why */
};

struct handoff {
	pid_t pid;
	int sock;               /* our end of the stub's transport */
	int stdio[3];           /* the container's stdin, stdout, stderr (-1: none) */
};

/* dmigrated: listens for the runtime of container id (a stale socket goes). */
int handoff_listen(const char *id, int *ret_fd);
/* Waits (bounded) for the runtime's message; fills *ret (the caller closes
 * its fds with handoff_close) or fails with the runtime's reason. */
int handoff_accept(int lfd, int timeout_ms, struct handoff *ret);
void handoff_unlisten(const char *id, int lfd);
void handoff_close(struct handoff *h);

/* dmigrate-runc: argv as Docker's shim gave it (argv[0] ours). */
int runtime_main(int argc, char **argv);
