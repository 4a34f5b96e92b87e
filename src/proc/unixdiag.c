/* SPDX-License-Identifier: MIT */
/*
 * unix_diag over NETLINK_SOCK_DIAG (libmnl): see unixdiag.h.
 */
#include "proc/unixdiag.h"
#include "base/util.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <time.h>

struct parse_ctx {
	struct proc_unix_sk *sk;
	int err;
};

static int on_attr(const struct nlattr *a, void *data)
{
	struct parse_ctx *c = data;
	struct proc_unix_sk *s = c->sk;
	size_t len = mnl_attr_get_payload_len(a);
	const void *p = mnl_attr_get_payload(a);

	switch (mnl_attr_get_type(a)) {
	case UNIX_DIAG_NAME:
		if (len > sizeof(s->name)) {
			c->err = -EBADMSG;
			return MNL_CB_ERROR;
		}
		memcpy(s->name, p, len);
		s->name_len = (uint8_t)len;
		break;
	case UNIX_DIAG_VFS: {
		struct unix_diag_vfs v;
		if (len < sizeof(v))
			break;
		memcpy(&v, p, sizeof(v));
		s->has_vfs = true;
		s->vfs_ino = v.udiag_vfs_ino;
		/* the kernel's dev_t: 12 bits of major above 20 of minor */
		s->vfs_dev = makedev(v.udiag_vfs_dev >> 20, v.udiag_vfs_dev & 0xfffff);
		break;
	}
	case UNIX_DIAG_PEER:
		if (len >= sizeof(uint32_t))
			s->peer_ino = mnl_attr_get_u32(a);
		break;
	case UNIX_DIAG_ICONS:
		s->n_icons = len / sizeof(uint32_t);
		s->icons = s->n_icons ? xcalloc(s->n_icons, sizeof(uint64_t)) : NULL;
		for (size_t i = 0; i < s->n_icons; i++) {
			uint32_t v;
			memcpy(&v, (const char *)p + i * sizeof(v), sizeof(v));
			s->icons[i] = v;
		}
		break;
	case UNIX_DIAG_RQLEN: {
		struct unix_diag_rqlen q;
		if (len < sizeof(q))
			break;
		memcpy(&q, p, sizeof(q));
		s->rqueue = q.udiag_rqueue;
		s->wqueue = q.udiag_wqueue;
		break;
	}
	case UNIX_DIAG_SHUTDOWN:
		if (len >= 1)
			s->shutdown = mnl_attr_get_u8(a);
		break;
	default:
		break;
	}
	return MNL_CB_OK;
}

int proc_unix_parse(const void *nlmsg, size_t len, struct proc_unix_sk *ret)
{
	const struct nlmsghdr *nlh = nlmsg;
	const struct unix_diag_msg *m;
	struct parse_ctx c = { .sk = ret };

	memset(ret, 0, sizeof(*ret));
	if (len < sizeof(*nlh) || nlh->nlmsg_len > len ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*m))
		return -EBADMSG;
	m = mnl_nlmsg_get_payload(nlh);
	if (m->udiag_family != AF_UNIX)
		return -EBADMSG;
	ret->ino = m->udiag_ino;
	ret->type = m->udiag_type;
	ret->state = m->udiag_state;
	if (mnl_attr_parse(nlh, sizeof(*m), on_attr, &c) < 0 || c.err) {
		free(ret->icons);
		ret->icons = NULL;
		ret->n_icons = 0;
		return c.err ? c.err : -EBADMSG;
	}
	return 0;
}

struct dump_ctx {
	struct proc_unix_table *t;
	size_t cap;
	int err;
};

static int on_msg(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *d = data;
	struct proc_unix_sk s;
	int r = proc_unix_parse(nlh, nlh->nlmsg_len, &s);

	if (r < 0) {
		d->err = r;
		return MNL_CB_ERROR;
	}
	if (d->t->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 64;
		d->t->v = xrealloc(d->t->v, d->cap * sizeof(*d->t->v));
	}
	d->t->v[d->t->n++] = s;
	return MNL_CB_OK;
}

static int cmp_ino(const void *a, const void *b)
{
	const struct proc_unix_sk *x = a, *y = b;
	return (x->ino > y->ino) - (x->ino < y->ino);
}

int proc_unix_read(struct proc_unix_table *ret)
{
	_cleanup_free_ char *buf = xmalloc(MNL_SOCKET_BUFFER_SIZE);
	struct proc_unix_table t = {};
	struct dump_ctx d = { .t = &t };
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	int r;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	uint32_t seq = (uint32_t)time(NULL);
	nlh->nlmsg_seq = seq;
	struct unix_diag_req *q = mnl_nlmsg_put_extra_header(nlh, sizeof(*q));
	q->sdiag_family = AF_UNIX;
	q->udiag_states = ~0u;
	q->udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS |
			UDIAG_SHOW_RQLEN;
	unsigned portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, MNL_SOCKET_BUFFER_SIZE);
		if (len < 0) {
			r = -errno;
			goto out;
		}
		r = mnl_cb_run(buf, (size_t)len, seq, portid, on_msg, &d);
		if (r <= MNL_CB_STOP) {
			r = d.err ? d.err : r < 0 ? -errno : 0;
			break;
		}
	}
out:
	mnl_socket_close(nl);
	if (r < 0) {
		proc_unix_table_done(&t);
		return r;
	}
	if (t.n)
		qsort(t.v, t.n, sizeof(*t.v), cmp_ino);
	*ret = t;
	return 0;
}

const struct proc_unix_sk *proc_unix_find(const struct proc_unix_table *t, uint64_t ino)
{
	struct proc_unix_sk key = { .ino = ino };
	return t->n ? bsearch(&key, t->v, t->n, sizeof(*t->v), cmp_ino) : NULL;
}

void proc_unix_table_done(struct proc_unix_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].icons);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}
