/* SPDX-License-Identifier: MIT */
/*
 * e2e workload for --rootfs-dir (built static: it runs chrooted into a tree
 * that holds nothing else).  Every file's bytes follow from its path
 * (mkrootfs.py): byte i of PATH is (fnv1a(PATH) + i) & 0xff.
 *
 *   rootfs_work      opens /ws/big.dat (kept open) and maps /ws/lib.bin,
 *                    checks both, says "ready HOST"; then, every 20 ms, looks
 *                    at the host name.  Once it changed (it was migrated):
 *                    reads the working set again through its fd and its
 *                    mapping, says "first-read HOST ok|BAD gap_ms=MS" (from
 *                    its last tick before the move), walks /data
 *                    checking every regular file ("walk HOST files=N ok" or
 *                    "walk HOST BAD PATH"), writes /out/written.txt and
 *                    says "wrote HOST", then sleeps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static int check_bytes(const char *path, const uint8_t *b, size_t n, size_t off)
{
	uint8_t seed = (uint8_t)fnv1a(path);
	for (size_t i = 0; i < n; i++)
		if (b[i] != (uint8_t)(seed + off + i))
			return -1;
	return 0;
}

static int check_fd(const char *path, int fd)
{
	static uint8_t buf[1 << 16];
	size_t off = 0;
	ssize_t k;
	while ((k = pread(fd, buf, sizeof(buf), (off_t)off)) > 0) {
		if (check_bytes(path, buf, (size_t)k, off) < 0)
			return -1;
		off += (size_t)k;
	}
	return k < 0 ? -1 : 0;
}

static long walk(const char *dir, char *bad, size_t badlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	long n = 0;
	if (!d) {
		snprintf(bad, badlen, "%s (opendir)", dir);
		return -1;
	}
	while ((de = readdir(d))) {
		char p[4096];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) < 0) {
			snprintf(bad, badlen, "%s (lstat)", p);
			n = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			long k = walk(p, bad, badlen);
			if (k < 0) {
				n = -1;
				break;
			}
			n += k;
		} else if (S_ISREG(st.st_mode) && strncmp(de->d_name, "sparse", 6) && strncmp(de->d_name, "link", 4)) {
			int fd = open(p, O_RDONLY);
			if (fd < 0 || check_fd(p, fd) < 0) {
				snprintf(bad, badlen, "%s", p);
				if (fd >= 0)
					close(fd);
				n = -1;
				break;
			}
			close(fd);
			n++;
		}
	}
	closedir(d);
	return n;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void host(char *buf, size_t len)
{
	struct utsname u;
	uname(&u);
	snprintf(buf, len, "%s", u.nodename);
}

int main(void)
{
	char h0[65], h[65], bad[4200] = "";
	setvbuf(stdout, NULL, _IOLBF, 0);
	int big = open("/ws/big.dat", O_RDONLY);
	int lf = open("/ws/lib.bin", O_RDONLY);
	struct stat st;
	if (big < 0 || lf < 0 || fstat(lf, &st) < 0) {
		printf("setup BAD\n");
		return 1;
	}
	uint8_t *lib = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, lf, 0);
	close(lf);
	if (lib == MAP_FAILED || check_fd("/ws/big.dat", big) < 0 ||
	    check_bytes("/ws/lib.bin", lib, (size_t)st.st_size, 0) < 0) {
		printf("setup BAD\n");
		return 1;
	}
	host(h0, sizeof(h0));
	printf("ready %s\n", h0);
	uint64_t tick = 0;
	for (;;) {
		tick = now_ns(); /* the last moment seen running before the move */
		usleep(20000);
		host(h, sizeof(h));
		if (strcmp(h, h0))
			break;
	}
	int ok = check_fd("/ws/big.dat", big) == 0 && check_bytes("/ws/lib.bin", lib, (size_t)st.st_size, 0) == 0;
	/* gap_ms: from the last tick before the freeze to the working set read
	 * back in its new host (the pause the service saw, file reads included) */
	printf("first-read %s %s gap_ms=%.1f\n", h, ok ? "ok" : "BAD", (double)(now_ns() - tick) / 1e6);
	long n = walk("/data", bad, sizeof(bad));
	if (n < 0)
		printf("walk %s BAD %s\n", h, bad);
	else
		printf("walk %s files=%ld ok\n", h, n);
	int fd = open("/out/written.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "written on ", 11) != 11 || write(fd, h, strlen(h)) != (ssize_t)strlen(h) || close(fd) < 0)
		printf("wrote %s BAD %s\n", h, strerror(errno));
	else
		printf("wrote %s\n", h);
	for (;;)
		pause();
}
