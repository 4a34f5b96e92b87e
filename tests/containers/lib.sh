# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Clients of the services of tests/containers/mkbundle.sh, for the container
# tests: each asks the service with its real client and prints the answer;
# the status says whether it was the right one.  Services take a moment to
# start: the ask is retried, with a generous bound (CTR_ASK_TRIES x 0.2 s).

CTR_ASK_TRIES=${CTR_ASK_TRIES:-150}

# the port each service listens on inside its container
ctr_port() {
	case $1 in
	python-http) echo 8000 ;;
	redis) echo 6379 ;;
	memcached) echo 11211 ;;
	nginx) echo 80 ;;
	*) return 1 ;;
	esac
}

# ctr_ask_once NAME ADDR [WRAP...]: one question; WRAP prefixes the client
# (e.g. nsenter --net=... or ip netns exec NS)
ctr_ask_once() {
	local name=$1 addr=$2 port out key val
	shift 2
	port=$(ctr_port "$name") || { echo "no client for $name"; return 1; }
	case $name in
	redis)
		key=k$RANDOM$RANDOM val=v$RANDOM
		out=$("$@" redis-cli -h "$addr" -p "$port" ping 2>&1) && [[ $out == PONG ]] || { echo "ping: $out"; return 1; }
		out=$("$@" redis-cli -h "$addr" -p "$port" set "$key" "$val" 2>&1) && [[ $out == OK ]] || { echo "set: $out"; return 1; }
		out=$("$@" redis-cli -h "$addr" -p "$port" get "$key" 2>&1) && [[ $out == "$val" ]] || { echo "get: $out"; return 1; }
		echo "PONG, set/get $key=$val"
		;;
	memcached)
		key=k$RANDOM$RANDOM val=v$RANDOM$RANDOM
		out=$(printf 'set %s 0 0 %d\r\n%s\r\nget %s\r\nquit\r\n' "$key" ${#val} "$val" "$key" |
			"$@" busybox nc "$addr" "$port" 2>&1 | tr -d '\r')
		[[ $out == *STORED*"VALUE $key 0 ${#val}"*"$val"*END* ]] || { echo "set/get: $out"; return 1; }
		echo "set/get $key=$val"
		;;
	python-http|nginx)
		out=$("$@" curl -sS --max-time 10 "http://$addr:$port/index.html" 2>&1) &&
			[[ $out == "dmigrate $name" ]] || { echo "GET: $out"; return 1; }
		echo "GET /index.html: $out"
		;;
	esac
}

# ctr_ask NAME ADDR [WRAP...]: ctr_ask_once until it answers right
ctr_ask() {
	local i out
	for ((i = 0; i < CTR_ASK_TRIES; i++)); do
		out=$(ctr_ask_once "$@") && { echo "$out"; return 0; }
		sleep 0.2
	done
	echo "$out"
	return 1
}

# ctr_counter_advances FILE: the busybox counter in FILE is a number that
# grows (read twice, polled)
ctr_counter_advances() {
	local f=$1 a='' b='' i
	for ((i = 0; i < CTR_ASK_TRIES; i++)); do
		a=$(cat "$f" 2>/dev/null) && [[ $a =~ ^[0-9]+$ ]] && break
		sleep 0.2
	done
	[[ $a =~ ^[0-9]+$ ]] || { echo "no counter in $f"; return 1; }
	for ((i = 0; i < CTR_ASK_TRIES; i++)); do
		b=$(cat "$f" 2>/dev/null) && [[ $b =~ ^[0-9]+$ ]] && ((b > a)) && { echo "counter $a -> $b"; return 0; }
		sleep 0.2
	done
	echo "counter stuck at $a (then '$b')"
	return 1
}

# ---- containers in the test hosts -------------------------------------------
# Need DM (the dmigrate binary) and PREFIX (the test hosts' prefix: `dmigrate
# testhost up --prefix PREFIX`; docs/net.md has the topology).

ctr_host() { local h=$1; shift; "$DM" testhost run --prefix "$PREFIX" "$h" -- "$@"; }	# H CMD...
ctr_client() { ip netns exec "$PREFIX-c" "$@"; }	# CMD... in the client namespace
# LOG of a dmigrate -vv that failed, in one line: its error, then the last
# steps before it (what a CI log needs to tell a rare failure's cause)
log_tail() {
	local f=$1
	printf '%s; last steps: %s' "$(grep -E '^dmigrate: ' "$f" | tail -2 | tr '\n' ' ')" \
		"$(grep -vE '^dmigrate: |^\s*$' "$f" | tail -"${2:-12}" | tr '\n' '|')"
}
ctr_runc() { local h=$1; shift; ctr_host "$h" runc "$@"; }	# H ARGS...: runc of host H (its /run/runc)
# address N of the containers' segment (N >= 16: the hosts and client have 1-3)
ctr_addr() { echo "198.19.0.$1"; }
ctr_addr6() { echo "2001:db8:d1::$1"; }
ctr_mac() { printf '02:00:c6:13:00:%02x\n' "$1"; }
ctr_veth() { echo "${PREFIX}v$1"; }	# the host end of container N's veth
# "key=value" of `dmigrate testhost info`
ctr_info() { "$DM" testhost info --prefix "$PREFIX" | sed -n "s/^$1=//p"; }

# ctr_pid H ID: the pid of container ID's init in host H's pid namespace
ctr_pid() {
	local p
	p=$(ctr_runc "$1" state "$2" 2>/dev/null | jq -r .pid) && [[ $p =~ ^[1-9][0-9]*$ ]] && echo "$p"
}
# ctr_status H ID: created | running | paused | stopped ("" when runc does not know it)
ctr_status() { ctr_runc "$1" state "$2" 2>/dev/null | jq -r .status; }

# ctr_netup H PID N: a veth for the container whose init is PID (host H's pid
# namespace): eth0 inside with MAC ctr_mac N and addresses ctr_addr/ctr_addr6 N,
# the host end (ctr_veth N) on H's bridge
ctr_netup() {
	local h=$1 pid=$2 n=$3 v
	v=$(ctr_veth "$n")
	ctr_host "$h" sh -ec "
		ip link add $v type veth peer name eth0 netns $pid
		ip link set $v master dmbr0 up
		nsenter -t $pid -n sh -ec '
			ip link set lo up
			ip link set eth0 address $(ctr_mac "$n")
			ip addr add $(ctr_addr "$n")/24 dev eth0
			ip addr add $(ctr_addr6 "$n")/64 dev eth0 nodad
			ip link set eth0 up'"
}

# ctr_start H ID BUNDLE N LOG: runc create in host H, the container's network
# (ctr_netup), runc start, as a CNI plugin would; the container's stdout and
# stderr go to LOG
ctr_start() {
	local h=$1 id=$2 bundle=$3 n=$4 log=$5 pid
	ctr_runc "$h" create --bundle "$bundle" "$id" </dev/null >"$log" 2>&1 || { echo "runc create: $(tail -3 "$log")"; return 1; }
	pid=$(ctr_pid "$h" "$id") || { echo "runc state $id: no pid"; return 1; }
	ctr_netup "$h" "$pid" "$n" || { echo "network of $id failed"; return 1; }
	ctr_runc "$h" start "$id" || { echo "runc start $id failed"; return 1; }
}

# ctr_delete H ID: kill and delete (quietly; nothing there is fine)
ctr_delete() {
	ctr_runc "$1" kill "$2" KILL >/dev/null 2>&1
	ctr_runc "$1" delete -f "$2" >/dev/null 2>&1
	return 0
}

# ctr_cgroup_pids H ID: the container's processes, pids as seen from here (its
# cgroup of the pids hierarchy, or the first one, in host H's cgroups)
ctr_cgroup_pids() {
	local d
	d=$(ctr_info "$1.cgroup" | grep -m1 '/pids/') || d=$(ctr_info "$1.cgroup" | head -1)
	cat "$d/$2/cgroup.procs" 2>/dev/null
}

# ---- a client that keeps one connection (lib/client.py) -----------------------
CTR_CLIENT=${CTR_CLIENT:-$(dirname "${BASH_SOURCE[0]}")/lib/client.py}

# ctr_load SERVICE ADDR N [SIZE] / ctr_verify ...: N keys (redis, memcached),
# from the client namespace
ctr_load() { ctr_client /usr/bin/python3 "$CTR_CLIENT" "$1" "$2" load "$3" --size "${4:-64}"; }
ctr_verify() { ctr_client /usr/bin/python3 "$CTR_CLIENT" "$1" "$2" verify "$3" --size "${4:-64}"; }

# ctr_keep_start SERVICE ADDR STATUS [ARGS...]: the keep client in the
# background in the client namespace (a child of this shell: call it without
# $(...)); its pid in CTR_KEEP_PID, its output in STATUS.out
ctr_keep_start() {
	local svc=$1 addr=$2 status=$3
	shift 3
	rm -f "$status"
	# not through ctr_client: $! must be the client itself (ip execs it)
	ip netns exec "$PREFIX-c" /usr/bin/python3 "$CTR_CLIENT" "$svc" "$addr" keep --status "$status" "$@" \
		</dev/null >"$status.out" 2>&1 &
	# shellcheck disable=SC2034  # for the caller
	CTR_KEEP_PID=$!
}
# ctr_keep_field STATUS KEY: a field of its status file ("" before it exists)
ctr_keep_field() { jq -r ".$2" "$1" 2>/dev/null; }
# ctr_keep_past STATUS N: has it had more than N right answers?
ctr_keep_past() { local r; r=$(ctr_keep_field "$1" requests) && [[ $r =~ ^[0-9]+$ ]] && ((r > $2)); }
# ctr_keep_stop PID STATUS: stop it (SIGTERM: it reads back what it wrote) and
# wait; its exit status (0: every answer right, one connection throughout)
ctr_keep_stop() {
	local pid=$1 rc
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	return $rc
}

# dm-ipc (tests/containers/dm-ipc.c) as a container's init: its commands and
# acknowledgements are files in DIR, the rootfs's /tmp seen from here.
# ctr_ipc_ack DIR WANT: wait (bounded) until it acknowledges WANT ("ready",
# "check ok", ...); a FAIL of that command is printed at once
ctr_ipc_ack() {
	local a
	for _ in $(seq 300); do
		a=$(cat "$1/dm-ipc.ack" 2>/dev/null)
		[[ $a == "$2" ]] && return 0
		[[ $a == "${2%% *} FAIL"* ]] && { echo "$a"; return 1; }
		sleep 0.05
	done
	echo "no '$2' from dm-ipc (last: '$a')"
	return 1
}
ctr_ipc_cmd() { echo "$2" >"$1/dm-ipc.cmd.tmp" && mv "$1/dm-ipc.cmd.tmp" "$1/dm-ipc.cmd" && ctr_ipc_ack "$1" "$2 ok"; }	# DIR CMD
# ctr_ipc_view PID [PREFIX...]: what the IPC namespace of process PID holds,
# seen from outside (no times: a restore cannot keep them, nor the pids of the
# last operations); PREFIX runs it elsewhere (ctr_host H)
ctr_ipc_view() {
	local pid=$1
	shift
	"$@" nsenter --ipc="/proc/$pid/ns/ipc" sh -c "ipcs -m -s -q; ipcs -c" | grep -v '^$'
	"$@" nsenter --ipc="/proc/$pid/ns/ipc" unshare -m sh -c \
		'mount -t mqueue none /mnt && ls -ln /mnt | cut -d" " -f1,3,4 && cat /mnt/dmq1 /mnt/dmq2'
}
