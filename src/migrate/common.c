/* SPDX-License-Identifier: MIT */
/* Helpers shared by both sides of a migration: frames, files, channels, watchdog. */
#define LOG_PREFIX "migrate: "
#include "migrate/mig-internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/pkt_sched.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

static const char *const mode_names[_MIG_MODE_MAX] = {
	[MIG_POST_COPY] = "post-copy",
	[MIG_PRE_COPY] = "pre-copy",
	[MIG_STOP_AND_COPY] = "stop-and-copy",
	[MIG_HYBRID] = "hybrid",
};

const char *mig_mode_name(enum mig_mode m)
{
	return m < _MIG_MODE_MAX ? mode_names[m] : "?";
}

int mig_mode_parse(const char *s, enum mig_mode *ret)
{
	for (int i = 0; s && i < _MIG_MODE_MAX; i++)
		if (!strcmp(s, mode_names[i])) {
			*ret = i;
			return 0;
		}
	return -EINVAL;
}

void mig_tune_chan(struct net_chan *c, bool nodelay)
{
	int fd = net_chan_fd(c), one = 1, idle = 2, intvl = 1, cnt = 5;
	unsigned utimeout = 10000;
	const char *v = getenv("DMIGRATE_TEST_LINK_DEAD_S");
	long dead_s;

	if (fd < 0)
		return;
	/* tests that cut the link and expect it to be declared dead: about
	 * that many seconds (2 to 9) for both bounds instead of ~7 and 10 */
	if (v && parse_long(v, &dead_s) >= 0 && dead_s >= 2 && dead_s < 10) {
		idle = 1;
		cnt = (int)dead_s - 1;
		utimeout = (unsigned)dead_s * 1000;
	}
	/*
	 * Queue priority: a host's queueing discipline (pfifo_fast, prio,
	 * fq_codel, a DiffServ-aware switch) sends the frames someone waits
	 * for (control, faults) before the bulk push, which is marked as
	 * lower-effort traffic (DSCP LE, RFC 8622).  IP_TOS sets the socket
	 * priority from the TOS bits; SO_PRIORITY after it says it for sure.
	 */
	int tos = nodelay ? IPTOS_LOWDELAY : MIG_DSCP_LE << 2;
	int prio = nodelay ? TC_PRIO_INTERACTIVE : TC_PRIO_BULK;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	else
		setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &utimeout, sizeof(utimeout));
	if (nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void mig_chan_patience(struct net_chan *c, unsigned seconds)
{
	int fd = c ? net_chan_fd(c) : -1;
	int intvl = seconds > 120 ? (int)(seconds / 120) : 1;
	int cnt = (int)MIN(seconds / (unsigned)intvl, 127u);
	unsigned utimeout = seconds * 1000;

	if (fd < 0 || !seconds)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &utimeout, sizeof(utimeout));
	/* a fault or control stream has little in flight: retransmit it at a
	 * steady pace instead of backing off, so it is back soon after the link */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one, sizeof(one));
}

int mig_send_empty(struct net_chan *c, uint16_t type)
{
	return net_send_frame(c, type, NULL, 0);
}

int mig_send_reply(struct net_chan *c, uint16_t type, bool ok, int err, const char *error, pid_t root_pid,
		   json_t *stats)
{
	Dm__MigReply m = DM__MIG_REPLY__INIT;
	_cleanup_free_ char *js = NULL;

	m.ok = ok;
	if (err) {
		m.has_err = true;
		m.err = err;
	}
	if (error)
		m.error = (char *)error;
	if (root_pid > 0) {
		m.has_root_pid = true;
		m.root_pid = root_pid;
	}
	if (stats) {
		js = json_dumps(stats, JSON_COMPACT);
		m.stats = js;
	}
	return net_send_msg(c, type, &m.base);
}

json_t *mig_reply_stats(const Dm__MigReply *r)
{
	if (!r->stats)
		return NULL;
	json_t *j = json_loads(r->stats, JSON_REJECT_DUPLICATES, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int mig_abort_error(const Dm__MigReply *r)
{
	int err = r->has_err && r->err < 0 && r->err > -4096 ? r->err : -EREMOTEIO;
	return dm_fail(err, "%s", r->error ? r->error : strerror(-err));
}

int mig_peer_abort(struct net_chan *c, int timeout_ms)
{
	char mine[DM_ERRMSG_MAX];
	uint64_t end = clock_ns() + (uint64_t)MAX(timeout_ms, 0) * 1000000;
	int r = 0;

	snprintf(mine, sizeof(mine), "%s", dm_last_error());
	for (uint64_t now = clock_ns(); r == 0; now = clock_ns()) {
		int left = now < end ? (int)((end - now + 999999) / 1000000) : 0;
		if (net_chan_poll_in(c, left) <= 0)
			break;
		ProtobufCMessage *m = NULL;
		uint16_t type;
		uint32_t len;
		if (mig_recv(c, &type, &len, &m) < 0)
			break;
		if (type == MIG_T_ABORT && m)
			r = mig_abort_error((const Dm__MigReply *)m);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		else
			net_skip_body(c);
	}
	if (r == 0)
		dm_error_set_message(mine);
	return r;
}

#define MIG_MSG_MAX (1u << 20)

int mig_recv(struct net_chan *c, uint16_t *ret_type, uint32_t *ret_len, ProtobufCMessage **ret_msg)
{
	const ProtobufCMessageDescriptor *desc = NULL;
	struct net_frame f;
	int r;

	*ret_msg = NULL;
	r = net_recv_hdr(c, &f);
	if (r < 0)
		return r;
	switch (f.type) {
	case MIG_T_START:
		desc = &dm__mig_start__descriptor;
		break;
	case MIG_T_ACCEPT:
	case MIG_T_NEED_IMAGE:
	case MIG_T_RESUMED:
	case MIG_T_MEM_DONE:
	case MIG_T_ABORT:
	case MIG_T_READY:
		desc = &dm__mig_reply__descriptor;
		break;
	case MIG_T_FILE:
		desc = &dm__mig_file__descriptor;
		break;
	case MIG_T_STATE_END:
		desc = &dm__mig_state_end__descriptor;
		break;
	case MIG_T_DATA:
	case MIG_T_IMAGE_DATA:
	case MIG_T_IMAGE_END:
	case MIG_T_NET_FRAMES:
	case MIG_T_DIRTY:
	case MIG_T_VMA_FIX:
	case MIG_T_FILE_END:
	case MIG_T_COMMIT:
	case MIG_T_FIN:
		*ret_type = f.type;
		*ret_len = f.len;
		return 0;
	default:
		net_skip_body(c);
		return dm_fail(-EBADMSG, "%s: unexpected frame type %#x", net_chan_peer(c), f.type);
	}
	if (f.len > MIG_MSG_MAX) {
		net_skip_body(c);
		return dm_fail(-EBADMSG, "%s: message of %u bytes", net_chan_peer(c), f.len);
	}
	_cleanup_free_ uint8_t *buf = xmalloc(f.len ? f.len : 1);
	r = net_recv_body(c, buf, f.len);
	if (r < 0)
		return r;
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, f.len, buf);
	if (!m)
		return dm_fail(-EBADMSG, "%s: undecodable message (type %#x)", net_chan_peer(c), f.type);
	*ret_type = f.type;
	*ret_len = f.len;
	*ret_msg = m;
	return 0;
}

bool mig_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > MIG_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

int mig_send_file(struct net_chan *c, int dirfd, const char *name, uint64_t *io_bytes)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ uint8_t *buf = NULL;
	Dm__MigFile m = DM__MIG_FILE__INIT;
	struct stat st;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0)
		return dm_fail(neg_errno(), "image file %s: %m", name);
	if (!S_ISREG(st.st_mode) || !mig_name_ok(name))
		return dm_fail(-EINVAL, "image file %s: not a regular file with a plain name", name);
	m.name = (char *)name;
	m.size = st.st_size;
	r = net_send_msg(c, MIG_T_FILE, &m.base);
	if (r < 0)
		return r;
	buf = xmalloc(MIG_DATA_MAX);
	for (off_t off = 0; off < st.st_size;) {
		off_t data = lseek(fd, off, SEEK_DATA);
		if (data < 0)
			break; /* only a hole is left */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		for (off_t o = data; o < hole;) {
			uint32_t n = (uint32_t)MIN((uint64_t)(hole - o), (uint64_t)MIG_DATA_MAX);
			r = pread_exact(fd, buf, n, o);
			if (r < 0)
				return dm_fail(r, "image file %s: read: %s", name, strerror(-r));
			/* only the runs that hold data: the receiver's file is made
			 * at its size, its holes read as zeros (MIG_ZERO_GAP) */
			for (size_t a = 0, b; (a = buf_next_data(buf, n, a, MIG_ZERO_LINE, MIG_ZERO_GAP, &b)) < n; a = b) {
				struct mig_wire_extent e = { .off = (uint64_t)o + a, .len = (uint32_t)(b - a) };
				struct iovec iov[2] = { { &e, sizeof(e) }, { buf + a, b - a } };
				r = net_send_framev(c, MIG_T_DATA, iov, 2);
				if (r < 0)
					return r;
				if (io_bytes)
					*io_bytes += b - a;
			}
			o += n;
		}
		off = hole;
	}
	return mig_send_empty(c, MIG_T_FILE_END);
}

uint64_t mig_chan_bytes(struct net_chan *c)
{
	struct net_chan_stats s;
	if (!c)
		return 0;
	net_chan_get_stats(c, &s);
	return s.wire_sent + s.wire_recv;
}

json_t *mig_bytes_json(struct net_chan *control, struct net_chan *fault, struct net_chan *bulk)
{
	json_t *o = json_object();
	uint64_t a = mig_chan_bytes(control), b = mig_chan_bytes(fault), c = mig_chan_bytes(bulk);
	json_object_set_new(o, "control", json_integer((json_int_t)a));
	json_object_set_new(o, "fault", json_integer((json_int_t)b));
	json_object_set_new(o, "bulk", json_integer((json_int_t)c));
	json_object_set_new(o, "total", json_integer((json_int_t)(a + b + c)));
	return o;
}

static uint64_t watched_bytes(struct mig_watchdog *w)
{
	uint64_t b = 0;
	for (size_t i = 0; i < ARRAY_SIZE(w->chans); i++)
		b += mig_chan_bytes(w->chans[i]);
	return b;
}

static void *watchdog_thread(void *arg)
{
	struct mig_watchdog *w = arg;
	bool ctl_left = false; /* fired, the control channel left open */
	while (!atomic_load(&w->stop)) {
		struct timespec ts = { 0, 250 * 1000000 };
		nanosleep(&ts, NULL);
		if (w->tick)
			w->tick(w->tick_arg);
		pthread_mutex_lock(&w->arm_lock);
		int idle = atomic_load(&w->idle_ms);
		if (idle > 0) {
			uint64_t b = watched_bytes(w);
			if (b != w->idle_bytes) {
				w->idle_bytes = b;
				atomic_store(&w->deadline_ns, clock_ns() + (uint64_t)idle * 1000000);
			}
		}
		pthread_mutex_unlock(&w->arm_lock);
		uint64_t d = atomic_load(&w->deadline_ns);
		int cerr = w->check ? w->check(w->check_arg) : 0;
		if (cerr < 0)
			dm_errbox_put(&w->check_err, cerr);
		if (ctl_left && d && clock_ns() > d) {
			/* it was left for the peer's word: a deadline still ends it */
			net_chan_shutdown(w->chans[0]);
			ctl_left = false;
		}
		if ((d && clock_ns() > d) || cerr < 0) {
			if (!atomic_load(&w->fired)) {
				const char *what = w->what ? w->what : "the peer";
				if (cerr < 0)
					snprintf(w->fired_msg, sizeof(w->fired_msg), "a worker failed");
				else if (idle > 0)
					snprintf(w->fired_msg, sizeof(w->fired_msg),
						 "nothing came from the peer for %d s while waiting for %s "
						 "(is it stopped or wedged?)", idle / 1000, what);
				else
					snprintf(w->fired_msg, sizeof(w->fired_msg), "timed out waiting for %s", what);
				atomic_store(&w->fired, true);
				if (cerr >= 0)
					pr_warn("%s", w->fired_msg);
				/* a worker met the peer's close: the peer may have said
				 * why on the control channel first, and a shut channel
				 * reads nothing more (the other channels still stop the
				 * other workers) */
				ctl_left = cerr < 0 && mig_peer_closed(cerr) && w->chans[0];
				for (size_t i = ctl_left ? 1 : 0; i < ARRAY_SIZE(w->chans); i++)
					if (w->chans[i])
						net_chan_shutdown(w->chans[i]);
			}
		}
	}
	return NULL;
}

int mig_watchdog_start(struct mig_watchdog *w)
{
	dm_errbox_init(&w->check_err);
	int r = -pthread_create(&w->thread, NULL, watchdog_thread, w);
	if (r == 0)
		w->started = true;
	return r;
}

void mig_watchdog_arm(struct mig_watchdog *w, const char *what, int timeout_ms)
{
	pthread_mutex_lock(&w->arm_lock);
	w->what = what;
	atomic_store(&w->idle_ms, 0);
	atomic_store(&w->deadline_ns, timeout_ms > 0 ? clock_ns() + (uint64_t)timeout_ms * 1000000 : 0);
	pthread_mutex_unlock(&w->arm_lock);
}

void mig_watchdog_arm_silent(struct mig_watchdog *w, const char *what, int idle_ms)
{
	pthread_mutex_lock(&w->arm_lock);
	w->what = what;
	atomic_store(&w->deadline_ns, clock_ns() + (uint64_t)idle_ms * 1000000);
	atomic_store(&w->idle_ms, idle_ms);
	pthread_mutex_unlock(&w->arm_lock);
}

int mig_watchdog_error(struct mig_watchdog *w, int err)
{
	if (!atomic_load(&w->fired))
		return err;
	/* a worker failed: what the shutdown did to the phase (a channel
	 * shut, a wait in slices cut short) gives way to its error; anything
	 * else the phase met (the peer's own word) stays */
	if (dm_errbox_code(&w->check_err))
		return err == -ECANCELED || err == -ETIMEDOUT ? dm_errbox_take(&w->check_err) : err;
	return dm_fail(-ETIMEDOUT, "%s", w->fired_msg);
}

void mig_watchdog_stop(struct mig_watchdog *w)
{
	if (!w->started)
		return;
	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	w->started = false;
}

const char *mig_phase_name(enum mig_phase p)
{
	static const char *const names[_MIG_PH_MAX] = {
		[MIG_PH_PREPARE] = "prepare", [MIG_PH_FREEZE] = "freeze", [MIG_PH_STATE] = "state",
		[MIG_PH_RESUME] = "resume",   [MIG_PH_MEMORY] = "memory", [MIG_PH_ROOTFS] = "rootfs",
		[MIG_PH_COMMIT] = "commit",   [MIG_PH_RELEASE] = "release",
	};
	return (unsigned)p < _MIG_PH_MAX ? names[p] : "?";
}
