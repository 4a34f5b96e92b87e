/* SPDX-License-Identifier: MIT */
/*
 * The network lock: an nftables table that drops the packets of a frozen
 * tree's TCP connections while their state lives in an image.  Without it
 * the kernel would go on acknowledging what the peer sends (bytes that are
 * not in the image: lost), and a socket destroyed by the checkpoint's kill
 * or by a failed restore could reach the peer with a RST.
 *
 * The script runs through libnftables, in process: one buffer is one
 * transaction, so "add table; delete table; table { ... }" replaces a lock
 * of the same name atomically (the restore takes over the checkpoint's
 * without a moment unlocked).  Priority -400 puts the chains before
 * conntrack (-200) and the raw tables (-300): a dropped packet leaves no
 * trace anywhere.
 */
#define LOG_PREFIX "netlock: "
#include "net/inet.h"
#include "base/log.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <nftables/libnftables.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool v4_mapped(const uint8_t *a)
{
	static const uint8_t pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return !memcmp(a, pfx, sizeof(pfx));
}

/* "ip saddr A ip daddr B tcp sport P tcp dport Q" for packets from (a, pa) to (b, pb). */
static void match(FILE *f, int family, const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb,
		  const char *counter)
{
	char sa[INET6_ADDRSTRLEN], sb[INET6_ADDRSTRLEN];
	const char *kw = "ip6";

	if (family == AF_INET6 && v4_mapped(a) && v4_mapped(b)) {
		a += 12;
		b += 12;
		family = AF_INET;
	}
	if (family == AF_INET)
		kw = "ip";
	inet_ntop(family, a, sa, sizeof(sa));
	inet_ntop(family, b, sb, sizeof(sb));
	fprintf(f, "\t\t%s saddr %s %s daddr %s tcp sport %u tcp dport %u counter name \"%s\" drop\n", kw, sa,
		kw, sb, pa, pb, counter);
}

char *netlock_script(const char *name, const struct netlock_conn *c, size_t n, bool netns)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		abort();
	fprintf(f, "add table inet %s\ndelete table inet %s\ntable inet %s {\n", name, name, name);
	/* the TCP packets dropped each way (netlock_dropped()) */
	fprintf(f, "\tcounter " NETLOCK_TCP_IN " { }\n\tcounter " NETLOCK_TCP_OUT " { }\n");
	for (int dir = 0; dir < 2; dir++) {
		const char *cnt = dir ? NETLOCK_TCP_OUT : NETLOCK_TCP_IN;
		fprintf(f, "\tchain %s {\n\t\ttype filter hook %s priority -400; policy %s;\n",
			dir ? "out" : "in", dir ? "output" : "input", netns ? "drop" : "accept");
		if (netns)
			fprintf(f, "\t\tmeta l4proto tcp counter name \"%s\" drop\n", cnt);
		for (size_t i = 0; !netns && i < n; i++) {
			if (dir)	/* out: from the tree's end to the peer */
				match(f, c[i].family, c[i].src, c[i].sport, c[i].dst, c[i].dport, cnt);
			else		/* in: from the peer to the tree's end */
				match(f, c[i].family, c[i].dst, c[i].dport, c[i].src, c[i].sport, cnt);
		}
		fprintf(f, "\t}\n");
	}
	fprintf(f, "}\n");
	fclose(f);
	return s;
}

/*
 * A context made ahead (netlock_ctx_new()): libnftables' first command in a
 * process costs milliseconds of CPU (its parser, symbol tables and cache
 * set up), a warm context's a tenth of a millisecond.  Its netlink socket is
 * opened when it is made, in the namespace of the thread that makes it, and
 * stays there.
 */
struct netlock_ctx {
	struct nft_ctx *nft;
	/* netlock_netns()'s transaction, built ahead (netlock_ctx_prepare):
	 * one sendmsg at lock time, no parse, no allocation */
	struct mnl_socket *nl;
	char name[64];
	char *batch;
	size_t len;
	uint32_t seq0, nmsg;
};

/*
 * Run an nft script in process (libnftables): with c, in c's namespace;
 * without, in a context made for the call in the calling thread's network
 * namespace.  No fork and exec of nft(8): the lock sits inside the frozen
 * window, where nft's start-up cost ~40 ms a call here.  nft's complaint
 * (its first line) into err.
 */
static int run_nft_in(struct netlock_ctx *c, const char *script, char *err, size_t errlen, char **out)
{
	struct nft_ctx *ctx = c ? c->nft : nft_ctx_new(NFT_CTX_DEFAULT);
	int r;

	err[0] = 0;
	if (!ctx)
		return dm_fail(-ENOMEM, "cannot make an nftables context");
	/* a kept context's buffers are rewound: its last command's output goes */
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	r = nft_run_cmd_from_buffer(ctx, script) == 0 ? 0 : -EIO;
	const char *e = nft_ctx_get_error_buffer(ctx);
	if (r < 0 && e) {
		snprintf(err, errlen, "%s", e);
		err[strcspn(err, "\n")] = 0;
	}
	if (out) {
		const char *o = nft_ctx_get_output_buffer(ctx);
		*out = xstrdup(o ? o : "");
	}
	if (!c)
		nft_ctx_free(ctx);
	return r;
}

static int run_nft_out(const char *script, char *err, size_t errlen, char **out)
{
	return run_nft_in(NULL, script, err, errlen, out);
}

static int run_nft(const char *script, char *err, size_t errlen)
{
	return run_nft_out(script, err, errlen, NULL);
}

int netlock_ctx_new(struct netlock_ctx **ret)
{
	struct netlock_ctx *c = xcalloc(1, sizeof(*c));
	char err[512];

	c->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!c->nft) {
		free(c);
		return dm_fail(-ENOMEM, "cannot make an nftables context");
	}
	/* the first command pays libnftables' set-up: a harmless one now */
	int r = run_nft_in(c, "list tables", err, sizeof(err), NULL);
	if (r < 0) {
		netlock_ctx_free(c);
		return dm_fail(r, "nftables does not answer here: %s", err[0] ? err : "nft failed");
	}
	*ret = c;
	return 0;
}

void netlock_ctx_free(struct netlock_ctx *c)
{
	if (!c)
		return;
	nft_ctx_free(c->nft);
	if (c->nl)
		mnl_socket_close(c->nl);
	free(c->batch);
	free(c);
}

/* ---- netlock_netns()'s transaction as nf_tables messages (libmnl) ------- */

static struct nlmsghdr *nft_msg(struct mnl_nlmsg_batch *b, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(b));
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = NFPROTO_INET;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	return nlh;
}

static void batch_mark(struct mnl_nlmsg_batch *b, uint16_t type, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(b));
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = AF_UNSPEC;
	g->version = NFNETLINK_V0;
	g->res_id = htons(NFNL_SUBSYS_NFTABLES);
	mnl_nlmsg_batch_next(b);
}

/* one expression of a rule: {name, data} in the rule's list */
struct expr_nest {
	struct nlattr *elem, *data;
};

static struct expr_nest expr_begin(struct nlmsghdr *nlh, const char *name)
{
	struct expr_nest e;
	e.elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
	mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, name);
	e.data = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
	return e;
}

static void expr_end(struct nlmsghdr *nlh, struct expr_nest e)
{
	mnl_attr_nest_end(nlh, e.data);
	mnl_attr_nest_end(nlh, e.elem);
}

/*
 * The same transaction as netlock_script(name, NULL, 0, true) (the test
 * compares what each installs): add table; delete table; the table with its
 * two counters, the chains in and out (filter, priority -400, policy
 * drop), each with "meta l4proto tcp counter name C drop".
 */
static void build_netns_batch(struct netlock_ctx *c, const char *name)
{
	size_t cap = 8192;
	char *buf = xmalloc(cap);
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, cap);
	uint32_t seq = c->seq0 = (uint32_t)time(NULL) << 8;
	struct nlmsghdr *nlh;

	batch_mark(b, NFNL_MSG_BATCH_BEGIN, seq++);
	c->nmsg = 0;
	for (int k = 0; k < 3; k++) {	/* add, delete, add: replaces one there */
		nlh = nft_msg(b, k == 1 ? NFT_MSG_DELTABLE : NFT_MSG_NEWTABLE, k == 1 ? 0 : NLM_F_CREATE, seq++);
		mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, name);
		mnl_nlmsg_batch_next(b);
		c->nmsg++;
	}
	static const char *const cnt[2] = { NETLOCK_TCP_IN, NETLOCK_TCP_OUT };
	for (int k = 0; k < 2; k++) {
		nlh = nft_msg(b, NFT_MSG_NEWOBJ, NLM_F_CREATE, seq++);
		mnl_attr_put_strz(nlh, NFTA_OBJ_TABLE, name);
		mnl_attr_put_strz(nlh, NFTA_OBJ_NAME, cnt[k]);
		mnl_attr_put_u32(nlh, NFTA_OBJ_TYPE, htonl(NFT_OBJECT_COUNTER));
		struct nlattr *d = mnl_attr_nest_start(nlh, NFTA_OBJ_DATA);
		mnl_attr_put_u64(nlh, NFTA_COUNTER_BYTES, 0);
		mnl_attr_put_u64(nlh, NFTA_COUNTER_PACKETS, 0);
		mnl_attr_nest_end(nlh, d);
		mnl_nlmsg_batch_next(b);
		c->nmsg++;
	}
	for (int k = 0; k < 2; k++) {
		const char *chain = k ? "out" : "in";
		nlh = nft_msg(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, seq++);
		mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, name);
		mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, chain);
		struct nlattr *h = mnl_attr_nest_start(nlh, NFTA_CHAIN_HOOK);
		mnl_attr_put_u32(nlh, NFTA_HOOK_HOOKNUM, htonl(k ? NF_INET_LOCAL_OUT : NF_INET_LOCAL_IN));
		mnl_attr_put_u32(nlh, NFTA_HOOK_PRIORITY, htonl((uint32_t)-400));
		mnl_attr_nest_end(nlh, h);
		mnl_attr_put_u32(nlh, NFTA_CHAIN_POLICY, htonl(NF_DROP));
		mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, "filter");
		mnl_nlmsg_batch_next(b);
		c->nmsg++;

		nlh = nft_msg(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, seq++);
		mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, name);
		mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain);
		struct nlattr *list = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS), *n;
		struct expr_nest e;
		e = expr_begin(nlh, "meta");	/* meta l4proto -> reg 1 */
		mnl_attr_put_u32(nlh, NFTA_META_KEY, htonl(NFT_META_L4PROTO));
		mnl_attr_put_u32(nlh, NFTA_META_DREG, htonl(NFT_REG_1));
		expr_end(nlh, e);
		e = expr_begin(nlh, "cmp");	/* == tcp */
		mnl_attr_put_u32(nlh, NFTA_CMP_SREG, htonl(NFT_REG_1));
		mnl_attr_put_u32(nlh, NFTA_CMP_OP, htonl(NFT_CMP_EQ));
		n = mnl_attr_nest_start(nlh, NFTA_CMP_DATA);
		mnl_attr_put_u8(nlh, NFTA_DATA_VALUE, IPPROTO_TCP);
		mnl_attr_nest_end(nlh, n);
		expr_end(nlh, e);
		e = expr_begin(nlh, "objref");	/* counter name C */
		mnl_attr_put_u32(nlh, NFTA_OBJREF_IMM_TYPE, htonl(NFT_OBJECT_COUNTER));
		mnl_attr_put_strz(nlh, NFTA_OBJREF_IMM_NAME, cnt[k]);
		expr_end(nlh, e);
		e = expr_begin(nlh, "immediate");	/* drop */
		mnl_attr_put_u32(nlh, NFTA_IMMEDIATE_DREG, htonl(NFT_REG_VERDICT));
		n = mnl_attr_nest_start(nlh, NFTA_IMMEDIATE_DATA);
		struct nlattr *v = mnl_attr_nest_start(nlh, NFTA_DATA_VERDICT);
		mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl(NF_DROP));
		mnl_attr_nest_end(nlh, v);
		mnl_attr_nest_end(nlh, n);
		expr_end(nlh, e);
		mnl_attr_nest_end(nlh, list);
		mnl_nlmsg_batch_next(b);
		c->nmsg++;
	}
	batch_mark(b, NFNL_MSG_BATCH_END, seq++);
	c->len = mnl_nlmsg_batch_size(b);
	mnl_nlmsg_batch_stop(b);
	free(c->batch);
	c->batch = buf;
	snprintf(c->name, sizeof(c->name), "%s", name);
}

/* A netfilter netlink socket of the calling thread's network namespace
 * (it stays bound to it).  -errno, dm_fail'ed. */
static int nft_socket(struct mnl_socket **ret)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int r = dm_fail(neg_errno(), "cannot open a netfilter netlink socket: %m");
		if (nl)
			mnl_socket_close(nl);
		return r;
	}
	*ret = nl;
	return 0;
}

int netlock_ctx_prepare(struct netlock_ctx *c, const char *name)
{
	int r = c->nl ? 0 : nft_socket(&c->nl);
	if (r < 0)
		return r;
	build_netns_batch(c, name);
	return 0;
}

/* A prepared transaction (batch, len bytes, nmsg messages between its
 * marks) on nl: sent, then every message's answer (an ack, or the error
 * that aborted the whole transaction).  -errno (the kernel's), not logged. */
static int send_batch(struct mnl_socket *nl, const char *batch, size_t len, uint32_t nmsg)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t port = mnl_socket_get_portid(nl), acked = 0;
	int err = 0;

	if (mnl_socket_sendto(nl, batch, len) < 0)
		return neg_errno();
	while (acked < nmsg) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			return neg_errno();
		for (struct nlmsghdr *nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, (int)n);
		     nlh = mnl_nlmsg_next(nlh, (int *)&n)) {
			if (nlh->nlmsg_pid != port || nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			if (e->error && !err)
				err = e->error;
			acked++;
		}
		if (err)
			break;	/* the transaction is aborted: no more answers come */
	}
	return err;
}

/* netlock_netns_with()'s prepared lock.  -errno, dm_fail'ed. */
static int send_prepared(struct netlock_ctx *c)
{
	int r = send_batch(c->nl, c->batch, c->len, c->nmsg);
	return r < 0 ? dm_fail(r, "nf_tables refused the lock: %s", strerror(-r)) : 0;
}

/* ---- the lock's end, prepared (netlock_opener) -------------------------- */

struct netlock_opener {
	struct mnl_socket *nl;  /* bound to the namespace it was made in */
	char name[64];
	char *open, *unlock;    /* netlock_open()'s and netlock_unlock()'s transactions */
	size_t open_len, unlock_len;
	uint32_t open_nmsg, unlock_nmsg;
};

/* One transaction of n messages between the marks: types[k] on table name,
 * chains[k] the chain it names (NULL: the table itself). */
static char *build_batch(const char *name, const uint16_t *types, const uint16_t *flags, const char *const *chains,
			 uint32_t n, size_t *ret_len)
{
	size_t cap = 2048;
	char *buf = xmalloc(cap);
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, cap);
	uint32_t seq = (uint32_t)time(NULL) << 8;

	batch_mark(b, NFNL_MSG_BATCH_BEGIN, seq++);
	for (uint32_t k = 0; k < n; k++) {
		struct nlmsghdr *nlh = nft_msg(b, types[k], flags[k], seq++);
		if (chains[k]) {
			mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, name);
			mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, chains[k]);
		} else {
			mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, name);
		}
		mnl_nlmsg_batch_next(b);
	}
	batch_mark(b, NFNL_MSG_BATCH_END, seq++);
	*ret_len = mnl_nlmsg_batch_size(b);
	mnl_nlmsg_batch_stop(b);
	return buf;
}

/* "add table inet NAME; delete table inet NAME": no error if it is gone */
static char *build_unlock_batch(const char *name, size_t *ret_len)
{
	static const uint16_t t[2] = { NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE }, f[2] = { NLM_F_CREATE, 0 };
	static const char *const c[2] = { NULL, NULL };
	return build_batch(name, t, f, c, 2, ret_len);
}

int netlock_opener_new(const char *name, struct netlock_opener **ret)
{
	if (strlen(name) >= sizeof(((struct netlock_opener *)0)->name))
		return dm_fail(-ENAMETOOLONG, "network lock name %s: too long", name);
	struct mnl_socket *nl = NULL;
	int r = nft_socket(&nl);
	if (r < 0)
		return r;
	struct netlock_opener *o = xcalloc(1, sizeof(*o));
	o->nl = nl;
	snprintf(o->name, sizeof(o->name), "%s", name);
	/* "delete chain inet NAME in; delete chain inet NAME out": the base
	 * chains go with their hooks and rules, the table and its counters stay */
	static const uint16_t open_t[2] = { NFT_MSG_DELCHAIN, NFT_MSG_DELCHAIN }, open_f[2] = { 0, 0 };
	static const char *const open_c[2] = { "in", "out" };
	o->open = build_batch(name, open_t, open_f, open_c, 2, &o->open_len);
	o->open_nmsg = 2;
	o->unlock = build_unlock_batch(name, &o->unlock_len);
	o->unlock_nmsg = 2;
	*ret = o;
	return 0;
}

void netlock_opener_free(struct netlock_opener *o)
{
	if (!o)
		return;
	mnl_socket_close(o->nl);
	free(o->open);
	free(o->unlock);
	free(o);
}

int netlock_open_with(struct netlock_opener *o)
{
	int r = send_batch(o->nl, o->open, o->open_len, o->open_nmsg);
	return r < 0 ? dm_fail(r, "cannot unlock the network (nft table inet %s): %s", o->name, strerror(-r)) : 0;
}

int netlock_unlock_with(struct netlock_opener *o)
{
	int r = send_batch(o->nl, o->unlock, o->unlock_len, o->unlock_nmsg);
	return r < 0 ? dm_fail(r, "cannot remove the network lock (nft table inet %s): %s", o->name, strerror(-r))
		     : 0;
}

/* NFTA_COUNTER_PACKETS of a GETOBJ answer into *(uint64_t *)data */
static int counter_packets_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nlattr *a, *d;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_OBJ_DATA)
			continue;
		mnl_attr_for_each_nested(d, a) {
			if (mnl_attr_get_type(d) == NFTA_COUNTER_PACKETS &&
			    mnl_attr_get_payload_len(d) == sizeof(uint64_t)) {
				*(uint64_t *)data = be64toh(mnl_attr_get_u64(d));
				return MNL_CB_OK;
			}
		}
	}
	return MNL_CB_OK;
}

static int counter_get(struct netlock_opener *o, const char *cnt, uint64_t *ret)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = (uint32_t)time(NULL), port = mnl_socket_get_portid(o->nl);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = NFPROTO_INET;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	mnl_attr_put_strz(nlh, NFTA_OBJ_TABLE, o->name);
	mnl_attr_put_strz(nlh, NFTA_OBJ_NAME, cnt);
	mnl_attr_put_u32(nlh, NFTA_OBJ_TYPE, htonl(NFT_OBJECT_COUNTER));
	if (mnl_socket_sendto(o->nl, nlh, nlh->nlmsg_len) < 0)
		return neg_errno();
	uint64_t v = UINT64_MAX;
	int r;
	do {
		ssize_t n = mnl_socket_recvfrom(o->nl, buf, sizeof(buf));
		if (n < 0)
			return neg_errno();
		r = mnl_cb_run(buf, (size_t)n, seq, port, counter_packets_cb, &v);
	} while (r == MNL_CB_OK);	/* until the ack (MNL_CB_STOP) or an error */
	if (r < 0)
		return neg_errno();
	if (v == UINT64_MAX)
		return -ENOENT;
	*ret = v;
	return 0;
}

int netlock_dropped_with(struct netlock_opener *o, uint64_t *in, uint64_t *out)
{
	int r = counter_get(o, NETLOCK_TCP_IN, in);
	if (r >= 0)
		r = counter_get(o, NETLOCK_TCP_OUT, out);
	return r < 0 ? dm_fail(r, "cannot read the network lock's counters (nft table inet %s): %s", o->name,
			       strerror(-r))
		     : 0;
}

static int install(struct netlock_ctx *ctx, const char *name, const struct netlock_conn *c, size_t n,
		   bool netns)
{
	_cleanup_free_ char *s = netlock_script(name, c, n, netns);
	char err[512] = "";
	int r = run_nft_in(ctx, s, err, sizeof(err), NULL);

	if (r == -EIO)
		return dm_fail(r, "cannot lock the network (nft table inet %s): %s", name,
			       err[0] ? err : "nft failed");
	if (r >= 0)
		pr_debug("locked %s: %zu connections%s", name, n, netns ? " (whole namespace)" : "");
	return r;
}

int netlock_conns(const char *name, const struct netlock_conn *c, size_t n)
{
	return install(NULL, name, c, n, false);
}

int netlock_netns(const char *name)
{
	return install(NULL, name, NULL, 0, true);
}

int netlock_netns_with(struct netlock_ctx *ctx, const char *name)
{
	if (ctx && ctx->batch && !strcmp(ctx->name, name)) {
		int r = send_prepared(ctx);
		if (r >= 0) {
			pr_debug("locked %s (whole namespace, prepared)", name);
			return 1;
		}
		/* the script says why, or works */
		pr_warn("%s: the lock is made with nft's script", dm_last_error());
		dm_error_clear();
	}
	return install(ctx, name, NULL, 0, true);
}

bool netlock_exists(const char *name)
{
	_cleanup_free_ char *s = xasprintf("list table inet %s", name);
	char err[512];
	return run_nft(s, err, sizeof(err)) == 0;
}

int netlock_unlock_in(struct netlock_ctx *ctx, const char *name)
{
	if (ctx && ctx->nl) {
		size_t len;
		_cleanup_free_ char *b = build_unlock_batch(name, &len);
		int r = send_batch(ctx->nl, b, len, 2);
		if (r >= 0)
			return 1;
		pr_warn("cannot remove the network lock (nft table inet %s): %s: with nft's script", name,
			strerror(-r));
	}
	char err[512] = "";
	/* "add" first: deleting a table that is not there is an error */
	_cleanup_free_ char *s = xasprintf("add table inet %s\ndelete table inet %s\n", name, name);
	int r = run_nft_in(ctx, s, err, sizeof(err), NULL);
	if (r == -EIO)
		return dm_fail(r, "cannot unlock the network (nft table inet %s): %s", name,
			       err[0] ? err : "nft failed");
	return r;
}

int netlock_unlock(const char *name)
{
	return netlock_unlock_in(NULL, name);
}

int netlock_open(const char *name)
{
	char err[512] = "";
	/* a base chain deleted takes its hook and rules along; the counters stay */
	_cleanup_free_ char *s = xasprintf("delete chain inet %s in\ndelete chain inet %s out\n", name, name);
	int r = run_nft(s, err, sizeof(err));
	if (r == -EIO)
		return dm_fail(r, "cannot unlock the network (nft table inet %s): %s", name,
			       err[0] ? err : "nft failed");
	return r;
}

/* "packets N" of counter cnt in `list counters` output */
static int counter_of(const char *out, const char *cnt, uint64_t *ret)
{
	_cleanup_free_ char *key = xasprintf("counter %s {", cnt);
	const char *p = strstr(out, key);
	unsigned long long v;

	if (!p || !(p = strstr(p, "packets ")) || sscanf(p, "packets %llu", &v) != 1)
		return -ENOENT;
	*ret = v;
	return 0;
}

int netlock_dropped(const char *name, uint64_t *in, uint64_t *out)
{
	char err[512] = "";
	_cleanup_free_ char *s = xasprintf("list counters table inet %s\n", name), *o = NULL;
	int r = run_nft_out(s, err, sizeof(err), &o);

	if (r == -EIO)
		return dm_fail(r, "cannot read the network lock's counters (nft table inet %s): %s", name,
			       err[0] ? err : "nft failed");
	if (r >= 0 && (counter_of(o, NETLOCK_TCP_IN, in) < 0 || counter_of(o, NETLOCK_TCP_OUT, out) < 0))
		r = dm_fail(-ENOENT, "the network lock %s has no counters", name);
	return r;
}
