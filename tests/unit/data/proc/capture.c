/* SPDX-License-Identifier: MIT */
/*
 * Makes the /proc samples of this directory: sets up the tricky cases in its
 * own process (file names with spaces and newlines, deleted files, memfd,
 * SysV shm, shared anon, named anon, timers, every anon-inode fd type, a
 * mount point with blanks) and copies the /proc files as they are.
 *
 *   cc -O2 -o /tmp/capture tests/unit/data/proc/capture.c
 *   sudo /tmp/capture tests/unit/data/proc && tests/unit/data/proc/gen-samples.sh
 *
 * Run as root (it mounts a tmpfs in a private mount namespace).  Not built by
 * meson: the unit tests use the committed samples (samples.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

static const char *outdir;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void copy(const char *src, const char *dst)
{
	char path[4096], buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		die(src);
	snprintf(path, sizeof(path), "%s/%s", outdir, dst);
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		die(path);
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			die("write");
	close(in);
	close(out);
}

static void copy_fdinfo(int fd, const char *dst)
{
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/fdinfo/%d", fd);
	copy(src, dst);
}

static void *map_file(const char *path, int flags, bool unlink_it)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die(path);
	if (ftruncate(fd, 8192) < 0)
		die("ftruncate");
	void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	close(fd);
	if (unlink_it)
		unlink(path);
	return p;
}

int main(int argc, char **argv)
{
	outdir = argc > 1 ? argv[1] : ".";

	/* mappings */
	mkdir("/tmp/dm proc", 0700);
	map_file("/tmp/dm proc/with space", MAP_SHARED, false);
	map_file("/tmp/dm proc/new\nline", MAP_PRIVATE, false);
	map_file("/tmp/dm proc/back\\012slash", MAP_PRIVATE, false);
	map_file("/tmp/dm proc/gone", MAP_SHARED, true);
	map_file("/tmp/dm proc/fake (deleted)", MAP_PRIVATE, false);
	int mfd = memfd_create("dm memfd", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, 4096) < 0 ||
	    mmap(NULL, 4096, PROT_READ, MAP_SHARED, mfd, 0) == MAP_FAILED)
		die("memfd");
	if (mmap(NULL, 16384, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
		die("shared anon");
	int shm = shmget(0x2a, 4096, IPC_CREAT | 0600);
	if (shm < 0 || shmat(shm, NULL, SHM_RDONLY) == (void *)-1)
		die("shm");
	shmctl(shm, IPC_RMID, NULL);
	void *named = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (named == MAP_FAILED)
		die("mmap");
	/* EINVAL without CONFIG_ANON_VMA_NAME: the tests then use a made-up line */
	if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, named, 8192, "dm name") < 0)
		perror("PR_SET_VMA_ANON_NAME (ignored)");
	void *locked = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
	if (locked == MAP_FAILED)
		die("locked");
	madvise(named, 8192, MADV_DONTFORK);

	/* fds */
	int efd = eventfd(5, EFD_CLOEXEC | EFD_SEMAPHORE);
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 0x1122334455667788ULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	ev.events = EPOLLOUT;
	ev.data.fd = pfd[1];
	epoll_ctl(ep, EPOLL_CTL_ADD, pfd[1], &ev);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGRTMIN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	struct itimerspec its = { .it_interval = { 1, 500 }, .it_value = { 100, 0 } };
	timerfd_settime(tfd, 0, &its, NULL);
	int ifd = inotify_init1(IN_CLOEXEC);
	inotify_add_watch(ifd, "/tmp", IN_CREATE | IN_DELETE);
	inotify_add_watch(ifd, "/tmp/dm proc", IN_MODIFY);
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int reg = open("/tmp/dm proc/with space", O_RDWR | O_APPEND | O_CLOEXEC);
	lseek(reg, 1234, SEEK_SET);
	(void)sock;

	/* timers */
	timer_t t;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
	sev.sigev_value.sival_ptr = (void *)0xdeadbeefUL;
	timer_create(CLOCK_MONOTONIC, &sev, &t);
	sev.sigev_notify = SIGEV_SIGNAL | SIGEV_THREAD_ID;
	sev._sigev_un._tid = gettid();
	sev.sigev_signo = SIGUSR2;
	timer_create(CLOCK_REALTIME, &sev, &t);
	sev.sigev_notify = SIGEV_NONE;
	timer_create(CLOCK_BOOTTIME, &sev, &t);

	/* a mount point with blanks and a backslash, in a private mount ns */
	if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0) {
		mkdir("/tmp/dm proc/mnt a\tb\\c", 0700);
		mount("src with space", "/tmp/dm proc/mnt a\tb\\c", "tmpfs", MS_NOSUID, "size=64k");
		mkdir("/tmp/dm proc/shared", 0700);
		mount("shr", "/tmp/dm proc/shared", "tmpfs", 0, "size=64k");
		mount(NULL, "/tmp/dm proc/shared", NULL, MS_SHARED, NULL);
		mkdir("/tmp/dm proc/slave", 0700);
		mount("/tmp/dm proc/shared", "/tmp/dm proc/slave", NULL, MS_BIND, NULL);
		mount(NULL, "/tmp/dm proc/slave", NULL, MS_SLAVE, NULL);
	}

	/* a comm that fights the parsers */
	prctl(PR_SET_NAME, "a) (b\nc\\ d");
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGUSR2, SIG_IGN);

	copy("/proc/self/maps", "maps");
	copy("/proc/self/smaps", "smaps");
	copy("/proc/self/status", "status");
	copy("/proc/self/stat", "stat");
	copy("/proc/self/timers", "timers");
	copy("/proc/self/mountinfo", "mountinfo");
	copy("/proc/self/personality", "personality");
	copy("/proc/self/comm", "comm");
	copy("/proc/self/cmdline", "cmdline");
	copy("/proc/self/auxv", "auxv");
	copy("/proc/self/cgroup", "cgroup");
	copy("/proc/stat", "sys_stat");
	copy("/proc/meminfo", "meminfo");
	copy_fdinfo(efd, "fdinfo_eventfd");
	copy_fdinfo(ep, "fdinfo_epoll");
	copy_fdinfo(sfd, "fdinfo_signalfd");
	copy_fdinfo(tfd, "fdinfo_timerfd");
	copy_fdinfo(ifd, "fdinfo_inotify");
	copy_fdinfo(pidfd, "fdinfo_pidfd");
	copy_fdinfo(reg, "fdinfo_file");
	copy_fdinfo(pfd[0], "fdinfo_pipe");

	umount2("/tmp/dm proc/slave", MNT_DETACH);
	umount2("/tmp/dm proc/shared", MNT_DETACH);
	umount2("/tmp/dm proc/mnt a\tb\\c", MNT_DETACH);
	rmdir("/tmp/dm proc/slave");
	rmdir("/tmp/dm proc/shared");
	rmdir("/tmp/dm proc/mnt a\tb\\c");
	unlink("/tmp/dm proc/with space");
	unlink("/tmp/dm proc/new\nline");
	unlink("/tmp/dm proc/back\\012slash");
	unlink("/tmp/dm proc/fake (deleted)");
	rmdir("/tmp/dm proc");
	return 0;
}
