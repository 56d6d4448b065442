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
# key KEY of the printed config matches PATTERN
has() { line "$1" | grep -q "$2" || fail "$1: $(line "$1")"; }
has ticktime "= 10 .*(flag --ticktime)"
has listen_port "= 5555 .*(env EDIST_LISTEN_PORT)"
has sname "= fromfile .*(file $tmp/node.ini:3)"
has idle "= sleep .*(file $tmp/node.ini:6)"
has setuptime "= 7 .*(default)"
has config "(flag --config)"
ok "--print-config: flag > env > file > default, each with its origin"
"$EDIST" node --sname x --cookie sekrit --print-config | grep -q sekrit && fail "cookie printed"
ok "--print-config masks the cookie"
# The embedded port mapper's addresses default to $ERL_EPMD_ADDRESS, as
# epmd's; sizes take K, M or G; limits are options like every other.
ERL_EPMD_ADDRESS=127.0.0.1 "$EDIST" node --sname x --send-queue-limit-bytes 2M \
  --mailbox-hard-messages 500000 --rx-buffers 256 --max-processes 1000 --print-config \
  >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
has epmd_address "= 127.0.0.1 .*(env ERL_EPMD_ADDRESS)"
has send_queue_limit_bytes "= 2M .*(flag --send-queue-limit-bytes)"
has mailbox_hard_messages "= 500000 .*(flag --mailbox-hard-messages)"
has rx_buffers "= 256 .*(flag --rx-buffers)"
has max_processes "= 1000 .*(flag --max-processes)"
has stack_bytes "= 64K .*(default)"
has max_message_bytes "= 1G .*(default)"
has epmd_idle_exit "= 5 .*(default)"
ERL_EPMD_ADDRESS=127.0.0.1 EDIST_EPMD_ADDRESS=::1 "$EDIST" node --sname x --print-config \
  >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
has epmd_address "= ::1 .*(env EDIST_EPMD_ADDRESS)"
ok "--print-config: epmd_address from ERL_EPMD_ADDRESS unless set, epmd_idle_exit 5, the limits (send_queue_limit_bytes, mailbox_hard_messages, rx_buffers, max_message_bytes)"

# Admission options (issue 8): each of the three ways; counts are whole
# numbers.
printf '[node]\nsname = adm\nmax_handshakes = 512\n' >"$tmp/adm.ini"
EDIST_MAX_HANDSHAKES_PER_ADDRESS=16 "$EDIST" node --config "$tmp/adm.ini" \
  --first-message-time 1.5 --print-config >"$tmp/pc.out" 2>&1 ||
  fail "--print-config: $(cat "$tmp/pc.out")"
has max_handshakes "= 512 .*(file $tmp/adm.ini:3)"
has max_handshakes_per_address "= 16 .*(env EDIST_MAX_HANDSHAKES_PER_ADDRESS)"
has first_message_time "= 1.5 .*(flag --first-message-time)"
ok "admission options: max_handshakes, max_handshakes_per_address, first_message_time"

# Bounds of the send scheduler, the shards and the services keeper.
printf '[node]\nsname = lim\nservice_restart_period = 30\n' >"$tmp/lim.ini"
EDIST_RECEIVE_GRACE_TIME=0.5 "$EDIST" node --config "$tmp/lim.ini" --send-open-sequences 64 \
  --service-restarts 2 --print-config >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
has send_open_sequences "= 64 .*(flag --send-open-sequences)"
has receive_grace_time "= 0.5 .*(env EDIST_RECEIVE_GRACE_TIME)"
has service_restarts "= 2 .*(flag --service-restarts)"
has service_restart_period "= 30 .*(file $tmp/lim.ini:3)"
"$EDIST" node --sname x --print-config >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
has send_open_sequences "= 256 .*(default)"
has receive_grace_time "= 0.1 .*(default)"
has service_restarts "= 5 .*(default)"
has service_restart_period "= 10 .*(default)"
ok "send_open_sequences, receive_grace_time, service_restarts, service_restart_period: options, defaults 256, 0.1, 5, 10"

# Shards (issue 9): each of the three ways.
printf '[node]\nsname = sh\nshard_cores = 0,1\n' >"$tmp/sh.ini"
EDIST_SHARD_RING_ENTRIES=256 "$EDIST" node --config "$tmp/sh.ini" --shards 2 --print-config \
  >"$tmp/pc.out" 2>&1 || fail "--print-config: $(cat "$tmp/pc.out")"
has shards "= 2 .*(flag --shards)"
has shard_cores "= 0,1 .*(file $tmp/sh.ini:3)"
has shard_ring_entries "= 256 .*(env EDIST_SHARD_RING_ENTRIES)"
ok "shard options: shards, shard_cores, shard_ring_entries"

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
"$EDIST" node -sname x -setcookie c -connect_all false -hidden -listen_port 4001 \
  --print-config >"$tmp/erlish.out" 2>&1 || fail "erl spellings: $(cat "$tmp/erlish.out")"
for want in "sname .*= x .*(flag -sname)" "cookie .*(flag -setcookie)" \
            "connect_all .*= false .*(flag -connect_all)" "hidden .*= true .*(flag -hidden)" \
            "listen_port .*= 4001 .*(flag -listen_port)"; do
  grep -q "^$want" "$tmp/erlish.out" || fail "erl spellings: no '$want' in $(cat "$tmp/erlish.out")"
done
ok "erl's spellings: -sname, -setcookie, -connect_all false, -hidden, -listen_port"
ERL_EPMD_PORT=abc "$EDIST" node --sname x --print-config >"$tmp/r.out" 2>&1
[ $? -eq 2 ] && grep -q "ERL_EPMD_PORT='abc' is not a port" "$tmp/r.out" ||
  fail "bad ERL_EPMD_PORT: $(cat "$tmp/r.out")"
ok "a malformed ERL_EPMD_PORT is refused (exit 2), not taken as 4369"
refuse "bad ticktime" "ticktime must be seconds" node --sname x --ticktime soon
refuse "no name" "give --sname or --name" node --cookie c
refuse "two names" "both sname" node --sname a --name b@127.0.0.1
refuse "dotted short name" "use --name" node --sname a@x.y --cookie c --start-epmd false
refuse "bad name" "invalid node name" node --sname 'a b' --cookie c --start-epmd false
refuse "dpdk transport without a port" "transport dpdk (flag --transport) needs dpdk_port" node --sname a --transport dpdk
refuse "bad byte count" "send_queue_limit_bytes must be a positive size" node --sname a --send-queue-limit-bytes 5X
refuse "rx_buffers not a power of 2" "rx_buffers must be a power of 2" node --sname a --rx-buffers 100
refuse "zero idle exit" "epmd_idle_exit must be seconds" node --sname a --epmd-idle-exit 0
refuse "small lane window" "dpdk_recv_window_bytes must be a size from 16K to 1G" node --sname a --dpdk-recv-window-bytes 8K
refuse "small kernel lane window" "dpdk_kernel_window_bytes must be a size from 16K to 1G" node --sname a --dpdk-kernel-window-bytes 8K
refuse "small lane send buffer" "dpdk_send_buffer_bytes must be a size of 256K or more" node --sname a --dpdk-send-buffer-bytes 128K
refuse "lane hold below twice the window" "dpdk_hold_limit_bytes (1048576) must be at least twice the lane's receive window (1048576) plus 64K" \
  node --sname a --cookie c --start-epmd false --transport dpdk --dpdk-port net_null0 \
  --dpdk-hold-limit-bytes 1M --dpdk-recv-window-bytes 1M
printf '[node]\nsname = a\nno_such_key = 1\n' >"$tmp/bad.ini"
refuse "unknown config key" "bad.ini:3: unknown key 'no_such_key'" node --config "$tmp/bad.ini"
refuse "missing config file" "config file" node --config "$tmp/nope.ini"
refuse "ping without a node" "which node" ping --cookie c
refuse "zero max_handshakes" "max_handshakes must be a positive whole number" node --sname x --max-handshakes 0
refuse "zero shards" "shards must be 1 to 64" node --sname x --shards 0
refuse "65 shards" "shards must be 1 to 64" node --sname x --shards 65
refuse "bad shard_cores" "shard_cores must be CPU numbers" node --sname x --shard-cores 0,x
refuse "shard ring not a power of 2" "shard_ring_entries must be a power of 2" node --sname x --shard-ring-entries 100
refuse "bad dpdk_udp_address" "dpdk_udp_address must be an IPv4 address" node --sname x --dpdk-udp-address 10.0.0.300
refuse "bad dpdk_gateway_mac" "dpdk_gateway_mac must be a MAC address" node --sname x --dpdk-gateway-mac zz
refuse "rx_recycle_buffers over 1024" "rx_recycle_buffers must be 0 to 1024" node --sname x --rx-recycle-buffers 2000
refuse "dpdk_pool_mbufs under 1024" "dpdk_pool_mbufs must be a count from 1024 to 1048576" node --sname x --dpdk-pool-mbufs 100
refuse "service_restarts over 64" "service_restarts must be 1 to 64" node --sname x --service-restarts 65
refuse "send_open_sequences over 1024" "send_open_sequences must be 1 to 1024" node --sname x --send-open-sequences 2000
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
