// SPDX-License-Identifier: MIT
// zdtm: flags=expect=dump-fail,dump-err=a hugetlb memfd .* is not supported
/*
 * A memfd of huge pages (MFD_HUGETLB): its pages come from the huge page
 * pool, which the restore does not rebuild.  The checkpoint refuses it,
 * named, and the memfd stays usable (its size as it was).
 */
#include "zdtm.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct stat st;
	int fd;

	test_init(argc, argv);
	fd = memfd_create("refuse_hugetlb", MFD_HUGETLB | MFD_CLOEXEC);
	if (fd < 0)
		fail_errno("memfd_create(MFD_HUGETLB)");
	if (ftruncate(fd, 2 << 20))
		fail_errno("ftruncate");

	test_ready();
	test_wait_check();

	if (fstat(fd, &st) || st.st_size != (2 << 20))
		fail("the memfd changed after the refusal");
	pass();
}
