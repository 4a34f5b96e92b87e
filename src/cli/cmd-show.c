/* SPDX-License-Identifier: MIT */
#include "base/log.h"
#include "cli/cli.h"
#include "image/image.h"

#include <getopt.h>
#include <string.h>

int cmd_show_image(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_image_ struct dm_image *img = NULL;
	bool json = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: dmigrate show-image DIR [--json]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: dmigrate show-image DIR [--json]\n");
		return 2;
	}
	r = image_open(argv[optind], false, &img);
	if (r >= 0)
		r = image_show(img, json, stdout);
	if (r < 0) {
		fprintf(stderr, "dmigrate: show-image: %s\n", dm_last_error()[0] ? dm_last_error() : strerror(-r));
		return 1;
	}
	return 0;
}
