#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The /proc views of a zdtm tree that run.sh compares before and after a move.

    snapshot.py ROOT DIR PIDNS ONLY_ROOT TRANSITION CMP_MAPS CMP_FDS CMP_ATTRS

Writes DIR/tree (sorted), DIR/raw.maps, DIR/raw.fds (run.sh normalizes these
two with lib/maps.awk and lib/fds.awk) and DIR/attrs (lib/procview.py; empty
unless CMP_ATTRS and not TRANSITION).  The flags are 0 or 1, as in run.sh.

One process instead of a shell loop that forked readlink and two awk per fd
and a sed per process: the views are the same, line for line (run.sh's
comments say what each holds and why), taken in a fraction of the time.

  tree   one line per process, breadth first from ROOT (children in the order
         of /proc/PID/task/*/children): "depth=D comm=C state=S threads=N", or
         in a PID namespace "pid=P ppid=P depth=D comm=C state=S threads=N
         tids=T1,T2,"; state is Z, T or -
  maps   "KEY<TAB>line of /proc/PID/maps" (not for zombies)
  fds    "KEY<TAB>FD TARGET flags=F pos=P" (pos "-" for transition tests)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procview  # noqa: E402


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None


def field(path, name):
    """The second word of every line of path that starts with name, one per line
    (awk '/^name/ { print $2 }')."""
    text = read(path)
    if text is None:
        return ""
    out = []
    for line in text.splitlines():
        if line.startswith(name):
            w = line.split()
            out.append(w[1] if len(w) > 1 else "")
    return "\n".join(out)


# The rest of an fd's fdinfo, as " info=a;b;..." (run.sh compares it): what the
# kernel keeps of the object behind it (eventfd count, epoll registrations,
# inotify watches, timerfd settings, signalfd mask, locks...).  Left out: the
# lines compared on their own (pos, flags), and what names where rather than
# what: mnt_id, ino, sdev, the lock's holder pid and inode, eventfd-id, the
# tty index, an inotify watch's file handle; and what moves with time:
# timerfd ticks and it_value.
FDINFO_SKIP = {"pos", "flags", "mnt_id", "ino", "eventfd-id", "tty-index", "ticks", "it_value"}
FDINFO_DROP_WORDS = {"ino", "sdev", "pos", "fhandle-bytes", "fhandle-type", "f_handle"}


def fdinfo_rest(path):
    text = read(path)
    if text is None:
        return ""
    out = []
    for line in text.splitlines():
        k, _, v = line.partition(":")
        k = k.strip()
        if not k or k in FDINFO_SKIP:
            continue
        if k == "lock":
            # "1: POSIX  ADVISORY  WRITE 1234 08:01:123 0 EOF": no number,
            # holder pid or device:inode
            w = v.split()
            v = " ".join(w[1:4] + w[6:]) if len(w) >= 8 else " ".join(w)
        else:
            # "tfd: 5 events: 19 data: 5 pos:0 ino:ab sdev:f" and the like
            w, keep, skip = v.replace(": ", ":").split(), [], False
            for x in w:
                name = x.split(":", 1)[0]
                if name in FDINFO_DROP_WORDS:
                    continue
                keep.append(x)
            v = " ".join(keep)
        out.append(f"{k}:{v}")
    return " info=" + ";".join(sorted(out)) if out else ""


def ns_pid(path):
    """Last word of the NSpid: line of a status file ("" if none)."""
    text = read(path)
    if text is None:
        return ""
    out = []
    for line in text.splitlines():
        if line.startswith("NSpid:"):
            w = line.split()
            out.append(w[-1])
    return "\n".join(out)


def listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def tree_walk(root):
    queue, out = [(root, 0)], []
    while queue:
        p, d = queue.pop(0)
        if not os.path.isdir(f"/proc/{p}"):
            continue
        out.append((p, d))
        for t in sorted(listdir(f"/proc/{p}/task")):
            for c in (read(f"/proc/{p}/task/{t}/children") or "").split():
                queue.append((c, d + 1))
    return out


def state(p):
    text = read(f"/proc/{p}/stat")
    if not text:
        return ""
    i = text.rfind(") ")
    return text[i + 2:i + 3] if i >= 0 else text.rstrip("\n")


def main():
    root, out = sys.argv[1], sys.argv[2]
    pidns, only_root, transition, cmp_maps, cmp_fds, cmp_attrs = (a == "1" for a in sys.argv[3:9])
    tree, maps, fds = [], [], []
    procs = [(root, 0)] if only_root else tree_walk(root)
    for p, d in procs:
        comm = read(f"/proc/{p}/comm")
        if comm is None:
            continue
        comm = comm.rstrip("\n")
        st = state(p)
        if st not in ("Z", "T"):
            st = "-"
        thr = len(listdir(f"/proc/{p}/task"))
        if pidns:
            key = f"pid={ns_pid(f'/proc/{p}/status')}"
            tids = [ns_pid(f"/proc/{p}/task/{t}/status") for t in sorted(listdir(f"/proc/{p}/task"))]
            tids = sorted((t for t in tids if t), key=lambda t: int(t) if t.isdigit() else 0)
            ppid = "-"
            if d > 0:
                ppid = ns_pid(f"/proc/{field(f'/proc/{p}/status', 'PPid:')}/status")
            tree.append(f"{key} ppid={ppid} depth={d} comm={comm} state={st} threads={thr} "
                        f"tids={''.join(t + ',' for t in tids)}")
        else:
            key = f"depth={d} comm={comm}"
            tree.append(f"{key} state={st} threads={thr}")
        if st == "Z":
            continue
        if cmp_maps:
            for line in (read(f"/proc/{p}/maps") or "").splitlines():
                maps.append(f"{key}\t{line}")
        if cmp_fds:
            for fd in sorted(listdir(f"/proc/{p}/fd"), key=lambda f: int(f) if f.isdigit() else -1):
                try:
                    tgt = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                tgt = tgt.rstrip("\n")
                flags = field(f"/proc/{p}/fdinfo/{fd}", "flags:")
                pos = "-" if transition else field(f"/proc/{p}/fdinfo/{fd}", "pos:")
                info = "" if transition else fdinfo_rest(f"/proc/{p}/fdinfo/{fd}")
                fds.append(f"{key}\t{fd} {tgt} flags={flags} pos={pos}{info}")
    tree.sort()
    view = ""
    if cmp_attrs and not transition:
        try:
            view = procview.attrs(root, pidns, only_root)
        except Exception as e:  # noqa: BLE001 (the diff shows it, as the shell version did)
            view = f"procview failed: {e!r}\n"
    for name, lines in (("tree", tree), ("raw.maps", maps), ("raw.fds", fds)):
        with open(os.path.join(out, name), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("".join(x + "\n" for x in lines))
    with open(os.path.join(out, "attrs"), "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(view)


if __name__ == "__main__":
    main()
