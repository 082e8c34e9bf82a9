#!/bin/sh
# test_layering.sh — the layers of the code hold:
#
#  1. daemon/ sees no internal header of lib/: the relationship's state
#     (engine/rel_state.h: daemon/ holds struct relm_rel only as an opaque
#     handle and shows it through relm_rel_describe), the ratchet's steps
#     (engine/ratchet.h) and the files' shared internals (*_int.h).  Checked
#     in the sources (an #include in any file under daemon/) and in the
#     compiler's dependency files of every daemon object (an include
#     reached through another header); either names the file.
#  2. the daemon's modules depend one way: no cycle among the objects of
#     libdaemon.a.  An object depends on another when it uses a symbol the
#     other defines; a cycle (conn.o uses server.o and server.o uses
#     conn.o, or a longer ring) fails the test and names the objects and
#     the symbols that close it.
#
# `make check` runs it (tests/test_*.sh), from the top of the repository.
#
# Objects are known by their member names, which are the sources' base
# names: two sources with the same base name (api/conn.c and another
# conn.c) would be one object here, so the test first refuses an archive
# in which two members share a name.
#
#   sh tests/test_layering.sh            BUILD: where libdaemon.a is (default build)
#
# POSIX sh, ar, grep, nm, sort, uniq, find, paste and awk only.
set -u

B=${BUILD:-build}
LIB=$B/libdaemon.a
if [ ! -f "$LIB" ]; then
	echo "test_layering: $LIB not built" >&2
	exit 1
fi

# 1. No internal header of lib/ under daemon/.
INTERNAL='(rel_state|ratchet|[a-z_]+_int)\.h'
fail=0
# (lib's folders only: daemon/ has internal headers of its own, app_int.h)
if grep -rn -E "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<](crypto|wire|engine|store|core)/$INTERNAL[\">]" daemon; then
	echo "test_layering: a file under daemon/ includes an internal header of lib/ (above)"
	fail=1
fi
ndeps=0
for d in $(find "$B/daemon" -name '*.d' 2>/dev/null); do
	ndeps=$((ndeps + 1))
	if grep -q -E "(^|[ /])lib/([a-z_]+/)*$INTERNAL" "$d"; then
		echo "test_layering: $d reaches an internal header of lib/:" \
			$(grep -o -E "lib/([a-z_]+/)*$INTERNAL" "$d" | sort -u)
		fail=1
	fi
done
if [ "$ndeps" = 0 ]; then
	echo "test_layering: no dependency files under $B/daemon" >&2
	exit 1
fi
[ $fail = 0 ] || exit 1
echo "test_layering: daemon/ includes no internal header of lib/ ($ndeps objects checked)"

# 2. No dependency cycle among the daemon's objects.

members=$(ar t "$LIB") || {
	echo "test_layering: cannot list the members of $LIB" >&2
	exit 1
}
if [ -z "$members" ]; then
	echo "test_layering: $LIB has no members" >&2
	exit 1
fi
dups=$(printf '%s\n' "$members" | sort | uniq -d)
if [ -n "$dups" ]; then
	for m in $dups; do
		srcs=$(find daemon -name "${m%.o}.c" 2>/dev/null | sort | paste -s -d ' ' -)
		echo "test_layering: $LIB has more than one member named $m${srcs:+ (from $srcs)}: give each source file a name of its own" >&2
	done
	exit 1
fi

nm -A "$LIB" | awk '
{
	# archive:member:rest — rest is "VALUE TYPE NAME" or "U NAME"
	n = split($0, f, ":")
	obj = f[2]
	rest = f[3]
	for (i = 4; i <= n; i++)
		rest = rest ":" f[i]
	m = split(rest, w, " ")
	if (m == 2 && w[1] == "U") {
		uses[obj, w[2]] = 1
		objs[obj] = 1
	} else if (m == 3 && w[2] ~ /^[TDBRC]$/) {
		def[w[3]] = obj
		objs[obj] = 1
	}
}
END {
	for (k in uses) {
		split(k, p, SUBSEP)
		if ((p[2] in def) && def[p[2]] != p[1]) {
			edge[p[1], def[p[2]]] = 1
			why[p[1], def[p[2]]] = why[p[1], def[p[2]]] " " p[2]
		}
	}
	no = 0
	for (o in objs)
		names[++no] = o
	for (i = 1; i <= no; i++)
		for (j = 1; j <= no; j++)
			reach[names[i], names[j]] = ((names[i], names[j]) in edge)
	for (k = 1; k <= no; k++)
		for (i = 1; i <= no; i++)
			if (reach[names[i], names[k]])
				for (j = 1; j <= no; j++)
					if (reach[names[k], names[j]])
						reach[names[i], names[j]] = 1
	bad = 0
	for (i = 1; i <= no; i++)
		for (j = 1; j <= no; j++) {
			a = names[i]; b = names[j]
			if (a < b && reach[a, b] && reach[b, a]) {
				printf "test_layering: %s and %s depend on each other", a, b
				if ((a, b) in edge)
					printf " (%s uses%s;", a, why[a, b]
				else
					printf " (%s reaches %s through others;", a, b
				if ((b, a) in edge)
					printf " %s uses%s)\n", b, why[b, a]
				else
					printf " %s reaches %s through others)\n", b, a
				bad = 1
			}
		}
	if (bad)
		exit 1
	printf "test_layering: %d objects of libdaemon.a, no dependency cycle\n", no
}'
