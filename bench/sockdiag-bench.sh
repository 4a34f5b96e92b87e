#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The frozen window's fds phase of a tree with many TCP connections: a
# python server in a network namespace of its own holds N connections of a
# client outside the tree (same namespace), and is checkpointed with
# --leave-running (its sockets matched by sock_diag: the listener from a
# dump of listeners, each connection looked up alone).  Each dmigrate given
# is run in turn, ROUNDS times (alternated: the machine's load changes);
# printed per binary: the median and range of the fds phase (wall and CPU),
# of the matching with sock_diag (sock_diag_ms) and of the network lock.
#
#   bench/sockdiag-bench.sh [--conns N] [--rounds R] [--netns NAME] DMIGRATE...
#
# Needs root (a network namespace, ptrace), python3, nft.
set -u -o pipefail
export LC_ALL=C
# Debian's python3 first: a pyenv shim in front of it costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
CONNS=200 ROUNDS=7 NS=dmsdbench
while (($#)); do
	case $1 in
	--conns) CONNS=$2; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--netns) NS=$2; shift ;;
	-h | --help) sed -n '3,/^# Needs/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "sockdiag-bench: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
(($#)) || { echo "sockdiag-bench: which dmigrate? (one or more binaries)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/dmigrate-sdbench.XXXXXX)
SRV= CLI=
cleanup() {
	[[ -n $SRV ]] && kill -KILL "$SRV" 2>/dev/null
	[[ -n $CLI ]] && kill -KILL "$CLI" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null
ip netns add "$NS" && ip -n "$NS" link set lo up || exit 1
in_ns() { nsenter --net="/run/netns/$NS" "$@"; }

# the server (the tree): accepts CONNS connections, holds them (nsenter
# execs it: $! is its pid)
nsenter --net="/run/netns/$NS" python3 -c '
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 7777)); l.listen(1024)
held = []
while len(held) < int(sys.argv[1]):
    held.append(l.accept()[0])
open(sys.argv[2], "w").write("ok\n")
while True:
    time.sleep(3600)
' "$CONNS" "$WORK/srv.ready" </dev/null >/dev/null 2>&1 &
SRV=$!
disown "$SRV"
sleep 0.3
# the clients (outside the tree)
nsenter --net="/run/netns/$NS" python3 -c '
import socket, sys, time
c = [socket.create_connection(("127.0.0.1", 7777)) for _ in range(int(sys.argv[1]))]
while True:
    time.sleep(3600)
' "$CONNS" </dev/null >/dev/null 2>&1 &
CLI=$!
disown "$CLI"
for _ in $(seq 300); do [[ -e $WORK/srv.ready ]] && break; sleep 0.1; done
[[ -e $WORK/srv.ready ]] || { echo "sockdiag-bench: the server did not get its $CONNS connections" >&2; exit 1; }

for ((r = 0; r < ROUNDS; r++)); do
	for ((b = 1; b <= $#; b++)); do
		dm=${!b}
		rm -rf "$WORK/img"
		if ! in_ns "$dm" checkpoint --pid "$SRV" --images "$WORK/img" --leave-running \
			--stats "$WORK/s.$b.$r.json" >"$WORK/out" 2>&1; then
			echo "sockdiag-bench: $dm checkpoint failed: $(tail -n 1 "$WORK/out")" >&2
			exit 1
		fi
	done
done
for ((b = 1; b <= $#; b++)); do
	python3 - "${!b}" "$WORK" "$b" "$ROUNDS" <<'EOF'
import json, statistics, sys
dm, work, b, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
runs = [json.load(open("%s/s.%s.%d.json" % (work, b, r))) for r in range(rounds)]
def show(name, vals):
    vals = [v for v in vals if v is not None]
    if vals:
        print("  %-22s median %7.2f  (%.2f-%.2f)" % (name, statistics.median(vals), min(vals), max(vals)))
print("%s: %d sockets, %s lookups, %s dumps" % (dm, runs[0].get("inet_sockets", 0),
      runs[0].get("sock_diag_lookups", "?"), runs[0].get("sock_diag_dumps", "?")))
show("fds wall ms", [j["frozen_phases"]["fds"]["wall_ms"] for j in runs])
show("fds cpu ms", [j["frozen_phases"]["fds"]["cpu_ms"] for j in runs])
show("sock_diag_ms", [j.get("sock_diag_ms") for j in runs])
show("net_lock_ms", [j.get("net_lock_ms") for j in runs])
show("frozen_ms", [j["frozen_ms"] for j in runs])
EOF
done
