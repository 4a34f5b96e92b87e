#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Snapshot what /proc says about each process and thread of a zdtm tree.

    procview.py ROOT PIDNS ONLY_ROOT > FILE

One line per fact, "KEY<TAB>what=value", sorted: run.sh diffs the files
taken before and after the move. Processes are keyed like run.sh's views
(ns pid in a PID namespace, depth and comm without one); threads by ns tid
in a PID namespace, by their rank among the process's threads otherwise.

Compared: status (identity, capabilities, signal masks and dispositions,
seccomp, speculation, THP, no_new_privs, umask), per thread the scheduling
policy, RT priority, nice value, signal mask and pending set, credentials;
oom_score_adj, loginuid, personality, timerslack_ns, coredump_filter,
limits; whether it has a controlling terminal; the set of (perms, path, VmFlags) of the mappings in smaps; for each
namespace type, whether the process shares the runner's namespace.

Left out, because they legitimately change (see EXCLUDED_STATUS, and
VMFLAGS_EXCLUDED):
  - host ids (Pid, Tgid, PPid, TracerPid, NSpid...): run.sh keys by ns pid
  - State: compared by run.sh's tree view (stopped / zombie)
  - CPU times, context switch counters, memory counters and peaks (VmPeak,
    VmHWM, VmRSS, Rss*, VmPTE, VmSwap, HugetlbPages, CoreDumping...): they
    move while the test runs and the restore faults pages differently
  - Mems_allowed: the restore gives the restorer's NUMA memory policy mask
  - the audit session id (the kernel gives a new one with the login uid)
  - in the migrate modes (ZDTM_CROSS_HOST=1), the namespaces: the tree ends in
    the other test host's
  - VmFlags "sd" (soft-dirty: every restored mapping is new), "um", "uw",
    "ui" (userfaultfd registration of the lazy restore)
  - in a process that is not stopped, the pending signals (SigPnd, ShdPnd)
    that a thread which may take them does not block: they are on their way
    (a periodic timer's, one the runner just sent), and whether a read sees
    them says how soon that thread ran
"""
import os
import sys

EXCLUDED_STATUS = {
    "Name", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "FDSize",
    "NStgid", "NSpid", "NSpgid", "NSsid", "Kthread",
    "VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile",
    "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap",
    "HugetlbPages", "CoreDumping", "Threads", "SigQ",
    "Mems_allowed", "Mems_allowed_list",
    "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches", "x86_Thread_features",
    "x86_Thread_features_locked", "untag_mask",
}
# per thread: what the kernel keeps per thread
THREAD_STATUS = {"SigBlk", "SigPnd", "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
                 "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"}
VMFLAGS_EXCLUDED = {"sd", "um", "uw", "ui"}
PROC_FILES = ["oom_score_adj", "loginuid", "personality", "timerslack_ns", "coredump_filter"]
NS_TYPES = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def status(path):
    out = {}
    text = read(path) or ""
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = " ".join(v.split())
    return out


def hexmask(v):
    """A signal mask of a status line (hex), 0 if absent."""
    try:
        return int(v or "0", 16)
    except ValueError:
        return 0


def ns_pid(path):
    v = status(path).get("NSpid", "")
    return v.split()[-1] if v else "?"


def children(pid):
    kids = []
    for t in sorted(os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []):
        kids += (read(f"/proc/{pid}/task/{t}/children") or "").split()
    return kids


def tree(root, only_root):
    queue, out = [(root, 0)], []
    while queue:
        p, d = queue.pop(0)
        if not os.path.isdir(f"/proc/{p}"):
            continue
        out.append((p, d))
        if not only_root:
            queue += [(c, d + 1) for c in children(p)]
    return out


def stat_fields(path):
    text = read(path)
    if not text:
        return None
    return text[text.rfind(")") + 2:].split()


def attrs(root, pidns, only_root):
    """The attribute lines of the tree under root, sorted, as one string."""
    cross_host = os.environ.get("ZDTM_CROSS_HOST") == "1"
    ours = {t: os.readlink(f"/proc/self/ns/{t}") for t in NS_TYPES
            if os.path.exists(f"/proc/self/ns/{t}")}
    lines = set()
    for p, d in tree(root, only_root):
        comm = (read(f"/proc/{p}/comm") or "?").strip()
        key = f"pid={ns_pid(f'/proc/{p}/status')}" if pidns else f"depth={d} comm={comm}"
        st = stat_fields(f"/proc/{p}/stat")
        if st is None or st[0] in "ZX":
            continue
        pst = status(f"/proc/{p}/status")
        tids = sorted(os.listdir(f"/proc/{p}/task"), key=int) if os.path.isdir(f"/proc/{p}/task") else []
        # a signal pending while a running thread takes it (not blocked
        # there) is on its way: whether the read saw it says how soon the
        # thread ran, not what was restored.  Kept: those every thread
        # blocks, and everything pending in a stopped process.
        running = st[0] not in "tT"
        blocked_all = ~0
        for t in tids:
            blocked_all &= hexmask(status(f"/proc/{p}/task/{t}/status").get("SigBlk"))
        for k, v in pst.items():
            if k not in EXCLUDED_STATUS and k not in THREAD_STATUS:
                if k == "ShdPnd" and running:
                    v = f"{hexmask(v) & blocked_all:016x}"
                lines.add(f"{key}\tstatus.{k}={v}")
        # whether it has a controlling terminal (tty_nr; the number itself may
        # change: a pty gets another index on another host)
        lines.add(f"{key}\tctty={'no' if st[4] == '0' else 'yes'}")
        for f in PROC_FILES:
            v = read(f"/proc/{p}/{f}")
            if v is not None:
                lines.add(f"{key}\t{f}={v.strip()}")
        for line in (read(f"/proc/{p}/limits") or "").splitlines()[1:]:
            lines.add(f"{key}\tlimit={' '.join(line.split())}")
        for t, link in ours.items():
            if cross_host:
                break  # moved to another test host: its namespaces are that host's
            try:
                mine = os.readlink(f"/proc/{p}/ns/{t}")
            except OSError:
                continue
            lines.add(f"{key}\tns.{t}={'shared' if mine == link or (pidns and t == 'pid') else 'own'}")
        # mappings: (perms, path, flags) as a set: the kernel may split or merge
        cur = None
        for line in (read(f"/proc/{p}/smaps") or "").splitlines():
            w = line.split()
            if w and "-" in w[0] and len(w) >= 5 and not w[0].endswith(":"):
                cur = f"{w[1]} {w[5] if len(w) > 5 else '[anon]'}"
            elif w and w[0] == "VmFlags:" and cur:
                fl = " ".join(sorted(x for x in w[1:] if x not in VMFLAGS_EXCLUDED))
                lines.add(f"{key}\tvma {cur} flags={fl}")
        for rank, t in enumerate(tids):
            tp = f"/proc/{p}/task/{t}"
            tkey = f"{key} tid={ns_pid(tp + '/status')}" if pidns else f"{key} thread={rank}"
            ts = stat_fields(tp + "/stat")
            if ts is None or ts[0] in "ZX":
                continue
            # stat: 19 nice, 40 rt_priority, 41 policy (1-based, after pid and comm: -3)
            lines.add(f"{tkey}\tsched nice={ts[16]} rt_priority={ts[37]} policy={ts[38]}")
            tst = status(tp + "/status")
            for k, v in tst.items():
                if k in THREAD_STATUS:
                    if k == "SigPnd" and ts[0] not in "tT":
                        v = f"{hexmask(v) & hexmask(tst.get('SigBlk')):016x}"
                    lines.add(f"{tkey}\tstatus.{k}={v}")
    return "".join(f"{x}\n" for x in sorted(lines))


def main():
    root, pidns, only_root = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    sys.stdout.write(attrs(root, pidns, only_root))


if __name__ == "__main__":
    main()
