/* SPDX-License-Identifier: MIT */
/*
 * The network lock: an nftables table that drops the packets of a frozen
 * tree's TCP connections while their state lives in an image.  Without it
 * the kernel would go on acknowledging what the peer sends (bytes that are
 * not in the image: lost), and a socket destroyed by the checkpoint's kill
 * or by a failed restore could reach the peer with a RST.
 *
 * nft(8) is run with the script on its standard input: one file is one
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
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static bool v4_mapped(const uint8_t *a)
{
	static const uint8_t pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return !memcmp(a, pfx, sizeof(pfx));
}

/* "ip saddr A ip daddr B tcp sport P tcp dport Q" for packets from (a, pa) to (b, pb). */
static void match(FILE *f, int family, const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb)
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
	fprintf(f, "\t\t%s saddr %s %s daddr %s tcp sport %u tcp dport %u drop\n", kw, sa, kw, sb, pa, pb);
}

char *netlock_script(const char *name, const struct netlock_conn *c, size_t n, bool netns)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		abort();
	fprintf(f, "add table inet %s\ndelete table inet %s\ntable inet %s {\n", name, name, name);
	for (int dir = 0; dir < 2; dir++) {
		fprintf(f, "\tchain %s {\n\t\ttype filter hook %s priority -400; policy %s;\n",
			dir ? "out" : "in", dir ? "output" : "input", netns ? "drop" : "accept");
		for (size_t i = 0; !netns && i < n; i++) {
			if (dir)	/* out: from the tree's end to the peer */
				match(f, c[i].family, c[i].src, c[i].sport, c[i].dst, c[i].dport);
			else		/* in: from the peer to the tree's end */
				match(f, c[i].family, c[i].dst, c[i].dport, c[i].src, c[i].sport);
		}
		fprintf(f, "\t}\n");
	}
	fprintf(f, "}\n");
	fclose(f);
	return s;
}

/* Run nft with script on stdin (NULL: none) and args; its stderr into err. */
static int run_nft(const char *script, const char *const *args, char *err, size_t errlen)
{
	static const char *const paths[] = { "/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft" };
	const char *nft = NULL;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0, r = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	size_t got = 0;

	for (size_t i = 0; i < ARRAY_SIZE(paths) && !nft; i++)
		if (access(paths[i], X_OK) == 0)
			nft = paths[i];
	if (!nft)
		return dm_fail(-ENOENT, "the network lock needs nft (Debian package nftables), which is "
			       "not installed");
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		r = neg_errno();
		goto out;
	}
	const char *argv[8] = { nft };
	size_t k = 1;
	for (; args[k - 1] && k < ARRAY_SIZE(argv) - 1; k++)
		argv[k] = args[k - 1];
	argv[k] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	r = -posix_spawn(&pid, nft, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	if (r < 0) {
		r = dm_fail(r, "cannot run %s: %s", nft, strerror(-r));
		goto out;
	}
	if (script) {
		/* nft reads all of it before it answers: no deadlock with its output */
		sigset_t m, old;
		sigemptyset(&m);
		sigaddset(&m, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &m, &old);
		(void)!write_all(in[1], script, strlen(script));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	close(in[1]);
	in[1] = -1;
	for (;;) {
		char tmp[512];
		ssize_t n = read(out[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t c = MIN((size_t)n, errlen - 1 - got);
		memcpy(err + got, tmp, c);
		got += c;
	}
	err[got] = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* the first line of nft's complaint says what */
	char *nl = strchr(err, '\n');
	if (nl)
		*nl = 0;
	r = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	return r;
}

static int install(const char *name, const struct netlock_conn *c, size_t n, bool netns)
{
	_cleanup_free_ char *s = netlock_script(name, c, n, netns);
	static const char *const args[] = { "-f", "-", NULL };
	char err[512] = "";
	int r = run_nft(s, args, err, sizeof(err));

	if (r == -EIO)
		return dm_fail(r, "cannot lock the network (nft table inet %s): %s", name,
			       err[0] ? err : "nft failed");
	if (r >= 0)
		pr_debug("locked %s: %zu connections%s", name, n, netns ? " (whole namespace)" : "");
	return r;
}

int netlock_conns(const char *name, const struct netlock_conn *c, size_t n)
{
	return install(name, c, n, false);
}

int netlock_netns(const char *name)
{
	return install(name, NULL, 0, true);
}

bool netlock_exists(const char *name)
{
	const char *const args[] = { "list", "table", "inet", name, NULL };
	char err[512];
	return run_nft(NULL, args, err, sizeof(err)) == 0;
}

int netlock_unlock(const char *name)
{
	_cleanup_free_ char *s = NULL;
	static const char *const args[] = { "-f", "-", NULL };
	char err[512] = "";

	/* "add" first: deleting a table that is not there is an error */
	if (asprintf(&s, "add table inet %s\ndelete table inet %s\n", name, name) < 0)
		abort();
	int r = run_nft(s, args, err, sizeof(err));
	if (r == -EIO)
		return dm_fail(r, "cannot unlock the network (nft table inet %s): %s", name,
			       err[0] ? err : "nft failed");
	return r;
}
