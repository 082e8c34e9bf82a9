#!/bin/sh
# json_merge.sh — merge flat JSON objects (one "key": number per line, as
# bench_engine and bench_ir.sh write them) into OUT; OUT's own keys are
# kept, later files win on a repeated key.
#
#   sh bench/json_merge.sh OUT.json IN.json...
set -eu
out=${1:?usage: json_merge.sh OUT.json IN.json...}
shift
tmp="$out.tmp.$$"
{ [ -f "$out" ] && cat "$out"; cat "$@"; } |
awk '
	match($0, /"[^"]+"[ \t]*:[ \t]*[-+0-9.eE]+/) {
		kv = substr($0, RSTART, RLENGTH)
		k = kv; sub(/"[ \t]*:.*/, "", k); sub(/^"/, "", k)
		v = kv; sub(/^"[^"]+"[ \t]*:[ \t]*/, "", v)
		if (!(k in val)) order[n++] = k
		val[k] = v
	}
	END {
		printf "{"
		for (i = 0; i < n; i++)
			printf "%s\n  \"%s\": %s", (i ? "," : ""), order[i], val[order[i]]
		printf "\n}\n"
	}' >"$tmp"
mv "$tmp" "$out"
