/* SPDX-License-Identifier: MIT */
/*
 * A runc container's restore: runc runs the restore's stub (runc-stub.c)
 * from a config copy (the container's, its process the stub), the stub's
 * socket is handed to the restore (runc_started), and runc_restore_done()
 * ends it, deleting a failed container and its config copy.
 */
#define LOG_PREFIX "runc: "
#include "container/runc-internal.h"
#include "container/runc.h"
#include "container/ipc.h"
#include "base/child.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "net/inet.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

extern const unsigned char runc_stub_bin[];
extern const size_t runc_stub_bin_len;

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

/* The container's first process (the stub), as runc run's --pid-file says */
static int stub_pid_of(const char *pidfile, const char *id, pid_t *ret)
{
	_cleanup_close_ int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
	char text[32];
	ssize_t k = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
	long pid;

	if (k < 0)
		return dm_fail(neg_errno(), "runc run %s: its pid file %s: %m", id, pidfile);
	text[k] = 0;
	text[strcspn(text, " \n")] = 0;
	if (parse_long(text, &pid) < 0 || pid <= 0 || pid > INT32_MAX)
		return dm_fail(-EBADMSG, "runc run %s: its pid file %s holds no pid", id, pidfile);
	*ret = (pid_t)pid;
	return 0;
}

int runc_restore_launch(const Dm__Container *m, const struct runc_restore_opts *o,
			struct runc_started *ret)
{
	struct runc_started s = { .sock = -1, .root_fd = -1 };
	uint64_t t0 = clock_ns();
	_cleanup_free_ char *rootfs = NULL, *cfgpath = NULL, *err = NULL, *rootp = NULL, *pidfile = NULL;
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
	pidfile = xasprintf("%s/pid", s.tmp_bundle);
	/*
	 * runc (and the init it runs in the container until the stub) nicer
	 * than us: its Go runtimes took ~120 ms of CPU here, and in our cgroup
	 * the other migrations' restores come first; the stub, which does the
	 * restore, gets our nice back below.  The pid from --pid-file, not a
	 * `runc state` (another Go start).
	 */
	r = ctr_run_nicer((const char *const[]){ "runc", "--root", s.root, "run", "-d", "--preserve-fds", "2",
					     "--pid-file", pidfile, "--bundle", s.tmp_bundle, s.id, NULL },
			  extra, 2, CHILD_WAIT_RUNC_RUN_MS, PREP_NICE_INC, NULL, &err);
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
	r = stub_pid_of(pidfile, s.id, &s.pid);
	if (r < 0)
		goto fail;
	setpriority(PRIO_PROCESS, s.pid, thread_nice_get());
	rootp = xasprintf("/proc/%d/root", s.pid);
	s.root_fd = open(rootp, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.root_fd < 0) {
		r = dm_fail(neg_errno(), "%s: %m", rootp);
		goto fail;
	}
	json_decref(cfg);
	runc_cgroup_snapshot(&s);
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

	if (o->runtime_made || !runc_config_new_netns(base))
		return 0;
	r = runc_net_lock(s->pid, s);
	s->t.early_lock = ns_to_ms(t, clock_ns());
	t = clock_ns();
	if (r >= 0 && runc_has_veth(base)) {
		runc_net_key(base, &s->net_made, &s->net_made_len);
		r = runc_net_make(base, s->pid, o->bridge, false);
	}
	s->t.early_net = ns_to_ms(t, clock_ns());
	if (r < 0)
		runc_restore_done(s, false);
	return r;
}

int runc_restore_start(const Dm__Container *m, const struct runc_restore_opts *o,
		       struct runc_started *ret)
{
	int r = runc_restore_launch(m, o, ret);

	if (r >= 0)
		r = runc_restore_prepare(m, o, ret);
	return r < 0 ? r : runc_restore_put_back(m, o, ret);
}

bool runc_same_container(const Dm__Container *a, const Dm__Container *b)
{
	return !strcmp(a->runtime, b->runtime) && !strcmp(a->id, b->id) && !strcmp(a->bundle, b->bundle) &&
	       a->config.len == b->config.len && !memcmp(a->config.data, b->config.data, a->config.len);
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
	s.net_locked = o->net_locked;
	r = runc_lock_and_announce(m, &s);
	if (r >= 0)
		r = runc_put_back(m, o, &s);
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

void runc_restore_announce(struct runc_started *s, bool unlock)
{
	unlock = unlock && s->net_locked;
	if (!unlock && !s->n_ann)
		return;
	/* the restore of the sockets removed the lock already (the caller
	 * clears net_locked then), unless the tree has none */
	_cleanup_close_ int ns = -1;
	int back = -1;
	if (netns_of_pid(s->pid, &ns) < 0 || netns_enter(ns, &back) < 0 ||
	    (unlock && netlock_unlock(NETLOCK_NETNS_NAME) < 0))
		pr_warn("%s", dm_last_error());
	else if (unlock)
		s->net_locked = false;
	/* the tree runs: its addresses are where it is now (after a migration, another port
	 * of the segment); a failed announcement only delays the switch to the next packet */
	for (size_t i = 0; back >= 0 && i < s->n_ann; i++)
		if (net_announce(s->ann_if[i], s->ann_addr[i]) < 0)
			pr_warn("%s", dm_last_error());
	netns_leave(back);
	for (size_t i = 0; i < s->n_ann; i++) {
		free(s->ann_if[i]);
		free(s->ann_addr[i]);
	}
	free(s->ann_if);
	free(s->ann_addr);
	s->ann_if = s->ann_addr = NULL;
	s->n_ann = 0;
}

void runc_restore_done(struct runc_started *s, bool ok)
{
	runc_job_end(s);
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
	/* a migration's destination did it as the tree began to run */
	if (ok)
		runc_restore_announce(s, true);
	/* segments removed while attached: attached by the tree now, removed
	 * again (they go with their last detach, as they would have) */
	if (ok && s->n_shm_rmid && ipc_remove_shm(s->pid, s->shm_rmid, s->n_shm_rmid) < 0)
		pr_warn("the container's IPC namespace: %s", dm_last_error());
	free(s->shm_rmid);
	free(s->net_made);
	runc_cgroup_snapshot_free(s);
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
