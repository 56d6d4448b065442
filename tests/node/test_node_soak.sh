#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Soak, bounded in time (SOAK_SECONDS, default 30; up to 4 times that
# while a sleeper has not overflowed yet): three erl peers stream
# messages of mixed sizes (10 B .. 300 KB, the big ones fragmented) to
# processes on one edist node: a counter that receives everything, a
# process that never receives, and one that crashes after 500 messages.
# One erl is SIGSTOPped for 5 s and resumed in the middle. Meanwhile a
# fresh `edist ping` runs every second and the node's RSS is sampled.
# Afterwards, for every peer: the counter got exactly what was sent, in
# order; the sleeper's loss is visible (DOWN mailbox_overflow at its hard
# limit of 128 MiB); the crasher's is too (DOWN crashed_after). The node's
# mailbox_overflows counter matches, every ping answered, and RSS stayed
# under 1 GiB.
#   test_node_soak.sh EDIST TEST_NODE_TOOL TEST_LIMITS_PEER
. "$(dirname "$0")/test_node_lib.sh"
PEER=${3:?usage: $0 EDIST TEST_NODE_TOOL TEST_LIMITS_PEER}
SECS=${SOAK_SECONDS:-30}
RSS_MAX_KB=$((1024 * 1024))

start_real_epmd
L=soak$$
LN=$L@$HOST
"$PEER" --sname "$L" --cookie "$COOKIE" --listen-address 127.0.0.1 \
  --mailbox-hard-bytes 128M >"$tmp/l.out" 2>"$tmp/l.err" &
LPID=$!
pids+=($LPID)
wait_until 20 grep -q '^ready$' "$tmp/l.out" || fail "edist node not ready"
names=()
for i in 1 2 3; do
  start_erl "e$i" "soake$i$$"
  names+=("soake$i$$")
  epid[$i]=$LAST_PID
done
ok "edist node $LN (hard mailbox limit 128 MiB), erl peers ${names[*]} up"

stream="N = '$LN', Self = self(),
  C = spawn(N, t, count, [Self]),
  {S, SR} = spawn_monitor(N, edist_demo, sleep, [infinity]),
  {X, XR} = spawn_monitor(N, t, crash_after, [500]),
  Bins = list_to_tuple([binary:copy(<<7>>, Sz) || Sz <- [10, 100, 1000, 65536, 300000]]),
  End = erlang:monotonic_time(millisecond) + $SECS * 1000,
  %% Past End only until the sleeper overflowed: a slow build (ASan, a
  %% loaded machine) may need longer to send it 128 MiB.
  Late = End + 3 * $SECS * 1000,
  Loop = fun L(I, SD0) ->
      SD1 = case SD0 of
                alive -> receive {'DOWN', SR, process, S, R0} -> R0 after 0 -> alive end;
                _ -> SD0
            end,
      Now = erlang:monotonic_time(millisecond),
      case Now < End orelse (SD1 =:= alive andalso Now < Late) of
          false -> {I - 1, SD1};
          true -> B = element(1 + I rem 5, Bins),
                  C ! {I, B}, S ! {I, B}, X ! {I, B},
                  L(I + 1, SD1)
      end end,
  {Sent, SD0} = Loop(1, alive),
  C ! stop,
  Counted = receive {counted, Cn, InOrder} -> {Cn, InOrder} after 120000 -> timeout end,
  SD = case SD0 of
           alive -> receive {'DOWN', SR, process, S, R1} -> R1 after 10000 -> alive end;
           _ -> SD0
       end,
  XD = receive {'DOWN', XR, process, X, R2} -> R2 after 10000 -> alive end,
  {Sent, Counted, SD, XD}."

for i in 1 2 3; do
  erl_eval "${names[$((i - 1))]}" "$stream" >"$tmp/r$i.res" 2>&1 &
  spid[$i]=$!
  pids+=($!)
done

# While they stream: stop and resume erl 2; ping every second; watch RSS.
pings=0
pangs=0
rss_max=0
t0=$SECONDS
stopped=0
while [ $((SECONDS - t0)) -lt $((SECS + 5)) ]; do
  el=$((SECONDS - t0))
  if [ $stopped = 0 ] && [ $el -ge $((SECS / 3)) ]; then
    kill -STOP "${epid[2]}"
    stopped=1
    stop_at=$el
  elif [ $stopped = 1 ] && [ $el -ge $((stop_at + 5)) ]; then
    kill -CONT "${epid[2]}"
    stopped=2
  fi
  r=$(timeout 20 "$EDIST" ping "$LN" --cookie "$COOKIE" 2>&1)
  pings=$((pings + 1))
  [ "$r" = pong ] || { pangs=$((pangs + 1)); echo "ping $pings: $r"; }
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$LPID/status")
  [ "${rss:-0}" -gt $rss_max ] && rss_max=$rss
  sleep 1
done
[ $stopped = 1 ] && kill -CONT "${epid[2]}"
ok "$pings pings while streaming (erl 2 stopped for 5 s at ${stop_at}s): $pangs without pong; RSS at most ${rss_max} KiB"

for i in 1 2 3; do
  wait "${spid[$i]}"
done
overflows=0
for i in 1 2 3; do
  r=$(cat "$tmp/r$i.res")
  # {ok,{Sent,{Counted,true},SleeperDown,CrasherDown}}
  if [[ "$r" =~ ^\{ok,\{([0-9]+),\{([0-9]+),true\},([a-z_]+),crashed_after\}\}$ ]]; then
    sent=${BASH_REMATCH[1]}
    counted=${BASH_REMATCH[2]}
    sleeper=${BASH_REMATCH[3]}
  else
    fail "erl $i: $r"
  fi
  [ "$sent" = "$counted" ] || fail "erl $i: sent $sent, the counter got $counted"
  [ "$sleeper" = mailbox_overflow ] || fail "erl $i: the sleeper ended $sleeper"
  overflows=$((overflows + 1))
  ok "erl $i: $sent messages to each process; the counter got all $counted in order; sleeper DOWN mailbox_overflow, crasher DOWN crashed_after"
done

stat=$("$EDIST" stat "$LN" --cookie "$COOKIE" 2>&1)
[ "$(sed -n 's/^mailbox_overflows //p' <<<"$stat")" = $overflows ] ||
  fail "mailbox_overflows: $(grep overflow <<<"$stat")"
ok "edist stat: mailbox_overflows $overflows, as the peers saw"
[ $pangs = 0 ] || fail "$pangs of $pings pings did not answer pong"
[ "$rss_max" -le $RSS_MAX_KB ] || fail "RSS reached $rss_max KiB"
kill -0 "$LPID" || fail "the node died"
ok "every ping answered; RSS stayed under $((RSS_MAX_KB / 1024)) MiB; the node runs"
done_ok
