/* SPDX-License-Identifier: MIT */
/*
 * dmigrate setup: registers the OCI runtime "dmigrate" (dmigrate-runc) with
 * dockerd (docs/docker.md, "dmigrate setup"): merged into daemon.json, then
 * dockerd reloads its configuration (SIGHUP) and GET /info must show it.
 */
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "container/docker.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define RUNTIME_NAME "dmigrate"
#define RUNTIME_BIN "dmigrate-runc"
#define RELOAD_TIMEOUT_MS 10000

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dmigrate setup [--docker-config FILE] [--docker-pidfile FILE] [--runtime PATH]\n"
		"  Registers the OCI runtime '" RUNTIME_NAME "' with the dockerd of $DOCKER_HOST (default\n"
		"  " DOCKER_DEFAULT_HOST "), which the destination of a Docker migration needs:\n"
		"  adds \"runtimes\": {\"" RUNTIME_NAME "\": {\"path\": PATH}} to FILE (default\n"
		"  " DOCKER_DEFAULT_CONFIG "; made if missing, other keys kept), sends SIGHUP to the\n"
		"  dockerd whose pid is in --docker-pidfile (default " DOCKER_DEFAULT_PIDFILE ") and\n"
		"  waits until dockerd lists the runtime.  PATH defaults to " RUNTIME_BIN " next to this\n"
		"  dmigrate.  Running it again changes nothing.\n");
}

static int fail(int r, const char *fmt, ...) _printf_(2, 3);
static int fail(int r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dmigrate: setup: ");
	if (fmt) {
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	} else {
		fputs(dm_error_text(r), stderr);
	}
	fputc('\n', stderr);
	return 1;
}

/* An executable regular file: its absolute path. */
static int runtime_path(const char *given, char **ret)
{
	_cleanup_free_ char *cand = NULL;
	char buf[PATH_MAX];
	struct stat st;

	if (given) {
		cand = xstrdup(given);
	} else {
		ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
		if (n < 0)
			return dm_fail(neg_errno(), "/proc/self/exe: %m");
		buf[n] = 0;
		char *slash = strrchr(buf, '/');
		*slash = 0;
		cand = xasprintf("%s/" RUNTIME_BIN, buf);
	}
	if (stat(cand, &st) < 0) {
		int r = neg_errno();
		if (given)
			return dm_fail(r, "runtime %s: %s", cand, strerror(-r));
		return dm_fail(r, "no " RUNTIME_BIN " next to this dmigrate (%s: %s): install it there "
			       "or give its path with --runtime PATH", cand, strerror(-r));
	}
	if (!S_ISREG(st.st_mode) || access(cand, X_OK) < 0)
		return dm_fail(-EACCES, "runtime %s is not an executable file", cand);
	if (!realpath(cand, buf))
		return dm_fail(neg_errno(), "%s: %m", cand);
	*ret = xstrdup(buf);
	return 0;
}

static int read_pidfile(const char *file, pid_t *ret)
{
	_cleanup_free_ char *text = NULL;
	long pid;
	int r = read_full_file(file, 64, &text, NULL);

	if (r < 0)
		return dm_fail(r, "cannot tell dockerd to reload: %s: %s (is dockerd running? "
			       "else give --docker-pidfile)", file, strerror(-r));
	text[strcspn(text, " \n")] = 0;
	if (parse_long(text, &pid) < 0 || pid <= 0 || pid > INT_MAX)
		return dm_fail(-EBADMSG, "%s: no pid in it", file);
	if (kill((pid_t)pid, 0) < 0)
		return dm_fail(neg_errno(), "dockerd is not running: pid %ld of %s: %m", pid, file);
	/* a stale pid file may name another program now: SIGHUP would end it */
	_cleanup_free_ char *cpath = xasprintf("/proc/%ld/comm", pid), *comm = NULL;
	r = read_full_file(cpath, 64, &comm, NULL);
	if (r < 0)
		return dm_fail(r, "dockerd is not running: pid %ld of %s: %s", pid, file, strerror(-r));
	comm[strcspn(comm, "\n")] = 0;
	if (strcmp(comm, "dockerd") != 0)
		return dm_fail(-ESRCH, "dockerd is not running: pid %ld of %s is %s (a stale pid file?)",
			       pid, file, comm);
	*ret = (pid_t)pid;
	return 0;
}

static void docker_closep(struct docker **dk)
{
	docker_close(*dk);
}

int cmd_setup(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "docker-config", required_argument, NULL, 'c' },
		{ "docker-pidfile", required_argument, NULL, 'p' },
		{ "runtime", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *config = DOCKER_DEFAULT_CONFIG, *pidfile = DOCKER_DEFAULT_PIDFILE, *given = NULL;
	_cleanup_(docker_closep) struct docker *dk = NULL;
	_cleanup_free_ char *path = NULL;
	pid_t pid = 0;
	int c, r, change, has;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'r': given = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	r = runtime_path(given, &path);
	if (r < 0)
		return fail(r, NULL);
	r = docker_open(NULL, &dk);
	if (r < 0)
		return fail(r, NULL);
	has = docker_has_runtime(dk, RUNTIME_NAME, path);
	if (has < 0)
		return fail(has, NULL);
	/*
	 * dockerd has it already (from this file, or from --add-runtime on its
	 * command line: the same runtime in the file too would make its next
	 * start fail): nothing to do.
	 */
	if (has) {
		printf("dockerd at %s has runtime " RUNTIME_NAME " -> %s already: nothing changed\n",
		       docker_host(dk), path);
		return 0;
	}
	/* before the file changes: a dockerd we could not make reload it */
	r = read_pidfile(pidfile, &pid);
	if (r < 0)
		return fail(r, NULL);
	change = docker_config_file_add_runtime(config, RUNTIME_NAME, path);
	if (change < 0)
		return fail(change, NULL);
	if (kill(pid, SIGHUP) < 0)
		return fail(neg_errno(), "cannot signal dockerd %d: %m", (int)pid);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		has = docker_has_runtime(dk, RUNTIME_NAME, path);
		if (has < 0)
			return fail(has, NULL);
		if (has)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > RELOAD_TIMEOUT_MS)
			return fail(-ETIMEDOUT, "dockerd %d (%s) did not take runtime " RUNTIME_NAME
				    " from %s within %d s of SIGHUP: its log says why (a key of the file "
				    "that is also on its command line makes it ignore the file; is the pid "
				    "in %s that of this dockerd?); %s keeps the change", (int)pid,
				    docker_host(dk), config, RELOAD_TIMEOUT_MS / 1000, pidfile, config);
		usleep(100 * 1000);
	}
	if (change == DOCKER_CFG_SAME)
		printf("runtime " RUNTIME_NAME " -> %s was in %s already; dockerd %d reloaded\n", path, config,
		       (int)pid);
	else
		printf("%s runtime " RUNTIME_NAME " -> %s %s %s; dockerd %d reloaded\n",
		       change == DOCKER_CFG_ADDED ? "added" : "changed", path,
		       change == DOCKER_CFG_ADDED ? "to" : "in", config, (int)pid);
	return 0;
}
