#!/bin/sh
# bench_ir.sh — instructions per message under callgrind (README.md, Performance): counts
# that repeat to a fraction of a percent on a noisy machine, where wall
# time does not.
#
#   sh bench/bench_ir.sh BENCH_ENGINE OUT.json [N] [DH_N] [SETUP_N]
#
# Each figure is one side of one scenario of BENCH_ENGINE (--only,
# --scenario, one round) run twice, with N and 2N messages: set-up,
# warm-up and start-up cost the same in both runs, so (Ir(2N) - Ir(N)) / N
# is the cost of one message alone.  Writes a flat JSON object to OUT.json:
#   engine.{stream,dh}.ir_per_msg        relm
#   engine.{stream,dh}.olm_ir_per_msg    libolm
#   engine.{stream,dh}.floor_ir_per_msg  the floor (see bench_engine.c)
#   engine.setup.ir_per_session, engine.setup.olm_ir_per_session
#   engine.{stream,dh,setup}.ir_ratio_vs_olm   olm / relm
set -eu

bin=${1:?usage: bench_ir.sh BENCH_ENGINE OUT.json [N] [DH_N] [SETUP_N]}
out=${2:?usage: bench_ir.sh BENCH_ENGINE OUT.json [N] [DH_N] [SETUP_N]}
n=${3:-2000}
dn=${4:-200}
sn=${5:-20}
VALGRIND=${VALGRIND:-valgrind}

command -v "$VALGRIND" >/dev/null 2>&1 || { echo "bench_ir.sh: valgrind not found" >&2; exit 1; }

# ir SIDE SCENARIO COUNT-OPTION COUNT [MORE...] -> total instructions of that run
ir() {
	side=$1 scen=$2 opt=$3 cnt=$4
	shift 4
	"$VALGRIND" --tool=callgrind --callgrind-out-file=/dev/null \
		"$bin" --only "$side" --scenario "$scen" --rounds 1 "$opt" "$cnt" "$@" 2>&1 >/dev/null |
		sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p'
}

# per SIDE SCENARIO COUNT-OPTION COUNT [MORE...] -> instructions per unit
per() {
	side=$1 scen=$2 opt=$3 cnt=$4
	shift 4
	a=$(ir "$side" "$scen" "$opt" "$cnt" "$@")
	b=$(ir "$side" "$scen" "$opt" $((cnt * 2)) "$@")
	[ -n "$a" ] && [ -n "$b" ] || { echo "bench_ir.sh: callgrind failed ($side $scen)" >&2; exit 1; }
	echo $(((b - a) / cnt))
}

echo "  IR      stream: $n and $((2 * n)) messages per side" >&2
s_relm=$(per relm stream --n "$n")
s_olm=$(per olm stream --n "$n")
s_floor=$(per floor stream --n "$n")
echo "  IR      dh: $dn and $((2 * dn)) messages per side" >&2
d_relm=$(per relm dh --dh-n "$dn")
d_olm=$(per olm dh --dh-n "$dn")
d_floor=$(per floor dh --dh-n "$dn")
echo "  IR      setup: $sn and $((2 * sn)) sessions per side" >&2
# --setup-main: only the headline variant (identity keys excluded, olm's
# one-time key signed), not the reference variants
u_relm=$(per relm setup --setup-n "$sn" --setup-main)
u_olm=$(per olm setup --setup-n "$sn" --setup-main)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

tmp="$out.tmp.$$"
cat >"$tmp" <<JSON
{
  "engine.stream.ir_per_msg": $s_relm,
  "engine.stream.olm_ir_per_msg": $s_olm,
  "engine.stream.floor_ir_per_msg": $s_floor,
  "engine.stream.ir_ratio_vs_olm": $(ratio "$s_olm" "$s_relm"),
  "engine.stream.ir_x_floor": $(ratio "$s_relm" "$s_floor"),
  "engine.dh.ir_per_msg": $d_relm,
  "engine.dh.olm_ir_per_msg": $d_olm,
  "engine.dh.floor_ir_per_msg": $d_floor,
  "engine.dh.ir_ratio_vs_olm": $(ratio "$d_olm" "$d_relm"),
  "engine.dh.ir_x_floor": $(ratio "$d_relm" "$d_floor"),
  "engine.setup.ir_per_session": $u_relm,
  "engine.setup.olm_ir_per_session": $u_olm,
  "engine.setup.ir_ratio_vs_olm": $(ratio "$u_olm" "$u_relm")
}
JSON
mv "$tmp" "$out"
printf '%-8s %14s %14s %10s %14s\n' "Ir/msg" relm libolm olm/relm floor
printf '%-8s %14s %14s %10s %14s\n' stream "$s_relm" "$s_olm" "$(ratio "$s_olm" "$s_relm")" "$s_floor"
printf '%-8s %14s %14s %10s %14s\n' dh "$d_relm" "$d_olm" "$(ratio "$d_olm" "$d_relm")" "$d_floor"
printf '%-8s %14s %14s %10s %14s\n' setup "$u_relm" "$u_olm" "$(ratio "$u_olm" "$u_relm")" -
