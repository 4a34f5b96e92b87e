/* SPDX-License-Identifier: MIT */
/*
 * A Docker image's layers, as `docker save` and dockerd's layer store name
 * them (docs/docker.md, "Image").
 *
 * An image's root file system is a list of layer diff IDs (sha256 of each
 * layer's uncompressed tar); the layer store keys a layer by its chain ID,
 * a digest of the layer's diff ID with every one below it, so a host has the
 * first k layers of an image exactly when one of its images' lists of diff
 * IDs begins with the same k.  `docker load` reads no layer.tar of a layer
 * whose chain ID the store has: a destination that has the first k layers of
 * an image is sent a `docker save` tar without their layer.tar files.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Copies the `docker save` tar of one image from in_fd (seekable, read from
 * its start) to out_fd, without the layer.tar files of its first skip layers
 * (diff IDs diffs[0..n)), as its manifest.json names them.  A skipped
 * layer's diff ID that a later, sent layer has too stays (save links such
 * duplicates to one file).  Fails, named, if the tar is not an image of
 * those n layers.  *ret_skipped: the bytes left out.
 */
int image_tar_without_layers(int in_fd, int out_fd, const char *const *diffs, size_t n, size_t skip,
			     uint64_t *ret_skipped);
