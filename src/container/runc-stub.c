/* SPDX-License-Identifier: MIT */
/*
 * The root stub of a container restore (docs/containers.md).  runc runs it as
 * the container's init, as /proc/self/fd/3 (a memfd holding this program:
 * nothing is written into the rootfs), with the transport socket at fd 4.
 * It is static and has no libc: the rootfs may have no loader and no libc.
 *
 * It does what the cloned root stub does (src/restore/stub.c), with the
 * parameters the restorer sends: block every signal, map the injection blob,
 * move the transport socket to its fd, close everything else, say "R" and
 * wait to be seized.  It never waits forever: without its arguments, or
 * without being seized, it exits (and the container with it).
 */
#include "ext-stub.h"

#include <asm/unistd.h>

#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000
#define POLLIN 1
#define SIG_SETMASK 2

struct pollfd_ {
	int fd;
	short events, revents;
};

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static __attribute__((noreturn)) void fail(int sock, int code)
{
	char m[2] = { 'E', (char)code };

	sys(__NR_write, sock, m, 2);
	for (;;)
		sys(__NR_exit_group, 100 + code, 0, 0);
}

static int wait_in(int fd, int ms)
{
	struct pollfd_ p = { fd, POLLIN, 0 };

	return (int)sys(__NR_poll, &p, 1, ms);
}

__attribute__((used, noreturn)) void stub_main(void)
{
	static struct ext_stub_args a;
	unsigned long long all = ~0ULL;
	int sock = EXT_STUB_SOCK;

	sys6(__NR_rt_sigprocmask, SIG_SETMASK, (long)&all, 0, 8, 0, 0);
	if (wait_in(sock, EXT_STUB_ARGS_WAIT_MS) != 1 ||
	    sys6(__NR_recvfrom, sock, (long)&a, sizeof(a), 0, 0, 0) != (long)sizeof(a) ||
	    a.magic != EXT_STUB_MAGIC || a.code_len > EXT_STUB_CODE_MAX || a.code_size > a.blob_size)
		fail(sock, EXT_STUB_ERR_ARGS);
	if (sys6(__NR_mmap, (long)a.blob, (long)a.blob_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != (long)a.blob)
		fail(sock, EXT_STUB_ERR_MMAP);
	for (uint32_t i = 0; i < a.code_len; i++)
		((volatile uint8_t *)(unsigned long)a.blob)[i] = a.code[i];
	if (sys(__NR_mprotect, a.blob, a.code_size, PROT_READ | PROT_EXEC))
		fail(sock, EXT_STUB_ERR_MPROTECT);
	if ((int)a.tfd != sock && sys(__NR_dup3, sock, a.tfd, 0) != (long)a.tfd)
		fail(sock, EXT_STUB_ERR_DUP);
	sock = (int)a.tfd;
	if ((sock > 0 && sys(__NR_close_range, 0, sock - 1, 0)) ||
	    sys(__NR_close_range, sock + 1, ~0U, 0))
		fail(sock, EXT_STUB_ERR_CLOSE);
	if (sys(__NR_write, sock, "R", 1) != 1)
		fail(sock, EXT_STUB_ERR_SEND);
	/* the restorer seizes us in here; nothing is ever sent */
	wait_in(sock, EXT_STUB_SEIZE_WAIT_MS);
	fail(sock, EXT_STUB_ERR_TIMEOUT);
}

/* the kernel enters with rsp 16-byte aligned; a call site wants rsp+8 aligned */
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	and $-16, %rsp\n"
	"	call stub_main\n"
	"	hlt\n");
