/* SPDX-License-Identifier: MIT */
/*
 * The rootfs transfer's order (src/migrate/rootfs-sched.c): the three
 * stacks, non-preemption, the same-directory rule, the miss path.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_first), cmocka_unit_test(test_walk_order),
		cmocka_unit_test(test_stacks),      cmocka_unit_test(test_non_preemptive),
		cmocka_unit_test(test_demand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
