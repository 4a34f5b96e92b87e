/* SPDX-License-Identifier: MIT */
/*
 * The protocol between the restorer and a root stub that a container runtime
 * started for it (runc-stub.c, docs/containers.md): plain types only, the stub
 * is built without a libc.
 *
 *   restorer -> stub   struct ext_stub_args, one datagram on fd EXT_STUB_SOCK
 *   stub -> restorer   "R" once the blob is mapped and the transport is at
 *                      args.tfd (every other fd closed), or "E" + one byte
 *                      (enum ext_stub_err) before it exits
 */
#pragma once

#include <stdint.h>

#define EXT_STUB_EXE 3          /* the stub's own executable (a memfd), run as /proc/self/fd/3 */
#define EXT_STUB_SOCK 4         /* its end of the transport */
#define EXT_STUB_MAGIC 0x444d5354u
#define EXT_STUB_CODE_MAX 128   /* = INJ_BLOB_CODE_MAX */
#define EXT_STUB_ARGS_WAIT_MS 600000 /* the stub gives up without its arguments (a Docker container starts before the freeze) */
#define EXT_STUB_SEIZE_WAIT_MS 60000 /* ... or without being seized after "R" */

struct ext_stub_args {
	uint32_t magic;
	uint32_t tfd;           /* where the transport goes */
	uint64_t blob;          /* the blob's address */
	uint64_t blob_size;     /* mapped read-write ... */
	uint64_t code_size;     /* ... and its first code_size bytes then read-execute */
	uint32_t code_len;
	uint8_t code[EXT_STUB_CODE_MAX];
};

enum ext_stub_err {
	EXT_STUB_ERR_ARGS = 1,  /* no (valid) arguments in time */
	EXT_STUB_ERR_MMAP,
	EXT_STUB_ERR_MPROTECT,
	EXT_STUB_ERR_DUP,
	EXT_STUB_ERR_CLOSE,
	EXT_STUB_ERR_SEND,
	EXT_STUB_ERR_TIMEOUT,   /* never seized */
};
