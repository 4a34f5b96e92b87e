/* SPDX-License-Identifier: MIT */
/*
 * src/container/runc*.c without a container: the target syntax, the
 * destination's checks before a migration freezes anything, and the stub
 * runc runs as the container's init (it must be static, with no loader: the
 * rootfs may have none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "container/runc.h"
#include "container/runc-internal.h"
#include "container/dirtar.h"
#include "base/log.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>

extern const unsigned char runc_stub_bin[];
extern const size_t runc_stub_bin_len;

static void test_parse_target(void **state)
{
	const char *id = NULL;
	pid_t pid = 0;

	(void)state;
	assert_int_equal(runc_parse_target("runc:web-1", &id, &pid), 1);
	assert_string_equal(id, "web-1");
	assert_int_equal(runc_parse_target("pid:1234", &id, &pid), 0);
	assert_int_equal(pid, 1234);
	assert_int_equal(runc_parse_target("runc:", &id, &pid), -EINVAL);
	assert_non_null(strstr(dm_last_error(), "bad container id"));
	assert_int_equal(runc_parse_target("runc:../x", &id, &pid), -EINVAL);
	assert_int_equal(runc_parse_target("pid:0", &id, &pid), -EINVAL);
	assert_int_equal(runc_parse_target("pid:x", &id, &pid), -EINVAL);
	assert_int_equal(runc_parse_target("1234", &id, &pid), -EINVAL);
	assert_non_null(strstr(dm_last_error(), "pid:PID or runc:ID"));
}

static void test_check_here(void **state)
{
	(void)state;
	/* an empty state root knows no container */
	char root[] = "/tmp/dm-unit-runc.XXXXXX";
	assert_non_null(mkdtemp(root));
	int r = runc_check_here(root, "nosuch", "/");
	if (r == -ENOENT && (strstr(dm_last_error(), "cannot run runc") || strstr(dm_last_error(), "no runc in PATH"))) {
		rmdir(root);
		skip();
	}
	assert_int_equal(r, 0);
	/* a directory under the root with the id: runc is asked (no state in it: free) */
	char busy[64];
	snprintf(busy, sizeof(busy), "%s/busy", root);
	assert_int_equal(mkdir(busy, 0700), 0);
	assert_int_equal(runc_check_here(root, "busy", "/"), 0);
	rmdir(busy);
	/* no runc to run: refused, named, though the id is free */
	const char *path = getenv("PATH");
	char *saved = path ? strdup(path) : NULL;
	setenv("PATH", "/nonexistent", 1);
	assert_int_equal(runc_check_here(root, "nosuch", "/"), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "no runc in PATH"));
	if (saved) {
		setenv("PATH", saved, 1);
		free(saved);
	}
	assert_int_equal(runc_check_here(root, "nosuch", "/nonexistent/rootfs"), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "rootfs /nonexistent/rootfs is not here"));
	assert_int_equal(runc_check_here(root, "a/b", "/"), -EINVAL);
	rmdir(root);
}

static void test_stub_static(void **state)
{
	(void)state;
	assert_true(runc_stub_bin_len > sizeof(Elf64_Ehdr));
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)runc_stub_bin;
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
	assert_int_equal(eh->e_type, ET_EXEC);	/* not PIE: nothing to relocate */
	assert_true(eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf64_Phdr) <= runc_stub_bin_len);
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(runc_stub_bin + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++) {
		assert_int_not_equal(ph[i].p_type, PT_INTERP);	/* no loader */
		assert_int_not_equal(ph[i].p_type, PT_DYNAMIC);	/* no libraries */
	}
}


static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static char *get(const char *path)
{
	static char buf[256];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

/* a tree as a tmpfs holds one (a tmpfs of our own: hard links, a FIFO, a
 * symlink, modes, owners, times, an xattr, a socket left out), written by
 * dirtar_create and read back by tar(1) as the restore does */
static char dirtar_top[64];

/* the tmpfs and the directory go whatever the test's end (a failed assertion leaves it) */
static int dirtar_teardown(void **state)
{
	char m[128], cmd[160];
	(void)state;
	if (!dirtar_top[0])
		return 0;
	snprintf(m, sizeof(m), "%s/src", dirtar_top);
	umount2(m, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dirtar_top);
	dirtar_top[0] = 0;
	return system(cmd) < 0 ? -1 : 0;
}

static void test_dirtar(void **state)
{
	char top[] = "/tmp/dm-dirtar.XXXXXX", src[128], out[128], tarf[128], p[256], q[256], cmd[512];
	struct stat a, b;
	size_t n = 0;

	(void)state;
	assert_non_null(mkdtemp(top));
	snprintf(dirtar_top, sizeof(dirtar_top), "%s", top);
	snprintf(src, sizeof(src), "%s/src", top);
	snprintf(out, sizeof(out), "%s/out", top);
	snprintf(tarf, sizeof(tarf), "%s/t.tar", top);
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(out, 0755), 0);
	bool own_fs = geteuid() == 0 && mount("tmpfs", src, "tmpfs", 0, "mode=1777") == 0;
	snprintf(p, sizeof(p), "%s/file", src);
	put(p, "hello", 0640);
	assert_int_equal(chown(p, 1234, 5678) == 0 || geteuid() != 0, true);
	struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	setxattr(p, "user.dm", "v1", 2, 0);	/* where the file system has user xattrs */
	snprintf(q, sizeof(q), "%s/hard", src);
	assert_int_equal(link(p, q), 0);
	snprintf(p, sizeof(p), "%s/dir", src);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/dir/inner", src);
	put(p, "deep", 0600);
	snprintf(p, sizeof(p), "%s/dir/link", src);
	assert_int_equal(symlink("../file", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", src);
	assert_int_equal(mkfifo(p, 0620), 0);
	assert_int_equal(chmod(p, 0620), 0);	/* past the umask */
	snprintf(p, sizeof(p), "%s/sock", src);
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	assert_true(strlen(p) < sizeof(un.sun_path));
	memcpy(un.sun_path, p, strlen(p) + 1);
	assert_int_equal(bind(sfd, (struct sockaddr *)&un, sizeof(un)), 0);

	assert_int_equal(dirtar_create(src, NULL, 0, tarf, &n), 0);
	assert_int_equal(n, 7);	/* . file hard dir dir/inner dir/link fifo */
	snprintf(cmd, sizeof(cmd), "tar --numeric-owner --xattrs -xpf %s -C %s", tarf, out);
	assert_int_equal(system(cmd), 0);
	snprintf(p, sizeof(p), "%s/file", out);
	assert_string_equal(get(p), "hello");
	assert_int_equal(stat(p, &a), 0);
	assert_int_equal(a.st_mode & 07777, 0640);
	assert_int_equal(a.st_mtim.tv_sec, 1000000000);
	if (geteuid() == 0)
		assert_true(a.st_uid == 1234 && a.st_gid == 5678);
	char xv[8] = { 0 };
	snprintf(q, sizeof(q), "%s/file", src);
	if (getxattr(q, "user.dm", xv, sizeof(xv)) == 2) {
		memset(xv, 0, sizeof(xv));
		assert_int_equal(getxattr(p, "user.dm", xv, sizeof(xv)), 2);
		assert_string_equal(xv, "v1");
	}
	snprintf(q, sizeof(q), "%s/hard", out);
	assert_int_equal(stat(q, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_nlink == 2);
	snprintf(p, sizeof(p), "%s/dir", out);
	assert_int_equal(stat(p, &a), 0);
	assert_int_equal(a.st_mode & 07777, 0700);
	snprintf(p, sizeof(p), "%s/dir/inner", out);
	assert_string_equal(get(p), "deep");
	snprintf(p, sizeof(p), "%s/dir/link", out);
	char lt[64] = { 0 };
	assert_int_equal(readlink(p, lt, sizeof(lt)), 7);
	assert_string_equal(lt, "../file");
	snprintf(p, sizeof(p), "%s/fifo", out);
	assert_int_equal(lstat(p, &a), 0);
	assert_true(S_ISFIFO(a.st_mode) && (a.st_mode & 07777) == 0620);
	snprintf(p, sizeof(p), "%s/sock", out);
	assert_int_equal(lstat(p, &a), -1);
	if (own_fs) {
		/* the top's mode, as the tmpfs had it */
		assert_int_equal(stat(out, &a), 0);
		assert_int_equal(a.st_mode & 07777, 01777);
	}

	/* only some names, without descending */
	const char *only[] = { "./dir", "./fifo" };
	assert_int_equal(dirtar_create(src, only, 2, tarf, &n), 0);
	assert_int_equal(n, 2);
	snprintf(cmd, sizeof(cmd), "tar -tf %s | tr '\\n' ' '", tarf);
	FILE *f = popen(cmd, "r");
	char list[256] = { 0 };
	assert_non_null(fgets(list, sizeof(list), f));
	pclose(f);
	assert_string_equal(list, "./dir/ ./fifo ");

	/* a missing top is named */
	snprintf(p, sizeof(p), "%s/nosuch", top);
	assert_int_equal(dirtar_create(p, NULL, 0, tarf, &n), -ENOENT);
	assert_non_null(strstr(dm_last_error(), "nosuch"));

	close(sfd);
	if (own_fs)
		umount(src);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	assert_int_equal(system(cmd), 0);
}

/* A child in a network namespace of its own, waiting for its pipe to close */
static pid_t netns_child(int *ret_wfd)
{
	int ready[2], hold[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char b;
		close(ready[0]);
		close(hold[1]);
		if (unshare(CLONE_NEWNET) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		(void)!read(hold[0], &b, 1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	char b;
	assert_int_equal(read(ready[0], &b, 1), 1);
	close(ready[0]);
	*ret_wfd = hold[1];
	return pid;
}

static Dm__Container *msg_new(void)
{
	Dm__Container *m = malloc(sizeof(*m));
	dm__container__init(m);
	return m;
}

/* A network read at START: one interface, named "early" */
static Dm__Container *early_net(void)
{
	Dm__Container *net = msg_new();
	Dm__ContainerNetIf *nif = malloc(sizeof(*nif));
	dm__container_net_if__init(nif);
	nif->name = strdup("early");
	APPEND(net->interfaces, net->n_interfaces, nif);
	return net;
}

/* A network read at START stands for the frozen record's when the watches
 * opened before it saw nothing; a change in the container's namespace
 * since (here: lo set up) makes the frozen record read it again.  Last:
 * it leaves the test process in a network namespace of its own. */
static void test_net_early(void **state)
{
	(void)state;
	int hold;
	/* our side of the watch in a namespace of our own, where nothing
	 * else changes anything (the host's may change under a busy CI) */
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	pid_t pid = netns_child(&hold);
	struct runc_ct ct = { .pid = pid, .id = (char *)"unit", .net_watch = { -1, -1 } };
	char cmd[128];

	/* nothing changed: the early read is taken over */
	ct.msg = msg_new();
	runc_net_early_watch(&ct);
	assert_true(ct.net_watch[0] >= 0 && ct.net_watch[1] >= 0);
	runc_net_early_keep(&ct, early_net());
	assert_int_equal(runc_record_net_frozen(&ct), 0);
	assert_true(ct.net_early_used);
	assert_int_equal(ct.msg->n_interfaces, 1);
	assert_string_equal(ct.msg->interfaces[0]->name, "early");
	assert_true(!ct.net_early);
	runc_net_early_drop(&ct);
	assert_true(ct.net_watch[0] < 0 && ct.net_watch[1] < 0);
	dm__container__free_unpacked(ct.msg, NULL);

	/* changed since: read again (its namespace has lo only) */
	ct.msg = msg_new();
	runc_net_early_watch(&ct);
	runc_net_early_keep(&ct, early_net());
	snprintf(cmd, sizeof(cmd), "nsenter -t %d -n ip link set lo up", (int)pid);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(runc_record_net_frozen(&ct), 0);
	assert_false(ct.net_early_used);
	assert_int_equal(ct.msg->n_interfaces, 1);
	assert_string_equal(ct.msg->interfaces[0]->name, "lo");
	assert_true(!ct.net_early);
	runc_net_early_drop(&ct);
	dm__container__free_unpacked(ct.msg, NULL);

	close(hold);
	waitpid(pid, NULL, 0);
}

static void put_file(const char *path, const char *v)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(v, f);
	fclose(f);
}

static char *file_str(const char *path)
{
	static char b[64];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(b, 1, sizeof(b) - 1, f);
	fclose(f);
	b[n] = 0;
	return b;
}

/*
 * The put-back compares the record's limits with those the new container
 * had at its launch (runc_cgroup_snapshot()), unless a file was written
 * since: then it reads them.  A v2 file runc cannot update (cpu.weight) is
 * written directly, so no runc is needed: a state root whose state.json
 * names a directory of plain files stands for the cgroup.
 */
static void test_cgroup_snapshot(void **state)
{
	(void)state;
	char top[] = "/tmp/dm-unit-cg.XXXXXX", p[256], cg[256];
	assert_non_null(mkdtemp(top));
	snprintf(cg, sizeof(cg), "%s/cg", top);
	assert_int_equal(mkdir(cg, 0755), 0);
	snprintf(p, sizeof(p), "%s/c1", top);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/c1/state.json", top);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fprintf(f, "{\"cgroup_paths\": {\"\": \"%s\"}}", cg);
	fclose(f);
	char weight[300];
	snprintf(weight, sizeof(weight), "%s/cpu.weight", cg);
	put_file(weight, "100\n");

	Dm__ContainerCgroupValue v = DM__CONTAINER_CGROUP_VALUE__INIT, *vp = &v;
	v.controller = (char *)"";
	v.file = (char *)"cpu.weight";
	v.value = (char *)"100";
	Dm__Container m = DM__CONTAINER__INIT;
	m.n_cgroup = 1;
	m.cgroup = &vp;
	struct runc_started s = { .root = top, .id = (char *)"c1", .sock = -1, .root_fd = -1 };

	/* as launched: nothing to write */
	runc_cgroup_snapshot(&s);
	assert_true(s.cg_snap && s.n_cg_now >= 1);
	assert_int_equal(runc_put_back_cgroup(&m, &s), 0);
	assert_string_equal(file_str(weight), "100\n");
	runc_cgroup_snapshot_free(&s);

	/* written after the snapshot (an operator's runc update): read again,
	 * and the record's value written back */
	runc_cgroup_snapshot(&s);
	assert_true(s.cg_snap);
	put_file(weight, "200\n");
	assert_int_equal(runc_put_back_cgroup(&m, &s), 0);
	assert_string_equal(file_str(weight), "100\n"); /* (written over, as a cgroup file is) */
	assert_false(s.cg_snap);
	runc_cgroup_snapshot_free(&s);

	/* a file the snapshot did not read is read then */
	runc_cgroup_snapshot(&s);
	char other[300];
	snprintf(other, sizeof(other), "%s/cpu.max", cg);
	put_file(other, "max 100000\n");
	v.file = (char *)"cpu.max";
	v.value = (char *)"50000 100000";
	assert_int_equal(runc_put_back_cgroup(&m, &s), 0);
	assert_string_equal(file_str(other), "50000 100000");
	runc_cgroup_snapshot_free(&s);

	snprintf(p, sizeof(p), "rm -rf %s", top);
	assert_int_equal(system(p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_target),
		cmocka_unit_test(test_check_here),
		cmocka_unit_test(test_stub_static),
		cmocka_unit_test_teardown(test_dirtar, dirtar_teardown),
		cmocka_unit_test(test_cgroup_snapshot),
		cmocka_unit_test(test_net_early),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
