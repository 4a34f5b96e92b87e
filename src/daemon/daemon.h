/* SPDX-License-Identifier: MIT */
#pragma once
/* The dmigrated front end: argv[0] is the program or verb name; returns the exit code. */
int daemon_main(int argc, char **argv);
