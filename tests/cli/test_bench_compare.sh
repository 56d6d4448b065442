#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/compare --quick from this build: every system that exists here
# (edist's lanes, edist to an erl node, two erl nodes, ZeroMQ when the
# build has its peer) gives every figure of its workloads, nothing lost,
# and the table, CSV, JSON, CDFs and (with gnuplot) the plots are written;
# no process of the run is left behind.
#   test_bench_compare.sh SOURCE_DIR BUILD_DIR
set -u
src=$1
build=$2
tmp=$(mktemp -d /tmp/bench_compare.XXXXXX)
export HOME=$tmp XDG_RUNTIME_DIR=$tmp
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
fail() { echo "FAIL: $*"; cat "$tmp/compare.err" 2>/dev/null | tail -30; exit 1; }

python3 "$src/bench/compare" --quick --no-build --build "$build" --out "$tmp/out" \
  >"$tmp/compare.out" 2>"$tmp/compare.err" &
pid=$!
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "bench/compare exited $rc"
out=$tmp/out
for f in results.md results.csv results.json; do
  [ -s "$out/$f" ] || fail "no $f"
done

systems=(edist-tcp edist-beam otp)
[ -x "$build/bench/edist_zmq_peer" ] &&
  systems+=(zmq-pushpull-tcp zmq-pushpull-ipc zmq-pair-tcp zmq-pair-ipc)
"$build/cli/edist" bench pair --help | grep -q memif && [ "$(id -u)" -eq 0 ] &&
  systems+=(edist-memif edist-af_xdp edist-af_packet)

python3 - "$out" "${systems[@]}" <<'PY' || fail "results"
import csv, json, os, sys
out, want = sys.argv[1], sys.argv[2:]
rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
have = {r["system"] for r in rows}
assert set(want) <= have, f"systems missing: {set(want) - have}"
for r in rows:
    assert float(r["median"]) > 0, f"a figure of 0: {r}"
    assert float(r["min"]) <= float(r["median"]) <= float(r["max"]), r
def metrics(s):
    return {(r["workload"], r["metric"]) for r in rows if r["system"] == s}
for s in want:
    m = metrics(s)
    assert ("stream", "stream_msgs_per_s") in m, (s, m)
    if not s.startswith("zmq-pushpull"):
        assert ("closed", "rtt_p99_us") in m, (s, m)
    if s.startswith(("edist-tcp", "edist-memif", "edist-beam", "otp", "zmq-pair")):
        assert ("open", "ol_p99_us") in m, (s, m)
    if s.startswith(("edist-tcp", "edist-memif", "edist-beam", "otp", "zmq-pushpull")):
        assert ("fan", "fanin_msgs_per_s") in m, (s, m)
runs = json.load(open(os.path.join(out, "results.json")))["runs"]
assert all(r["lost"] == 0 and r["duplicates"] == 0 for r in runs)
for s in want:
    if not s.startswith("zmq-pushpull"):
        cdf = os.path.join(out, "cdf", f"{s}_64B.closed.cdf")
        lines = [l for l in open(cdf) if not l.startswith("#")]
        vals = [float(l.split()[1]) for l in lines]
        assert len(lines) == 1002 and vals == sorted(vals) and vals[0] > 0, cdf
md = open(os.path.join(out, "results.md")).read()
for h in ("Stream, messages/s", "closed loop", "open loop", "Fan-out"):
    assert h in md, h
print(f"ok: {len(want)} systems, {len(rows)} figures")
PY
if command -v gnuplot >/dev/null; then
  for f in throughput.png rtt_closed_cdf.png rtt_open_cdf.png; do
    head -c 8 "$out/$f" 2>/dev/null | od -A n -t x1 | grep -q '89 50 4e 47' ||
      fail "$f is not a PNG"
  done
fi
# compare ends what it starts: no erl node or epmd of its run is left
sleep 0.5
if pgrep -f "cmpsink|cmpotp|cmpdrv" >/dev/null; then
  pgrep -af "cmpsink|cmpotp|cmpdrv"
  fail "processes of the run are left"
fi
echo "ok: bench/compare --quick"
