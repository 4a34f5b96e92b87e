/* SPDX-License-Identifier: MIT */
/* The destination's fault trace (faulttrace.h). */
#define LOG_PREFIX "mem: "
#include "mem/faulttrace.h"
#include "mem/mem.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/util.h"

#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_MAX 65536

struct trace_rec {
	uint64_t t_ns, addr, win_start, pc; /* pc: 0 unknown */
	uint32_t space, tid, win_n, lat_us; /* lat_us: until installed (R, L), 0: never seen */
	char kind;
	bool child;
};

/* a thread's tid in its pid namespace and on the host */
struct trace_tid {
	pid_t host_pid, vtid, htid;
};
#define TRACE_TIDS 256

struct fault_trace {
	char *path;
	bool pc;                      /* DMIGRATE_FAULT_TRACE_PC=1 */
	struct trace_tid tids[TRACE_TIDS]; /* fault_trace_add_pc()'s (one thread's) */
	size_t n_tids;
	uint64_t window_ns;
	_Atomic uint64_t origin_ns;   /* 0: the first fault */
	pthread_mutex_t lock;         /* n, the records, written */
	struct trace_rec *r;
	size_t n;
	bool written;
};

struct fault_trace *fault_trace_from_env(void)
{
	if (!mem_fault_trace_wanted())
		return NULL;
	const char *tp = getenv("DMIGRATE_FAULT_TRACE");
	const char *w = getenv("DMIGRATE_FAULT_TRACE_MS");
	struct fault_trace *t = xcalloc(1, sizeof(*t));
	t->path = xstrdup(tp);
	const char *pc = getenv("DMIGRATE_FAULT_TRACE_PC");
	t->pc = pc && !strcmp(pc, "1");
	t->window_ns = (uint64_t)(w && atoi(w) > 0 ? atoi(w) : 1000) * 1000000;
	t->r = xcalloc(TRACE_MAX, sizeof(*t->r));
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void fault_trace_free(struct fault_trace *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->r);
	free(t->path);
	free(t);
}

void fault_trace_origin(struct fault_trace *t, uint64_t ns)
{
	if (t)
		atomic_store(&t->origin_ns, ns);
}

long fault_trace_add(struct fault_trace *t, uint64_t addr, uint32_t space, uint32_t tid, char kind, bool child)
{
	uint64_t now = clock_ns(), origin = atomic_load(&t->origin_ns);
	long i = -1;

	if (!origin) {
		/* no origin given yet: the first fault is one */
		atomic_compare_exchange_strong(&t->origin_ns, &origin, now);
		origin = atomic_load(&t->origin_ns);
	}
	pthread_mutex_lock(&t->lock);
	if (!t->written && now <= origin + t->window_ns && t->n < TRACE_MAX) {
		i = (long)t->n++;
		t->r[i] = (struct trace_rec){ .t_ns = now, .addr = addr, .space = space, .tid = tid,
					      .kind = kind, .child = child };
	}
	pthread_mutex_unlock(&t->lock);
	return i;
}

void fault_trace_set_kind(struct fault_trace *t, long rec, char kind)
{
	pthread_mutex_lock(&t->lock);
	t->r[rec].kind = kind;
	pthread_mutex_unlock(&t->lock);
}

void fault_trace_set_window(struct fault_trace *t, long rec, uint64_t start, uint32_t n)
{
	pthread_mutex_lock(&t->lock);
	t->r[rec].win_start = start;
	t->r[rec].win_n = n;
	pthread_mutex_unlock(&t->lock);
}

void fault_trace_set_latency(struct fault_trace *t, long rec, uint64_t us)
{
	pthread_mutex_lock(&t->lock);
	t->r[rec].lat_us = (uint32_t)MAX(us, (uint64_t)1);
	pthread_mutex_unlock(&t->lock);
}

/* The host tid of thread vtid of process host_pid: every thread's NSpid read
 * once, again when one is not known. */
static pid_t host_tid_of(struct fault_trace *t, pid_t host_pid, pid_t vtid)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < t->n_tids; i++)
			if (t->tids[i].host_pid == host_pid && t->tids[i].vtid == vtid)
				return t->tids[i].htid;
		if (pass)
			break;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/task", host_pid);
		_cleanup_closedir_ DIR *d = opendir(path);
		struct dirent *de;
		/* this process's again (the others stay) */
		size_t k = 0;
		for (size_t i = 0; i < t->n_tids; i++)
			if (t->tids[i].host_pid != host_pid)
				t->tids[k++] = t->tids[i];
		t->n_tids = k;
		while (d && (de = readdir(d)) && t->n_tids < TRACE_TIDS) {
			if (de->d_name[0] == '.')
				continue;
			char sp[300], *line = NULL;
			size_t cap = 0;
			snprintf(sp, sizeof(sp), "/proc/%d/task/%s/status", host_pid, de->d_name);
			_cleanup_fclose_ FILE *f = fopen(sp, "re");
			while (f && getline(&line, &cap, f) > 0) {
				if (strncmp(line, "NSpid:", 6))
					continue;
				const char *last = strrchr(line, '\t');
				if (last)
					t->tids[t->n_tids++] = (struct trace_tid){ host_pid, atoi(last + 1), atoi(de->d_name) };
				break;
			}
			free(line);
		}
	}
	return 0;
}

/* A thread waiting in a fault shows "-1 SP PC" in its syscall file (a read
 * of ~30 us a fault: off by default, the trace is for timing). */
void fault_trace_add_pc(struct fault_trace *t, long rec, pid_t host_pid, uint32_t vtid)
{
	if (!t->pc)
		return;
	pid_t htid = host_tid_of(t, host_pid, (pid_t)vtid);
	char path[64];
	_cleanup_free_ char *buf = NULL;
	unsigned long long sp = 0, pc = 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", host_pid, htid);
	if (!htid || read_full_file(path, 4096, &buf, NULL) < 0 || sscanf(buf, "-1 %llx %llx", &sp, &pc) != 2)
		return;
	pthread_mutex_lock(&t->lock);
	t->r[rec].pc = pc;
	pthread_mutex_unlock(&t->lock);
}

bool fault_trace_due(struct fault_trace *t)
{
	uint64_t origin = atomic_load(&t->origin_ns);
	pthread_mutex_lock(&t->lock);
	bool due = !t->written && origin && clock_ns() > origin + t->window_ns;
	pthread_mutex_unlock(&t->lock);
	return due;
}

static int dump_json_line(FILE *f, json_t *j)
{
	char *txt = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!txt)
		return -ENOMEM;
	fprintf(f, "%s\n", txt);
	free(txt);
	return 0;
}

void fault_trace_write(struct fault_trace *t, const struct fault_trace_proc *procs, size_t n)
{
	_cleanup_fclose_ FILE *f = NULL;
	char addr[32], ws[32], pc[32];

	pthread_mutex_lock(&t->lock);
	if (t->written) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->written = true;
	f = fopen(t->path, "we");
	if (!f) {
		pthread_mutex_unlock(&t->lock);
		pr_warn("fault trace %s: %m", t->path);
		return;
	}
	uint64_t origin = atomic_load(&t->origin_ns);
	dump_json_line(f, json_pack("{s:s, s:I, s:f, s:I}", "fault_trace", "dmigrate", "origin_ns",
				    (json_int_t)origin, "window_ms", (double)t->window_ns / 1e6, "n",
				    (json_int_t)t->n));
	for (size_t i = 0; i < t->n; i++) {
		const struct trace_rec *r = &t->r[i];
		snprintf(addr, sizeof(addr), "%#" PRIx64, r->addr);
		snprintf(ws, sizeof(ws), "%#" PRIx64, r->win_start);
		snprintf(pc, sizeof(pc), "%#" PRIx64, r->pc);
		dump_json_line(f, json_pack("{s:f, s:s, s:i, s:i, s:s#, s:b, s:i, s:s, s:i, s:s}", "t_ms",
					    ((double)r->t_ns - (double)origin) / 1e6, "addr", addr, "space",
					    (int)r->space, "tid", (int)r->tid, "kind", &r->kind, (size_t)1, "child",
					    r->child, "lat_us", (int)r->lat_us, "win", ws, "win_n", (int)r->win_n,
					    "pc", pc));
	}
	size_t recs = t->n;
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		char path[64], *line = NULL;
		size_t cap = 0;
		snprintf(path, sizeof(path), "/proc/%d/maps", procs[i].host_pid);
		_cleanup_fclose_ FILE *m = fopen(path, "re");
		if (!m)
			continue;
		json_t *lines = json_array();
		while (getline(&line, &cap, m) > 0) {
			line[strcspn(line, "\n")] = 0;
			json_array_append_new(lines, json_string(line));
		}
		free(line);
		dump_json_line(f, json_pack("{s:i, s:i, s:o}", "maps_of", (int)procs[i].space, "host_pid",
					    (int)procs[i].host_pid, "lines", lines));
	}
	pr_info("fault trace: %zu faults in %s", recs, t->path);
}
