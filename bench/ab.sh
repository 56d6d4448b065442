#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two builds of `edist` side by side: runs `edist bench pair` with each in
# turn, ROUNDS times (default 5), and prints each one's stream rates and
# median, and the ratio of the medians (B / A). Alternating spreads the
# machine's load over both: on a shared machine one build run after the
# other measures the load as much as the code.
#   bench/ab.sh EDIST_A EDIST_B [bench pair options]
# e.g. bench/ab.sh /tmp/old/build-bench/cli/edist build-bench/cli/edist \
#        --lane memif --idle busy --bytes 64 --count 10000000 --rtt-count 0
set -euo pipefail
[ $# -ge 2 ] || { sed -n '3,10p' "$0" >&2; exit 2; }
a=$1 b=$2
shift 2
rounds=${ROUNDS:-5}
ra=() rb=()
rate() {
  "$1" bench pair "${@:2}" --json | sed -n 's/.*"stream_msgs_per_s": \([0-9.]*\).*/\1/p'
}
for ((i = 1; i <= rounds; i++)); do
  ra+=("$(rate "$a" "$@")")
  rb+=("$(rate "$b" "$@")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(median "${ra[@]}")
mb=$(median "${rb[@]}")
printf 'A %s: %s  median %.0f msg/s\n' "$a" "${ra[*]}" "$ma"
printf 'B %s: %s  median %.0f msg/s\n' "$b" "${rb[*]}" "$mb"
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "B/A %.2f\n", b / a}'
