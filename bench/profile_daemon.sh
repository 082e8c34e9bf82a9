#!/bin/sh
# profile_daemon.sh — where the CPU goes per message in the daemon end to
# end (README.md, Performance; issue 19): bench_daemon's saturation
# workload with ONE process under valgrind --tool=callgrind, whose
# instruction counts are exact on a machine busy with other work, where
# CPU time is not.
#
#   sh bench/profile_daemon.sh BUILD OUT.json [N] [TOP] [WARMUP]
#
# For each process — the sending relmd, relm-mailbox, the receiving relmd —
# bench_daemon runs, after WARMUP (3,500) messages that bring the sender's
# event log to its retention (10,000 events: from then on every
# transaction also trims it, as on a daemon that has run a while), one
# round of N (500) messages and two such rounds, with that process
# under callgrind; start-up, set-up and shut-down cost the same in both, so
# (Ir(2N) - Ir(N)) / N is the cost of one message alone, and so is the
# same difference per function.  Prints, per process, instructions per
# message and the TOP (15) functions by inclusive and by self cost per
# message; writes a flat JSON object to OUT.json:
#   daemon.e2e.ir_per_msg.{sender,mailbox,receiver}
# (ROLES="sender receiver" in the environment: only those) and keeps the
# profiles (callgrind.ROLE.{1,2}.out) beside OUT.json for
# callgrind_annotate.
#
# The process under callgrind runs some 50 times slower than the others,
# which changes how work falls into loop turns: the sending relmd sees a
# saturation of its own and commits bigger batches than at full speed (its
# per-commit share comes out low), while the receiving relmd's mailbox
# client hands it at most 2 ms of envelopes per turn, about one envelope
# under callgrind (its per-commit share comes out high).  The commits are
# printed with each figure.  Counts of one build repeat to about 1 %;
# compare builds with the same N and WARMUP.
set -eu

build=${1:?usage: profile_daemon.sh BUILD OUT.json [N] [TOP] [WARMUP]}
out=${2:?usage: profile_daemon.sh BUILD OUT.json [N] [TOP] [WARMUP]}
n=${3:-500}
top=${4:-15}
warm=${5:-3500}
VALGRIND=${VALGRIND:-valgrind}
command -v "$VALGRIND" >/dev/null 2>&1 || { echo "profile_daemon.sh: valgrind not found" >&2; exit 1; }
command -v callgrind_annotate >/dev/null 2>&1 || { echo "profile_daemon.sh: callgrind_annotate not found" >&2; exit 1; }
dir=$(cd "$(dirname "$out")" && pwd)

# run ROLE ROUNDS -> the profile's file name (rounds of N messages after
# the warm-up, which also goes in rounds of N: each round waits for its
# receipts, and a round small enough for the one slow process to finish
# within the 10 s after which the sender retransmits keeps the
# retransmissions of a slowed-down run out of the count)
run() {
	f="$dir/callgrind.$1.$2.out"
	rm -f "$f"
	"$build/bench_daemon" --build "$build" --n "$n" --rounds "$2" --seconds 0 --warmup "$warm" \
		--callgrind "$1" "$f" >/dev/null ||
		{ echo "profile_daemon.sh: bench_daemon failed ($1, $2 rounds of $n messages)" >&2; exit 1; }
	[ -s "$f" ] || { echo "profile_daemon.sh: no profile from $1" >&2; exit 1; }
	echo "$f"
}

total() { sed -n 's/^summary: *\([0-9]*\)$/\1/p' "$1"; }

# funcs FILE yes|no -> "cost<TAB>file:function [object]<TAB>function [object]"
# for every function of callgrind_annotate's listing: the second field
# tells apart static functions of one name (two on_timer in relmd), the
# third is shown (source path and object folder cut).  Run from / : from
# a folder where it finds the sources, callgrind_annotate leaves some
# callers out of its call trees.
funcs() {
	(cd / && callgrind_annotate --auto=no --threshold=100 --inclusive="$2" "$1" 2>/dev/null) |
	awk '/^-+$/ { sep++; next }
	     sep == 6 && match($0, /^ *[0-9,]+ /) {
		c = substr($0, RSTART, RLENGTH); gsub(/[ ,]/, "", c)
		k = $0; sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "", k)
		f = k
		sub(/^[^ ]*:/, "", f)                # the source file
		gsub(/\[[^]]*\//, "[", f)            # the object folder
		print c "\t" k "\t" f
	     }'
}

# per FILE_N FILE_2N yes|no IR -> the TOP functions by cost per message
# (inclusive: without the frames that hold everything — main, uv_run ...)
per() {
	funcs "$1" "$3" >"$dir/.a.$$"
	funcs "$2" "$3" >"$dir/.b.$$"
	awk -F '\t' -v n="$n" -v ir="$4" '
		FNR == NR { a[$2] = $1; next }
		{ d = ($1 - a[$2]) / n; if (d > 0 && d < 0.97 * ir) printf "%.0f\t%s\n", d, $3 }' \
		"$dir/.a.$$" "$dir/.b.$$" | sort -t "$(printf '\t')" -k1,1nr | head -n "$top" |
	awk -F '\t' -v ir="$4" '{ printf "  %9s %5.1f%%  %s\n", $1, 100 * $1 / ir, $2 }'
	rm -f "$dir/.a.$$" "$dir/.b.$$"
}

# calls FILE FUNCTION -> how many times FUNCTION was called
calls() {
	(cd / && callgrind_annotate --auto=no --tree=caller --threshold=100 "$1" 2>/dev/null) |
	awk -v fn="$2" '
		/^ *$/ { sum = 0; next }
		/  < / { if (match($0, /\(([0-9,]+)x\)/)) { c = substr($0, RSTART + 1, RLENGTH - 3)
		                                           gsub(/,/, "", c); sum += c }
		         next }
		/  \*  / { if ($0 ~ (":" fn " \\[")) { print sum; found = 1; exit }; sum = 0 }
		END { if (!found) print 0 }'
}

tmp="$out.tmp.$$"
echo "{" >"$tmp"
sep=""
for role in ${ROLES:-sender mailbox receiver}; do
	echo "  PROFILE $role: one and two rounds of $n messages under callgrind (after $warm)" >&2
	f1=$(run "$role" 1)
	f2=$(run "$role" 2)
	a=$(total "$f1")
	b=$(total "$f2")
	[ -n "$a" ] && [ -n "$b" ] || { echo "profile_daemon.sh: no totals in $f1 / $f2" >&2; exit 1; }
	ir=$(((b - a) / n))
	# the commits (group commits: one per loop turn that wrote)
	case $role in
	sender) what="sender relmd" fn=relm_store_batch_commit ;;
	mailbox) what="relm-mailbox" fn=sq_commit ;;
	*) what="receiver relmd" fn=relm_store_batch_commit ;;
	esac
	c1=$(calls "$f1" "$fn")
	c2=$(calls "$f2" "$fn")
	echo "$what: $ir instructions per message ($((c2 - c1)) commits for $n messages)"
	echo " inclusive, per message:"
	per "$f1" "$f2" yes "$ir"
	echo " self, per message:"
	per "$f1" "$f2" no "$ir"
	printf '%s  "daemon.e2e.ir_per_msg.%s": %s' "$sep" "$role" "$ir" >>"$tmp"
	sep=",
"
done
printf '\n}\n' >>"$tmp"
mv "$tmp" "$out"
