/* SPDX-License-Identifier: MIT */
/*
 * The Docker Engine API client (docker.h, docs/docker.md "Talking to
 * dockerd"): libcurl over dockerd's unix socket, jansson for the bodies.
 */
#define LOG_PREFIX "docker: "
#include "container/docker.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_json_ _cleanup_(json_decrefp) /* jansson.h has it */

/* A reply kept in memory (inspect, info, errors): far below this. */
#define REPLY_MAX (16u << 20)
/* An ordinary request; stop adds its own timeout; images have none. */
#define REQUEST_TIMEOUT_S 120L
#define CONNECT_TIMEOUT_S 10L

struct docker {
	char *host;     /* as given: unix:///run/docker.sock, tcp://h:p */
	char *sock;     /* unix socket path, or NULL */
	char *base;     /* http://docker or http://h:p */
	char api[16];   /* negotiated: "1.41" */
	int api_major, api_minor;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void docker_freep(struct docker **p)
{
	docker_close(*p);
}

/* "1.41" -> 1, 41 */
static int parse_api(const char *s, int *ret_major, int *ret_minor)
{
	int a, b, n = 0;

	if (!s || sscanf(s, "%d.%d%n", &a, &b, &n) != 2 || s[n] || a < 0 || b < 0 || a > 99 || b > 999)
		return -EINVAL;
	*ret_major = a;
	*ret_minor = b;
	return 0;
}

static int api_cmp(int a1, int b1, int a2, int b2)
{
	return a1 != a2 ? (a1 < a2 ? -1 : 1) : (b1 < b2 ? -1 : b1 > b2);
}

/* What we put into a URL path: names, IDs and image references only (no
 * "..": curl would fold it and reach another endpoint). */
static int check_ref(const char *what, const char *s)
{
	if (!s || !*s || s[0] == '.' || s[0] == '/' || strstr(s, "/.") || strlen(s) > 512)
		return dm_fail(-EINVAL, "bad %s name '%s'", what, s ? s : "");
	for (const char *p = s; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
		      strchr("._-:/@+", *p)))
			return dm_fail(-EINVAL, "bad %s name '%s'", what, s);
	return 0;
}

/* ------------------------------------------------------------ transfer */

struct xfer {
	struct docker *dk;
	char *buf;              /* the reply, unless streamed to out_fd */
	size_t len, cap;
	bool too_big;
	int out_fd;             /* -1, or where a 2xx reply's body goes */
	int out_err;
	int in_fd;              /* -1, or the request body (chunked) */
	int in_err;
};

static void xfer_free(struct xfer *x)
{
	free(x->buf);
	x->buf = NULL;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (x->out_fd >= 0) {
		long code = 0;
		curl_easy_getinfo(x->dk->curl, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200 && code < 300) {
			int r = write_all(x->out_fd, ptr, n);
			if (r < 0) {
				x->out_err = r;
				return 0;
			}
			return n;
		}
	}
	if (x->len + n + 1 > REPLY_MAX) {
		x->too_big = true;
		return 0;
	}
	if (x->len + n + 1 > x->cap) {
		x->cap = MAX(x->cap * 2, x->len + n + 1);
		x->buf = xrealloc(x->buf, x->cap);
	}
	memcpy(x->buf + x->len, ptr, n);
	x->len += n;
	x->buf[x->len] = 0;
	return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	ssize_t n;

	do
		n = read(x->in_fd, buf, size * nitems);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		x->in_err = neg_errno();
		return CURL_READFUNC_ABORT;
	}
	return (size_t)n;
}

static int unreachable(struct docker *dk, CURLcode rc)
{
	const char *why = dk->errbuf[0] ? dk->errbuf : curl_easy_strerror(rc);
	long oserr = 0;
	int err = -ECONNREFUSED;

	curl_easy_getinfo(dk->curl, CURLINFO_OS_ERRNO, &oserr);
	/* over a socket file curl's text would name "docker port 80": the
	 * connect's own errno is the reason */
	if (dk->sock && oserr > 0) {
		why = strerror((int)oserr);
		if (oserr == ENOENT || oserr == EACCES || oserr == ENOTDIR)
			err = -(int)oserr;
	} else if (dk->sock && access(dk->sock, F_OK) < 0 && errno == ENOENT) {
		err = -ENOENT;
	}
	return dm_fail(err, "cannot reach dockerd at %s: %s", dk->host, why);
}

/*
 * One HTTP exchange.  versioned: under /vX.YY (all but /_ping and /version).
 * body: a JSON text (POST), or x->in_fd >= 0: a chunked upload.
 */
static int dk_call(struct docker *dk, const char *method, const char *path, bool versioned,
		   const char *body, const char *content_type, struct xfer *x, long timeout_s,
		   long *ret_status)
{
	_cleanup_free_ char *url = versioned ? xasprintf("%s/v%s%s", dk->base, dk->api, path)
					     : xasprintf("%s%s", dk->base, path);
	struct curl_slist *hdr = NULL;
	bool upload = body || x->in_fd >= 0;
	CURLcode rc;
	long code = 0;

	x->dk = dk;
	curl_easy_reset(dk->curl);
	dk->errbuf[0] = 0;
	curl_easy_setopt(dk->curl, CURLOPT_URL, url);
	if (dk->sock)
		curl_easy_setopt(dk->curl, CURLOPT_UNIX_SOCKET_PATH, dk->sock);
	curl_easy_setopt(dk->curl, CURLOPT_ERRORBUFFER, dk->errbuf);
	curl_easy_setopt(dk->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(dk->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(dk->curl, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(dk->curl, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(dk->curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(dk->curl, CURLOPT_WRITEDATA, x);
	/* no "Expect: 100-continue" round trip before a body */
	hdr = curl_slist_append(hdr, "Expect:");
	if (upload) {
		_cleanup_free_ char *ct = xasprintf("Content-Type: %s", content_type);
		hdr = curl_slist_append(hdr, ct);
		curl_easy_setopt(dk->curl, CURLOPT_POST, 1L);
		if (body) {
			curl_easy_setopt(dk->curl, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(dk->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		} else {
			hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
			curl_easy_setopt(dk->curl, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(dk->curl, CURLOPT_READDATA, x);
		}
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(dk->curl, CURLOPT_CUSTOMREQUEST, method);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(dk->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(dk->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(dk->curl, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(dk->curl, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(dk->curl, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(dk->curl, CURLOPT_HTTPHEADER, hdr);
	rc = curl_easy_perform(dk->curl);
	curl_easy_getinfo(dk->curl, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_setopt(dk->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdr);
	if (rc != CURLE_OK) {
		if (x->out_err)
			return dm_fail(x->out_err, "%s %s from dockerd at %s: writing the reply: %s", method,
				       path, dk->host, strerror(-x->out_err));
		if (x->in_err)
			return dm_fail(x->in_err, "%s %s to dockerd at %s: reading what to send: %s", method,
				       path, dk->host, strerror(-x->in_err));
		if (x->too_big)
			return dm_fail(-EFBIG, "%s %s: dockerd at %s replied more than %u MiB", method,
				       path, dk->host, REPLY_MAX >> 20);
		if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
			return unreachable(dk, rc);
		return dm_fail(rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO,
			       "%s %s: dockerd at %s: %s", method, path, dk->host,
			       dk->errbuf[0] ? dk->errbuf : curl_easy_strerror(rc));
	}
	*ret_status = code;
	return 0;
}

/* dockerd's reason in a reply: its "message", else the text itself. */
static char *reply_message(const struct xfer *x, long status)
{
	if (x->len) {
		json_t *j = json_loadb(x->buf, x->len, 0, NULL);
		const char *m = json_str(j, "message");
		if (m) {
			char *s = xstrdup(m);
			json_decref(j);
			return s;
		}
		json_decref(j);
		size_t n = x->len;
		while (n && (x->buf[n - 1] == '\n' || x->buf[n - 1] == '\r' || x->buf[n - 1] == ' '))
			n--;
		if (n)
			return xasprintf("%.*s", (int)MIN(n, (size_t)400), x->buf);
	}
	return xasprintf("HTTP status %ld", status);
}

/* An unexpected status: -ENOENT (404), conflict (409), else -EIO. */
static int _printf_(5, 6)
status_fail(struct docker *dk, const struct xfer *x, long status, int conflict, const char *fmt, ...)
{
	_cleanup_free_ char *what = NULL, *msg = reply_message(x, status);
	va_list ap;
	int err = status == 404 ? -ENOENT : status == 409 ? conflict : -EIO;

	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	return dm_fail(err, "%s: %s (dockerd at %s, HTTP %ld)", what ? what : "docker", msg, dk->host,
		       status);
}

/* A request with a JSON body (or none) whose reply is kept in x. */
static int dk_json_call(struct docker *dk, const char *method, const char *path, json_t *body,
			struct xfer *x, long timeout_s, long *ret_status)
{
	_cleanup_free_ char *text = NULL;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return dm_fail(-EINVAL, "%s %s: the request body cannot be written as JSON", method, path);
	}
	return dk_call(dk, method, path, true, text, "application/json", x, timeout_s, ret_status);
}

int docker_request(struct docker *dk, const char *method, const char *path, json_t *body,
		   long *ret_status, json_t **ret_reply)
{
	struct xfer x = { .out_fd = -1, .in_fd = -1 };
	long status = 0;
	int r;

	r = dk_json_call(dk, method, path, body, &x, REQUEST_TIMEOUT_S, &status);
	if (r < 0) {
		xfer_free(&x);
		return r;
	}
	*ret_status = status;
	*ret_reply = x.len ? json_loadb(x.buf, x.len, 0, NULL) : NULL;
	xfer_free(&x);
	return 0;
}

/* ------------------------------------------------------------ connect */

static int parse_host(struct docker *dk, const char *host)
{
	const char *tls = getenv("DOCKER_TLS_VERIFY");

	if (!strncmp(host, "unix://", 7)) {
		if (host[7] != '/')
			return dm_fail(-EINVAL, "bad docker host '%s': unix:// needs an absolute path", host);
		dk->sock = xstrdup(host + 7);
		dk->base = xstrdup("http://docker");
		return 0;
	}
	if (!strncmp(host, "tcp://", 6)) {
		const char *hp = host + 6;
		size_t n = strcspn(hp, "/");
		if (!n)
			return dm_fail(-EINVAL, "bad docker host '%s': tcp://HOST:PORT", host);
		if (tls && *tls)
			return dm_fail(-ENOTSUP, "docker host %s: TLS (DOCKER_TLS_VERIFY) is not supported: "
				       "use unix:// or tcp:// without TLS", host);
		/* the docker CLI's default port without TLS */
		bool port = memchr(hp, ':', n) && hp[n - 1] != ']';
		dk->base = xasprintf("http://%.*s%s", (int)n, hp, port ? "" : ":2375");
		return 0;
	}
	return dm_fail(-ENOTSUP, "docker host '%s' is not supported: unix:///PATH or tcp://HOST:PORT "
		       "(without TLS)", host);
}

/* GET /_ping, then GET /version: the lower of its ApiVersion and ours. */
static int negotiate(struct docker *dk)
{
	struct xfer x = { .out_fd = -1, .in_fd = -1 };
	_cleanup_json_ json_t *v = NULL;
	int our_major, our_minor, dmaj, dmin, mmaj, mmin;
	long status = 0;
	int r;

	r = dk_call(dk, "GET", "/_ping", false, NULL, NULL, &x, CONNECT_TIMEOUT_S * 3, &status);
	if (r < 0)
		return r;
	if (status != 200) {
		r = status_fail(dk, &x, status, -EIO, "dockerd at %s does not answer /_ping", dk->host);
		xfer_free(&x);
		return r;
	}
	xfer_free(&x);
	x = (struct xfer){ .out_fd = -1, .in_fd = -1 };
	r = dk_call(dk, "GET", "/version", false, NULL, NULL, &x, REQUEST_TIMEOUT_S, &status);
	if (r < 0)
		return r;
	if (status != 200) {
		r = status_fail(dk, &x, status, -EIO, "GET /version");
		xfer_free(&x);
		return r;
	}
	v = x.len ? json_loadb(x.buf, x.len, 0, NULL) : NULL;
	xfer_free(&x);
	parse_api(DOCKER_API_VERSION, &our_major, &our_minor);
	if (parse_api(json_str(v, "ApiVersion"), &dmaj, &dmin) < 0)
		return dm_fail(-EPROTO, "dockerd at %s: /version has no ApiVersion we can read", dk->host);
	if (json_str(v, "MinAPIVersion") && !parse_api(json_str(v, "MinAPIVersion"), &mmaj, &mmin) &&
	    api_cmp(mmaj, mmin, our_major, our_minor) > 0)
		return dm_fail(-EPROTONOSUPPORT, "dockerd at %s (Docker %s) needs API %s or newer; "
			       "dmigrate speaks up to %s", dk->host,
			       json_str(v, "Version") ? json_str(v, "Version") : "?", json_str(v, "MinAPIVersion"),
			       DOCKER_API_VERSION);
	if (api_cmp(dmaj, dmin, our_major, our_minor) > 0) {
		dmaj = our_major;
		dmin = our_minor;
	}
	dk->api_major = dmaj;
	dk->api_minor = dmin;
	snprintf(dk->api, sizeof(dk->api), "%d.%d", dmaj, dmin);
	pr_debug("dockerd at %s: API %s\n", dk->host, dk->api);
	return 0;
}

int docker_open(const char *host, struct docker **ret)
{
	_cleanup_(docker_freep) struct docker *dk = NULL;
	int r;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return dm_fail(-EIO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
	if (!host || !*host)
		host = getenv("DOCKER_HOST");
	if (!host || !*host)
		host = DOCKER_DEFAULT_HOST;
	dk = xcalloc(1, sizeof(*dk));
	dk->host = xstrdup(host);
	r = parse_host(dk, host);
	if (r < 0)
		return r;
	dk->curl = curl_easy_init();
	if (!dk->curl)
		return dm_fail(-ENOMEM, "libcurl: cannot make a handle");
	r = negotiate(dk);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(dk);
	return 0;
}

void docker_close(struct docker *dk)
{
	if (!dk)
		return;
	if (dk->curl)
		curl_easy_cleanup(dk->curl);
	free(dk->host);
	free(dk->sock);
	free(dk->base);
	free(dk);
}

const char *docker_host(const struct docker *dk)
{
	return dk->host;
}

const char *docker_api_version(const struct docker *dk)
{
	return dk->api;
}

/* ------------------------------------------------------------ calls */

/*
 * A call whose reply, on one of the ok statuses (0-terminated), is JSON or
 * nothing: *ret_reply (may be NULL).  Others: status_fail with what.
 */
static int dk_expect_v(struct docker *dk, const char *method, const char *path, json_t *body, const long *ok,
		       int conflict, json_t **ret_reply, long timeout_s, const char *fmt, va_list ap)
{
	struct xfer x = { .out_fd = -1, .in_fd = -1 };
	long status = 0;
	int r;

	r = dk_json_call(dk, method, path, body, &x, timeout_s, &status);
	if (r < 0)
		goto out;
	for (const long *s = ok; *s; s++)
		if (*s == status) {
			if (ret_reply) {
				json_error_t je;
				json_t *j = NULL;
				if (x.len && !(j = json_loadb(x.buf, x.len, 0, &je))) {
					r = dm_fail(-EBADMSG, "%s %s: dockerd at %s replied no JSON: %s",
						    method, path, dk->host, je.text);
					goto out;
				}
				*ret_reply = j;
			}
			r = 0;
			goto out;
		}
	{
		_cleanup_free_ char *what = NULL;
		if (vasprintf(&what, fmt, ap) < 0)
			what = NULL;
		r = status_fail(dk, &x, status, conflict, "%s", what ? what : path);
	}
out:
	xfer_free(&x);
	return r;
}

/* dk_expect_v() within the usual bound, fmt's words naming the request */
static int _printf_(8, 9)
dk_expect(struct docker *dk, const char *method, const char *path, json_t *body,
	  const long *ok, int conflict, json_t **ret_reply, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = dk_expect_v(dk, method, path, body, ok, conflict, ret_reply, REQUEST_TIMEOUT_S, fmt, ap);
	va_end(ap);
	return r;
}

/* The same for a request dockerd answers only after up to timeout_s */
static int _printf_(8, 9)
dk_expect_slow(struct docker *dk, const char *method, const char *path, const long *ok, int conflict,
	       long timeout_s, json_t **ret_reply, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = dk_expect_v(dk, method, path, NULL, ok, conflict, ret_reply, timeout_s, fmt, ap);
	va_end(ap);
	return r;
}

static const long OK200[] = { 200, 0 };
static const long OK201[] = { 201, 0 };
static const long OK204[] = { 200, 204, 0 };
static const long OK204_304[] = { 200, 204, 304, 0 };
static const long OK_STOPPED[] = { 204, 304, 0 };

static int need_object(struct docker *dk, json_t *j, const char *what)
{
	if (json_is_object(j))
		return 0;
	return dm_fail(-EBADMSG, "%s: dockerd at %s replied no JSON object", what, dk->host);
}

int docker_info(struct docker *dk, json_t **ret)
{
	json_t *j = NULL;
	int r = dk_expect(dk, "GET", "/info", NULL, OK200, -EBUSY, &j, "GET /info");
	if (r < 0)
		return r;
	r = need_object(dk, j, "GET /info");
	if (r < 0) {
		json_decref(j);
		return r;
	}
	*ret = j;
	return 0;
}

/* GET of one object (kind: "container", "image", "network", "volume") at
 * /COLLECTION/REF/SUFFIX: its JSON object, or a message naming it. */
static int inspect_object(struct docker *dk, const char *kind, const char *collection, const char *ref,
			  const char *suffix, json_t **ret)
{
	_cleanup_free_ char *path = NULL;
	json_t *j = NULL;
	int r = check_ref(kind, ref);

	if (r < 0)
		return r;
	path = xasprintf("/%s/%s%s", collection, ref, suffix);
	r = dk_expect(dk, "GET", path, NULL, OK200, -EBUSY, &j, "cannot inspect %s '%s'", kind, ref);
	if (r < 0)
		return r;
	r = need_object(dk, j, path);
	if (r < 0) {
		json_decref(j);
		return r;
	}
	*ret = j;
	return 0;
}

int docker_inspect(struct docker *dk, const char *name_or_id, json_t **ret)
{
	return inspect_object(dk, "container", "containers", name_or_id, "/json", ret);
}

int docker_image_inspect(struct docker *dk, const char *ref, json_t **ret)
{
	return inspect_object(dk, "image", "images", ref, "/json", ret);
}

int docker_network_inspect(struct docker *dk, const char *name_or_id, json_t **ret)
{
	return inspect_object(dk, "network", "networks", name_or_id, "", ret);
}

int docker_volume_inspect(struct docker *dk, const char *name, json_t **ret)
{
	return inspect_object(dk, "volume", "volumes", name, "", ret);
}

bool docker_network_is_builtin(const char *n)
{
	return !strcmp(n, "bridge") || !strcmp(n, "default") || !strcmp(n, "host") || !strcmp(n, "none");
}

/* The network a container is created on: HostConfig.NetworkMode's. */
static const char *primary_net(json_t *body)
{
	const char *m = json_str(json_object_get(body, "HostConfig"), "NetworkMode");
	return !m || !strcmp(m, "default") ? "bridge" : m;
}

int docker_create(struct docker *dk, const char *name, json_t *body, char **ret_id)
{
	_cleanup_free_ char *path = NULL, *esc = NULL;
	_cleanup_json_ json_t *send = NULL, *reply = NULL;
	json_t *eps = json_object_get(json_object_get(body, "NetworkingConfig"), "EndpointsConfig");
	const char *primary = primary_net(body), *id, *net;
	json_t *ep;
	int r;

	if (name) {
		r = check_ref("container", name);
		if (r < 0)
			return r;
		esc = curl_easy_escape(dk->curl, name, 0);
		path = xasprintf("/containers/create?name=%s", esc);
	} else {
		path = xstrdup("/containers/create");
	}
	send = json_deep_copy(body);
	/*
	 * Before API 1.44 dockerd takes one network at create (more is an
	 * error): create on the primary network, connect the others
	 * afterwards.  It ignores an endpoint's MacAddress then, and needs it
	 * not: its MACs are made from the IPv4 address (02:42:a:b:c:d), which
	 * a user-defined network keeps.  (Config's MacAddress would pin it, but
	 * the copy's Config would differ from the original's.)
	 */
	if (api_cmp(dk->api_major, dk->api_minor, 1, 44) < 0 && json_object_size(eps) > 0) {
		json_t *seps = json_object_get(json_object_get(send, "NetworkingConfig"), "EndpointsConfig");
		json_t *pep = json_object_get(seps, primary);
		json_t *only = json_object();
		if (pep)
			json_object_set(only, primary, pep);
		json_object_set_new(json_object_get(send, "NetworkingConfig"), "EndpointsConfig", only);
	}
	r = dk_expect(dk, "POST", path, send, OK201, -EEXIST, &reply, "cannot create container '%s'",
		      name ? name : "(unnamed)");
	if (r < 0)
		return r;
	id = json_str(reply, "Id");
	if (!id)
		return dm_fail(-EBADMSG, "create '%s': dockerd at %s replied no Id", name ? name : "", dk->host);
	if (api_cmp(dk->api_major, dk->api_minor, 1, 44) < 0) {
		json_object_foreach(eps, net, ep) {
			if (!strcmp(net, primary))
				continue;
			_cleanup_json_ json_t *cb = json_pack("{s:s, s:O}", "Container", id, "EndpointConfig", ep);
			_cleanup_free_ char *cp = NULL;
			r = check_ref("network", net);
			if (r >= 0) {
				cp = xasprintf("/networks/%s/connect", net);
				r = dk_expect(dk, "POST", cp, cb, OK204, -EBUSY, NULL,
					      "cannot connect container '%s' to network '%s'",
					      name ? name : id, net);
			}
			if (r < 0) {
				_cleanup_free_ char *dp = xasprintf("/containers/%s?force=1&v=1", id);
				struct xfer x = { .out_fd = -1, .in_fd = -1 };
				long st = 0;
				_cleanup_free_ char *msg = xstrdup(dm_last_error());
				dk_json_call(dk, "DELETE", dp, NULL, &x, REQUEST_TIMEOUT_S, &st);
				xfer_free(&x);
				dm_error_set_message(msg);
				return r;
			}
		}
	}
	*ret_id = xstrdup(id);
	return 0;
}

int docker_start(struct docker *dk, const char *id)
{
	_cleanup_free_ char *path = NULL;
	int r = check_ref("container", id);

	if (r < 0)
		return r;
	path = xasprintf("/containers/%s/start", id);
	return dk_expect(dk, "POST", path, NULL, OK204_304, -EBUSY, NULL, "cannot start container '%s'", id);
}

int docker_stop(struct docker *dk, const char *id, int timeout_s)
{
	_cleanup_free_ char *path = NULL;
	int r = check_ref("container", id);

	if (r < 0)
		return r;
	if (timeout_s < 0)
		timeout_s = 0;
	path = xasprintf("/containers/%s/stop?t=%d", id, timeout_s);
	/* dockerd answers once the container stopped: after timeout_s at most */
	return dk_expect_slow(dk, "POST", path, OK_STOPPED, -EBUSY, REQUEST_TIMEOUT_S + timeout_s, NULL,
			      "cannot stop container '%s'", id);
}

int docker_kill(struct docker *dk, const char *id, const char *signal)
{
	_cleanup_free_ char *path = NULL, *esc = NULL;
	int r = check_ref("container", id);

	if (r < 0)
		return r;
	esc = curl_easy_escape(dk->curl, signal ? signal : "SIGKILL", 0);
	path = xasprintf("/containers/%s/kill?signal=%s", id, esc);
	return dk_expect(dk, "POST", path, NULL, OK204, -EBUSY, NULL, "cannot kill container '%s' (%s)",
			 id, signal ? signal : "SIGKILL");
}

int docker_remove(struct docker *dk, const char *id, bool force, bool volumes)
{
	_cleanup_free_ char *path = NULL;
	int r = check_ref("container", id);

	if (r < 0)
		return r;
	path = xasprintf("/containers/%s?force=%d&v=%d", id, force, volumes);
	return dk_expect(dk, "DELETE", path, NULL, OK204, -EBUSY, NULL, "cannot remove container '%s'", id);
}

int docker_update_restart_policy(struct docker *dk, const char *id, json_t *policy)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_json_ json_t *body = NULL;
	int r = check_ref("container", id);

	if (r < 0)
		return r;
	path = xasprintf("/containers/%s/update", id);
	body = json_pack("{s:O}", "RestartPolicy", policy);
	if (!body)
		return dm_fail(-EINVAL, "container '%s': bad restart policy", id);
	return dk_expect(dk, "POST", path, body, OK200, -EBUSY, NULL,
			 "cannot change the restart policy of container '%s'", id);
}

int docker_wait_stopped(struct docker *dk, const char *id, int timeout_s)
{
	_cleanup_free_ char *path = NULL;
	int r = check_ref("container", id);

	if (r < 0)
		return r;
	/* dockerd answers when the container is not running (at once if it is
	 * not): no polling, no delay between its exit and our return */
	path = xasprintf("/containers/%s/wait?condition=not-running", id);
	r = dk_expect_slow(dk, "POST", path, OK200, -EBUSY, timeout_s, NULL, "cannot wait for container '%s'", id);
	if (r == -ETIMEDOUT)
		r = dm_fail(-ETIMEDOUT, "container '%s' still runs after %d s", id, timeout_s);
	return r;
}

/* ------------------------------------------------------------ images */

/*
 * out_fd may be a pipe whose reader is gone: the write must fail with EPIPE,
 * not kill a program that did not ignore SIGPIPE (a library must not count on
 * that).  Blocked in this thread for the transfer; one it raised is taken
 * before the mask is restored.
 */
struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t s, p;

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &s, &g->old);
	sigpending(&p);
	g->was_pending = sigismember(&p, SIGPIPE);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
	sigset_t s, p;
	struct timespec zero = { 0, 0 };

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	sigpending(&p);
	if (!g->was_pending && sigismember(&p, SIGPIPE))
		while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

int docker_image_save(struct docker *dk, const char *ref, int out_fd)
{
	_cleanup_free_ char *path = NULL;
	struct xfer x = { .out_fd = out_fd, .in_fd = -1 };
	struct sigpipe_guard g;
	long status = 0;
	int r = check_ref("image", ref);

	if (r < 0)
		return r;
	path = xasprintf("/images/%s/get", ref);
	sigpipe_block(&g);
	r = dk_call(dk, "GET", path, true, NULL, NULL, &x, 0, &status);
	sigpipe_restore(&g);
	if (r >= 0 && status != 200)
		r = status_fail(dk, &x, status, -EBUSY, "cannot save image '%s'", ref);
	xfer_free(&x);
	return r;
}

/*
 * POST /images/load answers 200 before it has read the tar: a bad archive is
 * an {"error": ...} in its stream of JSON messages, not a status.
 */
static int load_stream_error(struct docker *dk, const struct xfer *x)
{
	size_t off = 0;

	while (off < x->len) {
		json_error_t je;
		json_t *j = json_loadb(x->buf + off, x->len - off, JSON_DISABLE_EOF_CHECK, &je);
		if (!j)
			break;
		off += je.position;
		const char *e = json_str(j, "error");
		if (!e)
			e = json_str(json_object_get(j, "errorDetail"), "message");
		if (e) {
			int r = dm_fail(-EIO, "cannot load images into dockerd at %s: %s", dk->host, e);
			json_decref(j);
			return r;
		}
		json_decref(j);
		while (off < x->len && strchr(" \r\n\t", x->buf[off]))
			off++;
	}
	return 0;
}

int docker_image_load(struct docker *dk, int in_fd)
{
	struct xfer x = { .out_fd = -1, .in_fd = in_fd };
	long status = 0;
	int r;

	r = dk_call(dk, "POST", "/images/load?quiet=1", true, NULL, "application/x-tar", &x, 0, &status);
	if (r >= 0 && status != 200)
		r = status_fail(dk, &x, status, -EBUSY, "cannot load images into dockerd");
	else if (r >= 0)
		r = load_stream_error(dk, &x);
	xfer_free(&x);
	return r;
}

/* ------------------------------------------------------------ pure */

/* Config/HostConfig fields that name the source host, not the container. */
static const char *const hostconfig_drop[] = { "ContainerIDFile" };

json_t *docker_create_body(json_t *inspect, const char *runtime)
{
	json_t *config = json_object_get(inspect, "Config");
	json_t *hc = json_object_get(inspect, "HostConfig");
	json_t *nets = json_object_get(json_object_get(inspect, "NetworkSettings"), "Networks");
	const char *id = json_str(inspect, "Id"), *image = json_str(inspect, "Image");
	json_t *body, *c, *h, *eps, *net;
	const char *mode, *name;

	if (!json_is_object(config) || !json_is_object(hc))
		return NULL;
	/* The body is the Config's fields with HostConfig and NetworkingConfig
	 * beside them.  Config as inspect shows it, image defaults merged in
	 * (Env, Cmd, ...), makes the same container whatever the image says. */
	c = json_deep_copy(config);
	/* the image by ID: a tag may name another image on the destination */
	if (image)
		json_object_set_new(c, "Image", json_string(image));
	h = json_deep_copy(hc);
	for (size_t i = 0; i < ARRAY_SIZE(hostconfig_drop); i++)
		json_object_del(h, hostconfig_drop[i]);
	if (runtime)
		json_object_set_new(h, "Runtime", json_string(runtime));
	mode = json_str(hc, "NetworkMode");
	if (!mode)
		mode = "default";
	/* host or another container's network: Hostname is that of the source
	 * host (or container), which create refuses to take */
	bool shared_net = !strcmp(mode, "host") || !strncmp(mode, "container:", 10);
	if (shared_net) {
		json_object_del(c, "Hostname");
		json_object_del(c, "Domainname");
	}
	body = c;
	json_object_set_new(body, "HostConfig", h);
	if (shared_net || !strcmp(mode, "none") || !json_is_object(nets))
		return body;

	eps = json_object();
	json_object_foreach(nets, name, net) {
		json_t *ep = json_object();
		if (!docker_network_is_builtin(name)) {
			/* user-defined: the same address (and MAC) as on the source */
			json_t *ipam = json_is_object(json_object_get(net, "IPAMConfig"))
				? json_deep_copy(json_object_get(net, "IPAMConfig")) : json_object();
			const char *ip4 = json_str(net, "IPAddress"), *ip6 = json_str(net, "GlobalIPv6Address");
			const char *mac = json_str(net, "MacAddress");
			if (ip4 && *ip4)
				json_object_set_new(ipam, "IPv4Address", json_string(ip4));
			if (ip6 && *ip6)
				json_object_set_new(ipam, "IPv6Address", json_string(ip6));
			if (json_object_size(ipam))
				json_object_set_new(ep, "IPAMConfig", ipam);
			else
				json_decref(ipam);
			json_t *al = json_object_get(net, "Aliases"), *a, *keep = json_array();
			size_t i;
			/* dockerd adds the short ID as an alias: the source's is not ours */
			json_array_foreach(al, i, a) {
				const char *s = json_string_value(a);
				if (s && !(id && strlen(s) == 12 && !strncmp(s, id, 12)))
					json_array_append(keep, a);
			}
			if (json_array_size(keep))
				json_object_set_new(ep, "Aliases", keep);
			else
				json_decref(keep);
			json_t *links = json_object_get(net, "Links");
			if (json_is_array(links) && json_array_size(links))
				json_object_set(ep, "Links", links);
			json_t *dopts = json_object_get(net, "DriverOpts");
			if (json_is_object(dopts) && json_object_size(dopts))
				json_object_set(ep, "DriverOpts", dopts);
			if (mac && *mac)
				json_object_set_new(ep, "MacAddress", json_string(mac));
		}
		/* the default bridge: a new address from the destination's subnet
		 * (it takes no fixed one, nor aliases) */
		json_object_set_new(eps, name, ep);
	}
	json_object_set_new(body, "NetworkingConfig", json_pack("{s:o}", "EndpointsConfig", eps));
	return body;
}

static char **strv_add(char **v, size_t *n, const char *s)
{
	v = xrealloc(v, (*n + 1) * sizeof(*v));
	v[(*n)++] = xstrdup(s);
	return v;
}

int docker_ctr_parse(json_t *inspect, struct docker_ctr *ret)
{
	struct docker_ctr c = { 0 };
	json_t *state = json_object_get(inspect, "State");
	json_t *gd = json_object_get(inspect, "GraphDriver");
	json_t *mounts = json_object_get(inspect, "Mounts"), *m;
	const char *id = json_str(inspect, "Id"), *name = json_str(inspect, "Name");
	const char *image = json_str(inspect, "Image"), *gname = json_str(gd, "Name");
	json_t *pid = json_object_get(state, "Pid");
	size_t i;

	if (!id || !*id || !name || !*name || !image || !json_is_object(state))
		return dm_fail(-EBADMSG, "not the inspect of a container (no Id, Name, Image or State)");
	if (pid && (!json_is_integer(pid) || json_integer_value(pid) < 0 ||
		    json_integer_value(pid) > INT32_MAX))
		return dm_fail(-EBADMSG, "container '%s': bad State.Pid", name);
	c.id = xstrdup(id);
	c.name = xstrdup(name[0] == '/' ? name + 1 : name);
	c.image = xstrdup(image);
	c.pid = (int)json_integer_value(pid);
	c.running = json_is_true(json_object_get(state, "Running"));
	c.paused = json_is_true(json_object_get(state, "Paused"));
	if (gname && !strcmp(gname, "overlay2")) {
		const char *u = json_str(json_object_get(gd, "Data"), "UpperDir");
		const char *l = json_str(json_object_get(gd, "Data"), "LowerDir");
		c.upperdir = u ? xstrdup(u) : NULL;
		c.lowerdir = l ? xstrdup(l) : NULL;
	}
	json_array_foreach(mounts, i, m) {
		const char *type = json_str(m, "Type");
		if (!type)
			continue;
		if (!strcmp(type, "bind") && json_str(m, "Source"))
			c.binds = strv_add(c.binds, &c.n_binds, json_str(m, "Source"));
		else if (!strcmp(type, "volume") && json_str(m, "Name"))
			c.volumes = strv_add(c.volumes, &c.n_volumes, json_str(m, "Name"));
	}
	*ret = c;
	return 0;
}

void docker_ctr_free(struct docker_ctr *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->name);
	free(c->image);
	free(c->upperdir);
	free(c->lowerdir);
	for (size_t i = 0; i < c->n_binds; i++)
		free(c->binds[i]);
	free(c->binds);
	for (size_t i = 0; i < c->n_volumes; i++)
		free(c->volumes[i]);
	free(c->volumes);
	*c = (struct docker_ctr){ 0 };
}

/* ------------------------------------------------------------ setup */

int docker_config_add_runtime(json_t *cfg, const char *name, const char *path)
{
	json_t *rts, *rt;
	const char *old;

	if (!json_is_object(cfg))
		return dm_fail(-EBADMSG, "the configuration is not a JSON object");
	rts = json_object_get(cfg, "runtimes");
	if (!rts) {
		rts = json_object();
		json_object_set_new(cfg, "runtimes", rts);
	} else if (!json_is_object(rts)) {
		return dm_fail(-EBADMSG, "its \"runtimes\" is not a JSON object");
	}
	rt = json_object_get(rts, name);
	if (!rt) {
		json_object_set_new(rts, name, json_pack("{s:s}", "path", path));
		return DOCKER_CFG_ADDED;
	}
	if (!json_is_object(rt))
		return dm_fail(-EBADMSG, "its runtime \"%s\" is not a JSON object", name);
	old = json_str(rt, "path");
	if (old && !strcmp(old, path))
		return DOCKER_CFG_SAME;
	json_object_set_new(rt, "path", json_string(path));
	return DOCKER_CFG_UPDATED;
}

int docker_config_file_add_runtime(const char *file, const char *name, const char *path)
{
	_cleanup_json_ json_t *cfg = NULL;
	_cleanup_free_ char *text = NULL, *tmp = NULL, *dir = NULL, *real = NULL;
	_cleanup_close_ int fd = -1;
	mode_t mode = 0644;
	struct stat st;
	json_error_t je;
	int r, change;

	/* a symlink (to a file kept elsewhere) stays one: the rename below
	 * replaces its target */
	if (lstat(file, &st) == 0 && S_ISLNK(st.st_mode)) {
		real = realpath(file, NULL);
		if (!real)
			return dm_fail(neg_errno(), "%s: %m", file);
		file = real;
	}
	if (stat(file, &st) == 0) {
		mode = st.st_mode & 07777;
		cfg = json_load_file(file, 0, &je);
		if (!cfg) {
			/* an empty file is what some installers leave: {} */
			if (st.st_size == 0)
				cfg = json_object();
			else if (je.line > 0)
				return dm_fail(-EBADMSG, "%s: not valid JSON: line %d, column %d: %s", file,
					       je.line, je.column, je.text);
			else
				return dm_fail(-EBADMSG, "%s: %s", file, je.text);
		}
	} else if (errno == ENOENT) {
		cfg = json_object();
	} else {
		return dm_fail(neg_errno(), "%s: %m", file);
	}
	change = docker_config_add_runtime(cfg, name, path);
	if (change < 0) {
		_cleanup_free_ char *why = xstrdup(dm_last_error());
		return dm_fail(change, "%s: %s", file, why);
	}
	if (change == DOCKER_CFG_SAME)
		return change;

	dir = xstrdup(file);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		r = mkdir_p(dir, 0755);
		if (r < 0)
			return dm_fail(r, "%s: %s", dir, strerror(-r));
	}
	text = json_dumps(cfg, JSON_INDENT(2));
	if (!text)
		return dm_fail(-ENOMEM, "%s: cannot write JSON", file);
	tmp = xasprintf("%s.dmigrate-tmp.%d", file, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return dm_fail(neg_errno(), "%s: %m", tmp);
	r = write_all(fd, text, strlen(text));
	if (r >= 0)
		r = write_all(fd, "\n", 1);
	if (r >= 0 && fchmod(fd, mode) < 0)
		r = neg_errno();
	if (r >= 0 && fsync(fd) < 0)
		r = neg_errno();
	if (r >= 0 && rename(tmp, file) < 0)
		r = neg_errno();
	if (r < 0) {
		unlink(tmp);
		return dm_fail(r, "%s: %s", file, strerror(-r));
	}
	return change;
}

int docker_has_runtime(struct docker *dk, const char *name, const char *path)
{
	_cleanup_json_ json_t *info = NULL;
	int r = docker_info(dk, &info);
	json_t *rt;

	if (r < 0)
		return r;
	rt = json_object_get(json_object_get(info, "Runtimes"), name);
	if (!rt)
		return 0;
	if (!path)
		return 1;
	const char *p = json_str(rt, "path");
	return p && !strcmp(p, path);
}
