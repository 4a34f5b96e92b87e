/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the /proc parsers on samples captured on this kernel
 * (data/proc/, see capture.c there) and hand-made hostile input.  The live
 * files of this process and of a paused child: test_proc_live.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "proc/proc.h"
#include "base/util.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "data/proc/samples.h"
#include "proc-helpers.h"

#define S(name) (const char *)sample_##name, sample_##name##_len
#define T(lit) lit, sizeof(lit) - 1

/* ------------------------------------------------------------------------ */
/* maps, smaps samples                                                       */

static void test_maps_sample(void **state)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list l = {};
	const struct proc_vma *v;

	assert_int_equal(proc_parse_maps(S(maps), &l), 33);
	assert_int_equal(l.n, 33);

	v = &l.vmas[0];
	assert_int_equal(v->start, 0x55d14a090000);
	assert_int_equal(v->end, 0x55d14a092000);
	assert_int_equal(v->prot, PROT_READ);
	assert_false(v->shared);
	assert_int_equal(v->kind, PROC_VMA_FILE);
	assert_int_equal(v->dev_major, 0xfe);
	assert_int_equal(v->dev_minor, 0);
	assert_int_equal(v->inode, 10953395);
	assert_string_equal(v->path, "/tmp/capture");
	assert_int_equal(l.vmas[1].prot, PROT_READ | PROT_EXEC);
	assert_int_equal(l.vmas[1].pgoff, 0x2000);

	/* anonymous: trailing blank, no name */
	v = &l.vmas[5];
	assert_int_equal(v->kind, PROC_VMA_ANON);
	assert_string_equal(v->path, "");
	assert_int_equal(v->inode, 0);

	v = find_vma_path(&l, "/SYSV0000002a");
	assert_non_null(v);
	assert_int_equal(v->kind, PROC_VMA_SYSV_SHM);
	assert_true(v->deleted && v->shared);
	assert_true(proc_vma_kind_is_shmem(v->kind));

	v = find_vma_path(&l, "/dev/zero");
	assert_non_null(v);
	assert_int_equal(v->kind, PROC_VMA_SHMEM_ANON);
	assert_int_equal(v->prot, PROT_READ | PROT_WRITE);
	assert_int_equal(v->end - v->start, 16384);

	v = find_vma_path(&l, "/memfd:dm memfd");
	assert_non_null(v);
	assert_int_equal(v->kind, PROC_VMA_MEMFD);
	assert_true(v->deleted);

	v = find_vma_path(&l, "/tmp/dm proc/gone");
	assert_non_null(v);
	assert_int_equal(v->kind, PROC_VMA_FILE);
	assert_true(v->deleted && v->shared);

	/* a live file named "fake (deleted)" looks deleted: only a hint */
	v = find_vma_path(&l, "/tmp/dm proc/fake");
	assert_non_null(v);
	assert_true(v->deleted);

	v = find_vma_path(&l, "/tmp/dm proc/with space");
	assert_non_null(v);
	assert_false(v->deleted);
	assert_true(v->shared);

	/* "\012" is a newline; a file really named "back\012slash" reads the same */
	assert_non_null(find_vma_path(&l, "/tmp/dm proc/new\nline"));
	assert_non_null(find_vma_path(&l, "/tmp/dm proc/back\nslash"));

	assert_non_null(find_vma_kind(&l, PROC_VMA_VVAR));
	assert_int_equal(find_vma_kind(&l, PROC_VMA_VVAR)->end - find_vma_kind(&l, PROC_VMA_VVAR)->start,
			 4 * 4096);
	assert_non_null(find_vma_kind(&l, PROC_VMA_VVAR_VCLOCK));
	assert_non_null(find_vma_kind(&l, PROC_VMA_VDSO));
	assert_non_null(find_vma_kind(&l, PROC_VMA_STACK));
	v = find_vma_kind(&l, PROC_VMA_VSYSCALL);
	assert_non_null(v);
	assert_int_equal(v->start, 0xffffffffff600000ULL);
	assert_int_equal(v->prot, PROT_EXEC);
	assert_string_equal(v->path, "[vsyscall]");
	assert_ptr_equal(v, &l.vmas[l.n - 1]);
	for (size_t i = 0; i < l.n; i++)
		assert_false(l.vmas[i].has_vmflags);
}

static void test_smaps_sample(void **state)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list s = {}, m = {};
	const struct proc_vma *v;

	assert_int_equal(proc_parse_smaps(S(smaps), &s), 33);
	assert_int_equal(proc_parse_maps(S(maps), &m), 33);
	for (size_t i = 0; i < s.n; i++) {
		assert_true(s.vmas[i].has_vmflags);
		assert_int_equal(s.vmas[i].start, m.vmas[i].start);
		assert_int_equal(s.vmas[i].end, m.vmas[i].end);
		assert_int_equal(s.vmas[i].kind, m.vmas[i].kind);
		assert_int_equal(s.vmas[i].prot, m.vmas[i].prot);
		assert_string_equal(s.vmas[i].path, m.vmas[i].path);
		assert_false(s.vmas[i].vmflags & PROC_VMF_UNKNOWN);
	}
	v = find_vma_kind(&s, PROC_VMA_STACK);
	assert_int_equal(v->vmflags, PROC_VMF_RD | PROC_VMF_WR | PROC_VMF_MR | PROC_VMF_MW |
					     PROC_VMF_ME | PROC_VMF_GD | PROC_VMF_AC);
	v = find_vma_kind(&s, PROC_VMA_SHMEM_ANON);
	assert_int_equal(v->vmflags, PROC_VMF_RD | PROC_VMF_WR | PROC_VMF_SH | PROC_VMF_MR |
					     PROC_VMF_MW | PROC_VMF_ME | PROC_VMF_MS);
	v = find_vma_kind(&s, PROC_VMA_VVAR);
	assert_true(v->vmflags & PROC_VMF_PF);
	assert_true(v->vmflags & PROC_VMF_IO);
	v = find_vma_kind(&s, PROC_VMA_VSYSCALL);
	assert_int_equal(v->vmflags, PROC_VMF_EX);

	/* the VmFlags-only pass over the same text into the maps list */
	assert_int_equal(proc_parse_smaps_vmflags(S(smaps), &m), 0);
	for (size_t i = 0; i < m.n; i++) {
		assert_true(m.vmas[i].has_vmflags);
		assert_int_equal(m.vmas[i].vmflags, s.vmas[i].vmflags);
	}
	/* one MAP_LOCKED page, one MADV_DONTFORK area */
	size_t lo = 0, dc = 0;
	for (size_t i = 0; i < m.n; i++) {
		lo += !!(m.vmas[i].vmflags & PROC_VMF_LO);
		dc += !!(m.vmas[i].vmflags & PROC_VMF_DC);
	}
	assert_int_equal(lo, 1);
	assert_int_equal(dc, 1);
}

static void test_smaps_vmflags_mismatch(void **state)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list m = {}, q = {};
	static const char maps[] = "1000-2000 r--p 00000000 00:00 0 \n"
				   "3000-4000 rw-p 00000000 00:00 0 \n";
	static const char smaps_same[] = "1000-2000 r--p 00000000 00:00 0 \nRss: 4 kB\n"
					 "Shared_Clean: 4 kB\nShared_Dirty:     8 kB\nVmFlags: rd \n"
					 "3000-4000 rw-p 00000000 00:00 0 \nVmFlags: rd wr \n"
					 "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 "
					 "                 [vsyscall]\nVmFlags: ex \n";
	static const char smaps_extra[] = "1000-2000 r--p 00000000 00:00 0 \nVmFlags: rd \n"
					  "2000-3000 r--p 00000000 00:00 0 \nVmFlags: rd \n"
					  "3000-4000 rw-p 00000000 00:00 0 \nVmFlags: rd wr \n";
	static const char smaps_missing[] = "1000-2000 r--p 00000000 00:00 0 \nVmFlags: rd \n";
	static const char smaps_grown[] = "1000-2000 r--p 00000000 00:00 0 \nVmFlags: rd \n"
					  "3000-5000 rw-p 00000000 00:00 0 \nVmFlags: rd wr \n";
	static const char smaps_noflags[] = "1000-2000 r--p 00000000 00:00 0 \nRss: 4 kB\n"
					    "3000-4000 rw-p 00000000 00:00 0 \nVmFlags: rd wr \n";

	assert_int_equal(proc_parse_maps(T(maps), &m), 2);
	assert_int_equal(proc_parse_smaps_vmflags(T(smaps_extra), &m), -ESTALE);
	assert_int_equal(proc_parse_smaps_vmflags(T(smaps_missing), &m), -ESTALE);
	assert_int_equal(proc_parse_smaps_vmflags(T(smaps_grown), &m), -ESTALE);
	assert_int_equal(proc_parse_smaps_vmflags(T(smaps_noflags), &m), -EBADMSG);
	/* failures leave the list alone */
	assert_false(m.vmas[0].has_vmflags || m.vmas[1].has_vmflags);
	/* [vsyscall] may be absent from the list (PROCMAP_QUERY) */
	assert_int_equal(proc_parse_smaps_vmflags(T(smaps_same), &m), 0);
	assert_int_equal(m.vmas[0].vmflags, PROC_VMF_RD);
	assert_int_equal(m.vmas[1].vmflags, PROC_VMF_RD | PROC_VMF_WR);
	/* pages other processes map too: the copy-on-write candidates */
	assert_true(m.vmas[0].has_shared);
	assert_int_equal(m.vmas[0].shared_kb, 12);
	assert_false(m.vmas[1].has_shared);
	assert_int_equal(proc_parse_smaps(T(smaps_same), &q), 3);
	assert_true(q.vmas[0].has_shared && !q.vmas[1].has_shared);
	assert_int_equal(q.vmas[0].shared_kb, 12);
	proc_vma_list_done(&q);
	q = (struct proc_vma_list){};
	assert_int_equal(proc_parse_smaps_vmflags(T("1000-2000 r--p 00000000 00:00 0 \nShared_Dirty: x kB\n"
						    "VmFlags: rd \n3000-4000 rw-p 00000000 00:00 0 \nVmFlags: rd wr \n"), &m),
			 -EBADMSG);

	assert_int_equal(proc_parse_smaps(T(smaps_noflags), &q), -EBADMSG);
	assert_int_equal(proc_parse_smaps(T("VmFlags: rd \n"), &q), -EBADMSG);
	assert_int_equal(proc_parse_smaps(T("1000-2000 r--p 00000000 00:00 0 \nrss: 1\nVmFlags: rd \n"), &q),
			 -EBADMSG);
	assert_int_equal(proc_parse_smaps(T("1000-2000 r--p 00000000 00:00 0 \nVmFlags: rd \nVmFlags: rd \n"), &q),
			 -EBADMSG);
	assert_int_equal(proc_parse_smaps(T("1000-2000 r--p 00000000 00:00 0 \nVmFlags: rd"), &q), -EBADMSG);
	assert_int_equal(proc_parse_smaps(T(""), &q), 0);
	assert_null(q.vmas);
}

/* ------------------------------------------------------------------------ */
/* maps: hand-made names and garbage                                         */

static void test_maps_names(void **state)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list l = {};
	static const char text[] =
		"1000-2000 rw-p 00000000 00:00 0                          [anon:my name]\n"
		"2000-3000 rw-s 00000000 00:01 7                          [anon_shmem:shm]\n"
		"3000-4000 r-xp 00000000 00:00 0                          [uprobes]\n"
		"4000-6000 rw-s 00000000 00:10 99                         /anon_hugepage (deleted)\n"
		"6000-7000 rw-s 00000000 00:12 1                          /[aio] (deleted)\n"
		"7000-8000 rw-p 00000000 00:00 0\n"
		"8000-9000 rw-p 00001000 fe:01 12                         /x/a\\012b\\012\n"
		"9000-a000 rw-p 00001000 fe:01 12                         /dev/zero (deleted)\n"
		"a000-b000 rw-s 00000000 00:0d 5                          anon_inode:[perf_event]\n"
		"b000-c000 rw-p 00000000 00:00 0                          [anon:]\n"
		"c000-d000 rw-p 00000000 00:00 0                          [heap]\n"
		"d000-e000 rw-p 00000000 00:00 0                          [stack:42]\n"
		"e000-f000 rw-p ffffffffffff0000 fff:fffff 18446744073709551615 /a\\b\\\\012 (deleted)x\n";

	assert_int_equal(proc_parse_maps(T(text), &l), 13);
	assert_int_equal(l.vmas[0].kind, PROC_VMA_ANON_NAMED);
	assert_string_equal(l.vmas[0].path, "my name");
	assert_int_equal(l.vmas[1].kind, PROC_VMA_SHMEM_NAMED);
	assert_string_equal(l.vmas[1].path, "shm");
	assert_int_equal(l.vmas[2].kind, PROC_VMA_SPECIAL);
	assert_string_equal(l.vmas[2].path, "[uprobes]");
	assert_int_equal(l.vmas[3].kind, PROC_VMA_HUGETLB_ANON);
	assert_int_equal(l.vmas[4].kind, PROC_VMA_AIO);
	assert_string_equal(l.vmas[4].path, "/[aio]");
	assert_int_equal(l.vmas[5].kind, PROC_VMA_ANON);
	assert_int_equal(l.vmas[6].kind, PROC_VMA_FILE);
	assert_string_equal(l.vmas[6].path, "/x/a\nb\n");
	/* "/dev/zero (deleted)" of a real device (major != 0) is a file */
	assert_int_equal(l.vmas[7].kind, PROC_VMA_FILE);
	assert_true(l.vmas[7].deleted);
	assert_int_equal(l.vmas[8].kind, PROC_VMA_FILE);
	assert_string_equal(l.vmas[8].path, "anon_inode:[perf_event]");
	assert_false(l.vmas[8].deleted);
	assert_int_equal(l.vmas[9].kind, PROC_VMA_ANON_NAMED);
	assert_string_equal(l.vmas[9].path, "");
	assert_int_equal(l.vmas[10].kind, PROC_VMA_HEAP);
	assert_int_equal(l.vmas[11].kind, PROC_VMA_SPECIAL);
	assert_int_equal(l.vmas[12].pgoff, 0xffffffffffff0000ULL);
	assert_int_equal(l.vmas[12].dev_major, 0xfff);
	assert_int_equal(l.vmas[12].dev_minor, 0xfffff);
	assert_int_equal(l.vmas[12].inode, UINT64_MAX);
	assert_string_equal(l.vmas[12].path, "/a\\b\\\n (deleted)x");
	assert_false(l.vmas[12].deleted);

	for (int k = 0; k <= PROC_VMA_SPECIAL; k++)
		assert_string_not_equal(proc_vma_kind_name(k), "?");
}

static void test_maps_garbage(void **state)
{
	static const char *const bad[] = {
		"1000-2000 r--p 00000000 00:00 0",			/* no '\n': truncated */
		"1000-2000 r--p 00000000 00:00",			/* cut mid-line */
		"1000-2000 r--p 00000000 00:00\n",
		"1000-2000 r--p\n",
		"\n",
		"2000-1000 r--p 00000000 00:00 0 \n",			/* end < start */
		"1000-1000 r--p 00000000 00:00 0 \n",			/* empty */
		"1001-2000 r--p 00000000 00:00 0 \n",			/* not page aligned */
		"1000-2000 rwzp 00000000 00:00 0 \n",
		"1000-2000 r--x 00000000 00:00 0 \n",
		"1000-2000 r--p  00000000 00:00 0 \n",
		"1000-2000 r--p 0000000g 00:00 0 \n",
		"1000-2000 r--p 00000000 0000 0 \n",
		"1000-2000 r--p 00000000 00:00 -1 \n",
		"1000-2000 r--p 00000000 00:00 18446744073709551616 \n", /* inode overflow */
		"10000000000000000000-10000000000001000 r--p 00000000 00:00 0 \n", /* 20 hex digits */
		"1000-2000 r--p 10000000000000000 00:00 0 \n",		/* 17 digits */
		"1000-2000 r--p 00000000 100000000:00 0 \n",		/* major > 32 bits */
		"1000-2000 r--p 00000000 00:00 0x /a\n",
		"-2000 r--p 00000000 00:00 0 \n",
		"1000 2000 r--p 00000000 00:00 0 \n",
		"1000-2000 r--p 00000000 00:00 0 \n0800-1000 r--p 00000000 00:00 0 \n", /* unordered */
		"1000-3000 r--p 00000000 00:00 0 \n2000-4000 r--p 00000000 00:00 0 \n", /* overlap */
		"1000-2000 r--p 00000000 00:00 0 \ngarbage\n",
		"Size: 4 kB\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_vma_list l = {};
		int r = proc_parse_maps(bad[i], strlen(bad[i]), &l);
		if (r != -EBADMSG)
			fail_msg("case %zu (%s): %d", i, bad[i], r);
		assert_null(l.vmas);	/* untouched */
	}

	/* a NUL inside a path would cut it: rejected */
	static const char nul[] = "1000-2000 r--p 00000000 00:00 0 /a\0b\n";
	struct proc_vma_list l = {};
	assert_int_equal(proc_parse_maps(nul, sizeof(nul) - 1, &l), -EBADMSG);

	/* an empty maps (a zombie, a kernel thread) is fine */
	assert_int_equal(proc_parse_maps("", 0, &l), 0);
	assert_int_equal(l.n, 0);
	proc_vma_list_done(&l);
	proc_vma_list_done(NULL);
}

static void test_maps_huge_path(void **state)
{
	/* a path far longer than PATH_MAX, and full of escaped newlines */
	size_t plen = 1 << 20;
	const char *head = "7f0000000000-7f0000001000 rw-p 00000000 fe:00 1 /";
	size_t hlen = strlen(head);
	_cleanup_free_ char *buf = xmalloc(hlen + plen * 4 + 2);
	memcpy(buf, head, hlen);
	for (size_t i = 0; i < plen; i++)
		memcpy(buf + hlen + i * 4, (i % 2) ? "\\012" : "abcd", 4);
	buf[hlen + plen * 4] = '\n';

	_cleanup_(proc_vma_list_done) struct proc_vma_list l = {};
	assert_int_equal(proc_parse_maps(buf, hlen + plen * 4 + 1, &l), 1);
	assert_int_equal(strlen(l.vmas[0].path), 1 + plen / 2 * 4 + plen / 2);
	assert_int_equal(l.vmas[0].path[5], '\n');

	/* and the same line cut short */
	struct proc_vma_list l2 = {};
	assert_int_equal(proc_parse_maps(buf, hlen + plen * 4, &l2), -EBADMSG);
}

static void test_vmflags(void **state)
{
	uint64_t f;
	char buf[256];

	assert_int_equal(proc_parse_vmflags(T(" rd wr ex sh mr mw me ms gd pf dw lo io sr rr dc de ac nr ht "
					      "sf nl ar wf dd sd mm hg nh mg um uw ui ss lf bt mt dp sl gu "),
					    &f), 0);
	assert_int_equal(f, (1ULL << 40) - 1);
	assert_int_equal(proc_vmflags_format(f, buf, sizeof(buf)), 40 * 3 - 1);
	assert_string_equal(buf, "rd wr ex sh mr mw me ms gd pf dw lo io sr rr dc de ac nr ht "
				 "sf nl ar wf dd sd mm hg nh mg um uw ui ss lf bt mt dp sl gu");
	assert_int_equal(proc_vmflags_format(f, buf, 10), -ENOBUFS);

	assert_int_equal(proc_parse_vmflags(T(" rd ?? "), &f), 0);
	assert_int_equal(f, PROC_VMF_RD | PROC_VMF_UNKNOWN);
	assert_int_equal(proc_parse_vmflags(T(" zz"), &f), 0);	/* a flag of a later kernel */
	assert_int_equal(f, PROC_VMF_UNKNOWN);
	assert_int_equal(proc_parse_vmflags(T(""), &f), 0);
	assert_int_equal(f, 0);
	assert_int_equal(proc_parse_vmflags(T(" r"), &f), -EBADMSG);
	assert_int_equal(proc_parse_vmflags(T(" rdx"), &f), -EBADMSG);
	assert_int_equal(proc_parse_vmflags(T(" RD"), &f), -EBADMSG);
	assert_int_equal(proc_parse_vmflags(T(" r\td"), &f), -EBADMSG);
	assert_string_equal(proc_vmflag_name(PROC_VMF_SS), "ss");
	assert_null(proc_vmflag_name(PROC_VMF_RD | PROC_VMF_WR));
	assert_null(proc_vmflag_name(0));
}

/* ------------------------------------------------------------------------ */
/* stat, status                                                              */

static void test_stat_sample(void **state)
{
	struct proc_stat st;

	assert_int_equal(proc_parse_stat(S(stat), &st), 0);
	assert_int_equal(st.pid, 29471);
	assert_string_equal(st.comm, "a) (b\nc\\ d");
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.ppid, 29423);
	assert_int_equal(st.pgrp, 29423);
	assert_int_equal(st.session, 2447);
	assert_int_equal(st.tty_nr, 0);
	assert_int_equal(st.tpgid, -1);
	assert_int_equal(st.flags, 4194560);
	assert_int_equal(st.num_threads, 1);
	assert_int_equal(st.start_time, 109684);
	assert_int_equal(st.nice, 0);
	assert_int_equal(st.priority, 20);
	assert_int_equal(st.start_code, 94357378637824ULL);
	assert_int_equal(st.end_code, 94357378641209ULL);
	assert_int_equal(st.start_stack, 140732250624352ULL);
	assert_int_equal(st.exit_signal, SIGCHLD);
	assert_int_equal(st.start_data, 94357378649552ULL);
	assert_int_equal(st.end_data, 94357378650456ULL);
	assert_int_equal(st.start_brk, 94358021967872ULL);
	assert_int_equal(st.arg_start, 140732250626675ULL);
	assert_int_equal(st.arg_end, 140732250626690ULL);
	assert_int_equal(st.env_start, 140732250626690ULL);
	assert_int_equal(st.env_end, 140732250628075ULL);
	assert_int_equal(st.exit_code, 0);
}

#define STAT_TAIL                                                                               \
	" 1 1 1 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 39877 3133440 389 18446744073709551615 " \
	"94868367478784 94868367498665 140726117825072 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "       \
	"94868367514672 94868367516288 94869154402304 140726117833356 140726117833376 "        \
	"140726117833376 140726117834731 0"

static void test_stat_tricky(void **state)
{
	struct proc_stat st = {}, zero = {};

	assert_int_equal(proc_parse_stat(T("7 ()) ) ) S" STAT_TAIL "\n"), &st), 0);
	assert_string_equal(st.comm, ")) ) ");
	assert_int_equal(st.state, 'S');
	assert_int_equal(proc_parse_stat(T("7 () Z" STAT_TAIL "\n"), &st), 0);
	assert_string_equal(st.comm, "");
	/* a later kernel's extra fields */
	assert_int_equal(proc_parse_stat(T("7 (x) S" STAT_TAIL " 5 6\n"), &st), 0);
	/* utime and stime (the pool's sensor credits our own: 7 + 5 ticks),
	 * after a command with a ')' and spaces in it */
	assert_int_equal(proc_parse_stat(T("16105 (a) b) R 1 1 1 0 -1 4194304 98 0 0 0 7 5 0 0 20 0 1 0 39877 "
					   "3133440 389 18446744073709551615 94868367478784 94868367498665 "
					   "140726117825072 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94868367514672 "
					   "94868367516288 94869154402304 140726117833356 140726117833376 "
					   "140726117833376 140726117834731 0\n"), &st), 0);
	assert_string_equal(st.comm, "a) b");
	assert_int_equal(st.utime, 7);
	assert_int_equal(st.stime, 5);
	/* kthread names are longer than 15 */
	assert_int_equal(proc_parse_stat(T("7 (kworker/u8:1-events_unbound) I" STAT_TAIL "\n"), &st), 0);

	static const char *const bad[] = {
		"7 (x) S" STAT_TAIL,				/* no '\n' */
		"7 (x) S 1 1\n",				/* fields missing */
		"7 (x) S" STAT_TAIL " x\n",
		"7 (x S" STAT_TAIL "\n",
		"7 x) S" STAT_TAIL "\n",
		"-7 (x) S" STAT_TAIL "\n",
		"7 (x)S" STAT_TAIL "\n",
		"7 (x) S " STAT_TAIL "\n",
		"7 (x) S  1 1 1 0 -1\n",
		"2147483648 (x) S" STAT_TAIL "\n",		/* pid overflow */
		"7 (x) S 1 1 1 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 39877 3133440 389 "
		"18446744073709551616 1 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 1 1 1 1 1 1 1 0\n",
		"7 (x) S -1 1 1 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 39877 3133440 389 "
		"1 1 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 1 1 1 1 1 1 1 0\n", /* ppid < 0 */
		"7 (0123456789012345678901234567890123456789012345678901234567890123456789) S" STAT_TAIL "\n",
		"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = proc_parse_stat(bad[i], strlen(bad[i]), &st);
		if (r != -EBADMSG)
			fail_msg("case %zu: %d", i, r);
	}
	static const char nul[] = "7 (a\0b) S" STAT_TAIL "\n";
	assert_int_equal(proc_parse_stat(nul, sizeof(nul) - 1, &zero), -EBADMSG);
	assert_int_equal(zero.pid, 0);	/* untouched */
}

static void test_status_sample(void **state)
{
	_cleanup_(proc_status_done) struct proc_status s = {};

	assert_int_equal(proc_parse_status(S(status), &s), 0);
	assert_string_equal(s.name, "a) (b\nc\\ d");
	assert_int_equal(s.umask, 022);
	assert_int_equal(s.state, 'R');
	assert_int_equal(s.tgid, 29471);
	assert_int_equal(s.pid, 29471);
	assert_int_equal(s.ppid, 29423);
	assert_int_equal(s.tracer_pid, 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(s.uid[i], 0);
		assert_int_equal(s.gid[i], 0);
	}
	assert_int_equal(s.n_groups, 0);
	assert_null(s.groups);
	assert_int_equal(s.n_nspid, 1);
	assert_int_equal(s.nspid[0], 29471);
	assert_int_equal(s.n_nstgid, 1);
	assert_int_equal(s.n_nspgid, 1);
	assert_int_equal(s.nspgid[0], 29423);
	assert_int_equal(s.n_nssid, 1);
	assert_int_equal(s.nssid[0], 2447);
	/* blocked: SIGUSR1 and SIGRTMIN (34, glibc's SIGRTMIN is 34); ignored: SIGUSR2 */
	assert_int_equal(s.sig_blk, (1ULL << (SIGUSR1 - 1)) | (1ULL << (34 - 1)));
	assert_int_equal(s.sig_ign, 1ULL << (SIGUSR2 - 1));
	assert_int_equal(s.sig_pnd, 0);
	assert_int_equal(s.cap_eff, 0x000001fffeffffffULL);
	assert_int_equal(s.cap_bnd, 0x000001fffeffffffULL);
	assert_int_equal(s.cap_amb, 0);
	assert_int_equal(s.no_new_privs, 0);
	assert_int_equal(s.seccomp, 0);
	assert_int_equal(s.seccomp_filters, 0);
	assert_int_equal(s.threads, 1);
	assert_int_equal(s.rss_anon_kb, 108);
	unsigned all = PROC_STATUS_RSS_ANON | PROC_STATUS_NAME | PROC_STATUS_UMASK | PROC_STATUS_STATE | PROC_STATUS_TGID |
		       PROC_STATUS_PID | PROC_STATUS_PPID | PROC_STATUS_TRACERPID | PROC_STATUS_UID |
		       PROC_STATUS_GID | PROC_STATUS_GROUPS | PROC_STATUS_NS | PROC_STATUS_SIG |
		       PROC_STATUS_CAPS | PROC_STATUS_NNP | PROC_STATUS_SECCOMP |
		       PROC_STATUS_SECCOMP_FILTERS | PROC_STATUS_THREADS;
	assert_int_equal(s.present, all);
}

#define STATUS_HEAD "Name:\t  sp\\\\ace\\n\nState:\tS (sleeping)\nTgid:\t5\nPid:\t6\nPPid:\t1\n"
#define STATUS_IDS "Uid:\t1\t2\t3\t4294967295\nGid:\t5\t6\t7\t8\n"

static void test_status_tricky(void **state)
{
	_cleanup_(proc_status_done) struct proc_status s = {};

	assert_int_equal(proc_parse_status(T(STATUS_HEAD STATUS_IDS
					     "Groups:\t10 20 4294967295 \n"
					     "NStgid:\t500\t20\t5\n"
					     "NSpid:\t501\t21\t6\n"
					     "NSpgid:\t1\t0\t0\n"
					     "NSsid:\t1\t0\t0\n"
					     "Future_Key:\twhatever: it is\n"
					     "SigCgt:\tffffffffffffffff\n"),
					   &s),
			 0);
	assert_string_equal(s.name, "  sp\\ace\n");
	assert_int_equal(s.state, 'S');
	assert_int_equal(s.uid[3], 4294967295U);
	assert_int_equal(s.gid[2], 7);
	assert_int_equal(s.n_groups, 3);
	assert_int_equal(s.groups[2], 4294967295U);
	assert_int_equal(s.n_nstgid, 3);
	assert_int_equal(s.nstgid[2], 5);
	assert_int_equal(s.nspid[1], 21);
	assert_int_equal(s.sig_cgt, UINT64_MAX);
	assert_false(s.present & PROC_STATUS_CAPS);

	/* 33 levels fit, 34 do not */
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s%sNSpid:", STATUS_HEAD, STATUS_IDS);
	for (int i = 0; i < PROC_NS_LEVELS_MAX; i++)
		n += snprintf(buf + n, sizeof(buf) - n, "\t%d", i + 1);
	buf[n++] = '\n';
	struct proc_status s2 = {};
	assert_int_equal(proc_parse_status(buf, n, &s2), 0);
	assert_int_equal(s2.n_nspid, PROC_NS_LEVELS_MAX);
	proc_status_done(&s2);
	n--;
	n += snprintf(buf + n, sizeof(buf) - n, "\t99\n");
	assert_int_equal(proc_parse_status(buf, n, &s2), -EBADMSG);

	static const char *const bad[] = {
		STATUS_HEAD STATUS_IDS "SigBlk:\t10000000000000000\n",	/* 65 bits */
		STATUS_HEAD STATUS_IDS "SigBlk:\t00x0\n",
		STATUS_HEAD STATUS_IDS "Threads:\t99999999999\n",
		STATUS_HEAD STATUS_IDS "Umask:\t0999\n",
		STATUS_HEAD STATUS_IDS "NSpid:\t\n",
		STATUS_HEAD STATUS_IDS "Groups:\t1 -2\n",
		STATUS_HEAD STATUS_IDS "no colon\n",
		STATUS_HEAD STATUS_IDS ":\tx\n",
		STATUS_HEAD STATUS_IDS "Tgid:\t5 6\n",
		STATUS_HEAD "Uid:\t1\t2\t3\nGid:\t5\t6\t7\t8\n",		/* 3 uids */
		STATUS_HEAD "Uid:\t1\t2\t3\t4\t5\nGid:\t5\t6\t7\t8\n",
		STATUS_HEAD "Uid:\t1\t2\t3\t4294967296\nGid:\t5\t6\t7\t8\n",
		STATUS_HEAD "Gid:\t5\t6\t7\t8\n",				/* no Uid */
		"State:\tS (sleeping)\nName:\tx\nTgid:\t5\nPid:\t6\nPPid:\t1\n" STATUS_IDS,
		"Name:\t0123456789012345678901234567890123456789012345678901234567890123456789\n"
		"State:\tS\nTgid:\t5\nPid:\t6\nPPid:\t1\n" STATUS_IDS,
		STATUS_HEAD STATUS_IDS "Threads:\t1",				/* truncated */
		STATUS_HEAD STATUS_IDS "RssAnon:\t12 MB\n",
		STATUS_HEAD STATUS_IDS "RssAnon:\t12\n",
		STATUS_HEAD STATUS_IDS "RssAnon:\t-12 kB\n",
		"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_status z = {};
		int r = proc_parse_status(bad[i], strlen(bad[i]), &z);
		if (r != -EBADMSG)
			fail_msg("case %zu: %d", i, r);
		assert_null(z.groups);
	}
}

static void test_status_many_groups(void **state)
{
	/* NGROUPS_MAX groups: a 700 KB line */
	size_t cap = 65536 * 12 + 256, n = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	n += (size_t)snprintf(buf, cap, "%s%sGroups:\t", STATUS_HEAD, STATUS_IDS);
	for (unsigned g = 0; g < 65536; g++)
		n += (size_t)snprintf(buf + n, cap - n, "%u ", 4000000000U + g);
	buf[n++] = '\n';

	_cleanup_(proc_status_done) struct proc_status s = {};
	assert_int_equal(proc_parse_status(buf, n, &s), 0);
	assert_int_equal(s.n_groups, 65536);
	assert_int_equal(s.groups[65535], 4000000000U + 65535);
}

/* ------------------------------------------------------------------------ */
/* fdinfo, fd targets                                                        */

static void test_fdinfo_samples(void **state)
{
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		struct proc_eventfd e;
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_eventfd), &fi), 0);
		assert_int_equal(fi.pos, 0);
		assert_int_equal(fi.flags, O_CLOEXEC | O_RDWR);
		assert_int_equal(fi.mnt_id, 17);
		assert_int_equal(fi.ino, 1038);
		assert_int_equal(fi.n_kv, 3);
		assert_string_equal(fi.kv[0].key, "eventfd-count");
		assert_string_equal(fi.kv[0].val, "5");
		assert_int_equal(proc_fdinfo_eventfd(&fi, &e), 0);
		assert_int_equal(e.count, 5);
		assert_true(e.semaphore);
		assert_int_equal(e.id, 1);
		uint64_t m;
		assert_int_equal(proc_fdinfo_signalfd(&fi, &m), -ENOENT);
	}
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		_cleanup_free_ struct proc_epoll_tfd *t = NULL;
		size_t n;
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_epoll), &fi), 0);
		assert_int_equal(proc_fdinfo_epoll(&fi, &t, &n), 2);
		assert_int_equal(n, 2);
		assert_int_equal(t[0].fd, 6);
		assert_int_equal(t[0].events, 0x1c);
		assert_int_equal(t[0].data, 0x1122334400000006ULL);
		assert_int_equal(t[0].ino, 0x8475);
		assert_int_equal(t[0].sdev, 0xf);
		assert_int_equal(t[1].fd, 4);
		assert_int_equal(t[1].events, 0x80000019);
		assert_int_equal(t[1].data, 0x1122334455667788ULL);
		assert_int_equal(t[1].pos, 0);
	}
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		uint64_t m;
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_signalfd), &fi), 0);
		assert_int_equal(fi.flags, O_CLOEXEC | O_NONBLOCK | O_RDWR);
		assert_int_equal(proc_fdinfo_signalfd(&fi, &m), 0);
		assert_int_equal(m, (1ULL << (SIGUSR1 - 1)) | (1ULL << (34 - 1)));
	}
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		struct proc_timerfd t;
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_timerfd), &fi), 0);
		assert_string_equal(proc_fdinfo_get(&fi, "settime flags"), "00");
		assert_int_equal(proc_fdinfo_timerfd(&fi, &t), 0);
		assert_int_equal(t.clockid, CLOCK_MONOTONIC);
		assert_int_equal(t.ticks, 0);
		assert_int_equal(t.settime_flags, 0);
		assert_int_equal(t.value_sec, 99);
		assert_int_equal(t.value_nsec, 997320841);
		assert_int_equal(t.interval_sec, 1);
		assert_int_equal(t.interval_nsec, 500);
	}
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		_cleanup_free_ struct proc_inotify_wd *w = NULL;
		size_t n;
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_inotify), &fi), 0);
		assert_int_equal(proc_fdinfo_inotify(&fi, &w, &n), 2);
		assert_int_equal(w[0].wd, 2);
		assert_int_equal(w[0].ino, 0xa721f1);
		assert_int_equal(w[0].sdev, 0xfe00000);
		assert_int_equal(w[0].mask, 2);
		assert_int_equal(w[1].wd, 1);
		assert_int_equal(w[1].mask, 0x300);
		assert_string_equal(w[1].fhandle, "fhandle-bytes:8 fhandle-type:1 f_handle:1ac5030000000000");
	}
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_pidfd), &fi), 0);
		assert_string_equal(proc_fdinfo_get(&fi, "Pid"), "29471");
		assert_string_equal(proc_fdinfo_get(&fi, "NSpid"), "29471");
		assert_null(proc_fdinfo_get(&fi, "pos"));
	}
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_file), &fi), 0);
		assert_int_equal(fi.pos, 1234);
		assert_int_equal(fi.flags, O_CLOEXEC | 0100000 /* O_LARGEFILE */ | O_APPEND | O_RDWR);
		assert_int_equal(fi.mnt_id, 27);
		assert_int_equal(fi.n_kv, 0);
		assert_null(fi.kv);
	}
	{
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
		assert_int_equal(proc_parse_fdinfo(S(fdinfo_pipe), &fi), 0);
		assert_int_equal(fi.flags, O_CLOEXEC);
	}
}

#define FI_HEAD "pos:\t0\nflags:\t02\nmnt_id:\t1\n"

static void test_fdinfo_tricky(void **state)
{
	_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};

	assert_int_equal(proc_parse_fdinfo(T("pos:\t-2\nflags:\t0\nmnt_id:\t1\n"
					     "lock:\t1: FLOCK  ADVISORY  WRITE 359 00:13:11691 0 EOF\n"
					     "fanotify flags:10 event-flags:0\n"
					     "tfd:        5 events:       19 data: 5  pos:0 ino:61af sdev:7 more:1\n"),
					   &fi),
			 0);
	assert_int_equal(fi.pos, -2);
	assert_int_equal(fi.ino, 0);
	assert_string_equal(proc_fdinfo_get(&fi, "lock"), "1: FLOCK  ADVISORY  WRITE 359 00:13:11691 0 EOF");
	assert_string_equal(proc_fdinfo_get(&fi, "fanotify"), "flags:10 event-flags:0");
	_cleanup_free_ struct proc_lock *lk = NULL;
	size_t nl;
	assert_int_equal(proc_fdinfo_locks(&fi, &lk, &nl), 1);
	assert_int_equal(lk[0].kind, PROC_LOCK_FLOCK);
	assert_true(lk[0].write);
	assert_int_equal(lk[0].pid, 359);
	assert_int_equal(lk[0].start, 0);
	assert_true(lk[0].end == UINT64_MAX);
	_cleanup_free_ struct proc_epoll_tfd *t = NULL;
	size_t n;
	assert_int_equal(proc_fdinfo_epoll(&fi, &t, &n), 1);
	assert_int_equal(t[0].ino, 0x61af);
	struct proc_timerfd tm;
	assert_int_equal(proc_fdinfo_timerfd(&fi, &tm), -ENOENT);

	static const char *const bad[] = {
		"flags:\t02\nmnt_id:\t1\n",		/* no pos */
		"pos:\t0\nmnt_id:\t1\n",
		"pos:\t0\nflags:\t02\n",
		"pos:\t0\nflags:\t08\nmnt_id:\t1\n",	/* not octal */
		"pos:\t0\nflags:\t02\nmnt_id:\t1",	/* truncated */
		"pos:\t99999999999999999999\nflags:\t02\nmnt_id:\t1\n",
		"pos:\tx\nflags:\t02\nmnt_id:\t1\n",
		FI_HEAD "no colon here\n",
		FI_HEAD ": empty key\n",
		"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_fdinfo z = {};
		int r = proc_parse_fdinfo(bad[i], strlen(bad[i]), &z);
		if (r != -EBADMSG)
			fail_msg("case %zu: %d", i, r);
		assert_null(z.storage);
	}

	/* typed readers reject malformed values */
	static const char *const bad_typed[] = {
		FI_HEAD "eventfd-count: xyz\n",
		FI_HEAD "sigmask:\t10000000000000000\n",
		FI_HEAD "tfd: 5 events: 19\n",
		FI_HEAD "inotify wd:1 ino:2\n",
		FI_HEAD "clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (1 2)\nit_interval: (0, 0)\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_typed); i++) {
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo f2 = {};
		_cleanup_free_ void *arr = NULL;
		struct proc_eventfd e;
		struct proc_timerfd t2;
		uint64_t m;
		size_t k;
		assert_int_equal(proc_parse_fdinfo(bad_typed[i], strlen(bad_typed[i]), &f2), 0);
		int r;
		switch (i) {
		case 0: r = proc_fdinfo_eventfd(&f2, &e); break;
		case 1: r = proc_fdinfo_signalfd(&f2, &m); break;
		case 2: r = proc_fdinfo_epoll(&f2, (struct proc_epoll_tfd **)&arr, &k); break;
		case 3: r = proc_fdinfo_inotify(&f2, (struct proc_inotify_wd **)&arr, &k); break;
		default: r = proc_fdinfo_timerfd(&f2, &t2); break;
		}
		if (r != -EBADMSG)
			fail_msg("typed case %zu: %d", i, r);
	}
}

/* "lock:" lines as this kernel prints them (fs/locks.c lock_get_status) */
static void test_fdinfo_locks(void **state)
{
	_cleanup_(proc_fdinfo_done) struct proc_fdinfo fi = {};
	_cleanup_free_ struct proc_lock *l = NULL;
	size_t n;

	assert_int_equal(proc_parse_fdinfo(T(FI_HEAD "ino:\t10954440\n"
					     "lock:\t1: POSIX  ADVISORY  WRITE 2131 fe:00:10954440 1073741824 1073741824\n"
					     "lock:\t2: POSIX  ADVISORY  READ 2131 fe:00:10954440 1073741826 EOF\n"
					     "lock:\t3: OFDLCK ADVISORY  WRITE -1 fe:00:10954440 10 14\n"
					     "lock:\t4: FLOCK  ADVISORY  READ 2131 fe:00:10954440 0 EOF\n"
					     "lock:\t5: LEASE  ACTIVE    READ 2131 fe:00:10954440 0 EOF\n"),
					   &fi),
			 0);
	assert_int_equal(proc_fdinfo_locks(&fi, &l, &n), 5);
	assert_int_equal(l[0].kind, PROC_LOCK_POSIX);
	assert_true(l[0].write);
	assert_int_equal(l[0].pid, 2131);
	assert_int_equal(l[0].start, 1073741824);
	assert_int_equal(l[0].end, 1073741824);
	assert_int_equal(l[1].kind, PROC_LOCK_POSIX);
	assert_false(l[1].write);
	assert_true(l[1].end == UINT64_MAX);
	assert_int_equal(l[2].kind, PROC_LOCK_OFD);
	assert_int_equal(l[2].pid, -1);
	assert_int_equal(l[2].start, 10);
	assert_int_equal(l[2].end, 14);
	assert_int_equal(l[3].kind, PROC_LOCK_FLOCK);
	assert_int_equal(l[4].kind, PROC_LOCK_OTHER);
	assert_string_equal(l[4].name, "LEASE");

	static const char *const bad[] = {
		FI_HEAD "lock:\tPOSIX  ADVISORY  WRITE 1 fe:00:1 0 EOF\n",	/* no id */
		FI_HEAD "lock:\t1: POSIX  MANDATORY WRITE 1 fe:00:1 0 EOF\n",
		FI_HEAD "lock:\t1: POSIX  ADVISORY  UNLCK 1 fe:00:1 0 EOF\n",
		FI_HEAD "lock:\t1: POSIX  ADVISORY  WRITE 1 fe:00:1 5 4\n",	/* end < start */
		FI_HEAD "lock:\t1: POSIX  ADVISORY  WRITE 1 fe:00:1 0\n",
		FI_HEAD "lock:\t1: POSIX  ADVISORY  WRITE 1 fe:00:1 0 EOF x\n",
		FI_HEAD "lock:\t1: FLOCK  ADVISORY  READ x fe:00:1 0 EOF\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_(proc_fdinfo_done) struct proc_fdinfo f2 = {};
		_cleanup_free_ struct proc_lock *l2 = NULL;
		assert_int_equal(proc_parse_fdinfo(bad[i], strlen(bad[i]), &f2), 0);
		int r = proc_fdinfo_locks(&f2, &l2, &n);
		if (r != -EBADMSG)
			fail_msg("lock case %zu: %d", i, r);
	}
}

static void test_fd_targets(void **state)
{
	static const struct {
		const char *target;
		enum proc_fd_kind kind;
		enum proc_anon_kind anon;
		bool deleted;
		uint64_t ino;
		const char *out, *name;
	} cases[] = {
		{ "pipe:[123]", PROC_FD_PIPE, 0, false, 123, "pipe:[123]", "" },
		{ "socket:[45]", PROC_FD_SOCKET, 0, false, 45, "socket:[45]", "" },
		{ "anon_inode:[eventfd]", PROC_FD_ANON, PROC_ANON_EVENTFD, false, 0, "anon_inode:[eventfd]", "eventfd" },
		{ "anon_inode:inotify", PROC_FD_ANON, PROC_ANON_INOTIFY, false, 0, "anon_inode:inotify", "inotify" },
		{ "anon_inode:[pidfd]", PROC_FD_ANON, PROC_ANON_PIDFD, false, 0, "anon_inode:[pidfd]", "pidfd" },
		{ "anon_inode:[io_uring]", PROC_FD_ANON, PROC_ANON_IO_URING, false, 0, "anon_inode:[io_uring]", "io_uring" },
		{ "anon_inode:bpf-map", PROC_FD_ANON, PROC_ANON_BPF, false, 0, "anon_inode:bpf-map", "bpf-map" },
		{ "anon_inode:[new thing]", PROC_FD_ANON, PROC_ANON_OTHER, false, 0, "anon_inode:[new thing]", "new thing" },
		{ "net:[4026531833]", PROC_FD_NS, 0, false, 4026531833ULL, "net:[4026531833]", "net" },
		{ "pidfd:[77]", PROC_FD_OTHER, 0, false, 77, "pidfd:[77]", "pidfd" },
		{ "/tmp/a b (deleted)", PROC_FD_FILE, 0, true, 0, "/tmp/a b", "" },
		{ "/tmp/pipe:[3]", PROC_FD_FILE, 0, false, 0, "/tmp/pipe:[3]", "" },
		{ "/tmp/new\nline", PROC_FD_FILE, 0, false, 0, "/tmp/new\nline", "" },
		{ "/memfd:x y (deleted)", PROC_FD_MEMFD, 0, true, 0, "/memfd:x y", "" },
		{ "/memfd:x", PROC_FD_FILE, 0, false, 0, "/memfd:x", "" },
		{ "weird", PROC_FD_OTHER, 0, false, 0, "weird", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[64];
		struct proc_fd f;
		size_t len = strlen(cases[i].target);
		memcpy(buf, cases[i].target, len + 1);
		assert_int_equal(proc_classify_fd_target(buf, len, &f), 0);
		if (f.kind != cases[i].kind)
			fail_msg("case %zu: kind %d", i, f.kind);
		assert_int_equal(f.anon, cases[i].anon);
		assert_int_equal(f.deleted, cases[i].deleted);
		assert_int_equal(f.ino, cases[i].ino);
		assert_string_equal(f.target, cases[i].out);
		assert_string_equal(f.name, cases[i].name);
	}
	static const char *const bad[] = { "pipe:[x]", "pipe:[1", "socket:[]", "pipe:[1]x",
					   "pipe:[99999999999999999999]", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char buf[64];
		struct proc_fd f;
		strcpy(buf, bad[i]);
		assert_int_equal(proc_classify_fd_target(buf, strlen(buf), &f), -EBADMSG);
	}
	/* a name longer than the field is cut, safely */
	char longname[200] = "anon_inode:[";
	memset(longname + 12, 'x', 150);
	strcpy(longname + 162, "]");
	struct proc_fd f;
	assert_int_equal(proc_classify_fd_target(longname, strlen(longname), &f), 0);
	assert_int_equal(strlen(f.name), sizeof(f.name) - 1);
}

/* ------------------------------------------------------------------------ */
/* timers, mountinfo, small files                                            */

static void test_timers(void **state)
{
	_cleanup_free_ struct proc_timer *t = NULL;
	size_t n;

	assert_int_equal(proc_parse_timers(S(timers), &t, &n), 3);
	assert_int_equal(t[0].id, 2);
	assert_int_equal(t[0].notify, SIGEV_NONE);
	assert_int_equal(t[0].clock_id, CLOCK_BOOTTIME);
	assert_int_equal(t[1].id, 1);
	assert_int_equal(t[1].notify, SIGEV_SIGNAL);
	assert_true(t[1].thread_id);
	assert_int_equal(t[1].signo, SIGUSR2);
	assert_int_equal(t[1].notify_pid, 29471);
	assert_int_equal(t[1].clock_id, CLOCK_REALTIME);
	assert_int_equal(t[2].signo, 34);
	assert_false(t[2].thread_id);
	assert_int_equal(t[2].sigval, 0xdeadbeef);
	assert_int_equal(t[2].clock_id, CLOCK_MONOTONIC);

	struct proc_timer *t2 = NULL;
	assert_int_equal(proc_parse_timers("", 0, &t2, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(proc_parse_timers(T("ID: 0\nsignal: 14/0\nnotify: thread/pid.1\nClockID: 1\n"), &t2, &n), 1);
	assert_int_equal(t2[0].notify, SIGEV_THREAD);
	free(t2);

	static const char *const bad[] = {
		"ID: 0\nsignal: 14/0\nnotify: signal/pid.1\n",
		"ID: 0\nsignal: 14/0\nnotify: signal/pid.1\nClockID: 1",
		"ID: 0\nsignal: 14/0\nnotify: bogus/pid.1\nClockID: 1\n",
		"ID: 0\nsignal: 14/0\nnotify: signal/xid.1\nClockID: 1\n",
		"ID: -1\nsignal: 14/0\nnotify: signal/pid.1\nClockID: 1\n",
		"ID: 0\nsignal: 14\nnotify: signal/pid.1\nClockID: 1\n",
		"ID: 0\nsignal: 14/0\nnotify: signal/pid.1\nClockID: 1 \n",
		"ID: 0\nsignal: 14/10000000000000000\nnotify: signal/pid.1\nClockID: 1\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_timer *z = NULL;
		int r = proc_parse_timers(bad[i], strlen(bad[i]), &z, &n);
		if (r != -EBADMSG)
			fail_msg("case %zu: %d", i, r);
		assert_null(z);
	}
}

static void test_mountinfo(void **state)
{
	_cleanup_(proc_mount_list_done) struct proc_mount_list l = {};
	const struct proc_mount *m = NULL, *shared = NULL, *slave = NULL, *root = NULL;

	assert_true(proc_parse_mountinfo(S(mountinfo), &l) > 10);
	for (size_t i = 0; i < l.n; i++) {
		if (strcmp(l.mounts[i].mountpoint, "/tmp/dm proc/mnt a\tb\\c") == 0)
			m = &l.mounts[i];
		if (strcmp(l.mounts[i].mountpoint, "/tmp/dm proc/shared") == 0)
			shared = &l.mounts[i];
		if (strcmp(l.mounts[i].mountpoint, "/tmp/dm proc/slave") == 0)
			slave = &l.mounts[i];
		if (strcmp(l.mounts[i].mountpoint, "/") == 0)
			root = &l.mounts[i];
	}
	assert_non_null(m);
	assert_string_equal(m->source, "src with space");
	assert_string_equal(m->fstype, "tmpfs");
	assert_string_equal(m->root, "/");
	assert_string_equal(m->options, "rw,nosuid,relatime");
	assert_string_equal(m->super_options, "rw,size=64k");
	assert_int_equal(m->major, 0);
	assert_int_equal(m->shared, 0);
	assert_non_null(shared);
	assert_int_equal(shared->shared, 1);
	assert_non_null(slave);
	assert_int_equal(slave->master, 1);
	assert_int_equal(slave->shared, 0);
	assert_non_null(root);
	assert_int_equal(root->major, 254);
	assert_string_equal(root->fstype, "ext4");
	assert_string_equal(root->source, "/dev/vda");

	_cleanup_(proc_mount_list_done) struct proc_mount_list l2 = {};
	assert_int_equal(proc_parse_mountinfo(T("1 0 8:1 /a\\134b / rw shared:2 master:3 propagate_from:4 "
						"unbindable future:9 - ext4 /dev/sda1 rw\n"),
					      &l2),
			 1);
	assert_string_equal(l2.mounts[0].root, "/a\\b");
	assert_int_equal(l2.mounts[0].shared, 2);
	assert_int_equal(l2.mounts[0].master, 3);
	assert_int_equal(l2.mounts[0].propagate_from, 4);
	assert_true(l2.mounts[0].unbindable);

	static const char *const bad[] = {
		"1 0 8:1 / / rw ext4 /dev/sda1 rw\n",			/* no "-" */
		"1 0 8:1 / / rw - ext4 /dev/sda1\n",			/* no super options */
		"1 0 8:1 / / rw - ext4 /dev/sda1 rw extra\n",
		"1 0 8 / / rw - ext4 /dev/sda1 rw\n",
		"1 0 8:1 / / rw - ext4 /dev/sda1 rw",			/* truncated */
		"1 0 8:1 / /  rw - ext4 /dev/sda1 rw\n",		/* empty field */
		"x 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
		"1 0 8:1 / / rw shared:x - ext4 /dev/sda1 rw\n",
		"1 0 8:1 / / rw shared:0 - ext4 /dev/sda1 rw\n",
		"1 0 4294967296:1 / / rw - ext4 /dev/sda1 rw\n",
		"\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_mount_list z = {};
		int r = proc_parse_mountinfo(bad[i], strlen(bad[i]), &z);
		if (r != -EBADMSG)
			fail_msg("case %zu: %d", i, r);
		assert_null(z.mounts);
	}
}

static void test_small_files(void **state)
{
	unsigned int pers;
	char comm[PROC_COMM_MAX + 1];

	assert_int_equal(proc_parse_personality(S(personality), &pers), 0);
	assert_int_equal(pers, 0);
	assert_int_equal(proc_parse_personality(T("00400000\n"), &pers), 0);
	assert_int_equal(pers, 0x400000);
	assert_int_equal(proc_parse_personality(T("00400000"), &pers), -EBADMSG);
	assert_int_equal(proc_parse_personality(T("100000000\n"), &pers), -EBADMSG);
	assert_int_equal(proc_parse_personality(T("0\n\n"), &pers), -EBADMSG);

	int64_t v;
	assert_int_equal(proc_parse_s64(T("-1000\n"), &v), 0);
	assert_int_equal(v, -1000);
	assert_int_equal(proc_parse_s64(T("4294967295\n"), &v), 0);
	assert_int_equal(v, 4294967295LL);
	assert_int_equal(proc_parse_s64(T("12"), &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(proc_parse_s64(T("12\n\n"), &v), -EBADMSG);
	assert_int_equal(proc_parse_s64(T(" 12\n"), &v), -EBADMSG);
	assert_int_equal(proc_parse_s64(T(""), &v), -EBADMSG);

	long nr;
	uint64_t a1;
	assert_int_equal(proc_parse_syscall(T("58 0x0 0x0 0x0 0x0 0x0 0x0 0x7ffc 0x7f12\n"), &nr, &a1), 0);
	assert_int_equal(nr, 58);
	assert_int_equal(proc_parse_syscall(T("56 0x4111 0x0 0x0 0x0 0x0 0x0 0x7ffc 0x7f12\n"), &nr, &a1), 0);
	assert_int_equal(nr, 56);
	assert_int_equal(a1, 0x4111);
	assert_int_equal(proc_parse_syscall(T("-1 0x7ffc 0x7f12\n"), &nr, &a1), 0);
	assert_int_equal(nr, -1);
	assert_int_equal(proc_parse_syscall(T("running\n"), &nr, &a1), 0);
	assert_int_equal(nr, -2);
	assert_int_equal(proc_parse_syscall(T("x\n"), &nr, &a1), -EBADMSG);

	assert_int_equal(proc_parse_comm(S(comm), comm), 0);
	assert_string_equal(comm, "a) (b\nc\\ d");
	assert_int_equal(proc_parse_comm(T("x\n\n"), comm), 0);
	assert_string_equal(comm, "x\n");
	assert_int_equal(proc_parse_comm(T("x"), comm), -EBADMSG);
	assert_int_equal(proc_parse_comm(T(""), comm), -EBADMSG);

	_cleanup_(proc_strv_done) struct proc_strv sv = {};
	assert_int_equal(proc_parse_strv(S(cmdline), &sv), 2);
	assert_string_equal(sv.v[0], "/tmp/capture");
	assert_string_equal(sv.v[1], ".");
	assert_null(sv.v[2]);
	assert_int_equal(sv.size, 15);
	proc_strv_done(&sv);
	/* setproctitle() style: no final NUL, empty strings inside */
	assert_int_equal(proc_parse_strv(T("a\0\0b c"), &sv), 3);
	assert_string_equal(sv.v[1], "");
	assert_string_equal(sv.v[2], "b c");
	proc_strv_done(&sv);
	assert_int_equal(proc_parse_strv("", 0, &sv), 0);
	assert_null(sv.v[0]);

	_cleanup_free_ struct proc_auxv_entry *a = NULL;
	size_t n;
	bool pagesz = false;
	assert_true(proc_parse_auxv(sample_auxv, sample_auxv_len, &a, &n) > 10);
	for (size_t i = 0; i < n; i++)
		if (a[i].type == AT_PAGESZ && a[i].val == 4096)
			pagesz = true;
	assert_true(pagesz);
	struct proc_auxv_entry *a2 = NULL;
	assert_int_equal(proc_parse_auxv(sample_auxv, sample_auxv_len - 1, &a2, &n), -EBADMSG);
	assert_int_equal(proc_parse_auxv(sample_auxv, sample_auxv_len - 16, &a2, &n), -EBADMSG);
	assert_int_equal(proc_parse_auxv(sample_auxv, 16, &a2, &n), -EBADMSG);
	uint64_t only_null[2] = { AT_NULL, 0 };
	assert_int_equal(proc_parse_auxv(only_null, sizeof(only_null), &a2, &n), 0);
	assert_null(a2);

	_cleanup_(proc_cgroup_list_done) struct proc_cgroup_list cg = {};
	assert_int_equal(proc_parse_cgroup(S(cgroup), &cg), 10);
	assert_int_equal(cg.cg[0].hier_id, 9);
	assert_string_equal(cg.cg[0].controllers, "name=systemd");
	assert_string_equal(cg.cg[5].controllers, "memory");
	assert_string_equal(cg.cg[5].path, "/dm/test");
	assert_int_equal(cg.cg[9].hier_id, 0);
	assert_string_equal(cg.cg[9].controllers, "");
	assert_string_equal(cg.cg[9].path, "/");
	proc_cgroup_list_done(&cg);
	assert_int_equal(proc_parse_cgroup(T("0::/a:b: c\n"), &cg), 1);
	assert_string_equal(cg.cg[0].path, "/a:b: c");
	struct proc_cgroup_list z = {};
	assert_int_equal(proc_parse_cgroup(T("0:/\n"), &z), -EBADMSG);
	assert_int_equal(proc_parse_cgroup(T("x::/\n"), &z), -EBADMSG);
	assert_int_equal(proc_parse_cgroup(T("0::\n"), &z), -EBADMSG);
	assert_int_equal(proc_parse_cgroup(T("0::/"), &z), -EBADMSG);

	uint64_t ino;
	assert_int_equal(proc_parse_ns_link(T("net:[4026531833]"), "net", &ino), 0);
	assert_int_equal(ino, 4026531833ULL);
	assert_int_equal(proc_parse_ns_link(T("net:[4026531833]"), "mnt", &ino), -EBADMSG);
	assert_int_equal(proc_parse_ns_link(T("net:[]"), "net", &ino), -EBADMSG);
	assert_int_equal(proc_parse_ns_link(T("net:[1]x"), "net", &ino), -EBADMSG);
	assert_int_equal(proc_parse_ns_link(T("net:[0]"), "net", &ino), -EBADMSG);

	_cleanup_free_ pid_t *pids = NULL;
	assert_int_equal(proc_parse_pid_list(T("12 345 6 "), &pids, &n), 3);
	assert_int_equal(pids[1], 345);
	pid_t *p2 = NULL;
	assert_int_equal(proc_parse_pid_list(T(""), &p2, &n), 0);
	assert_null(p2);
	assert_int_equal(proc_parse_pid_list(T("1 x"), &p2, &n), -EBADMSG);
	assert_int_equal(proc_parse_pid_list(T("0 "), &p2, &n), -EBADMSG);
	assert_int_equal(proc_parse_pid_list(T("1-2 "), &p2, &n), -EBADMSG);
	assert_int_equal(proc_parse_pid_list(T("2147483648 "), &p2, &n), -EBADMSG);

	/* /proc/PID/task/TID/syscall: the stack pointer of a blocked thread */
	uint64_t sp = 0;
	assert_int_equal(proc_parse_syscall_sp(T("running\n"), &sp), 0);
	assert_int_equal(proc_parse_syscall_sp(T("202 0x7f3c 0x80 0x2 0x0 0x0 0x0 0x7ffd1234 0x7f3cabcd\n"), &sp), 1);
	assert_true(sp == 0x7ffd1234);
	assert_int_equal(proc_parse_syscall_sp(T("-1 0x7ffe5678 0x401000\n"), &sp), 1);
	assert_true(sp == 0x7ffe5678);
	assert_int_equal(proc_parse_syscall_sp(T("202 0x1 0x2\n"), &sp), -EBADMSG);
	assert_int_equal(proc_parse_syscall_sp(T("-1 7ffe5678 0x401000\n"), &sp), -EBADMSG);
	assert_int_equal(proc_parse_syscall_sp(T("-1 0x7ffez 0x401000\n"), &sp), -EBADMSG);
	assert_int_equal(proc_parse_syscall_sp(T(""), &sp), -EBADMSG);
}

static void test_sys(void **state)
{
	struct proc_cpu_times t;
	struct proc_meminfo m;

	assert_int_equal(proc_parse_cpu_times(S(sys_stat), &t), 0);
	assert_int_equal(t.ncpu, 2);
	assert_true(t.idle > 0);
	assert_int_equal(proc_cpu_total(&t), t.user + t.nice + t.system + t.idle + t.iowait + t.irq +
						     t.softirq + t.steal);
	assert_int_equal(proc_parse_cpu_times(T("cpu  1 2 3 4\ncpu0 1 2 3 4\n"), &t), 0);
	assert_int_equal(t.idle, 4);
	assert_int_equal(t.iowait, 0);
	assert_int_equal(proc_cpu_busy(&t), 6);
	assert_int_equal(proc_parse_cpu_times(T("cpu  1 2 3\n"), &t), -EBADMSG);
	assert_int_equal(proc_parse_cpu_times(T("cpu  1 2 3 x\n"), &t), -EBADMSG);
	assert_int_equal(proc_parse_cpu_times(T("intr 5\n"), &t), -EBADMSG);
	assert_int_equal(proc_parse_cpu_times(T("cpu 1 2 3 4\ncpu 1 2 3 4\n"), &t), -EBADMSG);

	assert_int_equal(proc_parse_meminfo(S(meminfo), &m), 0);
	assert_int_equal(m.mem_total, 24684092ULL * 1024);
	assert_true(m.mem_available > 0 && m.mem_available <= m.mem_total);
	assert_int_equal(proc_parse_meminfo(T("MemTotal: 10 kB\nMemFree: 5 kB\n"), &m), 0);
	assert_int_equal(m.mem_available, 5 * 1024);
	assert_int_equal(proc_parse_meminfo(T("MemTotal: 18014398509481984 kB\nMemFree: 5 kB\n"), &m),
			 -EBADMSG);
	assert_int_equal(proc_parse_meminfo(T("MemTotal: 10 MB\nMemFree: 5 kB\n"), &m), -EBADMSG);
	assert_int_equal(proc_parse_meminfo(T("MemFree: 5 kB\n"), &m), -EBADMSG);
}

/* Random damage to every sample: the parsers must fail cleanly or succeed. */
static void test_mutations(void **state)
{
	static const struct {
		const unsigned char *buf;
		unsigned int len;
	} samples[] = {
		{ sample_maps, sizeof(sample_maps) },	  { sample_smaps, sizeof(sample_smaps) },
		{ sample_status, sizeof(sample_status) }, { sample_stat, sizeof(sample_stat) },
		{ sample_mountinfo, sizeof(sample_mountinfo) },
		{ sample_fdinfo_epoll, sizeof(sample_fdinfo_epoll) },
		{ sample_fdinfo_inotify, sizeof(sample_fdinfo_inotify) },
		{ sample_fdinfo_timerfd, sizeof(sample_fdinfo_timerfd) },
		{ sample_timers, sizeof(sample_timers) },
	};
	static const char junk[] = { '\n', ' ', '\\', ')', '(', ':', '-', '0', 'f', 0, '\t', '[', ']' };
	unsigned seed = 12345;

	for (size_t s = 0; s < ARRAY_SIZE(samples); s++) {
		_cleanup_free_ char *b = xmalloc(samples[s].len);
		for (int iter = 0; iter < 2000; iter++) {
			size_t len = samples[s].len;
			memcpy(b, samples[s].buf, len);
			int edits = 1 + rand_r(&seed) % 4;
			for (int e = 0; e < edits; e++) {
				size_t at = (size_t)rand_r(&seed) % len;
				b[at] = (rand_r(&seed) & 1) ? junk[rand_r(&seed) % sizeof(junk)]
							    : (char)rand_r(&seed);
			}
			if (rand_r(&seed) % 8 == 0)
				len = (size_t)rand_r(&seed) % len;

			struct proc_vma_list l = {};
			struct proc_status st = {};
			struct proc_stat ps;
			struct proc_mount_list ml = {};
			struct proc_fdinfo fi = {};
			struct proc_timer *t = NULL;
			size_t n;
			int r;
			if ((r = proc_parse_maps(b, len, &l)) < 0)
				assert_int_equal(r, -EBADMSG);
			proc_vma_list_done(&l);
			if ((r = proc_parse_smaps(b, len, &l)) < 0)
				assert_int_equal(r, -EBADMSG);
			proc_vma_list_done(&l);
			if ((r = proc_parse_status(b, len, &st)) < 0)
				assert_int_equal(r, -EBADMSG);
			proc_status_done(&st);
			if ((r = proc_parse_stat(b, len, &ps)) < 0)
				assert_int_equal(r, -EBADMSG);
			if ((r = proc_parse_mountinfo(b, len, &ml)) < 0)
				assert_int_equal(r, -EBADMSG);
			proc_mount_list_done(&ml);
			if ((r = proc_parse_fdinfo(b, len, &fi)) < 0) {
				assert_int_equal(r, -EBADMSG);
			} else {
				struct proc_epoll_tfd *tf = NULL;
				struct proc_inotify_wd *w = NULL;
				struct proc_timerfd tm;
				(void)proc_fdinfo_epoll(&fi, &tf, &n);
				(void)proc_fdinfo_inotify(&fi, &w, &n);
				(void)proc_fdinfo_timerfd(&fi, &tm);
				free(tf);
				free(w);
			}
			proc_fdinfo_done(&fi);
			if ((r = proc_parse_timers(b, len, &t, &n)) < 0)
				assert_int_equal(r, -EBADMSG);
			free(t);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_sample),
		cmocka_unit_test(test_smaps_sample),
		cmocka_unit_test(test_smaps_vmflags_mismatch),
		cmocka_unit_test(test_maps_names),
		cmocka_unit_test(test_maps_garbage),
		cmocka_unit_test(test_maps_huge_path),
		cmocka_unit_test(test_vmflags),
		cmocka_unit_test(test_stat_sample),
		cmocka_unit_test(test_stat_tricky),
		cmocka_unit_test(test_status_sample),
		cmocka_unit_test(test_status_tricky),
		cmocka_unit_test(test_status_many_groups),
		cmocka_unit_test(test_fdinfo_samples),
		cmocka_unit_test(test_fdinfo_tricky),
		cmocka_unit_test(test_fdinfo_locks),
		cmocka_unit_test(test_fd_targets),
		cmocka_unit_test(test_timers),
		cmocka_unit_test(test_mountinfo),
		cmocka_unit_test(test_small_files),
		cmocka_unit_test(test_sys),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
