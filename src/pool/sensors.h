/* SPDX-License-Identifier: MIT */
/* Parsers behind the /proc sensors, exposed for the unit tests only. */
#pragma once

#include <stdint.h>

/* First line of /proc/stat: idle (+iowait) and total ticks of all CPUs. */
int pool_parse_proc_stat(const char *buf, uint64_t *ret_idle, uint64_t *ret_total);
/* "key value" or "key: value [kB]" lines (meminfo, cpu.stat, memory.stat). -ENOENT if absent. */
int pool_parse_key_u64(const char *buf, const char *key, uint64_t *ret);
/* cgroup v2 cpu.max "quota period": quota in CPUs; -ENODATA for "max". */
int pool_parse_cpu_max(const char *buf, double *ret_cpus);
/* cgroup v2 memory.max: bytes; -ENODATA for "max". */
int pool_parse_memory_max(const char *buf, uint64_t *ret_bytes);
/* /proc/self/cgroup: the path of the v2 ("0::") line, malloc'ed. -ENOENT if none. */
int pool_parse_cgroup2_path(const char *buf, char **ret_path);
