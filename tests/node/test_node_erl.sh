#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist node` and `edist ping` against real erl nodes and the real epmd:
# pings both ways, wrong cookies both ways, nodes() and nodes(hidden),
# nodedown on both sides when either dies, a SIGSTOPed erl detected within
# the tick time, and a clean SIGTERM.
. "$(dirname "$0")/test_node_lib.sh"

TICK=2 # seconds: net_ticktime on both sides
start_real_epmd
ok "real epmd on port $EPMD_PORT"

A=n2a$$
E=n2e$$
start_edist a --sname "$A" --cookie "$COOKIE" --ticktime $TICK --listen-address 127.0.0.1
apid=$LAST_PID
registered "$A" || fail "$A not registered with epmd"
grep -q "^edist node $A@$HOST ready (listening on port [0-9]*, creation [0-9]*)$" "$tmp/a.out" ||
  fail "ready line: $(head -1 "$tmp/a.out")"
ok "edist node $A registered with the real epmd: $(head -1 "$tmp/a.out")"

start_erl e "$E" -kernel net_ticktime $TICK
epid=$LAST_PID
ok "erl node $E up"

# erl -> edist: net_adm:ping, then nodes().
r=$(erl_eval "$E" "net_adm:ping('$A@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "net_adm:ping from erl: $r"
ok "net_adm:ping from erl to edist: pong"
wait_until 5 grep -q "^nodeup $E@$HOST (visible)$" "$tmp/a.out" || fail "no nodeup line for $E"
ok "edist printed nodeup $E@$HOST (visible)"
r=$(erl_eval "$E" "nodes().")
[ "$r" = "{ok,[$A@$HOST]}" ] || fail "erl nodes(): $r"
ok "erl's nodes() lists the edist node: $r"
grep -q "node up: $E@$HOST (visible, accepted from 127.0.0.1:[0-9]*, flags 0x" "$tmp/a.err" ||
  fail "no node-up log line"
ok "edist logged: $(grep -o 'node up: .*' "$tmp/a.err" | head -1)"

# A gen_server call from erl (OTP 24+: its tag names an alias) that gives
# up before the answer: the answer goes to the alias (ALIAS_SEND), which
# erl drops once the call is over; sent to the pid, it stayed in the
# caller's mailbox. One answered in time still arrives.
r=$(erl_eval "$E" "R = (catch gen_server:call({rex, '$A@$HOST'},
    {call, edist_demo, sleep, [300], group_leader()}, 50)),
  Late = receive M -> {late, M} after 1000 -> none end,
  {element(1, element(2, R)), Late,
   gen_server:call({rex, '$A@$HOST'}, {call, edist_demo, add, [2, 3], group_leader()}, 5000)}.")
[ "$r" = "{ok,{timeout,none,5}}" ] ||
  fail "a late rex answer to an erl caller that gave up: $r"
ok "rex answers erl's gen_server call through its alias: a late one is dropped there, one in time arrives"

# edist -> erl: edist ping.
r=$("$EDIST" ping "$E@$HOST" --cookie "$COOKIE" 2>"$tmp/ping1.err")
[ $? = 0 ] && [ "$r" = pong ] || fail "edist ping $E: $r $(cat "$tmp/ping1.err")"
ok "edist ping erl: pong (exit 0)"

# Wrong cookies, both ways; then everything still answers.
r=$("$EDIST" ping "$E@$HOST" --cookie wrong$$ 2>"$tmp/ping2.err")
rc=$?
[ $rc = 1 ] && [ "$r" = pang ] || fail "edist ping with a wrong cookie: rc $rc, $r"
grep -q "cookie mismatch with $E@$HOST" "$tmp/ping2.err" || fail "ping error: $(cat "$tmp/ping2.err")"
ok "edist ping with a wrong cookie: pang (exit 1): $(cat "$tmp/ping2.err")"
r=$(erl -sname n2w$$ -setcookie wrong$$ -noshell -start_epmd false \
  -eval "io:format(\"~p~n\", [net_adm:ping('$A@$HOST')]), halt()." 2>/dev/null)
[ "$r" = pang ] || fail "erl with a wrong cookie: $r"
wait_until 5 grep -q "refused: cookie mismatch with n2w$$@$HOST" "$tmp/a.err" ||
  fail "no refusal line in the edist log"
ok "erl with a wrong cookie: pang; edist logged: $(grep -o 'connection from .*cookie mismatch.*' "$tmp/a.err" | head -1)"
r=$("$EDIST" ping "$A@$HOST" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "edist node no longer answers: $r"
r=$(erl_eval "$E" "net_adm:ping('$A@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "erl no longer pongs: $r"
ok "after the refusals the edist node still answers edist ping and erl"

# Cookie from $HOME/.erlang.cookie when --cookie is absent.
printf '%s' "$COOKIE" >"$HOME/.erlang.cookie"
chmod 400 "$HOME/.erlang.cookie"
r=$("$EDIST" ping "$A@$HOST" 2>&1)
[ "$r" = pong ] || fail "edist ping with the cookie file: $r"
ok "edist ping without --cookie reads \$HOME/.erlang.cookie: pong"

# A hidden edist node: in erl's nodes(hidden), not in nodes().
H=n2h$$
start_edist h --sname "$H" --cookie "$COOKIE" --hidden --ticktime $TICK --listen-address 127.0.0.1
hpid=$LAST_PID
grep -q "ready (listening on port [0-9]*, creation [0-9]*, hidden)" "$tmp/h.out" || fail "hidden ready line"
r=$(erl_eval "$E" "{net_adm:ping('$H@$HOST'), lists:member('$H@$HOST', nodes()), lists:member('$H@$HOST', nodes(hidden))}.")
[ "$r" = "{ok,{pong,false,true}}" ] || fail "hidden node seen by erl as: $r"
ok "hidden edist node: pong, not in nodes(), in nodes(hidden)"
wait_until 5 grep -q "^nodeup $E@$HOST (hidden)$" "$tmp/h.out" || fail "hidden node's nodeup line"
ok "the hidden node sees its connection to $E as hidden"
kill -TERM $hpid
wait $hpid
rc=$?
[ $rc = 0 ] || fail "hidden node exit status $rc"
wait_until 5 grep -q "^nodedown $H@$HOST disconnect$\|^nodedown $H@$HOST connection_closed$" "$tmp/e.out" ||
  fail "erl saw no nodedown for $H: $(grep "$H" "$tmp/e.out")"
ok "SIGTERM: hidden node exits 0; erl: $(grep "^nodedown $H" "$tmp/e.out")"
wait_until 5 bash -c "! epmd -port $EPMD_PORT -names | grep -q 'name $H '" || fail "$H still registered"
ok "$H unregistered"

# Killing the erl node: nodedown connection_closed on the edist side.
kill -KILL $epid
wait $epid 2>/dev/null
wait_until 5 grep -q "^nodedown $E@$HOST (connection_closed)$" "$tmp/a.out" ||
  fail "no nodedown after kill -9 of erl: $(tail -3 "$tmp/a.out")"
ok "kill -9 erl: edist printed nodedown $E@$HOST (connection_closed)"

# A SIGSTOPed erl is detected within the tick time (net_tick_timeout).
E2=n2s$$
start_erl e2 "$E2" -kernel net_ticktime $TICK
e2pid=$LAST_PID
r=$(erl_eval "$E2" "net_adm:ping('$A@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "ping from $E2: $r"
wait_until 5 grep -q "^nodeup $E2@$HOST (visible)$" "$tmp/a.out" || fail "no nodeup for $E2"
t0=$(date +%s%N)
kill -STOP $e2pid
wait_until $((TICK * 3)) grep -q "^nodedown $E2@$HOST (net_tick_timeout)$" "$tmp/a.out" ||
  fail "SIGSTOPed erl not detected: $(tail -3 "$tmp/a.out")"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
# dist_util: down after 4 silent tick intervals (ticktime/4 each), i.e.
# between 3/4 and 5/4 of the tick time; allow scheduling slack.
[ $ms -le $((TICK * 1250 + 700)) ] || fail "detection took $ms ms (tick time ${TICK}s)"
grep -q "$E2@$HOST not responding" "$tmp/a.err" || fail "no not-responding log line"
ok "SIGSTOPed erl declared down after $ms ms (ticktime ${TICK}s): net_tick_timeout"
kill -CONT $e2pid
wait_until 10 grep -q "^nodedown $A@$HOST" "$tmp/e2.out" || fail "$E2 never saw $A go"
ok "after SIGCONT erl reports: $(grep "^nodedown $A" "$tmp/e2.out" | head -1)"
r=$(erl_eval "$E2" "net_adm:ping('$A@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "reconnect after SIGCONT: $r"
ok "erl reconnects after SIGCONT: pong"

# Killing the edist node: erl gets nodedown.
kill -KILL $apid
wait $apid 2>/dev/null
wait_until 10 grep -q "^nodedown $A@$HOST connection_closed$" "$tmp/e2.out" ||
  fail "erl saw no nodedown after kill -9 of edist: $(tail -3 "$tmp/e2.out")"
ok "kill -9 edist: erl got {nodedown, $A@$HOST, [{nodedown_reason, connection_closed}]}"

# A fresh node: SIGTERM disconnects cleanly, unregisters, exits 0.
B=n2b$$
start_edist b --sname "$B" --cookie "$COOKIE" --ticktime $TICK --listen-address 127.0.0.1
bpid=$LAST_PID
r=$(erl_eval "$E2" "net_adm:ping('$B@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "ping $B: $r"
kill -TERM $bpid
wait $bpid
rc=$?
[ $rc = 0 ] || fail "exit status $rc after SIGTERM"
grep -q "^edist node $B@$HOST stopping (SIGTERM)$" "$tmp/b.out" || fail "no stopping line"
wait_until 5 grep -q "^nodedown $B@$HOST" "$tmp/e2.out" || fail "erl saw no nodedown for $B"
registered "$B" && fail "$B still registered after SIGTERM"
ok "SIGTERM: exit 0, erl saw $(grep "^nodedown $B" "$tmp/e2.out"), unregistered"

# Unreachable: pang, exit 1.
r=$("$EDIST" ping "nobody$$@$HOST" --cookie "$COOKIE" 2>"$tmp/ping3.err")
[ $? = 1 ] && [ "$r" = pang ] || fail "ping of an unknown node: $r"
ok "edist ping of an unknown node: pang ($(cat "$tmp/ping3.err"))"

done_ok
