#!/bin/bash
# SPDX-License-Identifier: MIT
#
# `dmigrate setup` against a private dockerd (own data root, exec root,
# socket, daemon.json, pid file and cgroup parent; in its own network and
# mount namespaces): the runtime is added and dockerd lists it, a second run
# changes nothing, another path is changed, and the errors (no dmigrate-runc
# next to dmigrate, daemon.json not JSON, dockerd not running, a stale pid
# file that names another program (not signalled), dockerd not
# reachable) name their cause and leave daemon.json as it was.  Skipped
# without dockerd.  Run by tests/cli/run.sh; alone:
#   tests/cli/docker-setup.sh [--build DIR]
set -u -o pipefail
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$REPO/build
[[ ${1:-} == --build ]] && BUILD=$2
DM=$BUILD/dmigrate
passed=0 failed=0 skipped=0
ok() { echo "PASS $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

if ! command -v dockerd >/dev/null || ! command -v runc >/dev/null || ((EUID != 0)); then
	echo "SKIP docker setup: needs root, dockerd and runc"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

W=$(mktemp -d /tmp/dm-cli-docker.XXXXXX)
CG=dm-cli-docker-$$
dpid=
cleanup() {
	if [[ -n $dpid ]]; then
		kill -TERM "$dpid" 2>/dev/null
		for _ in $(seq 300); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
	fi
	rm -rf "$W"
	rmdir /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG" 2>/dev/null
}
trap cleanup EXIT

CFG=$W/daemon.json
printf '{\n  "debug": false,\n  "log-level": "warn"\n}\n' >"$CFG"
# the shell exec()s dockerd: $! is dockerd's pid, the leader of its group
setsid unshare --net --mount --propagation private sh -c 'ip link set lo up && exec dockerd "$@"' sh \
	--data-root="$W/data" --exec-root="$W/exec" --host="unix://$W/d.sock" --pidfile="$W/pid" \
	--config-file="$CFG" --cgroup-parent="$CG" --bridge=none --iptables=false --ip6tables=false \
	>"$W/dockerd.log" 2>&1 </dev/null &
dpid=$!
export DOCKER_HOST=unix://$W/d.sock
up=0
for _ in $(seq 600); do
	[[ -s $W/pid ]] && curl -sf --unix-socket "$W/d.sock" http://docker/_ping >/dev/null 2>&1 && { up=1; break; }
	kill -0 "$dpid" 2>/dev/null || break
	sleep 0.1
done
if ((!up)); then
	bad "docker setup" "the private dockerd did not start: $(tail -n 5 "$W/dockerd.log")"
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 1
fi
runtimes() { curl -sf --unix-socket "$W/d.sock" http://docker/info | jq -c '.Runtimes.dmigrate.path // empty'; }
setup() { "$DM" setup --docker-config "$CFG" --docker-pidfile "$W/pid" "$@" 2>&1; }

# no dmigrate-runc next to the dmigrate that runs: refused, nothing changed
mkdir -p "$W/bin"
cp "$DM" "$W/bin/dmigrate"
cp "$CFG" "$W/before.json"
t="setup refuses without dmigrate-runc beside dmigrate"
out=$("$W/bin/dmigrate" setup --docker-config "$CFG" --docker-pidfile "$W/pid" 2>&1)
if (($? != 1)); then bad "$t" "exit status: $out"
elif ! grep -q "no dmigrate-runc next to this dmigrate ($W/bin/dmigrate-runc: No such file" <<<"$out"; then bad "$t" "$out"
elif ! cmp -s "$CFG" "$W/before.json"; then bad "$t" "daemon.json changed"
else ok "$t"; fi

t="setup adds the runtime and dockerd lists it"
out=$(setup --runtime /usr/sbin/runc)
rc=$?
pid=$(cat "$W/pid")
if ((rc != 0)); then bad "$t" "exit $rc: $out"
elif [[ $out != "added runtime dmigrate -> /usr/sbin/runc to $CFG; dockerd $pid reloaded" ]]; then bad "$t" "says: $out"
elif [[ $(runtimes) != '"/usr/sbin/runc"' ]]; then bad "$t" "dockerd's runtimes: $(runtimes)"
elif [[ $(jq -c . "$CFG") != '{"debug":false,"log-level":"warn","runtimes":{"dmigrate":{"path":"/usr/sbin/runc"}}}' ]]; then
	bad "$t" "daemon.json: $(cat "$CFG")"
else ok "$t"; fi

t="setup again changes nothing"
cp "$CFG" "$W/before.json"
out=$(setup --runtime /usr/sbin/runc)
if (($? != 0)); then bad "$t" "exit status: $out"
elif ! grep -q "has runtime dmigrate -> /usr/sbin/runc already: nothing changed" <<<"$out"; then bad "$t" "says: $out"
elif ! cmp -s "$CFG" "$W/before.json"; then bad "$t" "daemon.json changed"
else ok "$t"; fi

# the default: dmigrate-runc beside dmigrate (here a wrapper of runc)
t="setup changes the path to dmigrate-runc beside dmigrate"
printf '#!/bin/sh\nexec /usr/sbin/runc "$@"\n' >"$W/bin/dmigrate-runc"
chmod 755 "$W/bin/dmigrate-runc"
out=$("$W/bin/dmigrate" setup --docker-config "$CFG" --docker-pidfile "$W/pid" 2>&1)
if (($? != 0)); then bad "$t" "exit status: $out"
elif [[ $out != "changed runtime dmigrate -> $W/bin/dmigrate-runc in $CFG; dockerd $pid reloaded" ]]; then bad "$t" "says: $out"
elif [[ $(runtimes) != "\"$W/bin/dmigrate-runc\"" ]]; then bad "$t" "dockerd's runtimes: $(runtimes)"
else ok "$t"; fi

t="setup names the line of a daemon.json that is not JSON"
printf '{\n  "debug": false,\n  "runtimes": {,\n}\n' >"$W/bad.json"
cp "$W/bad.json" "$W/before.json"
out=$("$DM" setup --docker-config "$W/bad.json" --docker-pidfile "$W/pid" --runtime /usr/sbin/runc 2>&1)
if (($? != 1)); then bad "$t" "exit status: $out"
elif ! grep -q "$W/bad.json: not valid JSON: line 3" <<<"$out"; then bad "$t" "$out"
elif ! cmp -s "$W/bad.json" "$W/before.json"; then bad "$t" "the file changed"
else ok "$t"; fi

t="setup says dockerd is not running (pid file)"
cp "$CFG" "$W/before.json"
out=$(setup --docker-pidfile "$W/nosuch.pid" --runtime /usr/sbin/runc)
if (($? != 1)); then bad "$t" "exit status: $out"
elif ! grep -q "$W/nosuch.pid: No such file or directory (is dockerd running" <<<"$out"; then bad "$t" "$out"
elif ! cmp -s "$CFG" "$W/before.json"; then bad "$t" "daemon.json changed"
else ok "$t"; fi

t="setup does not signal what a stale pid file names"
sleep 600 &
spid=$!
echo "$spid" >"$W/stale.pid"
out=$(setup --docker-pidfile "$W/stale.pid" --runtime /usr/sbin/runc)
rc=$?
alive=0
kill -0 "$spid" 2>/dev/null && alive=1
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
if ((rc != 1)); then bad "$t" "exit status $rc: $out"
elif ! grep -q "dockerd is not running: pid $spid of $W/stale.pid is sleep (a stale pid file?)" <<<"$out"; then bad "$t" "$out"
elif ((!alive)); then bad "$t" "the process of the stale pid file is gone"
elif ! cmp -s "$CFG" "$W/before.json"; then bad "$t" "daemon.json changed"
else ok "$t"; fi

t="setup says dockerd is not reachable"
out=$(DOCKER_HOST=unix://$W/nosuch.sock "$DM" setup --docker-config "$CFG" --runtime /usr/sbin/runc 2>&1)
if (($? != 1)); then bad "$t" "exit status: $out"
elif ! grep -q "cannot reach dockerd at unix://$W/nosuch.sock: No such file or directory" <<<"$out"; then bad "$t" "$out"
elif ! cmp -s "$CFG" "$W/before.json"; then bad "$t" "daemon.json changed"
else ok "$t"; fi

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
