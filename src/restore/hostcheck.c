/* SPDX-License-Identifier: MIT */
/*
 * What this host offers a tree it is asked to restore, checked before
 * anything is made (and, for a migration, before the source freezes):
 *
 *   CPU      the xsave components the kernel enables here (XCR0) must cover
 *            the ones the tree may use: the source host's XCR0 (a process
 *            picks its code paths, AVX-512 memcpy and the like, from what the
 *            CPU offered when it started) and the components in use in its
 *            dumped registers (XSTATE_BV).  Restoring AVX-512 state on a CPU
 *            without it ends in SIGILL.
 *   kernel   userfaultfd with the features the restore asks for, clone3.
 *   room     memory for the tree (MemAvailable), disk for the images.
 *
 * Each refusal names what is missing, in the user's terms.
 */
#define LOG_PREFIX "restore: "
#include "restore/restore.h"
#include "base/log.h"
#include "image/image.h"
#include "proc/proc.h"

#include <cpuid.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"

uint64_t host_xcr0(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return 0;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static const char *const xfeature_name[] = {
	[0] = "x87",
	[1] = "SSE",
	[2] = "AVX",
	[3] = "MPX bounds registers",
	[4] = "MPX CSR",
	[5] = "AVX-512 opmask",
	[6] = "AVX-512 ZMM_Hi256",
	[7] = "AVX-512 Hi16_ZMM",
	[8] = "Processor Trace",
	[9] = "protection keys (PKRU)",
	[10] = "PASID",
	[11] = "CET user",
	[12] = "CET supervisor",
	[13] = "HDC",
	[14] = "user interrupts",
	[15] = "LBR",
	[16] = "HWP",
	[17] = "AMX TILECFG",
	[18] = "AMX TILEDATA",
	[19] = "APX",
};

const char *xfeature_names(uint64_t mask, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < 64 && off < len; i++) {
		if (!(mask >> i & 1))
			continue;
		int n;
		if (i < sizeof(xfeature_name) / sizeof(xfeature_name[0]) && xfeature_name[i])
			n = snprintf(buf + off, len - off, "%s%s (bit %u)", off ? ", " : "", xfeature_name[i], i);
		else
			n = snprintf(buf + off, len - off, "%sxfeature bit %u", off ? ", " : "", i);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	return buf;
}

/*
 * cpuid flags of instruction sets that user code picks at start-up (glibc's
 * ifuncs, JITs): a tree that started where they exist may use them.  Three
 * words: leaf 1 ECX, leaf 7.0 EBX, leaf 7.0 ECX; only the bits below count.
 * Names as /proc/cpuinfo spells them.
 */
static const struct { uint8_t word, bit; const char *name; } cpu_flag[] = {
	{ 0, 0, "pni (sse3)" }, { 0, 1, "pclmulqdq" }, { 0, 9, "ssse3" }, { 0, 12, "fma" },
	{ 0, 13, "cx16" }, { 0, 19, "sse4_1" }, { 0, 20, "sse4_2" }, { 0, 22, "movbe" },
	{ 0, 23, "popcnt" }, { 0, 25, "aes" }, { 0, 28, "avx" }, { 0, 29, "f16c" }, { 0, 30, "rdrand" },
	{ 1, 3, "bmi1" }, { 1, 5, "avx2" }, { 1, 8, "bmi2" }, { 1, 16, "avx512f" }, { 1, 17, "avx512dq" },
	{ 1, 18, "rdseed" }, { 1, 19, "adx" }, { 1, 21, "avx512ifma" }, { 1, 28, "avx512cd" },
	{ 1, 29, "sha_ni" }, { 1, 30, "avx512bw" }, { 1, 31, "avx512vl" },
	{ 2, 1, "avx512vbmi" }, { 2, 6, "avx512_vbmi2" }, { 2, 8, "gfni" }, { 2, 9, "vaes" },
	{ 2, 10, "vpclmulqdq" }, { 2, 11, "avx512_vnni" }, { 2, 12, "avx512_bitalg" },
	{ 2, 14, "avx512_vpopcntdq" },
};

void host_cpu_flags(uint32_t w[HOST_CPU_WORDS])
{
	unsigned a, b, c, d;
	uint32_t raw[HOST_CPU_WORDS] = { 0 };

	if (__get_cpuid(1, &a, &b, &c, &d))
		raw[0] = c;
	if (__get_cpuid_max(0, NULL) >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		raw[1] = b;
		raw[2] = c;
	}
	for (size_t k = 0; k < HOST_CPU_WORDS; k++)
		w[k] = 0;
	for (size_t i = 0; i < sizeof(cpu_flag) / sizeof(cpu_flag[0]); i++)
		w[cpu_flag[i].word] |= raw[cpu_flag[i].word] & (1u << cpu_flag[i].bit);
}

static int host_check_cpu_flags(const uint32_t need[HOST_CPU_WORDS], const char *whose)
{
	uint32_t have[HOST_CPU_WORDS];
	char names[512];
	size_t off = 0;

	host_cpu_flags(have);
	names[0] = 0;
	for (size_t i = 0; i < sizeof(cpu_flag) / sizeof(cpu_flag[0]); i++) {
		uint32_t m = 1u << cpu_flag[i].bit;
		if ((need[cpu_flag[i].word] & m) && !(have[cpu_flag[i].word] & m) && off < sizeof(names)) {
			int n = snprintf(names + off, sizeof(names) - off, "%s%s", off ? ", " : "", cpu_flag[i].name);
			if (n > 0)
				off += (size_t)n;
		}
	}
	if (!off)
		return 0;
	return dm_fail(-EOPNOTSUPP, "this CPU lacks instruction sets %s may use: %s; restored there it "
				    "would die of SIGILL", whose, names);
}

static int host_check_xfeatures(uint64_t need, const char *whose)
{
	uint64_t have = host_xcr0(), missing = need & ~have;
	char names[512];

	if (!missing)
		return 0;
	return dm_fail(-EOPNOTSUPP,
		       "this CPU lacks xsave features %s uses: %s (XCR0 here %#" PRIx64 ", needed %#" PRIx64
		       "); restored there it would die of SIGILL",
		       whose, xfeature_names(missing, names, sizeof(names)), have, need);
}

/* XSTATE_BV of the dumped registers: the xsave header follows the 512-byte legacy area */
uint64_t image_xfeatures_used(const struct dm_checkpoint *ck)
{
	uint64_t used = 0;

	for (size_t i = 0; i < ck->nprocs; i++)
		for (size_t k = 0; k < ck->procs[i]->n_threads; k++) {
			const Dm__Thread *t = ck->procs[i]->threads[k];
			uint64_t bv;
			if (!t->has_xstate || t->xstate.len < 520)
				continue;
			memcpy(&bv, t->xstate.data + 512, sizeof(bv));
			used |= bv;
		}
	return used;
}

static int host_check_kernel(uint64_t uffd_features)
{
	/* clone3 (with set_tid): a NULL argument is EINVAL where it exists */
	if (syscall(SYS_clone3, NULL, 0) >= 0 || errno == ENOSYS)
		return dm_fail(-EOPNOTSUPP, "this kernel has no clone3(): a tree cannot get its pids back "
					    "(Linux 5.5 or later is needed)");
	if (!uffd_features)
		return 0;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return dm_fail(neg_errno(), "this kernel offers no userfaultfd (%m): post-copy memory "
					    "cannot be restored here");
	struct uffdio_api api = { .api = UFFD_API };
	int r = ioctl(fd, UFFDIO_API, &api) < 0 ? neg_errno() : 0;
	close(fd);
	if (r < 0)
		return dm_fail(r, "userfaultfd: UFFDIO_API: %s", strerror(-r));
	uint64_t missing = uffd_features & ~(uint64_t)api.features;
	if (missing)
		return dm_fail(-EOPNOTSUPP, "this kernel's userfaultfd lacks features %#" PRIx64
					    " (it has %#" PRIx64 ", the restore needs %#" PRIx64 ")",
			       missing, (uint64_t)api.features, uffd_features);
	return 0;
}

int host_check_memory(uint64_t need, const char *what)
{
	struct proc_meminfo mi;

	if (!need || proc_read_meminfo(&mi) < 0) {
		dm_error_clear();
		return 0;
	}
	if (need > mi.mem_available)
		return dm_fail(-ENOMEM, "not enough memory here for %s: %" PRIu64 " MiB needed, %" PRIu64
					" MiB available",
			       what, need >> 20, mi.mem_available >> 20);
	return 0;
}

int host_check_disk(const char *dir, uint64_t need)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) < 0)
		return dm_fail(neg_errno(), "%s: %m", dir);
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (need > avail)
		return dm_fail(-ENOSPC, "not enough disk space in %s: %" PRIu64 " MiB needed, %" PRIu64
					" MiB free",
			       dir, need >> 20, avail >> 20);
	return 0;
}

int host_check_tree(uint64_t xfeatures, const uint32_t cpu[HOST_CPU_WORDS], uint64_t uffd_features,
		    const char *whose)
{
	int r = host_check_xfeatures(xfeatures, whose);
	if (r >= 0)
		r = host_check_cpu_flags(cpu, whose);
	if (r >= 0)
		r = host_check_kernel(uffd_features);
	return r;
}

int restore_check_host(const struct dm_checkpoint *ck, uint64_t uffd_features, bool lazy)
{
	const Dm__Inventory *inv = ck->inv;
	uint64_t need = image_xfeatures_used(ck) | (inv->has_xcr0 ? inv->xcr0 : 0);
	uint32_t flags[HOST_CPU_WORDS] = { inv->has_cpuid_1_ecx ? inv->cpuid_1_ecx : 0,
					   inv->has_cpuid_7_ebx ? inv->cpuid_7_ebx : 0,
					   inv->has_cpuid_7_ecx ? inv->cpuid_7_ecx : 0 };
	int r = host_check_tree(need, flags, uffd_features, "the tree");
	if (r < 0)
		return r;
	/* every page of the image lands here (a lazy one later, but all the same) */
	if (inv->has_total_pages && !lazy)
		return host_check_memory(inv->total_pages * DM_PAGE_SIZE, "the tree's memory");
	return 0;
}
