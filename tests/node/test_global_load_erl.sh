#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# global under load and in a bigger mesh: 10,000 names registered at once
# from an erl node and two edist nodes converge to one table on every
# node; a five-node cluster of edist and erl nodes, each new node
# connecting to one member only, ends fully connected and agrees on the
# names; an Elixir node finds an edist name and registers its own.
#   test_global_load_erl.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

start_real_epmd
E=gxe$$
N=gxn$$
M=gxm$$
start_erl e "$E"
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1
start_edist m --sname "$M" --cookie "$COOKIE" --listen-address 127.0.0.1
r=$(erl_eval "$E" "{net_adm:ping('$N@$HOST'), net_adm:ping('$M@$HOST'), global:sync()}.")
[ "$r" = "{ok,{pong,pong,ok}}" ] || fail "set-up: $r"

# 3,334 names from erl and 3,333 from each edist node, all at once (the
# edist ones through rpc, each a process of that node).
t0=$(date +%s%N)
r=$(erl_eval "$E" "Self = self(),
  Reg = fun(Tag, F) -> spawn(fun() -> F(), Self ! {done, Tag} end) end,
  Reg(e, fun() -> [yes = global:register_name({e, I}, spawn(fun() -> receive stop -> ok end end))
                   || I <- lists:seq(1, 3334)] end),
  Reg(n, fun() -> [yes = rpc:call('$N@$HOST', edist_demo, global_register, [{n, I}])
                   || I <- lists:seq(1, 3333)] end),
  Reg(m, fun() -> [yes = rpc:call('$M@$HOST', edist_demo, global_register, [{m, I}])
                   || I <- lists:seq(1, 3333)] end),
  [receive {done, T} -> T after 300000 -> timeout end || T <- [e, n, m]].")
t1=$(date +%s%N)
[ "$r" = "{ok,[e,n,m]}" ] || fail "registering 10,000 names: $r"
ok "10,000 names registered at once from erl $E and edist $N, $M in $(((t1 - t0) / 1000000)) ms"

same() {
  [ "$(erl_eval "$E" "L = lists:sort(global:registered_names()),
    {length(L), L =:= lists:sort(rpc:call('$N@$HOST', global, registered_names, [])),
                L =:= lists:sort(rpc:call('$M@$HOST', global, registered_names, []))}.")" = "{ok,{10000,true,true}}" ]
}
wait_until 30 same || fail "the tables differ: $(erl_eval "$E" "{length(global:registered_names()),
  length(rpc:call('$N@$HOST', global, registered_names, [])), length(rpc:call('$M@$HOST', global, registered_names, []))}.")"
r=$(erl_eval "$E" "Names = [{X, I} || X <- [e, n, m], I <- lists:seq(1, 3333, 101)],
  [N || N <- Names, global:whereis_name(N) =/= rpc:call('$N@$HOST', global, whereis_name, [N])
                    orelse global:whereis_name(N) =/= rpc:call('$M@$HOST', global, whereis_name, [N])].")
[ "$r" = "{ok,[]}" ] || fail "pids differ for: $r"
r=$(erl_eval "$E" "S = rpc:call('$N@$HOST', edist, stats, []),
  {maps:get(global_names, S), maps:get(global_known_nodes, S), maps:get(global_syncs, S) >= 1}.")
[ "$r" = "{ok,{10000,2,true}}" ] || fail "edist:stats() of $N: $r"
ok "every node lists the same 10,000 names, and a sample of 99 maps to the same pids everywhere; edist:stats() of $N says global_names 10000"

# Five nodes, each new one connecting to one member only: E, N, M are one
# cluster; F connects to M; P (edist) connects to F.
F=gxf$$
P=gxp$$
start_erl f "$F"
r=$(erl_eval "$F" "net_adm:ping('$M@$HOST').")
[ "$r" = "{ok,pong}" ] || fail "$F -> $M: $r"
# P joins at once, while F may still be taking names in: P learns 10,000
# names of nodes it is not connected to, and monitors every pid (4,096
# waiting monitors used to be the limit: a name past it was lost).
start_edist p --sname "$P" --cookie "$COOKIE" --listen-address 127.0.0.1
r=$("$EDIST" rpc "$P@$HOST" net_adm ping "['$F@$HOST']" --cookie "$COOKIE")
[ "$r" = "pong" ] || fail "$P -> $F: $r"
all="['$E@$HOST','$F@$HOST','$M@$HOST','$N@$HOST','$P@$HOST']"
mesh() {
  [ "$(erl_eval "$E" "All = lists:sort($all),
    Views = [lists:sort([X | rpc:call(X, erlang, nodes, [])]) || X <- All],
    lists:all(fun(V) -> V =:= All end, Views).")" = "{ok,true}" ]
}
wait_until 30 mesh || fail "not fully connected: $(erl_eval "$E" "[{X, rpc:call(X, erlang, nodes, [])} || X <- $all].")"
r=$(erl_eval "$F" "global:sync(), P = spawn(fun() -> receive stop -> ok end end), register(fh, P),
  global:register_name(five, P).")
[ "$r" = "{ok,yes}" ] || fail "register on $F: $r"
agree() {
  [ "$(erl_eval "$E" "W = rpc:call('$F@$HOST', erlang, whereis, [fh]),
    lists:all(fun(X) -> rpc:call(X, global, whereis_name, [five]) =:= W andalso
                        length(rpc:call(X, global, registered_names, [])) =:= 10001 end, $all).")" = "{ok,true}" ]
}
wait_until 30 agree || fail "the five nodes disagree on the names: $(erl_eval "$E" "[{X, rpc:call(X, global, whereis_name, [five]), length(rpc:call(X, global, registered_names, []))} || X <- $all].") $(erl_eval "$F" "Ns = global:registered_names(), [{K, length([x || {K2, _} <- Ns, K2 =:= K])} || K <- [e, n, m]].")"
ok "five nodes (erl $E $F, edist $N $M $P), each joining through one member: fully connected, one table of 10,001 names"

# Elixir: the same protocol from a second client.
if command -v elixir >/dev/null; then
  X=gxx$$
  out=$(cd "$tmp" && timeout 60 elixir --sname "$X" --cookie "$COOKIE" --erl "-start_epmd false" -e "
    true = Node.connect(:'$N@$HOST')
    :ok = :global.sync()
    pid = :global.whereis_name({:n, 7})
    true = is_pid(pid) and node(pid) == :'$N@$HOST'
    me = spawn(fn -> receive do :stop -> :ok end end)
    :yes = :global.register_name({:todo_list, \"bob\"}, me)
    true = :rpc.call(:'$M@$HOST', :global, :whereis_name, [{:todo_list, \"bob\"}]) == me
    IO.puts(\"elixir ok\")" 2>&1)
  [[ "$out" == *"elixir ok"* ]] || fail "elixir: $out"
  ok "Elixir node $X: finds an edist node's name; registers {:todo_list, \"bob\"}, which edist $M finds"
else
  ok "elixir is not installed: the Elixir check is skipped"
fi
done_ok
