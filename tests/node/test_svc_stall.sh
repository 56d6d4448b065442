#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Service replies to a peer that does not read (issue 8, defect 5): an
# erl node E is stopped (SIGSTOP); another erl B first has edist_demo:reply
# fill everything the edist node A and the kernel hold for E (A's send
# queue limit lowered to 64 KiB), then sends A's `echo` 100 requests of
# 100 KB whose replies go to a process on E, then net_kernel an is_auth
# call answered to the same process; meanwhile B's own is_auth call is
# answered. After SIGCONT, E has every echo reply, in order, and the
# is_auth reply; E's own net_adm:ping answers; A counted the waits and the
# forced reply.
#   test_svc_stall.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

N_MSGS=100
N_FILL=100
MSG_BYTES=100000
start_real_epmd
A=s8a$$
E=s8e$$
B=s8b$$
start_edist a --sname "$A" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --send-queue-limit-bytes 64K
apid=$LAST_PID
start_erl e "$E"
epid=$LAST_PID
start_erl b "$B"

# On E: a collector that keeps what echo and net_kernel send it.
r=$(erl_eval "$E" "P = spawn(fun() ->
      L = fun Loop(Is, Fills, Auth, Bad) ->
        receive
          {dump, From} -> From ! {coll, lists:reverse(Is), Fills, Auth, Bad},
                          Loop(Is, Fills, Auth, Bad);
          {I, Bin} when is_integer(I), byte_size(Bin) =:= $MSG_BYTES ->
            Loop([I | Is], Fills, Auth, Bad);
          {fill, _, Bin} when byte_size(Bin) =:= $MSG_BYTES ->
            Loop(Is, Fills + 1, Auth, Bad);
          {Tag, yes} when is_binary(Tag) -> Loop(Is, Fills, Auth + 1, Bad);
          _ -> Loop(Is, Fills, Auth, Bad + 1)
        end end,
      L([], 0, 0, 0) end),
  register(coll, P), net_adm:ping('$A@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "collector on $E, ping $A: $r"
r=$(erl_eval "$B" "C = rpc:call('$E@$HOST', erlang, whereis, [coll]),
  persistent_term:put(coll, C), {is_pid(C), net_adm:ping('$A@$HOST')}.")
[ "$r" = "{ok,{true,pong}}" ] || fail "$B: collector pid, ping $A: $r"
wait_until 10 grep -q "^nodeup $E@$HOST" "$tmp/a.out" || fail "$A never saw $E"
ok "erl $E (collector) and erl $B connected to edist $A (send queue limit 64 KiB)"

# A's queue to E: {messages sent to E, bytes queued, any send refused}.
queue_to_e() {
  erl_eval "$B" "#{peers := #{'$E@$HOST' := #{messages_sent := M,
      send_queue_bytes := Q, sends_busy := N}}} = rpc:call('$A@$HOST', edist, stats, []),
    {M, Q, N > 0}."
}
# settled [full]: sends to E have been refused and nothing more leaves for
# E (the kernel's socket buffers take no more either); with "full", bytes
# are also queued, so that a reply now finds no room. Waits up to 60 s.
settled() {
  local q1 q2 want='[0-9]+' end=$((SECONDS + 60))
  [ "${1:-}" = full ] && want='[1-9][0-9]*'
  while [ $SECONDS -lt $end ]; do
    q1=$(queue_to_e)
    sleep 0.5
    q2=$(queue_to_e)
    [ "$q1" = "$q2" ] && [[ $q1 =~ ^\{ok,\{[0-9]+,$want,true\}\}$ ]] && return 0
  done
  return 1
}
# echo_from I J: B asks echo to send {K, <<MSG_BYTES bytes>>}, K = I..J, to
# the collector on E.
echo_from() {
  r=$(erl_eval "$B" "C = persistent_term:get(coll), Bin = binary:copy(<<7>>, $MSG_BYTES),
    [{echo, '$A@$HOST'} ! {C, {K, Bin}} || K <- lists:seq($1, $2)], ok.")
  [ "$r" = "{ok,ok}" ] || fail "sending echo requests $1..$2: $r"
}

kill -STOP "$epid"
# First fill what the kernel buffers for E, with edist_demo:reply (one
# erpc:cast each): it has always waited for room, so the queue ends up
# full and held so.
r=$(erl_eval "$B" "C = persistent_term:get(coll), Bin = binary:copy(<<9>>, $MSG_BYTES),
  [erpc:cast('$A@$HOST', edist_demo, reply, [C, {fill, K, Bin}]) || K <- lists:seq(1, $N_FILL)], ok.")
[ "$r" = "{ok,ok}" ] || fail "sending the fill: $r"
settled full || fail "the send queue to $E never filled: $(queue_to_e)"
echo_from 1 $N_MSGS
settled full || fail "the send queue to $E is not full after the echo requests: $(queue_to_e)"
# The tag makes the reply larger than the whole limit: only a reply that is
# forced past a full queue can go while E is stopped.
r=$(erl_eval "$B" "{net_kernel, '$A@$HOST'} !
  {'\$gen_call', {persistent_term:get(coll), binary:copy(<<1>>, 100000)}, {is_auth, node()}}, ok.")
[ "$r" = "{ok,ok}" ] || fail "sending is_auth: $r"
# Let the node handle the call while E is still stopped.
sleep 1
ok "$E stopped; $N_MSGS echo requests of $MSG_BYTES bytes and an is_auth call sent for it; the queue to $E is full: $(queue_to_e)"
# net_kernel is not held up by E: another peer's is_auth is answered.
r=$(erl_eval "$B" "catch gen_server:call({net_kernel, '$A@$HOST'}, {is_auth, node()}, 5000).")
[ "$r" = "{ok,yes}" ] || fail "is_auth from $B while $E is stopped: $r"
ok "meanwhile $B's is_auth call is answered: yes"
kill -CONT "$epid"

# The collector's view: echo replies in order, nothing else, one auth.
all_in() {
  [ "$(erl_eval "$E" "coll ! {dump, self()},
      receive {coll, Is, Fills, Auth, Bad} ->
        {Is, Fills, Auth, Bad} =:= {lists:seq(1, $N_MSGS), $N_FILL, 1, 0}
      after 5000 -> false end.")" = "{ok,true}" ]
}
# within SECONDS CMD...: CMD succeeds before SECONDS have passed (for
# commands too slow for wait_until's count of tries).
within() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}
within 30 all_in || fail "after SIGCONT, not every reply came: $(erl_eval "$E" \
  "coll ! {dump, self()}, receive {coll, Is, Fills, Auth, Bad} ->
   #{echo_replies => length(Is), in_order => Is =:= lists:sort(Is),
     missing => length(lists:seq(1, $N_MSGS) -- Is), fills => Fills, auth => Auth, other => Bad}
   after 5000 -> timeout end.")"
ok "after SIGCONT: all $N_MSGS echo replies in order, the $N_FILL fills and the is_auth reply"
r=$(erl_eval "$E" "net_adm:ping('$A@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "net_adm:ping from $E after SIGCONT: $r"
grep -q "^nodedown $E@$HOST" "$tmp/a.out" && fail "$E was disconnected: $(grep nodedown "$tmp/a.out")"
ok "net_adm:ping from $E: pong, and the connection stayed up"
r=$(erl_eval "$B" "#{service_sends_waited := W, service_sends_forced := F} =
  rpc:call('$A@$HOST', edist, stats, []), {W > 0, F > 0}.")
[ "$r" = "{ok,{true,true}}" ] || fail "service counters: $r"
ok "edist stats: service_sends_waited > 0, service_sends_forced > 0"

kill -TERM "$apid"
wait "$apid" || fail "edist node exit status $?"
done_ok
