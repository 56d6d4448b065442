#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `meson install` into a temporary DESTDIR, then a user's view of it:
#   test_install.sh BUILD_DIR SOURCE_DIR
# the tree holds the library (soname libedist.so.0, symbols versioned
# EDIST_0, nothing but edist_* exported), the headers, edist.pc, the edist
# program, edist(1) and the example configs; examples/rpc_node.c builds
# against it with pkg-config alone, shared and static (Libs.private and
# Requires.private are enough); both binaries, and the installed edist,
# run from the tree: the example node answers the installed `edist rpc`.
set -u
BUILD=${1:?usage: $0 BUILD_DIR SOURCE_DIR}
SRC=${2:?usage: $0 BUILD_DIR SOURCE_DIR}
. "$SRC/tests/common/lib.sh"
TOOL=$BUILD/tests/node/test_node_tool
peers_init edist-install-test
checks=0

dest=$tmp/dest
meson install -C "$BUILD" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
  fail "meson install: $(tail -5 "$tmp/install.log")"
prefix=$(meson introspect "$BUILD" --buildoptions |
  python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
root=$dest$prefix
pc=$(find "$root" -name edist.pc | head -1)
[ -n "$pc" ] || fail "no edist.pc under $root"
libdir=$(dirname "$(dirname "$pc")")
for f in "$root/include/edist/edist.h" "$root/include/edist/node.h" "$libdir/libedist.a" \
         "$libdir/libedist.so" "$libdir/libedist.so.0" "$root/bin/edist" \
         "$root/share/man/man1/edist.1" "$root/share/doc/edist/configs/memif-a.ini"; do
  [ -e "$f" ] || fail "not installed: ${f#$dest}"
done
ok "installed: headers, libedist.a/.so/.so.0, edist.pc, bin/edist, edist(1), configs"

soname=$(readelf -d "$libdir/libedist.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libedist.so.0 ] || fail "soname: '$soname'"
exported=$(nm -D --defined-only "$libdir/libedist.so" | awk '$2 ~ /^[TDBR]$/ {print $3}')
bad=$(grep -v -E '^(edist_|EDIST_0$)' <<<"$exported" | head -5)
[ -z "$bad" ] || fail "exported beyond edist_*: $bad"
objdump -T "$libdir/libedist.so" | grep -q 'EDIST_0 *edist_node_start$' ||
  fail "edist_node_start is not versioned EDIST_0"
ok "libedist.so: soname libedist.so.0, $(wc -l <<<"$exported") symbols, all edist_* at version EDIST_0"

# The tree is not at its prefix: pkg-config is told where it is.
export PKG_CONFIG_PATH=$(dirname "$pc")
pc_at=(--define-variable=prefix="$root")
cflags=$(pkg-config "${pc_at[@]}" --cflags edist) && libs=$(pkg-config "${pc_at[@]}" --libs edist) ||
  fail "pkg-config edist"
case "$cflags $libs" in *"$root"*) ;; *) fail "pkg-config does not point into the tree: $cflags $libs" ;; esac
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/rpc_node" "$SRC/examples/rpc_node.c" $cflags $libs \
  >"$tmp/cc.log" 2>&1 || fail "building rpc_node with pkg-config: $(tail -5 "$tmp/cc.log")"
ok "examples/rpc_node.c builds with \$(pkg-config --cflags --libs edist) against the tree"
static_libs=$(pkg-config "${pc_at[@]}" --static --libs edist | sed 's/-ledist\b//')
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/rpc_node_static" "$SRC/examples/rpc_node.c" $cflags \
  "$libdir/libedist.a" $static_libs >"$tmp/cc-static.log" 2>&1 ||
  fail "static link with pkg-config --static: $(tail -5 "$tmp/cc-static.log")"
ldd "$tmp/rpc_node_static" | grep -q libedist && fail "the static build still needs libedist.so"
ok "and statically: libedist.a plus \$(pkg-config --static --libs edist) is all it needs"

export LD_LIBRARY_PATH=$libdir
"$root/bin/edist" --version >"$tmp/version" 2>&1 || "$root/bin/edist" --help >/dev/null ||
  fail "the installed edist does not run"
COOKIE=ic$$
EPMD_PORT=$(freeport)
export ERL_EPMD_PORT=$EPMD_PORT
"$root/bin/edist" epmd -port "$EPMD_PORT" -address 127.0.0.1 >"$tmp/epmd.log" 2>&1 &
pids+=($!)
wait_until 10 "$root/bin/edist" names -port "$EPMD_PORT" || fail "installed edist epmd did not start"
for exe in rpc_node rpc_node_static; do
  name=i${exe##*_}$$
  "$tmp/$exe" "$name" "$COOKIE" >"$tmp/$exe.out" 2>"$tmp/$exe.err" &
  pid=$!
  pids+=($pid)
  wait_until 20 grep -q '^ready ' "$tmp/$exe.out" || fail "$exe did not get ready"
  node=$(sed -n 's/^ready //p' "$tmp/$exe.out")
  r=$("$root/bin/edist" rpc "$node" calc add '[40, 2]' --cookie "$COOKIE" 2>&1)
  [ "$r" = 42 ] || fail "installed edist rpc to $exe: $r"
  kill -TERM "$pid"
  wait "$pid" || fail "$exe ended with status $? on SIGTERM"
  ok "$exe (built against the tree) answers the installed edist rpc: calc:add(40, 2) -> 42"
done
echo "PASSED: $checks checks"
