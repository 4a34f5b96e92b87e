/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: what dmigrated does with the bytes a peer sends on a
 * control channel, through the daemon's own code (insecure channels over a
 * socketpair: the framing, the protobuf decoding and every check behind it).
 * The first input byte picks the exchange, the rest is the byte stream the
 * peer sends:
 *   0  Hello: net_listener_handshake(), as the accept loop runs it
 *   1  START: handle_start() (mode, store size, the session's work dir)
 *   2  the state: recv_files() (FILE, DATA, FILE_END, DIRTY, STATE_END, ABORT)
 *   3  VMA fix-ups after COMMIT: mig_recv() + apply_vma_fixes() as
 *      serve_until_done() runs them (no process of the session is known, so
 *      no fix-up is ever applied to a process)
 *   4  between RESUMED and COMMIT: expect_commit() (NET_FRAMES, the packets
 *      the source's network lock kept, checked; nothing is delivered)
 * Nothing may crash, leak or read out of bounds; refusals are expected.
 * The static functions are reached by including src/migrate/dest.c;
 * handle_start() is dest-start.c's (dest-int.h).
 *   tests/fuzz/build.sh [SECONDS]      builds and runs every target
 */
#include "../../src/migrate/dest.c"
#include "fuzz-feed.h"

#include "net/net-priv.h"

#include <stdlib.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct net_ctx *ctx;
static struct net_listener *listener;
static char state_dir[] = "/dev/shm/dm-fuzz-wire.XXXXXX";
static struct mem_store *store; /* recv_files() only asks whether there is one */

static void remove_state_dir(void)
{
	rm_rf(state_dir);
}

static void setup(void)
{
	struct net_config cfg = { .insecure = true, .handshake_timeout_ms = 2000, .io_timeout_ms = 2000 };

	dm_log_init(-1, -1);
	if (net_ctx_new(&cfg, NULL, &ctx) < 0 || net_listen(ctx, "127.0.0.1:0", &listener) < 0 ||
	    !mkdtemp(state_dir) || mem_store_new(1u << 20, &store) < 0)
		abort();
	atexit(remove_state_dir); /* libFuzzer ends a timed run with exit() */
}

/* A socket (the daemon's end) that reads the input, then EOF; *ret_peer is ours. */
static int feed(const uint8_t *data, size_t size, int *ret_peer)
{
	return fuzz_feed(data, size, true, ret_peer);
}

static void session_init(struct dsess *s, struct mig_daemon_opts *o)
{
	memset(s, 0, sizeof(*s));
	memset(o, 0, sizeof(*o));
	o->state_dir = state_dir;
	o->insecure = true;
	s->o = o;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->guard_fd = -1;
	s->root_pidfd = -1;
	memset(s->session, 0x5a, sizeof(s->session));
	net_session_hex(s->session, s->hex);
}

static void session_done(struct dsess *s)
{
	if (s->dir) {
		rm_rf(s->dir);
		free(s->dir);
	}
	mem_store_free(s->store);
	free(s->packets.buf);
	free(s->dirty);
	free(s->target);
	json_decref(s->prep_stats);
	/* what handle_start() reserved for a store mode (or a fuzzed START
	 * would find the host full after a few runs) */
	dst_unreserve(s);
	net_chan_close(s->ctl);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_daemon_opts o;
	struct dsess s;
	int peer, fd;

	if (!ctx)
		setup();
	if (size < 1 || size > (1u << 20))
		return 0;
	unsigned what = data[0] % 5;
	data++;
	size--;

	if (what == 0) {
		struct net_chan *c = NULL;
		fd = feed(data, size, &peer);
		/* the listener takes the fd over */
		if (net_listener_handshake(listener, fd, &c) >= 0)
			net_chan_close(c);
		close(peer);
		return 0;
	}

	session_init(&s, &o);
	fd = feed(data, size, &peer);
	if (net_chan_new(ctx, fd, true, &s.ctl) < 0)
		abort();
	if (what == 1) {
		handle_start(&s);
	} else if (what == 2) {
		/* a store session: DIRTY ranges are allowed */
		s.dir = xasprintf("%s/state", state_dir);
		if (mkdir(s.dir, 0700) < 0)
			abort();
		s.store = store;
		recv_files(&s);
		s.store = NULL;
	} else if (what == 4) {
		expect_commit(&s);
	} else {
		for (;;) {
			ProtobufCMessage *m = NULL;
			uint16_t type;
			uint32_t len;
			int r = mig_recv(s.ctl, &type, &len, &m);
			if (m)
				protobuf_c_message_free_unpacked(m, NULL);
			if (r < 0 || type != MIG_T_VMA_FIX || m)
				break;
			if (apply_vma_fixes(&s, len) < 0)
				break;
		}
	}
	session_done(&s);
	close(peer);
	return 0;
}
