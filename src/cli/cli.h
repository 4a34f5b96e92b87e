/* SPDX-License-Identifier: MIT */
#pragma once
#include <sys/types.h>
/* Each verb: argv[0] is the verb's name; returns the process exit code. */
int cmd_checkpoint(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_show_image(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_testhost(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_demo_workload(int argc, char **argv);
int cmd_setup(int argc, char **argv);
/* Writes "PID\n" over the pid file open on fd (0 or -errno). */
int cli_pidfile_write(int fd, pid_t pid);
