/* SPDX-License-Identifier: MIT */
/*
 * Batches that run themselves when they are full.  A batch is one ptrace
 * round trip for up to INJ_BATCH_MAX syscalls; the restore has no decision
 * between most of its syscalls, so a long sequence is simply cut into as many
 * runs as it needs.  The caller asks for room (entries + staged bytes) before
 * staging the arguments of one entry, so an entry and its staged data always
 * travel in the same run.
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "base/log.h"

#include <string.h>
#include <sys/user.h>

void rb_init(struct rbatch *rb, struct rst_ctx *c, struct tracee *t)
{
	batch_init(&rb->b, t);
	rb->c = c;
	rb->tx_pending = 0;
}

int rb_run(struct rbatch *rb)
{
	if (rb->b.n == 0) {
		rb->b.used = 0;
		return 0;
	}
	rb->c->round_trips++;
	int r = batch_run(&rb->b, NULL);
	rb->b.used = 0;
	rb->tx_pending = 0;
	return r;
}

int rb_room(struct rbatch *rb, unsigned n, size_t bytes)
{
	/* stage() aligns every put to 16 bytes: leave room for a few puts */
	size_t need = bytes ? bytes + 64 : 0;

	if (n > INJ_BATCH_MAX || need > sizeof(rb->b.staging))
		return dm_fail(-E2BIG, "tracee %d: %u syscalls with %zu bytes do not fit one batch",
			       rb->b.t->tid, n, bytes);
	if (rb->b.n + n > INJ_BATCH_MAX || rb->b.used + need > sizeof(rb->b.staging))
		return rb_run(rb);
	return 0;
}

uint64_t rb_put(struct rbatch *rb, const void *src, size_t len)
{
	return batch_put(&rb->b, src, len);
}

int rb_stage(struct rbatch *rb, const void *src, size_t len, uint64_t *ret_remote)
{
	int r = rb_room(rb, 1, len);
	if (r < 0)
		return r;
	uint64_t a = batch_put(&rb->b, src, len);
	if (!a)
		return dm_fail(-E2BIG, "tracee %d: %zu bytes do not fit the staging area",
			       rb->b.t->tid, len);
	*ret_remote = a;
	return 0;
}

int rb_add(struct rbatch *rb, const char *what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
	   uint64_t a4, uint64_t a5, uint64_t a6)
{
	int r = rb_room(rb, 1, 0);
	if (r < 0)
		return r;
	r = batch_add(&rb->b, what, nr, a1, a2, a3, a4, a5, a6);
	return r < 0 ? r : 0;
}

long rst_inject(struct rst_ctx *c, struct tracee *t, long nr, uint64_t a1, uint64_t a2,
		uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
	c->round_trips++;
	return inject_syscall(t, nr, a1, a2, a3, a4, a5, a6);
}

/*
 * Injected syscalls run with the stack pointer the task had; after the stub's
 * VMAs are gone that points nowhere.  Nothing of ours uses the stack, but the
 * kernel looks at it (sigaltstack() refuses to change the alternate stack
 * while rsp is on it), so keep it inside the blob's code page, which is in no
 * image VMA.
 */
int rst_tracee_init(struct rst_ctx *c, struct tracee *t, pid_t tid, int memfd)
{
	struct user_regs_struct regs;
	int r;

	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->memfd = memfd;
	t->code = c->blob;
	t->data = c->blob + INJ_CODE_SIZE;
	r = ptrace_getregs(tid, &regs);
	if (r < 0)
		return dm_fail(r, "thread %d: cannot read registers: %s", tid, strerror(-r));
	regs.rsp = c->blob + INJ_CODE_SIZE - 256;
	regs.orig_rax = -1;
	r = ptrace_setregs(tid, &regs);
	if (r < 0)
		return dm_fail(r, "thread %d: cannot set registers: %s", tid, strerror(-r));
	return 0;
}
