/* SPDX-License-Identifier: MIT */
/* dmigrate checkpoint pid:PID|runc:ID|--pid PID --images DIR [--leave-running] [--runc-root DIR]
 *                    [--dump-threads N] [--stats FILE] [--ext-unix] */
#include "migrate/srcguard.h"
#include "base/json.h"
#include "container/runc.h"
#include "base/log.h"
#include "cli/cli.h"
#include "dump/dump.h"

#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

static void ckpt_guard_lock(void *arg, int nsfd, const char *name)
{
	src_guard_netlock(arg, nsfd, name);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: dmigrate checkpoint pid:PID|runc:ID|--pid PID --images DIR [--leave-running]\n"
		     "                           [--runc-root DIR] [--dump-threads N] [--lazy] [--stats FILE]\n"
		     "                           [--ext-unix] [--accept-wait MS]\n"
		     "  Freezes the process tree rooted at PID, writes its image to DIR and kills it\n"
		     "  (or lets it run again with --leave-running).  runc:ID is the runc container ID\n"
		     "  (runc's state under --runc-root, default " RUNC_DEFAULT_ROOT "): frozen through its\n"
		     "  cgroup, its whole tree and what runc needs to make it again are dumped, and\n"
		     "  the container is deleted (unless --leave-running).  --dump-threads N fixes the\n"
		     "  number of dump workers (1 = serial); by default the pool grows while the\n"
		     "  host has spare CPU and memory.  --lazy marks the pages a task needs only\n"
		     "  after it runs, for restore --lazy (post-copy from the image).\n"
		     "  --ext-unix: a unix socket connected to a peer outside the tree is\n"
		     "  reconnected to that peer's name at restore (a new connection), instead\n"
		     "  of refusing the checkpoint.  --accept-wait MS: a container with TCP\n"
		     "  listeners has its network locked just before the freeze and this long\n"
		     "  (default 500) to accept the connections they have queued, which could not\n"
		     "  be restored; still queued then, it is refused.\n");
}

int cmd_checkpoint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "images", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, 'R' },
		{ "dump-threads", required_argument, NULL, 'j' },
		{ "stats", required_argument, NULL, 's' },
		{ "lazy", no_argument, NULL, 'L' },
		{ "runc-root", required_argument, NULL, 'T' },
		{ "ext-unix", no_argument, NULL, 'U' },
		{ "accept-wait", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct dump_opts o = {};
	struct runc_ct *ct = NULL;
	const char *runc_id = NULL, *runc_root = NULL;
	struct dump_ctx *d = NULL;
	const char *stats = NULL;
	bool leave = false, created = false;
	long v;
	int c, r;

	while ((c = getopt_long(argc, argv, "p:D:Rj:s:LT:UA:h", opts, NULL)) != -1) {
		switch (c) {
		case 'T':
			runc_root = optarg;
			break;
		case 'p':
			if (parse_long(optarg, &v) < 0 || v <= 0 || v > (1 << 22)) {
				fprintf(stderr, "dmigrate: checkpoint: bad pid '%s' (pids are 1 to %d)\n", optarg,
					1 << 22);
				return 2;
			}
			o.pid = v;
			break;
		case 'D':
			o.images_dir = optarg;
			break;
		case 'R':
			leave = true;
			break;
		case 'j':
			if (parse_long(optarg, &v) < 0 || v < 1 || v > 256) {
				fprintf(stderr, "dmigrate: checkpoint: bad --dump-threads '%s'\n", optarg);
				return 2;
			}
			o.dump_threads = v;
			break;
		case 's':
			stats = optarg;
			break;
		case 'A':
			if (parse_long(optarg, &v) < 0 || v < 1 || v > 600000) {
				fprintf(stderr, "dmigrate: checkpoint: bad --accept-wait '%s' (1 to 600000 ms)\n", optarg);
				return 2;
			}
			o.accept_wait_ms = (unsigned)v;
			break;
		case 'L':
			o.lazy = true;
			break;
		case 'U':
			o.ext_unix = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		pid_t tp = 0;
		r = o.pid ? -EINVAL : runc_parse_target(argv[optind++], &runc_id, &tp);
		if (r < 0) {
			fprintf(stderr, "dmigrate: checkpoint: %s\n",
				o.pid ? "give the target once (pid:PID, runc:ID or --pid PID)" : dm_last_error());
			return 2;
		}
		o.pid = tp;
	}
	if (runc_root && !runc_id) {
		fprintf(stderr, "dmigrate: checkpoint: --runc-root is for a runc:ID target\n");
		return 2;
	}
	if ((!o.pid && !runc_id) || !o.images_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (stats && (r = json_check_writable(stats)) < 0) {
		fprintf(stderr, "dmigrate: checkpoint: cannot write the statistics to %s: %s (nothing "
			"was done)\n", stats, strerror(-r));
		return 1;
	}
	struct stat st;
	created = stat(o.images_dir, &st) < 0;

	o.keep_net_lock = !leave;
	if (runc_id) {
		r = runc_open(runc_root, runc_id, &ct);
		if (r < 0) {
			fprintf(stderr, "dmigrate: checkpoint failed: %s\n", dm_error_text(r));
			return 1;
		}
		o.pid = runc_init_pid(ct);
		o.container = runc_dump_hooks(ct);
	}
	/* a lock on a tree that runs on is removed by it if we die first */
	struct src_guard *guard = NULL;
	if (src_guard_start(&guard) < 0)
		fprintf(stderr, "dmigrate: warning: %s (if this process dies before the end, the tree's "
				"network lock stays)\n", dm_last_error());
	o.on_lock = guard ? ckpt_guard_lock : NULL;
	o.on_lock_arg = guard;
	r = dump_freeze(&o, &d);
	/* what runc does not make again, read from the frozen container */
	if (r >= 0 && ct)
		r = runc_record(ct, o.images_dir);
	if (r >= 0)
		r = dump_collect(d);
	if (r < 0) {
		char msg[DM_ERRMSG_MAX];
		int rr = 0;

		/* the cause first: releasing the tree has messages of its own */
		snprintf(msg, sizeof(msg), "%s", dm_error_text(r));
		/* nothing is lost: a frozen tree runs on, the partial image goes */
		if (d)
			rr = dump_release(d, DUMP_RESUME);
		fprintf(stderr, "dmigrate: checkpoint failed: %s\n", msg);
		/* say that it runs on only when it had been frozen and does run
		 * (a refusal before the freeze never touched it) */
		if (d && rr < 0)
			fprintf(stderr, "dmigrate: the tree of process %d could not be fully released: %s\n",
				o.pid, dm_error_text(rr));
		else if (d && ct && kill(o.pid, 0) == 0)
			fprintf(stderr, "dmigrate: container %s runs on, unchanged\n", runc_id);
		else if (d && kill(o.pid, 0) == 0)
			fprintf(stderr, "dmigrate: process %d runs on, unchanged\n", o.pid);
		if (created)
			rm_rf(o.images_dir);
		src_guard_free(guard);
		dump_free(d);
		runc_free(ct);
		return 1;
	}
	r = dump_release(d, leave ? DUMP_RESUME : DUMP_KILL);
	/* released: the lock is gone, or stays for the restore on purpose */
	src_guard_free(guard);
	if (r < 0)
		fprintf(stderr, "dmigrate: warning: %s\n", dm_last_error());
	if (ct && runc_finish(ct, leave) < 0)
		fprintf(stderr, "dmigrate: warning: %s\n", dm_last_error());
	/* a restore right after us must find the pids free */
	if (!leave && dump_wait_gone(d, 10000) < 0)
		fprintf(stderr, "dmigrate: warning: %s\n", dm_last_error());
	if (stats) {
		json_t *j = json_object();
		dump_stats_json(d, j);
		r = json_write_file(j, stats);
		json_decref(j);
		if (r < 0) {
			fprintf(stderr, "dmigrate: checkpoint: the images are complete in %s, but the "
				"statistics could not be written to %s: %s\n", o.images_dir, stats,
				strerror(-r));
			dump_free(d);
			runc_free(ct);
			return 1;
		}
	}
	dump_free(d);
	runc_free(ct);
	return 0;
}
