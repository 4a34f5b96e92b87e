/* SPDX-License-Identifier: MIT */
/*
 * The root stub.  A container's runtime runs the static stub (runc-stub.c)
 * as the container's init; for a bare tree the restorer execs the same
 * static stub in a child it makes (exec_stub_spawn(): clone3 with set_tid =
 * root pid in our pid namespace, or CLONE_NEWPID so that it is pid 1 of a
 * new one); both get their parameters over the transport
 * (ext_stub_start()).  Where that exec fails (DMIGRATE_STUB_FORK=1 forces
 * it), the restorer clones itself and the stub, still running our code:
 *   - blocks every signal and asks for SIGKILL if the restorer dies;
 *   - unregisters glibc's rseq (its area is about to be unmapped, and the
 *     kernel writes it on every return to user mode);
 *   - maps the injection blob at a hole of every image's address space;
 *   - moves the transport socket to c->tfd (above every fd of the image) and
 *     closes everything else (the caller's stdio must not stay open);
 *   - says "ready" on the transport and waits in pause().
 * The restorer then seizes it.  Every other process descends from it by
 * injected clone3 and inherits the blob and the transport.
 *
 * The hole: one range free in the restorer (a forked stub is a copy of it),
 * in the static stub's space, and in every image VMA of the tree, holding
 * the blob and a spot used to move
 * [vvar]/[vdso] when their old and new ranges overlap:
 *
 *   | guard | blob: code (r-x) + data (rw-) | 64K | hop (vdso moves) | guard |
 */
#define LOG_PREFIX "restore: "
#include "restore/rst.h"
#include "proc/proc.h"
#include "base/child.h"
#include "base/clock.h"
#include "base/log.h"
#include "container/ext-stub.h"
#include "container/runc.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define HOLE_LOW 0x100000000ULL  /* 4 GiB: above every non-PIE binary and its heap */
#define TASK_TOP 0x7ffffffff000ULL
#define HOP_SIZE (1UL << 20)

#define PTRACE_OPTS                                                                     \
	(PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |               \
	 PTRACE_O_EXITKILL | PTRACE_O_SUSPEND_SECCOMP)

struct range {
	uint64_t start, end;
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* The root stub that runs the static stub (runc-stub.c): a container
 * runtime's, or our exec'd one; 0: none (the root stub is forked). */
static pid_t ext_stub_pid(const struct rst_ctx *c)
{
	return c->o->stub_pid > 0 ? c->o->stub_pid : c->xs_pid;
}

/*
 * The exec'd stub's child: CLONE_VM | CLONE_VFORK, on a stack of its own
 * (vfork_exec()); system calls only, no return.
 */
struct exec_child_args {
	int exe, sock, err;
	char *const *argv, *const *envp;
};

static __attribute__((noreturn, noinline, no_sanitize("address", "undefined"))) void
exec_stub_child(const struct exec_child_args *x)
{
	int exe = x->exe, sock = x->sock, err = x->err;
	char *const *argv = x->argv, *const *envp = x->envp;

	syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* the rest close at the exec (err among them: its end tells the parent) */
	if (syscall(SYS_dup3, exe, EXT_STUB_EXE, 0) == EXT_STUB_EXE &&
	    syscall(SYS_dup3, sock, EXT_STUB_SOCK, 0) == EXT_STUB_SOCK &&
	    syscall(SYS_close_range, EXT_STUB_SOCK + 1, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		syscall(SYS_execveat, EXT_STUB_EXE, "", argv, envp, AT_EMPTY_PATH);
	syscall(SYS_write, err, "x", 1);
	for (;;)
		syscall(SYS_exit_group, 127);
}

/*
 * clone3 with CLONE_VM | CLONE_VFORK whose child runs fn(arg) on the stack
 * ca->stack (which it never returns from: it execs or exits).  In assembly:
 * a child returning from a system call wrapper would pop the return address
 * the parent, suspended in that same call, returns through.
 */
static long vfork_exec(struct clone_args *ca, void (*fn)(const struct exec_child_args *),
		       const struct exec_child_args *arg)
{
	long ret;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "mov %[arg], %%rdi\n\t"
			 "call *%[fn]\n\t"
			 "ud2\n"
			 "1:"
			 : "=a"(ret)
			 : "a"((long)SYS_clone3), "D"(ca), "S"(sizeof(*ca)), [fn] "r"(fn), [arg] "r"(arg)
			 : "rcx", "r11", "memory");
	return ret;
}

static long exec_spawn(struct clone_args *ca, void *arg)
{
	return vfork_exec(ca, exec_stub_child, arg);
}

struct stub_args;
static _Noreturn void stub_main(const struct stub_args *a);

/* The forked stub: a copy of us, which runs stub_main(). */
static long fork_spawn(struct clone_args *ca, void *arg)
{
	long pid = syscall(SYS_clone3, ca, sizeof(*ca));
	if (pid == 0)
		stub_main(arg);
	return pid < 0 ? neg_errno() : pid;
}

/*
 * The root stub's clone3 (spawn makes it: -errno, or the child's pid; its
 * child never returns), with every signal blocked: pid want (set_tid in our
 * pid namespace, or pid 1 of a new one), born in the tree's cgroup, or
 * outside it where the kernel or the hierarchy refuse that (the caller moves
 * the tree then), and once more after a dead owner of the pid has been
 * reaped.  The pid, or -errno (dm_fail'ed).
 */
static long root_clone(struct rst_ctx *c, pid_t want, uint64_t flags, void *stack, size_t stack_size,
		       long (*spawn)(struct clone_args *ca, void *arg), void *arg, int *ret_pidfd)
{
	struct clone_args ca = {
		.flags = flags | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)ret_pidfd,
		.exit_signal = SIGCHLD,
		.stack = (uint64_t)(uintptr_t)stack,
		.stack_size = stack_size,
	};
	if (c->own_pidns) {
		ca.flags |= CLONE_NEWPID;
	} else {
		ca.set_tid = (uint64_t)(uintptr_t)&want;
		ca.set_tid_size = 1;
	}
	if (c->o->cgroup_fd > 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)c->o->cgroup_fd;
	}
	long pid;
	for (bool waited = false;;) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pid = spawn(&ca, arg);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (pid < 0 && (ca.flags & CLONE_INTO_CGROUP) && pid != -EEXIST) {
			/* not a v2 cgroup, or a kernel without it: the caller moves the tree */
			pr_debug("clone3 into the tree's cgroup: %s; cloned outside it", strerror((int)-pid));
			ca.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
			ca.cgroup = 0;
			continue;
		}
		/* a pid its dead owner still holds (a slow reaper): once */
		if (pid >= 0 || pid != -EEXIST || c->own_pidns || waited || !rst_pid_wait_free(want))
			break;
		waited = true;
	}
	c->st.cgroup_born = pid >= 0 && (ca.flags & CLONE_INTO_CGROUP);
	if (pid < 0) {
		int r = (int)pid, e = rst_clone_pid_error(want, r);
		return e < 0 ? e : dm_fail(r, "cannot create the root stub (pid %d): %s", want, strerror(-r));
	}
	return pid;
}

/*
 * A bare tree's root stub as the container's is: the static stub (the
 * memfd runc runs), exec'd by a child made with CLONE_VM | CLONE_VFORK, with
 * the root's pid (set_tid, or pid 1 of a new pid namespace) and in the
 * tree's cgroup.  A forked stub is a copy of the restorer: the clone of
 * ~280 VMAs took ~1 ms and their unmapping in the stub 1-2 ms of the
 * downtime; the exec'd one has its few own.  It then gets its arguments and
 * is seized as a container's is (ext_stub_start()).  Made before the hole
 * is picked, so that the blob goes into its space too.  DMIGRATE_STUB_FORK=1:
 * forked, as before; any failure here falls back to that.
 */
static int exec_stub_spawn(struct rst_ctx *c)
{
	const char *e = getenv("DMIGRATE_STUB_FORK");
	if (e && !strcmp(e, "1"))
		return dm_fail(-ENOTSUP, "DMIGRATE_STUB_FORK=1");
	int exe = -1, sp[2] = { -1, -1 }, ep[2] = { -1, -1 }, pidfd = -1, r;
	/* the child's stack (it only calls a few wrappers before the exec) */
	const size_t stack_size = 64 * 1024;
	_cleanup_free_ void *stack = NULL;
	r = runc_stub_fds(&exe, sp);
	if (r < 0)
		return r;
	if (pipe2(ep, O_CLOEXEC) < 0) {
		r = dm_fail(neg_errno(), "pipe: %m");
		close(exe);
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	/* above the child's targets, 3 and 4 */
	int xe = fcntl(exe, F_DUPFD_CLOEXEC, 16), xs = fcntl(sp[1], F_DUPFD_CLOEXEC, 16);
	close(exe);
	close(sp[1]);
	if (xe < 0 || xs < 0) {
		r = dm_fail(neg_errno(), "the static stub's fds: %m");
		goto out;
	}
	char *const argv[] = { "dmigrate-stub", NULL }, *const envp[] = { NULL };
	struct exec_child_args x = { xe, xs, ep[1], argv, envp };
	stack = aligned_alloc(64, stack_size);
	long pid = root_clone(c, c->procs[0].img->pid, CLONE_VM | CLONE_VFORK, stack, stack_size, exec_spawn, &x,
			      &pidfd);
	if (pid < 0) {
		r = (int)pid;
		goto out;
	}
	/* the vfork ended with the exec (the pipe's end closed: EOF) or with
	 * the child's failure (a byte, then its exit) */
	close(ep[1]);
	ep[1] = -1;
	char b;
	ssize_t k;
	while ((k = read(ep[0], &b, 1)) < 0 && errno == EINTR)
		;
	if (k != 0) {
		waitpid((pid_t)pid, NULL, __WALL);
		close(pidfd);
		r = dm_fail(-ENOEXEC, "the static stub could not be run");
		goto out;
	}
	c->xs_pid = (pid_t)pid;
	c->xs_pidfd = pidfd;
	c->xs_sock = sp[0];
	sp[0] = -1;
	r = 0;
out:
	for (int i = 0; i < 2; i++)
		if (ep[i] >= 0)
			close(ep[i]);
	if (xe >= 0)
		close(xe);
	if (xs >= 0)
		close(xs);
	if (sp[0] >= 0)
		close(sp[0]);
	return r;
}

/* An exec'd stub stub_create_root() never took: killed and reaped. */
void stub_drop_unused(struct rst_ctx *c)
{
	if (c->xs_pid <= 0 || c->xs_taken)
		return;
	kill(c->xs_pid, SIGKILL);
	waitpid(c->xs_pid, NULL, __WALL);
	close(c->xs_sock);
	close(c->xs_pidfd);
	c->xs_pid = 0;
}

int stub_pick_hole(struct rst_ctx *c)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list self = { 0 };
	_cleanup_free_ struct range *rs = NULL;
	size_t n = 0, cap = 0;
	const uint64_t need = 2 * RST_GUARD + INJ_BLOB_SIZE + 0x10000 + HOP_SIZE;
	int r;

	/* a bare tree's stub is exec'd now, where it can be (exec_stub_spawn) */
	if (c->o->stub_pid <= 0 && exec_stub_spawn(c) < 0) {
		pr_debug("the static stub: %s; the root stub is forked", dm_last_error());
		dm_error_clear();
	}
	/*
	 * A forked stub starts as a copy of our address space: the blob must
	 * miss our mappings too.  An exec'd stub or a runtime's has its own,
	 * and ours do not matter: a daemon's maps are long (its threads, the
	 * stores, the libraries), and reading them took 0.4-0.6 ms of a runc
	 * container's downtime.
	 */
	if (ext_stub_pid(c) <= 0) {
		r = proc_read_maps(PROC_SELF, &self);
		if (r < 0)
			return dm_fail(r, "cannot read our own maps: %s", strerror(-r));
	}
	cap = self.n + 16;
	for (size_t i = 0; i < c->nprocs; i++)
		cap += c->procs[i].img->n_vmas;
	rs = xcalloc(cap, sizeof(*rs));
	for (size_t i = 0; i < self.n; i++)
		if (self.vmas[i].end <= TASK_TOP)
			rs[n++] = (struct range){ self.vmas[i].start, self.vmas[i].end };
	/* a stub made by a container runtime, or exec'd: the blob goes into its space */
	_cleanup_(proc_vma_list_done) struct proc_vma_list ext = { 0 };
	if (ext_stub_pid(c) > 0) {
		r = proc_read_maps(ext_stub_pid(c), &ext);
		if (r < 0)
			return dm_fail(r, "cannot read the maps of the root stub (pid %d): %s",
				       ext_stub_pid(c), strerror(-r));
		rs = xrealloc(rs, (cap + ext.n) * sizeof(*rs));
		for (size_t i = 0; i < ext.n; i++)
			if (ext.vmas[i].end <= TASK_TOP)
				rs[n++] = (struct range){ ext.vmas[i].start, ext.vmas[i].end };
	}
	for (size_t i = 0; i < c->nprocs; i++) {
		const Dm__Process *p = c->procs[i].img;
		for (size_t k = 0; k < p->n_vmas; k++)
			if (p->vmas[k]->kind != DM__VMA_KIND__VMA_VSYSCALL)
				rs[n++] = (struct range){ p->vmas[k]->start, p->vmas[k]->end };
	}
	qsort(rs, n, sizeof(*rs), cmp_range);

	uint64_t cand = HOLE_LOW;
	for (size_t i = 0; i <= n; i++) {
		uint64_t next = i < n ? rs[i].start : TASK_TOP;
		if (next > cand && next - cand >= need)
			break;
		if (i < n && rs[i].end > cand)
			cand = rs[i].end;
		if (i == n)
			return dm_fail(-ENOMEM, "no free range of %lu KiB for the restore blob",
				       (unsigned long)(need >> 10));
	}
	c->blob = cand + RST_GUARD;
	c->hop = c->blob + INJ_BLOB_SIZE + 0x10000;
	c->hop_size = HOP_SIZE;
	pr_debug("blob at %#lx, hop at %#lx", (unsigned long)c->blob, (unsigned long)c->hop);
	return 0;
}

/* ---------------------------------------------------------------- the stub */

struct stub_args {
	uint64_t blob;
	int sock;
	int tfd;
	uint8_t code[INJ_BLOB_CODE_MAX];
	size_t code_len;
};

enum {
	STUB_ERR_RSEQ = 101,
	STUB_ERR_MMAP,
	STUB_ERR_MPROTECT,
	STUB_ERR_DUP,
	STUB_ERR_CLOSE,
	STUB_ERR_SEND,
};

static const char *stub_err_name(int code)
{
	switch (code) {
	case STUB_ERR_RSEQ: return "unregistering rseq";
	case STUB_ERR_MMAP: return "mapping the blob";
	case STUB_ERR_MPROTECT: return "protecting the blob";
	case STUB_ERR_DUP: return "moving the transport socket";
	case STUB_ERR_CLOSE: return "closing inherited fds";
	case STUB_ERR_SEND: return "signalling readiness";
	default: return "unknown step";
	}
}

/*
 * Runs in the new child, a copy of the restorer: raw syscalls only (no
 * malloc, no locks: another thread of the restorer may have held one).
 */
static _Noreturn void stub_main(const struct stub_args *a)
{
	uint64_t all = ~0ULL;

	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8);
	syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (__rseq_size) {
		void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
		if (syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) &&
		    syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG))
			syscall(SYS_exit_group, STUB_ERR_RSEQ);
	}
	long m = syscall(SYS_mmap, a->blob, INJ_BLOB_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m != (long)a->blob)
		syscall(SYS_exit_group, STUB_ERR_MMAP);
	for (size_t i = 0; i < a->code_len; i++)
		((volatile uint8_t *)a->blob)[i] = a->code[i];
	if (syscall(SYS_mprotect, a->blob, INJ_CODE_SIZE, PROT_READ | PROT_EXEC))
		syscall(SYS_exit_group, STUB_ERR_MPROTECT);
	if (a->sock != a->tfd && syscall(SYS_dup3, a->sock, a->tfd, 0) != a->tfd)
		syscall(SYS_exit_group, STUB_ERR_DUP);
	if ((a->tfd > 0 && syscall(SYS_close_range, 0, a->tfd - 1, 0)) ||
	    syscall(SYS_close_range, a->tfd + 1, ~0U, 0))
		syscall(SYS_exit_group, STUB_ERR_CLOSE);
	if (syscall(SYS_write, a->tfd, "R", 1) != 1)
		syscall(SYS_exit_group, STUB_ERR_SEND);
	for (;;)
		syscall(SYS_pause);
}

static int seize(struct rst_ctx *c, pid_t pid)
{
	uint64_t all = ~0ULL;
	int st, r;

	if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_OPTS) < 0) {
		r = neg_errno();
		return dm_fail(r, "pid %d: PTRACE_SEIZE: %s", pid, strerror(-r));
	}
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) {
		r = neg_errno();
		return dm_fail(r, "pid %d: PTRACE_INTERRUPT: %s", pid, strerror(-r));
	}
	r = ptrace_wait_stop(pid, &st);
	if (r < 0)
		return r;
	if ((st >> 16) != PTRACE_EVENT_STOP)
		return dm_fail(-EPROTO, "pid %d: unexpected first stop %#x", pid, st);
	if (ptrace(PTRACE_SETSIGMASK, pid, sizeof(all), &all) < 0) {
		r = neg_errno();
		return dm_fail(r, "pid %d: PTRACE_SETSIGMASK: %s", pid, strerror(-r));
	}
	(void)c;
	return 0;
}

static int open_mem(pid_t pid, int *ret_fd)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int r = neg_errno();
		return dm_fail(r, "pid %d: cannot open %s: %s", pid, path, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

static const char *ext_stub_err_name(int code);

static int wait_ready(struct rst_ctx *c, pid_t pid, int pidfd)
{
	struct pollfd pfd[2] = { { .fd = c->sock, .events = POLLIN },
				 { .fd = pidfd, .events = POLLIN } };
	char b;
	int r;

	r = poll(pfd, 2, 10000);
	if (r < 0)
		return dm_fail(neg_errno(), "waiting for the root stub: %m");
	if (r == 0)
		return dm_fail(-ETIMEDOUT, "root stub %d did not start within 10 s", pid);
	if (!(pfd[0].revents & POLLIN) && ext_stub_pid(c) > 0)
		return dm_fail(-EIO, "the root stub (pid %d) exited", pid);
	if (!(pfd[0].revents & POLLIN)) {
		int st = 0;
		/* (it closed its end: it ends, or is made to) */
		r = child_wait_limit(pid, CHILD_WAIT_HELPER_MS, &st, "root stub %d, its socket closed", pid);
		if (r < 0)
			return r;
		if (WIFEXITED(st))
			return dm_fail(-EIO, "root stub %d failed %s (exit %d)", pid,
				       stub_err_name(WEXITSTATUS(st)), WEXITSTATUS(st));
		return dm_fail(-EIO, "root stub %d died (status %#x)", pid, st);
	}
	char m[2] = { 0, 0 };
	if (ext_stub_pid(c) > 0 && recv(c->sock, m, 2, MSG_PEEK) == 2 && m[0] == 'E')
		return dm_fail(-EIO, "the root stub (pid %d) failed %s", pid, ext_stub_err_name(m[1]));
	if (recv(c->sock, &b, 1, 0) != 1 || b != 'R')
		return dm_fail(-EPROTO, "root stub %d: bad readiness message", pid);
	return 0;
}

static const char *ext_stub_err_name(int code)
{
	switch (code) {
	case EXT_STUB_ERR_ARGS: return "waiting for its arguments";
	case EXT_STUB_ERR_MMAP: return "mapping the blob";
	case EXT_STUB_ERR_MPROTECT: return "protecting the blob";
	case EXT_STUB_ERR_DUP: return "moving the transport socket";
	case EXT_STUB_ERR_CLOSE: return "closing inherited fds";
	case EXT_STUB_ERR_SEND: return "signalling readiness";
	case EXT_STUB_ERR_TIMEOUT: return "waiting to be seized";
	default: return "an unknown step";
	}
}

/*
 * The stub a container runtime made (runc-stub.c): it waits for its
 * arguments on its end of the transport, then does what stub_main() does.
 */
static int ext_stub_start(struct rst_ctx *c, struct rst_proc *root)
{
	struct ext_stub_args a = { .magic = EXT_STUB_MAGIC, .tfd = (uint32_t)c->tfd, .blob = c->blob,
				   .blob_size = INJ_BLOB_SIZE, .code_size = INJ_CODE_SIZE };
	uint8_t code[INJ_BLOB_CODE_MAX];
	size_t len = 0;
	pid_t pid = ext_stub_pid(c);
	int pidfd;

	_Static_assert(INJ_BLOB_CODE_MAX <= EXT_STUB_CODE_MAX, "stub code size");
	inject_blob_code(code, &len);
	memcpy(a.code, code, len);
	a.code_len = (uint32_t)len;
	if (c->o->stub_pid > 0) {
		c->sock = fcntl(c->o->stub_sock, F_DUPFD_CLOEXEC, 0);
		if (c->sock < 0)
			return dm_fail(neg_errno(), "transport: %m");
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0)
			return dm_fail(neg_errno(), "the container's stub (pid %d): pidfd_open: %m", pid);
	} else {
		/* ours (exec_stub_spawn): the root from here on */
		c->sock = c->xs_sock;
		pidfd = c->xs_pidfd;
		c->xs_taken = true;
	}
	root->host_pid = pid;
	root->pidfd = pidfd;
	root->state = RST_SEIZED; /* from here on, failure cleanup kills it */
	/*
	 * On our CPU, as a stub of our own is (restore.c, cpu_pin_here()): the
	 * restore is hundreds of round trips with it and the threads it makes,
	 * and each wakeup on another, idle vCPU cost 0.1-2 ms (a redis
	 * container's memory and threads steps took 12.9 and 7.3 ms where a
	 * bare tree's took 1.2 and 0.7).  A best effort: its cgroup's cpuset
	 * may refuse the CPU.
	 */
	if (c->pin_cpu >= 0 && sched_getaffinity(pid, sizeof(c->ext_mask), &c->ext_mask) == 0) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(c->pin_cpu, &one);
		c->ext_pinned = sched_setaffinity(pid, sizeof(one), &one) == 0;
	}
	if (send(c->sock, &a, sizeof(a), MSG_NOSIGNAL) != (ssize_t)sizeof(a))
		return dm_fail(neg_errno(), "the root stub (pid %d): sending its arguments: %m", pid);
	return wait_ready(c, pid, pidfd);
}

static int finish_root(struct rst_ctx *c, struct rst_proc *root);

int stub_create_root(struct rst_ctx *c, struct rst_proc *root)
{
	struct stub_args a = { .blob = c->blob, .tfd = c->tfd };
	int pidfd = -1, r;
	int sp[2];

	if (ext_stub_pid(c) > 0) {
		r = ext_stub_start(c, root);
		return r < 0 ? r : finish_root(c, root);
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0)
		return dm_fail(neg_errno(), "transport socketpair: %m");
	c->sock = sp[0];
	a.sock = sp[1];
	inject_blob_code(a.code, &a.code_len);
	long pid = root_clone(c, root->img->pid, 0, NULL, 0, fork_spawn, &a, &pidfd);
	close(sp[1]);
	if (pid < 0)
		return (int)pid;

	root->host_pid = (pid_t)pid;
	root->pidfd = pidfd;
	root->state = RST_SEIZED; /* from here on, failure cleanup kills it */
	r = wait_ready(c, root->host_pid, pidfd);
	if (r < 0)
		return r;
	return finish_root(c, root);
}

static int finish_root(struct rst_ctx *c, struct rst_proc *root)
{
	int memfd = -1, r;

	r = seize(c, root->host_pid);
	if (r < 0)
		return r;
	r = open_mem(root->host_pid, &memfd);
	if (r < 0)
		return r;
	rst_alloc_threads(root);
	root->threads[0].seized = true;
	r = rst_tracee_init(c, &root->threads[0].t, root->host_pid, memfd);
	if (r < 0) {
		root->threads[0].t.memfd = memfd; /* owned by the process: closed in cleanup */
		return r;
	}
	pr_debug("root stub: pid %d (host %d)", root->img->pid, root->host_pid);
	return mm_clean_stub(c, root);
}

void rst_alloc_threads(struct rst_proc *p)
{
	size_t n = p->img->n_threads ? p->img->n_threads : 1;
	p->threads = xcalloc(n, sizeof(*p->threads));
	for (size_t i = 0; i < n; i++)
		p->threads[i].t.memfd = -1;
	p->n_threads = 1;
	p->threads[0].img = p->img->n_threads ? p->img->threads[0] : NULL;
}

/*
 * A task created by an injected clone3 is attached to us automatically
 * (PTRACE_O_TRACECLONE/TRACEFORK) and starts with a PTRACE_EVENT_STOP.
 * th == NULL: a new process (its main thread is p->threads[0]).
 */
int stub_adopt(struct rst_ctx *c, struct rst_proc *p, pid_t host_tid, struct rst_thread *th)
{
	int st, r, memfd;

	r = ptrace_wait_stop(host_tid, &st);
	if (r < 0)
		return r;
	if ((st >> 16) != PTRACE_EVENT_STOP)
		return dm_fail(-EPROTO, "pid %d: new task %d: unexpected first stop %#x",
			       p->img->pid, host_tid, st);
	if (th) {
		th->seized = true;
		return rst_tracee_init(c, &th->t, host_tid, rst_main(p)->memfd);
	}
	r = open_mem(host_tid, &memfd);
	if (r < 0)
		return r;
	p->threads[0].seized = true;
	r = rst_tracee_init(c, &p->threads[0].t, host_tid, memfd);
	if (r < 0)
		p->threads[0].t.memfd = memfd;
	return r;
}

static bool ending(char state)
{
	return state == 'Z' || state == 'X';
}

static void describe(const struct proc_stat *ps, const char *how, char *why, size_t len)
{
	if (ending(ps->state)) {
		char pc[PROC_COMM_MAX + 1] = "?";
		proc_read_comm(ps->ppid, 0, pc);
		snprintf(why, len, "process %d (%s), %s, is a zombie its parent %d (%s) has not reaped",
			 ps->pid, ps->comm, how, ps->ppid, pc);
	} else {
		snprintf(why, len, "process %d (%s), %s, runs", ps->pid, ps->comm, how);
	}
}

/*
 * What holds pid number n here: the process (or thread) n, or a process
 * whose group or session n is (a zombie keeps both numbers).  0: nothing
 * (free again), 1: only processes that are ending (zombies their parent
 * has not reaped, dying: state Z or X), -1: a live one.  *why names one of
 * them, a live one first.
 */
static int pid_holders(pid_t n, char *why, size_t len)
{
	struct proc_stat ps;
	int found = 0;

	why[0] = 0;
	if (proc_read_stat(n, 0, &ps) == 0) {
		describe(&ps, "with that pid", why, len);
		found = ending(ps.state) ? 1 : -1;
	}
	_cleanup_closedir_ DIR *d = found < 0 ? NULL : opendir("/proc");
	struct dirent *e;
	while (d && found >= 0 && (e = readdir(d))) {
		long v;
		if (parse_long(e->d_name, &v) < 0 || v <= 0 || v == n ||
		    proc_read_stat((pid_t)v, 0, &ps) < 0 || (ps.pgrp != n && ps.session != n))
			continue;
		if (!ending(ps.state) || !found)
			describe(&ps, ps.session == n ? "whose session it is" : "whose process group it is", why,
				 len);
		found = ending(ps.state) ? 1 : -1;
	}
	dm_error_clear();
	return found;
}

int rst_pid_wait_free(pid_t pid)
{
	char why[256];
	uint64_t end = clock_ns() + (uint64_t)RST_PID_FREE_WAIT_MS * 1000000ULL;
	bool said = false;

	for (;;) {
		int h = pid_holders(pid, why, sizeof(why));
		if (h == 0)
			return 1;
		if (h < 0 || clock_ns() >= end)
			return 0;
		if (!said)
			pr_info("pid %d: %s: waiting for it to go (at most %g s)", pid, why,
				RST_PID_FREE_WAIT_MS / 1000.0);
		said = true;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int rst_clone_pid_error(pid_t pid, int r)
{
	_cleanup_free_ char *buf = NULL;
	long max = 0;

	if (r == -EEXIST) {
		char why[256];
		int h = pid_holders(pid, why, sizeof(why));
		if (h > 0)
			return dm_fail(r, "pid %d is in use: %s (waited %g s)", pid, why,
				       RST_PID_FREE_WAIT_MS / 1000.0);
		if (h < 0)
			return dm_fail(r, "pid %d is in use: %s", pid, why);
		return dm_fail(r, "pid %d is in use", pid);
	}
	if (r != -EINVAL || read_full_file("/proc/sys/kernel/pid_max", 32, &buf, NULL) < 0)
		return 0;
	buf[strcspn(buf, "\n")] = 0;
	if (parse_long(buf, &max) < 0 || max <= 0 || pid < max)
		return 0;
	return dm_fail(r, "pid %d is above this host's kernel.pid_max (%ld): raise it "
		       "(sysctl kernel.pid_max) to restore the tree with its pids", pid, max);
}
