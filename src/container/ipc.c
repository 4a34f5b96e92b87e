/* SPDX-License-Identifier: MIT */
/*
 * SysV IPC and POSIX message queues of a container's IPC namespace (ipc.h,
 * docs/containers.md).
 *
 * Everything here runs in the namespace: the SysV calls, the *_next_id and
 * limit sysctls under /proc/sys and the mqueue file system all act on the
 * caller's IPC namespace, and a thread has its own (setns(CLONE_NEWIPC) is
 * allowed in a thread).  The dump, in the frozen window, runs in a thread
 * that entered the namespace: a fork of dmigrate there copied its address
 * space and fd table while the dump's own threads waited for the locks.
 * Its queues are listed on an mqueue file system mounted detached
 * (fsopen/fsmount: its superblock is the one of the calling thread's IPC
 * namespace), no mount namespace needed.  The restore runs in a forked
 * child that entered the namespace: it takes its objects' creators' ids
 * (setresuid: for the whole process in glibc).  The packed ContainerIpc
 * comes back on a memfd; a child's failure on another, its errno as exit
 * code.
 */
#define LOG_PREFIX "ipc: "
#include "container/ipc.h"
#include "base/child.h"
#include "base/clock.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <mqueue.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
	struct seminfo *__buf;
};

#define IPC_CHUNK (1u << 20)

/* ------------------------------------------------------------ the child */

typedef int (*ipc_fn)(void *arg, int out);

struct ipc_child {
	pid_t pid;
	int out, err;           /* memfds: what it wrote, its error message */
};

/* Starts fn(arg, out) in a child in pid's IPC namespace. */
static int child_start(pid_t pid, ipc_fn fn, void *arg, struct ipc_child *ret)
{
	char path[64];
	_cleanup_close_ int nsfd = -1, out = -1, err = -1;

	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", pid);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	out = (int)syscall(SYS_memfd_create, "ipc-out", MFD_CLOEXEC);
	err = (int)syscall(SYS_memfd_create, "ipc-err", MFD_CLOEXEC);
	if (out < 0 || err < 0)
		return dm_fail(neg_errno(), "memfd_create: %m");
	pid_t c = fork();
	if (c < 0)
		return dm_fail(neg_errno(), "fork: %m");
	if (c == 0) {
		int r;
		if (setns(nsfd, CLONE_NEWIPC) < 0)
			r = dm_fail(neg_errno(), "setns(%s): %m", path);
		else
			r = fn(arg, out);
		if (r < 0) {
			dprintf(err, "%s", dm_error_text(r));
			_exit(-r < 256 ? -r : EIO);
		}
		_exit(0);
	}
	*ret = (struct ipc_child){ c, TAKE_FD(out), TAKE_FD(err) };
	return 0;
}

/*
 * Waits for the child; its failure comes back with its message and errno.
 * *ret_out (when asked for): the memfd of what it wrote, rewound.
 */
static int child_wait(struct ipc_child *c, int limit_ms, const char *what, int *ret_out)
{
	_cleanup_close_ int out = TAKE_FD(c->out), err = TAKE_FD(c->err);
	int st, r;

	r = child_wait_limit(c->pid, limit_ms, &st, "the helper %s in the container's IPC namespace", what);
	c->pid = 0;
	if (r < 0)
		return r;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		_cleanup_free_ char *msg = NULL;
		size_t len = 0;
		if (lseek(err, 0, SEEK_SET) < 0 || read_full_fd(err, 4096, &msg, &len) < 0 || !len) {
			free(msg);
			msg = xasprintf("its helper %s", WIFEXITED(st) ? "failed" : "was killed");
		}
		return dm_fail(WIFEXITED(st) ? -WEXITSTATUS(st) : -EIO, "%s", msg);
	}
	if (ret_out) {
		if (lseek(out, 0, SEEK_SET) < 0)
			return dm_fail(neg_errno(), "lseek: %m");
		*ret_out = TAKE_FD(out);
	}
	return 0;
}

/* limit_ms, what: for child_wait_limit() */
static int in_ipc_ns(pid_t pid, ipc_fn fn, void *arg, int limit_ms, const char *what, int *ret_out)
{
	struct ipc_child c;
	int r = child_start(pid, fn, arg, &c);

	return r < 0 ? r : child_wait(&c, limit_ms, what, ret_out);
}

static Dm__IpcPerm *perm_msg(const struct ipc_perm *p, int id)
{
	Dm__IpcPerm *m = xmalloc(sizeof(*m));
	dm__ipc_perm__init(m);
	m->key = p->__key;
	m->id = id;
	m->uid = p->uid;
	m->gid = p->gid;
	m->cuid = p->cuid;
	m->cgid = p->cgid;
	m->mode = p->mode & 0777;
	return m;
}

#define APPEND(arr, n, v)                                                      \
	do {                                                                   \
		(arr) = xrealloc((arr), ((n) + 1) * sizeof(*(arr)));           \
		(arr)[(n)++] = (v);                                            \
	} while (0)

/* ------------------------------------------------------------ dump */

struct dump_arg {
	const char *images_dir;
	Dm__ContainerIpc m;
};

/*
 * A segment's contents, sparse: the shmem file behind an attachment of our
 * own (reached through map_files) says where its data is, so holes are
 * neither read (which would allocate them) nor stored.
 */
static int dump_shm_contents(struct dm_image *img, int id, uint64_t size, const char *name)
{
	_cleanup_close_ int fd = -1, out = -1;
	_cleanup_free_ char *buf = NULL;
	char path[96];
	int r;

	void *p = shmat(id, NULL, SHM_RDONLY);
	if (p == (void *)-1)
		return dm_fail(neg_errno(), "SysV shm id %d: shmat: %m", id);
	uint64_t len = (size + DM_PAGE_SIZE - 1) & ~(uint64_t)(DM_PAGE_SIZE - 1);
	snprintf(path, sizeof(path), "/proc/self/map_files/%" PRIxPTR "-%" PRIxPTR, (uintptr_t)p,
		 (uintptr_t)p + (uintptr_t)len);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? dm_fail(neg_errno(), "SysV shm id %d: %s: %m", id, path) : 0;
	shmdt(p);
	if (r < 0)
		return r;
	/* made again as ordinary shmem: a segment of huge pages would not be */
	struct statfs sfs;
	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC)
		return dm_fail(-ENOTSUP, "SysV shm segment id %d (%" PRIu64 " bytes) is of huge pages "
			       "(SHM_HUGETLB): not restored", id, size);
	r = image_create_raw(img, name, IMG_SHMEM, &out);
	if (r < 0)
		return r;
	buf = xmalloc(IPC_CHUNK);
	for (off_t off = 0; off < (off_t)size;) {
		off_t data = lseek(fd, off, SEEK_DATA);
		if (data < 0 || data >= (off_t)size)
			break; /* ENXIO: only a hole is left */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > (off_t)size)
			hole = (off_t)size;
		for (off_t o = data; o < hole;) {
			size_t n = MIN((uint64_t)(hole - o), IPC_CHUNK);
			r = pread_exact(fd, buf, n, o);
			if (r < 0)
				return dm_fail(r, "SysV shm id %d: reading its contents: %s", id, strerror(-r));
			r = pwrite_all(out, buf, n, DM_IMG_DATA_OFF + o);
			if (r < 0)
				return dm_fail(r, "%s: %s", name, strerror(-r));
			o += (off_t)n;
		}
		off = hole;
	}
	if (ftruncate(out, DM_IMG_DATA_OFF + (off_t)size) < 0)
		return dm_fail(neg_errno(), "%s: %m", name);
	return image_finish_raw(out, IMG_SHMEM, size);
}

static int dump_shm(struct dump_arg *a)
{
	_cleanup_image_ struct dm_image *img = NULL;
	struct shm_info si;
	int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&si);

	if (max < 0)
		return dm_fail(neg_errno(), "shmctl(SHM_INFO): %m");
	for (int i = 0; i <= max; i++) {
		struct shmid_ds ds;
		int id = shmctl(i, SHM_STAT, &ds);
		if (id < 0) {
			if (errno == EINVAL || errno == EIDRM)
				continue; /* a free index */
			return dm_fail(neg_errno(), "shmctl(%d, SHM_STAT): %m", i);
		}
		if (!img) {
			int r = image_open(a->images_dir, false, &img);
			if (r < 0)
				return r;
		}
		Dm__SysvShm *s = xmalloc(sizeof(*s));
		dm__sysv_shm__init(s);
		s->perm = perm_msg(&ds.shm_perm, id);
		s->size = ds.shm_segsz;
		s->contents = xasprintf(IPC_SHM_IMG_FMT, id);
		if (ds.shm_perm.mode & SHM_LOCKED)
			s->has_locked = s->locked = true;
		/* removed while attached: it lives until its last detach (Linux
		 * lets it be attached by id meanwhile, as below) */
		if (ds.shm_perm.mode & SHM_DEST)
			s->has_removed = s->removed = true;
		APPEND(a->m.shm, a->m.n_shm, s);
		int r = dump_shm_contents(img, id, s->size, s->contents);
		if (r < 0)
			return r;
	}
	return 0;
}

static int dump_sem(struct dump_arg *a)
{
	struct seminfo si;
	int max = semctl(0, 0, SEM_INFO, (union semun){ .__buf = &si });

	if (max < 0)
		return dm_fail(neg_errno(), "semctl(SEM_INFO): %m");
	for (int i = 0; i <= max; i++) {
		struct semid_ds ds;
		int id = semctl(i, 0, SEM_STAT, (union semun){ .buf = &ds });
		if (id < 0) {
			if (errno == EINVAL || errno == EIDRM)
				continue;
			return dm_fail(neg_errno(), "semctl(%d, SEM_STAT): %m", i);
		}
		size_t n = ds.sem_nsems;
		_cleanup_free_ unsigned short *v = xcalloc(n ? n : 1, sizeof(*v));
		if (semctl(id, 0, GETALL, (union semun){ .array = v }) < 0)
			return dm_fail(neg_errno(), "SysV semaphore set id %d: GETALL: %m", id);
		Dm__SysvSem *s = xmalloc(sizeof(*s));
		dm__sysv_sem__init(s);
		s->perm = perm_msg(&ds.sem_perm, id);
		s->n_values = n;
		s->values = xcalloc(n ? n : 1, sizeof(*s->values));
		for (size_t k = 0; k < n; k++)
			s->values[k] = v[k];
		APPEND(a->m.sem, a->m.n_sem, s);
	}
	return 0;
}

/* The namespace's msgmax: MSG_COPY copies into a buffer of at most that. */
static int read_msgmax(size_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	long v;
	int r = read_full_file("/proc/sys/kernel/msgmax", 64, &buf, &len);

	if (r < 0)
		return dm_fail(r, "/proc/sys/kernel/msgmax: %s", strerror(-r));
	buf[strcspn(buf, "\n")] = 0;
	if (parse_long(buf, &v) < 0 || v <= 0)
		return dm_fail(-EBADMSG, "/proc/sys/kernel/msgmax: '%s'", buf);
	*ret = (size_t)v;
	return 0;
}

/* Its messages in queue order, copied (MSG_COPY), the queue untouched. */
static int dump_msq(struct dump_arg *a)
{
	struct msginfo mi;
	int max = msgctl(0, MSG_INFO, (struct msqid_ds *)&mi);
	size_t cap = 0;
	_cleanup_free_ struct { long mtype; char mtext[]; } *buf = NULL;

	if (max < 0)
		return dm_fail(neg_errno(), "msgctl(MSG_INFO): %m");
	for (int i = 0; i <= max; i++) {
		struct msqid_ds ds;
		int id = msgctl(i, MSG_STAT, &ds);
		if (id < 0) {
			if (errno == EINVAL || errno == EIDRM)
				continue;
			return dm_fail(neg_errno(), "msgctl(%d, MSG_STAT): %m", i);
		}
		if (!buf) {
			int r = read_msgmax(&cap);
			if (r < 0)
				return r;
			buf = xmalloc(sizeof(long) + cap);
		}
		Dm__SysvMsq *q = xmalloc(sizeof(*q));
		dm__sysv_msq__init(q);
		q->perm = perm_msg(&ds.msg_perm, id);
		q->qbytes = ds.msg_qbytes;
		APPEND(a->m.msq, a->m.n_msq, q);
		uint64_t sum = 0;
		for (unsigned long k = 0; k < ds.msg_qnum; k++) {
			/* the copy's buffer is at most msgmax: a message sent before
			 * msgmax was lowered does not fit it (EINVAL) */
			ssize_t n = msgrcv(id, buf, cap, (long)k, IPC_NOWAIT | MSG_COPY);
			if (n < 0 && errno == ENOSYS)
				return dm_fail(-ENOTSUP, "SysV message queue id %d: this kernel cannot copy "
					       "messages (MSG_COPY needs CONFIG_CHECKPOINT_RESTORE)", id);
			if (n < 0 && (errno == EINVAL || errno == E2BIG))
				return dm_fail(-ENOTSUP, "SysV message queue id %d: message %lu of %lu is "
					       "longer than the namespace's msgmax (%zu) now: it cannot be copied, "
					       "not restored", id, k + 1, (unsigned long)ds.msg_qnum, cap);
			if (n < 0)
				return dm_fail(neg_errno(), "SysV message queue id %d: message %lu of %lu: %m",
					       id, k + 1, (unsigned long)ds.msg_qnum);
			Dm__SysvMsg *m = xmalloc(sizeof(*m));
			dm__sysv_msg__init(m);
			m->type = buf->mtype;
			m->text.len = (size_t)n;
			m->text.data = xmalloc(n ? (size_t)n : 1);
			memcpy(m->text.data, buf->mtext, (size_t)n);
			APPEND(q->msgs, q->n_msgs, m);
			sum += (uint64_t)n;
		}
		if (sum != ds.msg_cbytes)
			return dm_fail(-EIO, "SysV message queue id %d: its %lu messages hold %lu bytes, %" PRIu64
				       " were copied", id, (unsigned long)ds.msg_qnum, (unsigned long)ds.msg_cbytes,
				       sum);
	}
	return 0;
}

/* "QSIZE:0 NOTIFY:0 SIGNO:0 NOTIFY_PID:0" of a queue's file */
static int mq_notify_pid(int dirfd, const char *name, long *ret)
{
	char buf[256];
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (n < 0)
		return dm_fail(neg_errno(), "POSIX message queue /%s: %m", name);
	buf[n] = 0;
	const char *p = strstr(buf, "NOTIFY_PID:");
	*ret = p ? strtol(p + 11, NULL, 10) : 0;
	return 0;
}

/*
 * A queue is read by receiving its messages: all of them, then at once the
 * same messages sent back in the same order (each with its priority keeps
 * its place: a queue is FIFO within a priority), so that the source's queue
 * is as it was whether the migration goes on or is rolled back.  The tree is
 * frozen: nobody else sends or receives meanwhile.  Nor does anyone wait on
 * the queue: every thread of the tree is in its ptrace stop, which took it
 * out of mq_timedsend/mq_timedreceive (it restarts them once it runs).  A
 * waiter would have had our receive pull its message into a full queue, or
 * our send hand a message straight to it.
 */
static int dump_one_mq(int dirfd, const char *name, Dm__ContainerIpc *out)
{
	_cleanup_free_ char *path = xasprintf("/%s", name), *buf = NULL;
	struct mq_attr at;
	struct stat st;
	long npid = 0;
	int r;

	if (fstatat(dirfd, name, &st, 0) < 0)
		return dm_fail(neg_errno(), "POSIX message queue %s: %m", path);
	r = mq_notify_pid(dirfd, name, &npid);
	if (r < 0)
		return r;
	if (npid)
		return dm_fail(-ENOTSUP, "POSIX message queue %s has an mq_notify registration (of "
			       "process %ld in the container): not restored", path, npid);
	mqd_t q = mq_open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (q == (mqd_t)-1)
		return dm_fail(neg_errno(), "POSIX message queue %s: mq_open: %m", path);
	if (mq_getattr(q, &at) < 0) {
		r = dm_fail(neg_errno(), "POSIX message queue %s: mq_getattr: %m", path);
		mq_close(q);
		return r;
	}
	Dm__PosixMq *m = xmalloc(sizeof(*m));
	dm__posix_mq__init(m);
	m->name = xstrdup(name);
	m->mode = st.st_mode & 07777;
	m->uid = st.st_uid;
	m->gid = st.st_gid;
	m->maxmsg = at.mq_maxmsg;
	m->msgsize = at.mq_msgsize;
	APPEND(out->mqueue, out->n_mqueue, m);
	buf = xmalloc((size_t)at.mq_msgsize + 1);
	r = 0;
	for (long k = 0; k < at.mq_curmsgs; k++) {
		unsigned prio;
		ssize_t n = mq_receive(q, buf, (size_t)at.mq_msgsize, &prio);
		if (n < 0) {
			if (errno != EAGAIN)
				r = dm_fail(neg_errno(), "POSIX message queue %s: mq_receive: %m", path);
			break;
		}
		Dm__PosixMqMsg *x = xmalloc(sizeof(*x));
		dm__posix_mq_msg__init(x);
		x->prio = prio;
		x->text.len = (size_t)n;
		x->text.data = xmalloc(n ? (size_t)n : 1);
		memcpy(x->text.data, buf, (size_t)n);
		APPEND(m->msgs, m->n_msgs, x);
	}
	/* back at once, whatever happened above */
	for (size_t k = 0; k < m->n_msgs; k++)
		if (mq_send(q, (const char *)m->msgs[k]->text.data, m->msgs[k]->text.len, m->msgs[k]->prio) < 0) {
			r = dm_fail(neg_errno(), "POSIX message queue %s: writing back message %zu of %zu "
				    "after reading it: %m (the rest is lost)", path, k + 1, m->n_msgs);
			break;
		}
	mq_close(q);
	return r;
}

/* The namespace's queues: its mqueue file system (the calling thread's IPC
 * namespace's), mounted detached: attached nowhere, gone with its fd. */
static int dump_mq(struct dump_arg *a)
{
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_close_ int fs = -1, mnt = -1;
	struct dirent *e;
	int r = 0, dfd;

	fs = fsopen("mqueue", FSOPEN_CLOEXEC);
	if (fs < 0 || fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return dm_fail(neg_errno(), "the mqueue file system of the container's IPC namespace: %m");
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (mnt < 0)
		return dm_fail(neg_errno(), "mounting the mqueue file system: %m");
	dfd = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		r = dm_fail(neg_errno(), "the mqueue file system: %m");
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	while (r >= 0 && (e = readdir(d)))
		if (e->d_name[0] != '.')
			r = dump_one_mq(dirfd(d), e->d_name, &a->m);
	return r;
}

/* Every object of the namespace into a->m (malloc'd parts, as an unpacked message's). */
static int dump_all(struct dump_arg *a)
{
	int r = dump_shm(a);

	if (r >= 0)
		r = dump_sem(a);
	if (r >= 0)
		r = dump_msq(a);
	if (r >= 0)
		r = dump_mq(a);
	return r;
}

struct ipc_dump {
	pthread_t th;
	struct dump_arg arg;
	uint64_t t0;
	int nsfd;               /* the container's IPC namespace */
	int r;                  /* the thread's result, and its message */
	char msg[DM_ERRMSG_MAX];
};

/* The dump's thread: in the container's IPC namespace (this thread's only)
 * until it ends. */
static void *dump_thread(void *arg)
{
	struct ipc_dump *j = arg;
	int r;

	if (setns(j->nsfd, CLONE_NEWIPC) < 0)
		r = dm_fail(neg_errno(), "entering the container's IPC namespace: %m");
	else
		r = dump_all(&j->arg);
	if (r < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", dm_last_error());
	j->r = r;
	return NULL;
}

int ipc_dump_start(pid_t pid, const char *images_dir, struct ipc_dump **ret)
{
	struct ipc_dump *j = xcalloc(1, sizeof(*j));
	char path[64];
	int r = 0;

	j->arg.images_dir = images_dir;
	j->t0 = clock_ns();
	dm__container_ipc__init(&j->arg.m);
	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", pid);
	j->nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (j->nsfd < 0)
		r = dm_fail(neg_errno(), "%s: %m", path);
	else if ((r = -pthread_create(&j->th, NULL, dump_thread, j)) < 0)
		r = dm_fail(r, "cannot start a thread: %s", strerror(-r));
	if (r < 0) {
		if (j->nsfd >= 0)
			close(j->nsfd);
		free(j);
		return r;
	}
	*ret = j;
	return 0;
}

int ipc_dump_finish(struct ipc_dump *j, Dm__ContainerIpc **ret)
{
	uint64_t t0 = j->t0, tw = clock_ns();
	Dm__ContainerIpc *m = xmalloc(sizeof(*m));
	int r;

	pthread_join(j->th, NULL);
	close(j->nsfd);
	r = j->r;
	if (r < 0)
		dm_error_set_message(j->msg);
	*m = j->arg.m;	/* what it read, as an unpacked message: freed with it */
	free(j);
	/* what it costs the freeze is the wait: the rest overlapped the caller */
	pr_debug("IPC namespace read: the freeze waited %.1f ms for it (%.1f ms after its start)",
		 ns_to_ms(tw, clock_ns()), ns_to_ms(t0, clock_ns()));
	if (r < 0 || (!m->n_shm && !m->n_sem && !m->n_msq && !m->n_mqueue)) {
		dm__container_ipc__free_unpacked(m, NULL);
		m = NULL;
	}
	if (r < 0)
		return r;
	*ret = m;
	return 0;
}

/* ------------------------------------------------------------ restore */

struct restore_arg {
	const char *images_dir;
	const Dm__ContainerIpc *m;
};

static int sysctl_path(const char *path, long *ret_old, long val)
{
	char buf[32];
	_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return dm_fail(neg_errno(), "%s: %m", path);
	if (ret_old) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			return dm_fail(n < 0 ? neg_errno() : -EIO, "%s: %m", path);
		buf[n] = 0;
		*ret_old = strtol(buf, NULL, 10);
	}
	n = snprintf(buf, sizeof(buf), "%ld", val);
	if (pwrite(fd, buf, (size_t)n, 0) != n)
		return dm_fail(neg_errno(), "%s = %ld: %m", path, val);
	return 0;
}

/* The next object of that kind made in this namespace gets id. */
static int next_id(const char *kind, int id)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/sys/kernel/%s_next_id", kind);
	return sysctl_path(path, NULL, id);
}

/*
 * A namespace limit raised for as long as an object that was within its own
 * namespace's limits is made (the limits are runc's, from the config; we
 * have no CAP_SYS_RESOURCE to pass over them); lower_limit() puts it back.
 */
struct limit {
	const char *path;
	long old;
	bool raised;
};

static int limit_at_least(struct limit *l, long want)
{
	char buf[32];
	_cleanup_close_ int fd = open(l->path, O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return dm_fail(neg_errno(), "%s: %m", l->path);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return dm_fail(n < 0 ? neg_errno() : -EIO, "%s: %m", l->path);
	buf[n] = 0;
	long cur = strtol(buf, NULL, 10);
	if (cur >= want)
		return 0;
	if (!l->raised)
		l->old = cur;
	n = snprintf(buf, sizeof(buf), "%ld", want);
	if (pwrite(fd, buf, (size_t)n, 0) != n)
		return dm_fail(neg_errno(), "%s = %ld (it was so in the container's namespace): %m", l->path,
			       want);
	l->raised = true;
	return 0;
}

static void lower_limit(struct limit *l)
{
	if (l->raised && sysctl_path(l->path, NULL, l->old) < 0)
		pr_warn("%s", dm_last_error());
	l->raised = false;
}

/* Made by its creator: cuid and cgid are the maker's effective ids. */
static int as_creator(const Dm__IpcPerm *p)
{
	if (setegid(p->cgid) < 0 || seteuid(p->cuid) < 0)
		return dm_fail(neg_errno(), "becoming %u:%u, the creator of SysV id %d: %m", p->cuid,
			       p->cgid, p->id);
	return 0;
}

static void as_root(void)
{
	if (seteuid(0) < 0 || setegid(0) < 0)
		_exit(EPERM); /* we had it: cannot happen, and nothing may go on as another user */
}

static int check_id(const char *what, const Dm__IpcPerm *p, int got)
{
	if (got < 0 && errno == EEXIST)
		return dm_fail(-EEXIST, "SysV %s key %d (id %d): one of that key exists already", what,
			       p->key, p->id);
	if (got < 0)
		return dm_fail(neg_errno(), "SysV %s key %d, id %d: %m", what, p->key, p->id);
	if (got != p->id)
		return dm_fail(-EEXIST, "SysV %s key %d: made with id %d, not %d (the id is taken)", what,
			       p->key, got, p->id);
	return 0;
}

static void set_perm(struct ipc_perm *k, const Dm__IpcPerm *p)
{
	k->uid = p->uid;
	k->gid = p->gid;
	k->mode = (unsigned short)(p->mode & 0777);
}

/* The image's data extents written into the attached segment: holes stay
 * holes (never touched, never allocated). */
static int fill_shm(struct dm_image *img, const Dm__SysvShm *s, char *p)
{
	_cleanup_close_ int fd = -1;
	uint64_t len = 0;
	int r = image_open_raw(img, s->contents, IMG_SHMEM, &fd, &len);

	if (r < 0)
		return r;
	if (len != s->size)
		return dm_fail(-EBADMSG, "%s: %" PRIu64 " bytes, the segment has %" PRIu64, s->contents, len,
			       s->size);
	for (off_t off = 0; off < (off_t)len;) {
		off_t data = lseek(fd, DM_IMG_DATA_OFF + off, SEEK_DATA);
		if (data < 0)
			break;
		data -= DM_IMG_DATA_OFF;
		if (data >= (off_t)len)
			break;
		off_t hole = lseek(fd, DM_IMG_DATA_OFF + data, SEEK_HOLE);
		hole = hole < 0 ? (off_t)len : MIN(hole - (off_t)DM_IMG_DATA_OFF, (off_t)len);
		r = pread_exact(fd, p + data, (size_t)(hole - data), DM_IMG_DATA_OFF + data);
		if (r < 0)
			return dm_fail(r, "%s: %s", s->contents, strerror(-r));
		off = hole;
	}
	return 0;
}

static int restore_shm(struct dm_image *img, const Dm__SysvShm *s)
{
	const Dm__IpcPerm *p = s->perm;
	struct limit max = { "/proc/sys/kernel/shmmax" };
	struct shmid_ds ds;
	char want[64];
	int r, id;

	snprintf(want, sizeof(want), IPC_SHM_IMG_FMT, p->id);
	if (strcmp(s->contents, want))
		return dm_fail(-EBADMSG, "SysV shm id %d: its contents are in '%s', not %s", p->id, s->contents,
			       want);

	r = limit_at_least(&max, (long)MIN(s->size, (uint64_t)LONG_MAX));
	if (r < 0)
		return r;
	r = next_id("shm", p->id);
	if (r >= 0)
		r = as_creator(p);
	if (r < 0) {
		lower_limit(&max);
		return r;
	}
	id = shmget(p->key, s->size, IPC_CREAT | IPC_EXCL | (int)(p->mode & 0777));
	int e = errno;
	as_root();
	lower_limit(&max);
	errno = e;
	r = check_id("shm segment", p, id);
	if (r < 0)
		return r;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return dm_fail(neg_errno(), "SysV shm id %d: IPC_STAT: %m", id);
	set_perm(&ds.shm_perm, p);
	if (shmctl(id, IPC_SET, &ds) < 0)
		return dm_fail(neg_errno(), "SysV shm id %d: IPC_SET (owner %u:%u, mode %o): %m", id, p->uid,
			       p->gid, p->mode);
	void *addr = shmat(id, NULL, 0);
	if (addr == (void *)-1)
		return dm_fail(neg_errno(), "SysV shm id %d: shmat: %m", id);
	r = fill_shm(img, s, addr);
	shmdt(addr);
	if (r < 0)
		return r;
	if (s->has_locked && s->locked && shmctl(id, SHM_LOCK, NULL) < 0)
		return dm_fail(neg_errno(), "SysV shm id %d: SHM_LOCK: %m", id);
	return 0;
}

static int restore_sem(const Dm__SysvSem *s)
{
	const Dm__IpcPerm *p = s->perm;
	struct semid_ds ds;
	int r, id;

	if (!s->n_values)
		return dm_fail(-EBADMSG, "SysV semaphore set id %d has no semaphores", p->id);
	r = next_id("sem", p->id);
	if (r >= 0)
		r = as_creator(p);
	if (r < 0)
		return r;
	id = semget(p->key, (int)s->n_values, IPC_CREAT | IPC_EXCL | (int)(p->mode & 0777));
	int e = errno;
	as_root();
	errno = e;
	r = check_id("semaphore set", p, id);
	if (r < 0)
		return r;
	_cleanup_free_ unsigned short *v = xcalloc(s->n_values, sizeof(*v));
	for (size_t k = 0; k < s->n_values; k++) {
		if (s->values[k] > 32767 /* SEMVMX */)
			return dm_fail(-EBADMSG, "SysV semaphore set id %d: value %u", id, s->values[k]);
		v[k] = (unsigned short)s->values[k];
	}
	if (semctl(id, 0, SETALL, (union semun){ .array = v }) < 0)
		return dm_fail(neg_errno(), "SysV semaphore set id %d: SETALL: %m", id);
	if (semctl(id, 0, IPC_STAT, (union semun){ .buf = &ds }) < 0)
		return dm_fail(neg_errno(), "SysV semaphore set id %d: IPC_STAT: %m", id);
	set_perm(&ds.sem_perm, p);
	if (semctl(id, 0, IPC_SET, (union semun){ .buf = &ds }) < 0)
		return dm_fail(neg_errno(), "SysV semaphore set id %d: IPC_SET: %m", id);
	return 0;
}

static int restore_msq(const Dm__SysvMsq *q)
{
	const Dm__IpcPerm *p = q->perm;
	struct limit mnb = { "/proc/sys/kernel/msgmnb" }, mmax = { "/proc/sys/kernel/msgmax" };
	struct msqid_ds ds;
	_cleanup_free_ struct { long mtype; char mtext[]; } *buf = NULL;
	size_t longest = 0;
	int r, id;

	for (size_t k = 0; k < q->n_msgs; k++)
		longest = MAX(longest, q->msgs[k]->text.len);
	r = next_id("msg", p->id);
	if (r >= 0)
		r = as_creator(p);
	if (r < 0)
		return r;
	id = msgget(p->key, IPC_CREAT | IPC_EXCL | (int)(p->mode & 0777));
	int e = errno;
	as_root();
	errno = e;
	r = check_id("message queue", p, id);
	if (r < 0)
		return r;
	if (msgctl(id, IPC_STAT, &ds) < 0)
		return dm_fail(neg_errno(), "SysV message queue id %d: IPC_STAT: %m", id);
	set_perm(&ds.msg_perm, p);
	ds.msg_qbytes = q->qbytes;
	/* a queue's limit above the namespace's msgmnb needs CAP_SYS_RESOURCE,
	 * a message longer than msgmax is refused: both were so in the
	 * container's namespace, they are for as long as it is made */
	r = limit_at_least(&mnb, (long)q->qbytes);
	if (r >= 0)
		r = limit_at_least(&mmax, (long)longest);
	if (r >= 0 && msgctl(id, IPC_SET, &ds) < 0)
		r = dm_fail(neg_errno(), "SysV message queue id %d: IPC_SET (owner %u:%u, mode %o, limit "
			    "%" PRIu64 " bytes): %m", id, p->uid, p->gid, p->mode, q->qbytes);
	buf = xmalloc(sizeof(long) + longest + 1);
	for (size_t k = 0; k < q->n_msgs && r >= 0; k++) {
		const Dm__SysvMsg *m = q->msgs[k];
		if (m->type <= 0) {
			r = dm_fail(-EBADMSG, "SysV message queue id %d: message %zu has type %" PRId64, id,
				    k + 1, m->type);
			break;
		}
		buf->mtype = (long)m->type;
		memcpy(buf->mtext, m->text.data, m->text.len);
		if (msgsnd(id, buf, m->text.len, IPC_NOWAIT) < 0)
			r = dm_fail(neg_errno(), "SysV message queue id %d: message %zu of %zu: %m", id, k + 1,
				    q->n_msgs);
	}
	lower_limit(&mmax);
	lower_limit(&mnb);
	return r;
}

static int restore_mq(const Dm__PosixMq *q)
{
	struct limit mmax = { "/proc/sys/fs/mqueue/msg_max" }, msz = { "/proc/sys/fs/mqueue/msgsize_max" };
	_cleanup_free_ char *path = NULL;
	struct mq_attr at = { .mq_maxmsg = q->maxmsg, .mq_msgsize = q->msgsize };
	int r = 0;

	if (!q->name[0] || strchr(q->name, '/') || strlen(q->name) > NAME_MAX)
		return dm_fail(-EBADMSG, "bad POSIX message queue name '%s'", q->name);
	path = xasprintf("/%s", q->name);
	/* past the namespace's limits only with CAP_SYS_RESOURCE: raised for
	 * this queue, as they were where it was made */
	r = limit_at_least(&mmax, q->maxmsg);
	if (r >= 0)
		r = limit_at_least(&msz, q->msgsize);
	mqd_t d = r < 0 ? (mqd_t)-1 : mq_open(path, O_CREAT | O_EXCL | O_WRONLY | O_NONBLOCK | O_CLOEXEC,
					       (mode_t)(q->mode & 0777), &at);
	if (r >= 0 && d == (mqd_t)-1)
		r = dm_fail(neg_errno(), "POSIX message queue %s (%" PRId64 " messages of %" PRId64
			    " bytes): mq_open: %m%s", path, q->maxmsg, q->msgsize,
			    errno == EMFILE ? " (the restorer's RLIMIT_MSGQUEUE)" : "");
	lower_limit(&msz);
	lower_limit(&mmax);
	if (r < 0)
		return r;
	if (fchown(d, q->uid, q->gid) < 0 || fchmod(d, q->mode & 07777) < 0)
		r = dm_fail(neg_errno(), "POSIX message queue %s: owner %u:%u, mode %o: %m", path, q->uid,
			    q->gid, q->mode);
	for (size_t k = 0; k < q->n_msgs && r >= 0; k++)
		if (mq_send(d, (const char *)q->msgs[k]->text.data, q->msgs[k]->text.len, q->msgs[k]->prio) < 0)
			r = dm_fail(neg_errno(), "POSIX message queue %s: message %zu of %zu: %m", path, k + 1,
				    q->n_msgs);
	mq_close(d);
	return r;
}

static int restore_child(void *arg, int out)
{
	const struct restore_arg *a = arg;
	const Dm__ContainerIpc *m = a->m;
	_cleanup_image_ struct dm_image *img = NULL;
	int r = 0;

	(void)out;
	umask(0);
	if (m->n_shm) {
		r = image_open(a->images_dir, false, &img);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < m->n_shm && r >= 0; i++)
		r = restore_shm(img, m->shm[i]);
	for (size_t i = 0; i < m->n_sem && r >= 0; i++)
		r = restore_sem(m->sem[i]);
	for (size_t i = 0; i < m->n_msq && r >= 0; i++)
		r = restore_msq(m->msq[i]);
	for (size_t i = 0; i < m->n_mqueue && r >= 0; i++)
		r = restore_mq(m->mqueue[i]);
	return r;
}

struct remove_arg {
	const int *ids;
	size_t n;
};

static int remove_child(void *arg, int out)
{
	const struct remove_arg *a = arg;

	(void)out;
	for (size_t i = 0; i < a->n; i++)
		if (shmctl(a->ids[i], IPC_RMID, NULL) < 0)
			return dm_fail(neg_errno(), "SysV shm id %d: IPC_RMID again: %m", a->ids[i]);
	return 0;
}

size_t ipc_removed_shm(const Dm__ContainerIpc *m, int **ret_ids)
{
	size_t n = 0;

	*ret_ids = NULL;
	for (size_t i = 0; m && i < m->n_shm; i++)
		if (m->shm[i]->has_removed && m->shm[i]->removed)
			APPEND(*ret_ids, n, m->shm[i]->perm->id);
	return n;
}

int ipc_remove_shm(pid_t pid, const int *ids, size_t n)
{
	struct remove_arg a = { ids, n };

	return n ? in_ipc_ns(pid, remove_child, &a, CHILD_WAIT_HELPER_MS, "removing segments", NULL) : 0;
}

int ipc_restore(pid_t pid, const char *images_dir, const Dm__ContainerIpc *m)
{
	struct restore_arg a = { images_dir, m };

	if (!m)
		return 0;
	return in_ipc_ns(pid, restore_child, &a, CHILD_WAIT_COPY_MS, "making the objects", NULL);
}
