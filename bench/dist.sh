#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two nodes on one host, side by side in one run: edist over the io_uring
# TCP data plane, Erlang/OTP distribution (two erl nodes), and ZeroMQ
# (PUSH/PULL, REQ/REP) over TCP loopback; the same 64-byte message.
# Prints a table with edist's ratio to each (higher is better for edist).
#   bench/dist.sh [BUILD_DIR]      (default build-bench, a release build)
# EDIST_BENCH_IDLE=busy makes the edist shards busy-poll.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-bench}
bin=$build/bench/edist_bench_dist
[ -x "$bin" ] || { echo "no $bin: ninja -C $build bench/edist_bench_dist" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
epmd -port "$port" &
pids+=($!)
export ERL_EPMD_PORT=$port
erlc -o "$tmp" "$top/bench/dist_bench.erl"
n2=distb2_$$@127.0.0.1
erl -name "$n2" -setcookie benchcookie -pa "$tmp" -noshell -noinput >"$tmp/n2.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  epmd -port "$port" -names 2>/dev/null | grep -q "distb2_$$" && break
  sleep 0.1
done

echo "==> Erlang/OTP $(erl -noshell -eval 'io:format("~s",[erlang:system_info(otp_release)]), halt().') distribution"
erl -name "distb1_$$@127.0.0.1" -setcookie benchcookie -pa "$tmp" -noshell \
  -eval "dist_bench:main([\"$n2\", \"1000000\", \"100000\", \"3\"])" | tee "$tmp/erl.out"
echo "==> edist and ZeroMQ (idle ${EDIST_BENCH_IDLE:-adaptive}; medians of 3)"
"$bin" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$tmp/edist.json" --benchmark_out_format=json

python3 - "$tmp/erl.out" "$tmp/edist.json" <<'PY'
import json, sys
erl = dict(l.split() for l in open(sys.argv[1]) if l.strip())
runs = json.load(open(sys.argv[2]))["benchmarks"]
med = {r["run_name"].split("/")[0]: r["items_per_second"]
       for r in runs if r.get("aggregate_name") == "median"}
rows = [("stream, messages/s", med["BM_DistStream"], float(erl["erl_stream"]), med["BM_ZmqStream"]),
        ("ping-pong, round trips/s", med["BM_DistPingPong"], float(erl["erl_pingpong"]), med["BM_ZmqPingPong"])]
print()
print("| two nodes, 64-byte message | edist | Erlang/OTP | ZeroMQ | edist/Erlang | edist/ZeroMQ |")
print("|---|---:|---:|---:|---:|---:|")
for name, e, o, z in rows:
    print(f"| {name} | {e:,.0f} | {o:,.0f} | {z:,.0f} | {e/o:.2f}x | {e/z:.2f}x |")
PY
