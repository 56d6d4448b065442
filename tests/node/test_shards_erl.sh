#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A node of two shards against a real erl (issue 9):
#   test_shards_erl.sh EDIST TEST_NODE_TOOL TEST_SHARDS_PEER
# 10,000 numbered messages from a process on shard 0 to one on shard 1,
# within the node and through an erl relay, and from shard 1 to erl (each
# passing shard 0, which owns the connection), all in order; erl links to
# and monitors a process on shard 1; a process on shard 1 spawns on erl
# (spawn_request, monitor) and makes an rpc; processes on shards 0 and 1
# link to, monitor and monitor by name a process of an erl node that is
# then killed: both get their EXIT and DOWNs with noconnection; shard 1 too
# busy to take 100,000 messages from erl: shard 0 stops reading at its
# backlog limit and everything arrives in order; `edist node
# --shards 2` and its shard counters in `edist stat`.
. "$(dirname "$0")/test_node_lib.sh"
PEER=${3:?usage: $0 EDIST TEST_NODE_TOOL TEST_SHARDS_PEER}

start_real_epmd
ok "real epmd on port $EPMD_PORT"
S=i9s$$
E=i9e$$
F=i9f$$
SN=$S@$HOST
"$PEER" "$S" "$COOKIE" >"$tmp/s.out" 2>"$tmp/s.err" &
pids+=($!)
wait_until 30 grep -q '^ready$' "$tmp/s.out" || fail "shards peer not ready: $(cat "$tmp/s.out")"
grep -q '^local order: ok 10000$' "$tmp/s.out" || fail "within the node: $(grep '^local' "$tmp/s.out")"
grep -q '^shards 2 ' "$tmp/s.out" || fail "not two shards: $(cat "$tmp/s.out")"
ok "within $SN: 10,000 messages shard 0 -> shard 1 in order ($(grep '^shards' "$tmp/s.out"))"

start_erl e "$E"
ok "erl $E up"

# Shard 0 -> erl relay -> shard 1.
r=$(erl_eval "$E" "register(relay, spawn(fun L() -> receive M -> {s1recv, '$SN'} ! M, L() end end)),
  {s0send, '$SN'} ! {send_name, relay, node(), 10000},
  Ask = fun A(0) -> timeout;
            A(K) -> {s1recv, '$SN'} ! {report, self()},
                    receive {report, 10000, Ok} -> {10000, Ok};
                            {report, _, _} -> timer:sleep(20), A(K - 1)
                    after 5000 -> timeout end end,
  Ask(500).")
[ "$r" = "{ok,{10000,true}}" ] || fail "shard 0 -> erl -> shard 1: $r"
ok "10,000 messages shard 0 -> erl -> shard 1 arrive in order"

# Shard 1 -> erl: through shard 0, which owns the connection.
r=$(erl_eval "$E" "{s1send, '$SN'} ! {send_pid, self(), 10000},
  Got = [receive {seq, X} -> X after 10000 -> timeout end || _ <- lists:seq(1, 10000)],
  Got =:= lists:seq(1, 10000).")
[ "$r" = "{ok,true}" ] || fail "shard 1 -> erl: $r"
ok "10,000 messages shard 1 -> erl arrive in order"

# Shard 1 busy for 1.5 s while erl sends 100,000 messages to a process on
# it: shard 0's backlog passes shard_backlog_limit (1,000 here), the node
# stops reading, erl is held back by TCP; then everything arrives, in order.
r=$(erl_eval "$E" "{s1recv, '$SN'} ! reset, {s1hog, '$SN'} ! {hog, 1500, self()},
  timer:sleep(100),
  [{s1recv, '$SN'} ! {seq, I} || I <- lists:seq(1, 100000)],
  H = receive hogged -> hogged after 20000 -> no_hogged end,
  Ask = fun A(0) -> timeout;
            A(K) -> {s1recv, '$SN'} ! {report, self()},
                    receive {report, 100000, Ok} -> {100000, Ok};
                            {report, _, _} -> timer:sleep(20), A(K - 1)
                    after 5000 -> timeout end end,
  Got = Ask(500),
  S = rpc:call('$SN', edist, stats, []),
  {H, Got, maps:get(rx_holds, S) >= 1, maps:get(shard_backlog, S)}.")
[ "$r" = "{ok,{hogged,{100000,true},true,0}}" ] || fail "busy shard 1, backlog limit: $r"
ok "shard 1 busy 1.5 s: shard 0 stopped reading past its backlog limit; 100,000 messages from erl in order"

# erl links to and monitors a process on shard 1.
r=$(erl_eval "$E" "process_flag(trap_exit, true), {s1dier, '$SN'} ! {pid, self()},
  P = receive {dier, D} -> D after 5000 -> timeout end,
  link(P), Ref = monitor(process, P), P ! {die, {boom, 1}},
  E1 = receive {'EXIT', P, R1} -> R1 after 5000 -> no_exit end,
  D1 = receive {'DOWN', Ref, process, P, R2} -> R2 after 5000 -> no_down end,
  {E1, D1}.")
[ "$r" = "{ok,{{boom,1},{boom,1}}}" ] || fail "erl links/monitors a shard-1 process: $r"
ok "erl linked to and monitoring a process on shard 1: EXIT and DOWN {boom,1}"

# A process on shard 1 spawns on erl (monitored) and calls rpc.
r=$(erl_eval "$E" "{s1spawn, '$SN'} ! {spawn_on, node(), self()},
  receive M -> M after 5000 -> timeout end.")
[ "$r" = "{ok,spawned_from_shard1}" ] || fail "spawn from shard 1 on erl: $r"
wait_until 5 grep -q '^shard1 spawn_remote: ok$' "$tmp/s.out" || fail "no spawn reply: $(cat "$tmp/s.out")"
wait_until 5 grep -q "^shard1 got: {'DOWN',#Ref<[0-9.]*>,process,<[0-9.]*>,normal}$" "$tmp/s.out" ||
  fail "no DOWN of the process spawned from shard 1: $(cat "$tmp/s.out")"
erl_eval "$E" "{s1spawn, '$SN'} ! {rpc, node()}, ok." >/dev/null
wait_until 5 grep -q "^shard1 rpc: ok '\?$E@$HOST'\?$" "$tmp/s.out" ||
  fail "no rpc answer on shard 1: $(cat "$tmp/s.out")"
ok "shard 1: spawn_monitor on erl (message, spawn_reply, DOWN normal) and rpc:call answered"

# Node down: watchers on shards 0 and 1 of a process on erl F.
start_erl f "$F"
fpid=$LAST_PID
r=$(erl_eval "$F" "register(victim, spawn(fun() -> receive stop -> ok end end)),
  [{W, '$SN'} ! {watch, whereis(victim), victim, node(), self()} || W <- [s0watch, s1watch]],
  lists:sort([receive {watching, K} -> K after 5000 -> timeout end || _ <- [1, 2]]) =:= [0, 1].")
[ "$r" = "{ok,true}" ] || fail "watchers on shards 0 and 1: $r"
kill -KILL "$fpid"
for k in 0 1; do
  for what in "{'EXIT',<[0-9.]*>,noconnection}" \
              "{'DOWN',#Ref<[0-9.]*>,process,<[0-9.]*>,noconnection}" \
              "{'DOWN',#Ref<[0-9.]*>,process,{victim,'\?$F@$HOST'\?},noconnection}"; do
    wait_until 10 grep -q "^shard$k got: $what\$" "$tmp/s.out" ||
      fail "shard $k: no $what: $(cat "$tmp/s.out")"
  done
done
ok "$F killed: the processes on shards 0 and 1 got EXIT, DOWN and DOWN by name, noconnection"

r=$(erl_eval "$E" "S = rpc:call('$SN', edist, stats, []),
  {maps:get(shards, S), maps:get(shard_records_sent, S) > 20000, length(maps:get(shard_stats, S))}.")
[ "$r" = "{ok,{2,true,2}}" ] || fail "edist:stats/0: $r"
ok "edist:stats/0 shows 2 shards and their records"

# `edist node --shards 2 --shard-cores 0,1`: up, pinned, counted by `edist stat`.
N=i9n$$
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1 --shards 2 --shard-cores 0,1
r=$("$EDIST" stat "$N@$HOST" --cookie "$COOKIE" 2>&1) || fail "edist stat $N: $r"
grep -q '^shards 2$' <<<"$r" && grep -q '^shard_stats 1 processes=' <<<"$r" ||
  fail "edist stat $N: $r"
ok "edist node --shards 2: edist stat shows $(grep '^shard_stats 0' <<<"$r")"
done_ok
