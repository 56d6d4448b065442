#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The process runtime wired into the node, against a real erl:
#   test_rt_erl.sh EDIST TEST_NODE_TOOL TEST_RT_PEER
# erl sends to a registered process on the edist node and gets the reply;
# 10,000 ordered messages erl -> edist -> erl; spawn/4 of an exported
# function that messages erl back; spawn_monitor/4 of a crashing function
# (DOWN with its reason) and of an unknown one (undef); spawn_link/4 with
# trap_exit (EXIT with the reason); an edist process monitoring an erl
# process gets DOWN normal, then noconnection when that erl node is killed;
# last, rpc:call of an export that writes through NULL: the edist node dies
# of SIGSEGV after one line naming itself, the process and t:segv/0.
. "$(dirname "$0")/test_node_lib.sh"
PEER=${3:?usage: $0 EDIST TEST_NODE_TOOL TEST_RT_PEER}

start_real_epmd
ok "real epmd on port $EPMD_PORT"
R=w1r$$
E=w1e$$
F=w1f$$
RN=$R@$HOST
ulimit -c 0 # the edist node is meant to die at the end: no core file
"$PEER" "$R" "$COOKIE" >"$tmp/r.out" 2>"$tmp/r.err" &
rpid=$!
pids+=($rpid)
wait_until 20 grep -q '^ready$' "$tmp/r.out" || fail "runtime peer not ready"
ok "edist node $RN with the runtime is ready"
start_erl e "$E"
ok "erl $E up"

r=$(erl_eval "$E" "T = {hello, [1,2.5,<<\"bin\">>], #{a => 1}, -1 bsl 70, \"str\", self(), make_ref()},
  {techo, '$RN'} ! {self(), T}, receive M -> M =:= T after 5000 -> timeout end.")
[ "$r" = "{ok,true}" ] || fail "echo via REG_SEND: $r"
ok "erl -> {techo, edist} -> erl: a term with floats, binaries, maps, bignums, pids, refs comes back equal"

r=$(erl_eval "$E" "S = self(), [{techo, '$RN'} ! {S, {S, N}} || N <- lists:seq(1, 10000)],
  Got = [receive {S, X} -> X after 10000 -> timeout end || _ <- lists:seq(1, 10000)],
  Got =:= lists:seq(1, 10000).")
[ "$r" = "{ok,true}" ] || fail "10,000 ordered messages: $r"
ok "10,000 messages erl -> edist -> erl arrive in order"

r=$(erl_eval "$E" "P = spawn('$RN', t, reply, [self(), {from_edist, 42}]),
  {node(P), receive M -> M after 5000 -> timeout end}.")
[ "$r" = "{ok,{$RN,{from_edist,42}}}" ] || fail "spawn/4: $r"
ok "spawn('$RN', t, reply, [self(), T]): the process runs on edist and sends T back"

r=$(erl_eval "$E" "{P, Ref} = spawn_monitor('$RN', t, crash, [{boom, 7}]),
  receive {'DOWN', Ref, process, P, Why} -> {node(P), Why} after 5000 -> timeout end.")
[ "$r" = "{ok,{$RN,{boom,7}}}" ] || fail "spawn_monitor of a crash: $r"
ok "spawn_monitor of t:crash({boom, 7}) gives DOWN {boom,7}"

r=$(erl_eval "$E" "{P, Ref} = spawn_monitor('$RN', t, nosuch, [foo]),
  receive {'DOWN', Ref, process, P, Why} -> Why after 5000 -> timeout end.")
case "$r" in "{ok,{undef,[{t,nosuch,[foo],[]}]}}") ;; *) fail "spawn_monitor of an unknown function: $r" ;; esac
ok "spawn_monitor of an unknown function gives DOWN $r"

r=$(erl_eval "$E" "process_flag(trap_exit, true),
  P = spawn_link('$RN', t, crash, [linked_boom]),
  receive {'EXIT', P, Why} -> Why after 5000 -> timeout end.")
[ "$r" = "{ok,linked_boom}" ] || fail "spawn_link + trap_exit: $r"
ok "spawn_link of a crash with trap_exit gives {'EXIT', P, linked_boom}"

r=$(erl_eval "$E" "rpc:call('$RN', t, add, [1, 2]).")
[ "$r" = "{ok,3}" ] || fail "rpc:call of t:add: $r"
ok "rpc:call('$RN', t, add, [1, 2]) -> 3 (erpc:execute_call of the services)"
r=$(erl_eval "$E" "rpc:call('$RN', edist_demo, add, [1 bsl 80, 2]) =:= (1 bsl 80) + 2.")
[ "$r" = "{ok,true}" ] || fail "rpc:call of edist_demo:add: $r"
ok "rpc:call('$RN', edist_demo, add, [1 bsl 80, 2]) is the bignum sum"
r=$(erl_eval "$E" "case rpc:call('$RN', nomod, nofun, [foo]) of {badrpc, {'EXIT', {undef, _}}} -> badrpc_undef; O -> O end.")
[ "$r" = "{ok,badrpc_undef}" ] || fail "rpc:call of an unknown function: $r"
r=$(erl_eval "$E" "{echo, '$RN'} ! {self(), {via, services_echo}}, receive M -> M after 5000 -> timeout end.")
[ "$r" = "{ok,{via,services_echo}}" ] || fail "services echo: $r"
ok "rpc:call of an unknown function gives {badrpc, {'EXIT', {undef, _}}}; {echo, Node} answers"
r=$(erl_eval "$E" "{badrpc, {'EXIT', {R, [Top | _]}}} = rpc:call('$RN', t, reply, [not_a_pid, x]), {R, Top}.")
[ "$r" = "{ok,{{edist_error,einval},{t,reply,[not_a_pid,x],[]}}}" ] || fail "a C export failing with EDIST_EINVAL: $r"
ok "a C export that fails with EDIST_EINVAL raises error {edist_error, einval} with its call as the stack"

# An edist process spawns on erl (SPAWN_REQUEST from edist, with a monitor).
r=$(erl_eval "$E" "{tmon, '$RN'} ! {spawn_on, node(), self()},
  receive M -> M after 5000 -> timeout end.")
[ "$r" = "{ok,spawned_by_edist}" ] || fail "spawn from edist on erl: $r"
wait_until 5 grep -q "^spawn_remote: ok$" "$tmp/r.out" || fail "no spawn reply: $(cat "$tmp/r.out")"
wait_until 5 grep -q "^got: {'DOWN',#Ref<[0-9.]*>,process,<[0-9.]*>,normal}$" "$tmp/r.out" ||
  fail "no DOWN of the process spawned on erl: $(cat "$tmp/r.out")"
ok "edist spawn_monitor of erlang:send/2 on erl: the message arrives, spawn_reply ok, DOWN normal"

# Auto-connection: a spawn request for a node the edist node is not
# connected to connects first (as erts does); for an unknown node
# spawn_monitor/4 gives, as in Erlang, a pid whose DOWN says noconnection.
G=w1g$$
start_erl g "$G"
r=$(erl_eval "$E" "{tmon, '$RN'} ! {spawn_on, '$G@$HOST', self()},
  receive M -> M after 8000 -> timeout end.")
[ "$r" = "{ok,spawned_by_edist}" ] || fail "spawn from edist on an unconnected erl: $r"
spawn_oks() { [ "$(grep -c '^spawn_remote: ok$' "$tmp/r.out")" = 2 ]; }
wait_until 5 spawn_oks || fail "spawn replies: $(cat "$tmp/r.out")"
ok "an edist process spawning on $G (not connected yet): connected, spawned, message arrived"
erl_eval "$E" "{tmon, '$RN'} ! {spawn_on, 'nosuch$$@$HOST', self()}, ok." >/dev/null
wait_until 10 grep -q "^got: {'DOWN',#Ref<[0-9.]*>,process,<[0-9.]*>,noconnection}$" "$tmp/r.out" ||
  fail "no DOWN noconnection for an unknown node: $(cat "$tmp/r.out")"
[ "$(grep -c '^spawn_remote: ok$' "$tmp/r.out")" = 3 ] || fail "spawn_monitor on an unknown node: $(cat "$tmp/r.out")"
ok "spawn_monitor on a node that does not exist: a pid, and DOWN noconnection"

# An edist process monitors an erl process: DOWN normal on its exit.
downs() { grep -c "^got: {'DOWN',#Ref<[0-9.]*>,process,<[0-9.]*>,normal}$" "$tmp/r.out"; }
downs_at_least() { [ "$(downs)" -ge "$1" ]; }
wait_until 5 downs_at_least 2 || fail "no DOWN of the processes spawned on erl"
before=$(downs)
r=$(erl_eval "$E" "P = spawn(fun() -> receive stop -> ok end end),
  {tmon, '$RN'} ! {monitor, P, self()},
  R = receive M -> M after 5000 -> timeout end, P ! stop, R.")
[ "$r" = "{ok,monitored}" ] || fail "tmon did not monitor: $r"
wait_until 5 downs_at_least $((before + 1)) ||
  fail "no DOWN normal in $(cat "$tmp/r.out")"
ok "edist process monitoring an erl process: $(grep DOWN "$tmp/r.out" | tail -1)"

# ... and noconnection when the erl node holding it is killed.
start_erl f "$F"
fpid=$LAST_PID
r=$(erl_eval "$F" "register(victim, spawn(fun() -> receive stop -> ok end end)),
  {tmon, '$RN'} ! {monitor, whereis(victim), self()},
  receive M -> M after 5000 -> timeout end.")
[ "$r" = "{ok,monitored}" ] || fail "tmon did not monitor on $F: $r"
nocon() { grep -c "^got: {'DOWN',#Ref<[0-9.]*>,process,<[0-9.]*>,noconnection}$" "$tmp/r.out"; }
nocon_at_least() { [ "$(nocon)" -ge "$1" ]; }
before=$(nocon)
kill -KILL "$fpid"
wait_until 10 nocon_at_least $((before + 1)) ||
  fail "no DOWN noconnection in $(cat "$tmp/r.out")"
ok "killing $F gives DOWN noconnection: $(grep noconnection "$tmp/r.out" | tail -1)"

r=$(erl_eval "$E" "{techo, '$RN'} ! {self(), still_here}, receive M -> M after 5000 -> timeout end.")
[ "$r" = "{ok,still_here}" ] || fail "edist node after the node down: $r"
ok "the edist node still serves erl afterwards"

r=$(erl_eval "$E" "rpc:call('$RN', t, segv, [], 10000).")
[ "$r" = "{ok,{badrpc,nodedown}}" ] || fail "rpc:call of t:segv: $r"
wait "$rpid"
status=$?
# Reaped: the exit trap must not kill whatever gets its PID next.
for i in "${!pids[@]}"; do [ "${pids[$i]}" = "$rpid" ] && unset 'pids[i]'; done
line="^edist: node $RN: process <0\.[0-9]*\.[0-9]*> running t:segv/0 crashed with SIGSEGV at address 0x0; "
[ "$(grep -c "$line" "$tmp/r.err")" = 1 ] && [ "$(grep -c 'crashed with' "$tmp/r.err")" = 1 ] ||
  fail "no single crash line naming t:segv/0: $(tail -5 "$tmp/r.err")"
# Under AddressSanitizer its handler takes the signal after our line,
# reports it and exits with 1, or aborts with abort_on_error=1.
[ "$status" = $((128 + 11)) ] ||
  { { [ "$status" = 1 ] || [ "$status" = $((128 + 6)) ]; } &&
    grep -q 'AddressSanitizer:DEADLYSIGNAL' "$tmp/r.err"; } ||
  fail "the edist node ended with status $status, not SIGSEGV"
ok "rpc:call of t:segv/0: $(grep "$line" "$tmp/r.err" | cut -c1-100)..., then the node dies of it"
done_ok
