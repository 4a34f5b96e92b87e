/* SPDX-License-Identifier: MIT */
#include "base/log.h"
int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 0;
}
