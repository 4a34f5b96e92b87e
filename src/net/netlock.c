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
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
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
	free(c);
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
	return install(ctx, name, NULL, 0, true);
}

bool netlock_exists(const char *name)
{
	_cleanup_free_ char *s = xasprintf("list table inet %s", name);
	char err[512];
	return run_nft(s, err, sizeof(err)) == 0;
}

int netlock_unlock(const char *name)
{
	char err[512] = "";
	/* "add" first: deleting a table that is not there is an error */
	_cleanup_free_ char *s = xasprintf("add table inet %s\ndelete table inet %s\n", name, name);
	int r = run_nft(s, err, sizeof(err));
	if (r == -EIO)
		return dm_fail(r, "cannot unlock the network (nft table inet %s): %s", name,
			       err[0] ? err : "nft failed");
	return r;
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
