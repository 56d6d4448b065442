#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist bench pair` in the configurations of README's table, one after the
# other, as a Markdown table: the median of REPEAT runs of each figure
# (default 3). Each run starts two edist nodes as two processes on this
# host, over the TCP lane or a DPDK one, with their own port mapper and
# cookie.
#   bench/pair.sh [BUILD_DIR]      (default build-bench, a release build)
# PAIR_ARGS adds options to every run (e.g. PAIR_ARGS="--count 200000
# --rtt-count 10000" for a quick look; --shards 2 once nodes have shards).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-bench}
edist=$build/cli/edist
[ -x "$edist" ] || { echo "no $edist: ninja -C $build cli/edist" >&2; exit 1; }
repeat=${REPEAT:-3}
read -r -a extra <<<"${PAIR_ARGS:-}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# lane bytes idle [udp]; the DPDK rows where this build has DPDK (root):
# memif, and af_xdp and af_packet on a veth pair between two network
# namespaces (kernel paths: figures without a target); one with the lane
# in UDP/IPv4 (--udp)
configs=("tcp 64 adaptive" "tcp 64 busy" "tcp 1024 adaptive" "tcp 1024 busy")
if "$edist" bench pair --help | grep -q 'memif'; then
  configs+=("memif 64 busy" "memif 1024 busy")
  configs+=("af_xdp 64 busy" "af_xdp 64 adaptive" "af_packet 64 busy" "af_packet 64 adaptive")
  configs+=("af_xdp 64 busy udp")
fi
for c in "${configs[@]}"; do
  read -r lane bytes idle udp <<<"$c"
  flags=(--lane "$lane" --bytes "$bytes" --idle "$idle")
  [ -z "$udp" ] || flags+=(--udp)
  for ((i = 1; i <= repeat; i++)); do
    echo "==> edist bench pair ${flags[*]} ${extra[*]} --json  ($i/$repeat)" >&2
    "$edist" bench pair "${flags[@]}" "${extra[@]}" --json >>"$tmp/runs.jsonl"
  done
done

python3 - "$tmp/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in runs:
    groups.setdefault((r["lane"], r["bytes"], r["idle"], r["shards"], r.get("udp", False)),
                      []).append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs)
print("| two edist nodes | stream, messages/s | stream, MB/s | "
      "round trip p50 / p99 / p99.9, µs | command |")
print("|---|---:|---:|---:|---|")
for (lane, b, idle, shards, udp), rs in groups.items():
    assert all(r["lost"] == 0 and r["out_of_order"] == 0 for r in rs)
    u = " --udp" if udp else ""
    cmd = f"`edist bench pair --lane {lane} --bytes {b} --idle {idle}{u}`"
    zc = ", memif zero-copy" if rs[0].get("memif_zero_copy") else ""
    print(f"| {lane}{' in UDP/IPv4' if udp else ''}, {b}-byte message, {idle} idle{zc}, "
          f"{shards} shard(s), median of {len(rs)} "
          f"| {med(rs, 'stream_msgs_per_s'):,.0f} "
          f"| {med(rs, 'stream_bytes_per_s') / 1e6:,.1f} "
          f"| {med(rs, 'rtt_p50_us'):.1f} / {med(rs, 'rtt_p99_us'):.1f} / "
          f"{med(rs, 'rtt_p999_us'):.1f} | {cmd} |")
PY

# The floor of those round trips on this host: the same loopback TCP,
# busy polling, no edist.
if [ -x "$build/bench/edist_tcp_pingpong" ]; then
  echo
  "$build/bench/edist_tcp_pingpong"
fi

# The floor of the memif rows: raw memif frames between two processes
# through edist's port layer (one frame per message), busy polling.
if [ -x "$build/bench/edist_memif_floor" ]; then
  "$build/bench/edist_memif_floor"
fi
