/* SPDX-License-Identifier: MIT */
/*
 * dmigrated --listen ADDR:PORT --key FILE [--insecure] [--state-dir DIR] [-v]
 * (also 'dmigrate daemon ...': the same front end, so that the demo and the
 * tests need one binary only)
 *
 * Receives migrations (src/migrate/dest-daemon.c; one migration:
 * dest.c).  Front end only: parse, call the library, log.
 */
#include "daemon/daemon.h"
#include "base/log.h"
#include "migrate/migrate.h"
#include "net/net.h"

#include <getopt.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dmigrated [--listen ADDR:PORT] --key FILE [--state-dir DIR] [-v|-vv]\n"
		"                 [--once] [--ready-file FILE] [--keep-images] [--peer-timeout S]\n"
		"                 [--bridge NAME]\n"
		"       dmigrated [--listen ADDR:PORT] --insecure ...\n"
		"       dmigrated --help | --version\n"
		"  Receives live migrations from 'dmigrate migrate --to ADDR:PORT'.  Listens on\n"
		"  127.0.0.1:%u unless told.  Every channel is TLS 1.3 authenticated with the\n"
		"  shared key (dmigrate keygen FILE; the same file on both hosts).  --insecure\n"
		"  drops authentication and encryption: benchmarks only.  Incoming images go to\n"
		"  DIR/incoming (default /var/lib/dmigrate) and are removed after the restore.\n"
		"  --once: exit after one migration; --ready-file FILE: write the port to FILE\n"
		"  once listening; --keep-images: leave the images (debugging); -v, --verbose\n"
		"  (twice: debug): log more.\n"
		"  --peer-timeout S: give a migration up when its source sends nothing for S\n"
		"  seconds while it should send the state or the memory (default 60).\n"
		"  --bridge NAME: a runc container's veths go on bridge NAME here (default: the\n"
		"  bridge of the same name as at the source); a migration is refused before the\n"
		"  freeze if it is not here.\n",
		NET_DEFAULT_PORT);
}

int daemon_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "key", required_argument, NULL, 'k' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "once", no_argument, NULL, '1' },
		{ "ready-file", required_argument, NULL, 'R' },
		{ "keep-images", no_argument, NULL, 'K' },
		{ "peer-timeout", required_argument, NULL, 'T' },
		{ "bridge", required_argument, NULL, 'B' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	struct mig_daemon_opts o = {};
	struct net_key key;
	const char *keyfile = NULL;
	int c, r, level = LOG_WARN;
	unsigned long secs;

	optind = 1;
	while ((c = getopt_long(argc, argv, "l:k:Id:1R:KT:B:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': o.listen = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'I': o.insecure = true; break;
		case 'd': o.state_dir = optarg; break;
		case '1': o.max_migrations = 1; break;
		case 'R': o.ready_file = optarg; break;
		case 'K': o.keep_images = true; break;
		case 'T':
			if (parse_ulong(optarg, &secs) < 0 || secs == 0 || secs > 86400) {
				fprintf(stderr, "dmigrated: --peer-timeout wants seconds, 1 to 86400 (got '%s')\n", optarg);
				return 2;
			}
			o.peer_timeout_ms = (int)secs * 1000;
			break;
		case 'B':
			if (!optarg[0] || strlen(optarg) >= 16 || strchr(optarg, '/') || strchr(optarg, ' ')) {
				fprintf(stderr, "dmigrated: --bridge wants an interface name (got '%s')\n", optarg);
				return 2;
			}
			o.bridge = optarg;
			break;
		case 'v': level = level < LOG_INFO ? LOG_INFO : LOG_DEBUG; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dmigrated %s\n", DM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (!keyfile && !o.insecure) || (keyfile && o.insecure)) {
		usage(stderr);
		return 2;
	}
	dm_log_init(level, -1);
	/* --insecure: the listener warns, once, naming its address */
	if (!o.insecure) {
		r = net_key_load(keyfile, &key);
		if (r < 0) {
			fprintf(stderr, "dmigrated: %s\n", dm_last_error()[0] ? dm_last_error() : strerror(-r));
			return 1;
		}
		o.key = &key;
	}
	r = mig_daemon_run(&o);
	if (r < 0) {
		fprintf(stderr, "dmigrated: %s\n", dm_last_error()[0] ? dm_last_error() : strerror(-r));
		return 1;
	}
	return 0;
}
