#!/bin/sh
# test_self_contained.sh — the repository stands on its own: no tracked
# file points to a document outside it, and every citation of proto/ names
# a file and a section that exist.  `make check` runs it (tests/test_*.sh).
#
#   sh tests/test_self_contained.sh        from the top of the repository
#
# Refused, each reported as file:line (the patterns are in OUTSIDE below,
# written with bracket expressions so that this file does not match
# itself):
#   - the outside design, findings and style documents: their upper-case
#     names standing alone as a word (so also a citation cut by a line
#     break), their file names, and a citation of a house-style rule;
#   - paths into the outside shared folder;
#   - "proto/NAME.md" (or `NAME.md` in proto/) where proto/NAME.md does not
#     exist, and "NAME.md §N" where proto/NAME.md has no heading N.
# Lower-case prose ("by design", "the design requires") is fine.
#
# The files are those git tracks (git ls-files), or, outside a git
# checkout, every file but build/ and .git/.  Binary files are skipped.
# POSIX sh, GNU grep and awk.
set -u

list=$(mktemp) || exit 1
hits=$(mktemp) || exit 1
trap 'rm -f "$list" "$hits"' EXIT INT TERM

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z >"$list"
else
	find . -path ./build -prune -o -path ./.git -prune -o -type f -print0 >"$list"
fi
if [ ! -s "$list" ]; then
	echo "test_self_contained: no files to check" >&2
	exit 1
fi
nfiles=$(tr -cd '\000' <"$list" | wc -c)

W='(^|[^A-Za-z0-9_])'   # a word starts here
E='([^A-Za-z0-9_]|$)'   # and ends here
OUTSIDE="$W[D]ESIGN$E|$W[F]INDINGS$E|[D]ESIGN\\.md|[S]TYLE\\.md|$W[S]TYLE[[:space:]]*[\"§:]|\\.\\./[s]hared|/work/[s]hared"

fail=0

# 1. Pointers to documents outside the repository.
xargs -0 grep -n -I -H -E "$OUTSIDE" <"$list" >"$hits" 2>/dev/null
if [ -s "$hits" ]; then
	sed 's/^/test_self_contained: outside reference: /' "$hits"
	fail=1
fi

# 2. Citations into proto/: the file exists, and so does the section.
#    Headings are "## N. Title" or "### N.M Title".
xargs -0 grep -o -n -I -H -E '(proto/[a-z_]+\.md|`[a-z_]+\.md`)( §[0-9]+(\.[0-9]+)?)?' <"$list" 2>/dev/null |
awk -v dir=proto '
function heads(f,    line, h) {
	if (f in seen)
		return seen[f]
	seen[f] = 0
	while ((getline line < (dir "/" f)) > 0) {
		seen[f] = 1
		if (match(line, /^#+ [0-9]+(\.[0-9]+)?[. ]/)) {
			h = substr(line, 1, RLENGTH - 1)
			sub(/^#+ /, "", h)
			sec[f, h] = 1
		}
	}
	close(dir "/" f)
	return seen[f]
}
{
	# file:line:match — the match never holds a colon
	n = split($0, p, ":")
	where = p[1] ":" p[2]
	m = p[n]
	f = m
	sub(/ §.*/, "", f)
	gsub(/`/, "", f)
	sub(/^proto\//, "", f)
	bare = (m ~ /^`/)
	# A bare `NAME.md` is a citation only inside proto/ (elsewhere it may
	# name README.md or any other file), and there only when proto/NAME.md
	# exists or a section is named.
	if (bare && p[1] !~ /^proto\//)
		next
	if (!heads(f)) {
		if (!bare || m ~ / §/) {
			printf "test_self_contained: %s: cites %s/%s, which does not exist\n", where, dir, f
			bad = 1
		}
		next
	}
	if (m ~ / §/) {
		s = m
		sub(/.* §/, "", s)
		if (!((f, s) in sec)) {
			printf "test_self_contained: %s: cites %s/%s §%s, which has no such section\n", where, dir, f, s
			bad = 1
		}
	}
}
END { exit bad }' || fail=1

if [ $fail = 0 ]; then
	echo "test_self_contained: $nfiles files, no reference outside the repository, every proto/ citation resolves"
fi
exit $fail
