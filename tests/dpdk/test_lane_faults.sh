#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The DPDK lane on a lossy medium (issue 10): `edist bench pair --lane
# af_xdp|af_packet --faults PCT`, where a third network namespace between
# the two nodes' veths drops, duplicates and reorders PCT% of the frames
# each, both ways (cli/bench_netns.h says why not netem):
#   test_lane_faults.sh EDIST [MEDIUM...]          (default: af_xdp af_packet)
# - 1%, 5%, 20%: a stream of $EDIST_LANE_FAULT_MESSAGES (1,000,000) numbered
#   messages arrives complete, in order, exactly once (lost, out_of_order,
#   duplicates 0 in the JSON), and the wire did drop, duplicate and delay
#   frames;
# - 5% with the lane's frames in UDP/IPv4 (--udp): a fifth as many
#   messages, complete, in order, once;
# - 5%: 16 MiB messages reassemble (4 of them, none malformed). Not at
#   20%: under ASan a 16 MiB message there can take longer than bench
#   pair's 10 s without an acknowledgement (it passes in a gcc build).
# Needs root and `ip netns`: exit 77 (skip) otherwise.
set -u
EDIST=${1:?usage: $0 EDIST [MEDIUM...]}
shift
media=${*:-af_xdp af_packet}
count=${EDIST_LANE_FAULT_MESSAGES:-1000000}
TOOL=/bin/false
. "$(dirname "$0")/../common/lib.sh"
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to create network namespaces and veth pairs"
  exit 77
fi
if ! command -v ip >/dev/null || ! command -v tc >/dev/null || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: ip netns or tc is not available"
  exit 77
fi
peers_init edist-lane-faults
for v in $(env | sed -n 's/^\(EDIST_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

# run TAG CHECK ARGS...: bench pair ARGS --json --verbose (ended by its PID);
# its JSON `o` asserted with the Python expression CHECK, and the wire's
# counts (from --verbose) each above zero.
run() {
  local tag=$1 check=$2 t0=$SECONDS
  shift 2
  "$EDIST" bench pair "$@" --json --verbose >"$tmp/$tag.out" 2>"$tmp/$tag.err" &
  local bp=$!
  pids+=("$bp")
  wait "$bp" || fail "bench pair $*: exit $?: $(grep -v -e libbpf -e libxdp "$tmp/$tag.err" | tail -5)"
  python3 -c "import json,sys; o=json.load(open(sys.argv[1])); assert $check, o" \
    "$tmp/$tag.out" || fail "bench pair $*: $(cat "$tmp/$tag.out")"
  wire=$(grep -o 'the wire dropped .*' "$tmp/$tag.err")
  [[ "$wire" =~ dropped\ ([0-9]+)\ frames,\ duplicated\ ([0-9]+),\ delayed\ ([0-9]+) ]] &&
    [ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[2]}" -gt 0 ] && [ "${BASH_REMATCH[3]}" -gt 0 ] ||
    fail "bench pair $*: the wire did not drop, duplicate and delay frames: '$wire'"
  took=$((SECONDS - t0))
}
clean="o['lost'] == 0 and o['out_of_order'] == 0 and o['duplicates'] == 0 and o['bad_messages'] == 0 and not o['stalled']"

for medium in $media; do
  for pct in 1 5 20; do
    run "$medium$pct" "o['messages'] == $count and $clean" \
      --lane "$medium" --faults "$pct" --count "$count" --rtt-count 200
    ok "$medium, $pct% of frames dropped, duplicated and reordered each way: $count messages once each, in order ($(python3 -c "import json; print(round(json.load(open('$tmp/$medium$pct.out'))['stream_msgs_per_s']))") msg/s, $took s); $wire"
  done
  run "${medium}big" "o['messages'] == 4 and $clean" \
    --lane "$medium" --faults 5 --bytes 16M --count 4 --rtt-count 2 --warmup 1
  ok "$medium, 5%: 16 MiB messages reassembled ($took s); $wire"
  # The lane's frames in UDP/IPv4 (dpdk_udp_address) on the same wire.
  udp_count=$((count / 5))
  run "${medium}udp" "o['messages'] == $udp_count and o['udp'] and $clean" \
    --lane "$medium" --udp --faults 5 --count "$udp_count" --rtt-count 200
  ok "$medium in UDP/IPv4, 5%: $udp_count messages once each, in order ($took s); $wire"
done
leftover=$(ip netns list | grep -c "^edist-bp-" || true)
[ "$leftover" = 0 ] || fail "namespaces left behind: $(ip netns list | grep '^edist-bp-')"
done_ok
