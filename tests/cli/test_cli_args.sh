#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The edist program's habits, as erl's:
#   test_cli_args.sh EDIST TEST_NODE_TOOL
# every command's --help goes to stdout with exit 0, --version prints the
# version; malformed numbers and values, flags and environment alike, are
# refused with a line naming them and exit 2; erl's spellings work for
# node, ping and rpc (-sname, -setcookie), --epmd-port and --timeout work
# for the clients, and an rpc that outlives its --timeout says so.
. "$(dirname "$0")/../node/test_node_lib.sh"

for c in "" term names epmd node ping rpc send stat "bench" "bench ping" "bench local" \
         "bench pair" demo; do
  out=$("$EDIST" $c --help 2>/dev/null)
  rc=$?
  [ $rc = 0 ] && grep -q '^usage: edist' <<<"$out" || fail "edist $c --help: exit $rc, stdout '$out'"
  out=$("$EDIST" $c -help 2>/dev/null)
  [ $? = 0 ] && grep -q '^usage: edist' <<<"$out" || fail "edist $c -help"
done
ok "every command's --help (and erl's -help) prints its usage on stdout, exit 0"
v=$("$EDIST" --version) && grep -qE '^edist [0-9]+\.[0-9]+\.[0-9]+ \(library [0-9.]+\)$' <<<"$v" ||
  fail "--version: $v"
v2=$("$EDIST" rpc --version) && [ "$v2" = "$v" ] || fail "rpc --version: $v2"
ok "--version: $v (on every command)"

# refuse WHAT PATTERN CMD...: exit 2 and PATTERN on stderr
refuse() {
  local what=$1 pat=$2
  shift 2
  "$@" >"$tmp/r.out" 2>"$tmp/r.err"
  local rc=$?
  [ $rc = 2 ] && grep -q -- "$pat" "$tmp/r.err" ||
    fail "$what: exit $rc, stderr: $(head -3 "$tmp/r.err")"
}
refuse "rpc --timeout abc" "--timeout: 'abc' is not a time" "$EDIST" rpc a@b m f '[]' --timeout abc
refuse "bench ping --count abc" "--count: 'abc' is not a whole number" "$EDIST" bench ping a@b --count abc
refuse "stat --epmd-port 0" "--epmd-port: '0' is not a port" "$EDIST" stat a@b --epmd-port 0
refuse "names --port 70000" "'70000' is not a port" "$EDIST" names --port 70000
refuse "epmd -port x" "'x' is not a port" "$EDIST" epmd -port x
refuse "ping --timeout 0" "--timeout: '0' is not a time" "$EDIST" ping a@b --timeout 0
refuse "rpc with too few arguments" "missing arguments" "$EDIST" rpc a@b m
refuse "rpc with a bad node name" "bad node name 'ab'" "$EDIST" rpc ab m f '[]'
refuse "unknown option" "unknown option '--bogus'" "$EDIST" stat a@b --bogus
refuse "rpc --cookie without a value" "needs a value" "$EDIST" rpc a@b m f '[]' --cookie
refuse "bench pair --timeout abc" "--timeout: 'abc' is not a time" "$EDIST" bench pair -lane tcp --timeout abc
refuse "bench pair -count x" "--count: 'x' is not a whole number" "$EDIST" bench pair -lane tcp -count x
ok "malformed flags refused with exit 2: numbers, ports, times, missing values, unknown options (bench pair too)"
for c in "names" "rpc a@b m f []" "stat a@b" "bench ping a@b"; do
  ERL_EPMD_PORT=abc "$EDIST" $c >"$tmp/r.out" 2>"$tmp/r.err"
  rc=$?
  [ $rc = 2 ] && grep -q "ERL_EPMD_PORT='abc' is not a port" "$tmp/r.err" ||
    fail "ERL_EPMD_PORT=abc edist $c: exit $rc, $(head -2 "$tmp/r.err")"
done
ERL_EPMD_PORT=abc "$EDIST" ping a@b >"$tmp/r.out" 2>"$tmp/r.err"
[ $? = 2 ] && grep -q "ERL_EPMD_PORT='abc'" "$tmp/r.err" || fail "ERL_EPMD_PORT=abc edist ping"
ok "a malformed ERL_EPMD_PORT is refused (exit 2) by names, rpc, stat, bench ping and ping"

# erl's spellings against a running node, on a port mapper of our own
# given by --epmd-port only (ERL_EPMD_PORT unset).
EPMD_PORT=$(freeport)
"$EDIST" epmd -port "$EPMD_PORT" -address 127.0.0.1 >"$tmp/epmd.log" 2>&1 &
pids+=($!)
wait_until 10 "$EDIST" names --port "$EPMD_PORT" || fail "epmd did not start"
N=clia$$
"$EDIST" node -sname "$N" -setcookie "$COOKIE" -epmd_port "$EPMD_PORT" -listen_address 127.0.0.1 \
  >"$tmp/n.out" 2>"$tmp/n.err" &
pids+=($!)
wait_until 20 grep -q ' ready (listening on port ' "$tmp/n.out" || fail "node -sname did not start"
ok "edist node -sname $N -setcookie C -epmd_port P: up"
r=$("$EDIST" ping "$N@$HOST" -setcookie "$COOKIE" --epmd-port "$EPMD_PORT" 2>&1)
[ "$r" = pong ] || fail "ping -setcookie --epmd-port: $r"
r=$("$EDIST" rpc "$N@$HOST" edist_demo add '[40, 2]' -setcookie "$COOKIE" --epmd-port "$EPMD_PORT" \
  --timeout 10 2>&1)
[ "$r" = 42 ] || fail "rpc -setcookie --epmd-port --timeout: $r"
r=$("$EDIST" stat "$N@$HOST" -c "$COOKIE" -epmd-port "$EPMD_PORT" 2>&1) && grep -q '^nodeups ' <<<"$r" ||
  fail "stat -c -epmd-port: $r"
ok "ping, rpc and stat with -setcookie/-c and --epmd-port reach it"
start=$(date +%s%N)
r=$("$EDIST" rpc "$N@$HOST" edist_demo sleep '[5000]' --cookie "$COOKIE" --epmd-port "$EPMD_PORT" \
  --timeout 0.5 2>/dev/null)
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[ $rc = 1 ] && [ "$r" = "{badrpc,timeout}" ] && [ $ms -lt 4000 ] ||
  fail "rpc --timeout 0.5 of a 5 s call: exit $rc, '$r' after $ms ms"
ok "rpc --timeout 0.5 of a call that takes 5 s: {badrpc,timeout}, exit 1, after $ms ms"
done_ok
