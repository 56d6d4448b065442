# SPDX-License-Identifier: Apache-2.0
# Shared by the port mapper shell tests (sourced, not run):
#   test_epmd_*.sh EDIST_BINARY TEST_EPMD_TOOL
# Every process a test starts is recorded and killed by PID on exit; all
# traffic stays on 127.0.0.1, on ports chosen free, never 4369.
set -u

EDIST=${1:?usage: $0 EDIST_BINARY TEST_EPMD_TOOL}
TOOL=${2:?usage: $0 EDIST_BINARY TEST_EPMD_TOOL}
tmp=$(mktemp -d /tmp/edist-epmd-test.XXXXXX)
export HOME=$tmp         # erl's cookie file, if any, lands here
unset ERL_EPMD_PORT ERL_EPMD_ADDRESS ERL_EPMD_RELAXED_COMMAND_CHECK
pids=()
checks=0

cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -KILL "$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  local f
  for f in "$tmp"/*.log "$tmp"/*.out; do
    [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }
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

# names_has PORT TEXT: our client's NAMES reply contains TEXT.
names_has() { "$TOOL" names "$1" 2>/dev/null | grep -qF -- "$2"; }
names_lacks() { ! names_has "$@"; }

done_ok() {
  echo "PASSED: $checks checks"
  exit 0
}
