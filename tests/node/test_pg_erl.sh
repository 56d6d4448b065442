#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pg (OTP's default scope) between real erl nodes and two `edist node`s:
# members joined on either side are seen on every node; a member that
# dies leaves everywhere; the members of a node that is killed vanish.
#   test_pg_erl.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

start_real_epmd
E=pge$$
F=pgf$$
N=pgn$$
M=pgm$$
start_erl e "$E" -kernel start_pg true
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1
start_edist m --sname "$M" --cookie "$COOKIE" --listen-address 127.0.0.1
r=$(erl_eval "$E" "{net_adm:ping('$N@$HOST'), net_adm:ping('$M@$HOST')}.")
[ "$r" = "{ok,{pong,pong}}" ] || fail "erl -> edist nodes: $r"
ok "erl $E (pg started) connected to edist nodes $N and $M"

# e_true EXPR: the expression evaluates to true on erl E.
e_true() { [ "$(erl_eval "$E" "$1")" = "{ok,true}" ]; }
on() { echo "rpc:call('$1@$HOST', pg, $2)"; }

# An edist member, joined through edist_demo:pg_join/1, seen on erl and on
# the other edist node.
r=$(erl_eval "$E" "P = rpc:call('$N@$HOST', edist_demo, pg_join, [g1]), {is_pid(P), node(P)}.")
[ "$r" = "{ok,{true,$N@$HOST}}" ] || fail "edist_demo:pg_join on $N: $r"
wait_until 10 e_true "[node(P) || P <- pg:get_members(g1)] =:= ['$N@$HOST']." ||
  fail "erl does not see the edist member: $(erl_eval "$E" "pg:get_members(g1).")"
ok "a member joined on edist $N is in erl's pg:get_members(g1)"
wait_until 10 e_true "$(on "$M" "get_members, [g1]") =:= pg:get_members(g1)." ||
  fail "edist $M does not see it: $(erl_eval "$E" "$(on "$M" "get_members, [g1]").")"
e_true "$(on "$N" "get_local_members, [g1]") =:= pg:get_members(g1) andalso
        $(on "$M" "get_local_members, [g1]") =:= []." || fail "local members wrong"
ok "... and on edist $M (edist <-> edist); get_local_members right on both"

# An erl member seen on both edist nodes; joined twice, listed twice.
r=$(erl_eval "$E" "P = spawn(fun() -> receive stop -> ok end end), register(pgmember, P),
  ok = pg:join(g2, P), ok = pg:join(g2, [P]), ok.")
[ "$r" = "{ok,ok}" ] || fail "pg:join on erl: $r"
for X in "$N" "$M"; do
  wait_until 10 e_true "$(on "$X" "get_members, [g2]") =:= [whereis(pgmember), whereis(pgmember)]." ||
    fail "$X does not see the erl member twice: $(erl_eval "$E" "$(on "$X" "get_members, [g2]").")"
done
e_true "lists:sort($(on "$N" "which_groups, []")) =:= [g1, g2]." ||
  fail "which_groups on $N: $(erl_eval "$E" "$(on "$N" "which_groups, []").")"
ok "an erl member (joined twice) is listed twice on both edist nodes; which_groups [g1, g2]"

r=$(erl_eval "$E" "ok = pg:leave(g2, whereis(pgmember)), ok.")
wait_until 10 e_true "$(on "$N" "get_members, [g2]") =:= [whereis(pgmember)]." ||
  fail "leave of one of two joins: $(erl_eval "$E" "$(on "$N" "get_members, [g2]").")"
erl_eval "$E" "exit(whereis(pgmember), kill)." >/dev/null
for X in "$N" "$M"; do
  wait_until 10 e_true "$(on "$X" "get_members, [g2]") =:= []." ||
    fail "the dead erl member is still on $X"
done
ok "pg:leave/2 of one join and then the member's death reach both edist nodes"

# A list joined at once is listed ahead of the others, in its own order,
# as pg.erl lists it (edist listed it reversed): joined on erl, and on
# edist $N through pg:join/2 with two of its own pids.
r=$(erl_eval "$E" "[A, B, C] = [spawn(fun() -> receive stop -> ok end end) || _ <- [1, 2, 3]],
  register(gorda, A), register(gordb, B), register(gordc, C),
  ok = pg:join(gord, C), ok = pg:join(gord, [A, B]), pg:get_members(gord) =:= [A, B, C].")
[ "$r" = "{ok,true}" ] || fail "pg:join of a list on erl: $r"
for X in "$N" "$M"; do
  wait_until 10 e_true "$(on "$X" "get_members, [gord]") =:= pg:get_members(gord)." ||
    fail "$X lists a joined list otherwise: $(erl_eval "$E" "{pg:get_members(gord), $(on "$X" "get_members, [gord]")}.")"
done
r=$(erl_eval "$E" "P1 = rpc:call('$N@$HOST', edist_demo, pg_join, [gordx]),
  P2 = rpc:call('$N@$HOST', edist_demo, pg_join, [gordx]),
  ok = rpc:call('$N@$HOST', pg, join, [gord2, [P1, P2]]),
  {$(on "$N" "get_members, [gord2]") =:= [P1, P2], P1, P2}.")
[[ "$r" =~ ^\{ok,\{true, ]] || fail "pg:join of a list on $N: $r"
wait_until 10 e_true "$(on "$N" "get_members, [gord2]") =:= pg:get_members(gord2)." ||
  fail "erl lists $N's joined list otherwise: $(erl_eval "$E" "{pg:get_members(gord2), $(on "$N" "get_members, [gord2]")}.")"
erl_eval "$E" "[exit(whereis(X), kill) || X <- [gorda, gordb, gordc]], [exit(P, kill) || P <- pg:get_members(gordx)]." >/dev/null
ok "a list joined at once is listed first in its order, on erl and on edist, everywhere"

# An edist member killed from erl: its node broadcasts the leave.
erl_eval "$E" "[P] = pg:get_members(g1), exit(P, kill)." >/dev/null
wait_until 10 e_true "pg:get_members(g1) =:= [] andalso $(on "$M" "get_members, [g1]") =:= []." ||
  fail "the dead edist member is still listed: $(erl_eval "$E" "pg:get_members(g1).")"
ok "an edist member killed: gone from erl's and the other edist node's view"

# Joins on the edist side through pg:join/2 (rpc), and errors.
r=$(erl_eval "$E" "P = rpc:call('$N@$HOST', edist_demo, pg_join, [{g, 3}]),
  {rpc:call('$N@$HOST', pg, join, [{g, 3}, P]),
   rpc:call('$N@$HOST', pg, leave, [other, P]),
   element(1, rpc:call('$N@$HOST', pg, join, [{g, 3}, self()]))}.")
[ "$r" = "{ok,{ok,not_joined,badrpc}}" ] || fail "pg:join/leave through rpc on $N: $r"
wait_until 10 e_true "length(pg:get_members({g, 3})) =:= 2." || fail "erl sees {g, 3}: $(erl_eval "$E" "pg:get_members({g, 3}).")"
ok "pg:join/2 and pg:leave/2 on edist (not_joined; a remote pid is refused); erl sees both joins"

# A second erl node's member; the node is killed: it vanishes from edist.
start_erl f "$F" -kernel start_pg true
fpid=$LAST_PID
r=$(erl_eval "$F" "pong = net_adm:ping('$N@$HOST'), P = spawn(fun() -> receive stop -> ok end end),
  register(fmember, P), pg:join(g4, P).")
[ "$r" = "{ok,ok}" ] || fail "join on $F: $r"
wait_until 10 e_true "length($(on "$N" "get_members, [g4]")) =:= 1." ||
  fail "$N does not see $F's member"
kill -KILL "$fpid"
wait_until 20 e_true "$(on "$N" "get_members, [g4]") =:= [] andalso $(on "$M" "get_members, [g4]") =:= []." ||
  fail "$F's member still listed after the node was killed"
ok "erl $F killed: its member is gone from both edist nodes"

# A named scope (pg:start/1 on both sides): its members are its own; the
# default scope does not see them.
r=$(erl_eval "$E" "{ok, _} = pg:start(trading), {rpc:call('$N@$HOST', pg, start, [trading]),
  rpc:call('$M@$HOST', pg, start, [trading])}.")
[[ "$r" == "{ok,{{ok,"*",{ok,"* ]] || fail "pg:start(trading) on erl and edist: $r"
r=$(erl_eval "$E" "element(1, element(2, rpc:call('$N@$HOST', pg, start, [trading]))).")
[ "$r" = "{ok,already_started}" ] || fail "pg:start twice: $r"
r=$(erl_eval "$E" "P = rpc:call('$N@$HOST', edist_demo, pg_join, [unused]),
  rpc:call('$N@$HOST', pg, leave, [unused, P]),
  {rpc:call('$N@$HOST', pg, join, [trading, desk, P]), P =:= P}.")
[ "$r" = "{ok,{ok,true}}" ] || fail "pg:join/3 on $N: $r"
wait_until 10 e_true "length(pg:get_members(trading, desk)) =:= 1 andalso
  $(on "$M" "get_members, [trading, desk]") =:= pg:get_members(trading, desk) andalso
  pg:get_members(desk) =:= [] andalso $(on "$N" "which_groups, [trading]") =:= [desk]." ||
  fail "scope trading: $(erl_eval "$E" "{pg:get_members(trading, desk), $(on "$M" "get_members, [trading, desk]")}.")"
r=$(erl_eval "$E" "Q = spawn(fun() -> receive stop -> ok end end), register(tq, Q),
  ok = pg:join(trading, desk, Q), ok.")
wait_until 10 e_true "length($(on "$N" "get_members, [trading, desk]")) =:= 2 andalso
  $(on "$N" "get_local_members, [trading, desk]") =/= []." || fail "$N does not see erl's join in trading"
ok "named scope trading (pg:start/1 on erl and both edist nodes): joins seen in it, not in the default scope"

# Monitors (OTP 25.1's pg:monitor/2 and monitor_scope/1) on an edist scope:
# a process on erl subscribes to the edist node's scope and is told of
# joins and leaves made on erl, on the other edist node and on its own.
r=$(erl_eval "$E" "Self = self(),
  W = spawn(fun() ->
        {Ref, Members} = gen_server:call({trading, '$N@$HOST'}, {monitor, desk}),
        {SRef, Map} = gen_server:call({trading, '$N@$HOST'}, monitor),
        Self ! {subscribed, length(Members), maps:keys(Map)},
        Loop = fun L(Acc) -> receive
                 {get, F} -> F ! {events, lists:reverse(Acc)}, L(Acc);
                 {R, Act, G, Ps} when R =:= Ref; R =:= SRef ->
                     L([{if R =:= Ref -> g; true -> s end, Act, G, length(Ps)} | Acc])
               end end,
        Loop([]) end),
  register(pgwatch, W),
  receive {subscribed, N, Ks} -> {N, Ks} after 5000 -> timeout end.")
[ "$r" = "{ok,{2,[desk]}}" ] || fail "monitor on $N's scope: $r"
erl_eval "$E" "Q2 = spawn(fun() -> receive stop -> ok end end), register(tq2, Q2), ok = pg:join(trading, desk, Q2),
  ok = pg:join(trading, other, Q2)." >/dev/null
erl_eval "$E" "P = rpc:call('$M@$HOST', edist_demo, pg_join, [unused2]), ok = rpc:call('$M@$HOST', pg, join, [trading, desk, P])." >/dev/null
erl_eval "$E" "exit(whereis(tq2), kill)." >/dev/null
want="[{g,join,desk,1},{s,join,desk,1},{s,join,other,1},{g,join,desk,1},{s,join,desk,1},{g,leave,desk,1},{s,leave,desk,1},{s,leave,other,1}]"
events() { erl_eval "$E" "pgwatch ! {get, self()}, receive {events, Ev} -> lists:sort(Ev) after 2000 -> timeout end."; }
sorted_want=$(erl_eval "$E" "lists:sort($want).")
events_ok() { [ "$(events)" = "$sorted_want" ]; }
wait_until 10 events_ok ||
  fail "monitor events: $(events), want (sorted) $want"
r=$(erl_eval "$E" "gen_server:call({trading, '$N@$HOST'}, {demonitor, make_ref()}).")
[ "$r" = "{ok,false}" ] || fail "demonitor of an unknown ref: $r"
ok "pg monitors on edist $N (group and scope): joins and leaves from erl, edist $M and a death, each told once"

# A DOWN with a ref pg did not make, naming a local member or a peer's
# scope, changes nothing (pg.erl matches the ref too); before, it dropped
# the member everywhere, or every member of that peer and the peer itself.
r=$(erl_eval "$E" "P = rpc:call('$N@$HOST', edist_demo, pg_join, [g5]),
  Q = spawn(fun() -> receive stop -> ok end end), register(g5q, Q), ok = pg:join(g5, Q),
  P =/= undefined.")
[ "$r" = "{ok,true}" ] || fail "g5 joins: $r"
wait_until 10 e_true "length($(on "$N" "get_members, [g5]")) =:= 2." || fail "$N does not see g5"
erl_eval "$E" "[P] = $(on "$N" "get_local_members, [g5]"),
  {pg, '$N@$HOST'} ! {'DOWN', make_ref(), process, P, forged},
  {pg, '$N@$HOST'} ! {'DOWN', make_ref(), process, whereis(pg), forged}, ok." >/dev/null
sleep 0.5
r=$(erl_eval "$E" "Q2 = spawn(fun() -> receive stop -> ok end end), register(g5q2, Q2),
  ok = pg:join(g5, Q2), ok.")
wait_until 10 e_true "length($(on "$N" "get_members, [g5]")) =:= 3 andalso length(pg:get_members(g5)) =:= 3." ||
  fail "forged DOWNs changed $N's view: $(erl_eval "$E" "{$(on "$N" "get_members, [g5]"), pg:get_members(g5)}.")"
ok "forged DOWNs (a member, erl's scope) sent to $N's pg change nothing; erl's next join still reaches it"

# A local pid that has just ended can be joined (pg.erl checks its node
# only); its monitor's DOWN takes it out again. Before: badarg.
r=$(erl_eval "$E" "P = rpc:call('$N@$HOST', edist_demo, pg_join, [unused3]), exit(P, kill), timer:sleep(100),
  rpc:call('$N@$HOST', pg, join, [g6, P]).")
[ "$r" = "{ok,ok}" ] || fail "join of a dead local pid on $N: $r"
wait_until 10 e_true "$(on "$N" "get_members, [g6]") =:= [] andalso pg:get_members(g6) =:= []." ||
  fail "the dead pid stays in g6: $(erl_eval "$E" "$(on "$N" "get_members, [g6]").")"
ok "a dead local pid joined on $N: ok, and gone again"

# edist's own start_scope request is this node's callers' only.
r=$(erl_eval "$E" "gen_server:call({pg, '$N@$HOST'}, {start_scope, sneaky}).")
[ "$r" = "{ok,badarg}" ] || fail "start_scope from erl: $r"
r=$(erl_eval "$E" "element(1, rpc:call('$N@$HOST', pg, start, [sneaky])).")
[ "$r" = "{ok,ok}" ] || fail "pg:start(sneaky) after the refused request: $r"
ok "start_scope from another node: badarg, nothing started"

# A pid of another node, or no pid, is refused as pg.erl's ensure_local
# refuses it: error {nolocal, Bad}. Before: badarg.
r=$(erl_eval "$E" "Me = self(), {catch rpc:call('$N@$HOST', pg, join, [g7, Me]),
  catch rpc:call('$N@$HOST', pg, leave, [g7, [notapid]]), $(on "$N" "get_members, [g7]")}.")
echo "$r" | grep -q "^{ok,{{badrpc,{'EXIT',{{nolocal,<$E@" || fail "join of erl's pid on $N: $r"
echo "$r" | grep -q "{badrpc,{'EXIT',{{nolocal,notapid}" || fail "leave of [notapid] on $N: $r"
echo "$r" | grep -q ",\[\]}}$" || fail "g7 on $N after the refused join: $r"
ok "pg:join of another node's pid and pg:leave of a non-pid on $N: error {nolocal, Bad}, as pg.erl; nothing joined"
done_ok
