#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist node` options: the same option as a flag, an environment variable
# and a config-file key, with --print-config saying which one won; bad
# options, bad names and unusable cookie files are refused clearly.
. "$(dirname "$0")/test_node_lib.sh"

cat >"$tmp/node.ini" <<EOF
; edist node configuration
[node]
sname = fromfile
ticktime = 30
listen_port = 4444
idle = sleep
EOF
EDIST_TICKTIME=20 EDIST_LISTEN_PORT=5555 "$EDIST" node --config "$tmp/node.ini" --ticktime 10 \
  --print-config >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
line() { grep "^$1 " "$tmp/pc.out"; }
line ticktime | grep -q "= 10 .*(flag --ticktime)" || fail "ticktime: $(line ticktime)"
line listen_port | grep -q "= 5555 .*(env EDIST_LISTEN_PORT)" || fail "listen_port: $(line listen_port)"
line sname | grep -q "= fromfile .*(file $tmp/node.ini:3)" || fail "sname: $(line sname)"
line idle | grep -q "= sleep .*(file $tmp/node.ini:6)" || fail "idle: $(line idle)"
line setuptime | grep -q "= 7 .*(default)" || fail "setuptime: $(line setuptime)"
line config | grep -q "(flag --config)" || fail "config: $(line config)"
ok "--print-config: flag > env > file > default, each with its origin"
"$EDIST" node --sname x --cookie sekrit --print-config | grep -q sekrit && fail "cookie printed"
ok "--print-config masks the cookie"
# -- issue 8: the embedded port mapper's addresses default to
# $ERL_EPMD_ADDRESS, as epmd's; byte counts take K, M or G.
ERL_EPMD_ADDRESS=127.0.0.1 "$EDIST" node --sname x --send-queue-limit 2M --print-config \
  >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
line epmd_address | grep -q "= 127.0.0.1 .*(env ERL_EPMD_ADDRESS)" || fail "epmd_address: $(line epmd_address)"
line send_queue_limit | grep -q "= 2M .*(flag --send-queue-limit)" ||
  fail "send_queue_limit: $(line send_queue_limit)"
line epmd_idle_exit | grep -q "= 5 .*(default)" || fail "epmd_idle_exit: $(line epmd_idle_exit)"
ERL_EPMD_ADDRESS=127.0.0.1 EDIST_EPMD_ADDRESS=::1 "$EDIST" node --sname x --print-config \
  >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
line epmd_address | grep -q "= ::1 .*(env EDIST_EPMD_ADDRESS)" || fail "epmd_address: $(line epmd_address)"
ok "--print-config: epmd_address from ERL_EPMD_ADDRESS unless set, send_queue_limit 2M, epmd_idle_exit 5"

# Refusals: exit 2 with a line naming the problem.
refuse() {
  local what=$1 pattern=$2
  shift 2
  "$EDIST" "$@" >"$tmp/r.out" 2>&1
  local rc=$?
  [ $rc -ne 0 ] || fail "$what: accepted"
  grep -q -- "$pattern" "$tmp/r.out" || fail "$what: $(cat "$tmp/r.out")"
  ok "$what refused (exit $rc): $(head -1 "$tmp/r.out")"
}
refuse "unknown flag" "unknown option '--bogus'" node --sname x --bogus 1
refuse "underscore spelling" "unknown option '--listen_port'" node --sname x --listen_port 1
refuse "bad ticktime" "ticktime must be seconds" node --sname x --ticktime soon
refuse "no name" "give --sname or --name" node --cookie c
refuse "two names" "both sname" node --sname a --name b@127.0.0.1
refuse "dotted short name" "use --name" node --sname a@x.y --cookie c --start-epmd false
refuse "bad name" "invalid node name" node --sname 'a b' --cookie c --start-epmd false
refuse "dpdk transport" "only tcp" node --sname a --transport dpdk
refuse "bad byte count" "send_queue_limit must be a byte count" node --sname a --send-queue-limit 5X
refuse "zero idle exit" "epmd_idle_exit must be seconds" node --sname a --epmd-idle-exit 0
printf '[node]\nsname = a\nno_such_key = 1\n' >"$tmp/bad.ini"
refuse "unknown config key" "bad.ini:3: unknown key 'no_such_key'" node --config "$tmp/bad.ini"
refuse "missing config file" "config file" node --config "$tmp/nope.ini"
refuse "ping without a node" "which node" ping --cookie c
EDIST_IDLE=lazy "$EDIST" node --sname a --print-config >"$tmp/r.out" 2>&1
[ $? -ne 0 ] && grep -q "env EDIST_IDLE: idle must be one of adaptive|busy|sleep" "$tmp/r.out" ||
  fail "bad env value: $(cat "$tmp/r.out")"
ok "bad environment value refused: $(head -1 "$tmp/r.out")"

# Cookie file: created (mode 0400) when absent, refused when others may
# read it, as erl does. No port mapper is needed to get that far.
start_real_epmd
"$EDIST" node --sname n2ck$$ --listen-address 127.0.0.1 >"$tmp/ck.out" 2>"$tmp/ck.err" &
pid=$!
pids+=($pid)
wait_until 10 grep -q ready "$tmp/ck.out" || fail "node without --cookie: $(cat "$tmp/ck.err")"
[ "$(stat -c %a "$HOME/.erlang.cookie")" = 400 ] || fail "cookie file mode $(stat -c %a "$HOME/.erlang.cookie")"
grep -qE '^[A-Z]{20}$' "$HOME/.erlang.cookie" || fail "cookie file content"
ok "no cookie file: created with 20 letters, mode 0400"
kill -TERM $pid
wait $pid
chmod 644 "$HOME/.erlang.cookie"
refuse "cookie file readable by others" "accessible by owner only\|owner" node --sname n2ck2$$ --listen-address 127.0.0.1

done_ok
