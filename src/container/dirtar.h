/* SPDX-License-Identifier: MIT */
/*
 * A container's tmpfs files (and the files a service made in runc's /dev)
 * as a tar file, written in process with libarchive: they are saved while
 * the container is frozen, where a fork and exec of tar(1) cost 10-30 ms.
 *
 * The archive is what `tar --numeric-owner --xattrs --one-file-system -cf
 * DST -C SRC .` makes (pax, names "./REL", hard links as links, sockets
 * left out: a bound unix socket's file comes back with its socket), so
 * tar(1) reads it too.
 */
#pragma once

#include <stddef.h>

/*
 * Every entry below src on src's file system (only: just these names,
 * "./REL", without descending, like tar --no-recursion -T) into a new tar
 * file dst.  *ret_n: the entries written.  -errno, dm_fail'ed.
 */
int dirtar_create(const char *src, const char *const *only, size_t n_only, const char *dst, size_t *ret_n);
