#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Our epmd client against OTP's real epmd; `edist names` against
# `epmd -names`, byte for byte.
. "$(dirname "$0")/test_epmd_lib.sh"

P=$(freeport)
epmd -port "$P" -address 127.0.0.1 >"$tmp/epmd.log" 2>&1 &
pids+=($!)
wait_until 10 epmd -port "$P" -names || fail "real epmd did not start on $P"
ok "real epmd listening on $P"

# (2) register / port_please / names / duplicate / unregister on close /
# creation changes.
"$TOOL" client_suite "$P" >"$tmp/suite.out" 2>&1 || fail "client suite against real epmd"
ok "client suite against real epmd: $(tail -1 "$tmp/suite.out")"

# (3) the names output, with one node registered by our client.
node=edt_held_$$
"$TOOL" hold "$P" "$node" 40555 >"$tmp/hold.out" 2>&1 &
hold=$!
pids+=($hold)
wait_until 10 names_has "$P" "name $node at port 40555" || fail "held registration not listed"
"$EDIST" names -port "$P" >"$tmp/ours.txt" 2>&1 || fail "edist names exit status"
epmd -port "$P" -names >"$tmp/theirs.txt" 2>&1 || fail "epmd -names exit status"
cmp -s "$tmp/ours.txt" "$tmp/theirs.txt" ||
  fail "edist names differs from epmd -names: $(diff "$tmp/ours.txt" "$tmp/theirs.txt")"
printf 'epmd: up and running on port %s with data:\nname %s at port 40555\n' "$P" "$node" \
  >"$tmp/expected.txt"
cmp -s "$tmp/ours.txt" "$tmp/expected.txt" || fail "unexpected names text: $(cat "$tmp/ours.txt")"
ok "edist names == epmd -names (real epmd): $(tail -1 "$tmp/ours.txt")"

# ERL_EPMD_PORT is honoured when no port is given, as by epmd.
ERL_EPMD_PORT=$P "$EDIST" names >"$tmp/env.txt" 2>&1 || fail "edist names with ERL_EPMD_PORT"
cmp -s "$tmp/env.txt" "$tmp/expected.txt" || fail "ERL_EPMD_PORT not honoured"
ok "ERL_EPMD_PORT honoured"

# The registration lasts as long as the holder's socket.
kill -TERM "$hold"
wait "$hold" 2>/dev/null
wait_until 10 names_lacks "$P" "$node" || fail "$node still registered after its holder died"
ok "registration gone with its holder (real epmd)"

# Nobody listening: same words and status as epmd.
D=$(freeport)
"$EDIST" names -port "$D" >"$tmp/dead-ours.txt" 2>&1
rc_ours=$?
epmd -port "$D" -names >"$tmp/dead-theirs.txt" 2>&1
rc_theirs=$?
[ "$rc_ours" = 1 ] && [ "$rc_theirs" = 1 ] || fail "exit status $rc_ours vs epmd's $rc_theirs"
cmp -s "$tmp/dead-ours.txt" "$tmp/dead-theirs.txt" ||
  fail "no-epmd message differs: '$(cat "$tmp/dead-ours.txt")' vs '$(cat "$tmp/dead-theirs.txt")'"
ok "no port mapper: '$(cat "$tmp/dead-ours.txt")', exit 1, as epmd"

# OTP's epmd refuses KILL while nodes live, and our client says so.
"$TOOL" hold "$P" "${node}_2" 40556 >"$tmp/hold2.out" 2>&1 &
pids+=($!)
wait_until 10 names_has "$P" "${node}_2" || fail "second hold"
out=$("$EDIST" epmd -port "$P" -kill)
[ "$out" = "Killing not allowed - living nodes in database." ] || fail "kill answer: $out"
ok "KILL refused by real epmd while nodes are registered"

done_ok
