/* SPDX-License-Identifier: MIT */
/*
 * The rootfs transfer's order (src/migrate/rootfs-sched.c): the three
 * stacks, non-preemption, the same-directory rule, the miss path, and the
 * paper's worked example of smallest-first against random order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "migrate/rootfs-sched.h"

/* send file i to its end, one chunk per call of next; returns the order */
static void drain(struct rfs_sched *s, uint32_t *order, enum rfs_why *why, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		assert_true(rfs_sched_next(s, &order[k], &why[k]));
		rfs_sched_sent(s, order[k], true);
	}
	uint32_t i;
	enum rfs_why w;
	assert_false(rfs_sched_next(s, &i, &w));
}

/* sizes 50 10 40 20 30, all in dir 0 */
static const uint64_t sizes5[] = { 50, 10, 40, 20, 30 };
static const uint32_t dirs5[] = { 0, 0, 0, 0, 0 };

static void test_small_first(void **st)
{
	(void)st;
	struct rfs_sched *s = rfs_sched_new(sizes5, dirs5, 5, false);
	uint32_t o[5];
	enum rfs_why w[5];
	drain(s, o, w, 5);
	const uint32_t want[] = { 1, 3, 4, 2, 0 };
	for (int k = 0; k < 5; k++) {
		assert_int_equal(o[k], want[k]);
		assert_int_equal(w[k], RFS_SMALL_FIRST);
	}
	assert_int_equal(rfs_sched_left(s), 0);
	rfs_sched_free(s);
}

static void test_walk_order(void **st)
{
	(void)st;
	struct rfs_sched *s = rfs_sched_new(sizes5, dirs5, 5, true);
	uint32_t o[5];
	enum rfs_why w[5];
	drain(s, o, w, 5);
	for (uint32_t k = 0; k < 5; k++)
		assert_int_equal(o[k], k);
	rfs_sched_free(s);
}

/* the working set before everything, smallest on top; then stack 2, then 3 */
static void test_stacks(void **st)
{
	(void)st;
	/* files 0..5; dirs: 0,0 in dir 7; 2,3 in dir 8; 4,5 in dir 9 */
	const uint64_t sz[] = { 100, 1, 5, 300, 2, 200 };
	const uint32_t dr[] = { 7, 7, 8, 8, 9, 9 };
	struct rfs_sched *s = rfs_sched_new(sz, dr, 6, false);
	rfs_sched_working_set(s, 0);
	rfs_sched_working_set(s, 5);
	uint32_t i;
	enum rfs_why w;
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 0); /* 100 < 200 */
	assert_int_equal(w, RFS_WORKING_SET);
	rfs_sched_sent(s, i, true);
	/* touched while file 5 would come next: the working set still empties first */
	rfs_sched_touch(s, 8);
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 5);
	assert_int_equal(w, RFS_WORKING_SET);
	rfs_sched_sent(s, i, true);
	/* stack 2: dir 8's files, smallest on top */
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 2);
	assert_int_equal(w, RFS_SAME_DIR);
	rfs_sched_sent(s, i, true);
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 3);
	assert_int_equal(w, RFS_SAME_DIR);
	rfs_sched_sent(s, i, true);
	/* then the rest, smallest first: 1 (1), 4 (2) */
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 1);
	assert_int_equal(w, RFS_SMALL_FIRST);
	rfs_sched_sent(s, i, true);
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 4);
	rfs_sched_sent(s, i, true);
	assert_false(rfs_sched_next(s, &i, &w));
	/* a touch of a directory whose files are all sent adds nothing */
	rfs_sched_touch(s, 9);
	assert_false(rfs_sched_next(s, &i, &w));
	rfs_sched_free(s);
}

/* a file in progress finishes before a newly pushed one starts */
static void test_non_preemptive(void **st)
{
	(void)st;
	const uint64_t sz[] = { 1000, 5, 6 };
	const uint32_t dr[] = { 1, 2, 2 };
	struct rfs_sched *s = rfs_sched_new(sz, dr, 3, false);
	rfs_sched_working_set(s, 0);
	uint32_t i;
	enum rfs_why w;
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 0);
	rfs_sched_sent(s, 0, false); /* one chunk of the big file */
	rfs_sched_touch(s, 2);       /* new files on stack 2 */
	for (int k = 0; k < 3; k++) {
		assert_true(rfs_sched_next(s, &i, &w));
		assert_int_equal(i, 0);
		assert_int_equal(w, RFS_WORKING_SET);
		rfs_sched_sent(s, 0, k == 2);
	}
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 1);
	assert_int_equal(w, RFS_SAME_DIR);
	rfs_sched_free(s);
}

/* a miss: ahead of the file in progress, which then goes on where it was */
static void test_demand(void **st)
{
	(void)st;
	const uint64_t sz[] = { 1000, 5, 6, 7 };
	const uint32_t dr[] = { 1, 2, 2, 3 };
	struct rfs_sched *s = rfs_sched_new(sz, dr, 4, false);
	rfs_sched_working_set(s, 0);
	uint32_t i;
	enum rfs_why w;
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 0);
	rfs_sched_sent(s, 0, false);
	assert_true(rfs_sched_demand(s, 3));
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 3);
	assert_int_equal(w, RFS_DEMAND);
	rfs_sched_sent(s, 3, false); /* a demanded file goes on to its end, too */
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 3);
	assert_int_equal(w, RFS_DEMAND);
	rfs_sched_sent(s, 3, true);
	/* sent: a second demand is refused, the big file resumes */
	assert_false(rfs_sched_demand(s, 3));
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 0);
	assert_int_equal(w, RFS_WORKING_SET);
	rfs_sched_sent(s, 0, true);
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 1);
	rfs_sched_sent(s, 1, true);
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 2);
	rfs_sched_sent(s, 2, true);
	assert_false(rfs_sched_next(s, &i, &w));
	rfs_sched_free(s);
}

/*
 * The paper's worked example: files of 32, 64, 128 and 256 MB over a
 * 512 MB/s link, one access to a random file (uniform) every 100 ms; the
 * hit rate in the first second (accesses at 100..1000 ms, each a hit if
 * its file is complete) is 0.65 with the files smallest first and 0.46 on
 * average over random orders.  The scheduler's stack 3 gives the first;
 * the second is the mean over the 24 orders.
 */
static double hit_rate(const uint32_t *order, const uint64_t *mb, size_t n)
{
	double done_ms[8], t = 0, hits = 0;
	for (size_t k = 0; k < n; k++) {
		t += (double)mb[order[k]] / 512.0 * 1000.0;
		done_ms[order[k]] = t;
	}
	for (int a = 1; a <= 10; a++)
		for (size_t i = 0; i < n; i++)
			hits += done_ms[i] <= a * 100.0 ? 1.0 / (double)n : 0;
	return hits / 10;
}

/* what may go before the resume: demands, nothing else */
static void test_urgent(void **st)
{
	(void)st;
	const uint64_t sz[] = { 1000, 5, 6, 7 };
	const uint32_t dr[] = { 0, 0, 1, 1 };
	struct rfs_sched *s = rfs_sched_new(sz, dr, 4, false);
	uint32_t i;
	enum rfs_why w;
	assert_false(rfs_sched_urgent(s)); /* only stack 3 */
	rfs_sched_touch(s, 1);
	rfs_sched_working_set(s, 3);
	assert_false(rfs_sched_urgent(s)); /* stacks 1 and 2 are not */
	assert_true(rfs_sched_demand(s, 0));
	assert_true(rfs_sched_urgent(s));
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 0);
	assert_int_equal(w, RFS_DEMAND);
	rfs_sched_sent(s, 0, false);
	assert_true(rfs_sched_urgent(s)); /* the demanded file in progress */
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 0);
	rfs_sched_sent(s, 0, true);
	assert_false(rfs_sched_urgent(s));
	/* then stack 1, stack 2 (file 2, the smaller of dir 1): not urgent */
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 3);
	assert_int_equal(w, RFS_WORKING_SET);
	assert_false(rfs_sched_urgent(s));
	rfs_sched_sent(s, 3, true);
	assert_true(rfs_sched_next(s, &i, &w));
	assert_int_equal(i, 2);
	assert_int_equal(w, RFS_SAME_DIR);
	assert_false(rfs_sched_urgent(s));
	rfs_sched_free(s);
}

static void test_paper_example(void **st)
{
	(void)st;
	const uint64_t mb[] = { 128, 32, 256, 64 };
	const uint32_t dr[] = { 0, 0, 0, 0 };
	uint64_t bytes[4];
	for (int i = 0; i < 4; i++)
		bytes[i] = mb[i] << 20;
	struct rfs_sched *s = rfs_sched_new(bytes, dr, 4, false);
	uint32_t order[4];
	enum rfs_why w[4];
	drain(s, order, w, 4);
	rfs_sched_free(s);
	double smallest = hit_rate(order, mb, 4);
	assert_true(smallest > 0.6499 && smallest < 0.6501);
	/* every order of the four: the mean is the random order's expectation */
	double sum = 0;
	int n = 0;
	for (uint32_t a = 0; a < 4; a++)
		for (uint32_t b = 0; b < 4; b++)
			for (uint32_t c = 0; c < 4; c++) {
				uint32_t d = 6 - a - b - c;
				if (a == b || a == c || b == c || d > 3 || d == a || d == b || d == c)
					continue;
				uint32_t o[4] = { a, b, c, d };
				sum += hit_rate(o, mb, 4);
				n++;
			}
	assert_int_equal(n, 24);
	double random = sum / n;
	print_message("hit rate in the first second: smallest first %.2f, random %.2f\n", smallest, random);
	assert_true(random > 0.455 && random < 0.465);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_first), cmocka_unit_test(test_walk_order), cmocka_unit_test(test_urgent),
		cmocka_unit_test(test_stacks),      cmocka_unit_test(test_non_preemptive),
		cmocka_unit_test(test_demand),      cmocka_unit_test(test_paper_example),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
