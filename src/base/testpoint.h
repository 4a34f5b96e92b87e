/* SPDX-License-Identifier: MIT */
/*
 * Test points (tests/e2e): with DMIGRATE_TEST_PAUSE="name[,name...]" set,
 * reaching point name creates $DMIGRATE_TEST_MARK/name (if set) and sleeps
 * DMIGRATE_TEST_PAUSE_MS (default 3000) ms, so that a test can cut the link,
 * kill the peer or make the tree do something at a known phase;
 * $DMIGRATE_TEST_MARK/name.go, once it exists, ends the pause early.  The
 * migration's phases have theirs (mig_test_point()), the memory handler its
 * own (mem/lazy.c).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

void dm_test_point(const char *name);
/* Is name listed in DMIGRATE_TEST_PAUSE?  (For a point on a hot path: ask
 * once, keep the answer.) */
bool dm_test_listed(const char *name);
/* Does $DMIGRATE_TEST_MARK/name.arm exist?  (A point that counts only once
 * the test has made it so.) */
bool dm_test_armed(const char *name);
/* A hold instead of a pause, for a thread that must go on serving meanwhile:
 * true while name is listed, its .go mark is absent and DMIGRATE_TEST_PAUSE_MS
 * have not passed since the first call (which creates the mark; *since_ns
 * starts at 0).  src-rootfs-hold: the rootfs sender sends only the working
 * set and what the tree misses. */
bool dm_test_held(const char *name, uint64_t *since_ns);
