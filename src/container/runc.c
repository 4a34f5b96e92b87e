/* SPDX-License-Identifier: MIT */
/*
 * runc containers: what runc knows of one, its freezer, what the image keeps
 * of it, and its restore under runc (runc.h, docs/containers.md).
 */
#define LOG_PREFIX "runc: "
#include "container/runc.h"
#include "container/dirtar.h"
#include "container/ext-stub.h"
#include "container/ipc.h"
#include "base/child.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "net/inet.h"
#include "net/rtnl.h"
#include "proc/proc.h"

#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char runc_stub_bin[];
extern const size_t runc_stub_bin_len;

#define APPEND(arr, n, v)                                                      \
	do {                                                                   \
		(arr) = xrealloc((arr), ((n) + 1) * sizeof(*(arr)));           \
		(arr)[(n)++] = (v);                                            \
	} while (0)
#define MQUEUE_MAGIC 0x19800202 /* ipc/mqueue.c: not in linux/magic.h */
#define RUNC_COPY_PREFIX "/run/dmigrate/runc-"

struct runc_ct {
	char *root, *id;
	pid_t pid;
	char *bundle;
	char *copy_bundle;      /* a container we restored: the config copy runc runs it from */
	char *rootfs;           /* absolute */
	char *freezer;          /* v1: the freezer cgroup directory */
	char *cg2;              /* v2: the cgroup directory (cgroup.freeze) */
	json_t *state;          /* state.json */
	json_t *config;         /* the bundle's config.json */
	Dm__Container *msg;
	struct dump_container hooks;
	bool managed;           /* another manager's (Docker's): never `runc delete` it */
	/* runc_record_tail() reads the IPC namespace beside the dump (set by
	 * runc_record_head(): it will); the dump waits for it before it reads
	 * msg->ipc (dump_container.wait_ipc) */
	bool ipc_expected, ipc_done;
	pthread_mutex_t ipc_lock;
	pthread_cond_t ipc_cond;
	/* runc_record()'s steps (ms), for the stats */
	struct { double ns, hostname, net, fds, cgroup, mounts, ipc_wait; } rt;
};

/* ------------------------------------------------------------ commands */

static int memfd(const char *name)
{
	return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

static char *read_memfd(int fd)
{
	char *buf = NULL;
	size_t len = 0;

	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0 || read_full_fd(fd, 1 << 20, &buf, &len) < 0)
		return xstrdup("");
	/* one line for messages: runc's log lines end with newlines */
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = 0;
	return buf;
}

/*
 * What a command is called in a message: "runc delete ct1" for runc (its
 * command and the container), else the command line, cut short.
 */
static void cmd_name(const char *const argv[], char *buf, size_t len)
{
	size_t n = 0, k = 0;

	while (argv[n])
		n++;
	if (n >= 5 && !strcmp(argv[0], "runc") && !strcmp(argv[1], "--root")) {
		snprintf(buf, len, "runc %s %s", argv[3], argv[n - 1]);
		return;
	}
	buf[0] = 0;
	for (size_t i = 0; i < n && k + 1 < len; i++) {
		int w = snprintf(buf + k, len - k, "%s%s", i ? " " : "", argv[i]);
		if (w < 0 || (size_t)w >= len - k) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		k += (size_t)w;
	}
}

/*
 * Runs argv with stdin /dev/null, stdout and stderr into memfds (no pipe to
 * drain: a detached container keeps what it inherited).  extra: fds put at
 * 3, 4, ... in the child.  It leads a process group of its own, and may take
 * limit_ms (CHILD_WAIT_*): then the group is killed and -ETIMEDOUT comes
 * back, named ("runc delete ct1 did not finish in 30 s (killed)").
 * Returns the exit status (>= 0) or -errno (its message set).
 */
int ctr_run(const char *const argv[], const int *extra, size_t n_extra, int limit_ms, char **ret_out,
	    char **ret_err)
{
	_cleanup_close_ int out = memfd("runc-out"), err = memfd("runc-err");
	int st;

	if (out < 0 || err < 0)
		return dm_fail(neg_errno(), "memfd_create: %m");
	pid_t pid = fork();
	if (pid < 0)
		return dm_fail(neg_errno(), "fork: %m");
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		int fds[8];
		/* above every target number first, then into place */
		for (size_t i = 0; i < n_extra && i < 8; i++)
			fds[i] = fcntl(extra[i], F_DUPFD, 64);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(127);
		for (size_t i = 0; i < n_extra && i < 8; i++)
			if (fds[i] < 0 || dup2(fds[i], 3 + (int)i) < 0)
				_exit(127);
		syscall(SYS_close_range, 3 + n_extra, ~0U, 0);
		/* its group is killed with it if it hangs (runc's hooks) */
		setpgid(0, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	char name[160];
	cmd_name(argv, name, sizeof(name));
	int r = child_wait_limit(pid, limit_ms, &st, "%s", name);
	if (r < 0)
		return r;
	if (ret_out)
		*ret_out = read_memfd(out);
	if (ret_err)
		*ret_err = read_memfd(err);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* runc's error line: the msg="..." of its last log line, or all of it */
static const char *runc_msg(char *err)
{
	char *m = strstr(err, "msg=\"");
	if (!m)
		return err;
	char *last = m;
	while ((m = strstr(last + 1, "msg=\"")))
		last = m;
	last += 5;
	char *end = strrchr(last, '"');
	if (end)
		*end = 0;
	return last;
}

/*
 * Runs fn in a child that entered the namespace nstype ("uts", "net", "ipc")
 * of pid; the child's stdout (fd 1) is returned in *ret_out.  fn returns the
 * exit code; it may exec.
 */
static int in_ns(pid_t pid, const char *nstype, int (*fn)(void *), void *arg, char **ret_out)
{
	char path[64];
	_cleanup_close_ int nsfd = -1, out = memfd("ns-out"), err = memfd("ns-err");
	int st;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, nstype);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	if (out < 0 || err < 0)
		return dm_fail(neg_errno(), "memfd_create: %m");
	pid_t c = fork();
	if (c < 0)
		return dm_fail(neg_errno(), "fork: %m");
	if (c == 0) {
		if (setns(nsfd, 0) < 0) {
			dprintf(err, "setns(%s): %s", path, strerror(errno));
			_exit(126);
		}
		if (dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		_exit(fn(arg));
	}
	int r = child_wait_limit(c, CHILD_WAIT_HELPER_MS, &st, "a helper in the %s namespace of process %d",
				 nstype, pid);
	if (r < 0)
		return r;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		_cleanup_free_ char *e = read_memfd(err);
		return dm_fail(-EIO, "in the %s namespace of process %d: %s", nstype, pid,
			       e[0] ? e : "failed");
	}
	if (ret_out)
		*ret_out = read_memfd(out);
	return 0;
}

/* ------------------------------------------------------------ state */

int runc_parse_target(const char *arg, const char **ret_id, pid_t *ret_pid)
{
	long v;

	if (strncmp(arg, "runc:", 5) == 0) {
		if (!arg[5] || strchr(arg + 5, '/'))
			return dm_fail(-EINVAL, "bad container id in '%s'", arg);
		*ret_id = arg + 5;
		return 1;
	}
	if (strncmp(arg, "pid:", 4) == 0 && parse_long(arg + 4, &v) == 0 && v > 0 && v <= (1 << 22)) {
		*ret_pid = (pid_t)v;
		return 0;
	}
	return dm_fail(-EINVAL, "bad target '%s' (pid:PID or runc:ID)", arg);
}

static bool file_exists(const char *dir, const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

int runc_open(const char *root, const char *id, struct runc_ct **ret)
{
	_cleanup_free_ char *out = NULL, *err = NULL, *sp = NULL, *cp = NULL;
	struct runc_ct *ct;
	json_error_t je;
	json_t *st;
	int r;

	root = root ? root : RUNC_DEFAULT_ROOT;
	r = ctr_run((const char *const[]){ "runc", "--root", root, "state", id, NULL }, NULL, 0,
		    CHILD_WAIT_RUNC_MS, &out, &err);
	if (r < 0)
		return r;
	if (r == 127)
		return dm_fail(-ENOENT, "cannot run runc: %s", err);
	if (r)
		return dm_fail(-ENOENT, "no runc container '%s' under %s: %s", id, root, runc_msg(err));
	st = json_loads(out, 0, &je);
	if (!st)
		return dm_fail(-EBADMSG, "runc state %s: not JSON: %s", id, je.text);
	const char *status = json_str(st, "status"), *bundle = json_str(st, "bundle");
	json_t *annot = json_object_get(st, "annotations");
	json_int_t pid = json_integer_value(json_object_get(st, "pid"));
	if (!status || strcmp(status, "running")) {
		r = dm_fail(-ESRCH, "container '%s' is %s, not running", id, status ? status : "in no state");
		json_decref(st);
		return r;
	}
	ct = xcalloc(1, sizeof(*ct));
	pthread_mutex_init(&ct->ipc_lock, NULL);
	pthread_cond_init(&ct->ipc_cond, NULL);
	ct->root = xstrdup(root);
	ct->id = xstrdup(id);
	ct->pid = (pid_t)pid;
	/* a container we restored runs from a config copy: the user's bundle is kept */
	const char *ub = annot ? json_str(annot, RUNC_BUNDLE_ANNOTATION) : NULL;
	ct->bundle = xstrdup(ub ? ub : bundle ? bundle : "");
	if (ub && bundle && !strncmp(bundle, RUNC_COPY_PREFIX, strlen(RUNC_COPY_PREFIX)))
		ct->copy_bundle = xstrdup(bundle);
	json_decref(st);

	/* cgroups and namespaces: runc's own state file */
	sp = xasprintf("%s/%s/state.json", root, id);
	ct->state = json_load_file(sp, 0, &je);
	if (!ct->state) {
		r = dm_fail(-EBADMSG, "%s: %s", sp, je.text);
		goto fail;
	}
	json_t *paths = json_object_get(ct->state, "cgroup_paths");
	const char *fz = paths ? json_str(paths, "freezer") : NULL, *v2 = paths ? json_str(paths, "") : NULL;
	/* tests: the v2 path on a hybrid host (runc puts the container in both) */
	const char *force = getenv("DMIGRATE_TEST_FREEZER");
	bool want_v2 = force && !strcmp(force, "v2");
	if (fz && file_exists(fz, "freezer.state") && !want_v2)
		ct->freezer = xstrdup(fz);
	else if (v2 && file_exists(v2, "cgroup.freeze"))
		ct->cg2 = xstrdup(v2);
	else {
		r = dm_fail(-ENOTSUP, "container '%s' has no cgroup freezer (neither a v1 freezer nor "
			    "cgroup.freeze in %s's cgroup paths)", id, sp);
		goto fail;
	}
	/* the config it was made from */
	if (ub && !file_exists(ct->bundle, "config.json")) {
		r = dm_fail(-ENOENT, "container '%s': its bundle %s has no config.json", id, ct->bundle);
		goto fail;
	}
	cp = xasprintf("%s/config.json", ct->bundle);
	ct->config = json_load_file(cp, 0, &je);
	if (!ct->config) {
		r = dm_fail(-EBADMSG, "container '%s': %s: %s", id, cp, je.text);
		goto fail;
	}
	const char *rp = json_str(json_object_get(ct->config, "root"), "path");
	if (!rp) {
		r = dm_fail(-EBADMSG, "container '%s': %s has no root.path", id, cp);
		goto fail;
	}
	ct->rootfs = rp[0] == '/' ? xstrdup(rp) : xasprintf("%s/%s", ct->bundle, rp);
	json_t *proc = json_object_get(ct->config, "process");
	if (json_is_true(json_object_get(proc, "terminal"))) {
		r = dm_fail(-ENOTSUP, "container '%s' runs on a terminal (process.terminal): not "
			    "supported", id);
		goto fail;
	}
	*ret = ct;
	return 0;
fail:
	runc_free(ct);
	return r;
}

pid_t runc_init_pid(const struct runc_ct *ct)
{
	return ct->pid;
}

const char *runc_id(const struct runc_ct *ct)
{
	return ct->id;
}

const char *runc_rootfs(const struct runc_ct *ct)
{
	return ct->rootfs;
}

int runc_check_here(const char *root, const char *id, const char *rootfs)
{
	_cleanup_free_ char *err = NULL;
	struct stat st;
	int r;

	root = root ? root : RUNC_DEFAULT_ROOT;
	if (!id[0] || strchr(id, '/') || strlen(id) > 1024)
		return dm_fail(-EINVAL, "bad container id");
	r = ctr_run((const char *const[]){ "runc", "--root", root, "state", id, NULL }, NULL, 0,
		    CHILD_WAIT_RUNC_MS, NULL, &err);
	if (r == 127)
		return dm_fail(-ENOENT, "the container cannot be made here: cannot run runc: %s", err);
	if (r == 0)
		return dm_fail(-EEXIST, "a container '%s' exists here already (runc state root %s)", id, root);
	if (r < 0)
		return r;
	if (rootfs && (stat(rootfs, &st) < 0 || !S_ISDIR(st.st_mode)))
		return dm_fail(-ENOENT, "the container's rootfs %s is not here (its bundle must be at the "
			       "same path on both hosts)", rootfs);
	return 0;
}

void runc_free(struct runc_ct *ct)
{
	if (!ct)
		return;
	free(ct->root);
	free(ct->id);
	free(ct->bundle);
	free(ct->copy_bundle);
	free(ct->rootfs);
	free(ct->freezer);
	free(ct->cg2);
	if (ct->state)
		json_decref(ct->state);
	if (ct->config)
		json_decref(ct->config);
	if (ct->msg)
		protobuf_c_message_free_unpacked(&ct->msg->base, NULL);
	pthread_mutex_destroy(&ct->ipc_lock);
	pthread_cond_destroy(&ct->ipc_cond);
	free(ct);
}

/* ------------------------------------------------------------ freezer */

static int write_str(const char *dir, const char *name, const char *val)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		return dm_fail(neg_errno(), "%s: %m", p);
	return 0;
}

static int read_str(const char *dir, const char *name, char **ret)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	size_t len;
	int r = read_full_file(p, 1 << 20, ret, &len);
	if (r < 0)
		return dm_fail(r, "%s: %s", p, strerror(-r));
	return 0;
}

/* Every process of the container's cgroup: the dump seizes them at once. */
static int list_procs(void *arg, pid_t **ret, size_t *ret_n)
{
	struct runc_ct *ct = arg;
	_cleanup_free_ char *procs = NULL;
	pid_t *v = NULL;
	size_t n = 0;
	int r = read_str(ct->freezer ? ct->freezer : ct->cg2, "cgroup.procs", &procs);

	if (r < 0)
		return r;
	for (char *s = procs, *e; *s; s = e) {
		long pid = strtol(s, &e, 10);
		if (e == s)
			break;
		APPEND(v, n, (pid_t)pid);
		while (*e == '\n')
			e++;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Everything in the container's cgroup must be the tree: a process left by
 * `runc exec` (its runc still waits for it outside) would be lost. */
static int check_tree(void *arg, const pid_t *pids, size_t n)
{
	struct runc_ct *ct = arg;
	_cleanup_free_ char *procs = NULL;
	int r = read_str(ct->freezer ? ct->freezer : ct->cg2, "cgroup.procs", &procs);

	if (r < 0)
		return r;
	for (char *s = procs, *e; *s; s = e) {
		long v = strtol(s, &e, 10);
		if (e == s)
			break;
		bool in = false;
		for (size_t i = 0; i < n && !in; i++)
			in = pids[i] == v;
		if (!in) {
			char comm[PROC_COMM_MAX + 1] = "?";
			proc_read_comm((pid_t)v, 0, comm);
			dm_error_clear();
			return dm_fail(-ENOTSUP, "process %ld (%s) is in container '%s' but not below its "
				       "init (a `runc exec` whose runc still waits for it): it would "
				       "be lost", v, comm, ct->id);
		}
		while (*e == '\n')
			e++;
	}
	return 0;
}

/* The record's IPC objects are complete (runc_record_tail() read them). */
static int wait_ipc(void *arg)
{
	struct runc_ct *ct = arg;

	pthread_mutex_lock(&ct->ipc_lock);
	while (ct->ipc_expected && !ct->ipc_done)
		pthread_cond_wait(&ct->ipc_cond, &ct->ipc_lock);
	pthread_mutex_unlock(&ct->ipc_lock);
	return 0;
}

const struct dump_container *runc_dump_hooks(struct runc_ct *ct)
{
	Dm__Container *m = xmalloc(sizeof(*m));
	size_t len = 0;
	char *cfg = json_dumps(ct->config, JSON_COMPACT);

	dm__container__init(m);
	m->runtime = xstrdup("runc");
	m->id = xstrdup(ct->id);
	m->bundle = xstrdup(ct->bundle);
	len = strlen(cfg);
	m->config.data = (uint8_t *)cfg;
	m->config.len = len;
	m->runc_root = xstrdup(ct->root);
	m->cgroup_freezer = xstrdup(ct->freezer ? "v1" : "v2");
	ct->msg = m;
	ct->hooks = (struct dump_container){ .list = list_procs, .check_tree = check_tree,
					     .wait_ipc = wait_ipc, .arg = ct, .msg = m };
	return &ct->hooks;
}

/* ------------------------------------------------------------ record */


/*
 * The host name of pid's UTS namespace: read (set NULL) or set.  The
 * calling thread joins the namespace for the call (a UTS namespace is per
 * thread) and comes back: no fork while the container is frozen.
 */
static int uts_hostname(pid_t pid, char **ret_get, const char *set)
{
	char path[64], name[HOST_NAME_MAX + 1];
	_cleanup_close_ int ns = -1, back = -1;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/ns/uts", pid);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	back = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC);
	if (back < 0)
		return dm_fail(neg_errno(), "cannot open our own UTS namespace: %m");
	if (setns(ns, CLONE_NEWUTS) < 0)
		return dm_fail(neg_errno(), "cannot enter the UTS namespace of process %d: %m", pid);
	if (set && sethostname(set, strlen(set)) < 0)
		r = dm_fail(neg_errno(), "sethostname(%s) in the UTS namespace of process %d: %m", set, pid);
	else if (!set && gethostname(name, sizeof(name)) < 0)
		r = dm_fail(neg_errno(), "gethostname in the UTS namespace of process %d: %m", pid);
	if (setns(back, CLONE_NEWUTS) < 0) {
		/* a thread left in the container's namespace must not go on */
		pr_err("cannot return to our own UTS namespace: %m");
		abort();
	}
	if (r >= 0 && ret_get) {
		name[sizeof(name) - 1] = 0;
		*ret_get = xstrdup(name);
	}
	return r;
}

static int exec_ip(void *arg)
{
	execvp("ip", (char *const *)arg);
	dprintf(2, "cannot run ip: %s", strerror(errno));
	return 127;
}

static bool config_has_mount(struct runc_ct *ct, const char *mp)
{
	json_t *ms = json_object_get(ct->config, "mounts"), *m;
	size_t i;

	json_array_foreach(ms, i, m) {
		const char *dst = json_str(m, "destination");
		if (!dst)
			continue;
		size_t l = strlen(dst);
		while (l > 1 && dst[l - 1] == '/')
			l--;
		if (strlen(mp) == l && strncmp(dst, mp, l) == 0)
			return true;
	}
	return false;
}

static bool under(const char *mp, const char *dir)
{
	size_t l = strlen(dir);
	return strncmp(mp, dir, l) == 0 && (mp[l] == '/' || mp[l] == 0);
}

static int record_ns(struct runc_ct *ct)
{
	static const enum proc_ns_type types[] = { PROC_NS_CGROUP, PROC_NS_IPC, PROC_NS_MNT,
						   PROC_NS_NET, PROC_NS_PID, PROC_NS_UTS };
	static const char *const oci[] = { "cgroup", "ipc", "mount", "network", "pid", "uts" };
	Dm__Container *m = ct->msg;

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		uint64_t ino = 0, ours = 0;
		int r = proc_read_ns(ct->pid, types[i], &ino);
		if (r < 0)
			return dm_fail(r, "container '%s': %s namespace: %s", ct->id,
				       proc_ns_name(types[i]), strerror(-r));
		/* the calling thread's own (not the process's: the record runs
		 * beside the dump, whose thread enters the container's network
		 * namespace to lock it) */
		if (proc_read_ns((pid_t)gettid(), types[i], &ours) == 0 && ours == ino)
			continue;
		dm_error_clear();
		Dm__ContainerNs *n = xmalloc(sizeof(*n));
		dm__container_ns__init(n);
		n->type = xstrdup(proc_ns_name(types[i]));
		n->ino = ino;
		json_t *nss = json_object_get(json_object_get(ct->config, "linux"), "namespaces"), *e;
		size_t k;
		json_array_foreach(nss, k, e) {
			const char *t = json_str(e, "type"), *path = json_str(e, "path");
			if (t && path && !strcmp(t, oci[i]))
				n->path = xstrdup(path);
		}
		APPEND(m->namespaces, m->n_namespaces, n);
	}
	return 0;
}

/*
 * What runc makes in its /dev tmpfs from the config, made again by runc at
 * restore: the default devices and links (libcontainer's), the config's
 * linux.devices, and the mount points on it (pts, shm, mqueue: mounts of
 * their own).
 */
static bool runc_makes(struct runc_ct *ct, const char *rel)
{
	static const char *const made[] = { "null", "zero", "full", "random", "urandom", "tty",
					    "console", "ptmx", "fd", "stdin", "stdout", "stderr",
					    "core", "pts", "shm", "mqueue" };
	json_t *devs = json_object_get(json_object_get(ct->config, "linux"), "devices"), *e;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(made); i++)
		if (!strcmp(rel, made[i]))
			return true;
	json_array_foreach(devs, i, e) {
		const char *p = json_str(e, "path");
		if (p && !strncmp(p, "/dev/", 5) && !strcmp(p + 5, rel))
			return true;
	}
	return false;
}

struct dev_walk {
	struct runc_ct *ct;
	dev_t dev;              /* the /dev tmpfs: another file system is a mount */
	char **names;           /* "./REL" each (dirtar_create's only) */
	size_t n;
};

/* The entries of dir (rel: its path under /dev, "" for /dev) runc does not make. */
static int walk_dev(struct dev_walk *w, int dfd, const char *rel, int depth)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	int fd = dup(dfd);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return dm_fail(neg_errno(), "container '%s': /dev/%s: %m", w->ct->id, rel);
	}
	while ((e = readdir(d))) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		_cleanup_free_ char *p = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return dm_fail(neg_errno(), "container '%s': /dev/%s: %m", w->ct->id, p);
		/* a socket file is the name of a bound unix socket: the restore of
		 * that socket binds it again (docs/net.md) */
		if (st.st_dev != w->dev || S_ISSOCK(st.st_mode) || (!rel[0] && runc_makes(w->ct, e->d_name)))
			continue;
		if (w->n >= 100000 || depth > 64)
			return dm_fail(-E2BIG, "container '%s': too many files in /dev", w->ct->id);
		APPEND(w->names, w->n, xasprintf("./%s", p));
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							 O_CLOEXEC);
			if (sub < 0)
				return dm_fail(neg_errno(), "container '%s': /dev/%s: %m", w->ct->id, p);
			int r = walk_dev(w, sub, p, depth + 1);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * runc's /dev tmpfs: the files, directories, links, FIFOs and nodes a
 * service made there (not runc's devices and links, which runc makes again
 * from the config), in one more tar file restored like a tmpfs's.
 */
static int record_dev(struct runc_ct *ct, const char *images_dir)
{
	_cleanup_free_ char *src = xasprintf("/proc/%d/root/dev", ct->pid), *dst = NULL;
	_cleanup_close_ int dfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	Dm__Container *m = ct->msg;
	struct stat st;
	int r;

	if (dfd < 0 || fstat(dfd, &st) < 0)
		return dm_fail(neg_errno(), "container '%s': its /dev: %m", ct->id);
	struct dev_walk w = { .ct = ct, .dev = st.st_dev };
	r = walk_dev(&w, dfd, "", 0);
	if (r < 0 || !w.n)
		goto out;
	Dm__ContainerTmpfs *t = xmalloc(sizeof(*t));
	dm__container_tmpfs__init(t);
	t->mountpoint = xstrdup("/dev");
	t->archive = xasprintf("tmpfs-%zu.tar", m->n_tmpfs);
	t->has_files = true;
	t->files = w.n;
	APPEND(m->tmpfs, m->n_tmpfs, t);
	dst = xasprintf("%s/%s", images_dir, t->archive);
	r = dirtar_create(src, (const char *const *)w.names, w.n, dst, NULL);
	if (r < 0)
		r = dm_wrap(r, "container '%s': saving the files made in its /dev", ct->id);
out:
	for (size_t i = 0; i < w.n; i++)
		free(w.names[i]);
	free(w.names);
	return r;
}

/* 1 when dir holds nothing (its attributes in *st), 0 when it holds
 * something, or -errno */
static int tmpfs_empty(const char *dir, struct stat *st)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *e;

	if (!d || fstat(dirfd(d), st) < 0)
		return dm_fail(neg_errno(), "%s: %m", dir);
	while ((errno = 0, e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			return 0;
	return errno ? dm_fail(neg_errno(), "%s: %m", dir) : 1;
}

static int record_mounts(struct runc_ct *ct, const char *images_dir)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list ml = {};
	Dm__Container *m = ct->msg;
	int r = proc_read_mountinfo(ct->pid, &ml);

	if (r < 0)
		return dm_fail(r, "container '%s': mountinfo: %s", ct->id, strerror(-r));
	for (size_t i = 0; i < ml.n; i++) {
		const struct proc_mount *pm = &ml.mounts[i];
		const char *mp = pm->mountpoint;
		Dm__ContainerMount *cm = xmalloc(sizeof(*cm));
		dm__container_mount__init(cm);
		cm->mountpoint = xstrdup(mp);
		cm->fstype = xstrdup(pm->fstype ? pm->fstype : "");
		cm->source = xstrdup(pm->source ? pm->source : "");
		cm->options = xstrdup(pm->options ? pm->options : "");
		APPEND(m->mounts, m->n_mounts, cm);
		/* runc's own: the root, /proc and /sys masks, /dev and its devices */
		bool configured = config_has_mount(ct, mp);
		if (!strcmp(mp, "/") || under(mp, "/proc") || under(mp, "/sys") ||
		    (under(mp, "/dev") && !configured))
			continue;
		if (!configured)
			return dm_fail(-ENOTSUP, "container '%s': the %s mount at %s was made at run time "
				       "(it is not in the config): it would not come back", ct->id,
				       pm->fstype, mp);
		if (!pm->fstype || strcmp(pm->fstype, "tmpfs"))
			continue;
		/* runc's /dev: what runc makes there comes again, the rest is ours */
		if (!strcmp(mp, "/dev")) {
			r = record_dev(ct, images_dir);
			if (r < 0)
				return r;
			continue;
		}
		/* a tmpfs of the config: runc makes it empty, its files are ours */
		Dm__ContainerTmpfs *t = xmalloc(sizeof(*t));
		dm__container_tmpfs__init(t);
		t->mountpoint = xstrdup(mp);
		APPEND(m->tmpfs, m->n_tmpfs, t);
		_cleanup_free_ char *src = xasprintf("/proc/%d/root%s", ct->pid, mp);
		struct stat st;
		r = tmpfs_empty(src, &st);
		if (r < 0)
			return dm_wrap(r, "container '%s': the tmpfs at %s", ct->id, mp);
		if (r > 0) {
			/* nothing in it (often so: /dev/shm): its top's attributes only */
			t->archive = xstrdup("");
			t->has_files = true;
			t->files = 0;
			t->has_root_mode = t->has_root_uid = t->has_root_gid = t->has_root_mtime_ns = true;
			t->root_mode = st.st_mode & 07777;
			t->root_uid = st.st_uid;
			t->root_gid = st.st_gid;
			t->root_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			continue;
		}
		t->archive = xasprintf("tmpfs-%zu.tar", m->n_tmpfs - 1);
		_cleanup_free_ char *dst = xasprintf("%s/%s", images_dir, t->archive);
		r = dirtar_create(src, NULL, 0, dst, NULL);
		if (r < 0)
			return dm_wrap(r, "container '%s': saving the files of the tmpfs at %s", ct->id, mp);
	}
	return 0;
}

/* The network namespace of pid (nsfd -1: ours) read over rtnetlink: no
 * fork or exec of ip(8) while the container is frozen (net/rtnl.h). */
static int net_of(pid_t pid, struct rtnl_info *ret)
{
	_cleanup_close_ int ns = -1;
	int r = pid > 0 ? netns_of_pid(pid, &ns) : 0;

	if (r < 0)
		return r;
	return rtnl_read(ns, ret);
}

/* The other end of the container's veth l in our network namespace: its
 * ifindex is the container end's link, and its own link is the container
 * end's ifindex. */
static const struct rtnl_link *veth_peer(const struct rtnl_info *ours, const struct rtnl_link *l)
{
	const struct rtnl_link *p = rtnl_link_by_index(ours, l->link);

	return p && p->link == l->ifindex ? p : NULL;
}

/*
 * The bridges the host ends of the container's veths are on, read while it
 * runs (before the freeze): the destination must have each, or the
 * container would come back cut off.  Unique names, malloc'd; none when the
 * container has no network namespace of its own.
 */
int runc_bridges(struct runc_ct *ct, char ***ret, size_t *ret_n)
{
	struct rtnl_info in = { 0 }, ours = { 0 };
	char **v = NULL;
	size_t n = 0;
	int r;

	*ret = NULL;
	*ret_n = 0;
	/* in ours (or the host's, shared): its veths' ends are not told apart there */
	_cleanup_free_ char *nsp = xasprintf("/proc/%d/ns/net", (int)ct->pid);
	struct stat a, b;
	if (stat(nsp, &a) < 0)
		return dm_fail(neg_errno(), "container '%s': its network namespace: %m", ct->id);
	if (stat("/proc/self/ns/net", &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		return 0;
	r = net_of(ct->pid, &in);
	if (r >= 0)
		r = net_of(0, &ours);
	for (size_t i = 0; r >= 0 && i < in.n_links; i++) {
		const struct rtnl_link *l = &in.links[i];
		const struct rtnl_link *peer = !strcmp(l->kind, "veth") ? veth_peer(&ours, l) : NULL;
		const struct rtnl_link *br = peer && peer->master ? rtnl_link_by_index(&ours, peer->master) : NULL;
		size_t k;
		if (!br)
			continue;
		for (k = 0; k < n && strcmp(v[k], br->name); k++)
			;
		if (k == n)
			APPEND(v, n, xstrdup(br->name));
	}
	rtnl_info_done(&in);
	rtnl_info_done(&ours);
	if (r < 0) {
		for (size_t k = 0; k < n; k++)
			free(v[k]);
		free(v);
		return dm_wrap(r, "container '%s': its network interfaces", ct->id);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int runc_check_bridges(const char *id, char *const *bridges, size_t n, bool given)
{
	struct rtnl_info ours;
	int r;

	if (!n)
		return 0;
	/* rtnetlink, not /sys/class/net: sysfs shows the namespace of whoever mounted it */
	r = rtnl_read(-1, &ours);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		const struct rtnl_link *l = NULL;
		for (size_t k = 0; k < ours.n_links && !l; k++)
			if (!strcmp(ours.links[k].name, bridges[i]))
				l = &ours.links[k];
		bool bridge = l && !strcmp(l->kind, "bridge");
		if (!bridge && given)
			r = dm_fail(-ENODEV, "container '%s': its network interfaces go on bridge %s here "
				    "(dmigrated --bridge), and there is %s", id, bridges[i],
				    l ? "an interface of that name, but not a bridge" : "no bridge of that name");
		else if (!bridge)
			r = dm_fail(-ENODEV, "container '%s': its network interface is on bridge %s at the source, "
				    "and there is %s here", id, bridges[i],
				    l ? "an interface of that name, but not a bridge," : "no bridge of that name");
	}
	rtnl_info_done(&ours);
	return r;
}

static int record_net(struct runc_ct *ct)
{
	struct rtnl_info in = { 0 }, ours = { 0 };
	Dm__Container *m = ct->msg;
	bool own_netns = false;
	int r;

	for (size_t k = 0; k < m->n_namespaces; k++)
		if (!strcmp(m->namespaces[k]->type, "net"))
			own_netns = !m->namespaces[k]->path;
	r = net_of(ct->pid, &in);
	if (r >= 0 && own_netns)
		r = net_of(0, &ours);
	if (r < 0) {
		rtnl_info_done(&in);
		return dm_wrap(r, "container '%s': its network interfaces", ct->id);
	}
	for (size_t i = 0; i < in.n_links; i++) {
		const struct rtnl_link *l = &in.links[i];
		Dm__ContainerNetIf *nif = xmalloc(sizeof(*nif));
		dm__container_net_if__init(nif);
		nif->name = xstrdup(l->name[0] ? l->name : "?");
		if (l->mac[0])
			nif->mac = xstrdup(l->mac);
		nif->has_mtu = true;
		nif->mtu = l->mtu;
		if (l->up)
			nif->has_up = nif->up = true;
		if (l->kind[0])
			nif->kind = xstrdup(l->kind);
		for (size_t k = 0; k < in.n_addrs; k++) {
			const struct rtnl_addr *a = &in.addrs[k];
			/* link-local IPv6 comes back by itself */
			if (a->ifindex == l->ifindex && !(a->ipv6 && a->link_scope))
				APPEND(nif->addrs, nif->n_addrs, xstrdup(a->addr));
		}
		APPEND(m->interfaces, m->n_interfaces, nif);
		if (!own_netns || !strcmp(nif->name, "lo") || r < 0)
			continue;
		/* runc makes an empty network namespace: what is in it now must be
		 * made again, which we can for a veth whose other end is ours */
		const struct rtnl_link *peer = !strcmp(l->kind, "veth") ? veth_peer(&ours, l) : NULL;
		if (!peer) {
			r = dm_fail(-ENOTSUP, "container '%s': network interface %s (%s) is in the network "
				    "namespace runc made and is not a veth whose other end is in ours: it "
				    "would not come back", ct->id, nif->name, l->kind[0] ? l->kind : "no kind");
			continue;
		}
		nif->peer_name = xstrdup(peer->name);
		const struct rtnl_link *br = peer->master ? rtnl_link_by_index(&ours, peer->master) : NULL;
		if (br)
			nif->peer_master = xstrdup(br->name);
	}
	for (size_t i = 0; r >= 0 && i < in.n_routes; i++)
		APPEND(m->routes, m->n_routes, xstrdup(in.routes[i]));
	rtnl_info_done(&in);
	rtnl_info_done(&ours);
	return r;
}

static const struct cg_file {
	const char *ctl, *file, *runc_flag;
} cg_files[] = {
	{ "memory", "memory.limit_in_bytes", "--memory" },
	{ "memory", "memory.soft_limit_in_bytes", "--memory-reservation" },
	{ "memory", "memory.memsw.limit_in_bytes", "--memory-swap" },
	{ "cpu", "cpu.shares", "--cpu-share" },
	{ "cpu", "cpu.cfs_period_us", "--cpu-period" },
	{ "cpu", "cpu.cfs_quota_us", "--cpu-quota" },
	{ "cpuset", "cpuset.cpus", "--cpuset-cpus" },
	{ "cpuset", "cpuset.mems", "--cpuset-mems" },
	{ "pids", "pids.max", "--pids-limit" },
	{ "blkio", "blkio.weight", "--blkio-weight" },
	{ "", "memory.max", "--memory" },
	{ "", "memory.low", "--memory-reservation" },
	{ "", "pids.max", "--pids-limit" },
	{ "", "cpu.weight", NULL },
	{ "", "cpu.max", NULL },
	{ "", "cpuset.cpus", "--cpuset-cpus" },
	{ "", "cpuset.mems", "--cpuset-mems" },
};

static const char *cg_dir(json_t *state, const char *ctl)
{
	return json_str(json_object_get(state, "cgroup_paths"), ctl);
}

static void record_cgroup(struct runc_ct *ct)
{
	Dm__Container *m = ct->msg;

	for (size_t i = 0; i < ARRAY_SIZE(cg_files); i++) {
		const char *dir = cg_dir(ct->state, cg_files[i].ctl);
		_cleanup_free_ char *v = NULL;
		if (!dir || read_str(dir, cg_files[i].file, &v) < 0) {
			dm_error_clear();
			continue;
		}
		v[strcspn(v, "\n")] = 0;
		Dm__ContainerCgroupValue *cv = xmalloc(sizeof(*cv));
		dm__container_cgroup_value__init(cv);
		cv->controller = xstrdup(cg_files[i].ctl);
		cv->file = xstrdup(cg_files[i].file);
		cv->value = TAKE_PTR(v);
		APPEND(m->cgroup, m->n_cgroup, cv);
	}
}

/*
 * The restore opens a file by its path inside the container: a file or
 * directory the tree holds on a mount of another mount namespace (a log file
 * of the host given to runc as stdout) would be another file there.  Devices
 * are the same device on either side; pipes and sockets have no path.
 */
static int check_fds(struct runc_ct *ct)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list ml = {};
	_cleanup_free_ char *procs = NULL;
	int r = proc_read_mountinfo(ct->pid, &ml);

	if (r < 0)
		return dm_fail(r, "container '%s': mountinfo: %s", ct->id, strerror(-r));
	r = read_str(ct->freezer ? ct->freezer : ct->cg2, "cgroup.procs", &procs);
	if (r < 0)
		return r;
	for (char *s = procs, *e; *s; s = e) {
		long pid = strtol(s, &e, 10);
		if (e == s)
			break;
		while (*e == '\n')
			e++;
		_cleanup_free_ char *dir = xasprintf("/proc/%ld/fd", pid);
		_cleanup_closedir_ DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[320], link[512] = "", info[4096];
			struct stat st;
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid, de->d_name);
			if (stat(path, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
				continue;
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			link[n > 0 ? n : 0] = 0;
			if (!strncmp(link, "/memfd:", 7) || !link[0] || link[0] != '/')
				continue;
			/* a POSIX queue's descriptor: the fd layer's (dump/fd-mqueue.c) */
			struct statfs sfs;
			if (statfs(path, &sfs) == 0 && sfs.f_type == MQUEUE_MAGIC)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fdinfo/%s", pid, de->d_name);
			_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
			ssize_t l = fd < 0 ? -1 : read(fd, info, sizeof(info) - 1);
			const char *mi = l > 0 ? (info[l] = 0, strstr(info, "mnt_id:")) : NULL;
			if (!mi)
				continue;
			int mnt_id = atoi(mi + 7);
			bool found = false;
			for (size_t i = 0; i < ml.n && !found; i++)
				found = ml.mounts[i].mnt_id == mnt_id;
			if (found)
				continue;
			char comm[PROC_COMM_MAX + 1] = "?";
			proc_read_comm((pid_t)pid, 0, comm);
			dm_error_clear();
			return dm_fail(-ENOTSUP, "fd %s of process %ld (%s) in container '%s' is %s, on a "
				       "mount outside the container (given from the host?): the restore "
				       "would not find it", de->d_name, pid, comm, ct->id, link);
		}
	}
	return 0;
}

/* The container has a namespace of that type that runc made (not the
 * dumper's, not one the config joins by path). */
static bool own_ns(const Dm__Container *m, const char *type)
{
	for (size_t k = 0; k < m->n_namespaces; k++)
		if (!strcmp(m->namespaces[k]->type, type))
			return !m->namespaces[k]->path;
	return false;
}

/* The IPC thread's result (its refusal named), ipc its handle */
static int record_ipc_finish(struct runc_ct *ct, struct ipc_dump *ipc)
{
	int ri = ipc_dump_finish(ipc, &ct->msg->ipc);
	if (ri < 0) {
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
		return dm_fail(ri, "container '%s': its IPC namespace: %s", ct->id, msg);
	}
	return 0;
}

/* SysV objects and POSIX queues (runc makes the namespace empty): read by a
 * child of ours.  Only a namespace runc made: one the config joins by path,
 * or the host's, outlives the container with what it holds */
static int record_ipc_start(struct runc_ct *ct, const char *images_dir, struct ipc_dump **ret)
{
	*ret = NULL;
	return own_ns(ct->msg, "ipc") ? ipc_dump_start(ct->pid, images_dir, ret) : 0;
}

/* What the dump of the tree reads of the record: the namespaces (whose
 * network and IPC namespace are the container's own), its IPC objects (a
 * descriptor of a POSIX queue is one of them); and the host name. */
static int record_head(struct runc_ct *ct, uint64_t *t)
{
	int r = record_ns(ct);
	ct->rt.ns = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	if (r < 0)
		return r;
	r = uts_hostname(ct->pid, &ct->msg->hostname, NULL);
	ct->rt.hostname = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	return r;
}

/* The rest, which the dump does not read: network, fds held on host
 * mounts, cgroup limits, mounts and tmpfs files. */
static int record_tail(struct runc_ct *ct, const char *images_dir, uint64_t *t)
{
	int r = record_net(ct);
	ct->rt.net = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	if (r >= 0)
		r = check_fds(ct);
	ct->rt.fds = ns_to_ms(*t, clock_ns());
	*t = clock_ns();
	if (r >= 0) {
		record_cgroup(ct);
		ct->rt.cgroup = ns_to_ms(*t, clock_ns());
		*t = clock_ns();
		r = record_mounts(ct, images_dir);
		ct->rt.mounts = ns_to_ms(*t, clock_ns());
		*t = clock_ns();
	}
	return r;
}

int runc_record(struct runc_ct *ct, const char *images_dir)
{
	struct ipc_dump *ipc = NULL;
	uint64_t t = clock_ns();
	int r;

	r = record_head(ct, &t);
	if (r < 0)
		return r;
	/* the IPC thread runs beside the steps below, in the same freeze */
	r = record_ipc_start(ct, images_dir, &ipc);
	if (r >= 0)
		r = record_tail(ct, images_dir, &t);
	if (!ipc)
		return r;
	/* its refusal first: it is the older step */
	t = clock_ns();
	int ri = record_ipc_finish(ct, ipc);
	ct->rt.ipc_wait = ns_to_ms(t, clock_ns());
	return ri < 0 ? ri : r;
}

int runc_record_head(struct runc_ct *ct, const char *images_dir)
{
	uint64_t t = clock_ns();
	int r = record_head(ct, &t);

	ct->ipc_expected = r >= 0 && own_ns(ct->msg, "ipc");
	return r;
}

int runc_record_tail(struct runc_ct *ct, const char *images_dir)
{
	struct ipc_dump *ipc = NULL;
	uint64_t t = clock_ns();
	int r = 0, ri = 0;

	/* the IPC thread beside the steps below (and the dump) */
	if (ct->ipc_expected)
		ri = ipc_dump_start(ct->pid, images_dir, &ipc);
	if (ri >= 0)
		r = record_tail(ct, images_dir, &t);
	if (ipc) {
		t = clock_ns();
		ri = record_ipc_finish(ct, ipc);
		ct->rt.ipc_wait = ns_to_ms(t, clock_ns());
	}
	pthread_mutex_lock(&ct->ipc_lock);
	ct->ipc_done = true;
	pthread_cond_broadcast(&ct->ipc_cond);
	pthread_mutex_unlock(&ct->ipc_lock);
	/* its refusal first: it is the older step */
	return ri < 0 ? ri : r;
}

json_t *runc_record_stats_json(const struct runc_ct *ct)
{
	return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "namespaces_ms", ct->rt.ns, "hostname_ms",
			 ct->rt.hostname, "net_ms", ct->rt.net, "fds_ms", ct->rt.fds, "cgroup_ms", ct->rt.cgroup,
			 "mounts_ms", ct->rt.mounts, "ipc_ms", ct->rt.ipc_wait);
}

void runc_set_managed(struct runc_ct *ct)
{
	ct->managed = true;
}

int runc_finish(struct runc_ct *ct, bool left_running)
{
	_cleanup_free_ char *err = NULL;
	int r;

	if (left_running || ct->managed)
		return 0;
	/* its init was killed: once it is a zombie or gone (its parent is not
	 * ours to wait for), runc sees the container stopped and deletes it:
	 * its id must be free for the restore */
	for (int i = 0; i < 10000; i++) {
		struct proc_stat ps;
		if (proc_read_stat(ct->pid, 0, &ps) < 0 || ps.state == 'Z' || ps.state == 'X')
			break;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	dm_error_clear();
	/* not -f: it refuses an init that is a zombie its parent did not reap yet */
	r = ctr_run((const char *const[]){ "runc", "--root", ct->root, "delete", ct->id, NULL }, NULL, 0,
		CHILD_WAIT_RUNC_MS, NULL, &err);
	if (r < 0)
		return r;
	if (r)
		return dm_fail(-EIO, "runc delete %s: %s", ct->id, err ? runc_msg(err) : "failed");
	if (ct->copy_bundle)
		rm_rf(ct->copy_bundle);
	return 0;
}

/* ------------------------------------------------------------ restore */

static const char *const all_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

/*
 * The config runc starts the stub with: the container's, but its process is
 * the stub (/proc/self/fd/3), as root with every capability, no seccomp and
 * no no_new_privs (the restore needs them; the tree gets its own back last),
 * its root the bundle's rootfs by absolute path, the user's bundle kept in an
 * annotation.
 */
/*
 * The process a restore's stub runs as, in a container's config: the stub
 * (/proc/self/fd/3), as root with every capability, no seccomp and no
 * no_new_privs (the restore needs them; the tree gets its own back last).
 */
void runc_stub_process(json_t *c)
{
	json_t *proc = json_object_get(c, "process");
	if (!json_is_object(proc)) {
		proc = json_object();
		json_object_set_new(c, "process", proc);
	}
	json_object_set_new(proc, "args", json_pack("[s]", "/proc/self/fd/3"));
	json_object_set_new(proc, "terminal", json_false());
	json_object_set_new(proc, "cwd", json_string("/"));
	json_object_set_new(proc, "user", json_pack("{s:i,s:i}", "uid", 0, "gid", 0));
	json_object_set_new(proc, "noNewPrivileges", json_false());
	json_object_del(proc, "apparmorProfile");
	json_object_del(proc, "selinuxLabel");
	/* every capability we have (root may lack some here: CAP_SYS_RESOURCE) */
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {};
	syscall(SYS_capget, &h, d);
	uint64_t have = d[0].permitted | (uint64_t)d[1].permitted << 32;
	json_t *caps = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(all_caps); i++)
		if (have >> i & 1)
			json_array_append_new(caps, json_string(all_caps[i]));
	json_object_set_new(proc, "capabilities",
			    json_pack("{s:O,s:O,s:O,s:O,s:o}", "bounding", caps, "effective", caps,
				      "permitted", caps, "inheritable", caps, "ambient", json_array()));
	json_decref(caps);
	json_t *lx = json_object_get(c, "linux");
	if (json_is_object(lx))
		json_object_del(lx, "seccomp");
}

/*
 * The config runc starts the stub with: the container's, its process the
 * stub (runc_stub_process), its root the bundle's rootfs by absolute path,
 * the user's bundle kept in an annotation.
 */
static json_t *stub_config(const Dm__Container *m, const char *bundle, const char *copy_dir,
			   char **ret_rootfs)
{
	json_error_t je;
	json_t *c = json_loadb((const char *)m->config.data, m->config.len, 0, &je);
	if (!json_is_object(c)) {
		json_decref(c);
		dm_fail(-EBADMSG, "the image's container config is not JSON: %s", je.text);
		return NULL;
	}
	runc_stub_process(c);

	json_t *root = json_object_get(c, "root");
	const char *rp = root ? json_str(root, "path") : NULL;
	if (!rp) {
		json_decref(c);
		dm_fail(-EBADMSG, "the image's container config has no root.path");
		return NULL;
	}
	char *abs = rp[0] == '/' ? xstrdup(rp) : xasprintf("%s/%s", bundle, rp);
	json_object_set_new(root, "path", json_string(abs));
	*ret_rootfs = abs;
	json_t *an = json_object_get(c, "annotations");
	if (!json_is_object(an)) {
		an = json_object();
		json_object_set_new(c, "annotations", an);
	}
	json_object_set_new(an, RUNC_BUNDLE_ANNOTATION, json_string(bundle));
	/* the config copy goes with the container: `runc delete` runs this */
	json_t *hooks = json_object_get(c, "hooks");
	if (!json_is_object(hooks)) {
		hooks = json_object();
		json_object_set_new(c, "hooks", hooks);
	}
	json_t *post = json_object_get(hooks, "poststop");
	if (!json_is_array(post)) {
		post = json_array();
		json_object_set_new(hooks, "poststop", post);
	}
	json_array_append_new(post, json_pack("{s:s,s:[s,s,s]}", "path", "/bin/rm", "args", "rm", "-rf",
					      copy_dir));
	return c;
}

int runc_stub_fds(int *ret_exe, int ret_sock[2])
{
	int fd = (int)syscall(SYS_memfd_create, "dmigrate-stub", MFD_CLOEXEC | 0x0010U /* MFD_EXEC */);
	if (fd < 0 && errno == EINVAL)
		fd = (int)syscall(SYS_memfd_create, "dmigrate-stub", MFD_CLOEXEC);
	if (fd < 0)
		return dm_fail(neg_errno(), "memfd_create: %m");
	if (write_all(fd, runc_stub_bin, runc_stub_bin_len) < 0) {
		close(fd);
		return dm_fail(-EIO, "writing the stub: %m");
	}
	/* a sequenced-packet pair, not datagrams: when our end closes (the
	 * daemon died before the restore) the stub's wait ends at once and it
	 * exits, so runc sees the container stopped, instead of waiting out
	 * EXT_STUB_ARGS_WAIT_MS on a datagram socket that never says so */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ret_sock) < 0) {
		int r = dm_fail(neg_errno(), "socketpair: %m");
		close(fd);
		return r;
	}
	*ret_exe = fd;
	return 0;
}

/* Does runc know container id, made from bundle?  (the message is kept) */
static bool runs_from(const char *root, const char *id, const char *bundle)
{
	_cleanup_free_ char *out = NULL, *err = NULL;
	char msg[DM_ERRMSG_MAX];
	json_error_t je;

	snprintf(msg, sizeof(msg), "%s", dm_last_error());
	int r = ctr_run((const char *const[]){ "runc", "--root", root, "state", id, NULL }, NULL, 0,
			CHILD_WAIT_RUNC_MS, &out, &err);
	json_t *st = r == 0 ? json_loads(out, 0, &je) : NULL;
	const char *b = st ? json_str(st, "bundle") : NULL;
	bool ours = b && bundle && !strcmp(b, bundle);
	json_decref(st);
	dm_error_set_message(msg);
	return ours;
}

static int host_pid_of(const char *root, const char *id, pid_t *ret)
{
	_cleanup_free_ char *out = NULL, *err = NULL;
	json_error_t je;
	int r = ctr_run((const char *const[]){ "runc", "--root", root, "state", id, NULL }, NULL, 0,
		    CHILD_WAIT_RUNC_MS, &out, &err);

	if (r < 0)
		return r;
	if (r)
		return dm_fail(-EIO, "runc state %s: %s", id, err ? runc_msg(err) : "failed");
	json_t *st = json_loads(out, 0, &je);
	*ret = (pid_t)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	if (*ret <= 0)
		return dm_fail(-EBADMSG, "runc state %s: no pid", id);
	return 0;
}

static int ip_in(pid_t pid, const char *const argv[])
{
	_cleanup_free_ char *err = NULL;
	int r = pid > 0 ? in_ns(pid, "net", exec_ip, (void *)argv, NULL) : ctr_run(argv, NULL, 0, CHILD_WAIT_HELPER_MS, NULL, &err);
	if (r > 0)
		return dm_fail(-EIO, "ip %s %s %s: %s", argv[1], argv[2], argv[3] ? argv[3] : "",
			       err ? err : "failed");
	return r;
}

/* The config makes the container a network namespace of its own (not one
 * it joins by path, which outlives it and may carry other traffic). */
static bool config_new_netns(const Dm__Container *m)
{
	json_error_t je;
	json_t *c = json_loadb((const char *)m->config.data, m->config.len, 0, &je), *e;
	bool own = false;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(c, "linux"), "namespaces"), i, e) {
		const char *t = json_str(e, "type");
		if (t && !strcmp(t, "network"))
			own = !json_str(e, "path");
	}
	json_decref(c);
	return own;
}

static bool has_veth(const Dm__Container *m)
{
	for (size_t i = 0; i < m->n_interfaces; i++)
		if (m->interfaces[i]->peer_name)
			return true;
	return false;
}

/*
 * The container's new network namespace is locked before it has an
 * interface: a peer's retransmission reaching it before the restore has
 * made the connection's socket would be answered with a RST.  The restore
 * of the sockets keeps the lock (restore_opts.netns_locked: same name) and
 * removes it after the resume; runc_restore_done() removes it in any case.
 */
static int net_lock(pid_t pid, struct runc_started *s)
{
	_cleanup_close_ int ns = -1;
	int back = -1;
	int r = netns_of_pid(pid, &ns);

	if (s->net_locked)
		return 0;
	if (r > 0)
		r = netns_enter(ns, &back);
	if (r >= 0 && ns >= 0) {
		r = netlock_netns(NETLOCK_NETNS_NAME);
		netns_leave(back);
		s->net_locked = r >= 0;
	}
	return r < 0 ? r : 0;
}

/* The network part of a record, packed: what the early put-back made its
 * network from (runc_started.net_made), compared with the full record's. */
static void net_key(const Dm__Container *m, uint8_t **ret, size_t *ret_len)
{
	Dm__Container k = DM__CONTAINER__INIT;

	k.runtime = k.id = k.bundle = (char *)"";
	k.n_interfaces = m->n_interfaces;
	k.interfaces = m->interfaces;
	k.n_routes = m->n_routes;
	k.routes = m->routes;
	*ret_len = dm__container__get_packed_size(&k);
	*ret = xmalloc(*ret_len ? *ret_len : 1);
	dm__container__pack(&k, *ret);
}

/*
 * The container's veths, as they were: its end with its name, MAC, MTU and
 * addresses, up, its routes; our end with its name, on the bridge it was on
 * (dmigrated --bridge: on that one instead), and with attach up.  Without
 * attach our end stays down: the container's end has no carrier and a port
 * that is down forwards nothing, so nothing of it reaches the segment (where
 * the source's copy still has the same addresses) until net_attach().
 */
static int net_make(const Dm__Container *m, pid_t pid, const char *bridge, bool attach)
{
	/* over rtnetlink: a socket here for our ends, one in the container's
	 * namespace for its ends (each ip(8) run was a fork and an exec) */
	struct rtnl *here = NULL, *there = NULL;
	_cleanup_close_ int ns = -1;
	int r;

	if (!m->n_interfaces && !m->n_routes)
		return 0;
	r = netns_of_pid(pid, &ns);
	if (r >= 0)
		r = rtnl_open(-1, &here);
	if (r >= 0)
		r = rtnl_open(ns, &there);
	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		if (!n->peer_name)
			continue;
		r = rtnl_veth_add(here, n->peer_name, n->name, pid, n->mac,
				  n->has_mtu ? n->mtu : 0);
		for (size_t k = 0; k < n->n_addrs && r >= 0; k++)
			r = rtnl_addr_add(there, n->name, n->addrs[k]);
		if (r >= 0 && n->up)
			r = rtnl_link_up(there, n->name, NULL);
		const char *master = n->peer_master ? bridge ? bridge : n->peer_master : NULL;
		/* without attach: on its bridge already (adding a port is the slow
		 * part), but down: a port that is down forwards nothing */
		if (r >= 0)
			r = attach ? rtnl_link_up(here, n->peer_name, master)
				   : master ? rtnl_link_master(here, n->peer_name, master) : 0;
	}
	/* routes the kernel did not make with the addresses (its end is up:
	 * without a carrier a route through it is made all the same) */
	for (size_t i = 0; i < m->n_routes && r >= 0; i++) {
		const char *rt = m->routes[i];
		if (strstr(rt, " proto kernel "))
			continue;
		r = rtnl_route_replace(there, rt);
		if (r != 0)
			continue;
		/* a word our parser does not know (an older image's ip line): ip(8) */
		_cleanup_free_ char *line = xstrdup(rt);
		const char *argv[64] = { "ip", "route", "replace" };
		size_t n = 3;
		for (char *tok = strtok(line, " \t"); tok && n < ARRAY_SIZE(argv) - 1; tok = strtok(NULL, " \t"))
			argv[n++] = tok;
		argv[n] = NULL;
		r = ip_in(pid, argv);
	}
	rtnl_close(here);
	rtnl_close(there);
	return r < 0 ? r : 0;
}

/* Our ends of what net_make(attach false) made: up (on their bridges
 * already: naming the bridge again costs nothing and fails if it went). */
static int net_attach(const Dm__Container *m, const char *bridge)
{
	struct rtnl *here = NULL;
	int r = rtnl_open(-1, &here);

	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		if (n->peer_name)
			r = rtnl_link_up(here, n->peer_name, n->peer_master ? bridge ? bridge : n->peer_master : NULL);
	}
	rtnl_close(here);
	return r < 0 ? r : 0;
}

/* What net_make() made (the record packed by net_key()): gone (deleting
 * our end of a veth deletes the pair, its addresses and routes with it). */
static int net_unmake(const uint8_t *key, size_t len)
{
	Dm__Container *m = dm__container__unpack(NULL, len, key);
	struct rtnl *here = NULL;
	int r;

	if (!m)
		return dm_fail(-EBADMSG, "the network made at START does not unpack");
	r = rtnl_open(-1, &here);
	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++)
		if (m->interfaces[i]->peer_name)
			r = rtnl_link_del(here, m->interfaces[i]->peer_name);
	rtnl_close(here);
	dm__container__free_unpacked(m, NULL);
	return r < 0 ? r : 0;
}

/* The addresses to announce once the tree runs: those of its veths that are up. */
static void net_announce_list(const Dm__Container *m, struct runc_started *s)
{
	for (size_t i = 0; i < m->n_interfaces; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		for (size_t k = 0; n->peer_name && n->up && k < n->n_addrs; k++) {
			s->ann_if = xrealloc(s->ann_if, (s->n_ann + 1) * sizeof(*s->ann_if));
			s->ann_addr = xrealloc(s->ann_addr, (s->n_ann + 1) * sizeof(*s->ann_addr));
			s->ann_if[s->n_ann] = xstrdup(n->name);
			s->ann_addr[s->n_ann++] = xstrdup(n->addrs[k]);
		}
	}
}

/*
 * The container's network, as it was, in the downtime: what runc_restore_
 * prepare() made before the freeze from the same description only needs
 * our ends attached; made from another (it changed since START), it goes
 * and is made again.
 */
static int put_back_net(const Dm__Container *m, pid_t pid, const char *bridge, struct runc_started *s)
{
	int r = 0;
	uint64_t t = clock_ns();

	if (has_veth(m) || s->net_made) {
		r = net_lock(pid, s);
		s->t.netlock = ns_to_ms(t, clock_ns());
		if (r < 0)
			return r;
	}
	if (s->net_made) {
		_cleanup_free_ uint8_t *key = NULL;
		size_t len;
		net_key(m, &key, &len);
		if (len == s->net_made_len && !memcmp(key, s->net_made, len)) {
			r = net_attach(m, bridge);
		} else {
			pr_info("%s: its network changed since START: made again", s->id);
			r = net_unmake(s->net_made, s->net_made_len);
			if (r >= 0)
				r = net_make(m, pid, bridge, true);
		}
		free(s->net_made);
		s->net_made = NULL;
	} else {
		r = net_make(m, pid, bridge, true);
	}
	if (r >= 0)
		net_announce_list(m, s);
	return r;
}

/* An empty tmpfs: runc made it empty too; its top (fd) gets the recorded
 * mode, owner and time (what the archive's "." entry would have given it). */
static int put_back_empty_tmpfs(const Dm__ContainerTmpfs *t, int fd)
{
	if (!t->has_root_mode || !t->has_root_uid || !t->has_root_gid || !t->has_root_mtime_ns ||
	    t->root_mode > 07777)
		return dm_fail(-EBADMSG, "the empty tmpfs at %s: its attributes are not recorded", t->mountpoint);
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = t->root_mtime_ns / 1000000000, .tv_nsec = t->root_mtime_ns % 1000000000 } };
	if (fchown(fd, t->root_uid, t->root_gid) < 0 || fchmod(fd, (mode_t)t->root_mode) < 0 ||
	    futimens(fd, ts) < 0)
		return dm_fail(neg_errno(), "the tmpfs at %s: its mode, owner or time: %m", t->mountpoint);
	return 0;
}

/* The tmpfs mounts' top directories, opened now (the restore may change
 * the process's root later: the files go where the mounts are now). */
static int tmpfs_dirs(const Dm__Container *m, pid_t pid, int **ret)
{
	int *fds = xmalloc((m->n_tmpfs ? m->n_tmpfs : 1) * sizeof(*fds));

	for (size_t i = 0; i < m->n_tmpfs; i++)
		fds[i] = -1;
	*ret = fds;
	for (size_t i = 0; i < m->n_tmpfs; i++) {
		const Dm__ContainerTmpfs *t = m->tmpfs[i];
		_cleanup_free_ char *dir = xasprintf("/proc/%d/root%s", pid, t->mountpoint);
		fds[i] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] < 0)
			return dm_fail(neg_errno(), "the tmpfs at %s: %m", t->mountpoint);
	}
	return 0;
}

static void tmpfs_dirs_close(int *fds, size_t n)
{
	for (size_t i = 0; fds && i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

/* The files of the tmpfs mounts (dirs: tmpfs_dirs()): each archive
 * extracted by tar into its mount, an empty one's top set. */
static int put_back_tmpfs(const Dm__Container *m, const char *images_dir, const int *dirs)
{
	int r;

	for (size_t i = 0; i < m->n_tmpfs; i++) {
		const Dm__ContainerTmpfs *tf = m->tmpfs[i];
		if (tf->has_files && !tf->files) {
			r = put_back_empty_tmpfs(tf, dirs[i]);
			if (r < 0)
				return r;
			continue;
		}
		if (!tf->archive[0] || strchr(tf->archive, '/'))
			return dm_fail(-EBADMSG, "bad tmpfs archive name '%s'", tf->archive);
		_cleanup_free_ char *src = xasprintf("%s/%s", images_dir, tf->archive);
		_cleanup_free_ char *err = NULL;
		/* the mount's directory is tar's fd 3 */
		r = ctr_run((const char *const[]){ "tar", "--numeric-owner", "--xattrs", "-xpf", src, "-C",
					       "/proc/self/fd/3", NULL },
			    &dirs[i], 1, CHILD_WAIT_COPY_MS, NULL, &err);
		if (r < 0)
			return dm_wrap(r, "the files of the tmpfs at %s", tf->mountpoint);
		if (r)
			return dm_fail(-EIO, "the files of the tmpfs at %s: tar: %s", tf->mountpoint,
				       err ? err : "failed");
	}
	return 0;
}

static int put_back_ipc(const Dm__Container *m, const char *images_dir, struct runc_started *s)
{
	if (!m->ipc)
		return 0;
	int r = ipc_restore(s->pid, images_dir, m->ipc);
	free(s->shm_rmid);
	s->n_shm_rmid = ipc_removed_shm(m->ipc, &s->shm_rmid);
	if (r < 0) {
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
		return dm_fail(r, "the container's IPC namespace: %s", msg);
	}
	return 0;
}

/* What runc made from the config but the container had changed since. */
static int put_back(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s)
{
	int r;

	uint64_t t = clock_ns();
	if (!o->runtime_made) {
		r = put_back_net(m, s->pid, o->bridge, s);
		s->t.net = ns_to_ms(t, clock_ns()) - s->t.netlock;
		if (r < 0)
			return r;
	}

	if (m->hostname) {
		t = clock_ns();
		r = uts_hostname(s->pid, NULL, m->hostname);
		s->t.hostname = ns_to_ms(t, clock_ns());
		if (r < 0)
			return r;
	}
	/* before any process of the tree: they attach to the segments */
	t = clock_ns();
	r = put_back_ipc(m, o->images_dir, s);
	s->t.ipc = ns_to_ms(t, clock_ns());
	if (r < 0)
		return r;
	t = clock_ns();
	int *dirs = NULL;
	r = tmpfs_dirs(m, s->pid, &dirs);
	if (r >= 0)
		r = put_back_tmpfs(m, o->images_dir, dirs);
	tmpfs_dirs_close(dirs, m->n_tmpfs);
	s->t.tmpfs = ns_to_ms(t, clock_ns());
	return r;
}

/* Limits changed with `runc update` since the container was made: the same
 * update on the new one (a file runc cannot update is written directly). */
static int put_back_cgroup(const Dm__Container *m, struct runc_started *s)
{
	_cleanup_free_ char *sp = xasprintf("%s/%s/state.json", s->root, s->id);
	json_error_t je;
	json_t *st = json_load_file(sp, 0, &je);
	int r = 0;

	if (!st)
		return dm_fail(-EBADMSG, "%s: %s", sp, je.text);
	for (size_t i = 0; i < m->n_cgroup && r >= 0; i++) {
		const Dm__ContainerCgroupValue *v = m->cgroup[i];
		const char *dir = cg_dir(st, v->controller), *flag = NULL;
		_cleanup_free_ char *now = NULL, *err = NULL;
		if (!dir || read_str(dir, v->file, &now) < 0) {
			r = dm_fail(-ENOENT, "the container's cgroup has no %s%s%s: its limit %s cannot "
				    "be set", v->controller, v->controller[0] ? "/" : "", v->file, v->value);
			break;
		}
		now[strcspn(now, "\n")] = 0;
		if (!strcmp(now, v->value))
			continue;
		for (size_t k = 0; k < ARRAY_SIZE(cg_files); k++)
			if (!strcmp(cg_files[k].ctl, v->controller) && !strcmp(cg_files[k].file, v->file))
				flag = cg_files[k].runc_flag;
		pr_debug("%s: %s is %s, was %s", s->id, v->file, now, v->value);
		if (!flag) {
			r = write_str(dir, v->file, v->value);
			continue;
		}
		unsigned long long n;
		const char *val = v->value;
		if (!strcmp(val, "max") || (sscanf(val, "%llu", &n) == 1 && n >= (1ULL << 62)))
			val = "-1";
		int rc = ctr_run((const char *const[]){ "runc", "--root", s->root, "update", flag, val, s->id,
						    NULL },
			     NULL, 0, CHILD_WAIT_RUNC_MS, NULL, &err);
		if (rc < 0)
			r = rc;
		else if (rc)
			r = dm_fail(-EIO, "runc update %s %s %s (the limit at the "
				    "checkpoint): %s", flag, val, s->id, err ? runc_msg(err) : "failed");
	}
	json_decref(st);
	return r;
}

int runc_restore_launch(const Dm__Container *m, const struct runc_restore_opts *o,
			struct runc_started *ret)
{
	struct runc_started s = { .sock = -1, .root_fd = -1 };
	uint64_t t0 = clock_ns();
	_cleanup_free_ char *rootfs = NULL, *cfgpath = NULL, *err = NULL, *rootp = NULL;
	_cleanup_close_ int exe = -1;
	json_t *cfg = NULL;
	int sp[2] = { -1, -1 }, r;

	if (strcmp(m->runtime, "runc"))
		return dm_fail(-ENOTSUP, "the image is a %s container: only runc is supported", m->runtime);
	const char *bundle = o->bundle ? o->bundle : m->bundle;
	s.id = xstrdup(o->name ? o->name : m->id);
	s.root = xstrdup(o->root ? o->root : RUNC_DEFAULT_ROOT);
	/* the config copy: a directory of its own, runc's bundle from now on
	 * (runc exec runs in it); removed by runc delete (a poststop hook), a
	 * checkpoint that deletes the container, or a failed restore */
	if (mkdir_p("/run/dmigrate", 0700) < 0) {
		r = dm_fail(neg_errno(), "/run/dmigrate: %m");
		goto fail;
	}
	char tmpl[] = RUNC_COPY_PREFIX "XXXXXX";
	if (!mkdtemp(tmpl)) {
		r = dm_fail(neg_errno(), "mkdtemp %s: %m", tmpl);
		goto fail;
	}
	s.tmp_bundle = xstrdup(tmpl);
	cfg = stub_config(m, bundle, s.tmp_bundle, &rootfs);
	if (!cfg) {
		r = -EBADMSG;
		goto fail;
	}
	if (access(rootfs, F_OK) < 0) {
		r = dm_fail(-ENOENT, "the container's rootfs %s is not here (bundle %s; --runc-bundle "
			    "names another)", rootfs, bundle);
		goto fail;
	}
	cfgpath = xasprintf("%s/config.json", s.tmp_bundle);
	if (json_dump_file(cfg, cfgpath, JSON_INDENT(1)) < 0) {
		r = dm_fail(-EIO, "cannot write %s", cfgpath);
		goto fail;
	}
	r = runc_stub_fds(&exe, sp);
	if (r < 0)
		goto fail;
	int extra[2] = { exe, sp[1] };
	r = ctr_run((const char *const[]){ "runc", "--root", s.root, "run", "-d", "--preserve-fds", "2",
				       "--bundle", s.tmp_bundle, s.id, NULL },
		extra, 2, CHILD_WAIT_RUNC_RUN_MS, NULL, &err);
	close(sp[1]);
	s.sock = sp[0];
	if (r) {
		if (r > 0)
			r = dm_fail(-EIO, "runc run %s: %s", s.id, err ? runc_msg(err) : "failed");
		/* an id in use is not ours to delete; one that runs from our
		 * config copy is (a runc killed when it hung, its container made) */
		if (!runs_from(s.root, s.id, s.tmp_bundle)) {
			free(s.id);
			s.id = NULL;
		}
		goto fail;
	}
	r = host_pid_of(s.root, s.id, &s.pid);
	if (r < 0)
		goto fail;
	rootp = xasprintf("/proc/%d/root", s.pid);
	s.root_fd = open(rootp, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.root_fd < 0) {
		r = dm_fail(neg_errno(), "%s: %m", rootp);
		goto fail;
	}
	json_decref(cfg);
	s.t.launch = ns_to_ms(t0, clock_ns());
	*ret = s;
	return 0;
fail:
	json_decref(cfg);
	runc_restore_done(&s, false);
	return r;
}

int runc_restore_prepare(const Dm__Container *base, const struct runc_restore_opts *o, struct runc_started *s)
{
	uint64_t t = clock_ns();
	int r = 0;

	if (o->runtime_made || !config_new_netns(base))
		return 0;
	r = net_lock(s->pid, s);
	s->t.early_lock = ns_to_ms(t, clock_ns());
	t = clock_ns();
	if (r >= 0 && has_veth(base)) {
		net_key(base, &s->net_made, &s->net_made_len);
		r = net_make(base, s->pid, o->bridge, false);
	}
	s->t.early_net = ns_to_ms(t, clock_ns());
	if (r < 0)
		runc_restore_done(s, false);
	return r;
}

int runc_restore_put_back(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s)
{
	int r = put_back(m, o, s);

	if (r >= 0) {
		uint64_t t = clock_ns();
		r = put_back_cgroup(m, s);
		s->t.cgroup = ns_to_ms(t, clock_ns());
	}
	if (r < 0)
		runc_restore_done(s, false);
	return r;
}

/*
 * A migration's put-back beside the restore (runc_restore_put_back_async()):
 * a thread of ours does what needs neither the tree nor the session's
 * thread (no ptrace: children of its own, files, cgroup files) while the
 * restore makes the tree, which waits for it where it needs it
 * (runc_restore_wait()).
 */
struct runc_job {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;               /* RST_BESIDE_MM, then RST_BESIDE_ALL: its steps done */
	bool tree_made;         /* the restore has made the tree's processes */
	bool stop;              /* runc_restore_done(): do no more */
	int err;                /* the first failure, its message in msg */
	char msg[DM_ERRMSG_MAX];
	Dm__Container *m;       /* its own copy of the record */
	char *images_dir;
	int *dirs;              /* tmpfs_dirs() */
	struct runc_started *s;
};

static void job_step_done(struct runc_job *j, int done, int r)
{
	pthread_mutex_lock(&j->lock);
	if (r < 0 && !j->err) {
		j->err = r;
		snprintf(j->msg, sizeof(j->msg), "%s", dm_last_error());
	}
	j->done = r < 0 ? RST_BESIDE_ALL : done;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

static void *job_main(void *arg)
{
	struct runc_job *j = arg;
	struct runc_started *s = j->s;
	const Dm__Container *m = j->m;
	uint64_t t = clock_ns();

	/* before any process of the tree maps or opens anything: the SysV
	 * segments they attach, the tmpfs files they map or open */
	int r = put_back_ipc(m, j->images_dir, s);
	s->t.ipc = ns_to_ms(t, clock_ns());
	t = clock_ns();
	if (r >= 0)
		r = put_back_tmpfs(m, j->images_dir, j->dirs);
	s->t.tmpfs = ns_to_ms(t, clock_ns());
	job_step_done(j, RST_BESIDE_MM, r);
	if (r < 0)
		return NULL;
	/*
	 * The host name and cgroup limits once the tree's processes exist (a
	 * pids.max lowered below the count the tree had, which the kernel lets
	 * stand, would fail their clone3), and before they are given their
	 * credentials and CPUs and run (runc_restore_wait(RST_BESIDE_ALL)): a
	 * cpuset changed after their affinity was set would reset it.
	 */
	pthread_mutex_lock(&j->lock);
	while (!j->tree_made && !j->stop)
		pthread_cond_wait(&j->cond, &j->lock);
	bool stop = j->stop;
	pthread_mutex_unlock(&j->lock);
	if (stop)
		return NULL;
	if (m->hostname) {
		t = clock_ns();
		r = uts_hostname(s->pid, NULL, m->hostname);
		s->t.hostname = ns_to_ms(t, clock_ns());
	}
	if (r >= 0) {
		t = clock_ns();
		r = put_back_cgroup(m, s);
		s->t.cgroup = ns_to_ms(t, clock_ns());
	}
	job_step_done(j, RST_BESIDE_ALL, r);
	return NULL;
}

static void job_end(struct runc_started *s)
{
	struct runc_job *j = s->job;

	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stop = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->th, NULL);
	tmpfs_dirs_close(j->dirs, j->m->n_tmpfs);
	dm__container__free_unpacked(j->m, NULL);
	free(j->images_dir);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
	s->job = NULL;
}

int runc_restore_put_back_async(const Dm__Container *m, const struct runc_restore_opts *o, struct runc_started *s)
{
	uint64_t t = clock_ns();
	int r = put_back_net(m, s->pid, o->bridge, s);

	s->t.net = ns_to_ms(t, clock_ns()) - s->t.netlock;
	struct runc_job *j = xcalloc(1, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->s = s;
	j->images_dir = xstrdup(o->images_dir);
	/* its own copy: the caller's may go before the thread ends */
	size_t len = dm__container__get_packed_size(m);
	_cleanup_free_ uint8_t *buf = xmalloc(len ? len : 1);
	dm__container__pack(m, buf);
	j->m = dm__container__unpack(NULL, len, buf);
	if (!j->m)
		abort();
	if (r >= 0)
		r = tmpfs_dirs(m, s->pid, &j->dirs);
	if (r >= 0) {
		r = -pthread_create(&j->th, NULL, job_main, j);
		if (r < 0)
			dm_fail(r, "cannot start a thread: %s", strerror(-r));
	}
	if (r < 0) {
		tmpfs_dirs_close(j->dirs, j->m->n_tmpfs);
		dm__container__free_unpacked(j->m, NULL);
		free(j->images_dir);
		pthread_mutex_destroy(&j->lock);
		pthread_cond_destroy(&j->cond);
		free(j);
		runc_restore_done(s, false);
		return r;
	}
	s->job = j;
	return 0;
}

int runc_restore_wait(void *arg, int stage)
{
	struct runc_started *s = arg;
	struct runc_job *j = s->job;
	int r;

	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	if (stage >= RST_BESIDE_MM && !j->tree_made) {
		j->tree_made = true;
		pthread_cond_broadcast(&j->cond);
	}
	while (j->done < stage)
		pthread_cond_wait(&j->cond, &j->lock);
	r = j->err;
	pthread_mutex_unlock(&j->lock);
	if (r < 0)
		dm_error_set_message(j->msg);
	return r;
}

json_t *runc_putback_stats_json(const struct runc_started *s)
{
	return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "launch_ms", s->t.launch, "early_lock_ms",
			 s->t.early_lock, "early_net_ms", s->t.early_net, "netlock_ms", s->t.netlock,
			 "net_ms", s->t.net, "hostname_ms", s->t.hostname, "ipc_ms", s->t.ipc, "tmpfs_ms",
			 s->t.tmpfs, "cgroup_ms", s->t.cgroup);
}

int runc_restore_start(const Dm__Container *m, const struct runc_restore_opts *o,
		       struct runc_started *ret)
{
	int r = runc_restore_launch(m, o, ret);

	if (r >= 0)
		r = runc_restore_prepare(m, o, ret);
	return r < 0 ? r : runc_restore_put_back(m, o, ret);
}

int runc_base_record(struct runc_ct *ct, uint8_t **ret, size_t *ret_len)
{
	Dm__Container *m = ct->msg;
	Dm__Container b = DM__CONTAINER__INIT;

	if (!m)
		return dm_fail(-EINVAL, "container '%s': not described yet", ct->id);
	b.runtime = m->runtime;
	b.id = m->id;
	b.bundle = m->bundle;
	b.config = m->config;
	b.runc_root = m->runc_root;
	/*
	 * Its network as it is now, while it runs: the destination makes it
	 * before the freeze (runc_restore_prepare()), and only attaches it in
	 * the downtime if the record made while frozen says the same.  What
	 * cannot be read or would be refused is left out here (the frozen
	 * record refuses it, named): the destination then makes it all then.
	 */
	Dm__Container *net = xmalloc(sizeof(*net));
	dm__container__init(net);
	ct->msg = net;
	int r = record_ns(ct);
	if (r >= 0)
		r = record_net(ct);
	ct->msg = m;
	if (r >= 0) {
		b.n_interfaces = net->n_interfaces;
		b.interfaces = net->interfaces;
		b.n_routes = net->n_routes;
		b.routes = net->routes;
	} else {
		pr_debug("container '%s': its network is not described at START: %s", ct->id, dm_last_error());
		dm_error_clear();
	}
	*ret_len = dm__container__get_packed_size(&b);
	*ret = xmalloc(*ret_len ? *ret_len : 1);
	dm__container__pack(&b, *ret);
	dm__container__free_unpacked(net, NULL);
	return 0;
}

bool runc_same_container(const Dm__Container *a, const Dm__Container *b)
{
	return !strcmp(a->runtime, b->runtime) && !strcmp(a->id, b->id) && !strcmp(a->bundle, b->bundle) &&
	       a->config.len == b->config.len && !memcmp(a->config.data, b->config.data, a->config.len);
}

/* Is addr ("A/P") one of the addresses of the namespace we are in? */
static bool address_here(const char *addr)
{
	_cleanup_free_ char *a = xstrdup(addr);
	struct sockaddr_storage ss = {};
	socklen_t sl;

	a[strcspn(a, "/")] = 0;
	if (inet_pton(AF_INET, a, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, a, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		sl = sizeof(struct sockaddr_in6);
	} else {
		return false;
	}
	_cleanup_close_ int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return fd >= 0 && bind(fd, (struct sockaddr *)&ss, sl) == 0;
}

/*
 * A container another runtime made with its network (Docker): its namespace
 * is locked at once (the restore of the sockets takes the lock over), and
 * the addresses it had that it has here again (a fixed address on a segment
 * both hosts share) are announced once the tree runs; the others (a default
 * bridge's, each host's own) are not announced.
 */
static int lock_and_announce(const Dm__Container *m, struct runc_started *s)
{
	_cleanup_close_ int ns = -1;
	int back = -1, r;

	if (!m->n_interfaces)
		return 0;
	r = netns_of_pid(s->pid, &ns);
	if (r > 0)
		r = netns_enter(ns, &back);
	if (r < 0 || ns < 0)
		return r;
	r = netlock_netns(NETLOCK_NETNS_NAME);
	s->net_locked = r >= 0;
	for (size_t i = 0; i < m->n_interfaces && r >= 0; i++) {
		const Dm__ContainerNetIf *n = m->interfaces[i];
		for (size_t k = 0; k < n->n_addrs; k++) {
			if (!address_here(n->addrs[k]))
				continue;
			s->ann_if = xrealloc(s->ann_if, (s->n_ann + 1) * sizeof(*s->ann_if));
			s->ann_addr = xrealloc(s->ann_addr, (s->n_ann + 1) * sizeof(*s->ann_addr));
			s->ann_if[s->n_ann] = xstrdup(n->name);
			s->ann_addr[s->n_ann++] = xstrdup(n->addrs[k]);
		}
	}
	netns_leave(back);
	return r;
}

int runc_restore_attach(const Dm__Container *m, const struct runc_restore_opts *o, pid_t pid,
			int sock, struct runc_started *ret)
{
	struct runc_started s = { .sock = sock, .root_fd = -1, .pid = pid };
	_cleanup_free_ char *rootp = xasprintf("/proc/%d/root", pid);
	int r;

	s.root_fd = open(rootp, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.root_fd < 0) {
		r = dm_fail(neg_errno(), "the container's init %d: %s: %m", pid, rootp);
		goto fail;
	}
	r = lock_and_announce(m, &s);
	if (r >= 0)
		r = put_back(m, o, &s);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	runc_restore_done(&s, false);
	return r;
}

int runc_sweep_early(const char *root, const char *id, const char *tmp_bundle)
{
	_cleanup_free_ char *out = NULL, *err = NULL;
	int r = ctr_run((const char *const[]){ "runc", "--root", root, "state", id, NULL }, NULL, 0,
		    CHILD_WAIT_RUNC_MS, &out, &err);

	if (r < 0)
		return r;
	if (r) {
		/* runc knows no such container: nothing but the bundle to remove */
		if (!err || !strstr(err, "does not exist"))
			return dm_fail(-EIO, "runc --root %s state %s: %s", root, id, err ? runc_msg(err) : "failed");
	} else {
		json_error_t je;
		json_t *st = json_loads(out ? out : "", 0, &je);
		const char *status = json_string_value(json_object_get(st, "status"));
		bool stopped = status && !strcmp(status, "stopped");
		json_decref(st);
		if (!stopped)
			return 0;
		_cleanup_free_ char *derr = NULL;
		r = ctr_run((const char *const[]){ "runc", "--root", root, "delete", "-f", id, NULL }, NULL, 0,
			    CHILD_WAIT_RUNC_MS, NULL, &derr);
		if (r < 0)
			return r;
		if (r)
			return dm_fail(-EIO, "runc --root %s delete -f %s: %s", root, id,
				       derr ? runc_msg(derr) : "failed");
	}
	if (tmp_bundle && tmp_bundle[0])
		rm_rf(tmp_bundle);
	return 1;
}

void runc_restore_done(struct runc_started *s, bool ok)
{
	job_end(s);
	if (!ok && s->id) {
		char msg[DM_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
		_cleanup_free_ char *err = NULL;
		int r = ctr_run((const char *const[]){ "runc", "--root", s->root, "delete", "-f", s->id, NULL },
				NULL, 0, CHILD_WAIT_RUNC_MS, NULL, &err);
		if (r < 0)
			pr_warn("%s", dm_last_error());
		else if (r)
			pr_warn("runc delete -f %s: %s", s->id, err ? runc_msg(err) : "failed");
		dm_error_set_message(msg);
	}
	if (ok && (s->net_locked || s->n_ann)) {
		/* the restore of the sockets removed the lock already (the caller
		 * clears net_locked then), unless the tree has none */
		_cleanup_close_ int ns = -1;
		int back = -1;
		if (netns_of_pid(s->pid, &ns) < 0 || netns_enter(ns, &back) < 0 ||
		    (s->net_locked && netlock_unlock(NETLOCK_NETNS_NAME) < 0))
			pr_warn("%s", dm_last_error());
		/* the tree runs: its addresses are where it is now (after a migration, another port
		 * of the segment); a failed announcement only delays the switch to the next packet */
		for (size_t i = 0; back >= 0 && i < s->n_ann; i++)
			if (net_announce(s->ann_if[i], s->ann_addr[i]) < 0)
				pr_warn("%s", dm_last_error());
		netns_leave(back);
	}
	/* segments removed while attached: attached by the tree now, removed
	 * again (they go with their last detach, as they would have) */
	if (ok && s->n_shm_rmid && ipc_remove_shm(s->pid, s->shm_rmid, s->n_shm_rmid) < 0)
		pr_warn("the container's IPC namespace: %s", dm_last_error());
	free(s->shm_rmid);
	free(s->net_made);
	for (size_t i = 0; i < s->n_ann; i++) {
		free(s->ann_if[i]);
		free(s->ann_addr[i]);
	}
	free(s->ann_if);
	free(s->ann_addr);
	if (s->tmp_bundle && !ok)
		rm_rf(s->tmp_bundle);
	if (s->sock >= 0)
		close(s->sock);
	if (s->root_fd >= 0)
		close(s->root_fd);
	free(s->tmp_bundle);
	free(s->id);
	free(s->root);
	*s = (struct runc_started){ .sock = -1, .root_fd = -1 };
}
