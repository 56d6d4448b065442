#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist demo`, the main job:   test_demo.sh EDIST
# Exit 0 with every step [ ok ] and the key results on stdout (pong, the
# remote "Hello from node2@localhost", {response,3}, the nodedown); every
# process it started (port mapper, node2, erl1) gone afterwards, and
# nothing left listening on its private port mapper port. The same without
# erl on the PATH (those steps skipped). Bad usage exits 2. A demo killed
# with SIGKILL half-way leaves no child behind (PR_SET_PDEATHSIG).
set -u
EDIST=${1:?usage: $0 EDIST}
. "$(dirname "$0")/../common/lib.sh"
peers_init edist-demo-test
unset ERL_EPMD_PORT ERL_EPMD_ADDRESS
TIMEOUT=$(command -v timeout) || { echo "SKIP: no timeout(1)"; exit 77; }
getent hosts localhost | grep -q '^127\.' || { echo "SKIP: localhost is not 127.x"; exit 77; }

# with_port PORT: PIDs of processes whose environment has ERL_EPMD_PORT=PORT
# (every child of the demo: the demo sets it for each, erl's too).
with_port() {
  local e
  for e in /proc/[0-9]*/environ; do
    tr '\0' '\n' 2>/dev/null <"$e" | grep -qx "ERL_EPMD_PORT=$1" &&
      { e=${e#/proc/}; echo "${e%/environ}"; }
  done
}
none_with_port() { [ -z "$(with_port "$1")" ]; }

# no_leftovers OUT: the PIDs the demo printed are gone, and so is anything
# using its port mapper port.
no_leftovers() {
  local out=$1 port p
  port=$(sed -n 's/.*private port mapper on port \([0-9]*\).*/\1/p' "$out")
  [ -n "$port" ] || fail "no port mapper port in $out"
  local ended
  ended=$(sed -n 's/.*(ended by PID: node2 \([0-9]*\), erl1 \([0-9]*\), port mapper \([0-9]*\)).*/\1 \2 \3/p' "$out")
  [ -n "$ended" ] || fail "no PIDs reported in $out"
  for p in $ended $(grep -o '(pid [0-9]*' "$out" | grep -o '[0-9]*'); do
    [ "$p" = 0 ] && continue
    [ "$p" = "$demo_pid" ] && continue
    gone() { ! kill -0 "$1" 2>/dev/null; }
    wait_until 5 gone "$p" || fail "process $p started by the demo is still there: $(ps -o args= -p "$p")"
  done
  wait_until 5 none_with_port "$port" ||
    fail "left with ERL_EPMD_PORT=$port: $(with_port "$port" | xargs -r ps -o pid=,args= -p)"
  if ps -eo args= | grep -v grep | grep -E -- "(--node2|-port) $port( |$)"; then
    fail "a process of the demo's port mapper port $port is still there"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "something still listens on port $port"
  fi
}

# 1. The full demo (with erl when installed).
start=$(date +%s%N)
timeout 60 "$EDIST" demo >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo_pid=$!
wait "$demo_pid"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
cat "$tmp/demo.out"
[ "$rc" = 0 ] || fail "edist demo exited $rc"
ok "edist demo exits 0 in $ms ms"
! grep -q '\[FAIL\]' "$tmp/demo.out" || fail "a step failed"
n=$(grep -c '^  \[ ok \]' "$tmp/demo.out")
[ "$n" -ge 25 ] || fail "only $n steps ok"
ok "$n steps, all [ ok ]"
for key in "net_adm:ping('node2@localhost').  -> pong" \
           "node2@localhost| Hello from node2@localhost" \
           "-> {response,3}" \
           "{shell,node2@localhost,hi}" \
           "rpc:call('node2@localhost', edist_demo, add, [1, 2]).  -> 3" \
           "[ ok ] (node1)> rpc:call('node2@localhost', pg, get_members, [traders]).  -> [<" \
           "process,<" \
           "-> {nodedown,node2@localhost}" \
           "noconnection}" \
           "edist demo: every step gave the expected result"; do
  grep -qF -- "$key" "$tmp/demo.out" || fail "no '$key' in the output"
done
ok "pong, Hello from node2@localhost, {response,3}, shell, rpc, pg, DOWN, nodedown, noconnection all shown"
if command -v erl >/dev/null 2>&1; then
  grep -qF "(erl1)> net_adm:ping('node1@localhost').  -> pong" "$tmp/demo.out" ||
    fail "erl did not ping back"
  grep -qF "lists, reverse, [[1, 2, 3]]).  -> [3,2,1]" "$tmp/demo.out" ||
    fail "no rpc against erl"
  grep -qF "[ ok ] (node1)> rpc:call('erl1@localhost', pg, get_members, [traders]).  -> [<" "$tmp/demo.out" ||
    fail "erl's pg does not list node1's member"
  ok "erl steps: ping both ways, rpc:call of lists:reverse, erl's pg sees node1's member"
fi
no_leftovers "$tmp/demo.out"
ok "every process the demo started is gone, its port mapper port is free"

# 2. Without erl on the PATH: those steps are skipped, the rest passes.
mkdir -p "$tmp/emptybin"
PATH=$tmp/emptybin "$TIMEOUT" 60 "$EDIST" demo >"$tmp/noerl.out" 2>&1 &
demo_pid=$!
wait "$demo_pid"
rc=$?
[ "$rc" = 0 ] || { cat "$tmp/noerl.out"; fail "edist demo without erl exited $rc"; }
grep -q 'erl is not installed' "$tmp/noerl.out" || fail "no note about erl"
! grep -q 'erl1@localhost' "$tmp/noerl.out" || fail "erl steps without erl"
grep -qF "Hello from node2@localhost" "$tmp/noerl.out" || fail "no hello without erl"
no_leftovers "$tmp/noerl.out"
ok "without erl: exit 0, erl steps skipped with a note, nothing left"

# 3. Bad usage.
"$EDIST" demo --bogus >/dev/null 2>&1
rc=$?
[ "$rc" = 2 ] || fail "edist demo --bogus exited $rc, not 2"
ok "edist demo --bogus exits 2"

# 4. The demo killed half-way (held by --pause with every node up, stdin
# a FIFO nobody writes): its children die with it.
mkfifo "$tmp/stdin"
exec 3<>"$tmp/stdin"
"$EDIST" demo --pause <"$tmp/stdin" >"$tmp/killed.out" 2>&1 &
demo_pid=$!
pids+=("$demo_pid")
wait_until 30 grep -q '(paused with the nodes up' "$tmp/killed.out" ||
  fail "the demo did not pause: $(cat "$tmp/killed.out")"
port=$(sed -n 's/.*private port mapper on port \([0-9]*\).*/\1/p' "$tmp/killed.out")
n=$(with_port "$port" | wc -l)
want=2
command -v erl >/dev/null 2>&1 && want=3
[ "$n" -ge "$want" ] || fail "$n children with ERL_EPMD_PORT=$port while paused, want $want"
kill -KILL "$demo_pid"
wait "$demo_pid" 2>/dev/null
wait_until 5 none_with_port "$port" ||
  fail "left with ERL_EPMD_PORT=$port: $(with_port "$port" | xargs -r ps -o pid=,args= -p)"
ok "a demo killed with SIGKILL while its $n children run leaves none behind"
exec 3>&-
done_ok
