/* SPDX-License-Identifier: MIT */
/*
 * The source's guard (srcguard.h): a process that undoes the network lock
 * and a held restart policy if its parent dies before it is done.
 *
 * Messages on a SOCK_SEQPACKET pair: struct guard_msg, the lock's namespace
 * as SCM_RIGHTS.  The guard reads until the end of the socket: armed (its
 * parent is gone) it undoes what it was told, the last change first;
 * disarmed it leaves.  "rearm" (a COMMIT that could not be sent: the
 * parent rolls back after all) makes it armed again, with what it was told
 * before.
 */
#define LOG_PREFIX "guard: "
#include "migrate/srcguard.h"
#include "container/docker.h"
#include "container/docker-mig.h"
#include "base/fdpass.h"
#include "base/log.h"
#include "base/util.h"
#include "net/inet.h"

#include <errno.h>
#include <stddef.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUARD_FD 3
#define GUARD_TEXT_MAX 4000
#define GUARD_MAX 32
#define GUARD_NICE 19

enum { G_NETLOCK = 1, G_DOCKER = 2, G_DISARM = 3, G_REARM = 4 };

struct guard_msg {
	uint32_t kind;
	char text[GUARD_TEXT_MAX];
};

struct src_guard {
	int fd;
	pid_t pid;
	bool disarmed;
};

int src_guard_start(struct src_guard **ret)
{
	int sp[2];

	/* the nice the undo runs at: ours */
	char nice_arg[16];
	snprintf(nice_arg, sizeof(nice_arg), "%d", thread_nice_get());
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return dm_fail(neg_errno(), "the guard's socketpair: %m");
	pid_t pid = fork();
	if (pid < 0) {
		int r = dm_fail(neg_errno(), "cannot start the guard: fork: %m");
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	if (pid == 0) {
		/* async-signal-safe calls only until the exec (we may have threads) */
		char *const argv[] = { "dmigrate", "__guard", nice_arg, NULL };
		sigset_t none;
		setsid();
		/* idle until the end: its start (the exec, the libraries'
		 * relocations: 20-30 ms of a CPU here) must not take a CPU from
		 * the tree's service while it prepares to move; the undo puts
		 * the nice back first (src_guard_main) */
		setpriority(PRIO_PROCESS, 0, GUARD_NICE);
		if (dup2(sp[1], GUARD_FD) < 0)
			_exit(127);
		syscall(SYS_close_range, GUARD_FD + 1, ~0U, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(sp[1]);
	*ret = xcalloc(1, sizeof(**ret));
	(*ret)->fd = sp[0];
	(*ret)->pid = pid;
	return 0;
}

static void send_msg(struct src_guard *g, uint32_t kind, const char *text, int fd)
{
	struct guard_msg m = { .kind = kind };
	size_t len = text ? strlen(text) : 0;
	ssize_t k;

	if (!g || g->disarmed || g->fd < 0)
		return;
	if (len >= sizeof(m.text)) {
		pr_warn("too long for the guard: %.60s...", text);
		return;
	}
	if (len)
		memcpy(m.text, text, len + 1);
	k = fdpass_send(g->fd, &m, offsetof(struct guard_msg, text) + len + 1, &fd, fd >= 0 ? 1 : 0, 0);
	if (k < 0)
		pr_warn("the guard (pid %d) cannot be told: %s", (int)g->pid, strerror((int)-k));
}

void src_guard_netlock(struct src_guard *g, int nsfd, const char *name)
{
	send_msg(g, G_NETLOCK, name, nsfd);
}

void src_guard_docker_policy(struct src_guard *g, const char *docker_host, const char *id, const char *policy)
{
	_cleanup_free_ char *t = xasprintf("%s\n%s\n%s", docker_host, id, policy);
	send_msg(g, G_DOCKER, t, -1);
}

void src_guard_disarm(struct src_guard *g)
{
	if (!g || g->disarmed)
		return;
	send_msg(g, G_DISARM, NULL, -1);
	g->disarmed = true;
}

void src_guard_rearm(struct src_guard *g)
{
	if (!g || !g->disarmed)
		return;
	g->disarmed = false;
	send_msg(g, G_REARM, NULL, -1);
}

void src_guard_free(struct src_guard *g)
{
	if (!g)
		return;
	src_guard_disarm(g);
	close(g->fd);
	while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
		;
	free(g);
}

/* ---- the guard process ---------------------------------------------------- */

struct undo {
	uint32_t kind;
	int fd;
	char *text;
};

static void undo_docker(char *text)
{
	char *save = NULL, *host = strtok_r(text, "\n", &save), *id = strtok_r(NULL, "\n", &save);
	char *pol = strtok_r(NULL, "", &save);
	struct docker *dk = NULL;
	json_error_t je;
	json_t *p = pol ? json_loads(pol, 0, &je) : NULL;

	if (!host || !id || !p || docker_open(host, &dk) < 0 || docker_update_restart_policy(dk, id, p) < 0)
		fprintf(stderr, "dmigrate: the migration ended before it was done: the restart policy of Docker "
				"container %.12s could not be put back: %s\n", id ? id : "?", dm_last_error());
	else {
		docker_src_held_forget(id);
		fprintf(stderr, "dmigrate: the migration ended before it was done: the restart policy of Docker "
				"container %.12s is put back\n", id);
	}
	json_decref(p);
	if (dk)
		docker_close(dk);
}

static void undo_netlock(int nsfd, const char *name)
{
	int back = -1;

	if ((nsfd >= 0 && netns_enter(nsfd, &back) < 0) || netlock_unlock(name) < 0)
		fprintf(stderr, "dmigrate: the migration ended before it was done: the network lock %s could "
				"not be removed: %s (nft delete table inet %s)\n", name, dm_last_error(), name);
	else
		fprintf(stderr, "dmigrate: the migration ended before it was done: its network lock %s is "
				"removed\n", name);
	netns_leave(back);
}

/*
 * Disarmed (the migration committed): nothing to undo any more.  The guard
 * lives on, idle, until its parent closes the socket (src_guard_free(), when
 * the migration is over) and then leaves without the exit handlers of the
 * libraries: exiting at the disarm took 3-4 ms of a CPU (ftrace) in the
 * milliseconds after the commit, when the service's first requests on the
 * destination wait for the page server's replies, on hosts whose CPUs are
 * few.  What it was told stays: "rearm" returns (src_guard_rearm()).
 */
static void guard_disarmed(void)
{
	for (;;) {
		struct guard_msg m;
		int fd = -1;
		size_t nfd = 1;
		ssize_t k = fdpass_recv(GUARD_FD, &m, sizeof(m), &fd, &nfd, 0);
		if (fd >= 0)
			close(fd);
		if (k == -EINTR)
			continue;
		if (k <= 0)
			_exit(0);
		if ((size_t)k >= offsetof(struct guard_msg, text) + 1 && m.kind == G_REARM)
			return;
	}
}

int src_guard_main(const char *nice_arg)
{
	struct undo u[GUARD_MAX];
	size_t n = 0;
	long nice = 0;

	if (nice_arg && (parse_long(nice_arg, &nice) < 0 || nice < -20 || nice > 19))
		nice = 0;

	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct guard_msg m;
		int fd = -1;
		size_t nfd = 1;
		ssize_t k = fdpass_recv(GUARD_FD, &m, sizeof(m), &fd, &nfd, 0);
		if (k <= 0)
			break; /* our parent is gone: undo */
		bool whole = (size_t)k >= offsetof(struct guard_msg, text) + 1;
		if (!whole || m.kind == G_DISARM || m.kind == G_REARM) {
			if (fd >= 0)
				close(fd);
			if (whole && m.kind == G_DISARM)
				guard_disarmed();
			continue;
		}
		m.text[MIN((size_t)k - offsetof(struct guard_msg, text), sizeof(m.text) - 1)] = 0;
		if (n == GUARD_MAX || (m.kind != G_NETLOCK && m.kind != G_DOCKER)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		u[n++] = (struct undo){ .kind = m.kind, .fd = fd, .text = xstrdup(m.text) };
	}
	/* our parent is gone: the undo runs at its nice (root may lower one;
	 * where it cannot, at the guard's) */
	setpriority(PRIO_PROCESS, 0, (int)nice);
	/* the last change first (the lock, then the policy), as a rollback does */
	while (n--) {
		if (u[n].kind == G_DOCKER)
			undo_docker(u[n].text);
		else
			undo_netlock(u[n].fd, u[n].text);
		if (u[n].fd >= 0)
			close(u[n].fd);
		free(u[n].text);
	}
	return 0;
}
