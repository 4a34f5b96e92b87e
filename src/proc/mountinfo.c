/* SPDX-License-Identifier: MIT */
/*
 * /proc/PID/mountinfo:
 *
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
 *
 * (7) is zero or more "tag[:value]" fields ended by the "-" field.  The
 * strings are escaped by the kernel (" \t\n\\" as "\ooo", the backslash
 * included), so splitting on ' ' is exact and the decoding is too.
 */
#include "proc/proc-internal.h"

#include <limits.h>

void proc_mount_list_done(struct proc_mount_list *l)
{
	if (!l)
		return;
	free(l->mounts);
	free(l->storage);
	*l = (struct proc_mount_list){};
}

/* Next ' '-separated field of [*p, end), NUL-terminated in place and decoded. */
static int next_field(char **p, char *end, char **ret, bool decode)
{
	char *s = *p, *e;

	if (s >= end)
		return -EBADMSG;
	e = memchr(s, ' ', (size_t)(end - s));
	if (!e)
		e = end;
	if (e == s)
		return -EBADMSG;	/* empty field: two blanks in a row */
	size_t n = (size_t)(e - s);
	*p = e < end ? e + 1 : e;
	if (decode)
		n = pp_unescape_octal(s, n);
	s[n] = 0;	/* the ' ' or the line end; decoding only shrinks */
	*ret = s;
	return 0;
}

static int whole_int(const char *s, int *ret)
{
	const char *p = s, *end = s + strlen(s);
	if (pp_dec_int(&p, end, ret) < 0 || p != end)
		return -EBADMSG;
	return 0;
}

static int parse_mount_line(char *l, char *end, struct proc_mount *m)
{
	char *f, *p = l;
	const char *q;

	if (memchr(l, 0, (size_t)(end - l)))
		return -EBADMSG;
	*m = (struct proc_mount){};

	if (next_field(&p, end, &f, false) < 0 || whole_int(f, &m->mnt_id) < 0 ||
	    next_field(&p, end, &f, false) < 0 || whole_int(f, &m->parent_id) < 0)
		return -EBADMSG;

	if (next_field(&p, end, &f, false) < 0)
		return -EBADMSG;
	q = f;
	const char *fe = f + strlen(f);
	if (pp_dec_uint(&q, fe, &m->major) < 0 || !pp_char(&q, fe, ':') ||
	    pp_dec_uint(&q, fe, &m->minor) < 0 || q != fe)
		return -EBADMSG;

	char *root, *mp, *opts;
	if (next_field(&p, end, &root, true) < 0 || next_field(&p, end, &mp, true) < 0 ||
	    next_field(&p, end, &opts, true) < 0)
		return -EBADMSG;
	m->root = root;
	m->mountpoint = mp;
	m->options = opts;

	/* optional fields, up to "-" */
	for (;;) {
		if (next_field(&p, end, &f, false) < 0)
			return -EBADMSG;
		if (strcmp(f, "-") == 0)
			break;
		const char *colon = strchr(f, ':');
		int *dst = NULL;
		if (strcmp(f, "unbindable") == 0) {
			m->unbindable = true;
			continue;
		}
		if (!colon)
			continue;	/* a tag of a later kernel */
		if (pp_startswith(f, (size_t)(colon - f), "shared") && colon - f == 6)
			dst = &m->shared;
		else if (pp_startswith(f, (size_t)(colon - f), "master") && colon - f == 6)
			dst = &m->master;
		else if (pp_startswith(f, (size_t)(colon - f), "propagate_from") && colon - f == 14)
			dst = &m->propagate_from;
		if (dst && (whole_int(colon + 1, dst) < 0 || *dst <= 0))
			return -EBADMSG;
	}

	char *type, *src, *sopts;
	if (next_field(&p, end, &type, true) < 0 || next_field(&p, end, &src, true) < 0 ||
	    next_field(&p, end, &sopts, true) < 0 || p != end)
		return -EBADMSG;
	m->fstype = type;
	m->source = src;
	m->super_options = sopts;
	return 0;
}

static size_t count_lines(const char *buf, size_t len)
{
	size_t n = 0;
	for (const char *p = buf, *end = buf + len; p < end && (p = memchr(p, '\n', end - p)); p++)
		n++;
	return n;
}

int proc_parse_mountinfo(const char *buf, size_t len, struct proc_mount_list *ret)
{
	_cleanup_free_ char *storage = pp_dup(buf, len);
	size_t cap = count_lines(storage, len), n = 0, llen;
	_cleanup_free_ struct proc_mount *m = cap ? xmalloc(cap * sizeof(*m)) : NULL;
	const char *p = storage, *end = storage + len, *line;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		char *l = (char *)line;
		if (n == cap)
			return -EBADMSG;	/* cannot happen: one '\n' per line */
		if (parse_mount_line(l, l + llen, &m[n]) < 0)
			return -EBADMSG;
		n++;
	}
	if (r < 0)
		return r;

	ret->mounts = TAKE_PTR(m);
	ret->n = n;
	ret->storage = TAKE_PTR(storage);
	return (int)MIN(n, (size_t)INT_MAX);
}

int proc_read_mountinfo(pid_t pid, struct proc_mount_list *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, 0, "mountinfo", 64UL * 1024, PROC_MAX_BIG, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_mountinfo(buf, len, ret);
}
