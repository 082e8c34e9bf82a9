#!/bin/sh
# devices_ratio.sh — the multi-device goal from one bench.json: CPU per
# message of the sending proton (all its devices) plus the mailbox, with
# the proton on 3 paired devices (daemon.dev3.*) over the same with it on
# one (daemon.e2e.*), both from the same `make bench` run.  Adds
# "multidevice.cpu_ratio_3_vs_1" to the file and prints it (goal ≤ 2).
#
#   sh bench/devices_ratio.sh BENCH.json
set -eu
f=${1:?usage: devices_ratio.sh BENCH.json}
get() { sed -n 's/^ *"'"$1"'": *\([-+0-9.eE]*\).*/\1/p' "$f" | sed -n 1p; }
s1=$(get daemon.e2e.cpu_us_per_msg.sender); m1=$(get daemon.e2e.cpu_us_per_msg.mailbox)
s3=$(get daemon.dev3.cpu_us_per_msg.sender); m3=$(get daemon.dev3.cpu_us_per_msg.mailbox)
[ -n "$s1" ] && [ -n "$m1" ] && [ -n "$s3" ] && [ -n "$m3" ] ||
	{ echo "devices_ratio: $f lacks the 1- or 3-device figures" >&2; exit 1; }
r=$(awk -v s1="$s1" -v m1="$m1" -v s3="$s3" -v m3="$m3" 'BEGIN { printf "%.2f", (s3 + m3) / (s1 + m1) }')
echo "3 devices vs 1: sending proton + mailbox $s3 + $m3 µs vs $s1 + $m1 µs per message = ${r}x (goal ≤ 2x)"
tmp="$f.tmp.$$"
printf '{\n  "multidevice.cpu_ratio_3_vs_1": %s\n}\n' "$r" >"$tmp.add"
sh "$(dirname "$0")/json_merge.sh" "$f" "$tmp.add"
rm -f "$tmp.add"
