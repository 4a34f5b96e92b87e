/* SPDX-License-Identifier: MIT */
/*
 * The image directory (format: docs/image-format.md).
 *
 * Every file starts with struct dm_img_hdr.  Protobuf files carry one message
 * of hdr.payload_len bytes right after the header, guarded by a CRC32.  Raw
 * files (pages, shmem, ghost, pipe) carry their payload from DM_IMG_DATA_OFF
 * (one page, so that page contents are page aligned and can be mmap()ed).
 *
 * Readers trust nothing: every length, offset and cross reference is checked
 * by image_load()/image_validate() and a failure names the file and field.
 */
#pragma once

#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "base/util.h"
#include "image.pb-c.h"

#define DM_IMG_MAGIC 0x474d4944u /* "DIMG" little endian */
#define DM_IMG_VERSION 1u
#define DM_IMG_DATA_OFF 4096u
#define DM_IMG_MAX_MSG (64u << 20) /* largest protobuf message we accept */

enum dm_img_kind {
	IMG_INVENTORY = 1,
	IMG_PROCESS = 2,
	IMG_PAGES = 3,
	IMG_FILES = 4,
	IMG_SHMEM = 5,
	IMG_GHOST = 6,
	IMG_PIPE = 7,
	IMG_SHMEM_INDEX = 8,
	IMG_KIND_MAX,
};

struct dm_img_hdr {
	uint32_t magic;       /* DM_IMG_MAGIC */
	uint16_t kind;        /* enum dm_img_kind */
	uint16_t version;     /* DM_IMG_VERSION */
	uint64_t payload_len; /* message bytes, or raw bytes from DM_IMG_DATA_OFF */
	uint32_t crc;         /* CRC32 of the message (protobuf files), 0 for raw */
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct dm_img_hdr) == 24, "image header is 24 bytes on disk");

/* DM_MADV_* bits of Vma.madv (from smaps VmFlags) */
#define DM_MADV_DONTFORK (1u << 0)   /* dc */
#define DM_MADV_WIPEONFORK (1u << 1) /* wf */
#define DM_MADV_DONTDUMP (1u << 2)   /* dd */
#define DM_MADV_HUGEPAGE (1u << 3)   /* hg */
#define DM_MADV_NOHUGEPAGE (1u << 4) /* nh */
#define DM_MADV_MERGEABLE (1u << 5)  /* mg */
#define DM_MADV_LOCKED (1u << 6)     /* lo */
#define DM_MADV_SEQ (1u << 7)        /* sr */
#define DM_MADV_RAND (1u << 8)       /* rr */
#define DM_MADV_LOCKONFAULT (1u << 9) /* lf: with LOCKED, mlock2(MLOCK_ONFAULT) */

/* bits of Process.membarrier: the private registrations the dump saw */
#define DM_MEMBARRIER_PRIVATE_EXPEDITED (1u << 0)
#define DM_MEMBARRIER_PRIVATE_EXPEDITED_SYNC_CORE (1u << 1)
#define DM_MEMBARRIER_PRIVATE_EXPEDITED_RSEQ (1u << 2)

struct dm_image {
	int dirfd;
	char *path;
};

/* Open (or create, mode 0700) an image directory. */
int image_open(const char *path, bool create, struct dm_image **ret_img);
void image_close(struct dm_image *img);
static inline void image_closep(struct dm_image **p) { image_close(*p); }
#define _cleanup_image_ _cleanup_(image_closep)

const char *image_kind_name(enum dm_img_kind kind);

/* Protobuf files: header + one message. */
int image_write_msg(struct dm_image *img, const char *name, enum dm_img_kind kind,
		    const ProtobufCMessage *msg);
int image_read_msg(struct dm_image *img, const char *name, enum dm_img_kind kind,
		   const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_msg);
/* Same, from a buffer (the fuzz target and the network path use it). */
int image_decode_msg(const void *buf, size_t len, const char *name, enum dm_img_kind kind,
		     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_msg);

/* Raw files: create writes the header (payload_len is patched by image_finish_raw). */
int image_create_raw(struct dm_image *img, const char *name, enum dm_img_kind kind, int *ret_fd);
int image_finish_raw(int fd, enum dm_img_kind kind, uint64_t payload_len);
/* A raw file reserved ahead (fallocate of the header + payload_len), not in
 * the directory yet: the dump reserves page files before the freeze, so that
 * the frozen copy does not wait for the file system to allocate. */
int image_prealloc_raw(struct dm_image *img, uint64_t payload_len, int *ret_fd);
/* Give it its header and its name (replacing a file of that name). */
int image_link_raw(struct dm_image *img, int fd, const char *name, enum dm_img_kind kind);
int image_open_raw(struct dm_image *img, const char *name, enum dm_img_kind kind, int *ret_fd,
		   uint64_t *ret_payload_len);

/* The whole checkpoint, as loaded and validated for restore. */
struct dm_checkpoint {
	Dm__Inventory *inv;
	Dm__Process **procs; /* in inventory order: parents before children */
	size_t nprocs;
	Dm__FileTable *files;
	Dm__File **file_by_id; /* index: id -> File (NULL if unused) */
	uint32_t max_file_id;
};

int image_load(struct dm_image *img, struct dm_checkpoint **ret_ck);
/* The same with the inventory read already (taken: freed with the
 * checkpoint, or on failure); inv NULL: image_load(). */
int image_load_with(struct dm_image *img, Dm__Inventory *inv, struct dm_checkpoint **ret_ck);
void checkpoint_free(struct dm_checkpoint *ck);
/* Structural checks of a loaded checkpoint; returns -EBADMSG with dm_error() set. */
int image_validate(struct dm_image *img, struct dm_checkpoint *ck);
const Dm__Process *checkpoint_find_proc(const struct dm_checkpoint *ck, int pid);
const Dm__File *checkpoint_file(const struct dm_checkpoint *ck, uint32_t id);
/* The VMA holding address a (VMAs are sorted, validated), or NULL. */
const Dm__Vma *checkpoint_vma_at(const Dm__Process *p, uint64_t a);

/* show-image: human text or JSON to out. */
int image_show(struct dm_image *img, bool json, FILE *out);

/* Names of the per-process files. */
#define IMG_PROC_FMT "proc-%d.img"
#define IMG_PAGES_FMT "pages-%d.img"
#define IMG_SHMEM_FMT "shmem-%" PRIu64 ".img"
#define IMG_GHOST_FMT "ghost-%" PRIu64 ".img"
#define IMG_PIPE_FMT "pipe-%" PRIu64 ".img"
#define IMG_INVENTORY_FILE "inventory.img"
#define IMG_FILES_FILE "files.img"
