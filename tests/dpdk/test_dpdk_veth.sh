#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# af_packet and af_xdp through dataplane/dpdk on a veth pair between two
# network namespaces this script creates and deletes: a sender in one
# namespace, a receiver in the other; counts checked, loss reported (these
# media may lose). Needs root and `ip netns`: exit 77 (skip) otherwise.
# Usage: test_dpdk_veth.sh PEER_PROGRAM [PMD...]
set -u
peer=$1
shift
pmds=${*:-af_packet af_xdp}
count=${EDIST_VETH_FRAMES:-200000}

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root to create network namespaces and a veth pair"
    exit 77
fi
if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    echo "SKIP: ip netns is not available"
    exit 77
fi

ns_a=edist-va-$$
ns_b=edist-vb-$$
if_a=edva$$
if_b=edvb$$
dir=$(mktemp -d /tmp/edist-veth.XXXXXX)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    ip netns del "$ns_a" 2>/dev/null
    ip netns del "$ns_b" 2>/dev/null
    rm -rf "$dir"
    rmdir "/var/run/dpdk/edist-veth-rx-$$" "/var/run/dpdk/edist-veth-tx-$$" 2>/dev/null
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    exit 1
}

ip netns add "$ns_a" || fail "ip netns add"
ip netns add "$ns_b" || fail "ip netns add"
ip link add "$if_a" netns "$ns_a" type veth peer name "$if_b" netns "$ns_b" || fail "ip link add veth"
for side in "$ns_a $if_a" "$ns_b $if_b"; do
    set -- $side
    ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null
    ip -n "$1" link set "$2" up || fail "link up"
done

# Waits for pid until $2 seconds have passed; kills it by its PID then.
wait_pid() {
    local pid=$1 left=$(( $2 * 10 ))
    while kill -0 "$pid" 2>/dev/null && [ $left -gt 0 ]; do
        sleep 0.1
        left=$((left - 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid"
        return 124
    fi
    wait "$pid"
}

status=0
for pmd in $pmds; do
    case $pmd in
    af_packet) vdev_rx="net_af_packet0,iface=$if_b"; vdev_tx="net_af_packet0,iface=$if_a" ;;
    af_xdp) vdev_rx="net_af_xdp0,iface=$if_b,start_queue=0,queue_count=1"
            vdev_tx="net_af_xdp0,iface=$if_a,start_queue=0,queue_count=1" ;;
    *) fail "unknown PMD $pmd" ;;
    esac
    dev=net_${pmd}0
    rm -f "$dir/ready"
    echo "== $pmd: $count frames of 64 bytes, $if_a ($ns_a) -> $if_b ($ns_b)"
    ip netns exec "$ns_b" "$peer" rx \
        "--no-pci --no-huge --vdev=$vdev_rx --file-prefix=edist-veth-rx-$$" \
        "$dev" "$count" "$dir/ready" >"$dir/rx.out" 2>&1 &
    rx=$!
    pids+=("$rx")
    for _ in $(seq 100); do
        [ -e "$dir/ready" ] && break
        kill -0 "$rx" 2>/dev/null || break
        sleep 0.1
    done
    [ -e "$dir/ready" ] || { cat "$dir/rx.out"; fail "$pmd receiver did not come up"; }
    ip netns exec "$ns_a" "$peer" tx \
        "--no-pci --no-huge --vdev=$vdev_tx --file-prefix=edist-veth-tx-$$" \
        "$dev" "$count" 64 >"$dir/tx.out" 2>&1 &
    tx=$!
    pids+=("$tx")
    wait_pid "$tx" 25; tx_status=$?
    wait_pid "$rx" 25; rx_status=$?
    cat "$dir/tx.out" "$dir/rx.out" | grep -v '^$'
    [ $tx_status = 0 ] || { echo "FAIL: $pmd sender exit $tx_status"; status=1; }
    [ $rx_status = 0 ] || { echo "FAIL: $pmd receiver exit $rx_status"; status=1; }
    took=$(sed -n 's/^tx: the port took \([0-9]*\) .*/\1/p' "$dir/tx.out")
    got=$(sed -n 's/^rx: received \([0-9]*\) .*/\1/p' "$dir/rx.out")
    if [ -n "$took" ] && [ -n "$got" ]; then
        echo "$pmd: the sender's port took $took frames, the receiver got $got:" \
             "$((took - got)) lost after the port counted them sent"
        [ "$got" -gt 0 ] || { echo "FAIL: $pmd: nothing arrived"; status=1; }
    else
        echo "FAIL: $pmd: no figures"
        status=1
    fi
done
[ $status = 0 ] && echo "PASS: $pmds"
exit $status
