#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# erl_call (erl_interface's C client, a hidden node) through rex on an
# `edist node`: -a of edist_demo functions and erlang:node/0 answers the
# result; an unknown function answers {badrpc, {'EXIT', {undef, ...}}};
# a compound term comes back the same; -e (erl_eval through rex, which our
# node does not have) answers badrpc undef and the node stays up; a wrong
# cookie and an unknown node fail with exit 1.
#   test_rt_erlcall.sh EDIST TEST_NODE_TOOL
. "$(dirname "$0")/test_node_lib.sh"

ERL_CALL=$(command -v erl_call || ls /usr/lib/erlang/lib/erl_interface-*/bin/erl_call 2>/dev/null | head -1)
[ -x "$ERL_CALL" ] || { echo "SKIP: no erl_call"; exit 77; }

start_real_epmd
ok "real epmd on port $EPMD_PORT"
N=e1cn$$
start_edist n --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1
NODE_PID=$LAST_PID
ok "edist node $N up"

# call ARGS...: erl_call -a against the node; its output (erl_call prints
# no newline after the result) in $r, its exit code in $rc.
call() {
  r=$(timeout 20 "$ERL_CALL" -sname "$N" -c "$COOKIE" "$@" 2>>"$tmp/erl_call.err")
  rc=$?
}

call -a 'edist_demo add [1,2]'
[ $rc = 0 ] && [ "$r" = 3 ] || fail "erl_call edist_demo add [1,2]: rc $rc, '$r'"
ok "erl_call -a 'edist_demo add [1,2]' -> $r"
call -a 'erlang node []'
[ $rc = 0 ] && [ "$r" = "$N@$HOST" ] || fail "erl_call erlang node []: rc $rc, '$r'"
ok "erl_call -a 'erlang node []' -> $r"
call -a 'nomod nofun [a]'
[ $rc = 0 ] && [ "$r" = "{badrpc, {'EXIT', {undef, [{nomod, nofun, [a], []}]}}}" ] ||
  fail "erl_call of an unknown module: rc $rc, '$r'"
ok "erl_call -a 'nomod nofun [a]' -> $r"
call -a 'edist_demo nofun [1]'
[ $rc = 0 ] && [ "$r" = "{badrpc, {'EXIT', {undef, [{edist_demo, nofun, [1], []}]}}}" ] ||
  fail "erl_call of an unknown function: rc $rc, '$r'"
ok "erl_call -a 'edist_demo nofun [1]' -> $r"
# erl_call's argument parser (ei_format) has no binaries: a string and a
# float stand in for <<"x">>; erl_call prints floats with %f.
call -a 'edist_demo echo [{a,[1,2],"xy",-7,2.5,[]}]'
[ $rc = 0 ] && [ "$r" = '{a, [1, 2], "xy", -7, 2.500000, []}' ] ||
  fail "erl_call edist_demo echo: rc $rc, '$r'"
ok "erl_call -a 'edist_demo echo [{a,[1,2],\"xy\",-7,2.5,[]}]' -> $r"

# -e: erl_call sends erl_eval:eval_str(Bin) (Bin: the text from stdin)
# through rex; we have no erl_eval: badrpc undef, and the node lives on.
r=$(echo 'X = 1 + 2, X.' | timeout 20 "$ERL_CALL" -sname "$N" -c "$COOKIE" -e 2>>"$tmp/erl_call.err")
rc=$?
case "$r" in
  "{badrpc, {'EXIT', {undef, [{erl_eval, eval_str, ["*) ;;
  *) fail "erl_call -e: rc $rc, '$r'" ;;
esac
ok "erl_call -e 'X = 1 + 2, X.' -> badrpc undef of erl_eval:eval_str (rc $rc)"
kill -0 "$NODE_PID" 2>/dev/null || fail "the node died after erl_call -e"
r=$("$EDIST" ping "$N@$HOST" --cookie "$COOKIE" 2>&1) && [ "$r" = pong ] ||
  fail "the node does not answer a ping after erl_call -e: $r"
ok "after -e the node still answers: edist ping -> $r"
call -a 'edist_demo add [40,2]'
[ $rc = 0 ] && [ "$r" = 42 ] || fail "erl_call after -e: rc $rc, '$r'"
ok "after -e erl_call -a still works -> $r"

# Error paths: a wrong cookie (the node refuses the handshake and stays
# up), a node that does not exist.
r=$(timeout 20 "$ERL_CALL" -sname "$N" -c "wrong$$" -a 'erlang node []' 2>&1)
rc=$?
[ $rc = 1 ] || fail "erl_call with a wrong cookie: rc $rc, '$r'"
ok "erl_call with a wrong cookie: exit 1: $r"
r=$(timeout 20 "$ERL_CALL" -sname "nosuch$$" -c "$COOKIE" -a 'erlang node []' 2>&1)
rc=$?
[ $rc = 1 ] || fail "erl_call to an unknown node: rc $rc, '$r'"
ok "erl_call to an unknown node: exit 1: $r"
call -a 'erlang node []'
[ $rc = 0 ] && [ "$r" = "$N@$HOST" ] || fail "node not answering at the end: rc $rc, '$r'"
kill -0 "$NODE_PID" 2>/dev/null || fail "the node died"
ok "the node still answers erl_call at the end"
done_ok
