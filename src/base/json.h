/* SPDX-License-Identifier: MIT */
#pragma once
#include <jansson.h>
/* Write obj as pretty JSON to path (atomically: temp file + rename). */
int json_write_file(json_t *obj, const char *path);
/* Whether json_write_file(path) can work: its temporary file is made and
 * removed (0, or -errno).  Commands call it before they act, so a stats path
 * they cannot write fails before anything happened. */
int json_check_writable(const char *path);
