/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the image decoder and validator.  The first byte picks
 * which file kind the rest claims to be; a decoded inventory/process/file
 * table is then run through image_validate() inside a one-process checkpoint.
 * Nothing it does may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <string.h>

#include "base/log.h"
#include "image/image.h"

static const struct {
	enum dm_img_kind kind;
	const ProtobufCMessageDescriptor *desc;
} kinds[] = {
	{ IMG_INVENTORY, &dm__inventory__descriptor },
	{ IMG_PROCESS, &dm__process__descriptor },
	{ IMG_FILES, &dm__file_table__descriptor },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;

	if (size < 1)
		return 0;
	dm_log_init(-1, -1);
	unsigned k = data[0] % 3;
	if (image_decode_msg(data + 1, size - 1, "fuzz.img", kinds[k].kind, kinds[k].desc, &m) < 0)
		return 0;
	if (kinds[k].kind == IMG_PROCESS) {
		/* validate the process inside a checkpoint of its own */
		Dm__Process *p = (Dm__Process *)m;
		struct dm_checkpoint ck = {};
		Dm__Inventory inv = DM__INVENTORY__INIT;
		Dm__FileTable ft = DM__FILE_TABLE__INIT;
		int32_t pid = p->pid;
		inv.version = DM_IMG_VERSION;
		inv.root_pid = pid;
		inv.n_pids = 1;
		inv.pids = &pid;
		ck.inv = &inv;
		ck.files = &ft;
		ck.procs = &p;
		ck.nprocs = 1;
		image_validate(NULL, &ck);
		free(ck.file_by_id);
	} else if (kinds[k].kind == IMG_FILES) {
		struct dm_checkpoint ck = {};
		Dm__Inventory inv = DM__INVENTORY__INIT;
		int32_t pid = 1;
		inv.version = DM_IMG_VERSION;
		inv.root_pid = 1;
		inv.n_pids = 1;
		inv.pids = &pid;
		ck.inv = &inv;
		ck.files = (Dm__FileTable *)m;
		image_validate(NULL, &ck);
		free(ck.file_by_id);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
