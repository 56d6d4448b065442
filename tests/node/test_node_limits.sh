#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The node at its limits, against a real erl (issue 8):
#   test_node_limits.sh EDIST TEST_NODE_TOOL TEST_LIMITS_PEER
# - A process that never receives holds no receive buffers: 100 messages
#   of 41+ bytes, each arriving on its own, then 10,000 at once, to a
#   sleeping process, while rpc and ping keep answering; edist stat shows
#   the copies made when the receive buffers ran low.
# - 10,000 messages past a mailbox limit of 1,000 all arrive, in order.
# - Past the hard limit (20,000) the receiver exits mailbox_overflow, seen
#   by erl's monitor; the node goes on.
# - 64 MiB and 200 MiB echo round trips with erl; their large receive
#   buffers are reused, no more kept than rx_recycle_buffers allows.
# - A thread process sending 200 x 100 KB to an erl that is stopped is
#   held back at the 1 MiB send queue limit, not dropped: all arrive, in
#   order, once the erl resumes.
# - A message over max_message_bytes (3 MiB over 1 MiB, framing room
#   included) takes the connection down (nodedown
#   on the erl side, a line on ours) and the node answers the next ping.
. "$(dirname "$0")/test_node_lib.sh"
PEER=${3:?usage: $0 EDIST TEST_NODE_TOOL TEST_LIMITS_PEER}

start_real_epmd
L=lim$$
S=lims$$
E=lime$$
LN=$L@$HOST
SN=$S@$HOST

# start_peer TAG NAME FLAGS...: a test_limits_peer node, ready.
start_peer() {
  local tag=$1 name=$2
  shift 2
  "$PEER" --sname "$name" --cookie "$COOKIE" --listen-address 127.0.0.1 "$@" \
    >"$tmp/$tag.out" 2>"$tmp/$tag.err" &
  LAST_PID=$!
  pids+=($LAST_PID)
  wait_until 20 grep -q '^ready$' "$tmp/$tag.out" || fail "peer $name not ready"
}

start_peer l "$L" --mailbox-messages 1000 --mailbox-hard-messages 20000 \
  --rx-recycle-buffers 2 --rx-recycle-max-bytes 1M
LPID=$LAST_PID
start_peer s "$S" --max-message-bytes 1M --send-queue-limit-bytes 1M
SPID=$LAST_PID
start_erl e "$E"
ok "edist nodes $LN (mailbox limits 1,000 / 20,000) and $SN (max message 1 MiB), erl $E up"

stat_of() { "$EDIST" stat "$LN" --cookie "$COOKIE" 2>&1 | sed -n "s/^$1 //p"; }

# Each message is sent on its own (20 ms apart) so that it lands in a
# receive buffer of its own: before the fix, 64 of them pinned every buffer.
# (Above 104 bytes: smaller messages are copied into the mailbox, never
# held as views of the receive buffer.)
r=$(erl_eval "$E" "N = '$LN', P = spawn(N, edist_demo, sleep, [infinity]),
  B = list_to_binary(lists:duplicate(120, \$x)),
  Bad = [{I, R} || I <- lists:seq(1, 100),
         begin P ! {I, B}, timer:sleep(20), true end,
         I rem 16 =:= 0,
         R <- [rpc:call(N, erlang, node, [], 5000)], R =/= N],
  {Bad, net_adm:ping(N)}.")
[ "$r" = "{ok,{[],pong}}" ] || fail "100 unreceived messages, rpc every 16: $r"
ok "100 messages to a sleeping process, one per receive buffer: every rpc and ping answered"

r=$(erl_eval "$E" "N = '$LN', P = spawn(N, edist_demo, sleep, [infinity]),
  B = list_to_binary(lists:duplicate(200, \$y)),
  [P ! {I, B} || I <- lists:seq(1, 10000)],
  {rpc:call(N, erlang, node, [], 5000), net_adm:ping(N)}.")
[ "$r" = "{ok,{$LN,pong}}" ] || fail "10,000 unreceived messages: $r"
ok "10,000 more to another sleeping process: rpc and ping still answer"

copied=$(stat_of messages_copied_out)
held=$(stat_of rx_buffers_held)
total=$(stat_of rx_buffers)
# Queued messages stay views until the buffers run low; then they are
# copied out (at least once here: 100 messages in buffers of their own).
[ -n "$copied" ] && [ "$copied" -ge 32 ] || fail "messages_copied_out $copied"
[ -n "$held" ] && [ -n "$total" ] && [ "$held" -lt "$total" ] ||
  fail "rx_buffers_held $held of $total"
ok "edist stat: messages_copied_out $copied, rx_buffers_held $held of $total"

# Past the (soft) mailbox limit: messages from the network are not pushed
# back; before the fix everything after message 1,000 was dropped silently.
r=$(erl_eval "$E" "P = spawn('$LN', t, collect, [10000, self(), 2000]),
  [P ! {I, x} || I <- lists:seq(1, 10000)],
  receive {collected, C, InOrder, _} -> {C, InOrder} after 60000 -> timeout end.")
[ "$r" = "{ok,{10000,true}}" ] || fail "10,000 messages past a limit of 1,000: $r"
ok "10,000 messages to a process whose mailbox limit is 1,000: all arrive, in order"

# Past the hard limit: a visible outcome, never a gap.
r=$(erl_eval "$E" "{P, R} = spawn_monitor('$LN', t, collect, [30000, self(), 60000]),
  [P ! {I, x} || I <- lists:seq(1, 30000)],
  receive {'DOWN', R, process, P, Why} -> Why after 30000 -> timeout end.")
[ "$r" = "{ok,mailbox_overflow}" ] || fail "30,000 messages past a hard limit of 20,000: $r"
ok "30,000 messages to a process with a hard limit of 20,000: DOWN mailbox_overflow"
grep -q 'killed: mailbox_overflow' "$tmp/l.err" || fail "no mailbox_overflow line"
[ "$(stat_of mailbox_overflows)" = 1 ] || fail "mailbox_overflows $(stat_of mailbox_overflows)"
r=$(erl_eval "$E" "net_adm:ping('$LN').")
[ "$r" = "{ok,pong}" ] || fail "ping after the overflow: $r"
ok "the overflow is logged and counted (mailbox_overflows 1); the node answers ping"

# Big messages as BEAM sends them (fragmented); the echo comes back whole.
for mib in 64 200; do
  r=$(erl_eval "$E" "B = <<(binary:copy(<<\"0123456789abcdef\">>, $mib * 65536))/binary, \"tail\">>,
    {echo, '$LN'} ! {self(), {big, B}},
    receive {big, B2} -> {byte_size(B2), B2 =:= B} after 120000 -> timeout end.")
  [ "$r" = "{ok,{$((mib * 1048576 + 4)),true}}" ] || fail "$mib MiB echo: $r"
  ok "$mib MiB (+4 bytes) echo round trip with erl"
done
kill -0 "$LPID" || fail "node $LN died"
# Their 64 KiB fragments straddle the receive buffers: large buffers,
# freed and kept for the next, within the node's bounds (2 of up to 1M).
held=$(stat_of rx_recycle_held)
held_bytes=$(stat_of rx_recycle_held_bytes)
reused=$(stat_of rx_recycle_reused)
[ -n "$reused" ] && [ "$reused" -gt 100 ] || fail "rx_recycle_reused $reused"
[ -n "$held" ] && [ "$held" -ge 1 ] && [ "$held" -le 2 ] &&
  [ "$held_bytes" -le $((2 * 1048576)) ] || fail "rx_recycle_held $held ($held_bytes bytes)"
ok "edist stat: large receive buffers reused $reused times, $held kept ($held_bytes bytes; bound 2 of up to 1 MiB)"

# A thread process's sends to a peer that does not read wait, in order.
E2=lime2$$
start_erl e2 "$E2"
E2PID=$LAST_PID
r=$(erl_eval "$E2" "Loop = fun L(N, Ok, F) ->
      receive {I, B} when is_integer(I), is_binary(B) -> L(N + 1, Ok andalso I =:= N + 1, F);
              {flooded, K} -> L(N, Ok, K);
              {report, From} -> From ! {N, Ok, F}, L(N, Ok, F) end end,
  C = spawn(fun() -> Loop(0, true, none) end), register(coll, C),
  pong = net_adm:ping('$SN'),
  {tthread, '$SN'} ! {flood, C, 200, 100000, 1500}, ok.")
kill -STOP "$E2PID"
[ "$r" = "{ok,ok}" ] || fail "collector on $E2: $r"
sleep 4
kill -CONT "$E2PID"
r=$(erl_eval "$E2" "Ask = fun A(0) -> timeout; A(K) -> coll ! {report, self()},
      receive {_, _, 200} = R -> R; {_, _, _} -> timer:sleep(100), A(K - 1) end end, Ask(300).")
[ "$r" = "{ok,{200,true,200}}" ] || fail "200 x 100 KB from a thread process to a stopped erl: $r"
ok "200 x 100 KB from a thread process to an erl stopped for 4 s (send queue limit 1 MiB): all arrive, in order"

# Over max_message_bytes: the connection goes down, visibly.
r=$(erl_eval "$E" "pong = net_adm:ping('$SN'), monitor_node('$SN', true),
  {echo, '$SN'} ! {self(), binary:copy(<<0>>, 3 * 1048576)},
  receive {nodedown, '$SN'} -> nodedown after 20000 -> timeout end.")
[ "$r" = "{ok,nodedown}" ] || fail "3 MiB to a node with max_message_bytes 1M: $r"
wait_until 10 grep -q 'exceeds the message limit of [0-9]* bytes' "$tmp/s.err" || fail "no line about the limit"
r=$(erl_eval "$E" "net_adm:ping('$SN').")
[ "$r" = "{ok,pong}" ] || fail "ping after the oversized message: $r"
kill -0 "$SPID" || fail "node $SN died"
over=$("$EDIST" stat "$SN" --cookie "$COOKIE" 2>&1 | sed -n 's/^messages_over_limit //p')
[ "$over" = 1 ] || fail "messages_over_limit on $SN: $over"
ok "3 MiB to a node with max_message_bytes 1M: nodedown on erl, a line and messages_over_limit 1 on the node, then pong again"

done_ok
