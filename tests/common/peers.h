/* SPDX-License-Identifier: Apache-2.0 */
/* Real peers for the tests that need them: our own `epmd -port P` on a free
 * port, `erl` nodes (a waiting node, or a one-line REPL on stdin/stdout),
 * EPMD lookups, erl_call, a temp dir as HOME.
 *
 * Ownership: every process started here (peers_spawn and everything built
 * on it) is recorded in a table of this module and ended by its PID only:
 * by peers_end(), by peers_env_teardown() (all that are left, newest
 * first), and at exit (atexit, SIGKILL) if a failed setup never reached a
 * teardown. Each child also gets PR_SET_PDEATHSIG(SIGKILL), so it dies with
 * the test even if the test itself is killed. erl_call runs through
 * popen() and is waited for before peers_erl_call() returns.
 *
 * Plain POSIX, independent of the edist library under test; returns 0 or
 * -1 (pids: > 0 or -1), never asserts: callers assert. Not thread safe:
 * start and end children from the test's main thread. Everything is on
 * 127.0.0.1. */
#ifndef EDIST_TESTS_PEERS_H
#define EDIST_TESTS_PEERS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PEERS_HOST "127.0.0.1"
/* Grace between SIGTERM and SIGKILL for peers that shut down politely. */
#define PEERS_TERM_GRACE_MS 3000

/* CLOCK_MONOTONIC in milliseconds. */
int64_t peers_now_ms(void);

/* A TCP port on 127.0.0.1 that was free a moment ago, or 0. */
uint16_t peers_free_port(void);

/* A unique name: prefix<pid>_<n> (n counts up for the whole program). */
void peers_unique_name(char *buf, size_t cap, const char *prefix);

/* ---- children ------------------------------------------------------------ */

/* Fork and exec argv (PATH search) in its own process group. stdin is a
 * pipe whose write end goes to *in_fd if in_fd, else /dev/null; stdout a
 * pipe whose read end goes to *out_fd if out_fd, else log_path; stderr
 * log_path (appended; /dev/null if NULL). The pid is recorded (see above);
 * -1 if it cannot be started or the table is full. */
pid_t peers_spawn(char *const argv[], int *in_fd, int *out_fd,
                  const char *log_path);

/* End a recorded child by pid and reap it: SIGTERM, up to grace_ms for it
 * to exit, then SIGKILL (grace_ms 0: SIGKILL at once). pid <= 0: nothing. */
void peers_end(pid_t pid, int grace_ms);

/* End every child still recorded, newest first. */
void peers_end_all(int grace_ms);

/* ---- bytes --------------------------------------------------------------- */

/* Write all n bytes (EINTR retried): 0, or -1. */
int peers_write_all(int fd, const void *p, size_t n);

/* Read exactly n bytes within timeout_ms: 0, or -1 (timeout, EOF, error). */
int peers_read_full(int fd, void *p, size_t n, int timeout_ms);

/* A TCP connection to 127.0.0.1:port within timeout_ms; the fd, or -1. */
int peers_connect(uint16_t port, int timeout_ms);

/* ---- epmd ---------------------------------------------------------------- */

/* PORT_PLEASE2 to the epmd on epmd_port: the distribution port of alive
 * (the short name, no host), or 0 if it is not registered or epmd does not
 * answer (2 s for the connection, 2 s for the reply). Inline bytes: the
 * edist epmd client is tested on its own. */
uint16_t peers_epmd_port_please(uint16_t epmd_port, const char *alive);

/* Poll (every 50 ms) until alive is registered, for up to secs seconds. */
bool peers_wait_registered(uint16_t epmd_port, const char *alive, int secs);

/* ---- environment: temp HOME and our own epmd ---------------------------- */

typedef struct peers_env {
    char dir[128];      /* temp dir, also HOME (a short /tmp path) */
    char host[64];      /* this host's short name (for -sname peers) */
    uint16_t epmd_port; /* our epmd; also exported as ERL_EPMD_PORT */
    pid_t epmd_pid;
    int end_grace_ms; /* for the children ended by the teardown */
} peers_env;

/* mkdtemp(dir_template) as HOME, then `epmd -port P -address 127.0.0.1`
 * on a free port (up to 5 ports if one is taken meanwhile; each waited for
 * up to 10 s until it answers a NAMES request), ERL_EPMD_PORT=P. 0, or -1
 * (then whatever was started is ended and the dir removed). */
int peers_env_setup(peers_env *e, const char *dir_template, int end_grace_ms);

/* End every child still recorded (e->end_grace_ms), remove the dir: 0, or
 * -1 if the dir could not be removed. */
int peers_env_teardown(peers_env *e);

/* ---- erl nodes ----------------------------------------------------------- */

typedef struct peers_erl_opts {
    const char *name; /* -sname name, or -name name@127.0.0.1 */
    bool long_name;
    const char *cookie;
    int ticktime_s;       /* net_ticktime */
    const char *eval;     /* -eval */
    const char *log_path; /* stdout (unless piped) and stderr */
    int *in_fd, *out_fd;  /* pipes as peers_spawn */
} peers_erl_opts;

/* `erl -noshell -[s]name N -setcookie C -start_epmd false -kernel
 * net_ticktime T -kernel inet_dist_use_interface {127,0,0,1} -eval E`
 * through peers_spawn; uses the epmd of ERL_EPMD_PORT and never starts
 * one. Does not wait. */
pid_t peers_erl_spawn(const peers_erl_opts *o);

/* An erl node (short name) that runs `extra` (may be NULL) then waits
 * forever, logging to dir/name.log; waits up to 25 s for it to register
 * with the epmd of e. The pid, or -1 (the node is ended). */
pid_t peers_erl_start(const peers_env *e, const char *name, const char *cookie,
                      const char *extra, int ticktime_s);

/* Evaluate expr on the erl node node_short through erl_call (hidden,
 * -sname; the expression goes through a file in dir so that the shell
 * never sees its quotes). out: what erl_call printed, spaces after commas
 * and newlines removed. pclose()'s status. */
int peers_erl_call(const char *dir, const char *cookie, const char *node_short,
                   const char *expr, char *out, size_t cap);

/* ---- an erl REPL on pipes ----------------------------------------------- */

/* A long-named erl node reading one Erlang expression per line on stdin
 * and printing "RESULT <~w of its value>" per line on stdout. */
typedef struct peers_repl {
    pid_t pid;
    int in_fd;         /* we write expressions */
    int out_fd;        /* erl's stdout */
    char out[1 << 17]; /* all erl printed, NUL-terminated */
    size_t out_len;
    size_t out_scan; /* where the next RESULT search starts */
} peers_repl;

/* Start node (full name@127.0.0.1) with stderr in log_path and wait up to
 * 20 s for its READY line. 0, or -1. */
int peers_repl_start(peers_repl *r, const char *node, const char *cookie,
                     int ticktime_s, const char *log_path);

/* Write expr and a newline: 0, or -1. */
int peers_repl_send(peers_repl *r, const char *expr);

/* Wait up to timeout_ms for the next RESULT line and copy its term into
 * res. idle, if not NULL, runs at least every 300 ms while waiting (to keep
 * a connection ticking). 0, or -1 on timeout, EOF or a full buffer. */
int peers_repl_result(peers_repl *r, char *res, size_t cap, int timeout_ms,
                      void (*idle)(void));

/* Close stdin (the REPL halts on EOF), end the node by pid (grace_ms as
 * peers_end), close stdout. */
void peers_repl_stop(peers_repl *r, int grace_ms);

#endif
