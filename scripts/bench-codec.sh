#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Codec benchmark, edist vs erl_interface's ei, as a markdown table.
#
#   scripts/bench-codec.sh [BUILD_DIR]                 time per term (default)
#   scripts/bench-codec.sh --instructions [BUILD_DIR]  instructions per term
#
# BUILD_DIR defaults to build-bench. Numbers need an optimised build: if
# BUILD_DIR has none yet it is set up as one,
#   meson setup BUILD_DIR --buildtype=release -Dtests=false -Dbench=enabled \
#     -Dwerror=false
# and the benchmark is (re)built with ninja -C BUILD_DIR bench/edist_bench_codec.
#
# Time: one run of every benchmark, so both sides see the same machine noise,
# 5 repetitions interleaved at random; the table shows medians and the
# spread (the machine is shared and noisy). About a minute.
# Instructions: each benchmark once under valgrind's callgrind at a fixed
# iteration count, counting only the benchmark loops: exact and repeatable,
# for comparing code changes on a noisy machine. About two minutes.
#
# Environment: BENCH_MIN_TIME (seconds per repetition, default 0.15),
# BENCH_REPETITIONS (default 5), BENCH_FILTER (a --benchmark_filter regex),
# BENCH_ITERATIONS (passes over the corpus for --instructions, default 20).
set -euo pipefail

mode="time"
if [ "${1:-}" = --instructions ]; then
  mode=instructions
  shift
fi
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
case "$build" in
  /*) ;;
  *) build="$PWD/$build" ;;
esac

die() { printf 'bench-codec: %s\n' "$*" >&2; exit 1; }

# werror off: the codec builds warning-free at -O3 (gcc and clang), but the
# benchmark links the whole library and a -O3-only warning elsewhere
# (maybe-uninitialized) must not stop a measurement.
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" --buildtype=release -Dtests=false \
    -Dbench=enabled -Dwerror=false >&2 || die "meson setup $build failed"
fi
ninja -C "$build" bench/edist_bench_codec >&2 ||
  die "build failed (is 'bench' enabled in $build?)"

exe="$build/bench/edist_bench_codec"
[ -x "$exe" ] || die "$exe not built"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

filter=()
[ -n "${BENCH_FILTER:-}" ] && filter=(--benchmark_filter="$BENCH_FILTER")

if [ "$mode" = time ]; then
  args=(
    --benchmark_repetitions="${BENCH_REPETITIONS:-5}"
    --benchmark_report_aggregates_only=true
    --benchmark_enable_random_interleaving=true
    --benchmark_min_time="${BENCH_MIN_TIME:-0.15}"
    ${filter[@]+"${filter[@]}"}
  )
  cmdline="$exe ${args[*]}"
  # Console report to stderr as progress; the table comes from the JSON.
  "$exe" "${args[@]}" --benchmark_out="$work/run.json" \
    --benchmark_out_format=json >&2 || die "benchmark run failed"
else
  command -v valgrind >/dev/null || die "--instructions needs valgrind"
  iterations=${BENCH_ITERATIONS:-20}
  export EDIST_BENCH_ITERATIONS=$iterations
  cmdline="EDIST_BENCH_ITERATIONS=$iterations valgrind --tool=callgrind --toggle-collect='*bm_*' $exe --benchmark_filter='^NAME\$'"
  : >"$work/ir.tsv"
  "$exe" --benchmark_list_tests ${filter[@]+"${filter[@]}"} >"$work/names" ||
    die "cannot list benchmarks"
  while read -r name; do
    printf 'callgrind: %s\n' "$name" >&2
    valgrind --tool=callgrind --toggle-collect='*bm_*' \
      --callgrind-out-file="$work/cg.out" "$exe" --benchmark_filter="^$name\$" \
      --benchmark_out="$work/run.json" --benchmark_out_format=json \
      >/dev/null 2>"$work/valgrind.log" || {
        tail -20 "$work/valgrind.log" >&2; die "callgrind run of $name failed"; }
    ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$work/cg.out")
    [ -n "$ir" ] || die "no instruction count for $name"
    printf '%s\t%s\n' "${name%/iterations:*}" "$ir" >>"$work/ir.tsv"
  done <"$work/names"
fi

python3 - "$mode" "$work" "$build" "$cmdline" "${iterations:-0}" <<'EOF'
import json, re, sys

mode, work, build, command = sys.argv[1:5]
iterations = int(sys.argv[5])
with open(work + "/run.json") as f:
    doc = json.load(f)
ctx = doc.get("context", {})
buildtype = "?"
try:
    with open(build + "/meson-info/intro-buildoptions.json") as f:
        buildtype = next(o["value"] for o in json.load(f)
                         if o["name"] == "buildtype")
except (OSError, ValueError, StopIteration, KeyError):
    pass

kinds = ["mixed", "tuple", "bin1k", "map10", "list100"]
messages = {}
for k in kinds:
    m = re.match(r"(\d+) messages", ctx.get("corpus_" + k, ""))
    if m:
        messages[k] = int(m.group(1))

value, spread = {}, {}  # per benchmark name: cost per term, and its spread
if mode == "time":
    unit = "ns/term"
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            sys.exit("bench-codec: %s: %s" % (b["name"], b.get("error_message")))
        name = b.get("run_name", b["name"])
        if b.get("aggregate_name") == "median":
            value[name] = 1e9 / b["items_per_second"]
        elif b.get("aggregate_name") == "cv":
            spread[name] = b["items_per_second"]  # a fraction for "cv"
else:
    unit = "instructions/term"
    for line in open(work + "/ir.tsv"):
        name, ir = line.split("\t")
        kind = name.split("/")[1]
        value[name] = int(ir) / (iterations * messages[kind])

def fmt(v, spec="%.1f"):
    return spec % v if v is not None else "n/a"

def cell(name):
    v = value.get(name)
    s = fmt(v, "%.1f" if mode == "time" else "%.0f")
    if name in spread:
        s += " (±%.0f%%)" % (100 * spread[name])
    return s

def ratio(num, den):
    a, b = value.get(num), value.get(den)
    return fmt(a / b if a and b else None, "%.2fx")

targets = {"decode": 2.0, "encode": 1.5}
title = "median time" if mode == "time" else "instructions (callgrind)"
print("## edist vs ei codec: %s per term\n" % title)
print("Command: `%s`  " % command)
print("Build type: %s; host: %s CPUs @ %s MHz, load average %s; "
      "libbenchmark build: %s\n" % (
          buildtype, ctx.get("num_cpus", "?"), ctx.get("mhz_per_cpu", "?"),
          " ".join("%.2f" % x for x in ctx.get("load_avg", [])) or "?",
          ctx.get("library_build_type", "?")))
for k in kinds:
    if ctx.get("corpus_" + k):
        print("- corpus %s: %s" % (k, ctx["corpus_" + k]))
print()
verdicts = []
for op in ("decode", "encode"):
    extra = op == "encode"
    print("### %s (target: ei/edist >= %.1fx)\n" % (op, targets[op]))
    head = "| kind | edist %s | ei %s | ratio (ei/edist) |" % (unit, unit)
    rule = "|---|---:|---:|---:|"
    if extra:
        head += " ei_x %s | ratio (ei_x/edist) |" % unit
        rule += "---:|---:|"
    print(head)
    print(rule)
    for k in kinds:
        e, i, x = ("%s/%s/%s" % (op, k, side) for side in ("edist", "ei", "ei_x"))
        if e not in value and i not in value:
            continue
        row = "| %s | %s | %s | %s |" % (k, cell(e), cell(i), ratio(i, e))
        if extra:
            row += " %s | %s |" % (cell(x), ratio(x, e))
        print(row)
        if k == "mixed" and value.get(e) and value.get(i):
            r = value[i] / value[e]
            verdicts.append("%s mixed: %.2fx (target %.1fx): %s" % (
                op, r, targets[op], "met" if r >= targets[op] else "NOT met"))
    print()
if mode == "time":
    print("ns/term = 1e9 / items_per_second (median); ± is the coefficient "
          "of variation over the repetitions.\n")
else:
    print("Instructions executed inside the benchmark loops divided by the "
          "terms processed; the harness's own walk is included on both "
          "sides.\n")
for v in verdicts:
    print("- " + v)
EOF
