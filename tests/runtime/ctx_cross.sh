#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test_ctx for aarch64 on a machine of another CPU: cross-compiles
# tests/runtime/test_ctx.c with runtime/ctx.c and runtime/ctx_aarch64.S,
# runs it under qemu-user and wants exit 0 and a clean summary line. Twice:
# plain, and with -mbranch-protection=standard (BTI landing pads, pac-ret,
# and the GNU property note that lets a BTI binary be marked as such).
#
#   ctx_cross.sh SOURCE_ROOT [HOST_CPU_FAMILY]
#
# On an aarch64 build machine test_ctx itself covers this: skip (77).
# Missing cross tools are a failure, not a skip, so CI cannot pass
# without the aarch64 switch having run.
set -euo pipefail

src=${1:?usage: ctx_cross.sh SOURCE_ROOT [HOST_CPU_FAMILY]}
cpu=${2:-$(uname -m)}
if [ "$cpu" = aarch64 ]; then
  echo "ctx_cross: the build machine is aarch64; test_ctx runs natively there"
  exit 77
fi

cc=aarch64-linux-gnu-gcc
readelf=aarch64-linux-gnu-readelf
qemu=qemu-aarch64-static
missing=()
command -v "$cc" >/dev/null && command -v "$readelf" >/dev/null ||
  missing+=("gcc-aarch64-linux-gnu ($cc, $readelf)")
command -v "$qemu" >/dev/null || missing+=("qemu-user-static ($qemu)")
# Without the sysroot, -print-file-name echoes the bare name back.
if command -v "$cc" >/dev/null && [ "$("$cc" -print-file-name=libc.a)" = libc.a ]; then
  missing+=("libc6-dev-arm64-cross (static libc for $cc)")
fi
if [ ${#missing[@]} -ne 0 ]; then
  {
    echo "ctx_cross: FAIL: the aarch64 context switch cannot be tested; missing:"
    printf '  %s\n' "${missing[@]}"
    echo "install: apt-get install qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
    echo "(scripts/run installs them)"
  } >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The project's own flags (meson: c_std=c11, warning_level=2, werror,
# -D_GNU_SOURCE), at -O2 so locals live in callee-saved registers.
cflags=(-std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I "$src" -I "$src/include")
sources=(tests/runtime/test_ctx.c runtime/ctx.c runtime/ctx_aarch64.S)

fail() { echo "ctx_cross: FAIL: $*" >&2; exit 1; }

# variant NAME [extra compiler flags...]
variant() {
  local name=$1; shift
  local objs=() f obj
  for f in "${sources[@]}"; do
    obj="$tmp/$name-$(basename "$f").o"
    "$cc" "${cflags[@]}" "$@" -c "$src/$f" -o "$obj" || fail "$name: compiling $f"
    objs+=("$obj")
  done
  if [ "$name" = bti ]; then
    # ld marks a binary BTI only if every input carries the property; an
    # assembly file must emit it itself.
    for obj in "${objs[@]}"; do
      "$readelf" -n "$obj" | grep -q 'AArch64 feature: .*BTI' ||
        fail "$name: $(basename "$obj") has no BTI property note"
    done
  fi
  "$cc" -static "$@" "${objs[@]}" -o "$tmp/$name" || fail "$name: linking"
  local out rc=0
  out=$("$qemu" "$tmp/$name" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed "s/^/[$name] /"
  [ "$rc" -eq 0 ] || fail "$name: test_ctx exited with $rc under $qemu"
  printf '%s\n' "$out" | grep -Eqx 'ctx: [0-9]+ checks, 0 failed' ||
    fail "$name: no clean summary line"
}

variant plain
variant bti -mbranch-protection=standard
echo "ctx_cross: aarch64 context switch OK under $qemu (plain, bti)"
