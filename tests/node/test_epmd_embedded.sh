#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The port mapper a node embeds (issue 8, defect 8): it listens only on
# the addresses of ERL_EPMD_ADDRESS (or --epmd-address) plus the loopback;
# it exits by itself once no node has been registered with it for the
# grace (--epmd-idle-exit); while a real erl is registered it stays after
# the node that started it is gone, and serves that erl.
#   test_epmd_embedded.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

GRACE=1 # seconds: --epmd-idle-exit of the nodes below

# listening PORT: the local addresses with a listening TCP socket on PORT,
# as /proc/net/tcp{,6} write them (0100007F, 00000000, ...), one a line.
listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p="$hex" '$4 == "0A" { split($2, a, ":"); if (a[2] == p) print a[1] }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort
}
# gone PID: no such process (or only its zombie is left).
gone() {
  ! kill -0 "$1" 2>/dev/null || grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null
}
# daemon_pid TAG: the pid the node's log names for the port mapper it
# started.
daemon_pid() {
  sed -n 's/.*started the embedded one (pid \([0-9]*\)).*/\1/p' "$tmp/$1.err"
}
# An IPv4 address of this host that is not a loopback one, if any.
other_addr=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -1)

# ERL_EPMD_ADDRESS=127.0.0.1: the embedded port mapper listens there (and
# on ::1) only.
EPMD_PORT=$(freeport)
export ERL_EPMD_PORT=$EPMD_PORT
A=e8a$$
ERL_EPMD_ADDRESS=127.0.0.1 start_edist a --sname "$A" --cookie "$COOKIE" \
  --listen-address 127.0.0.1 --epmd-idle-exit $GRACE
apid=$LAST_PID
dpid=$(daemon_pid a)
[ -n "$dpid" ] || fail "no embedded port mapper started: $(cat "$tmp/a.err")"
pids+=($dpid)
registered "$A" || fail "$A not registered with its embedded port mapper"
got=$(listening "$EPMD_PORT" | tr '\n' ' ')
[ "$got" = "00000000000000000000000001000000 0100007F " ] ||
  [ "$got" = "0100007F " ] || fail "listening on port $EPMD_PORT: $got (want 127.0.0.1 and ::1 only)"
if [ -n "$other_addr" ]; then
  timeout 5 bash -c "exec 3<>/dev/tcp/$other_addr/$EPMD_PORT" 2>/dev/null &&
    fail "the port mapper answers on $other_addr"
  ok "ERL_EPMD_ADDRESS=127.0.0.1: embedded port mapper listens on the loopback only ($got); $other_addr:$EPMD_PORT refuses"
else
  ok "ERL_EPMD_ADDRESS=127.0.0.1: embedded port mapper listens on the loopback only ($got)"
fi

# Its node exits, nothing else is registered: the daemon exits soon after.
kill -TERM "$apid"
wait "$apid" || fail "node exit status $?"
wait_until $((GRACE + 15)) gone "$dpid" || fail "the embedded port mapper (pid $dpid) is still running"
ok "node gone, nothing registered: the embedded port mapper (pid $dpid) exited by itself"

# --epmd-address: the same from the option; and a real erl registered with
# the embedded port mapper keeps it serving after the node that started it
# is gone, until erl leaves too.
EPMD_PORT=$(freeport)
export ERL_EPMD_PORT=$EPMD_PORT
B=e8b$$
E=e8e$$
start_edist b --sname "$B" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --epmd-idle-exit $GRACE --epmd-address 127.0.0.1
bpid=$LAST_PID
dpid=$(daemon_pid b)
[ -n "$dpid" ] || fail "no embedded port mapper started: $(cat "$tmp/b.err")"
pids+=($dpid)
listening "$EPMD_PORT" | grep -q '^00000000$' && fail "--epmd-address 127.0.0.1: listening on every interface"
start_erl e "$E"
epid=$LAST_PID
ok "--epmd-address 127.0.0.1: loopback only; erl $E registered with the embedded port mapper (pid $dpid)"
kill -TERM "$bpid"
wait "$bpid" || fail "node exit status $?"
wait_until 5 bash -c "! epmd -port $EPMD_PORT -names | grep -q 'name $B '" || fail "$B still registered"
sleep $((GRACE * 3))
gone "$dpid" && fail "the embedded port mapper exited while $E was registered"
registered "$E" || fail "$E lost its registration"
r=$("$EDIST" ping "$E@$HOST" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "ping $E through the embedded port mapper: $r"
ok "node gone: after 3 x the grace the port mapper still serves $E (edist ping: pong)"
kill -TERM "$epid"
wait "$epid" 2>/dev/null
wait_until $((GRACE + 15)) gone "$dpid" || fail "the embedded port mapper (pid $dpid) outlived $E"
ok "erl gone too: the embedded port mapper (pid $dpid) exited"

done_ok
