/* SPDX-License-Identifier: MIT */
/*
 * /proc/PID/fd (readlink targets) and /proc/PID/fdinfo/N.
 *
 * A readlink target is the raw d_path: no escaping, so a file name may hold
 * a newline or look like "pipe:[1]".  Real files always start with '/', the
 * pseudo files never do, which is what the classification rests on.
 */
#include "proc/proc-internal.h"

#include <fcntl.h>
#include <limits.h>

/* ------------------------------------------------------------------------ */
/* fd targets                                                                */

static const struct {
	const char *name;
	enum proc_anon_kind kind;
} anon_names[] = {
	{ "eventfd", PROC_ANON_EVENTFD },	    { "eventpoll", PROC_ANON_EVENTPOLL },
	{ "signalfd", PROC_ANON_SIGNALFD },	    { "timerfd", PROC_ANON_TIMERFD },
	{ "inotify", PROC_ANON_INOTIFY },	    { "fanotify", PROC_ANON_FANOTIFY },
	{ "userfaultfd", PROC_ANON_USERFAULTFD }, { "pidfd", PROC_ANON_PIDFD },
	{ "io_uring", PROC_ANON_IO_URING },	    { "perf_event", PROC_ANON_PERF_EVENT },
	{ "bpf-map", PROC_ANON_BPF },		    { "bpf-prog", PROC_ANON_BPF },
	{ "bpf_link", PROC_ANON_BPF },		    { "bpf-link", PROC_ANON_BPF },
};

static const char *const ns_names[] = { "cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts" };

/* "[123]" exactly -> 123 */
static int parse_bracket_ino(const char *p, const char *end, uint64_t *ret)
{
	if (!pp_char(&p, end, '[') || pp_dec_u64(&p, end, ret) < 0 || !pp_char(&p, end, ']') ||
	    p != end)
		return -EBADMSG;
	return 0;
}

/* names are kernel-chosen and short; a longer one (never seen) is cut */
static void set_name(struct proc_fd *fd, const char *s, size_t n)
{
	n = MIN(n, sizeof(fd->name) - 1);
	memcpy(fd->name, s, n);
	fd->name[n] = 0;
}

int proc_classify_fd_target(char *t, size_t len, struct proc_fd *ret)
{
	struct proc_fd fd = { .fd = -1 };

	if (len == 0 || memchr(t, 0, len))
		return -EBADMSG;
	t[len] = 0;
	fd.target = t;

	if (t[0] == '/') {
		if (pp_endswith(t, len, " (deleted)")) {
			fd.deleted = true;
			len -= strlen(" (deleted)");
			t[len] = 0;
		}
		fd.kind = fd.deleted && pp_startswith(t, len, "/memfd:") ? PROC_FD_MEMFD : PROC_FD_FILE;
		*ret = fd;
		return 0;
	}

	char *colon = memchr(t, ':', len);
	if (!colon) {
		fd.kind = PROC_FD_OTHER;
		*ret = fd;
		return 0;
	}
	size_t plen = (size_t)(colon - t);
	const char *rest = colon + 1, *end = t + len;

	if (plen == 4 && memcmp(t, "pipe", 4) == 0) {
		if (parse_bracket_ino(rest, end, &fd.ino) < 0)
			return -EBADMSG;
		fd.kind = PROC_FD_PIPE;
	} else if (plen == 6 && memcmp(t, "socket", 6) == 0) {
		if (parse_bracket_ino(rest, end, &fd.ino) < 0)
			return -EBADMSG;
		fd.kind = PROC_FD_SOCKET;
	} else if (plen == 10 && memcmp(t, "anon_inode", 10) == 0) {
		/* "anon_inode:[eventfd]" or "anon_inode:inotify" */
		const char *nb = rest, *ne = end;
		if (ne - nb >= 2 && nb[0] == '[' && ne[-1] == ']') {
			nb++;
			ne--;
		}
		set_name(&fd, nb, (size_t)(ne - nb));
		fd.kind = PROC_FD_ANON;
		for (size_t i = 0; i < ARRAY_SIZE(anon_names); i++)
			if (strcmp(fd.name, anon_names[i].name) == 0)
				fd.anon = anon_names[i].kind;
	} else {
		bool is_ns = false;
		for (size_t i = 0; i < ARRAY_SIZE(ns_names); i++)
			if (strlen(ns_names[i]) == plen && memcmp(t, ns_names[i], plen) == 0)
				is_ns = true;
		set_name(&fd, t, plen);
		if (is_ns && parse_bracket_ino(rest, end, &fd.ino) == 0)
			fd.kind = PROC_FD_NS;
		else {
			fd.kind = PROC_FD_OTHER;
			(void)parse_bracket_ino(rest, end, &fd.ino);
		}
	}
	*ret = fd;
	return 0;
}

void proc_fd_list_done(struct proc_fd_list *l)
{
	if (!l)
		return;
	free(l->fds);
	free(l->storage);
	*l = (struct proc_fd_list){};
}

static int cmp_fd(const void *a, const void *b)
{
	const struct proc_fd *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

static int parse_fd_name(const char *s, int *ret)
{
	const char *p = s, *end = s + strlen(s);
	if (pp_dec_int(&p, end, ret) < 0 || p != end || *ret < 0)
		return -EBADMSG;
	return 0;
}

int proc_read_fds(pid_t pid, struct proc_fd_list *ret)
{
	char path[PROC_PATH_MAX];
	int r = proc_path(path, pid, 0, "fd");
	if (r < 0)
		return r;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return neg_errno();
	_cleanup_closedir_ DIR *d = fdopendir(dfd);
	if (!d) {
		r = neg_errno();
		close(dfd);
		return r;
	}

	/* PATH_MAX for d_path, plus " (deleted)" */
	char link[PATH_MAX + 32];
	_cleanup_free_ struct proc_fd *fds = NULL;
	_cleanup_free_ size_t *offs = NULL;	/* target offsets into the arena */
	_cleanup_(pp_arena_done) struct pp_arena arena = {};
	size_t n = 0, cap = 0;
	struct dirent *de;

	errno = 0;
	while ((de = readdir(d))) {
		int fdnum;
		if (de->d_name[0] == '.')
			continue;
		if (parse_fd_name(de->d_name, &fdnum) < 0)
			return -EBADMSG;
		ssize_t l = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (l < 0) {
			if (errno == ENOENT)
				continue;	/* closed meanwhile */
			return neg_errno();
		}
		if ((size_t)l >= sizeof(link) - 1)
			return -ENAMETOOLONG;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			fds = xrealloc(fds, cap * sizeof(*fds));
			offs = xrealloc(offs, cap * sizeof(*offs));
		}
		struct proc_fd *f = &fds[n];
		/* classify in the arena copy, so that the target lands there */
		size_t base = pp_arena_add(&arena, link, (size_t)l);
		r = proc_classify_fd_target(arena.buf + base, (size_t)l, f);
		if (r < 0)
			return r;
		f->fd = fdnum;
		offs[n] = base;
		n++;
		errno = 0;
	}
	if (errno)
		return neg_errno();

	for (size_t i = 0; i < n; i++)
		fds[i].target = arena.buf + offs[i];
	if (n)
		qsort(fds, n, sizeof(*fds), cmp_fd);

	ret->fds = TAKE_PTR(fds);
	ret->n = n;
	ret->storage = TAKE_PTR(arena.buf);
	return (int)MIN(n, (size_t)INT_MAX);
}

/* ------------------------------------------------------------------------ */
/* fdinfo                                                                    */

void proc_fdinfo_done(struct proc_fdinfo *fi)
{
	if (!fi)
		return;
	free(fi->kv);
	free(fi->storage);
	*fi = (struct proc_fdinfo){};
}

enum { FI_POS = 1, FI_FLAGS = 2, FI_MNT_ID = 4, FI_INO = 8 };

int proc_parse_fdinfo(const char *buf, size_t len, struct proc_fdinfo *ret)
{
	_cleanup_free_ char *storage = pp_dup(buf, len);
	_cleanup_free_ struct proc_kv *kv = NULL;
	struct proc_fdinfo fi = {};
	const char *p = storage, *end = storage + len, *line;
	size_t n = 0, cap = 0, llen;
	unsigned seen = 0;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		char *l = (char *)line, *lend = l + llen;
		char *colon = memchr(l, ':', llen);
		char *kend;
		if (!colon || colon == l)
			return -EBADMSG;
		kend = colon;
		/* "inotify wd:1 ino:..." : the key is the first word */
		if (pp_startswith(l, llen, "inotify ") || pp_startswith(l, llen, "fanotify ")) {
			kend = memchr(l, ' ', llen);
			colon = kend;
		}
		const char *v = colon + 1;
		pp_skip_blanks(&v, lend);
		size_t klen = (size_t)(kend - l);
		const char *vp = v;

#define KEY(s) (klen == sizeof(s) - 1 && memcmp(l, s, sizeof(s) - 1) == 0)
		if (KEY("pos") && !(seen & FI_POS)) {
			if (pp_dec_s64(&vp, lend, &fi.pos) < 0 || vp != lend)
				return -EBADMSG;
			seen |= FI_POS;
			continue;
		}
		if (KEY("flags") && !(seen & FI_FLAGS)) {
			uint64_t f;
			if (pp_oct_u64(&vp, lend, &f) < 0 || vp != lend || f > UINT_MAX)
				return -EBADMSG;
			fi.flags = (unsigned int)f;
			seen |= FI_FLAGS;
			continue;
		}
		if (KEY("mnt_id") && !(seen & FI_MNT_ID)) {
			if (pp_dec_int(&vp, lend, &fi.mnt_id) < 0 || vp != lend)
				return -EBADMSG;
			seen |= FI_MNT_ID;
			continue;
		}
		if (KEY("ino") && !(seen & FI_INO)) {
			if (pp_dec_u64(&vp, lend, &fi.ino) < 0 || vp != lend)
				return -EBADMSG;
			seen |= FI_INO;
			continue;
		}
#undef KEY
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			kv = xrealloc(kv, cap * sizeof(*kv));
		}
		*kend = 0;
		*lend = 0;	/* the '\n' (or the NUL after the copy) */
		kv[n].key = l;
		kv[n].val = v;
		n++;
	}
	if (r < 0)
		return r;
	if ((seen & (FI_POS | FI_FLAGS | FI_MNT_ID)) != (FI_POS | FI_FLAGS | FI_MNT_ID))
		return -EBADMSG;

	fi.kv = TAKE_PTR(kv);
	fi.n_kv = n;
	fi.storage = TAKE_PTR(storage);
	*ret = fi;
	return 0;
}

int proc_read_fdinfo(pid_t pid, int fd, struct proc_fdinfo *ret)
{
	char name[32];
	_cleanup_free_ char *buf = NULL;
	size_t len;

	if (fd < 0)
		return -EBADF;
	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	/* an epoll set or inotify instance may list many entries */
	int r = proc_read_pid_file(pid, 0, name, 4096, PROC_MAX_BIG, &buf, &len);
	if (r < 0)
		return r;
	return proc_parse_fdinfo(buf, len, ret);
}

const char *proc_fdinfo_get(const struct proc_fdinfo *fi, const char *key)
{
	for (size_t i = 0; i < fi->n_kv; i++)
		if (strcmp(fi->kv[i].key, key) == 0)
			return fi->kv[i].val;
	return NULL;
}

/* ---- typed readers ---- */

static const char *vend(const char *v) { return v + strlen(v); }

/* skip blanks, then the literal tag, then blanks */
static bool tag(const char **p, const char *end, const char *t)
{
	pp_skip_blanks(p, end);
	if (!pp_lit(p, end, t))
		return false;
	pp_skip_blanks(p, end);
	return true;
}

int proc_fdinfo_eventfd(const struct proc_fdinfo *fi, struct proc_eventfd *ret)
{
	const char *c = proc_fdinfo_get(fi, "eventfd-count");
	const char *s = proc_fdinfo_get(fi, "eventfd-semaphore");
	const char *id = proc_fdinfo_get(fi, "eventfd-id");
	struct proc_eventfd e = { .id = -1 };
	int sem = 0;

	if (!c)
		return -ENOENT;
	/* "eventfd-count: %16llx" */
	if (pp_hex_u64(&c, vend(c), &e.count) < 0 || *c)
		return -EBADMSG;
	if (s && (pp_dec_int(&s, vend(s), &sem) < 0 || *s))
		return -EBADMSG;
	if (id && (pp_dec_s64(&id, vend(id), &e.id) < 0 || *id))
		return -EBADMSG;
	e.semaphore = sem != 0;
	*ret = e;
	return 0;
}

int proc_fdinfo_signalfd(const struct proc_fdinfo *fi, uint64_t *ret_sigmask)
{
	const char *v = proc_fdinfo_get(fi, "sigmask");
	uint64_t m;

	if (!v)
		return -ENOENT;
	if (pp_hex_u64(&v, vend(v), &m) < 0 || *v)
		return -EBADMSG;
	*ret_sigmask = m;
	return 0;
}

/* "(%llu, %llu)" */
static int parse_pair(const char *v, uint64_t *a, uint64_t *b)
{
	const char *end = vend(v);
	if (!pp_char(&v, end, '(') || pp_dec_u64(&v, end, a) < 0 || !pp_char(&v, end, ',') ||
	    !tag(&v, end, "") || pp_dec_u64(&v, end, b) < 0 || !pp_char(&v, end, ')') || v != end)
		return -EBADMSG;
	return 0;
}

int proc_fdinfo_timerfd(const struct proc_fdinfo *fi, struct proc_timerfd *ret)
{
	const char *clk = proc_fdinfo_get(fi, "clockid");
	const char *ticks = proc_fdinfo_get(fi, "ticks");
	const char *fl = proc_fdinfo_get(fi, "settime flags");
	const char *val = proc_fdinfo_get(fi, "it_value");
	const char *itv = proc_fdinfo_get(fi, "it_interval");
	struct proc_timerfd t = {};
	uint64_t f;

	if (!clk || !ticks || !fl || !val || !itv)
		return -ENOENT;
	if (pp_dec_int(&clk, vend(clk), &t.clockid) < 0 || *clk ||
	    pp_dec_u64(&ticks, vend(ticks), &t.ticks) < 0 || *ticks ||
	    pp_oct_u64(&fl, vend(fl), &f) < 0 || *fl || f > UINT_MAX ||
	    parse_pair(val, &t.value_sec, &t.value_nsec) < 0 ||
	    parse_pair(itv, &t.interval_sec, &t.interval_nsec) < 0)
		return -EBADMSG;
	t.settime_flags = (unsigned int)f;
	*ret = t;
	return 0;
}

/* "%8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x" */
static int parse_tfd(const char *v, struct proc_epoll_tfd *t)
{
	const char *end = vend(v);
	if (pp_dec_int(&v, end, &t->fd) < 0 || !tag(&v, end, "events:") ||
	    pp_hex_u32(&v, end, &t->events) < 0 || !tag(&v, end, "data:") ||
	    pp_hex_u64(&v, end, &t->data) < 0 || !tag(&v, end, "pos:") ||
	    pp_dec_s64(&v, end, &t->pos) < 0 || !tag(&v, end, "ino:") ||
	    pp_hex_u64(&v, end, &t->ino) < 0 || !tag(&v, end, "sdev:") ||
	    pp_hex_u32(&v, end, &t->sdev) < 0)
		return -EBADMSG;
	/* newer kernels may add fields after sdev */
	if (v != end && !pp_isblank(*v))
		return -EBADMSG;
	return 0;
}

int proc_fdinfo_epoll(const struct proc_fdinfo *fi, struct proc_epoll_tfd **ret, size_t *ret_n)
{
	_cleanup_free_ struct proc_epoll_tfd *t = NULL;
	size_t n = 0;

	for (size_t i = 0; i < fi->n_kv; i++)
		if (strcmp(fi->kv[i].key, "tfd") == 0)
			n++;
	if (!n) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	t = xcalloc(n, sizeof(*t));
	n = 0;
	for (size_t i = 0; i < fi->n_kv; i++) {
		if (strcmp(fi->kv[i].key, "tfd") != 0)
			continue;
		if (parse_tfd(fi->kv[i].val, &t[n]) < 0)
			return -EBADMSG;
		n++;
	}
	*ret = TAKE_PTR(t);
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}

/* "wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x[ fhandle-bytes:%x fhandle-type:%x f_handle:%s]" */
static int parse_inotify(const char *v, struct proc_inotify_wd *w)
{
	const char *end = vend(v);
	uint32_t wd;
	if (!tag(&v, end, "wd:") || pp_hex_u32(&v, end, &wd) < 0 || wd > INT_MAX ||
	    !tag(&v, end, "ino:") || pp_hex_u64(&v, end, &w->ino) < 0 ||
	    !tag(&v, end, "sdev:") || pp_hex_u32(&v, end, &w->sdev) < 0 ||
	    !tag(&v, end, "mask:") || pp_hex_u32(&v, end, &w->mask) < 0 ||
	    !tag(&v, end, "ignored_mask:") || pp_hex_u32(&v, end, &w->ignored_mask) < 0)
		return -EBADMSG;
	w->wd = (int)wd;
	pp_skip_blanks(&v, end);
	w->fhandle = v != end ? v : NULL;
	return 0;
}

int proc_fdinfo_inotify(const struct proc_fdinfo *fi, struct proc_inotify_wd **ret, size_t *ret_n)
{
	_cleanup_free_ struct proc_inotify_wd *w = NULL;
	size_t n = 0;

	for (size_t i = 0; i < fi->n_kv; i++)
		if (strcmp(fi->kv[i].key, "inotify") == 0)
			n++;
	if (!n) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	w = xcalloc(n, sizeof(*w));
	n = 0;
	for (size_t i = 0; i < fi->n_kv; i++) {
		if (strcmp(fi->kv[i].key, "inotify") != 0)
			continue;
		if (parse_inotify(fi->kv[i].val, &w[n]) < 0)
			return -EBADMSG;
		n++;
	}
	*ret = TAKE_PTR(w);
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}

/*
 * "%lld: " then the kind: "POSIX  ADVISORY  ", "OFDLCK ADVISORY  ",
 * "FLOCK  ADVISORY  " (others: LEASE, DELEG, ACCESS, UNKNOWN), the type
 * "READ"/"WRITE", "%d %02x:%02x:%lu " (pid, dev, inode), then
 * "%lld EOF" or "%lld %lld" (first and last byte).
 */
static int parse_lock(const char *v, struct proc_lock *l)
{
	const char *end = vend(v), *w;
	uint64_t id, x;
	int64_t pid;

	*l = (struct proc_lock){};
	if (pp_dec_u64(&v, end, &id) < 0 || !pp_char(&v, end, ':'))
		return -EBADMSG;
	pp_skip_blanks(&v, end);
	w = v;
	while (v < end && !pp_isblank(*v))
		v++;
	if (v == w)
		return -EBADMSG;
	memcpy(l->name, w, MIN((size_t)(v - w), sizeof(l->name) - 1));
	if (!strcmp(l->name, "POSIX"))
		l->kind = PROC_LOCK_POSIX;
	else if (!strcmp(l->name, "OFDLCK"))
		l->kind = PROC_LOCK_OFD;
	else if (!strcmp(l->name, "FLOCK"))
		l->kind = PROC_LOCK_FLOCK;
	else {
		l->kind = PROC_LOCK_OTHER;
		return 0;
	}
	if (!tag(&v, end, "ADVISORY"))
		return -EBADMSG;
	if (pp_lit(&v, end, "WRITE"))
		l->write = true;
	else if (!pp_lit(&v, end, "READ"))
		return -EBADMSG;
	if (!pp_blanks(&v, end) || pp_dec_s64(&v, end, &pid) < 0 || pid < INT_MIN || pid > INT_MAX ||
	    !pp_blanks(&v, end))
		return -EBADMSG;
	l->pid = (int)pid;
	/* dev "fe:00:123": two hex numbers and the inode */
	if (pp_hex_u64(&v, end, &x) < 0 || !pp_char(&v, end, ':') || pp_hex_u64(&v, end, &x) < 0 ||
	    !pp_char(&v, end, ':') || pp_dec_u64(&v, end, &x) < 0 || !pp_blanks(&v, end) ||
	    pp_dec_u64(&v, end, &l->start) < 0 || !pp_blanks(&v, end))
		return -EBADMSG;
	if (pp_lit(&v, end, "EOF"))
		l->end = UINT64_MAX;
	else if (pp_dec_u64(&v, end, &l->end) < 0 || l->end < l->start)
		return -EBADMSG;
	pp_skip_blanks(&v, end);
	return v == end ? 0 : -EBADMSG;
}

int proc_fdinfo_locks(const struct proc_fdinfo *fi, struct proc_lock **ret, size_t *ret_n)
{
	_cleanup_free_ struct proc_lock *l = NULL;
	size_t n = 0;

	for (size_t i = 0; i < fi->n_kv; i++)
		if (strcmp(fi->kv[i].key, "lock") == 0)
			n++;
	*ret = NULL;
	*ret_n = 0;
	if (!n)
		return 0;
	l = xcalloc(n, sizeof(*l));
	n = 0;
	for (size_t i = 0; i < fi->n_kv; i++) {
		if (strcmp(fi->kv[i].key, "lock") != 0)
			continue;
		if (parse_lock(fi->kv[i].val, &l[n]) < 0)
			return -EBADMSG;
		n++;
	}
	*ret = TAKE_PTR(l);
	*ret_n = n;
	return (int)MIN(n, (size_t)INT_MAX);
}
