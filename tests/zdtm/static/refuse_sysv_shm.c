// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=SysV shared memory segment id [0-9]+ attached at 0x[0-9a-f]+: a segment is restored only with the IPC namespace a container's runtime made
/*
 * An attached SysV shm segment of a plain process tree: its IPC namespace is
 * the host's, which the restore does not make (a container's is: runc:ID,
 * tests/containers), so the checkpoint refuses the attachment, named, and
 * the test runs on with its segment.  Removed (IPC_RMID) at once: it goes
 * with the test, whatever happens.
 */
#include "zdtm.h"

#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv)
{
	int id;
	char *m;

	test_init(argc, argv);
	id = shmget(IPC_PRIVATE, 8192, 0600);
	if (id < 0)
		fail_errno("shmget");
	m = shmat(id, NULL, 0);
	if (m == (void *)-1)
		fail_errno("shmat");
	if (shmctl(id, IPC_RMID, NULL))
		fail_errno("IPC_RMID");
	strcpy(m + 4096, "kept");

	test_ready();
	test_wait_check();

	if (strcmp(m + 4096, "kept"))
		fail("the segment's contents changed");
	pass();
}
