# Normalize "KEY<TAB>fd target flags=.. pos=.." lines (see run.sh): numbers
# of pipe/socket/anon inodes and /dev/pts indexes are renamed by order of
# first appearance, so sharing is compared but not the numbers themselves.
# The position of O_APPEND fds is not compared.
function oct(s,    i, v) {
	v = 0
	for (i = 1; i <= length(s); i++)
		v = v * 8 + substr(s, i, 1)
	return v
}
BEGIN { FS = "\t" }
{
	key = $1
	line = substr($0, length(key) + 2)
	split(line, f, " ")
	tgt = f[2]
	if (match(tgt, /^[a-z_]+:\[[0-9]+\]$/)) {
		kind = substr(tgt, 1, index(tgt, ":") - 1)
		if (!(tgt in label))
			label[tgt] = kind ":#" (++nlabel)
		sub(/^[^ ]+ [^ ]+/, f[1] " " label[tgt], line)
	} else if (match(tgt, /^\/dev\/pts\/[0-9]+$/)) {
		if (!(tgt in label))
			label[tgt] = "/dev/pts/#" (++nlabel)
		sub(/^[^ ]+ [^ ]+/, f[1] " " label[tgt], line)
	}
	# O_APPEND writes go to the end whatever the position: the position of
	# such an fd (the shared log) moves with every line any process logs.
	if (match(line, /flags=[0-7]+/)) {
		fl = oct(substr(line, RSTART + 6, RLENGTH - 6))
		if (int(fl / 1024) % 2 == 1)
			sub(/pos=[0-9]+/, "pos=-", line)
	}
	printf "%s\t%s\n", key, line
}
