/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the /proc parsers, maps and status first (the text a
 * process controls most: file names, comm).  Every parser gets every input;
 * a parser must return >= 0 or -EBADMSG, never crash or leak.
 *
 *   tests/fuzz/build.sh 20            (builds and runs it with the others)
 * or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc -Isrc/arch/x86_64 \
 *     -o /tmp/fuzz_proc_maps tests/fuzz/fuzz_proc_maps.c src/proc/[a-z]*.c src/base/{util,log,clock}.c
 *   /tmp/fuzz_proc_maps -max_total_time=20 CORPUS_DIR tests/unit/data/proc
 */
#include "proc/proc.h"

#include <errno.h>
#include <stdlib.h>

#define CHECK(r)                                   \
	do {                                       \
		int _r = (r);                      \
		if (_r < 0 && _r != -EBADMSG)      \
			abort();                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct proc_vma_list l = {};
	struct proc_status st = {};
	struct proc_stat ps;
	int r;

	CHECK(r = proc_parse_maps(buf, size, &l));
	if (r >= 0) {
		/* the same text as smaps VmFlags: headers only match if nothing else is there */
		r = proc_parse_smaps_vmflags(buf, size, &l);
		if (r < 0 && r != -EBADMSG && r != -ESTALE)
			abort();
		for (size_t i = 0; i < l.n; i++)
			if (l.vmas[i].start >= l.vmas[i].end || !l.vmas[i].path)
				abort();
	}
	proc_vma_list_done(&l);

	CHECK(r = proc_parse_smaps(buf, size, &l));
	if (r >= 0) {
		for (size_t i = 0; i < l.n; i++)
			if (!l.vmas[i].has_vmflags)
				abort();
		/* the VmFlags of a valid smaps merge back into its own list */
		if (proc_parse_smaps_vmflags(buf, size, &l) != 0)
			abort();
	}
	proc_vma_list_done(&l);

	CHECK(proc_parse_status(buf, size, &st));
	proc_status_done(&st);
	CHECK(proc_parse_stat(buf, size, &ps));

	struct proc_mount_list ml = {};
	CHECK(proc_parse_mountinfo(buf, size, &ml));
	proc_mount_list_done(&ml);

	struct proc_fdinfo fi = {};
	CHECK(r = proc_parse_fdinfo(buf, size, &fi));
	if (r >= 0) {
		struct proc_epoll_tfd *t = NULL;
		struct proc_inotify_wd *w = NULL;
		struct proc_timerfd tm;
		struct proc_eventfd ev;
		uint64_t mask;
		size_t n;
		(void)proc_fdinfo_epoll(&fi, &t, &n);
		(void)proc_fdinfo_inotify(&fi, &w, &n);
		(void)proc_fdinfo_timerfd(&fi, &tm);
		(void)proc_fdinfo_eventfd(&fi, &ev);
		(void)proc_fdinfo_signalfd(&fi, &mask);
		free(t);
		free(w);
	}
	proc_fdinfo_done(&fi);

	struct proc_timer *t = NULL;
	size_t n;
	CHECK(proc_parse_timers(buf, size, &t, &n));
	free(t);

	uint64_t flags;
	CHECK(proc_parse_vmflags(buf, size, &flags));
	return 0;
}
