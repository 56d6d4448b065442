#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pg with many groups from a real erl node: 1,000 groups in the sync of a
# node that connects, then 10,000 groups joined one by one, then one leave
# of all 11,000 when the member dies. The edist node sees every group, and
# finding a group by its term costs a constant number of term comparisons
# (counted by the node: pg_group_compares against pg_group_lookups in
# edist:stats/0; a linear scan makes thousands per lookup). No timing.
#   test_pg_groups_erl.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

start_real_epmd
E=pgbe$$
N=pgbn$$
start_erl e "$E" -kernel start_pg true
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1

e_true() { [ "$(erl_eval "$E" "$1")" = "{ok,true}" ]; }
on() { echo "rpc:call('$N@$HOST', $1)"; }

# A member on erl in 1,000 groups before the nodes meet: they reach edist
# in erl's sync.
r=$(erl_eval "$E" "P = spawn(fun() -> receive stop -> ok end end), register(pgmember, P),
  lists:foreach(fun(I) -> ok = pg:join({s, I}, P) end, lists:seq(1, 1000)), ok.")
[ "$r" = "{ok,ok}" ] || fail "joins on erl: $r"
r=$(erl_eval "$E" "net_adm:ping('$N@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "erl -> edist: $r"
wait_until 60 e_true "length($(on "pg, which_groups, []")) =:= 1000." ||
  fail "edist sees $(erl_eval "$E" "length($(on "pg, which_groups, []")).") of erl's 1000 groups"
ok "the 1,000 groups of erl's sync are on edist $N"

# 10,000 more, one join message each.
r=$(erl_eval "$E" "P = whereis(pgmember),
  lists:foreach(fun(I) -> ok = pg:join({g, I}, P) end, lists:seq(1, 10000)), ok.")
[ "$r" = "{ok,ok}" ] || fail "joins on erl: $r"
wait_until 120 e_true "length($(on "pg, which_groups, []")) =:= 11000." ||
  fail "edist sees $(erl_eval "$E" "length($(on "pg, which_groups, []")).") of 11000 groups"
e_true "lists:sort($(on "pg, which_groups, []")) =:= lists:sort(pg:which_groups())." ||
  fail "edist's groups are not erl's"
for g in "{g, 1}" "{g, 5000}" "{g, 10000}" "{s, 1}" "{s, 1000}"; do
  e_true "$(on "pg, get_members, [$g]") =:= [whereis(pgmember)]." ||
    fail "get_members($g) on edist: $(erl_eval "$E" "$(on "pg, get_members, [$g]").")"
done
e_true "$(on "pg, get_members, [{g, 10001}]") =:= []." || fail "a group nobody joined has members"
ok "all 11,000 groups on edist; get_members right for a few"

# stats TAG: print edist's counters and check that finding a group took
# at most one term comparison per lookup (the group of the same hash).
stats() {
  local r
  r=$(erl_eval "$E" "#{pg_groups := G, pg_members := M, pg_group_lookups := L,
        pg_group_compares := C} = $(on "edist, stats, []"), {G, M, L, C}.")
  echo "# $1: edist {pg_groups, pg_members, pg_group_lookups, pg_group_compares} = $r"
  [[ "$r" =~ ^\{ok,\{([0-9]+),([0-9]+),([0-9]+),([0-9]+)\}\}$ ]] || fail "edist:stats/0: $r"
  local lookups=${BASH_REMATCH[3]} compares=${BASH_REMATCH[4]}
  [ "$lookups" -ge "$2" ] || fail "$1: only $lookups group lookups counted (want >= $2)"
  [ "$compares" -le "$lookups" ] ||
    fail "$1: $compares term comparisons for $lookups group lookups: not constant per lookup"
}
stats "after 11,000 joins" 11000
ok "11,000 groups joined with at most one term comparison per group lookup"

# The member dies: one leave naming all 11,000 groups.
erl_eval "$E" "exit(whereis(pgmember), kill)." >/dev/null
wait_until 60 e_true "$(on "pg, which_groups, []") =:= []." ||
  fail "edist still has $(erl_eval "$E" "length($(on "pg, which_groups, []")).") groups"
stats "after the leave" 22000
ok "the leave of 11,000 groups: all gone, still at most one comparison per lookup"

# Churn from three nodes at once: 100 processes on each node join 350
# groups and leave 175 of them (pg:join/leave with lists of pids on the
# edist nodes, through rpc): 157,500 joins and leaves. Every node ends
# with the same membership.
M=pgbm$$
start_edist m --sname "$M" --cookie "$COOKIE" --listen-address 127.0.0.1
r=$(erl_eval "$E" "{net_adm:ping('$M@$HOST'), rpc:call('$N@$HOST', net_adm, ping, ['$M@$HOST'])}.")
[ "$r" = "{ok,{pong,pong}}" ] || fail "three nodes: $r"
t0=$(date +%s%N)
r=$(erl_eval "$E" "Self = self(),
  Gs = [{c, I} || I <- lists:seq(1, 350)], Half = lists:sublist(Gs, 175),
  Edist = fun(Node) -> fun() ->
      Ps = [rpc:call(Node, edist_demo, pg_join, [{tmp, Node}]) || _ <- lists:seq(1, 100)],
      [ok = rpc:call(Node, pg, leave, [{tmp, Node}, P]) || P <- Ps],
      [ok = rpc:call(Node, pg, join, [G, Ps]) || G <- Gs],
      [ok = rpc:call(Node, pg, leave, [G, Ps]) || G <- Half], ok end end,
  Erl = fun() ->
      Ps = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 100)],
      register(churners, hd(Ps)),
      [ok = pg:join(G, Ps) || G <- Gs], [ok = pg:leave(G, Ps) || G <- Half], ok end,
  [spawn(fun() -> Self ! {done, F()} end) || F <- [Erl, Edist('$N@$HOST'), Edist('$M@$HOST')]],
  [receive {done, X} -> X after 120000 -> timeout end || _ <- [1, 2, 3]].")
t1=$(date +%s%N)
[ "$r" = "{ok,[ok,ok,ok]}" ] || fail "the churn: $r"
view() { echo "lists:sort([{G, lists:sort($1(G))} || {c, _} = G <- $2])"; }
converged() {
  [ "$(erl_eval "$E" "V = $(view "pg:get_members" "pg:which_groups()"),
    Rv = fun(Node) -> lists:sort([{G, lists:sort(rpc:call(Node, pg, get_members, [G]))}
                                 || {c, _} = G <- rpc:call(Node, pg, which_groups, [])]) end,
    {length(V), lists:sum([length(Ms) || {_, Ms} <- V]), V =:= Rv('$N@$HOST'), V =:= Rv('$M@$HOST')}.")" = "{ok,{175,52500,true,true}}" ]
}
wait_until 60 converged || fail "the views differ: $(erl_eval "$E" "{length(pg:which_groups()), length(rpc:call('$N@$HOST', pg, which_groups, [])), length(rpc:call('$M@$HOST', pg, which_groups, []))}.")"
ok "157,500 joins and leaves from erl $E and edist $N, $M at once ($(((t1 - t0) / 1000000)) ms): all three agree on 175 groups, 52,500 memberships"
done_ok
