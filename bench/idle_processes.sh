#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Memory of idle processes, edist next to Erlang/OTP, in one run.
#
#   bench/idle_processes.sh BUILD_DIR [N]
#
# BUILD_DIR holds a release build with bench/edist_bench_runtime (see
# bench/bench_runtime.cc). N processes (default 1,000,000) are spawned and
# left blocked in a receive without timeout; the growth of the resident set
# (VmRSS) is divided by N. For erl, erlang:memory(processes) growth per
# process is shown too (what the VM accounts to processes: heap, stack,
# process control block). No list of pids is kept on either side.
set -eu
build=${1:?usage: $0 BUILD_DIR [N]}
n=${2:-1000000}
bench="$build/bench/edist_bench_runtime"
[ -x "$bench" ] || { echo "no $bench: build it first (ninja -C $build bench/edist_bench_runtime)" >&2; exit 2; }

echo "== edist: $n green processes blocked in edist_receive (64 KiB stacks reserved, lazily committed)"
# The Arg is fixed at 1,000,000 in the benchmark; other N: edit the
# BENCHMARK line. CSV columns after the standard ones: processes,
# rss_bytes_per_process, rss_mib_total.
"$bench" --benchmark_filter="BM_IdleProcesses/$n/" --benchmark_format=csv 2>/dev/null |
    awk -F, '/^"BM_IdleProcesses/ {
        printf "edist: processes=%d spawn_ms=%.0f rss_bytes_per_process=%.1f rss_total_mib=%.0f\n", $11, $3, $12, $13 }'

if ! command -v erl >/dev/null 2>&1; then
    echo "== erl: not installed, skipped"
    exit 0
fi
echo "== erl: $n processes blocked in receive (erl +P $((2 * n)))"
erl +P $((2 * n)) -noshell -eval "
    N = $n,
    Rss = fun() ->
        {ok, B} = file:read_file(\"/proc/self/status\"),
        [L] = [X || X <- string:split(binary_to_list(B), \"\n\", all),
                    lists:prefix(\"VmRSS:\", X)],
        [_, Kb | _] = string:lexemes(L, \" \t\"),
        list_to_integer(Kb) * 1024
    end,
    Spawn = fun Loop(0) -> ok;
                Loop(K) -> spawn(fun() -> receive stop -> ok end end), Loop(K - 1)
            end,
    erlang:garbage_collect(),
    M0 = erlang:memory(processes), R0 = Rss(), C0 = erlang:system_info(process_count),
    T0 = erlang:monotonic_time(millisecond),
    Spawn(N),
    T1 = erlang:monotonic_time(millisecond),
    timer:sleep(500),
    erlang:garbage_collect(),
    M1 = erlang:memory(processes), R1 = Rss(), C1 = erlang:system_info(process_count),
    io:format(\"erl: processes=~b spawn_ms=~b rss_bytes_per_process=~.1f memory_processes_bytes_per_process=~.1f~n\",
              [C1 - C0, T1 - T0, (R1 - R0) / N, (M1 - M0) / N]),
    halt()."
