/* SPDX-License-Identifier: MIT */
/* show-image: an image directory for a human, or as JSON. */
#include "image/image.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>
#include <sys/mman.h>

static const char *vma_kind(Dm__VmaKind k)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&dm__vma_kind__descriptor, k);
	return v ? v->name + 4 : "?"; /* strip "VMA_" */
}

static const char *file_type(Dm__FileType t)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&dm__file_type__descriptor, t);
	return v ? v->name + 5 : "?"; /* strip "FILE_" */
}

static uint64_t proc_pages(const Dm__Process *p)
{
	uint64_t n = 0;
	for (size_t i = 0; i < p->n_pagemap; i++)
		n += p->pagemap[i]->nr_pages;
	return n;
}

/* Pages the process gets from its parent by fork (Process.inherited). */
static uint64_t proc_inherited(const Dm__Process *p)
{
	uint64_t n = 0;
	for (size_t i = 0; i + 1 < p->n_inherited; i += 2)
		n += p->inherited[i + 1];
	return n;
}

static void prot_str(uint32_t prot, uint32_t flags, char out[5])
{
	out[0] = prot & PROT_READ ? 'r' : '-';
	out[1] = prot & PROT_WRITE ? 'w' : '-';
	out[2] = prot & PROT_EXEC ? 'x' : '-';
	out[3] = flags & MAP_SHARED ? 's' : 'p';
	out[4] = 0;
}

/* "TCP ESTABLISHED 127.0.0.1:5000 -> 127.0.0.1:41234, 10 bytes unread, 0 unacknowledged" */
static void inet_str(const Dm__InetSk *s, char *buf, size_t len)
{
	static const char *const st[] = { [1] = "ESTABLISHED", [7] = "CLOSE", [10] = "LISTEN" };
	char a[INET6_ADDRSTRLEN] = "?", b[INET6_ADDRSTRLEN] = "?";
	int fam = s->family == AF_INET6 ? AF_INET6 : AF_INET;
	size_t alen = fam == AF_INET6 ? 16 : 4;
	bool tcp = s->protocol == IPPROTO_TCP;

	if (s->src_addr.len == alen)
		inet_ntop(fam, s->src_addr.data, a, sizeof(a));
	if (s->dst_addr.len == alen)
		inet_ntop(fam, s->dst_addr.data, b, sizeof(b));
	int n = snprintf(buf, len, "%s%s %s %s%s%s:%u", tcp ? "TCP" : "UDP", fam == AF_INET6 ? "v6" : "",
			 s->state < ARRAY_SIZE(st) && st[s->state] ? (tcp || s->state != 1 ? st[s->state]
				: "CONNECTED") : "?",
			 fam == AF_INET6 ? "[" : "", a, fam == AF_INET6 ? "]" : "", s->src_port);
	if (n > 0 && (size_t)n < len && s->dst_port)
		n += snprintf(buf + n, len - (size_t)n, fam == AF_INET6 ? " -> [%s]:%u" : " -> %s:%u", b,
			      s->dst_port);
	if (n > 0 && (size_t)n < len && s->tcp)
		snprintf(buf + n, len - (size_t)n, ", %zu bytes unread, %zu unacknowledged (%u never sent)",
			 s->tcp->recv_queue.len, s->tcp->send_queue.len, s->tcp->unsent);
}

/* A unix socket for a human: "stream @name peer 1234 queued 10 bytes" (name bytes made printable). */
static void unix_text(const Dm__UnixSk *u, char *buf, size_t size)
{
	char name[2 * 108 + 2] = "";
	size_t k = 0;
	const char *ty = u->type == 1 ? "stream" : u->type == 2 ? "dgram" : u->type == 5 ? "seqpacket" : "?";

	if (u->has_name && u->name.len) {
		size_t i = 0;
		if (!u->name.data[0]) {
			name[k++] = '@';
			i = 1;
		}
		/* a path ends at its NUL; an abstract name may hold NULs (shown as '?') */
		for (; i < u->name.len && k + 1 < sizeof(name); i++) {
			uint8_t ch = u->name.data[i];
			if (u->name.data[0] && !ch)
				break;
			name[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		name[k] = 0;
	}
	snprintf(buf, size, "%s%s%s%s peer %" PRIu64 "%s queued %zu bytes", ty, k ? " " : "", name,
		 u->state == 10 ? " listening" : "", u->has_peer_ino ? u->peer_ino : 0,
		 u->has_ext_name ? " (outside, reconnected)" : u->peer_closed ? " (closed)" : "",
		 u->has_data ? u->data.len : 0);
}


/* A container's IPC namespace (Container.ipc): its objects by key and id. */
static json_t *ipc_json(const Dm__ContainerIpc *m)
{
	json_t *o = json_object(), *a = json_array();

	for (size_t i = 0; i < m->n_shm; i++)
		json_array_append_new(a, json_pack("{s:i,s:i,s:I,s:s}", "key", m->shm[i]->perm->key, "id",
						   m->shm[i]->perm->id, "size", (json_int_t)m->shm[i]->size,
						   "contents", m->shm[i]->contents));
	json_object_set_new(o, "shm", a);
	a = json_array();
	for (size_t i = 0; i < m->n_sem; i++)
		json_array_append_new(a, json_pack("{s:i,s:i,s:I}", "key", m->sem[i]->perm->key, "id",
						   m->sem[i]->perm->id, "nsems", (json_int_t)m->sem[i]->n_values));
	json_object_set_new(o, "sem", a);
	a = json_array();
	for (size_t i = 0; i < m->n_msq; i++)
		json_array_append_new(a, json_pack("{s:i,s:i,s:I}", "key", m->msq[i]->perm->key, "id",
						   m->msq[i]->perm->id, "messages", (json_int_t)m->msq[i]->n_msgs));
	json_object_set_new(o, "msq", a);
	a = json_array();
	for (size_t i = 0; i < m->n_mqueue; i++)
		json_array_append_new(a, json_pack("{s:s,s:I}", "name", m->mqueue[i]->name, "messages",
						   (json_int_t)m->mqueue[i]->n_msgs));
	json_object_set_new(o, "mqueue", a);
	return o;
}

static void ipc_text(const Dm__ContainerIpc *m, FILE *out)
{
	for (size_t i = 0; i < m->n_shm; i++)
		fprintf(out, "  SysV shm key %#x id %d: %" PRIu64 " bytes in %s\n", (unsigned)m->shm[i]->perm->key,
			m->shm[i]->perm->id, m->shm[i]->size, m->shm[i]->contents);
	for (size_t i = 0; i < m->n_sem; i++)
		fprintf(out, "  SysV semaphores key %#x id %d: %zu\n", (unsigned)m->sem[i]->perm->key,
			m->sem[i]->perm->id, m->sem[i]->n_values);
	for (size_t i = 0; i < m->n_msq; i++)
		fprintf(out, "  SysV message queue key %#x id %d: %zu messages\n", (unsigned)m->msq[i]->perm->key,
			m->msq[i]->perm->id, m->msq[i]->n_msgs);
	for (size_t i = 0; i < m->n_mqueue; i++)
		fprintf(out, "  POSIX message queue /%s: %zu messages\n", m->mqueue[i]->name, m->mqueue[i]->n_msgs);
}

static json_t *show_json(const struct dm_checkpoint *ck)
{
	json_t *root = json_object(), *procs = json_array(), *files = json_array();

	json_object_set_new(root, "version", json_integer(ck->inv->version));
	json_object_set_new(root, "root_pid", json_integer(ck->inv->root_pid));
	json_object_set_new(root, "own_pidns", json_boolean(ck->inv->own_pidns));
	json_object_set_new(root, "lazy", json_boolean(ck->inv->has_lazy && ck->inv->lazy));
	if (ck->inv->hostname)
		json_object_set_new(root, "hostname", json_string(ck->inv->hostname));
	if (ck->inv->net_lock)
		json_object_set_new(root, "net_lock", json_string(ck->inv->net_lock));
	const Dm__Container *ct = ck->inv->container;
	if (ct) {
		json_t *c = json_object(), *a = json_array();
		json_object_set_new(c, "runtime", json_string(ct->runtime));
		json_object_set_new(c, "id", json_string(ct->id));
		json_object_set_new(c, "bundle", json_string(ct->bundle));
		if (ct->cgroup_freezer)
			json_object_set_new(c, "freezer", json_string(ct->cgroup_freezer));
		if (ct->hostname)
			json_object_set_new(c, "hostname", json_string(ct->hostname));
		for (size_t i = 0; i < ct->n_namespaces; i++)
			json_array_append_new(a, json_string(ct->namespaces[i]->type));
		json_object_set_new(c, "namespaces", a);
		a = json_array();
		for (size_t i = 0; i < ct->n_tmpfs; i++)
			json_array_append_new(a, json_pack("{s:s,s:s}", "mountpoint", ct->tmpfs[i]->mountpoint,
							   "archive", ct->tmpfs[i]->archive));
		json_object_set_new(c, "tmpfs", a);
		a = json_array();
		for (size_t i = 0; i < ct->n_interfaces; i++)
			json_array_append_new(a, json_string(ct->interfaces[i]->name));
		json_object_set_new(c, "interfaces", a);
		if (ct->ipc)
			json_object_set_new(c, "ipc", ipc_json(ct->ipc));
		json_object_set_new(root, "container", c);
	}
	for (size_t i = 0; i < ck->nprocs; i++) {
		const Dm__Process *p = ck->procs[i];
		json_t *jp = json_object(), *th = json_array(), *vm = json_array(), *fd = json_array();
		json_object_set_new(jp, "pid", json_integer(p->pid));
		json_object_set_new(jp, "ppid", json_integer(p->ppid));
		json_object_set_new(jp, "pgid", json_integer(p->pgid));
		json_object_set_new(jp, "sid", json_integer(p->sid));
		json_object_set_new(jp, "comm", json_string(p->comm ? p->comm : ""));
		json_object_set_new(jp, "state", json_string(p->state == DM__PROC_STATE__PROC_ZOMBIE ? "zombie" :
			p->state == DM__PROC_STATE__PROC_STOPPED ? "stopped" : "alive"));
		for (size_t k = 0; k < p->n_threads; k++)
			json_array_append_new(th, json_integer(p->threads[k]->tid));
		for (size_t k = 0; k < p->n_vmas; k++) {
			const Dm__Vma *v = p->vmas[k];
			char perm[5];
			prot_str(v->prot, v->flags, perm);
			json_array_append_new(vm, json_pack("{s:I,s:I,s:s,s:s,s:s}", "start", (json_int_t)v->start,
				"end", (json_int_t)v->end, "perm", perm, "kind", vma_kind(v->kind),
				"name", v->name ? v->name : ""));
		}
		for (size_t k = 0; k < p->n_fds; k++)
			json_array_append_new(fd, json_pack("{s:i,s:i}", "fd", p->fds[k]->fd, "file_id",
							    (int)p->fds[k]->file_id));
		json_object_set_new(jp, "threads", th);
		json_object_set_new(jp, "vmas", vm);
		json_object_set_new(jp, "fds", fd);
		json_object_set_new(jp, "pages", json_integer((json_int_t)proc_pages(p)));
		json_object_set_new(jp, "bytes", json_integer((json_int_t)(proc_pages(p) * DM_PAGE_SIZE)));
		json_object_set_new(jp, "inherited_pages", json_integer((json_int_t)proc_inherited(p)));
		json_object_set_new(jp, "sigactions", json_integer((json_int_t)p->n_sigactions));
		json_array_append_new(procs, jp);
	}
	for (size_t i = 0; i < ck->files->n_files; i++) {
		const Dm__File *f = ck->files->files[i];
		json_t *jf = json_pack("{s:i,s:s}", "id", (int)f->id, "type", file_type(f->type));
		if (f->path)
			json_object_set_new(jf, "path", json_string(f->path));
		if (f->has_pos)
			json_object_set_new(jf, "pos", json_integer((json_int_t)f->pos));
		if (f->has_flags)
			json_object_set_new(jf, "flags", json_integer(f->flags));
		if (f->inet) {
			char s[256];
			inet_str(f->inet, s, sizeof(s));
			json_object_set_new(jf, "socket", json_string(s));
		}
		if (f->unix_sk) {
			char u[320];
			unix_text(f->unix_sk, u, sizeof(u));
			json_object_set_new(jf, "unix", json_string(u));
		}
		json_array_append_new(files, jf);
	}
	json_object_set_new(root, "processes", procs);
	json_object_set_new(root, "files", files);
	return root;
}

static void show_text(const struct dm_checkpoint *ck, FILE *out)
{
	uint64_t total = 0;

	fprintf(out, "image version %u, root pid %d%s%s\n", ck->inv->version, ck->inv->root_pid,
		ck->inv->own_pidns ? " (own pid namespace)" : "",
		ck->inv->has_lazy && ck->inv->lazy ? ", lazy pages" : "");
	if (ck->inv->net_lock)
		fprintf(out, "network lock in place: nft table inet %s (the restore removes it)\n",
			ck->inv->net_lock);
	const Dm__Container *ct = ck->inv->container;
	if (ct) {
		fprintf(out, "%s container %s, bundle %s, host name %s\n  namespaces:", ct->runtime, ct->id,
			ct->bundle, ct->hostname ? ct->hostname : "?");
		for (size_t i = 0; i < ct->n_namespaces; i++)
			fprintf(out, " %s", ct->namespaces[i]->type);
		fprintf(out, "\n");
		for (size_t i = 0; i < ct->n_tmpfs; i++)
			if (ct->tmpfs[i]->archive[0])
				fprintf(out, "  tmpfs %s: files in %s\n", ct->tmpfs[i]->mountpoint, ct->tmpfs[i]->archive);
			else
				fprintf(out, "  tmpfs %s: empty (mode %04o, owner %u:%u)\n", ct->tmpfs[i]->mountpoint,
					ct->tmpfs[i]->root_mode, ct->tmpfs[i]->root_uid, ct->tmpfs[i]->root_gid);
		for (size_t i = 0; i < ct->n_cgroup; i++)
			fprintf(out, "  cgroup %s%s%s = %s\n", ct->cgroup[i]->controller,
				ct->cgroup[i]->controller[0] ? "/" : "", ct->cgroup[i]->file, ct->cgroup[i]->value);
		if (ct->ipc)
			ipc_text(ct->ipc, out);
	}
	for (size_t i = 0; i < ck->nprocs; i++) {
		const Dm__Process *p = ck->procs[i];
		uint64_t pages = proc_pages(p);
		total += pages;
		fprintf(out, "\nprocess %d (%s) ppid %d pgid %d sid %d%s\n", p->pid, p->comm ? p->comm : "?",
			p->ppid, p->pgid, p->sid, p->state == DM__PROC_STATE__PROC_ZOMBIE ? " zombie" : "");
		fprintf(out, "  threads:");
		for (size_t k = 0; k < p->n_threads; k++)
			fprintf(out, " %d", p->threads[k]->tid);
		fprintf(out, "\n  memory: %zu vmas, %" PRIu64 " pages (%.1f MiB) saved", p->n_vmas, pages,
			pages * DM_PAGE_SIZE / 1048576.0);
		if (p->n_inherited)
			fprintf(out, ", %" PRIu64 " pages (%.1f MiB) shared with its parent (copy-on-write)",
				proc_inherited(p), proc_inherited(p) * DM_PAGE_SIZE / 1048576.0);
		fprintf(out, "\n");
		for (size_t k = 0; k < p->n_vmas; k++) {
			const Dm__Vma *v = p->vmas[k];
			char perm[5];
			prot_str(v->prot, v->flags, perm);
			fprintf(out, "    %012" PRIx64 "-%012" PRIx64 " %s %-8s %s\n", v->start, v->end, perm,
				vma_kind(v->kind), v->name ? v->name : "");
		}
		fprintf(out, "  fds:\n");
		for (size_t k = 0; k < p->n_fds; k++) {
			const Dm__File *f = checkpoint_file(ck, p->fds[k]->file_id);
			fprintf(out, "    %4d -> #%u %s %s", p->fds[k]->fd, p->fds[k]->file_id,
				f ? file_type(f->type) : "?", f && f->path ? f->path : "");
			if (f && f->has_pos && !f->inet)
				fprintf(out, " pos %" PRIu64, f->pos);
			if (f && f->inet) {
				char s[256];
				inet_str(f->inet, s, sizeof(s));
				fprintf(out, "%s", s);
			}
			if (f && f->unix_sk) {
				char u[320];
				unix_text(f->unix_sk, u, sizeof(u));
				fprintf(out, " %s", u);
			}
			fprintf(out, "\n");
		}
		if (p->n_sigactions)
			fprintf(out, "  signal handlers: %zu\n", p->n_sigactions);
	}
	fprintf(out, "\ntotal: %zu processes, %" PRIu64 " pages (%.1f MiB)\n", ck->nprocs, total,
		total * DM_PAGE_SIZE / 1048576.0);
}

int image_show(struct dm_image *img, bool json, FILE *out)
{
	struct dm_checkpoint *ck;
	int r = image_load(img, &ck);
	if (r < 0)
		return r;
	if (json) {
		json_t *j = show_json(ck);
		json_dumpf(j, out, JSON_INDENT(2));
		fputc('\n', out);
		json_decref(j);
	} else {
		show_text(ck, out);
	}
	checkpoint_free(ck);
	return 0;
}
