/* SPDX-License-Identifier: MIT */
/*
 * A few syscalls inside a live process that we do not otherwise control:
 * seize one thread, stop it, call through a `syscall` instruction of its
 * vDSO (no code of ours goes into it), put its registers back (a syscall it
 * was sleeping in restarts), let it go.  The process loses a few hundred
 * microseconds.  Used by pre-copy (a write-protect uffd inside the source
 * tree) and after a post-copy switch-over (madvise state fixed up on the
 * destination).
 */
#define LOG_PREFIX "inject: "
#include "inject/inject.h"
#include "base/log.h"
#include "proc/proc.h"

#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

int inject_find_vdso_syscall(pid_t pid, uint64_t *ret)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list vl = {};
	int r = proc_read_maps(pid, &vl);

	if (r < 0)
		return r;
	for (size_t i = 0; i < vl.n; i++) {
		const struct proc_vma *v = &vl.vmas[i];
		if (v->kind != PROC_VMA_VDSO)
			continue;
		size_t len = v->end - v->start;
		_cleanup_free_ uint8_t *b = xmalloc(len);
		struct iovec li = { b, len }, ri = { (void *)v->start, len };
		if (process_vm_readv(pid, &li, 1, &ri, 1, 0) != (ssize_t)len)
			return neg_errno();
		for (size_t k = 0; k + 1 < len; k++)
			if (b[k] == 0x0f && b[k + 1] == 0x05) {
				*ret = v->start + k;
				return 0;
			}
	}
	return -ENOTSUP;
}

int inject_live_begin(pid_t tid, struct inject_live *l)
{
	int st, r;

	memset(l, 0, sizeof(*l));
	l->tid = tid;
	/* the injected calls must not meet the tree's seccomp filter (a
	 * container's forbids userfaultfd): suspended for this thread while
	 * we hold it, as the dump's seize does */
	if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP) < 0)
		return dm_fail(neg_errno(), "process %d: cannot seize it: %m", tid);
	l->seized = true;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		r = dm_fail(neg_errno(), "process %d: cannot stop it: %m", tid);
		goto fail;
	}
	r = ptrace_wait_stop(tid, &st);
	if (r < 0)
		goto fail;
	r = ptrace_getregs(tid, &l->saved);
	if (r < 0)
		goto fail;
	r = inject_find_vdso_syscall(tid, &l->insn);
	if (r < 0) {
		r = dm_fail(r, "process %d: no syscall instruction in its vDSO: %s", tid, strerror(-r));
		goto fail;
	}
	return 0;
fail:
	ptrace(PTRACE_DETACH, tid, 0, 0);
	l->seized = false;
	return r;
}

long inject_live_call(struct inject_live *l, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		      uint64_t a5, uint64_t a6)
{
	if (!l->seized)
		return -ESRCH;
	return inject_syscall_at(l->tid, l->insn, nr, a1, a2, a3, a4, a5, a6);
}

int inject_live_end(struct inject_live *l)
{
	int r = 0;

	if (!l->seized)
		return 0;
	regs_fixup_restart(&l->saved, true);
	if (ptrace_setregs(l->tid, &l->saved) < 0)
		r = dm_fail(-EIO, "process %d: cannot put its registers back", l->tid);
	ptrace(PTRACE_DETACH, l->tid, 0, 0);
	l->seized = false;
	return r;
}
