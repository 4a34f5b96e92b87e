/* SPDX-License-Identifier: MIT */
/*
 * Bytes buffered inside a pseudo terminal, both ways:
 *   input:  written to the master, not yet read from the slave (typed keys);
 *   output: written to the slave, not yet read from the master.
 * Reading them is destructive; writing them back must bypass the line
 * discipline's processing (echo, CR/NL mapping, signals, output
 * post-processing), which these helpers switch off for the moment they work.
 * Shared by the dump (read, and put back with --leave-running) and the
 * restore (put into the new pair).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define TTY_DATA_MAX (1u << 20)

/* master: a description of the master; slave: one of the slave (O_NONBLOCK).
 * On success the two buffers are malloc'ed (NULL when empty). */
int tty_data_read(int master, int slave, uint8_t **ret_in, size_t *ret_in_len, uint8_t **ret_out,
		  size_t *ret_out_len);
int tty_data_write(int master, int slave, const uint8_t *in, size_t in_len, const uint8_t *out,
		   size_t out_len);
