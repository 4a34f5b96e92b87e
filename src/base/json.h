/* SPDX-License-Identifier: MIT */
#pragma once
#include <jansson.h>
/* Write obj as pretty JSON to path (atomically: temp file + rename). */
int json_write_file(json_t *obj, const char *path);
