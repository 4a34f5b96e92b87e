/* SPDX-License-Identifier: MIT */
/*
 * dmigrate testhost up|down|run|spawn|pid   (test hosts for tests, bench, demo)
 */
#include "base/log.h"
#include "cli/cli.h"
#include "migrate/testhost.h"

#include <getopt.h>
#include <string.h>

static void testhost_usage(FILE *out)
{
	fprintf(out,
		"usage: dmigrate testhost up [--prefix P] [--tbf [--rate R]]\n"
		"       dmigrate testhost down [--prefix P]\n"
		"       dmigrate testhost run [--prefix P] a|b -- CMD [ARGS...]\n"
		"       dmigrate testhost spawn [--prefix P] [--log FILE] a|b -- CMD [ARGS...]\n"
		"       dmigrate testhost pid [--prefix P] a|b\n"
		"  Two test hosts on this machine: a network, mount, PID and UTS namespace each,\n"
		"  a veth pair 198.18.0.1/24 (a) <-> 198.18.0.2/24 (b), optionally a token bucket\n"
		"  (tbf, 1gbit) on both ends, a tmpfs on /var/lib/dmigrate in each.  'run' runs a\n"
		"  command in a host and waits; 'spawn' starts it in the background (new session,\n"
		"  output to --log or /dev/null) and prints its pid; 'down' removes everything.\n"
		"  The prefix (default %s) names them: netns P-a, P-b.\n",
		TESTHOST_PREFIX_DEFAULT);
}

int cmd_testhost(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "tbf", no_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
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
	while ((c = getopt_long(argc, argv, "+p:tr:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o.prefix = optarg; break;
		case 't': o.tbf = true; break;
		case 'r': o.rate = optarg; break;
		case 'l': log = optarg; break;
		case 'h': testhost_usage(stdout); return 0;
		default: testhost_usage(stderr); return 2;
		}
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
