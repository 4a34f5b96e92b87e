/* SPDX-License-Identifier: MIT */
/*
 * A client of the Docker Engine API (docs/docker.md, "Talking to dockerd"):
 * HTTP/1.1 with libcurl over dockerd's unix socket (or tcp:// without TLS),
 * JSON with jansson.  Both sides of a Docker migration use it: the source
 * inspects the container, the destination creates its copy.
 *
 * A struct docker holds one curl handle: one thread at a time.  The API
 * version is negotiated at docker_open(): the lower of dockerd's ApiVersion
 * and DOCKER_API_VERSION; every path is sent as /vX.YY/path.
 *
 * Errors: every function returns 0 or -errno and sets the thread's message
 * (dm_fail) naming the container or image and giving dockerd's own
 * "message": 404 -> -ENOENT, 409 -> -EEXIST (a name in use) or -EBUSY,
 * anything else -EIO.  docker_request() alone leaves statuses to its caller.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The newest API version we speak (Docker 25..28 speak 1.44..1.50; Debian
 * 12's 20.10 speaks 1.41; Docker 29 accepts nothing below 1.44). */
#define DOCKER_API_VERSION "1.47"
#define DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
#define DOCKER_DEFAULT_CONFIG "/etc/docker/daemon.json"
#define DOCKER_DEFAULT_PIDFILE "/var/run/docker.pid"

struct docker; /* one dockerd */

/* host: NULL means $DOCKER_HOST, else DOCKER_DEFAULT_HOST (unix:// and
 * tcp://host:port without TLS).  Connects (GET /_ping, GET /version).  A
 * daemon that does not answer: -ECONNREFUSED/-ENOENT with "cannot reach
 * dockerd at unix:///...: <curl's reason>". */
int docker_open(const char *host, struct docker **ret);
void docker_close(struct docker *dk);
const char *docker_host(const struct docker *dk);
/* The negotiated version, "1.41". */
const char *docker_api_version(const struct docker *dk);

/* One request: body NULL or JSON; *ret_status the HTTP status, *ret_reply the
 * parsed JSON reply (NULL if empty or not JSON).  Status >= 400 is NOT an
 * error here (callers map it).  path starts with '/' and is sent under the
 * version prefix; it may carry a query. */
int docker_request(struct docker *dk, const char *method, const char *path, json_t *body,
		   long *ret_status, json_t **ret_reply);

int docker_info(struct docker *dk, json_t **ret);                       /* GET /info */
int docker_inspect(struct docker *dk, const char *name_or_id, json_t **ret);
int docker_image_inspect(struct docker *dk, const char *ref, json_t **ret);
/* GET /networks/NAME: its IPAM subnets tell whether an address can be kept */
int docker_network_inspect(struct docker *dk, const char *name_or_id, json_t **ret);
int docker_volume_inspect(struct docker *dk, const char *name, json_t **ret);
/* Docker's own networks ("bridge", "default", "host", "none"), on every host. */
bool docker_network_is_builtin(const char *name);
/* POST /containers/create?name=NAME.  A body with several networks on a
 * daemon older than API 1.44 (which takes one at create): the container is
 * created on the one of HostConfig.NetworkMode and connected to the others
 * (with their IPAMConfig/aliases); a failure there removes it again. */
int docker_create(struct docker *dk, const char *name, json_t *body, char **ret_id);
int docker_start(struct docker *dk, const char *id);                    /* running already: 0 */
int docker_stop(struct docker *dk, const char *id, int timeout_s);      /* stopped already: 0 */
int docker_kill(struct docker *dk, const char *id, const char *signal); /* NULL: SIGKILL */
int docker_remove(struct docker *dk, const char *id, bool force, bool volumes);
/* POST /containers/ID/update {"RestartPolicy": policy} */
int docker_update_restart_policy(struct docker *dk, const char *id, json_t *policy);
/* POST /containers/ID/wait?condition=not-running: returns once dockerd
 * has seen the container stop (at once if it does not run); -ETIMEDOUT
 * after timeout_s. */
int docker_wait_stopped(struct docker *dk, const char *id, int timeout_s);
/* images: the tar stream of `docker save` written to out_fd; `docker load`
 * read from in_fd (until EOF) */
int docker_image_save(struct docker *dk, const char *ref, int out_fd);
int docker_image_load(struct docker *dk, int in_fd);

/* Pure: the body of POST /containers/create that makes a container like
 * inspect (GET /containers/NAME/json on another host): its Config's fields
 * (image by ID, cmd, entrypoint, env, labels, ...) with "HostConfig" (its
 * HostConfig, Runtime = runtime; NULL: the inspected one) and
 * "NetworkingConfig" (each network's endpoint: on a user-defined network the
 * current address becomes a fixed IPAMConfig, with its MAC and aliases; the
 * default bridge takes neither) beside them.  What names the source host is
 * left out (Id, State, paths, GraphDriver, the short-ID alias, the hostname
 * of a host-network container, ...).  NULL if inspect has no
 * Config/HostConfig. */
json_t *docker_create_body(json_t *inspect, const char *runtime);

/* Pure: what the source's inspect says a migration needs. */
struct docker_ctr {
	char *id, *name, *image, *upperdir, *lowerdir;
	int pid;
	bool running, paused;
	char **binds; size_t n_binds;     /* host paths of bind mounts */
	char **volumes; size_t n_volumes; /* named volume names */
};
int docker_ctr_parse(json_t *inspect, struct docker_ctr *ret);
void docker_ctr_free(struct docker_ctr *c);

/* ------------------------------------------------------------- setup */

enum docker_cfg_change { DOCKER_CFG_SAME = 0, DOCKER_CFG_ADDED = 1, DOCKER_CFG_UPDATED = 2 };
/* Pure: make cfg (daemon.json's object) register runtime name -> path:
 * "runtimes": {name: {"path": path}}, every other key (and other keys of
 * that runtime) kept.  Returns what it changed (enum docker_cfg_change) or
 * -EBADMSG when "runtimes" or its entry is not an object. */
int docker_config_add_runtime(json_t *cfg, const char *name, const char *path);
/* The same on a file: read it (missing: {}), merge, write it atomically
 * (mode kept, else 0644) when something changed.  Bad JSON: -EBADMSG
 * naming the file, line and column. */
int docker_config_file_add_runtime(const char *file, const char *name, const char *path);
/* Whether GET /info's Runtimes has name with that path (path NULL: any):
 * 1, 0, or -errno. */
int docker_has_runtime(struct docker *dk, const char *name, const char *path);
