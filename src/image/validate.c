/* SPDX-License-Identifier: MIT */
/*
 * Structural validation of a loaded checkpoint.  Everything the restore
 * trusts later (sizes of register blobs, VMA ordering, page offsets inside
 * the pages file, cross references between processes, fds and files) is
 * checked here, once, so that a corrupted or hostile image is refused before
 * anything is created.  Every error names the file and the field.
 */
#define LOG_PREFIX "image: "
#include "image/image.h"
#include "base/log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/user.h>

#define TASK_SIZE_MAX 0x7ffffffff000ULL
#define VSYSCALL_ADDR 0xffffffffff600000ULL
#define MAX_FD (1 << 20)
#define MAX_FILE_ID (1u << 22)
#define SIGINFO_SIZE 128

#define bad(file, fmt, ...) dm_fail(-EBADMSG, "%s: " fmt, file, ##__VA_ARGS__)

/* A lock of the expected kind(s) with a range that fits struct flock (off_t). */
static int check_lock(const char *file, const char *what, size_t i, const Dm__FileLock *l, bool posix)
{
	bool ok = posix ? l->kind == DM__LOCK_KIND__LOCK_POSIX
			: l->kind == DM__LOCK_KIND__LOCK_OFD || l->kind == DM__LOCK_KIND__LOCK_FLOCK;
	if (!ok)
		return bad(file, "%s[%zu]: lock kind %d does not belong here", what, i, (int)l->kind);
	if (l->start > INT64_MAX || l->len > INT64_MAX || l->start + l->len > INT64_MAX ||
	    (l->kind == DM__LOCK_KIND__LOCK_FLOCK && (l->start || l->len)))
		return bad(file, "%s[%zu]: lock range %" PRIu64 "+%" PRIu64 " out of range", what, i,
			   l->start, l->len);
	return 0;
}

static int validate_files(struct dm_checkpoint *ck)
{
	Dm__FileTable *ft = ck->files;
	uint32_t max = 0;

	for (size_t i = 0; i < ft->n_files; i++) {
		const Dm__File *f = ft->files[i];
		if (f->id == 0 || f->id > MAX_FILE_ID)
			return bad(IMG_FILES_FILE, "files[%zu]: id %u out of range", i, f->id);
		max = MAX(max, f->id);
		switch (f->type) {
		case DM__FILE_TYPE__FILE_REG:
		case DM__FILE_TYPE__FILE_DIR:
		case DM__FILE_TYPE__FILE_FIFO:
		case DM__FILE_TYPE__FILE_CHR:
			if (!f->path || f->path[0] != '/')
				return bad(IMG_FILES_FILE, "file %u: path missing or not absolute", f->id);
			break;
		case DM__FILE_TYPE__FILE_PIPE:
			if (!f->pipe)
				return bad(IMG_FILES_FILE, "file %u: pipe without pipe data", f->id);
			break;
		case DM__FILE_TYPE__FILE_TTY:
			if (!f->tty)
				return bad(IMG_FILES_FILE, "file %u: tty without tty info", f->id);
			break;
		case DM__FILE_TYPE__FILE_INET_SK: {
			const Dm__InetSk *s = f->inet;
			size_t alen = s && s->family == AF_INET6 ? 16 : 4;
			if (!s || (s->family != AF_INET && s->family != AF_INET6) ||
			    (s->protocol != IPPROTO_TCP && s->protocol != IPPROTO_UDP))
				return bad(IMG_FILES_FILE, "file %u: socket without a TCP or UDP description", f->id);
			if (s->src_addr.len != alen || s->dst_addr.len != alen || s->src_port > 65535 ||
			    s->dst_port > 65535)
				return bad(IMG_FILES_FILE, "file %u: socket address of the wrong size", f->id);
			if (s->protocol == IPPROTO_TCP && s->state == 1 /* ESTABLISHED */ &&
			    (!s->tcp || s->tcp->unsent > s->tcp->send_queue.len || !s->dst_port))
				return bad(IMG_FILES_FILE, "file %u: TCP connection without its repair state", f->id);
			break;
		}
		case DM__FILE_TYPE__FILE_UNIX_SK: {
			const Dm__UnixSk *u = f->unix_sk;
			size_t sum = 0;
			if (!u)
				return bad(IMG_FILES_FILE, "file %u: unix socket without its state", f->id);
			if (u->type != SOCK_STREAM && u->type != SOCK_DGRAM && u->type != SOCK_SEQPACKET)
				return bad(IMG_FILES_FILE, "file %u: unix socket type %u", f->id, u->type);
			if ((u->has_name && (u->name.len == 0 || u->name.len > 108)) ||
			    (u->has_ext_name && (u->ext_name.len == 0 || u->ext_name.len > 108)))
				return bad(IMG_FILES_FILE, "file %u: unix socket name of %zu bytes", f->id,
					   u->has_name ? u->name.len : u->ext_name.len);
			for (size_t k = 0; k < u->n_msg_len; k++)
				sum += u->msg_len[k];
			if ((u->n_msg_len && sum != (u->has_data ? u->data.len : 0)) ||
			    (u->n_msg_from && u->n_msg_from != u->n_msg_len) ||
			    (u->n_msg_cred && u->n_msg_cred != u->n_msg_len) ||
			    (u->type != SOCK_STREAM && u->has_data && !u->n_msg_len) ||
			    (u->has_data && u->n_msg_len == 0 && u->n_msg_cred))
				return bad(IMG_FILES_FILE, "file %u: unix socket queue: message lengths do not "
					   "add up to its data", f->id);
			break;
		}
		case DM__FILE_TYPE__FILE_EVENTFD:
			if (!f->eventfd)
				return bad(IMG_FILES_FILE, "file %u: eventfd without its counter", f->id);
			break;
		case DM__FILE_TYPE__FILE_SIGNALFD:
			if (!f->signalfd)
				return bad(IMG_FILES_FILE, "file %u: signalfd without its set", f->id);
			break;
		case DM__FILE_TYPE__FILE_TIMERFD:
			if (!f->timerfd)
				return bad(IMG_FILES_FILE, "file %u: timerfd without its timer", f->id);
			break;
		case DM__FILE_TYPE__FILE_EPOLL:
			if (!f->epoll)
				return bad(IMG_FILES_FILE, "file %u: epoll without its registrations", f->id);
			for (size_t k = 0; k < f->epoll->n_targets; k++)
				if (f->epoll->targets[k]->fd < 0)
					return bad(IMG_FILES_FILE, "file %u: epoll registration of fd %d", f->id,
						   f->epoll->targets[k]->fd);
			break;
		case DM__FILE_TYPE__FILE_INOTIFY:
			if (!f->inotify)
				return bad(IMG_FILES_FILE, "file %u: inotify without its watches", f->id);
			for (size_t k = 0; k < f->inotify->n_watches; k++)
				if (f->inotify->watches[k]->wd <= 0 || f->inotify->watches[k]->path[0] != '/' ||
				    (k && f->inotify->watches[k]->wd <= f->inotify->watches[k - 1]->wd))
					return bad(IMG_FILES_FILE, "file %u: inotify watch %zu (wd %d) out of "
						   "order or without an absolute path", f->id, k,
						   f->inotify->watches[k]->wd);
			break;
		case DM__FILE_TYPE__FILE_MEMFD:
			if (!f->memfd || !f->path || strncmp(f->path, "/memfd:", 7))
				return bad(IMG_FILES_FILE, "file %u: memfd without its object or name", f->id);
			break;
		case DM__FILE_TYPE__FILE_MQUEUE:
			if (!f->mqueue_name || !f->mqueue_name[0] || strchr(f->mqueue_name, '/') ||
			    strlen(f->mqueue_name) > 255)
				return bad(IMG_FILES_FILE, "file %u: POSIX message queue without a valid name", f->id);
			break;
		default:
			break;
		}
		if (f->has_owner_pid && (f->owner_pid <= 0 || !f->has_owner_type ||
					 (f->owner_type != F_OWNER_TID && f->owner_type != F_OWNER_PID &&
					  f->owner_type != F_OWNER_PGRP)))
			return bad(IMG_FILES_FILE, "file %u: SIGIO owner %d of type %d", f->id, f->owner_pid,
				   f->owner_type);
		if (f->has_signum && (f->signum < 0 || f->signum > 64))
			return bad(IMG_FILES_FILE, "file %u: F_SETSIG %d", f->id, f->signum);
		for (size_t k = 0; k < f->n_locks; k++) {
			int r = check_lock(IMG_FILES_FILE, "file locks", k, f->locks[k], false);
			if (r < 0)
				return r;
		}
	}
	ck->max_file_id = max;
	free(ck->file_by_id); /* validating again rebuilds the index */
	ck->file_by_id = xcalloc(max + 1, sizeof(*ck->file_by_id));
	for (size_t i = 0; i < ft->n_files; i++) {
		Dm__File *f = ft->files[i];
		if (ck->file_by_id[f->id])
			return bad(IMG_FILES_FILE, "file id %u appears twice", f->id);
		ck->file_by_id[f->id] = f;
	}
	return 0;
}

static int check_file_ref(struct dm_checkpoint *ck, const char *name, const char *field,
			  uint32_t id)
{
	if (!checkpoint_file(ck, id))
		return bad(name, "%s refers to unknown file id %u", field, id);
	return 0;
}

/*
 * Credentials are required: a process restored without them would keep the
 * restorer's (root, every capability).  (uint32_t)-1 is "leave unchanged"
 * to setresuid() and friends, so it would do the same for one id.
 */
static int validate_creds(const char *name, const char *field, const Dm__Creds *c)
{
	const struct { const char *n; uint32_t v; } ids[] = {
		{ "uid", c->uid }, { "euid", c->euid }, { "suid", c->suid }, { "fsuid", c->fsuid },
		{ "gid", c->gid }, { "egid", c->egid }, { "sgid", c->sgid }, { "fsgid", c->fsgid },
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (ids[i].v == UINT32_MAX)
			return bad(name, "%s.%s is -1 (it would keep the restorer's)", field, ids[i].n);
	if (c->n_groups > 65536)
		return bad(name, "%s.groups: %zu, too many", field, c->n_groups);
	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i] == UINT32_MAX)
			return bad(name, "%s.groups[%zu] is -1", field, i);
	if (c->cap_eff & ~c->cap_prm)
		return bad(name, "%s: effective capabilities %#" PRIx64 " not in the permitted set %#" PRIx64,
			   field, c->cap_eff, c->cap_prm);
	return 0;
}

static int validate_thread(const char *name, size_t i, const Dm__Thread *t)
{
	if (t->creds) {
		char field[48];
		snprintf(field, sizeof(field), "threads[%zu].creds", i);
		int r = validate_creds(name, field, t->creds);
		if (r < 0)
			return r;
	}
	if (t->tid <= 0)
		return bad(name, "threads[%zu].tid %d invalid", i, t->tid);
	if (t->regs.len != sizeof(struct user_regs_struct))
		return bad(name, "threads[%zu].regs: %zu bytes, expected %zu", i, t->regs.len,
			   sizeof(struct user_regs_struct));
	if (t->has_xstate && (t->xstate.len < 512 || t->xstate.len > 65536))
		return bad(name, "threads[%zu].xstate: %zu bytes", i, t->xstate.len);
	if (t->has_cpus_allowed && (!t->cpus_allowed.len || t->cpus_allowed.len > 1024 || t->cpus_allowed.len % 8))
		return bad(name, "threads[%zu].cpus_allowed: %zu bytes", i, t->cpus_allowed.len);
	for (size_t k = 0; k < t->n_pending; k++)
		if (t->pending[k].len != SIGINFO_SIZE)
			return bad(name, "threads[%zu].pending[%zu]: %zu bytes", i, k, t->pending[k].len);
	if (t->n_pending > 4096)
		return bad(name, "threads[%zu].pending: too many", i);
	for (size_t k = 0; k < t->n_seccomp; k++)
		if (t->seccomp[k]->insns.len == 0 || t->seccomp[k]->insns.len % 8 ||
		    t->seccomp[k]->insns.len > 4096 * 8)
			return bad(name, "threads[%zu].seccomp[%zu]: bad filter length", i, k);
	return 0;
}

/*
 * An attached SysV segment is attached again whole (shmat): it must be one of
 * the container's IPC namespace in the image, shared, and as long as the
 * segment (pages).  A tree that is not a container's has no segments.
 */
static int check_sysv_vma(const char *name, const struct dm_checkpoint *ck, size_t i, const Dm__Vma *v)
{
	const Dm__ContainerIpc *ipc = ck->inv->container ? ck->inv->container->ipc : NULL;

	if (!(v->flags & MAP_SHARED) || !v->has_shmem_id)
		return bad(name, "vmas[%zu]: a SysV shm mapping that is not shared or has no id", i);
	for (size_t k = 0; ipc && k < ipc->n_shm; k++) {
		const Dm__SysvShm *s = ipc->shm[k];
		if (s->perm->id < 0 || (uint64_t)s->perm->id != v->shmem_id)
			continue;
		uint64_t len = (s->size + 4095) & ~(uint64_t)4095;
		if (len != v->end - v->start)
			return bad(name, "vmas[%zu]: SysV shm id %" PRIu64 " is %" PRIu64 " bytes, mapped on %"
				   PRIu64 " (a part: not restored)", i, v->shmem_id, s->size, v->end - v->start);
		return 0;
	}
	return bad(name, "vmas[%zu]: SysV shm id %" PRIu64 " is not in the image's container IPC "
		   "namespace", i, v->shmem_id);
}

static int validate_vmas(const char *name, struct dm_checkpoint *ck, const Dm__Process *p)
{
	uint64_t prev_end = 0;

	for (size_t i = 0; i < p->n_vmas; i++) {
		const Dm__Vma *v = p->vmas[i];
		if (v->start >= v->end || !PAGE_ALIGNED(v->start) || !PAGE_ALIGNED(v->end))
			return bad(name, "vmas[%zu]: bad range %#" PRIx64 "-%#" PRIx64, i, v->start,
				   v->end);
		if (v->n_guards % 2)
			return bad(name, "vmas[%zu]: odd guards", i);
		for (size_t k = 0; k < v->n_guards; k += 2)
			if (!PAGE_ALIGNED(v->guards[k]) || !PAGE_ALIGNED(v->guards[k + 1]) ||
			    !v->guards[k + 1] || v->guards[k] < v->start || v->guards[k] > v->end ||
			    v->guards[k + 1] > v->end - v->guards[k])
				return bad(name, "vmas[%zu]: guard %#" PRIx64 "+%#" PRIx64 " outside it", i,
					   v->guards[k], v->guards[k + 1]);
		if (v->kind == DM__VMA_KIND__VMA_VSYSCALL) {
			if (v->start != VSYSCALL_ADDR)
				return bad(name, "vmas[%zu]: vsyscall at %#" PRIx64, i, v->start);
		} else if (v->end > TASK_SIZE_MAX) {
			return bad(name, "vmas[%zu]: end %#" PRIx64 " beyond user space", i, v->end);
		}
		if (v->start < prev_end)
			return bad(name, "vmas[%zu]: %#" PRIx64 " overlaps or is out of order", i,
				   v->start);
		prev_end = v->end;
		if (v->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC))
			return bad(name, "vmas[%zu]: prot %#x", i, v->prot);
		if (!!(v->flags & MAP_SHARED) == !!(v->flags & MAP_PRIVATE))
			return bad(name, "vmas[%zu]: flags %#x must be shared or private", i, v->flags);
		if ((unsigned)v->kind > DM__VMA_KIND__VMA_SHMEM && v->kind != DM__VMA_KIND__VMA_SYSV_SHM)
			return bad(name, "vmas[%zu]: kind %d", i, v->kind);
		if (v->kind == DM__VMA_KIND__VMA_SYSV_SHM) {
			int r = check_sysv_vma(name, ck, i, v);
			if (r < 0)
				return r;
		}
		if (v->kind == DM__VMA_KIND__VMA_FILE) {
			if (!v->has_file_id)
				return bad(name, "vmas[%zu]: file mapping without file_id", i);
			int r = check_file_ref(ck, name, "vma file_id", v->file_id);
			if (r < 0)
				return r;
		}
		if (v->has_pgoff && !PAGE_ALIGNED(v->pgoff))
			return bad(name, "vmas[%zu]: pgoff %#" PRIx64 " not page aligned", i, v->pgoff);
	}
	return 0;
}

const Dm__Vma *checkpoint_vma_at(const Dm__Process *p, uint64_t a)
{
	size_t lo = 0, hi = p->n_vmas;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const Dm__Vma *v = p->vmas[mid];
		if (a < v->start)
			hi = mid;
		else if (a >= v->end)
			lo = mid + 1;
		else
			return v;
	}
	return NULL;
}

static int validate_pagemap(const char *name, const Dm__Process *p)
{
	uint64_t prev = 0, off = 0;

	for (size_t i = 0; i < p->n_pagemap; i++) {
		const Dm__PagemapEntry *e = p->pagemap[i];
		uint64_t len = (uint64_t)e->nr_pages * DM_PAGE_SIZE;
		if (e->nr_pages == 0 || !PAGE_ALIGNED(e->vaddr) || e->vaddr < prev)
			return bad(name, "pagemap[%zu]: bad entry at %#" PRIx64, i, e->vaddr);
		const Dm__Vma *v = checkpoint_vma_at(p, e->vaddr);
		if (!v || e->vaddr + len > v->end || e->vaddr + len <= e->vaddr)
			return bad(name, "pagemap[%zu]: %#" PRIx64 "+%u pages outside every vma", i,
				   e->vaddr, e->nr_pages);
		if (v->flags & MAP_SHARED)
			return bad(name, "pagemap[%zu]: pages of a shared mapping", i);
		prev = e->vaddr + len;
		if (e->remote && !e->lazy)
			return bad(name, "pagemap[%zu]: remote pages must be lazy", i);
		if (e->now && !e->remote)
			return bad(name, "pagemap[%zu]: pages written now from the page source must be remote", i);
		/* in page-map order, none over another; a lazy dump leaves
		 * gaps where a run's pages hold no data (dump.c, push_eager) */
		if (e->offset < off)
			return bad(name, "pagemap[%zu]: offset %" PRIu64 " inside the previous entry's pages "
				   "(they end at %" PRIu64 ")", i, e->offset, off);
		off = e->offset + len;
		if (off < e->offset)
			return bad(name, "pagemap[%zu]: offset %" PRIu64 " overflows", i, e->offset);
	}
	return 0;
}

/* The end of what p has itself at a (an eager page map entry or an inherited
 * run), or 0 when it has nothing there. */
static uint64_t has_pages_until(const Dm__Process *p, uint64_t a)
{
	size_t lo = 0, hi = p->n_pagemap;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const Dm__PagemapEntry *e = p->pagemap[mid];
		uint64_t end = e->vaddr + (uint64_t)e->nr_pages * DM_PAGE_SIZE;
		if (a < e->vaddr) {
			hi = mid;
		} else if (a >= end) {
			lo = mid + 1;
		} else {
			if (((e->has_lazy && e->lazy) || (e->has_remote && e->remote)) && !(e->has_now && e->now))
				return 0; /* not in the parent yet when it forks */
			return end;
		}
	}
	/* sorted pairs, validated with p (parents come first) */
	lo = 0;
	hi = p->n_inherited / 2;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		uint64_t s = p->inherited[2 * mid], end = s + p->inherited[2 * mid + 1] * DM_PAGE_SIZE;
		if (a < s)
			hi = mid;
		else if (a >= end)
			lo = mid + 1;
		else
			return end;
	}
	return 0;
}

static bool cow_vma_kind(const Dm__Vma *v)
{
	return !(v->flags & MAP_SHARED) &&
	       (v->kind == DM__VMA_KIND__VMA_ANON || v->kind == DM__VMA_KIND__VMA_HEAP ||
		v->kind == DM__VMA_KIND__VMA_STACK || v->kind == DM__VMA_KIND__VMA_FILE);
}

/* a private file mapping: the same file at the same offset in both */
static bool cow_same_file(const Dm__Vma *a, const Dm__Vma *b)
{
	return a->kind != DM__VMA_KIND__VMA_FILE ||
	       (a->has_file_id && b->has_file_id && a->file_id == b->file_id &&
		(a->has_pgoff ? a->pgoff : 0) == (b->has_pgoff ? b->pgoff : 0));
}

/* madvise state a fork copies: the same in the parent's and the child's VMA */
#define COW_SAME_MADV (DM_MADV_DONTDUMP | DM_MADV_HUGEPAGE | DM_MADV_NOHUGEPAGE | \
		       DM_MADV_MERGEABLE | DM_MADV_SEQ | DM_MADV_RAND)

/*
 * Pages a process inherits from its parent by fork (Process.inherited):
 * sorted runs, each inside one private anonymous VMA (or private file
 * mapping: its written pages) of the process that the parent has at the same
 * place (the same file at the same offset), mapped the same way (the restore keeps the
 * parent's VMA in the child; its commit charge is not checked: the dump
 * compares it, the image has it only for read-only VMAs), with no page of its own page map there, and
 * held by the parent itself before it forks (an eager page or a run it
 * inherits in turn).  Anything else would make the child read the parent's
 * bytes, or zeros, where it had its own.
 */
static int validate_inherited(const char *name, struct dm_checkpoint *ck, const Dm__Process *p,
			      size_t idx)
{
	const Dm__Process *pp;
	uint64_t prev = 0;
	size_t e = 0;

	if (!p->n_inherited)
		return 0;
	if (p->n_inherited % 2)
		return bad(name, "inherited: %zu numbers, not (vaddr, pages) pairs", p->n_inherited);
	if (idx == 0 || p->state == DM__PROC_STATE__PROC_ZOMBIE)
		return bad(name, "inherited: pages inherited by %s", idx ? "a zombie" : "the root");
	pp = checkpoint_find_proc(ck, p->ppid);
	if (!pp || pp->state == DM__PROC_STATE__PROC_ZOMBIE)
		return bad(name, "inherited: the parent %d cannot fork it", p->ppid);
	for (size_t i = 0; i < p->n_inherited; i += 2) {
		uint64_t a = p->inherited[i], pages = p->inherited[i + 1];
		uint64_t end = a + pages * DM_PAGE_SIZE;
		if (!PAGE_ALIGNED(a) || pages == 0 || pages > TASK_SIZE_MAX / DM_PAGE_SIZE ||
		    end <= a || a < prev)
			return bad(name, "inherited[%zu]: bad run %#" PRIx64 "+%" PRIu64 " pages", i / 2,
				   a, pages);
		prev = end;
		const Dm__Vma *v = checkpoint_vma_at(p, a), *pv = checkpoint_vma_at(pp, a);
		if (!v || end > v->end || !cow_vma_kind(v))
			return bad(name, "inherited[%zu]: %#" PRIx64 " is not in a private anonymous "
				   "or private file vma", i / 2, a);
		if (!pv || pv->start != v->start || pv->end != v->end || pv->kind != v->kind ||
		    pv->flags != v->flags || !cow_vma_kind(pv) || pv->n_guards || v->n_guards ||
		    !cow_same_file(pv, v) ||
		    strcmp(pv->name ? pv->name : "", v->name ? v->name : "") ||
		    (((pv->has_madv ? pv->madv : 0) ^ (v->has_madv ? v->madv : 0)) & COW_SAME_MADV))
			return bad(name, "inherited[%zu]: %#" PRIx64 ": the parent %d has no vma "
				   "mapped the same way there", i / 2, a, p->ppid);
		/* the page map is sorted: no entry may reach into [a, end) */
		while (e < p->n_pagemap &&
		       p->pagemap[e]->vaddr + (uint64_t)p->pagemap[e]->nr_pages * DM_PAGE_SIZE <= a)
			e++;
		if (e < p->n_pagemap && p->pagemap[e]->vaddr < end)
			return bad(name, "inherited[%zu]: %#" PRIx64 " is also in the page map", i / 2,
				   p->pagemap[e]->vaddr < a ? a : p->pagemap[e]->vaddr);
		for (uint64_t x = a; x < end;) {
			uint64_t upto = has_pages_until(pp, x);
			if (!upto)
				return bad(name, "inherited[%zu]: the parent %d has no page at %#" PRIx64
					   " before it forks", i / 2, p->ppid, x);
			x = upto;
		}
	}
	return 0;
}

static int validate_process(struct dm_checkpoint *ck, size_t idx)
{
	const Dm__Process *p = ck->procs[idx];
	char name[64];
	int r;

	snprintf(name, sizeof(name), IMG_PROC_FMT, ck->inv->pids[idx]);
	if (p->pid != ck->inv->pids[idx])
		return bad(name, "pid %d does not match the file name", p->pid);
	if (idx == 0 && p->ppid != 0 && checkpoint_find_proc(ck, p->ppid))
		return bad(name, "root has a parent inside the tree");
	if (idx > 0) {
		bool found = false;
		for (size_t k = 0; k < idx; k++)
			if (ck->procs[k]->pid == p->ppid)
				found = true;
		if (!found)
			return bad(name, "ppid %d is not an earlier process of the tree", p->ppid);
	}
	if (p->state != DM__PROC_STATE__PROC_ZOMBIE) {
		if (!p->creds)
			return bad(name, "creds missing: the process would run with the restorer's "
					 "credentials (root)");
		r = validate_creds(name, "creds", p->creds);
		if (r < 0)
			return r;
		if (p->n_threads == 0 || p->threads[0]->tid != p->pid)
			return bad(name, "threads: main thread missing");
		if (p->n_threads > 4096)
			return bad(name, "threads: %zu is too many", p->n_threads);
		for (size_t i = 0; i < p->n_threads; i++) {
			r = validate_thread(name, i, p->threads[i]);
			if (r < 0)
				return r;
			for (size_t k = 0; k < i; k++)
				if (p->threads[k]->tid == p->threads[i]->tid)
					return bad(name, "threads: tid %d twice", p->threads[i]->tid);
		}
		if (!p->mm)
			return bad(name, "mm missing");
		if (p->mm->has_auxv && (p->mm->auxv.len % 16 || p->mm->auxv.len > 8192))
			return bad(name, "mm.auxv: %zu bytes", p->mm->auxv.len);
		if (p->mm->has_exe_file_id) {
			r = check_file_ref(ck, name, "mm.exe_file_id", p->mm->exe_file_id);
			if (r < 0)
				return r;
		}
	}
	r = validate_vmas(name, ck, p);
	if (r < 0)
		return r;
	r = validate_pagemap(name, p);
	if (r < 0)
		return r;
	r = validate_inherited(name, ck, p, idx);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->n_fds; i++) {
		if (p->fds[i]->fd < 0 || p->fds[i]->fd >= MAX_FD)
			return bad(name, "fds[%zu]: fd %d out of range", i, p->fds[i]->fd);
		if (i && p->fds[i]->fd <= p->fds[i - 1]->fd)
			return bad(name, "fds[%zu]: fd %d out of order", i, p->fds[i]->fd);
		r = check_file_ref(ck, name, "fd file_id", p->fds[i]->file_id);
		if (r < 0)
			return r;
		for (size_t k = 0; k < p->fds[i]->n_posix_locks; k++) {
			r = check_lock(name, "fd posix_locks", k, p->fds[i]->posix_locks[k], true);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = 0; i < p->n_sigactions; i++) {
		uint32_t s = p->sigactions[i]->sig;
		if (s == 0 || s > 64 || s == SIGKILL || s == SIGSTOP)
			return bad(name, "sigactions[%zu]: signal %u", i, s);
	}
	for (size_t i = 0; i < p->n_shared_pending; i++)
		if (p->shared_pending[i].len != SIGINFO_SIZE)
			return bad(name, "shared_pending[%zu]: %zu bytes", i, p->shared_pending[i].len);
	if (p->has_cwd_file_id) {
		r = check_file_ref(ck, name, "cwd_file_id", p->cwd_file_id);
		if (r < 0)
			return r;
	}
	if (p->has_root_file_id) {
		r = check_file_ref(ck, name, "root_file_id", p->root_file_id);
		if (r < 0)
			return r;
	}
	return 0;
}

int image_validate(struct dm_image *img, struct dm_checkpoint *ck)
{
	const Dm__Inventory *inv = ck->inv;
	int r;

	(void)img;
	if (inv->version != DM_IMG_VERSION)
		return bad(IMG_INVENTORY_FILE, "version %u unsupported", inv->version);
	if (inv->n_pids == 0 || inv->pids[0] != inv->root_pid)
		return bad(IMG_INVENTORY_FILE, "root_pid %d is not the first of pids", inv->root_pid);
	if (inv->has_page_size && inv->page_size != DM_PAGE_SIZE)
		return bad(IMG_INVENTORY_FILE, "page_size %u differs from this host's", inv->page_size);
	for (size_t i = 0; i < inv->n_pids; i++) {
		if (inv->pids[i] <= 0 || inv->pids[i] > (1 << 22))
			return bad(IMG_INVENTORY_FILE, "pids[%zu] = %d out of range", i, inv->pids[i]);
		for (size_t k = 0; k < i; k++)
			if (inv->pids[k] == inv->pids[i])
				return bad(IMG_INVENTORY_FILE, "pid %d appears twice", inv->pids[i]);
	}
	r = validate_files(ck);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ck->nprocs; i++) {
		r = validate_process(ck, i);
		if (r < 0)
			return r;
	}
	return 0;
}
