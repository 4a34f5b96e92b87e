/* SPDX-License-Identifier: MIT */
/*
 * The shared key: 32 random bytes stored as 64 hex digits and a newline, in a
 * file only its owner can read.  Both hosts of a migration hold a copy.
 */
#define LOG_PREFIX "net: "
#include "net/net.h"
#include "base/log.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define KEY_HEX_LEN (2 * NET_KEY_LEN)

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int net_keygen(const char *path)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t key[NET_KEY_LEN];
	char text[KEY_HEX_LEN + 1];
	int r;

	if (RAND_bytes(key, sizeof(key)) != 1)
		return dm_fail(-EIO, "cannot make a key: the random generator failed");
	for (size_t i = 0; i < NET_KEY_LEN; i++) {
		text[2 * i] = digits[key[i] >> 4];
		text[2 * i + 1] = digits[key[i] & 15];
	}
	text[KEY_HEX_LEN] = '\n';
	OPENSSL_cleanse(key, sizeof(key));

	/* O_EXCL: never replace a key that a peer may already share. */
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = neg_errno();
		OPENSSL_cleanse(text, sizeof(text));
		if (r == -EEXIST)
			return dm_fail(r, "%s already exists: refusing to overwrite a key", path);
		return dm_fail(r, "cannot create key file %s: %s", path, strerror(-r));
	}
	/* The umask may have taken bits away; it must not decide for us. */
	r = fchmod(fd, 0600) < 0 ? neg_errno() : 0;
	if (r == 0)
		r = write_all(fd, text, sizeof(text));
	if (r == 0 && fsync(fd) < 0)
		r = neg_errno();
	OPENSSL_cleanse(text, sizeof(text));
	if (r < 0) {
		unlink(path);
		return dm_fail(r, "cannot write key file %s: %s", path, strerror(-r));
	}
	return 0;
}

int net_key_load(const char *path, struct net_key *ret_key)
{
	_cleanup_free_ char *buf = NULL;
	struct net_key key;
	struct stat st;
	size_t len;
	int r;

	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		r = neg_errno();
		return dm_fail(r, "cannot open key file %s: %s", path, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = neg_errno();
		return dm_fail(r, "cannot stat key file %s: %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return dm_fail(-EINVAL, "key file %s is not a regular file", path);
	if (st.st_mode & 077)
		return dm_fail(-EPERM,
			       "key file %s is accessible by group or others (mode %04o): "
			       "run 'chmod 600 %s'",
			       path, (unsigned)(st.st_mode & 07777), path);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return dm_fail(-EPERM, "key file %s belongs to uid %u, not to us (uid %u) or root",
			       path, (unsigned)st.st_uid, (unsigned)geteuid());

	r = read_full_fd(fd, 256, &buf, &len);
	if (r == -EFBIG)
		return dm_fail(-EBADMSG, "key file %s: too long for a key", path);
	if (r < 0)
		return dm_fail(r, "cannot read key file %s: %s", path, strerror(-r));

	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	r = 0;
	if (len != KEY_HEX_LEN)
		r = dm_fail(-EBADMSG, "key file %s: expected %d hex digits, found %zu characters",
			    path, KEY_HEX_LEN, len);
	for (size_t i = 0; r == 0 && i < NET_KEY_LEN; i++) {
		int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
		if (hi < 0 || lo < 0)
			r = dm_fail(-EBADMSG, "key file %s: not a hex digit at offset %zu", path,
				    2 * i + (hi < 0 ? 0 : 1));
		else
			key.bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	OPENSSL_cleanse(buf, len);
	if (r == 0)
		*ret_key = key;
	OPENSSL_cleanse(&key, sizeof(key));
	return r;
}
