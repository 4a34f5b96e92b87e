/* SPDX-License-Identifier: MIT */
#include "base/clock.h"
#include <stdatomic.h>

static _Atomic uint64_t clock_base;

double clock_ms(void)
{
	uint64_t now = clock_ns(), zero = 0;
	atomic_compare_exchange_strong(&clock_base, &zero, now);
	return (double)(now - atomic_load(&clock_base)) / 1e6;
}
