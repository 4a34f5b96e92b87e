// SPDX-License-Identifier: MIT
// zdtm: flags=pidns
/*
 * Capabilities, per thread, as root:
 *   main:  CAP_NET_RAW, CAP_SYS_TIME, CAP_MKNOD dropped from the effective
 *          set, CAP_SYS_TIME also from the permitted set; inheritable
 *          {CAP_NET_BIND_SERVICE, CAP_CHOWN}; CAP_NET_BIND_SERVICE ambient
 *   all:   CAP_SYS_BOOT and CAP_AUDIT_WRITE dropped from the bounding set;
 *          securebits KEEP_CAPS | NO_SETUID_FIXUP
 *   T:     like main, and CAP_CHOWN dropped from its effective set
 * After restore capget() in each thread, the bounding and ambient sets
 * and the securebits are the same, and a raw socket is refused.
 * (pidns: capget names the thread by its tid.)
 */
#include "zdtm.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

struct caps {
	struct __user_cap_data_struct d[2];
};

static int last_cap;
static atomic_int t_ready;
static struct caps t_before;
static char t_err[256];

static void get_caps(struct caps *c)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };

	if (syscall(SYS_capget, &h, c->d))
		fail_errno("capget");
}

static void set_caps(struct caps *c)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };

	if (syscall(SYS_capset, &h, c->d))
		fail_errno("capset");
}

static void drop(struct caps *c, int cap, bool eff, bool prm)
{
	if (eff)
		c->d[cap / 32].effective &= ~(1U << (cap % 32));
	if (prm)
		c->d[cap / 32].permitted &= ~(1U << (cap % 32));
}

static void add_inh(struct caps *c, int cap)
{
	c->d[cap / 32].inheritable |= 1U << (cap % 32);
}

static int diff(const struct caps *a, const struct caps *b, char *out, size_t size)
{
	for (int i = 0; i < 2; i++)
		if (a->d[i].effective != b->d[i].effective || a->d[i].permitted != b->d[i].permitted ||
		    a->d[i].inheritable != b->d[i].inheritable) {
			snprintf(out, size, "word %d: eff %#x prm %#x inh %#x, were %#x %#x %#x", i,
				 a->d[i].effective, a->d[i].permitted, a->d[i].inheritable, b->d[i].effective,
				 b->d[i].permitted, b->d[i].inheritable);
			return 1;
		}
	return 0;
}

static void *thread_main(void *arg)
{
	struct caps c, now;

	(void)arg;
	get_caps(&c);
	drop(&c, CAP_CHOWN, true, false);
	set_caps(&c);
	get_caps(&t_before);
	atomic_store(&t_ready, 1);
	test_wait_check();
	get_caps(&now);
	if (diff(&now, &t_before, t_err + 10, sizeof(t_err) - 10))
		memcpy(t_err, "thread T: ", 10);
	return NULL;
}

static bool ready(void *arg)
{
	(void)arg;
	return atomic_load(&t_ready) != 0;
}

int main(int argc, char **argv)
{
	struct caps c, before, now;
	int bnd[64], amb[64], secbits;
	char err[256];
	pthread_t t;

	test_init(argc, argv);
	for (last_cap = 0; prctl(PR_CAPBSET_READ, last_cap + 1) >= 0; last_cap++)
		;
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) || prctl(PR_CAPBSET_DROP, CAP_AUDIT_WRITE))
		fail_errno("PR_CAPBSET_DROP");
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP))
		fail_errno("PR_SET_SECUREBITS");
	get_caps(&c);
	drop(&c, CAP_NET_RAW, true, false);
	drop(&c, CAP_MKNOD, true, false);
	drop(&c, CAP_SYS_TIME, true, true);
	add_inh(&c, CAP_NET_BIND_SERVICE);
	add_inh(&c, CAP_CHOWN);
	set_caps(&c);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0))
		fail_errno("PR_CAP_AMBIENT_RAISE");
	if (pthread_create(&t, NULL, thread_main, NULL))
		fail("pthread_create");
	if (!test_poll(ready, NULL, 10000))
		fail("thread did not start");
	get_caps(&before);
	for (int i = 0; i <= last_cap; i++) {
		bnd[i] = prctl(PR_CAPBSET_READ, i);
		amb[i] = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, i, 0, 0);
	}
	secbits = prctl(PR_GET_SECUREBITS);

	test_ready();
	test_wait_check();

	get_caps(&now);
	if (diff(&now, &before, err, sizeof(err)))
		fail("main: %s", err);
	for (int i = 0; i <= last_cap; i++) {
		if (prctl(PR_CAPBSET_READ, i) != bnd[i])
			fail("bounding set: cap %d is %d, was %d", i, prctl(PR_CAPBSET_READ, i), bnd[i]);
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, i, 0, 0) != amb[i])
			fail("ambient set: cap %d differs", i);
	}
	if (prctl(PR_GET_SECUREBITS) != secbits)
		fail("securebits %#x, were %#x", prctl(PR_GET_SECUREBITS), secbits);
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);

	if (fd >= 0)
		fail("raw socket allowed: CAP_NET_RAW is effective again");
	if (errno != EPERM)
		fail_errno("raw socket: want EPERM");
	pthread_join(t, NULL);
	if (t_err[0])
		fail("%s", t_err);
	pass();
}
