# Normalize "KEY<TAB>/proc/PID/maps line" input for comparison (see run.sh):
# merge adjacent VMAs of one process that differ only in how the kernel split
# them, and rename inode numbers of objects that are new after a restore
# (shmem, deleted files) by order of first appearance.
function hex(s,    i, v) {
	v = 0
	s = tolower(s)
	for (i = 1; i <= length(s); i++)
		v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
	return v
}
function flush() {
	if (pkey != "")
		printf "%s\t%s-%s %s %s %s %s %s\n", pkey, pss, pes, pperm, poffs, pdev, pino, ppath
	pkey = ""
}
BEGIN { FS = "\t"; pkey = "" }
{
	key = $1
	line = substr($0, length(key) + 2)
	n = split(line, f, " ")
	path = ""
	if (n >= 6) {
		# The path starts after the 5th field; it may hold spaces.
		rest = line
		for (i = 1; i <= 5; i++) {
			sub(/^[ ]*[^ ]+/, "", rest)
		}
		sub(/^[ ]+/, "", rest)
		path = rest
	}
	split(f[1], r, "-")
	ss = r[1]; es = r[2]
	s = hex(ss); e = hex(es)
	perm = f[2]; offs = f[3]; off = hex(offs); dev = f[4]; ino = f[5]
	if (ino != "0" && (path ~ /\(deleted\)$/ || path ~ /^\/dev\/zero/ || path ~ /^\/memfd:/ ||
			   path ~ /^\/SYSV/ || dev == "00:01")) {
		k = dev ":" ino
		if (!(k in label))
			label[k] = "#" (++nlabel)
		ino = label[k]
	}
	if (key == pkey && s == pe && perm == pperm && dev == pdev && ino == pino && path == ppath &&
	    (ino == "0" || poff + (pe - ps) == off)) {
		pe = e; pes = es
		next
	}
	flush()
	pkey = key; ps = s; pe = e; pss = ss; pes = es; pperm = perm; poff = off; poffs = offs
	pdev = dev; pino = ino; ppath = path
}
END { flush() }
