# SPDX-License-Identifier: Apache-2.0
# Shared by the node shell tests (sourced, not run):
#   test_node_*.sh EDIST_BINARY TEST_NODE_TOOL
# Each test runs its own port mapper on a free port (ERL_EPMD_PORT), uses
# unique node names, HOME in a temp dir, only 127.0.0.1, and ends every
# process it started by PID on exit, also on failure (tests/common/lib.sh).
set -u

EDIST=${1:?usage: $0 EDIST_BINARY TEST_NODE_TOOL}
TOOL=${2:?usage: $0 EDIST_BINARY TEST_NODE_TOOL}
. "$(dirname "${BASH_SOURCE[0]}")/../common/lib.sh"
peers_init edist-node-test
unset ERL_EPMD_ADDRESS ERL_EPMD_RELAXED_COMMAND_CHECK
# The shard options stay: `meson test --setup shards2` runs every node with
# two shards (EDIST_SHARDS=2).
for v in $(env | sed -n 's/^\(EDIST_[A-Z_]*\)=.*/\1/p'); do
  case $v in EDIST_SHARDS | EDIST_SHARD_CORES | EDIST_SHARD_RING_ENTRIES) ;; *) unset "$v" ;; esac
done
COOKIE=n2cookie$$
HOST=$(hostname -s)
# Short names need this host's name to resolve to the loopback.
getent hosts "$HOST" | grep -q '^127\.' || { echo "SKIP: $HOST does not resolve to 127.x"; exit 77; }

# A real OTP epmd on a free port for this test; sets EPMD_PORT and exports
# ERL_EPMD_PORT so that erl, erl_call and edist all use it.
start_real_epmd() {
  EPMD_PORT=$(freeport)
  epmd -port "$EPMD_PORT" -address 127.0.0.1 >"$tmp/epmd.log" 2>&1 &
  pids+=($!)
  export ERL_EPMD_PORT=$EPMD_PORT
  wait_until 10 epmd -port "$EPMD_PORT" -names || fail "epmd did not start on $EPMD_PORT"
}

# Our port mapper instead.
start_edist_epmd() {
  EPMD_PORT=$(freeport)
  "$EDIST" epmd -port "$EPMD_PORT" -address 127.0.0.1 >"$tmp/epmd.log" 2>&1 &
  pids+=($!)
  export ERL_EPMD_PORT=$EPMD_PORT
  wait_until 10 "$EDIST" names -port "$EPMD_PORT" || fail "edist epmd did not start on $EPMD_PORT"
}

registered() { epmd -port "$EPMD_PORT" -names 2>/dev/null | grep -q "^name $1 at port "; }

# start_edist TAG ARGS...: an `edist node` with stdout in TAG.out, stderr in
# TAG.err; sets LAST_PID. Waits for its ready line.
start_edist() {
  local tag=$1
  shift
  "$EDIST" node "$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err" &
  LAST_PID=$!
  pids+=($LAST_PID)
  wait_until 20 grep -q ' ready (listening on port ' "$tmp/$tag.out" ||
    fail "edist node $tag did not get ready"
}

# start_erl TAG NAME ARGS...: a long-lived erl node that prints
# "nodeup N" / "nodedown N Reason" lines for every node (hidden too) to
# TAG.out; sets LAST_PID. Waits until it is registered.
start_erl() {
  local tag=$1 name=$2
  shift 2
  erl -sname "$name" -setcookie "$COOKIE" -noshell -start_epmd false \
    -kernel inet_dist_use_interface '{127,0,0,1}' "$@" \
    -eval 'ok = net_kernel:monitor_nodes(true, [nodedown_reason, {node_type, all}]),
           io:format("erl ready~n"),
           Loop = fun L() ->
               receive
                   {nodeup, N, _} -> io:format("nodeup ~s~n", [N]);
                   {nodedown, N, I} -> io:format("nodedown ~s ~p~n",
                                          [N, proplists:get_value(nodedown_reason, I)])
               end, L() end,
           Loop().' >"$tmp/$tag.out" 2>&1 &
  LAST_PID=$!
  pids+=($LAST_PID)
  wait_until 25 registered "$name" || fail "erl $name did not register"
  wait_until 10 grep -q '^erl ready' "$tmp/$tag.out" || fail "erl $name not ready"
}

# erl_eval NODE EXPR: evaluate on a running erl node (erl_call, hidden);
# prints {ok, Result} with the spaces erl_call puts after commas removed.
erl_eval() {
  erl_call -sname "$1" -c "$COOKIE" -e <<<"$2" | sed 's/, /,/g'
}
