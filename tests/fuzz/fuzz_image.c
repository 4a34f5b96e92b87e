/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the image decoder past its checksum, and the validation
 * behind it.  Built with -DDM_FUZZ_NO_CHECKSUM (tests/fuzz/build.sh): the
 * checksum is computed but not checked, so mutated files reach the protobuf
 * decoder and image_validate().  The first byte picks what the rest is:
 *   0  inventory.img: decoded, then validated as the inventory of a
 *      checkpoint with an empty file table and no process file
 *   1  proc-N.img: decoded, validated inside a one-process checkpoint
 *   2  files.img: decoded, validated with a one-pid inventory
 *   3  a whole image directory: records [u8 kind][i32 id][u32 len][len bytes]
 *      (kind 0 inventory.img, 1 files.img, 2 proc-ID.img, 3 pages-ID.img,
 *      4 pipe-ID.img) written to a scratch directory and read by
 *      image_load(), as restore and show-image read an image
 * Nothing it does may crash, leak or read out of bounds.
 *   tests/fuzz/build.sh [SECONDS]      builds and runs every target
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
	enum dm_img_kind kind;
	const ProtobufCMessageDescriptor *desc;
} kinds[] = {
	{ IMG_INVENTORY, &dm__inventory__descriptor },
	{ IMG_PROCESS, &dm__process__descriptor },
	{ IMG_FILES, &dm__file_table__descriptor },
};

static char scratch[] = "/dev/shm/dm-fuzz-image.XXXXXX";

static void one_message(unsigned k, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;
	struct dm_checkpoint ck = {};
	Dm__Inventory inv = DM__INVENTORY__INIT;
	Dm__FileTable ft = DM__FILE_TABLE__INIT;
	Dm__Process *p = NULL; /* ck.procs points here: it must live as long as ck */
	int32_t pid = 1;

	if (image_decode_msg(data, size, "fuzz.img", kinds[k].kind, kinds[k].desc, &m) < 0)
		return;
	inv.version = DM_IMG_VERSION;
	inv.root_pid = 1;
	inv.n_pids = 1;
	inv.pids = &pid;
	ck.inv = &inv;
	ck.files = &ft;
	if (kinds[k].kind == IMG_INVENTORY) {
		ck.inv = (Dm__Inventory *)m;
	} else if (kinds[k].kind == IMG_PROCESS) {
		p = (Dm__Process *)m;
		pid = p->pid;
		inv.root_pid = pid;
		ck.procs = &p;
		ck.nprocs = 1;
	} else {
		ck.files = (Dm__FileTable *)m;
	}
	if (image_validate(NULL, &ck) < 0 && getenv("DM_FUZZ_DEBUG"))
		fprintf(stderr, "refused: %s\n", dm_last_error());
	free(ck.file_by_id);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void directory(const uint8_t *data, size_t size)
{
	struct dm_image *img = NULL;
	struct dm_checkpoint *ck = NULL;
	char name[64], path[sizeof(scratch) + 80];

	rm_rf(scratch);
	if (mkdir(scratch, 0700) < 0)
		abort();
	while (size >= 9) {
		uint8_t kind = data[0];
		int32_t id;
		uint32_t len;
		memcpy(&id, data + 1, 4);
		memcpy(&len, data + 5, 4);
		data += 9;
		size -= 9;
		if (len > size)
			len = (uint32_t)size;
		switch (kind % 5) {
		case 0: snprintf(name, sizeof(name), "inventory.img"); break;
		case 1: snprintf(name, sizeof(name), "files.img"); break;
		case 2: snprintf(name, sizeof(name), IMG_PROC_FMT, id); break;
		case 3: snprintf(name, sizeof(name), IMG_PAGES_FMT, id); break;
		default: snprintf(name, sizeof(name), "pipe-%u.img", (uint32_t)id); break;
		}
		snprintf(path, sizeof(path), "%s/%s", scratch, name);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, data, len) < 0)
			abort();
		close(fd);
		data += len;
		size -= len;
	}
	int r = image_open(scratch, false, &img);
	if (r >= 0 && (r = image_load(img, &ck)) >= 0)
		checkpoint_free(ck);
	image_close(img);
	/* DM_FUZZ_DEBUG=1 ./fuzz_image INPUT: why an input was refused */
	if (r < 0 && getenv("DM_FUZZ_DEBUG"))
		fprintf(stderr, "refused: %s\n", dm_last_error());
}

static void remove_scratch(void)
{
	rm_rf(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;

	if (!init) {
		dm_log_init(-1, -1);
		if (!mkdtemp(scratch))
			abort();
		atexit(remove_scratch); /* libFuzzer ends a timed run with exit() */
		init = true;
	}
	if (size < 1)
		return 0;
	unsigned k = data[0] % 4;
	if (k < 3)
		one_message(k, data + 1, size - 1);
	else
		directory(data + 1, size - 1);
	return 0;
}
