#!/bin/sh
# demo.sh — `make demo`: a mailbox and two daemons (alice, bob) on this
# machine, an invite, a short conversation through relmctl, the transcript
# with delivery statuses and each side's chain tree; then alice pairs a
# second device (a third relmd), both her devices send at the same moment,
# bob sees one peer, and both her devices' trees converge on one leaf.  Everything lives in a
# temporary folder that goes, with every process, on any exit (trap).
#
#   sh tests/demo.sh [BUILD]      BUILD: where the programs are (default build)
#
# POSIX sh, sed and grep only.  Every wait is bounded; any failure exits 1
# with a message and the tail of the daemons' logs.
set -u

B=${1:-build}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
TIMEOUT=30                # seconds for any one thing to happen

die() {
	echo "demo: $*" >&2
	for f in "$T"/*.log; do
		[ -s "$f" ] || continue
		echo "--- last lines of $(basename "$f")" >&2
		tail -n 5 "$f" >&2
	done
	exit 1
}

for p in relm-mailbox relmd relmctl; do
	[ -x "$B/$p" ] || { echo "demo: $B/$p not found (run make first)" >&2; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/relm-demo.XXXXXX") || { echo "demo: mktemp failed" >&2; exit 1; }
PIDS=

cleanup() {
	trap - EXIT INT TERM HUP
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	# give them up to 5 s to finish cleanly, then insist
	n=0
	for p in $PIDS; do
		while kill -0 "$p" 2>/dev/null && [ $n -lt 25 ]; do nap; n=$((n + 1)); done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# A short pause (fractional sleep is not POSIX; fall back to a second).
nap() { sleep 0.2 2>/dev/null || sleep 1; }

# ctl NAME ARGS...: relmctl --json on NAME's socket; dies on error.
ctl() {
	who=$1
	shift
	out=$("$B/relmctl" --socket "$T/$who.sock" --json "$@" 2>"$T/ctl.err") ||
		die "relmctl $*: $(cat "$T/ctl.err")"
	printf '%s\n' "$out"
}

# field NAME JSON: the string value of the first "NAME" in a flat object.
field() {
	printf '%s\n' "$2" | sed -n 's/^[^{]*{.*"'"$1"'":"\([^"]*\)".*$/\1/p' | sed -n 1p
}

# messages NAME: NAME's history, one message object per line, oldest first,
# text messages only.
messages() {
	ctl "$1" message.list "$REL" --limit 1000 |
		sed 's/^{"messages":\[//; s/\]}$//; s/},{"message"/}\
{"message"/g' |
		grep '"kind":"text"' | sed -n '1!G;h;$p'
}

# ---- start: a mailbox, then two daemons that use it --------------------
"$B/relm-mailbox" --listen 127.0.0.1:0 --state "$T/mailbox" >"$T/port" 2>"$T/mailbox.log" &
PIDS="$PIDS $!"
i=0
until grep -q '^[0-9][0-9]*$' "$T/port" 2>/dev/null; do
	i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "the mailbox did not start"
	nap
done
PORT=$(sed -n 1p "$T/port")

for who in alice bob; do
	"$B/relmd" --state "$T/$who" --socket "$T/$who.sock" --mailbox "127.0.0.1:$PORT" \
		2>"$T/$who.log" &
	PIDS="$PIDS $!"
done
for who in alice bob; do
	i=0
	until "$B/relmctl" --socket "$T/$who.sock" daemon.status >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "relmd ($who) did not start"
		nap
	done
done
echo "mailbox on 127.0.0.1:$PORT; relmd for alice and for bob, each with its own store"

# ---- meet: alice invites, bob accepts ------------------------------------
PA=$(field proton "$(ctl alice proton.create alice)")
PB=$(field proton "$(ctl bob proton.create bob)")
INVITE=$(field invite "$(ctl alice invite.create "$PA")")
[ -n "$PA" ] && [ -n "$PB" ] && [ -n "$INVITE" ] || die "could not create protons and an invite"
echo "alice: proton.create, invite.create  → $(printf '%.40s' "$INVITE")…"
REL=$(field relationship "$(ctl bob invite.accept "$PB" "$INVITE" alice)")
[ -n "$REL" ] || die "bob could not accept the invite"
echo "bob:   invite.accept                 → relationship $REL"

i=0
until ctl alice relationship.list "$PA" | grep -q "\"$REL\""; do
	i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "alice never heard from bob"
	nap
done
echo "alice: bob's first envelope arrived  → the same relationship on her side"

# ---- talk: each line waits until the other side has it ---------------------
say() {
	from=$1 to=$2 body=$3
	id=$(field message "$(ctl "$from" message.send "$REL" "$body")")
	[ -n "$id" ] || die "$from could not send"
	i=0
	until ctl "$to" message.list "$REL" --limit 20 | grep -q "\"$id\""; do
		i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "$to never received: $body"
		nap
	done
}
say bob   alice "Hi Alice, it's Bob. Got your invite."
say alice bob   "Hi Bob! Welcome."
say alice bob   "Everything here is end-to-end encrypted; the mailbox only sees ciphertext."
say bob   alice "And the ratchet turns with every reply."
say bob   alice "Let's see the tree."
say alice bob   "Bye for now."

# ---- wait for the receipts: every sent message delivered -------------------
i=0
while :; do
	pending=$( { messages alice; messages bob; } |
		grep '"direction":"out"' | grep -c -v '"status":"delivered"')
	[ "$pending" = 0 ] && break
	if { messages alice; messages bob; } | grep -q '"status":"failed"'; then
		die "a message failed"
	fi
	i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "$pending messages still not delivered after ${TIMEOUT}s"
	nap
done

# ---- show ------------------------------------------------------------------
# line "name" JSON-object: one transcript line.
show() {
	me=$1 other=$2
	echo
	echo "== $me's history (oldest first)"
	messages "$me" | while IFS= read -r m; do
		dir=$(field direction "$m")
		st=$(field status "$m")
		body=$(field body "$m")
		if [ "$dir" = out ]; then
			printf '  %-5s → %-5s  %-11s %s\n' "$me" "$other" "[$st]" "$body"
		else
			printf '  %-5s → %-5s  %-11s %s\n' "$other" "$me" "[received]" "$body"
		fi
	done
}
show alice bob
show bob alice
for who in alice bob; do
	echo
	echo "== $who's chain tree"
	"$B/relmctl" --socket "$T/$who.sock" tree "$REL" 2>"$T/ctl.err" | sed 's/^/  /' ||
		die "relmctl tree: $(cat "$T/ctl.err")"
done

# ---- alice on two devices: pair a laptop, both send at the same moment ------
"$B/relmd" --state "$T/laptop" --socket "$T/laptop.sock" --mailbox "127.0.0.1:$PORT" \
	2>"$T/laptop.log" &
PIDS="$PIDS $!"
i=0
until "$B/relmctl" --socket "$T/laptop.sock" daemon.status >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "relmd (laptop) did not start"
	nap
done
echo
echo "== alice pairs a laptop (a third relmd): two commands"
CODE=$(field code "$(ctl alice device pair "$PA")")
[ -n "$CODE" ] || die "device pair gave no code"
echo "alice:  relmctl device pair        → $(printf '%.34s' "$CODE")… (and a QR code, on a terminal)"
JOINED=$(field proton "$(ctl laptop device join "$CODE" --label laptop)")
[ "$JOINED" = "$PA" ] || die "the laptop joined another proton: $JOINED"
echo "laptop: relmctl device join CODE   → proton $PA, $(ctl laptop device.list "$PA" | grep -o '"device"' | wc -l) devices"
i=0
until ctl laptop message.list "$REL" --limit 20 | grep -q '"kind":"text"'; do
	i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "the laptop never got the conversation"
	nap
done
echo "laptop: holds the relationship with bob and its history ($(messages laptop | wc -l) messages)"

# both alice devices send at the same moment: two sends on one chain state
ctl alice message.send "$REL" "From alice's phone." >"$T/send.phone" &
P1=$!
ctl laptop message.send "$REL" "From alice's laptop, at the same moment." >"$T/send.laptop" &
P2=$!
wait $P1 && wait $P2 || die "a concurrent send failed"
for f in phone laptop; do
	id=$(field message "$(cat "$T/send.$f")")
	i=0
	until ctl bob message.list "$REL" --limit 20 | grep -q "\"$id\""; do
		i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "bob never received alice's $f message"
		nap
	done
done
PEERS=$(ctl bob relationship.list "$PB" | grep -o '"relationship":' | wc -l)
[ "$PEERS" = 1 ] || die "bob sees $PEERS relationships, not one peer"
echo "bob:    got both, in his one relationship with alice: one peer, no sign of two devices"
say bob alice "Got both of those."
i=0
until ctl laptop message.list "$REL" --limit 20 | grep -q "Got both of those."; do
	i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "the laptop never received bob's reply"
	nap
done
say alice bob "Good: my two devices agree."

# the two devices' trees converge: the same chosen leaf
leaf() { field chosen "$(ctl "$1" relationship.show "$REL")"; }
i=0
until [ -n "$(leaf alice)" ] && [ "$(leaf alice)" = "$(leaf laptop)" ]; do
	i=$((i + 1)); [ $i -le $((TIMEOUT * 5)) ] || die "alice's devices chose different leaves"
	nap
done
for who in alice laptop; do
	echo
	echo "== alice's chain tree, as her $( [ $who = alice ] && echo phone || echo laptop ) sees it"
	"$B/relmctl" --socket "$T/$who.sock" tree "$REL" 2>"$T/ctl.err" | sed 's/^/  /' ||
		die "relmctl tree: $(cat "$T/ctl.err")"
done
echo
echo "demo: ok — 6 messages, each delivered once; then alice on two devices sent"
echo "two messages at once, bob saw one peer, and both devices choose leaf $(printf '%.12s' "$(leaf alice)"); cleaning up"
