#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A rootfs for the --rootfs-dir e2e test: mkrootfs.py DIR WORKLOAD [NDIRS FILES_PER_DIR]
# Byte i of every generated file PATH (as the chrooted tree sees it) is
# (fnv1a(PATH) + i) & 0xff: rootfs_work.c checks them.  Besides: a working
# set in /ws, mixed sizes in /data (a few of 1-3 MiB, most small), symlinks,
# hard links, a sparse file, xattrs, a fifo and a device node, /out for writes,
# and /late: files the workload never touches, which the e2e test reads in
# the destination before they have arrived (a small one with a hard link, a
# large one of several chunks).
import os, shutil, stat, sys

def fnv1a(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) & 0xffffffff
    return h

def content(path, n):
    seed = fnv1a(path) & 0xff
    base = bytes((seed + i) & 0xff for i in range(256))
    return (base * (n // 256 + 1))[:n]

def put(root, path, n, mode=0o644):
    full = root + path
    with open(full, "wb") as f:
        f.write(content(path, n))
    os.chmod(full, mode)

root = sys.argv[1].rstrip("/")
ndirs = int(sys.argv[3]) if len(sys.argv) > 3 else 8
per = int(sys.argv[4]) if len(sys.argv) > 4 else 40
for d in ("ws", "data", "out", "dev", "bin", "late"):
    os.makedirs(root + "/" + d, exist_ok=True)
shutil.copy(sys.argv[2], root + "/bin/work")
os.chmod(root + "/bin/work", 0o755)
put(root, "/ws/big.dat", 3 << 20)
put(root, "/ws/lib.bin", 256 << 10)
put(root, "/late/small.txt", 10000)
os.link(root + "/late/small.txt", root + "/late/small-link")
put(root, "/late/large.bin", (5 << 20) + 12345)
for d in range(ndirs):
    dd = "/data/d%02d" % d
    os.makedirs(root + dd, exist_ok=True)
    for k in range(per):
        # mostly small, every 13th 1-3 MiB
        n = ((k * 7919 + d * 104729) % 65536) if k % 13 else (1 + (k + d) % 3) << 20
        put(root, "%s/f%03d" % (dd, k), n, 0o600 if k % 5 == 0 else 0o644)
    os.chown(root + dd + "/f001", 1234, 5678)
    os.symlink("f002", root + dd + "/sym-rel")
    os.symlink("/ws/big.dat", root + dd + "/sym-abs")
    os.link(root + dd + "/f003", root + dd + "/link-f003")
# a sparse file: 8 MiB with two data extents
with open(root + "/data/sparse.img", "wb") as f:
    f.truncate(8 << 20)
    f.seek(1 << 20)
    f.write(b"x" * 5000)
    f.seek(6 << 20)
    f.write(b"y" * 70000)
os.setxattr(root + "/data/d00/f004", "user.dmigrate", b"kept")
os.mkfifo(root + "/data/fifo")
os.mknod(root + "/dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
os.utime(root + "/data/d01/f005", ns=(1000000000, 1234567891))
