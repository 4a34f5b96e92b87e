/* SPDX-License-Identifier: MIT */
/*
 * The small per-process files: task/, children, timers, personality, comm,
 * cmdline, environ, auxv, ns/NAME, cgroup.
 */
#include "proc/proc-internal.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>

/* ------------------------------------------------------------------------ */
/* task/, children                                                           */

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

int proc_read_tasks(pid_t pid, pid_t **ret, size_t *ret_n)
{
	char path[PROC_PATH_MAX];
	int r = proc_path(path, pid, 0, "task");
	if (r < 0)
		return r;
	_cleanup_closedir_ DIR *d = opendir(path);	/* glibc opens with O_CLOEXEC */
	if (!d)
		return neg_errno();

	_cleanup_free_ pid_t *tids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	errno = 0;
	while ((de = readdir(d))) {
		const char *p = de->d_name, *end = p + strlen(p);
		pid_t tid;
		if (*p == '.')
			continue;
		if (pp_dec_pid(&p, end, &tid) < 0 || p != end || tid == 0)
			return -EBADMSG;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			tids = xrealloc(tids, cap * sizeof(*tids));
		}
		tids[n++] = tid;
		errno = 0;
	}
	if (errno)
		return neg_errno();
	if (n)
		qsort(tids, n, sizeof(*tids), cmp_pid);
	*ret = TAKE_PTR(tids);
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}

int proc_parse_pid_list(const char *buf, size_t len, pid_t **ret, size_t *ret_n)
{
	const char *p = buf, *end = buf + len;
	/* "1 2 3 ": at most one pid per two bytes */
	size_t max = len / 2 + 1, n = 0;
	_cleanup_free_ pid_t *pids = xmalloc(max * sizeof(*pids));

	for (;;) {
		while (p < end && (*p == ' ' || *p == '\n'))
			p++;
		if (p == end)
			break;
		if (pp_dec_pid(&p, end, &pids[n]) < 0 || pids[n] == 0)
			return -EBADMSG;
		if (p < end && *p != ' ' && *p != '\n')
			return -EBADMSG;
		n++;
	}
	if (!n) {
		free(pids);
		pids = NULL;
	}
	*ret = TAKE_PTR(pids);
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}

static int read_children_one(pid_t pid, pid_t tid, pid_t **ret, size_t *ret_n)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, tid, "children", 4096, PROC_MAX_SMALL, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_pid_list(buf, len, ret, ret_n);
}

int proc_parse_syscall_sp(const char *buf, size_t len, uint64_t *ret_sp)
{
	/* "running", or "-1 SP PC" (blocked outside a system call), or
	 * "NR A1 A2 A3 A4 A5 A6 SP PC": the stack pointer is the second last */
	char tmp[256];
	if (!len || len >= sizeof(tmp))
		return -EBADMSG;
	memcpy(tmp, buf, len);
	tmp[len] = 0;
	if (!strncmp(tmp, "running", 7))
		return 0;
	char *tok[9], *save = NULL;
	int n = 0;
	for (char *t = strtok_r(tmp, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
		if (n == 9)
			return -EBADMSG;
		tok[n++] = t;
	}
	/* three: blocked outside a system call ("-1"); nine: in one */
	if ((n != 3 && n != 9) || (n == 3) != !strcmp(tok[0], "-1"))
		return -EBADMSG;
	char *end = NULL;
	errno = 0;
	unsigned long long sp = strtoull(tok[n - 2], &end, 16);
	if (errno || !end || *end || strncmp(tok[n - 2], "0x", 2))
		return -EBADMSG;
	*ret_sp = sp;
	return 1;
}

int proc_read_blocked_sp(pid_t pid, pid_t tid, uint64_t *ret_sp)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, tid, "syscall", 256, 256, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_syscall_sp(buf, len, ret_sp);
}

int proc_read_children(pid_t pid, pid_t tid, pid_t **ret, size_t *ret_n)
{
	if (tid)
		return read_children_one(pid, tid, ret, ret_n);

	/* the children of the process: those of each of its threads */
	_cleanup_free_ pid_t *tids = NULL, *all = NULL;
	size_t nt = 0, n = 0;
	int r = proc_read_tasks(pid, &tids, &nt);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nt; i++) {
		_cleanup_free_ pid_t *c = NULL;
		size_t nc;
		r = read_children_one(pid, tids[i], &c, &nc);
		if (r == -ENOENT || r == -ESRCH)
			continue;	/* the thread exited meanwhile */
		if (r < 0)
			return r;
		if (!nc)
			continue;
		all = xrealloc(all, (n + nc) * sizeof(*all));
		memcpy(all + n, c, nc * sizeof(*c));
		n += nc;
	}
	if (n) {
		qsort(all, n, sizeof(*all), cmp_pid);
		size_t w = 1;
		for (size_t i = 1; i < n; i++)
			if (all[i] != all[w - 1])
				all[w++] = all[i];
		n = w;
	}
	*ret = TAKE_PTR(all);
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}

/* ------------------------------------------------------------------------ */
/* timers                                                                    */

/*
 * show_timer():
 *   ID: 0
 *   signal: 34/00000000deadbeef
 *   notify: signal/pid.19264        (signal|none|thread) / (pid|tid) . N
 *   ClockID: 1
 */
static int parse_timer(const char *l[4], const size_t len[4], struct proc_timer *t)
{
	const char *p, *end;

	p = l[0], end = p + len[0];
	if (!pp_lit(&p, end, "ID: ") || pp_dec_int(&p, end, &t->id) < 0 || p != end || t->id < 0)
		return -EBADMSG;

	p = l[1], end = p + len[1];
	if (!pp_lit(&p, end, "signal: ") || pp_dec_int(&p, end, &t->signo) < 0 ||
	    !pp_char(&p, end, '/') || pp_hex_u64(&p, end, &t->sigval) < 0 || p != end)
		return -EBADMSG;

	p = l[2], end = p + len[2];
	if (!pp_lit(&p, end, "notify: "))
		return -EBADMSG;
	if (pp_lit(&p, end, "signal/"))
		t->notify = SIGEV_SIGNAL;
	else if (pp_lit(&p, end, "none/"))
		t->notify = SIGEV_NONE;
	else if (pp_lit(&p, end, "thread/"))
		t->notify = SIGEV_THREAD;
	else
		return -EBADMSG;
	if (pp_lit(&p, end, "tid."))
		t->thread_id = true;
	else if (pp_lit(&p, end, "pid."))
		t->thread_id = false;
	else
		return -EBADMSG;
	if (pp_dec_pid(&p, end, &t->notify_pid) < 0 || p != end)
		return -EBADMSG;

	p = l[3], end = p + len[3];
	if (!pp_lit(&p, end, "ClockID: ") || pp_dec_int(&p, end, &t->clock_id) < 0 || p != end)
		return -EBADMSG;
	return 0;
}

int proc_parse_timers(const char *buf, size_t len, struct proc_timer **ret, size_t *ret_n)
{
	const char *p = buf, *end = buf + len;
	_cleanup_free_ struct proc_timer *t = NULL;
	size_t n = 0, cap = 0;

	while (p < end) {
		const char *l[4];
		size_t ll[4];
		for (int i = 0; i < 4; i++)
			if (pp_next_line(&p, end, &l[i], &ll[i]) <= 0)
				return -EBADMSG;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			t = xrealloc(t, cap * sizeof(*t));
		}
		t[n] = (struct proc_timer){};
		if (parse_timer(l, ll, &t[n]) < 0)
			return -EBADMSG;
		n++;
	}
	*ret = TAKE_PTR(t);
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}

int proc_read_timers(pid_t pid, struct proc_timer **ret, size_t *ret_n)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, 0, "timers", 4096, PROC_MAX_BIG, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_timers(buf, len, ret, ret_n);
}

/* ------------------------------------------------------------------------ */
/* personality, comm                                                         */

int proc_parse_personality(const char *buf, size_t len, unsigned int *ret)
{
	const char *p = buf, *end = buf + len;
	uint32_t v;

	/* "%08x\n" */
	if (pp_hex_u32(&p, end, &v) < 0 || !pp_char(&p, end, '\n') || p != end)
		return -EBADMSG;
	*ret = v;
	return 0;
}

int proc_read_personality(pid_t pid, unsigned int *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, 0, "personality", 64, 4096, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_personality(buf, len, ret);
}

int proc_parse_s64(const char *buf, size_t len, int64_t *ret)
{
	const char *p = buf, *end = buf + len;
	int64_t v;

	/* "%lld\n" (oom_score_adj, loginuid, timerslack_ns...) */
	if (pp_dec_s64(&p, end, &v) < 0 || (p < end && !pp_char(&p, end, '\n')) || p != end)
		return -EBADMSG;
	*ret = v;
	return 0;
}

int proc_read_s64(pid_t pid, const char *name, int64_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, 0, name, 64, 4096, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_s64(buf, len, ret);
}

int proc_parse_syscall(const char *buf, size_t len, long *ret_nr, uint64_t *ret_arg1)
{
	const char *p = buf, *end = buf + len;
	int64_t nr;
	uint64_t a1 = 0;

	/* "running\n", "-1 SP PC\n" (not in a syscall) or "NR 0xA1 ... 0xA6 SP PC\n" */
	if (len >= 7 && !memcmp(buf, "running", 7)) {
		*ret_nr = -2;
		return 0;
	}
	if (pp_dec_s64(&p, end, &nr) < 0)
		return -EBADMSG;
	if (nr >= 0) {
		if (!pp_char(&p, end, ' ') || !pp_lit(&p, end, "0x") || pp_hex_u64(&p, end, &a1) < 0)
			return -EBADMSG;
	}
	*ret_nr = (long)nr;
	if (ret_arg1)
		*ret_arg1 = a1;
	return 0;
}

int proc_read_syscall(pid_t pid, pid_t tid, long *ret_nr, uint64_t *ret_arg1)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, tid, "syscall", 128, 4096, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_syscall(buf, len, ret_nr, ret_arg1);
}

int proc_parse_comm(const char *buf, size_t len, char ret[PROC_COMM_MAX + 1])
{
	/* raw bytes and one '\n' that the kernel adds; comm itself may end in '\n' */
	if (!len || buf[len - 1] != '\n')
		return -EBADMSG;
	len--;
	if (len > PROC_COMM_MAX || memchr(buf, 0, len))
		return -EBADMSG;
	memcpy(ret, buf, len);
	ret[len] = 0;
	return 0;
}

int proc_read_comm(pid_t pid, pid_t tid, char ret[PROC_COMM_MAX + 1])
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, tid, "comm", 128, 4096, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_comm(buf, len, ret);
}

/* ------------------------------------------------------------------------ */
/* cmdline, environ                                                          */

void proc_strv_done(struct proc_strv *s)
{
	if (!s)
		return;
	free(s->v);
	free(s->storage);
	*s = (struct proc_strv){};
}

static int parse_strv_owned(char *buf, size_t len, struct proc_strv *ret)
{
	_cleanup_free_ char *storage = buf;	/* has a NUL at [len] */
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (!storage[i])
			n++;
	if (len && storage[len - 1])
		n++;	/* the last string lost its NUL */

	char **v = xmalloc((n + 1) * sizeof(*v));
	size_t k = 0;
	for (char *p = storage, *end = storage + len; p < end; p += strlen(p) + 1)
		v[k++] = p;
	v[k] = NULL;

	ret->v = v;
	ret->n = k;
	ret->storage = TAKE_PTR(storage);
	ret->size = len;
	return (int)MIN(k, (size_t)INT_MAX);
}

int proc_parse_strv(const char *buf, size_t len, struct proc_strv *ret)
{
	return parse_strv_owned(pp_dup(buf, len), len, ret);
}

static int read_strv(pid_t pid, const char *name, struct proc_strv *ret)
{
	char *buf;
	size_t len;
	int r = proc_read_pid_file(pid, 0, name, 4096, PROC_MAX_BIG, &buf, &len);
	if (r < 0)
		return r;
	return parse_strv_owned(buf, len, ret);
}

int proc_read_cmdline(pid_t pid, struct proc_strv *ret) { return read_strv(pid, "cmdline", ret); }
int proc_read_environ(pid_t pid, struct proc_strv *ret) { return read_strv(pid, "environ", ret); }

/* ------------------------------------------------------------------------ */
/* auxv                                                                      */

int proc_parse_auxv(const void *buf, size_t len, struct proc_auxv_entry **ret, size_t *ret_n)
{
	const size_t esz = 2 * sizeof(uint64_t);
	size_t n = 0, max = len / esz;
	bool ended = false;

	/* the kernel writes whole pairs and ends with AT_NULL */
	if (len % esz)
		return -EBADMSG;
	for (; n < max; n++) {
		uint64_t type;
		memcpy(&type, (const char *)buf + n * esz, sizeof(type));
		if (type == AT_NULL) {
			ended = true;
			break;
		}
	}
	if (!ended)
		return -EBADMSG;

	struct proc_auxv_entry *a = n ? xmalloc(n * sizeof(*a)) : NULL;
	for (size_t i = 0; i < n; i++) {
		memcpy(&a[i].type, (const char *)buf + i * esz, sizeof(uint64_t));
		memcpy(&a[i].val, (const char *)buf + i * esz + sizeof(uint64_t), sizeof(uint64_t));
	}
	*ret = a;
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}

int proc_read_auxv(pid_t pid, struct proc_auxv_entry **ret, size_t *ret_n)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, 0, "auxv", 1024, 64UL * 1024, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_auxv(buf, len, ret, ret_n);
}

/* ------------------------------------------------------------------------ */
/* ns                                                                        */

static const char *const ns_names[PROC_NS_COUNT] = {
	[PROC_NS_CGROUP] = "cgroup",
	[PROC_NS_IPC] = "ipc",
	[PROC_NS_MNT] = "mnt",
	[PROC_NS_NET] = "net",
	[PROC_NS_PID] = "pid",
	[PROC_NS_PID_FOR_CHILDREN] = "pid_for_children",
	[PROC_NS_TIME] = "time",
	[PROC_NS_TIME_FOR_CHILDREN] = "time_for_children",
	[PROC_NS_USER] = "user",
	[PROC_NS_UTS] = "uts",
};

/* the type printed in the link: pid_for_children shows "pid:[...]" */
static const char *const ns_link_types[PROC_NS_COUNT] = {
	[PROC_NS_CGROUP] = "cgroup",
	[PROC_NS_IPC] = "ipc",
	[PROC_NS_MNT] = "mnt",
	[PROC_NS_NET] = "net",
	[PROC_NS_PID] = "pid",
	[PROC_NS_PID_FOR_CHILDREN] = "pid",
	[PROC_NS_TIME] = "time",
	[PROC_NS_TIME_FOR_CHILDREN] = "time",
	[PROC_NS_USER] = "user",
	[PROC_NS_UTS] = "uts",
};

const char *proc_ns_name(enum proc_ns_type t)
{
	return (unsigned)t < PROC_NS_COUNT ? ns_names[t] : NULL;
}

int proc_parse_ns_link(const char *link, size_t len, const char *type, uint64_t *ret_ino)
{
	const char *p = link, *end = link + len;
	uint64_t ino;

	if (!pp_lit(&p, end, type) || !pp_lit(&p, end, ":[") || pp_dec_u64(&p, end, &ino) < 0 ||
	    !pp_char(&p, end, ']') || p != end || ino == 0)
		return -EBADMSG;
	*ret_ino = ino;
	return 0;
}

int proc_read_ns(pid_t pid, enum proc_ns_type t, uint64_t *ret_ino)
{
	return proc_read_thread_ns(pid, 0, t, ret_ino);
}

/* The namespace link path (relative to dirfd) of type t: its inode. */
static int read_ns_link(int dirfd, const char *path, enum proc_ns_type t, uint64_t *ret_ino)
{
	char link[128];
	ssize_t l = readlinkat(dirfd, path, link, sizeof(link));

	if (l < 0)
		return neg_errno();
	if ((size_t)l >= sizeof(link))
		return -EBADMSG;
	return proc_parse_ns_link(link, (size_t)l, ns_link_types[t], ret_ino);
}

int proc_read_thread_ns(pid_t pid, pid_t tid, enum proc_ns_type t, uint64_t *ret_ino)
{
	char name[32], path[PROC_PATH_MAX];

	if ((unsigned)t >= PROC_NS_COUNT)
		return -EINVAL;
	snprintf(name, sizeof(name), "ns/%s", ns_names[t]);
	int r = proc_path(path, pid, tid, name);
	if (r < 0)
		return r;
	return read_ns_link(AT_FDCWD, path, t, ret_ino);
}

int proc_open_ns_dir(pid_t pid, pid_t tid, int *ret_fd)
{
	char path[PROC_PATH_MAX];
	int r = proc_path(path, pid, tid, "ns");
	if (r < 0)
		return r;
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	*ret_fd = fd;
	return 0;
}

int proc_read_ns_at(int dirfd, enum proc_ns_type t, uint64_t *ret_ino)
{
	if ((unsigned)t >= PROC_NS_COUNT)
		return -EINVAL;
	return read_ns_link(dirfd, ns_names[t], t, ret_ino);
}

int proc_read_all_ns(pid_t pid, struct proc_ns *ret)
{
	struct proc_ns ns = {};

	for (int t = 0; t < PROC_NS_COUNT; t++) {
		int r = proc_read_ns(pid, (enum proc_ns_type)t, &ns.ino[t]);
		/* a kernel without this namespace type */
		if (r == -ENOENT && t != PROC_NS_MNT && t != PROC_NS_PID)
			ns.ino[t] = 0;
		else if (r < 0)
			return r;
	}
	*ret = ns;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* cgroup                                                                    */

void proc_cgroup_list_done(struct proc_cgroup_list *l)
{
	if (!l)
		return;
	free(l->cg);
	free(l->storage);
	*l = (struct proc_cgroup_list){};
}

int proc_parse_cgroup(const char *buf, size_t len, struct proc_cgroup_list *ret)
{
	_cleanup_free_ char *storage = pp_dup(buf, len);
	_cleanup_free_ struct proc_cgroup *cg = NULL;
	const char *p = storage, *end = storage + len, *line;
	size_t n = 0, cap = 0, llen;
	int r;

	/* "ID:controllers:path"; path may hold ':' (and, sadly, a raw '\n') */
	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		char *l = (char *)line, *lend = l + llen;
		const char *q = l;
		unsigned int id;
		if (pp_dec_uint(&q, lend, &id) < 0 || !pp_char(&q, lend, ':'))
			return -EBADMSG;
		char *c2 = memchr(q, ':', (size_t)(lend - q));
		if (!c2 || c2 + 1 == lend || memchr(l, 0, llen))
			return -EBADMSG;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			cg = xrealloc(cg, cap * sizeof(*cg));
		}
		*c2 = 0;
		*lend = 0;
		cg[n].hier_id = id;
		cg[n].controllers = q;
		cg[n].path = c2 + 1;
		n++;
	}
	if (r < 0)
		return r;

	ret->cg = TAKE_PTR(cg);
	ret->n = n;
	ret->storage = TAKE_PTR(storage);
	return (int)MIN(n, (size_t)INT_MAX);
}

int proc_read_cgroup(pid_t pid, struct proc_cgroup_list *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = proc_read_pid_file(pid, 0, "cgroup", 4096, PROC_MAX_SMALL, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_cgroup(buf, len, ret);
}

size_t proc_tree_pids(pid_t root, pid_t **ret)
{
	pid_t *v = xmalloc(sizeof(pid_t));
	size_t n = 1, i = 0;
	v[0] = root;
	while (i < n && n < 65536) {
		pid_t p = v[i++];
		_cleanup_free_ pid_t *tids = NULL;
		size_t nt = 0;
		if (proc_read_tasks(p, &tids, &nt) < 0)
			continue;
		for (size_t t = 0; t < nt; t++) {
			_cleanup_free_ pid_t *kids = NULL;
			size_t nk = 0;
			if (proc_read_children(p, tids[t], &kids, &nk) < 0)
				continue;
			for (size_t k = 0; k < nk; k++) {
				v = xrealloc(v, (n + 1) * sizeof(*v));
				v[n++] = kids[k];
			}
		}
	}
	*ret = v;
	return n;
}

void proc_kill_tree(pid_t root)
{
	_cleanup_free_ pid_t *v = NULL;
	if (root <= 1)
		return;
	kill(root, SIGSTOP);
	size_t n = proc_tree_pids(root, &v);
	for (size_t i = 0; i < n; i++)
		kill(v[i], SIGSTOP);
	for (size_t i = 0; i < n; i++)
		kill(v[i], SIGKILL);
}
