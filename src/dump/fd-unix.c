/* SPDX-License-Identifier: MIT */
/*
 * Unix sockets (FILE_UNIX_SK): stream, dgram and seqpacket.
 *
 * What a socket is comes from sock_diag (src/proc/unixdiag.c), read once for
 * the whole dump: type, state, bound name and socket file, peer inode, the
 * pending connections of a listener, shutdown state.  Its options and its
 * receive queue come from a copy of the fd (pidfd_getfd): the queue is read
 * with MSG_PEEK at an explicit SO_PEEK_OFF, message by message, so nothing
 * is consumed and the tree's own peek offset is put back.
 *
 * Each fd task records its sockets here; dump_unix_finish(), once every fd
 * of the tree is known, checks the links between them: a peer outside the
 * tree (refused unless --ext-unix), a listener whose pending connections
 * come from outside or hold data, a datagram queued by a named socket
 * outside the tree.  Refusals name the fd, the process and the peer.
 */
#define LOG_PREFIX "dump: "
#include "dump/fd.h"
#include "base/log.h"
#include "net/inet.h"
#include "proc/unixdiag.h"

#include <fcntl.h>
#include <linux/net.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <limits.h>
#include <unistd.h>

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

#define UNIX_QUEUE_MAX (64u << 20) /* bytes of one queue we agree to carry */

struct dunix {
	pid_t pid;
	int fd;
	Dm__UnixSk *m;
	/*
	 * Connected, but its peer has no inode: a connection not accepted yet
	 * (the peer is the listener's embryo, which sock_diag does not show).
	 * A listener of the tree lists it in its icons; else it is outside.
	 */
	bool unaccepted;
	uint32_t wqueue;        /* bytes it sent that nobody has read (an embryo holds them) */
	uint8_t peer_len;       /* getpeername(): the listener's name */
	char peer_name[PROC_UNIX_NAME_MAX];
};

struct dump_unix {
	struct proc_unix_table tab;
	int load_err;
	bool loaded;
	struct dunix *v;
	size_t n;
};

/* The sock_diag table, read on first use (the tree is frozen by then). */
static int unix_table(struct dump_ctx *d, const struct proc_unix_table **ret)
{
	int r;

	pthread_mutex_lock(&d->lock);
	if (!d->unix_sks)
		d->unix_sks = xcalloc(1, sizeof(*d->unix_sks));
	if (!d->unix_sks->loaded) {
		/* sock_diag lists the caller's network namespace: a container's is its own */
		int ns = -1, back = -1;
		r = netns_of_pid(d->procs[0]->pid, &ns);
		if (r >= 0)
			r = netns_enter(ns, &back);
		d->unix_sks->load_err = r < 0 ? r : proc_unix_read(&d->unix_sks->tab);
		netns_leave(back);
		if (ns >= 0)
			close(ns);
		d->unix_sks->loaded = true;
	}
	r = d->unix_sks->load_err;
	*ret = &d->unix_sks->tab;
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		return dm_fail(r, "cannot list the unix sockets (sock_diag): %s", strerror(-r));
	return 0;
}

/* "/run/x.sock", "@abstract" or "an unnamed socket", for messages. */
static void name_text(const char *name, size_t len, char *buf, size_t size)
{
	if (!len) {
		snprintf(buf, size, "an unnamed socket");
	} else if (!name[0]) {
		size_t k = 0;
		buf[k++] = '@';
		for (size_t i = 1; i < len && k + 1 < size; i++)
			buf[k++] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
		buf[k] = 0;
	} else {
		snprintf(buf, size, "%.*s", (int)strnlen(name, len), name);
	}
}

static const char *who(pid_t pid, char comm[PROC_COMM_MAX + 1])
{
	if (proc_read_comm(pid, pid, comm) < 0)
		snprintf(comm, PROC_COMM_MAX + 1, "?");
	return comm;
}

/*
 * A path name: does the socket file still exist (the same inode), and, for a
 * relative name, which directory it is in (the process's cwd, the only one
 * we can know).  The paths are the tree's: looked up through /proc/PID/root.
 */
static int unix_path(struct dproc *p, int fdnum, const struct proc_unix_sk *s, Dm__UnixSk *m)
{
	char path[PATH_MAX + 64], cwd[PATH_MAX], comm[PROC_COMM_MAX + 1];
	size_t len = strnlen(s->name, s->name_len);
	struct stat st;
	bool rel = s->name[0] != '/';

	if (rel) {
		snprintf(path, sizeof(path), "/proc/%d/cwd", p->pid);
		ssize_t n = readlink(path, cwd, sizeof(cwd) - 1);
		if (n < 0)
			return dm_fail(neg_errno(), "process %d: cwd: %m", p->pid);
		cwd[n] = 0;
		m->name_dir = xstrdup(cwd);
		snprintf(path, sizeof(path), "/proc/%d/cwd/%.*s", p->pid, (int)len, s->name);
	} else {
		snprintf(path, sizeof(path), "/proc/%d/root%.*s", p->pid, (int)len, s->name);
	}
	if (lstat(path, &st) < 0 || !s->has_vfs || st.st_ino != s->vfs_ino || st.st_dev != s->vfs_dev) {
		if (rel && lstat(path, &st) == 0)
			return dm_fail(-ENOTSUP, "unix socket fd %d of process %d (%s) is bound to the "
				       "relative name %.*s, which is not in its working directory %s",
				       fdnum, p->pid, who(p->pid, comm), (int)len, s->name, cwd);
		m->has_name_gone = m->name_gone = true;
		return 0;
	}
	m->has_file_mode = m->has_file_uid = m->has_file_gid = true;
	m->file_mode = st.st_mode;
	m->file_uid = st.st_uid;
	m->file_gid = st.st_gid;
	return 0;
}

static void sockopts(int sk, Dm__UnixSk *m)
{
	int v;
	socklen_t len = sizeof(v);
	struct timeval tv;

	if (getsockopt(sk, SOL_SOCKET, SO_PASSCRED, &v, &len) == 0 && v)
		m->has_passcred = m->passcred = true;
	len = sizeof(v);
	if (getsockopt(sk, SOL_SOCKET, SO_PASSSEC, &v, &len) == 0 && v)
		m->has_passsec = m->passsec = true;
	len = sizeof(v);
	if (getsockopt(sk, SOL_SOCKET, SO_SNDBUF, &v, &len) == 0) {
		m->has_sndbuf = true;
		m->sndbuf = (uint32_t)v;
	}
	len = sizeof(v);
	if (getsockopt(sk, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0) {
		m->has_rcvbuf = true;
		m->rcvbuf = (uint32_t)v;
	}
	len = sizeof(v);
	if (getsockopt(sk, SOL_SOCKET, SO_RCVLOWAT, &v, &len) == 0 && v != 1) {
		m->has_rcvlowat = true;
		m->rcvlowat = v;
	}
	len = sizeof(tv);
	if (getsockopt(sk, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 && (tv.tv_sec || tv.tv_usec)) {
		m->has_sndtimeo_us = true;
		m->sndtimeo_us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	}
	len = sizeof(tv);
	if (getsockopt(sk, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0 && (tv.tv_sec || tv.tv_usec)) {
		m->has_rcvtimeo_us = true;
		m->rcvtimeo_us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	}
}

/*
 * Close the fds a peek of SCM_RIGHTS put in our table; true if there were
 * any.  The sender's credentials, if the message has them, go to cred.
 */
static bool drop_rights(struct msghdr *mh, struct ucred *cred, bool *has_cred)
{
	bool any = false;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(*cred))) {
			memcpy(cred, CMSG_DATA(c), sizeof(*cred));
			*has_cred = true;
		}
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
		any = true;
	}
	return any || (mh->msg_flags & MSG_CTRUNC);
}

/*
 * The receive queue, without consuming it.  Each peek starts at an explicit
 * SO_PEEK_OFF (the bytes of the messages before it), so a datagram larger
 * than the buffer is peeked again whole with a larger one, and a stream is
 * read in order across its skbs.  The tree's own offset is put back.
 */
/*
 * A message's sender credentials, its pid as the tree sees it: a process of
 * the tree by its pid there; one outside is 0, which is what the tree reads
 * when it has its own pid namespace (else that pid could not be given back).
 */
static int add_cred(struct dump_ctx *d, struct dproc *p, int fdnum, const struct ucred *uc,
		    Dm__UnixSk *m)
{
	char comm[PROC_COMM_MAX + 1];
	Dm__UnixCred *c = PB_NEW(Dm__UnixCred, dm__unix_cred__init);

	m->msg_cred = xrealloc(m->msg_cred, (m->n_msg_cred + 1) * sizeof(*m->msg_cred));
	m->msg_cred[m->n_msg_cred++] = c;
	c->uid = uc->uid;
	c->gid = uc->gid;
	for (size_t i = 0; i < d->nprocs; i++)
		if (d->procs[i]->pid == uc->pid)
			c->pid = d->procs[i]->vpid;
	if (!c->pid && uc->pid && !d->own_pidns)
		return dm_fail(-ENOTSUP, "unix socket fd %d of process %d (%s) has a message queued by "
			       "process %d, outside the tree, with SO_PASSCRED on: its pid cannot be "
			       "given back", fdnum, p->pid, who(p->pid, comm), uc->pid);
	return 0;
}

static int peek_queue(struct dump_ctx *d, struct dproc *p, int fdnum, int sk, const struct proc_unix_sk *s,
		      Dm__UnixSk *m)
{
	char comm[PROC_COMM_MAX + 1];
	char cbuf[CMSG_SPACE(64 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred)) + 256];
	size_t cap = 1 << 16, used = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	int old = -1, r = 0;
	socklen_t olen = sizeof(old);
	bool stream = s->type == SOCK_STREAM;

	if (stream) {
		/* a byte sent with MSG_OOB waits apart from the stream, at its mark:
		 * peeked as data it would come back inline, at another place */
		char oob;
		if (recv(sk, &oob, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT) == 1)
			return dm_fail(-ENOTSUP, "unix socket fd %d of process %d (%s) has out-of-band data "
				       "(MSG_OOB) waiting in its receive queue, which cannot be restored",
				       fdnum, p->pid, who(p->pid, comm));
	}
	if (getsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &old, &olen) < 0)
		return dm_fail(neg_errno(), "process %d: unix socket fd %d: SO_PEEK_OFF: %m", p->pid, fdnum);
	for (unsigned guard = 0;; guard++) {
		int off = (int)used;
		struct sockaddr_un from;
		struct iovec iov;
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				     .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };

		if (used > UNIX_QUEUE_MAX || guard > (1u << 20)) {
			r = dm_fail(-EFBIG, "unix socket fd %d of process %d (%s): more than %u MiB queued",
				    fdnum, p->pid, who(p->pid, comm), UNIX_QUEUE_MAX >> 20);
			break;
		}
		if (cap - used < (1 << 16)) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) < 0) {
			r = dm_fail(neg_errno(), "process %d: unix socket fd %d: SO_PEEK_OFF: %m", p->pid, fdnum);
			break;
		}
		iov = (struct iovec){ buf + used, cap - used };
		ssize_t n = recvmsg(sk, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | (stream ? 0 : MSG_TRUNC));
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			r = dm_fail(neg_errno(), "process %d: unix socket fd %d: peeking its queue: %m", p->pid,
				    fdnum);
			break;
		}
		struct ucred uc = { 0 };
		bool has_cred = false;
		if (drop_rights(&mh, &uc, &has_cred)) {
			r = dm_fail(-ENOTSUP, "unix socket fd %d of process %d (%s) has file descriptors in "
				    "flight (SCM_RIGHTS) in its receive queue, which cannot be restored",
				    fdnum, p->pid, who(p->pid, comm));
			break;
		}
		if (stream) {
			if (n == 0)
				break; /* shut down for reading: no more */
			used += (size_t)n;
			/* with SO_PASSCRED a peek stops where the sender changes: one run each */
			if (m->passcred) {
				m->msg_len = xrealloc(m->msg_len, (m->n_msg_len + 1) * sizeof(*m->msg_len));
				m->msg_len[m->n_msg_len++] = (uint32_t)n;
				r = add_cred(d, p, fdnum, &uc, m);
				if (r < 0)
					break;
			}
			continue;
		}
		if (n == 0 && (s->shutdown & 1) && !(mh.msg_flags & MSG_TRUNC))
			break; /* EOF, or a zero-length datagram: taken as EOF when shut down */
		if ((size_t)n > cap - used) {
			/* truncated: peek it again, whole */
			while (cap - used < (size_t)n)
				cap *= 2;
			buf = xrealloc(buf, cap);
			continue;
		}
		used += (size_t)n;
		m->msg_len = xrealloc(m->msg_len, (m->n_msg_len + 1) * sizeof(*m->msg_len));
		m->msg_len[m->n_msg_len++] = (uint32_t)n;
		if (m->passcred) {
			r = add_cred(d, p, fdnum, &uc, m);
			if (r < 0)
				break;
		}
		if (s->type == SOCK_DGRAM) {
			size_t fl = mh.msg_namelen > offsetof(struct sockaddr_un, sun_path)
					    ? mh.msg_namelen - offsetof(struct sockaddr_un, sun_path) : 0;
			m->msg_from = xrealloc(m->msg_from, (m->n_msg_from + 1) * sizeof(*m->msg_from));
			ProtobufCBinaryData *b = &m->msg_from[m->n_msg_from++];
			b->len = fl;
			b->data = fl ? xmalloc(fl) : NULL;
			if (fl)
				memcpy(b->data, from.sun_path, fl);
		}
	}
	if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old)) < 0 && r >= 0)
		r = dm_fail(neg_errno(), "process %d: unix socket fd %d: SO_PEEK_OFF back: %m", p->pid, fdnum);
	if (r < 0)
		return r;
	if (old >= 0) {
		m->has_peek_off = true;
		m->peek_off = old;
	}
	if (used) {
		m->has_data = true;
		m->data.len = used;
		m->data.data = (uint8_t *)TAKE_PTR(buf);
	}
	return 0;
}

static bool unix_match(const struct dump_fd *x)
{
	_cleanup_close_ int fd = -1;
	int dom = -1;
	socklen_t len = sizeof(dom);

	if (x->pf->kind != PROC_FD_SOCKET)
		return false;
	fd = (int)syscall(SYS_pidfd_getfd, x->p->pidfd, x->pf->fd, 0);
	return fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == AF_UNIX;
}

static int unix_dump(struct dump_ctx *d, const struct dump_fd *x, Dm__File *f)
{
	const struct proc_unix_table *tab;
	const struct proc_unix_sk *s;
	char comm[PROC_COMM_MAX + 1];
	struct dproc *p = x->p;
	int fdnum = x->pf->fd;
	uint64_t ino = x->pf->ino;
	_cleanup_close_ int sk = -1;
	int r;

	r = dump_fd_dup(x, &sk);
	if (r < 0)
		return r;
	r = unix_table(d, &tab);
	if (r < 0)
		return r;
	s = proc_unix_find(tab, ino);
	if (!s)
		return dm_fail(-ENOENT, "unix socket fd %d of process %d (%s): inode %lu is not in the "
			       "sock_diag list (another network namespace?)", fdnum, p->pid,
			       who(p->pid, comm), (unsigned long)ino);
	if (s->type != SOCK_STREAM && s->type != SOCK_DGRAM && s->type != SOCK_SEQPACKET)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d (%s): unix socket of type %u",
			       fdnum, p->pid, who(p->pid, comm), s->type);
	if (s->state != PROC_UNIX_ESTABLISHED && s->state != PROC_UNIX_CLOSE && s->state != PROC_UNIX_LISTEN)
		return dm_fail(-ENOTSUP, "unsupported fd %d of process %d (%s): unix socket in state %u",
			       fdnum, p->pid, who(p->pid, comm), s->state);

	Dm__UnixSk *m = PB_NEW(Dm__UnixSk, dm__unix_sk__init);
	f->type = DM__FILE_TYPE__FILE_UNIX_SK;
	f->unix_sk = m;
	m->ino = ino;
	m->type = s->type;
	m->state = s->state;
	if (s->name_len) {
		m->has_name = true;
		m->name.len = s->name_len;
		m->name.data = xmalloc(s->name_len);
		memcpy(m->name.data, s->name, s->name_len);
		if (s->name[0]) {
			r = unix_path(p, fdnum, s, m);
			if (r < 0)
				return r;
		}
	}
	struct dunix rec = { .pid = p->pid, .fd = fdnum, .m = m, .wqueue = s->wqueue };
	if (s->peer_ino) {
		m->has_peer_ino = true;
		m->peer_ino = s->peer_ino;
	} else if (s->state == PROC_UNIX_ESTABLISHED && s->type != SOCK_DGRAM) {
		/* the peer's close shuts both directions of the survivor down */
		if (s->shutdown == 3) {
			m->has_peer_closed = m->peer_closed = true;
		} else {
			struct sockaddr_un sa;
			socklen_t sl = sizeof(sa);
			rec.unaccepted = true;
			if (getpeername(sk, (struct sockaddr *)&sa, &sl) == 0 &&
			    sl > offsetof(struct sockaddr_un, sun_path)) {
				rec.peer_len = (uint8_t)(sl - offsetof(struct sockaddr_un, sun_path));
				memcpy(rec.peer_name, sa.sun_path, rec.peer_len);
				/* a path comes back with its NUL: the name is the bytes before */
				if (rec.peer_name[0])
					rec.peer_len = (uint8_t)strnlen(rec.peer_name, rec.peer_len);
			}
		}
	}
	if (s->shutdown) {
		m->has_shutdown = true;
		m->shutdown = s->shutdown;
	}
	sockopts(sk, m);
	if (s->state == PROC_UNIX_LISTEN) {
		m->has_backlog = true;
		m->backlog = s->wqueue;
		if (s->n_icons) {
			m->icons = xcalloc(s->n_icons, sizeof(*m->icons));
			memcpy(m->icons, s->icons, s->n_icons * sizeof(*m->icons));
			m->n_icons = s->n_icons;
		}
	} else {
		r = peek_queue(d, p, fdnum, sk, s, m);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&d->lock);
	struct dump_unix *u = d->unix_sks;
	u->v = xrealloc(u->v, (u->n + 1) * sizeof(*u->v));
	u->v[u->n++] = rec;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

const struct dump_fd_type dump_fd_unix = { .name = "unix socket", .match = unix_match, .dump = unix_dump };

static const struct dunix *by_ino(const struct dump_unix *u, uint64_t ino)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->v[i].m->ino == ino)
			return &u->v[i];
	return NULL;
}

static bool same_name(const Dm__UnixSk *a, const void *name, size_t len)
{
	return a->has_name && a->name.len == len && !memcmp(a->name.data, name, len);
}

int dump_unix_finish(struct dump_ctx *d)
{
	struct dump_unix *u = d->unix_sks;
	char comm[PROC_COMM_MAX + 1], nm[PROC_UNIX_NAME_MAX + 2];

	if (!u)
		return 0;
	for (size_t i = 0; i < u->n; i++) {
		const struct dunix *x = &u->v[i];
		Dm__UnixSk *m = x->m;

		/* every pending connection of a listener (its icons are the clients' inodes):
		 * a client of the tree, that has sent nothing yet */
		for (size_t k = 0; k < m->n_icons; k++) {
			struct dunix *c = (struct dunix *)by_ino(u, m->icons[k]);
			if (!c || !c->unaccepted)
				return dm_fail(-ENOTSUP, "listening unix socket fd %d of process %d (%s) has a "
					       "pending connection from outside the tree", x->fd, x->pid,
					       who(x->pid, comm));
			if (c->wqueue)
				return dm_fail(-ENOTSUP, "listening unix socket fd %d of process %d (%s) has a "
					       "pending connection with data sent and not yet accepted, "
					       "which cannot be restored", x->fd, x->pid, who(x->pid, comm));
			c->unaccepted = false; /* in the tree */
		}
		/* datagrams from a named sender must come from a socket of the tree */
		for (size_t k = 0; k < m->n_msg_from; k++) {
			const ProtobufCBinaryData *b = &m->msg_from[k];
			bool found = !b->len;
			for (size_t j = 0; j < u->n && !found; j++)
				found = same_name(u->v[j].m, b->data, b->len);
			if (!found) {
				name_text((const char *)b->data, b->len, nm, sizeof(nm));
				return dm_fail(-ENOTSUP, "unix socket fd %d of process %d (%s) has a datagram "
					       "queued from %s, outside the tree", x->fd, x->pid,
					       who(x->pid, comm), nm);
			}
		}
	}
	for (size_t i = 0; i < u->n; i++) {
		const struct dunix *x = &u->v[i];
		Dm__UnixSk *m = x->m;
		const char *pname;
		size_t plen;

		if (x->unaccepted) {
			/* waiting in the backlog of a listener outside the tree */
			pname = x->peer_name;
			plen = x->peer_len;
		} else if (m->has_peer_ino && !by_ino(u, m->peer_ino)) {
			const struct proc_unix_sk *e = proc_unix_find(&u->tab, m->peer_ino);
			pname = e ? e->name : "";
			plen = e ? e->name_len : 0;
		} else {
			continue;
		}
		/* the peer is outside the tree */
		name_text(pname, plen, nm, sizeof(nm));
		if (!d->opts.ext_unix || !plen)
			return dm_fail(-ENOTSUP, "unix socket fd %d of process %d (%s) is connected to %s "
				       "outside the tree%s", x->fd, x->pid, who(x->pid, comm), nm,
				       !d->opts.ext_unix ? " (--ext-unix reconnects it at restore)"
							 : ", which has no name to reconnect to");
		if (m->has_data)
			return dm_fail(-ENOTSUP, "unix socket fd %d of process %d (%s) is connected to %s "
				       "outside the tree and has %zu bytes from it not yet read: they "
				       "cannot be sent again", x->fd, x->pid, who(x->pid, comm), nm,
				       m->data.len);
		m->has_peer_ino = false;
		m->has_ext_name = true;
		m->ext_name.len = plen;
		m->ext_name.data = xmalloc(plen);
		memcpy(m->ext_name.data, pname, plen);
	}
	return 0;
}

void dump_unix_free(struct dump_ctx *d)
{
	if (!d->unix_sks)
		return;
	proc_unix_table_done(&d->unix_sks->tab);
	free(d->unix_sks->v);
	free(d->unix_sks);
	d->unix_sks = NULL;
}
