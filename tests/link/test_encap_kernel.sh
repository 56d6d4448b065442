#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The DPDK lane's UDP/IPv4 framing against the Linux kernel's own IPv4 and
# UDP, on a veth pair between two network namespaces this script creates
# and deletes (root; exit 77 = skip otherwise):
#   test_encap_kernel.sh TEST_ENCAP_TOOL
# - A frame the lane writes, sent raw (AF_PACKET) from one side, reaches a
#   UDP socket of the kernel on the other: its checksum, lengths and
#   addresses pass the kernel's checks, the payload arrives whole, from
#   the lane's address and a source port in 49152..65535. Two sizes.
# - A datagram the kernel sends (its own header and UDP checksum),
#   captured raw on the receiving side, is taken by the lane's parser,
#   which finds the same payload; one to another port is not. The
#   receiving side's interface has no address, as a DPDK port's kernel
#   has none: the kernel learns where 10.77.0.1 is from the lane's own
#   ARP reply (test_encap_tool arp), or sends nothing.
set -u
TOOL=${1:?usage: $0 TEST_ENCAP_TOOL}
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to create network namespaces and a veth pair"
  exit 77
fi
if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1 || ! command -v python3 >/dev/null; then
  echo "SKIP: ip netns or python3 is not available"
  exit 77
fi
. "$(dirname "$0")/../common/lib.sh"
peers_init edist-encap-kernel
ns_a=edist-ea-$$
ns_b=edist-eb-$$
if_a=edea$$
if_b=edeb$$
IP_A=10.77.0.1
IP_B=10.77.0.2
# reaped PID: off the list the exit trap kills (waited for already; the
# number may belong to another process by then).
reaped() {
  local p keep=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
drop_ns() {
  ip netns del "$ns_a" 2>/dev/null
  ip netns del "$ns_b" 2>/dev/null
}
trap 'cleanup; drop_ns' EXIT

ip netns add "$ns_a" && ip netns add "$ns_b" || fail "ip netns add"
ip link add "$if_a" netns "$ns_a" type veth peer name "$if_b" netns "$ns_b" || fail "ip link add veth"
# A has no address: as for a DPDK port, its kernel answers no ARP for IP_A.
ip -n "$ns_b" addr add "$IP_B/24" dev "$if_b" || fail "ip addr add"
ip -n "$ns_a" link set "$if_a" up && ip -n "$ns_b" link set "$if_b" up || fail "link up"
mac_of() { ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
MAC_A=$(mac_of "$ns_a" "$if_a")
MAC_B=$(mac_of "$ns_b" "$if_b")
[ -n "$MAC_A" ] && [ -n "$MAC_B" ] || fail "no MACs: '$MAC_A' '$MAC_B'"

# 1. Our frames into the kernel's UDP socket on B.
for size in 16 1400; do
  payload=$(python3 -c "import sys; print(bytes((i * 13 + 5) % 256 for i in range($size)).hex())")
  frame=$("$TOOL" frame "$MAC_A" "$MAC_B" "$IP_A" "$IP_B" 4370 7 "$payload") || fail "tool frame"
  ip netns exec "$ns_b" python3 - "$IP_B" "$payload" >"$tmp/recv$size.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 4370))
s.settimeout(10)
open("/dev/stdout", "w").write("bound\n")
data, src = s.recvfrom(65536)
print("got", data.hex() == sys.argv[2], src[0], src[1])
PY
  recv=$!
  pids+=("$recv")
  wait_until 10 grep -q bound "$tmp/recv$size.out" || fail "receiver not bound: $(cat "$tmp/recv$size.out")"
  ip netns exec "$ns_a" python3 - "$if_a" "$frame" <<'PY' || fail "raw send failed"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(bytes.fromhex(sys.argv[2]))
PY
  wait "$recv"
  reaped "$recv"
  line=$(grep '^got' "$tmp/recv$size.out")
  set -- $line
  [ "${2:-}" = True ] && [ "${3:-}" = "$IP_A" ] && [ "${4:-0}" -ge 49152 ] ||
    fail "$size bytes: the kernel's socket got: $(cat "$tmp/recv$size.out")"
  ok "a $size-byte lane frame passes the kernel's IPv4/UDP checks: the socket got it whole, from $IP_A:$4"
done

# 2. The kernel's datagram, captured raw on A, parsed by the lane; its ARP
# request answered by the lane's reply.
ip netns exec "$ns_a" python3 - "$TOOL" "$if_a" "$MAC_A" "$IP_A" >"$tmp/cap.out" 2>&1 <<'PY' &
import socket, subprocess, sys
tool, ifname, mac, ip = sys.argv[1:5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((ifname, 0))
s.settimeout(10)
open("/dev/stdout", "w").write("bound\n")
n = arps = 0
while n < 2:
    f, addr = s.recvfrom(65536)
    if addr[2] == socket.PACKET_OUTGOING or len(f) < 14:
        continue
    if f[12:14] == b"\x08\x06":
        run = subprocess.run([tool, "arp", mac, ip, f.hex()], capture_output=True,
                             text=True)
        out = run.stdout.strip()
        if run.returncode != 0 or not out:
            sys.exit("test_encap_tool arp failed: %d %r" % (run.returncode, run.stderr))
        if out != "none":
            s.send(bytes.fromhex(out))
            arps += 1
    elif f[12:14] == b"\x08\x00" and len(f) >= 34 and f[23] == 17:
        print("frame", f.hex())
        sys.stdout.flush()
        n += 1
print("arps", arps)
PY
cap=$!
pids+=("$cap")
wait_until 10 grep -q bound "$tmp/cap.out" || fail "capture not bound: $(cat "$tmp/cap.out")"
payload=$(python3 -c "print(bytes(range(200)).hex())")
ip netns exec "$ns_b" python3 - "$IP_A" "$payload" <<'PY' || fail "kernel send failed"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[1], 4370))
s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[1], 4371))
PY
wait "$cap"
reaped "$cap"
arps=$(sed -n 's/^arps //p' "$tmp/cap.out")
[ -n "$arps" ] && [ "$arps" -ge 1 ] || fail "no ARP answered: $(cat "$tmp/cap.out")"
ip -n "$ns_b" neigh show "$IP_A" | grep -q "lladdr $MAC_A" ||
  fail "the kernel did not learn $IP_A: $(ip -n "$ns_b" neigh show)"
ok "the kernel asked for $IP_A and learned $MAC_A from the lane's ARP reply ($arps answered)"
frames=$(sed -n 's/^frame //p' "$tmp/cap.out")
[ "$(echo "$frames" | wc -l)" = 2 ] || fail "captured: $(cat "$tmp/cap.out")"
first=$(echo "$frames" | sed -n 1p)
second=$(echo "$frames" | sed -n 2p)
[ "$("$TOOL" match "$IP_A" 4370 "$first")" = "ours 42 $payload" ] ||
  fail "the kernel's datagram to 4370: $("$TOOL" match "$IP_A" 4370 "$first")"
[ "$("$TOOL" match "$IP_A" 4370 "$second")" = "not ours" ] ||
  fail "the kernel's datagram to 4371: $("$TOOL" match "$IP_A" 4370 "$second")"
ok "the kernel's own UDP datagram (its checksum set) is taken by the lane's parser, payload whole; one to another port is not"
done_ok
