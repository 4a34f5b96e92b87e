/* SPDX-License-Identifier: MIT */
/*
 * Unix sockets (FILE_UNIX_SK).
 *
 * A socket only makes sense with its peer, so the first open() of any unix
 * socket makes all of them at once, here in the restorer, in this order:
 *
 *   1. listeners: socket, bind (its name), listen (its backlog);
 *   2. connected stream/seqpacket pairs: socketpair() when neither side has
 *      a name; otherwise the named side is accepted from a listener: the
 *      tree's listener of that name if there is one (the pair was accepted
 *      from it), else a short-lived one bound to that name.  An accepted
 *      socket carries its listener's name, which bind() could not give it;
 *   3. a stream whose peer was closed: a pair whose other end goes after its
 *      data is queued (the reader gets the data, then EOF);
 *   4. datagram sockets: mutual peers from socketpair(), names bound after,
 *      then one-way connect()s to the peer's name;
 *   5. the pending connections of each listener, in queue order: the client
 *      connects, nobody accepts;
 *   6. --ext-unix: a peer outside the tree is connected to again by name;
 *   7. buffer sizes, then each receive queue sent again by the socket's peer
 *      (datagrams by their sender, found by its name; an unnamed one from a
 *      throw-away socket), message by message;
 *   8. options, shutdown, and the names whose file was deleted: unlinked.
 *
 * Path names are the tree's: with a root (o->root_fd) or a relative name the
 * bind/connect/sendto runs in a child chrooted there (a socket address has
 * no dirfd).  A stale socket file at a name is removed first, but only when
 * nothing listens on it any more (a probe connect() is refused).
 *
 * Queued messages keep their sender's credentials (SCM_CREDENTIALS, for a
 * receiver with SO_PASSCRED): sent with the sender's new host pid.  What
 * does not come back the same: SO_PEERCRED of a connection (the restorer
 * made it).
 */
#define LOG_PREFIX "restore: "
#include "restore/files.h"
#include "base/child.h"
#include "base/log.h"
#include "proc/unixdiag.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

struct usk {
	const Dm__File *f;
	const Dm__UnixSk *m;
	int fd;                 /* ours until open() hands it over */
	int tmp;                /* peer_closed: the other end, closed after the data */
	bool done;
};

struct rst_unix {
	struct usk *v;
	size_t n;
	bool prepared;
	int err;                /* a failed preparation fails every later open */
};

/* ------------------------------------------------------------ names */

static bool is_path(const ProtobufCBinaryData *n)
{
	return n->len && n->data[0];
}

static socklen_t mkaddr(const ProtobufCBinaryData *n, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, n->data, MIN(n->len, sizeof(sa->sun_path)));
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + MIN(n->len, sizeof(sa->sun_path)));
}

static void name_text(const ProtobufCBinaryData *n, char *buf, size_t size)
{
	if (!n->len) {
		snprintf(buf, size, "(unnamed)");
		return;
	}
	if (n->data[0]) {
		snprintf(buf, size, "%.*s", (int)strnlen((const char *)n->data, n->len), n->data);
		return;
	}
	size_t k = 0;
	buf[k++] = '@';
	for (size_t i = 1; i < n->len && k + 1 < size; i++)
		buf[k++] = n->data[i] >= 0x20 && n->data[i] < 0x7f ? (char)n->data[i] : '?';
	buf[k] = 0;
}

enum name_op { OP_BIND, OP_CONNECT, OP_SENDTO, OP_UNLINK };

struct op_args {
	enum name_op op;
	int sk, type;
	const ProtobufCBinaryData *name;
	bool clear_stale;       /* OP_BIND: remove a dead socket file first */
	const Dm__UnixSk *mode; /* OP_BIND: file mode and owner to give back */
	const void *buf;        /* OP_SENDTO */
	size_t len;
	const struct ucred *cred; /* OP_SENDTO: SCM_CREDENTIALS, or NULL */
};

/* One sendmsg, with the sender's credentials if given; bytes sent or -errno. */
static ssize_t send_cred(int fd, const void *buf, size_t len, const struct sockaddr_un *to, socklen_t tolen,
			 const struct ucred *cred)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_name = (void *)to, .msg_namelen = to ? tolen : 0, .msg_iov = &iov,
			     .msg_iovlen = 1 };

	if (cred) {
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(*cred));
		memcpy(CMSG_DATA(c), cred, sizeof(*cred));
	}
	ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n < 0 ? neg_errno() : n;
}

/* -errno; runs in the restorer or in a child inside the tree's root. */
static int op_run(const struct op_args *a)
{
	struct sockaddr_un sa;
	socklen_t sl = mkaddr(a->name, &sa);
	char path[sizeof(sa.sun_path) + 1] = { 0 };
	struct stat st;

	if (is_path(a->name))
		memcpy(path, sa.sun_path, strnlen(sa.sun_path, sizeof(sa.sun_path)));
	switch (a->op) {
	case OP_UNLINK:
		return unlink(path) < 0 && errno != ENOENT ? neg_errno() : 0;
	case OP_CONNECT:
		return connect(a->sk, (struct sockaddr *)&sa, sl) < 0 ? neg_errno() : 0;
	case OP_SENDTO: {
		ssize_t n = send_cred(a->sk, a->buf, a->len, &sa, sl, a->cred);
		return n < 0 ? (int)n : (size_t)n == a->len ? 0 : -EIO;
	}
	case OP_BIND:
		break;
	}
	if (path[0] && a->clear_stale && lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		/* a socket file: stale unless something still accepts on it */
		int probe = socket(AF_UNIX, a->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (probe < 0)
			return neg_errno();
		int r = connect(probe, (struct sockaddr *)&sa, sl);
		int e = errno;
		close(probe);
		if (r == 0 || e == EAGAIN || e == EINPROGRESS)
			return -EADDRINUSE;
		if (e != ECONNREFUSED && e != ENOENT)
			return -e;
		if (unlink(path) < 0 && errno != ENOENT)
			return neg_errno();
	}
	if (bind(a->sk, (struct sockaddr *)&sa, sl) < 0)
		return neg_errno();
	if (path[0] && a->mode && a->mode->has_file_mode) {
		if (lchown(path, a->mode->file_uid, a->mode->file_gid) < 0)
			return neg_errno();
		if (chmod(path, a->mode->file_mode & 07777) < 0)
			return neg_errno();
	}
	return 0;
}

static const char *op_why(int r);

/*
 * Run a name operation as the tree sees paths: in a child that enters the
 * tree's root and the directory of a relative name; in the restorer itself
 * for abstract names and absolute paths without a root.  -errno with its
 * message (why the operation failed, or that its helper hung: a connect to
 * a listener whose backlog is full waits).
 */
static int name_op(struct rst_files *fs, const struct op_args *a, const char *dir)
{
	int root = fs->c->o->root_fd, st, r;

	if (!is_path(a->name) || (root < 0 && (a->name->data[0] == '/' || !dir))) {
		r = op_run(a);
		return r < 0 ? dm_fail(r, "%s", op_why(r)) : 0;
	}
	pid_t pid = fork();
	if (pid < 0)
		return dm_fail(neg_errno(), "fork: %m");
	if (pid == 0) {
		int e = 0;
		if (root >= 0 && (fchdir(root) < 0 || chroot(".") < 0))
			e = neg_errno();
		if (e == 0 && chdir(dir && a->name->data[0] != '/' ? dir : "/") < 0)
			e = neg_errno();
		if (e == 0)
			e = op_run(a);
		_exit(-e & 0xff);
	}
	r = child_wait_limit(pid, CHILD_WAIT_HELPER_MS, &st, "the helper in the tree's root");
	if (r < 0)
		return r;
	r = WIFEXITED(st) ? -WEXITSTATUS(st) : -EIO;
	return r < 0 ? dm_fail(r, "%s", op_why(r)) : 0;
}

static const char *op_why(int r)
{
	switch (r) {
	case -EADDRINUSE: return "the name is in use by a live socket";
	case -EEXIST: return "a file that is not a socket is in the way";
	default: return strerror(-r);
	}
}

/* ------------------------------------------------------------ making them */

static struct usk *by_ino(struct rst_unix *u, uint64_t ino)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->v[i].m->ino == ino)
			return &u->v[i];
	return NULL;
}

static bool same_name(const Dm__UnixSk *a, const Dm__UnixSk *b)
{
	if (!a->has_name || !b->has_name || a->name.len != b->name.len ||
	    memcmp(a->name.data, b->name.data, a->name.len) != 0)
		return false;
	/* relative path names are equal only in the same directory */
	return !a->name_dir == !b->name_dir && (!a->name_dir || !strcmp(a->name_dir, b->name_dir));
}

/* The tree's listener bound to the name of m, or NULL. */
static struct usk *listener_of(struct rst_unix *u, const Dm__UnixSk *m)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->v[i].m->state == PROC_UNIX_LISTEN && u->v[i].m != m && same_name(u->v[i].m, m))
			return &u->v[i];
	return NULL;
}

static int new_sock(int type, int *ret)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dm_fail(neg_errno(), "unix socket: %m");
	*ret = fd;
	return 0;
}

static int do_bind(struct rst_files *fs, int sk, const Dm__UnixSk *m, const Dm__UnixSk *as)
{
	char nm[PROC_UNIX_NAME_MAX + 2];
	struct op_args a = { .op = OP_BIND, .sk = sk, .type = (int)as->type, .name = &m->name,
			     .clear_stale = !m->name_gone, .mode = m->name_gone ? NULL : m };
	int r = name_op(fs, &a, m->name_dir);

	if (r < 0) {
		name_text(&m->name, nm, sizeof(nm));
		return dm_wrap(r, "unix socket (inode %lu at dump): cannot bind %s", (unsigned long)as->ino, nm);
	}
	return 0;
}

static int do_connect(struct rst_files *fs, int sk, const ProtobufCBinaryData *name, const char *dir,
		      const Dm__UnixSk *who)
{
	char nm[PROC_UNIX_NAME_MAX + 2];
	struct op_args a = { .op = OP_CONNECT, .sk = sk, .name = name };
	int r = name_op(fs, &a, dir);

	if (r < 0) {
		name_text(name, nm, sizeof(nm));
		return dm_wrap(r, "unix socket (inode %lu at dump): cannot connect to %s", (unsigned long)who->ino, nm);
	}
	return 0;
}

/* A socket of its own: bound to its name if it had one. */
static int make_single(struct rst_files *fs, struct usk *s)
{
	int r = new_sock((int)s->m->type, &s->fd);
	if (r >= 0 && s->m->has_name)
		r = do_bind(fs, s->fd, s->m, s->m);
	s->done = true;
	return r;
}

/*
 * A connected stream/seqpacket pair a-b.  The side with a name (accepted
 * from a listener of that name) comes from accept(); the other connects.
 */
static int make_pair(struct rst_files *fs, struct rst_unix *u, struct usk *a, struct usk *b)
{
	int sv[2], r;

	a->done = b->done = true;
	if (!a->m->has_name && !b->m->has_name) {
		if (socketpair(AF_UNIX, (int)a->m->type | SOCK_CLOEXEC, 0, sv) < 0)
			return dm_fail(neg_errno(), "unix socketpair: %m");
		a->fd = sv[0];
		b->fd = sv[1];
		return 0;
	}
	struct usk *la = listener_of(u, a->m), *lb = listener_of(u, b->m), *s, *c, *l;
	if (la) {
		s = a, c = b, l = la;
	} else if (lb) {
		s = b, c = a, l = lb;
	} else {
		s = b->m->has_name ? b : a;
		c = s == b ? a : b;
		l = NULL;
	}
	_cleanup_close_ int tmp = -1;
	int lfd;
	if (l) {
		if (l->fd < 0)
			return dm_fail(-EBADMSG, "unix listener (inode %lu) was not made first",
				       (unsigned long)l->m->ino);
		lfd = l->fd;
	} else {
		/* the listener it was accepted from is gone: one just for this */
		r = new_sock((int)s->m->type, &tmp);
		if (r >= 0)
			r = do_bind(fs, tmp, s->m, s->m);
		if (r >= 0 && listen(tmp, 1) < 0)
			r = dm_fail(neg_errno(), "listen: %m");
		if (r < 0)
			return r;
		lfd = tmp;
	}
	r = new_sock((int)c->m->type, &c->fd);
	if (r >= 0 && c->m->has_name)
		r = do_bind(fs, c->fd, c->m, c->m);
	if (r >= 0)
		r = do_connect(fs, c->fd, &s->m->name, s->m->name_dir, c->m);
	if (r < 0)
		return r;
	s->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (s->fd < 0)
		return dm_fail(neg_errno(), "unix socket (inode %lu at dump): accept: %m",
			       (unsigned long)s->m->ino);
	return 0;
}

/* Stream/seqpacket whose peer was closed: a pair, the other end kept in tmp. */
static int make_orphan(struct rst_files *fs, struct usk *s)
{
	int sv[2], r;

	s->done = true;
	if (!s->m->has_name) {
		if (socketpair(AF_UNIX, (int)s->m->type | SOCK_CLOEXEC, 0, sv) < 0)
			return dm_fail(neg_errno(), "unix socketpair: %m");
		s->fd = sv[0];
		s->tmp = sv[1];
		return 0;
	}
	_cleanup_close_ int l = -1;
	r = new_sock((int)s->m->type, &l);
	if (r >= 0)
		r = do_bind(fs, l, s->m, s->m);
	if (r >= 0 && listen(l, 1) < 0)
		r = dm_fail(neg_errno(), "listen: %m");
	if (r >= 0)
		r = new_sock((int)s->m->type, &s->tmp);
	if (r >= 0)
		r = do_connect(fs, s->tmp, &s->m->name, s->m->name_dir, s->m);
	if (r < 0)
		return r;
	s->fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s->fd < 0)
		return dm_fail(neg_errno(), "unix socket (inode %lu at dump): accept: %m",
			       (unsigned long)s->m->ino);
	return 0;
}

static int set_int(int fd, int opt, int v, const Dm__UnixSk *m, const char *what)
{
	if (setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)) < 0)
		return dm_fail(neg_errno(), "unix socket (inode %lu at dump): %s: %m",
			       (unsigned long)m->ino, what);
	return 0;
}

static int set_bufs(struct usk *s)
{
	int cur, r;
	socklen_t len = sizeof(cur);

	/* getsockopt shows twice what setsockopt is given */
	if (s->m->has_sndbuf && getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) == 0 &&
	    (uint32_t)cur != s->m->sndbuf) {
		r = set_int(s->fd, SO_SNDBUFFORCE, (int)(s->m->sndbuf / 2), s->m, "SO_SNDBUFFORCE");
		if (r < 0)
			return r;
	}
	len = sizeof(cur);
	if (s->m->has_rcvbuf && getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &cur, &len) == 0 &&
	    (uint32_t)cur != s->m->rcvbuf) {
		r = set_int(s->fd, SO_RCVBUFFORCE, (int)(s->m->rcvbuf / 2), s->m, "SO_RCVBUFFORCE");
		if (r < 0)
			return r;
	}
	return 0;
}

static int set_opts(struct usk *s)
{
	const Dm__UnixSk *m = s->m;
	int r = 0;

	if (m->passcred)
		r = set_int(s->fd, SO_PASSCRED, 1, m, "SO_PASSCRED");
	if (r >= 0 && m->passsec)
		r = set_int(s->fd, SO_PASSSEC, 1, m, "SO_PASSSEC");
	if (r >= 0 && m->has_peek_off)
		r = set_int(s->fd, SO_PEEK_OFF, m->peek_off, m, "SO_PEEK_OFF");
	if (r >= 0 && m->has_rcvlowat)
		r = set_int(s->fd, SO_RCVLOWAT, m->rcvlowat, m, "SO_RCVLOWAT");
	for (int k = 0; k < 2 && r >= 0; k++) {
		bool has = k ? m->has_rcvtimeo_us : m->has_sndtimeo_us;
		uint64_t us = k ? m->rcvtimeo_us : m->sndtimeo_us;
		struct timeval tv = { .tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000) };
		if (has && setsockopt(s->fd, SOL_SOCKET, k ? SO_RCVTIMEO : SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
			r = dm_fail(neg_errno(), "unix socket (inode %lu at dump): SO_%sTIMEO: %m",
				    (unsigned long)m->ino, k ? "RCV" : "SND");
	}
	return r;
}

/* Send one message (or a stream's bytes) from fd, connected to the receiver. */
static int send_all(int fd, const uint8_t *p, size_t len, bool stream, const Dm__UnixSk *to,
		    const struct ucred *cred)
{
	do {
		ssize_t n = send_cred(fd, p, len, NULL, 0, cred);
		if (n < 0)
			return dm_fail((int)n, "unix socket (inode %lu at dump): queueing its %zu bytes "
				       "again: %s", (unsigned long)to->ino, len, strerror((int)-n));
		p += n;
		len -= (size_t)n;
	} while (stream && len);
	return 0;
}

/* The credentials message k was sent with: its sender's new host pid. */
static const struct ucred *msg_cred(struct rst_files *fs, const Dm__UnixSk *m, size_t k, struct ucred *uc)
{
	if (k >= m->n_msg_cred)
		return NULL;
	const Dm__UnixCred *c = m->msg_cred[k];
	struct rst_proc *p = c->pid ? rst_find(fs->c, c->pid) : NULL;
	/* a sender outside the tree: read as 0 in the tree's pid namespace, as ours is */
	*uc = (struct ucred){ .pid = p ? p->host_pid : getpid(), .uid = c->uid, .gid = c->gid };
	return uc;
}

/* The receive queue of s, sent again by its peer (a datagram: by its sender). */
static int refill(struct rst_files *fs, struct rst_unix *u, struct usk *s)
{
	const Dm__UnixSk *m = s->m;
	const uint8_t *p = m->data.data;
	struct usk *peer = m->has_peer_ino ? by_ino(u, m->peer_ino) : NULL;
	int r;

	if (!m->has_data || !m->data.len)
		return 0;
	if (m->type == SOCK_STREAM && !m->n_msg_len) {
		int from = s->tmp >= 0 ? s->tmp : peer ? peer->fd : -1;
		if (from < 0)
			return dm_fail(-EBADMSG, "unix socket (inode %lu at dump): queued data but no peer",
				       (unsigned long)m->ino);
		return send_all(from, p, m->data.len, true, m, NULL);
	}
	size_t off = 0;
	for (size_t k = 0; k < m->n_msg_len; k++) {
		size_t len = m->msg_len[k];
		struct ucred ucb;
		const struct ucred *uc = msg_cred(fs, m, k, &ucb);
		if (off + len > m->data.len)
			return dm_fail(-EBADMSG, "unix socket (inode %lu at dump): message lengths beyond "
				       "its data", (unsigned long)m->ino);
		if (m->type != SOCK_DGRAM) {
			int from = s->tmp >= 0 ? s->tmp : peer ? peer->fd : -1;
			if (from < 0)
				return dm_fail(-EBADMSG, "unix socket (inode %lu at dump): queued messages "
					       "but no peer", (unsigned long)m->ino);
			r = send_all(from, p + off, len, m->type == SOCK_STREAM, m, uc);
		} else {
			const ProtobufCBinaryData *fr = k < m->n_msg_from ? &m->msg_from[k] : NULL;
			struct usk *snd = NULL;
			for (size_t i = 0; i < u->n && fr && fr->len && !snd; i++)
				if (u->v[i].m->has_name && u->v[i].m->name.len == fr->len &&
				    !memcmp(u->v[i].m->name.data, fr->data, fr->len))
					snd = &u->v[i];
			if (!snd && (!fr || !fr->len) && peer && !peer->m->has_name)
				snd = peer;
			_cleanup_close_ int anon = -1;
			int from;
			if (snd) {
				from = snd->fd;
			} else {
				/* an unnamed sender that is gone: room for a datagram as large as its */
				r = new_sock(SOCK_DGRAM, &anon);
				if (r >= 0 && len > (1u << 16))
					r = set_int(anon, SO_SNDBUFFORCE, (int)MIN(len + (1u << 16), (size_t)INT_MAX / 2), m,
						    "SO_SNDBUFFORCE");
				if (r < 0)
					return r;
				from = anon;
			}
			if (snd && snd->m->has_peer_ino && snd->m->peer_ino == m->ino) {
				r = send_all(from, p + off, len, false, m, uc);
			} else if (m->has_name) {
				struct op_args a = { .op = OP_SENDTO, .sk = from, .name = &m->name,
						     .buf = p + off, .len = len, .cred = uc };
				r = name_op(fs, &a, m->name_dir);
				if (r < 0)
					r = dm_wrap(r, "unix socket (inode %lu at dump): queueing a datagram "
						    "again", (unsigned long)m->ino);
			} else {
				r = dm_fail(-ENOTSUP, "unix socket (inode %lu at dump): an unnamed datagram "
					    "socket with data from a socket not connected to it",
					    (unsigned long)m->ino);
			}
		}
		if (r < 0)
			return r;
		off += len;
	}
	return 0;
}

static int prepare(struct rst_files *fs, struct rst_unix *u)
{
	const Dm__FileTable *ft = fs->c->ck->files;
	int r = 0;

	for (size_t i = 0; i < ft->n_files; i++) {
		const Dm__File *f = ft->files[i];
		if (f->type != DM__FILE_TYPE__FILE_UNIX_SK)
			continue;
		if (!f->unix_sk)
			return dm_fail(-EBADMSG, "file %u: unix socket without its state", f->id);
		u->v = xrealloc(u->v, (u->n + 1) * sizeof(*u->v));
		u->v[u->n++] = (struct usk){ .f = f, .m = f->unix_sk, .fd = -1, .tmp = -1 };
	}
	/* 1. listeners */
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i];
		if (s->m->state != PROC_UNIX_LISTEN)
			continue;
		r = make_single(fs, s);
		if (r >= 0 && listen(s->fd, (int)s->m->backlog) < 0)
			r = dm_fail(neg_errno(), "unix socket (inode %lu at dump): listen: %m",
				    (unsigned long)s->m->ino);
	}
	/* 2, 3. connected stream/seqpacket */
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i], *p;
		if (s->done || s->m->type == SOCK_DGRAM)
			continue;
		if (s->m->peer_closed)
			r = make_orphan(fs, s);
		else if (s->m->has_peer_ino && (p = by_ino(u, s->m->peer_ino)) && p->m->has_peer_ino &&
			 p->m->peer_ino == s->m->ino && !p->done)
			r = make_pair(fs, u, s, p);
	}
	/* 4. datagram sockets: mutual peers, then the rest, then one-way connects */
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i], *p;
		int sv[2];
		if (s->done || s->m->type != SOCK_DGRAM || !s->m->has_peer_ino ||
		    !(p = by_ino(u, s->m->peer_ino)) || p == s || !p->m->has_peer_ino ||
		    p->m->peer_ino != s->m->ino)
			continue;
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) {
			r = dm_fail(neg_errno(), "unix socketpair: %m");
			break;
		}
		s->fd = sv[0];
		p->fd = sv[1];
		s->done = p->done = true;
		if (s->m->has_name)
			r = do_bind(fs, s->fd, s->m, s->m);
		if (r >= 0 && p->m->has_name)
			r = do_bind(fs, p->fd, p->m, p->m);
	}
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i];
		if (!s->done && s->m->type == SOCK_DGRAM)
			r = make_single(fs, s);
	}
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i], *p;
		/* mutual peers are pairs already; one connected to itself connects here */
		if (s->m->type != SOCK_DGRAM || !s->m->has_peer_ino || !(p = by_ino(u, s->m->peer_ino)) ||
		    (p != s && p->m->has_peer_ino && p->m->peer_ino == s->m->ino))
			continue;
		if (!p->m->has_name)
			r = dm_fail(-EBADMSG, "unix datagram socket (inode %lu at dump) is connected to an "
				    "unnamed one", (unsigned long)s->m->ino);
		else
			r = do_connect(fs, s->fd, &p->m->name, p->m->name_dir, s->m);
	}
	/* 5. pending connections, in each listener's queue order */
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *l = &u->v[i];
		for (size_t k = 0; k < l->m->n_icons && r >= 0; k++) {
			struct usk *c = by_ino(u, l->m->icons[k]);
			if (!c)
				continue; /* refused at the dump; an old image */
			if (c->done)
				continue;
			r = make_single(fs, c);
			if (r >= 0)
				r = do_connect(fs, c->fd, &l->m->name, l->m->name_dir, c->m);
		}
	}
	/* 6. --ext-unix, and every socket not made yet (unconnected) */
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i];
		if (s->done && !s->m->has_ext_name)
			continue;
		if (!s->done)
			r = make_single(fs, s);
		if (r >= 0 && s->m->has_ext_name)
			r = do_connect(fs, s->fd, &s->m->ext_name, NULL, s->m);
		else if (r >= 0 && s->m->has_peer_ino)
			r = dm_fail(-EBADMSG, "unix socket (inode %lu at dump): its peer %lu is not in the "
				    "image", (unsigned long)s->m->ino, (unsigned long)s->m->peer_ino);
	}
	/* 7. buffers, then the queues */
	for (size_t i = 0; i < u->n && r >= 0; i++)
		r = set_bufs(&u->v[i]);
	for (size_t i = 0; i < u->n && r >= 0; i++)
		r = refill(fs, u, &u->v[i]);
	/* 8. options, shutdown, gone names */
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i];
		r = set_opts(s);
		if (r >= 0 && s->tmp >= 0) {
			close(s->tmp);
			s->tmp = -1;
		} else if (r >= 0 && s->m->shutdown & 3) {
			int how = (s->m->shutdown & 3) == 3 ? SHUT_RDWR : (s->m->shutdown & 1) ? SHUT_RD : SHUT_WR;
			if (shutdown(s->fd, how) < 0 && errno != ENOTCONN)
				r = dm_fail(neg_errno(), "unix socket (inode %lu at dump): shutdown: %m",
					    (unsigned long)s->m->ino);
		}
	}
	for (size_t i = 0; i < u->n && r >= 0; i++) {
		struct usk *s = &u->v[i];
		if (!s->m->name_gone)
			continue;
		struct op_args a = { .op = OP_UNLINK, .name = &s->m->name };
		r = name_op(fs, &a, s->m->name_dir);
		if (r < 0)
			r = dm_wrap(r, "unix socket (inode %lu at dump): unlinking its deleted name",
				    (unsigned long)s->m->ino);
	}
	return r;
}

static int unix_open(struct rst_files *fs, const Dm__File *f, int *ret_fd)
{
	struct rst_unix *u = fs->unix_sks;
	int r;

	if (!u)
		u = fs->unix_sks = xcalloc(1, sizeof(*u));
	if (!u->prepared) {
		u->prepared = true;
		u->err = prepare(fs, u);
	}
	if (u->err < 0)
		return u->err;
	for (size_t i = 0; i < u->n; i++) {
		struct usk *s = &u->v[i];
		if (s->f != f)
			continue;
		if (s->fd < 0)
			return dm_fail(-EBADMSG, "unix socket file %u: not made", f->id);
		r = rst_set_status_flags(f, s->fd);
		if (r < 0)
			return dm_fail(r, "unix socket file %u: F_SETFL: %s", f->id, strerror(-r));
		*ret_fd = s->fd;
		s->fd = -1; /* the engine's now (files.c desc[]) */
		return 0;
	}
	return dm_fail(-EBADMSG, "unix socket file %u is not in files.img", f->id);
}

void rst_unix_fini(struct rst_files *fs)
{
	struct rst_unix *u = fs->unix_sks;

	if (!u)
		return;
	for (size_t i = 0; i < u->n; i++) {
		if (u->v[i].fd >= 0)
			close(u->v[i].fd);
		if (u->v[i].tmp >= 0)
			close(u->v[i].tmp);
	}
	free(u->v);
	free(u);
	fs->unix_sks = NULL;
}

const struct rst_file_type rst_file_unix = {
	.name = "unix socket",
	.open = unix_open,
};
