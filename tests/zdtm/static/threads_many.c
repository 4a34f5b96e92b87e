// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * threads_counters with more threads than the restore makes in one batch
 * of clone3 calls (32): each keeps its tid, TLS, stack and counting.
 */
#define NR_THREADS 40
#include "threads_counters.c"
