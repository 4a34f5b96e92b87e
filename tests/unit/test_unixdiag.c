/* SPDX-License-Identifier: MIT */
/*
 * src/proc/unixdiag.c: the unix_diag parser on messages made by hand (good
 * and malformed), and the live table against sockets of this process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "proc/unixdiag.h"
#include "base/util.h"

#include <libmnl/libmnl.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

static struct nlmsghdr *msg_head(char *buf, uint8_t type, uint8_t state, uint32_t ino)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	struct unix_diag_msg *m = mnl_nlmsg_put_extra_header(nlh, sizeof(*m));
	m->udiag_family = AF_UNIX;
	m->udiag_type = type;
	m->udiag_state = state;
	m->udiag_ino = ino;
	return nlh;
}

static void test_parse_listener(void **state)
{
	char buf[1024] = { 0 };
	struct nlmsghdr *nlh = msg_head(buf, SOCK_STREAM, PROC_UNIX_LISTEN, 77);
	struct unix_diag_vfs vfs = { .udiag_vfs_ino = 1234, .udiag_vfs_dev = (8u << 20) | 3 };
	struct unix_diag_rqlen q = { .udiag_rqueue = 2, .udiag_wqueue = 128 };
	uint32_t icons[2] = { 80, 81 };
	struct proc_unix_sk s;

	(void)state;
	mnl_attr_put(nlh, UNIX_DIAG_NAME, 9, "/run/x.s\0");
	mnl_attr_put(nlh, UNIX_DIAG_VFS, sizeof(vfs), &vfs);
	mnl_attr_put(nlh, UNIX_DIAG_ICONS, sizeof(icons), icons);
	mnl_attr_put(nlh, UNIX_DIAG_RQLEN, sizeof(q), &q);
	mnl_attr_put_u8(nlh, UNIX_DIAG_SHUTDOWN, 2);
	assert_int_equal(proc_unix_parse(nlh, nlh->nlmsg_len, &s), 0);
	assert_int_equal(s.ino, 77);
	assert_int_equal(s.type, SOCK_STREAM);
	assert_int_equal(s.state, PROC_UNIX_LISTEN);
	assert_int_equal(s.name_len, 9);
	assert_memory_equal(s.name, "/run/x.s", 9);
	assert_true(s.has_vfs);
	assert_int_equal(s.vfs_ino, 1234);
	assert_int_equal(s.vfs_dev, makedev(8, 3));
	assert_int_equal(s.n_icons, 2);
	assert_int_equal(s.icons[0], 80);
	assert_int_equal(s.icons[1], 81);
	assert_int_equal(s.rqueue, 2);
	assert_int_equal(s.wqueue, 128);
	assert_int_equal(s.shutdown, 2);
	assert_int_equal(s.peer_ino, 0);
	free(s.icons);
}

static void test_parse_bad(void **state)
{
	char buf[1024] = { 0 }, name[200];
	struct proc_unix_sk s;

	(void)state;
	/* a name longer than sun_path */
	memset(name, 'a', sizeof(name));
	struct nlmsghdr *nlh = msg_head(buf, SOCK_DGRAM, PROC_UNIX_CLOSE, 5);
	mnl_attr_put(nlh, UNIX_DIAG_NAME, sizeof(name), name);
	assert_int_equal(proc_unix_parse(nlh, nlh->nlmsg_len, &s), -EBADMSG);
	/* not AF_UNIX */
	nlh = msg_head(buf, SOCK_DGRAM, PROC_UNIX_CLOSE, 5);
	((struct unix_diag_msg *)mnl_nlmsg_get_payload(nlh))->udiag_family = AF_INET;
	assert_int_equal(proc_unix_parse(nlh, nlh->nlmsg_len, &s), -EBADMSG);
	/* shorter than its header says */
	nlh = msg_head(buf, SOCK_DGRAM, PROC_UNIX_CLOSE, 5);
	mnl_attr_put_u32(nlh, UNIX_DIAG_PEER, 9);
	assert_int_equal(proc_unix_parse(nlh, nlh->nlmsg_len - 4, &s), -EBADMSG);
	/* no payload */
	nlh = mnl_nlmsg_put_header(buf);
	assert_int_equal(proc_unix_parse(nlh, nlh->nlmsg_len, &s), -EBADMSG);
}

static uint64_t ino_of(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static void test_live(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct proc_unix_table t;
	struct stat st;
	int sp[2], l, c;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/test_unixdiag.%d", getpid());
	unlink(sa.sun_path);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
	assert_int_equal(send(sp[0], "hello", 5, 0), 5);
	assert_int_equal(shutdown(sp[0], SHUT_WR), 0);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(l >= 0 && c >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 5), 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(stat(sa.sun_path, &st), 0);

	assert_int_equal(proc_unix_read(&t), 0);
	const struct proc_unix_sk *a = proc_unix_find(&t, ino_of(sp[0]));
	const struct proc_unix_sk *b = proc_unix_find(&t, ino_of(sp[1]));
	const struct proc_unix_sk *ls = proc_unix_find(&t, ino_of(l));
	const struct proc_unix_sk *cs = proc_unix_find(&t, ino_of(c));
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(ls);
	assert_non_null(cs);
	assert_int_equal(a->type, SOCK_SEQPACKET);
	assert_int_equal(a->peer_ino, b->ino);
	assert_int_equal(b->peer_ino, a->ino);
	assert_int_equal(a->shutdown, 2);      /* SEND_SHUTDOWN */
	assert_int_equal(b->shutdown, 1);      /* mirrored: RCV_SHUTDOWN */
	assert_int_equal(b->rqueue, 5);
	assert_int_equal(a->name_len, 0);
	assert_int_equal(ls->state, PROC_UNIX_LISTEN);
	assert_int_equal(ls->wqueue, 5);       /* the backlog */
	assert_int_equal(ls->rqueue, 1);       /* one pending */
	assert_int_equal(ls->n_icons, 1);
	assert_int_equal(ls->icons[0], cs->ino); /* by the client's inode */
	assert_true(ls->has_vfs);
	assert_int_equal(ls->vfs_ino, st.st_ino);
	assert_int_equal(ls->vfs_dev, st.st_dev);
	assert_int_equal(strnlen(ls->name, ls->name_len), strlen(sa.sun_path));
	assert_int_equal(cs->state, PROC_UNIX_ESTABLISHED);
	assert_int_equal(cs->peer_ino, 0);     /* the embryo has no inode */
	assert_null(proc_unix_find(&t, 1));
	proc_unix_table_done(&t);
	close(sp[0]);
	close(sp[1]);
	close(c);
	close(l);
	unlink(sa.sun_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listener),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_live),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
