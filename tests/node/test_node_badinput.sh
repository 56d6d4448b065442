#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad input on an edist node's distribution port: garbage, a wrong tag, the
# old version-5 send_name, truncated handshakes, oversized names, a
# half-open connection that never speaks, and a flood of those. Each is
# refused with a log line; memory stays bounded; the node still answers.
. "$(dirname "$0")/test_node_lib.sh"

start_real_epmd
A=n2bad$$
start_edist a --sname "$A" --cookie "$COOKIE" --setuptime 1 --ticktime 4 --listen-address 127.0.0.1
apid=$LAST_PID
PORT=$(sed -n 's/.* ready (listening on port \([0-9]*\),.*/\1/p' "$tmp/a.out")
[ -n "$PORT" ] || fail "no port in the ready line"
ok "edist node $A on port $PORT (setup time 1 s)"

pong() { [ "$("$EDIST" ping "$A@$HOST" --cookie "$COOKIE" 2>/dev/null)" = pong ]; }
logged() { wait_until 3 grep -q -- "$1" "$tmp/a.err"; }

# send HEX: the node must close the connection at once (well before the
# setup time) and log why.
refused_at_once() {
  local what=$1 hex=$2 pattern=$3 r
  r=$("$TOOL" send "$PORT" "$hex" 3000) || fail "$what: tool failed"
  case "$r" in
  closed\ *) [ "${r#closed }" -lt 900 ] || fail "$what: closed only after ${r#closed } ms" ;;
  *) fail "$what: connection left $r" ;;
  esac
  logged "$pattern" || fail "$what: no log line matching '$pattern'"
  ok "$what: closed after ${r#closed } ms; log: $(grep -o -- "refused: .*$pattern.*" "$tmp/a.err" | tail -1 | cut -c1-150)"
}

refused_at_once "short frame" "000568656c6c6f" "bad handshake frame length 5"
refused_at_once "wrong tag" "000f68656c6c6f20776f726c6421212121" "expected send_name 'N', got tag 0x68"
# Version 5 send_name ('n', u16 version, u32 flags, name): OTP 25 refuses
# it too; we speak only the OTP 23+ handshake.
refused_at_once "version-5 send_name" "00116e00050007df7f61626364656667684068" "pre-OTP 23 handshake"
NAME300=$("$TOOL" name_frame 300)
refused_at_once "300-byte node name" "$NAME300" "name"
NAME2000=$("$TOOL" name_frame 2000)
refused_at_once "2000-byte node name" "$NAME2000" "name"
refused_at_once "name without @" "00104e0000000d07df7fbd00000007000178" "name"

# Incomplete input: dropped when the setup time runs out.
dropped_after_setup() {
  local what=$1 hex=$2 pattern=$3 r
  r=$("$TOOL" send "$PORT" "$hex" 4000) || fail "$what: tool failed"
  case "$r" in
  closed\ *) ms=${r#closed } ;;
  *) fail "$what: still open after 4 s" ;;
  esac
  [ "$ms" -ge 900 ] && [ "$ms" -le 2500 ] || fail "$what: closed after $ms ms, want ~1000"
  logged "$pattern" || fail "$what: no log line matching '$pattern'"
  ok "$what: dropped after $ms ms; log: $(grep -o -- "dropped: .*$pattern.*" "$tmp/a.err" | tail -1 | cut -c1-150)"
}

dropped_after_setup "half-open connection" "" "timed out waiting for its name"
dropped_after_setup "truncated send_name" "00154e00000000" "frame incomplete"
dropped_after_setup "garbage (HTTP)" "474554202f20485454502f312e310d0a0d0a" "timed out"

# The peer closing in the middle of a frame.
r=$("$TOOL" send "$PORT" "00154e0000" 200)
[ "$r" = open ] || fail "short write: $r"
logged "closed the connection in the middle of a handshake frame" || fail "no mid-frame log line"
ok "close mid-frame: $(grep -o 'refused: .*middle of a handshake frame.*' "$tmp/a.err" | tail -1 | cut -c1-120)"

pong || fail "the node does not answer after bad input"
ok "after all that, edist ping: pong"

# A flood of half-open connections from one address: beyond the
# per-address limit (64) the oldest are evicted at once; the rest go at the
# first-message time; memory stays bounded.
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$apid/status; }
rss0=$(rss)
# (1.5 s: less than the 2 s first-message time, so only evictions count)
r=$("$TOOL" flood "$PORT" 400 1500)
n=$(echo "$r" | sed -n 's/^closed \([0-9]*\) of 400$/\1/p')
[ -n "$n" ] && [ "$n" -ge 336 ] || fail "flood: $r (want >= 336 evicted at once)"
logged "evicted before it sent its name" || fail "no log line for the evictions"
ok "flood of 400 silent connections: $n closed within 1.5 s (64 per address)"
r=$("$TOOL" flood "$PORT" 300 5000)
[ "$r" = "closed 300 of 300" ] || fail "flood: $r"
ok "flood of 300: all dropped by the first-message time ($r)"
rss1=$(rss)
[ $((rss1 - rss0)) -lt 20000 ] || fail "RSS grew from $rss0 kB to $rss1 kB"
ok "RSS $rss0 kB -> $rss1 kB"
pong || fail "the node does not answer after the flood"
grep -q "refused" "$tmp/a.err" || fail "no refusal lines"
kill -0 $apid || fail "the node died"
ok "after the floods: pong, node alive"

kill -TERM $apid
wait $apid
rc=$?
[ $rc = 0 ] || fail "exit status $rc"
ok "SIGTERM: exit 0"

done_ok
