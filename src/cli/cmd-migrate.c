/* SPDX-License-Identifier: MIT */
/*
 * dmigrate migrate pid:PID --to ADDR:PORT --key FILE [--mode MODE] [--stats FILE] [--json]
 */
#include "base/json.h"
#include "base/log.h"
#include "cli/cli.h"
#include "daemon/daemon.h"
#include "migrate/migrate.h"
#include "migrate/rootfs.h"
#include "net/net.h"

#include <fcntl.h>
#include <getopt.h>
#include <string.h>

#include "container/runc.h"
#include "container/docker-mig.h"
#include "migrate/srcguard.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dmigrate migrate pid:PID|runc:ID|docker:NAME --to ADDR:PORT (--key FILE | --insecure)\n"
		"                        [--mode post-copy|pre-copy|stop-and-copy|hybrid]\n"
		"                        [--stats FILE] [--json] [--pidfile FILE] [--quiet]\n"
		"                        [--dump-threads N] [--precopy-rounds N] [--work-dir DIR]\n"
		"                        [--runc-root DIR] [--keep-source] [--accept-wait MS]\n"
		"                        [--cow-max MIB] [--quiet-wait MS]\n"
		"                        [--rootfs-dir DIR [--rootfs priority|lazy|eager|none]]\n"
		"  Moves the process tree rooted at PID to the dmigrated at ADDR:PORT and lets it\n"
		"  run there.  post-copy (default): the tree resumes there at once and its memory\n"
		"  follows; stop-and-copy: all memory moves while it is frozen; pre-copy: rounds\n"
		"  of changed pages while it runs, then stop-and-copy of the rest; hybrid: one\n"
		"  pre-copy round, then post-copy.  If anything fails before the destination\n"
		"  resumes the tree, it runs on here unchanged.  --stats FILE: the migration's\n"
		"  JSON stats (--json prints them); --pidfile FILE: the pid of the tree on the\n"
		"  destination (in its pid namespace).  runc:ID: the runc container ID (runc's\n"
		"  state under --runc-root, default " RUNC_DEFAULT_ROOT "); the destination's runc\n"
		"  makes it again from the same bundle path, and it is deleted here.\n"
		"  docker:NAME: the Docker container NAME (or ID) of the dockerd at $DOCKER_HOST;\n"
		"  the destination's dockerd makes it again (same name, image, config) and its\n"
		"  own layer moves with it; it is removed here (--keep-source: left stopped).\n"
		"  --rootfs-dir DIR: the tree runs chrooted into DIR; its files move too, beside\n"
		"  its memory, into the destination's state directory, and the tree is chrooted\n"
		"  into that copy there.\n"
		"  --rootfs: the order of the files: priority (default: the open and mapped\n"
		"  files and every entry before the freeze, what changed since at it; then\n"
		"  what the tree touches, then the smallest), lazy (directory\n"
		"  order), eager (every file before the resume), none (shared storage: DIR is\n"
		"  the same on the destination, nothing moves).\n"
		"  --accept-wait MS: a container with TCP listeners has its network locked just\n"
		"  before the freeze and this long (default 500) to accept the connections\n"
		"  they have queued, which could not move; still queued then, it is refused.\n"
		"  --cow-max MIB: memory a parent shares copy-on-write with its children (a\n"
		"  prefork server's) comes back shared when the parent's pages go with the\n"
		"  state, inside the downtime (pre-copy and hybrid: those no round sent); up\n"
		"  to MIB of it does (default %d; 0: never), more comes back as one copy per\n"
		"  process, with a warning and the count in the stats.  stop-and-copy always\n"
		"  keeps the sharing.\n"
		"  --quiet-wait MS: a container is frozen right after its next answer goes out\n"
		"  (a TCP segment with data and PSH), so that a client waiting for its answers\n"
		"  meets the downtime as late as possible; at most this long (default %d, at\n"
		"  most 1000; 0: at once).\n",
		MIG_COW_MAX_MIB, MIG_QUIET_WAIT_MS);
}

static int mig_runc_record(void *arg, const char *dir)
{
	return runc_record_head(arg, dir);
}

static int mig_runc_record_tail(void *arg, const char *dir)
{
	return runc_record_tail(arg, dir);
}

static void *mig_runc_record_stats(void *arg)
{
	return runc_record_stats_json(arg);
}

/* the source's copy was killed after the switch-over: Docker removes it */
static bool keep_source;
/* its volumes moved as trees before the freeze (mig_source_opts.volumes_moved) */
static bool volumes_moved;
static int mig_docker_record(void *arg, const char *dir)
{
	int r = runc_record(docker_src_runc(arg), dir);
	return r < 0 || volumes_moved ? r : docker_src_record_volumes(arg, dir);
}

static int mig_docker_image(void *arg, int fd, uint32_t layers_here, uint64_t *skipped)
{
	return docker_src_save_image(arg, fd, layers_here, skipped);
}

static void mig_docker_committed(void *arg, const struct inet_sk_diag *tcp, size_t n)
{
	docker_src_committed(arg, tcp, n);
}

static void mig_docker_gone(void *arg)
{
	docker_src_end(arg, true, keep_source);
}

/* the source's copy was killed after the switch-over: runc forgets it */
static void mig_runc_gone(void *arg)
{
	if (runc_finish(arg, false) < 0)
		fprintf(stderr, "dmigrate: warning: %s\n", dm_last_error());
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "mode", required_argument, NULL, 'm' },
		{ "stats", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "dump-threads", required_argument, NULL, 'j' },
		{ "precopy-rounds", required_argument, NULL, 'r' },
		{ "work-dir", required_argument, NULL, 'w' },
		{ "runc-root", required_argument, NULL, 'T' },
		{ "rootfs-dir", required_argument, NULL, 'R' },
		{ "rootfs", required_argument, NULL, 'F' },
		{ "keep-source", no_argument, NULL, 'K' },
		{ "accept-wait", required_argument, NULL, 'A' },
		{ "cow-max", required_argument, NULL, 'C' },
		{ "quiet-wait", required_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct mig_source_opts o = { .mode = MIG_POST_COPY, .quiet_wait_ms = MIG_QUIET_WAIT_MS };
	struct mig_result res;
	struct net_key key;
	const char *keyfile = NULL, *stats = NULL, *pidfile = NULL, *runc_root = NULL, *ctr_id = NULL;
	_cleanup_close_ int pidfile_fd = -1;
	_cleanup_free_ uint8_t *base = NULL;
	_cleanup_free_ struct mig_volume *volumes = NULL;
	struct runc_ct *ct = NULL;
	struct docker_src *ds = NULL;
	const char *docker_name = NULL;
	bool json = false, quiet = false, rootfs_set = false;
	long v;
	int c, r;

	while ((c = getopt_long(argc, argv, "t:k:Im:s:JP:qj:r:w:R:F:T:KA:C:Q:h", opts, NULL)) != -1) {
		switch (c) {
		case 't': o.to = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'I': o.insecure = true; break;
		case 'm':
			if (mig_mode_parse(optarg, &o.mode) < 0) {
				fprintf(stderr, "dmigrate: migrate: unknown mode '%s'\n", optarg);
				return 2;
			}
			break;
		case 's': stats = optarg; break;
		case 'J': json = true; break;
		case 'P': pidfile = optarg; break;
		case 'q': quiet = true; break;
		case 'j':
			if (parse_long(optarg, &v) < 0 || v < 1 || v > 256) {
				fprintf(stderr, "dmigrate: migrate: bad --dump-threads '%s'\n", optarg);
				return 2;
			}
			o.dump_threads = v;
			break;
		case 'r':
			if (parse_long(optarg, &v) < 0 || v < 1 || v > 1000) {
				fprintf(stderr, "dmigrate: migrate: bad --precopy-rounds '%s'\n", optarg);
				return 2;
			}
			o.precopy_max_rounds = v;
			break;
		case 'w': o.work_dir = optarg; break;
		case 'T': runc_root = optarg; break;
		case 'R': o.rootfs_dir = optarg; break;
		case 'F':
			if (rfs_mode_parse(optarg, &o.rootfs_mode) < 0) {
				fprintf(stderr, "dmigrate: migrate: unknown --rootfs '%s' (priority, lazy, eager, none)\n",
					optarg);
				return 2;
			}
			rootfs_set = true;
			break;
		case 'K': keep_source = true; break;
		case 'A':
			if (parse_long(optarg, &v) < 0 || v < 1 || v > 600000) {
				fprintf(stderr, "dmigrate: migrate: bad --accept-wait '%s' (1 to 600000 ms)\n", optarg);
				return 2;
			}
			o.accept_wait_ms = (unsigned)v;
			break;
		case 'Q':
			if (parse_long(optarg, &v) < 0 || v < 0 || v > 1000) {
				fprintf(stderr, "dmigrate: migrate: bad --quiet-wait '%s' (0 to 1000 ms)\n", optarg);
				return 2;
			}
			o.quiet_wait_ms = (unsigned)v;
			break;
		case 'C':
			if (parse_long(optarg, &v) < 0 || v < 0 || v > (1L << 30)) {
				fprintf(stderr, "dmigrate: migrate: bad --cow-max '%s' (MiB, 0 or more)\n", optarg);
				return 2;
			}
			o.cow_max_set = true;
			o.cow_max_mib = (uint64_t)v;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	const char *t = optind < argc ? argv[optind] : "";
	if (!strncmp(t, "docker:", 7)) {
		docker_name = t + 7;
		if (!docker_name[0]) {
			fprintf(stderr, "dmigrate: migrate: docker: names no container\n");
			return 2;
		}
		/* its own layer is its rootfs: it moves before it starts there */
		if (o.rootfs_dir) {
			fprintf(stderr, "dmigrate: migrate: a Docker container's layer moves by itself: no "
					"--rootfs-dir\n");
			return 2;
		}
		if (rootfs_set && o.rootfs_mode != RFS_EAGER) {
			fprintf(stderr, "dmigrate: migrate: a Docker container's layer moves eagerly (--rootfs "
					"eager); the lazy modes are not done for Docker\n");
			return 2;
		}
		rootfs_set = false;
	} else if (keep_source) {
		fprintf(stderr, "dmigrate: migrate: --keep-source is for a docker:NAME target\n");
		return 2;
	}
	if (rootfs_set && !o.rootfs_dir) {
		fprintf(stderr, "dmigrate: migrate: --rootfs needs --rootfs-dir DIR\n");
		return 2;
	}
	if (o.rootfs_dir && !rootfs_set)
		o.rootfs_mode = RFS_PRIORITY;
	if (optind + 1 != argc || !o.to || (!keyfile && !o.insecure) || (keyfile && o.insecure)) {
		usage(stderr);
		return 2;
	}
	if (docker_name) {
		r = docker_src_open(docker_name, runc_root, &ds);
		if (r < 0) {
			fprintf(stderr, "dmigrate: migration failed: %s\n", dm_error_text(r));
			return 1;
		}
		ct = docker_src_runc(ds);
		o.pid = runc_init_pid(ct);
		o.container = runc_dump_hooks(ct);
		o.container_record = mig_docker_record;
		o.container_gone = mig_docker_gone;
		o.container_committed = mig_docker_committed;
		o.container_arg = ds;
		o.docker_inspect = docker_src_inspect_text(ds);
		o.rootfs_dir = docker_src_layer(ds);
		o.rootfs_mode = RFS_EAGER;
		o.rootfs_is_layer = true;
		o.address_changes = docker_src_address_changes(ds);
		o.image_save = mig_docker_image;
		o.image_layers = docker_src_image_layers(ds, &o.n_image_layers);
		r = docker_src_layer_dirs(ds, &o.layer_dirs, &o.n_layer_dirs, &o.layer_dirs_all);
		if (r >= 0 && !getenv("DMIGRATE_TEST_VOLUMES_AS_TAR"))
			r = docker_src_volumes(ds, &volumes, &o.n_volumes);
		o.volumes = volumes;
		o.volumes_moved = &volumes_moved;
		if (r < 0) {
			fprintf(stderr, "dmigrate: migration failed: %s\n", dm_error_text(r));
			docker_src_free(ds);
			return 1;
		}
		v = o.pid;
	} else if (!strncmp(t, "runc:", 5)) {
		pid_t unused;
		if (runc_parse_target(t, &ctr_id, &unused) < 0) {
			fprintf(stderr, "dmigrate: migrate: %s\n", dm_last_error());
			return 2;
		}
	} else if (runc_root) {
		fprintf(stderr, "dmigrate: migrate: --runc-root is for a runc:ID or docker:NAME target\n");
		return 2;
	}
	if (ctr_id) {
		r = runc_open(runc_root, ctr_id, &ct);
		if (r < 0) {
			fprintf(stderr, "dmigrate: migration failed: %s\n", dm_error_text(r));
			return 1;
		}
		o.pid = runc_init_pid(ct);
		o.container = runc_dump_hooks(ct);
		o.container_record = mig_runc_record;
		o.container_record_beside = mig_runc_record_tail;
		o.container_record_stats = mig_runc_record_stats;
		o.container_gone = mig_runc_gone;
		o.container_arg = ct;
		o.container_id = runc_id(ct);
		o.container_rootfs = runc_rootfs(ct);
		r = runc_base_record(ct, &base, &o.container_base_len);
		o.container_base = base;
		if (r >= 0)
			r = runc_bridges(ct, &o.container_bridges, &o.n_container_bridges);
		if (r < 0) {
			fprintf(stderr, "dmigrate: migration failed: nothing was changed: %s\n", dm_error_text(r));
			return 1;
		}
	} else if (!docker_name && (strncmp(t, "pid:", 4) || parse_long(t + 4, &v) < 0)) {
		fprintf(stderr, "dmigrate: migrate: the target must be pid:PID (got '%s')\n", t);
		return 2;
	}
	/* a number that cannot be a pid is a usage error; a pid that cannot be
	 * migrated (init, a thread, dmigrate's own tree) is refused below, by
	 * the migration, with the reason */
	if (!ctr_id && !docker_name && (v <= 0 || v > (1 << 22))) {
		fprintf(stderr, "dmigrate: migrate: bad pid %ld in '%s' (pids are 1 to %d)\n", v, t, 1 << 22);
		return 2;
	}
	if (!ctr_id && !docker_name)
		o.pid = v;
	if (stats && (r = json_check_writable(stats)) < 0) {
		fprintf(stderr, "dmigrate: migrate: cannot write the statistics to %s: %s (nothing was "
			"done)\n", stats, strerror(-r));
		runc_free(ct);
		return 1;
	}
	if (pidfile) {
		pidfile_fd = open(pidfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (pidfile_fd < 0) {
			fprintf(stderr, "dmigrate: migrate: cannot write the pid file %s: %s (nothing was "
				"done)\n", pidfile, strerror(errno));
			runc_free(ct);
			return 1;
		}
	}
	if (o.insecure) {
		fprintf(stderr, "dmigrate: WARNING: --insecure: the migration is neither authenticated nor "
				"encrypted (benchmarks only)\n");
	} else {
		r = net_key_load(keyfile, &key);
		if (r < 0) {
			fprintf(stderr, "dmigrate: %s\n", dm_last_error()[0] ? dm_last_error() : strerror(-r));
			return 1;
		}
		o.key = &key;
	}
	o.progress = !quiet && isatty(STDERR_FILENO);

	/* what we change about a tree that runs on is undone by it if we die first */
	struct src_guard *guard = NULL;
	if (src_guard_start(&guard) < 0)
		fprintf(stderr, "dmigrate: warning: %s (if this process dies before the switch-over, the "
				"container's network lock stays)\n", dm_last_error());
	o.guard = guard;
	if (ds) {
		/* dockerd must not start it again here when its tree is killed */
		r = docker_src_hold(ds);
		if (r < 0) {
			fprintf(stderr, "dmigrate: migration failed: %s\n", dm_error_text(r));
			src_guard_free(guard);
			docker_src_free(ds);
			return 1;
		}
		const char *host, *id;
		char *pol;
		if (docker_src_held(ds, &host, &id, &pol)) {
			src_guard_docker_policy(guard, host, id, pol);
			free(pol);
		}
	}
	r = mig_source_run(&o, &res);
	if (ds && !res.switched)
		docker_src_end(ds, false, keep_source);
	if (r < 0)
		fprintf(stderr, "dmigrate: migration failed: %s\n", dm_last_error()[0] ? dm_last_error() : strerror(-r));
	if (res.dest_pid > 0 && pidfile && res.switched) {
		int w = cli_pidfile_write(pidfile_fd, res.dest_pid);
		if (w < 0) {
			fprintf(stderr, "dmigrate: the tree runs on the destination (pid %d), but its pid "
				"could not be written to %s: %s\n", res.dest_pid, pidfile, strerror(-w));
			if (r >= 0)
				r = w;
		}
	}
	if (res.stats) {
		int w = stats ? json_write_file(res.stats, stats) : 0;
		if (w < 0) {
			fprintf(stderr, "dmigrate: the statistics could not be written to %s: %s\n", stats,
				strerror(-w));
			if (r >= 0)
				r = w;
		}
		if (json) {
			json_dumpf(res.stats, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
			fputc('\n', stdout);
		}
		json_decref(res.stats);
	}
	/* whatever a rollback had to undo, it did */
	src_guard_free(guard);
	if (ds)
		docker_src_free(ds);
	else
		runc_free(ct);
	return r < 0 ? 1 : 0;
}

/* dmigrate daemon ...: dmigrated, as a verb of this binary */
int cmd_daemon(int argc, char **argv)
{
	return daemon_main(argc, argv);
}
