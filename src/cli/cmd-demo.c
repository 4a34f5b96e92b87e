/* SPDX-License-Identifier: MIT */
/*
 * dmigrate testhost up|down|run|spawn|pid   (test hosts for tests, bench, demo)
 * dmigrate demo                             (the README's main job)
 * dmigrate demo-workload                    (the demo's program)
 */
#include "base/clock.h"
#include "base/log.h"
#include "cli/cli.h"
#include "migrate/testhost.h"
#include "net/net.h"
#include "proc/proc.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static void testhost_usage(FILE *out)
{
	fprintf(out,
		"usage: dmigrate testhost up [--prefix P] [--tbf [--rate R] [--fifo-link]]\n"
		"       dmigrate testhost down [--prefix P]\n"
		"       dmigrate testhost run [--prefix P] a|b -- CMD [ARGS...]\n"
		"       dmigrate testhost spawn [--prefix P] [--log FILE] a|b -- CMD [ARGS...]\n"
		"       dmigrate testhost pid [--prefix P] a|b\n"
		"       dmigrate testhost info [--prefix P]\n"
		"  Two test hosts on this machine: a network, mount, PID and UTS namespace each,\n"
		"  a veth pair 198.18.0.1/24 (a) <-> 198.18.0.2/24 (b), a tmpfs on\n"
		"  /var/lib/dmigrate in each.  --tbf: a token bucket (1gbit) on both ends whose\n"
		"  queue is pfifo_fast (a host's default: interactive frames first), or one FIFO\n"
		"  with --fifo-link.  'run' runs a command in a host and waits; 'spawn' starts it\n"
		"  in the background (new session, output to --log or /dev/null) and prints its\n"
		"  pid; 'down' removes everything.  Each host also has its own cgroups (a cgroup\n"
		"  namespace; /sys/fs/cgroup shows them) and /run/runc, and a bridge dmbr0\n"
		"  (198.19.0.1/24 in a, .2 in b) the two of which are linked, with a client\n"
		"  netns P-c (198.19.0.3) on it.  'info' prints all of it as key=value lines.\n"
		"  The prefix (default %s) names them: netns P-a, P-b, P-c.\n",
		TESTHOST_PREFIX_DEFAULT);
}

int cmd_testhost(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "tbf", no_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "fifo-link", no_argument, NULL, 'F' },
		{ "log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct testhost_opts o = {};
	const char *log = NULL, *sub;
	int c, r, host = -1;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		testhost_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	argc--;
	argv++;
	/* options stop at the host name, so that the command keeps its own */
	while ((c = getopt_long(argc, argv, "+p:tr:Fl:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o.prefix = optarg; break;
		case 't': o.tbf = true; break;
		case 'r': o.rate = optarg; break;
		case 'F': o.fifo_link = true; break;
		case 'l': log = optarg; break;
		case 'h': testhost_usage(stdout); return 0;
		default: testhost_usage(stderr); return 2;
		}
	}
	if (!strcmp(sub, "info")) {
		if (optind != argc) {
			testhost_usage(stderr);
			return 2;
		}
		r = testhost_info(o.prefix, stdout);
		if (r < 0) {
			fprintf(stderr, "dmigrate: testhost info: %s\n", dm_last_error()[0] ? dm_last_error() : strerror(-r));
			return 1;
		}
		return 0;
	}
	if (!strcmp(sub, "up") || !strcmp(sub, "down")) {
		if (optind != argc) {
			testhost_usage(stderr);
			return 2;
		}
		r = !strcmp(sub, "up") ? testhost_up(&o) : testhost_down(o.prefix);
		if (r < 0) {
			fprintf(stderr, "dmigrate: testhost %s: %s\n", sub,
				dm_last_error()[0] ? dm_last_error() : strerror(-r));
			return 1;
		}
		return 0;
	}
	if (optind >= argc || (host = testhost_parse(argv[optind])) < 0) {
		fprintf(stderr, "dmigrate: testhost %s: name a host: a or b\n", sub);
		return 2;
	}
	optind++;
	if (!strcmp(sub, "pid")) {
		pid_t pid;
		r = testhost_init_pid(o.prefix, host, &pid);
		if (r < 0) {
			fprintf(stderr, "dmigrate: %s\n", dm_last_error());
			return 1;
		}
		printf("%d\n", pid);
		return 0;
	}
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc) {
		testhost_usage(stderr);
		return 2;
	}
	if (!strcmp(sub, "run")) {
		r = testhost_run(o.prefix, host, argv + optind);
		if (r < 0) {
			fprintf(stderr, "dmigrate: %s\n", dm_last_error());
			return 126;
		}
		return r;
	}
	if (!strcmp(sub, "spawn")) {
		pid_t pid;
		r = testhost_spawn(o.prefix, host, argv + optind, log, &pid);
		if (r < 0) {
			fprintf(stderr, "dmigrate: %s\n", dm_last_error());
			return 1;
		}
		printf("%d\n", pid);
		return 0;
	}
	testhost_usage(stderr);
	return 2;
}

/* ---- dmigrate demo-workload: the demo's program ------------------------- */

/*
 * N MiB of memory, every page holding its index, a version and a pattern
 * made from its index.  Two parts, as a service has them:
 *
 * - the working set (the first --working-set MiB): the main thread rewrites
 *   a few of its pages at each step, keeps the expected sum of their
 *   versions, and every ~100 ms checks them and prints counter, verdict,
 *   host and pid.  It touches nothing else, so the time between two of its
 *   reports across a migration is the pause a service sees (the downtime),
 *   not the time to move all memory.
 * - the rest: a second thread reads all of it in passes (one every
 *   --check-every ms), checks every page (index, pattern, and the version it
 *   must have after the passes so far), and bumps the version of one page in
 *   16 in each pass, so that the memory keeps changing for pre-copy to
 *   track.  It prints a "memcheck" line after each pass.
 *
 * A page lost, zeroed or stale anywhere shows as "checksum=BAD".
 */
struct wl_mem {
	uint64_t *mem;
	size_t npages, ws;	/* pages; the working set is [0, ws) */
	long check_ms;
};

#define WL_WORDS 512	/* uint64_t per page */
#define WL_STRIDE 16	/* a pass bumps the version of one page in WL_STRIDE */

static uint64_t wl_pattern(size_t i, size_t k)
{
	return i * 31 + k;
}

static void wl_print(const char *what)
{
	char host[64] = "?";
	struct timespec rt;
	gethostname(host, sizeof(host) - 1);
	clock_gettime(CLOCK_REALTIME, &rt);
	printf("%ld.%03ld %s host=%s pid=%d\n", (long)rt.tv_sec, rt.tv_nsec / 1000000, what, host, getpid());
}

/* the version page i holds before pass q: 1, plus one per earlier pass that bumped it */
static uint64_t wl_cold_version(size_t i, uint64_t q)
{
	uint64_t r = i % WL_STRIDE;
	return 1 + (q > r ? (q - r - 1) / WL_STRIDE + 1 : 0);
}

static void *wl_checker(void *arg)
{
	struct wl_mem *w = arg;
	for (uint64_t q = 0;; q++) {
		size_t bad = 0, first_bad = 0;
		for (size_t i = w->ws; i < w->npages; i++) {
			uint64_t *p = w->mem + i * WL_WORDS;
			bool ok = p[0] == i && p[1] == wl_cold_version(i, q);
			for (size_t k = 2; ok && k < WL_WORDS; k++)
				ok = p[k] == wl_pattern(i, k);
			if (!ok && bad++ == 0)
				first_bad = i;
			if (i % WL_STRIDE == q % WL_STRIDE)
				p[1] = wl_cold_version(i, q) + 1; /* what it must be, whatever it was */
		}
		char what[160];
		if (bad)
			snprintf(what, sizeof(what), "memcheck pass=%" PRIu64 " pages=%zu checksum=BAD bad_pages=%zu first=%zu",
				 q + 1, w->npages - w->ws, bad, first_bad);
		else
			snprintf(what, sizeof(what), "memcheck pass=%" PRIu64 " pages=%zu checksum=ok", q + 1,
				 w->npages - w->ws);
		wl_print(what);
		struct timespec ts = { w->check_ms / 1000, (w->check_ms % 1000) * 1000000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static void wl_usage(FILE *out)
{
	fprintf(out,
		"usage: dmigrate demo-workload [--mib N] [--working-set MIB] [--check-every MS]\n"
		"  The demo's program: N MiB of memory (default 256).  It works on a small\n"
		"  working set (default 1 MiB) and reports every ~100 ms:\n"
		"    TIME counter=N checksum=ok|BAD host=H pid=P      (the working set)\n"
		"  and a second thread checks the whole rest of the memory in the background,\n"
		"  one pass every MS ms (default 500), each reported as:\n"
		"    TIME memcheck pass=N pages=N checksum=ok|BAD host=H pid=P\n");
}

int cmd_demo_workload(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "working-set", required_argument, NULL, 'w' },
		{ "check-every", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	long mib = 256, ws_mib = 1, check_ms = 500;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "m:w:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_long(optarg, &mib) < 0 || mib < 1 || mib > (1L << 20))
				mib = -1;
			break;
		case 'w':
			if (parse_long(optarg, &ws_mib) < 0 || ws_mib < 1)
				ws_mib = -1;
			break;
		case 'c':
			if (parse_long(optarg, &check_ms) < 0 || check_ms < 0 || check_ms > 86400000L)
				check_ms = -1;
			break;
		case 'h': wl_usage(stdout); return 0;
		default: wl_usage(stderr); return 2;
		}
	}
	if (optind != argc || mib < 0 || ws_mib < 0 || check_ms < 0) {
		wl_usage(stderr);
		return 2;
	}
	if (ws_mib > mib)
		ws_mib = mib;
	struct wl_mem w = { .npages = (size_t)mib << 8, .ws = (size_t)ws_mib << 8, .check_ms = check_ms };
	w.mem = mmap(NULL, w.npages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < w.npages; i++) {
		uint64_t *p = w.mem + i * WL_WORDS;
		p[0] = i;
		p[1] = 1;
		for (size_t k = 2; k < WL_WORDS; k++)
			p[k] = wl_pattern(i, k);
	}
	uint64_t expect = w.ws, counter = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("memory at %p: %zu pages, working set %zu pages\n", (void *)w.mem, w.npages, w.ws);
	pthread_t th;
	int r = -pthread_create(&th, NULL, wl_checker, &w);
	if (r < 0) {
		fprintf(stderr, "demo-workload: cannot start the checker thread: %s\n", strerror(-r));
		return 1;
	}
	uint64_t last = clock_us();
	for (;;) {
		/* a few writes per step, in the working set */
		for (int k = 0; k < 64; k++) {
			size_t i = (counter * 7919 + (size_t)k * 104729) % w.ws;
			w.mem[i * WL_WORDS + 1]++;
			expect++;
		}
		counter++;
		uint64_t now = clock_us();
		if (now - last < 100000) {
			struct timespec ts = { 0, 10 * 1000000 };
			nanosleep(&ts, NULL);
			continue;
		}
		last = now;
		uint64_t sum = 0;
		bool ok = true;
		for (size_t i = 0; i < w.ws; i++) {
			const uint64_t *p = w.mem + i * WL_WORDS;
			sum += p[1];
			if (p[0] != i || p[2] != wl_pattern(i, 2) || p[WL_WORDS - 1] != wl_pattern(i, WL_WORDS - 1))
				ok = false;
		}
		char what[96];
		snprintf(what, sizeof(what), "counter=%" PRIu64 " checksum=%s", counter, ok && sum == expect ? "ok" : "BAD");
		wl_print(what);
	}
}

/* ---- dmigrate demo ------------------------------------------------------- */

static int demo_spawn_wait_file(const char *path, int ms)
{
	for (int i = 0; i < ms / 20; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(20000);
	}
	return -ETIMEDOUT;
}

static int count_lines(const char *path, char *last, size_t lastlen)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[512];
	int n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (last)
			snprintf(last, lastlen, "%s", line);
	}
	return n;
}

static int copy_file(const char *from, const char *to)
{
	_cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	char buf[65536];
	if (in < 0 || out < 0)
		return neg_errno();
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0)
			return neg_errno();
		if (n == 0)
			return 0;
		int r = write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

static pid_t ns_pid_of(pid_t pid)
{
	struct proc_status st = {};
	pid_t r = -1;
	if (proc_read_status(pid, 0, &st) == 0 && st.n_nspid)
		r = st.nspid[st.n_nspid - 1];
	proc_status_done(&st);
	return r;
}

/* "1700000000.123 counter=N checksum=ok host=H pid=P" */
struct wl_line {
	double t;
	unsigned long long counter;
	char checksum[8], host[32];
	int pid;
};

static bool parse_wl(const char *s, struct wl_line *w)
{
	return sscanf(s, "%lf counter=%llu checksum=%7s host=%31s pid=%d", &w->t, &w->counter, w->checksum, w->host,
		      &w->pid) == 5;
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "mode", required_argument, NULL, 'M' },
		{ "no-tbf", no_argument, NULL, 'n' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *mode = "post-copy", *prefix = "dmdemo";
	long mib = 256;
	bool tbf = true, keep = false;
	int c, r, rc = 1;
	char exe[4096];
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *wexe = NULL;

	while ((c = getopt_long(argc, argv, "m:M:nkh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_long(optarg, &mib) < 0 || mib < 1 || mib > 65536) {
				fprintf(stderr, "dmigrate: demo: bad --mib\n");
				return 2;
			}
			break;
		case 'M': mode = optarg; break;
		case 'n': tbf = false; break;
		case 'k': keep = true; break;
		case 'h':
			printf("usage: dmigrate demo [--mib N] [--mode MODE] [--no-tbf] [--keep]\n"
			       "  Makes two test hosts on this machine (network, mount, PID and UTS namespaces,\n"
			       "  a veth pair limited to 1 Gbit/s), starts a program with N MiB of memory\n"
			       "  (default 256) on host a that keeps reporting its progress, migrates it to\n"
			       "  host b while it runs (default post-copy), shows that it went on where it\n"
			       "  was, prints the downtime and total time, and removes everything.\n");
			return 0;
		default: return 2;
		}
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		perror("readlink /proc/self/exe");
		return 1;
	}
	exe[n] = 0;
	_cleanup_free_ char *dir = xstrdup("/tmp/dmigrate-demo.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	_cleanup_free_ char *key = xasprintf("%s/key", dir);
	_cleanup_free_ char *dlog = xasprintf("%s/dmigrated.log", dir);
	_cleanup_free_ char *ready = xasprintf("%s/dmigrated.ready", dir);
	_cleanup_free_ char *wlog = xasprintf("%s/workload.log", dir);
	_cleanup_free_ char *stats = xasprintf("%s/stats.json", dir);
	char mibs[32];
	snprintf(mibs, sizeof(mibs), "%ld", mib);

	printf("== dmigrate demo: live migration of a running program between two hosts\n");
	testhost_down(prefix); /* leftovers of an interrupted run */
	struct testhost_opts to = { .prefix = prefix, .tbf = tbf };
	r = testhost_up(&to);
	if (r < 0) {
		fprintf(stderr, "dmigrate: demo: %s\n", dm_last_error());
		rm_rf(dir);
		return 1;
	}
	printf("   hosts: %s-a (%s) and %s-b (%s), veth%s; own network, mount, pid, uts namespaces\n", prefix,
	       testhost_addr(0), prefix, testhost_addr(1), tbf ? " with a 1 Gbit/s token bucket" : "");
	if ((r = net_keygen(key)) < 0) {
		fprintf(stderr, "dmigrate: demo: %s\n", dm_last_error());
		goto out;
	}
	char listen[64];
	snprintf(listen, sizeof(listen), "%s:7070", testhost_addr(1));
	char *dargv[] = { exe, "daemon", "--listen", listen, "--key", key, "--ready-file", ready, "-v", NULL };
	/* dmigrated is this binary's daemon verb: the demo needs no other file */
	pid_t dpid;
	if ((r = testhost_spawn(prefix, 1, dargv, dlog, &dpid)) < 0 || demo_spawn_wait_file(ready, 10000) < 0) {
		fprintf(stderr, "dmigrate: demo: dmigrated did not start (%s)\n", dlog);
		goto out;
	}
	printf("   dmigrated listens on %s (host b), TLS 1.3 with a fresh shared key\n", listen);

	/*
	 * The workload runs from a copy of this binary: the restorer (dmigrated
	 * = this binary) cannot give a restored process its own executable as
	 * /proc/PID/exe (PR_SET_MM_MAP refuses while the old one is mapped).
	 */
	wexe = xasprintf("%s/dmigrate-workload", dir);
	if ((r = copy_file(exe, wexe)) < 0) {
		fprintf(stderr, "dmigrate: demo: cannot copy %s: %s\n", exe, strerror(-r));
		goto out;
	}
	char *wargv[] = { wexe, "demo-workload", "--mib", mibs, NULL };
	pid_t wpid;
	if ((r = testhost_spawn(prefix, 0, wargv, wlog, &wpid)) < 0) {
		fprintf(stderr, "dmigrate: demo: %s\n", dm_last_error());
		goto out;
	}
	pid_t wns = ns_pid_of(wpid);
	printf("   workload: %ld MiB, pid %d on host a; it reports counter + checksum of its 1 MiB working set\n"
	       "   every 100 ms, and checks all its memory in the background:\n",
	       mib, wns);
	for (int i = 0; i < 600 && count_lines(wlog, NULL, 0) < 5; i++)
		usleep(50000);
	if (count_lines(wlog, NULL, 0) < 1) {
		fprintf(stderr, "dmigrate: demo: the workload does not report (%s)\n", wlog);
		goto out;
	}
	char line[512] = "";
	count_lines(wlog, line, sizeof(line));
	printf("     %s", line);
	int before = count_lines(wlog, NULL, 0);

	printf("\n== dmigrate migrate pid:%d --to %s --mode %s   (run on host a)\n", wns, listen, mode);
	char pidarg[32];
	snprintf(pidarg, sizeof(pidarg), "pid:%d", wns);
	char *margv[] = { exe, "migrate", pidarg, "--to", listen, "--key", key, "--mode", (char *)mode, "--stats", stats, NULL };
	fflush(stdout);
	r = testhost_run(prefix, 0, margv);
	if (r != 0) {
		fprintf(stderr, "dmigrate: demo: the migration failed (exit %d)\n", r);
		goto out;
	}
	/* let it run on the destination for a moment */
	for (int i = 0; i < 40; i++) {
		usleep(50000);
		if (count_lines(wlog, NULL, 0) >= before + 12)
			break;
	}
	/*
	 * and until its background check has read all its memory there once: a
	 * pass that ends on b (in post-copy, once every page has come)
	 */
	char bhost[64];
	snprintf(bhost, sizeof(bhost), "host=%s-b ", prefix);
	char memcheck[512] = "";
	for (int i = 0; i < 2400 && !memcheck[0]; i++) {
		_cleanup_fclose_ FILE *m = fopen(wlog, "re");
		while (m && fgets(line, sizeof(line), m))
			if (strstr(line, " memcheck ") && strstr(line, bhost))
				snprintf(memcheck, sizeof(memcheck), "%s", line);
		if (!memcheck[0])
			usleep(50000);
	}

	/* what the program said around the switch */
	f = fopen(wlog, "re");
	struct wl_line prev = {}, cur;
	bool moved = false, bad = false, gap_ok = true;
	double gap = 0;
	printf("\n== the workload's own log around the migration\n");
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, " memcheck ") && strstr(line, "checksum=BAD")) {
			bad = true;
			printf("     %s", line);
		}
		if (!parse_wl(line, &cur))
			continue;
		if (strcmp(cur.checksum, "ok"))
			bad = true;
		if (prev.host[0] && strcmp(prev.host, cur.host)) {
			moved = true;
			gap = cur.t - prev.t;
			if (cur.counter <= prev.counter)
				gap_ok = false;
			printf("     %s", "");
			printf("%.3f counter=%llu checksum=%s host=%s pid=%d\n", prev.t, prev.counter, prev.checksum,
			       prev.host, prev.pid);
			printf("     ---- migrated: %.0f ms between these two reports (the pause the service saw) ----\n",
			       gap * 1000);
			printf("     %s", line);
		}
		prev = cur;
	}
	if (prev.host[0])
		printf("     ... last: counter=%llu checksum=%s host=%s pid=%d\n", prev.counter, prev.checksum, prev.host,
		       prev.pid);
	json_error_t je;
	json_t *st = json_load_file(stats, 0, &je);
	double down = -1, total = -1;
	if (st) {
		json_t *v;
		if ((v = json_object_get(st, "downtime_ms")) && json_is_number(v))
			down = json_number_value(v);
		if ((v = json_object_get(st, "total_ms")) && json_is_number(v))
			total = json_number_value(v);
		printf("\n== result\n   downtime %.0f ms, total migration time %.2f s (%ld MiB over %s)\n", down,
		       total / 1000, mib, tbf ? "1 Gbit/s" : "veth");
		json_t *p;
		if ((p = json_object_get(st, "pages_on_demand")))
			printf("   pages: on demand %" JSON_INTEGER_FORMAT ", prefetched %" JSON_INTEGER_FORMAT
			       ", pushed %" JSON_INTEGER_FORMAT "; fault latency p50 %.0f us, p99 %.0f us\n",
			       json_integer_value(p), json_integer_value(json_object_get(st, "pages_prefetched")),
			       json_integer_value(json_object_get(st, "pages_pushed")),
			       json_number_value(json_object_get(json_object_get(st, "fault_latency_us"), "p50")),
			       json_number_value(json_object_get(json_object_get(st, "fault_latency_us"), "p99")));
		json_decref(st);
	}
	if (memcheck[0])
		printf("   whole memory checked on host b: %s", memcheck);
	if (moved && !bad && gap_ok && memcheck[0]) {
		printf("   the program went on where it was on host b: same counter sequence, working set and whole\n"
		       "   memory checked ok; the gap between its reports is the pause the service saw\n");
		rc = 0;
	} else {
		printf("   FAILED: %s\n", !moved ? "the program did not report from host b" :
				   bad ? "a memory checksum was wrong" :
				   !gap_ok ? "the counter went backwards" :
					     "no check of the whole memory ended on host b within 120 s");
	}
out:
	if (keep) {
		printf("   (--keep: hosts %s-a/%s-b and %s are left; 'dmigrate testhost down --prefix %s')\n", prefix,
		       prefix, dir, prefix);
	} else {
		testhost_down(prefix);
		rm_rf(dir);
		printf("   removed the test hosts and %s\n", dir);
	}
	return rc;
}
