/* SPDX-License-Identifier: Apache-2.0 */
/* Messages between two nodes over the io_uring TCP data plane, and the same
 * workloads over ZeroMQ, in one run (bench/dist.sh adds Erlang/OTP
 * distribution and prints the ratios).
 *
 * Two edist nodes live in this program, each with its own shard thread, on
 * 127.0.0.1 (long names), registered with the port mapper at
 * $ERL_EPMD_PORT. The message is the same 64-byte term everywhere:
 * {ping, N, <<46 bytes>>} in the external format; ZeroMQ carries those
 * bytes as one frame.
 *
 *   DistStream    a green process on node A sends N messages to one on
 *                 node B; B acknowledges every 1,000 and A keeps at most
 *                 16,000 unacknowledged (the same window as dist_bench.erl).
 *                 items = messages.
 *   DistPingPong  A sends, B echoes, A waits: items = round trips.
 *   ZmqStream     PUSH -> PULL over tcp://127.0.0.1 (default high-water
 *                 marks do the flow control). items = messages.
 *   ZmqPingPong   REQ -> REP echo. items = round trips.
 *
 * EDIST_BENCH_IDLE=busy makes both shards busy-poll (default adaptive). */

#include <benchmark/benchmark.h>
#include <zmq.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>

#include "edist/edist.h"

namespace {

constexpr int64_t kAckEvery = 1000;
constexpr int64_t kWindow = 16000;

edist_node *g_a, *g_b;
edist_procid g_main; /* the benchmark thread, a process of node A */
uint8_t g_msg[64];
size_t g_msg_len;

void fail(const char *what)
{
    std::fprintf(stderr, "bench_dist: %s: %s\n", what, edist_last_error());
    std::abort();
}

void encode_msg()
{
    edist_buf b;
    edist_buf_init_fixed(&b, g_msg, sizeof g_msg);
    uint8_t payload[46];
    std::memset(payload, 'x', sizeof payload);
    edist_enc_tuple(&b, 3);
    edist_enc_atom(&b, "ping", 4);
    edist_enc_int(&b, 1234567);
    edist_enc_binary(&b, payload, sizeof payload);
    if (edist_buf_error(&b) != 0)
        fail("encode");
    g_msg_len = b.len;
}

const uint8_t kNil[] = {EDIST_TAG_NIL};
const uint8_t kAck[] = {EDIST_TAG_SMALL_ATOM_UTF8, 3, 'a', 'c', 'k'};

/* Send, waiting while the peer's queue is full (busy_dist_port). */
void send_or_wait(edist_procid to, const void *m, size_t len)
{
    int rc;
    while ((rc = edist_send(to, m, len)) == EDIST_EAGAIN)
        edist_sleep_ms(1);
    if (rc != 0)
        fail("send");
}

void wait_done()
{
    edist_term_view m;
    if (edist_receive(nullptr, nullptr, 120000, &m) != 0)
        fail("no done");
}

struct Job {
    int64_t n;
    edist_procid peer;
    void (*body)(Job *j); /* run by starter once peer is known */
};

/* A process on node A that waits for the pid of its peer on node B (which
 * needs A's pid to be spawned first), then runs its body. */
void starter(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    edist_term_view m;
    if (edist_receive(nullptr, nullptr, -1, &m) != 0)
        fail("start");
    edist_cursor c;
    edist_cursor_init(&c, m.ptr, m.len);
    if (edist_dec_procid(&c, &j->peer) != 0)
        fail("start pid");
    j->body(j);
}

/* Tell a starter its peer. */
void start(edist_runtime *rt, edist_procid starter_pid, edist_procid peer)
{
    uint8_t pidbuf[128];
    edist_buf b;
    edist_buf_init_fixed(&b, pidbuf, sizeof pidbuf);
    edist_enc_procid(&b, peer);
    if (edist_runtime_send(rt, starter_pid, b.data, b.len) != 0)
        fail("start");
}

/* ---- edist: stream ------------------------------------------------------ */

void stream_sink(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    for (int64_t i = 1; i <= j->n; i++) {
        edist_term_view m;
        if (edist_receive(nullptr, nullptr, -1, &m) != 0)
            fail("sink receive");
        if (i % kAckEvery == 0)
            send_or_wait(j->peer, kAck, sizeof kAck);
    }
    send_or_wait(g_main, kNil, sizeof kNil);
}

void stream_source(Job *j)
{
    int64_t acked = 0;
    for (int64_t i = 0; i < j->n; i++) {
        while (i - acked >= kWindow) {
            edist_term_view m;
            if (edist_receive(nullptr, nullptr, -1, &m) != 0)
                fail("ack receive");
            acked += kAckEvery;
        }
        send_or_wait(j->peer, g_msg, g_msg_len);
    }
    /* Take the remaining acks so that none is left for the next run. */
    while (acked < j->n - j->n % kAckEvery) {
        edist_term_view m;
        if (edist_receive(nullptr, nullptr, -1, &m) != 0)
            fail("ack receive");
        acked += kAckEvery;
    }
}

void BM_DistStream(benchmark::State &state)
{
    int64_t n = state.range(0);
    edist_runtime *ra = edist_node_runtime(g_a), *rb = edist_node_runtime(g_b);
    for (auto _ : state) {
        Job src_job = {n, EDIST_PROCID_NULL, stream_source};
        edist_procid src, sink;
        if (edist_runtime_spawn(ra, starter, &src_job, nullptr, &src) != 0)
            fail("spawn source");
        Job sink_job = {n, src, nullptr};
        if (edist_runtime_spawn(rb, stream_sink, &sink_job, nullptr, &sink) != 0)
            fail("spawn sink");
        start(ra, src, sink);
        wait_done();
    }
    state.SetItemsProcessed(state.iterations() * n);
}

/* ---- edist: ping-pong --------------------------------------------------- */

void echo(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    for (;;) {
        edist_term_view m;
        if (edist_receive(nullptr, nullptr, -1, &m) != 0)
            fail("echo receive");
        if (m.len == 1) /* nil: stop */
            return;
        send_or_wait(j->peer, m.ptr, m.len);
    }
}

void pinger(Job *j)
{
    for (int64_t i = 0; i < j->n; i++) {
        send_or_wait(j->peer, g_msg, g_msg_len);
        edist_term_view m;
        if (edist_receive(nullptr, nullptr, -1, &m) != 0)
            fail("pong receive");
    }
    send_or_wait(j->peer, kNil, sizeof kNil);
    send_or_wait(g_main, kNil, sizeof kNil);
}

void BM_DistPingPong(benchmark::State &state)
{
    int64_t n = state.range(0);
    edist_runtime *ra = edist_node_runtime(g_a), *rb = edist_node_runtime(g_b);
    for (auto _ : state) {
        Job ping_job = {n, EDIST_PROCID_NULL, pinger};
        edist_procid ping;
        if (edist_runtime_spawn(ra, starter, &ping_job, nullptr, &ping) != 0)
            fail("spawn pinger");
        Job echo_job = {0, ping, nullptr};
        edist_procid ep;
        if (edist_runtime_spawn(rb, echo, &echo_job, nullptr, &ep) != 0)
            fail("spawn echo");
        start(ra, ping, ep);
        wait_done();
    }
    state.SetItemsProcessed(state.iterations() * n);
}

/* ---- ZeroMQ -------------------------------------------------------------- */

void *g_zctx;
int g_zport = 0;

std::string zaddr()
{
    return "tcp://127.0.0.1:" + std::to_string(g_zport);
}

void *zsocket(int type, bool bind)
{
    void *s = zmq_socket(g_zctx, type);
    if (!s)
        fail("zmq_socket");
    if (bind) {
        if (zmq_bind(s, "tcp://127.0.0.1:*") != 0)
            fail("zmq_bind");
        char ep[128];
        size_t len = sizeof ep;
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
        g_zport = std::atoi(std::strrchr(ep, ':') + 1);
    } else if (zmq_connect(s, zaddr().c_str()) != 0) {
        fail("zmq_connect");
    }
    return s;
}

void BM_ZmqStream(benchmark::State &state)
{
    int64_t n = state.range(0);
    void *pull = zsocket(ZMQ_PULL, true);
    void *push = zsocket(ZMQ_PUSH, false);
    for (auto _ : state) {
        std::thread rx([&] {
            uint8_t buf[256];
            for (int64_t i = 0; i < n; i++)
                if (zmq_recv(pull, buf, sizeof buf, 0) < 0)
                    fail("zmq_recv");
        });
        for (int64_t i = 0; i < n; i++)
            if (zmq_send(push, g_msg, g_msg_len, 0) < 0)
                fail("zmq_send");
        rx.join();
    }
    state.SetItemsProcessed(state.iterations() * n);
    zmq_close(push);
    zmq_close(pull);
}

void BM_ZmqPingPong(benchmark::State &state)
{
    int64_t n = state.range(0);
    void *rep = zsocket(ZMQ_REP, true);
    void *req = zsocket(ZMQ_REQ, false);
    for (auto _ : state) {
        std::thread echo_thread([&] {
            uint8_t buf[256];
            for (int64_t i = 0; i < n; i++) {
                int got = zmq_recv(rep, buf, sizeof buf, 0);
                if (got < 0 || zmq_send(rep, buf, (size_t)got, 0) < 0)
                    fail("zmq echo");
            }
        });
        uint8_t buf[256];
        for (int64_t i = 0; i < n; i++)
            if (zmq_send(req, g_msg, g_msg_len, 0) < 0 || zmq_recv(req, buf, sizeof buf, 0) < 0)
                fail("zmq ping");
        echo_thread.join();
    }
    state.SetItemsProcessed(state.iterations() * n);
    zmq_close(req);
    zmq_close(rep);
}

BENCHMARK(BM_DistStream)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ZmqStream)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DistPingPong)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ZmqPingPong)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

edist_node *start_node(const char *name, edist_idle idle)
{
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = name;
    cfg.long_names = true;
    cfg.cookie = "benchcookie";
    cfg.listen_address = "127.0.0.1";
    cfg.start_epmd = false;
    cfg.idle = idle;
    cfg.log_level = EDIST_LOG_WARNING;
    edist_node *n = nullptr;
    if (edist_node_start(&cfg, &n) != 0)
        fail(name);
    return n;
}

} // namespace

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    const char *idle_env = std::getenv("EDIST_BENCH_IDLE");
    edist_idle idle = idle_env && !std::strcmp(idle_env, "busy") ? EDIST_IDLE_BUSY
                                                                  : EDIST_IDLE_ADAPTIVE;
    std::string suffix = std::to_string(getpid());
    std::string a = "bencha" + suffix + "@127.0.0.1", b = "benchb" + suffix + "@127.0.0.1";
    g_a = start_node(a.c_str(), idle);
    g_b = start_node(b.c_str(), idle);
    if (edist_node_ping(g_a, b.c_str(), 5000) != 0)
        fail("ping");
    if (edist_proc_attach_thread(edist_node_runtime(g_a), 0, &g_main) != 0)
        fail("attach");
    encode_msg();
    g_zctx = zmq_ctx_new();
    benchmark::AddCustomContext("idle", idle == EDIST_IDLE_BUSY ? "busy" : "adaptive");
    benchmark::AddCustomContext("message_bytes", std::to_string(g_msg_len));
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    zmq_ctx_term(g_zctx);
    edist_proc_detach_thread(nullptr, 0);
    edist_node_stop(g_b);
    edist_node_stop(g_a);
    return 0;
}
