/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the /proc parsers (not part of the module's API).
 *
 * Every scanner works on a [p, end) range and advances *p only on success.
 * None of them looks past end, none needs a NUL terminator, none accepts
 * what strtoul() would silently accept (blanks, signs, "0x", overflow).
 */
#pragma once

#include "proc/proc.h"
#include "base/util.h"

#include <string.h>

/* sanity limits for whole files */
#define PROC_MAX_SMALL (4UL << 20)	/* status, stat, fdinfo, cmdline... */
#define PROC_MAX_BIG (1UL << 30)	/* maps, smaps, mountinfo */

/* "/proc/PID[/task/TID]/NAME" (pid 0: "self") */
#define PROC_PATH_MAX 96
int proc_path(char buf[PROC_PATH_MAX], pid_t pid, pid_t tid, const char *name);
/* proc_read_file() with a first buffer size guess */
int proc_read_file_hint(const char *path, size_t hint, size_t max, char **ret_buf, size_t *ret_len);
/* read /proc/PID[/task/TID]/NAME */
int proc_read_pid_file(pid_t pid, pid_t tid, const char *name, size_t hint, size_t max,
		       char **ret_buf, size_t *ret_len);

static inline bool pp_isdigit(char c) { return c >= '0' && c <= '9'; }
static inline bool pp_isblank(char c) { return c == ' ' || c == '\t'; }
static inline int pp_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Unsigned numbers: at least one digit, no sign, no blanks; -EBADMSG on overflow. */
int pp_dec_u64(const char **p, const char *end, uint64_t *ret);
int pp_hex_u64(const char **p, const char *end, uint64_t *ret);
int pp_oct_u64(const char **p, const char *end, uint64_t *ret);
/* Optional '-', then decimal digits, within int64_t. */
int pp_dec_s64(const char **p, const char *end, int64_t *ret);
/* Range-checked variants */
int pp_dec_int(const char **p, const char *end, int *ret);	/* INT_MIN..INT_MAX */
int pp_dec_uint(const char **p, const char *end, unsigned int *ret);	/* 0..UINT_MAX */
int pp_dec_pid(const char **p, const char *end, pid_t *ret);	/* 0..INT_MAX */
int pp_hex_u32(const char **p, const char *end, uint32_t *ret);

static inline bool pp_char(const char **p, const char *end, char c)
{
	if (*p < end && **p == c) {
		(*p)++;
		return true;
	}
	return false;
}

/* Consume the literal s if it is next. */
static inline bool pp_lit(const char **p, const char *end, const char *s)
{
	size_t n = strlen(s);
	if ((size_t)(end - *p) < n || memcmp(*p, s, n) != 0)
		return false;
	*p += n;
	return true;
}

static inline void pp_skip_blanks(const char **p, const char *end)
{
	while (*p < end && pp_isblank(**p))
		(*p)++;
}

/* True if at least one blank was skipped. */
static inline bool pp_blanks(const char **p, const char *end)
{
	const char *s = *p;
	pp_skip_blanks(p, end);
	return *p != s;
}

/*
 * Next line of [*p, end): *ret_line / *ret_len exclude the '\n'.
 * Returns 1 with a line, 0 at the end, -EBADMSG if the last line has no '\n'
 * (the kernel always ends a line with one, so this is a truncated file).
 */
static inline int pp_next_line(const char **p, const char *end, const char **ret_line, size_t *ret_len)
{
	if (*p >= end)
		return 0;
	const char *nl = memchr(*p, '\n', end - *p);
	if (!nl)
		return -EBADMSG;
	*ret_line = *p;
	*ret_len = nl - *p;
	*p = nl + 1;
	return 1;
}

/* Does [s, s+len) end with the literal suffix? */
static inline bool pp_endswith(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);
	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static inline bool pp_startswith(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

/*
 * Decode escapes in place; returns the new length (<= len).
 *   pp_unescape_octal: every "\ooo" (mountinfo, where the kernel also
 *     escapes the backslash itself, so the decoding is exact);
 *   pp_unescape_c: "\n" "\t" "\\" ... and "\ooo" (status Name).
 * A lone or unknown backslash sequence is kept as it is.
 */
size_t pp_unescape_octal(char *s, size_t len);
size_t pp_unescape_c(char *s, size_t len);

/* A growable string area; strings are referenced by offset until it stops growing. */
struct pp_arena {
	char *buf;
	size_t len, cap;
};
static inline void pp_arena_done(struct pp_arena *a) { free(a->buf); a->buf = NULL; }
/* Append s[0..n) and a NUL, return its offset. */
size_t pp_arena_add(struct pp_arena *a, const char *s, size_t n);

/* A copy of buf with a NUL after it (parsers that decode in place work on it). */
char *pp_dup(const char *buf, size_t len);
