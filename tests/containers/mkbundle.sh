#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Builds a small OCI bundle (DIR/config.json + DIR/rootfs) for one of the
# services the container tests run, offline, from this host's binaries and the
# files of its installed Debian packages (scripts/deps.sh installs them): no
# image registry, no network.
#
#   tests/containers/mkbundle.sh [options] NAME DIR
#   tests/containers/mkbundle.sh --list
#
#   NAME           busybox      sh loop: a counter, one line a tick, on stdout
#                               and in /tmp/counter
#                  python-http  python3 -m http.server 8000 serving /srv (IPv4 and v6,
#                               HTTP/1.1 keep-alive)
#                  redis        redis-server on 6379 (no persistence; DEBUG
#                               allowed: DEBUG POPULATE fills it, DEBUG DIGEST
#                               hashes the data set)
#                  memcached    memcached on 11211 (64 MiB, --mem)
#                  nginx        nginx on 80, a master and two workers, /srv
#                               (keep-alive without limits)
#   --netns MODE   new (default): runc makes the container an empty network
#                  namespace (lo only; the caller adds an interface between
#                  `runc create` and `runc start`, as CNI does);
#                  host: no network namespace of its own (the container shares
#                  the one runc runs in); /PATH: join that namespace (e.g.
#                  /run/netns/NAME of `ip netns add`)
#   --hostname H   the container's host name (default dm-NAME)
#   --interval S   busybox: seconds between ticks (default 0.2)
#   --mem MIB      memcached: its cache size, -m (default 64)
#   --check        after building, run the bundle with `runc run -d` in a
#                  scratch state root, ask the service with its client
#                  (counter advancing, redis-cli ping, memcached set/get, an
#                  HTTP GET) and delete the container; exit 1 if it does not
#                  answer
#
# Every bundle has /srv/index.html ("dmigrate NAME"), /etc/{passwd,group,hosts,
# nsswitch.conf}, busybox (its applets where the service has no binary of
# that name: sh, nc, wget...), a writable rootfs, no terminal, and the host
# name asked for.  The container's stdout/stderr are runc's: redirect them.
#
# Idempotent: DIR/.mkbundle-stamp holds a hash of this script, the options and
# every source file's path, size and mtime; a second call with the same inputs
# changes nothing ("up to date").  A DIR that exists without that stamp (and
# is not empty) is refused rather than overwritten.
set -eu -o pipefail
export LC_ALL=C
PATH=$PATH:/usr/sbin:/sbin	# ldconfig

PROG=$(readlink -f "${BASH_SOURCE[0]}")
NAMES="busybox python-http redis memcached nginx"
NETNS=new
HOSTNAME_=
INTERVAL=0.2
MEM=64
CHECK=0

die() { echo "mkbundle: $*" >&2; exit 1; }
usage() { sed -n '/^#   tests/,/^#   --check/p' "$PROG" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while (($#)); do
	case $1 in
	--netns) NETNS=${2:?}; shift ;;
	--hostname) HOSTNAME_=${2:?}; shift ;;
	--interval) INTERVAL=${2:?}; shift ;;
	--mem) MEM=${2:?}; shift ;;
	--check) CHECK=1 ;;
	--list) echo "$NAMES"; exit 0 ;;
	-h|--help) usage ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
	shift
done
(($# == 2)) || usage
NAME=$1
DIR=$2
[[ " $NAMES " == *" $NAME "* ]] || die "unknown bundle '$NAME' (one of: $NAMES)"
case $NETNS in
new|host|/*) ;;
*) die "--netns: new, host or an absolute path, not '$NETNS'" ;;
esac
[[ $INTERVAL =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--interval: a number of seconds, not '$INTERVAL'"
[[ $MEM =~ ^[1-9][0-9]*$ ]] || die "--mem: a number of MiB, not '$MEM'"
HOSTNAME_=${HOSTNAME_:-dm-$NAME}
for t in runc jq ldd ldconfig sha256sum; do
	command -v "$t" >/dev/null || die "$t not found (scripts/deps.sh installs it)"
done
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found (Debian package busybox-static: scripts/deps.sh)"

# --- what goes into the rootfs -------------------------------------------

# need_bin PATH PACKAGE: the service's binary, named by the package that
# ships it when it is missing
need_bin() { [[ -x $1 ]] || die "$1 not found (Debian package $2: scripts/deps.sh installs it)"; }

# files of installed Debian packages (regular files and symlinks, no dirs)
pkg_files() {
	local p f
	for p; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			die "Debian package $p is not installed (scripts/deps.sh installs it)"
		while IFS= read -r f; do
			[[ -L $f || -f $f ]] && printf '%s\n' "$f"
		done < <(dpkg -L "$p")
	done
}

ELFS=()		# binaries and modules whose libraries are copied
FILES=()	# files copied as they are (symlinks stay symlinks)
ARGS=()
ENV_EXTRA=()
CAPS_EXTRA=()
case $NAME in
busybox)
	ARGS=(/bin/sh -c "i=0; while :; do i=\$((i+1)); echo \$i; echo \$i >/tmp/counter; sleep $INTERVAL; done")
	;;
python-http)
	PY=/usr/bin/python3.11
	need_bin $PY python3.11-minimal
	mapfile -t FILES < <(pkg_files python3.11-minimal libpython3.11-minimal libpython3.11-stdlib |
		grep -Ev '^/usr/share/(doc|man|lintian|binfmts|applications|pixmaps)/|/test/|/idlelib/|/tkinter/')
	FILES+=(/usr/bin/python3)
	ELFS=("$PY" /usr/lib/python3.11/lib-dynload/*.so)
	# "::" with IPV6_V6ONLY off (http.server's DualStackServer): IPv4 and IPv6;
	# HTTP/1.1: a client keeps its connection (lib/client.py keep)
	ARGS=(/usr/bin/python3 -m http.server 8000 --bind :: --protocol HTTP/1.1 --directory /srv)
	ENV_EXTRA=(PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1)
	;;
redis)
	need_bin /usr/bin/redis-check-rdb redis-server
	FILES=(/usr/bin/redis-server)
	ELFS=(/usr/bin/redis-check-rdb)
	ARGS=(/usr/bin/redis-server --bind 0.0.0.0 --port 6379 --protected-mode no
		--save "" --appendonly no --dir /tmp --daemonize no
		--enable-debug-command yes)
	;;
memcached)
	need_bin /usr/bin/memcached memcached
	ELFS=(/usr/bin/memcached)
	ARGS=(/usr/bin/memcached -u root -l 0.0.0.0 -p 11211 -m "$MEM")
	;;
nginx)
	need_bin /usr/sbin/nginx nginx-light
	ELFS=(/usr/sbin/nginx)
	ARGS=(/usr/sbin/nginx -c /etc/nginx/nginx.conf)
	# the workers switch to the configured user (root): setgroups() and
	# setuid() need these even for uid 0
	CAPS_EXTRA=(CAP_SETUID CAP_SETGID)
	;;
esac

# the stamp of every input: this script, the options, the size and mtime of
# every file copied.  The libraries are those the last build found
# (DIR/.mkbundle-libs): a library newly needed means a changed binary or a
# changed library, which changes the stamp anyway; ldd runs only to build.
stamp_of() {
	{
		sha256sum "$PROG"
		printf 'name=%s netns=%s hostname=%s interval=%s mem=%s\n' "$NAME" "$NETNS" "$HOSTNAME_" "$INTERVAL" "$MEM"
		runc --version | head -1
		printf '%s\n' "$@"
		stat -L -c '%n %s %Y' $BUSYBOX "${ELFS[@]}" "${FILES[@]}" "$@" 2>&1
	} | sha256sum | cut -d' ' -f1
}
LIBS=()
[[ -f $DIR/.mkbundle-libs ]] && mapfile -t LIBS <"$DIR/.mkbundle-libs"

if [[ -f $DIR/.mkbundle-stamp && $(<"$DIR/.mkbundle-stamp") == "$(stamp_of "${LIBS[@]}")" &&
	-f $DIR/config.json && -d $DIR/rootfs ]]; then
	echo "mkbundle: $NAME: $DIR up to date"
else
	# the shared libraries of the ELFs, as the loader resolves them
	LIBS=()
	if ((${#ELFS[@]})); then
		mapfile -t LIBS < <(ldd "${ELFS[@]}" 2>/dev/null | grep -oE '/[^ :]+' |
			grep -vxF -f <(printf '%s\n' "${ELFS[@]}") | sort -u)
		((${#LIBS[@]})) || die "ldd found no libraries for ${ELFS[*]}"
	fi
	if [[ -e $DIR && ! -f $DIR/.mkbundle-stamp ]] && [[ -n $(ls -A "$DIR" 2>/dev/null) || ! -d $DIR ]]; then
		die "$DIR exists and was not made by mkbundle.sh: not overwriting it"
	fi
	NEW=$DIR.new.$$
	rm -rf "$NEW"
	trap 'rm -rf "$NEW"' EXIT
	R=$NEW/rootfs
	mkdir -p "$R"/usr/{bin,sbin,lib,lib64} "$R"/{etc,tmp,srv,proc,sys,dev,root,run,var/tmp}
	chmod 1777 "$R/tmp" "$R/var/tmp"
	# merged /usr, as on Debian 12: /lib/x86_64-linux-gnu/... is /usr/lib/...
	ln -s usr/bin "$R/bin"
	ln -s usr/sbin "$R/sbin"
	ln -s usr/lib "$R/lib"
	ln -s usr/lib64 "$R/lib64"

	# put SRC in the rootfs at its canonical place (directory symlinks of the
	# host resolved: /lib/x -> /usr/lib/x), dereferenced: a binary or a
	# library under the name the loader asks for
	put() {
		local src=$1 d
		d=$(readlink -f "$(dirname "$src")")
		mkdir -p "$R$d"
		cp -L --preserve=mode,timestamps "$src" "$R$d/"
	}
	# the packages' files in one go (symlinks kept; tar follows the rootfs's
	# /lib -> usr/lib as the host does)
	if ((${#FILES[@]})); then
		printf '%s\n' "${FILES[@]}" | sed 's|^/||' | tar -C / --no-recursion -cf - -T - | tar -C "$R" -xf -
	fi
	for f in "${ELFS[@]}" "${LIBS[@]}"; do put "$f"; done
	cp $BUSYBOX "$R/usr/bin/busybox"
	# its applets, as symlinks where the rootfs has no file of that name yet
	# (symlink() fails on an existing name: the service's binaries stay)
	chroot "$R" /usr/bin/busybox --install -s
	# the loader's cache for the libraries' directories
	if ((${#LIBS[@]})); then
		for f in "${LIBS[@]}"; do readlink -f "$(dirname "$f")"; done | sort -u >"$R/etc/ld.so.conf"
		ldconfig -r "$R" 2>/dev/null || ldconfig -r "$R"
	fi

	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n' "$HOSTNAME_" >"$R/etc/hosts"
	printf 'passwd: files\ngroup: files\nhosts: files\n' >"$R/etc/nsswitch.conf"
	echo "dmigrate $NAME" >"$R/srv/index.html"
	if [[ $NAME == nginx ]]; then
		mkdir -p "$R/etc/nginx" "$R/var/log/nginx" "$R/var/lib/nginx"
		cat >"$R/etc/nginx/nginx.conf" <<-'EOF'
		user root;
		daemon off;
		master_process on;
		worker_processes 2;
		pid /tmp/nginx.pid;
		error_log stderr notice;
		events { worker_connections 256; }
		http {
			access_log off;
			default_type text/html;
			# a client keeps one connection as long as it likes
			keepalive_requests 100000000;
			keepalive_timeout 3600s;
			client_body_temp_path /tmp/nginx-body;
			proxy_temp_path /tmp/nginx-proxy;
			fastcgi_temp_path /tmp/nginx-fastcgi;
			uwsgi_temp_path /tmp/nginx-uwsgi;
			scgi_temp_path /tmp/nginx-scgi;
			server {
				listen 80;
				root /srv;
			}
		}
		EOF
	fi

	# config.json: runc's default spec, adjusted
	(cd "$NEW" && runc spec)
	# a JSON array of the arguments (none: [])
	json_array() { local a; for a; do jq -n --arg a "$a" '$a'; done | jq -cs .; }
	args_json=$(json_array "${ARGS[@]}")
	env_json=$(json_array "${ENV_EXTRA[@]}")
	caps_json=$(json_array "${CAPS_EXTRA[@]}")
	jq --argjson args "$args_json" --argjson env "$env_json" --argjson caps "$caps_json" \
		--arg host "$HOSTNAME_" --arg netns "$NETNS" '
		.process.terminal = false
		| .process.args = $args
		| .process.env = ([.process.env[] | select(startswith("TERM=") | not)] + $env)
		| .process.capabilities |= with_entries(.value = (.value + $caps | unique))
		| .root.readonly = false
		| .hostname = $host
		| .linux.namespaces = (
			if $netns == "host" then [.linux.namespaces[] | select(.type != "network")]
			elif $netns == "new" then .linux.namespaces
			else [.linux.namespaces[] | if .type == "network" then .path = $netns else . end]
			end)
		' "$NEW/config.json" >"$NEW/config.json.tmp"
	mv "$NEW/config.json.tmp" "$NEW/config.json"
	: >"$NEW/.mkbundle-libs"
	((${#LIBS[@]} == 0)) || printf '%s\n' "${LIBS[@]}" >"$NEW/.mkbundle-libs"
	stamp_of "${LIBS[@]}" >"$NEW/.mkbundle-stamp"

	rm -rf "$DIR"
	mkdir -p "$(dirname "$DIR")"
	mv "$NEW" "$DIR"
	trap - EXIT
	echo "mkbundle: $NAME: built $DIR ($(du -sh "$DIR" | cut -f1))"
fi

((CHECK)) || exit 0

# --- --check: run it once under runc and ask it ---------------------------
source "$(dirname "$PROG")/lib.sh"
DIR=$(readlink -f "$DIR")
ROOT=$(mktemp -d /tmp/mkbundle-check.XXXXXX)
ID=mkbundle-check-$NAME-$$
cleanup_check() {
	runc --root "$ROOT" kill "$ID" KILL >/dev/null 2>&1 || true
	runc --root "$ROOT" delete -f "$ID" >/dev/null 2>&1 || true
	rm -rf "$ROOT"
}
trap cleanup_check EXIT
wrap=()
# a container without its own network namespace gets a scratch one here, so
# that its port cannot meet a service of this host
[[ $NETNS == host ]] && wrap=(unshare --net)
"${wrap[@]}" runc --root "$ROOT" run -d --bundle "$DIR" "$ID" \
	</dev/null >"$ROOT/out" 2>&1 || { cat "$ROOT/out" >&2; die "$NAME: runc run failed"; }
pid=$(runc --root "$ROOT" state "$ID" | jq -r .pid)
[[ $pid =~ ^[0-9]+$ && $pid -gt 0 ]] || die "$NAME: runc state gives no pid"
nsenter --net=/proc/$pid/ns/net ip link set lo up
# the client runs in the container's network namespace, from this host
if [[ $NAME == busybox ]]; then
	ctr_counter_advances "/proc/$pid/root/tmp/counter" >"$ROOT/answer" 2>&1
else
	ctr_ask "$NAME" 127.0.0.1 nsenter --net=/proc/$pid/ns/net -- >"$ROOT/answer" 2>&1
fi && rc=0 || rc=$?
if ((rc == 0)); then
	echo "mkbundle: $NAME: runs under runc and answers: $(tr '\n' ' ' <"$ROOT/answer" | head -c 100)"
else
	echo "mkbundle: $NAME: no answer from the service: $(cat "$ROOT/answer")" >&2
	echo "--- container output:" >&2
	tail -20 "$ROOT/out" >&2
	exit 1
fi
