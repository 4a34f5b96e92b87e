// SPDX-License-Identifier: MIT
// zdtm: flags=pidns,migrate-opt=--cow-max=1
/*
 * mem_cow_bound with post-copy's pre-send of the pages children share (the
 * default): the parent's 4 MiB the two children only read go before the
 * freeze, into the destination's store, so they do not count against
 * --cow-max=1 and the sharing stays in every mode, post-copy included (the
 * tree's Pss_Anon after is at most 5/4 of before plus 2 MiB), its memory
 * exact.
 */
#include "mem_cow_bound.c"
