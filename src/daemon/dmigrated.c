/* SPDX-License-Identifier: MIT */
/* dmigrated: the daemon that receives migrations (front end in daemon-cli.c). */
#include "daemon/daemon.h"

int main(int argc, char **argv)
{
	return daemon_main(argc, argv);
}
