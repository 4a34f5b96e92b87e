// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * session_orphan.c without a PID namespace: the root is a child
 * subreaper (PR_SET_CHILD_SUBREAPER), so the orphans of the gone session
 * leader come to it, and the restore must make that session again in the
 * host's PID namespace.
 */
#define SUBREAPER 1
#include "session_orphan.c"
