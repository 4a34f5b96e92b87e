/* SPDX-License-Identifier: MIT */
/*
 * Task pool: one FIFO of unpinned tasks that every worker takes from, one
 * FIFO of pinned tasks that only the owner (worker 0) takes from, and a
 * manager thread that adds workers one at a time while the sensors say the
 * host has room (see pool.h for the rules).
 *
 * Termination: the pool is done when both lists are empty and no task is
 * running, because only a running task can add tasks.  Whoever observes that
 * (the worker finishing the last task, or any worker finding nothing to do)
 * sets p->done and wakes everybody; workers return, the owner joins the
 * manager (which may still be starting a worker) and then the workers.
 */
#define LOG_PREFIX "pool: "
#include "pool/pool.h"
#include "base/clock.h"
#include "base/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>


#define POOL_THREADS_LIMIT 1024

struct task {
	struct task *next;
	pool_fn fn;
	void *arg;
	void (*free_arg)(void *arg);
	const char *name;
};

struct task_list {
	struct task *head, **tail;
	unsigned n;
};

struct worker {
	struct pool *pool;
	unsigned id;
	pthread_t thread;
	struct pool_worker_stats *stats; /* written by this worker only */
};

struct pool {
	/* Set by pool_create(), read-only afterwards (but see max_threads). */
	unsigned max_threads; /* fixed_threads when fixed; lowered under lock if
			       * a thread cannot be created */
	bool fixed;
	const struct pool_sensors *sensors;
	struct pool_sensors *own_sensors;
	uint64_t sample_ns;
	double cpu_idle_min, mem_avail_min;
	bool credit_first;  /* the first window credits our own CPU time (manager only after create) */
	uint64_t sense_ns;  /* in the sensors (manager only) */

	pthread_mutex_t lock;
	pthread_cond_t owner_cond; /* owner: a task of either kind, or done */
	pthread_cond_t work_cond;  /* other workers: an unpinned task, or done */
	pthread_cond_t mgr_cond;   /* manager (CLOCK_MONOTONIC): started, queued, done */
	pthread_cond_t park_cond;  /* workers made ahead: let in, done, or closing */

	/* Under lock. */
	struct task_list shared, pinned;
	unsigned n_running;
	unsigned n_spawned; /* workers let in, the owner included (ids 0..n_spawned-1) */
	unsigned n_started; /* workers that reached their loop */
	unsigned n_created; /* worker threads made (ids 1..n_created): some ahead, parked */
	bool closing;       /* pool_free() of a pool never run (started: pool_run() joined all) */
	bool window_open;   /* CPU window opened since the newest worker started
			     * (for the owner: since pool_create()) */
	uint64_t next_sample_ns;
	enum { AHEAD_NONE, AHEAD_ROOM, AHEAD_NO } ahead; /* pool_decide_ahead()'s verdict, for the first decision */
	bool started, done, finished;
	int err;
	char err_msg[DM_ERRMSG_MAX]; /* the failed task's dm_last_error() */
	bool owner_pinned_only;      /* tests: unpinned tasks run on workers only */
	uint64_t tasks_run, tasks_skipped;
	unsigned n_timeline;
	struct pool_timeline_point *timeline; /* [max_threads]: the pool only grows */
	struct worker *workers;               /* [max_threads] */
	struct pool_worker_stats *wstats;     /* [max_threads] */

	atomic_bool failed; /* mirrors err != 0 for lock-free pool_failed() */
	uint64_t start_ns, end_ns;
	pthread_t manager;
	bool have_manager;
};

static void list_push(struct task_list *l, struct task *t)
{
	t->next = NULL;
	*l->tail = t;
	l->tail = &t->next;
	l->n++;
}

static struct task *list_pop(struct task_list *l)
{
	struct task *t = l->head;

	if (t) {
		l->head = t->next;
		if (!l->head)
			l->tail = &l->head;
		l->n--;
	}
	return t;
}

static void list_init(struct task_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
	l->n = 0;
}

/* Free a chain of tasks that will not run; call without the lock. */
static void free_chain(struct task *t)
{
	while (t) {
		struct task *next = t->next;
		if (t->free_arg)
			t->free_arg(t->arg);
		free(t);
		t = next;
	}
}

/* Under lock: detach every queued task, return them as one chain. */
static struct task *drain(struct pool *p)
{
	struct task *chain = NULL;
	struct task_list *lists[] = { &p->shared, &p->pinned };

	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		struct task *t;
		while ((t = list_pop(lists[i]))) {
			t->next = chain;
			chain = t;
			p->tasks_skipped++;
		}
	}
	return chain;
}

static void wake_all(struct pool *p)
{
	pthread_cond_broadcast(&p->owner_cond);
	pthread_cond_broadcast(&p->work_cond);
	pthread_cond_broadcast(&p->mgr_cond);
	pthread_cond_broadcast(&p->park_cond);
}

/* Under lock. */
static void check_done(struct pool *p)
{
	if (!p->done && p->n_running == 0 && p->shared.n == 0 && p->pinned.n == 0) {
		p->done = true;
		wake_all(p);
	}
}

/* Under lock: a worker reached its loop. */
static void worker_started(struct pool *p)
{
	p->n_started++;
	p->timeline[p->n_timeline++] = (struct pool_timeline_point){
		.ms = ns_to_ms(p->start_ns, clock_ns()),
		.workers = p->n_started,
	};
	/* The owner was running before pool_run(): the window pool_create()
	 * opened already has its load.  A new worker's is not in it yet. */
	if (p->n_started > 1)
		p->window_open = false;
	pthread_cond_signal(&p->mgr_cond);
	pr_debug("worker %u started", p->n_started - 1);
}

static void worker_loop(struct worker *w)
{
	struct pool *p = w->pool;
	bool owner = w->id == 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct task *t = owner ? list_pop(&p->pinned) : NULL;
		if (!t && !(owner && p->owner_pinned_only && p->n_spawned > 1))
			t = list_pop(&p->shared);
		if (!t) {
			check_done(p);
			if (p->done)
				break;
			pthread_cond_wait(owner ? &p->owner_cond : &p->work_cond, &p->lock);
			continue;
		}
		p->n_running++;
		pthread_mutex_unlock(&p->lock);

		uint64_t t0 = clock_ns();
		/* the message of a failed task must be its own, not an old one */
		dm_error_clear();
		int r = t->fn(p, t->arg);
		/* kept at once: free_arg may log or fail in its turn */
		char msg[DM_ERRMSG_MAX];
		if (r < 0)
			snprintf(msg, sizeof(msg), "%s", dm_last_error());
		w->stats->busy_ms += ns_to_ms(t0, clock_ns());
		w->stats->tasks++;
		if (t->free_arg)
			t->free_arg(t->arg);

		struct task *dropped = NULL;
		pthread_mutex_lock(&p->lock);
		p->n_running--;
		p->tasks_run++;
		if (r < 0 && p->err == 0) {
			pr_debug("task %s failed on worker %u: %s", t->name ? t->name : "?", w->id,
				 msg[0] ? msg : strerror(-r));
			p->err = r;
			snprintf(p->err_msg, sizeof(p->err_msg), "%s", msg);
			atomic_store(&p->failed, true);
			dropped = drain(p);
		}
		check_done(p);
		if (dropped) {
			pthread_mutex_unlock(&p->lock);
			free_chain(dropped);
			pthread_mutex_lock(&p->lock);
		}
		free(t);
	}
	pthread_mutex_unlock(&p->lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;
	char name[16];

	snprintf(name, sizeof(name), "dm-pool/%u", w->id);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&p->lock);
	/* made ahead (pool_create): parked until the manager lets it in */
	while (w->id >= p->n_spawned && !p->done && !p->closing)
		pthread_cond_wait(&p->park_cond, &p->lock);
	bool in = w->id < p->n_spawned;
	if (in)
		worker_started(p);
	pthread_mutex_unlock(&p->lock);
	if (in)
		worker_loop(w);
	return NULL;
}

/*
 * The first workers of a growing pool are made by pool_create(), parked:
 * made ahead of the work (the dump makes its pool before the freeze),
 * letting one in is a wake-up, not a thread's creation (its stack mapped,
 * its first run: the second worker of a frozen dump came 0.2-0.56 ms into
 * the freeze).  The manager decides when, as before; more than these are
 * made when it does.  The manager is made with them (it waits for
 * pool_run()): its start was in the frozen window too.
 */
#define POOL_AHEAD 3

static void *manager_main(void *arg);

static void make_ahead(struct pool *p)
{
	unsigned n = MIN(p->max_threads - 1, (unsigned)POOL_AHEAD);

	for (unsigned i = 1; i <= n; i++) {
		struct worker *w = &p->workers[i];
		w->pool = p;
		w->id = i;
		w->stats = &p->wstats[i];
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			break;	/* made when let in, or not at all */
		p->n_created = i;
	}
}

/* Under lock.  On failure stop growing: a smaller pool still finishes. */
static void spawn_worker(struct pool *p)
{
	struct worker *w = &p->workers[p->n_spawned];
	int r;

	if (p->n_spawned <= p->n_created) {
		/* made ahead: let it in */
		p->n_spawned++;
		pthread_cond_broadcast(&p->park_cond);
		return;
	}
	w->pool = p;
	w->id = p->n_spawned;
	w->stats = &p->wstats[w->id];
	r = pthread_create(&w->thread, NULL, worker_main, w);
	if (r != 0) {
		pr_warn("cannot start worker %u, staying at %u: %s", w->id, p->n_spawned,
			strerror(r));
		p->max_threads = p->n_spawned;
		return;
	}
	p->n_spawned++;
	p->n_created = w->id; /* none were parked beyond: n_spawned was past them */
}

/* Without the lock: both sensors must say yes.  1: room, 0: none, -EAGAIN:
 * a sensor cannot tell yet (its window too short) */
static int host_room(struct pool *p)
{
	const struct pool_sensors *s = p->sensors;
	double cpu = 0, mem = 0;
	uint64_t t0 = clock_ns();
	int rc = s->cpu_idle(s->ctx, &cpu);
	int rm = s->mem_avail(s->ctx, &mem);
	p->sense_ns += clock_ns() - t0;

	if ((rc < 0 && rc != -EAGAIN) || (rm < 0 && rm != -EAGAIN))
		pr_debug("sensor failed: cpu %d mem %d", rc, rm);
	if (rc == -EAGAIN || rm == -EAGAIN)
		return -EAGAIN;
	if (rc < 0 || rm < 0)
		return 0;
	pr_debug("cpu idle %.3f (min %.3f), mem avail %.3f (min %.3f), read in %.2f ms, %.2f ms into the run",
		 cpu, p->cpu_idle_min, mem, p->mem_avail_min, ns_to_ms(t0, clock_ns()),
		 p->start_ns ? ns_to_ms(p->start_ns, t0) : 0);
	return cpu >= p->cpu_idle_min && mem >= p->mem_avail_min ? 1 : 0;
}

/* Without the lock: the first sample taken, our own CPU time counts as busy
 * from now on (pool_opts.credit_own_first) */
static void end_credit(struct pool *p)
{
	if (p->credit_first) {
		p->credit_first = false;
		p->sensors->credit_self(p->sensors->ctx, false);
	}
}

static void ns_to_timespec(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000ULL);
	ts->tv_nsec = (long)(ns % 1000000000ULL);
}

/*
 * Slow increase.  The manager sleeps on mgr_cond and wakes for: a worker
 * started, the unpinned list became non-empty, the sample time, done.
 */
#define POOL_MGR_SLICE_NS 100000ULL

static void *manager_main(void *arg)
{
	struct pool *p = arg;

	pthread_setname_np(pthread_self(), "dm-pool/mgr");
	/* a short slice: woken when work is queued, it must not wait for the
	 * running thread's slice (1.4 ms here) on the CPU it wakes on: the
	 * frozen dump's first worker came 2-4 ms in */
	thread_slice(thread_nice_get(), POOL_MGR_SLICE_NS);
	pthread_mutex_lock(&p->lock);
	while (!p->done && !p->closing) {
		/* made with the pool (make_ahead()): nothing before pool_run() */
		if (!p->started || p->err || p->n_spawned >= p->max_threads || p->n_started < p->n_spawned ||
		    p->shared.n == 0) {
			pthread_cond_wait(&p->mgr_cond, &p->lock);
			continue;
		}
		if (!p->window_open) {
			/* The newest worker runs: measure from now on. */
			double ignored;
			p->window_open = true;
			p->next_sample_ns = clock_ns() + p->sample_ns;
			pthread_mutex_unlock(&p->lock);
			p->sensors->cpu_idle(p->sensors->ctx, &ignored);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->ahead != AHEAD_NONE) {
			/* the first decision, taken before pool_run() (its "no"
			 * set the next sample a period after it) */
			bool room = p->ahead == AHEAD_ROOM;
			p->ahead = AHEAD_NONE;
			if (room && p->n_spawned < p->max_threads)
				spawn_worker(p);
			continue;
		}
		if (clock_ns() < p->next_sample_ns) {
			struct timespec ts;
			ns_to_timespec(p->next_sample_ns, &ts);
			pthread_cond_timedwait(&p->mgr_cond, &p->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		bool room = host_room(p) > 0;
		end_credit(p);
		pthread_mutex_lock(&p->lock);
		if (room && !p->done && !p->err && p->shared.n > 0 && p->n_spawned < p->max_threads)
			spawn_worker(p);
		else
			p->next_sample_ns = clock_ns() + p->sample_ns;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)MIN(n, (long)POOL_THREADS_LIMIT) : 1;
}

int pool_create(const struct pool_opts *opts, struct pool **ret_pool)
{
	static const struct pool_opts defaults;
	const struct pool_opts *o = opts ? opts : &defaults;
	pthread_condattr_t ca;
	struct pool *p;
	int r;

	if (o->max_threads > POOL_THREADS_LIMIT || o->fixed_threads > POOL_THREADS_LIMIT)
		return -EINVAL;

	p = xcalloc(1, sizeof(*p));
	p->fixed = o->fixed_threads > 0;
	p->owner_pinned_only = o->owner_pinned_only && o->fixed_threads > 1;
	p->max_threads = p->fixed ? o->fixed_threads : o->max_threads ? o->max_threads : online_cpus();
	p->sample_ns = (uint64_t)(o->sample_ms ? o->sample_ms : POOL_SAMPLE_MS_DEFAULT) * 1000000ULL;
	p->cpu_idle_min = o->cpu_idle_min > 0 ? o->cpu_idle_min : 0.75 / online_cpus();
	p->mem_avail_min = o->mem_avail_min > 0 ? o->mem_avail_min : POOL_MEM_AVAIL_MIN_DEFAULT;
	p->sensors = o->sensors;
	if (!p->fixed && p->max_threads > 1 && !p->sensors) {
		r = pool_proc_sensors_new(&p->own_sensors);
		if (r < 0) {
			free(p);
			return r;
		}
		p->sensors = p->own_sensors;
	}
	list_init(&p->shared);
	list_init(&p->pinned);
	p->workers = xcalloc(p->max_threads, sizeof(*p->workers));
	p->timeline = xcalloc(p->max_threads, sizeof(*p->timeline));
	p->wstats = xcalloc(p->max_threads, sizeof(*p->wstats));

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->owner_cond, NULL);
	pthread_cond_init(&p->work_cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->mgr_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&p->park_cond, NULL);

	/*
	 * The first CPU window opens now, not at pool_run(): a caller that
	 * makes the pool ahead of its work (the dump, before the freeze) gets
	 * its first worker as soon as the work starts, if the host had room
	 * meanwhile, instead of a sample period (and a thread start) later.
	 */
	if (!p->fixed && p->max_threads > 1) {
		double ignored;
		p->credit_first = o->credit_own_first && p->sensors->credit_self;
		if (p->credit_first)
			p->sensors->credit_self(p->sensors->ctx, true);
		p->window_open = true;
		if (o->window_open && o->sensors) {
			p->next_sample_ns = clock_ns();
		} else {
			p->sensors->cpu_idle(p->sensors->ctx, &ignored);
			p->next_sample_ns = clock_ns() + p->sample_ns;
		}
	}

	if (!p->fixed && p->max_threads > 1) {
		make_ahead(p);
		p->have_manager = pthread_create(&p->manager, NULL, manager_main, p) == 0;
	}

	*ret_pool = p;
	return 0;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	if ((p->n_created || p->have_manager) && !p->started) {
		/* never run: its parked workers and its manager go */
		pthread_mutex_lock(&p->lock);
		p->closing = true;
		pthread_cond_broadcast(&p->park_cond);
		pthread_cond_broadcast(&p->mgr_cond);
		pthread_mutex_unlock(&p->lock);
		if (p->have_manager)
			pthread_join(p->manager, NULL);
		for (unsigned i = 1; i <= p->n_created; i++)
			pthread_join(p->workers[i].thread, NULL);
	}
	/* Tasks queued but never run (pool_run() not called) still own their arg. */
	free_chain(drain(p));
	pool_proc_sensors_free(p->own_sensors);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->owner_cond);
	pthread_cond_destroy(&p->work_cond);
	pthread_cond_destroy(&p->mgr_cond);
	pthread_cond_destroy(&p->park_cond);
	free(p->workers);
	free(p->timeline);
	free(p->wstats);
	free(p);
}

int pool_add_full(struct pool *p, pool_fn fn, void *arg, void (*free_arg)(void *arg),
		  unsigned flags, const char *name)
{
	struct task *t;
	int r;

	if (!fn || (flags & ~POOL_PINNED)) {
		if (free_arg)
			free_arg(arg);
		return -EINVAL;
	}
	t = xmalloc(sizeof(*t));
	*t = (struct task){ .fn = fn, .arg = arg, .free_arg = free_arg, .name = name };

	pthread_mutex_lock(&p->lock);
	r = p->finished ? -ESHUTDOWN : p->err ? -ECANCELED : 0;
	if (r == 0 && (flags & POOL_PINNED)) {
		list_push(&p->pinned, TAKE_PTR(t));
		pthread_cond_signal(&p->owner_cond);
	} else if (r == 0) {
		list_push(&p->shared, TAKE_PTR(t));
		pthread_cond_signal(&p->work_cond);
		/* The owner is worker 0 too, and may be the only one idle. */
		pthread_cond_signal(&p->owner_cond);
		if (p->shared.n == 1)
			pthread_cond_signal(&p->mgr_cond);
	}
	pthread_mutex_unlock(&p->lock);
	free_chain(t); /* refused: drop it outside the lock */
	return r;
}

bool pool_failed(const struct pool *p)
{
	return atomic_load(&p->failed);
}

void pool_decide_ahead(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	bool can = !p->fixed && p->max_threads > 1 && p->sensors && p->window_open && !p->started;
	pthread_mutex_unlock(&p->lock);
	if (!can)
		return;
	/* the manager calls no sensor before pool_run(): one call at a time.
	 * A sensor that cannot tell yet (-EAGAIN: the window since
	 * pool_create() too short) leaves the decision to the manager, as
	 * without this call */
	int room = host_room(p);
	if (room == -EAGAIN)
		return;
	end_credit(p);
	pthread_mutex_lock(&p->lock);
	p->ahead = room > 0 ? AHEAD_ROOM : AHEAD_NO;
	p->next_sample_ns = clock_ns() + p->sample_ns;
	pthread_mutex_unlock(&p->lock);
}

int pool_run(struct pool *p)
{
	struct worker *owner = &p->workers[0];
	int r;

	pthread_mutex_lock(&p->lock);
	if (p->started) {
		pthread_mutex_unlock(&p->lock);
		return -EALREADY;
	}
	p->started = true;
	p->start_ns = clock_ns();
	owner->pool = p;
	owner->id = 0;
	owner->stats = &p->wstats[0];
	owner->thread = pthread_self();
	p->n_spawned = 1;
	worker_started(p);
	if (p->fixed) {
		while (p->n_spawned < p->max_threads)
			spawn_worker(p);
	} else if (p->max_threads > 1 && !p->have_manager) {
		r = pthread_create(&p->manager, NULL, manager_main, p);
		if (r != 0)
			pr_warn("cannot start the pool manager, running serially: %s", strerror(r));
		p->have_manager = r == 0;
	}
	pthread_cond_signal(&p->mgr_cond); /* the manager made with the pool: started */
	pthread_mutex_unlock(&p->lock);

	worker_loop(owner);

	if (p->have_manager)
		pthread_join(p->manager, NULL);
	/* n_created no longer changes: the manager is gone; the workers never
	 * let in saw done (wake_all) */
	for (unsigned i = 1; i <= p->n_created; i++)
		pthread_join(p->workers[i].thread, NULL);

	pthread_mutex_lock(&p->lock);
	p->end_ns = clock_ns();
	p->finished = true;
	r = p->err;
	/* the failed task may have run on another thread: its message goes
	 * to the caller with the code */
	if (r < 0)
		dm_error_set_message(p->err_msg);
	pthread_mutex_unlock(&p->lock);
	pr_debug("done: %" PRIu64 " tasks, %" PRIu64 " skipped, %u workers, %.1f ms: %d",
		 p->tasks_run, p->tasks_skipped, p->n_started, ns_to_ms(p->start_ns, p->end_ns), r);
	return r;
}

void pool_get_stats(const struct pool *p, struct pool_stats *ret_stats)
{
	*ret_stats = (struct pool_stats){
		.threads_max = p->n_started,
		.n_timeline = p->n_timeline,
		.timeline = p->timeline,
		.n_workers = p->n_started,
		.workers = p->wstats,
		.tasks_run = p->tasks_run,
		.tasks_skipped = p->tasks_skipped,
		.wall_ms = p->finished ? ns_to_ms(p->start_ns, p->end_ns) : 0,
	};
}

/* Steals val, like json_object_set_new(). */
static int set_stat(json_t *obj, const char *prefix, const char *suffix, json_t *val)
{
	char key[128];

	if (!val)
		return -ENOMEM;
	if ((size_t)snprintf(key, sizeof(key), "%s_%s", prefix, suffix) >= sizeof(key)) {
		json_decref(val);
		return -EINVAL;
	}
	return json_object_set_new(obj, key, val) < 0 ? -ENOMEM : 0;
}

int pool_stats_to_json(const struct pool *p, const char *prefix, json_t *obj)
{
	_cleanup_(json_decrefp) json_t *timeline = json_array();
	_cleanup_(json_decrefp) json_t *tasks = json_array();
	_cleanup_(json_decrefp) json_t *busy = json_array();
	struct pool_stats st;
	int r;

	if (!timeline || !tasks || !busy)
		return -ENOMEM;
	if (!prefix)
		prefix = "dump_threads";
	pool_get_stats(p, &st);
	for (unsigned i = 0; i < st.n_timeline; i++) {
		json_t *pt = json_pack("[fI]", st.timeline[i].ms, (json_int_t)st.timeline[i].workers);
		if (!pt || json_array_append_new(timeline, pt) < 0)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < st.n_workers; i++) {
		if (json_array_append_new(tasks, json_integer((json_int_t)st.workers[i].tasks)) < 0 ||
		    json_array_append_new(busy, json_real(st.workers[i].busy_ms)) < 0)
			return -ENOMEM;
	}
	if ((r = set_stat(obj, prefix, "max", json_integer(st.threads_max))) < 0 ||
	    (r = set_stat(obj, prefix, "timeline", TAKE_PTR(timeline))) < 0 ||
	    (r = set_stat(obj, prefix, "tasks", TAKE_PTR(tasks))) < 0 ||
	    (r = set_stat(obj, prefix, "busy_ms", TAKE_PTR(busy))) < 0 ||
	    (r = set_stat(obj, prefix, "tasks_skipped", json_integer((json_int_t)st.tasks_skipped))) < 0)
		return r;
	return set_stat(obj, prefix, "wall_ms", json_real(st.wall_ms));
}
