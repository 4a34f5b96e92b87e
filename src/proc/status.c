/* SPDX-License-Identifier: MIT */
/*
 * /proc/PID/stat and /proc/PID/status.
 *
 * stat prints comm raw between parentheses: "42 (a) b) R 1 ...".  A task
 * names itself (prctl PR_SET_NAME), so comm may hold ')', spaces, even a
 * newline; only the LAST ')' of the line ends it.  status prints Name with
 * '\n' and '\\' escaped, so it is read with the C unescaper.
 */
#include "base/log.h"
#include "proc/proc-internal.h"

#include <fcntl.h>
#include <limits.h>

/* ------------------------------------------------------------------------ */
/* stat                                                                      */

/* fields after comm, numbered as in proc(5): field 3 is the state */
#define STAT_FIRST 4
#define STAT_LAST 52

struct num {
	bool neg;
	uint64_t mag;
};

static int num_u64(const struct num *n, uint64_t *ret)
{
	if (n->neg)
		return -EBADMSG;
	*ret = n->mag;
	return 0;
}

static int num_s64(const struct num *n, int64_t *ret)
{
	if (n->neg ? n->mag > (uint64_t)INT64_MAX + 1 : n->mag > (uint64_t)INT64_MAX)
		return -EBADMSG;
	*ret = n->neg ? (int64_t)(0 - n->mag) : (int64_t)n->mag;
	return 0;
}

static int num_int(const struct num *n, int *ret)
{
	int64_t v;
	if (num_s64(n, &v) < 0 || v < INT_MIN || v > INT_MAX)
		return -EBADMSG;
	*ret = (int)v;
	return 0;
}

static int num_uint(const struct num *n, unsigned int *ret)
{
	if (n->neg || n->mag > UINT_MAX)
		return -EBADMSG;
	*ret = (unsigned int)n->mag;
	return 0;
}

static int num_pid(const struct num *n, pid_t *ret)
{
	if (n->neg || n->mag > INT_MAX)
		return -EBADMSG;
	*ret = (pid_t)n->mag;
	return 0;
}

int proc_parse_stat(const char *buf, size_t len, struct proc_stat *ret)
{
	const char *p = buf, *end = buf + len;
	struct proc_stat st = {};
	struct num f[STAT_LAST + 1] = {};

	/* one line, ending with '\n' (comm may hold a '\n' of its own) */
	if (!len || buf[len - 1] != '\n')
		return -EBADMSG;
	end--;

	if (pp_dec_pid(&p, end, &st.pid) < 0 || !pp_lit(&p, end, " ("))
		return -EBADMSG;
	const char *close = memrchr(p, ')', end - p);
	if (!close)
		return -EBADMSG;
	size_t clen = close - p;
	if (clen > PROC_COMM_MAX || memchr(p, 0, clen))
		return -EBADMSG;
	memcpy(st.comm, p, clen);
	st.comm[clen] = 0;
	p = close + 1;

	if (!pp_char(&p, end, ' ') || p >= end)
		return -EBADMSG;
	st.state = *p++;
	if (st.state < 'A' || st.state > 'z')
		return -EBADMSG;

	for (int i = STAT_FIRST; i <= STAT_LAST; i++) {
		if (!pp_char(&p, end, ' '))
			return -EBADMSG;
		f[i].neg = pp_char(&p, end, '-');
		if (pp_dec_u64(&p, end, &f[i].mag) < 0)
			return -EBADMSG;
	}
	/* later kernels may append fields: numbers too */
	while (p < end) {
		int64_t extra;
		if (!pp_char(&p, end, ' ') || pp_dec_s64(&p, end, &extra) < 0)
			return -EBADMSG;
	}

	int64_t s;
	if (num_pid(&f[4], &st.ppid) < 0 || num_pid(&f[5], &st.pgrp) < 0 ||
	    num_pid(&f[6], &st.session) < 0 || num_int(&f[7], &st.tty_nr) < 0 ||
	    num_int(&f[8], &st.tpgid) < 0 || num_uint(&f[9], &st.flags) < 0 ||
	    num_u64(&f[10], &st.minflt) < 0 || num_u64(&f[12], &st.majflt) < 0 ||
	    num_u64(&f[14], &st.utime) < 0 || num_u64(&f[15], &st.stime) < 0 ||
	    num_s64(&f[18], &st.priority) < 0 || num_s64(&f[19], &st.nice) < 0 ||
	    num_s64(&f[20], &st.num_threads) < 0 || num_u64(&f[22], &st.start_time) < 0 ||
	    num_u64(&f[23], &st.vsize) < 0 || num_u64(&f[24], &st.rss) < 0 ||
	    num_u64(&f[26], &st.start_code) < 0 || num_u64(&f[27], &st.end_code) < 0 ||
	    num_u64(&f[28], &st.start_stack) < 0 || num_int(&f[38], &st.exit_signal) < 0 ||
	    num_int(&f[39], &st.processor) < 0 || num_uint(&f[40], &st.rt_priority) < 0 ||
	    num_uint(&f[41], &st.policy) < 0 || num_u64(&f[45], &st.start_data) < 0 ||
	    num_u64(&f[46], &st.end_data) < 0 || num_u64(&f[47], &st.start_brk) < 0 ||
	    num_u64(&f[48], &st.arg_start) < 0 || num_u64(&f[49], &st.arg_end) < 0 ||
	    num_u64(&f[50], &st.env_start) < 0 || num_u64(&f[51], &st.env_end) < 0 ||
	    num_s64(&f[52], &s) < 0 || s < INT_MIN || s > INT_MAX)
		return -EBADMSG;
	st.exit_code = (int)s;

	*ret = st;
	return 0;
}

int proc_read_stat(pid_t pid, pid_t tid, struct proc_stat *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, tid, "stat", 1024, PROC_MAX_SMALL, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_stat(buf, len, ret);
}

/* ------------------------------------------------------------------------ */
/* status                                                                    */

void proc_status_done(struct proc_status *s)
{
	if (!s)
		return;
	free(s->groups);
	s->groups = NULL;
	s->n_groups = 0;
}

/* "v1\tv2\t..." decimal; exactly want values (want == 0: any number up to max) */
static int parse_dec_array(const char *p, const char *end, uint64_t max_val, uint64_t *vals,
			   size_t max, size_t *ret_n)
{
	size_t n = 0;

	for (;;) {
		pp_skip_blanks(&p, end);
		if (p == end)
			break;
		if (n == max)
			return -EBADMSG;
		if (pp_dec_u64(&p, end, &vals[n]) < 0 || vals[n] > max_val)
			return -EBADMSG;
		n++;
		if (p < end && !pp_isblank(*p))
			return -EBADMSG;
	}
	*ret_n = n;
	return 0;
}

static int parse_pid_array(const char *p, const char *end, pid_t *out, unsigned int *ret_n)
{
	uint64_t v[PROC_NS_LEVELS_MAX];
	size_t n;
	if (parse_dec_array(p, end, INT_MAX, v, PROC_NS_LEVELS_MAX, &n) < 0 || n == 0)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		out[i] = (pid_t)v[i];
	*ret_n = (unsigned int)n;
	return 0;
}

static int parse_id4(const char *p, const char *end, uint32_t out[4])
{
	uint64_t v[4];
	size_t n;
	if (parse_dec_array(p, end, UINT32_MAX, v, 4, &n) < 0 || n != 4)
		return -EBADMSG;
	for (int i = 0; i < 4; i++)
		out[i] = (uint32_t)v[i];
	return 0;
}

/* the whole value must be one number */
static int whole_hex(const char *p, const char *end, uint64_t *ret)
{
	if (pp_hex_u64(&p, end, ret) < 0 || p != end)
		return -EBADMSG;
	return 0;
}

static int whole_int(const char *p, const char *end, int *ret)
{
	if (pp_dec_int(&p, end, ret) < 0 || p != end)
		return -EBADMSG;
	return 0;
}

static int whole_pid(const char *p, const char *end, pid_t *ret)
{
	if (pp_dec_pid(&p, end, ret) < 0 || p != end)
		return -EBADMSG;
	return 0;
}

static int parse_groups(const char *p, const char *end, struct proc_status *st)
{
	/* at most one group per two bytes of text */
	size_t max = (size_t)(end - p) / 2 + 1, n = 0;
	_cleanup_free_ gid_t *g = xmalloc(max * sizeof(*g));

	for (;;) {
		uint64_t v;
		pp_skip_blanks(&p, end);
		if (p == end)
			break;
		if (pp_dec_u64(&p, end, &v) < 0 || v > UINT32_MAX || n == max)
			return -EBADMSG;
		if (p < end && !pp_isblank(*p))
			return -EBADMSG;
		g[n++] = (gid_t)v;
	}
	free(st->groups);
	st->groups = n ? TAKE_PTR(g) : NULL;
	st->n_groups = n;
	return 0;
}

static int parse_status_line(const char *key, size_t klen, const char *val, const char *end,
			     struct proc_status *st)
{
	const char *p = val;

#define KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, sizeof(s) - 1) == 0)
	if (KEY("Name")) {
		/* "Name:\t" then the escaped name: skip the tab only, a name may start with blanks */
		pp_char(&p, end, '\t');
		size_t n = (size_t)(end - p);
		char tmp[4 * PROC_COMM_MAX + 1];
		if (n > sizeof(tmp) - 1)
			return -EBADMSG;
		memcpy(tmp, p, n);
		n = pp_unescape_c(tmp, n);
		if (n > PROC_COMM_MAX || memchr(tmp, 0, n))
			return -EBADMSG;
		memcpy(st->name, tmp, n);
		st->name[n] = 0;
		st->present |= PROC_STATUS_NAME;
		return 0;
	}

	pp_skip_blanks(&p, end);
	/* kernel values never end with blanks, except Groups (handled by its parser) */
	if (KEY("Umask")) {
		uint64_t v;
		if (pp_oct_u64(&p, end, &v) < 0 || p != end || v > 0777)
			return -EBADMSG;
		st->umask = (mode_t)v;
		st->present |= PROC_STATUS_UMASK;
	} else if (KEY("State")) {
		/* "R (running)" */
		if (p == end || *p < 'A' || *p > 'z')
			return -EBADMSG;
		st->state = *p;
		st->present |= PROC_STATUS_STATE;
	} else if (KEY("Tgid")) {
		if (whole_pid(p, end, &st->tgid) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_TGID;
	} else if (KEY("Pid")) {
		if (whole_pid(p, end, &st->pid) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_PID;
	} else if (KEY("PPid")) {
		if (whole_pid(p, end, &st->ppid) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_PPID;
	} else if (KEY("TracerPid")) {
		if (whole_pid(p, end, &st->tracer_pid) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_TRACERPID;
	} else if (KEY("Uid")) {
		if (parse_id4(p, end, st->uid) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_UID;
	} else if (KEY("Gid")) {
		if (parse_id4(p, end, st->gid) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_GID;
	} else if (KEY("Groups")) {
		if (parse_groups(p, end, st) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_GROUPS;
	} else if (KEY("NStgid")) {
		if (parse_pid_array(p, end, st->nstgid, &st->n_nstgid) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_NS;
	} else if (KEY("NSpid")) {
		if (parse_pid_array(p, end, st->nspid, &st->n_nspid) < 0)
			return -EBADMSG;
	} else if (KEY("NSpgid")) {
		if (parse_pid_array(p, end, st->nspgid, &st->n_nspgid) < 0)
			return -EBADMSG;
	} else if (KEY("NSsid")) {
		if (parse_pid_array(p, end, st->nssid, &st->n_nssid) < 0)
			return -EBADMSG;
	} else if (KEY("SigPnd")) {
		if (whole_hex(p, end, &st->sig_pnd) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_SIG;
	} else if (KEY("ShdPnd")) {
		if (whole_hex(p, end, &st->shd_pnd) < 0)
			return -EBADMSG;
	} else if (KEY("SigBlk")) {
		if (whole_hex(p, end, &st->sig_blk) < 0)
			return -EBADMSG;
	} else if (KEY("SigIgn")) {
		if (whole_hex(p, end, &st->sig_ign) < 0)
			return -EBADMSG;
	} else if (KEY("SigCgt")) {
		if (whole_hex(p, end, &st->sig_cgt) < 0)
			return -EBADMSG;
	} else if (KEY("CapInh")) {
		if (whole_hex(p, end, &st->cap_inh) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_CAPS;
	} else if (KEY("CapPrm")) {
		if (whole_hex(p, end, &st->cap_prm) < 0)
			return -EBADMSG;
	} else if (KEY("CapEff")) {
		if (whole_hex(p, end, &st->cap_eff) < 0)
			return -EBADMSG;
	} else if (KEY("CapBnd")) {
		if (whole_hex(p, end, &st->cap_bnd) < 0)
			return -EBADMSG;
	} else if (KEY("CapAmb")) {
		if (whole_hex(p, end, &st->cap_amb) < 0)
			return -EBADMSG;
	} else if (KEY("NoNewPrivs")) {
		if (whole_int(p, end, &st->no_new_privs) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_NNP;
	} else if (KEY("Seccomp")) {
		if (whole_int(p, end, &st->seccomp) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_SECCOMP;
	} else if (KEY("Seccomp_filters")) {
		if (whole_int(p, end, &st->seccomp_filters) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_SECCOMP_FILTERS;
	} else if (KEY("RssAnon")) {
		/* "N kB" */
		if (pp_dec_u64(&p, end, &st->rss_anon_kb) < 0 || end - p != 3 || memcmp(p, " kB", 3))
			return -EBADMSG;
		st->present |= PROC_STATUS_RSS_ANON;
	} else if (KEY("Threads")) {
		if (whole_int(p, end, &st->threads) < 0)
			return -EBADMSG;
		st->present |= PROC_STATUS_THREADS;
	}
	/* any other key: not needed */
#undef KEY
	return 0;
}

#define STATUS_REQUIRED                                                                       \
	(PROC_STATUS_NAME | PROC_STATUS_STATE | PROC_STATUS_TGID | PROC_STATUS_PID | \
	 PROC_STATUS_PPID | PROC_STATUS_UID | PROC_STATUS_GID)

int proc_parse_status(const char *buf, size_t len, struct proc_status *ret)
{
	_cleanup_(proc_status_done) struct proc_status st = {};
	const char *p = buf, *end = buf + len, *line;
	size_t llen;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		const char *colon = memchr(line, ':', llen);
		if (!colon || colon == line)
			return -EBADMSG;
		if (parse_status_line(line, colon - line, colon + 1, line + llen, &st) < 0)
			return -EBADMSG;
	}
	if (r < 0)
		return r;
	if ((st.present & STATUS_REQUIRED) != STATUS_REQUIRED)
		return -EBADMSG;
	/* Name is the first line: one with "Name:" inside it cannot come from the kernel */
	if (!pp_startswith(buf, len, "Name:"))
		return -EBADMSG;

	*ret = st;
	st.groups = NULL;
	return 0;
}

int proc_read_status(pid_t pid, pid_t tid, struct proc_status *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, tid, "status", 4096, PROC_MAX_SMALL, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_status(buf, len, ret);
}

int proc_read_runcount(pid_t pid, pid_t tid, uint64_t *ret, char *ret_state)
{
	char path[96], buf[256];
	unsigned long long run, wait, pcount;
	struct proc_stat st;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? neg_errno() : -EBADMSG;
	buf[n] = 0;
	if (sscanf(buf, "%llu %llu %llu", &run, &wait, &pcount) != 3)
		return -EBADMSG;
	*ret = pcount;
	if (ret_state) {
		if (proc_read_stat(pid, tid, &st) < 0) {
			dm_error_clear();
			return -ESRCH;
		}
		*ret_state = st.state;
	}
	return 0;
}
