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
	local f=$1 a= b= i
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
