// SPDX-License-Identifier: MIT
// zdtm: flags=
/*
 * A pseudo-terminal pair (posix_openpt + the slave opened by name, no
 * controlling tty): custom termios (raw-ish, changed control chars,
 * speed), a window size, and data in flight both ways. After restore the
 * slave still belongs to the master (its name matches TIOCGPTN; the index
 * itself may change), termios and window size are kept, and the bytes
 * come out in order both ways.
 */
#include "zdtm.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define TO_SLAVE "bytes-for-the-slave\001\002\003"
#define TO_MASTER "bytes-for-the-master\377"

static void read_exact(int fd, const char *want, size_t len, const char *what)
{
	char buf[256];
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 5000) != 1)
			fail("%s: only %zu of %zu bytes arrived", what, got, len);
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			fail_errno("%s: read", what);
		got += (size_t)n;
	}
	if (memcmp(buf, want, len))
		fail("%s: bytes differ ('%.*s')", what, (int)len, buf);
}

static void check_pair(int master, int slave, const char *when)
{
	char link[64], name[64];
	unsigned int ptn;
	ssize_t n;

	if (ioctl(master, TIOCGPTN, &ptn))
		fail_errno("%s: TIOCGPTN", when);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", slave);
	n = readlink(link, name, sizeof(name) - 1);
	if (n < 0)
		fail_errno("%s: readlink slave", when);
	name[n] = '\0';
	snprintf(link, sizeof(link), "/dev/pts/%u", ptn);
	if (strcmp(name, link))
		fail("%s: slave fd is %s, but the master's pty is %s", when, name, link);
}

int main(int argc, char **argv)
{
	struct termios t0, t;
	struct winsize ws0 = { .ws_row = 33, .ws_col = 111, .ws_xpixel = 7, .ws_ypixel = 9 }, ws;
	int master, slave;

	test_init(argc, argv);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		fail_errno("posix_openpt");
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	if (slave < 0)
		fail_errno("open %s", ptsname(master));
	if (tcgetattr(slave, &t0))
		fail_errno("tcgetattr");
	t0.c_lflag &= ~(ICANON | ECHO | ECHOE | ISIG);
	t0.c_iflag &= ~(ICRNL | IXON);
	t0.c_oflag &= ~OPOST;
	t0.c_cc[VMIN] = 1;
	t0.c_cc[VTIME] = 0;
	t0.c_cc[VERASE] = 0x08;
	t0.c_cc[VKILL] = 0x15;
	cfsetispeed(&t0, B19200);
	cfsetospeed(&t0, B19200);
	if (tcsetattr(slave, TCSANOW, &t0) || tcgetattr(slave, &t0))
		fail_errno("tcsetattr");
	if (ioctl(master, TIOCSWINSZ, &ws0))
		fail_errno("TIOCSWINSZ");
	check_pair(master, slave, "before");
	test_write_all(master, TO_SLAVE, strlen(TO_SLAVE));
	test_write_all(slave, TO_MASTER, strlen(TO_MASTER));

	test_ready();
	test_wait_check();

	check_pair(master, slave, "after restore");
	if (tcgetattr(slave, &t))
		fail_errno("tcgetattr after restore");
	if (t.c_iflag != t0.c_iflag || t.c_oflag != t0.c_oflag || t.c_cflag != t0.c_cflag ||
	    t.c_lflag != t0.c_lflag)
		fail("termios flags differ: i %#x/%#x o %#x/%#x c %#x/%#x l %#x/%#x", t.c_iflag,
		     t0.c_iflag, t.c_oflag, t0.c_oflag, t.c_cflag, t0.c_cflag, t.c_lflag, t0.c_lflag);
	if (memcmp(t.c_cc, t0.c_cc, sizeof(t.c_cc)))
		fail("termios control characters differ");
	if (cfgetospeed(&t) != B19200 || cfgetispeed(&t) != B19200)
		fail("termios speed differs");
	if (ioctl(slave, TIOCGWINSZ, &ws) || memcmp(&ws, &ws0, sizeof(ws)))
		fail("window size %ux%u, was %ux%u", ws.ws_row, ws.ws_col, ws0.ws_row, ws0.ws_col);
	read_exact(slave, TO_SLAVE, strlen(TO_SLAVE), "master->slave in flight");
	read_exact(master, TO_MASTER, strlen(TO_MASTER), "slave->master in flight");
	test_write_all(master, "new", 3);
	read_exact(slave, "new", 3, "master->slave after restore");
	pass();
}
