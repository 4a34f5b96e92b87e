/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "inject: "
#include "inject/inject.h"
#include "base/log.h"
#include "base/clock.h"

#include <elf.h>
#include <limits.h>
#include <stdlib.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

/*
 * The blob's code.  Position independent; copied into the tracee.
 *   0:  syscall; int3
 *  16:  batch loop: rbx -> struct inj_entry[], r12 = count, r13 = 0:
 *       stops (int3) after the last entry or at the first result in
 *       [-4095, -1]; r13 != 0: runs every entry whatever its result
 *       (batch_run_all).  syscall clobbers only rcx and r11.
 */
__asm__(".pushsection .rodata\n"
	".globl dm_inject_blob_start\n"
	".globl dm_inject_blob_end\n"
	"dm_inject_blob_start:\n"
	"	syscall\n"
	"	int3\n"
	"	.balign 16, 0xcc\n"
	"1:	test %r12, %r12\n"
	"	jz 2f\n"
	"	mov 0(%rbx), %rax\n"
	"	mov 8(%rbx), %rdi\n"
	"	mov 16(%rbx), %rsi\n"
	"	mov 24(%rbx), %rdx\n"
	"	mov 32(%rbx), %r10\n"
	"	mov 40(%rbx), %r8\n"
	"	mov 48(%rbx), %r9\n"
	"	syscall\n"
	"	mov %rax, 56(%rbx)\n"
	"	test %r13, %r13\n"
	"	jnz 3f\n"
	"	cmp $-4095, %rax\n"
	"	jae 2f\n"
	"3:	add $64, %rbx\n"
	"	dec %r12\n"
	"	jmp 1b\n"
	"2:	int3\n"
	"dm_inject_blob_end:\n"
	".popsection\n");
extern const uint8_t dm_inject_blob_start[], dm_inject_blob_end[];

#define BATCH_ENTRY_OFF (INJ_DATA_SIZE - INJ_BATCH_MAX * sizeof(struct inj_entry))

void inject_blob_code(uint8_t out[INJ_BLOB_CODE_MAX], size_t *ret_len)
{
	size_t n = dm_inject_blob_end - dm_inject_blob_start;
	_Static_assert(INJ_BLOB_CODE_MAX >= 96, "room for the batch loop");
	memcpy(out, dm_inject_blob_start, n);
	*ret_len = n;
}

int inject_open_mem(struct tracee *t)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/mem", t->tid);
	t->memfd = open(path, O_RDWR | O_CLOEXEC);
	if (t->memfd < 0)
		return neg_errno();
	return 0;
}

void tracee_release(struct tracee *t)
{
	if (t->memfd >= 0)
		close(t->memfd);
	t->memfd = -1;
}

int ptrace_getregs(pid_t tid, struct user_regs_struct *r)
{
	struct iovec io = { r, sizeof(*r) };
	if (ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, &io) < 0)
		return neg_errno();
	return 0;
}

int ptrace_setregs(pid_t tid, const struct user_regs_struct *r)
{
	struct iovec io = { (void *)r, sizeof(*r) };
	if (ptrace(PTRACE_SETREGSET, tid, NT_PRSTATUS, &io) < 0)
		return neg_errno();
	return 0;
}

int ptrace_getxstate(pid_t tid, void *buf, size_t size, size_t *ret_len)
{
	struct iovec io = { buf, size };
	if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &io) < 0)
		return neg_errno();
	*ret_len = io.iov_len;
	return 0;
}

int ptrace_setxstate(pid_t tid, const void *buf, size_t len)
{
	struct iovec io = { (void *)buf, len };
	if (ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &io) < 0)
		return neg_errno();
	return 0;
}

int ptrace_wait_stop(pid_t tid, int *ret_status)
{
	int st;

	for (;;) {
		pid_t w = waitpid(tid, &st, __WALL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		break;
	}
	if (!WIFSTOPPED(st))
		return dm_fail(-ECHILD, "thread %d ended (status %#x) while under control", tid, st);
	*ret_status = st;
	return 0;
}

/*
 * A bounded wait: a per-thread timer sends WAKE_SIG (a handler that does
 * nothing, without SA_RESTART) to this thread, so that waitpid() returns
 * EINTR; it fires again every 100 ms in case it came just before the
 * waitpid.  The fast path (already stopped) costs no timer.
 */
#define WAKE_SIG (SIGRTMIN + 6)

static void wake_noop(int sig) { (void)sig; }

static void wake_install(void)
{
	struct sigaction sa = { .sa_handler = wake_noop };
	sigemptyset(&sa.sa_mask);
	sigaction(WAKE_SIG, &sa, NULL);
}

int ptrace_wait_stop_bounded(pid_t tid, int *ret_status, int timeout_ms)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID };
	struct itimerspec its = { .it_interval = { 0, 100 * 1000000L } };
	sigset_t set, old;
	timer_t tm;
	int st, r = 0;
	pid_t w = waitpid(tid, &st, __WALL | WNOHANG);

	if (w == 0) {
		pthread_once(&once, wake_install);
		sev.sigev_signo = WAKE_SIG;
		sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
		if (timer_create(CLOCK_MONOTONIC, &sev, &tm) < 0)
			return dm_fail(neg_errno(), "timer_create: %m");
		sigemptyset(&set);
		sigaddset(&set, WAKE_SIG);
		pthread_sigmask(SIG_UNBLOCK, &set, &old);
		its.it_value.tv_sec = timeout_ms / 1000;
		its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L;
		uint64_t deadline = clock_ns() + (uint64_t)timeout_ms * 1000000ULL;
		timer_settime(tm, 0, &its, NULL);
		for (;;) {
			w = waitpid(tid, &st, __WALL);
			if (w >= 0)
				break;
			if (errno != EINTR) {
				r = neg_errno();
				break;
			}
			if (clock_ns() >= deadline) {
				r = -ETIMEDOUT;
				break;
			}
		}
		timer_delete(tm);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r < 0)
			return r;
	} else if (w < 0) {
		return neg_errno();
	}
	if (!WIFSTOPPED(st))
		return dm_fail(-ECHILD, "thread %d ended (status %#x) while under control", tid, st);
	*ret_status = st;
	return 0;
}

int tracee_write(struct tracee *t, uint64_t addr, const void *buf, size_t len)
{
	int r = pwrite_all(t->memfd, buf, len, (off_t)addr);
	if (r < 0)
		return dm_fail(r, "write to %d at %#lx (%zu bytes): %s", t->tid,
			       (unsigned long)addr, len, strerror(-r));
	return 0;
}

int tracee_read(struct tracee *t, uint64_t addr, void *buf, size_t len)
{
	int r = pread_exact(t->memfd, buf, len, (off_t)addr);
	if (r < 0)
		return dm_fail(r, "read from %d at %#lx (%zu bytes): %s", t->tid,
			       (unsigned long)addr, len, strerror(-r));
	return 0;
}

/*
 * How long injected work may take before we give up on it: every injected
 * syscall is one that returns at once (none waits for another process), so
 * one that has not come back is blocked where it should not be (a sleep in
 * the kernel, a page nobody serves).  DMIGRATE_INJECT_TIMEOUT_MS for tests.
 */
static int inject_timeout_ms(void)
{
	const char *e = getenv("DMIGRATE_INJECT_TIMEOUT_MS");
	long v = e ? strtol(e, NULL, 10) : 0;
	return v > 0 && v < INT_MAX ? (int)v : INJECT_TIMEOUT_MS;
}

/* The injected work of t did not come back: stop it where it is (an
 * interruptible wait ends, as for a signal), so that whoever called can put
 * its registers back; then say what happened. */
static int injection_stuck(pid_t tid, int timeout_ms)
{
	int st;

	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 || ptrace_wait_stop_bounded(tid, &st, 1000) < 0)
		return dm_fail(-ETIMEDOUT, "thread %d: injected work did not come back in %d ms, and the "
			       "thread does not stop (blocked in the kernel?)", tid, timeout_ms);
	return dm_fail(-ETIMEDOUT, "thread %d: injected work did not come back in %d ms (stopped "
		       "where it was)", tid, timeout_ms);
}

/* a stop of tid before the deadline of a round of injected work */
static int wait_injected(pid_t tid, int *st, uint64_t deadline, int timeout_ms)
{
	uint64_t now = clock_ns();
	int r = now >= deadline ? -ETIMEDOUT
				: ptrace_wait_stop_bounded(tid, st, (int)((deadline - now) / 1000000ULL) + 1);
	return r == -ETIMEDOUT ? injection_stuck(tid, timeout_ms) : r;
}

/* The tracee, continued, until it reaches an int3 of the blob.  Clone events
 * (from an injected clone3/fork) are recorded and stepped over. */
static int wait_trap(struct tracee *t)
{
	int st, r, timeout_ms = inject_timeout_ms();
	uint64_t deadline = clock_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		r = wait_injected(t->tid, &st, deadline, timeout_ms);
		if (r < 0)
			return r;
		int ev = st >> 16;
		if (ev == PTRACE_EVENT_CLONE || ev == PTRACE_EVENT_FORK || ev == PTRACE_EVENT_VFORK) {
			unsigned long msg = 0;
			ptrace(PTRACE_GETEVENTMSG, t->tid, 0, &msg);
			t->last_clone = (pid_t)msg;
			if (t->clones && t->n_clones < t->clones_max)
				t->clones[t->n_clones++] = (pid_t)msg;
		} else if (ev == PTRACE_EVENT_STOP) {
			/* a group stop or a late interrupt: not ours to report */
		} else if (WSTOPSIG(st) == SIGTRAP) {
			return 0;
		} else if (WSTOPSIG(st) == SIGSEGV || WSTOPSIG(st) == SIGBUS ||
			   WSTOPSIG(st) == SIGILL) {
			struct user_regs_struct regs;
			ptrace_getregs(t->tid, &regs);
			return dm_fail(-EFAULT, "tracee %d faulted (signal %d) at %#llx during injection",
				       t->tid, WSTOPSIG(st), regs.rip);
		} else {
			pr_debug("tracee %d: signal %d during injection, suppressed", t->tid,
				 WSTOPSIG(st));
		}
		if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
			return dm_fail(neg_errno(), "PTRACE_CONT %d: %m", t->tid);
	}
}

static int run_until_trap(struct tracee *t)
{
	if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		return dm_fail(neg_errno(), "PTRACE_CONT %d: %m", t->tid);
	return wait_trap(t);
}

/* Registers for a syscall at rip: nr and its six arguments; orig_rax = -1 so
 * that the kernel does not treat the stop we come from as a syscall to restart. */
static void set_syscall_regs(struct user_regs_struct *r, uint64_t rip, long nr, uint64_t a1,
			     uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
	r->rip = rip;
	r->rax = nr;
	r->orig_rax = -1;
	r->rdi = a1;
	r->rsi = a2;
	r->rdx = a3;
	r->r10 = a4;
	r->r8 = a5;
	r->r9 = a6;
}

long inject_syscall(struct tracee *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		    uint64_t a4, uint64_t a5, uint64_t a6)
{
	struct user_regs_struct r;
	int err;

	err = ptrace_getregs(t->tid, &r);
	if (err < 0)
		return err;
	set_syscall_regs(&r, t->code, nr, a1, a2, a3, a4, a5, a6);
	err = ptrace_setregs(t->tid, &r);
	if (err < 0)
		return err;
	err = run_until_trap(t);
	if (err < 0)
		return err;
	err = ptrace_getregs(t->tid, &r);
	if (err < 0)
		return err;
	if (r.rip != t->code + 3) {
		return dm_fail(-EFAULT, "tracee %d: injected syscall %ld stopped at %#llx, not at the blob",
			       t->tid, nr, r.rip);
	}
	t->n_injected++;
	return (long)r.rax;
}

long inject_syscall_at(pid_t tid, uint64_t insn, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		       uint64_t a4, uint64_t a5, uint64_t a6)
{
	struct user_regs_struct r;
	int st, err;

	err = ptrace_getregs(tid, &r);
	if (err < 0)
		return err;
	set_syscall_regs(&r, insn, nr, a1, a2, a3, a4, a5, a6);
	err = ptrace_setregs(tid, &r);
	if (err < 0)
		return err;
	int timeout_ms = inject_timeout_ms();
	uint64_t deadline = clock_ns() + (uint64_t)timeout_ms * 1000000ULL;
	for (int stop = 0; stop < 2;) {
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return neg_errno();
		err = wait_injected(tid, &st, deadline, timeout_ms);
		if (err < 0)
			return err;
		if (WSTOPSIG(st) == (SIGTRAP | 0x80))
			stop++;
		else if ((st >> 16) == PTRACE_EVENT_STOP || WSTOPSIG(st) != SIGTRAP)
			pr_debug("thread %d: stop %#x while injecting at the vdso", tid, st);
	}
	err = ptrace_getregs(tid, &r);
	if (err < 0)
		return err;
	return (long)r.rax;
}

void batch_init(struct inj_batch *b, struct tracee *t)
{
	b->t = t;
	b->n = 0;
	b->used = 0;
	b->all = false;
}

#define ALIGN16(x) (((x) + 15) & ~(size_t)15)

bool batch_fits(const struct inj_batch *b, unsigned n, size_t bytes)
{
	return b->n + n <= INJ_BATCH_MAX &&
	       (bytes ? ALIGN16(b->used) + bytes : b->used) <= sizeof(b->staging);
}

static uint64_t stage(struct inj_batch *b, const void *src, size_t len)
{
	size_t off = ALIGN16(b->used);
	if (!batch_fits(b, 0, len))
		return 0;
	if (src)
		memcpy(b->staging + off, src, len);
	else
		memset(b->staging + off, 0, len);
	b->used = off + len;
	return b->t->data + off;
}

uint64_t batch_put(struct inj_batch *b, const void *src, size_t len)
{
	return stage(b, src, len);
}

uint64_t batch_reserve(struct inj_batch *b, size_t len)
{
	return stage(b, NULL, len);
}

void *batch_local(struct inj_batch *b, uint64_t remote)
{
	if (remote < b->t->data || remote >= b->t->data + sizeof(b->staging))
		return NULL;
	return b->staging + (remote - b->t->data);
}

int batch_add(struct inj_batch *b, const char *what, long nr, uint64_t a1, uint64_t a2,
	      uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
	if (!batch_fits(b, 1, 0))
		return -ENOSPC;
	struct inj_entry *e = &b->e[b->n];
	e->nr = nr;
	e->a[0] = a1;
	e->a[1] = a2;
	e->a[2] = a3;
	e->a[3] = a4;
	e->a[4] = a5;
	e->a[5] = a6;
	e->ret = (uint64_t)-ENOEXEC; /* "not run" unless the loop reaches it */
	b->what[b->n] = what;
	return b->n++;
}

/* t runs n entries from ents: registers set, continued */
static int start_part(struct tracee *t, uint64_t ents, unsigned n, bool all)
{
	struct user_regs_struct r;
	int err = ptrace_getregs(t->tid, &r);
	if (err < 0)
		return dm_fail(err, "thread %d: cannot read registers: %s", t->tid, strerror(-err));
	r.rip = t->code + 16;
	r.orig_rax = -1;
	r.rbx = ents;
	r.r12 = n;
	r.r13 = all;
	err = ptrace_setregs(t->tid, &r);
	if (err < 0)
		return dm_fail(err, "thread %d: cannot set registers: %s", t->tid, strerror(-err));
	if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		return dm_fail(neg_errno(), "PTRACE_CONT %d: %m", t->tid);
	return 0;
}

int batch_run_parts(struct inj_batch *b, const struct inj_part *parts, unsigned n_parts,
		    unsigned *ret_part, unsigned *ret_failed)
{
	struct tracee *t = b->t;
	uint64_t ents = t->data + BATCH_ENTRY_OFF;
	char msg[DM_ERRMSG_MAX] = "";
	unsigned started = 0;
	int err = 0;

	if (b->n == 0)
		return 0;
	if (b->used) {
		err = tracee_write(t, t->data, b->staging, b->used);
		if (err < 0)
			return err;
	}
	err = tracee_write(t, ents, b->e, b->n * sizeof(b->e[0]));
	if (err < 0)
		return err;
	for (; started < n_parts; started++) {
		const struct inj_part *pt = &parts[started];
		if (pt->first + pt->n > b->n) {
			err = dm_fail(-EINVAL, "batch part %u: entries %u-%u of %u", started, pt->first,
				      pt->first + pt->n, b->n);
			break;
		}
		if (!pt->n)
			continue;
		err = start_part(pt->t, ents + pt->first * sizeof(b->e[0]), pt->n, b->all);
		if (err < 0)
			break;
	}
	/* every started part is waited for; the first failure is what is said */
	if (err < 0)
		snprintf(msg, sizeof(msg), "%s", dm_last_error());
	for (unsigned k = 0; k < started; k++) {
		if (!parts[k].n)
			continue;
		int w = wait_trap(parts[k].t);
		if (w < 0 && err >= 0) {
			err = w;
			snprintf(msg, sizeof(msg), "%s", dm_last_error());
		}
	}
	if (err < 0) {
		dm_error_set_message(msg);
		b->n = 0;
		return err;
	}
	err = tracee_read(t, ents, b->e, b->n * sizeof(b->e[0]));
	if (err >= 0 && b->used)
		err = tracee_read(t, t->data, b->staging, b->used);
	if (err < 0) {
		b->n = 0;
		return err;
	}
	for (unsigned k = 0; k < n_parts; k++) {
		parts[k].t->n_injected += parts[k].n;
		for (unsigned i = parts[k].first; i < parts[k].first + parts[k].n && !b->all && err >= 0; i++) {
			long ret = (long)b->e[i].ret;
			if (ret < 0 && ret >= -4095) {
				if (ret_part)
					*ret_part = k;
				if (ret_failed)
					*ret_failed = i;
				err = dm_fail((int)ret, "tracee %d: %s failed: %s", parts[k].t->tid,
					      b->what[i] ? b->what[i] : "injected syscall",
					      strerror((int)-ret));
			}
		}
	}
	b->n = 0;
	return err;
}

int batch_run(struct inj_batch *b, unsigned *ret_failed)
{
	const struct inj_part one = { b->t, 0, b->n };
	return batch_run_parts(b, &one, 1, NULL, ret_failed);
}

int batch_run_all(struct inj_batch *b)
{
	b->all = true;
	int r = batch_run(b, NULL);
	b->all = false;
	return r;
}

/*
 * A thread stopped inside a syscall shows orig_rax = the syscall and rax = the
 * kernel's internal restart code.  What the kernel would do on the way out:
 *   -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND: re-execute (rip -= 2,
 *   rax = orig_rax), -ERESTART_RESTARTBLOCK: call restart_syscall, which
 *   needs the task's restart_block: only valid for the same task (live), a
 *   new task gets -EINTR.  orig_rax = -1 keeps the kernel from doing it twice.
 */
void regs_fixup_restart(struct user_regs_struct *r, bool live)
{
	if ((long)r->orig_rax >= 0) {
		long rax = (long)r->rax;
		if (rax == -512 || rax == -513 || rax == -514) {
			r->rax = r->orig_rax;
			r->rip -= 2;
		} else if (rax == -516) {
			if (live) {
				r->rax = SYS_restart_syscall;
				r->rip -= 2;
			} else {
				r->rax = -EINTR;
			}
		}
	}
	r->orig_rax = -1;
}
