/* SPDX-License-Identifier: Apache-2.0 */
/* `edist bench pair`: what the orchestrator (cmd_bench.c) and its two node
 * processes (bench_pair_peer.c, run as `edist bench pair-peer ROLE ...`)
 * share: the roles, the name of the sink's process, and the result record
 * the driver prints as one line for the orchestrator to read.
 *
 * The two nodes speak ordinary Erlang terms (a BEAM process could play
 * either side):
 *   driver -> {edist_bench_peer, B}: {hello, DriverPid, Count, AckEvery, Bytes}
 *   sink   -> driver: {hello, SinkPid}
 *   driver -> sink:   {data, Seq, <<Pad>>}, Count times, each Bytes long
 *   sink   -> driver: {ack, Received} after every AckEvery messages
 *   driver -> sink:   {stream_end, Sent}
 *   sink   -> driver: {stream_result, Received, Unique, OutOfOrder,
 *                      Duplicates, Bad}
 *   driver -> sink:   {ping, Seq, <<Pad>>}; the sink sends it back as it is
 *                     (closed loop: one at a time; open loop: on a fixed
 *                     schedule, whatever has come back)
 * Fan-out, one driver process to N processes of the sink's node:
 *   driver -> {edist_bench_peer, B}: {fan_out, DriverPid, N, Count, AckEvery,
 *                                      Bytes}
 *   the sink spawns N processes, each a sink of its own for Count messages
 *   that answers {hello, Pid} and ends after its stream_result.
 * Fan-in, N processes of the driver's node to the one sink: a hello with
 * the total count, each sender streams its share of the sequence numbers;
 * the acknowledgements go to the process that said hello.
 * Every {ack, _} stands for AckEvery more messages received. */
#ifndef EDIST_CLI_BENCH_PAIR_H
#define EDIST_CLI_BENCH_PAIR_H

#include <stddef.h>
#include <stdint.h>

/* The hidden subcommand: `edist bench pair-peer sink|driver OPTIONS`. */
#define BENCH_PAIR_PEER_COMMAND "pair-peer"
/* The sink's registered process. */
#define BENCH_PAIR_SINK_NAME "edist_bench_peer"
/* A node process says it is up with "ready NAME" on stdout; the driver
 * ends with "result FIELD=VALUE ..." (below). */
#define BENCH_PAIR_READY_PREFIX "ready "
#define BENCH_PAIR_RESULT_PREFIX "result "

/* The smallest message: {data, Seq, <<>>} with Seq as a 32-bit integer. */
#define BENCH_PAIR_MIN_BYTES 18
/* Messages up to this size; streams keep at most this many bytes (and at
 * most BENCH_PAIR_WINDOW_MESSAGES messages) unacknowledged. */
#define BENCH_PAIR_MAX_BYTES ((size_t)64 << 20)
#define BENCH_PAIR_WINDOW_BYTES ((size_t)64 << 20)
#define BENCH_PAIR_WINDOW_MESSAGES 16000
/* Sequence numbers are 32-bit integers on the wire. */
#define BENCH_PAIR_MAX_COUNT 2147483647L

/* The driver's figures. U: a count, F: a real number. `lost` is sent
 * minus unique; `out_of_order` counts stream messages that arrived after a
 * later one and pongs that did not answer the ping just sent; `stalled`
 * is 1 when the sink stopped acknowledging (the stream was cut short).
 * `messages_out` and `messages_in_place`: the driver's node's whole run,
 * distribution messages sent, and of them those encoded straight into the
 * lane (the others waited in the peer's scheduler and were copied).
 * ol_*: the open loop, ol_count pings sent at ol_rate a second whatever
 * came back, each timed from when its schedule said to send it (so a late
 * send counts as waiting, as coordinated omission would hide);
 * fanout_*, fanin_*: the streams to and from `fan` processes. A part not
 * asked for is all zeros. */
/* clang-format off */
#define BENCH_PAIR_RESULT_FIELDS(U, F)                                         \
    U(sent) U(received) U(unique) U(lost) U(out_of_order) U(duplicates)        \
    U(bad_messages) U(send_waits) U(stalled) F(stream_seconds)                 \
    U(rtt_count) U(rtt_warmup) F(rtt_seconds) F(rtt_p50_us) F(rtt_p90_us)      \
    F(rtt_p99_us) F(rtt_p999_us) F(rtt_max_us) U(ol_rate) U(ol_count)          \
    U(ol_received) F(ol_seconds) F(ol_p50_us) F(ol_p90_us) F(ol_p99_us)        \
    F(ol_p999_us) F(ol_max_us) U(fan) U(fanout_sent) U(fanout_unique)          \
    F(fanout_seconds) U(fanin_sent) U(fanin_unique) F(fanin_seconds)           \
    U(messages_out) U(messages_in_place)
/* clang-format on */

typedef struct bench_pair_result {
#define BENCH_PAIR_U(name) uint64_t name;
#define BENCH_PAIR_F(name) double name;
    BENCH_PAIR_RESULT_FIELDS(BENCH_PAIR_U, BENCH_PAIR_F)
#undef BENCH_PAIR_U
#undef BENCH_PAIR_F
} bench_pair_result;

/* "result sent=... rtt_max_us=..." without a newline; the length needed,
 * as snprintf. */
size_t bench_pair_result_format(const bench_pair_result *r, char *line,
                                size_t cap);
/* Parses what bench_pair_result_format wrote (the prefix included): 0, or
 * -1 when a field is missing or malformed. */
int bench_pair_result_parse(const char *line, bench_pair_result *r);

/* The node process of either role; the exit code. */
int bench_pair_peer(int argc, char **argv);

#endif
