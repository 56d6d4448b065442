#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist rpc` and `edist send` against a real erl and against an `edist
# node`: results printed in Erlang syntax (exit 0), {badrpc, Reason} for an
# unknown function, a raised error, an unreachable node and a wrong cookie
# (exit 1); a sent term arrives at the registered process; `edist stat`
# prints an edist node's counters and erts' figures for erl; `edist bench
# ping` measures round trips to an edist node's echo; `edist bench local`.
#   test_rt_cli.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

start_real_epmd
ok "real epmd on port $EPMD_PORT"
E=w1ce$$
N=w1cn$$
start_erl e "$E"
ok "erl $E up"
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1
ok "edist node $N up"

rpc() { "$EDIST" rpc "$@" --cookie "$COOKIE" 2>>"$tmp/rpc.err"; }

for T in "$E" "$N"; do
  r=$(rpc "$T@$HOST" erlang node '[]'); rc=$?
  [ $rc = 0 ] && [ "$r" = "$T@$HOST" ] || fail "rpc $T erlang:node(): rc $rc, $r"
  ok "edist rpc $T erlang node '[]' -> $r (exit 0)"
  if [ "$T" = "$E" ]; then mf="lists reverse"; want='[{x,[115]},<<98>>,2.5,1]'
  else mf="edist_demo echo"; want='[1,2.5,<<98>>,{x,[115]}]'; fi
  r=$(rpc "$T@$HOST" $mf '[[1, 2.5, <<"b">>, {x, "s"}]]'); rc=$?
  [ $rc = 0 ] && [ "$r" = "$want" ] || fail "rpc $T $mf: rc $rc, $r"
  ok "edist rpc $T $mf -> $r"
  r=$(rpc "$T@$HOST" nomod nofun '[a]'); rc=$?
  [ $rc = 1 ] && [ "$r" = "{badrpc,{'EXIT',{undef,[{nomod,nofun,[a],[]}]}}}" ] ||
    fail "rpc $T of an unknown function: rc $rc, $r"
  ok "edist rpc $T nomod nofun -> $r (exit 1)"
done

r=$(rpc "$N@$HOST" edist_demo add '[12345678901234567890123, 1]'); rc=$?
[ $rc = 0 ] && [ "$r" = 12345678901234567890124 ] || fail "rpc edist_demo:add: rc $rc, $r"
ok "edist rpc $N edist_demo add -> $r"
r=$(rpc "$N@$HOST" edist_demo hello '[]'); rc=$?
[ $rc = 0 ] && [ "$r" = ok ] || fail "rpc edist_demo:hello: rc $rc, $r"
wait_until 5 grep -q "^Hello from $N@$HOST$" "$tmp/n.out" || fail "no hello line: $(cat "$tmp/n.out")"
ok "edist rpc $N edist_demo hello -> ok, and the node printed: Hello from $N@$HOST"
r=$(rpc "$N@$HOST" edist_demo crash '[{oops, 1}]'); rc=$?
[ $rc = 1 ] && [ "$r" = "{badrpc,{'EXIT',{oops,1}}}" ] || fail "rpc edist_demo:crash: rc $rc, $r"
ok "edist rpc $N edist_demo crash -> $r (exit 1)"
r=$(rpc "$E@$HOST" erlang error '[boom]'); rc=$?
case "$r" in "{badrpc,{'EXIT',{boom,["*) [ $rc = 1 ] || fail "rc $rc" ;; *) fail "rpc of erlang:error: rc $rc, $r" ;; esac
ok "edist rpc $E erlang error '[boom]' -> {badrpc,{'EXIT',{boom,[...]}}} (exit 1)"

r=$(rpc "nosuch$$@$HOST" erlang node '[]'); rc=$?
[ $rc = 1 ] && [ "$r" = "{badrpc,nodedown}" ] || fail "rpc to an unknown node: rc $rc, $r"
ok "edist rpc to a node that does not exist -> $r (exit 1)"
r=$("$EDIST" rpc "$E@$HOST" erlang node '[]' --cookie wrong$$ 2>/dev/null); rc=$?
[ $rc = 1 ] && [ "$r" = "{badrpc,nodedown}" ] || fail "rpc with a wrong cookie: rc $rc, $r"
ok "edist rpc with a wrong cookie -> $r (exit 1)"
r=$("$EDIST" rpc "$E@$HOST" erlang node 'notalist' 2>&1); rc=$?
[ $rc = 2 ] || fail "rpc with bad ARGS: rc $rc, $r"
ok "edist rpc with ARGS not a list: exit 2: $r"

# send: to erl's registered process, then to the edist node's echo (whose
# answer goes to the short-lived sender: only the exit code tells).
erl_eval "$E" "register(w1box, spawn(fun() -> receive M -> io:format(user, \"w1box got ~w~n\", [M]) end end)), ok." >/dev/null
"$EDIST" send "$E@$HOST" w1box '{hello, [1, 2], <<"x">>}' --cookie "$COOKIE" || fail "edist send to erl: exit $?"
wait_until 5 grep -q '^w1box got {hello,\[1,2\],<<120>>}$' "$tmp/e.out" || fail "erl did not get the sent term: $(cat "$tmp/e.out")"
ok "edist send $E w1box '{hello, [1, 2], <<\"x\">>}': exit 0, erl received it"
"$EDIST" send "$N@$HOST" echo 'not_a_pair' --cookie "$COOKIE" || fail "edist send to edist node: exit $?"
ok "edist send $N echo not_a_pair: exit 0"
r=$("$EDIST" send "nosuch$$@$HOST" echo 'x' --cookie "$COOKIE" 2>&1); rc=$?
[ $rc = 1 ] || fail "edist send to an unknown node: rc $rc"
ok "edist send to an unknown node: exit 1: $r"

# stat: an edist node's counters (the client itself is a connected peer),
# erts' figures for erl, exit 1 for a node that does not exist.
r=$("$EDIST" stat "$N@$HOST" --cookie "$COOKIE" 2>&1); rc=$?
[ $rc = 0 ] || fail "edist stat $N: rc $rc, $r"
grep -q "^node $N@$HOST\$" <<<"$r" && grep -Eq '^processes [1-9][0-9]*$' <<<"$r" &&
  grep -Eq '^messages_received [1-9][0-9]*$' <<<"$r" &&
  grep -Eq '^peer edist_stat_[0-9]+@[^ ]+ messages_sent=[0-9]+ messages_received=[1-9]' <<<"$r" ||
  fail "edist stat $N printed: $r"
ok "edist stat $N: $(wc -l <<<"$r") counters, e.g. $(grep '^processes' <<<"$r")"
r=$("$EDIST" stat "$E@$HOST" --cookie "$COOKIE" 2>&1); rc=$?
[ $rc = 0 ] && grep -q '^kind beam$' <<<"$r" && grep -Eq '^processes [1-9][0-9]*$' <<<"$r" ||
  fail "edist stat $E: rc $rc, $r"
ok "edist stat $E (BEAM): $(tr '\n' ' ' <<<"$r")"
r=$("$EDIST" stat "$E@$HOST" --cookie "$COOKIE" --json 2>&1) &&
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["kind"] == "beam" and d["processes"] > 0, d' "$r" ||
  fail "edist stat $E --json: $r"
ok "edist stat $E --json (BEAM): $r"
r=$("$EDIST" stat "nosuch$$@$HOST" --cookie "$COOKIE" 2>&1); rc=$?
[ $rc = 1 ] || fail "edist stat of an unknown node: rc $rc, $r"
ok "edist stat of a node that does not exist: exit 1"

# bench: round trips and a stream to the edist node's echo; erl has none.
r=$("$EDIST" bench ping "$N@$HOST" --count 500 --cookie "$COOKIE" 2>&1); rc=$?
[ $rc = 0 ] && grep -Eq '^round trip \(us\): p50 [0-9.]+ ' <<<"$r" &&
  grep -Eq '^stream \(1000 in flight\): [1-9][0-9]* messages/s' <<<"$r" ||
  fail "edist bench ping $N: rc $rc, $r"
ok "edist bench ping $N: $(grep '^round trip' <<<"$r")"
r=$("$EDIST" bench ping "$E@$HOST" --count 5 --cookie "$COOKIE" 2>&1); rc=$?
[ $rc = 1 ] && grep -q 'no answer from {echo' <<<"$r" || fail "edist bench ping erl: rc $rc, $r"
ok "edist bench ping of a node without echo: exit 1 with the reason"
r=$("$EDIST" bench local --count 20000 2>&1); rc=$?
[ $rc = 0 ] && grep -Eq '^ping-pong, 2 processes \(messages/s\): [1-9][0-9]*$' <<<"$r" &&
  grep -Eq '^spawn \+ exit \(processes/s\): [1-9][0-9]*$' <<<"$r" || fail "edist bench local: rc $rc, $r"
ok "edist bench local: $(tr '\n' ' ' <<<"$r")"
r=$("$EDIST" bench 2>&1); rc=$?
[ $rc = 2 ] || fail "edist bench without a mode: rc $rc"
ok "edist bench without a mode: usage, exit 2"
done_ok
