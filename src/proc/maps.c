/* SPDX-License-Identifier: MIT */
/*
 * /proc/PID/maps, /proc/PID/smaps and the PROCMAP_QUERY ioctl.
 *
 * A maps line, as show_map_vma() prints it:
 *
 *   7f6c117c2000-7f6c117e8000 r--p 00026000 fe:00 332835      /usr/lib/libc.so.6
 *   start        end          prot pgoff    dev   inode  pad  name
 *
 * The name is padded to column 73 and printed by seq_path(..., "\n"): only a
 * newline is escaped (as "\012"); a backslash is not, so a file really named
 * "a\012b" reads the same as "a<newline>b" (PROCMAP_QUERY has no such
 * ambiguity).  d_path() adds " (deleted)" to an unlinked file, and a file
 * may also be named "x (deleted)": the flag is a hint that a later check
 * (st_nlink of /proc/PID/map_files/...) must confirm.
 *
 * Speed: a big process has 10^4..10^5 VMAs.  The file is read in one buffer
 * and parsed in place: the paths are NUL-terminated where the '\n' was and
 * unescaped in place (decoding only shrinks), the VMA array is allocated
 * once after counting the lines.  Measured here (Linux 6.18, 60k VMAs):
 * the kernel takes ~1 us per VMA to print maps, the parser ~0.17 us;
 * PROCMAP_QUERY costs one ioctl per VMA and comes out ~1.5x slower than the
 * text, so it is used only to resolve ambiguous names.  smaps costs a
 * page-table walk per VMA in the kernel (its Rss/Pss lines: ~100 ms for
 * 4 GiB resident), which no parser can avoid and no other interface gives
 * the VmFlags without: read it only when the VmFlags are needed.
 */
#include "proc/proc-internal.h"
#include "compat.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* VmFlags                                                                   */

#define MN(a, b) (((a) - 'a') * 26 + ((b) - 'a'))

/* bit number + 1 for each known mnemonic, 0 for unknown */
static const uint8_t vmf_table[26 * 26] = {
	[MN('r', 'd')] = 1 + 0,	 [MN('w', 'r')] = 1 + 1,  [MN('e', 'x')] = 1 + 2,
	[MN('s', 'h')] = 1 + 3,	 [MN('m', 'r')] = 1 + 4,  [MN('m', 'w')] = 1 + 5,
	[MN('m', 'e')] = 1 + 6,	 [MN('m', 's')] = 1 + 7,  [MN('g', 'd')] = 1 + 8,
	[MN('p', 'f')] = 1 + 9,	 [MN('d', 'w')] = 1 + 10, [MN('l', 'o')] = 1 + 11,
	[MN('i', 'o')] = 1 + 12, [MN('s', 'r')] = 1 + 13, [MN('r', 'r')] = 1 + 14,
	[MN('d', 'c')] = 1 + 15, [MN('d', 'e')] = 1 + 16, [MN('a', 'c')] = 1 + 17,
	[MN('n', 'r')] = 1 + 18, [MN('h', 't')] = 1 + 19, [MN('s', 'f')] = 1 + 20,
	[MN('n', 'l')] = 1 + 21, [MN('a', 'r')] = 1 + 22, [MN('w', 'f')] = 1 + 23,
	[MN('d', 'd')] = 1 + 24, [MN('s', 'd')] = 1 + 25, [MN('m', 'm')] = 1 + 26,
	[MN('h', 'g')] = 1 + 27, [MN('n', 'h')] = 1 + 28, [MN('m', 'g')] = 1 + 29,
	[MN('u', 'm')] = 1 + 30, [MN('u', 'w')] = 1 + 31, [MN('u', 'i')] = 1 + 32,
	[MN('s', 's')] = 1 + 33, [MN('l', 'f')] = 1 + 34, [MN('b', 't')] = 1 + 35,
	[MN('m', 't')] = 1 + 36, [MN('d', 'p')] = 1 + 37, [MN('s', 'l')] = 1 + 38,
	[MN('g', 'u')] = 1 + 39,
};

static const char vmf_names[40][3] = {
	"rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "pf", "dw", "lo", "io", "sr",
	"rr", "dc", "de", "ac", "nr", "ht", "sf", "nl", "ar", "wf", "dd", "sd", "mm", "hg",
	"nh", "mg", "um", "uw", "ui", "ss", "lf", "bt", "mt", "dp", "sl", "gu",
};

const char *proc_vmflag_name(uint64_t bit)
{
	if (bit == PROC_VMF_UNKNOWN)
		return "??";
	if (!bit || (bit & (bit - 1)))
		return NULL;
	unsigned i = (unsigned)__builtin_ctzll(bit);
	return i < ARRAY_SIZE(vmf_names) ? vmf_names[i] : NULL;
}

int proc_vmflags_format(uint64_t flags, char *buf, size_t size)
{
	size_t len = 0;

	if (!size)
		return -ENOBUFS;
	buf[0] = 0;
	for (unsigned i = 0; i < 64; i++) {
		const char *n = (flags >> i) & 1 ? proc_vmflag_name(1ULL << i) : NULL;
		if (!n)
			continue;
		if (size - len < 4)
			return -ENOBUFS;
		if (len)
			buf[len++] = ' ';
		buf[len++] = n[0];
		buf[len++] = n[1];
		buf[len] = 0;
	}
	return (int)MIN(len, (size_t)INT_MAX);
}

int proc_parse_vmflags(const char *s, size_t len, uint64_t *ret_flags)
{
	const char *p = s, *end = s + len;
	uint64_t flags = 0;

	for (;;) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		/* a mnemonic is two letters, then a blank or the end */
		if (end - p < 2 || (end - p > 2 && p[2] != ' '))
			return -EBADMSG;
		char a = p[0], b = p[1];
		if (a >= 'a' && a <= 'z' && b >= 'a' && b <= 'z') {
			uint8_t bit = vmf_table[MN(a, b)];
			flags |= bit ? 1ULL << (bit - 1) : PROC_VMF_UNKNOWN;
		} else if (a == '?' && b == '?') {
			flags |= PROC_VMF_UNKNOWN;
		} else {
			return -EBADMSG;
		}
		p += 2;
	}
	*ret_flags = flags;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* names                                                                     */

bool proc_vma_kind_is_shmem(enum proc_vma_kind kind)
{
	switch (kind) {
	case PROC_VMA_SHMEM_ANON:
	case PROC_VMA_SHMEM_NAMED:
	case PROC_VMA_SYSV_SHM:
	case PROC_VMA_MEMFD:
	case PROC_VMA_HUGETLB_ANON:
		return true;
	default:
		return false;
	}
}

const char *proc_vma_kind_name(enum proc_vma_kind kind)
{
	static const char *const names[] = {
		[PROC_VMA_ANON] = "anon",
		[PROC_VMA_ANON_NAMED] = "anon-named",
		[PROC_VMA_FILE] = "file",
		[PROC_VMA_SHMEM_ANON] = "shmem-anon",
		[PROC_VMA_SHMEM_NAMED] = "shmem-named",
		[PROC_VMA_SYSV_SHM] = "sysv-shm",
		[PROC_VMA_MEMFD] = "memfd",
		[PROC_VMA_HUGETLB_ANON] = "hugetlb-anon",
		[PROC_VMA_AIO] = "aio",
		[PROC_VMA_HEAP] = "heap",
		[PROC_VMA_STACK] = "stack",
		[PROC_VMA_VDSO] = "vdso",
		[PROC_VMA_VVAR] = "vvar",
		[PROC_VMA_VVAR_VCLOCK] = "vvar_vclock",
		[PROC_VMA_VSYSCALL] = "vsyscall",
		[PROC_VMA_SPECIAL] = "special",
	};
	if ((unsigned)kind < ARRAY_SIZE(names) && names[kind])
		return names[kind];
	return "?";
}

#define DELETED_SUFFIX " (deleted)"

static bool is_sysv_name(const char *s, size_t len)
{
	/* "/SYSV%08x" */
	if (len != 13 || memcmp(s, "/SYSV", 5) != 0)
		return false;
	for (size_t i = 5; i < 13; i++)
		if (pp_hexval(s[i]) < 0)
			return false;
	return true;
}

/*
 * Classify a decoded name, s[len] is writable and becomes the terminator.
 * Sets kind, deleted, path (pointing into s).
 */
static int classify_vma_name(char *s, size_t len, struct proc_vma *v)
{
	v->deleted = false;

	if (len == 0) {
		v->kind = PROC_VMA_ANON;
		v->path = "";
		return 0;
	}
	/* the kernel never prints a NUL: a NUL would silently cut the path */
	if (memchr(s, 0, len))
		return -EBADMSG;

	if (s[0] == '[') {
		static const struct {
			const char *name;
			enum proc_vma_kind kind;
		} specials[] = {
			{ "[heap]", PROC_VMA_HEAP },	 { "[stack]", PROC_VMA_STACK },
			{ "[vdso]", PROC_VMA_VDSO },	 { "[vvar]", PROC_VMA_VVAR },
			{ "[vvar_vclock]", PROC_VMA_VVAR_VCLOCK },
			{ "[vsyscall]", PROC_VMA_VSYSCALL },
		};
		s[len] = 0;
		for (size_t i = 0; i < ARRAY_SIZE(specials); i++) {
			if (strcmp(s, specials[i].name) == 0) {
				v->kind = specials[i].kind;
				v->path = s;
				return 0;
			}
		}
		if (s[len - 1] == ']' && pp_startswith(s, len, "[anon:")) {
			v->kind = PROC_VMA_ANON_NAMED;
			s[len - 1] = 0;
			v->path = s + 6;
			return 0;
		}
		if (s[len - 1] == ']' && pp_startswith(s, len, "[anon_shmem:")) {
			v->kind = PROC_VMA_SHMEM_NAMED;
			s[len - 1] = 0;
			v->path = s + 12;
			return 0;
		}
		v->kind = PROC_VMA_SPECIAL;
		v->path = s;
		return 0;
	}

	/* d_path() adds " (deleted)" only to real paths, which start with '/' */
	if (s[0] == '/' && pp_endswith(s, len, DELETED_SUFFIX)) {
		v->deleted = true;
		len -= strlen(DELETED_SUFFIX);
	}
	s[len] = 0;
	v->path = s;
	v->kind = PROC_VMA_FILE;

	/* the kernel's own unlinked files live on internal mounts (major 0) */
	if (v->deleted && v->dev_major == 0) {
		if (strcmp(s, "/dev/zero") == 0)
			v->kind = PROC_VMA_SHMEM_ANON;
		else if (is_sysv_name(s, len))
			v->kind = PROC_VMA_SYSV_SHM;
		else if (pp_startswith(s, len, "/memfd:"))
			v->kind = PROC_VMA_MEMFD;
		else if (strcmp(s, "/anon_hugepage") == 0)
			v->kind = PROC_VMA_HUGETLB_ANON;
		else if (strcmp(s, "/[aio]") == 0)
			v->kind = PROC_VMA_AIO;
	}
	return 0;
}

/*
 * maps' only escape: seq_path(m, path, "\n") turns '\n' into "\012".
 * Decode nothing else (a backslash is not escaped by the kernel).
 */
static size_t unescape_maps_name(char *s, size_t len)
{
	char *w = memchr(s, '\\', len);
	if (!w)
		return len;
	const char *r = w, *end = s + len;
	while (r < end) {
		if (end - r >= 4 && r[0] == '\\' && r[1] == '0' && r[2] == '1' && r[3] == '2') {
			*w++ = '\n';
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	return (size_t)(w - s);
}

/* ------------------------------------------------------------------------ */
/* the text                                                                  */

/*
 * Parse one header line [line, line + len) of maps or smaps, in place.
 * line[len] must be writable (it is the '\n', it becomes the NUL).
 */
static int parse_vma_line(char *line, size_t len, struct proc_vma *v)
{
	const char *p = line, *end = line + len;
	uint64_t start, vend, pgoff, ino;
	uint32_t maj, min;

	*v = (struct proc_vma){ .path = "" };
	if (pp_hex_u64(&p, end, &start) < 0 || !pp_char(&p, end, '-') ||
	    pp_hex_u64(&p, end, &vend) < 0 || !pp_char(&p, end, ' '))
		return -EBADMSG;
	if (start >= vend || !PAGE_ALIGNED(start) || !PAGE_ALIGNED(vend))
		return -EBADMSG;

	if (end - p < 5)
		return -EBADMSG;
	if ((p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-') ||
	    (p[2] != 'x' && p[2] != '-') || (p[3] != 's' && p[3] != 'p') || p[4] != ' ')
		return -EBADMSG;
	v->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
		  (p[2] == 'x' ? PROT_EXEC : 0);
	v->shared = p[3] == 's';
	p += 5;

	if (pp_hex_u64(&p, end, &pgoff) < 0 || !pp_char(&p, end, ' ') ||
	    pp_hex_u32(&p, end, &maj) < 0 || !pp_char(&p, end, ':') ||
	    pp_hex_u32(&p, end, &min) < 0 || !pp_char(&p, end, ' ') ||
	    pp_dec_u64(&p, end, &ino) < 0)
		return -EBADMSG;
	/* after the inode: nothing, or blanks and then the name */
	if (p < end && !pp_blanks(&p, end))
		return -EBADMSG;

	v->start = start;
	v->end = vend;
	v->pgoff = pgoff;
	v->dev_major = maj;
	v->dev_minor = min;
	v->inode = ino;
	v->vmflags = 0;
	v->has_vmflags = false;

	char *name = line + (p - line);
	size_t nlen = unescape_maps_name(name, (size_t)(end - p));
	return classify_vma_name(name, nlen, v);
}

static size_t count_lines(const char *buf, size_t len)
{
	size_t n = 0;
	const char *p = buf, *end = buf + len;
	while (p < end && (p = memchr(p, '\n', end - p))) {
		n++;
		p++;
	}
	return n;
}

/* Parse maps text in buf (owned, writable, NUL after len). Takes buf. */
static int parse_maps_owned(char *buf, size_t len, struct proc_vma_list *ret)
{
	_cleanup_free_ char *storage = buf;
	size_t cap = count_lines(buf, len);
	_cleanup_free_ struct proc_vma *vmas = cap ? xmalloc(cap * sizeof(*vmas)) : NULL;
	const char *p = storage, *end = storage + len, *line;
	size_t n = 0, llen;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		if (n == cap)
			return -EBADMSG;	/* cannot happen: one '\n' per line */
		struct proc_vma *v = &vmas[n];
		if (parse_vma_line((char *)line, llen, v) < 0)
			return -EBADMSG;
		/* the kernel lists VMAs in address order, without overlap */
		if (n && v->start < vmas[n - 1].end)
			return -EBADMSG;
		n++;
	}
	if (r < 0)
		return r;

	ret->vmas = TAKE_PTR(vmas);
	ret->n = n;
	ret->storage = TAKE_PTR(storage);
	return (int)MIN(n, (size_t)INT_MAX);
}

int proc_parse_maps(const char *buf, size_t len, struct proc_vma_list *ret)
{
	return parse_maps_owned(pp_dup(buf, len), len, ret);
}

static int parse_smaps_owned(char *buf, size_t len, struct proc_vma_list *ret);

static int query_one(int fd, uint64_t addr, char *name, struct procmap_query *q)
{
	*q = (struct procmap_query){
		.size = sizeof(*q),
		.query_addr = addr,
		.vma_name_addr = (uint64_t)(uintptr_t)name,
		.vma_name_size = PATH_MAX,
	};
	if (ioctl(fd, PROCMAP_QUERY, q) < 0)
		return -errno;
	if (q->vma_name_size > PATH_MAX)
		return -EBADMSG;
	return 0;
}

/*
 * A decoded '\n' in a path came from "\012", which may also have been four
 * characters of the real name (maps does not escape '\\').  PROCMAP_QUERY
 * returns the raw d_path: take the name from there.
 */
static int fix_escaped_names(pid_t pid, struct proc_vma_list *l)
{
	size_t need = 0;
	for (size_t i = 0; i < l->n; i++)
		need += l->vmas[i].kind != PROC_VMA_ANON && strchr(l->vmas[i].path, '\n');
	if (!need)
		return 0;

	char path[PROC_PATH_MAX];
	int r = proc_path(path, pid, 0, "maps");
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	_cleanup_free_ char *name = xmalloc(PATH_MAX + 1);
	_cleanup_free_ size_t *offs = xmalloc(l->n * sizeof(*offs));
	_cleanup_(pp_arena_done) struct pp_arena arena = {};

	for (size_t i = 0; i < l->n; i++) {
		struct proc_vma *v = &l->vmas[i];
		struct procmap_query q;
		offs[i] = SIZE_MAX;
		if (v->kind == PROC_VMA_ANON || !strchr(v->path, '\n'))
			continue;
		r = query_one(fd, v->start, name, &q);
		if (r == -ENOTTY || r == -EINVAL)
			return 0;	/* no PROCMAP_QUERY: keep the decoded names */
		if (r == -ENOENT)
			return -ESTALE;
		if (r < 0)
			return r;
		if (q.vma_start != v->start || q.vma_end != v->end)
			return -ESTALE;
		struct proc_vma t = *v;
		size_t nlen = q.vma_name_size ? q.vma_name_size - 1 : 0;
		name[nlen] = 0;
		nlen = strnlen(name, nlen);
		if (classify_vma_name(name, nlen, &t) < 0)
			return -EBADMSG;
		if (t.kind != v->kind || t.deleted != v->deleted)
			return -ESTALE;
		offs[i] = pp_arena_add(&arena, name, nlen) + (size_t)(t.path - name);
	}
	for (size_t i = 0; i < l->n; i++)
		if (offs[i] != SIZE_MAX)
			l->vmas[i].path = arena.buf + offs[i];
	free(l->extra);
	l->extra = TAKE_PTR(arena.buf);
	return 0;
}

/* /proc/PID/FILE (maps or smaps) read whole, parsed by parse, names fixed */
static int read_vma_file(pid_t pid, const char *file, size_t hint,
			 int (*parse)(char *, size_t, struct proc_vma_list *), struct proc_vma_list *ret)
{
	_cleanup_(proc_vma_list_done) struct proc_vma_list l = {};
	char *buf;
	size_t len;
	int r = proc_read_pid_file(pid, 0, file, hint, PROC_MAX_BIG, &buf, &len);
	if (r < 0)
		return r;
	r = parse(buf, len, &l);
	if (r < 0)
		return r;
	int k = fix_escaped_names(pid, &l);
	if (k < 0)
		return k;
	*ret = l;
	l = (struct proc_vma_list){};
	return r;
}

int proc_read_maps(pid_t pid, struct proc_vma_list *ret)
{
	return read_vma_file(pid, "maps", 256UL * 1024, parse_maps_owned, ret);
}

int proc_read_smaps(pid_t pid, struct proc_vma_list *ret)
{
	return read_vma_file(pid, "smaps", 1024UL * 1024, parse_smaps_owned, ret);
}

int proc_vma_is_deleted(pid_t pid, const struct proc_vma *v)
{
	char name[64], path[PROC_PATH_MAX];
	struct stat st;

	snprintf(name, sizeof(name), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
	int r = proc_path(path, pid, 0, name);
	if (r < 0)
		return r;
	if (stat(path, &st) < 0)
		return neg_errno();
	return st.st_nlink == 0;
}

void proc_vma_list_done(struct proc_vma_list *l)
{
	if (!l)
		return;
	free(l->vmas);
	free(l->storage);
	free(l->extra);
	*l = (struct proc_vma_list){};
}

/* smaps: a header line starts with a hex digit, every field line with a capital. */
static bool is_header_line(const char *line, size_t len)
{
	return len && (pp_isdigit(line[0]) || (line[0] >= 'a' && line[0] <= 'f'));
}

/* A Shared_Clean: or Shared_Dirty: line adds its kB to *kb; other lines 0, bad ones -EBADMSG. */
static int shared_line(const char *line, size_t llen, uint64_t *kb)
{
	const char *p = line + 13, *end = line + llen;
	uint64_t v;

	if (!pp_startswith(line, llen, "Shared_Clean:") && !pp_startswith(line, llen, "Shared_Dirty:"))
		return 0;
	pp_skip_blanks(&p, end);
	if (pp_dec_u64(&p, end, &v) < 0)
		return -EBADMSG;
	*kb += v;
	return 1;
}

static int parse_smaps_owned(char *buf, size_t len, struct proc_vma_list *ret)
{
	_cleanup_free_ char *storage = buf;
	_cleanup_free_ struct proc_vma *vmas = NULL;
	const char *p = storage, *end = storage + len, *line;
	size_t n = 0, cap = 0, llen;
	bool need_flags = false;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		if (is_header_line(line, llen)) {
			if (need_flags)
				return -EBADMSG;	/* previous VMA had no VmFlags */
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				vmas = xrealloc(vmas, cap * sizeof(*vmas));
			}
			struct proc_vma *v = &vmas[n];
			if (parse_vma_line((char *)line, llen, v) < 0)
				return -EBADMSG;
			if (n && v->start < vmas[n - 1].end)
				return -EBADMSG;
			n++;
			need_flags = true;
		} else if (pp_startswith(line, llen, "VmFlags:")) {
			if (!need_flags)
				return -EBADMSG;
			struct proc_vma *v = &vmas[n - 1];
			if (proc_parse_vmflags(line + 8, llen - 8, &v->vmflags) < 0)
				return -EBADMSG;
			v->has_vmflags = true;
			need_flags = false;
		} else if (need_flags && (r = shared_line(line, llen, &vmas[n - 1].shared_kb)) != 0) {
			if (r < 0)
				return r;
			vmas[n - 1].has_shared = true;
		} else if (!n || !llen || line[0] < 'A' || line[0] > 'Z') {
			return -EBADMSG;
		}
	}
	if (r < 0)
		return r;
	if (need_flags)
		return -EBADMSG;

	ret->vmas = TAKE_PTR(vmas);
	ret->n = n;
	ret->storage = TAKE_PTR(storage);
	return (int)MIN(n, (size_t)INT_MAX);
}

int proc_parse_smaps(const char *buf, size_t len, struct proc_vma_list *ret)
{
	return parse_smaps_owned(pp_dup(buf, len), len, ret);
}



/* Only start-end and the name of a header line: enough to match it. */
static int parse_header_range(const char *line, size_t len, uint64_t *ret_start, uint64_t *ret_end,
			      bool *ret_vsyscall)
{
	const char *p = line, *end = line + len;
	uint64_t s, e;

	if (pp_hex_u64(&p, end, &s) < 0 || !pp_char(&p, end, '-') || pp_hex_u64(&p, end, &e) < 0 ||
	    !pp_char(&p, end, ' ') || s >= e)
		return -EBADMSG;
	*ret_start = s;
	*ret_end = e;
	*ret_vsyscall = pp_endswith(line, len, " [vsyscall]");
	return 0;
}

int proc_parse_smaps_vmflags(const char *buf, size_t len, struct proc_vma_list *l)
{
	_cleanup_free_ uint64_t *flags = l->n ? xmalloc(l->n * sizeof(*flags)) : NULL;
	_cleanup_free_ uint64_t *shared = l->n ? xcalloc(l->n, sizeof(*shared)) : NULL;
	_cleanup_free_ bool *has_shared = l->n ? xcalloc(l->n, sizeof(*has_shared)) : NULL;
	const char *p = buf, *end = buf + len, *line;
	size_t i = 0, llen;
	bool need_flags = false, skip = false;	/* skip: a header not in l */
	uint64_t kb;
	int r;

	while ((r = pp_next_line(&p, end, &line, &llen)) > 0) {
		if (is_header_line(line, llen)) {
			uint64_t s, e;
			bool vsyscall;
			if (need_flags)
				return -EBADMSG;
			if (parse_header_range(line, llen, &s, &e, &vsyscall) < 0)
				return -EBADMSG;
			need_flags = true;
			skip = false;
			if (i < l->n && l->vmas[i].start == s && l->vmas[i].end == e)
				i++;
			else if (vsyscall && (i == l->n || l->vmas[i].start > s))
				skip = true;	/* PROCMAP_QUERY does not report the gate area */
			else
				return -ESTALE;
		} else if (pp_startswith(line, llen, "VmFlags:")) {
			uint64_t f;
			if (!need_flags || proc_parse_vmflags(line + 8, llen - 8, &f) < 0)
				return -EBADMSG;
			if (!skip)
				flags[i - 1] = f;
			need_flags = false;
		} else if (need_flags && (kb = 0, r = shared_line(line, llen, &kb)) != 0) {
			if (r < 0)
				return r;
			if (!skip) {
				shared[i - 1] += kb;
				has_shared[i - 1] = true;
			}
		} else if (!llen || line[0] < 'A' || line[0] > 'Z') {
			return -EBADMSG;
		}
	}
	if (r < 0)
		return r;
	if (need_flags)
		return -EBADMSG;
	if (i != l->n)
		return -ESTALE;

	for (i = 0; i < l->n; i++) {
		l->vmas[i].vmflags = flags[i];
		l->vmas[i].has_vmflags = true;
		l->vmas[i].shared_kb = shared[i];
		l->vmas[i].has_shared = has_shared[i];
	}
	return 0;
}

int proc_read_maps_vmflags(pid_t pid, struct proc_vma_list *ret)
{
	struct proc_vma_list l = {};
	int r = proc_read_maps(pid, &l);
	if (r >= 0)
		r = proc_read_smaps_vmflags(pid, &l);
	if (r < 0) {
		proc_vma_list_done(&l);
		return r;
	}
	*ret = l;
	return 0;
}

int proc_read_smaps_vmflags(pid_t pid, struct proc_vma_list *l)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	char path[PROC_PATH_MAX];
	int r = proc_path(path, pid, 0, "smaps");
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return neg_errno();
	/* in a walk after the commit: read aside */
	r = (thread_walk_aside() ? read_full_fd_aside : read_full_fd_hint)(fd, 1024UL * 1024, PROC_MAX_BIG, &buf,
									      &len);
	if (r < 0)
		return r;
	return proc_parse_smaps_vmflags(buf, len, l);
}

/* ------------------------------------------------------------------------ */
/* PROCMAP_QUERY                                                             */

_Static_assert(sizeof(struct procmap_query) == 104, "procmap_query layout");

int proc_query_maps(pid_t pid, struct proc_vma_list *ret)
{
	char path[PROC_PATH_MAX];
	int r = proc_path(path, pid, 0, "maps");
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();

	/* d_path() fails with ENAMETOOLONG beyond PATH_MAX: this always fits */
	_cleanup_free_ char *name = xmalloc(PATH_MAX + 1);
	_cleanup_free_ struct proc_vma *vmas = NULL;
	_cleanup_free_ size_t *offs = NULL;
	_cleanup_(pp_arena_done) struct pp_arena arena = {};
	size_t n = 0, cap = 0;
	uint64_t addr = 0;

	for (;;) {
		struct procmap_query q = {
			.size = sizeof(q),
			.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
			.query_addr = addr,
			.vma_name_addr = (uint64_t)(uintptr_t)name,
			.vma_name_size = PATH_MAX,
		};
		if (ioctl(fd, PROCMAP_QUERY, &q) < 0) {
			r = -errno;
			if (r == -ENOENT)
				break;
			if (r == -ENOTTY || (r == -EINVAL && n == 0))
				r = -EOPNOTSUPP;
			return r;
		}
		if (q.vma_end <= q.vma_start || q.vma_name_size > PATH_MAX)
			return -EBADMSG;
		/*
		 * A VMA that starts below the previous end grew meanwhile: the
		 * process is not frozen (or it is ourselves, and malloc moved
		 * the heap).  The caller may retry.
		 */
		if (q.vma_start < addr)
			return -EAGAIN;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			vmas = xrealloc(vmas, cap * sizeof(*vmas));
			offs = xrealloc(offs, cap * sizeof(*offs));
		}
		struct proc_vma *v = &vmas[n];
		*v = (struct proc_vma){
			.start = q.vma_start,
			.end = q.vma_end,
			.pgoff = q.vma_offset,
			.inode = q.inode,
			.dev_major = q.dev_major,
			.dev_minor = q.dev_minor,
			.prot = (q.vma_flags & PROCMAP_QUERY_VMA_READABLE ? PROT_READ : 0) |
				(q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? PROT_WRITE : 0) |
				(q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE ? PROT_EXEC : 0),
			.shared = !!(q.vma_flags & PROCMAP_QUERY_VMA_SHARED),
		};
		/* vma_name_size counts the NUL; 0 means no name */
		size_t nlen = q.vma_name_size ? q.vma_name_size - 1 : 0;
		name[nlen] = 0;
		nlen = strnlen(name, nlen);
		if (classify_vma_name(name, nlen, v) < 0)
			return -EBADMSG;
		if (v->kind == PROC_VMA_ANON) {
			offs[n] = SIZE_MAX;
		} else {
			/* keep the whole name: path may point inside it ([anon:NAME]) */
			size_t base = pp_arena_add(&arena, name, nlen);
			offs[n] = base + (size_t)(v->path - name);
		}
		n++;
		addr = q.vma_end;
	}

	/* the arena stopped moving: turn offsets into pointers */
	for (size_t i = 0; i < n; i++)
		vmas[i].path = offs[i] == SIZE_MAX ? "" : arena.buf + offs[i];

	ret->vmas = TAKE_PTR(vmas);
	ret->n = n;
	ret->storage = TAKE_PTR(arena.buf);
	return (int)MIN(n, (size_t)INT_MAX);
}
