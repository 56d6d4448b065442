#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Instructions per benchmark iteration, two builds side by side, as a
# Markdown table: every benchmark of bench/edist_bench_codec and
# bench/edist_bench_runtime (or those matching --filter), with rows whose
# new/old ratio is above 1.05 flagged. Counts come from valgrind, so they do
# not depend on the machine's load.
#
#   bench/instructions.sh [options] OLD_BUILD NEW_BUILD
#   bench/instructions.sh [options] --rev REV [NEW_BUILD]
#
# Builds are release builds with both benchmarks (ninja brings them up to
# date first). --rev REV checks REV out in a temporary worktree, builds it
# there (release, -Dtests=false) and compares it with NEW_BUILD, by default
# build-instr in this tree (set up the same way if missing). The
# benchmark sources of this tree are used for REV too, so that both sides
# run the same harness and only the library differs.
#
# Options:
#   --filter REGEX     only benchmarks whose names match (Google Benchmark's
#                      --benchmark_filter syntax), e.g. 'mixed|PingPong'
#   --items M          items per runtime iteration (default 20000; a
#                      multiple of 1000 for SpawnExitBatch)
#   --codec-iterations K, --runtime-iterations K
#                      iterations measured (default 20 and 2)
#   --keep             keep --rev's worktree and build (the path is printed;
#                      it can be given as OLD_BUILD later)
#
# How it counts: each benchmark runs alone under callgrind twice per build,
# with exactly 1 and 1+K iterations (EDIST_BENCH_ITERATIONS); the
# instructions of every thread of the program are summed, and
#   instructions/iteration = (count(1+K) - count(1)) / K.
# Start-up, the first (warm-up) iteration and the shutdown are the same in
# both runs and cancel out; the shard thread's work is counted along with
# the benchmark thread's. Nothing whose count depends on the clock is
# counted: not Google Benchmark's reports (they format times and the load
# average); in that mode the runtime's shard sleeps as soon as it is idle
# and the benchmark thread waits without spinning (bench/bench_runtime.cc);
# valgrind hands its lock between threads in a fixed order
# (--fair-sched=yes); and the shard's sleep in io_uring, which valgrind
# 3.19 cannot interrupt, becomes an uncounted wait in poll()
# (bench/instr_uring_wait.c, preloaded). Two builds of one revision give
# the same counts to within a few instructions per run. About 5 minutes
# for all benchmarks on the 2-core development machine.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
die() { printf 'instructions: %s\n' "$*" >&2; exit 1; }
note() { printf 'instructions: %s\n' "$*" >&2; }
usage() { sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

filter=""
items=20000
codec_k=20
runtime_k=2
rev=""
keep=0
builds=()
while [ $# -gt 0 ]; do
  case "$1" in
    --filter) [ $# -ge 2 ] || usage; filter=$2; shift 2 ;;
    --filter=*) filter=${1#*=}; shift ;;
    --items) [ $# -ge 2 ] || usage; items=$2; shift 2 ;;
    --codec-iterations) [ $# -ge 2 ] || usage; codec_k=$2; shift 2 ;;
    --runtime-iterations) [ $# -ge 2 ] || usage; runtime_k=$2; shift 2 ;;
    --rev) [ $# -ge 2 ] || usage; rev=$2; shift 2 ;;
    --rev=*) rev=${1#*=}; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) builds+=("$1"); shift ;;
  esac
done
for n in "$items" "$codec_k" "$runtime_k"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "not a positive count: $n"
done
[ $((items % 1000)) = 0 ] || die "--items: a multiple of 1000 (SpawnExitBatch spawns by 1000)"
if [ -n "$rev" ]; then
  [ ${#builds[@]} -le 1 ] || usage
else
  [ ${#builds[@]} -eq 2 ] || usage
fi

command -v valgrind >/dev/null || die "needs valgrind"
command -v python3 >/dev/null || die "needs python3"

abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

work=$(mktemp -d "${TMPDIR:-/tmp}/edist-instr.XXXXXX")
revtree=""
made_revtree=0
cleanup() {
  if [ "$made_revtree" = 1 ] && [ "$keep" = 0 ]; then
    git -C "$top" worktree remove --force "$revtree" >/dev/null 2>&1 || rm -rf "$revtree"
    git -C "$top" worktree prune >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup_opts=(--buildtype=release -Dtests=false -Dbench=enabled -Dwerror=false)
targets=(bench/edist_bench_codec bench/edist_bench_runtime)

# Set up (if needed) and build BUILD from source tree SRC.
build() {
  local src=$1 dir=$2
  if [ ! -f "$dir/build.ninja" ]; then
    note "setting up $dir (release)"
    nice -n 10 meson setup "$dir" "$src" "${setup_opts[@]}" >"$work/setup.log" 2>&1 || {
      tail -20 "$work/setup.log" >&2; die "meson setup $dir failed"; }
  fi
  note "building $dir"
  nice -n 10 ninja -C "$dir" "${targets[@]}" >"$work/build.log" 2>&1 || {
    tail -30 "$work/build.log" >&2; die "build in $dir failed (is 'bench' enabled there?)"; }
}

if [ -n "$rev" ]; then
  sha=$(git -C "$top" rev-parse --verify "$rev^{commit}") || die "no revision $rev"
  revtree="${TMPDIR:-/tmp}/edist-instr-${sha:0:12}"
  if [ -d "$revtree" ]; then
    note "reusing $revtree (kept by an earlier --keep; not removed)"
  else
    git -C "$top" worktree add --detach "$revtree" "$sha" >/dev/null 2>&1 ||
      die "cannot make a worktree of $rev at $revtree"
    made_revtree=1
  fi
  # The same harness on both sides: only the library differs.
  for f in bench/bench_codec.cc bench/bench_runtime.cc; do
    if ! cmp -s "$top/$f" "$revtree/$f"; then
      cp "$top/$f" "$revtree/$f"
      note "$rev: $f taken from this tree"
    fi
  done
  old=$revtree/build-instr
  build "$revtree" "$old"
  new=$(abspath "${builds[0]:-$top/build-instr}")
  old_label="$old, $rev with bench/bench_*.cc of this tree"
else
  old=$(abspath "${builds[0]}")
  new=$(abspath "${builds[1]}")
  [ -f "$old/build.ninja" ] || die "$old is not a build directory"
  [ -f "$new/build.ninja" ] || die "$new is not a build directory"
  build "" "$old"
  old_label=$old
fi
build "$top" "$new"

describe() { # the revision a build directory was configured from
  local src
  src=$(python3 -c 'import json, sys
print(json.load(open(sys.argv[1] + "/meson-info/meson-info.json"))["directories"]["source"])' "$1" 2>/dev/null) &&
    git -C "$src" describe --always --dirty 2>/dev/null || printf '?'
}

for b in "$old" "$new"; do
  for t in "${targets[@]}"; do
    [ -x "$b/$t" ] || die "$b/$t not built"
  done
  # Both need the fixed-iteration mode: the harness of this tree.
  grep -q items_per_iteration "$b/bench/edist_bench_codec" &&
    grep -q EDIST_BENCH_ITEMS "$b/bench/edist_bench_runtime" ||
    die "$b: benchmarks built from sources without EDIST_BENCH_ITERATIONS/EDIST_BENCH_ITEMS support (copy bench/bench_*.cc of this tree there, or use --rev)"
done

cc -std=c11 -O2 -shared -fPIC -o "$work/instr_uring_wait.so" \
  "$top/bench/instr_uring_wait.c" -luring -ldl 2>"$work/cc.log" || {
  cat "$work/cc.log" >&2; die "cannot build bench/instr_uring_wait.c (liburing-dev, valgrind headers?)"; }

# Google Benchmark's reports print times and the load average, whose digits
# change from run to run and with them the instructions spent formatting
# them: not counted. (--toggle-collect turns collection off inside these,
# as it is on at start; it acts per thread. The outermost calls only: a
# nested match would turn it on again.)
uncounted=(
  --toggle-collect='benchmark::*Reporter::ReportRuns(*'
  --toggle-collect='benchmark::*Reporter::ReportContext(*'
  --toggle-collect='benchmark::BenchmarkReporter::Context::Context(*'
)

# One program under callgrind at N iterations; prints the instruction count.
# Benchmark output goes to $work/run.json.
count() {
  local exe=$1 n=$2 regex=$3 out=$work/cg.out rc=0
  rm -f "$out" "$work/run.json"
  EDIST_BENCH_ITERATIONS=$n EDIST_BENCH_ITEMS=$items \
    LD_PRELOAD="$work/instr_uring_wait.so${LD_PRELOAD:+:$LD_PRELOAD}" \
    timeout -k 10 900 nice -n 10 valgrind --tool=callgrind --fair-sched=yes \
    "${uncounted[@]}" --collect-atstart=yes \
    --callgrind-out-file="$out" "$exe" --benchmark_filter="$regex" \
    --benchmark_out="$work/run.json" --benchmark_out_format=json \
    </dev/null >/dev/null 2>"$work/valgrind.log" || rc=$?
  if [ "$rc" != 0 ]; then
    tail -20 "$work/valgrind.log" >&2
    [ "$rc" = 124 ] && die "$exe $regex: no end after 15 minutes under valgrind"
    die "$exe $regex: exit status $rc under valgrind"
  fi
  sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out"
}

regex_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

: >"$work/results.tsv"
start=$(date +%s)
for prog in codec runtime; do
  if [ $prog = codec ]; then k=$codec_k; else k=$runtime_k; fi
  # Names as listed at 1 iteration; the row is the name without it.
  for b in "$old" "$new"; do
    EDIST_BENCH_ITERATIONS=1 EDIST_BENCH_ITEMS=$items "$b/bench/edist_bench_$prog" \
      --benchmark_list_tests ${filter:+--benchmark_filter="$filter"} 2>/dev/null || true
  done | awk '!seen[$0]++' >"$work/names"
  while read -r name; do
    case "$name" in
      */iterations:1/*|*/iterations:1) ;;
      *) continue ;; # fixed sizes (the shard benchmarks): not counted
    esac
    head=${name%%/iterations:1*}
    tail=${name#*/iterations:1}
    row=$head$tail
    for side in old new; do
      if [ $side = old ]; then b=$old; else b=$new; fi
      exe=$b/bench/edist_bench_$prog
      c=()
      for n in 1 $((1 + k)); do
        regex="^$(regex_quote "$head")/iterations:$n$(regex_quote "$tail")\$"
        note "$side $row: $n iteration(s)"
        ir=$(count "$exe" "$n" "$regex")
        if [ -z "$ir" ] || ! grep -qs '"iterations": '"$n"',' "$work/run.json"; then
          note "$side $row: not run by this build"
          c=()
          break
        fi
        grep -q '"error_occurred": true' "$work/run.json" &&
          die "$side $row: the benchmark reported an error"
        c+=("$ir")
      done
      [ ${#c[@]} -eq 2 ] || continue
      per_item=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(int(d["benchmarks"][0].get("items_per_iteration", 0)))' "$work/run.json")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$row" "$k" "${c[0]}" "${c[1]}" "$per_item" \
        >>"$work/results.tsv"
    done
  done <"$work/names"
done
elapsed=$(($(date +%s) - start))

python3 - "$work/results.tsv" "$old_label" "$(describe "$old")" "$new" "$(describe "$new")" \
  "$items" "$codec_k" "$runtime_k" "$elapsed" "$(valgrind --version)" "$filter" <<'EOF'
import sys

(path, old_label, old_rev, new_label, new_rev, items, codec_k, runtime_k,
 elapsed, vg, flt) = sys.argv[1:12]
LIMIT = 1.05
rows, order = {}, []
for line in open(path):
    side, name, k, c1, c2, per_item = line.rstrip("\n").split("\t")
    if name not in rows:
        rows[name] = {}
        order.append(name)
    per_iter = (int(c2) - int(c1)) / int(k)
    rows[name][side] = (per_iter, int(per_item))

def num(v):
    return "{:,.0f}".format(v) if v is not None else "n/a"

print("## Instructions per iteration, old vs new (callgrind)\n")
print("- old: %s (%s)" % (old_label, old_rev))
print("- new: %s (%s)" % (new_label, new_rev))
print("- %s; runtime items per iteration %s; iterations measured: codec %s, "
      "runtime %s; filter: %s; %s s" % (vg, items, codec_k, runtime_k,
                                        flt or "none", elapsed))
print()
print("| benchmark | items/iter | old instr/iter | new instr/iter "
      "| old instr/item | new instr/item | new/old | |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
flagged = 0
for name in order:
    o, n = rows[name].get("old"), rows[name].get("new")
    items_n = (n or o)[1]
    oi, ni = (o[0] if o else None), (n[0] if n else None)
    per = lambda v: v / items_n if v is not None and items_n else None
    ratio, flag = "n/a", ""
    if oi and ni:
        r = ni / oi
        ratio = "%.3f" % r
        if r > LIMIT:
            flag = "**above %.2f**" % LIMIT
            flagged += 1
    print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        name, items_n or "n/a", num(oi), num(ni), num(per(oi)), num(per(ni)),
        ratio, flag))
print()
print("instr/iter = (instructions at 1+K iterations - at 1 iteration) / K, "
      "all threads; instr/item = instr/iter / items per iteration. "
      "%d of %d rows above %.2f." % (flagged, len(order), LIMIT))
EOF
if [ "$made_revtree" = 1 ] && [ "$keep" = 1 ]; then
  note "kept $revtree; its build: $old"
fi
