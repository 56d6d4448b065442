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
done_ok
