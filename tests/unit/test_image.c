/* SPDX-License-Identifier: MIT */
/* Unit tests of the image codec and validator. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/user.h>

#include "base/log.h"
#include "image/image.h"

static char dir[] = "/tmp/dm-test-image-XXXXXX";

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/dm-test-image-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rm_rf(dir);
	return 0;
}

/* A small valid checkpoint: one process, one thread, two VMAs, one fd. */
static void write_valid(struct dm_image *img)
{
	Dm__Inventory inv = DM__INVENTORY__INIT;
	int32_t pids[] = { 42 };
	inv.version = DM_IMG_VERSION;
	inv.root_pid = 42;
	inv.n_pids = 1;
	inv.pids = pids;
	assert_int_equal(image_write_msg(img, IMG_INVENTORY_FILE, IMG_INVENTORY, &inv.base), 0);

	Dm__File f = DM__FILE__INIT, *fp = &f;
	f.id = 1;
	f.type = DM__FILE_TYPE__FILE_CHR;
	f.path = "/dev/null";
	Dm__FileTable ft = DM__FILE_TABLE__INIT;
	ft.n_files = 1;
	ft.files = &fp;
	assert_int_equal(image_write_msg(img, IMG_FILES_FILE, IMG_FILES, &ft.base), 0);

	struct user_regs_struct regs = {};
	Dm__Thread th = DM__THREAD__INIT, *thp = &th;
	th.tid = 42;
	th.regs.len = sizeof(regs);
	th.regs.data = (uint8_t *)&regs;
	Dm__Vma v1 = DM__VMA__INIT, v2 = DM__VMA__INIT, *vp[2] = { &v1, &v2 };
	v1.start = 0x400000; v1.end = 0x402000; v1.prot = PROT_READ | PROT_WRITE; v1.flags = MAP_PRIVATE;
	v2.start = 0x500000; v2.end = 0x501000; v2.prot = PROT_READ; v2.flags = MAP_PRIVATE;
	Dm__PagemapEntry pe = DM__PAGEMAP_ENTRY__INIT, *pep = &pe;
	pe.vaddr = 0x400000; pe.nr_pages = 2; pe.offset = 0;
	Dm__Fd fd = DM__FD__INIT, *fdp = &fd;
	fd.fd = 0; fd.file_id = 1;
	Dm__Mm mm = DM__MM__INIT;
	Dm__Creds cr = DM__CREDS__INIT;
	uint32_t groups[] = { 1000, 27 };
	cr.uid = cr.euid = cr.suid = cr.fsuid = 1000;
	cr.gid = cr.egid = cr.sgid = cr.fsgid = 1000;
	cr.n_groups = 2;
	cr.groups = groups;
	Dm__Process p = DM__PROCESS__INIT;
	p.pid = 42;
	p.creds = &cr;
	p.n_threads = 1; p.threads = &thp;
	p.n_vmas = 2; p.vmas = vp;
	p.n_pagemap = 1; p.pagemap = &pep;
	p.n_fds = 1; p.fds = &fdp;
	p.mm = &mm;
	assert_int_equal(image_write_msg(img, "proc-42.img", IMG_PROCESS, &p.base), 0);
}

static void test_roundtrip(void **state)
{
	struct dm_image *img;
	struct dm_checkpoint *ck;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	assert_int_equal(image_load(img, &ck), 0);
	assert_int_equal(ck->nprocs, 1);
	assert_int_equal(ck->procs[0]->n_vmas, 2);
	assert_non_null(checkpoint_file(ck, 1));
	assert_null(checkpoint_file(ck, 2));
	checkpoint_free(ck);
	image_close(img);
}

static void corrupt_byte(const char *name, off_t off, uint8_t x)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDWR);
	uint8_t b;
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= x;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void expect_load_error(const char *needle)
{
	struct dm_image *img;
	struct dm_checkpoint *ck = NULL;
	assert_int_equal(image_open(dir, false, &img), 0);
	int r = image_load(img, &ck);
	assert_true(r < 0);
	assert_null(ck);
	if (!strstr(dm_last_error(), needle))
		fail_msg("error '%s' does not mention '%s'", dm_last_error(), needle);
	image_close(img);
}

static void test_bad_magic(void **state)
{
	struct dm_image *img;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	image_close(img);
	corrupt_byte("proc-42.img", 0, 0xff);
	expect_load_error("proc-42.img: bad magic");
}

static void test_bad_version(void **state)
{
	struct dm_image *img;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	image_close(img);
	corrupt_byte("inventory.img", 6, 0x7);
	expect_load_error("inventory.img: unsupported image version");
}

static void test_checksum(void **state)
{
	struct dm_image *img;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	image_close(img);
	corrupt_byte("proc-42.img", 30, 0x1);
	expect_load_error("proc-42.img: checksum mismatch");
}

static void test_truncated(void **state)
{
	struct dm_image *img;
	char path[256];
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	image_close(img);
	snprintf(path, sizeof(path), "%s/files.img", dir);
	assert_int_equal(truncate(path, 30), 0);
	expect_load_error("files.img: payload_len");
	assert_int_equal(truncate(path, 10), 0);
	expect_load_error("files.img: truncated header");
}

static void test_missing_file(void **state)
{
	struct dm_image *img;
	char path[256];
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	image_close(img);
	snprintf(path, sizeof(path), "%s/proc-42.img", dir);
	unlink(path);
	expect_load_error("proc-42.img");
}

/* Validation: a process whose pagemap points outside its VMAs. */
static void test_validate_pagemap(void **state)
{
	struct dm_image *img;
	struct dm_checkpoint *ck;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	assert_int_equal(image_load(img, &ck), 0);
	ck->procs[0]->pagemap[0]->nr_pages = 3; /* runs past the first VMA */
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "outside every vma"));
	ck->procs[0]->pagemap[0]->nr_pages = 2;
	ck->procs[0]->vmas[1]->start = 0x401000; /* overlap */
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "overlaps"));
	ck->procs[0]->vmas[1]->start = 0x500000;
	ck->procs[0]->fds[0]->file_id = 9;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "unknown file id 9"));
	ck->procs[0]->fds[0]->file_id = 1;
	ck->procs[0]->threads[0]->regs.len = 8;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "regs"));
	ck->procs[0]->threads[0]->regs.len = sizeof(struct user_regs_struct);

	/* offsets in page-map order: a gap (pages that hold nothing, left out
	 * by a lazy dump) is fine, an entry over the previous one's pages not */
	Dm__Process *p0 = ck->procs[0];
	Dm__PagemapEntry **saved = p0->pagemap, e0 = DM__PAGEMAP_ENTRY__INIT, e1 = DM__PAGEMAP_ENTRY__INIT;
	Dm__PagemapEntry *two[2] = { &e0, &e1 };
	size_t saved_n = p0->n_pagemap;
	e0.vaddr = 0x400000; e0.nr_pages = 1; e0.offset = 0;
	e1.vaddr = 0x401000; e1.nr_pages = 1; e1.offset = 2 * 4096;
	p0->pagemap = two;
	p0->n_pagemap = 2;
	assert_int_equal(image_validate(img, ck), 0);
	e1.offset = 4096;
	assert_int_equal(image_validate(img, ck), 0);
	e1.offset = 0;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "inside the previous entry's pages"));
	e1.offset = UINT64_MAX - 100;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "overflows"));
	p0->pagemap = saved;
	p0->n_pagemap = saved_n;
	checkpoint_free(ck);
	image_close(img);
}

/*
 * A parent (42) and its child (43) with the same two VMAs; the parent has
 * the pages of the first, the child inherits them (Process.inherited).
 */
static void write_cow_pair(struct dm_image *img)
{
	Dm__Inventory inv = DM__INVENTORY__INIT;
	int32_t pids[] = { 42, 43 };
	inv.version = DM_IMG_VERSION;
	inv.root_pid = 42;
	inv.n_pids = 2;
	inv.pids = pids;
	assert_int_equal(image_write_msg(img, IMG_INVENTORY_FILE, IMG_INVENTORY, &inv.base), 0);
	Dm__FileTable ft = DM__FILE_TABLE__INIT;
	assert_int_equal(image_write_msg(img, IMG_FILES_FILE, IMG_FILES, &ft.base), 0);

	for (int32_t pid = 42; pid <= 43; pid++) {
		struct user_regs_struct regs = {};
		Dm__Thread th = DM__THREAD__INIT, *thp = &th;
		th.tid = pid;
		th.regs.len = sizeof(regs);
		th.regs.data = (uint8_t *)&regs;
		Dm__Vma v1 = DM__VMA__INIT, v2 = DM__VMA__INIT, *vp[2] = { &v1, &v2 };
		v1.start = 0x400000; v1.end = 0x402000; v1.prot = PROT_READ | PROT_WRITE;
		v1.flags = MAP_PRIVATE; v1.kind = DM__VMA_KIND__VMA_ANON;
		v2.start = 0x500000; v2.end = 0x501000; v2.prot = PROT_READ; v2.flags = MAP_PRIVATE;
		v2.kind = DM__VMA_KIND__VMA_ANON;
		Dm__PagemapEntry pe = DM__PAGEMAP_ENTRY__INIT, *pep = &pe;
		pe.vaddr = 0x400000; pe.nr_pages = 2; pe.offset = 0;
		uint64_t inh[] = { 0x400000, 2 };
		Dm__Mm mm = DM__MM__INIT;
		Dm__Creds cr = DM__CREDS__INIT;
		cr.uid = cr.euid = cr.suid = cr.fsuid = 1000;
		cr.gid = cr.egid = cr.sgid = cr.fsgid = 1000;
		Dm__Process p = DM__PROCESS__INIT;
		p.pid = pid;
		p.ppid = pid == 43 ? 42 : 0;
		p.creds = &cr;
		p.n_threads = 1; p.threads = &thp;
		p.n_vmas = 2; p.vmas = vp;
		if (pid == 42) {
			p.n_pagemap = 1; p.pagemap = &pep;
		} else {
			p.n_inherited = 2; p.inherited = inh;
		}
		p.mm = &mm;
		char name[32];
		snprintf(name, sizeof(name), "proc-%d.img", pid);
		assert_int_equal(image_write_msg(img, name, IMG_PROCESS, &p.base), 0);
	}
}

static void expect_bad(struct dm_image *img, struct dm_checkpoint *ck, const char *msg)
{
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	if (!strstr(dm_last_error(), msg))
		fail_msg("error \"%s\" does not say \"%s\"", dm_last_error(), msg);
}

/* Inherited pages: only where the restore's fork gives exactly the parent's bytes. */
static void test_validate_inherited(void **state)
{
	struct dm_image *img;
	struct dm_checkpoint *ck;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_cow_pair(img);
	assert_int_equal(image_load(img, &ck), 0);
	Dm__Process *pp = ck->procs[0], *ch = ck->procs[1];
	assert_int_equal(image_validate(img, ck), 0);

	ch->inherited[1] = 3; /* past the VMA */
	expect_bad(img, ck, "not in a private anonymous or private file vma");
	ch->inherited[1] = 0;
	expect_bad(img, ck, "bad run");
	ch->inherited[1] = 2;
	ch->inherited[0] = 0x400800; /* not page aligned */
	expect_bad(img, ck, "bad run");
	ch->inherited[0] = 0x400000;
	ch->n_inherited = 1;
	expect_bad(img, ck, "pairs");
	ch->n_inherited = 2;

	ch->vmas[0]->flags = MAP_SHARED;
	expect_bad(img, ck, "not in a private anonymous or private file vma");
	ch->vmas[0]->flags = MAP_PRIVATE;
	/* a private file mapping may be inherited now, but only from a parent
	 * that maps the same file the same way there (its is anonymous) */
	ch->vmas[0]->kind = DM__VMA_KIND__VMA_FILE;
	ch->vmas[0]->has_file_id = true;
	ch->vmas[0]->file_id = 1;
	Dm__File f = DM__FILE__INIT, *fp = &f;
	f.id = 1;
	f.type = DM__FILE_TYPE__FILE_REG;
	f.path = "/bin/true";
	ck->files->n_files = 1;
	ck->files->files = &fp;
	expect_bad(img, ck, "has no vma mapped the same way there");
	ck->files->n_files = 0;
	ck->files->files = NULL;
	ch->vmas[0]->kind = DM__VMA_KIND__VMA_ANON;
	ch->vmas[0]->has_file_id = false;

	/* the parent's VMA must be the child's */
	pp->vmas[0]->end = 0x403000;
	expect_bad(img, ck, "has no vma mapped the same way");
	pp->vmas[0]->end = 0x402000;
	pp->vmas[0]->flags = MAP_PRIVATE | MAP_NORESERVE;
	expect_bad(img, ck, "has no vma mapped the same way");
	pp->vmas[0]->flags = MAP_PRIVATE;
	pp->vmas[0]->has_madv = true;
	pp->vmas[0]->madv = DM_MADV_HUGEPAGE;
	expect_bad(img, ck, "has no vma mapped the same way");
	pp->vmas[0]->madv = DM_MADV_DONTFORK; /* set after the fork: the restore does the same */
	assert_int_equal(image_validate(img, ck), 0);
	pp->vmas[0]->has_madv = false;
	/* another protection: the child's VMA is mprotected (contents are the same) */
	ch->vmas[0]->prot = PROT_READ;
	ch->vmas[0]->has_accounted = ch->vmas[0]->accounted = true;
	assert_int_equal(image_validate(img, ck), 0);
	ch->vmas[0]->prot = PROT_READ | PROT_WRITE;
	ch->vmas[0]->has_accounted = ch->vmas[0]->accounted = false;

	/* the parent must have the pages itself, before it forks */
	pp->pagemap[0]->has_lazy = pp->pagemap[0]->lazy = true;
	expect_bad(img, ck, "has no page at 0x400000");
	pp->pagemap[0]->has_lazy = pp->pagemap[0]->lazy = false;
	pp->pagemap[0]->nr_pages = 1;
	expect_bad(img, ck, "has no page at 0x401000");
	pp->pagemap[0]->nr_pages = 2;

	/* a page is the child's own or inherited, not both */
	Dm__PagemapEntry own = DM__PAGEMAP_ENTRY__INIT, *ownp = &own;
	own.vaddr = 0x401000; own.nr_pages = 1; own.offset = 0;
	ch->n_pagemap = 1;
	ch->pagemap = &ownp;
	expect_bad(img, ck, "also in the page map");
	ch->inherited[1] = 1; /* own page after the inherited one: fine */
	assert_int_equal(image_validate(img, ck), 0);
	ch->inherited[1] = 2;
	ch->n_pagemap = 0;
	ch->pagemap = NULL;

	/* only a live child inherits */
	ch->state = DM__PROC_STATE__PROC_ZOMBIE;
	ch->has_exit_code = true;
	expect_bad(img, ck, "inherited by a zombie");
	ch->state = DM__PROC_STATE__PROC_ALIVE;
	ch->has_exit_code = false;
	assert_int_equal(image_validate(img, ck), 0);
	checkpoint_free(ck);
	image_close(img);
}

/* Credentials are required and may not say "leave the restorer's" (-1). */
static void test_validate_creds(void **state)
{
	struct dm_image *img;
	struct dm_checkpoint *ck;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	assert_int_equal(image_load(img, &ck), 0);
	Dm__Process *p = ck->procs[0];
	Dm__Creds *cr = p->creds;

	p->creds = NULL;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "proc-42.img: creds missing"));
	p->creds = cr;
	assert_int_equal(image_validate(img, ck), 0);

	cr->euid = UINT32_MAX;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "creds.euid is -1"));
	cr->euid = 1000;
	cr->groups[1] = UINT32_MAX;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "creds.groups[1] is -1"));
	cr->groups[1] = 27;
	cr->cap_eff = 1;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "not in the permitted set"));
	cr->cap_eff = 0;

	/* a thread's own creds are checked the same way */
	Dm__Creds tc = *cr;
	tc.fsgid = UINT32_MAX;
	p->threads[0]->creds = &tc;
	assert_int_equal(image_validate(img, ck), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "threads[0].creds.fsgid is -1"));
	p->threads[0]->creds = NULL;
	assert_int_equal(image_validate(img, ck), 0);
	checkpoint_free(ck);
	image_close(img);

	/* and on disk: an image written without them does not load */
	assert_int_equal(image_open(dir, true, &img), 0);
	write_valid(img);
	assert_int_equal(image_load(img, &ck), 0);
	cr = ck->procs[0]->creds;
	ck->procs[0]->creds = NULL;
	assert_int_equal(image_write_msg(img, "proc-42.img", IMG_PROCESS, &ck->procs[0]->base), 0);
	ck->procs[0]->creds = cr;
	checkpoint_free(ck);
	image_close(img);
	expect_load_error("creds missing");
}

static void test_raw(void **state)
{
	struct dm_image *img;
	int fd, rfd;
	uint64_t len;
	(void)state;
	assert_int_equal(image_open(dir, true, &img), 0);
	assert_int_equal(image_create_raw(img, "pages-1.img", IMG_PAGES, &fd), 0);
	char page[4096];
	memset(page, 0x5a, sizeof(page));
	assert_int_equal(pwrite_all(fd, page, sizeof(page), DM_IMG_DATA_OFF), 0);
	assert_int_equal(image_finish_raw(fd, IMG_PAGES, sizeof(page)), 0);
	close(fd);
	assert_int_equal(image_open_raw(img, "pages-1.img", IMG_PAGES, &rfd, &len), 0);
	assert_int_equal(len, 4096);
	close(rfd);
	/* wrong kind */
	assert_int_equal(image_open_raw(img, "pages-1.img", IMG_GHOST, &rfd, &len), -EBADMSG);
	/* header claims more than the file has */
	assert_int_equal(image_create_raw(img, "pages-2.img", IMG_PAGES, &fd), 0);
	assert_int_equal(image_finish_raw(fd, IMG_PAGES, 1 << 20), 0);
	close(fd);
	assert_int_equal(image_open_raw(img, "pages-2.img", IMG_PAGES, &rfd, &len), -EBADMSG);
	assert_non_null(strstr(dm_last_error(), "truncated"));
	image_close(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checksum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validate_pagemap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validate_creds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validate_inherited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
