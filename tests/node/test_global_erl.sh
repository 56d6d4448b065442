#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# global (OTP 25's name registry) between real erl nodes and two `edist
# node`s: global:sync() and global:register_name on erl complete; names
# registered on either side are found on all nodes and vanish when their
# process dies or their node is killed; BEAM nodes that connect only to
# an edist node meet each other and that node's peers.
#   test_global_erl.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

start_real_epmd
E=gle$$
N=gln$$
M=glm$$
start_erl e "$E"
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1
start_edist m --sname "$M" --cookie "$COOKIE" --listen-address 127.0.0.1
mpid=$LAST_PID

e_true() { [ "$(erl_eval "$E" "$1")" = "{ok,true}" ]; }
on() { echo "rpc:call('$1@$HOST', global, $2)"; }

r=$(erl_eval "$E" "{net_adm:ping('$N@$HOST'), net_adm:ping('$M@$HOST')}.")
[ "$r" = "{ok,{pong,pong}}" ] || fail "erl -> edist nodes: $r"
# global:sync() used to wait for as long as an edist node was connected.
r=$(erl_eval "$E" "{T, ok} = timer:tc(global, sync, []), T div 1000.")
ms=${r#\{ok,}; ms=${ms%\}}
[[ "$ms" =~ ^[0-9]+$ ]] && [ "$ms" -lt 5000 ] || fail "global:sync() on erl: $r"
ok "erl $E connected to edist $N and $M; global:sync() returned in $ms ms"

# Forged init_connects naming nodes the edist node is not connected to
# start no session: one would never end (no nodedown comes for it), and
# global:sync() there would wait for it forever.
r=$(erl_eval "$E" "[gen_server:cast({global_name_server, '$N@$HOST'},
    {init_connect, {8, make_ref()}, list_to_atom(\"gfake\" ++ integer_to_list(I) ++ \"@nowhere\"),
     {locker, no_longer_a_pid, [], self()}}) || I <- lists:seq(1, 3)],
  timer:sleep(300),
  rpc:call('$N@$HOST', global, sync, [], 8000).")
[ "$r" = "{ok,ok}" ] || fail "global:sync() on $N after forged init_connects: $r"
ok "init_connect for 3 nodes $N is not connected to: no session; global:sync() there returns"

# A node learned from a peer's new_nodes that cannot be reached leaves
# Known again, as global's sync_other does with its extra nodedown: it
# used to stay for good, tried on every lock and passed on to every peer.
known_has_fakes() {
  r=$(erl_eval "$E" "lists:any(fun(X) -> lists:member(X, ['gfake@nowhere', 'gfake2@$HOST']) end,
    element(2, gen_server:call({global_name_server, '$N@$HOST'}, known_nodes))).")
  [ "$r" = "{ok,true}" ]
}
known_lacks_fakes() { ! known_has_fakes; }
# (the call after the cast answers once the cast was taken: they are in)
r=$(erl_eval "$E" "gen_server:cast({global_name_server, '$N@$HOST'},
  {new_nodes, node(), [], [], [{'gfake@nowhere', 8}, {'gfake2@$HOST', 8}], []}),
  lists:member('gfake2@$HOST', element(2, gen_server:call({global_name_server, '$N@$HOST'}, known_nodes))).")
[ "$r" = "{ok,true}" ] || fail "new_nodes did not reach $N's Known: $r"
wait_until 10 known_lacks_fakes ||
  fail "$N keeps unreachable nodes in Known: $(erl_eval "$E" "gen_server:call({global_name_server, '$N@$HOST'}, known_nodes).")"
wait_until 5 grep -q "global: failed to connect to gfake2@$HOST" "$tmp/n.out" "$tmp/n.err" ||
  fail "no line about the unreachable node"
ok "nodes learned from new_nodes that cannot be reached leave Known, with a line"

# Names that come under a `global` lock no longer set do not stay
# (global's lock_still_set): a new_nodes delayed past its lock (its node
# went down and came back) installed names that no lock protected. Forged
# here, with a lock on $N set and ended from erl.
r=$(erl_eval "$E" "P = spawn(fun() -> receive stop -> ok end end), register(gstale, P),
  Me = self(),
  L = spawn(fun() -> Me ! {set, global:set_lock({global, lock_a}, ['$N@$HOST'], 0)},
                     receive stop -> ok end end),
  register(glocka, L),
  receive {set, S} -> S after 5000 -> timeout end.")
[ "$r" = "{ok,true}" ] || fail "set_lock({global, lock_a}) on $N from erl: $r"
# new_nodes inserting name $1 under lock {global, $2}; true when it stayed
# (the call after the cast answers once the cast was taken)
stale_nn() {
  erl_eval "$E" "gen_server:cast({global_name_server, '$N@$HOST'},
    {new_nodes, node(), [{insert, {$1, whereis(gstale), fun global:random_exit_name/3}}], [], [],
     [{vsn, 8}, {lock, {global, $2}}]}),
  {_, _} = gen_server:call({global_name_server, '$N@$HOST'}, known_nodes),
  $(on "$N" "whereis_name, [$1]") =:= whereis(gstale)."
}
r=$(stale_nn stale_b lock_b)
[ "$r" = "{ok,false}" ] || fail "ops under another holder's lock stayed: $r"
r=$(stale_nn stale_a lock_a)
[ "$r" = "{ok,true}" ] || fail "ops under the lock that is set did not stay: $r"
# the lock goes with its holder: what comes under it afterwards is stale
r=$(erl_eval "$E" "L = whereis(glocka), Ref = monitor(process, L), exit(L, kill),
  receive {'DOWN', Ref, _, _, _} -> ok end, timer:sleep(200),
  $(on "$N" "whereis_name, [stale_a]") =:= whereis(gstale).")
[ "$r" = "{ok,true}" ] || fail "the name stale_a after its lock's holder died: $r"
r=$(stale_nn stale_c lock_a)
[ "$r" = "{ok,false}" ] || fail "ops under a lock gone with its holder stayed: $r"
# a lock set and deleted in order ends that: ops under no lock stay again
r=$(erl_eval "$E" "{global:set_lock({global, lock_d}, ['$N@$HOST'], 0),
  global:del_lock({global, lock_d}, ['$N@$HOST'])}.")
[ "$r" = "{ok,{true,true}}" ] || fail "set_lock/del_lock {global, lock_d}: $r"
r=$(stale_nn stale_d lock_e)
[ "$r" = "{ok,true}" ] || fail "ops under no lock after an orderly del_lock did not stay: $r"
r=$(erl_eval "$E" "maps:get(global_stale_ops, rpc:call('$N@$HOST', edist, stats, [])).")
[ "$r" = "{ok,2}" ] || fail "global_stale_ops of $N: $r"
r=$(erl_eval "$E" "exit(whereis(gstale), kill), ok.")
stale_gone() { e_true "[N || N <- $(on "$N" "registered_names, []"), lists:member(N, [stale_a, stale_d])] =:= []."; }
wait_until 10 stale_gone || fail "stale_a, stale_d still on $N after their process ended"
ok "new_nodes ops under a global lock that is not set (another holder's, or gone with its holder) insert nothing; counted"

# edist's own registrar request is its node's callers' only.
r=$(erl_eval "$E" "{gen_server:call({global_name_server, '$N@$HOST'}, {registrar, register, sneaky, notapid}),
  $(on "$N" "whereis_name, [sneaky]")}.")
[ "$r" = "{ok,{badarg,undefined}}" ] || fail "registrar request from erl: $r"
ok "a registrar request from erl: badarg, nothing registered"

# Registered on erl, found on both edist nodes.
r=$(erl_eval "$E" "P = spawn(fun() -> receive stop -> ok end end), register(gholder, P),
  {T, yes} = timer:tc(global, register_name, [{todo_list, <<\"bob\">>}, P]), T div 1000.")
[[ "$r" =~ ^\{ok,[0-9]+\}$ ]] || fail "global:register_name on erl: $r"
ms=${r#\{ok,}; ms=${ms%\}}
for X in "$N" "$M"; do
  wait_until 10 e_true "$(on "$X" "whereis_name, [{todo_list, <<\"bob\">>}]") =:= whereis(gholder)." ||
    fail "$X does not find erl's name: $(erl_eval "$E" "$(on "$X" "whereis_name, [{todo_list, <<\"bob\">>}]").")"
done
ok "global:register_name on erl ($ms ms); whereis_name on both edist nodes finds it"

# Registered on edist, found on erl and on the other edist node.
r=$(erl_eval "$E" "rpc:call('$N@$HOST', edist_demo, global_register, [svc]).")
[ "$r" = "{ok,yes}" ] || fail "edist_demo:global_register on $N: $r"
r=$(erl_eval "$E" "rpc:call('$M@$HOST', edist_demo, global_register, [svc]).")
[ "$r" = "{ok,no}" ] || fail "the same name again, from $M: $r"
e_true "node(global:whereis_name(svc)) =:= '$N@$HOST'." ||
  fail "erl does not find svc: $(erl_eval "$E" "global:whereis_name(svc).")"
e_true "$(on "$M" "whereis_name, [svc]") =:= global:whereis_name(svc)." || fail "$M does not find svc"
e_true "lists:sort(global:registered_names()) =:= lists:sort($(on "$M" "registered_names, []"))." ||
  fail "registered_names differ: $(erl_eval "$E" "{global:registered_names(), $(on "$M" "registered_names, []")}.")"
ok "edist_demo:global_register(svc) on $N: erl and $M find it; a second registration says no"

# global:send from erl and from edist reaches the holder.
r=$(erl_eval "$E" "P = whereis(gholder), erlang:trace(P, true, ['receive']),
  P2 = global:send({todo_list, <<\"bob\">>}, hello), P2 =:= P.")
[ "$r" = "{ok,true}" ] || fail "global:send on erl: $r"
r=$(erl_eval "$E" "$(on "$N" "send, [{todo_list, <<\"bob\">>}, hi]") =:= whereis(gholder).")
[ "$r" = "{ok,true}" ] || fail "global:send through $N: $r"
r=$(erl_eval "$E" "element(1, $(on "$N" "send, [nobody, hi]")).")
[ "$r" = "{ok,badrpc}" ] || fail "global:send to no one through $N: $r"
ok "global:send to the erl name from erl and through edist; to an unknown name: an exit"

# The holder dies: the name is gone everywhere.
erl_eval "$E" "exit(whereis(gholder), kill)." >/dev/null
for X in "$N" "$M"; do
  wait_until 10 e_true "$(on "$X" "whereis_name, [{todo_list, <<\"bob\">>}]") =:= undefined." ||
    fail "the dead erl holder's name is still on $X"
done
erl_eval "$E" "exit(global:whereis_name(svc), kill)." >/dev/null
wait_until 10 e_true "global:whereis_name(svc) =:= undefined andalso $(on "$M" "whereis_name, [svc]") =:= undefined." ||
  fail "the dead edist holder's name is still listed: $(erl_eval "$E" "global:whereis_name(svc).")"
ok "a holder that dies (erl's, edist's) loses its name on every node"

# global:resolve_it/4 on an edist node runs global's own methods given as
# external funs, as the node of a clashing pid is asked to by global.
r=$(erl_eval "$E" "W = fun() -> receive M -> exit({got, M}) after 5000 -> exit(nothing) end end,
  {P1, R1} = spawn_monitor(W), {P2, R2} = spawn_monitor(W),
  None = rpc:call('$N@$HOST', global, resolve_it, [fun global:notify_all_name/3, clash1, P1, P2]),
  D1 = receive {'DOWN', R1, _, _, X1} -> X1 end, D2 = receive {'DOWN', R2, _, _, X2} -> X2 end,
  {None, D1 =:= {got, {global_name_conflict, clash1, P2}}, D2 =:= {got, {global_name_conflict, clash1, P1}}}.")
[ "$r" = "{ok,{none,true,true}}" ] || fail "resolve_it notify_all_name on $N: $r"
r=$(erl_eval "$E" "W = fun() -> receive M -> exit({got, M}) after 1000 -> exit(nothing) end end,
  {P1, R1} = spawn_monitor(W), {P2, R2} = spawn_monitor(W),
  Keep = rpc:call('$N@$HOST', global, resolve_it, [fun global:random_notify_name/3, clash2, P1, P2]),
  Told = [X || {R, X} <- [receive {'DOWN', R1, _, _, X1} -> {R1, X1} end,
                          receive {'DOWN', R2, _, _, X2} -> {R2, X2} end], X =/= nothing],
  {lists:member(Keep, [P1, P2]), Told}.")
[ "$r" = "{ok,{true,[{got,{global_name_conflict,clash2}}]}}" ] || fail "resolve_it random_notify_name on $N: $r"
ok "global:resolve_it on edist: notify_all_name tells both and keeps none; random_notify_name keeps one and tells the other"

# unregister and re_register through edist.
r=$(erl_eval "$E" "P = spawn(fun() -> receive stop -> ok end end),
  {$(on "$M" "register_name, [un, P]"), $(on "$N" "re_register_name, [un, P]"),
   global:whereis_name(un) =:= P, $(on "$N" "unregister_name, [un]"), global:whereis_name(un)}.")
[ "$r" = "{ok,{yes,yes,true,ok,undefined}}" ] || fail "register/re_register/unregister via edist: $r"
ok "global:register_name, re_register_name and unregister_name through edist reach erl"

# A node killed: its names go.
r=$(erl_eval "$E" "rpc:call('$M@$HOST', edist_demo, global_register, [onm]).")
[ "$r" = "{ok,yes}" ] || fail "register on $M: $r"
kill -KILL "$mpid"
wait_until 20 e_true "global:whereis_name(onm) =:= undefined andalso $(on "$N" "whereis_name, [onm]") =:= undefined." ||
  fail "$M's name is still listed after the node was killed"
ok "edist $M killed: its name is gone from erl and from $N"

# The mesh: two fresh erl nodes that each connect to edist N only meet
# each other and E (global's new_nodes), as between BEAM nodes.
F=glf$$
G=glg$$
start_erl f "$F"
start_erl g "$G"
r=$(erl_eval "$F" "net_adm:ping('$N@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "$F -> $N: $r"
r=$(erl_eval "$G" "net_adm:ping('$N@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "$G -> $N: $r"
f_true() { [ "$(erl_eval "$F" "$1")" = "{ok,true}" ]; }
wait_until 20 f_true "lists:member('$G@$HOST', nodes()) andalso lists:member('$E@$HOST', nodes())." ||
  fail "$F did not meet $G and $E: $(erl_eval "$F" "nodes().")"
r=$(erl_eval "$G" "global:sync(), lists:sort(nodes()) =:= lists:sort(['$E@$HOST', '$F@$HOST', '$N@$HOST']).")
[ "$r" = "{ok,true}" ] || fail "$G's nodes(): $(erl_eval "$G" "nodes().")"
r=$(erl_eval "$F" "P = spawn(fun() -> receive stop -> ok end end), register(fholder, P), global:register_name(fname, P).")
[ "$r" = "{ok,yes}" ] || fail "register on $F: $r"
wait_until 10 e_true "global:whereis_name(fname) =:= rpc:call('$F@$HOST', erlang, whereis, [fholder])." ||
  fail "erl $E does not find $F's name"
ok "erl $F and $G, each connected to edist $N only, meet each other and $E; names reach all"

# Bad input to global_name_server: ignored, the node and global go on.
r=$(erl_eval "$E" "G = {global_name_server, '$N@$HOST'},
  [G ! X || X <- [garbage, {'\$gen_cast', {exchange, x, notalist, [], 1}},
                  {'\$gen_cast', {init_connect, bad, '$E@$HOST', []}},
                  {'\$gen_cast', {resolved, a, b, c, d, e, f}},
                  {'\$gen_cast', {new_nodes, '$E@$HOST', [{insert, bad}], [], [x, {y}], []}},
                  {lost_connection, a, b, c, d}, {init_connect_ack, 1, 2, 3}]],
  {gen_server:call(G, {whereis, nobody}), $(on "$N" "whereis_name, [fname]") =:= global:whereis_name(fname)}.")
[ "$r" = "{ok,{undefined,true}}" ] || fail "global on $N after bad input: $r"
ok "malformed messages to global_name_server on $N are ignored; it still answers"

# global:trans on erl with edist nodes known: the lock is taken on them too.
r=$(erl_eval "$E" "{T, 42} = timer:tc(global, trans, [{res, self()}, fun() -> 42 end]), T div 1000.")
[[ "$r" =~ ^\{ok,[0-9]+\}$ ]] || fail "global:trans on erl: $r"
ms=${r#\{ok,}; ms=${ms%\}}
ok "global:trans on erl with edist nodes in the cluster completes ($ms ms)"

# Two edist nodes alone: net_adm:ping through edist, names synced both ways.
P=glp$$
Q=glq$$
start_edist p --sname "$P" --cookie "$COOKIE" --listen-address 127.0.0.1
start_edist q --sname "$Q" --cookie "$COOKIE" --listen-address 127.0.0.1
r=$("$EDIST" rpc "$P@$HOST" edist_demo global_register '[onp]' --cookie "$COOKIE")
[ "$r" = "yes" ] || fail "register on $P: $r"
r=$("$EDIST" rpc "$Q@$HOST" edist_demo global_register '[onq]' --cookie "$COOKIE")
[ "$r" = "yes" ] || fail "register on $Q: $r"
r=$("$EDIST" rpc "$Q@$HOST" net_adm ping "['$P@$HOST']" --cookie "$COOKIE")
[ "$r" = "pong" ] || fail "$Q pings $P: $r"
q_has() { "$EDIST" rpc "$Q@$HOST" global registered_names '[]' --cookie "$COOKIE" | grep -q "$1"; }
wait_until 15 q_has onp || fail "$Q does not see $P's name: $("$EDIST" rpc "$Q@$HOST" global registered_names '[]' --cookie "$COOKIE")"
r=$("$EDIST" rpc "$P@$HOST" global sync '[]' --cookie "$COOKIE")
[ "$r" = "ok" ] || fail "global:sync on $P: $r"
r=$("$EDIST" rpc "$P@$HOST" global registered_names '[]' --cookie "$COOKIE")
[[ "$r" == *onp* && "$r" == *onq* ]] || fail "$P's names: $r"
ok "edist $P and $Q alone (net_adm:ping through edist) sync: each finds the other's name"

# A clash when partitions meet: the pid on the node with the smaller name
# stays, the other is killed, every node agrees. First the edist node
# resolves (its name is smaller), then the erl node does.
clash() { # ERLNAME EDISTNAME
  local en=$1 dn=$2 tag=c$1
  start_edist "$tag" --sname "$dn" --cookie "$COOKIE" --listen-address 127.0.0.1
  start_erl "$tag"e "$en"
  r=$("$EDIST" rpc "$dn@$HOST" edist_demo global_register '[clash]' --cookie "$COOKIE")
  [ "$r" = "yes" ] || fail "register clash on $dn: $r"
  r=$(erl_eval "$en" "P = spawn(fun() -> receive stop -> ok end end), register(clasher, P),
    yes = global:register_name(clash, P), pong = net_adm:ping('$dn@$HOST'), global:sync(),
    W = global:whereis_name(clash), {node(W), is_process_alive(P)}.")
  local winner=$en
  [[ "$dn" < "$en" ]] && winner=$dn
  local alive=false
  [ "$winner" = "$en" ] && alive=true
  [ "$r" = "{ok,{$winner@$HOST,$alive}}" ] || fail "clash $en vs $dn: $r"
  c_true() { [ "$("$EDIST" rpc "$dn@$HOST" erlang node '[]' --cookie "$COOKIE")" = "$dn@$HOST" ] &&
             [ "$(erl_eval "$en" "rpc:call('$dn@$HOST', global, whereis_name, [clash]) =:= global:whereis_name(clash).")" = "{ok,true}" ]; }
  wait_until 10 c_true || fail "clash $en vs $dn: the nodes disagree"
  ok "a clash between erl $en and edist $dn: the pid on $winner stays, the other was killed, both agree"
}
clash glj$$ gla$$
clash glb$$ glk$$

# A clash whose name carries a resolve fun of the user's, and the edist
# node resolves it: as global's resolver, it asks global:resolve_it on the
# node of its pid, where the fun runs. The fun here keeps the other pid
# (on the node with the greater name, which random_exit_name would kill)
# and kills nothing. edist used to stand random_exit_name in for it.
RN=grb$$  # edist, the smallest name: it resolves
RY=grc$$  # erl, with RN: its pid holds the name with the fun
RX=grd$$  # erl, alone: its pid holds the name too
start_edist rn --sname "$RN" --cookie "$COOKIE" --listen-address 127.0.0.1
start_erl ry "$RY"
start_erl rx "$RX"
r=$(erl_eval "$RY" "Probe = spawn(fun() -> (fun L(A) -> receive {get, F} -> F ! A, L(A); M -> L([M | A]) end end)([]) end),
  register(probe, Probe),
  P = spawn(fun() -> receive stop -> ok end end), register(holder, P),
  pong = net_adm:ping('$RN@$HOST'), global:sync(),
  Keep = fun(Name, P1, P2) -> probe ! {ran, Name},
           if node(P1) =/= node() -> P1; true -> P2 end end,
  P2 = spawn(fun() -> receive stop -> ok end end), register(holder2, P2),
  P3 = spawn(fun() -> receive stop -> ok end end), register(holder3, P3),
  Crash = fun(_, _, _) -> erlang:error(nope) end,
  Neither = fun(_, _, _) -> neither end,
  {global:register_name(cfun, P, Keep), global:register_name(cfun2, P2, Crash),
   global:register_name(cfun3, P3, Neither)}.")
[ "$r" = "{ok,{yes,yes,yes}}" ] || fail "register cfun, cfun2, cfun3 on $RY: $r"
r=$(erl_eval "$RX" "P = spawn(fun() -> receive stop -> ok end end), register(holder, P),
  P2 = spawn(fun() -> receive stop -> ok end end), register(holder2, P2),
  P3 = spawn(fun() -> receive stop -> ok end end), register(holder3, P3),
  yes = global:register_name(cfun, P), yes = global:register_name(cfun2, P2),
  yes = global:register_name(cfun3, P3),
  pong = net_adm:ping('$RN@$HOST'), global:sync(), ok.")
[ "$r" = "{ok,ok}" ] || fail "register cfun on $RX, meeting $RN: $r"
cfun_agreed() {
  local w
  w=$(erl_eval "$RX" "W = global:whereis_name(cfun), {W =:= whereis(holder),
    rpc:call('$RN@$HOST', global, whereis_name, [cfun]) =:= W,
    rpc:call('$RY@$HOST', global, whereis_name, [cfun]) =:= W}.")
  [ "$w" = "{ok,{true,true,true}}" ]
}
wait_until 15 cfun_agreed ||
  fail "cfun after the clash: $(erl_eval "$RX" "{global:whereis_name(cfun), whereis(holder), rpc:call('$RN@$HOST', global, whereis_name, [cfun])}.")"
r=$(erl_eval "$RY" "probe ! {get, self()}, receive A -> {A, is_pid(whereis(holder))} after 2000 -> none end.")
[ "$r" = "{ok,{[{ran,cfun}],true}}" ] || fail "the fun on $RY: $r"
# a fun that fails: resolve_it's catch makes it a badrpc, which keeps
# the other pid (as global's exchange_names); one that answers neither
# pid nor none: the name goes everywhere
cfun23() {
  [ "$(erl_eval "$RX" "{global:whereis_name(cfun2) =:= whereis(holder2),
    rpc:call('$RN@$HOST', global, whereis_name, [cfun2]) =:= whereis(holder2),
    rpc:call('$RY@$HOST', global, whereis_name, [cfun2]) =:= whereis(holder2),
    global:whereis_name(cfun3), rpc:call('$RN@$HOST', global, whereis_name, [cfun3]),
    rpc:call('$RY@$HOST', global, whereis_name, [cfun3])}.")" = "{ok,{true,true,true,undefined,undefined,undefined}}" ]
}
wait_until 10 cfun23 || fail "cfun2, cfun3 after their funs: $(erl_eval "$RX" "{global:whereis_name(cfun2), whereis(holder2), rpc:call('$RN@$HOST', global, whereis_name, [cfun2]), [rpc:call(N, global, whereis_name, [cfun3]) || N <- ['$RN@$HOST', '$RY@$HOST', node()]]}.")"
ok "a clash resolved by edist $RN with a fun of the user's: it ran on erl $RY, kept $RX's pid on all three nodes, killed nothing; a fun that fails: the other pid keeps it; one that answers neither: the name goes"

# A partition of three nodes, made by one disconnect. With
# prevent_overlapping_partitions (OTP 25's default) both ends report the
# lost connection to the third node, X2, which drops the node the first
# report names (and maybe the other too): X1 and Z stay apart, and no
# partition overlaps (X2 is never with both), whichever report arrives
# first (as between BEAM nodes; seen both ways here). The same name is
# registered on both sides; the nodes meet again: exactly one pid keeps it
# (the one on the node with the smallest name), the other is killed, all
# agree.
X1=glx$$
X2=gly$$
Z=glz$$
start_erl x1 "$X1"
start_erl x2 "$X2"
start_edist z --sname "$Z" --cookie "$COOKIE" --listen-address 127.0.0.1
r=$(erl_eval "$X1" "{net_adm:ping('$Z@$HOST'), rpc:call('$X2@$HOST', net_adm, ping, ['$Z@$HOST'])}.")
[ "$r" = "{ok,{pong,pong}}" ] || fail "three-node set-up: $r"
x1_true() { [ "$(erl_eval "$X1" "$1")" = "{ok,true}" ]; }
wait_until 20 x1_true "global:sync() =:= ok andalso lists:sort(nodes()) =:= ['$X2@$HOST', '$Z@$HOST']." ||
  fail "$X1's nodes(): $(erl_eval "$X1" "nodes().")"
erl_eval "$X1" "erlang:disconnect_node('$Z@$HOST')." >/dev/null
# apart: X1 and Z not connected either way, and X2 not with both
apart() {
  local zn x1 x2
  zn=$("$EDIST" rpc "$Z@$HOST" erlang nodes '[]' --cookie "$COOKIE") || return 1
  x1=$(erl_eval "$X1" "lists:member('$Z@$HOST', nodes()).")
  x2=$(erl_eval "$X2" "{lists:member('$X1@$HOST', nodes()), lists:member('$Z@$HOST', nodes())}.")
  local z_x2=no x2_z=no # both ends agree on X2-Z
  [[ "$zn" == *"$X2@"* ]] && z_x2=yes
  [[ "$x2" == *",true}}" ]] && x2_z=yes
  [[ "$zn" != *"$X1@"* ]] && [ "$x1" = "{ok,false}" ] && [ "$x2" != "{ok,{true,true}}" ] &&
    [ "$z_x2" = "$x2_z" ]
}
wait_until 20 apart || fail "not apart: $Z sees $("$EDIST" rpc "$Z@$HOST" erlang nodes '[]' --cookie "$COOKIE"), $X1 $(erl_eval "$X1" "nodes()."), $X2 $(erl_eval "$X2" "nodes().")"
ok "$X1 disconnects edist $Z: lost_connection / remove_connection leave no overlapping partition ($Z with: $("$EDIST" rpc "$Z@$HOST" erlang nodes '[]' --cookie "$COOKIE"))"
r=$(erl_eval "$X1" "P = spawn(fun() -> receive stop -> ok end end), register(px, P), global:register_name(pname, P).")
[ "$r" = "{ok,yes}" ] || fail "register on $X1: $r"
r=$("$EDIST" rpc "$Z@$HOST" edist_demo global_register '[pname]' --cookie "$COOKIE")
[ "$r" = "yes" ] || fail "register on $Z: $r"
r=$(erl_eval "$X2" "{net_adm:ping('$Z@$HOST'), net_adm:ping('$X1@$HOST')}.")
[ "$r" = "{ok,{pong,pong}}" ] || fail "heal: $r"
healed() {
  x1_true "ok = global:sync(), W = global:whereis_name(pname), W =:= whereis(px) andalso
    rpc:call('$X2@$HOST', global, whereis_name, [pname]) =:= W andalso
    rpc:call('$Z@$HOST', global, whereis_name, [pname]) =:= W andalso lists:member('$Z@$HOST', nodes())."
}
wait_until 20 healed || fail "after the heal: $(erl_eval "$X1" "{global:whereis_name(pname), rpc:call('$X2@$HOST', global, whereis_name, [pname]), rpc:call('$Z@$HOST', global, whereis_name, [pname]), nodes()}.")"
r=$("$EDIST" rpc "$Z@$HOST" global registered_names '[]' --cookie "$COOKIE")
[ "$r" = "[pname]" ] || fail "$Z's names: $r"
ok "healed: pname stays with $X1's pid on all three nodes (edist $Z's holder lost it), and they are one mesh again"

# SIGSTOP: the names of a node that stops answering go within the tick time.
S=gls$$
T=glt$$
U=glu$$
start_erl s "$S" -kernel net_ticktime 4
spid=$LAST_PID
start_edist t --sname "$T" --cookie "$COOKIE" --listen-address 127.0.0.1 --ticktime 4
start_edist u --sname "$U" --cookie "$COOKIE" --listen-address 127.0.0.1 --ticktime 4
upid=$LAST_PID
r=$(erl_eval "$S" "P = spawn(fun() -> receive stop -> ok end end), register(sholder, P),
  {net_adm:ping('$T@$HOST'), net_adm:ping('$U@$HOST'), global:register_name(s_name, P),
   rpc:call('$U@$HOST', edist_demo, global_register, [u_name])}.")
[ "$r" = "{ok,{pong,pong,yes,yes}}" ] || fail "set-up of the SIGSTOP case: $r"
s_true() { [ "$(erl_eval "$S" "$1")" = "{ok,true}" ]; }
wait_until 10 s_true "$(on "$T" "whereis_name, [u_name]") =/= undefined andalso $(on "$T" "whereis_name, [s_name]") =/= undefined." ||
  fail "$T does not see both names"
kill -STOP "$upid"
t0=$(date +%s)
wait_until 20 s_true "global:whereis_name(u_name) =:= undefined andalso $(on "$T" "whereis_name, [u_name]") =:= undefined." ||
  fail "the name of the stopped edist $U is still listed"
t1=$(date +%s)
kill -STOP "$spid"
t_none() { [ "$("$EDIST" rpc "$T@$HOST" global whereis_name '[s_name]' --cookie "$COOKIE")" = undefined ]; }
wait_until 20 t_none || fail "the name of the stopped erl $S is still listed on $T"
t2=$(date +%s)
kill -CONT "$upid" "$spid"
ok "SIGSTOP (tick time 4 s): edist $U's name gone from erl and $T in $((t1 - t0)) s; erl $S's gone from $T in $((t2 - t1)) s"
done_ok
