/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the /proc readers on live files: this process and a child
 * paused for the purpose.  The parsers on captured samples: test_proc.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "proc/proc.h"
#include "base/util.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "proc-helpers.h"

/* ------------------------------------------------------------------------ */
/* live: this process and a paused child                                     */

struct child {
	pid_t pid;
	char dir[64];
	void *maps[4];
};

static int child_setup(void **state)
{
	static struct child c;
	char path[256];

	snprintf(c.dir, sizeof(c.dir), "/tmp/dm-test-proc.%d", getpid());
	if (mkdir(c.dir, 0700) < 0 && errno != EEXIST)
		return -1;

	/* mappings with hostile names, one of them deleted */
	static const char *const names[] = { "with space", "new\nline", "gone", "back\\012slash" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", c.dir, names[i]);
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, 8192) < 0)
			return -1;
		c.maps[i] = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 4096);
		if (c.maps[i] == MAP_FAILED)
			return -1;
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/gone", c.dir);
	unlink(path);

	c.pid = fork();
	if (c.pid < 0)
		return -1;
	if (c.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	/* wait until the child sleeps in pause() */
	for (int i = 0; i < 1000; i++) {
		struct proc_stat st;
		if (proc_read_stat(c.pid, 0, &st) == 0 && st.state == 'S')
			break;
		usleep(1000);
	}
	*state = &c;
	return 0;
}

static int child_teardown(void **state)
{
	struct child *c = *state;
	char path[256];

	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	for (size_t i = 0; i < ARRAY_SIZE(c->maps); i++)
		munmap(c->maps[i], 8192);
	snprintf(path, sizeof(path), "%s/with space", c->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/new\nline", c->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/back\\012slash", c->dir);
	unlink(path);
	rmdir(c->dir);
	return 0;
}

static void check_child_vmas(const struct child *c, const struct proc_vma_list *l, bool raw_names)
{
	char path[256];
	const struct proc_vma *v;

	snprintf(path, sizeof(path), "%s/with space", c->dir);
	v = find_vma_path(l, path);
	assert_non_null(v);
	assert_int_equal(v->pgoff, 4096);
	assert_int_equal(v->end - v->start, 8192);
	assert_true(v->shared);
	assert_false(v->deleted);
	assert_int_equal(proc_vma_is_deleted(c->pid, v), 0);
	snprintf(path, sizeof(path), "%s/new\nline", c->dir);
	assert_non_null(find_vma_path(l, path));
	/* text maps reads a literal "\012" as a newline; PROCMAP_QUERY fixes it */
	snprintf(path, sizeof(path), raw_names ? "%s/back\\012slash" : "%s/back\nslash", c->dir);
	assert_non_null(find_vma_path(l, path));
	snprintf(path, sizeof(path), "%s/gone", c->dir);
	v = find_vma_path(l, path);
	assert_non_null(v);
	assert_true(v->deleted);
	assert_int_equal(proc_vma_is_deleted(c->pid, v), 1);
	assert_non_null(find_vma_kind(l, PROC_VMA_STACK));
	assert_non_null(find_vma_kind(l, PROC_VMA_VDSO));
	/* no [heap] check: ASan's allocator does not use brk() */
}

static void test_live_maps(void **state)
{
	struct child *c = *state;
	_cleanup_(proc_vma_list_done) struct proc_vma_list m = {}, s = {}, q = {};

	/* without PROCMAP_QUERY, the names stay ambiguous */
	struct proc_vma_list probe = {};
	bool has_query = proc_query_maps(c->pid, &probe) != -EOPNOTSUPP;
	proc_vma_list_done(&probe);

	assert_true(proc_read_maps(c->pid, &m) > 10);
	check_child_vmas(c, &m, has_query);
	assert_int_equal(proc_read_smaps_vmflags(c->pid, &m), 0);
	assert_true(find_vma_kind(&m, PROC_VMA_STACK)->vmflags & PROC_VMF_GD);

	assert_int_equal(proc_read_smaps(c->pid, &s), (int)m.n);
	for (size_t i = 0; i < m.n; i++) {
		assert_int_equal(m.vmas[i].start, s.vmas[i].start);
		assert_int_equal(m.vmas[i].vmflags, s.vmas[i].vmflags);
		assert_string_equal(m.vmas[i].path, s.vmas[i].path);
	}

	int r = proc_query_maps(c->pid, &q);
	if (r == -EOPNOTSUPP) {
		print_message("PROCMAP_QUERY not supported here\n");
		return;
	}
	/* the same VMAs, but for the gate area */
	assert_int_equal(r, (int)m.n - 1);
	assert_int_equal(m.vmas[m.n - 1].kind, PROC_VMA_VSYSCALL);
	for (size_t i = 0; i < q.n; i++) {
		const struct proc_vma *a = &m.vmas[i], *b = &q.vmas[i];
		assert_int_equal(a->start, b->start);
		assert_int_equal(a->end, b->end);
		assert_int_equal(a->prot, b->prot);
		assert_int_equal(a->shared, b->shared);
		assert_int_equal(a->pgoff, b->pgoff);
		assert_int_equal(a->inode, b->inode);
		assert_int_equal(a->dev_major, b->dev_major);
		assert_int_equal(a->dev_minor, b->dev_minor);
		assert_int_equal(a->kind, b->kind);
		assert_int_equal(a->deleted, b->deleted);
		assert_string_equal(a->path, b->path);
	}
	check_child_vmas(c, &q, true);
	assert_int_equal(proc_read_smaps_vmflags(c->pid, &q), 0);
	for (size_t i = 0; i < q.n; i++)
		assert_int_equal(q.vmas[i].vmflags, m.vmas[i].vmflags);
}

static void test_live_child_misc(void **state)
{
	struct child *c = *state;
	_cleanup_free_ pid_t *kids = NULL, *kids2 = NULL, *tids = NULL;
	size_t n;
	struct proc_stat st;

	assert_int_equal(proc_read_stat(c->pid, 0, &st), 0);
	assert_int_equal(st.ppid, getpid());
	assert_int_equal(st.state, 'S');

	assert_true(proc_read_children(PROC_SELF, 0, &kids, &n) >= 1);
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found |= kids[i] == c->pid;
	assert_true(found);
	/* the child was forked by the main thread */
	assert_true(proc_read_children(getpid(), gettid(), &kids2, &n) >= 1);

	assert_int_equal(proc_read_tasks(c->pid, &tids, &n), 1);
	assert_int_equal(tids[0], c->pid);
}

static void *sleeper(void *arg)
{
	prctl(PR_SET_NAME, "dm) sleeper");
	pthread_barrier_wait(arg);
	pthread_barrier_wait(arg);
	return NULL;
}

static void test_live_self(void **state)
{
	pthread_barrier_t bar;
	pthread_t th;
	struct proc_stat st;
	_cleanup_(proc_status_done) struct proc_status s = {}, ts = {};
	_cleanup_free_ pid_t *tids = NULL;
	size_t n;
	char comm[PROC_COMM_MAX + 1], old[17] = "";

	prctl(PR_GET_NAME, old);
	assert_int_equal(prctl(PR_SET_NAME, "t) (e\\st\n"), 0);
	pthread_barrier_init(&bar, NULL, 2);
	assert_int_equal(pthread_create(&th, NULL, sleeper, &bar), 0);
	pthread_barrier_wait(&bar);

	assert_int_equal(proc_read_stat(PROC_SELF, 0, &st), 0);
	assert_int_equal(st.pid, getpid());
	assert_int_equal(st.ppid, getppid());
	assert_string_equal(st.comm, "t) (e\\st\n");
	assert_int_equal(st.num_threads, 2);
	assert_true(st.start_code && st.end_code > st.start_code);
	assert_true(st.arg_start < st.arg_end);

	assert_int_equal(proc_read_status(PROC_SELF, 0, &s), 0);
	assert_string_equal(s.name, "t) (e\\st\n");
	assert_int_equal(s.pid, getpid());
	assert_int_equal(s.tgid, getpid());
	assert_int_equal(s.uid[0], getuid());
	assert_int_equal(s.threads, 2);
	assert_int_equal(s.nspid[s.n_nspid - 1], getpid());

	assert_int_equal(proc_read_tasks(PROC_SELF, &tids, &n), 2);
	pid_t other = tids[0] == getpid() ? tids[1] : tids[0];
	assert_int_equal(proc_read_status(getpid(), other, &ts), 0);
	assert_string_equal(ts.name, "dm) sleeper");
	assert_int_equal(ts.tgid, getpid());
	assert_int_equal(ts.pid, other);
	assert_int_equal(proc_read_comm(PROC_SELF, other, comm), 0);
	assert_string_equal(comm, "dm) sleeper");
	assert_int_equal(proc_read_comm(PROC_SELF, 0, comm), 0);
	assert_string_equal(comm, "t) (e\\st\n");
	assert_int_equal(proc_read_stat(PROC_SELF, other, &st), 0);
	assert_string_equal(st.comm, "dm) sleeper");

	pthread_barrier_wait(&bar);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&bar);
	prctl(PR_SET_NAME, old);
}

static void test_live_fds(void **state)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	int efd = eventfd(7, EFD_CLOEXEC);
	int mfd = memfd_create("m f d", MFD_CLOEXEC);
	char path[] = "/tmp/dm-test-fd.XXXXXX";
	int tfd = mkostemp(path, O_CLOEXEC);
	assert_true(efd >= 0 && mfd >= 0 && tfd >= 0);
	unlink(path);
	assert_int_equal(write(tfd, "abc", 3), 3);

	_cleanup_(proc_fd_list_done) struct proc_fd_list l = {};
	assert_true(proc_read_fds(PROC_SELF, &l) >= 5);
	for (size_t i = 1; i < l.n; i++)
		assert_true(l.fds[i - 1].fd < l.fds[i].fd);
	int seen = 0;
	for (size_t i = 0; i < l.n; i++) {
		const struct proc_fd *f = &l.fds[i];
		if (f->fd == p[0]) {
			assert_int_equal(f->kind, PROC_FD_PIPE);
			assert_true(f->ino > 0);
			seen++;
		} else if (f->fd == efd) {
			assert_int_equal(f->kind, PROC_FD_ANON);
			assert_int_equal(f->anon, PROC_ANON_EVENTFD);
			seen++;
		} else if (f->fd == mfd) {
			assert_int_equal(f->kind, PROC_FD_MEMFD);
			assert_string_equal(f->target, "/memfd:m f d");
			seen++;
		} else if (f->fd == tfd) {
			assert_int_equal(f->kind, PROC_FD_FILE);
			assert_true(f->deleted);
			assert_string_equal(f->target, path);
			seen++;
		}
	}
	assert_int_equal(seen, 4);

	_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {}, fi2 = {};
	struct proc_eventfd e;
	assert_int_equal(proc_read_fdinfo(PROC_SELF, efd, &fi), 0);
	assert_int_equal(proc_fdinfo_eventfd(&fi, &e), 0);
	assert_int_equal(e.count, 7);
	assert_true(fi.flags & O_CLOEXEC);
	assert_int_equal(proc_read_fdinfo(PROC_SELF, tfd, &fi2), 0);
	assert_int_equal(fi2.pos, 3);
	assert_int_equal(proc_read_fdinfo(PROC_SELF, -1, &fi2), -EBADF);

	close(p[0]);
	close(p[1]);
	close(efd);
	close(mfd);
	close(tfd);
	struct proc_fdinfo z = {};
	assert_int_equal(proc_read_fdinfo(PROC_SELF, tfd, &z), -ENOENT);
}

static int blocked_pipe[2];
static uintptr_t blocked_stack_var;
static void *blocked_thread(void *arg)
{
	char c, here;
	blocked_stack_var = (uintptr_t)&here;
	(void)arg;
	return read(blocked_pipe[0], &c, 1) == 1 ? NULL : arg;
}

static atomic_int spin_stop;
static void *spinning_thread(void *arg)
{
	while (!atomic_load(&spin_stop))
		;
	return arg;
}

/* A thread blocked in read(2): its stack pointer, a little below one of its
 * own locals; a thread that spins: running (0) */
static void test_live_blocked_sp(void **state)
{
	pthread_t t, u;
	uint64_t sp = 0;
	(void)state;
	assert_int_equal(pipe(blocked_pipe), 0);
	assert_int_equal(pthread_create(&t, NULL, blocked_thread, NULL), 0);
	pid_t tid = 0;
	int r = 0;
	for (int i = 0; i < 10000; i++) {	/* 10 s at least: a loaded machine */
		_cleanup_free_ pid_t *tids = NULL;
		size_t n = 0;
		assert_true(proc_read_tasks(getpid(), &tids, &n) >= 2);
		tid = tids[n - 1];
		r = proc_read_blocked_sp(getpid(), tid, &sp);
		/* blocked in read, or still on its way there */
		if (r == 1 && blocked_stack_var && sp < blocked_stack_var && blocked_stack_var - sp < 65536)
			break;
		usleep(1000);
	}
	assert_int_equal(r, 1);
	assert_true(sp < blocked_stack_var && blocked_stack_var - sp < 65536);
	assert_int_equal(write(blocked_pipe[1], "x", 1), 1);
	pthread_join(t, NULL);
	close(blocked_pipe[0]);
	close(blocked_pipe[1]);

	atomic_store(&spin_stop, 0);
	assert_int_equal(pthread_create(&u, NULL, spinning_thread, NULL), 0);
	bool running = false;
	for (int i = 0; i < 10000 && !running; i++) {
		_cleanup_free_ pid_t *tids = NULL;
		size_t n = 0;
		assert_true(proc_read_tasks(getpid(), &tids, &n) >= 2);
		running = proc_read_blocked_sp(getpid(), tids[n - 1], &sp) == 0;
		if (!running)
			usleep(1000);
	}
	atomic_store(&spin_stop, 1);
	pthread_join(u, NULL);
	assert_true(running);
}

static void test_live_misc(void **state)
{
	timer_t t;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGURG };
	assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &t), 0);
	_cleanup_free_ struct proc_timer *tm = NULL;
	size_t n;
	assert_true(proc_read_timers(PROC_SELF, &tm, &n) >= 1);
	assert_int_equal(tm[0].signo, SIGURG);
	assert_int_equal(tm[0].notify_pid, getpid());
	timer_delete(t);

	_cleanup_(proc_mount_list_done) struct proc_mount_list ml = {};
	assert_true(proc_read_mountinfo(PROC_SELF, &ml) > 0);

	unsigned int pers;
	assert_int_equal(proc_read_personality(PROC_SELF, &pers), 0);
	assert_int_equal(pers, (unsigned)personality(0xffffffff));

	_cleanup_(proc_strv_done) struct proc_strv cmd = {}, env = {};
	assert_true(proc_read_cmdline(PROC_SELF, &cmd) >= 1);
	assert_non_null(strstr(cmd.v[0], "test_proc"));
	assert_true(proc_read_environ(PROC_SELF, &env) >= 0);

	_cleanup_free_ struct proc_auxv_entry *a = NULL;
	assert_true(proc_read_auxv(PROC_SELF, &a, &n) > 5);
	bool pagesz = false, entry = false;
	for (size_t i = 0; i < n; i++) {
		pagesz |= a[i].type == AT_PAGESZ && a[i].val == (uint64_t)sysconf(_SC_PAGESIZE);
		entry |= a[i].type == AT_ENTRY && a[i].val != 0;
	}
	assert_true(pagesz && entry);

	struct proc_ns ns;
	struct stat sb;
	assert_int_equal(proc_read_all_ns(PROC_SELF, &ns), 0);
	assert_int_equal(stat("/proc/self/ns/net", &sb), 0);
	assert_int_equal(ns.ino[PROC_NS_NET], sb.st_ino);
	assert_int_equal(ns.ino[PROC_NS_PID], ns.ino[PROC_NS_PID_FOR_CHILDREN]);
	for (int i = 0; i < PROC_NS_COUNT; i++)
		assert_non_null(proc_ns_name(i));
	assert_int_equal(proc_read_ns(PROC_SELF, PROC_NS_COUNT, &ns.ino[0]), -EINVAL);

	_cleanup_(proc_cgroup_list_done) struct proc_cgroup_list cg = {};
	assert_true(proc_read_cgroup(PROC_SELF, &cg) >= 1);

	struct proc_cpu_times ct;
	struct proc_meminfo mi;
	assert_int_equal(proc_read_cpu_times(&ct), 0);
	assert_int_equal(ct.ncpu, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(proc_read_meminfo(&mi), 0);
	assert_true(mi.mem_total > mi.mem_available && mi.mem_available > 0);

	/* a process that does not exist */
	struct proc_stat st;
	struct proc_vma_list l = {};
	assert_int_equal(proc_read_stat(INT_MAX, 0, &st), -ENOENT);
	assert_int_equal(proc_read_maps(INT_MAX, &l), -ENOENT);
	assert_int_equal(proc_read_stat(-5, 0, &st), -EINVAL);
}

static void test_live_self_query(void **state)
{
	/* our own address space changes while we read it (malloc): -EAGAIN is allowed */
	_cleanup_(proc_vma_list_done) struct proc_vma_list q = {};
	int r = -EAGAIN;
	for (int i = 0; i < 10 && r == -EAGAIN; i++)
		r = proc_query_maps(PROC_SELF, &q);
	if (r == -EOPNOTSUPP)
		skip();
	assert_true(r > 5);
	assert_non_null(find_vma_kind(&q, PROC_VMA_STACK));
	assert_null(find_vma_kind(&q, PROC_VMA_VSYSCALL));
}

/*
 * The data runs of an area larger than a few scan chunks, not aligned to
 * one: a run that crosses chunk boundaries comes back whole, holes and the
 * zero page are left out, the ends are exact.
 */
static void test_pagemap_runs_chunks(void **state)
{
	const uint64_t pg = 4096, len = 3 * PROC_SCAN_CHUNK_BYTES + 5 * pg;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(m != MAP_FAILED);
	madvise(m, len, MADV_NOHUGEPAGE); /* a huge page would fill the holes */
	uint64_t a = (uint64_t)(uintptr_t)m;
	/* a run from page 3 over the first two chunk boundaries past a, one
	 * written page, one page only read (the zero page), the last page */
	uint64_t r0 = 3 * pg, r1 = 2 * PROC_SCAN_CHUNK_BYTES + 7 * pg;
	for (uint64_t o = r0; o < r1; o += pg)
		m[o] = 1;
	uint64_t lone = 2 * PROC_SCAN_CHUNK_BYTES + 100 * pg, zero = lone + 10 * pg;
	m[lone] = 2;
	volatile uint8_t v = m[zero];
	(void)v;
	m[len - pg] = 3;

	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	assert_true(pm >= 0);
	_cleanup_free_ struct proc_range *runs = NULL;
	size_t cap = 0, n = 0;
	int r = proc_pagemap_data_runs(pm, a, a + len, &runs, &cap, &n);
	close(pm);
	if (r == -EINVAL || r == -ENOTTY) {
		munmap(m, len);
		skip(); /* no PAGEMAP_SCAN (Linux < 6.7) */
	}
	assert_int_equal(r, 0);
	assert_int_equal(n, 3);
	assert_int_equal(runs[0].start, a + r0);
	assert_int_equal(runs[0].end, a + r1);
	assert_int_equal(runs[1].start, a + lone);
	assert_int_equal(runs[1].end, a + lone + pg);
	assert_int_equal(runs[2].start, a + len - pg);
	assert_int_equal(runs[2].end, a + len);
	munmap(m, len);
}

static void test_read_file(void **state)
{
	_cleanup_free_ char *b = NULL;
	char *b2 = NULL;
	size_t len;
	/* exactly max bytes is fine, one more is not */
	char path[] = "/tmp/dm-test-rf.XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	char data[10000];
	memset(data, 'x', sizeof(data));
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	close(fd);
	assert_int_equal(proc_read_file(path, sizeof(data), &b, &len), 0);
	assert_int_equal(len, sizeof(data));
	assert_int_equal(b[len], 0);
	assert_int_equal(proc_read_file(path, sizeof(data) - 1, &b2, &len), -EFBIG);
	assert_null(b2);
	unlink(path);
	assert_int_equal(proc_read_file(path, 100, &b2, &len), -ENOENT);
}

/*
 * A file read by the helper of read_full_fd_aside() comes back as read here:
 * the buffer grown from a small hint, exactly max bytes fine, one more not;
 * and smaps read in a walk (aside) parses as outside one.
 */
static void test_read_aside(void **state)
{
	char path[] = "/tmp/dm-test-aside.XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	const size_t len = (3 << 20) + 123;
	char *data = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 + i / 4096);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	char *b = NULL;
	size_t got = 0;
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(read_full_fd_aside(fd, 100, len, &b, &got), 0);
	assert_int_equal(got, len);
	assert_memory_equal(b, data, len);
	assert_int_equal(b[len], 0);
	free(b);
	b = NULL;
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(read_full_fd_aside(fd, 100, len - 1, &b, &got), -EFBIG);
	assert_null(b);
	close(fd);
	unlink(path);
	free(data);

	/* a child that only waits (our own maps change with the helper's stack) */
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		pause();
		_exit(0);
	}
	_cleanup_(proc_vma_list_done) struct proc_vma_list here = {}, aside = {};
	assert_int_equal(proc_read_maps_vmflags(c, &here), 0);
	thread_walk_section(true);
	assert_true(thread_walk_aside());
	int r = proc_read_maps_vmflags(c, &aside);
	thread_walk_section(false);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	assert_int_equal(r, 0);
	assert_int_equal(here.n, aside.n);
	assert_false(thread_walk_aside());
	for (size_t i = 0; i < here.n; i++) {
		assert_int_equal(here.vmas[i].start, aside.vmas[i].start);
		assert_true(aside.vmas[i].has_vmflags);
		assert_int_equal(here.vmas[i].vmflags, aside.vmas[i].vmflags);
	}
	/* and the thread is back to what it was */
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
}

/* The walk sections nest: each leave gives back what its own enter took. */
static void test_walk_sections_nest(void **state)
{
	(void)state;
	int base = getpriority(PRIO_PROCESS, 0);
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
	assert_true(base < PREP_WALK_NICE);

	thread_prep_walk_section(true);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), PREP_WALK_NICE);
	assert_false(thread_walk_aside());
	thread_walk_section(true);
	/* SCHED_IDLE where the kernel gives it, else the walk's nice */
	int pol = sched_getscheduler(0);
	assert_true(pol == SCHED_IDLE || (pol == SCHED_OTHER && getpriority(PRIO_PROCESS, 0) == PREP_WALK_NICE));
	assert_true(thread_walk_aside());
	thread_walk_section(false);
	/* back in the outer section: its nice, not the thread's first one */
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), PREP_WALK_NICE);
	assert_false(thread_walk_aside());
	thread_prep_walk_section(false);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), base);

	/* an aside walk around a section before the freeze: aside only in its own */
	thread_walk_section(true);
	thread_prep_walk_section(true);
	assert_false(thread_walk_aside());
	thread_prep_walk_section(false);
	assert_true(thread_walk_aside());
	thread_walk_section(false);
	assert_false(thread_walk_aside());
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), base);

	/* a leave without its enter changes nothing; deeper than the stack: balanced */
	thread_walk_section(false);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), base);
	for (int i = 0; i < 6; i++)
		thread_prep_walk_section(true);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), PREP_WALK_NICE);
	for (int i = 0; i < 5; i++)
		thread_prep_walk_section(false);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), PREP_WALK_NICE);
	thread_prep_walk_section(false);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_live_maps, child_setup, child_teardown),
		cmocka_unit_test_setup_teardown(test_live_child_misc, child_setup, child_teardown),
		cmocka_unit_test(test_live_self),
		cmocka_unit_test(test_live_fds),
		cmocka_unit_test(test_live_misc),
		cmocka_unit_test(test_live_blocked_sp),
		cmocka_unit_test(test_live_self_query),
		cmocka_unit_test(test_pagemap_runs_chunks),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_read_aside),
		cmocka_unit_test(test_walk_sections_nest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
