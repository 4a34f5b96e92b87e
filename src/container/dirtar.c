/* SPDX-License-Identifier: MIT */
/*
 * A directory tree as a tar file, in process (dirtar.h).  Entries are
 * described by libarchive's read_disk (modes, numeric owners, times,
 * xattrs; no user or group names looked up), hard links resolved by its
 * link resolver, regular files' data copied as it is (holes read as
 * zeros, as tar without --sparse does).
 */
#define LOG_PREFIX "containers: "
#include "container/dirtar.h"
#include "base/log.h"
#include "base/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIRTAR_DEPTH_MAX 64
#define DIRTAR_ENTRIES_MAX 1000000

struct tw {
	const char *src;
	struct archive *w, *disk;
	struct archive_entry_linkresolver *lr;
	dev_t dev;
	size_t n;
	char *buf;
};

static int copy_data(struct tw *t, struct archive_entry *e, const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	la_int64_t left = archive_entry_size(e);

	if (fd < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	while (left > 0) {
		ssize_t got = read(fd, t->buf, (size_t)MIN((la_int64_t)(1 << 20), left));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return dm_fail(neg_errno(), "%s: %m", path);
		if (got == 0)
			return dm_fail(-EIO, "%s: shorter than its size while being saved", path);
		if (archive_write_data(t->w, t->buf, (size_t)got) != got)
			return dm_fail(-EIO, "%s: %s", path, archive_error_string(t->w));
		left -= got;
	}
	return 0;
}

static int write_one(struct tw *t, struct archive_entry *e, const char *path)
{
	bool data = archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0;

	if (archive_write_header(t->w, e) != ARCHIVE_OK)
		return dm_fail(-EIO, "%s: %s", path, archive_error_string(t->w));
	return data ? copy_data(t, e, path) : 0;
}

/* One entry: rel is "./REL" ("." for the top) */
static int add(struct tw *t, const char *rel, struct stat *ret_st)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", t->src, rel);
	struct archive_entry *e = archive_entry_new(), *spare = NULL;
	int r = 0;

	if (lstat(path, ret_st) < 0) {
		archive_entry_free(e);
		return dm_fail(neg_errno(), "%s: %m", path);
	}
	if (++t->n > DIRTAR_ENTRIES_MAX) {
		archive_entry_free(e);
		return dm_fail(-E2BIG, "%s: more than %d entries", t->src, DIRTAR_ENTRIES_MAX);
	}
	archive_entry_copy_sourcepath(e, path);
	if (archive_read_disk_entry_from_file(t->disk, e, -1, ret_st) != ARCHIVE_OK) {
		r = dm_fail(-EIO, "%s: %s", path, archive_error_string(t->disk));
		archive_entry_free(e);
		return r;
	}
	archive_entry_copy_pathname(e, rel);
	archive_entry_sparse_clear(e);
	/* a second name of a file already written goes as a link to it */
	archive_entry_linkify(t->lr, &e, &spare);
	if (e)
		r = write_one(t, e, path);
	if (r >= 0 && spare)
		r = write_one(t, spare, archive_entry_sourcepath(spare));
	archive_entry_free(e);
	archive_entry_free(spare);
	return r;
}

static int walk(struct tw *t, const char *rel, int depth)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", t->src, rel);
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return dm_fail(neg_errno(), "%s: %m", path);
	if (depth > DIRTAR_DEPTH_MAX)
		return dm_fail(-ELOOP, "%s: more than %d directories deep", path, DIRTAR_DEPTH_MAX);
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *sub = xasprintf("%s/%s", rel, de->d_name);
		_cleanup_free_ char *sp = xasprintf("%s/%s", t->src, sub);
		struct stat st;
		if (lstat(sp, &st) < 0)
			return dm_fail(neg_errno(), "%s: %m", sp);
		/* the file of a bound unix socket comes back with the socket */
		if (S_ISSOCK(st.st_mode))
			continue;
		int r = add(t, sub, &st);
		if (r < 0)
			return r;
		/* a mount point's directory goes, not what is mounted on it */
		if (S_ISDIR(st.st_mode) && st.st_dev == t->dev) {
			r = walk(t, sub, depth + 1);
			if (r < 0)
				return r;
		}
	}
	if (errno)
		return dm_fail(neg_errno(), "%s: %m", path);
	return 0;
}

int dirtar_create(const char *src, const char *const *only, size_t n_only, const char *dst, size_t *ret_n)
{
	struct tw t = { .src = src };
	struct archive_entry *e = NULL, *spare = NULL;
	struct stat st;
	int r;

	t.w = archive_write_new();
	t.disk = archive_read_disk_new();
	t.lr = archive_entry_linkresolver_new();
	t.buf = xmalloc(1 << 20);
	/* pax, not pax_restricted: every time with its nanoseconds (a file
	 * the tree maps or opens is checked by its mtime at restore) */
	archive_write_set_format_pax(t.w);
	/* xattrs as GNU tar reads them back (the restore runs tar -x) */
	archive_write_set_option(t.w, "pax", "xattrheader", "SCHILY");
	archive_write_add_filter_none(t.w);
	archive_entry_linkresolver_set_strategy(t.lr, archive_format(t.w));
	/* numeric owners only: no user or group names looked up */
	archive_read_disk_set_symlink_physical(t.disk);
	if (archive_write_open_filename(t.w, dst) != ARCHIVE_OK) {
		r = dm_fail(-EIO, "%s: %s", dst, archive_error_string(t.w));
		goto out;
	}
	if (only) {
		for (size_t i = 0; i < n_only; i++) {
			r = add(&t, only[i], &st);
			if (r < 0)
				goto out;
		}
	} else {
		r = add(&t, ".", &st);
		if (r < 0)
			goto out;
		t.dev = st.st_dev;
		r = walk(&t, ".", 0);
		if (r < 0)
			goto out;
	}
	/* the files of which not every name was seen */
	for (;;) {
		archive_entry_linkify(t.lr, &e, &spare);
		if (!e)
			break;
		r = write_one(&t, e, archive_entry_sourcepath(e));
		archive_entry_free(e);
		e = NULL;
		if (r < 0)
			goto out;
	}
	r = archive_write_close(t.w) == ARCHIVE_OK ? 0 : dm_fail(-EIO, "%s: %s", dst, archive_error_string(t.w));
out:
	archive_entry_linkresolver_free(t.lr);
	archive_read_free(t.disk);
	archive_write_free(t.w);
	free(t.buf);
	if (r >= 0 && ret_n)
		*ret_n = t.n;
	return r;
}
