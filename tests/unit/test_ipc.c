/* SPDX-License-Identifier: MIT */
/*
 * src/container/ipc.c without a container: two fresh IPC namespaces held by
 * children of ours.  What is made in the first is dumped, restored into the
 * second, and the second dumped again: the two dumps must be the same (ids,
 * owners, modes, values, messages in order, shm contents), and dumping the
 * first twice must give the same (the POSIX queues read and written back,
 * the SysV messages copied, nothing consumed).  Needs root (setns, the
 * *_next_id sysctls); skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "container/ipc.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* the namespace children of the running test: killed by its teardown too,
 * so that a failing assertion leaves none behind */
static pid_t kids[4];
static size_t nkids;

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

/* A child in a new IPC namespace; with populate, the objects made in it
 * first (exit 1 when that fails).  It waits to be killed. */
static pid_t ns_child(bool populate)
{
	int p[2];
	char c = 0;

	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (unshare(CLONE_NEWIPC) < 0)
			_exit(1);
		if (populate) {
			umask(0);
			int dead = shmget(IPC_PRIVATE, 4096, 0600); /* an id past the first */
			shmctl(dead, IPC_RMID, NULL);
			int a = shmget(0x1111, 5 * 4096 + 7, IPC_CREAT | 0640);
			char *m = a < 0 ? (void *)-1 : shmat(a, NULL, 0);
			if (m == (void *)-1)
				_exit(1);
			memset(m, 0xab, 4096);
			strcpy(m + 3 * 4096 + 1, "third page"); /* pages 1, 2 and 4 stay holes */
			shmdt(m);
			int s = semget(0x2222, 3, IPC_CREAT | 0600);
			unsigned short v[3] = { 5, 0, 300 };
			if (s < 0 || semctl(s, 0, SETALL, (union semun){ .array = v }) < 0)
				_exit(1);
			int q = msgget(IPC_PRIVATE, 0644);
			struct msqid_ds qd;
			if (q < 0 || msgctl(q, IPC_STAT, &qd) < 0)
				_exit(1);
			qd.msg_perm.uid = 4242;
			qd.msg_qbytes = 9000;
			if (msgctl(q, IPC_SET, &qd) < 0)
				_exit(1);
			struct { long t; char x[64]; } msg = { 3, "three" };
			if (msgsnd(q, &msg, 5, 0) < 0)
				_exit(1);
			msg.t = 1;
			strcpy(msg.x, "one!");
			if (msgsnd(q, &msg, 4, 0) < 0)
				_exit(1);
			struct mq_attr at = { .mq_maxmsg = 3, .mq_msgsize = 32 };
			mqd_t mq = mq_open("/unitq", O_CREAT | O_WRONLY, 0604, &at);
			if (mq == (mqd_t)-1 || mq_send(mq, "a", 1, 2) < 0 || mq_send(mq, "bb", 2, 7) < 0 ||
			    mq_send(mq, "c", 1, 2) < 0)
				_exit(1);
			mq_close(mq);
		}
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (nkids < 4)
		kids[nkids++] = pid;
	ssize_t n = read(p[0], &c, 1);
	close(p[0]);
	return n == 1 ? pid : -1;
}

static void kill_child(pid_t pid)
{
	for (size_t i = 0; i < nkids; i++)
		if (kids[i] == pid) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			kids[i] = kids[--nkids];
			return;
		}
}

static int teardown(void **state)
{
	(void)state;
	while (nkids)
		kill_child(kids[0]);
	return 0;
}

static Dm__ContainerIpc *dump(pid_t pid, const char *dir)
{
	struct ipc_dump *j = NULL;
	Dm__ContainerIpc *m = NULL;

	assert_int_equal(ipc_dump_start(pid, dir, &j), 0);
	int r = ipc_dump_finish(j, &m);
	if (r < 0)
		fail_msg("ipc dump: %s", dm_last_error());
	return m;
}

static void assert_same(const Dm__ContainerIpc *a, const Dm__ContainerIpc *b)
{
	size_t la = dm__container_ipc__get_packed_size(a), lb = dm__container_ipc__get_packed_size(b);
	uint8_t *pa = malloc(la), *pb = malloc(lb);

	dm__container_ipc__pack(a, pa);
	dm__container_ipc__pack(b, pb);
	assert_int_equal(la, lb);
	assert_memory_equal(pa, pb, la);
	free(pa);
	free(pb);
}

static void assert_same_file(const char *d1, const char *d2, const char *name)
{
	char p1[256], p2[256], *b1 = NULL, *b2 = NULL;
	size_t l1 = 0, l2 = 0;

	snprintf(p1, sizeof(p1), "%s/%s", d1, name);
	snprintf(p2, sizeof(p2), "%s/%s", d2, name);
	assert_int_equal(read_full_file(p1, 1 << 20, &b1, &l1), 0);
	assert_int_equal(read_full_file(p2, 1 << 20, &b2, &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b1);
	free(b2);
}

static void test_round_trip(void **state)
{
	char d1[] = "/tmp/dm-unit-ipc1.XXXXXX", d2[] = "/tmp/dm-unit-ipc2.XXXXXX";

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(d1));
	assert_non_null(mkdtemp(d2));
	pid_t a = ns_child(true), b = ns_child(false);
	assert_true(a > 0);
	assert_true(b > 0);

	Dm__ContainerIpc *m1 = dump(a, d1);
	assert_non_null(m1);
	assert_int_equal(m1->n_shm, 1);
	assert_int_equal(m1->shm[0]->size, 5 * 4096 + 7);
	assert_int_equal(m1->shm[0]->perm->key, 0x1111);
	assert_true(m1->shm[0]->perm->id > 0);
	assert_int_equal(m1->n_sem, 1);
	assert_int_equal(m1->sem[0]->n_values, 3);
	assert_int_equal(m1->sem[0]->values[2], 300);
	assert_int_equal(m1->n_msq, 1);
	assert_int_equal(m1->msq[0]->qbytes, 9000);
	assert_int_equal(m1->msq[0]->perm->uid, 4242);
	assert_int_equal(m1->msq[0]->n_msgs, 2);
	assert_int_equal(m1->msq[0]->msgs[0]->type, 3);
	assert_int_equal(m1->n_mqueue, 1);
	assert_string_equal(m1->mqueue[0]->name, "unitq");
	assert_int_equal(m1->mqueue[0]->mode, 0604);
	assert_int_equal(m1->mqueue[0]->n_msgs, 3);
	/* priority first, FIFO within one */
	assert_memory_equal(m1->mqueue[0]->msgs[0]->text.data, "bb", 2);
	assert_memory_equal(m1->mqueue[0]->msgs[1]->text.data, "a", 1);
	assert_memory_equal(m1->mqueue[0]->msgs[2]->text.data, "c", 1);

	/* nothing consumed: a second dump is the same */
	char d3[] = "/tmp/dm-unit-ipc3.XXXXXX";
	assert_non_null(mkdtemp(d3));
	Dm__ContainerIpc *again = dump(a, d3);
	assert_non_null(again);
	assert_same(m1, again);

	/* restored elsewhere, it dumps the same: same ids, and the contents */
	if (ipc_restore(b, d1, m1) < 0)
		fail_msg("ipc restore: %s", dm_last_error());
	Dm__ContainerIpc *m2 = dump(b, d2);
	assert_non_null(m2);
	assert_same(m1, m2);
	assert_same_file(d1, d2, m1->shm[0]->contents);

	/* an id taken already is refused, named */
	assert_true(ipc_restore(b, d1, m1) < 0);
	assert_non_null(strstr(dm_last_error(), "key 4369 (id"));
	assert_non_null(strstr(dm_last_error(), "exists already"));

	kill_child(a);
	kill_child(b);
	dm__container_ipc__free_unpacked(m1, NULL);
	dm__container_ipc__free_unpacked(m2, NULL);
	dm__container_ipc__free_unpacked(again, NULL);
	rm_rf(d1);
	rm_rf(d2);
	rm_rf(d3);
}

/* A message longer than msgmax is now (lowered after it was sent): MSG_COPY
 * cannot copy it (EINVAL), the dump refuses the queue, named. */
static void test_msg_over_msgmax(void **state)
{
	char d[] = "/tmp/dm-unit-ipcm.XXXXXX";
	int p[2];
	char c;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(d));
	assert_int_equal(pipe(p), 0);
	pid_t a = fork();
	assert_true(a >= 0);
	if (a == 0) {
		struct { long t; char x[500]; } m = { 1, { 0 } };
		int q, fd;
		if (unshare(CLONE_NEWIPC) < 0 || (q = msgget(IPC_PRIVATE, 0600)) < 0 ||
		    msgsnd(q, &m, sizeof(m.x), 0) < 0 ||
		    (fd = open("/proc/sys/kernel/msgmax", O_WRONLY)) < 0 || write(fd, "100", 3) != 3 ||
		    write(p[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	kids[nkids++] = a;
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	struct ipc_dump *j = NULL;
	Dm__ContainerIpc *m = NULL;
	int r = ipc_dump_start(a, d, &j);
	if (r >= 0)
		r = ipc_dump_finish(j, &m);
	kill_child(a);
	rm_rf(d);
	assert_int_equal(r, -ENOTSUP);
	assert_non_null(strstr(dm_last_error(), "message 1 of 1 is longer than the namespace's msgmax (100)"));
}

/* An empty namespace dumps as nothing. */
static void test_empty(void **state)
{
	char d[] = "/tmp/dm-unit-ipc0.XXXXXX";

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(d));
	pid_t a = ns_child(false);
	assert_true(a > 0);
	assert_null(dump(a, d));
	kill_child(a);
	rm_rf(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_round_trip, teardown),
		cmocka_unit_test_teardown(test_empty, teardown),
		cmocka_unit_test_teardown(test_msg_over_msgmax, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
