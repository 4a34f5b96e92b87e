/* SPDX-License-Identifier: MIT */
/* System-wide files: the cpu lines of /proc/stat, /proc/meminfo. */
#include "proc/proc-internal.h"

#include <limits.h>

int proc_parse_cpu_times(const char *buf, size_t len, struct proc_cpu_times *ret)
{
	const char *p = buf, *end = buf + len, *line;
	struct proc_cpu_times t = {};
	bool found = false;
	size_t llen;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		const char *q = line, *lend = line + llen;
		if (!pp_lit(&q, lend, "cpu"))
			continue;
		if (q < lend && pp_isdigit(*q)) {
			t.ncpu++;
			continue;
		}
		if (found || !pp_blanks(&q, lend))
			return -EBADMSG;
		/* user nice system idle [iowait irq softirq [steal [guest [guest_nice]]]] */
		uint64_t *f[] = { &t.user, &t.nice, &t.system, &t.idle, &t.iowait,
				  &t.irq, &t.softirq, &t.steal, &t.guest, &t.guest_nice };
		size_t k = 0;
		while (q < lend) {
			if (k == ARRAY_SIZE(f))
				break;	/* more columns in a later kernel */
			if (pp_dec_u64(&q, lend, f[k]) < 0)
				return -EBADMSG;
			k++;
			if (q < lend && !pp_blanks(&q, lend))
				return -EBADMSG;
		}
		if (k < 4)
			return -EBADMSG;
		found = true;
	}
	if (r < 0)
		return r;
	if (!found)
		return -EBADMSG;
	*ret = t;
	return 0;
}

int proc_read_cpu_times(struct proc_cpu_times *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_file_hint("/proc/stat", 16384, PROC_MAX_SMALL, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_cpu_times(buf, len, ret);
}

int proc_parse_meminfo(const char *buf, size_t len, struct proc_meminfo *ret)
{
	const char *p = buf, *end = buf + len, *line;
	struct proc_meminfo m = {};
	bool total = false, freem = false, avail = false;
	size_t llen;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		const char *q = line, *lend = line + llen;
		uint64_t *dst;
		bool *seen;
		if (pp_lit(&q, lend, "MemTotal:"))
			dst = &m.mem_total, seen = &total;
		else if (pp_lit(&q, lend, "MemFree:"))
			dst = &m.mem_free, seen = &freem;
		else if (pp_lit(&q, lend, "MemAvailable:"))
			dst = &m.mem_available, seen = &avail;
		else
			continue;
		uint64_t v;
		pp_skip_blanks(&q, lend);
		if (pp_dec_u64(&q, lend, &v) < 0)
			return -EBADMSG;
		if (pp_lit(&q, lend, " kB")) {
			if (v > UINT64_MAX / 1024)
				return -EBADMSG;
			v *= 1024;
		}
		if (q != lend)
			return -EBADMSG;
		*dst = v;
		*seen = true;
	}
	if (r < 0)
		return r;
	if (!total || !freem)
		return -EBADMSG;
	if (!avail)
		m.mem_available = m.mem_free;	/* kernels before 3.14 */
	*ret = m;
	return 0;
}

int proc_read_meminfo(struct proc_meminfo *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_file_hint("/proc/meminfo", 8192, PROC_MAX_SMALL, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_meminfo(buf, len, ret);
}
