/* SPDX-License-Identifier: MIT */
/*
 * A service's answers, seen going out: the source freezes a container right
 * after one (dump_opts.quiet_wait_ms, docs/net.md "The moment of the
 * freeze").  A client that waits for each answer before it asks again sends
 * nothing for a while after one; frozen then, its next request meets the
 * downtime later, or not at all, and no answer is cut in two by it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_answer_watch;

/* In the calling thread's network namespace: from now on, its outgoing TCP
 * segments (not through loopback) are seen. */
int net_answer_watch_start(struct net_answer_watch **ret);
/* 1: a segment that ends an answer (net_tcp_answer_end) went out since the
 * start or the last call; 0: none within timeout_ms; -errno, dm_fail'ed. */
int net_answer_wait(struct net_answer_watch *w, unsigned timeout_ms);
/* Outgoing TCP segments seen so far (with data or without). */
uint64_t net_answer_segments(const struct net_answer_watch *w);
/* The socket keeps nothing more (its filter drops all); it stays open. */
void net_answer_watch_stop(struct net_answer_watch *w);
/* Close: an RCU grace period, never in a frozen window.  NULL: nothing. */
void net_answer_watch_free(struct net_answer_watch *w);

/* The TCP payload's length that the headers of an IPv4 or IPv6 packet
 * announce (len bytes of it at p, the headers at least); 0: none, or not a
 * TCP packet whose headers are there. */
size_t net_tcp_payload(const uint8_t *p, size_t len);
/* Such a packet ends what one send() gave TCP: data, and the PSH flag. */
bool net_tcp_answer_end(const uint8_t *p, size_t len);
