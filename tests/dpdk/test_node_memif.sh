#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two edist nodes over a DPDK memif port pair (issue 10), against real erl:
#   test_node_memif.sh EDIST TEST_NODE_TOOL
# - `edist bench pair --lane memif`: 200,000 messages and 2,000 round trips
#   over the lane, nothing lost, duplicated or out of order; again with the
#   stream started before the switch (--lane-wait 0), so that its first
#   messages go on TCP and the rest on memif, still in order; 100,000
#   messages of 1 KiB, most encoded straight into the lane, with memif
#   zero-copy and without; and with 1%, 5% and 20% of the frames each node
#   receives dropped, duplicated and reordered (EDIST_DPDK_RX_FAULTS):
#   100,000 messages once each, in order, and 16 MiB messages at 5%.
# - `edist node --transport dpdk` twice (memif server and client, sockets
#   in the test's directory): an erl node connects to both, the two meet
#   through it (transitive connect), agree on the memif lane and move their
#   data there (lane_switches, lane_peer_switches in `edist stat`); erl
#   still reaches both (its traffic stays on TCP); a lane switch sent by a
#   process of erl is not heard.
# - The memif server node killed: the other sees it down within the tick
#   time, keeps running (a ping answers), its pool back to where it was.
# - transport dpdk with a device EAL does not know: one line says why and
#   the node runs on TCP.
# - Two nodes with the lane in UDP/IPv4 (dpdk_udp_address) move their
#   data to it; a UDP node and an Ethernet one stay on TCP, saying why.
. "$(dirname "$0")/../node/test_node_lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: memif needs root here"; exit 77; }

# bench_memif TAG CHECK ARGS...: `edist bench pair --lane memif ARGS
# --json` (ended by its PID like every process here), its JSON result `o`
# asserted with the Python expression CHECK; output in TAG.out/TAG.err.
bench_memif() {
  local tag=$1 check=$2
  shift 2
  "$EDIST" bench pair --lane memif "$@" --json >"$tmp/$tag.out" 2>"$tmp/$tag.err" &
  local bp=$!
  pids+=("$bp")
  wait "$bp" || fail "bench pair --lane memif $*: $(cat "$tmp/$tag.err")"
  python3 -c "import json,sys; o=json.load(open(sys.argv[1])); assert $check, o" \
    "$tmp/$tag.out" || fail "bench pair --lane memif $*: $(cat "$tmp/$tag.out")"
}
clean="o['lost'] == 0 and o['out_of_order'] == 0"

# 1. bench pair over memif, after and across the switch.
for wait in 15 0; do
  bench_memif "bp$wait" \
    "o['lane'] == 'memif' and o['messages'] == 200000 and $clean and o['duplicates'] == 0" \
    --count 200000 --rtt-count 2000 --lane-wait "$wait" --verbose
  grep -q 'ended node a (pid [0-9]*, exited with status 0), node b (pid [0-9]*, exited with status 0)$' "$tmp/bp$wait.err" ||
    fail "bench pair memif: nodes not ended cleanly: $(cat "$tmp/bp$wait.err")"
done
ok "bench pair --lane memif: 200,000 messages and 2,000 round trips, none lost or out of order, both after the switch and across it"

# 1 KiB messages: the scheduler behind the lane's watermark moves on as the
# peer acknowledges (it once waited for good: on_sent was never called).
# Many are encoded straight into the lane: a sending process whose message
# found the lane full lets the loop read the acknowledgements before it
# sends again (without that, 8% were: the sender kept its shard until the
# peer's whole queue was full, and every message after was copied). Over
# half with one shard; with two, where the lane's shard also takes the
# sender's ring, 48% was seen in a loaded run: a quarter is the bound.
# Both memif modes: the client transmitting from its own memory (zero-copy,
# the default) and both sides copying through the shared ring.
bench_memif bp1k "o['messages'] == 100000 and $clean and o['messages_in_place'] > o['messages_out'] / 4 and o['memif_zero_copy'] is True" \
  --bytes 1024 --count 100000 --rtt-count 1000
bench_memif bp1kcopy "o['messages'] == 100000 and $clean and o['memif_zero_copy'] is False" \
  --bytes 1024 --count 100000 --rtt-count 1000 --memif-zero-copy false
ok "bench pair --lane memif --bytes 1024, zero-copy and copying: 100,000 messages (100 MB) each, none lost or out of order, many encoded in place"

# Loss on a real port: faults injected into the frames each node receives
# (memif itself loses nothing), 1%, 5% and 20% each of drops, duplicates
# and reorders: every message once, in order; 16 MiB messages at 5%.
for pct in 1 5 20; do
  ppm=$((pct * 10000))
  EDIST_DPDK_RX_FAULTS="drop=$ppm,dup=$ppm,reorder=$ppm,seed=$pct" \
    bench_memif "bpf$pct" "o['messages'] == 100000 and $clean and o['duplicates'] == 0" \
    --count 100000 --rtt-count 500
  grep -q 'injecting faults into received frames' "$tmp/bpf$pct.err" ||
    fail "no faults injected: $(cat "$tmp/bpf$pct.err")"
done
EDIST_DPDK_RX_FAULTS="drop=50000,dup=50000,reorder=50000,seed=16" \
  bench_memif bp16 "$clean and o['bad_messages'] == 0" \
  --bytes 16M --count 4 --rtt-count 2 --warmup 1
ok "memif with 1%, 5%, 20% of received frames dropped, duplicated and reordered: 100,000 messages once each, in order; 16 MiB messages at 5%"

# 2. Two nodes with memif ports, met through erl.
start_real_epmd
A=i10a$$
B=i10b$$
E=i10e$$
eal() { echo "--no-pci --vdev=net_memif0,role=$1,bsize=9728,socket=$tmp/memif.sock,socket-abstract=no"; }
start_edist a --sname "$A" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --transport dpdk --dpdk-port net_memif0 --dpdk-eal-args "$(eal server)"
apid=$LAST_PID
start_edist b --sname "$B" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --transport dpdk --dpdk-port net_memif0 --dpdk-eal-args "$(eal client)" --dpdk-pool-mbufs 4095
bpid=$LAST_PID
for n in a b; do
  grep -q 'transport dpdk: memif lane on net_memif0' "$tmp/$n.err" ||
    fail "node $n has no memif lane: $(cat "$tmp/$n.err")"
done
start_erl e "$E"
r=$(erl_eval "$E" "[net_adm:ping('$A@$HOST'), net_adm:ping('$B@$HOST')].")
[ "$r" = "{ok,[pong,pong]}" ] || fail "erl pings: $r"
switched() {
  local s
  s=$("$EDIST" stat "$1@$HOST" --cookie "$COOKIE" 2>/dev/null) || return 1
  grep -q '^lane_switches 1$' <<<"$s" && grep -q '^lane_peer_switches 1$' <<<"$s"
}
wait_until 20 switched "$A" || fail "A did not switch: $("$EDIST" stat "$A@$HOST" --cookie "$COOKIE" | grep lane_)"
wait_until 20 switched "$B" || fail "B did not switch: $("$EDIST" stat "$B@$HOST" --cookie "$COOKIE" | grep lane_)"
grep -q "data on the memif lane" "$tmp/a.err" && grep -q "data on the memif lane" "$tmp/b.err" ||
  fail "no switch line: $(cat "$tmp/a.err" "$tmp/b.err")"
ok "$A and $B met through erl and moved their data to the memif lane"

r=$(erl_eval "$E" "{rpc:call('$A@$HOST', erlang, nodes, []), rpc:call('$B@$HOST', erlang, nodes, [])}.")
[[ "$r" == *"$B@$HOST"* && "$r" == *"$A@$HOST"* ]] || fail "nodes(): $r"
for n in "$A" "$B"; do
  r=$(erl_eval "$E" "rpc:call('$n@$HOST', edist_demo, echo, [{hello, lists:seq(1, 1000)}]) =:= {hello, lists:seq(1, 1000)}.")
  [ "$r" = "{ok,true}" ] || fail "erl -> $n: $r"
done
# The lane agreement is the kernels': a process of erl that sends A's
# lane a switch (as any process may send to {edist_lane, Node}) is not
# heard, and erl stays connected (A once took it down: "the peer
# switched to a lane we do not have").
r=$(erl_eval "$E" "{edist_lane, '$A@$HOST'} ! {edist_lane, switch}, {edist_lane, '$A@$HOST'} ! {edist_lane, abort}, timer:sleep(300), {lists:member('$A@$HOST', nodes()), rpc:call('$A@$HOST', edist_demo, echo, [still])}.")
[ "$r" = "{ok,{true,still}}" ] || fail "erl after sending A's lane a switch: $r"
grep -q "node down: $E@" "$tmp/a.err" && fail "A took erl down over its lane message: $(grep "node down: $E@" "$tmp/a.err")"
ok "a lane switch and abort from a process of erl are not A's kernel's business: erl stays connected"
size_b=$("$EDIST" stat "$B@$HOST" --cookie "$COOKIE" | sed -n 's/^lane_pool_size //p')
[ "$size_b" = 4095 ] || fail "B's pool: $size_b mbufs, not dpdk_pool_mbufs 4095"
in_use() { "$EDIST" stat "$1@$HOST" --cookie "$COOKIE" | sed -n 's/^lane_pool_in_use //p'; }
pool_b=$(in_use "$B")
ok "erl reaches both over TCP while they use memif; B's pool in use: $pool_b mbufs"

# 3. A dies: B sees it go, keeps running, its pool back.
kill -KILL "$apid"
wait_until 30 grep -q "node down: $A@$HOST" "$tmp/b.err" || fail "B did not see A go: $(tail -5 "$tmp/b.err")"
r=$("$EDIST" ping "$B@$HOST" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "B after A died: $r"
kill -0 "$bpid" || fail "B died with A"
back() { after=$(in_use "$B"); [ -n "$after" ] && [ "$after" -le "$pool_b" ]; }
wait_until 10 back || fail "B's pool in use: $pool_b before, $after after"
ok "A killed: B saw it down ($(grep -o "node down: $A@$HOST.*" "$tmp/b.err" | head -1)), answers pings, pool in use $after"

# A restarted on the same socket: the killed server's socket file is still
# there (DPDK could not listen on it: A stayed on TCP); A removes it with a
# line, B's client reconnects, and the two move their data to memif again.
start_edist a2 --sname "$A" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --transport dpdk --dpdk-port net_memif0 --dpdk-eal-args "$(eal server)"
apid=$LAST_PID
grep -q "memif socket $tmp/memif.sock was left by a server that is gone: removed" "$tmp/a2.err" ||
  fail "A restarted: no stale socket line: $(grep -i memif "$tmp/a2.err")"
grep -q 'transport dpdk: memif lane on net_memif0' "$tmp/a2.err" || fail "A restarted without its lane: $(cat "$tmp/a2.err")"
r=$("$EDIST" rpc "$A@$HOST" net_adm ping "['$B@$HOST']" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "A restarted pings B: $r"
switched2() { "$EDIST" stat "$B@$HOST" --cookie "$COOKIE" 2>/dev/null | grep -q '^lane_switches 2$'; }
wait_until 20 switched2 || fail "B did not switch again: $("$EDIST" stat "$B@$HOST" --cookie "$COOKIE" | grep lane_)"
ok "A restarted on its old socket ('$(grep -o 'memif socket .* removed' "$tmp/a2.err")'): B reconnects and both are on memif again"
kill -KILL "$apid"
wait_until 30 grep -q "node down: $A@$HOST" "$tmp/b.err" || true

# A memif zero-copy client whose server went away: DPDK 22.11's memif
# closes the memory files the client gives its servers, so it can never
# connect again. It says so once, stops restarting, refuses the lane to
# the next server's node (their data on TCP) instead of a setup that
# times out on every connection.
Z=i10z$$
S1=i10s$$
zc_eal() { echo "--no-pci --single-file-segments --vdev=net_memif0,role=client,bsize=9728,socket=$tmp/zc.sock,socket-abstract=no,zero-copy=yes"; }
s_eal() { echo "--no-pci --vdev=net_memif0,role=server,bsize=9728,socket=$tmp/zc.sock,socket-abstract=no"; }
start_edist z --sname "$Z" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --transport dpdk --dpdk-port net_memif0 --dpdk-eal-args "$(zc_eal)"
start_edist s1 --sname "$S1" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --transport dpdk --dpdk-port net_memif0 --dpdk-eal-args "$(s_eal)"
s1pid=$LAST_PID
r=$("$EDIST" rpc "$S1@$HOST" net_adm ping "['$Z@$HOST']" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "$S1 pings $Z: $r"
wait_until 20 switched "$Z" || fail "$Z did not switch: $("$EDIST" stat "$Z@$HOST" --cookie "$COOKIE" | grep lane_)"
kill -KILL "$s1pid"
said() { grep -q "the lane's port can carry nothing more: its memif server went away" "$tmp/z.err"; }
wait_until 15 said || fail "$Z did not say its port is done: $(grep -i 'memif\|lane' "$tmp/z.err" | tail -5)"
start_edist s2 --sname "$S1" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --transport dpdk --dpdk-port net_memif0 --dpdk-eal-args "$(s_eal)"
r=$("$EDIST" rpc "$S1@$HOST" net_adm ping "['$Z@$HOST']" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "the second $S1 pings $Z: $r"
wait_until 10 grep -q "no memif lane (refused: port_unusable)" "$tmp/s2.err" ||
  fail "the second $S1 got no refusal: $(grep -i 'lane' "$tmp/s2.err" | tail -3)"
r=$("$EDIST" rpc "$S1@$HOST" edist_demo echo "[over_tcp]" --cookie "$COOKIE" 2>&1)
[ "$r" = over_tcp ] || fail "$S1 after the refusal: $r"
retries=$("$EDIST" stat "$Z@$HOST" --cookie "$COOKIE" | sed -n 's/^lane_port_start_retries //p')
sleep 2
retries2=$("$EDIST" stat "$Z@$HOST" --cookie "$COOKIE" | sed -n 's/^lane_port_start_retries //p')
[ "$retries2" = "$retries" ] || fail "$Z still restarts its port: lane_port_start_retries $retries -> $retries2"
ok "a zero-copy client whose server died: '$(grep -o "the lane's port can carry nothing more: [^;]*" "$tmp/z.err" | head -1 | cut -c1-90)...'; the next server's offer refused (port_unusable), data on TCP, no more restarts"

# 4. A device the EAL does not know: TCP, with one line.
C=i10c$$
start_edist c --sname "$C" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --transport dpdk --dpdk-port net_nosuch0 --dpdk-eal-args "--no-pci"
grep -q 'transport dpdk: .*; using TCP' "$tmp/c.err" || fail "no fallback line: $(cat "$tmp/c.err")"
r=$(erl_eval "$E" "net_adm:ping('$C@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "node on TCP after the fallback: $r"
ok "an unknown device: '$(grep -o 'transport dpdk: .*' "$tmp/c.err" | head -1)', and the node answers over TCP"

# 5. The lane in UDP/IPv4 (dpdk_udp_address): two such nodes move their
# data to it; a node framing in Ethernet meets one framing in UDP: no
# lane, one line each, and their messages go on TCP.
# memif_node TAG NAME ROLE SOCKET ARGS...: a node on a memif port of its own
# socket (the pair's), ready.
memif_node() {
  local tag=$1 name=$2 role=$3 sock=$4
  shift 4
  start_edist "$tag" --sname "$name" --cookie "$COOKIE" --listen-address 127.0.0.1 \
    --transport dpdk --dpdk-port net_memif0 "$@" --dpdk-eal-args \
    "--no-pci --vdev=net_memif0,role=$role,bsize=9728,socket=$tmp/$sock.sock,socket-abstract=no"
}
U1=i10u$$
U2=i10v$$
memif_node u1 "$U1" server udp --dpdk-udp-address 10.88.1.1
memif_node u2 "$U2" client udp --dpdk-udp-address 10.88.1.2 --dpdk-udp-port 5000
grep -q 'memif lane on net_memif0 (.*, UDP 10.88.1.2:5000)' "$tmp/u2.err" ||
  fail "no UDP lane line: $(cat "$tmp/u2.err")"
r=$("$EDIST" rpc "$U2@$HOST" net_adm ping "['$U1@$HOST']" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "$U2 pings $U1: $r"
wait_until 20 switched "$U1" || fail "$U1 did not switch: $("$EDIST" stat "$U1@$HOST" --cookie "$COOKIE" | grep lane_)"
wait_until 20 switched "$U2" || fail "$U2 did not switch"
# a ping after the switch: net_kernel's call and its answer on the lane
r=$("$EDIST" rpc "$U2@$HOST" net_adm ping "['$U1@$HOST']" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "$U2 pings $U1 over the UDP lane: $r"
msgs=$("$EDIST" stat "$U1@$HOST" --cookie "$COOKIE" | sed -n 's/^lane_messages_in //p')
[ -n "$msgs" ] && [ "$msgs" -gt 0 ] || fail "no lane messages in: $msgs"
ok "two nodes framing in UDP/IPv4 move their data to the memif lane; a ping answers over it ($msgs lane messages in)"
E1=i10w$$
E2=i10x$$
memif_node w1 "$E1" server mixed --dpdk-udp-address 10.88.1.1
memif_node w2 "$E2" client mixed
r=$("$EDIST" rpc "$E2@$HOST" net_adm ping "['$E1@$HOST']" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "$E2 pings $E1: $r"
both_gave_up() { grep -q "no memif lane" "$tmp/w1.err" && grep -q "no memif lane" "$tmp/w2.err"; }
wait_until 20 both_gave_up || fail "no give-up lines: $(cat "$tmp/w1.err" "$tmp/w2.err")"
grep -q "not of our framing" "$tmp/w1.err" "$tmp/w2.err" || fail "no reason: $(grep 'no memif lane' "$tmp"/w?.err)"
r=$("$EDIST" rpc "$E2@$HOST" net_adm ping "['$E1@$HOST']" --cookie "$COOKIE" 2>&1)
[ "$r" = pong ] || fail "a ping over TCP after the refusal: $r"
for n in "$E1" "$E2"; do
  "$EDIST" stat "$n@$HOST" --cookie "$COOKIE" | grep -q '^lane_switches 0$' || fail "$n switched"
done
ok "UDP framing meets Ethernet framing: '$(grep -oh 'no memif lane.*' "$tmp"/w?.err | head -1)'; both stay on TCP, a ping answers"
done_ok
