/* SPDX-License-Identifier: MIT */
/*
 * dmigrate-runc: the OCI runtime `dmigrate setup` registers with dockerd
 * (docs/docker.md).  Everything is runc's (the wrapper execs it with the same
 * arguments), except `create` of a container that a dmigrated has announced
 * (handoff.h): then the container's init is the restore's stub, and our end
 * of its transport goes to that dmigrated with the container's stdio.
 *
 * Docker's shim runs `RUNTIME [--root R --log L --log-format json ...] create
 * --bundle B --pid-file P [--console-socket S] ID`, then `start ID`: runc
 * create leaves the init waiting for start, so the stub runs only once Docker
 * starts the container, and dmigrated restores the tree into it then.
 */
#define LOG_PREFIX "dmigrate-runc: "
#include "container/handoff.h"
#include "container/ext-stub.h"
#include "container/runc.h"
#include "base/child.h"
#include "base/fdpass.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ dmigrated's side */

static int handoff_path(const char *id, struct sockaddr_un *sa, socklen_t *len)
{
	if (!id[0] || strchr(id, '/') || strlen(id) > 80)
		return dm_fail(-EINVAL, "bad container id '%s'", id);
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s.sock", HANDOFF_DIR, id);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sa->sun_path) + 1);
	return 0;
}

int handoff_listen(const char *id, int *ret_fd)
{
	struct sockaddr_un sa;
	socklen_t len;
	int r = handoff_path(id, &sa, &len);

	if (r < 0)
		return r;
	r = mkdir_p(HANDOFF_DIR, 0700);
	if (r < 0)
		return dm_fail(r, "%s: %s", HANDOFF_DIR, strerror(-r));
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dm_fail(neg_errno(), "socket: %m");
	unlink(sa.sun_path);
	mode_t old = umask(077);
	r = bind(fd, (struct sockaddr *)&sa, len) < 0 ? neg_errno() : 0;
	umask(old);
	if (r == 0 && listen(fd, 4) < 0)
		r = neg_errno();
	if (r < 0) {
		close(fd);
		return dm_fail(r, "%s: %s", sa.sun_path, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

void handoff_unlisten(const char *id, int lfd)
{
	struct sockaddr_un sa;
	socklen_t len;

	if (lfd >= 0)
		close(lfd);
	if (id && handoff_path(id, &sa, &len) == 0)
		unlink(sa.sun_path);
}

void handoff_close(struct handoff *h)
{
	if (h->sock >= 0)
		close(h->sock);
	for (int i = 0; i < 3; i++)
		if (h->stdio[i] >= 0)
			close(h->stdio[i]);
	*h = (struct handoff){ .sock = -1, .stdio = { -1, -1, -1 } };
}

int handoff_accept(int lfd, int timeout_ms, struct handoff *ret)
{
	struct pollfd p = { lfd, POLLIN, 0 };
	struct handoff_msg m = {};
	int r;

	*ret = (struct handoff){ .sock = -1, .stdio = { -1, -1, -1 } };
	r = poll(&p, 1, timeout_ms);
	if (r <= 0)
		return dm_fail(r < 0 ? neg_errno() : -ETIMEDOUT, "the container's runtime did not come "
			       "for the restore in %d s (is dmigrate-runc dockerd's runtime \"dmigrate\"? "
			       "`dmigrate setup`)", timeout_ms / 1000);
	_cleanup_close_ int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return dm_fail(neg_errno(), "accept: %m");
	p = (struct pollfd){ c, POLLIN, 0 };
	if (poll(&p, 1, HANDOFF_ACK_WAIT_MS) != 1)
		return dm_fail(-ETIMEDOUT, "the container's runtime connected but said nothing");
	int fds[4] = { -1, -1, -1, -1 };
	size_t nfds = 4;
	ssize_t n = fdpass_recv(c, &m, sizeof(m), fds, &nfds, 0);
	if (n != (ssize_t)sizeof(m) || m.magic != HANDOFF_MAGIC) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return dm_fail(-EPROTO, "the container's runtime sent a bad hand-off message");
	}
	m.error[sizeof(m.error) - 1] = 0;
	if (m.status != 0 || nfds != 4 || m.pid <= 0) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return dm_fail(m.status < 0 ? m.status : -EIO, "the container's runtime could not start "
			       "the restore: %s", m.error[0] ? m.error : "no reason given");
	}
	ret->pid = m.pid;
	ret->sock = fds[0];
	for (int i = 0; i < 3; i++)
		ret->stdio[i] = fds[i + 1];
	if (write(c, "K", 1) != 1)
		pr_warn("the container's runtime went before our answer");
	return 0;
}

/* ------------------------------------------------------------ the runtime */

static const char *log_path;    /* runc's --log: where the shim looks for the reason */

/* An error as runc reports one: on stderr and as a JSON line in --log. */
static void rt_error(const char *fmt, ...) _printf_(1, 2);
static void rt_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "dmigrate-runc: %s\n", msg);
	if (log_path) {
		FILE *f = fopen(log_path, "ae");
		if (f) {
			json_t *j = json_pack("{s:s,s:s}", "level", "error", "msg", msg);
			char *s = json_dumps(j, JSON_COMPACT);
			fprintf(f, "%s\n", s ? s : "{}");
			free(s);
			json_decref(j);
			fclose(f);
		}
	}
}

/* The runc we delegate to: $DMIGRATE_RUNC, else the first runc in PATH that is not us. */
static char *find_runc(void)
{
	const char *env = getenv("DMIGRATE_RUNC");
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (env && env[0])
		return xstrdup(env);
	self[n > 0 ? n : 0] = 0;
	const char *path = getenv("PATH");
	_cleanup_free_ char *dup = xstrdup(path && path[0] ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	for (char *save = NULL, *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *cand = xasprintf("%s/runc", d);
		char real[PATH_MAX];
		if (access(cand, X_OK) == 0 && realpath(cand, real) && strcmp(real, self))
			return xstrdup(cand);
	}
	return NULL;
}

static const char *const global_with_value[] = { "--root", "--log", "--log-format", "--criu",
						 "--rootless" };
static const char *const create_with_value[] = { "--bundle", "-b", "--console-socket", "--pid-file",
						 "--preserve-fds", "--pidfd-socket" };

static bool in(const char *a, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(a, set[i]))
			return true;
	return false;
}

/* The value of option name in argv[from..to) ("--x v" or "--x=v"), or NULL. */
static const char *opt(char **argv, int from, int to, const char *name)
{
	size_t l = strlen(name);
	for (int i = from; i < to; i++) {
		if (!strcmp(argv[i], name) && i + 1 < to)
			return argv[i + 1];
		if (!strncmp(argv[i], name, l) && argv[i][l] == '=')
			return argv[i] + l + 1;
	}
	return NULL;
}

static int send_msg(int c, const struct handoff_msg *m, const int *fds, int nfds)
{
	ssize_t k = fdpass_send(c, m, sizeof(*m), fds, (size_t)nfds, 0);
	return k == (ssize_t)sizeof(*m) ? 0 : k < 0 ? (int)k : -EIO;
}

static void send_failure(int c, int status, const char *why)
{
	struct handoff_msg m = { .magic = HANDOFF_MAGIC, .status = status ? status : -EIO };
	snprintf(m.error, sizeof(m.error), "%s", why);
	send_msg(c, &m, NULL, 0);
}

/* The bundle's config.json with its process made into the stub; the original kept beside. */
static int stub_bundle(const char *bundle, char **ret_saved)
{
	_cleanup_free_ char *cfg = xasprintf("%s/config.json", bundle);
	_cleanup_free_ char *saved = xasprintf("%s/config.json.dmigrate", bundle);
	json_error_t je;
	json_t *c = json_load_file(cfg, 0, &je);

	if (!json_is_object(c)) {
		json_decref(c);
		return dm_fail(-EBADMSG, "%s: %s", cfg, je.text);
	}
	json_t *proc = json_object_get(c, "process");
	if (json_is_true(json_object_get(proc, "terminal"))) {
		json_decref(c);
		return dm_fail(-ENOTSUP, "the container has a terminal (docker run -t): not restored");
	}
	runc_stub_process(c);
	if (rename(cfg, saved) < 0) {
		json_decref(c);
		return dm_fail(neg_errno(), "%s: %m", cfg);
	}
	int r = json_dump_file(c, cfg, JSON_INDENT(1)) < 0 ? -EIO : 0;
	json_decref(c);
	if (r < 0) {
		rename(saved, cfg);
		return dm_fail(r, "cannot write %s", cfg);
	}
	*ret_saved = TAKE_PTR(saved);
	return 0;
}

static int read_pid_file(const char *path, pid_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	long v;
	int r = read_full_file(path, 64, &buf, NULL);

	if (r < 0)
		return dm_fail(r, "%s: %s", path, strerror(-r));
	buf[strcspn(buf, "\n")] = 0;
	if (parse_long(buf, &v) < 0 || v <= 0)
		return dm_fail(-EBADMSG, "%s: '%s' is not a pid", path, buf);
	*ret = (pid_t)v;
	return 0;
}

/*
 * `create` of an announced container: runc creates it with the stub as its
 * init; the stub's transport and the container's stdio go to dmigrated.
 */
static int create_for_restore(const char *runc, int c, int argc, char **argv, int create_at,
			      const char *bundle, const char *pid_file)
{
	_cleanup_free_ char *saved = NULL, *cfg = xasprintf("%s/config.json", bundle);
	int sp[2] = { -1, -1 }, exe = -1, st, r;

	if (opt(argv, create_at + 1, argc, "--preserve-fds")) {
		rt_error("create with --preserve-fds: not supported for a restore");
		send_failure(c, -ENOTSUP, "the runtime was asked to preserve fds");
		return 1;
	}
	r = stub_bundle(bundle, &saved);
	if (r < 0)
		goto fail;
	r = runc_stub_fds(&exe, sp);
	if (r < 0)
		goto fail;
	/* runc create ... --preserve-fds 2 ... : fds 3 and 4 go to the init */
	char **args = xcalloc((size_t)argc + 4, sizeof(*args));
	int k = 0;
	args[k++] = (char *)runc;
	for (int i = 1; i <= create_at; i++)
		args[k++] = argv[i];
	args[k++] = (char *)"--preserve-fds";
	args[k++] = (char *)"2";
	for (int i = create_at + 1; i < argc; i++)
		args[k++] = argv[i];
	args[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int a = fcntl(exe, F_DUPFD, 10), b = fcntl(sp[1], F_DUPFD, 10);
		if (a < 0 || b < 0 || dup2(a, EXT_STUB_EXE) < 0 || dup2(b, EXT_STUB_SOCK) < 0)
			_exit(127);
		syscall(SYS_close_range, EXT_STUB_SOCK + 1, ~0U, 0);
		/* its group is killed with it if it hangs (a hook) */
		setpgid(0, 0);
		execv(runc, args);
		fprintf(stderr, "dmigrate-runc: cannot run %s: %s\n", runc, strerror(errno));
		_exit(127);
	}
	free(args);
	if (pid < 0) {
		r = dm_fail(neg_errno(), "fork: %m");
		goto fail;
	}
	r = child_wait_limit(pid, CHILD_WAIT_RUNC_RUN_MS, &st, "%s create", runc);
	rename(saved, cfg);
	TAKE_PTR(saved);
	close(sp[1]);
	sp[1] = -1;
	if (r < 0)
		goto fail;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		send_failure(c, code, "runc create failed (its log says why)");
		close(exe);
		close(sp[0]);
		return code;
	}
	pid_t init = 0;
	r = read_pid_file(pid_file, &init);
	if (r < 0)
		goto fail_created;
	struct handoff_msg m = { .magic = HANDOFF_MAGIC, .pid = init };
	int fds[4] = { sp[0], 0, 1, 2 };
	r = send_msg(c, &m, fds, 4);
	if (r < 0) {
		dm_fail(r, "sending the hand-off to dmigrated: %s", strerror(-r));
		goto fail_created;
	}
	struct pollfd p = { c, POLLIN, 0 };
	char ack = 0;
	if (poll(&p, 1, HANDOFF_ACK_WAIT_MS) != 1 || read(c, &ack, 1) != 1 || ack != 'K') {
		r = dm_fail(-ETIMEDOUT, "dmigrated did not take the container's restore");
		goto fail_created;
	}
	close(exe);
	close(sp[0]);
	return 0;
fail_created:
	/* the stub exits by itself without its arguments; Docker deletes the container */
fail:
	if (saved)
		rename(saved, cfg);
	rt_error("restore into container: %s", dm_last_error());
	send_failure(c, r, dm_last_error());
	if (exe >= 0)
		close(exe);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	return 1;
}

int runtime_main(int argc, char **argv)
{
	_cleanup_free_ char *runc = find_runc();
	int i = 1;

	if (!runc) {
		fprintf(stderr, "dmigrate-runc: no runc in PATH (set DMIGRATE_RUNC)\n");
		return 127;
	}
	/* the command: after the global options */
	while (i < argc && argv[i][0] == '-') {
		if (in(argv[i], global_with_value, ARRAY_SIZE(global_with_value)))
			i++;
		i++;
	}
	log_path = opt(argv, 1, i < argc ? i : argc, "--log");
	if (i < argc && !strcmp(argv[i], "create")) {
		int at = i;
		const char *id = NULL;
		for (int k = at + 1; k < argc; k++) {
			if (argv[k][0] == '-') {
				if (!strchr(argv[k], '=') &&
				    in(argv[k], create_with_value, ARRAY_SIZE(create_with_value)))
					k++;
				continue;
			}
			id = argv[k];
		}
		const char *bundle = opt(argv, at + 1, argc, "--bundle");
		if (!bundle)
			bundle = opt(argv, at + 1, argc, "-b");
		const char *pid_file = opt(argv, at + 1, argc, "--pid-file");
		struct sockaddr_un sa;
		socklen_t len;
		if (id && handoff_path(id, &sa, &len) == 0 && access(sa.sun_path, F_OK) == 0) {
			_cleanup_close_ int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
			if (c >= 0 && connect(c, (struct sockaddr *)&sa, len) == 0) {
				if (!bundle || !pid_file) {
					rt_error("create %s: no --bundle or --pid-file: cannot restore", id);
					send_failure(c, -EINVAL, "the runtime got no bundle or pid file");
					return 1;
				}
				return create_for_restore(runc, c, argc, argv, at, bundle, pid_file);
			}
			/* a socket nobody listens on: what a dead dmigrated left */
		}
	}
	argv[0] = runc;
	execv(runc, argv);
	fprintf(stderr, "dmigrate-runc: cannot run %s: %s\n", runc, strerror(errno));
	return 127;
}
