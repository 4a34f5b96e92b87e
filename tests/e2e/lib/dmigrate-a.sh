#!/bin/bash
# SPDX-License-Identifier: MIT
#
# `dmigrate` as the zdtm runner (tests/zdtm/run.sh --dmigrate THIS) needs it
# for its migrate modes: the runner and its test programs live in the
# machine's own namespaces; a migration must leave from test host a's
# network to host b's dmigrated.  So, for "migrate":
#   - run dmigrate inside host a's network namespace (nsenter --net), with
#     the suite's key;
#   - its --pidfile gets the restored root's pid in host b's pid namespace:
#     translate it to the pid seen here, which the runner signals and checks.
# Every other command goes to dmigrate unchanged.
#
# Environment: E2E_DMIGRATE (the binary), E2E_PREFIX (test hosts), E2E_KEY.
set -u
DM=${E2E_DMIGRATE:?}
PREFIX=${E2E_PREFIX:?}
KEY=${E2E_KEY:?}

[[ ${1:-} == migrate ]] || exec "$DM" "$@"

args=() pidfile=
while (($#)); do
	if [[ $1 == --pidfile ]]; then
		pidfile=$2
		shift 2
		continue
	fi
	args+=("$1")
	shift
done
tmp=
if [[ -n $pidfile ]]; then
	tmp=$pidfile.ns
	rm -f "$tmp"
	args+=(--pidfile "$tmp")
fi
nsenter --net="/run/netns/$PREFIX-a" "$DM" "${args[@]}" --key "$KEY"
rc=$?
if ((rc == 0)) && [[ -n $pidfile ]]; then
	nspid=$(tr -dc 0-9 <"$tmp")
	init=$("$DM" testhost pid --prefix "$PREFIX" b) || exit 1
	# host b's level in the NSpid lists (a tree with its own pid namespace
	# has one more level below it)
	level=$(awk '/^NSpid:/ { print NF - 1 }' "/proc/$init/status")
	want=$(readlink "/proc/$init/ns/pid")
	# candidates: the processes with nspid at host b's level, "PID PPID" (one
	# awk over every status file: a fork per process took seconds when loaded)
	while read -r pid ppid; do
		# in host b's pid namespace, or the init of a namespace made there
		[[ $(readlink "/proc/$pid/ns/pid") == "$want" || $(readlink "/proc/$ppid/ns/pid" 2>/dev/null) == "$want" ]] || continue
		echo "$pid" >"$pidfile"
		break
	done < <(cat /proc/[0-9]*/status 2>/dev/null | awk -v l="$level" -v want="$nspid" '
		/^Name:/ { pid = ppid = "" }	# the first line of each file
		/^Pid:/ { pid = $2 }
		/^PPid:/ { ppid = $2 }
		/^NSpid:/ { if (NF > l && $(l + 1) == want && pid != "") print pid, ppid }')
	[[ -s $pidfile ]] || { echo "dmigrate-a: pid $nspid not found in host b" >&2; rc=1; }
fi
exit $rc
