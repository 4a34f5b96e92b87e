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
	if (batch_fits(&rb->b, n, need))
		return 0;
	/* a packed batch runs beside others: never alone, mid-way (rb_run_threads) */
	if (rb->b.packed)
		return -E2BIG;
	return rb_run(rb);
}

/* the lanes of rb_run_threads(), kept for the next call (their pages are in) */
static struct rbatch *lane(struct rst_ctx *c, size_t k)
{
	if (k >= c->n_lanes) {
		c->lanes = xrealloc(c->lanes, (k + 1) * sizeof(*c->lanes));
		while (c->n_lanes <= k)
			c->lanes[c->n_lanes++] = xmalloc(sizeof(struct rbatch));
	}
	return c->lanes[k];
}

/* wait for lanes [0, n): the first failure kept (its message too), *ret_failed its thread */
static int wait_lanes(struct rst_ctx *c, size_t n, const size_t *thread, int r, size_t *ret_failed)
{
	char msg[DM_ERRMSG_MAX];

	if (r < 0)
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
	for (size_t k = 0; k < n; k++) {
		int w = batch_wait(&c->lanes[k]->b, NULL);
		if (w < 0 && r >= 0) {
			r = w;
			*ret_failed = thread[k];
			snprintf(msg, sizeof(msg), "%s", dm_last_error());
		}
	}
	if (r < 0)
		dm_error_set_message(msg);
	return r;
}

int rb_run_threads(struct rst_ctx *c, struct rst_proc *p, size_t from, size_t to, rb_build_fn build,
		   void *arg, size_t *ret_failed)
{
	_cleanup_free_ size_t *thread = xcalloc(to > from ? to - from : 1, sizeof(*thread));
	size_t n = 0, off = 0;
	int r = 0;

	for (size_t i = from; i < to && r >= 0; i++) {
		struct rbatch *rb = lane(c, n);
		*ret_failed = i;
		rb_init(rb, c, &p->threads[i].t);
		batch_init_packed(&rb->b, rb->b.t, off);
		r = build(c, p, i, rb, arg);
		if (r == -E2BIG && off > 0) {
			/* what is left of the area is too small: after the others, from its start */
			dm_error_clear();
			r = wait_lanes(c, n, thread, 0, ret_failed);
			n = off = 0;
			if (r < 0)
				break;
			rb = lane(c, 0);
			rb_init(rb, c, &p->threads[i].t);
			batch_init_packed(&rb->b, rb->b.t, 0);
			r = build(c, p, i, rb, arg);
		}
		if (r == -E2BIG) {
			/* more than the whole area: alone, in pieces (rb_room runs them) */
			dm_error_clear();
			r = wait_lanes(c, n, thread, 0, ret_failed);
			n = off = 0;
			if (r < 0)
				break;
			rb = lane(c, 0);
			rb_init(rb, c, &p->threads[i].t);
			r = build(c, p, i, rb, arg);
			if (r >= 0)
				r = rb_run(rb);
			continue;
		}
		if (r < 0)
			break;
		if (rb->b.n == 0)
			continue;
		c->round_trips++;
		r = batch_start(&rb->b);
		if (r < 0)
			break;
		thread[n++] = i;
		off += batch_span(&rb->b);
	}
	size_t failed = *ret_failed;
	r = wait_lanes(c, n, thread, r, &failed);
	*ret_failed = failed;
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
