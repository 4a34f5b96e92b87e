#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The rootfs tarball of one of the Docker tests' images, for `docker import`
# (no registry, no network): the rootfs of tests/containers/mkbundle.sh
# (this machine's binaries and Debian packages' files) with what the image
# adds, and the image's config as `docker import --change` lines.
#
#   tests/docker/mkrootfs.sh NAME CACHE
#
#   dm-bb      busybox: /opt/dm/counter, a number every 100 ms on stdout and
#              in /tmp/count
#   dm-python  python3 (stdlib), /opt/dm/memtouch.py: touches MB MiB (env,
#              default 0) and prints "N TIME" every 10 ms (the default
#              command); `python3 -m http.server 8000 --directory /srv` serves
#              /srv/index.html ("dmigrate python-http")
#   dm-redis   redis-server on 6379 (no persistence, no protected mode)
#   dm-nginx   nginx on 80: a master and 1 worker, logs to stderr, serves
#              /srv (index.html "dmigrate nginx", blob-8m: 8 MiB)
#
# Writes CACHE/NAME.tar and CACHE/NAME.changes (one --change a line);
# CACHE/NAME.stamp holds the hash of the inputs (this script, the image's
# files, mkbundle.sh's stamp of its bundle): a second call with the same
# inputs does nothing ("up to date").
set -eu -o pipefail
export LC_ALL=C

PROG=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$PROG")
die() { echo "mkrootfs: $*" >&2; exit 1; }
(($# == 2)) || { sed -n '/^#   tests/,/^# files/p' "$PROG" | sed 's/^# \{0,1\}//' >&2; exit 2; }
NAME=$1
CACHE=$2

ENVS=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
case $NAME in
dm-bb)
	BASE=busybox
	CMD='["/bin/sh", "/opt/dm/counter"]'
	EXPOSE=
	;;
dm-python)
	BASE=python-http
	CMD='["/usr/bin/python3", "/opt/dm/memtouch.py"]'
	ENVS+=(PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1)
	EXPOSE=8000
	;;
dm-redis)
	BASE=redis
	CMD='["/usr/bin/redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", "/tmp", "--daemonize", "no"]'
	EXPOSE=6379
	;;
dm-nginx)
	BASE=nginx
	CMD='["/usr/sbin/nginx", "-c", "/etc/nginx/nginx.conf"]'
	EXPOSE=80
	;;
*) die "unknown image '$NAME' (dm-bb, dm-python, dm-redis, dm-nginx)" ;;
esac

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
BUNDLE=$CACHE/bundle-$BASE
out=$("$HERE/../containers/mkbundle.sh" "$BASE" "$BUNDLE" 2>&1) || die "$out"

stamp=$({
	sha256sum "$PROG" "$HERE/img/memtouch.py"
	cat "$BUNDLE/.mkbundle-stamp"
} | sha256sum | cut -d' ' -f1)
if [[ -f $CACHE/$NAME.stamp && $(<"$CACHE/$NAME.stamp") == "$stamp" && -f $CACHE/$NAME.tar && -f $CACHE/$NAME.changes ]]; then
	echo "mkrootfs: $NAME: up to date"
	exit 0
fi

NEW=$CACHE/$NAME.new.$$
rm -rf "$NEW"
trap 'rm -rf "$NEW"' EXIT
mkdir -p "$NEW"
cp -a "$BUNDLE/rootfs" "$NEW/rootfs"
R=$NEW/rootfs
mkdir -p "$R/opt/dm"
case $NAME in
dm-bb)
	cat >"$R/opt/dm/counter" <<-'EOF'
	# dm-bb: a number every 100 ms, on stdout and in /tmp/count
	i=0
	while :; do
		i=$((i + 1))
		echo "$i"
		echo "$i" >/tmp/count
		sleep 0.1
	done
	EOF
	;;
dm-python)
	cp "$HERE/img/memtouch.py" "$R/opt/dm/memtouch.py"
	;;
dm-nginx)
	cat >"$R/etc/nginx/nginx.conf" <<-'EOF'
	user root;
	daemon off;
	master_process on;
	worker_processes 1;
	pid /tmp/nginx.pid;
	error_log stderr notice;
	events { worker_connections 256; }
	http {
		access_log off;
		default_type application/octet-stream;
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
	# a file to download through a migration: 8 MiB, its content known
	# (a sha256 chain), the same in every build
	/usr/bin/python3 - "$R/srv/blob-8m" <<-'EOF'
	import hashlib, sys
	h = hashlib.sha256(b"dmigrate blob").digest()
	with open(sys.argv[1], "wb") as f:
	    for _ in range((8 << 20) // 32):
	        f.write(h)
	        h = hashlib.sha256(h).digest()
	EOF
	;;
esac

{
	printf 'CMD %s\n' "$CMD"
	for e in "${ENVS[@]}"; do printf 'ENV %s\n' "$e"; done
	[[ -z $EXPOSE ]] || printf 'EXPOSE %s\n' "$EXPOSE"
	printf 'WORKDIR /\n'
	printf 'LABEL org.dmigrate.test-image=%s\n' "$NAME"
} >"$NEW/changes"
# root-owned, stable order and times: the same rootfs gives the same tarball
tar -C "$R" --numeric-owner --owner=0 --group=0 --sort=name -cf "$NEW/rootfs.tar" .
mv "$NEW/rootfs.tar" "$CACHE/$NAME.tar"
mv "$NEW/changes" "$CACHE/$NAME.changes"
echo "$stamp" >"$CACHE/$NAME.stamp"
echo "mkrootfs: $NAME: built $CACHE/$NAME.tar ($(du -h "$CACHE/$NAME.tar" | cut -f1))"
