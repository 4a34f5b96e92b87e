/* SPDX-License-Identifier: MIT */
/* Number scanners, unescaping and file reading shared by the /proc parsers. */
#include "proc/proc-internal.h"

#include <fcntl.h>
#include <limits.h>

int proc_path(char buf[PROC_PATH_MAX], pid_t pid, pid_t tid, const char *name)
{
	int n;

	if (pid < 0 || tid < 0)
		return -EINVAL;
	if (pid == PROC_SELF && tid == 0)
		n = snprintf(buf, PROC_PATH_MAX, "/proc/self/%s", name);
	else if (pid == PROC_SELF)
		n = snprintf(buf, PROC_PATH_MAX, "/proc/self/task/%d/%s", (int)tid, name);
	else if (tid == 0)
		n = snprintf(buf, PROC_PATH_MAX, "/proc/%d/%s", (int)pid, name);
	else
		n = snprintf(buf, PROC_PATH_MAX, "/proc/%d/task/%d/%s", (int)pid, (int)tid, name);
	if (n < 0 || n >= PROC_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int proc_read_file_hint(const char *path, size_t hint, size_t max, char **ret_buf, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return neg_errno();
	return read_full_fd_hint(fd, hint, max, ret_buf, ret_len);
}

int proc_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	return proc_read_file_hint(path, 16384, max, ret_buf, ret_len);
}

int proc_read_pid_file(pid_t pid, pid_t tid, const char *name, size_t hint, size_t max,
		       char **ret_buf, size_t *ret_len)
{
	char path[PROC_PATH_MAX];
	int r = proc_path(path, pid, tid, name);
	if (r < 0)
		return r;
	return proc_read_file_hint(path, hint, max, ret_buf, ret_len);
}

int pp_dec_u64(const char **p, const char *end, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s >= end || !pp_isdigit(*s))
		return -EBADMSG;
	for (; s < end && pp_isdigit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
	}
	*p = s;
	*ret = v;
	return 0;
}

int pp_hex_u64(const char **p, const char *end, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	int d;

	if (s >= end || pp_hexval(*s) < 0)
		return -EBADMSG;
	for (; s < end && (d = pp_hexval(*s)) >= 0; s++) {
		if (v >> 60)
			return -EBADMSG;
		v = (v << 4) | (unsigned)d;
	}
	*p = s;
	*ret = v;
	return 0;
}

int pp_oct_u64(const char **p, const char *end, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s >= end || *s < '0' || *s > '7')
		return -EBADMSG;
	for (; s < end && *s >= '0' && *s <= '7'; s++) {
		if (v >> 61)
			return -EBADMSG;
		v = (v << 3) | (unsigned)(*s - '0');
	}
	*p = s;
	*ret = v;
	return 0;
}

int pp_dec_s64(const char **p, const char *end, int64_t *ret)
{
	const char *s = *p;
	bool neg = pp_char(&s, end, '-');
	uint64_t v;

	if (pp_dec_u64(&s, end, &v) < 0)
		return -EBADMSG;
	if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
		return -EBADMSG;
	*p = s;
	/* -(INT64_MIN) is not representable: negate in unsigned arithmetic */
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int pp_dec_int(const char **p, const char *end, int *ret)
{
	const char *s = *p;
	int64_t v;

	if (pp_dec_s64(&s, end, &v) < 0 || v < INT_MIN || v > INT_MAX)
		return -EBADMSG;
	*p = s;
	*ret = (int)v;
	return 0;
}

int pp_dec_uint(const char **p, const char *end, unsigned int *ret)
{
	const char *s = *p;
	uint64_t v;

	if (pp_dec_u64(&s, end, &v) < 0 || v > UINT_MAX)
		return -EBADMSG;
	*p = s;
	*ret = (unsigned int)v;
	return 0;
}

int pp_dec_pid(const char **p, const char *end, pid_t *ret)
{
	const char *s = *p;
	uint64_t v;

	if (pp_dec_u64(&s, end, &v) < 0 || v > INT_MAX)
		return -EBADMSG;
	*p = s;
	*ret = (pid_t)v;
	return 0;
}

int pp_hex_u32(const char **p, const char *end, uint32_t *ret)
{
	const char *s = *p;
	uint64_t v;

	if (pp_hex_u64(&s, end, &v) < 0 || v > UINT32_MAX)
		return -EBADMSG;
	*p = s;
	*ret = (uint32_t)v;
	return 0;
}

static bool is_oct(char c) { return c >= '0' && c <= '7'; }

size_t pp_unescape_octal(char *s, size_t len)
{
	char *w = memchr(s, '\\', len);
	if (!w)
		return len;

	const char *r = w, *end = s + len;
	while (r < end) {
		if (*r == '\\' && end - r >= 4 && is_oct(r[1]) && is_oct(r[2]) && is_oct(r[3]) &&
		    r[1] <= '3') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	return (size_t)(w - s);
}

size_t pp_unescape_c(char *s, size_t len)
{
	char *w = memchr(s, '\\', len);
	if (!w)
		return len;

	const char *r = w, *end = s + len;
	while (r < end) {
		if (*r != '\\' || end - r < 2) {
			*w++ = *r++;
			continue;
		}
		char c;
		switch (r[1]) {
		case 'n': c = '\n'; break;
		case 't': c = '\t'; break;
		case 'r': c = '\r'; break;
		case 'f': c = '\f'; break;
		case 'v': c = '\v'; break;
		case 'a': c = '\a'; break;
		case 'e': c = '\033'; break;
		case '\\': c = '\\'; break;
		case '"': c = '"'; break;
		default:
			if (end - r >= 4 && is_oct(r[1]) && is_oct(r[2]) && is_oct(r[3]) && r[1] <= '3') {
				*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
				r += 4;
			} else {
				*w++ = *r++;
			}
			continue;
		}
		*w++ = c;
		r += 2;
	}
	return (size_t)(w - s);
}

size_t pp_arena_add(struct pp_arena *a, const char *s, size_t n)
{
	if (a->cap - a->len < n + 1) {
		size_t cap = MAX(a->cap * 2, a->len + n + 1);
		cap = MAX(cap, (size_t)256);
		a->buf = xrealloc(a->buf, cap);
		a->cap = cap;
	}
	size_t off = a->len;
	if (n)
		memcpy(a->buf + off, s, n);
	a->buf[off + n] = 0;
	a->len += n + 1;
	return off;
}

char *pp_dup(const char *buf, size_t len)
{
	char *s = xmalloc(len + 1);
	if (len)
		memcpy(s, buf, len);
	s[len] = 0;
	return s;
}
