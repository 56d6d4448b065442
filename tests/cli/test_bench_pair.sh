#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `edist bench pair`:   test_bench_pair.sh EDIST
# A small run with --json prints one JSON object with every key, nothing
# lost or out of order, figures positive; the table without --json; an
# unknown or missing lane is refused naming the known ones; --shards as
# far as this build's nodes have shards. Every process it started (the
# PIDs it reports with --verbose, and anything carrying its node names) is
# gone afterwards, and was reaped by bench pair itself (the exit status it
# reports): after a run, after SIGTERM or SIGINT mid-run, after a
# child overran --timeout, after a child failed to start. No figure is
# compared with a threshold: only counts and signs.
set -u
EDIST=${1:?usage: $0 EDIST}
. "$(dirname "$0")/../common/lib.sh"
peers_init edist-bench-pair-test
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

# Small counts: this checks the mechanism, not the speed.
SMALL=(--count 20000 --rtt-count 2000)

# no_leftovers ERR PARENT_PID: the PIDs named in ERR are gone, and no
# process carries the run's node names.
no_leftovers() {
  local err=$1 parent=$2 p
  local started
  started=$(sed -n 's/.* started (pid \([0-9]*\))$/\1/p' "$err")
  [ -n "$started" ] || fail "no child PIDs reported in $err"
  gone() { ! kill -0 "$1" 2>/dev/null; }
  for p in $started; do
    wait_until 5 gone "$p" ||
      fail "process $p started by bench pair is still there: $(ps -o args= -p "$p")"
  done
  named() { pgrep -f "edist_bench_[ab]_$1@" >/dev/null; }
  ! named "$parent" || fail "left over: $(pgrep -af "edist_bench_[ab]_$parent@")"
  echo "$started" | wc -w
}

# run NAME ARGS...: bench pair in the background, $run_pid; waits for it,
# $rc its exit status.
run() {
  local name=$1
  shift
  "$EDIST" bench pair "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  run_pid=$!
  pids+=("$run_pid")
  wait "$run_pid"
  rc=$?
}

# 1. --json: one object, every key, nothing lost, figures positive.
run json --lane tcp "${SMALL[@]}" --json --verbose
[ "$rc" = 0 ] || fail "bench pair --json exited $rc: $(cat "$tmp/json.err")"
python3 - "$tmp/json.out" <<'PY' || fail "bad JSON: $(cat "$tmp/json.out")"
import json, sys
text = open(sys.argv[1]).read()
obj = json.loads(text)  # exactly one value, nothing else on stdout
keys = ["lane", "bytes", "messages", "stream_msgs_per_s", "stream_bytes_per_s",
        "rtt_p50_us", "rtt_p90_us", "rtt_p99_us", "rtt_p999_us", "rtt_max_us",
        "lost", "out_of_order", "shards", "idle"]
missing = [k for k in keys if k not in obj]
assert not missing, f"missing keys {missing}"
assert obj["lane"] == "tcp" and obj["idle"] == "adaptive", obj
assert obj["bytes"] == 64 and obj["messages"] == 20000, obj
assert obj["lost"] == 0 and obj["out_of_order"] == 0, obj
assert obj["shards"] >= 1, obj
for k in ["stream_msgs_per_s", "stream_bytes_per_s", "rtt_p50_us",
          "rtt_p90_us", "rtt_p99_us", "rtt_p999_us", "rtt_max_us"]:
    assert isinstance(obj[k], (int, float)) and obj[k] > 0, (k, obj[k])
assert obj["rtt_p50_us"] <= obj["rtt_p90_us"] <= obj["rtt_p99_us"] \
    <= obj["rtt_p999_us"] <= obj["rtt_max_us"], obj
assert abs(obj["stream_bytes_per_s"] - 64 * obj["stream_msgs_per_s"]) \
    <= 0.001 * obj["stream_bytes_per_s"] + 1, obj
print("json ok:", {k: obj[k] for k in ["stream_msgs_per_s", "rtt_p50_us", "lost"]})
PY
grep -q 'ended node a (pid [0-9]*, exited with status 0), node b (pid [0-9]*, exited with status 0)$' "$tmp/json.err" ||
  fail "not both reaped with status 0: $(cat "$tmp/json.err")"
n=$(no_leftovers "$tmp/json.err" "$run_pid")
ok "--json: one object with every key, lost 0, out_of_order 0, figures positive; its $n children are gone"

# 1a. The open loop and the fan-out/fan-in, and parts left out: every ping
# answered and timed, every fan message received, the CDFs written.
run loops --lane tcp --count 0 --rtt-count 0 --rate 20000 --ol-count 2000 \
  --fan 4 --fan-count 4002 --samples "$tmp/cdf" --json --verbose
[ "$rc" = 0 ] || fail "bench pair --rate --fan exited $rc: $(cat "$tmp/loops.err")"
python3 - "$tmp/loops.out" "$tmp/cdf" <<'PY' || fail "open loop/fan: $(cat "$tmp/loops.out")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["messages"] == 0 and o["rtt_count"] == 0, o
assert o["ol_rate"] == 20000 and o["ol_count"] == 2000 and o["ol_received"] == 2000, o
assert 0 < o["ol_p50_us"] <= o["ol_p99_us"] <= o["ol_max_us"], o
assert o["fan"] == 4 and o["fanout_msgs_per_s"] > 0 and o["fanin_msgs_per_s"] > 0, o
assert o["lost"] == 0 and o["duplicates"] == 0, o
rows = [l.split() for l in open(sys.argv[2] + ".open.cdf") if not l.startswith("#")]
assert len(rows) == 1002 and float(rows[-1][0]) == 100, rows[-3:]
assert abs(float(rows[-1][1]) - o["ol_max_us"]) < 0.01, (rows[-1], o["ol_max_us"])
PY
n=$(no_leftovers "$tmp/loops.err" "$run_pid")
ok "--rate/--fan: 2000 of 2000 pings timed on schedule, 4000 fan messages each way, CDF written; $n children gone"

# 1b. Busy-polling nodes (they read and write their connection themselves
# while it is active): the same clean result.
run busy --lane tcp "${SMALL[@]}" --idle busy --json --verbose
[ "$rc" = 0 ] || fail "bench pair --idle busy exited $rc: $(cat "$tmp/busy.err")"
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["idle"] == "busy" and o["lost"] == 0 and o["out_of_order"] == 0 and o["duplicates"] == 0 and o["rtt_p50_us"] > 0, o' \
  "$tmp/busy.out" || fail "busy: $(cat "$tmp/busy.out")"
no_leftovers "$tmp/busy.err" "$run_pid" >/dev/null
ok "--idle busy: lost 0, out_of_order 0, duplicates 0; children gone"

# 2. The table, another message size.
run table --lane tcp --count 3000 --rtt-count 300 --bytes 1K --verbose
[ "$rc" = 0 ] || fail "bench pair exited $rc: $(cat "$tmp/table.err")"
grep -q '^edist bench pair: lane tcp, 1024-byte messages' "$tmp/table.out" ||
  fail "no heading: $(cat "$tmp/table.out")"
grep -q 'lost 0, out of order 0, duplicated 0, malformed 0' "$tmp/table.out" ||
  fail "no clean stream line: $(cat "$tmp/table.out")"
grep -q '^  round trip  p50 .* p99.9 .* max ' "$tmp/table.out" ||
  fail "no percentiles: $(cat "$tmp/table.out")"
no_leftovers "$tmp/table.err" "$run_pid" >/dev/null
ok "table of 1 KiB messages: clean stream, percentiles; children gone"

# 3. Lanes: unknown and missing refused with the known ones; bad usage.
"$EDIST" bench pair --lane nosuch "${SMALL[@]}" >"$tmp/lane.out" 2>"$tmp/lane.err"
rc=$?
[ "$rc" = 2 ] || fail "unknown lane exited $rc"
grep -q "unknown lane 'nosuch' (known: tcp[,)]" "$tmp/lane.err" ||
  fail "no clear message: $(cat "$tmp/lane.err")"
[ ! -s "$tmp/lane.out" ] || fail "stdout for an unknown lane: $(cat "$tmp/lane.out")"
"$EDIST" bench pair "${SMALL[@]}" 2>"$tmp/nolane.err"
rc=$?
[ "$rc" = 2 ] && grep -q 'which lane? --lane LANE (known: tcp[,)]' "$tmp/nolane.err" ||
  fail "missing lane: exit $rc, $(head -1 "$tmp/nolane.err")"
for bad in "--bytes 5" "--count -1" "--idle sleepy" "--frobnicate 1" \
  "--ol-count 5" "--fan-count 9" "--fan 2000" "--rate 0" "--timeout abc" \
  "--json=1" "--udp"; do
  # shellcheck disable=SC2086
  "$EDIST" bench pair --lane tcp $bad 2>"$tmp/bad.err"
  rc=$?
  [ "$rc" = 2 ] || fail "bench pair $bad exited $rc"
  head -1 "$tmp/bad.err" | grep -q '^edist:\{0,1\} bench pair: ' || fail "$bad: $(head -1 "$tmp/bad.err")"
done
"$EDIST" bench pair --help | grep -q -- '--lane LANE' || fail "no --help"
ok "unknown lane: exit 2, \"unknown lane 'nosuch' (known: tcp)\"; missing lane, bad values: exit 2"

# 4. Shards: passed to the nodes where they have the option; else only 1.
if "$EDIST" node --sname x --print-config 2>/dev/null | grep -q '^shards '; then
  run shards --lane tcp "${SMALL[@]}" --shards 2 --json --verbose
  [ "$rc" = 0 ] || fail "--shards 2 exited $rc: $(cat "$tmp/shards.err")"
  python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["shards"] == 2 and o["lost"] == 0, o' \
    "$tmp/shards.out" || fail "shards: $(cat "$tmp/shards.out")"
  no_leftovers "$tmp/shards.err" "$run_pid" >/dev/null
  ok "--shards 2: nodes with two shards, nothing lost"
else
  "$EDIST" bench pair --lane tcp --shards 2 2>"$tmp/shards.err"
  rc=$?
  [ "$rc" = 2 ] && grep -q -- '--shards 2: the nodes of this build run one shard each' "$tmp/shards.err" ||
    fail "--shards 2 without shards: exit $rc, $(head -1 "$tmp/shards.err")"
  run shards1 --lane tcp --count 2000 --rtt-count 100 --shards 1 --json --verbose
  [ "$rc" = 0 ] || fail "--shards 1 exited $rc"
  no_leftovers "$tmp/shards1.err" "$run_pid" >/dev/null
  ok "--shards 2 refused clearly (no shards option in this build); --shards 1 runs"
fi

# 5. SIGTERM and SIGINT to bench pair mid-run (a stream far too long to
# finish): it ends both nodes and exits 128+N.
for sig in TERM:143 INT:130; do
  name=${sig%%:*} want=${sig##*:}
  "$EDIST" bench pair --lane tcp --count 2000000000 --timeout 300 --verbose \
    >"$tmp/sig$name.out" 2>"$tmp/sig$name.err" &
  run_pid=$!
  pids+=("$run_pid")
  wait_until 30 grep -q 'node a .* started' "$tmp/sig$name.err" ||
    fail "node a did not start: $(cat "$tmp/sig$name.err")"
  sleep 0.3 # the stream is running
  kids=$(pgrep -f "edist_bench_[ab]_$run_pid@" | wc -l)
  [ "$kids" = 2 ] || fail "$kids node processes while running, want 2"
  kill -"$name" "$run_pid"
  wait "$run_pid"
  rc=$?
  [ "$rc" = "$want" ] || fail "SIG$name: exit $rc, want $want: $(cat "$tmp/sig$name.err")"
  grep -q "stopped by signal" "$tmp/sig$name.err" || fail "no message: $(cat "$tmp/sig$name.err")"
  # Ended and reaped by bench pair itself (not only by PR_SET_PDEATHSIG
  # once it is gone): the driver by SIGTERM, the sink stopped cleanly.
  grep -q 'ended node a (pid [0-9]*, was killed by signal 15), node b (pid [0-9]*, exited with status 0)$' \
    "$tmp/sig$name.err" || fail "not ended by bench pair: $(cat "$tmp/sig$name.err")"
  [ ! -s "$tmp/sig$name.out" ] || fail "stdout after SIG$name: $(cat "$tmp/sig$name.out")"
  no_leftovers "$tmp/sig$name.err" "$run_pid" >/dev/null
  ok "SIG$name mid-run: exit $want, both nodes ended by PID and reaped (driver by SIGTERM, sink stopped cleanly)"
done

# 6. A child that overruns --timeout is ended.
run timeout --lane tcp --count 2000000000 --timeout 2 --verbose
[ "$rc" = 1 ] || fail "timeout: exit $rc"
grep -q 'node a (pid [0-9]*) did not finish within 2 s (--timeout)' "$tmp/timeout.err" ||
  fail "no timeout message: $(cat "$tmp/timeout.err")"
grep -q 'ended node a (pid [0-9]*, was killed by signal 15), node b (pid [0-9]*, exited with status 0)$' \
  "$tmp/timeout.err" || fail "not ended by bench pair: $(cat "$tmp/timeout.err")"
no_leftovers "$tmp/timeout.err" "$run_pid" >/dev/null
ok "--timeout 2 on an endless stream: exit 1, said so, both nodes ended"

# 7. A node that cannot start (a bad option in the environment): exit 1
# with the node's reason, nothing left.
export EDIST_RX_BUFFERS=3
run badnode --lane tcp "${SMALL[@]}" --verbose
unset EDIST_RX_BUFFERS
[ "$rc" = 1 ] || fail "bad node option: exit $rc"
grep -q 'rx_buffers must be a power of 2' "$tmp/badnode.err" &&
  grep -q 'node b (pid [0-9]*) exited with status 1 before it was ready' "$tmp/badnode.err" ||
  fail "unclear: $(cat "$tmp/badnode.err")"
grep -q 'ended node a (pid 0, not started), node b (pid [0-9]*, exited with status 1)$' \
  "$tmp/badnode.err" || fail "not reaped: $(cat "$tmp/badnode.err")"
no_leftovers "$tmp/badnode.err" "$run_pid" >/dev/null
ok "a node that cannot start: exit 1 with its reason, nothing left"
done_ok
