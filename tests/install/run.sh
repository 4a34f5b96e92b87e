#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What 'meson install' puts in place, checked in a DESTDIR (nothing is
# installed on this machine):
#   install/files       the binaries in sbin, the systemd unit, its
#                       configuration, the key's directory (0700), the man
#                       pages, bash completion
#   install/run         the installed binaries run (--version, --help)
#   install/unit        systemd-analyze verify finds nothing to say about the
#                       unit; it restarts on failure, reads its configuration,
#                       and the daemon started as the unit starts it reads
#                       the key the configuration names
#   install/man         the man pages render without warnings and name every
#                       command and every option (of --help and of the
#                       option tables in src/cli/ and src/daemon/)
#   install/completion  the bash completion loads and offers every option
#
#   tests/install/run.sh [--build DIR]
# Output: "PASS name" / "FAIL name: reason", then "N passed, N failed, N skipped".
set -u -o pipefail
export LC_ALL=C
# Debian's tools first: a pyenv shim in front of python3 costs a second a call
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$REPO/build
[[ ${1:-} == --build ]] && BUILD=$2
BUILD=$(cd "$BUILD" && pwd)
WORK=$(mktemp -d /tmp/dm-install.XXXXXX)
DEST=$WORK/dest
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0 skipped=0
ok() { echo "PASS $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
skip() { echo "SKIP $1: $2"; skipped=$((skipped + 1)); }
finish() { echo "$passed passed, $failed failed, $skipped skipped"; ((failed == 0)); exit; }

if ! DESTDIR=$DEST meson install -C "$BUILD" --no-rebuild --quiet >"$WORK/install.log" 2>&1; then
	bad install/files "meson install failed: $(tail -n 3 "$WORK/install.log")"
	finish
fi
# where each file went (the paths without DESTDIR)
meson introspect "$BUILD" --installed | jq -r 'to_entries[] | .value' >"$WORK/installed"
where() { grep -E "/$1\$" "$WORK/installed" | head -n 1; }
meson introspect "$BUILD" --buildoptions >"$WORK/options.json"
opt() { jq -r --arg n "$1" '.[] | select(.name == $n) | .value' "$WORK/options.json"; }
PREFIX=$(opt prefix)
SBIN=$PREFIX/$(opt sbindir)
SYSCONF=$(opt sysconfdir)
[[ $SYSCONF == /* ]] || SYSCONF=$PREFIX/$SYSCONF
VERSION=$(meson introspect "$BUILD" --projectinfo | jq -r .version)

# ---- files
missing=()
for f in "$SBIN/dmigrate" "$SBIN/dmigrated" "$SYSCONF/default/dmigrated"; do
	[[ -f $DEST$f ]] || missing+=("$f")
done
for f in dmigrated.service man8/dmigrate.8 man8/dmigrated.8 completions/dmigrate completions/dmigrated; do
	p=$(where "$f")
	[[ -n $p && -e $DEST$p ]] || missing+=("$f")
done
[[ -d $DEST$SYSCONF/dmigrate ]] || missing+=("$SYSCONF/dmigrate/ (the key's directory)")
if ((${#missing[@]})); then
	bad install/files "not installed: ${missing[*]}"
elif [[ $(stat -c %a "$DEST$SYSCONF/dmigrate") != 700 ]]; then
	bad install/files "$SYSCONF/dmigrate/ has mode $(stat -c %a "$DEST$SYSCONF/dmigrate"), not 700"
elif [[ ! -x $DEST$SBIN/dmigrate || ! -x $DEST$SBIN/dmigrated ]]; then
	bad install/files "the binaries are not executable"
else
	ok install/files
fi
DM=$DEST$SBIN/dmigrate
DMD=$DEST$SBIN/dmigrated
UNIT=$DEST$(where dmigrated.service)
MAN1=$DEST$(where man8/dmigrate.8)
MAN2=$DEST$(where man8/dmigrated.8)
COMP=$DEST$(where completions/dmigrate)

# ---- the installed binaries run
r=
[[ $("$DM" --version 2>&1) == "dmigrate $VERSION" ]] || r="dmigrate --version: $("$DM" --version 2>&1 | head -n 1)"
[[ -z $r && $("$DMD" --version 2>&1) != "dmigrated $VERSION" ]] && r="dmigrated --version: $("$DMD" --version 2>&1 | head -n 1)"
[[ -z $r ]] && ! "$DM" --help 2>&1 | grep -q '^usage: dmigrate' && r="dmigrate --help"
[[ -z $r ]] && ! "$DMD" --help 2>&1 | grep -q '^usage: dmigrated' && r="dmigrated --help"
[[ -z $r ]] && ! "$DM" migrate --help >/dev/null 2>&1 && r="dmigrate migrate --help fails"
if [[ -n $r ]]; then bad install/run "$r"; else ok install/run; fi

# ---- the unit
unit_key() { sed -n "s/^$1=//p" "$UNIT" | tail -n 1; }
r=
exec_start=$(unit_key ExecStart)
envfile=$(unit_key EnvironmentFile)
envfile=${envfile#-}
[[ ${exec_start%% *} == "$SBIN/dmigrated" ]] || r="ExecStart runs '${exec_start%% *}', not $SBIN/dmigrated"
[[ -z $r && $(unit_key Restart) != on-failure ]] && r="Restart is '$(unit_key Restart)', not on-failure"
[[ -z $r && $envfile != "$SYSCONF/default/dmigrated" ]] && r="EnvironmentFile is '$envfile'"
[[ -z $r && $(unit_key KillMode) != process ]] && r="KillMode is not process: a restart would kill the restored trees"
for k in PrivateTmp ProtectSystem ProtectHome NoNewPrivileges RestrictNamespaces SystemCallFilter \
	CapabilityBoundingSet PrivateDevices PrivatePIDs ProtectProc; do
	[[ -z $r && -n $(unit_key "$k") ]] && r="$k would change what restored processes see or may do"
done
if [[ -z $r ]]; then
	if command -v systemd-analyze >/dev/null; then
		# a copy whose ExecStart is the binary in DESTDIR; the man pages of
		# Documentation= are looked up in DESTDIR too
		mkdir -p "$WORK/unit"
		sed "s|^ExecStart=$SBIN/|ExecStart=$DEST$SBIN/|" "$UNIT" >"$WORK/unit/dmigrated.service"
		if ! MANPATH=$DEST$PREFIX/$(opt mandir) systemd-analyze verify "$WORK/unit/dmigrated.service" \
			>"$WORK/verify.out" 2>&1 || [[ -s $WORK/verify.out ]]; then
			r="systemd-analyze verify: $(tr '\n' ' ' <"$WORK/verify.out")"
		fi
	else
		echo "# no systemd-analyze: the unit was only parsed"
	fi
fi
if [[ -z $r ]]; then
	# the daemon as the unit starts it, with the installed configuration but
	# a key that is not there: it names the key file
	(
		set -a
		eval "$(sed -n 's/^Environment=//p' "$UNIT" | tr ' ' '\n')"
		# shellcheck disable=SC1090
		. "$DEST$envfile"
		set +a
		DMIGRATED_KEY=$WORK/no-such-key
		cmd=${exec_start//\$\{DMIGRATED_LISTEN\}/$DMIGRATED_LISTEN}
		cmd=${cmd//\$\{DMIGRATED_KEY\}/$DMIGRATED_KEY}
		cmd=${cmd//%S/$WORK/state}
		cmd=${cmd//\$DMIGRATED_OPTS/$DMIGRATED_OPTS}
		cmd=${cmd/#$SBIN\//$DEST$SBIN/}
		# shellcheck disable=SC2086
		timeout 10 $cmd
	) >"$WORK/daemon.out" 2>&1
	rc=$?
	if ((rc != 1)) || ! grep -q "$WORK/no-such-key" "$WORK/daemon.out"; then
		r="the unit's command line (exit $rc) does not stop on the missing key: $(tail -n 1 "$WORK/daemon.out")"
	fi
fi
if [[ -n $r ]]; then bad install/unit "$r"; else ok install/unit; fi

# ---- options: what --help lists and what the option tables hold
help_opts() {	# BINARY [VERB]: a command without --help would run: bounded
	timeout 10 "$@" --help 2>&1 | grep -oE -- '(^|[^a-z-])--?[a-z][a-z0-9-]*' | grep -oE -- '--?[a-z][a-z0-9-]*' | sort -u
}
synopsis_opts() {	# BINARY [VERB]: the options of the usage lines only
	timeout 10 "$@" --help 2>&1 | awk '/^  [^ ]/ { exit } { print }' |
		grep -oE -- '(^|[^a-z-])--?[a-z][a-z0-9-]*' | grep -oE -- '--?[a-z][a-z0-9-]*' | sort -u
}
table_opts() {	# FILE...: long options of getopt tables
	grep -hoE '\{ "[a-z][a-z0-9-]*", (no|required|optional)_argument' "$@" | sed -E 's/\{ "([^"]*)".*/--\1/' | sort -u
}
verbs=$("$DM" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
dm_opts=$( {
	help_opts "$DM"
	for v in $verbs; do
		[[ $v == daemon ]] && continue
		help_opts "$DM" "$v" </dev/null
	done
	table_opts "$REPO"/src/cli/*.c
} | sort -u)
dmd_opts=$( {
	help_opts "$DMD"
	table_opts "$REPO"/src/daemon/*.c
} | sort -u)
man_text() { sed 's/\\-/-/g' "$1"; }
has() { grep -qE -- "(^|[^a-z-])$2([^a-z0-9-]|$)" <<<"$1"; }	# TEXT OPTION
r=
command -v man >/dev/null || echo "# no man: the man pages were not rendered"
for m in "$MAN1" "$MAN2"; do
	command -v man >/dev/null || break
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null)
	[[ -n $w ]] && { r="$(basename "$m") renders with warnings: $w"; break; }
done
if [[ -z $r ]]; then
	t1=$(man_text "$MAN1")
	t2=$(man_text "$MAN2")
	for v in $verbs; do
		grep -qE "^\.SS ${v}( |$)" <<<"$t1" || r+=" command '$v' (dmigrate.8)"
	done
	for o in $dm_opts; do
		[[ $o == --verbose ]] && continue	# the daemon's, in dmigrated.8; dmigrate's is -v
		has "$t1" "$o" || r+=" $o (dmigrate.8)"
	done
	for o in $dmd_opts; do
		has "$t2" "$o" || r+=" $o (dmigrated.8)"
	done
	[[ -n $r ]] && r="not in the man pages:$r"
fi
if [[ -n $r ]]; then bad install/man "$r"; else ok install/man; fi

# ---- bash completion: it loads, and completing "dmigrate VERB -" offers
# every option that VERB's --help lists (bash-completion's helpers stubbed:
# the completion runs as bash would run it)
complete_words() {	# COMPLETION-FILE FUNCTION WORD...: what TAB offers after the words
	bash -c '
		_init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
			words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
		_filedir() { :; }
		. "$1" || exit 1
		fn=$2; shift 2
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		"$fn"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
r=
if ! bash -n "$COMP" 2>"$WORK/comp.err"; then
	r="syntax: $(cat "$WORK/comp.err")"
elif ! bash -c '. "$1" && complete -p dmigrate && complete -p dmigrated' _ "$COMP" >/dev/null 2>&1; then
	r="it does not register completions for dmigrate and dmigrated"
else
	offered=$(complete_words "$COMP" _dmigrate dmigrate "")
	for v in $verbs; do
		grep -qx -- "$v" <<<"$offered" || r+=" $v"
	done
	for v in $verbs; do
		offered=$(complete_words "$COMP" _dmigrate dmigrate "$v" -)
		[[ $v == daemon ]] && want=$(synopsis_opts "$DMD") || want=$(synopsis_opts "$DM" "$v" </dev/null)
		for o in $want; do
			[[ $o == --* && $o != --version ]] || continue
			grep -qx -- "$o" <<<"$offered" || r+=" $v:$o"
		done
	done
	offered=$(complete_words "$COMP" _dmigrated dmigrated -)
	for o in $(synopsis_opts "$DMD"); do
		[[ $o == --* ]] || continue
		grep -qx -- "$o" <<<"$offered" || r+=" dmigrated:$o"
	done
	[[ -n $r ]] && r="not offered:$r"
fi
if [[ -n $r ]]; then bad install/completion "$r"; else ok install/completion; fi
finish
