#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist stat` as an operator uses it, against known traffic:
#   test_stat_local.sh EDIST TEST_NODE_TOOL
# an erl node sends 1,000 messages to the edist node's echo and gets them
# back; the node's published file (mode 0600 in a 0700 directory) read
# with `edist stat --local` (no cookie, no connection) shows them per
# peer, as JSON too; --interval gives fresh samples; `edist stat NODE
# --json` agrees; the file goes when the node stops.
. "$(dirname "$0")/test_node_lib.sh"

start_real_epmd
ok "real epmd on port $EPMD_PORT"
N=sl$$
E=sle$$
D=$tmp/stats
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1 --stats-dir "$D" \
  --stats-interval 0.2
NPID=$LAST_PID
start_erl e "$E"
r=$(erl_eval "$E" "Echo = {echo, '$N@$HOST'},
  [Echo ! {self(), {n, I}} || I <- lists:seq(1, 1000)],
  length([receive {n, I} -> I after 5000 -> timeout end || I <- lists:seq(1, 1000)]).")
[ "$r" = "{ok,1000}" ] || fail "1,000 messages through echo: $r"
ok "erl sent 1,000 messages to echo on $N and got them back"

f=$D/$N@$HOST.stats
wait_until 5 test -f "$f" || fail "no stats file $f"
[ "$(stat -c %a "$D")" = 700 ] && [ "$(stat -c %a "$f")" = 600 ] ||
  fail "modes: dir $(stat -c %a "$D"), file $(stat -c %a "$f")"
ok "published in $D (mode 0700) as $N@$HOST.stats (mode 0600)"
sleep 0.5 # a sample after the traffic
# the erl peer's counters, from the file alone (no cookie given)
check='import json, sys
d = json.load(sys.stdin)
p = d["stats"]["peers"]["'"$E@$HOST"'"]
assert 1000 <= p["messages_received"] < 1100, p
assert 1000 <= p["messages_sent"] < 1100, p
assert p["bytes_received"] > 1000 * 10 and p["bytes_sent"] > 1000 * 10, p
assert d["stats"]["messages_received"] >= 1000, d["stats"]["messages_received"]
assert d.get("age_ms", 0) < 5000, d["age_ms"]
# every message to the peer timed: the histogram behind the percentiles
assert p["send_wait_count"] >= 1000, p
assert p["send_wait_p50_ns"] <= p["send_wait_p99_ns"] <= p["send_wait_max_ns"], p
print(p["messages_received"], p["messages_sent"], p["bytes_received"], p["bytes_sent"],
      "send wait p50/p99/max us %.1f/%.1f/%.1f" % (p["send_wait_p50_ns"] / 1e3,
      p["send_wait_p99_ns"] / 1e3, p["send_wait_max_ns"] / 1e3))'
r=$("$EDIST" stat --local "$N" --stats-dir "$D" --json | python3 -c "$check") ||
  fail "stat --local --json: $("$EDIST" stat --local "$N" --stats-dir "$D" --json | head -c 600)"
ok "stat --local $N --json: erl's peer received/sent/bytes in/out = $r"
"$EDIST" stat --local "$N@$HOST" --stats-dir "$D" >"$tmp/local.txt" || fail "stat --local text"
grep -q "^peer $E@$HOST messages_sent=" "$tmp/local.txt" && grep -q '^age_ms ' "$tmp/local.txt" ||
  fail "stat --local text: $(head -5 "$tmp/local.txt")"
ok "stat --local $N@$HOST as text: a line for the erl peer, and the sample's age"
"$EDIST" stat --local "$N" --stats-dir "$D" --json --interval 0.3 --count 3 >"$tmp/samples"
[ "$(wc -l <"$tmp/samples")" = 3 ] || fail "--interval --count 3: $(wc -l <"$tmp/samples") lines"
python3 -c 'import json,sys
t=[json.loads(l)["time_ms"] for l in open(sys.argv[1])]
assert t[0] < t[2], t' "$tmp/samples" || fail "samples not fresh: $(cut -c1-80 "$tmp/samples")"
ok "--interval 0.3 --count 3: three samples, newer ones later"
r=$("$EDIST" stat "$N@$HOST" --cookie "$COOKIE" --json | python3 -c "$check" 2>&1) ||
  fail "stat NODE --json: $r"
ok "edist stat $N@$HOST --json (over distribution) agrees: $r"
r=$("$EDIST" ping "$N@$HOST" --cookie wrong 2>/dev/null)
[ "$r" = pang ] || fail "ping with a wrong cookie: $r"
sleep 0.5
r=$("$EDIST" stat --local "$N" --stats-dir "$D" --json | python3 -c 'import json, sys
s = json.load(sys.stdin)["stats"]
assert s["handshakes_refused_auth"] == 1, s["handshakes_refused_auth"]
assert s["handshakes_accepted"] >= 2, s["handshakes_accepted"]
print(s["handshakes_accepted"], s["handshakes_refused_auth"], s["handshakes_refused"])') ||
  fail "handshake counters: $r"
grep -q "warning edist node: connection from .* refused: .*cookie" "$tmp/n.err" ||
  fail "no warning line for the wrong cookie: $(grep -i cookie "$tmp/n.err" | head -3)"
ok "a ping with a wrong cookie: handshakes accepted/refused_auth/refused = ${r// //}, and a warning line"
"$EDIST" stat --local nosuch --stats-dir "$D" >"$tmp/r.out" 2>&1
[ $? = 1 ] && grep -q "no node named nosuch" "$tmp/r.out" || fail "stat --local nosuch: $(cat "$tmp/r.out")"
ok "stat --local of a node that does not publish: a clear error"
kill -TERM "$NPID"
wait "$NPID"
[ ! -e "$f" ] || fail "the stats file outlived the node"
ok "the file is gone once the node stopped"
done_ok
