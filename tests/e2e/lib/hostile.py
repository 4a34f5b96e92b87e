# SPDX-License-Identifier: MIT
# A broken or hostile source for dmigrated (started --insecure, so that a
# plain socket can talk to it): it speaks the framing of src/net/net.h and
# then sends what a correct source never would.  Each scenario must end with
# the daemon refusing (an ABORT frame, or closing), never with it crashing.
#   hostile.py HOST PORT SCENARIO     exit 0: refused as it should be
import os, socket, struct, sys, time, zlib

MAGIC = 0x464E4D44
T_HELLO, T_PAGES = 1, 2
MIG = 0x100
T_START, T_ACCEPT, T_FILE, T_DATA, T_FILE_END, T_DIRTY, T_STATE_END, T_ABORT = (
    MIG + 1, MIG + 2, MIG + 3, MIG + 4, MIG + 5, MIG + 6, MIG + 7, MIG + 12)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b


class Peer:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=10)
        self.seq = 0

    def send(self, typ, payload, seq=None, magic=MAGIC, length=None):
        hdr = struct.pack("<IHHII", magic, typ, 0, len(payload) if length is None else length,
                          self.seq if seq is None else seq)
        self.seq += 1
        self.s.sendall(hdr + payload)

    def recv(self):
        hdr = b""
        while len(hdr) < 16:
            k = self.s.recv(16 - len(hdr))
            if not k:
                return None, b""
            hdr += k
        magic, typ, flags, n, seq = struct.unpack("<IHHII", hdr)
        body = b""
        while len(body) < n:
            k = self.s.recv(n - len(body))
            if not k:
                return None, b""
            body += k
        return typ, body

    def hello(self, role="control", session=None):
        self.session = session or os.urandom(16)
        h = field_varint(1, 1) + field_bytes(2, role) + field_bytes(3, self.session)
        self.send(T_HELLO, h)
        typ, body = self.recv()
        assert typ == T_HELLO, "no hello back"
        return body

    def start(self, mode="post-copy", store=0, xcr0=0, tree=0):
        m = field_bytes(1, mode) + field_bytes(2, "pid:1")
        if store:
            m += field_varint(4, store)
        if xcr0:
            m += field_varint(220, xcr0)
        if tree:
            m += field_varint(221, tree)
        self.send(T_START, m)
        return self.recv()

    def refused_with(self, needle):
        """The daemon answers ABORT and its message contains needle."""
        try:
            while True:
                typ, body = self.recv()
                if typ == T_ACCEPT:
                    continue
                if typ == T_ABORT and needle in body:
                    return True
                print("answer %s: %r" % (typ, body[:300]))
                return False
        except (ConnectionError, socket.timeout) as e:
            print("no answer: %s" % e)
            return False

    def refused(self):
        """The daemon answers ABORT or closes; anything else is a failure."""
        try:
            while True:
                typ, body = self.recv()
                if typ is None or typ == T_ABORT:
                    return True
                if typ == T_ACCEPT:
                    continue
                return False
        except (ConnectionError, socket.timeout):
            return True


def join(p):
    """The fault and bulk channels of p's session (the daemon waits for them)."""
    chans = []
    for role in ("fault", "bulk"):
        c = Peer(host, port)
        c.hello(role, p.session)
        chans.append(c)
    return chans


def accepted(mode="post-copy"):
    """A control channel whose START was accepted (retried while the daemon is busy)."""
    for _ in range(100):
        p = Peer(host, port)
        p.hello()
        typ, body = p.start(mode)
        if typ == T_ACCEPT:
            return p
        p.s.close()
        time.sleep(0.2)
    raise SystemExit("never accepted")


def img_file(kind, payload):
    """An image file: the 24-byte header (docs/image-format.md), then a protobuf payload."""
    return struct.pack("<IHHQII", 0x474D4944, kind, 1, len(payload), zlib.crc32(payload), 0) + payload


def send_file(p, name, data):
    p.send(T_FILE, field_bytes(1, name) + field_varint(2, len(data)))
    p.send(T_DATA, struct.pack("<QII", 0, len(data), 0) + data)
    p.send(T_FILE_END, b"")


def image_without_creds(pid=3333):
    """A structurally valid one-process image whose process has no credentials."""
    inv = field_varint(1, 1) + field_varint(2, pid) + field_varint(3, 0) + field_varint(4, pid)
    files = b""
    thread = field_varint(1, pid) + field_bytes(2, b"\0" * 216) + field_varint(4, 0)
    mm = b"".join(field_varint(i, 0) for i in range(1, 12))
    proc = (field_varint(1, pid) + field_varint(2, 0) + field_varint(3, pid) + field_varint(4, pid) +
            field_varint(5, 0) + field_bytes(7, thread) + field_bytes(10, mm))
    return {"inventory.img": img_file(1, inv), "files.img": img_file(4, files),
            "proc-%d.img" % pid: img_file(2, proc)}


def scenario(name, p):
    if name == "garbage":
        p.hello()
        p.s.sendall(os.urandom(4096))
    elif name == "bad-magic":
        p.hello()
        p.send(T_START, b"\x00" * 8, magic=0xDEADBEEF)
    elif name == "huge-frame":
        p.hello()
        p.send(T_START, b"", length=0xFFFFFFF0)
    elif name == "bad-seq":
        p.hello()
        p.send(T_START, b"", seq=77)
    elif name == "bad-mode":
        p.hello()
        typ, _ = p.start(mode="teleport")
        return typ in (None, T_ABORT)
    elif name == "bad-protobuf":
        p.hello()
        p.send(T_START, b"\xff\xff\xff\xff\x0f")
    elif name == "too-much-memory":
        p.hello()
        typ, _ = p.start(mode="stop-and-copy", store=1 << 50)
        return typ in (None, T_ABORT)
    elif name == "path-escape":
        p = accepted()
        keep = join(p)
        p.send(T_FILE, field_bytes(1, "../../etc/evil") + field_varint(2, 10))
    elif name == "extent-out-of-range":
        p = accepted()
        keep = join(p)
        p.send(T_FILE, field_bytes(1, "inventory.img") + field_varint(2, 100))
        p.send(T_DATA, struct.pack("<QII", 90, 20, 0) + b"x" * 20)
    elif name == "wrong-file-count":
        p = accepted()
        keep = join(p)
        p.send(T_STATE_END, field_varint(1, 7))
    elif name == "bad-image":
        p = accepted()
        keep = join(p)
        p.send(T_FILE, field_bytes(1, "inventory.img") + field_varint(2, 64))
        p.send(T_DATA, struct.pack("<QII", 0, 64, 0) + os.urandom(64))
        p.send(T_FILE_END, b"")
        p.send(T_STATE_END, field_varint(1, 1))
    elif name == "tree-too-big":
        # a post-copy tree larger than this host's memory: refused at START
        p.hello()
        p.send(T_START, field_bytes(1, "post-copy") + field_bytes(2, "pid:1") + field_varint(221, 1 << 50))
        return p.refused_with(b"not enough memory")
    elif name == "xfeature-missing":
        # an xsave component no CPU enables (bit 62 is reserved): refused at START
        p.hello()
        p.send(T_START, field_bytes(1, "post-copy") + field_bytes(2, "pid:1") + field_varint(220, 7 | 1 << 62))
        return p.refused_with(b"lacks xsave features")
    elif name == "no-creds":
        # must be refused for what it is, before anything runs as root
        p = accepted()
        keep = join(p)
        files = image_without_creds()
        for n in sorted(files):
            send_file(p, n, files[n])
        p.send(T_STATE_END, field_varint(1, len(files)))
        return p.refused_with(b"creds missing")
    else:
        raise SystemExit("unknown scenario " + name)
    return p.refused()


host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Wait until the daemon takes a migration, i.e. refuses a bad mode (which it
# checks first) rather than saying it is busy (all its sessions in use).
for _ in range(200):
    probe = Peer(host, port)
    probe.hello()
    typ, body = probe.start(mode="probe")
    probe.s.close()
    if b"busy" not in body:
        break
    time.sleep(0.2)
ok = scenario(name, Peer(host, port))
sys.exit(0 if ok else 1)
