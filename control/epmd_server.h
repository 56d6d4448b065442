/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD-compatible port mapper server.
 *
 * A single-threaded poll() loop that real `erl` nodes, ei C nodes and our
 * own client register with and query, behaving as OTP's epmd does:
 * - ALIVE2_REQ registers a name for as long as the connection stays open;
 *   a name already registered is refused (result 1); the creation is a
 *   per-name counter (seeded from the clock, bumped on every re-use of the
 *   name, never below 4) so successive registrations of one name differ;
 *   nodes announcing highest version >= 6 get ALIVE2_X_RESP (u32 creation),
 *   older ones ALIVE2_RESP with creation 1..3.
 * - PORT_PLEASE2_REQ, NAMES_REQ, DUMP_REQ are answered and the connection
 *   closed. ALIVE2, DUMP, KILL and STOP are only honoured from local peers.
 * - KILL_REQ answers "NO" while nodes are registered and STOP_REQ is
 *   ignored, unless relaxed_command_check is set (epmd's default).
 * Defences: requests longer than epmd's limit, malformed or unknown
 * requests and any byte after a registration close the connection with one
 * log line; a connection without a complete request after
 * packet_timeout_ms is dropped; at max_connections the oldest connection
 * that is not a registration is dropped to make room; pending output is
 * bounded. Memory is bounded by max_connections.
 *
 * Library code never prints: significant events (registrations, refusals,
 * dropped connections and why) go to the config's log callback, one line
 * each, called from the thread running the loop.
 */
#ifndef EDI_EPMD_SERVER_H
#define EDI_EPMD_SERVER_H

#include <stdint.h>
#include <sys/types.h>

#include "base/log.h"

#define EDI_EPMD_DEFAULT_MAX_CONNECTIONS 1024u
#define EDI_EPMD_DEFAULT_PACKET_TIMEOUT_MS                                     \
    60000u /* epmd's -packet_timeout 60 */
/* Names remembered after unregistering, so a re-registration gets the next
 * creation (as epmd's MAX_UNREG_COUNT). */
#define EDI_EPMD_MAX_REMEMBERED_NAMES 1000u
/* Bytes of replies waiting for slow readers, over all connections. */
#define EDI_EPMD_MAX_PENDING_OUTPUT_BYTES (16u * 1024u * 1024u)
#define EDI_EPMD_MAX_LISTEN_SOCKETS 16u

typedef struct edi_epmd_server_config {
    /* > 0: that port; 0: $ERL_EPMD_PORT or 4369; -1: a free port chosen by
     * the kernel (tests; read it with edi_epmd_server_port()). */
    int port;
    /* NULL or "": every interface (0.0.0.0 and ::), as epmd by default.
     * Else addresses separated by commas or spaces (IPv4 or IPv6); the
     * loopback addresses are always added, as epmd's -address does. */
    const char *addresses;
    unsigned max_connections;   /* 0: EDI_EPMD_DEFAULT_MAX_CONNECTIONS */
    unsigned packet_timeout_ms; /* 0: EDI_EPMD_DEFAULT_PACKET_TIMEOUT_MS */
    int relaxed_command_check;  /* allow KILL with live nodes, and STOP */
    /* One INFO line per event, on the loop's thread (base/log.h); zero:
     * none. */
    edi_log log;
    /* Embedded port mapper: > 0: the loop returns (the server
     * exits) once no connection has been open, hence no node registered,
     * for this long, counted from the start and from each time the last
     * connection closed. 0: never, as epmd. */
    unsigned idle_exit_ms;
} edi_epmd_server_config;

/* Counters, readable from any thread while the loop runs. */
typedef struct edi_epmd_server_stats {
    uint64_t connections_open;
    uint64_t connections_accepted;
    uint64_t connections_dropped; /* garbage, timeouts, limits */
    uint64_t registered_nodes;
    uint64_t registrations_refused;
    uint64_t requests_served;
} edi_epmd_server_stats;

typedef struct edi_epmd_server edi_epmd_server;

/* Creates the listening sockets (bound and listening when this returns, so
 * clients may connect at once) and the server state. The config is copied
 * (addresses included). EDIST_EEXIST if the port is already in use (another
 * port mapper runs), EDIST_EIO for other socket errors, EDIST_EINVAL for a
 * bad address. Does not block. */
int edi_epmd_server_start(const edi_epmd_server_config *cfg,
                          edi_epmd_server **out);

/* The port the server listens on. */
uint16_t edi_epmd_server_port(const edi_epmd_server *s);

/* Runs the loop until edi_epmd_server_stop(), an honoured KILL_REQ or
 * the idle exit (idle_exit_ms).
 * Returns 0, or a negative edist_err if polling itself failed. Call from one
 * thread at a time. */
int edi_epmd_server_run(edi_epmd_server *s);

/* One loop iteration: waits up to timeout_ms (-1: until something happens)
 * and handles what is ready. Returns 1 if the server should go on, 0 once it
 * was stopped or killed, or a negative edist_err. For callers that embed
 * the server in a loop of their own. */
int edi_epmd_server_step(edi_epmd_server *s, int timeout_ms);

/* Asks the loop to return. Thread-safe and async-signal-safe (it sets a flag
 * and writes one byte to a pipe), so a SIGTERM handler may call it. */
void edi_epmd_server_stop(edi_epmd_server *s);

void edi_epmd_server_get_stats(const edi_epmd_server *s,
                               edi_epmd_server_stats *st);

/* Closes every socket (unregistering everyone) and frees the server. The
 * loop must not be running. NULL: no-op. */
void edi_epmd_server_free(edi_epmd_server *s);

/* Starts a port mapper that outlives the calling process: binds in the
 * caller (so the result says whether the port was free), then detaches a
 * grandchild (double fork, setsid, cwd "/", stdio on /dev/null, every other
 * descriptor of the caller closed, SIGHUP ignored, SIGTERM/SIGINT stop it
 * cleanly) that runs the loop. This is how a node embeds a port mapper
 * without taking other nodes' registrations down when it exits. On success
 * *pid is the daemon's pid. EDIST_EEXIST if a port mapper already listens.
 * The config's log callback runs in the daemon (where stdio is /dev/null).
 * Safe to call from a multi-threaded process: the children only run this
 * module's code. */
int edi_epmd_daemon_start(const edi_epmd_server_config *cfg, pid_t *pid);

#endif
