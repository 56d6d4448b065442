#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist epmd -daemon` and edi_epmd_daemon_start(): the port mapper detaches,
# outlives the process that started it (keeping other nodes' registrations),
# and is stopped by the test by its PID.
. "$(dirname "$0")/test_epmd_lib.sh"

daemons=()
kill_daemons() {
  local d
  for d in "${daemons[@]}"; do kill -KILL "$d" 2>/dev/null; done
  cleanup
}
trap kill_daemons EXIT

# A process that exited but was not reaped yet (state Z) counts as gone.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}
gone() { ! alive "$1"; }

# 1. The CLI daemon.
P=$(freeport)
start=$(date +%s)
timeout 10 "$EDIST" epmd -daemon -port "$P" -address 127.0.0.1 -pidfile "$tmp/d.pid" \
  >"$tmp/daemon.out" 2>&1
rc=$?
[ "$rc" = 0 ] || fail "edist epmd -daemon exit status $rc"
[ -s "$tmp/d.pid" ] || fail "no pidfile"
dpid=$(cat "$tmp/d.pid")
daemons+=("$dpid")
ok "edist epmd -daemon returned (status 0) in $(($(date +%s) - start)) s, daemon pid $dpid"

alive "$dpid" || fail "daemon $dpid not running"
# The port is bound before -daemon returns: no waiting needed.
"$EDIST" names -port "$P" >"$tmp/names.out" 2>&1 || fail "daemon not answering at once"
ok "daemon answers NAMES right after -daemon returns"

read -r ppid sid <<<"$(ps -o ppid=,sid= -p "$dpid")"
mysid=$(ps -o sid= -p $$ | tr -d ' ')
[ "$sid" != "$mysid" ] || fail "daemon is in our session"
[ "$sid" != "$dpid" ] || fail "daemon is a session leader"
[ "$ppid" != $$ ] || fail "daemon is our child"
[ "$(readlink "/proc/$dpid/fd/0")" = /dev/null ] || fail "stdin not /dev/null"
[ "$(readlink "/proc/$dpid/fd/1")" = /dev/null ] || fail "stdout not /dev/null"
[ "$(readlink "/proc/$dpid/cwd")" = / ] || fail "cwd not /"
ok "detached: own session (not its leader), parent $ppid, stdio on /dev/null, cwd /"

# A second daemon on the same port: epmd's answer, status 0, first one intact.
"$EDIST" epmd -daemon -port "$P" -address 127.0.0.1 >"$tmp/second.out" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -q "already in use" "$tmp/second.out" || fail "second daemon: $rc $(cat "$tmp/second.out")"
alive "$dpid" || fail "first daemon died"
ok "second daemon on the same port: '$(cat "$tmp/second.out")'"

"$TOOL" hold "$P" edt_dnode_$$ 40601 >"$tmp/hold1.out" 2>&1 &
h1=$!
pids+=($h1)
wait_until 10 names_has "$P" "name edt_dnode_$$ at port 40601" || fail "registration with the daemon"
ok "a node registered with the daemon"

kill -TERM "$dpid"
wait_until 5 gone "$dpid" || fail "daemon $dpid survived SIGTERM"
ok "daemon $dpid stopped by SIGTERM"
wait_until 5 gone "$h1" || fail "holder did not notice the daemon's exit"
grep -q "port mapper closed the registration" "$tmp/hold1.out" || fail "holder output"
"$EDIST" names -port "$P" >/dev/null 2>&1 && fail "port $P still answers"
ok "port $P closed and registrations ended with the daemon"

# 2. The library's daemon, started by a process acting as a node, which
# then exits while another node is registered.
P2=$(freeport)
"$TOOL" spawn_daemon "$P2" "$tmp/lib.pid" "$tmp/go" >"$tmp/spawn.out" 2>&1 &
parent=$!
pids+=($parent)
wait_until 10 test -s "$tmp/lib.pid" || fail "spawn_daemon did not start: $(cat "$tmp/spawn.out")"
lpid=$(cat "$tmp/lib.pid")
daemons+=("$lpid")
[ "$lpid" != "$parent" ] || fail "daemon pid is the parent's"
names_has "$P2" "name edt_daemon_parent at port 40999" || fail "parent not registered"
"$TOOL" hold "$P2" edt_other_$$ 40602 >"$tmp/hold2.out" 2>&1 &
h2=$!
pids+=($h2)
wait_until 10 names_has "$P2" "name edt_other_$$ at port 40602" || fail "other node"
ok "library daemon $lpid serves its starter (pid $parent) and another node"

: >"$tmp/go"
wait "$parent"
rc=$?
[ "$rc" = 0 ] || fail "starter exit status $rc"
gone "$parent" || fail "starter still running"
alive "$lpid" || fail "daemon died with its starter"
wait_until 10 names_lacks "$P2" "edt_daemon_parent" || fail "starter still registered"
names_has "$P2" "name edt_other_$$ at port 40602" || fail "other node's registration lost"
alive "$h2" || fail "other node's registration connection closed"
ok "starter exited: daemon lives on, starter unregistered, other node still registered"

kill -TERM "$lpid"
wait_until 5 gone "$lpid" || fail "library daemon survived SIGTERM"
ok "library daemon $lpid stopped by SIGTERM"

done_ok
