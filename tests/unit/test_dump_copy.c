/* SPDX-License-Identifier: MIT */
/*
 * dump/dump-mm.c: dump_copy_pick(), the choice of the chunk a page copy task
 * takes.  Workers are simulated: each "worker" picks a chunk (its process's
 * copiers go up) and later finishes it (they go down), in a fixed order, so
 * the verdicts are the same on any machine.  The rules: a worker goes on
 * with a process nobody else copies (the begun one first, else the one with
 * the most chunks left), and shares a process only when every process left
 * is being copied; every chunk is taken exactly once, in order within its
 * process.  dump/dump-files.c: dump_file_path() gives one file met by two
 * workers at once one entry (two threads, started together, many times).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "dump/dump-internal.h"

#define NPROC_MAX 8

struct sim {
	struct dump_ctx d;
	struct dproc procs[NPROC_MAX];
	struct dproc *queue[NPROC_MAX];
	struct dump_chunk chunks[NPROC_MAX][64];
	unsigned seen[NPROC_MAX][64];
};

/* Processes with n[i] chunks each, queued in that order. */
static void sim_init(struct sim *s, const size_t *n, size_t nprocs)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < nprocs; i++) {
		struct dproc *p = &s->procs[i];
		p->pid = (pid_t)(100 + i);
		for (size_t k = 0; k < n[i]; k++)
			s->chunks[i][k] = (struct dump_chunk){ .vaddr = 0x10000000 * (i + 1) + k * 4096,
							       .len = 4096, .file_off = k * 4096 };
		p->chunks = s->chunks[i];
		p->n_chunks = n[i];
		s->queue[i] = p;
	}
	s->d.copy_q = s->queue;
	s->d.n_copy_q = nprocs;
	s->d.copy_q_cap = NPROC_MAX;
}

/* Pick one chunk, check it is the next of its process and not taken before. */
static struct dproc *sim_pick(struct sim *s)
{
	struct dump_chunk c;
	struct dproc *p = dump_copy_pick(&s->d, &c);

	if (!p)
		return NULL;
	size_t i = (size_t)(p - s->procs), k = (size_t)((c.vaddr - 0x10000000 * (i + 1)) / 4096);
	assert_true(i < NPROC_MAX && k < p->n_chunks);
	assert_int_equal(k, p->next_chunk - 1); /* in order within the process */
	assert_int_equal(c.file_off, k * 4096);
	s->seen[i][k]++;
	return p;
}

static bool any_idle_left(const struct sim *s, size_t nprocs)
{
	for (size_t i = 0; i < nprocs; i++)
		if (!s->procs[i].copiers && s->procs[i].next_chunk < s->procs[i].n_chunks)
			return true;
	return false;
}

/* Two workers alternating over three processes of 4, 6 and 2 chunks. */
static void test_workers_stay_apart(void **state)
{
	static const size_t n[] = { 4, 6, 2 };
	struct sim s;
	struct dproc *a, *b;

	(void)state;
	sim_init(&s, n, 3);
	/* the first takes the biggest, the second the biggest nobody copies */
	a = sim_pick(&s);
	assert_ptr_equal(a, &s.procs[1]);
	b = sim_pick(&s);
	assert_ptr_equal(b, &s.procs[0]);
	assert_int_equal(a->copiers, 1);
	assert_int_equal(b->copiers, 1);

	/* from then on each finishes and picks again, in turn: never the
	 * other's process while one nobody copies has chunks */
	struct dproc **w[2] = { &a, &b };
	unsigned shared = 0;
	for (unsigned turn = 0; a || b; turn++) {
		struct dproc **me = w[turn % 2], *other = *w[(turn + 1) % 2];
		if (!*me)
			continue;
		struct dproc *was = *me;
		was->copiers--;
		bool idle_left = any_idle_left(&s, 3);
		bool was_left = was->next_chunk < was->n_chunks;
		*me = sim_pick(&s);
		if (!*me)
			continue;
		if (*me == other) {
			assert_false(idle_left);
			shared++;
		}
		/* a worker goes on with its own process while it has chunks */
		if (was_left)
			assert_ptr_equal(*me, was);
	}
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(s.procs[i].next_chunk, n[i]);
		assert_int_equal(s.procs[i].copiers, 0);
		for (size_t k = 0; k < n[i]; k++)
			assert_int_equal(s.seen[i][k], 1);
	}
	/* sharing only at the end: at most the last process's chunks */
	assert_true(shared <= 2);
	assert_int_equal(s.d.n_copy_q, 0);
	assert_null(dump_copy_pick(&s.d, &(struct dump_chunk){ 0 }));
}

/* One big process: every worker copies it (nothing else to do). */
static void test_one_process_is_shared(void **state)
{
	static const size_t n[] = { 8 };
	struct sim s;

	(void)state;
	sim_init(&s, n, 1);
	struct dproc *a = sim_pick(&s), *b = sim_pick(&s), *c = sim_pick(&s);
	assert_ptr_equal(a, &s.procs[0]);
	assert_ptr_equal(b, &s.procs[0]);
	assert_ptr_equal(c, &s.procs[0]);
	assert_int_equal(s.procs[0].copiers, 3);
	for (unsigned i = 3; i < 8; i++)
		assert_non_null(sim_pick(&s));
	assert_null(sim_pick(&s));
	for (size_t k = 0; k < 8; k++)
		assert_int_equal(s.seen[0][k], 1);
}

/* When every process left is copied, a worker joins the one with the fewest
 * copiers, then the most chunks left. */
static void test_join_fewest_copiers(void **state)
{
	static const size_t n[] = { 3, 5 };
	struct sim s;

	(void)state;
	sim_init(&s, n, 2);
	assert_ptr_equal(sim_pick(&s), &s.procs[1]); /* most left */
	assert_ptr_equal(sim_pick(&s), &s.procs[0]); /* nobody copies it */
	/* both busy, one copier each: the one with more left (4 against 2) */
	assert_ptr_equal(sim_pick(&s), &s.procs[1]);
	/* procs[1] has two copiers now, procs[0] one: the fewest copiers */
	assert_ptr_equal(sim_pick(&s), &s.procs[0]);
}

struct path_race {
	struct dump_ctx *d;
	pthread_barrier_t *go;
	uint32_t id;
	int err;
};

static void *path_worker(void *arg)
{
	struct path_race *w = arg;
	pthread_barrier_wait(w->go);
	w->id = dump_file_path(w->d, DM__FILE_TYPE__FILE_REG, "/proc/self/exe", false, getpid(),
			       "/proc/self/exe", &w->err);
	return NULL;
}

static void test_file_path_once(void **state)
{
	(void)state;
	struct dump_ctx *d = calloc(1, sizeof(*d));
	pthread_barrier_t go;
	assert_non_null(d);
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->path_lock, NULL);
	pthread_barrier_init(&go, NULL, 2);
	for (int it = 0; it < 3000; it++) {
		struct path_race w[2] = { { d, &go, 0, -1 }, { d, &go, 0, -1 } };
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, path_worker, &w[1]), 0);
		path_worker(&w[0]);
		pthread_join(th, NULL);
		assert_int_equal(w[0].err, 0);
		assert_int_equal(w[1].err, 0);
		assert_int_equal(w[0].id, w[1].id);
		assert_int_equal(d->nfiles, 1);
		for (size_t i = 0; i < d->nfiles; i++)
			protobuf_c_message_free_unpacked(&d->files[i]->base, NULL);
		d->nfiles = 0;
		d->nowners = 0;
	}
	free(d->files);
	free(d->owners);
	pthread_barrier_destroy(&go);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->path_lock);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workers_stay_apart),
		cmocka_unit_test(test_one_process_is_shared),
		cmocka_unit_test(test_join_fewest_copiers),
		cmocka_unit_test(test_file_path_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
