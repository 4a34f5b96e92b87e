/* SPDX-License-Identifier: MIT */
/*
 * The unix sockets of our network namespace, as sock_diag (NETLINK_SOCK_DIAG,
 * unix_diag) tells them: inode, type, state, bound name and the inode of the
 * file it made, peer inode, pending connections of a listener, queue lengths
 * and shutdown state.  One dump reads them all; the table is sorted by inode.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROC_UNIX_NAME_MAX 108 /* sizeof(sun_path) */

/* sk_state values of unix sockets (the kernel's TCP_* numbers) */
#define PROC_UNIX_ESTABLISHED 1
#define PROC_UNIX_CLOSE 7
#define PROC_UNIX_LISTEN 10

struct proc_unix_sk {
	uint64_t ino;
	uint8_t type;           /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	uint8_t state;          /* TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE (unconnected) */
	uint8_t shutdown;       /* sk_shutdown: RCV_SHUTDOWN 1, SEND_SHUTDOWN 2 */
	uint8_t name_len;       /* bytes of name; 0: unbound.  Abstract: name[0] is '\0' */
	char name[PROC_UNIX_NAME_MAX];
	bool has_vfs;           /* a path name: the socket file's inode and device */
	uint64_t vfs_ino;
	dev_t vfs_dev;          /* as stat() gives st_dev */
	uint64_t peer_ino;      /* 0: no peer (or the peer was closed) */
	uint64_t *icons;        /* listener: inodes of the connections not yet accepted */
	size_t n_icons;
	uint32_t rqueue;        /* bytes queued to read (dgram: the first datagram's);
				   listener: connections pending */
	uint32_t wqueue;        /* bytes sent and not yet read; listener: its backlog */
};

struct proc_unix_table {
	struct proc_unix_sk *v; /* sorted by ino */
	size_t n;
};

/* Every unix socket of the caller's network namespace. */
int proc_unix_read(struct proc_unix_table *ret);
const struct proc_unix_sk *proc_unix_find(const struct proc_unix_table *t, uint64_t ino);
void proc_unix_table_done(struct proc_unix_table *t);
/* Parse one unix_diag message (NLMSG payload + attributes) into ret; tests use it. */
int proc_unix_parse(const void *nlmsg, size_t len, struct proc_unix_sk *ret);
