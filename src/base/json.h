/* SPDX-License-Identifier: MIT */
#pragma once
#include <jansson.h>
/* o[key] when it is a string, else NULL (o may be NULL or not an object). */
static inline const char *json_str(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}
/* Write obj as pretty JSON to path (atomically: temp file + rename). */
int json_write_file(json_t *obj, const char *path);
/* Whether json_write_file(path) can work: its temporary file is made and
 * removed (0, or -errno).  Commands call it before they act, so a stats path
 * they cannot write fails before anything happened. */
int json_check_writable(const char *path);
