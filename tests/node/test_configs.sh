#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every example in configs/ loads: `edist node --config F --print-config`
# exits 0, and each key the file sets shows as coming from that file.
#   test_configs.sh EDIST CONFIGS_DIR
set -u
EDIST=${1:?usage: $0 EDIST CONFIGS_DIR}
DIR=${2:?usage: $0 EDIST CONFIGS_DIR}
# The files alone: an EDIST_ variable (the shards2 setup sets
# EDIST_SHARDS) would outrank them.
for v in $(compgen -e | grep '^EDIST_'); do unset "$v"; done
n=0
for f in "$DIR"/*.ini; do
  out=$("$EDIST" node --config "$f" --print-config 2>&1) ||
    { echo "FAIL: $f: $out"; exit 1; }
  keys=$(sed -n 's/^\([a-z_]*\) *=.*/\1/p' "$f")
  [ -n "$keys" ] || { echo "FAIL: $f sets nothing"; exit 1; }
  for k in $keys; do
    grep -q "^$k .*(file $f:[0-9]*)$" <<<"$out" ||
      { echo "FAIL: $f: $k not taken from the file: $(grep "^$k " <<<"$out")"; exit 1; }
  done
  echo "ok: $f: $(wc -w <<<"$keys") keys from the file"
  n=$((n + 1))
done
[ "$n" -ge 7 ] || { echo "FAIL: only $n examples in $DIR"; exit 1; }
# The annotated reference names every key the node has (set, or as a
# commented "; key =" line), so it cannot fall behind the options.
ref=$DIR/edist-node.ini
all=$("$EDIST" node --sname x --print-config | sed -n 's/^\([a-z_]*\) .*/\1/p')
missing=
for k in $all; do
  [ "$k" = config ] && continue # the file itself: a flag only
  grep -qE "^;? ?$k = " "$ref" || missing="$missing $k"
done
[ -z "$missing" ] || { echo "FAIL: edist-node.ini does not document:$missing"; exit 1; }
echo "ok: edist-node.ini documents all $(($(wc -w <<<"$all") - 1)) keys a file may set"
echo "PASSED: $n configs"
