// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * Shared file mappings mapped read-only, their fds closed: one of a file
 * that was open read-write (mprotect may add PROT_WRITE), one of a file
 * open read-only (mprotect must refuse PROT_WRITE with EACCES).  After
 * restore both answer mprotect as before, and a write through the first
 * reaches the file.
 */
#include "zdtm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL

int main(int argc, char **argv)
{
	const char *rw_path, *ro_path;
	char *rw, *ro, buf[8];
	int fd;

	test_init(argc, argv);
	rw_path = test_path("mem_file_mprotect.rw");
	ro_path = test_path("mem_file_mprotect.ro");
	for (int i = 0; i < 2; i++) {
		fd = open(i ? ro_path : rw_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, PG))
			fail_errno("create");
		close(fd);
	}
	fd = open(rw_path, O_RDWR);
	rw = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	fd = open(ro_path, O_RDONLY);
	ro = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (rw == MAP_FAILED || ro == MAP_FAILED)
		fail_errno("mmap");
	if (!mprotect(ro, PG, PROT_READ | PROT_WRITE) || errno != EACCES)
		fail("mprotect of the read-only file's mapping: not EACCES before the checkpoint");

	test_ready();
	test_wait_check();

	if (mprotect(rw, PG, PROT_READ | PROT_WRITE))
		fail_errno("mprotect(PROT_WRITE) of the mapping of a file open read-write");
	memcpy(rw + 100, "written", 8);
	if (msync(rw, PG, MS_SYNC))
		fail_errno("msync");
	fd = open(rw_path, O_RDONLY);
	if (fd < 0 || pread(fd, buf, 8, 100) != 8 || memcmp(buf, "written", 8))
		fail("the write through the mapping is not in the file");
	close(fd);
	if (!mprotect(ro, PG, PROT_READ | PROT_WRITE))
		fail("mprotect(PROT_WRITE) of the mapping of a file open read-only succeeded");
	if (errno != EACCES)
		fail_errno("mprotect of the read-only file's mapping");
	pass();
}
