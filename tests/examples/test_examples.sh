#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Each program of examples/ against a real erl:
#   test_examples.sh EDIST TEST_NODE_TOOL EXAMPLES_DIR
# rpc_node: rpc:call and erl_call of its exports, a badarith exit and an
# error code seen as {edist_error, etype}; counter_server: requests
# answered, and those sent while it waits for `resume` answered after it,
# in order; links_monitors: a watched erl process's end seen as exit and
# DOWN, and the watcher's crash seen by an erl monitor; thread_engine:
# orders from erl filled through the green pricer. Each example then ends
# on SIGTERM with status 0.
. "$(dirname "$0")/../node/test_node_lib.sh"
EX=${3:?usage: $0 EDIST TEST_NODE_TOOL EXAMPLES_DIR}

start_real_epmd
ok "real epmd on port $EPMD_PORT"
E=xe$$
start_erl e "$E"
ok "erl $E up"

# start_example PROG SHORTNAME: runs it, waits for its ready line; sets
# LAST_PID and NODE.
start_example() {
  "$EX/$1" "$2" "$COOKIE" >"$tmp/$1.out" 2>"$tmp/$1.err" &
  LAST_PID=$!
  pids+=($LAST_PID)
  wait_until 20 grep -q '^ready ' "$tmp/$1.out" || fail "$1 did not get ready"
  NODE=$(sed -n 's/^ready //p' "$tmp/$1.out")
}

# stop_example PROG PID: SIGTERM, and it must end with status 0.
stop_example() {
  kill -TERM "$2"
  local i rc=
  for ((i = 0; i < 200; i++)); do
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  wait "$2"
  rc=$?
  [ "$rc" = 0 ] || fail "$1 ended with status $rc on SIGTERM"
  ok "$1 ends with status 0 on SIGTERM"
}

# ---- rpc_node
start_example rpc_node xr$$
R=$NODE
r=$(erl_eval "$E" "{rpc:call('$R', calc, add, [1, 2]), rpc:call('$R', calc, mul, [6, 7])}.")
[ "$r" = "{ok,{3,42}}" ] || fail "rpc_node add/mul: $r"
ok "rpc_node: rpc:call of calc:add(1, 2) and calc:mul(6, 7) -> 3, 42"
r=$(erl_eval "$E" "{badrpc, {'EXIT', R}} = rpc:call('$R', calc, 'div', [1, 0]), R.")
[ "$r" = "{ok,badarith}" ] || fail "rpc_node div by zero: $r"
r=$(erl_eval "$E" "{badrpc, {'EXIT', {R, _}}} = rpc:call('$R', calc, add, [one, 2]), R.")
[ "$r" = "{ok,{edist_error,etype}}" ] || fail "rpc_node add of an atom: $r"
ok "rpc_node: calc:div(1, 0) exits badarith; calc:add(one, 2) raises {edist_error, etype}"
r=$(erl_call -sname "${R%@*}" -c "$COOKIE" -a 'calc add [40,2]')
[ "$r" = "42" ] || fail "erl_call -a 'calc add [40,2]': $r"
ok "rpc_node: erl_call -a 'calc add [40,2]' -> 42"
stop_example rpc_node "$LAST_PID"

# ---- counter_server
start_example counter_server xc$$
C=$NODE
r=$(erl_eval "$E" "S = {counter, '$C'},
  Ask = fun(Req) -> R = make_ref(), S ! {self(), R, Req}, receive {R, V} -> V after 5000 -> timeout end end,
  A = [Ask({add, 5}), Ask({add, 7}), Ask(get)],
  P = Ask(pause),
  R1 = make_ref(), R2 = make_ref(),
  S ! {self(), R1, {add, 1}}, S ! {self(), R2, get},
  Early = receive {R1, _} -> answered_while_paused after 300 -> none end,
  S ! resume,
  B = [receive {R, V} -> V after 5000 -> timeout end || R <- [R1, R2]],
  {list_to_tuple(A), P, Early, list_to_tuple(B)}.")
[ "$r" = "{ok,{{5,12,12},paused,none,{13,13}}}" ] || fail "counter_server: $r"
ok "counter_server: add, add, get -> 5, 12, 12; paused, nothing answered until resume, then 13, 13 in order"
stop_example counter_server "$LAST_PID"

# ---- links_monitors
start_example links_monitors xl$$
L=$NODE
r=$(erl_eval "$E" "P = spawn(fun() -> receive {die, Why} -> exit(Why) end end),
  {watcher, '$L'} ! {watch, P, self()},
  W = receive {watching, P} -> watching after 5000 -> timeout end,
  P ! {die, boom},
  X = receive {exited, P, R1} -> R1 after 5000 -> timeout end,
  D = receive {down, P, R2} -> R2 after 5000 -> timeout end,
  {W, X, D}.")
[ "$r" = "{ok,{watching,boom,boom}}" ] || fail "links_monitors watch: $r"
ok "links_monitors: an erl process the watcher links to and monitors ends with boom: exited and down, both boom"
r=$(erl_eval "$E" "Ref = erlang:monitor(process, {watcher, '$L'}),
  {watcher, '$L'} ! {crash, bye},
  receive {'DOWN', Ref, process, _, Why} -> Why after 5000 -> timeout end.")
[ "$r" = "{ok,bye}" ] || fail "links_monitors crash: $r"
ok "links_monitors: the watcher exits bye; an erl monitor of {watcher, Node} gets DOWN bye"
stop_example links_monitors "$LAST_PID"

# ---- thread_engine
start_example thread_engine xt$$
T=$NODE
r=$(erl_eval "$E" "S = {engine, '$T'},
  [S ! {order, self(), I, 10 * I} || I <- lists:seq(1, 3)],
  [receive {fill, I, Q, P} -> {I, Q, P} after 5000 -> timeout end || I <- lists:seq(1, 3)].")
[ "$r" = "{ok,[{1,10,110},{2,20,120},{3,30,130}]}" ] || fail "thread_engine: $r"
ok "thread_engine: three orders from erl filled by the engine thread through the green pricer"
stop_example thread_engine "$LAST_PID"

echo "PASSED: $checks checks"
