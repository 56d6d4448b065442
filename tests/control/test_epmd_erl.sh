#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Real erl nodes use our port mapper: one registers, a second finds it
# through us and pings it (pong), killing the first unregisters it, and
# `edist names` / `epmd -names` print the same against our server.
. "$(dirname "$0")/test_epmd_lib.sh"

P=$(freeport)
"$EDIST" epmd -port "$P" -address 127.0.0.1 -packet_timeout_ms 5000 >"$tmp/epmd.log" 2>&1 &
server=$!
pids+=($server)
wait_until 10 "$EDIST" names -port "$P" || fail "edist epmd did not start on $P"
ok "edist epmd listening on $P"

# Short names when this host's name resolves to the loopback, else long
# names on 127.0.0.1: either way all traffic stays on 127.0.0.1.
short=$(hostname -s)
if getent hosts "$short" | grep -q '^127\.'; then
  namearg=-sname
  host=$short
else
  namearg=-name
  host=127.0.0.1
fi
a=edta$$
b=edtb$$
erlflags=(-noshell -start_epmd false -setcookie edtcookie
  -kernel inet_dist_use_interface '{127,0,0,1}')

if [ "$namearg" = -sname ]; then aname=$a; else aname=$a@$host; fi
ERL_EPMD_PORT=$P erl "$namearg" "$aname" "${erlflags[@]}" \
  -eval 'receive after infinity -> ok end' >"$tmp/erl_a.log" 2>&1 &
node_a=$!
pids+=($node_a)
wait_until 25 names_has "$P" "name $a at port " || fail "erl node $a did not register with us"
ok "erl node $a registered with edist epmd"

aport=$("$TOOL" names "$P" | sed -n "s/^name $a at port \([0-9]*\)$/\1/p")
pp=$("$TOOL" port_please "$P" "$a") || fail "port_please $a"
# OTP 25 announces distribution versions 5..6 (dist.hrl ERL_DIST_VER_LOW/HIGH).
[[ "$pp" =~ ^"port $aport type 77 proto 0 high 6 low "[56]" name $a extra_len 0"$ ]] ||
  fail "port_please answer: $pp"
ok "port_please $a: $pp"
grep -q "registered '$a' port $aport type 77 versions [56]-6 creation" "$tmp/epmd.log" ||
  fail "no registration line in the server log"
ok "server logged the registration"

"$TOOL" port_please "$P" edt_nobody >/dev/null
[ $? = 3 ] || fail "port_please of an unknown name should say notfound"
ok "port_please of an unknown name: notfound"

# (3) against our server: the same bytes as OTP's epmd client prints.
"$EDIST" names -port "$P" >"$tmp/ours.txt" 2>&1 || fail "edist names"
epmd -port "$P" -names >"$tmp/theirs.txt" 2>&1 || fail "epmd -names against edist epmd"
cmp -s "$tmp/ours.txt" "$tmp/theirs.txt" ||
  fail "outputs differ: $(diff "$tmp/ours.txt" "$tmp/theirs.txt")"
printf 'epmd: up and running on port %s with data:\nname %s at port %s\n' "$P" "$a" "$aport" \
  >"$tmp/expected.txt"
cmp -s "$tmp/ours.txt" "$tmp/expected.txt" || fail "names text: $(cat "$tmp/ours.txt")"
ok "edist names == epmd -names against edist epmd"

# A second node looks the first up through us and connects.
ERL_EPMD_PORT=$P timeout 25 erl "$namearg" "$([ "$namearg" = -sname ] && echo "$b" || echo "$b@$host")" \
  "${erlflags[@]}" -eval "
    [_, H] = string:split(atom_to_list(node()), \"@\"),
    Target = list_to_atom(\"$a@\" ++ H),
    io:format(\"ping ~p~n\", [net_adm:ping(Target)]),
    {ok, Names} = net_adm:names(),
    io:format(\"names ~p~n\", [lists:sort(Names)]),
    io:format(\"nodes ~p~n\", [nodes()]),
    halt()." >"$tmp/erl_b.out" 2>&1 || fail "erl node $b failed"
grep -q '^ping pong$' "$tmp/erl_b.out" || fail "net_adm:ping through edist epmd: $(cat "$tmp/erl_b.out")"
ok "net_adm:ping from $b to $a through edist epmd: pong"
grep -q "^names \[{\"$a\",$aport},{\"$b\"," "$tmp/erl_b.out" ||
  fail "net_adm:names: $(grep names "$tmp/erl_b.out")"
ok "net_adm:names via edist epmd: $(grep '^names' "$tmp/erl_b.out")"
wait_until 10 names_lacks "$P" "name $b " || fail "$b still registered after halt()"
ok "$b unregistered after halt()"

# Killing the first node (no goodbye) unregisters it.
kill -KILL "$node_a"
wait "$node_a" 2>/dev/null
wait_until 10 names_lacks "$P" "name $a " || fail "$a still registered after kill -9"
grep -q "unregistered '$a'" "$tmp/epmd.log" || fail "no unregistration line"
ok "kill -9 of $a unregisters it"

# A node restarted under the same name gets a new creation.
ERL_EPMD_PORT=$P timeout 25 erl "$namearg" "$aname" "${erlflags[@]}" \
  -eval 'io:format("creation ~p~n", [erlang:system_info(creation)]), halt().' \
  >"$tmp/erl_a2.out" 2>&1 || fail "restart of $a"
c1=$(sed -n "s/.* registered '$a' port .* creation \([0-9]*\) from .*/\1/p" "$tmp/epmd.log" | head -1)
c2=$(sed -n 's/^creation \([0-9]*\)$/\1/p' "$tmp/erl_a2.out")
[ -n "$c1" ] && [ -n "$c2" ] && [ "$c1" != "$c2" ] || fail "creations $c1 then $c2"
ok "re-registered $a: creation $c1 then $c2 (erlang:system_info(creation))"

# SIGTERM: a clean exit, status 0.
kill -TERM "$server"
wait "$server"
rc=$?
[ "$rc" = 0 ] || fail "edist epmd exit status $rc after SIGTERM"
ok "edist epmd exits 0 on SIGTERM"

done_ok
