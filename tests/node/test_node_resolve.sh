#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs test_node_resolve in a private network and mount namespace (lo
# only, so port 4369 and 53 are ours) whose /etc/resolv.conf names one DNS
# server that never answers: resolving a host there takes seconds.
# Needs root (unshare); everything it starts is ended by PID.
#   test_node_resolve.sh EDIST TEST_PROGRAM
set -euo pipefail
edist=$1 prog=$2
if [ -z "${EDIST_IN_NS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root for unshare"; exit 77; }
  exec env EDIST_IN_NS=1 unshare --mount --net --propagation private -- "$0" "$@"
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount /etc/resolv.conf 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

ip link set lo up
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n' >"$tmp/resolv.conf"
mount --bind "$tmp/resolv.conf" /etc/resolv.conf

# A DNS server that takes every query and answers none.
python3 - <<'PY' &
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 53))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", 53))
t.listen(16)
time.sleep(600)
PY
pids+=($!)
"$edist" epmd -port 4369 &
pids+=($!)
up() { ss -Hln "sport = :$1" | grep -q .; }
for _ in $(seq 100); do
  up 53 && up 4369 && break
  sleep 0.05
done
up 53 && up 4369 || { echo "the DNS black hole or the port mapper did not start"; exit 1; }
"$prog"
