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
	rb->hold = false;
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
	if (batch_fits(&rb->b, n, need))
		return 0;
	/* parts of threads (rb_run_threads): never run mid-way, the part is built again */
	if (rb->hold)
		return -E2BIG;
	return rb_run(rb);
}

/* the parts built so far, at once */
static int run_parts(struct rbatch *rb, struct inj_part *parts, const size_t *thread, unsigned n,
		     size_t *ret_failed)
{
	unsigned failed = 0;
	int r;

	rb->c->round_trips += n;
	r = batch_run_parts(&rb->b, parts, n, &failed, NULL);
	if (r < 0 && n)
		*ret_failed = thread[MIN(failed, n - 1)];
	rb->b.n = 0;
	rb->b.used = 0;
	return r;
}

int rb_run_threads(struct rst_ctx *c, struct rst_proc *p, size_t from, size_t to, rb_build_fn build,
		   void *arg, size_t *ret_failed)
{
	size_t cap = to > from ? to - from : 1;
	_cleanup_free_ struct inj_part *parts = xcalloc(cap, sizeof(*parts));
	_cleanup_free_ size_t *thread = xcalloc(cap, sizeof(*thread));
	_cleanup_free_ struct rbatch *rb = xmalloc(sizeof(*rb));
	unsigned n = 0;
	int r = 0;

	if (from >= to)
		return 0;
	rb_init(rb, c, rst_main(p));
	rb->hold = true;
	for (size_t i = from; i < to && r >= 0; i++) {
		unsigned n0 = rb->b.n;
		size_t used0 = rb->b.used;
		*ret_failed = i;
		r = build(c, p, i, rb, arg);
		if (r == -E2BIG && n) {
			/* full: the parts before it run, this one is built again */
			dm_error_clear();
			rb->b.n = n0;
			rb->b.used = used0;
			r = run_parts(rb, parts, thread, n, ret_failed);
			n = 0;
			n0 = 0;
			if (r >= 0)
				r = build(c, p, i, rb, arg);
		}
		if (r == -E2BIG) {
			/* larger than a batch: alone, in pieces */
			dm_error_clear();
			rb_init(rb, c, &p->threads[i].t);
			r = build(c, p, i, rb, arg);
			if (r >= 0)
				r = rb_run(rb);
			rb_init(rb, c, rst_main(p));
			rb->hold = true;
			continue;
		}
		if (r >= 0 && rb->b.n > n0) {
			parts[n] = (struct inj_part){ &p->threads[i].t, n0, rb->b.n - n0 };
			thread[n++] = i;
		}
	}
	if (r >= 0 && n)
		r = run_parts(rb, parts, thread, n, ret_failed);
	return r;
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
