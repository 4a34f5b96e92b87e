/* SPDX-License-Identifier: MIT */
/* dmigrate-runc: the OCI runtime registered with dockerd (runtime.c, docs/docker.md). */
#include "container/handoff.h"

int main(int argc, char **argv)
{
	return runtime_main(argc, argv);
}
