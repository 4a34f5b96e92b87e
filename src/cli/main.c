/* SPDX-License-Identifier: MIT */
/*
 * dmigrate: the command line.  Front end only: parse, call the library,
 * print.  Each verb lives in its own cmd-*.c.
 */
#include "base/log.h"
#include "cli/cli.h"
#include "migrate/srcguard.h"

#include <string.h>

static const struct verb {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} verbs[] = {
	{ "checkpoint", cmd_checkpoint, "dump a running process tree to an image directory" },
	{ "restore", cmd_restore, "restore a process tree from an image directory" },
	{ "show-image", cmd_show_image, "print an image directory (--json for JSON)" },
	{ "migrate", cmd_migrate, "move a running process tree to another host (dmigrated)" },
	{ "keygen", cmd_keygen, "write a fresh shared key for dmigrated and migrate" },
	{ "setup", cmd_setup, "register the OCI runtime dmigrate with dockerd (Docker destinations)" },
	{ "daemon", cmd_daemon, "receive migrations (the same as dmigrated)" },
	{ "demo", cmd_demo, "migrate a live workload between two local test hosts" },
	{ "demo-workload", cmd_demo_workload, "the demo's program (memory + progress reports)" },
	{ "testhost", cmd_testhost, "make or remove two local test hosts (namespaces + veth)" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: dmigrate [-v|-vv] <command> [options]\n       dmigrate --help | --version\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		fprintf(out, "  %-12s %s\n", verbs[i].name, verbs[i].help);
	fprintf(out, "\nrun 'dmigrate <command> --help' for the options of a command\n");
}

int main(int argc, char **argv)
{
	int level = LOG_WARN;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v"))
			level = LOG_INFO;
		else if (!strcmp(argv[i], "-vv"))
			level = LOG_DEBUG;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("dmigrate %s\n", DM_VERSION);
			return 0;
		} else {
			fprintf(stderr, "dmigrate: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	dm_log_init(level, -1);
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	/* not a command: the source's guard (src/migrate/srcguard.h) */
	if (!strcmp(argv[i], "__guard"))
		return src_guard_main(i + 1 < argc ? argv[i + 1] : NULL);
	for (size_t k = 0; k < ARRAY_SIZE(verbs); k++)
		if (!strcmp(argv[i], verbs[k].name))
			return verbs[k].fn(argc - i, argv + i);
	fprintf(stderr, "dmigrate: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
