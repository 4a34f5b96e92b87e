/* SPDX-License-Identifier: MIT */
/*
 * TCP and UDP sockets seen from outside: the sock_diag reader (inet-diag.c)
 * and the network lock (netlock.c).  docs/net.md, "Sockets and the network
 * lock", says how the dump and the restore use them.
 *
 * Both work in the caller's network namespace (a sock_diag socket and an
 * nft run see the namespace of the thread that makes them): to look into
 * a container's namespace, setns() into it first.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One socket as sock_diag reports it. */
struct inet_sk_diag {
	int family;             /* AF_INET, AF_INET6 */
	int protocol;           /* IPPROTO_TCP, IPPROTO_UDP */
	uint8_t state;          /* TCP_* (UDP: TCP_CLOSE, or TCP_ESTABLISHED when connected) */
	uint8_t shutdown;       /* RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2 */
	uint8_t src[16], dst[16]; /* network order; AF_INET: the first 4 bytes */
	uint16_t sport, dport;  /* host order */
	uint32_t ifindex;       /* SO_BINDTODEVICE, 0 if none */
	uint32_t rqueue;        /* LISTEN: connections not yet accepted; TCP: unread bytes; UDP: memory queued */
	uint32_t wqueue;        /* LISTEN: the backlog; TCP: unacknowledged bytes; UDP: memory queued */
	uint64_t ino;
};

/*
 * A sock_diag netlink socket (NETLINK_SOCK_DIAG) of the calling thread's
 * network namespace, for as many requests as its holder makes: a dump
 * looks up each socket of its tree on one (a socket per lookup cost its
 * creation, bind and release each time).  The functions below take one, or
 * NULL: a socket of their own for that call.  inet_diag_close() accepts
 * NULL.  -errno, dm_fail'ed.
 */
struct inet_diag;
int inet_diag_open(struct inet_diag **ret);
void inet_diag_close(struct inet_diag *d);

/*
 * Every socket of family (AF_INET / AF_INET6) and protocol (IPPROTO_TCP /
 * IPPROTO_UDP) in d's network namespace, in every state.  *ret malloc'd
 * (NULL when *ret_n is 0).  -errno, dm_fail'ed.
 */
int inet_diag_list(struct inet_diag *d, int family, int protocol, struct inet_sk_diag **ret, size_t *ret_n);
/* The one socket of key's family, protocol, addresses, ports and ifindex,
 * looked up (no dump: no walk of the table): 0 and *ret, -ENOENT if none
 * (not dm_fail'ed), else -errno dm_fail'ed. */
int inet_diag_get(struct inet_diag *d, const struct inet_sk_diag *key, struct inet_sk_diag *ret);
/*
 * The same in the states of the mask states (1 << TCP_LISTEN, ...).  The
 * kernel walks the host's whole table of established TCP sockets for a
 * dump that wants any state but TCP_LISTEN (every network namespace shares
 * it unless tcp_child_ehash_entries gave one its own): a listeners-only
 * dump walks only the listeners' table.
 */
int inet_diag_list_states(struct inet_diag *d, int family, int protocol, uint32_t states,
			  struct inet_sk_diag **ret, size_t *ret_n);

/* Destroys every TCP socket of the calling thread's network namespace but
 * TIME_WAIT ones (their peers get a reset); how many in *ret_n. */
int inet_diag_destroy_tcp(unsigned *ret_n);
/* The same for the n TCP sockets of v only, each named by its addresses
 * (no dump: a dump walks the host's whole table of established sockets,
 * milliseconds on a large machine); one gone meanwhile is no error. */
int inet_diag_destroy_these(const struct inet_sk_diag *v, size_t n, unsigned *ret_n);

/* "ESTABLISHED", "LISTEN", ... for a TCP_* state. */
const char *inet_state_name(unsigned state);

/* One TCP connection to block: its local and remote ends. */
struct netlock_conn {
	int family;             /* AF_INET, AF_INET6 (a v4-mapped address is blocked as IPv4) */
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
};

/*
 * The network lock, an nftables table of family inet named name, whose
 * input and output chains (priority -400: before conntrack) drop every
 * packet of the given TCP connections both ways: nothing the peer sends is
 * acknowledged, nothing (data, RST, FIN) reaches it.  Installing replaces a
 * table of that name in one nft transaction (no gap when the restore takes
 * over the dump's lock).  The table outlives the process: `checkpoint`
 * leaves it for the restore to remove.  -errno, dm_fail'ed (nft's message).
 */
int netlock_conns(const char *name, const struct netlock_conn *c, size_t n);
/* The whole network namespace (a container's): every packet in or out is dropped.
 * The restore's lock of a container's new namespace has this name (made when
 * its interfaces are, taken over by the restore of the sockets). */
#define NETLOCK_NETNS_NAME "dmigrate_netns"
int netlock_netns(const char *name);
/*
 * A context made ahead in the calling thread's network namespace (it stays
 * bound to it), so that a lock installed later in the frozen window does
 * not pay libnftables' start-up: netlock_netns_with() is netlock_netns() in
 * ctx's namespace, whatever namespace the caller is in then.
 */
struct netlock_ctx;
int netlock_ctx_new(struct netlock_ctx **ret);
/* A netfilter socket's close waits until the destroy work of the last nft
 * transactions (any namespace's) is done, an RCU grace period after them
 * (8-16 ms on some machines): free a context off the critical path, after
 * the tree runs.  The same holds for every netfilter socket. */
void netlock_ctx_free(struct netlock_ctx *ctx);
int netlock_netns_with(struct netlock_ctx *ctx, const char *name);
/* Build netlock_netns(name)'s transaction ahead as nf_tables messages
 * (libmnl) on a netlink socket of ctx's namespace: netlock_netns_with(ctx,
 * name) then only sends it and returns 1 (0: it ran the script instead,
 * which it falls back to if the kernel refuses the messages).  -errno,
 * dm_fail'ed. */
int netlock_ctx_prepare(struct netlock_ctx *ctx, const char *name);
/* Remove the lock; 0 when there is none.  _in: over ctx's socket, in its
 * namespace, no context made and freed (ctx NULL: netlock_unlock()): with
 * prepared messages when it has them (netlock_ctx_prepare): 1, else the
 * script: 0. */
int netlock_unlock(const char *name);
int netlock_unlock_in(struct netlock_ctx *ctx, const char *name);
/*
 * Let everything through but keep the table with its counters (its chains
 * go): the restore opens the lock before the tree runs and reads what it
 * dropped later, off the critical path.  netlock_unlock() removes it.
 */
int netlock_open(const char *name);
/*
 * The end of a lock, prepared while its namespace is at hand: a netfilter
 * socket made in the calling thread's network namespace (it stays bound to
 * it) and netlock_open()'s and netlock_unlock()'s transactions for lock
 * name built as nf_tables messages (libmnl).  netlock_open_with() then is
 * one sendmsg and its acks, from whatever namespace the caller is in: no
 * libnftables context made (milliseconds of CPU in the client's gap), no
 * parse.  netlock_dropped_with() reads the counters over the same socket.
 * -errno, dm_fail'ed (the caller may fall back to the script).
 */
struct netlock_opener;
int netlock_opener_new(const char *name, struct netlock_opener **ret);
void netlock_opener_free(struct netlock_opener *o);
int netlock_open_with(struct netlock_opener *o);
int netlock_unlock_with(struct netlock_opener *o);
int netlock_dropped_with(struct netlock_opener *o, uint64_t *in, uint64_t *out);
/* The TCP packets a lock of this process's making has dropped, in (from the
 * peers) and out (from the tree's sockets).  -ENOENT if it has no counters. */
#define NETLOCK_TCP_IN "tcp_in"
#define NETLOCK_TCP_OUT "tcp_out"
int netlock_dropped(const char *name, uint64_t *in, uint64_t *out);
/* Is there a lock of that name in this namespace? */
bool netlock_exists(const char *name);
/* The nft script of netlock_conns() (or of netlock_netns() with c == NULL); malloc'd. */
char *netlock_script(const char *name, const struct netlock_conn *c, size_t n, bool netns);

/*
 * A tree in a network namespace of its own (a container's): its sockets are
 * seen, locked and made there.  netns_of_pid(): 1 and *ret_fd an fd of
 * pid's network namespace when it is not the calling thread's, 0 and -1
 * when it is the same.  netns_enter(): the calling thread enters nsfd (-1:
 * stays) and *ret_back can bring it back; netns_leave(back) does (aborts if
 * the kernel refuses: a thread must not go on in the tree's namespace).
 */
#include <sys/types.h>
int netns_of_pid(pid_t pid, int *ret_fd);
int netns_enter(int nsfd, int *ret_back);
void netns_leave(int back);

/*
 * Announce addr ("ADDR" or "ADDR/PREFIX") of interface ifname of the
 * calling thread's network namespace on its segment: a gratuitous ARP
 * (IPv4) or an unsolicited neighbour advertisement with the override flag
 * (IPv6; a link-local address is skipped).  -errno, dm_fail'ed.
 */
int net_announce(const char *ifname, const char *addr);
