# SPDX-License-Identifier: MIT
# e2e workload for busybox sh: a counter loop that forks every step
# (command substitution), one line per step: "N HOST ok".
i=0
while :; do
	i=$((i + 1))
	echo "$i $(hostname) ok"
	sleep 0.1
done
