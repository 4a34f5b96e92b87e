/* SPDX-License-Identifier: MIT */
/*
 * src/container/docker.c: the Docker Engine API client against a fake
 * dockerd (a thread serving HTTP/1.1 on a unix socket: canned replies per
 * method and path, every request recorded), the pure create body and
 * inspect parser on an inspect captured from a real dockerd
 * (data/docker/web1-inspect.json), the daemon.json merge of `dmigrate
 * setup`; then, where dockerd is installed, the same against a private
 * dockerd in its own network namespace: a container made from
 * docker_create_body of another's inspect has the same Config and
 * HostConfig (not in the sanitizer build: once per suite is enough).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "base/log.h"
#include "base/util.h"
#include "container/docker.h"
#include "container/image-tar.h"

#include <archive.h>
#include <archive_entry.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define json_auto _cleanup_(json_decrefp) json_t
/* a call that must succeed: its message when it does not */
#define assert_ok(e)                                                                   \
	do {                                                                           \
		int _r = (e);                                                          \
		if (_r < 0)                                                            \
			fail_msg("%s: %s: %s", #e, strerror(-_r), dm_last_error());  \
	} while (0)

/* ------------------------------------------------------------ fake dockerd */

struct route {
	const char *method, *path;  /* path with its query */
	int status;
	const char *body;
	bool chunked;               /* Transfer-Encoding: chunked, in 7-byte chunks */
	size_t stream;              /* a body of this many pattern bytes (chunked) */
};

#define MAX_REQ 64
struct fake {
	char dir[64], sock[128];
	int lfd;
	pthread_t th;
	const struct route *routes;
	size_t n_routes;
	pthread_mutex_t lock;
	char *req[MAX_REQ];         /* "METHOD PATH" */
	char *body[MAX_REQ];        /* small request bodies */
	size_t n_req;
	size_t upload_len;          /* a large body: its length ... */
	bool upload_ok;             /* ... and whether it was the pattern */
};

static unsigned char pattern(size_t i)
{
	return (unsigned char)((i * 31 + 7) % 251);
}

/* pattern(i) has a period of 251: PAT + i % 251 is the pattern from i on,
 * for up to 64 KiB */
#define BLK 65536
static unsigned char PAT[BLK + 251];

static void pat_init(void)
{
	for (size_t i = 0; i < sizeof(PAT); i++)
		PAT[i] = pattern(i);
}

/* A buffered reader of one connection. */
struct conn {
	int fd;
	char buf[8192];
	size_t off, len;
};

static int conn_getc(struct conn *c)
{
	if (c->off == c->len) {
		ssize_t n = read(c->fd, c->buf, sizeof(c->buf));
		if (n <= 0)
			return -1;
		c->off = 0;
		c->len = (size_t)n;
	}
	return (unsigned char)c->buf[c->off++];
}

/* Up to n bytes (> 0 unless the peer is gone). */
static ssize_t conn_read(struct conn *c, char *p, size_t n)
{
	if (c->off < c->len) {
		n = MIN(n, c->len - c->off);
		memcpy(p, c->buf + c->off, n);
		c->off += n;
		return (ssize_t)n;
	}
	return read(c->fd, p, n);
}

static int conn_line(struct conn *c, char *line, size_t max)
{
	size_t n = 0;
	int ch;

	while ((ch = conn_getc(c)) >= 0) {
		if (ch == '\n') {
			if (n && line[n - 1] == '\r')
				n--;
			line[n] = 0;
			return 0;
		}
		if (n + 1 < max)
			line[n++] = (char)ch;
	}
	return -1;
}

/* A request body: kept (small) and checked against the pattern (large). */
struct body_sink {
	char *small;
	size_t len;
	bool pattern_ok;
};

static void sink_put(struct body_sink *s, const char *p, size_t n)
{
	if (s->len < BLK) {
		size_t k = MIN(n, BLK - s->len);
		s->small = xrealloc(s->small, s->len + k + 1);
		memcpy(s->small + s->len, p, k);
		s->small[s->len + k] = 0;
	}
	for (size_t off = 0; off < n; off += BLK) {
		size_t m = MIN((size_t)BLK, n - off);
		if (memcmp(p + off, PAT + (s->len + off) % 251, m))
			s->pattern_ok = false;
	}
	s->len += n;
}

/* n bytes of the connection into the sink */
static int conn_body(struct conn *c, struct body_sink *s, size_t n)
{
	static char buf[BLK];

	while (n) {
		ssize_t k = conn_read(c, buf, MIN(n, sizeof(buf)));
		if (k <= 0)
			return -1;
		sink_put(s, buf, (size_t)k);
		n -= (size_t)k;
	}
	return 0;
}

/* MSG_NOSIGNAL: a client that hangs up must not kill the test (which, like
 * any program using the library, does not ignore SIGPIPE) */
static int send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p = (const char *)p + k;
		n -= (size_t)k;
	}
	return 0;
}

static int send_chunk(int fd, const void *p, size_t n)
{
	char h[32];
	int l = snprintf(h, sizeof(h), "%zx\r\n", n);
	if (send_all(fd, h, (size_t)l) < 0 || send_all(fd, p, n) < 0)
		return -1;
	return send_all(fd, "\r\n", 2);
}

static void serve_one(struct fake *f, int fd)
{
	struct conn c = { .fd = fd };
	char line[4096], method[16], path[2048];
	long clen = -1;
	bool chunked = false;
	struct body_sink body = { .pattern_ok = true };

	if (conn_line(&c, line, sizeof(line)) < 0 || sscanf(line, "%15s %2047s", method, path) != 2)
		return;
	while (conn_line(&c, line, sizeof(line)) == 0 && line[0]) {
		if (!strncasecmp(line, "Content-Length:", 15))
			clen = strtol(line + 15, NULL, 10);
		if (!strncasecmp(line, "Transfer-Encoding:", 18) && strstr(line, "chunked"))
			chunked = true;
	}
	if (chunked) {
		for (;;) {
			if (conn_line(&c, line, sizeof(line)) < 0)
				return;
			long n = strtol(line, NULL, 16);
			if (n == 0) {
				conn_line(&c, line, sizeof(line));
				break;
			}
			if (n < 0 || conn_body(&c, &body, (size_t)n) < 0)
				return;
			conn_line(&c, line, sizeof(line));
		}
	} else if (clen > 0 && conn_body(&c, &body, (size_t)clen) < 0) {
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (f->n_req < MAX_REQ) {
		f->req[f->n_req] = xasprintf("%s %s", method, path);
		f->body[f->n_req] = body.small ? xstrdup(body.small) : NULL;
		f->n_req++;
	}
	if (body.len > BLK) {
		f->upload_len = body.len;
		f->upload_ok = body.pattern_ok;
	}
	pthread_mutex_unlock(&f->lock);
	free(body.small);

	const struct route *r = NULL;
	for (size_t i = 0; i < f->n_routes; i++)
		if (!strcmp(f->routes[i].method, method) && !strcmp(f->routes[i].path, path))
			r = &f->routes[i];
	static const struct route notfound = { "", "", 404, "{\"message\":\"page not found\"}\n", false, 0 };
	if (!r)
		r = &notfound;
	int l = snprintf(line, sizeof(line), "HTTP/1.1 %d Canned\r\nContent-Type: application/json\r\n"
			 "Connection: close\r\n", r->status);
	send_all(fd, line, (size_t)l);
	if (r->stream) {
		send_all(fd, "Transfer-Encoding: chunked\r\n\r\n", 30);
		for (size_t off = 0; off < r->stream; off += BLK)
			if (send_chunk(fd, PAT + off % 251, MIN((size_t)BLK, r->stream - off)) < 0)
				return; /* the client hung up */
		send_all(fd, "0\r\n\r\n", 5);
	} else if (r->chunked) {
		size_t n = strlen(r->body);
		send_all(fd, "Transfer-Encoding: chunked\r\n\r\n", 30);
		for (size_t off = 0; off < n; off += 7)
			send_chunk(fd, r->body + off, MIN((size_t)7, n - off));
		send_all(fd, "0\r\n\r\n", 5);
	} else {
		const char *b = r->body ? r->body : "";
		l = snprintf(line, sizeof(line), "Content-Length: %zu\r\n\r\n", strlen(b));
		send_all(fd, line, (size_t)l);
		send_all(fd, b, strlen(b));
	}
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL; /* shut down */
		}
		serve_one(f, fd);
		close(fd);
	}
}

static struct fake *fake_start(const struct route *routes, size_t n)
{
	struct fake *f = xcalloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	strcpy(f->dir, "/tmp/dm-unit-docker.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/d.sock", f->dir);
	strcpy(sa.sun_path, f->sock);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 16), 0);
	f->routes = routes;
	f->n_routes = n;
	pthread_mutex_init(&f->lock, NULL);
	assert_int_equal(pthread_create(&f->th, NULL, fake_thread, f), 0);
	return f;
}

static char *fake_host(struct fake *f)
{
	return xasprintf("unix://%s", f->sock);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->th, NULL);
	close(f->lfd);
	unlink(f->sock);
	rmdir(f->dir);
	for (size_t i = 0; i < f->n_req; i++) {
		free(f->req[i]);
		free(f->body[i]);
	}
	free(f);
}

/* The index of the first recorded request "METHOD PATH", or -1. */
static int fake_seen(struct fake *f, const char *req)
{
	for (size_t i = 0; i < f->n_req; i++)
		if (!strcmp(f->req[i], req))
			return (int)i;
	return -1;
}

#define PING { "GET", "/_ping", 200, "OK", false, 0 }
#define VERSION(v) { "GET", "/version", 200, "{\"ApiVersion\":\"" v "\",\"MinAPIVersion\":\"1.12\",\"Version\":\"20.10.24\"}", false, 0 }

static struct docker *open_fake(struct fake *f)
{
	_cleanup_free_ char *host = fake_host(f);
	struct docker *dk = NULL;
	int r = docker_open(host, &dk);
	if (r < 0)
		fail_msg("docker_open: %s", dm_last_error());
	return dk;
}

/* ------------------------------------------------------------ the client */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_negotiate_older_daemon(void **state)
{
	static const struct route routes[] = {
		PING, VERSION("1.41"),
		{ "GET", "/v1.41/info", 200, "{\"ID\":\"x\",\"Runtimes\":{\"runc\":{\"path\":\"runc\"}}}", false, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	struct docker *dk = open_fake(f);
	json_auto *info = NULL;

	(void)state;
	assert_string_equal(docker_api_version(dk), "1.41");
	assert_int_equal(docker_info(dk, &info), 0);
	assert_string_equal(json_string_value(json_object_get(info, "ID")), "x");
	assert_int_equal(docker_has_runtime(dk, "runc", NULL), 1);
	assert_int_equal(docker_has_runtime(dk, "runc", "/usr/sbin/runc"), 0);
	assert_int_equal(docker_has_runtime(dk, "dmigrate", NULL), 0);
	assert_true(fake_seen(f, "GET /_ping") == 0);
	assert_true(fake_seen(f, "GET /version") == 1);
	assert_true(fake_seen(f, "GET /v1.41/info") == 2);
	_cleanup_free_ char *host = fake_host(f);
	assert_string_equal(docker_host(dk), host);
	docker_close(dk);
	fake_stop(f);
}

static void test_negotiate_newer_daemon(void **state)
{
	static const struct route routes[] = {
		PING, VERSION("1.50"),
		{ "GET", "/v" DOCKER_API_VERSION "/info", 200, "{}", false, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	struct docker *dk = open_fake(f);
	json_auto *info = NULL;

	(void)state;
	assert_string_equal(docker_api_version(dk), DOCKER_API_VERSION);
	assert_int_equal(docker_info(dk, &info), 0);
	assert_true(fake_seen(f, "GET /v" DOCKER_API_VERSION "/info") >= 0);
	docker_close(dk);
	fake_stop(f);
}

static void test_negotiate_refused(void **state)
{
	static const struct route routes[] = {
		PING,
		{ "GET", "/version", 200, "{\"ApiVersion\":\"1.52\",\"MinAPIVersion\":\"1.50\",\"Version\":\"31.0\"}", false, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	_cleanup_free_ char *host = fake_host(f);
	struct docker *dk = NULL;

	(void)state;
	assert_int_equal(docker_open(host, &dk), -EPROTONOSUPPORT);
	assert_null(dk);
	assert_non_null(strstr(dm_last_error(), "needs API 1.50 or newer"));
	fake_stop(f);
}

static void test_status_mapping(void **state)
{
	static const struct route routes[] = {
		PING, VERSION("1.41"),
		{ "GET", "/v1.41/containers/web1/json", 404, "{\"message\":\"No such container: web1\"}", false, 0 },
		{ "POST", "/v1.41/containers/create?name=web1", 409,
		  "{\"message\":\"Conflict. The container name \\\"/web1\\\" is already in use\"}", false, 0 },
		{ "POST", "/v1.41/containers/web2/start", 500,
		  "{\"message\":\"OCI runtime create failed: no such runtime\"}", true, 0 },
		{ "POST", "/v1.41/containers/web3/kill?signal=SIGTERM", 409,
		  "{\"message\":\"Container web3 is not running\"}", false, 0 },
		{ "GET", "/v1.41/images/nosuch:1/json", 404, "{\"message\":\"No such image: nosuch:1\"}", false, 0 },
		{ "GET", "/v1.41/networks/front", 404, "{\"message\":\"network front not found\"}", false, 0 },
		{ "GET", "/v1.41/networks/back", 200, "{\"Name\":\"back\",\"IPAM\":{\"Config\":[{\"Subnet\":\"10.2.0.0/24\"}]}}", false, 0 },
		{ "POST", "/v1.41/containers/web4/start", 502, "Bad Gateway\n", false, 0 },
		{ "POST", "/v1.41/containers/web5/start", 304, "", false, 0 },
		{ "POST", "/v1.41/containers/web5/stop?t=3", 304, "", false, 0 },
		{ "DELETE", "/v1.41/containers/web5?force=1&v=0", 204, "", false, 0 },
		{ "POST", "/v1.41/containers/web5/wait?condition=not-running", 200, "{\"StatusCode\":137}", false, 0 },
		{ "POST", "/v1.41/containers/web6/wait?condition=not-running", 404,
		  "{\"message\":\"No such container: web6\"}", false, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	struct docker *dk = open_fake(f);
	json_auto *j = NULL;
	json_auto *body = json_pack("{s:s, s:{}}", "Image", "x", "HostConfig");
	char *id = NULL;
	long status;

	(void)state;
	assert_int_equal(docker_inspect(dk, "web1", &j), -ENOENT);
	assert_null(j);
	assert_non_null(strstr(dm_last_error(), "container 'web1'"));
	assert_non_null(strstr(dm_last_error(), "No such container: web1"));

	assert_int_equal(docker_create(dk, "web1", body, &id), -EEXIST);
	assert_null(id);
	assert_non_null(strstr(dm_last_error(), "is already in use"));

	assert_int_equal(docker_start(dk, "web2"), -EIO);
	assert_non_null(strstr(dm_last_error(), "container 'web2'"));
	assert_non_null(strstr(dm_last_error(), "OCI runtime create failed: no such runtime"));

	assert_int_equal(docker_kill(dk, "web3", "SIGTERM"), -EBUSY);
	assert_non_null(strstr(dm_last_error(), "Container web3 is not running"));

	assert_int_equal(docker_image_inspect(dk, "nosuch:1", &j), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "No such image: nosuch:1"));

	assert_int_equal(docker_network_inspect(dk, "front", &j), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "network 'front': network front not found"));
	assert_int_equal(docker_network_inspect(dk, "back", &j), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(j, "IPAM"), "Config"), 0), "Subnet")), "10.2.0.0/24");
	json_decref(j);
	j = NULL;

	/* not JSON: the text itself */
	assert_int_equal(docker_start(dk, "web4"), -EIO);
	assert_non_null(strstr(dm_last_error(), "Bad Gateway"));
	assert_non_null(strstr(dm_last_error(), "HTTP 502"));

	/* already running / already stopped are not errors */
	assert_int_equal(docker_start(dk, "web5"), 0);
	assert_int_equal(docker_stop(dk, "web5", 3), 0);
	assert_int_equal(docker_remove(dk, "web5", true, false), 0);

	/* the wait for a stop is one request, answered when it stopped */
	assert_int_equal(docker_wait_stopped(dk, "web5", 5), 0);
	assert_int_equal(docker_wait_stopped(dk, "web6", 5), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "No such container: web6"));

	/* docker_request leaves the status to its caller */
	assert_int_equal(docker_request(dk, "GET", "/containers/web1/json", NULL, &status, &j), 0);
	assert_int_equal(status, 404);
	assert_string_equal(json_string_value(json_object_get(j, "message")), "No such container: web1");

	/* what cannot go into a path is refused before anything is sent */
	size_t before = f->n_req;
	assert_int_equal(docker_inspect(dk, "../info", &j), -EINVAL);
	assert_int_equal(docker_inspect(dk, "a/../../info", &j), -EINVAL);
	assert_int_equal(docker_inspect(dk, "web 1", &j), -EINVAL);
	assert_int_equal(f->n_req, before);
	docker_close(dk);
	fake_stop(f);
}

static const char inspect_reply[] =
	"{\"Id\":\"0123456789abcdef\",\"Name\":\"/web1\",\"Image\":\"sha256:aa\","
	"\"State\":{\"Status\":\"running\",\"Running\":true,\"Pid\":42},\"Config\":{},\"HostConfig\":{}}";

static void test_chunked_reply(void **state)
{
	static const struct route routes[] = {
		PING, VERSION("1.41"),
		{ "GET", "/v1.41/containers/web1/json", 200, inspect_reply, true, 0 },
		{ "POST", "/v1.41/containers/web1/update", 200, "{\"Warnings\":[]}", true, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	struct docker *dk = open_fake(f);
	json_auto *j = NULL;
	json_auto *policy = json_pack("{s:s, s:i}", "Name", "on-failure", "MaximumRetryCount", 3);

	(void)state;
	assert_int_equal(docker_inspect(dk, "web1", &j), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "State"), "Pid")), 42);
	/* twice: the connection is reused after a chunked reply */
	json_decref(j);
	j = NULL;
	assert_int_equal(docker_inspect(dk, "web1", &j), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "State"), "Status")), "running");

	assert_int_equal(docker_update_restart_policy(dk, "web1", policy), 0);
	int i = fake_seen(f, "POST /v1.41/containers/web1/update");
	assert_true(i >= 0);
	json_auto *sent = json_loads(f->body[i], 0, NULL);
	assert_true(json_equal(json_object_get(sent, "RestartPolicy"), policy));
	docker_close(dk);
	fake_stop(f);
}

static void test_not_there(void **state)
{
	char dir[] = "/tmp/dm-unit-docker.XXXXXX";
	struct docker *dk = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *gone = xasprintf("unix://%s/nosuch.sock", dir);
	assert_int_equal(docker_open(gone, &dk), -ENOENT);
	assert_null(dk);
	assert_non_null(strstr(dm_last_error(), "cannot reach dockerd at unix:///tmp/dm-unit-docker."));
	assert_non_null(strstr(dm_last_error(), "nosuch.sock: No such file or directory"));

	/* a socket nobody listens on */
	_cleanup_free_ char *path = xasprintf("%s/dead.sock", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	_cleanup_free_ char *dead = xasprintf("unix://%s", path);
	assert_int_equal(docker_open(dead, &dk), -ECONNREFUSED);
	assert_non_null(strstr(dm_last_error(), "cannot reach dockerd at unix://"));
	assert_non_null(strstr(dm_last_error(), "dead.sock: Connection refused"));
	unlink(path);
	rmdir(dir);

	/* $DOCKER_HOST when no host is given; what we do not speak */
	setenv("DOCKER_HOST", gone, 1);
	assert_int_equal(docker_open(NULL, &dk), -ENOENT);
	assert_non_null(strstr(dm_last_error(), gone));
	unsetenv("DOCKER_HOST");
	assert_int_equal(docker_open("ssh://user@host", &dk), -ENOTSUP);
	assert_non_null(strstr(dm_last_error(), "unix:///PATH or tcp://HOST:PORT"));
	/* tcp:// without TLS; a closed port of this host */
	assert_int_equal(docker_open("tcp://127.0.0.1:1", &dk), -ECONNREFUSED);
	assert_non_null(strstr(dm_last_error(), "cannot reach dockerd at tcp://127.0.0.1:1: "));
	setenv("DOCKER_TLS_VERIFY", "1", 1);
	assert_int_equal(docker_open("tcp://127.0.0.1:1", &dk), -ENOTSUP);
	assert_non_null(strstr(dm_last_error(), "TLS (DOCKER_TLS_VERIFY) is not supported"));
	unsetenv("DOCKER_TLS_VERIFY");
}

#define IMG_BYTES ((size_t)5 << 20 | 12345)

static void test_image_streams(void **state)
{
	static const struct route routes[] = {
		PING, VERSION("1.41"),
		{ "GET", "/v1.41/images/sha256:aa/get", 200, NULL, false, IMG_BYTES },
		{ "GET", "/v1.41/images/nosuch/get", 404, "{\"message\":\"reference does not exist\"}", false, 0 },
		{ "POST", "/v1.41/images/load?quiet=1", 200, "{\"stream\":\"Loaded image ID: sha256:aa\\n\"}\n", true, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	struct docker *dk = open_fake(f);
	int fd = memfd_create("img", MFD_CLOEXEC);
	struct stat st;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(docker_image_save(dk, "sha256:aa", fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((size_t)st.st_size, IMG_BYTES);
	unsigned char *m = mmap(NULL, IMG_BYTES, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	for (size_t off = 0; off < IMG_BYTES; off += BLK)
		if (memcmp(m + off, PAT + off % 251, MIN((size_t)BLK, IMG_BYTES - off)))
			fail_msg("the saved image differs in its bytes %zu..%zu", off, off + BLK);
	munmap(m, IMG_BYTES);

	/* the error reply of a save is not written to the image */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(docker_image_save(dk, "nosuch", fd), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "image 'nosuch'"));
	assert_non_null(strstr(dm_last_error(), "reference does not exist"));
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);
	close(fd);

	/* a reader that is gone: EPIPE, not SIGPIPE (nothing here ignores it) */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	assert_int_equal(docker_image_save(dk, "sha256:aa", p[1]), -EPIPE);
	assert_non_null(strstr(dm_last_error(), "writing the reply: Broken pipe"));
	sigset_t pend;
	sigpending(&pend);
	assert_false(sigismember(&pend, SIGPIPE));
	close(p[1]);

	/* load: the same bytes go up, chunked */
	fd = memfd_create("img", MFD_CLOEXEC);
	for (size_t off = 0; off < IMG_BYTES; off += BLK)
		assert_int_equal(write_all(fd, PAT + off % 251, MIN((size_t)BLK, IMG_BYTES - off)), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(docker_image_load(dk, fd), 0);
	assert_int_equal(f->upload_len, IMG_BYTES);
	assert_true(f->upload_ok);
	close(fd);
	docker_close(dk);
	fake_stop(f);
}

static void test_image_load_error(void **state)
{
	static const struct route routes[] = {
		PING, VERSION("1.41"),
		/* dockerd answers 200, then says in its stream what went wrong */
		{ "POST", "/v1.41/images/load?quiet=1", 200,
		  "{\"stream\":\"Loading layer\"}\r\n{\"errorDetail\":{\"message\":\"unexpected EOF\"},"
		  "\"error\":\"unexpected EOF\"}\r\n", false, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	struct docker *dk = open_fake(f);
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write_all(p[1], "not a tar", 9), 0);
	close(p[1]);
	assert_int_equal(docker_image_load(dk, p[0]), -EIO);
	assert_non_null(strstr(dm_last_error(), "cannot load images"));
	assert_non_null(strstr(dm_last_error(), "unexpected EOF"));
	close(p[0]);
	docker_close(dk);
	fake_stop(f);
}

/* Before API 1.44 create takes one network: the others are connected after. */
static void test_create_networks_old_api(void **state)
{
	static const struct route routes[] = {
		PING, VERSION("1.41"),
		{ "POST", "/v1.41/containers/create?name=web1", 201, "{\"Id\":\"abc123\",\"Warnings\":[]}", false, 0 },
		{ "POST", "/v1.41/networks/back/connect", 200, "", false, 0 },
		{ "POST", "/v1.41/containers/create?name=web2", 201, "{\"Id\":\"def456\",\"Warnings\":[]}", false, 0 },
		{ "POST", "/v1.41/networks/gone/connect", 404, "{\"message\":\"network gone not found\"}", false, 0 },
		{ "DELETE", "/v1.41/containers/def456?force=1&v=1", 204, "", false, 0 },
	};
	struct fake *f = fake_start(routes, ARRAY_SIZE(routes));
	struct docker *dk = open_fake(f);
	json_auto *body = json_pack(
		"{s:s, s:{s:s}, s:{s:{s:{s:{s:s}, s:s}, s:{s:{s:s}}}}}",
		"Image", "sha256:aa", "HostConfig", "NetworkMode", "front",
		"NetworkingConfig", "EndpointsConfig",
		"front", "IPAMConfig", "IPv4Address", "10.1.0.5", "MacAddress", "02:42:0a:01:00:05",
		"back", "IPAMConfig", "IPv4Address", "10.2.0.5");
	char *id = NULL;

	(void)state;
	assert_int_equal(docker_create(dk, "web1", body, &id), 0);
	assert_string_equal(id, "abc123");
	free(id);
	id = NULL;
	int i = fake_seen(f, "POST /v1.41/containers/create?name=web1");
	assert_true(i >= 0);
	json_auto *sent = json_loads(f->body[i], 0, NULL);
	json_t *eps = json_object_get(json_object_get(sent, "NetworkingConfig"), "EndpointsConfig");
	assert_int_equal(json_object_size(eps), 1);
	assert_non_null(json_object_get(eps, "front"));
	/* no MacAddress added to the Config part: the copy's must be the original's */
	assert_null(json_object_get(sent, "MacAddress"));
	i = fake_seen(f, "POST /v1.41/networks/back/connect");
	assert_true(i >= 0);
	json_auto *conn = json_loads(f->body[i], 0, NULL);
	assert_string_equal(json_string_value(json_object_get(conn, "Container")), "abc123");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		json_object_get(conn, "EndpointConfig"), "IPAMConfig"), "IPv4Address")), "10.2.0.5");

	/* a network that cannot be joined: the container goes again */
	json_t *e2 = json_object_get(json_object_get(body, "NetworkingConfig"), "EndpointsConfig");
	json_object_set_new(e2, "gone", json_object());
	json_object_del(e2, "back");
	assert_int_equal(docker_create(dk, "web2", body, &id), -ENOENT);
	assert_null(id);
	assert_non_null(strstr(dm_last_error(), "network 'gone'"));
	assert_non_null(strstr(dm_last_error(), "network gone not found"));
	assert_true(fake_seen(f, "DELETE /v1.41/containers/def456?force=1&v=1") >= 0);
	docker_close(dk);
	fake_stop(f);
}

/* ------------------------------------------------------------ pure */

static json_t *load_inspect(void)
{
	json_error_t je;
	json_t *j = json_load_file(DM_UNIT_DATA "/docker/web1-inspect.json", 0, &je);
	if (!j)
		fail_msg("%s", je.text);
	return j;
}

static const char *sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Every key of want is in got with the same value, except those in skip. */
static void assert_same_keys(json_t *want, json_t *got, const char *const *skip, const char *what)
{
	const char *k;
	json_t *v;

	json_object_foreach(want, k, v) {
		bool skipped = false;
		for (const char *const *s = skip; *s; s++)
			skipped |= !strcmp(*s, k);
		if (skipped)
			continue;
		if (!json_equal(v, json_object_get(got, k))) {
			_cleanup_free_ char *a = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			_cleanup_free_ char *b = json_dumps(json_object_get(got, k), JSON_COMPACT | JSON_ENCODE_ANY);
			fail_msg("%s.%s: %s, not %s", what, k, b ? b : "(none)", a);
		}
	}
}

static void test_create_body(void **state)
{
	json_auto *in = load_inspect();
	json_auto *body = docker_create_body(in, "dmigrate");
	json_t *c, *h, *ep;
	static const char *const cfg_skip[] = { "Image", NULL };
	static const char *const hc_skip[] = { "Runtime", "ContainerIDFile", NULL };
	static const char *const body_skip[] = { "Image", "HostConfig", "NetworkingConfig", NULL };

	(void)state;
	assert_non_null(body);
	/* only what create takes: Config's fields, HostConfig, NetworkingConfig */
	assert_int_equal(json_object_size(body), json_object_size(json_object_get(in, "Config")) + 2);
	c = body;
	h = json_object_get(body, "HostConfig");
	assert_same_keys(json_object_get(in, "Config"), c, cfg_skip, "Config");
	assert_same_keys(c, json_object_get(in, "Config"), body_skip, "body");
	assert_same_keys(json_object_get(in, "HostConfig"), h, hc_skip, "HostConfig");
	/* spot checks of what the capture set on the command line */
	assert_string_equal(sget(c, "Image"), sget(in, "Image"));
	assert_string_equal(sget(c, "WorkingDir"), "/data");
	assert_string_equal(sget(c, "StopSignal"), "SIGINT");
	assert_string_equal(sget(c, "Hostname"), "web1host");
	assert_string_equal(sget(json_object_get(c, "Labels"), "app"), "web");
	assert_string_equal(sget(h, "Runtime"), "dmigrate");
	assert_null(json_object_get(h, "ContainerIDFile"));
	assert_string_equal(sget(json_object_get(h, "RestartPolicy"), "Name"), "on-failure");
	assert_string_equal(sget(json_object_get(h, "Tmpfs"), "/run"), "size=1m");
	assert_int_equal(json_integer_value(json_object_get(h, "Memory")), 64 << 20);
	assert_string_equal(json_string_value(json_array_get(json_object_get(h, "Binds"), 0)),
			    "/tmp/dkapi/bindsrc:/bind:ro");
	/* the user-defined network: the same address, aliases but the source's ID */
	ep = json_object_get(json_object_get(json_object_get(body, "NetworkingConfig"), "EndpointsConfig"), "dmnet");
	assert_non_null(ep);
	assert_string_equal(sget(json_object_get(ep, "IPAMConfig"), "IPv4Address"), "172.30.0.10");
	assert_string_equal(sget(ep, "MacAddress"), "02:42:ac:1e:00:0a");
	json_t *al = json_object_get(ep, "Aliases");
	assert_int_equal(json_array_size(al), 2);
	assert_string_equal(json_string_value(json_array_get(al, 0)), "webalias");
	assert_string_equal(json_string_value(json_array_get(al, 1)), "web1host");
	assert_null(json_object_get(ep, "NetworkID"));
	assert_null(json_object_get(ep, "EndpointID"));
	assert_null(json_object_get(ep, "Gateway"));

	/* the inspected runtime when none is given */
	json_auto *b2 = docker_create_body(in, NULL);
	assert_string_equal(sget(json_object_get(b2, "HostConfig"), "Runtime"), "runc");
	/* not an inspect */
	json_auto *junk = json_pack("{s:s}", "Id", "x");
	assert_null(docker_create_body(junk, "dmigrate"));
}

static void test_create_body_default_bridge(void **state)
{
	json_auto *in = load_inspect();
	json_t *ns = json_object_get(in, "NetworkSettings");
	json_t *net = json_deep_copy(json_object_get(json_object_get(ns, "Networks"), "dmnet"));

	(void)state;
	json_object_set_new(net, "IPAMConfig", json_null());
	json_object_set_new(net, "IPAddress", json_string("172.17.0.2"));
	json_object_set_new(ns, "Networks", json_pack("{s:o}", "bridge", net));
	json_object_set_new(json_object_get(in, "HostConfig"), "NetworkMode", json_string("default"));
	json_auto *body = docker_create_body(in, "dmigrate");
	json_t *eps = json_object_get(json_object_get(body, "NetworkingConfig"), "EndpointsConfig");
	json_t *ep = json_object_get(eps, "bridge");
	assert_non_null(ep);
	/* the default bridge takes neither a fixed address nor aliases */
	assert_int_equal(json_object_size(ep), 0);

	/* the host's network: its hostname is the source host's */
	json_object_set_new(json_object_get(in, "HostConfig"), "NetworkMode", json_string("host"));
	json_auto *hb = docker_create_body(in, "dmigrate");
	assert_null(json_object_get(hb, "Hostname"));
	assert_null(json_object_get(hb, "NetworkingConfig"));
}

static void test_ctr_parse(void **state)
{
	json_auto *in = load_inspect();
	struct docker_ctr c;

	(void)state;
	assert_int_equal(docker_ctr_parse(in, &c), 0);
	assert_string_equal(c.id, "a2b3797233a1197bd24d0482a1a1375b12a7acdea160a0345dd51acdf1c2b536");
	assert_string_equal(c.name, "web1");
	assert_string_equal(c.image, "sha256:072b1dc4a787aaa7fcd40f448c88ba41d860199e1cb8e07e1c5ac92356141893");
	assert_int_equal(c.pid, 16776);
	assert_true(c.running);
	assert_false(c.paused);
	assert_string_equal(c.upperdir, "/tmp/dkapi/data/overlay2/bc505fe6bbce5207aab51b92bdd64a24ecb2410c79c380c1cbe15b23d55dbfe6/diff");
	assert_non_null(strstr(c.lowerdir, "-init/diff:"));
	assert_int_equal(c.n_binds, 1);
	assert_string_equal(c.binds[0], "/tmp/dkapi/bindsrc");
	assert_int_equal(c.n_volumes, 1);
	assert_string_equal(c.volumes[0], "vol1");
	docker_ctr_free(&c);

	/* another storage driver: no upper dir */
	json_object_set_new(json_object_get(in, "GraphDriver"), "Name", json_string("btrfs"));
	assert_int_equal(docker_ctr_parse(in, &c), 0);
	assert_null(c.upperdir);
	docker_ctr_free(&c);

	json_object_del(in, "Id");
	assert_int_equal(docker_ctr_parse(in, &c), -EBADMSG);
	json_auto *bad = json_pack("{s:s, s:s, s:s, s:{s:s}}", "Id", "x", "Name", "/x", "Image", "i",
				   "State", "Pid", "12");
	assert_int_equal(docker_ctr_parse(bad, &c), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "State.Pid"));
}

/* ------------------------------------------------------------ setup's merge */

static void test_config_merge(void **state)
{
	json_auto *cfg = json_object();

	(void)state;
	assert_int_equal(docker_config_add_runtime(cfg, "dmigrate", "/usr/sbin/dmigrate-runc"), DOCKER_CFG_ADDED);
	assert_int_equal(docker_config_add_runtime(cfg, "dmigrate", "/usr/sbin/dmigrate-runc"), DOCKER_CFG_SAME);
	json_auto *other = json_loads("{\"log-driver\":\"journald\",\"runtimes\":{\"crun\":{\"path\":\"/usr/bin/crun\"},"
				      "\"dmigrate\":{\"path\":\"/old\",\"runtimeArgs\":[\"--debug\"]}}}", 0, NULL);
	assert_int_equal(docker_config_add_runtime(other, "dmigrate", "/new"), DOCKER_CFG_UPDATED);
	json_auto *want = json_loads("{\"log-driver\":\"journald\",\"runtimes\":{\"crun\":{\"path\":\"/usr/bin/crun\"},"
				     "\"dmigrate\":{\"path\":\"/new\",\"runtimeArgs\":[\"--debug\"]}}}", 0, NULL);
	assert_true(json_equal(other, want));
	json_auto *bad = json_loads("{\"runtimes\":[]}", 0, NULL);
	assert_int_equal(docker_config_add_runtime(bad, "dmigrate", "/x"), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "\"runtimes\" is not a JSON object"));
}

static void test_config_file(void **state)
{
	char dir[] = "/tmp/dm-unit-docker.XXXXXX";
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* missing: made, with its directory */
	_cleanup_free_ char *f1 = xasprintf("%s/etc/docker/daemon.json", dir);
	assert_int_equal(docker_config_file_add_runtime(f1, "dmigrate", "/x/dmigrate-runc"), DOCKER_CFG_ADDED);
	json_auto *j1 = json_load_file(f1, 0, NULL);
	assert_string_equal(sget(json_object_get(json_object_get(j1, "runtimes"), "dmigrate"), "path"),
			    "/x/dmigrate-runc");
	assert_int_equal(stat(f1, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(docker_config_file_add_runtime(f1, "dmigrate", "/x/dmigrate-runc"), DOCKER_CFG_SAME);

	/* other keys and the file's mode are kept */
	_cleanup_free_ char *f2 = xasprintf("%s/d2.json", dir);
	int fd = open(f2, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	const char *text = "{\n  \"debug\": true,\n  \"storage-driver\": \"overlay2\"\n}\n";
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
	assert_int_equal(docker_config_file_add_runtime(f2, "dmigrate", "/y"), DOCKER_CFG_ADDED);
	json_auto *j2 = json_load_file(f2, 0, NULL);
	assert_true(json_is_true(json_object_get(j2, "debug")));
	assert_string_equal(sget(j2, "storage-driver"), "overlay2");
	assert_int_equal(stat(f2, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* a symlink stays one, its target changes */
	_cleanup_free_ char *link = xasprintf("%s/link.json", dir);
	assert_int_equal(symlink("d2.json", link), 0);
	assert_int_equal(docker_config_file_add_runtime(link, "dmigrate", "/z"), DOCKER_CFG_UPDATED);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	json_auto *j3 = json_load_file(f2, 0, NULL);
	assert_string_equal(sget(json_object_get(json_object_get(j3, "runtimes"), "dmigrate"), "path"), "/z");

	/* not JSON: named with its line; the file is left alone */
	_cleanup_free_ char *f3 = xasprintf("%s/d3.json", dir);
	fd = open(f3, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	text = "{\n  \"debug\": true,\n  \"x\": ,\n}\n";
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
	assert_int_equal(docker_config_file_add_runtime(f3, "dmigrate", "/y"), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), f3));
	assert_non_null(strstr(dm_last_error(), "line 3"));
	_cleanup_free_ char *after = NULL;
	assert_int_equal(read_full_file(f3, 4096, &after, NULL), 0);
	assert_string_equal(after, text);
	_cleanup_free_ char *cmd = xasprintf("rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}


/* ------------------------------------------------------------ a real dockerd */

/*
 * A private dockerd (own data root, exec root, socket, config file and
 * cgroup parent) in its own network and mount namespaces: its bridges,
 * port proxies and overlay mounts vanish with it.  Skipped without dockerd,
 * the docker CLI (to make the original container as a user would) or root.
 */
struct live {
	char dir[64], host[128], cgparent[64];
	pid_t pid;
	struct docker *dk;
};

static bool in_path(const char *prog)
{
	_cleanup_free_ char *cmd = xasprintf("command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static int sh(const char *fmt, ...) _printf_(1, 2);
static int sh(const char *fmt, ...)
{
	_cleanup_free_ char *cmd = NULL;
	va_list ap;
	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) >= 0);
	va_end(ap);
	int r = system(cmd);
	if (r != 0)
		print_message("command failed (%d): %s\n", r, cmd);
	return r;
}

static int live_setup(void **state)
{
	struct live *l;

	/*
	 * Once per suite: the sanitizer build runs the same client code against
	 * the fake dockerd above; a second dockerd start there would only add
	 * its 10-20 s to the suite.
	 */
#ifdef __SANITIZE_ADDRESS__
	const bool sanitized = true;
#else
	const bool sanitized = false;
#endif
	if (sanitized || geteuid() != 0 || !in_path("dockerd") || !in_path("docker") || !in_path("busybox")) {
		*state = NULL;
		return 0;
	}
	l = xcalloc(1, sizeof(*l));
	strcpy(l->dir, "/tmp/dm-unit-dockerd.XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	snprintf(l->host, sizeof(l->host), "unix://%s/d.sock", l->dir);
	snprintf(l->cgparent, sizeof(l->cgparent), "dm-unit-docker-%d", (int)getpid());
	assert_int_equal(sh("echo '{}' > %s/daemon.json", l->dir), 0);
	l->pid = fork();
	assert_true(l->pid >= 0);
	if (l->pid == 0) {
		char log[160], data[160], exec_root[160], sock[160], pidf[160], cfg[160], cgp[160];
		snprintf(log, sizeof(log), "%s/dockerd.log", l->dir);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		setsid();
		if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(127);
		snprintf(data, sizeof(data), "--data-root=%s/data", l->dir);
		snprintf(exec_root, sizeof(exec_root), "--exec-root=%s/exec", l->dir);
		snprintf(sock, sizeof(sock), "--host=%s", l->host);
		snprintf(pidf, sizeof(pidf), "--pidfile=%s/pid", l->dir);
		snprintf(cfg, sizeof(cfg), "--config-file=%s/daemon.json", l->dir);
		snprintf(cgp, sizeof(cgp), "--cgroup-parent=%s", l->cgparent);
		execlp("sh", "sh", "-c", "ip link set lo up && exec dockerd \"$@\"", "sh", data, exec_root, sock,
		       pidf, cfg, cgp, "--bridge=none", "--iptables=false", "--ip6tables=false", (char *)NULL);
		_exit(127);
	}
	/* a first start makes its data root: give it time, bounded */
	for (int i = 0; i < 600; i++) {
		if (docker_open(l->host, &l->dk) == 0)
			break;
		if (waitpid(l->pid, NULL, WNOHANG) == l->pid) {
			sh("cat %s/dockerd.log >&2", l->dir);
			fail_msg("dockerd exited");
		}
		usleep(100 * 1000);
	}
	assert_non_null(l->dk);
	*state = l;
	return 0;
}

static int live_teardown(void **state)
{
	struct live *l = *state;

	if (!l)
		return 0;
	/* containers first: dockerd would wait for them on its way out */
	sh("docker -H %s rm -f -v $(docker -H %s ps -aq) >/dev/null 2>&1; true", l->host, l->host);
	docker_close(l->dk);
	kill(l->pid, SIGTERM);
	for (int i = 0; i < 300 && waitpid(l->pid, NULL, WNOHANG) != l->pid; i++)
		usleep(100 * 1000);
	kill(l->pid, SIGKILL);
	waitpid(l->pid, NULL, 0);
	sh("rm -rf %s; rmdir /sys/fs/cgroup/*/%s /sys/fs/cgroup/%s 2>/dev/null; true", l->dir, l->cgparent,
	   l->cgparent);
	free(l);
	return 0;
}

static json_t *jpath(json_t *o, const char *a, const char *b)
{
	return json_object_get(json_object_get(o, a), b);
}

static void test_live_create_like(void **state)
{
	struct live *l = *state;
	json_auto *orig = NULL, *copy = NULL, *after = NULL, *body = NULL, *img = NULL;
	struct docker_ctr c;
	_cleanup_free_ char *id = NULL;
	static const char *const cfg_skip[] = { "Image", NULL };
	static const char *const none[] = { NULL };

	if (!l)
		skip();
	const char *H = l->host, *D = l->dir;
	assert_int_equal(sh("mkdir -p %s/rootfs/bin %s/rootfs/data %s/bindsrc && cp \"$(command -v busybox)\" %s/rootfs/bin/ "
			    "&& ln -s busybox %s/rootfs/bin/sh && ln -s busybox %s/rootfs/bin/sleep "
			    "&& tar -C %s/rootfs -c . | docker -H %s import -c 'CMD [\"/bin/sleep\",\"1000\"]' - "
			    "dmunit/busybox:1 >/dev/null", D, D, D, D, D, D, D, H), 0);
	assert_int_equal(sh("docker -H %s network create --subnet 10.213.57.0/24 dmunitnet >/dev/null", H), 0);
	assert_int_equal(sh("docker -H %s run -d --name orig --network dmunitnet --ip 10.213.57.10 "
			    "--network-alias webalias -e FOO=bar -l app=web -w /data -u 0:0 -p 80 --expose 90 "
			    "--restart on-failure:3 --memory 64m --cpu-shares 512 --pids-limit 100 "
			    "--cap-add NET_ADMIN --cap-drop MKNOD --security-opt no-new-privileges "
			    "--tmpfs /run:size=1m -v %s/bindsrc:/bind:ro -v dmunitvol:/vol --mount type=tmpfs,dst=/tmp2 "
			    "--stop-signal SIGINT --stop-timeout 7 --health-cmd true --health-interval 30s "
			    "--hostname web1host --log-opt max-size=1m --entrypoint /bin/sh dmunit/busybox:1 "
			    "-c 'sleep 1000' >/dev/null", H, D), 0);

	/* a second network: before API 1.44 the copy joins it after create */
	assert_int_equal(sh("docker -H %s network create --subnet 10.213.58.0/24 dmunitback >/dev/null && "
			    "docker -H %s network connect --ip 10.213.58.10 --alias back1 dmunitback orig", H, H), 0);
	assert_ok(docker_inspect(l->dk, "orig", &orig));
	assert_ok(docker_ctr_parse(orig, &c));
	assert_true(c.running);
	assert_true(c.pid > 0);
	assert_string_equal(c.name, "orig");
	assert_non_null(c.upperdir);
	assert_int_equal(c.n_binds, 1);
	assert_int_equal(c.n_volumes, 1);
	assert_string_equal(c.volumes[0], "dmunitvol");
	docker_ctr_free(&c);
	json_auto *net = NULL;
	assert_ok(docker_network_inspect(l->dk, "dmunitnet", &net));
	assert_string_equal(json_string_value(json_object_get(json_array_get(jpath(net, "IPAM", "Config"), 0),
							      "Subnet")), "10.213.57.0/24");
	assert_ok(docker_image_inspect(l->dk, "dmunit/busybox:1", &img));
	assert_string_equal(json_string_value(json_object_get(img, "Id")),
			    json_string_value(json_object_get(orig, "Image")));

	/* the original stops (its address is free again), the copy is made */
	body = docker_create_body(orig, "runc");
	assert_non_null(body);
	assert_ok(docker_stop(l->dk, "orig", 0));
	assert_ok(docker_wait_stopped(l->dk, "orig", 30));
	assert_ok(docker_create(l->dk, "copy", body, &id));
	assert_int_equal(docker_create(l->dk, "copy", body, &id), -EEXIST);
	assert_ok(docker_inspect(l->dk, id, &copy));
	assert_same_keys(json_object_get(orig, "Config"), json_object_get(copy, "Config"), cfg_skip, "Config");
	assert_same_keys(json_object_get(copy, "Config"), json_object_get(orig, "Config"), cfg_skip, "Config");
	assert_string_equal(json_string_value(jpath(copy, "Config", "Image")),
			    json_string_value(json_object_get(orig, "Image")));
	assert_same_keys(json_object_get(orig, "HostConfig"), json_object_get(copy, "HostConfig"), none, "HostConfig");
	assert_same_keys(json_object_get(copy, "HostConfig"), json_object_get(orig, "HostConfig"), none, "HostConfig");
	/* the same mounts (dockerd lists them in no fixed order) */
	json_t *m1 = json_object_get(orig, "Mounts"), *m2 = json_object_get(copy, "Mounts"), *m, *mm;
	size_t i, k;
	assert_int_equal(json_array_size(m1), json_array_size(m2));
	json_array_foreach(m1, i, m) {
		bool found = false;
		json_array_foreach(m2, k, mm)
			found |= json_equal(m, mm);
		if (!found) {
			_cleanup_free_ char *a = json_dumps(m1, JSON_COMPACT), *b = json_dumps(m2, JSON_COMPACT);
			fail_msg("mounts differ: %s vs %s", a, b);
		}
	}

	/* it runs with the same address, MAC and aliases on the user-defined network */
	assert_ok(docker_start(l->dk, id));	/* answered once it runs */
	assert_ok(docker_inspect(l->dk, id, &after));
	static const char *const nets[][3] = { { "dmunitnet", "10.213.57.10", "webalias" },
					       { "dmunitback", "10.213.58.10", "back1" } };
	assert_int_equal(json_object_size(jpath(after, "NetworkSettings", "Networks")), 2);
	for (size_t n = 0; n < ARRAY_SIZE(nets); n++) {
		json_t *n1 = jpath(json_object_get(orig, "NetworkSettings"), "Networks", nets[n][0]);
		json_t *n2 = jpath(json_object_get(after, "NetworkSettings"), "Networks", nets[n][0]);
		assert_non_null(n2);
		assert_string_equal(json_string_value(json_object_get(n2, "IPAddress")), nets[n][1]);
		assert_string_equal(json_string_value(json_object_get(n2, "MacAddress")),
				    json_string_value(json_object_get(n1, "MacAddress")));
		assert_true(json_equal(jpath(n1, "IPAMConfig", "IPv4Address"), jpath(n2, "IPAMConfig", "IPv4Address")));
		bool alias = false;
		json_t *a;
		json_array_foreach(json_object_get(n2, "Aliases"), i, a)
			alias |= !strcmp(json_string_value(a), nets[n][2]);
		assert_true(alias);
	}

	json_auto *policy = json_pack("{s:s, s:i}", "Name", "no", "MaximumRetryCount", 0);
	assert_ok(docker_update_restart_policy(l->dk, id, policy));
	json_decref(after);
	assert_ok(docker_inspect(l->dk, id, &after));
	assert_string_equal(json_string_value(jpath(json_object_get(after, "HostConfig"), "RestartPolicy", "Name")), "no");
	assert_ok(docker_kill(l->dk, id, "SIGKILL"));
	assert_ok(docker_wait_stopped(l->dk, id, 30));
	assert_int_equal(docker_kill(l->dk, id, "SIGKILL"), -EBUSY);
	assert_ok(docker_remove(l->dk, id, true, true));
	assert_int_equal(docker_inspect(l->dk, id, &after), -ENOENT);

	/* dockerd keeps the connection open between requests: it goes with
	 * docker_close() */
	int fds = count_fds();
	struct docker *dk2 = NULL;
	assert_ok(docker_open(l->host, &dk2));
	json_auto *info = NULL;
	assert_ok(docker_info(dk2, &info));
	assert_true(count_fds() > fds);
	docker_close(dk2);
	assert_int_equal(count_fds(), fds);

	/* the image goes out as `docker save` and back in as `docker load` */
	_cleanup_free_ char *tarp = xasprintf("%s/img.tar", D);
	int fd = open(tarp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_ok(docker_image_save(l->dk, "dmunit/busybox:1", fd));
	assert_true(lseek(fd, 0, SEEK_CUR) > 1 << 20);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_ok(docker_image_load(l->dk, fd));
	close(fd);
}


/* ---------------------------------------------------------- image tar */

struct tar_ent {
	const char *name;
	size_t size;	/* a regular file of this many bytes of its first letter */
	const char *link;	/* or a symlink to this */
};

static int tar_make(const struct tar_ent *e, size_t n)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	struct archive *w = archive_write_new();
	assert_true(fd >= 0);
	archive_write_set_format_pax_restricted(w);
	assert_int_equal(archive_write_open_fd(w, fd), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_perm(ae, 0644);
		if (e[i].link) {
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e[i].link);
		} else {
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_size(ae, (la_int64_t)e[i].size);
		}
		assert_int_equal(archive_write_header(w, ae), ARCHIVE_OK);
		if (!e[i].link && e[i].size) {
			char *b = malloc(e[i].size);
			memset(b, e[i].name[0], e[i].size);
			assert_int_equal(archive_write_data(w, b, e[i].size), (la_ssize_t)e[i].size);
			free(b);
		}
		archive_entry_free(ae);
	}
	archive_write_free(w);
	return fd;
}

/* the manifest of layers a, b, c (save's layout: layer dirs by name, the
 * manifest last) */
static int save_tar(const char *manifest, bool c_links_a)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	struct archive *w = archive_write_new();
	const struct tar_ent ents[] = {
		{ "aaa/VERSION", 3, NULL }, { "aaa/layer.tar", 1000, NULL },
		{ "bbb/VERSION", 3, NULL }, { "bbb/layer.tar", 2000, NULL },
		{ "ccc/VERSION", 3, NULL }, { "ccc/layer.tar", c_links_a ? 0 : 3000, c_links_a ? "../aaa/layer.tar" : NULL },
		{ "cfg.json", 10, NULL },
	};
	assert_true(fd >= 0);
	archive_write_set_format_pax_restricted(w);
	assert_int_equal(archive_write_open_fd(w, fd), ARCHIVE_OK);
	for (size_t i = 0; i < ARRAY_SIZE(ents) + 1; i++) {
		struct archive_entry *ae = archive_entry_new();
		bool man = i == ARRAY_SIZE(ents);
		const struct tar_ent *e = man ? NULL : &ents[i];
		size_t size = man ? strlen(manifest) : e->size;
		archive_entry_set_pathname(ae, man ? "manifest.json" : e->name);
		archive_entry_set_perm(ae, 0644);
		if (!man && e->link) {
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e->link);
		} else {
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_size(ae, (la_int64_t)size);
		}
		assert_int_equal(archive_write_header(w, ae), ARCHIVE_OK);
		if (man) {
			assert_int_equal(archive_write_data(w, manifest, size), (la_ssize_t)size);
		} else if (!e->link) {
			char *b = malloc(size);
			memset(b, e->name[0], size);
			assert_int_equal(archive_write_data(w, b, size), (la_ssize_t)size);
			free(b);
		}
		archive_entry_free(ae);
	}
	archive_write_free(w);
	return fd;
}

/* the names in a tar (with their sizes), "name:size " each; every byte of
 * a regular file checked to be its first letter */
static char *tar_list(int fd)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	char *out = xstrdup(""), buf[8192];
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_fd(a, fd, 65536), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(ae);
		la_ssize_t got;
		size_t total = 0;
		while ((got = archive_read_data(a, buf, sizeof(buf))) > 0) {
			if (strcmp(name, "manifest.json"))
				for (la_ssize_t i = 0; i < got; i++)
					assert_int_equal(buf[i], name[0]);
			total += (size_t)got;
		}
		assert_true(got == 0);
		char *n = xasprintf("%s%s:%zu ", out, name, total);
		free(out);
		out = n;
	}
	archive_read_free(a);
	return out;
}

static const char *const DIFFS3[] = { "sha256:01", "sha256:02", "sha256:03" };
#define MANIFEST3 "[{\"Config\":\"cfg.json\",\"RepoTags\":[\"x:1\"],\"Layers\":[\"aaa/layer.tar\",\"bbb/layer.tar\",\"./ccc/layer.tar\"]}]"

static void test_image_tar_skip(void **state)
{
	(void)state;
	for (size_t skip = 0; skip <= 3; skip++) {
		int in = save_tar(MANIFEST3, false);
		int out = open("/tmp", O_TMPFILE | O_RDWR, 0600);
		uint64_t skipped = 99;
		assert_ok(image_tar_without_layers(in, out, DIFFS3, 3, skip, &skipped));
		_cleanup_free_ char *l = tar_list(out);
		static const char *const want[] = {
			"aaa/VERSION:3 aaa/layer.tar:1000 bbb/VERSION:3 bbb/layer.tar:2000 ccc/VERSION:3 ccc/layer.tar:3000 cfg.json:10 manifest.json:",
			"aaa/VERSION:3 bbb/VERSION:3 bbb/layer.tar:2000 ccc/VERSION:3 ccc/layer.tar:3000 cfg.json:10 manifest.json:",
			"aaa/VERSION:3 bbb/VERSION:3 ccc/VERSION:3 ccc/layer.tar:3000 cfg.json:10 manifest.json:",
			"aaa/VERSION:3 bbb/VERSION:3 ccc/VERSION:3 cfg.json:10 manifest.json:",
		};
		static const uint64_t want_skipped[] = { 0, 1000, 3000, 6000 };
		assert_true(!strncmp(l, want[skip], strlen(want[skip])));
		assert_int_equal(skipped, want_skipped[skip]);
		close(in);
		close(out);
	}
}

/* save links a layer whose diff is one already written to that file: it
 * stays when a layer sent needs it */
static void test_image_tar_dup_diff(void **state)
{
	static const char *const diffs[] = { "sha256:01", "sha256:02", "sha256:01" };
	(void)state;
	int in = save_tar(MANIFEST3, true);
	int out = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	uint64_t skipped = 0;
	assert_ok(image_tar_without_layers(in, out, diffs, 3, 2, &skipped));
	_cleanup_free_ char *l = tar_list(out);
	assert_non_null(strstr(l, "aaa/layer.tar:1000 "));
	assert_null(strstr(l, "bbb/layer.tar"));
	assert_non_null(strstr(l, "ccc/layer.tar:0 "));
	assert_int_equal(skipped, 2000);
	close(in);
	close(out);
}

static void test_image_tar_bad(void **state)
{
	static const char *const bad[] = {
		"[]", "{}", "not json",
		"[{\"Layers\":[\"aaa/layer.tar\"]}]",	/* one layer, three expected */
		MANIFEST3 ",",
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int in = save_tar(bad[i], false), out = open("/tmp", O_TMPFILE | O_RDWR, 0600);
		uint64_t skipped;
		assert_int_equal(image_tar_without_layers(in, out, DIFFS3, 3, 1, &skipped), -EBADMSG);
		assert_non_null(strstr(dm_last_error(), "manifest.json"));
		close(in);
		close(out);
	}
	/* no manifest at all, and no tar at all */
	const struct tar_ent none[] = { { "aaa/layer.tar", 10, NULL } };
	int in = tar_make(none, 1), out = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	uint64_t skipped;
	assert_int_equal(image_tar_without_layers(in, out, DIFFS3, 3, 1, &skipped), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "no manifest.json"));
	close(in);
	in = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	assert_int_equal(write(in, "garbage that is no tar at all", 29), 29);
	assert_int_equal(image_tar_without_layers(in, out, DIFFS3, 3, 1, &skipped), -EBADMSG);
	close(in);
	close(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiate_older_daemon),
		cmocka_unit_test(test_negotiate_newer_daemon),
		cmocka_unit_test(test_negotiate_refused),
		cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_chunked_reply),
		cmocka_unit_test(test_not_there),
		cmocka_unit_test(test_image_streams),
		cmocka_unit_test(test_image_load_error),
		cmocka_unit_test(test_create_networks_old_api),
		cmocka_unit_test(test_create_body),
		cmocka_unit_test(test_create_body_default_bridge),
		cmocka_unit_test(test_ctr_parse),
		cmocka_unit_test(test_config_merge),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_image_tar_skip),
		cmocka_unit_test(test_image_tar_dup_diff),
		cmocka_unit_test(test_image_tar_bad),
		cmocka_unit_test_setup_teardown(test_live_create_like, live_setup, live_teardown),
	};
	pat_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
