/* SPDX-License-Identifier: MIT */
/* dmigrate keygen FILE: a fresh shared key (mode 0600) for both hosts of a migration. */
#include "base/log.h"
#include "cli/cli.h"
#include "net/net.h"

#include <string.h>

int cmd_keygen(int argc, char **argv)
{
	int r;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: dmigrate keygen FILE\n"
		       "  Writes a fresh random key (32 bytes, hex) to FILE, mode 0600.  Copy it to\n"
		       "  both hosts: dmigrated --key FILE and dmigrate migrate --key FILE.\n"
		       "  An existing FILE is never overwritten.\n");
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: dmigrate keygen FILE\n");
		return 2;
	}
	r = net_keygen(argv[1]);
	if (r < 0) {
		fprintf(stderr, "dmigrate: keygen: %s\n", dm_last_error()[0] ? dm_last_error() : strerror(-r));
		return 1;
	}
	return 0;
}
