/* SPDX-License-Identifier: Apache-2.0 */
/* The process runtime: local messaging, spawning, idle processes.
 *
 * One runtime (one shard thread, idle strategy "adaptive") hosts every
 * benchmark. The benchmark thread is itself a process (attached): each
 * iteration asks a green driver process to do the work on the shard and
 * waits for its `done`, so timings are wall-clock (UseRealTime) and the
 * hand-over costs one message per iteration of many thousands of items.
 *
 *   LocalPingPong    two green processes; one sends {ping, N}, the other
 *                    receives it and sends it back: every message is a send,
 *                    a receive and a context switch. items = messages.
 *   LocalStream      one sender, one receiver: the sender sends 256
 *                    messages and yields; the receiver drains its mailbox.
 *                    items = messages (each sent and received).
 *   LocalSelective   as LocalPingPong, but receiving with a compiled
 *                    pattern {ping, N} (a match per message).
 *   SpawnExit        a driver spawns a process that returns at once and
 *                    yields to it: spawn, first switch, exit, teardown.
 *   SpawnExitBatch   the driver spawns 1,000 such processes, then yields.
 *   SpawnMonitorDown spawn_monitor + receive of the DOWN message.
 *   IdleProcesses    spawn N processes blocked in receive (no timeout) and
 *                    report the growth of the resident set per process
 *                    (counter rss_bytes_per_process; run once).
 *   ShardPairs/S/P/N a runtime of S shards; P ping-pong pairs spread over
 *                    them round robin (both processes of a pair on one
 *                    shard), N messages in all. items = messages. The
 *                    issue-9 goal: S=2 at least 1.7x S=1 on two cores.
 *   CrossShardPingPong/N  a runtime of 2 shards, a process on each
 *                    ping-ponging: every message crosses a ring between
 *                    the shards (and wakes the other one when it idles).
 * Everything but the Shard* benchmarks runs on one runtime of one shard.
 *
 * Build and run (release):
 *   meson setup /tmp/b-rel /path/to/edist --buildtype=release -Dtests=false
 *   ninja -C /tmp/b-rel bench/edist_bench_runtime
 *   /tmp/b-rel/bench/edist_bench_runtime
 * bench/idle_processes.sh compares the idle process footprint with erl.
 *
 * Instruction counts (bench/instructions.sh): EDIST_BENCH_ITERATIONS=N runs
 * every benchmark exactly N iterations, EDIST_BENCH_ITEMS=M makes each
 * iteration M items instead of 1,000,000 (the name's argument says which),
 * and the counter items_per_iteration reports M (a new benchmark gets all
 * this with ->Apply(configure)). In that mode the shard sleeps as soon as
 * it is idle and the benchmark thread waits without spinning: adaptive
 * idling spins for a time, so how many instructions it spends depends on
 * the clock, not on the code measured. */

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unistd.h>

#include "edist/edist.h"

namespace {

edist_runtime *g_rt;
edist_procid g_main;
edist_pattern *g_done;
edist_pattern *g_ping;

void fail(const char *what)
{
    std::fprintf(stderr, "bench_runtime: %s: %s\n", what, edist_last_error());
    std::abort();
}

size_t encode_ping(uint8_t *out, size_t cap, int64_t n)
{
    edist_buf b;
    edist_buf_init_fixed(&b, out, cap);
    edist_enc_tuple(&b, 2);
    edist_enc_atom(&b, "ping", 4);
    edist_enc_int(&b, n);
    return b.len;
}

void send_done()
{
    static const uint8_t done[] = {EDIST_TAG_SMALL_ATOM_UTF8, 4, 'd', 'o', 'n', 'e'};
    if (edist_send(g_main, done, sizeof done) != 0)
        fail("send done");
}

/* Wait (benchmark thread) for the driver's `done`. */
void wait_done()
{
    edist_term_view m;
    if (edist_receive(g_done, nullptr, 60000, &m) != 0)
        fail("no done from the driver");
}

struct Job {
    int64_t n;
    bool selective;
    edist_procid peer;
};

/* Echo back every message to the peer given in the job. */
void ponger(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    edist_procid peer = j->peer;
    bool selective = j->selective;
    edist_term_view vars[1];
    for (;;) {
        edist_term_view m;
        vars[0].ptr = nullptr;
        int rc = selective ? edist_receive(g_ping, vars, -1, &m)
                           : edist_receive(nullptr, nullptr, -1, &m);
        if (rc != 0)
            return;
        if (m.len == 1) /* nil: stop */
            return;
        if (edist_send(peer, m.ptr, m.len) != 0)
            fail("pong send");
    }
}

void pingpong_driver(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    Job pj = {0, j->selective, edist_self()};
    edist_procid pong;
    if (edist_spawn(ponger, &pj, &pong) != 0)
        fail("spawn ponger");
    uint8_t msg[32];
    size_t len = encode_ping(msg, sizeof msg, 12345);
    edist_term_view vars[1];
    for (int64_t i = 0; i < j->n; i += 2) {
        if (edist_send(pong, msg, len) != 0)
            fail("ping send");
        edist_term_view m;
        vars[0].ptr = nullptr;
        int rc = j->selective ? edist_receive(g_ping, vars, -1, &m)
                              : edist_receive(nullptr, nullptr, -1, &m);
        if (rc != 0)
            fail("ping receive");
    }
    static const uint8_t nil[] = {EDIST_TAG_NIL};
    edist_send(pong, nil, 1);
    send_done();
}

/* The instruction-count mode (see the top of the file), read once from
 * the environment; 0: normal runs. */
int64_t fixed_iterations()
{
    static const int64_t n = [] {
        const char *s = std::getenv("EDIST_BENCH_ITERATIONS");
        return s ? std::max<int64_t>(0, std::atoll(s)) : 0;
    }();
    return n;
}

int64_t items_per_iteration()
{
    static const int64_t n = [] {
        const char *s = std::getenv("EDIST_BENCH_ITEMS");
        return s ? std::max<int64_t>(1, std::atoll(s)) : 1000000;
    }();
    return n;
}

/* Every benchmark takes this (->Apply(configure)): its one argument is
 * the items per iteration. */
void configure(benchmark::internal::Benchmark *b)
{
    b->Arg(items_per_iteration())->UseRealTime()->Unit(benchmark::kMillisecond);
    if (fixed_iterations() > 0)
        b->Iterations(fixed_iterations());
}

void set_items(benchmark::State &state, int64_t items)
{
    state.SetItemsProcessed(state.iterations() * items);
    if (fixed_iterations() > 0)
        state.counters["items_per_iteration"] = static_cast<double>(items);
}

void run_pingpong(benchmark::State &state, bool selective)
{
    Job j = {state.range(0), selective, g_main};
    for (auto _ : state) {
        if (edist_runtime_spawn(g_rt, pingpong_driver, &j, nullptr, nullptr) != 0)
            fail("spawn driver");
        wait_done();
    }
    set_items(state, j.n);
}

void BM_LocalPingPong(benchmark::State &state) { run_pingpong(state, false); }
void BM_LocalSelective(benchmark::State &state) { run_pingpong(state, true); }

void stream_receiver(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    for (int64_t i = 0; i < j->n; i++) {
        edist_term_view m;
        if (edist_receive(nullptr, nullptr, -1, &m) != 0)
            fail("stream receive");
    }
    send_done();
}

void stream_sender(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    uint8_t msg[32];
    size_t len = encode_ping(msg, sizeof msg, 12345);
    for (int64_t i = 0; i < j->n; i++) {
        if (edist_send(j->peer, msg, len) != 0)
            fail("stream send");
        if ((i & 255) == 255)
            edist_yield();
    }
}

void BM_LocalStream(benchmark::State &state)
{
    Job j = {state.range(0), false, g_main};
    for (auto _ : state) {
        edist_procid rx;
        if (edist_runtime_spawn(g_rt, stream_receiver, &j, nullptr, &rx) != 0)
            fail("spawn receiver");
        Job sj = {j.n, false, rx};
        if (edist_runtime_spawn(g_rt, stream_sender, &sj, nullptr, nullptr) != 0)
            fail("spawn sender");
        wait_done();
    }
    set_items(state, j.n);
}

void nothing(void *) {}

void spawn_driver(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    for (int64_t i = 0; i < j->n; i++) {
        if (edist_spawn(nothing, nullptr, nullptr) != 0)
            fail("spawn");
        edist_yield(); /* the child runs and exits */
    }
    send_done();
}

void spawn_batch_driver(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    for (int64_t i = 0; i < j->n; i += 1000) {
        for (int k = 0; k < 1000; k++)
            if (edist_spawn(nothing, nullptr, nullptr) != 0)
                fail("spawn");
        edist_yield(); /* they run and exit */
    }
    send_done();
}

void spawn_monitor_driver(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    for (int64_t i = 0; i < j->n; i++) {
        edist_procid pid;
        edist_ref ref;
        if (edist_spawn_monitor(nothing, nullptr, &pid, &ref) != 0)
            fail("spawn_monitor");
        edist_term_view m;
        if (edist_receive(nullptr, nullptr, -1, &m) != 0) /* the DOWN */
            fail("receive DOWN");
    }
    send_done();
}

void run_spawn(benchmark::State &state, edist_proc_fn driver)
{
    Job j = {state.range(0), false, g_main};
    for (auto _ : state) {
        if (edist_runtime_spawn(g_rt, driver, &j, nullptr, nullptr) != 0)
            fail("spawn driver");
        wait_done();
    }
    set_items(state, j.n);
}

void BM_SpawnExit(benchmark::State &state) { run_spawn(state, spawn_driver); }
void BM_SpawnExitBatch(benchmark::State &state) { run_spawn(state, spawn_batch_driver); }
void BM_SpawnMonitorDown(benchmark::State &state) { run_spawn(state, spawn_monitor_driver); }

/* ---- idle processes ------------------------------------------------------------------ */

long rss_bytes()
{
    long pages = 0, resident = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    std::fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

edist_pattern *g_never;

void idle(void *)
{
    edist_term_view m;
    edist_receive(g_never, nullptr, -1, &m);
}

void idle_driver(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    for (int64_t i = 0; i < j->n; i++) {
        if (edist_spawn(idle, nullptr, nullptr) != 0)
            fail("spawn idle");
        if ((i & 1023) == 1023)
            edist_yield(); /* let them run into their receive */
    }
    edist_yield();
    send_done();
}

void BM_IdleProcesses(benchmark::State &state)
{
    Job j = {state.range(0), false, g_main};
    for (auto _ : state) {
        edist_runtime_stats before, after;
        edist_runtime_get_stats(g_rt, &before);
        long rss0 = rss_bytes();
        if (edist_runtime_spawn(g_rt, idle_driver, &j, nullptr, nullptr) != 0)
            fail("spawn driver");
        wait_done();
        usleep(100000);
        long rss1 = rss_bytes();
        edist_runtime_get_stats(g_rt, &after);
        state.counters["processes"] = static_cast<double>(after.processes - before.processes);
        state.counters["rss_bytes_per_process"] =
            static_cast<double>(rss1 - rss0) / static_cast<double>(j.n);
        state.counters["rss_mib_total"] = static_cast<double>(rss1) / (1024.0 * 1024.0);
    }
    set_items(state, j.n);
}

/* ---- shards ------------------------------------------------------------------------ */
/* (Compiled where the runtime has shards, so that bench/instructions.sh can
 * build these sources against revisions from before them.) */
#ifdef EDIST_MAX_SHARDS

/* The benchmark thread is a process of g_rt only: the shard benchmarks'
 * drivers report through this counter instead of a message. */
std::atomic<int> g_left;

edist_runtime *start_shards(int shards)
{
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.shards = static_cast<uint32_t>(shards);
    edist_runtime *rt;
    if (edist_runtime_start(&cfg, &rt) != 0)
        fail("runtime_start (shards)");
    return rt;
}

/* The benchmark's thread sleeps until the last job is done: polling
 * g_left every few microseconds took a core's worth of wake-ups away from
 * the shards being measured (2 shards on 2 cores). */
std::mutex g_left_mu;
std::condition_variable g_left_cv;

void wait_left()
{
    std::unique_lock<std::mutex> lk(g_left_mu);
    g_left_cv.wait(lk, [] { return g_left.load(std::memory_order_acquire) == 0; });
}

void done_one()
{
    if (g_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(g_left_mu);
        g_left_cv.notify_one();
    }
}

/* A pair: this driver and a ponger it spawns on its own shard. */
void pair_driver(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    Job pj = {0, false, edist_self()};
    edist_procid pong;
    if (edist_spawn(ponger, &pj, &pong) != 0)
        fail("spawn ponger");
    uint8_t msg[32];
    size_t len = encode_ping(msg, sizeof msg, 12345);
    for (int64_t i = 0; i < j->n; i += 2) {
        edist_term_view m;
        if (edist_send(pong, msg, len) != 0 || edist_receive(nullptr, nullptr, -1, &m) != 0)
            fail("pair ping");
    }
    static const uint8_t nil[] = {EDIST_TAG_NIL};
    edist_send(pong, nil, 1);
    done_one();
}

void BM_ShardPairs(benchmark::State &state)
{
    int shards = static_cast<int>(state.range(0));
    int pairs = static_cast<int>(state.range(1));
    edist_runtime *rt = start_shards(shards);
    Job j = {state.range(2) / pairs, false, EDIST_PROCID_NULL};
    for (auto _ : state) {
        g_left.store(pairs);
        for (int p = 0; p < pairs; p++)
            if (edist_runtime_spawn(rt, pair_driver, &j, nullptr, nullptr) != 0)
                fail("spawn pair");
        wait_left();
    }
    state.SetItemsProcessed(state.iterations() * j.n * pairs);
    edist_runtime_stop(rt);
}

/* The first message says whom to answer; then every message goes back. */
void cross_ponger(void *)
{
    edist_term_view m;
    if (edist_receive(nullptr, nullptr, -1, &m) != 0)
        fail("cross hello");
    edist_cursor c;
    edist_procid peer;
    edist_cursor_init(&c, m.ptr, m.len);
    if (edist_dec_procid(&c, &peer) != 0)
        fail("cross hello pid");
    for (;;) {
        if (edist_receive(nullptr, nullptr, -1, &m) != 0 || m.len == 1)
            return;
        if (edist_send(peer, m.ptr, m.len) != 0)
            fail("cross pong");
    }
}

void cross_pinger(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    uint8_t hello[64];
    edist_buf b;
    edist_buf_init_fixed(&b, hello, sizeof hello);
    edist_enc_procid(&b, edist_self());
    if (edist_send(j->peer, b.data, b.len) != 0)
        fail("cross hello send");
    uint8_t msg[32];
    size_t len = encode_ping(msg, sizeof msg, 12345);
    for (int64_t i = 0; i < j->n; i += 2) {
        edist_term_view m;
        if (edist_send(j->peer, msg, len) != 0 || edist_receive(nullptr, nullptr, -1, &m) != 0)
            fail("cross ping");
    }
    static const uint8_t nil[] = {EDIST_TAG_NIL};
    edist_send(j->peer, nil, 1);
    done_one();
}

void BM_CrossShardPingPong(benchmark::State &state)
{
    edist_runtime *rt = start_shards(2);
    Job j = {state.range(0), false, EDIST_PROCID_NULL};
    for (auto _ : state) {
        g_left.store(1);
        /* Round robin: two spawns in a row land on the two shards. */
        if (edist_runtime_spawn(rt, cross_ponger, nullptr, nullptr, &j.peer) != 0 ||
            edist_runtime_spawn(rt, cross_pinger, &j, nullptr, nullptr) != 0)
            fail("spawn cross pair");
        wait_left();
    }
    state.SetItemsProcessed(state.iterations() * j.n);
    edist_runtime_stop(rt);
}
#endif // EDIST_MAX_SHARDS

} // namespace

BENCHMARK(BM_LocalPingPong)->Apply(configure);
BENCHMARK(BM_LocalSelective)->Apply(configure);
BENCHMARK(BM_LocalStream)->Apply(configure);
BENCHMARK(BM_SpawnExit)->Apply(configure);
BENCHMARK(BM_SpawnExitBatch)->Apply(configure);
BENCHMARK(BM_SpawnMonitorDown)->Apply(configure);
/* Shards: fixed sizes, not part of the instruction counts (they measure
 * two threads' parallelism, not instructions). */
#ifdef EDIST_MAX_SHARDS
BENCHMARK(BM_ShardPairs)
    ->Args({1, 64, 4000000})
    ->Args({2, 64, 4000000})
    ->ArgNames({"shards", "pairs", "messages"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CrossShardPingPong)->Arg(200000)->UseRealTime()->Unit(benchmark::kMillisecond);
#endif
/* Last: the idle processes stay until the end of the program. */
BENCHMARK(BM_IdleProcesses)->Iterations(1)->Apply(configure);

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.max_processes = 2000000;
#ifdef EDIST_MAX_SHARDS
    cfg.shards = 1; /* the shard benchmarks make their own */
#endif
    if (fixed_iterations() > 0)
        cfg.idle = EDIST_IDLE_SLEEP;
    if (edist_runtime_start(&cfg, &g_rt) != 0)
        fail("runtime_start");
    if (edist_proc_attach_thread(g_rt, fixed_iterations() > 0 ? 0 : 50, &g_main) != 0)
        fail("attach");
    edist_parse_error pe;
    if (edist_pattern_compile("done", 4, &g_done, &pe) != 0 ||
        edist_pattern_compile("{ping, N}", 9, &g_ping, &pe) != 0 ||
        edist_pattern_compile("never", 5, &g_never, &pe) != 0)
        fail("patterns");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    edist_proc_detach_thread(nullptr, 0);
    edist_runtime_stop(g_rt);
    edist_pattern_free(g_done);
    edist_pattern_free(g_ping);
    edist_pattern_free(g_never);
    return 0;
}
