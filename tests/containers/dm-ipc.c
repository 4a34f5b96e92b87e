/* SPDX-License-Identifier: MIT */
/*
 * A runc container's init holding the contents of its IPC namespace
 * (tests/containers/runc-cr.sh "ipc", run.sh "runc/migrate-ipc-*"; static, so
 * that it runs in the busybox rootfs):
 *
 *   - SysV shared memory: segment A (a key, 3 pages and a bit, a hole in its
 *     second page) attached twice, read-write and read-only; segment B
 *     (IPC_PRIVATE) not attached, given to uid 1000:1001; a segment removed
 *     (IPC_RMID) while attached, which lives until its last detach;
 *   - a SysV semaphore set of 4 with values 0, 1, 7, 32767;
 *   - a SysV message queue: 4 messages of types 5, 1, 5, 2 (one of 3000 bytes,
 *     one empty), its limit lowered to 12000 bytes;
 *   - POSIX message queues /dmq1 (4 messages, priorities 1, 9, 1, 5; a
 *     descriptor of it kept open, O_NONBLOCK) and /dmq2 (empty, mode 0600);
 *   - ids that are not the first ones a namespace gives (objects made and
 *     removed first);
 *   - a unix datagram socket bound in runc's /dev tmpfs (/dev/dm-ipc.sock).
 *   - a POSIX shared memory object, a file of the /dev/shm tmpfs
 *     (/dev/shm/dm-ipc.shm, 2 pages of a pattern): mapped shared and its
 *     descriptor kept open (the restore maps and opens it: its tmpfs files
 *     must be back before the tree's address spaces are made).
 *
 * Then it obeys DIR/dm-ipc.cmd (polled; each new word is done once and
 * acknowledged in DIR/dm-ipc.ack as "WORD ok" or "WORD FAIL: why"):
 *   check    every value above, as it was made (consumes the messages; those
 *            of /dmq1 through its kept descriptor); a
 *            datagram sent to /dev/dm-ipc.sock arrives on the socket
 *   part     segment A attached once more, its last page unmapped: refused
 *   notify   an mq_notify registration on /dmq2 (its descriptor open: closing
 *            it would end the registration): refused for the registration
 *   unlinked a descriptor of a queue whose name was unlinked (/dmq3): refused
 *   clean    undoes part, notify and unlinked
 * DIR is argv[1] (default /tmp).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_A 0x444d0001
#define KEY_S 0x444d0002
#define KEY_Q 0x444d0003
#define PAGE 4096
#define SIZE_A (3 * PAGE + 123)

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static const char *dir = "/tmp";
static int id_a, id_b, id_s, id_q, id_dest = -1;
static unsigned char *a_rw, *a_ro;
static void *dest_at;
static unsigned char *part_at;
static mqd_t held = (mqd_t)-1, held1 = (mqd_t)-1;
static char why[512];
static int sock = -1;
static const struct sockaddr_un sock_addr = { AF_UNIX, "/dev/dm-ipc.sock" };
#define SHM_FILE "/dev/shm/dm-ipc.shm"
static int shm_fd = -1;
static unsigned char *shm_map;
static unsigned char pat(size_t i) { return (unsigned char)(i * 7 + 3); }

static const struct { long type; const char *text; size_t len; } msgs[] = {
	{ 5, "first", 5 }, { 1, "second", 6 }, { 5, NULL, 3000 }, { 2, "", 0 },
};
static const struct { const char *text; unsigned prio; } mqm[] = {
	{ "low1", 1 }, { "high", 9 }, { "low2", 1 }, { "mid", 5 },
};
/* the order mq_receive gives them: priority first, FIFO within one */
static const int mq_order[] = { 1, 3, 0, 2 };
static const unsigned short semv[] = { 0, 1, 7, 32767 };

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + 3); }
static char big(size_t i) { return (char)('a' + i % 26); }

static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return -1;
}

static void die(const char *what)
{
	fprintf(stderr, "dm-ipc: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void setup(void)
{
	struct shmid_ds sd;
	struct msqid_ds qd;
	struct semid_ds semd;

	umask(0);
	/* ids past the first ones: a restore that does not set them shows */
	for (int k = 0; k < 3; k++) {
		int t = shmget(IPC_PRIVATE, PAGE, 0600), u = semget(IPC_PRIVATE, 1, 0600),
		    v = msgget(IPC_PRIVATE, 0600);
		if (t < 0 || u < 0 || v < 0)
			die("ipc get");
		shmctl(t, IPC_RMID, NULL);
		semctl(u, 0, IPC_RMID);
		msgctl(v, IPC_RMID, NULL);
	}
	id_a = shmget(KEY_A, SIZE_A, IPC_CREAT | IPC_EXCL | 0640);
	id_b = shmget(IPC_PRIVATE, 2 * PAGE, 0600);
	if (id_a < 0 || id_b < 0)
		die("shmget");
	a_rw = shmat(id_a, NULL, 0);
	a_ro = shmat(id_a, NULL, SHM_RDONLY);
	if (a_rw == (void *)-1 || a_ro == (void *)-1)
		die("shmat");
	for (size_t i = 0; i < PAGE; i++)
		a_rw[i] = pattern(i);
	/* page 1 stays a hole */
	for (size_t i = 2 * PAGE; i < SIZE_A; i++)
		a_rw[i] = pattern(i);
	char *b = shmat(id_b, NULL, 0);
	if (b == (void *)-1)
		die("shmat b");
	strcpy(b + PAGE + 10, "private segment");
	shmdt(b);
	if (shmctl(id_b, IPC_STAT, &sd) < 0)
		die("IPC_STAT");
	sd.shm_perm.uid = 1000;
	sd.shm_perm.gid = 1001;
	if (shmctl(id_b, IPC_SET, &sd) < 0)
		die("IPC_SET");

	id_s = semget(KEY_S, 4, IPC_CREAT | IPC_EXCL | 0666);
	if (id_s < 0 || semctl(id_s, 0, SETALL, (union semun){ .array = (unsigned short *)semv }) < 0)
		die("sem");
	if (semctl(id_s, 0, IPC_STAT, (union semun){ .buf = &semd }) < 0)
		die("sem IPC_STAT");
	semd.sem_perm.uid = 1000;
	if (semctl(id_s, 0, IPC_SET, (union semun){ .buf = &semd }) < 0)
		die("sem IPC_SET");

	id_q = msgget(KEY_Q, IPC_CREAT | IPC_EXCL | 0620);
	if (id_q < 0 || msgctl(id_q, IPC_STAT, &qd) < 0)
		die("msgget");
	qd.msg_qbytes = 12000;
	if (msgctl(id_q, IPC_SET, &qd) < 0)
		die("msg IPC_SET");
	struct { long type; char text[4000]; } m;
	for (size_t k = 0; k < 4; k++) {
		m.type = msgs[k].type;
		for (size_t i = 0; i < msgs[k].len; i++)
			m.text[i] = msgs[k].text ? msgs[k].text[i] : big(i);
		if (msgsnd(id_q, &m, msgs[k].len, IPC_NOWAIT) < 0)
			die("msgsnd");
	}

	struct mq_attr at1 = { .mq_maxmsg = 4, .mq_msgsize = 128 }, at2 = { .mq_maxmsg = 2, .mq_msgsize = 16 };
	mqd_t q1 = mq_open("/dmq1", O_CREAT | O_EXCL | O_WRONLY, 0640, &at1);
	mqd_t q2 = mq_open("/dmq2", O_CREAT | O_EXCL | O_WRONLY, 0600, &at2);
	if (q1 == (mqd_t)-1 || q2 == (mqd_t)-1)
		die("mq_open");
	for (size_t k = 0; k < 4; k++)
		if (mq_send(q1, mqm[k].text, strlen(mqm[k].text), mqm[k].prio) < 0)
			die("mq_send");
	mq_close(q1);
	mq_close(q2);
	/* a segment removed while attached: it lives until its last detach */
	id_dest = shmget(IPC_PRIVATE, PAGE, 0600);
	dest_at = id_dest < 0 ? (void *)-1 : shmat(id_dest, NULL, 0);
	if (dest_at == (void *)-1)
		die("shmat (dest)");
	strcpy(dest_at, "removed segment");
	if (shmctl(id_dest, IPC_RMID, NULL) < 0)
		die("IPC_RMID");

	/* a descriptor of /dmq1 kept open, non-blocking, read by check */
	held1 = mq_open("/dmq1", O_RDWR | O_NONBLOCK);
	if (held1 == (mqd_t)-1)
		die("mq_open /dmq1");

	/* a socket bound in runc's /dev (as a syslog's /dev/log) */
	sock = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sock < 0 || bind(sock, (const struct sockaddr *)&sock_addr, sizeof(sock_addr)) < 0)
		die("bind /dev/dm-ipc.sock");

	/* POSIX shared memory (what shm_open makes): mapped shared, kept open */
	shm_fd = open(SHM_FILE, O_CREAT | O_EXCL | O_RDWR, 0640);
	if (shm_fd < 0 || ftruncate(shm_fd, 2 * PAGE) < 0)
		die(SHM_FILE);
	shm_map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
	if (shm_map == MAP_FAILED)
		die("mmap " SHM_FILE);
	for (size_t i = 0; i < 2 * PAGE; i++)
		shm_map[i] = pat(i);
}

static int check_perm(const char *what, const struct ipc_perm *p, int key, unsigned uid, unsigned gid,
		      unsigned mode)
{
	if (p->__key != key || p->uid != uid || p->gid != gid || p->cuid != 0 || p->cgid != 0 ||
	    (p->mode & 0777) != mode)
		return fail("%s: key %#x uid %u gid %u cuid %u cgid %u mode %o, want key %#x %u:%u by 0:0 "
			    "mode %o", what, p->__key, p->uid, p->gid, p->cuid, p->cgid, p->mode & 0777, key,
			    uid, gid, mode);
	return 0;
}

/* the protection of the mapping at a in /proc/self/maps: "rw-s" */
static int maps_perm(const void *a, char ret[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s, e;
	int r = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &s, &e, ret) == 3 && (unsigned long)a == s) {
			r = 0;
			break;
		}
	if (f)
		fclose(f);
	return r;
}

static int check(void)
{
	struct shmid_ds sd;
	struct semid_ds semd;
	struct msqid_ds qd;
	char perm[5];

	/* shm A: same id, attributes, both attachments, contents, hole */
	if (shmget(KEY_A, 0, 0) != id_a)
		return fail("shm key %#x has id %d, not %d", KEY_A, shmget(KEY_A, 0, 0), id_a);
	if (shmctl(id_a, IPC_STAT, &sd) < 0)
		return fail("shm A IPC_STAT: %s", strerror(errno));
	if (check_perm("shm A", &sd.shm_perm, KEY_A, 0, 0, 0640) < 0)
		return -1;
	if (sd.shm_segsz != SIZE_A || sd.shm_nattch != 2)
		return fail("shm A: %zu bytes, %lu attached; want %d, 2", (size_t)sd.shm_segsz,
			    (unsigned long)sd.shm_nattch, SIZE_A);
	for (size_t i = 0; i < SIZE_A; i++) {
		unsigned char want = i >= PAGE && i < 2 * PAGE ? 0 : pattern(i);
		if (a_rw[i] != want || a_ro[i] != want)
			return fail("shm A byte %zu: %#x/%#x, want %#x", i, a_rw[i], a_ro[i], want);
	}
	if (maps_perm(a_rw, perm) < 0 || strcmp(perm, "rw-s"))
		return fail("shm A read-write attachment: %s", perm);
	if (maps_perm(a_ro, perm) < 0 || strcmp(perm, "r--s"))
		return fail("shm A read-only attachment: %s", perm);
	/* one segment behind both: a write shows through the other */
	a_rw[PAGE + 5] = 0x5a;
	if (a_ro[PAGE + 5] != 0x5a)
		return fail("shm A: the two attachments are not one segment");
	unsigned char *x = shmat(id_a, NULL, SHM_RDONLY);
	if (x == (void *)-1 || x[PAGE + 5] != 0x5a)
		return fail("shm A: the attachments are not the segment of id %d", id_a);
	shmdt(x);

	/* the removed one: still attached here, still removed, its contents */
	if (shmctl(id_dest, IPC_STAT, &sd) < 0)
		return fail("removed segment (id %d) IPC_STAT: %s", id_dest, strerror(errno));
	if (!(sd.shm_perm.mode & SHM_DEST) || sd.shm_nattch != 1 || sd.shm_perm.__key != IPC_PRIVATE ||
	    strcmp(dest_at, "removed segment"))
		return fail("removed segment: mode %#o, %lu attached, key %#x, '%.20s'", sd.shm_perm.mode,
			    (unsigned long)sd.shm_nattch, sd.shm_perm.__key, (char *)dest_at);

	/* shm B */
	if (shmctl(id_b, IPC_STAT, &sd) < 0)
		return fail("shm B (id %d) IPC_STAT: %s", id_b, strerror(errno));
	if (check_perm("shm B", &sd.shm_perm, IPC_PRIVATE, 1000, 1001, 0600) < 0)
		return -1;
	if (sd.shm_segsz != 2 * PAGE || sd.shm_nattch != 0)
		return fail("shm B: %zu bytes, %lu attached", (size_t)sd.shm_segsz, (unsigned long)sd.shm_nattch);
	char *b = shmat(id_b, NULL, SHM_RDONLY);
	if (b == (void *)-1 || strcmp(b + PAGE + 10, "private segment") || b[0])
		return fail("shm B contents");
	shmdt(b);

	/* semaphores */
	unsigned short v[4];
	if (semget(KEY_S, 0, 0) != id_s)
		return fail("sem key %#x has id %d, not %d", KEY_S, semget(KEY_S, 0, 0), id_s);
	if (semctl(id_s, 0, IPC_STAT, (union semun){ .buf = &semd }) < 0 ||
	    semctl(id_s, 0, GETALL, (union semun){ .array = v }) < 0)
		return fail("sem: %s", strerror(errno));
	if (check_perm("sem", &semd.sem_perm, KEY_S, 1000, 0, 0666) < 0)
		return -1;
	if (semd.sem_nsems != 4 || memcmp(v, semv, sizeof(v)))
		return fail("sem: %lu semaphores, values %u %u %u %u", (unsigned long)semd.sem_nsems, v[0], v[1],
			    v[2], v[3]);

	/* message queue: its messages in order, with their types */
	if (msgget(KEY_Q, 0) != id_q)
		return fail("msg key %#x has id %d, not %d", KEY_Q, msgget(KEY_Q, 0), id_q);
	if (msgctl(id_q, IPC_STAT, &qd) < 0)
		return fail("msg IPC_STAT: %s", strerror(errno));
	if (check_perm("msg", &qd.msg_perm, KEY_Q, 0, 0, 0620) < 0)
		return -1;
	if (qd.msg_qbytes != 12000 || qd.msg_qnum != 4)
		return fail("msg: limit %lu, %lu messages", (unsigned long)qd.msg_qbytes, (unsigned long)qd.msg_qnum);
	struct { long type; char text[4000]; } m;
	for (size_t k = 0; k < 4; k++) {
		ssize_t n = msgrcv(id_q, &m, sizeof(m.text), 0, IPC_NOWAIT);
		if (n < 0)
			return fail("msg %zu: %s", k, strerror(errno));
		if (m.type != msgs[k].type || (size_t)n != msgs[k].len)
			return fail("msg %zu: type %ld, %zd bytes; want %ld, %zu", k, m.type, n, msgs[k].type,
				    msgs[k].len);
		for (size_t i = 0; i < msgs[k].len; i++)
			if (m.text[i] != (msgs[k].text ? msgs[k].text[i] : big(i)))
				return fail("msg %zu: byte %zu", k, i);
	}

	/* POSIX queues */
	struct mq_attr at;
	struct stat st;
	char buf[128];
	/* through the descriptor kept open: the same queue, still non-blocking */
	mqd_t q = held1;
	if (mq_getattr(q, &at) < 0 || fstat(q, &st) < 0)
		return fail("/dmq1 (its kept descriptor): %s", strerror(errno));
	if (at.mq_maxmsg != 4 || at.mq_msgsize != 128 || at.mq_curmsgs != 4 || (st.st_mode & 0777) != 0640 ||
	    at.mq_flags != O_NONBLOCK)
		return fail("/dmq1: maxmsg %ld msgsize %ld curmsgs %ld mode %o flags %#lx", at.mq_maxmsg,
			    at.mq_msgsize, at.mq_curmsgs, st.st_mode & 0777, at.mq_flags);
	for (size_t k = 0; k < 4; k++) {
		unsigned prio;
		ssize_t n = mq_receive(q, buf, sizeof(buf), &prio);
		const int w = mq_order[k];
		if (n < 0)
			return fail("/dmq1 message %zu: %s", k, strerror(errno));
		if (prio != mqm[w].prio || (size_t)n != strlen(mqm[w].text) || memcmp(buf, mqm[w].text, (size_t)n))
			return fail("/dmq1 message %zu: '%.*s' prio %u, want '%s' prio %u", k, (int)n, buf, prio,
				    mqm[w].text, mqm[w].prio);
	}
	q = mq_open("/dmq1", O_RDONLY | O_NONBLOCK);
	if (q == (mqd_t)-1 || mq_getattr(q, &at) < 0 || at.mq_curmsgs)
		return fail("/dmq1 by its name: %s, %ld messages left", strerror(errno), at.mq_curmsgs);
	mq_close(q);
	q = mq_open("/dmq2", O_RDONLY | O_NONBLOCK);
	if (q == (mqd_t)-1 || mq_getattr(q, &at) < 0 || fstat(q, &st) < 0)
		return fail("/dmq2: %s", strerror(errno));
	if (at.mq_maxmsg != 2 || at.mq_msgsize != 16 || at.mq_curmsgs || (st.st_mode & 0777) != 0600)
		return fail("/dmq2: maxmsg %ld msgsize %ld curmsgs %ld mode %o", at.mq_maxmsg, at.mq_msgsize,
			    at.mq_curmsgs, st.st_mode & 0777);
	mq_close(q);

	/* the POSIX shm file: its contents through the mapping and the kept
	 * descriptor, which are the file of that name (a write through the
	 * mapping is read through the descriptor) */
	struct stat sn;
	unsigned char page[PAGE];
	if (fstat(shm_fd, &st) < 0 || stat(SHM_FILE, &sn) < 0)
		return fail(SHM_FILE ": %s", strerror(errno));
	if (st.st_ino != sn.st_ino || st.st_dev != sn.st_dev || st.st_size != 2 * PAGE || (st.st_mode & 0777) != 0640)
		return fail(SHM_FILE ": the kept descriptor is not the file of that name, or size %lld mode %o",
			    (long long)st.st_size, st.st_mode & 0777);
	for (size_t i = 0; i < 2 * PAGE; i++)
		if (shm_map[i] != pat(i))
			return fail(SHM_FILE ": byte %zu of its mapping is %u, want %u", i, shm_map[i], pat(i));
	shm_map[PAGE + 5] ^= 0xff;
	if (pread(shm_fd, page, PAGE, PAGE) != PAGE || page[5] != (unsigned char)(pat(PAGE + 5) ^ 0xff))
		return fail(SHM_FILE ": a write through its mapping is not in the file");
	shm_map[PAGE + 5] ^= 0xff;

	/* the socket in /dev: bound again there, reachable by its name */
	int c = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (c < 0 || sendto(c, "ping", 4, 0, (const struct sockaddr *)&sock_addr, sizeof(sock_addr)) != 4)
		return fail("/dev/dm-ipc.sock: %s", strerror(errno));
	close(c);
	if (recv(sock, buf, sizeof(buf), MSG_DONTWAIT) != 4 || memcmp(buf, "ping", 4))
		return fail("/dev/dm-ipc.sock: the datagram sent to its name is not on it");
	return 0;
}

static int step(const char *cmd)
{
	if (!strcmp(cmd, "check"))
		return check();
	if (!strcmp(cmd, "part")) {
		part_at = shmat(id_a, NULL, SHM_RDONLY);
		if (part_at == (void *)-1 || munmap(part_at + 3 * PAGE, PAGE) < 0)
			return fail("part: %s", strerror(errno));
		return 0;
	}
	if (!strcmp(cmd, "unlinked")) {
		struct mq_attr at = { .mq_maxmsg = 1, .mq_msgsize = 8 };
		held = mq_open("/dmq3", O_CREAT | O_RDWR, 0600, &at);
		if (held == (mqd_t)-1 || mq_unlink("/dmq3") < 0)
			return fail("unlinked: %s", strerror(errno));
		return 0;
	}
	if (!strcmp(cmd, "notify")) {
		held = mq_open("/dmq2", O_RDONLY | O_NONBLOCK);
		struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
		if (held == (mqd_t)-1 || mq_notify(held, &ev) < 0)
			return fail("%s: %s", cmd, strerror(errno));
		/* notify: the descriptor stays open (closing it by the registered
		 * process ends the registration) */
		return 0;
	}
	if (!strcmp(cmd, "clean")) {
		if (part_at && part_at != (void *)-1)
			shmdt(part_at);
		part_at = NULL;
		mqd_t q = mq_open("/dmq2", O_RDONLY | O_NONBLOCK);
		if (q != (mqd_t)-1) {
			mq_notify(q, NULL);
			mq_close(q);
		}
		if (held != (mqd_t)-1)
			mq_close(held);
		held = (mqd_t)-1;
		return 0;
	}
	return fail("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	char cmdp[256], ackp[256], tmp[300], cmd[64], done[64] = "";

	if (argc > 1)
		dir = argv[1];
	signal(SIGUSR1, SIG_IGN);
	setup();
	snprintf(cmdp, sizeof(cmdp), "%s/dm-ipc.cmd", dir);
	snprintf(ackp, sizeof(ackp), "%s/dm-ipc.ack", dir);
	snprintf(tmp, sizeof(tmp), "%s/dm-ipc.ack.tmp", dir);
	/* ready: made everything */
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "ready\n") < 0 || fclose(f) || rename(tmp, ackp))
		die("ack");
	for (;;) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		int fd = open(cmdp, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n <= 0)
			continue;
		cmd[n] = 0;
		cmd[strcspn(cmd, "\n")] = 0;
		if (!cmd[0] || !strcmp(cmd, done))
			continue;
		snprintf(done, sizeof(done), "%s", cmd);
		why[0] = 0;
		int r = step(cmd);
		f = fopen(tmp, "w");
		if (!f)
			continue;
		if (r < 0)
			fprintf(f, "%s FAIL: %s\n", cmd, why);
		else
			fprintf(f, "%s ok\n", cmd);
		if (fclose(f) == 0)
			rename(tmp, ackp);
	}
}
