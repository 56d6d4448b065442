#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The DPDK lane's bounds and its agreement's edge cases, two edist nodes of
# two shards each over memif (test_shards_peer, options from EDIST_*),
# met through a real erl:
#   test_node_memif_limits.sh EDIST TEST_NODE_TOOL TEST_SHARDS_PEER
# 1. The read hold covers the lane: shard 1 of B busy 1.5 s while A sends
#    it 100,000 messages over memif (B's window 64K): B's shard 0 stops
#    taking them past shard_backlog_limit (1,000), the lane's window
#    closes, A holds back; all arrive in order, nobody goes down, the
#    backlog stays far below the 100,000 it reaches without the hold.
#    `edist stat` shows one lane_link_stats line per peer.
# 2. A graceful stop with data in flight: A sends 50,000 messages to B,
#    busy for 0.8 s, and stops at once; B receives them all, A says
#    nothing was left (its close_flush_time is 60 s: B, its window opening
#    and closing with its reads, takes a while on a loaded machine). A
#    thread process sends them and stops the node before it detaches: with
#    A's send_queue_limit_bytes at 256K most wait in the runtime, held
#    back, and the stop lets them through first (B once got ~1,000).
# 3. The peer's switch read late (test hook EDIST_LANE_TEST_SWITCH_LAG_MS:
#    TCP 3 s behind the lane) while it streams 100,000 messages, with a
#    hold limit of 256K: the held frames close the window at half of it,
#    the sender holds back, nobody goes down, all arrive in order.
# 4. The setup time runs out after the peer switched (the test hook
#    EDIST_LANE_TEST_SETUP_RACE makes that certain): both stay on the lane,
#    nobody goes down, 10,000 messages each way arrive in order.
# 5. A peer that does not acknowledge (SIGSTOPped) while the other stops
#    after sending: it waits its close_flush_time (1 s), then says how much
#    was not acknowledged, and exits.
# 6. A setup time of 1 ms: both give up on the lane together and stay on
#    TCP; 10,000 messages each way arrive in order.
# 7. A memif client started before its server (nothing to connect to):
#    its port starts again until the server is there, and both switch.
# 8. Our lane link dies holding what the peer sent after its switch,
#    before TCP brought the switch: delivered once it does, then the peer
#    goes down.
. "$(dirname "$0")/../node/test_node_lib.sh"
PEER=${3:?usage: $0 EDIST TEST_NODE_TOOL TEST_SHARDS_PEER}
[ "$(id -u)" = 0 ] || { echo "SKIP: memif needs root here"; exit 77; }

start_real_epmd
E=i10le$$
start_erl e "$E"

eal() { echo "--no-pci --vdev=net_memif0,role=$1,bsize=9728,socket=$tmp/$2.sock,socket-abstract=no"; }

# peer TAG NAME ROLE SOCK [VAR=VALUE...]: a two-shard node on memif; sets
# LAST_PID, waits for its ready line.
peer() {
  local tag=$1 name=$2 role=$3 sock=$4
  shift 4
  env EDIST_TRANSPORT=dpdk EDIST_DPDK_PORT=net_memif0 \
    EDIST_DPDK_EAL_ARGS="$(eal "$role" "$sock")" "$@" \
    "$PEER" "$name" "$COOKIE" >"$tmp/$tag.out" 2>"$tmp/$tag.err" &
  LAST_PID=$!
  pids+=($LAST_PID)
  wait_until 30 grep -q '^ready$' "$tmp/$tag.out" || fail "$tag not ready: $(cat "$tmp/$tag.err")"
  grep -q 'transport dpdk: memif lane on net_memif0' "$tmp/$tag.err" ||
    fail "$tag has no memif lane: $(cat "$tmp/$tag.err")"
}
stat_of() { "$EDIST" stat "$1@$HOST" --cookie "$COOKIE" 2>/dev/null; }
counter() { stat_of "$1" | sed -n "s/^$2 //p"; }
switched() {
  local s
  s=$(stat_of "$1") || return 1
  grep -q '^lane_switches 1$' <<<"$s" && grep -q '^lane_peer_switches 1$' <<<"$s"
}
# meet A B: erl connects to both, they connect to each other (global).
meet() {
  local r
  r=$(erl_eval "$E" "[net_adm:ping('$1@$HOST'), net_adm:ping('$2@$HOST')].")
  [ "$r" = "{ok,[pong,pong]}" ] || fail "erl pings $1 $2: $r"
}
# stream FROM TO COUNT: FROM's s0send sends {seq, 1..COUNT} to TO's s1recv;
# prints TO's report {COUNT, InOrder}.
stream() {
  erl_eval "$E" "{s1recv, '$2@$HOST'} ! reset, timer:sleep(50),
    {s0send, '$1@$HOST'} ! {send_name, s1recv, '$2@$HOST', $3},
    Ask = fun A(0) -> timeout;
              A(K) -> {s1recv, '$2@$HOST'} ! {report, self()},
                      receive {report, $3, Ok} -> {$3, Ok};
                              {report, _, _} -> timer:sleep(20), A(K - 1)
                      after 5000 -> timeout end end,
    Ask(1000)."
}
no_down() {
  local t
  for t in "$@"; do
    ! grep -q 'node down: i10l\|went down' "$tmp/$t.err" ||
      fail "$t saw a peer go down: $(grep 'down' "$tmp/$t.err")"
  done
}

# 1. The read hold covers the lane.
A=i10la$$
B=i10lb$$
peer a "$A" server m1 EDIST_DPDK_RECV_WINDOW_BYTES=64K EDIST_CLOSE_FLUSH_TIME=60 \
  EDIST_SEND_QUEUE_LIMIT_BYTES=256K
apid=$LAST_PID
peer b "$B" client m1 EDIST_DPDK_RECV_WINDOW_BYTES=64K
bpid=$LAST_PID
meet "$A" "$B"
wait_until 20 switched "$A" || fail "A did not switch: $(stat_of "$A" | grep lane_)"
wait_until 20 switched "$B" || fail "B did not switch: $(stat_of "$B" | grep lane_)"
r=$(erl_eval "$E" "{s1recv, '$B@$HOST'} ! reset, {s1hog, '$B@$HOST'} ! {hog, 1500, self()},
  timer:sleep(100),
  {s0send, '$A@$HOST'} ! {send_name, s1recv, '$B@$HOST', 100000},
  H = receive hogged -> hogged after 20000 -> no_hogged end,
  Ask = fun A(0) -> timeout;
            A(K) -> {s1recv, '$B@$HOST'} ! {report, self()},
                    receive {report, 100000, Ok} -> {100000, Ok};
                            {report, _, _} -> timer:sleep(20), A(K - 1)
                    after 5000 -> timeout end end,
  Got = Ask(500),
  S = rpc:call('$B@$HOST', edist, stats, []),
  {H, Got, maps:get(rx_holds, S) >= 1, maps:get(lane_window_closes, S) >= 1,
   maps:get(shard_backlog_max, S) < 50000}.")
[ "$r" = "{ok,{hogged,{100000,true},true,true,true}}" ] ||
  fail "busy shard 1 behind the lane: $r; B: $(stat_of "$B" | grep -E 'backlog|rx_holds|lane_window|lane_link')"
switched "$A" && switched "$B" || fail "the lane was lost"
no_down a b
ok "shard 1 busy 1.5 s behind memif: 100,000 messages in order; B held its reads $(counter "$B" rx_holds) time(s), closed the lane's window $(counter "$B" lane_window_closes) time(s), backlog at most $(counter "$B" shard_backlog_max); A stalled $(counter "$A" lane_window_stalls) time(s)"

# Per-peer lane counters in `edist stat`.
line=$(stat_of "$A" | grep "^lane_link_stats 0 ") || fail "no lane_link_stats line: $(stat_of "$A" | grep lane_)"
[[ "$line" == *"peer=$B@$HOST"* && "$line" == *"state=switched"* && "$line" == *" messages_out="* &&
   "$line" == *" window_stalls="* && "$line" == *" pool_in_use="* ]] || fail "lane_link_stats: $line"
n=$(grep -o ' messages_out=[0-9]*' <<<"$line" | cut -d= -f2)
[ "$n" -ge 100000 ] || fail "lane_link_stats messages_out $n < 100000: $line"
ok "edist stat: $line"

# 2. A stops gracefully right after sending, while B's shard 1 is busy
# (its reads held, the lane's window closed): A's close waits until B
# acknowledged everything, and nothing is lost.
r=$(erl_eval "$E" "{s1recv, '$B@$HOST'} ! reset, {s1hog, '$B@$HOST'} ! {hog, 800, self()},
  timer:sleep(50),
  {s0main, '$A@$HOST'} ! {send_and_stop, s1recv, '$B@$HOST', 50000},
  receive hogged -> ok after 10000 -> no_hogged end.")
[ "$r" = "{ok,ok}" ] || fail "send_and_stop: $r"
wait "$apid" || fail "A did not stop cleanly: $(tail -5 "$tmp/a.err")"
grep -q '^stopped$' "$tmp/a.out" || fail "A: $(cat "$tmp/a.out")"
r=$(erl_eval "$E" "{s1recv, '$B@$HOST'} ! {report, self()},
  receive {report, N, Ok} -> {N, Ok} after 5000 -> timeout end.")
[ "$r" = "{ok,{50000,true}}" ] || fail "after A's graceful stop B has $r; A: $(tail -25 "$tmp/a.err")"
! grep -q 'not acknowledged' "$tmp/a.err" || fail "A: $(grep 'not acknowledged' "$tmp/a.err")"
ok "A sent 50,000 messages over memif to a busy B and stopped at once: B has all, in order"
kill "$bpid"
wait "$bpid" 2>/dev/null

# 3. The peer's switch read 3 s late: held frames close the window.
J=i10lj$$
K=i10lk$$
peer j "$J" server m3l
jpid=$LAST_PID
peer k "$K" client m3l EDIST_LANE_TEST_SWITCH_LAG_MS=3000 \
  EDIST_DPDK_HOLD_LIMIT_BYTES=256K EDIST_DPDK_RECV_WINDOW_BYTES=64K
kpid=$LAST_PID
meet "$J" "$K"
j_switched() { [ "$(counter "$J" lane_switches)" = 1 ]; }
wait_until 20 j_switched || fail "J did not switch: $(stat_of "$J" | grep lane_)"
r=$(stream "$J" "$K" 100000)
[ "$r" = "{ok,{100000,true}}" ] || fail "J -> K with the switch read late: $r; $(cat "$tmp/k.err")"
held=$(counter "$K" lane_held_bytes_max)
[ "$held" -ge 131072 ] && [ "$(counter "$K" lane_hold_overflows)" = 0 ] ||
  fail "K held $held bytes at most: $(stat_of "$K" | grep lane_)"
switched "$J" && switched "$K" || fail "the lane was lost"
no_down j k
ok "the peer's switch read 3 s late: K held $held bytes at most (limit 256K), closed its window $(counter "$K" lane_window_closes) time(s); 100,000 messages in order"
kill "$jpid" "$kpid"
wait "$jpid" "$kpid" 2>/dev/null

# 4. The setup time runs out after the peer switched: the lane stays.
C=i10lc$$
D=i10ld$$
peer c "$C" server m3
cpid=$LAST_PID
peer d "$D" client m3 EDIST_LANE_TEST_SETUP_RACE=1 EDIST_DPDK_DEAD_AFTER=20 \
  EDIST_CLOSE_FLUSH_TIME=1
dpid=$LAST_PID
grep -q 'EDIST_LANE_TEST_SETUP_RACE' "$tmp/d.err" || fail "no hook line: $(cat "$tmp/d.err")"
meet "$C" "$D"
wait_until 20 switched "$C" || fail "C did not switch: $(stat_of "$C" | grep lane_); $(cat "$tmp/c.err" "$tmp/d.err")"
wait_until 20 switched "$D" || fail "D did not switch: $(stat_of "$D" | grep lane_); $(cat "$tmp/c.err" "$tmp/d.err")"
[ "$(counter "$D" lane_setup_timeouts)" = 1 ] && [ "$(counter "$D" lane_aborts_declined)" = 1 ] ||
  fail "D: $(stat_of "$D" | grep lane_)"
r=$(stream "$C" "$D" 10000)
[ "$r" = "{ok,{10000,true}}" ] || fail "C -> D after the race: $r"
r=$(stream "$D" "$C" 10000)
[ "$r" = "{ok,{10000,true}}" ] || fail "D -> C after the race: $r"
no_down c d
ok "setup time out after the peer switched: '$(grep -o 'the peer moved its data.*' "$tmp/d.err" | head -1)'; both on memif, 10,000 messages each way in order"

# 4. The peer does not acknowledge (stopped) while D stops after sending:
# D waits the flush time, says how much was not acknowledged, and exits.
kill -STOP "$cpid"
r=$(erl_eval "$E" "{s0main, '$D@$HOST'} ! {send_and_stop, s1recv, '$C@$HOST', 1000}, ok.")
wait "$dpid"
st=$?
kill -CONT "$cpid"
[ "$r" = "{ok,ok}" ] && [ "$st" = 0 ] || fail "D's stop: $r, status $st: $(tail -5 "$tmp/d.err")"
grep -q 'bytes on the memif lane not acknowledged [0-9]* ms after the close; closing anyway' "$tmp/d.err" ||
  fail "no line for unacknowledged bytes: $(tail -5 "$tmp/d.err")"
ok "C stopped, D stopped after sending: '$(grep -o '[0-9]* bytes on the memif lane not acknowledged.*' "$tmp/d.err")'"
kill "$cpid"
wait "$cpid" 2>/dev/null

# 6. A setup time of 1 ms: both give up, together, and stay on TCP.
F=i10lf$$
G=i10lg$$
peer f "$F" server m5
peer g "$G" client m5 EDIST_DPDK_SETUP_TIME=0.001
meet "$F" "$G"
gave_up() { [ "$(counter "$1" lane_setups_failed)" = 1 ]; }
wait_until 5 gave_up "$F" || fail "F did not give up: $(stat_of "$F" | grep lane_); $(cat "$tmp/f.err" "$tmp/g.err")"
wait_until 5 gave_up "$G" || fail "G did not give up: $(stat_of "$G" | grep lane_); $(cat "$tmp/f.err" "$tmp/g.err")"
r=$(stream "$F" "$G" 10000)
[ "$r" = "{ok,{10000,true}}" ] || fail "F -> G on TCP: $r"
r=$(stream "$G" "$F" 10000)
[ "$r" = "{ok,{10000,true}}" ] || fail "G -> F on TCP: $r"
for n in "$F" "$G"; do
  [ "$(counter "$n" lane_switches)" = 0 ] && [ "$(counter "$n" lane_peer_switches)" = 0 ] ||
    fail "$n switched: $(stat_of "$n" | grep lane_)"
done
no_down f g
ok "setup time 1 ms: both gave up on memif ('$(grep -o 'no memif lane.*' "$tmp/g.err" | head -1)'), 10,000 messages each way in order on TCP"

# 7. A memif client started before its server: the port opens with its
# link down and starts again until the server is there; the lane works.
# Both with dpdk_rto_max_us 1000, below the 2 ms memif raises its
# minimum to: the maximum follows (it stayed below, every link's protocol
# refused to start, and the lane said "Out of memory").
H=i10lh$$
I=i10li$$
peer h "$H" client m6 EDIST_DPDK_RTO_MAX_US=1000
peer i "$I" server m6 EDIST_DPDK_RTO_MAX_US=1000
meet "$H" "$I"
wait_until 20 switched "$H" || fail "H did not switch: $(stat_of "$H" | grep lane_); $(cat "$tmp/h.err")"
wait_until 20 switched "$I" || fail "I did not switch: $(stat_of "$I" | grep lane_); $(cat "$tmp/i.err")"
retries=$(counter "$H" lane_port_start_retries)
[ "${retries:-0}" -ge 1 ] || fail "H: no start retried: $(stat_of "$H" | grep lane_)"
r=$(stream "$H" "$I" 10000)
[ "$r" = "{ok,{10000,true}}" ] || fail "H -> I: $r"
no_down h i
ok "a memif client started before its server: started again $retries time(s), then both on memif (dpdk_rto_max_us 1000), 10,000 messages in order"

# 8. Our lane link dies while it holds what the peer sent after its
# switch, before TCP brought the switch (test hook: TCP 8 s behind; the
# peer SIGSTOPped, so the link hears nothing for dpdk_dead_after 1 s):
# the link had acknowledged those messages, so they are delivered once
# the switch is read, and then the peer goes down (its later data was on
# the dead lane). Before, they were dropped with the link.
L=i10lL$$
M=i10lM$$
peer l "$L" server m8
lpid=$LAST_PID
peer m "$M" client m8 EDIST_LANE_TEST_SWITCH_LAG_MS=8000 EDIST_DPDK_DEAD_AFTER=1
mpid=$LAST_PID
meet "$L" "$M"
l_switched() { [ "$(counter "$L" lane_switches)" = 1 ]; }
wait_until 20 l_switched || fail "L did not switch: $(stat_of "$L" | grep lane_)"
r=$(erl_eval "$E" "{s1recv, '$M@$HOST'} ! reset, timer:sleep(50),
  {s0send, '$L@$HOST'} ! {send_name, s1recv, '$M@$HOST', 1000}, ok.")
[ "$r" = "{ok,ok}" ] || fail "L's send: $r"
m_holds() { [ "$(counter "$M" lane_held_bytes_max)" -ge 20000 ]; }
wait_until 5 m_holds || fail "M holds nothing: $(stat_of "$M" | grep lane_)"
sleep 0.5
kill -STOP "$lpid"
wait_until 10 grep -q 'lane closed .* holding [0-9]* bytes the peer sent after its switch' "$tmp/m.err" ||
  fail "M's link did not close holding: $(grep -i 'lane\|switch' "$tmp/m.err" | tail -8)"
wait_until 15 grep -q 'went down before the peer.s switch was read' "$tmp/m.err" ||
  fail "M did not take L down after the switch: $(tail -5 "$tmp/m.err")"
kill -CONT "$lpid"
r=$(erl_eval "$E" "{s1recv, '$M@$HOST'} ! {report, self()},
  receive {report, N, Ok} -> {N, Ok} after 5000 -> timeout end.")
[ "$r" = "{ok,{1000,true}}" ] || fail "M's receiver after its lane closed holding: $r; $(tail -5 "$tmp/m.err")"
! grep -q 'a lane we do not have' "$tmp/m.err" || fail "M: $(grep 'lane we do not have' "$tmp/m.err")"
ok "the lane closed holding what the peer sent after its switch: '$(grep -o 'holding [0-9]* bytes' "$tmp/m.err")', all 1,000 delivered in order once TCP brought the switch, then '$(grep -o 'the memif lane went down before[^;]*' "$tmp/m.err" | head -1)'"
kill "$lpid" "$mpid"
wait "$lpid" "$mpid" 2>/dev/null
done_ok
