#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Port mappers: erl and an edist node both registered with OUR port mapper
# (`edist epmd`) find each other through it; a node with no port mapper on
# its port starts the embedded one as a daemon, which a real erl then
# uses and which outlives the node; losing the port mapper is logged.
. "$(dirname "$0")/test_node_lib.sh"

start_edist_epmd
epmd_pid=${pids[-1]}
ok "edist epmd on port $EPMD_PORT"

E=n2pe$$
A=n2pa$$
start_erl e "$E"
ok "erl $E registered with edist epmd"
start_edist a --sname "$A" --cookie "$COOKIE" --listen-address 127.0.0.1
apid=$LAST_PID
"$EDIST" names -port "$EPMD_PORT" >"$tmp/names.out" 2>&1
grep -q "^name $A at port " "$tmp/names.out" && grep -q "^name $E at port " "$tmp/names.out" ||
  fail "edist names: $(cat "$tmp/names.out")"
ok "edist names lists both: $(grep -c '^name ' "$tmp/names.out") names"
r=$(erl_eval "$E" "net_adm:ping('$A@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "erl -> edist through edist epmd: $r"
r=$("$EDIST" ping "$E@$HOST" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "edist -> erl through edist epmd: $r"
ok "pings both ways through edist epmd: pong"

# The port mapper goes away: the node says so and keeps running.
kill -TERM "$epmd_pid"
wait "$epmd_pid" 2>/dev/null
wait_until 5 grep -q "the port mapper closed our registration" "$tmp/a.err" ||
  fail "no log line about the lost registration"
kill -0 "$apid" || fail "node died with its port mapper"
ok "port mapper gone: $(grep -o 'the port mapper closed our registration.*' "$tmp/a.err" | cut -c1-90)..."
kill -TERM "$apid"
wait "$apid" || fail "exit status $? after SIGTERM"
ok "node still stops cleanly (exit 0)"

# No port mapper at all on this port: the node starts the embedded one.
EPMD_PORT=$(freeport)
export ERL_EPMD_PORT=$EPMD_PORT
B=n2pb$$
start_edist b --sname "$B" --cookie "$COOKIE" --listen-address 127.0.0.1
bpid=$LAST_PID
dpid=$(sed -n 's/.*started the embedded one (pid \([0-9]*\)).*/\1/p' "$tmp/b.err")
[ -n "$dpid" ] || fail "no embedded port mapper started: $(cat "$tmp/b.err")"
pids+=($dpid)
ok "no port mapper on $EPMD_PORT: the node started the embedded one (pid $dpid)"
registered "$B" || fail "$B not registered with the embedded port mapper"
E2=n2pf$$
start_erl e2 "$E2"
r=$(erl_eval "$E2" "net_adm:ping('$B@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "erl through the embedded port mapper: $r"
ok "erl registered with the embedded port mapper and pinged $B: pong"
kill -TERM "$bpid"
wait "$bpid" || fail "exit status $?"
kill -0 "$dpid" || fail "the embedded port mapper died with the node"
wait_until 5 bash -c "! epmd -port $EPMD_PORT -names | grep -q 'name $B '" || fail "$B still registered"
epmd -port "$EPMD_PORT" -names | grep -q "^name $E2 at port " || fail "erl lost its registration"
ok "node stopped: embedded port mapper (pid $dpid) still serves $E2, $B unregistered"
kill -TERM "$dpid"

done_ok
