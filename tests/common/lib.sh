# SPDX-License-Identifier: Apache-2.0
# Plumbing shared by the shell tests with real peers (sourced, not run; by
# tests/control/test_epmd_lib.sh and tests/node/test_node_lib.sh):
#   peers_init NAME   a temp dir $tmp (/tmp/NAME.XXXXXX) that is also HOME;
#                     an EXIT trap that kills every PID in pids() (SIGCONT
#                     first, for a stopped one), reaps them and removes $tmp,
#                     also on failure or SIGTERM/SIGINT.
#   pids+=($!)        record every process a test starts.
#   fail / ok / done_ok, wait_until, freeport ($TOOL freeport).
set -u

pids=()
checks=0

peers_init() {
  tmp=$(mktemp -d "/tmp/$1.XXXXXX")
  export HOME=$tmp # erl's cookie file, if any, lands here
  export XDG_RUNTIME_DIR=$tmp # and nodes' published counters (edist stat --local)
  trap cleanup EXIT
  # A timeout's SIGTERM (or ^C) must run the EXIT trap too.
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill -KILL "$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}

fail() {
  echo "FAIL: $*"
  local f
  for f in "$tmp"/*.log "$tmp"/*.out "$tmp"/*.err; do
    [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }
  done
  exit 1
}

ok() {
  checks=$((checks + 1))
  echo "ok: $*"
}

# wait_until SECONDS CMD...: polls CMD every 50 ms.
wait_until() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 20; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

freeport() { "$TOOL" freeport; }

done_ok() {
  echo "PASSED: $checks checks"
  exit 0
}
