#!/bin/bash
# tests/valgrind.sh — every Check suite under valgrind memcheck (`make valgrind`).
#
# usage: bash tests/valgrind.sh BUILD_DIR [suite ...]
#
# Why it is shaped so:
#   - Check's fork mode stays on (several suites force CK_FORK in main()), so
#     every test runs in a forked child.  Memcheck follows fork() by itself;
#     a child that has an error or a definite/indirect leak exits 99
#     (--error-exitcode), which Check reports as a failed test, so the
#     suite's exit status already carries the verdict.
#   - --trace-children=yes: the programs the tests exec (relmd, relmctl from
#     $BUILD) run under memcheck too.  Only /bin/sh and rm (the tests'
#     `system("rm -rf …")` clean-up) and PostgreSQL (initdb, postgres: the
#     private server of the mailbox suites) are skipped: they are not our code.
#   - Every process writes its own log ($BUILD/valgrind/<suite>/vg.<pid>.log)
#     and the logs are scanned as well as the exit codes: a process the test
#     kills on purpose (SIGKILL in check_crash and check_mailbox) never
#     reaches its exit summary or exit code, so its log is searched for
#     error reports; its leaks are unknowable (it did not exit) and are not
#     counted — its code paths are leak-checked where other tests run them
#     to a normal exit.
#   - RELM_VALGRIND=1 lets a few slow tests run a smaller workload (fewer
#     iterations/kill points); assertions are unchanged.
#     CK_TIMEOUT_MULTIPLIER scales Check's per-test timeouts for the ~20-50x
#     slowdown.
#   - Two suites at a time (RELM_VG_JOBS, default 2).
set -u
BUILD=${1:?usage: valgrind.sh BUILD_DIR [suite ...]}
shift
OUT=$BUILD/valgrind
JOBS=${RELM_VG_JOBS:-2}
if [ $# -gt 0 ]; then
	SUITES="$*"
else
	SUITES=$(for t in "$BUILD"/tests/check_*; do
		case $t in *.o|*.d) continue;; esac
		[ -x "$t" ] && basename "$t"
	done)
fi
command -v valgrind >/dev/null || { echo "error: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"

export RELM_VALGRIND=1
export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-20}
export BUILD

run_one() {
	s=$1
	d=$OUT/$s
	mkdir -p "$d"
	t0=$(date +%s)
	valgrind --tool=memcheck --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
		--trace-children=yes --trace-children-skip='*/sh,*/bash,*/rm,*/initdb,*/postgres,*/pg_ctl' \
		--suppressions=tests/valgrind.supp \
		--log-file="$d/vg.%p.log" \
		"$BUILD/tests/$s" >"$d/stdout" 2>&1
	rc=$?
	t1=$(date +%s)
	# error reports anywhere (also in logs of killed processes)
	errs=$(cat "$d"/vg.*.log | grep -cE '^==[0-9]+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function|Process terminating with default action of signal 11|[0-9,]+ (\([0-9,]+ direct, [0-9,]+ indirect\) )?bytes in [0-9,]+ blocks are (definitely|indirectly) lost)')
	sums=$(grep -h 'ERROR SUMMARY' "$d"/vg.*.log | grep -vc 'ERROR SUMMARY: 0 errors')
	procs=$(ls "$d"/vg.*.log | wc -l)
	nosum=$(grep -L 'ERROR SUMMARY' "$d"/vg.*.log | wc -l)
	verdict=ok
	if [ "$rc" != 0 ] || [ "$errs" != 0 ] || [ "$sums" != 0 ]; then verdict=FAIL; fi
	printf '%-22s %-4s exit=%s error-reports=%s processes=%s (no exit summary, i.e. exec of sh/rm or killed on purpose: %s) %ss\n' \
		"$s" "$verdict" "$rc" "$errs" "$procs" "$nosum" "$((t1 - t0))" >"$d/verdict"
	cat "$d/verdict"
	if [ "$verdict" = FAIL ]; then
		tail -5 "$d/stdout"
		grep -lE 'ERROR SUMMARY: [1-9]|are (definitely|indirectly) lost|^==[0-9]+== (Invalid|Conditional|Use of|Syscall)' "$d"/vg.*.log | head -3 | sed 's/^/  see /'
	fi
}

T0=$(date +%s)
# Run the slowest suites first so two workers stay busy.
ORDER=$(for s in $SUITES; do case $s in check_crash|check_store*|check_mailbox|check_rel) echo "0 $s";; *) echo "1 $s";; esac; done | sort | cut -d' ' -f2)
running=0
for s in $ORDER; do
	run_one "$s" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait
T1=$(date +%s)
echo "valgrind: $(cat "$OUT"/*/verdict | grep -c ' ok ') ok, $(cat "$OUT"/*/verdict | grep -c ' FAIL ') failed, $((T1 - T0)) s"
! grep -q ' FAIL ' "$OUT"/*/verdict
