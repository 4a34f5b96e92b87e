/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the task pool.  No assertion depends on timing: when growth
 * must be observable, tasks hold their worker at a gate (a counting barrier)
 * until enough workers have arrived, or until the fake sensors have been asked
 * a given number of times.  cmocka's assert_* must run on the test thread, so
 * tasks only record what they see; the test checks it after pool_run().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/clock.h"
#include "pool/pool.h"
#include "pool/sensors.h"

/* ---- fakes ---------------------------------------------------------------- */

struct fake_sensors {
	struct pool_sensors ops;
	pthread_mutex_t m;
	pthread_cond_t c;
	double cpu, mem;
	int cpu_err; /* returned by cpu_idle when set (-EAGAIN: cannot tell yet) */
	unsigned cpu_calls, mem_calls;
	unsigned credit_calls;
	bool credit_on;
};

static void fake_credit(void *ctx, bool on)
{
	struct fake_sensors *f = ctx;
	pthread_mutex_lock(&f->m);
	f->credit_calls++;
	f->credit_on = on;
	pthread_mutex_unlock(&f->m);
}

static int fake_cpu(void *ctx, double *ret)
{
	struct fake_sensors *f = ctx;
	pthread_mutex_lock(&f->m);
	*ret = f->cpu;
	f->cpu_calls++;
	int r = f->cpu_err;
	pthread_cond_broadcast(&f->c);
	pthread_mutex_unlock(&f->m);
	return r;
}

static int fake_mem(void *ctx, double *ret)
{
	struct fake_sensors *f = ctx;
	pthread_mutex_lock(&f->m);
	*ret = f->mem;
	f->mem_calls++;
	pthread_cond_broadcast(&f->c);
	pthread_mutex_unlock(&f->m);
	return 0;
}

static void fake_init(struct fake_sensors *f, double cpu, double mem)
{
	memset(f, 0, sizeof(*f));
	f->ops = (struct pool_sensors){ .cpu_idle = fake_cpu, .mem_avail = fake_mem, .ctx = f };
	pthread_mutex_init(&f->m, NULL);
	pthread_cond_init(&f->c, NULL);
	f->cpu = cpu;
	f->mem = mem;
}

static void fake_destroy(struct fake_sensors *f)
{
	pthread_mutex_destroy(&f->m);
	pthread_cond_destroy(&f->c);
}

/* Block until the sensors were asked at least n times each. */
static void fake_wait_calls(struct fake_sensors *f, unsigned cpu_n, unsigned mem_n)
{
	pthread_mutex_lock(&f->m);
	while (f->cpu_calls < cpu_n || f->mem_calls < mem_n)
		pthread_cond_wait(&f->c, &f->m);
	pthread_mutex_unlock(&f->m);
}

static void fake_set_cpu(struct fake_sensors *f, double cpu)
{
	pthread_mutex_lock(&f->m);
	f->cpu = cpu;
	pthread_mutex_unlock(&f->m);
}

/* A gate opens when `need` tasks have arrived; each holds its worker until then. */
struct gate {
	pthread_mutex_t m;
	pthread_cond_t c;
	unsigned arrived, need;
	pthread_t threads[16];
};

static void gate_init(struct gate *g, unsigned need)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->m, NULL);
	pthread_cond_init(&g->c, NULL);
	g->need = need;
}

static void gate_destroy(struct gate *g)
{
	pthread_mutex_destroy(&g->m);
	pthread_cond_destroy(&g->c);
}

static void gate_pass(struct gate *g)
{
	pthread_mutex_lock(&g->m);
	g->threads[g->arrived++ % 16] = pthread_self();
	pthread_cond_broadcast(&g->c);
	while (g->arrived < g->need)
		pthread_cond_wait(&g->c, &g->m);
	pthread_mutex_unlock(&g->m);
}

static bool gate_threads_distinct(struct gate *g)
{
	for (unsigned i = 0; i < g->need; i++)
		for (unsigned j = i + 1; j < g->need; j++)
			if (pthread_equal(g->threads[i], g->threads[j]))
				return false;
	return true;
}

static int gate_task(struct pool *p, void *arg)
{
	gate_pass(arg);
	return 0;
}

static atomic_uint quick_runs;

static int quick_task(struct pool *p, void *arg)
{
	atomic_fetch_add(&quick_runs, 1);
	return 0;
}

static int sleep_task(struct pool *p, void *arg)
{
	usleep(20 * 1000);
	return 0;
}

/* n gate tasks (a gate for n), run to the end; the pool's stats in *st. */
static void run_gates(struct pool *p, struct gate *g, unsigned n, struct pool_stats *st)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pool_add(p, gate_task, g, 0, "gate"), 0);
	assert_int_equal(pool_run(p), 0);
	pool_get_stats(p, st);
}

/* n sleep tasks (20 ms each), run to the end; the pool's stats in *st. */
static void run_sleeps(struct pool *p, unsigned n, struct pool_stats *st)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pool_add(p, sleep_task, NULL, 0, "sleep"), 0);
	assert_int_equal(pool_run(p), 0);
	pool_get_stats(p, st);
}

/* Two gates ran on two workers, the second started well within a sample
 * period of 1 s: its decision did not wait for one. */
static void assert_grew_at_once(const struct pool_stats *st, struct gate *g)
{
	assert_int_equal(st->threads_max, 2);
	assert_true(gate_threads_distinct(g));
	assert_int_equal(st->n_timeline, 2);
	assert_true(st->timeline[1].ms < 500);
}

static void add_quick(struct pool *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pool_add(p, quick_task, NULL, 0, "quick"), 0);
}

static uint64_t tasks_total(const struct pool_stats *st)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < st->n_workers; i++)
		n += st->workers[i].tasks;
	return n;
}

/* ---- sizing --------------------------------------------------------------- */

struct hold {
	struct fake_sensors *f;
	unsigned cpu_calls, mem_calls;
};

/* Keep the owner busy until the manager has asked the sensors a few times. */
static int hold_task(struct pool *p, void *arg)
{
	struct hold *h = arg;
	fake_wait_calls(h->f, h->cpu_calls, h->mem_calls);
	return 0;
}

static void run_declined(double cpu, double mem, unsigned cpu_n, unsigned mem_n)
{
	struct fake_sensors f;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, cpu, mem);
	struct pool_opts o = { .max_threads = 4, .sensors = &f.ops, .sample_ms = 1,
			       .cpu_idle_min = 0.5, .mem_avail_min = 0.1 };
	/* cpu_idle is called once more than mem_avail: the window opening. */
	struct hold h = { .f = &f, .cpu_calls = cpu_n, .mem_calls = mem_n };

	atomic_store(&quick_runs, 0);
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(pool_add(p, hold_task, &h, 0, "hold"), 0);
	add_quick(p, 20);
	assert_int_equal(pool_run(p), 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.threads_max, 1);
	assert_int_equal(st.n_timeline, 1);
	assert_int_equal(st.timeline[0].workers, 1);
	assert_int_equal(st.workers[0].tasks, 21);
	assert_int_equal(atomic_load(&quick_runs), 20);
	pool_free(p);
	fake_destroy(&f);
}

/*
 * A growing pool makes its first workers and its manager with itself,
 * parked until pool_run() (make_ahead()): one freed without running lets
 * them go (no hang, nothing run, nothing left for a sanitizer to find), and
 * one that runs still grows only when the sensors say so.
 */
static void test_free_unrun(void **state)
{
	struct fake_sensors f;
	struct pool *p;

	fake_init(&f, 1.0, 1.0);
	struct pool_opts o = { .max_threads = 4, .sensors = &f.ops, .sample_ms = 1 };
	atomic_store(&quick_runs, 0);
	assert_int_equal(pool_create(&o, &p), 0);
	add_quick(p, 5);
	usleep(20 * 1000);
	/* parked: neither the manager nor a worker ran anything */
	assert_int_equal(f.cpu_calls, 1);
	pool_free(p);
	assert_int_equal(atomic_load(&quick_runs), 0);
	fake_destroy(&f);
}

static void test_busy_cpu_never_grows(void **state)
{
	run_declined(0.0, 1.0, 4, 3);
}

static void test_low_memory_never_grows(void **state)
{
	run_declined(1.0, 0.05, 4, 3);
}

static void test_idle_grows_to_max(void **state)
{
	struct fake_sensors f;
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, 1.0, 1.0);
	gate_init(&g, 4);
	struct pool_opts o = { .max_threads = 4, .sensors = &f.ops, .sample_ms = 1 };
	atomic_store(&quick_runs, 0);
	assert_int_equal(pool_create(&o, &p), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pool_add(p, gate_task, &g, 0, "gate"), 0);
	/* Work left queued after the gate opens: still no fifth worker. */
	add_quick(p, 200);
	assert_int_equal(pool_run(p), 0);

	pool_get_stats(p, &st);
	assert_int_equal(st.threads_max, 4);
	assert_int_equal(st.n_workers, 4);
	assert_true(gate_threads_distinct(&g));
	assert_int_equal(tasks_total(&st), 204);
	assert_int_equal(st.tasks_run, 204);
	assert_int_equal(atomic_load(&quick_runs), 200);
	pool_free(p);
	gate_destroy(&g);
	fake_destroy(&f);
}

/*
 * credit_own_first: the sensors count our own CPU time as spare from the
 * pool's creation to its first decision, and no more after it.
 */
static void test_credit_first_window(void **state)
{
	(void)state;
	struct fake_sensors f;
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, 1.0, 1.0);
	f.ops.credit_self = fake_credit;
	gate_init(&g, 2);
	struct pool_opts o = { .max_threads = 2, .sensors = &f.ops, .sample_ms = 1, .credit_own_first = true };
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(f.credit_calls, 1);
	assert_true(f.credit_on);
	run_gates(p, &g, 2, &st);
	assert_int_equal(st.threads_max, 2);
	assert_int_equal(f.credit_calls, 2);
	assert_false(f.credit_on);
	pool_free(p);
	gate_destroy(&g);
	fake_destroy(&f);

	/* without it, never asked */
	fake_init(&f, 1.0, 1.0);
	f.ops.credit_self = fake_credit;
	o.credit_own_first = false;
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(pool_run(p), 0);
	assert_int_equal(f.credit_calls, 0);
	pool_free(p);
	fake_destroy(&f);
}

struct regrow {
	struct fake_sensors *f;
	struct gate *g;
};

/* Sensors say no, then yes: the manager must ask again and grow. */
static int regrow_task(struct pool *p, void *arg)
{
	struct regrow *r = arg;
	fake_wait_calls(r->f, 4, 3);
	fake_set_cpu(r->f, 1.0);
	gate_pass(r->g);
	return 0;
}

static void test_rechecks_after_no(void **state)
{
	struct fake_sensors f;
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, 0.0, 1.0);
	gate_init(&g, 2);
	struct regrow rg = { .f = &f, .g = &g };
	struct pool_opts o = { .max_threads = 2, .sensors = &f.ops, .sample_ms = 1,
			       .cpu_idle_min = 0.5 };
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(pool_add(p, regrow_task, &rg, 0, "regrow"), 0);
	assert_int_equal(pool_add(p, gate_task, &g, 0, "gate"), 0);
	assert_int_equal(pool_run(p), 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.threads_max, 2);
	assert_true(gate_threads_distinct(&g));
	pool_free(p);
	gate_destroy(&g);
	fake_destroy(&f);
}

/*
 * The first CPU window opens at pool_create(): a pool made ahead of its work
 * (the dump makes it before the freeze) adds its first worker as soon as it
 * runs, not a sample period later.  With sample_ms 1000 and the pool
 * created 1.1 s before pool_run(), the second worker must start well
 * within the first period (a window opened at pool_run() would make it wait
 * 1000 ms at least); a second pool run at once after its creation still
 * waits its first period.
 */
static void test_window_opens_at_create(void **state)
{
	struct fake_sensors f;
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, 1.0, 1.0);
	gate_init(&g, 2);
	struct pool_opts o = { .max_threads = 2, .sensors = &f.ops, .sample_ms = 1000 };
	assert_int_equal(pool_create(&o, &p), 0);
	/* the opening call, made by pool_create() */
	assert_int_equal(f.cpu_calls, 1);
	usleep(1100 * 1000);
	run_gates(p, &g, 2, &st);
	assert_grew_at_once(&st, &g);
	/* asked once at once: no second opening at pool_run() */
	assert_int_equal(f.cpu_calls, 2);
	pool_free(p);
	gate_destroy(&g);

	/* made and run at once: the first period is waited for */
	gate_init(&g, 2);
	o.sample_ms = 300;
	assert_int_equal(pool_create(&o, &p), 0);
	run_gates(p, &g, 2, &st);
	assert_int_equal(st.threads_max, 2);
	assert_true(st.timeline[1].ms >= 250);
	pool_free(p);
	gate_destroy(&g);
	fake_destroy(&f);
}

/*
 * Sensors the caller made ahead of the work (window_open: the migration
 * makes them at START, the frozen dump comes tens of ms later): pool_create()
 * does not open a window of its own, the first decision comes with the first
 * queued work, over the caller's window: made and run at once, with a
 * sample period of 1 s, the second worker starts well within it (a window
 * of its own would make it wait 1 s).  And a "no" then is asked again a
 * period later, as always: the pool stays at one for a run shorter than that.
 */
static void test_window_open_by_caller(void **state)
{
	struct fake_sensors f;
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, 1.0, 1.0);
	gate_init(&g, 2);
	struct pool_opts o = { .max_threads = 2, .sensors = &f.ops, .sample_ms = 1000, .window_open = true };
	assert_int_equal(pool_create(&o, &p), 0);
	/* no opening call: the window is the caller's */
	assert_int_equal(f.cpu_calls, 0);
	run_gates(p, &g, 2, &st);
	assert_grew_at_once(&st, &g);
	assert_int_equal(f.cpu_calls, 1);
	pool_free(p);
	gate_destroy(&g);

	/* the caller's window says busy: one worker, asked once */
	fake_set_cpu(&f, 0.0);
	f.cpu_calls = 0;
	assert_int_equal(pool_create(&o, &p), 0);
	run_sleeps(p, 4, &st);
	assert_int_equal(st.threads_max, 1);
	assert_int_equal(f.cpu_calls, 1);
	pool_free(p);
	fake_destroy(&f);
}

/*
 * pool_decide_ahead(): the first decision taken before pool_run() (the
 * dump's, before the freeze).  A pool made and run at once with a sample
 * period of 1 s would wait that period for its second worker
 * (test_window_opens_at_create); decided ahead with room, the second worker
 * comes with the first queued work and the sensors are not read again; a
 * "no" keeps it at one for a run shorter than a period, asked once; a fixed
 * pool reads no sensor.
 */
static void test_decide_ahead(void **state)
{
	struct fake_sensors f;
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, 1.0, 1.0);
	gate_init(&g, 2);
	struct pool_opts o = { .max_threads = 2, .sensors = &f.ops, .sample_ms = 1000 };
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(f.cpu_calls, 1);
	pool_decide_ahead(p);
	assert_int_equal(f.cpu_calls, 2);
	run_gates(p, &g, 2, &st);
	assert_grew_at_once(&st, &g);
	assert_int_equal(f.cpu_calls, 2);
	pool_free(p);
	gate_destroy(&g);

	/* the host busy then: one worker, and the manager does not ask again
	 * at pool_run() (over the caller's window it would ask at once) */
	fake_set_cpu(&f, 0.0);
	f.cpu_calls = 0;
	o.window_open = true;
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(f.cpu_calls, 0);
	pool_decide_ahead(p);
	assert_int_equal(f.cpu_calls, 1);
	run_sleeps(p, 4, &st);
	assert_int_equal(st.threads_max, 1);
	assert_int_equal(f.cpu_calls, 1);
	pool_free(p);

	/* a sensor that cannot tell yet: no verdict, the manager asks at the
	 * first queued work as without the call (and finds room) */
	fake_set_cpu(&f, 1.0);
	f.cpu_err = -EAGAIN;
	f.cpu_calls = 0;
	gate_init(&g, 2);
	assert_int_equal(pool_create(&o, &p), 0);
	pool_decide_ahead(p);
	assert_int_equal(f.cpu_calls, 1);
	f.cpu_err = 0;
	run_gates(p, &g, 2, &st);
	assert_grew_at_once(&st, &g);
	assert_int_equal(f.cpu_calls, 2);
	pool_free(p);
	gate_destroy(&g);

	/* a fixed pool: no sensor at all */
	f.cpu_calls = 0;
	struct pool_opts fx = { .fixed_threads = 2, .sensors = &f.ops };
	assert_int_equal(pool_create(&fx, &p), 0);
	pool_decide_ahead(p);
	add_quick(p, 4);
	assert_int_equal(pool_run(p), 0);
	assert_int_equal(f.cpu_calls, 0);
	pool_free(p);
	fake_destroy(&f);
}

static void test_fixed_threads(void **state)
{
	for (unsigned n = 1; n <= 3; n++) {
		struct fake_sensors f;
		struct gate g;
		struct pool *p;
		struct pool_stats st;

		fake_init(&f, 1.0, 1.0);
		gate_init(&g, n);
		struct pool_opts o = { .fixed_threads = n, .max_threads = 8, .sensors = &f.ops,
				       .sample_ms = 1 };
		assert_int_equal(pool_create(&o, &p), 0);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(pool_add(p, gate_task, &g, 0, "gate"), 0);
		add_quick(p, 50);
		assert_int_equal(pool_run(p), 0);
		pool_get_stats(p, &st);
		assert_int_equal(st.threads_max, n);
		assert_int_equal(st.n_timeline, n);
		assert_true(gate_threads_distinct(&g));
		assert_int_equal(tasks_total(&st), n + 50);
		assert_int_equal(f.cpu_calls + f.mem_calls, 0);
		pool_free(p);
		gate_destroy(&g);
		fake_destroy(&f);
	}
}

/* ---- pinned tasks, task trees ----------------------------------------------- */

static pthread_t owner_thread;
static atomic_uint pinned_runs, pinned_elsewhere;

static int pinned_task(struct pool *p, void *arg)
{
	atomic_fetch_add(&pinned_runs, 1);
	if (!pthread_equal(pthread_self(), owner_thread))
		atomic_fetch_add(&pinned_elsewhere, 1);
	return 0;
}

/* Runs on any worker, then hands pinned work to the owner. */
static int gate_then_pin_task(struct pool *p, void *arg)
{
	gate_pass(arg);
	for (int i = 0; i < 50; i++)
		if (pool_add(p, pinned_task, NULL, POOL_PINNED, "pinned") < 0)
			return -EIO;
	return 0;
}

static void test_pinned_run_on_owner(void **state)
{
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	owner_thread = pthread_self();
	atomic_store(&pinned_runs, 0);
	atomic_store(&pinned_elsewhere, 0);
	gate_init(&g, 4);
	struct pool_opts o = { .fixed_threads = 4 };
	assert_int_equal(pool_create(&o, &p), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pool_add(p, pinned_task, NULL, POOL_PINNED, "pinned"), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pool_add(p, gate_then_pin_task, &g, 0, "gate"), 0);
	add_quick(p, 100);
	assert_int_equal(pool_run(p), 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.threads_max, 4);
	assert_true(gate_threads_distinct(&g));
	assert_int_equal(atomic_load(&pinned_runs), 10 + 4 * 50);
	assert_int_equal(atomic_load(&pinned_elsewhere), 0);
	pool_free(p);
	gate_destroy(&g);
}

#define TREE_N 1000

struct tree {
	atomic_uint runs[TREE_N];
	atomic_uint misplaced; /* pinned nodes run off the owner thread */
};

struct node {
	struct tree *tree;
	unsigned i;
};

static int tree_task(struct pool *p, void *arg);

static int tree_add(struct pool *p, struct tree *t, unsigned i)
{
	struct node *n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	*n = (struct node){ .tree = t, .i = i };
	/* Every third node needs the owner thread (a ptrace step). */
	return pool_add_full(p, tree_task, n, free, i % 3 == 0 ? POOL_PINNED : 0, "node");
}

static int tree_task(struct pool *p, void *arg)
{
	struct node *n = arg;
	int r;

	atomic_fetch_add(&n->tree->runs[n->i], 1);
	if (n->i % 3 == 0 && !pthread_equal(pthread_self(), owner_thread))
		atomic_fetch_add(&n->tree->misplaced, 1);
	for (unsigned c = 2 * n->i + 1; c <= 2 * n->i + 2 && c < TREE_N; c++) {
		r = tree_add(p, n->tree, c);
		if (r < 0)
			return r;
	}
	return 0;
}

static void test_task_tree(void **state)
{
	struct fake_sensors f;
	const struct pool_opts opts[] = {
		{ .fixed_threads = 1 },
		{ .fixed_threads = 3 },
		{ .max_threads = 4, .sensors = &f.ops, .sample_ms = 1 },
	};

	owner_thread = pthread_self();
	for (size_t k = 0; k < ARRAY_SIZE(opts); k++) {
		struct tree *t = calloc(1, sizeof(*t));
		struct pool *p;
		struct pool_stats st;

		assert_non_null(t);
		fake_init(&f, 1.0, 1.0);
		assert_int_equal(pool_create(&opts[k], &p), 0);
		assert_int_equal(tree_add(p, t, 0), 0);
		assert_int_equal(pool_run(p), 0);
		for (unsigned i = 0; i < TREE_N; i++)
			assert_int_equal(atomic_load(&t->runs[i]), 1);
		assert_int_equal(atomic_load(&t->misplaced), 0);
		pool_get_stats(p, &st);
		assert_int_equal(st.tasks_run, TREE_N);
		assert_int_equal(tasks_total(&st), TREE_N);
		assert_int_equal(st.tasks_skipped, 0);
		pool_free(p);
		fake_destroy(&f);
		free(t);
	}
}

/* ---- errors ------------------------------------------------------------------ */

static atomic_uint freed, ran_mask;

static void count_free(void *arg)
{
	atomic_fetch_add(&freed, 1);
}

static int numbered_task(struct pool *p, void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	atomic_fetch_or(&ran_mask, 1U << i);
	return i == 3 ? -EIO : 0;
}

static void test_error_stops_rest(void **state)
{
	struct pool *p;
	struct pool_stats st;
	struct pool_opts o = { .fixed_threads = 1 };

	atomic_store(&freed, 0);
	atomic_store(&ran_mask, 0);
	assert_int_equal(pool_create(&o, &p), 0);
	for (uintptr_t i = 0; i < 10; i++)
		assert_int_equal(pool_add_full(p, numbered_task, (void *)i, count_free, 0, "n"), 0);
	assert_false(pool_failed(p));
	assert_int_equal(pool_run(p), -EIO);
	assert_true(pool_failed(p));
	assert_int_equal(atomic_load(&ran_mask), 0xf);
	assert_int_equal(atomic_load(&freed), 10);
	pool_get_stats(p, &st);
	assert_int_equal(st.tasks_run, 4);
	assert_int_equal(st.tasks_skipped, 6);

	/* The pool is over: new tasks are refused and their arg freed. */
	assert_int_equal(pool_add_full(p, numbered_task, NULL, count_free, 0, "late"), -ESHUTDOWN);
	assert_int_equal(atomic_load(&freed), 11);
	assert_int_equal(pool_run(p), -EALREADY);
	pool_free(p);
}

static atomic_int long_add_result;
static atomic_bool long_finished;

/* A long task already running when another fails: it sees pool_failed(). */
static int long_task(struct pool *p, void *arg)
{
	const struct timespec ms = { 0, 1000000 };

	while (!pool_failed(p))
		nanosleep(&ms, NULL);
	atomic_store(&long_add_result, pool_add(p, quick_task, NULL, 0, "late"));
	atomic_store(&long_finished, true);
	return -ENOENT; /* a second error: not the one pool_run() returns */
}

static int failing_task(struct pool *p, void *arg)
{
	return -EINVAL;
}

static void test_error_running_tasks_finish(void **state)
{
	struct pool *p;
	struct pool_stats st;
	struct pool_opts o = { .fixed_threads = 2 };

	atomic_store(&quick_runs, 0);
	atomic_store(&long_finished, false);
	atomic_store(&freed, 0);
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(pool_add(p, long_task, NULL, 0, "long"), 0);
	assert_int_equal(pool_add(p, failing_task, NULL, 0, "fail"), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pool_add_full(p, quick_task, NULL, count_free, 0, "quick"), 0);
	assert_int_equal(pool_run(p), -EINVAL);
	assert_true(atomic_load(&long_finished));
	assert_int_equal(atomic_load(&long_add_result), -ECANCELED);
	assert_int_equal(atomic_load(&quick_runs), 0);
	assert_int_equal(atomic_load(&freed), 8);
	pool_get_stats(p, &st);
	assert_int_equal(st.tasks_run, 2);
	assert_int_equal(st.tasks_skipped, 8);
	pool_free(p);
}

/* ---- error messages cross threads ------------------------------------------ */

#define WORKER_MSG "unsupported fd 7 of process 1234: socket:[5678] (AF_NETLINK)"

static pthread_t owner_thread;
static atomic_bool worker_failed, failed_on_owner;

/* Unpinned: fails with a message of its own, on a worker (the owner is held). */
static int msg_failing_task(struct pool *p, void *arg)
{
	(void)p;
	atomic_store(&failed_on_owner, pthread_equal(pthread_self(), owner_thread));
	int r = arg ? dm_fail(-ENOTSUP, WORKER_MSG) : -ENOTSUP;
	atomic_store(&worker_failed, true);
	return r;
}

/* Pinned: keeps the owner busy until the other task has failed (bounded). */
static int hold_owner_task(struct pool *p, void *arg)
{
	const struct timespec ms = { 0, 1000000 };

	(void)p;
	(void)arg;
	for (int i = 0; i < 120000 && !atomic_load(&worker_failed); i++)
		nanosleep(&ms, NULL);
	return 0;
}

static void run_msg_pool(bool with_msg)
{
	struct pool *p;
	struct pool_opts o = { .fixed_threads = 2 };

	owner_thread = pthread_self();
	atomic_store(&worker_failed, false);
	atomic_store(&failed_on_owner, true);
	/* an old message of this thread must not pass for the task's */
	dm_fail(-EIO, "stale message of an earlier error");
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(pool_add(p, msg_failing_task, with_msg ? (void *)1 : NULL, 0, "fail"), 0);
	assert_int_equal(pool_add(p, hold_owner_task, NULL, POOL_PINNED, "hold"), 0);
	assert_int_equal(pool_run(p), -ENOTSUP);
	assert_true(atomic_load(&worker_failed));
	assert_false(atomic_load(&failed_on_owner));
	pool_free(p);
}

/* A task that fails on a worker with a message: pool_run()'s caller gets it. */
static void test_error_message_crosses_threads(void **state)
{
	run_msg_pool(true);
	assert_string_equal(dm_last_error(), WORKER_MSG);
	assert_string_equal(dm_error_text(-ENOTSUP), WORKER_MSG);
}

/* A task that fails without one: no message, never another thread's old one. */
static void test_error_without_message(void **state)
{
	run_msg_pool(false);
	assert_string_equal(dm_last_error(), "");
	assert_string_equal(dm_error_text(-ENOTSUP), strerror(ENOTSUP));
}

static atomic_int on_owner_runs, off_owner_runs;

static int where_task(struct pool *p, void *arg)
{
	(void)p;
	(void)arg;
	if (pthread_equal(pthread_self(), owner_thread))
		atomic_fetch_add(&on_owner_runs, 1);
	else
		atomic_fetch_add(&off_owner_runs, 1);
	return 0;
}

/* owner_pinned_only: every unpinned task runs on a worker. */
static void test_owner_pinned_only(void **state)
{
	struct pool *p;
	struct pool_opts o = { .fixed_threads = 2, .owner_pinned_only = true };

	owner_thread = pthread_self();
	atomic_store(&on_owner_runs, 0);
	atomic_store(&off_owner_runs, 0);
	assert_int_equal(pool_create(&o, &p), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(pool_add(p, where_task, NULL, 0, "where"), 0);
	assert_int_equal(pool_run(p), 0);
	assert_int_equal(atomic_load(&on_owner_runs), 0);
	assert_int_equal(atomic_load(&off_owner_runs), 20);
	pool_free(p);
}

/* An error box keeps the first error with the message of the thread that put it. */
static struct dm_errbox box = DM_ERRBOX_INIT;

static void *box_thread(void *arg)
{
	dm_fail(-EPIPE, "%s", (const char *)arg);
	dm_errbox_put(&box, -EPIPE);
	return NULL;
}

static void test_errbox(void **state)
{
	pthread_t t;

	dm_error_clear();
	assert_int_equal(dm_errbox_code(&box), 0);
	assert_int_equal(dm_errbox_take(&box), 0);
	assert_string_equal(dm_last_error(), "");
	assert_int_equal(pthread_create(&t, NULL, box_thread, "page server: the peer went away"), 0);
	pthread_join(t, NULL);
	/* a second error does not replace the first */
	dm_fail(-EIO, "second");
	assert_int_equal(dm_errbox_put(&box, -EIO), -EPIPE);
	dm_error_clear();
	assert_int_equal(dm_errbox_code(&box), -EPIPE);
	assert_int_equal(dm_errbox_take(&box), -EPIPE);
	assert_string_equal(dm_last_error(), "page server: the peer went away");
}

static void test_misc(void **state)
{
	struct pool *p;
	struct pool_stats st;

	/* Nothing to do: returns at once. */
	assert_int_equal(pool_create(NULL, &p), 0);
	assert_int_equal(pool_run(p), 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.threads_max, 1);
	assert_int_equal(st.tasks_run, 0);
	pool_free(p);

	/* Never run: queued args are still freed. */
	atomic_store(&freed, 0);
	assert_int_equal(pool_create(NULL, &p), 0);
	assert_int_equal(pool_add_full(p, quick_task, NULL, count_free, 0, "q"), 0);
	assert_int_equal(pool_add_full(p, quick_task, NULL, count_free, POOL_PINNED, "q"), 0);
	assert_int_equal(pool_add_full(p, quick_task, NULL, count_free, 0x80, "bad"), -EINVAL);
	assert_int_equal(atomic_load(&freed), 1);
	pool_free(p);
	assert_int_equal(atomic_load(&freed), 3);
	pool_free(NULL);

	struct pool_opts o = { .max_threads = 100000 };
	assert_int_equal(pool_create(&o, &p), -EINVAL);
}

/* ---- stats ------------------------------------------------------------------- */

static void test_timeline_and_json(void **state)
{
	struct fake_sensors f;
	struct gate g;
	struct pool *p;
	struct pool_stats st;

	fake_init(&f, 1.0, 1.0);
	gate_init(&g, 3);
	struct pool_opts o = { .max_threads = 3, .sensors = &f.ops, .sample_ms = 1 };
	assert_int_equal(pool_create(&o, &p), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pool_add(p, gate_task, &g, 0, "gate"), 0);
	add_quick(p, 10);
	assert_int_equal(pool_run(p), 0);

	pool_get_stats(p, &st);
	assert_int_equal(st.n_timeline, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(st.timeline[i].workers, i + 1);
		assert_true(st.timeline[i].ms >= 0);
		if (i)
			assert_true(st.timeline[i].ms >= st.timeline[i - 1].ms);
	}
	assert_true(st.wall_ms >= st.timeline[2].ms);

	json_t *obj = json_object();
	assert_non_null(obj);
	assert_int_equal(pool_stats_to_json(p, NULL, obj), 0);
	assert_int_equal(json_integer_value(json_object_get(obj, "dump_threads_max")), 3);
	json_t *tl = json_object_get(obj, "dump_threads_timeline");
	assert_true(json_is_array(tl));
	assert_int_equal(json_array_size(tl), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *pt = json_array_get(tl, i);
		assert_true(json_is_real(json_array_get(pt, 0)));
		assert_int_equal(json_integer_value(json_array_get(pt, 1)), i + 1);
	}
	json_t *tasks = json_object_get(obj, "dump_threads_tasks");
	json_int_t sum = 0;
	for (size_t i = 0; i < json_array_size(tasks); i++)
		sum += json_integer_value(json_array_get(tasks, i));
	assert_int_equal(sum, 13);
	assert_int_equal(json_array_size(json_object_get(obj, "dump_threads_busy_ms")), 3);
	assert_non_null(json_object_get(obj, "dump_threads_wall_ms"));
	assert_int_equal(pool_stats_to_json(p, "restore_threads", obj), 0);
	assert_non_null(json_object_get(obj, "restore_threads_max"));
	json_decref(obj);

	pool_free(p);
	gate_destroy(&g);
	fake_destroy(&f);
}

/* ---- real sensors ------------------------------------------------------------ */

static void test_parsers(void **state)
{
	uint64_t idle, total, v;
	double cpus;
	char *path;

	assert_int_equal(pool_parse_proc_stat("cpu  10 2 30 400 5 6 7 8 100 0\ncpu0 1 2 3 4\n",
					      &idle, &total), 0);
	assert_int_equal(idle, 405);
	assert_int_equal(total, 468);
	assert_int_equal(pool_parse_proc_stat("cpu  1 2 3 4\n", &idle, &total), 0);
	assert_int_equal(idle, 4);
	assert_int_equal(total, 10);
	assert_int_equal(pool_parse_proc_stat("intr 1 2 3\n", &idle, &total), -EBADMSG);

	static const char meminfo[] = "MemTotal:       16000000 kB\n"
				      "MemFree:         1000000 kB\n"
				      "MemAvailable:    8000000 kB\n";
	assert_int_equal(pool_parse_key_u64(meminfo, "MemTotal", &v), 0);
	assert_int_equal(v, 16000000);
	assert_int_equal(pool_parse_key_u64(meminfo, "MemAvailable", &v), 0);
	assert_int_equal(v, 8000000);
	assert_int_equal(pool_parse_key_u64(meminfo, "MemAvail", &v), -ENOENT);
	assert_int_equal(pool_parse_key_u64("usage_usec 123\nuser_usec 100\n", "usage_usec", &v), 0);
	assert_int_equal(v, 123);
	assert_int_equal(pool_parse_key_u64("usage_usec x\n", "usage_usec", &v), -EBADMSG);
	assert_int_equal(pool_parse_key_u64("usage_usec 12x\n", "usage_usec", &v), -EBADMSG);

	assert_int_equal(pool_parse_cpu_max("max 100000\n", &cpus), -ENODATA);
	assert_int_equal(pool_parse_cpu_max("150000 100000\n", &cpus), 0);
	assert_true(cpus > 1.49 && cpus < 1.51);
	assert_int_equal(pool_parse_cpu_max("100000 0\n", &cpus), -EBADMSG);
	assert_int_equal(pool_parse_memory_max("max\n", &v), -ENODATA);
	assert_int_equal(pool_parse_memory_max("1073741824\n", &v), 0);
	assert_int_equal(v, 1073741824);
	assert_int_equal(pool_parse_memory_max("-1\n", &v), -EBADMSG);

	assert_int_equal(pool_parse_cgroup2_path("4:memory:/a\n0::/system.slice/x.scope\n", &path), 0);
	assert_string_equal(path, "/system.slice/x.scope");
	free(path);
	assert_int_equal(pool_parse_cgroup2_path("4:memory:/a\n", &path), -ENOENT);
}

static void test_proc_sensors(void **state)
{
	const struct timespec ms5 = { 0, 5000000 };
	struct pool_sensors *s;
	double v = -1;
	int r;

	assert_int_equal(pool_proc_sensors_new(&s), 0);
	assert_int_equal(s->mem_avail(s->ctx, &v), 0);
	assert_true(v > 0 && v <= 1);
	/* A window needs a tick per CPU; the ticks will come. */
	for (int i = 0; i < 2; i++) {
		while ((r = s->cpu_idle(s->ctx, &v)) == -EAGAIN)
			nanosleep(&ms5, NULL);
		assert_int_equal(r, 0);
		assert_true(v >= 0 && v <= 1);
	}
	/* our own CPU time counts as idle while credited: a window this
	 * thread keeps busy looks idler with the credit than without (the two
	 * windows follow each other: a load that comes or goes between them
	 * is retried, up to 5 times) */
	bool credited = false;
	for (int attempt = 0; attempt < 5 && !credited; attempt++) {
		double busy[2];
		for (int on = 0; on < 2; on++) {
			s->credit_self(s->ctx, on);
			while (s->cpu_idle(s->ctx, &v) == -EAGAIN)
				nanosleep(&ms5, NULL);
			uint64_t end = clock_ns() + 80000000;
			while (clock_ns() < end)
				;
			while ((r = s->cpu_idle(s->ctx, &busy[on])) == -EAGAIN)
				;
			assert_int_equal(r, 0);
		}
		credited = busy[1] > busy[0] + 0.1;
	}
	assert_true(credited);
	pool_proc_sensors_free(s);
	pool_proc_sensors_free(NULL);

	/* The default pool uses them. */
	struct tree *t = calloc(1, sizeof(*t));
	struct pool *p;
	struct pool_opts o = { .max_threads = 2, .sample_ms = 1 };

	assert_non_null(t);
	owner_thread = pthread_self();
	assert_int_equal(pool_create(&o, &p), 0);
	assert_int_equal(tree_add(p, t, 0), 0);
	assert_int_equal(pool_run(p), 0);
	for (unsigned i = 0; i < TREE_N; i++)
		assert_int_equal(atomic_load(&t->runs[i]), 1);
	pool_free(p);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_busy_cpu_never_grows),
		cmocka_unit_test(test_credit_first_window),
		cmocka_unit_test(test_low_memory_never_grows),
		cmocka_unit_test(test_idle_grows_to_max),
		cmocka_unit_test(test_free_unrun),
		cmocka_unit_test(test_rechecks_after_no),
		cmocka_unit_test(test_window_opens_at_create),
		cmocka_unit_test(test_window_open_by_caller),
		cmocka_unit_test(test_decide_ahead),
		cmocka_unit_test(test_fixed_threads),
		cmocka_unit_test(test_pinned_run_on_owner),
		cmocka_unit_test(test_task_tree),
		cmocka_unit_test(test_error_stops_rest),
		cmocka_unit_test(test_error_running_tasks_finish),
		cmocka_unit_test(test_error_message_crosses_threads),
		cmocka_unit_test(test_error_without_message),
		cmocka_unit_test(test_owner_pinned_only),
		cmocka_unit_test(test_errbox),
		cmocka_unit_test(test_misc),
		cmocka_unit_test(test_timeline_and_json),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_proc_sensors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
