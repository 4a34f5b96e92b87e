#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The tree's files: copied before the resume (--rootfs eager: every file
# inside the downtime, the way Podman's export moves a container's changes)
# against dmigrate's lazy transfers (--rootfs priority: working set first,
# then what the tree touches, then smallest first; --rootfs lazy: the same
# lazy view, files in directory order).  A static program chrooted into a
# rootfs of NDIRS x PER files of mixed sizes (about 235 MB with the
# defaults: every 13th file 1-3 MiB, the rest below 64 KiB) plus a working
# set of 3.25 MiB that it keeps open and mapped; after the move it reads
# the working set back, then walks and checks every file.  Between two test
# hosts joined by a 1 Gbit/s link (veth + tbf), post-copy.  --rootfs none
# is the floor: shared storage, simulated by an identical copy (cp -a) at
# the same path in host b made before the migration; no file moves.
#
#   bench/rootfs-bench.sh [--build DIR] [--modes "none eager priority lazy"]
#                         [--dirs N] [--per N] [--repeat N] [--json FILE]
#
# Columns: downtime (freeze -> resumed, dmigrate's), first read (the
# program's own gap: its last tick before the freeze to its working set
# read back in host b), meta (every entry made in b, ms from the start,
# about: the destination's clock starts at its session), files done (the destination has every file, ms
# from the start), total (the migration's end), misses, those in the first
# second after the resume (misses_1s) and the hit rate of the program's
# opens (destination), bytes of files on the wire (both rootfs channels).
# The phases table adds the restore's requests through the lazy view.
# Its test hosts' prefix: $DM_E2E_PREFIX (default dmrfb).
# Then, once every file is in, the read overhead of the lazy view: every
# file read through it with its page cache dropped, again warm, and from
# the plain copy beneath it (MiB/s).
# Ratios are computed inside one run only: this machine is shared and noisy.
set -u -o pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=
MODES="none eager priority lazy"
NDIRS=20
PER=60
REPEAT=1
JSON=
PREFIX=${DM_E2E_PREFIX:-dmrfb}
RFS=/var/lib/dmigrate/benchroot

while (($#)); do
	case $1 in
	--build) BUILD=$2; shift ;;
	--modes) MODES=$2; shift ;;
	--dirs) NDIRS=$2; shift ;;
	--per) PER=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--json) JSON=$2; shift ;;
	-h | --help) sed -n '4,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: $0 [--build DIR] [--modes ...] [--dirs N] [--per N] [--repeat N] [--json FILE]" >&2; exit 2 ;;
	esac
	shift
done
if [[ -z $BUILD ]]; then
	for d in "$REPO/build" /work/build-mig; do [[ -x $d/dmigrate ]] && { BUILD=$d; break; }; done
fi
DM=$BUILD/dmigrate
[[ -x $DM ]] || { echo "no dmigrate in $BUILD" >&2; exit 2; }

WORK=$(mktemp -d /tmp/dmigrate-rfbench.XXXXXX)
chmod 755 "$WORK"
ROWS=$WORK/rows.tsv
: >"$ROWS"
DPID= WPID=
cc -static -O2 -o "$WORK/work" "$REPO/tests/e2e/lib/rootfs_work.c" || { rm -rf "$WORK"; exit 1; }

in_host() { local h=$1; shift; "$DM" testhost run --prefix "$PREFIX" "$h" -- "$@"; }
wait_grep() { for _ in $(seq 1 1200); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# the program's copy in host b (pid here): the only process named work there
dest_pid() {
	local init d
	init=$("$DM" testhost pid --prefix "$PREFIX" b 2>/dev/null) || return 1
	for d in /proc/[0-9]*; do
		[[ $d/ns/pid -ef /proc/$init/ns/pid ]] 2>/dev/null || continue
		[[ $(cat "$d/comm" 2>/dev/null) == work ]] && { echo "${d#/proc/}"; return 0; }
	done
	return 1
}

# Reads of every file once all have arrived: through the lazy view with its
# page cache dropped first (fadvise DONTNEED: every read goes to dmigrated),
# through the view again (page cache warm), and from the plain copy under it.
read_overhead() {	# MODE
	local dp init
	dp=$(dest_pid) || return 0
	init=$("$DM" testhost pid --prefix "$PREFIX" b) || return 0
	python3 - "/proc/$dp/root" /proc/"$init"/root/var/lib/dmigrate/rootfs "$1" >>"$WORK/overhead.tsv" <<'PY'
import os, sys, time
view, base, mode = sys.argv[1], sys.argv[2], sys.argv[3]
data = os.path.join(base, os.listdir(base)[0], "data")
files = []
for d, _, fs in os.walk(data):
    for f in fs:
        p = os.path.join(d, f)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append(os.path.relpath(p, data))
def read_all(root, drop):
    n, t = 0, time.monotonic()
    for f in files:
        fd = os.open(os.path.join(root, f), os.O_RDONLY)
        if drop:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            n += len(b)
        os.close(fd)
    return n / 1048576 / (time.monotonic() - t)
cold = read_all(view, True)
warm = read_all(view, False)
plain = read_all(data, False)
print("%s\t%d\t%.0f\t%.0f\t%.0f" % (mode, len(files), cold, warm, plain))
PY
}

kill_work() {
	local init d
	[[ -n $WPID ]] && kill -KILL "$WPID" 2>/dev/null
	# its copy in host b: the only process there that is not ours
	if init=$("$DM" testhost pid --prefix "$PREFIX" b 2>/dev/null); then
		for d in /proc/[0-9]*; do
			[[ $d/ns/pid -ef /proc/$init/ns/pid ]] 2>/dev/null || continue
			[[ $(cat "$d/comm" 2>/dev/null) == work ]] && kill -KILL "${d#/proc/}" 2>/dev/null
		done
	fi
	WPID=
	# dmigrated unmounts the view and removes the copy once the tree is gone
	for _ in $(seq 1 200); do
		in_host b sh -c '[ -z "$(ls /var/lib/dmigrate/rootfs 2>/dev/null)" ]' && break
		sleep 0.05
	done
}

cleanup() {
	kill_work
	[[ -n $DPID ]] && kill "$DPID" 2>/dev/null
	sleep 0.5
	"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$DM" testhost down --prefix "$PREFIX" >/dev/null 2>&1
"$DM" testhost up --prefix "$PREFIX" --tbf || exit 1
"$DM" keygen "$WORK/key" >/dev/null
DPID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$WORK/dmigrated.log" b -- \
	"$DM" daemon --listen 198.18.0.2:7070 --key "$WORK/key" --ready-file "$WORK/ready") || exit 1
wait_grep . "$WORK/ready" || { echo "dmigrated did not start" >&2; exit 1; }
echo "# making the rootfs in host a ($NDIRS x $PER files)" >&2
in_host a python3 "$REPO/tests/e2e/lib/mkrootfs.py" "$RFS" "$WORK/work" "$NDIRS" "$PER" || exit 1
echo "# rootfs: $(in_host a du -sm "$RFS" | cut -f1) MiB, $(in_host a find "$RFS" -type f | wc -l) files" >&2

run_one() {	# MODE
	local mode=$1 log=$WORK/work.$RANDOM.log st=$WORK/stats.json ainit binit
	: >"$log"
	ainit=$("$DM" testhost pid --prefix "$PREFIX" a) || return 1
	binit=$("$DM" testhost pid --prefix "$PREFIX" b) || return 1
	rm -rf "/proc/$binit/root$RFS"
	if [[ $mode == none ]]; then
		cp -a "/proc/$ainit/root$RFS" "/proc/$binit/root$RFS" || return 1
	fi
	WPID=$("$DM" testhost spawn --prefix "$PREFIX" --log "$log" a -- chroot "$RFS" /bin/work) || return 1
	wait_grep '^ready ' "$log" || return 1
	local ns
	ns=$(awk '/^NSpid:/ { print $NF }' "/proc/$WPID/status")
	if ! in_host a "$DM" migrate "pid:$ns" --to 198.18.0.2:7070 --key "$WORK/key" --mode post-copy \
		--rootfs-dir "$RFS" --rootfs "$mode" --stats "$st" >"$WORK/migrate.out" 2>&1; then
		echo "# $mode: migrate failed: $(tail -n 1 "$WORK/migrate.out")" >&2
		kill_work
		return 1
	fi
	wait_grep '^walk ' "$log"
	[[ $mode == priority || $mode == lazy ]] && read_overhead "$mode"
	python3 - "$st" "$log" "$mode" >>"$ROWS" <<'PY'
import json, re, sys
j = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read()
r = j["rootfs"]; d = r.get("destination", {})
m = re.search(r"^first-read \S+ (\S+) gap_ms=([0-9.]+)", log, re.M)
walk = "ok" if re.search(r"^walk \S+ files=\d+ ok", log, re.M) else "BAD"
hr = d.get("hit_rate")
print("\t".join([sys.argv[3], "%.0f" % j["downtime_ms"], m.group(2) if m else "-",
                 "%.0f" % (r.get("done_ms") or 0), "%.0f" % j["total_ms"], str(d.get("misses", 0)),
                 "-" if hr is None else "%.2f" % hr, "%.0f" % (j["bytes"].get("rootfs", 0) / 1048576),
                 (m.group(1) if m else "?") + "/" + walk,
                 "-" if d.get("metadata_ms") is None else "%.0f" % (d["metadata_ms"] + r["start_ms"]),
                 str(d.get("misses_first_s", 0))]))
PY
	python3 - "$st" "$mode" >>"$WORK/phases.tsv" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ts, r = j["timestamps"], j.get("rootfs", {})
rs = j.get("restore", {})
rr = rs.get("rootfs", {})
def rel(v, base):
    return "-" if v is None or base is None else "%.0f" % (v - base)
f = ts["freeze"]
d = r.get("destination", {})
pre = r.get("presend", {})
def num(v, fmt="%.0f"):
    return "-" if v is None else fmt % v
print("\t".join([sys.argv[2], "%.0f" % j["downtime_ms"], rel(ts.get("dumped"), f), rel(ts.get("state_sent"), f),
                 rel(r.get("walked_ms"), f), rel(r.get("metadata_sent_ms"), f),
                 num(r.get("walk_cpu_ms"), "%.1f"), num(d.get("cpu_before_resume_ms"), "%.1f"),
                 num(sum(v["ms"] for v in rr.get("view", {}).values()) if rr.get("view") else None, "%.1f"),
                 "%s/%s@%s/%s/%s" % (pre.get("used_files", "-"), pre.get("files", "-"), num(pre.get("done_ms")),
                                     num((r.get("prewalk") or {}).get("done_ms")), num((r.get("prewalk") or {}).get("made_ms"))),
                 rel(rs.get("state_received_ms"), 0), rel(rr.get("ready_ms"), 0),
                 "%.0f" % rs.get("restore_ms", 0), rel(rs.get("resume_at_ms"), 0),
                 str(rr.get("misses", "-")), "%.0f" % rr.get("miss_wait_ms", 0),
                 ",".join("%s=%.0f" % (k[:-3], v) for k, v in rs.get("phases", {}).items() if v >= 1) +
                 (" first_miss=%s" % rr["first_miss"] if rr.get("first_miss") else "") +
                 "".join(" %s=%d/%.1fms" % (k, v["n"], v["ms"]) for k, v in rr.get("view", {}).items())]))
PY
	kill_work
	rm -rf "/proc/$binit/root$RFS"
}

for ((i = 0; i < REPEAT; i++)); do
	for mode in $MODES; do
		echo "# $mode (run $((i + 1)))" >&2
		run_one "$mode"
	done
done

printf '%-9s %9s %11s %8s %11s %9s %7s %9s %6s %9s %s\n' mode downtime_ms first_read_ms meta_ms files_done_ms total_ms misses misses_1s hits rootfs_MiB check
sort -s -k1,1 "$ROWS" | while IFS=$'\t' read -r mode dt fr fd tot mi hr mb ok me m1; do
	printf '%-9s %9s %11s %8s %11s %9s %7s %9s %6s %9s %s\n' "$mode" "$dt" "$fr" "$me" "$fd" "$tot" "$mi" "$m1" "$hr" "$mb" "$ok"
done
if [[ -s $WORK/phases.tsv ]]; then
	# where the downtime goes: source ms from the freeze (dump done, state
	# sent, rootfs walked, its metadata sent); destination ms from its
	# session's start (state in, files ready for the restore, the restore,
	# the resume) and the restore's opens that waited for their data; then
	# the restore's phases (ms) and its requests through the lazy view
	# (count/ms in our FUSE handlers, waits for the files included)
	echo "# phases: source ms after the freeze | destination ms from its session's start"
	# (walk_cpu: the source's walk thread's CPU from the freeze on;
	# rcv_cpu: the destination's receiver's from the first entry to the
	# resume; view_ms: the restore's time in the view's handlers; pre: the
	# working set's files sent before the freeze, used/sent, @ ms from the
	# start when they were sent / the walk was sent / its entries were made
	# in b: then the freeze)
	printf '%-9s %8s %7s %7s %7s %7s %8s %7s %7s %15s | %7s %7s %8s %7s %7s %8s  %s\n' mode downtime dumped state walked meta \
		walk_cpu rcv_cpu view_ms pre state_in rfs_rdy restore resume misses miss_ms restore_phases
	while IFS=$'\t' read -r mode dt du sts wa me wc rc vm pr si rr rt ra mi mw rp; do
		printf '%-9s %8s %7s %7s %7s %7s %8s %7s %7s %15s | %7s %7s %8s %7s %7s %8s  %s\n' "$mode" "$dt" "$du" "$sts" "$wa" "$me" "$wc" "$rc" "$vm" "$pr" "$si" "$rr" "$rt" "$ra" "$mi" "$mw" "$rp"
	done <"$WORK/phases.tsv"
	# medians per mode: where priority's downtime goes against none's
	python3 - "$WORK/phases.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
cols = {"downtime": 1, "dumped": 2, "state": 3, "restore": 12, "view_ms": 8, "walk_cpu": 6, "rcv_cpu": 7}
def med(mode, c):
    v = sorted(float(r[c]) for r in rows if r[0] == mode and r[c] not in ("-", ""))
    return "%.1f" % v[len(v) // 2] if v else "-"
modes = sorted(set(r[0] for r in rows))
print("# medians: " + "  ".join("%s" % k for k in cols))
for m in modes:
    print("#   %-9s " % m + "  ".join("%s=%s" % (k, med(m, c)) for k, c in cols.items()))
PY
fi
if [[ -s $WORK/overhead.tsv ]]; then
	echo "# reads of every file after the move, MiB/s: through the view with its page cache dropped, through the view warm, the plain copy"
	printf '%-9s %7s %12s %12s %12s\n' mode files view_cold view_warm plain
	while IFS=$'\t' read -r mode n cold warm plain; do
		printf '%-9s %7s %12s %12s %12s\n' "$mode" "$n" "$cold" "$warm" "$plain"
	done <"$WORK/overhead.tsv"
fi
python3 - "$ROWS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
def med(mode, col):
    v = sorted(float(r[col]) for r in rows if r[0] == mode and r[col] not in ("-", ""))
    return v[len(v) // 2] if v else None
e, p, n = med("eager", 1), med("priority", 1), med("none", 1)
if e and p:
    print("# downtime priority/eager: %.2f; first read priority/eager: %.2f" % (p / e, (med("priority", 2) or 0) / (med("eager", 2) or 1)))
if n and p:
    print("# downtime priority/none: %.2f; first read priority/none: %.2f" % (p / n, (med("priority", 2) or 0) / (med("none", 2) or 1)))
l1, p1 = med("lazy", 10), med("priority", 10)
if l1 is not None and p1 is not None:
    print("# misses in the first second after the resume (median): priority %.0f, lazy %.0f, priority/lazy %s" %
          (p1, l1, "%.2f" % (p1 / l1) if l1 else "-"))
hl, hp = med("lazy", 6), med("priority", 6)
if hl is not None and hp is not None:
    print("# hit rate (median): priority %.2f, lazy %.2f" % (hp, hl))
PY
if [[ -n $JSON ]]; then
	python3 - "$ROWS" >"$JSON" <<'PY'
import json, sys
keys = ["mode", "downtime_ms", "first_read_ms", "files_done_ms", "total_ms", "misses", "hit_rate", "rootfs_mib", "check", "metadata_ms", "misses_first_s"]
print(json.dumps([dict(zip(keys, l.rstrip("\n").split("\t"))) for l in open(sys.argv[1])], indent=1))
PY
fi
