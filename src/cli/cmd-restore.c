/* SPDX-License-Identifier: MIT */
/* dmigrate restore --images DIR [--pidfile FILE] [--stats FILE] */
#include "base/json.h"
#include "base/log.h"
#include "cli/cli.h"
#include "restore/restore.h"

#include <fcntl.h>
#include <getopt.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: dmigrate restore --images DIR [--pidfile FILE] [--stats FILE]\n"
		     "  Restores the process tree of the image directory DIR and lets it run.\n"
		     "  --pidfile FILE receives the pid of the restored root; --stats FILE a JSON\n"
		     "  object with the restore time and its phases.\n");
}

static int write_pidfile(const char *path, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", pid);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return neg_errno();
	int r = write_all(fd, buf, (size_t)n);
	close(fd);
	return r;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images", required_argument, NULL, 'D' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "stats", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct restore_opts o = { .root_fd = -1 };
	struct restore_result res = { .root_pidfd = -1 };
	const char *pidfile = NULL, *stats = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "D:P:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			o.images_dir = optarg;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 's':
			stats = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.images_dir || optind != argc) {
		usage(stderr);
		return 2;
	}

	r = restore_tree(&o, &res);
	if (r < 0) {
		fprintf(stderr, "dmigrate: restore failed: %s\n",
			dm_last_error()[0] ? dm_last_error() : strerror(-r));
		return 1;
	}
	if (res.root_pidfd >= 0)
		close(res.root_pidfd);
	if (pidfile) {
		r = write_pidfile(pidfile, res.root_pid);
		if (r < 0)
			fprintf(stderr, "dmigrate: cannot write %s: %s\n", pidfile, strerror(-r));
	}
	if (stats) {
		json_t *j = restore_stats_json(&res.stats);
		if (json_write_file(j, stats) < 0)
			fprintf(stderr, "dmigrate: cannot write %s\n", stats);
		json_decref(j);
	}
	return 0;
}
