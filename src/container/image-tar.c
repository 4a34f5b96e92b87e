/* SPDX-License-Identifier: MIT */
/*
 * A `docker save` tar without the layers a destination has (image-tar.h).  The tar is read and written
 * with libarchive; the manifest with jansson.
 */
#define LOG_PREFIX "docker: "
#include "container/image-tar.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* the manifest is a few hundred bytes a layer */
#define MANIFEST_MAX (4U << 20)
#define COPY_BUF (256U << 10)

static const char *entry_name(struct archive_entry *e)
{
	const char *p = archive_entry_pathname(e);

	if (!p)
		return "";
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	return p;
}

static struct archive *reader(int fd)
{
	struct archive *a = archive_read_new();

	archive_read_support_format_tar(a);
	archive_read_support_filter_none(a);
	if (archive_read_open_fd(a, fd, 64 << 10) != ARCHIVE_OK) {
		dm_fail(-EBADMSG, "the image's tar cannot be read: %s", archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* pass 1: the manifest's layer paths of the one image in the tar */
static int read_manifest(int fd, size_t n, char ***ret)
{
	struct archive *a;
	struct archive_entry *e;
	_cleanup_free_ char *text = NULL;
	json_t *m = NULL;
	int r;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return dm_fail(neg_errno(), "the image's tar: %m");
	a = reader(fd);
	if (!a)
		return -EBADMSG;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (strcmp(entry_name(e), "manifest.json"))
			continue;
		la_int64_t size = archive_entry_size(e);
		if (size <= 0 || (uint64_t)size > MANIFEST_MAX) {
			r = dm_fail(-EBADMSG, "the image's tar: manifest.json of %lld bytes", (long long)size);
			goto out;
		}
		text = xmalloc((size_t)size + 1);
		if (archive_read_data(a, text, (size_t)size) != size) {
			r = dm_fail(-EBADMSG, "the image's tar: manifest.json: %s", archive_error_string(a));
			goto out;
		}
		text[size] = 0;
		break;
	}
	if (!text) {
		r = dm_fail(-EBADMSG, "the image's tar has no manifest.json%s%s", r == ARCHIVE_EOF ? "" : ": ",
			    r == ARCHIVE_EOF ? "" : archive_error_string(a));
		goto out;
	}
	m = json_loads(text, 0, NULL);
	json_t *layers = json_object_get(json_array_get(m, 0), "Layers");
	if (!json_is_array(m) || json_array_size(m) != 1 || !json_is_array(layers) ||
	    json_array_size(layers) != n) {
		r = dm_fail(-EBADMSG, "the image's tar: its manifest.json is not one image of %zu layers", n);
		goto out;
	}
	char **paths = xcalloc(n + 1, sizeof(*paths));
	for (size_t i = 0; i < n; i++) {
		const char *p = json_string_value(json_array_get(layers, i));
		paths[i] = xstrdup(p ? p : "");
		while (!strncmp(paths[i], "./", 2))
			memmove(paths[i], paths[i] + 2, strlen(paths[i] + 2) + 1);
	}
	*ret = paths;
	r = 0;
out:
	json_decref(m);
	archive_read_free(a);
	return r;
}

static bool skipped(const char *name, char *const *skip, size_t n_skip)
{
	for (size_t i = 0; i < n_skip; i++)
		if (skip[i] && !strcmp(name, skip[i]))
			return true;
	return false;
}

/* pass 2: every entry but the skipped ones, to out_fd */
static int copy_without(int in_fd, int out_fd, char *const *skip, size_t n_skip, uint64_t *ret_skipped)
{
	_cleanup_free_ char *buf = xmalloc(COPY_BUF);
	struct archive *a, *w;
	struct archive_entry *e;
	int r;

	if (lseek(in_fd, 0, SEEK_SET) < 0)
		return dm_fail(neg_errno(), "the image's tar: %m");
	a = reader(in_fd);
	if (!a)
		return -EBADMSG;
	w = archive_write_new();
	archive_write_set_format_pax_restricted(w);
	archive_write_add_filter_none(w);
	archive_write_set_bytes_in_last_block(w, 1);
	if (archive_write_open_fd(w, out_fd) != ARCHIVE_OK) {
		r = dm_fail(-EIO, "sending the image's tar: %s", archive_error_string(w));
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (archive_entry_filetype(e) == AE_IFREG && skipped(entry_name(e), skip, n_skip)) {
			*ret_skipped += (uint64_t)archive_entry_size(e);
			continue;	/* the next header skips its data */
		}
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			r = dm_fail(-EIO, "sending the image's tar: %s: %s", entry_name(e),
				    archive_error_string(w));
			goto out;
		}
		for (;;) {
			la_ssize_t got = archive_read_data(a, buf, COPY_BUF);
			if (got < 0) {
				r = dm_fail(-EBADMSG, "the image's tar: %s: %s", entry_name(e),
					    archive_error_string(a));
				goto out;
			}
			if (got == 0)
				break;
			if (archive_write_data(w, buf, (size_t)got) != got) {
				r = dm_fail(-EIO, "sending the image's tar: %s: %s", entry_name(e),
					    archive_error_string(w));
				goto out;
			}
		}
	}
	if (r != ARCHIVE_EOF) {
		r = dm_fail(-EBADMSG, "the image's tar: %s", archive_error_string(a));
		goto out;
	}
	r = archive_write_close(w) == ARCHIVE_OK ? 0
		: dm_fail(-EIO, "sending the image's tar: %s", archive_error_string(w));
out:
	archive_write_free(w);
	archive_read_free(a);
	return r;
}

int image_tar_without_layers(int in_fd, int out_fd, const char *const *diffs, size_t n, size_t skip,
			     uint64_t *ret_skipped)
{
	char **paths = NULL;
	int r;

	*ret_skipped = 0;
	if (skip > n)
		skip = n;
	r = read_manifest(in_fd, n, &paths);
	if (r < 0)
		return r;
	/* a layer sent whose diff is one skipped: save linked it to the
	 * skipped one's file, which must then come too */
	for (size_t i = 0; i < skip; i++)
		for (size_t j = skip; j < n && paths[i]; j++)
			if (!strcmp(diffs[i], diffs[j]))
				paths[i][0] = 0;
	r = copy_without(in_fd, out_fd, paths, skip, ret_skipped);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return r;
}
