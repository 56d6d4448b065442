/* SPDX-License-Identifier: Apache-2.0 */
#include "control/node_config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/dist_reasm.h" /* EDI_DIST_REASM_MAX_SEQUENCES_DEFAULT */
#include "control/epmd_client.h"
#include "dataplane/dpdk/encap.h"
#include "dataplane/dpdk/medium.h"
#include "edist/error.h"
#include "edist/proc.h" /* EDIST_MAX_SHARDS */

typedef enum opt_type {
    T_STRING,
    T_BOOL,
    T_PORT,
    T_SECONDS,
    T_ENUM,
    T_COUNT, /* 1 .. UINT32_MAX */
    T_BYTES, /* 1 .. 2^48, with an optional K, M or G suffix */
} opt_type;

typedef struct opt_desc {
    const char *key;
    opt_type type;
    const char *def;     /* default text, NULL: unset */
    const char *choices; /* T_ENUM: "a|b|c" */
    int file_ok;         /* may appear in a config file */
    const char *want;    /* what a value must be, where the type says too
                          * little (NULL: the type's words) */
} opt_desc;

/* The bounds the table's words name. */
_Static_assert(EDIST_MAX_SHARDS == 64, "shards: \"1 to 64\" below");
_Static_assert(EDIST_NODE_SERVICE_RESTARTS_MAX == 64, "service_restarts: \"1 to 64\" below");
_Static_assert(EDI_DIST_REASM_MAX_SEQUENCES_DEFAULT == 1024, "send_open_sequences: \"1 to 1024\"");
_Static_assert(EDIST_NODE_RX_RECYCLE_BUFFERS_MAX == 1024, "rx_recycle_buffers: \"0 to 1024\"");

static const opt_desc opts[EDI_OPT_COUNT] = {
    [EDI_OPT_SNAME] = {"sname", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_NAME] = {"name", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_COOKIE] = {"cookie", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_HIDDEN] = {"hidden", T_BOOL, "false", NULL, 1, NULL},
    [EDI_OPT_LISTEN_ADDRESS] = {"listen_address", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_LISTEN_PORT] = {"listen_port", T_PORT, "0", NULL, 1, NULL},
    [EDI_OPT_EPMD_PORT] = {"epmd_port", T_PORT, "0", NULL, 1, NULL},
    [EDI_OPT_START_EPMD] = {"start_epmd", T_BOOL, "true", NULL, 1, NULL},
    [EDI_OPT_TICKTIME] = {"ticktime", T_SECONDS, "60", NULL, 1, NULL},
    [EDI_OPT_SETUPTIME] = {"setuptime", T_SECONDS, "7", NULL, 1, NULL},
    [EDI_OPT_CONNECT_ALL] = {"connect_all", T_BOOL, "true", NULL, 1, NULL},
    [EDI_OPT_TRANSPORT] = {"transport", T_ENUM, "tcp", "tcp|dpdk", 1, NULL},
    [EDI_OPT_IDLE] = {"idle", T_ENUM, "adaptive", "adaptive|busy|sleep", 1, NULL},
    [EDI_OPT_LOG_LEVEL] = {"log_level", T_ENUM, "info",
                           "error|warning|info|debug", 1, NULL},
    [EDI_OPT_RX_BUFFERS] = {"rx_buffers", T_COUNT, "64", NULL, 1, "a power of 2 from 8 to 32768"},
    [EDI_OPT_RX_RECYCLE_BUFFERS] = {"rx_recycle_buffers", T_COUNT, "8", NULL, 1, "0 to 1024"},
    [EDI_OPT_RX_RECYCLE_MAX_BYTES] = {"rx_recycle_max_bytes", T_BYTES, "8M", NULL, 1, NULL},
    [EDI_OPT_MAX_MESSAGE_BYTES] = {"max_message_bytes", T_BYTES, "1G", NULL, 1, NULL},
    [EDI_OPT_REASSEMBLY_LIMIT_BYTES] = {"reassembly_limit_bytes", T_BYTES, "2G", NULL, 1, NULL},
    [EDI_OPT_SEND_QUEUE_LIMIT_BYTES] = {"send_queue_limit_bytes", T_BYTES, "64M", NULL, 1, NULL},
    [EDI_OPT_MAILBOX_MESSAGES] = {"mailbox_messages", T_COUNT, "1000000", NULL, 1, NULL},
    [EDI_OPT_MAILBOX_BYTES] = {"mailbox_bytes", T_BYTES, "1G", NULL, 1, NULL},
    [EDI_OPT_MAILBOX_HARD_MESSAGES] = {"mailbox_hard_messages", T_COUNT, "16000000", NULL, 1, NULL},
    [EDI_OPT_MAILBOX_HARD_BYTES] = {"mailbox_hard_bytes", T_BYTES, "4G", NULL, 1, NULL},
    [EDI_OPT_MAX_PROCESSES] = {"max_processes", T_COUNT, "1048576", NULL, 1, NULL},
    [EDI_OPT_STACK_BYTES] = {"stack_bytes", T_BYTES, "64K", NULL, 1, NULL},
    [EDI_OPT_MAX_PENDING_REQUESTS] = {"max_pending_requests", T_COUNT, "65536", NULL, 1, NULL},
    [EDI_OPT_MAX_PENDING_BYTES] = {"max_pending_bytes", T_BYTES, "64M", NULL, 1, NULL},
    [EDI_OPT_CONFIG] = {"config", T_STRING, NULL, NULL, 0, NULL},
    /* Admission of incoming connections. */
    [EDI_OPT_FIRST_MESSAGE_TIME] = {"first_message_time", T_SECONDS, "2", NULL,
                                    1, NULL},
    [EDI_OPT_MAX_HANDSHAKES] = {"max_handshakes", T_COUNT, "256", NULL, 1, NULL},
    [EDI_OPT_MAX_HANDSHAKES_PER_ADDRESS] = {"max_handshakes_per_address",
                                            T_COUNT, "64", NULL, 1, NULL},
    /* The embedded port mapper. */
    [EDI_OPT_EPMD_ADDRESS] = {"epmd_address", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_EPMD_IDLE_EXIT] = {"epmd_idle_exit", T_SECONDS, "5", NULL, 1, NULL},
    /* Shards. */
    [EDI_OPT_SHARDS] = {"shards", T_COUNT, "1", NULL, 1, "1 to 64"},
    [EDI_OPT_SHARD_CORES] = {"shard_cores", T_STRING, NULL, NULL, 1, "CPU numbers separated by commas (0,1)"},
    [EDI_OPT_SHARD_RING_ENTRIES] = {"shard_ring_entries", T_COUNT, "4096", NULL, 1, "a power of 2 from 64 to 1048576"},
    [EDI_OPT_LANE_QUEUE_LIMIT_BYTES] = {"lane_queue_limit_bytes", T_BYTES, "32M", NULL, 1, NULL},
    [EDI_OPT_SHARD_BACKLOG_LIMIT] = {"shard_backlog_limit", T_COUNT, "65536", NULL, 1, NULL},
    /* The DPDK lane. */
    [EDI_OPT_DPDK_EAL_ARGS] = {"dpdk_eal_args", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_DPDK_PORT] = {"dpdk_port", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_DPDK_HOLD_LIMIT_BYTES] = {"dpdk_hold_limit_bytes", T_BYTES, "64M", NULL, 1, NULL},
    [EDI_OPT_DPDK_SETUP_TIME] = {"dpdk_setup_time", T_SECONDS, "10", NULL, 1, NULL},
    [EDI_OPT_DPDK_SEND_BUFFER_BYTES] = {"dpdk_send_buffer_bytes", T_BYTES, "8M", NULL, 1, "a size of 256K or more"},
    [EDI_OPT_DPDK_RECV_WINDOW_BYTES] = {"dpdk_recv_window_bytes", T_BYTES, "4M", NULL, 1, "a size from 16K to 1G"},
    [EDI_OPT_DPDK_KERNEL_WINDOW_BYTES] = {"dpdk_kernel_window_bytes", T_BYTES, "128K", NULL, 1, "a size from 16K to 1G"},
    [EDI_OPT_DPDK_RTO_MIN_US] = {"dpdk_rto_min_us", T_COUNT, "100", NULL, 1, NULL},
    [EDI_OPT_DPDK_RTO_MAX_US] = {"dpdk_rto_max_us", T_COUNT, "100000", NULL, 1, NULL},
    [EDI_OPT_DPDK_IDLE_PING] = {"dpdk_idle_ping", T_SECONDS, "0.01", NULL, 1, NULL},
    [EDI_OPT_DPDK_DEAD_AFTER] = {"dpdk_dead_after", T_SECONDS, "2", NULL, 1, NULL},
    [EDI_OPT_DPDK_UDP_ADDRESS] = {"dpdk_udp_address", T_STRING, NULL, NULL, 1, "an IPv4 address (a.b.c.d)"},
    [EDI_OPT_DPDK_UDP_PORT] = {"dpdk_udp_port", T_PORT, "4370", NULL, 1, "a port number 1..65535"},
    [EDI_OPT_DPDK_GATEWAY_MAC] = {"dpdk_gateway_mac", T_STRING, NULL, NULL, 1, "a MAC address (xx:xx:xx:xx:xx:xx)"},
    [EDI_OPT_DPDK_POOL_MBUFS] = {"dpdk_pool_mbufs", T_COUNT, "8191", NULL, 1, "a count from 1024 to 1048576"},
    [EDI_OPT_CLOSE_FLUSH_TIME] = {"close_flush_time", T_SECONDS, "2", NULL, 1, NULL},
    [EDI_OPT_MAX_CLOSING_CONNECTIONS] = {"max_closing_connections", T_COUNT, "256", NULL, 1, NULL},
    [EDI_OPT_AUTO_CONNECT_MAX_SIGNALS] = {"auto_connect_max_signals", T_COUNT, "262144", NULL, 1, NULL},
    [EDI_OPT_AUTO_CONNECT_MAX_BYTES] = {"auto_connect_max_bytes", T_BYTES, "64M", NULL, 1, NULL},
    [EDI_OPT_GLOBAL_CALL_TIMEOUT] = {"global_call_timeout", T_SECONDS, "10", NULL, 1, NULL},
    [EDI_OPT_SEND_OPEN_SEQUENCES] = {"send_open_sequences", T_COUNT, "256", NULL, 1, "1 to 1024"},
    [EDI_OPT_RECEIVE_GRACE_TIME] = {"receive_grace_time", T_SECONDS, "0.1", NULL, 1, NULL},
    [EDI_OPT_SERVICE_RESTARTS] = {"service_restarts", T_COUNT, "5", NULL, 1, "1 to 64"},
    [EDI_OPT_SERVICE_RESTART_PERIOD] = {"service_restart_period", T_SECONDS, "10", NULL, 1, NULL},
    [EDI_OPT_STATS_INTERVAL] = {"stats_interval", T_SECONDS, "1", NULL, 1, NULL},
    [EDI_OPT_STATS_DIR] = {"stats_dir", T_STRING, NULL, NULL, 1, NULL},
    [EDI_OPT_PUBLISH_STATS] = {"publish_stats", T_BOOL, "true", NULL, 1, NULL},
};

/* "C0,C1,...": CPU numbers (0..1023). */
static int cpu_list_ok(const char *v)
{
    const char *p = v;
    for (;;) {
        char *end;
        errno = 0;
        long c = strtol(p, &end, 10);
        if (errno || end == p || c < 0 || c > 1023)
            return -1;
        p = end;
        if (!*p)
            return 0;
        if (*p != ',')
            return -1;
        p++;
    }
}

int edi_node_option_id(const char *key)
{
    for (int i = 0; i < EDI_OPT_COUNT; i++)
        if (!strcmp(opts[i].key, key))
            return i;
    return -1;
}

const char *edi_node_option_key(edi_opt_id id)
{
    return (unsigned)id < EDI_OPT_COUNT ? opts[id].key : "?";
}

void edi_node_options_init(edi_node_options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < EDI_OPT_COUNT; i++) {
        if (opts[i].def)
            snprintf(o->value[i], sizeof o->value[i], "%s", opts[i].def);
        o->source[i] = EDI_OPT_DEFAULT;
        snprintf(o->origin[i], sizeof o->origin[i], "default");
    }
    edist_node_config_init(&o->cfg);
}

/* -1 if s is not a boolean word. */
static int parse_bool(const char *s)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i]))
            return 1;
        if (!strcasecmp(s, no[i]))
            return 0;
    }
    return -1;
}

static int parse_port(const char *s, uint16_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Seconds with up to three decimals, into milliseconds; 1 ms .. 1 day. */
static int parse_seconds_ms(const char *s, uint32_t *out_ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.001) || v > 86400.0)
        return -1;
    *out_ms = (uint32_t)(v * 1000.0 + 0.5);
    return 0;
}

static int parse_count(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || v == 0 || v > (UINT64_C(1) << 48) >> shift)
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int enum_index(const char *choices, const char *s)
{
    size_t n = strlen(s);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, s, n))
            return idx;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int check_value(edi_opt_id id, const char *v)
{
    uint16_t port;
    uint32_t ms, count;
    uint64_t bytes;
    switch (opts[id].type) {
    case T_STRING:
        if (id == EDI_OPT_SHARD_CORES)
            return cpu_list_ok(v);
        if (id == EDI_OPT_DPDK_UDP_ADDRESS)
            return edi_encap_parse_ipv4(v, (uint8_t[4]){0}) == 0 ? 0 : -1;
        if (id == EDI_OPT_DPDK_GATEWAY_MAC)
            return edi_encap_parse_mac(v, (uint8_t[6]){0}) == 0 ? 0 : -1;
        return v[0] ? 0 : -1;
    case T_BOOL:
        return parse_bool(v) >= 0 ? 0 : -1;
    case T_PORT:
        if (parse_port(v, &port))
            return -1;
        return id == EDI_OPT_DPDK_UDP_PORT && port == 0 ? -1 : 0;
    case T_SECONDS:
        return parse_seconds_ms(v, &ms);
    case T_ENUM:
        return enum_index(opts[id].choices, v) >= 0 ? 0 : -1;
    case T_COUNT:
        if (id == EDI_OPT_RX_RECYCLE_BUFFERS && strcmp(v, "0") == 0)
            return 0; /* none kept */
        if (parse_count(v, &count))
            return -1;
        if (id == EDI_OPT_RX_RECYCLE_BUFFERS &&
            count > EDIST_NODE_RX_RECYCLE_BUFFERS_MAX)
            return -1;
        /* the receive ring takes a power of 2 up to 32768 */
        if (id == EDI_OPT_RX_BUFFERS && (count < 8 || count > 32768 || (count & (count - 1))))
            return -1;
        if (id == EDI_OPT_SHARDS && count > EDIST_MAX_SHARDS)
            return -1;
        if (id == EDI_OPT_SERVICE_RESTARTS && count > EDIST_NODE_SERVICE_RESTARTS_MAX)
            return -1;
        /* what an edist receiver takes per peer */
        if (id == EDI_OPT_SEND_OPEN_SEQUENCES && count > EDI_DIST_REASM_MAX_SEQUENCES_DEFAULT)
            return -1;
        if (id == EDI_OPT_DPDK_POOL_MBUFS && (count < 1024 || count > (1u << 20)))
            return -1;
        if (id == EDI_OPT_SHARD_RING_ENTRIES &&
            (count < 64 || count > (1u << 20) || (count & (count - 1))))
            return -1;
        return 0;
    case T_BYTES:
        if (parse_bytes(v, &bytes))
            return -1;
        /* the link protocol's window field is 32 bits */
        if ((id == EDI_OPT_DPDK_RECV_WINDOW_BYTES ||
             id == EDI_OPT_DPDK_KERNEL_WINDOW_BYTES) &&
            (bytes < (16u << 10) || bytes > (1u << 30)))
            return -1;
        if (id == EDI_OPT_DPDK_SEND_BUFFER_BYTES && bytes < EDI_DPDK_SEND_BUFFER_MIN_BYTES)
            return -1;
        return 0;
    }
    return -1;
}

static const char *source_word(edi_opt_source s)
{
    switch (s) {
    case EDI_OPT_DEFAULT:
        return "default";
    case EDI_OPT_FILE:
        return "file";
    case EDI_OPT_ENV:
        return "env";
    case EDI_OPT_FLAG:
        return "flag";
    }
    return "?";
}

int edi_node_options_set(edi_node_options *o, edi_opt_id id, const char *value,
                         edi_opt_source src, const char *origin_detail)
{
    if ((unsigned)id >= EDI_OPT_COUNT || !value)
        return edist_set_error(EDIST_EINVAL, "bad option");
    const char *origin = origin_detail ? origin_detail : source_word(src);
    if (strlen(value) >= EDI_OPT_TEXT_BYTES)
        return edist_set_error(EDIST_EINVAL,
                               "%s: value of %s too long (max %d bytes)",
                               origin, opts[id].key, EDI_OPT_TEXT_BYTES - 1);
    if (check_value(id, value) != 0) {
        if (opts[id].want)
            return edist_set_error(EDIST_EINVAL, "%s: %s must be %s, not '%s'",
                                   origin, opts[id].key, opts[id].want, value);
        if (opts[id].type == T_ENUM)
            return edist_set_error(EDIST_EINVAL,
                                   "%s: %s must be one of %s, not '%s'", origin,
                                   opts[id].key, opts[id].choices, value);
        static const char *const what[] = {
            [T_STRING] = "a non-empty string",
            [T_BOOL] = "true or false",
            [T_PORT] = "a port number 0..65535",
            [T_SECONDS] = "seconds (0.001 .. 86400)",
            [T_ENUM] = "",
            [T_COUNT] = "a positive whole number",
            [T_BYTES] = "a positive size in bytes (suffix K, M or G)",
        };
        return edist_set_error(EDIST_EINVAL, "%s: %s must be %s, not '%s'",
                               origin, opts[id].key, what[opts[id].type],
                               value);
    }
    if (src < o->source[id])
        return 0; /* a stronger source already decided */
    snprintf(o->value[id], sizeof o->value[id], "%s", value);
    o->source[id] = src;
    snprintf(o->origin[id], sizeof o->origin[id], "%s", origin);
    return 0;
}

int edi_node_options_load_env(edi_node_options *o)
{
    for (int i = 0; i < EDI_OPT_COUNT; i++) {
        char var[64] = "EDIST_";
        size_t n = strlen(var);
        for (const char *k = opts[i].key; *k && n + 1 < sizeof var; k++)
            var[n++] = (char)(*k >= 'a' && *k <= 'z' ? *k - 'a' + 'A' : *k);
        var[n] = '\0';
        const char *v = getenv(var);
        if (!v)
            continue;
        char origin[80];
        snprintf(origin, sizeof origin, "env %s", var);
        int rc = edi_node_options_set(o, (edi_opt_id)i, v, EDI_OPT_ENV, origin);
        if (rc)
            return rc;
    }
    return 0;
}

typedef struct file_ctx {
    edi_node_options *o;
    const char *path;
    int err;
    int line;
    char detail[300];
} file_ctx;

/* Reads lines for inih while counting them, so errors can name the line
 * (this inih is built without INI_HANDLER_LINENO). */
typedef struct line_reader {
    FILE *f;
    file_ctx *fc;
} line_reader;

static char *read_line(char *str, int num, void *stream)
{
    line_reader *r = stream;
    char *s = fgets(str, num, r->f);
    if (s)
        r->fc->line++;
    return s;
}

static int on_ini(void *user, const char *section, const char *name,
                  const char *value)
{
    file_ctx *fc = user;
    int lineno = fc->line;
    if (fc->err)
        return 0;
    if (section[0] && strcmp(section, "node") != 0) {
        snprintf(fc->detail, sizeof fc->detail, "unknown section [%s]",
                 section);
        fc->err = EDIST_EINVAL;
        return 0;
    }
    int id = edi_node_option_id(name);
    if (id < 0 || !opts[id].file_ok) {
        snprintf(fc->detail, sizeof fc->detail, "unknown key '%s'", name);
        fc->err = EDIST_EINVAL;
        return 0;
    }
    char origin[PATH_MAX + 32];
    snprintf(origin, sizeof origin, "file %s:%d", fc->path, lineno);
    int rc = edi_node_options_set(fc->o, (edi_opt_id)id, value, EDI_OPT_FILE,
                                  origin);
    if (rc) {
        snprintf(fc->detail, sizeof fc->detail, "%s", edist_last_error());
        fc->err = rc;
        return 0;
    }
    return 1;
}

int edi_node_options_load_file(edi_node_options *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return edist_set_error(EDIST_EIO, "config file %s: %s", path,
                               strerror(errno));
    file_ctx fc = {.o = o, .path = path};
    line_reader r = {.f = f, .fc = &fc};
    int rc = ini_parse_stream(read_line, &r, on_ini, &fc);
    fclose(f);
    if (fc.err) {
        /* on_ini's detail already names the file when it came from _set. */
        if (strncmp(fc.detail, "file ", 5) == 0)
            return edist_set_error(fc.err, "%s", fc.detail);
        return edist_set_error(fc.err, "%s:%d: %s", path, fc.line, fc.detail);
    }
    if (rc != 0)
        return edist_set_error(EDIST_EINVAL, "%s:%d: syntax error", path, rc);
    return 0;
}

int edi_node_options_parse_args(edi_node_options *o, int argc, char **argv,
                                int *positional, int max_positional,
                                int *n_positional, int *print_config)
{
    int np = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        /* --key or erl's -key; "--" alone and "-" are arguments */
        size_t dashes = a[0] == '-' ? (a[1] == '-' ? 2 : 1) : 0;
        if (dashes == 0 || a[dashes] == '\0') {
            if (np >= max_positional)
                return edist_set_error(EDIST_EINVAL, "unexpected argument '%s'",
                                       a);
            positional[np++] = i;
            continue;
        }
        const char *name = a + dashes;
        if (print_config && (!strcmp(name, "print-config") || !strcmp(name, "print_config"))) {
            *print_config = 1;
            continue;
        }
        char key[64];
        const char *eq = strchr(name, '=');
        size_t klen = eq ? (size_t)(eq - name) : strlen(name);
        if (klen >= sizeof key)
            return edist_set_error(EDIST_EINVAL, "unknown option '%s'", a);
        /* Dashes or erl's underscores (-connect_all) alike. */
        for (size_t k = 0; k < klen; k++)
            key[k] = name[k] == '-' ? '_' : name[k];
        key[klen] = '\0';
        /* erl's spelling of the cookie */
        if (!strcmp(key, "setcookie"))
            snprintf(key, sizeof key, "cookie");
        int id = edi_node_option_id(key);
        if (id < 0)
            return edist_set_error(EDIST_EINVAL, "unknown option '%s'", a);
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (opts[id].type == T_BOOL &&
                   (i + 1 >= argc || parse_bool(argv[i + 1]) < 0)) {
            v = "true";
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return edist_set_error(EDIST_EINVAL, "option %s needs a value", a);
        }
        char origin[80];
        snprintf(origin, sizeof origin, "flag %.*s", (int)(dashes + klen), a);
        int rc =
            edi_node_options_set(o, (edi_opt_id)id, v, EDI_OPT_FLAG, origin);
        if (rc)
            return rc;
    }
    if (n_positional)
        *n_positional = np;
    return 0;
}

int edi_node_options_load_all(edi_node_options *o)
{
    int rc = edi_node_options_load_env(o);
    if (rc)
        return rc;
    if (o->value[EDI_OPT_CONFIG][0]) {
        rc = edi_node_options_load_file(o, o->value[EDI_OPT_CONFIG]);
        if (rc)
            return rc;
    }
    /* erl's variable, when no flag, variable or file names the port:
     * malformed is an error, as a malformed flag is */
    uint16_t port;
    if (!strcmp(o->value[EDI_OPT_EPMD_PORT], "0"))
        return edi_epmd_env_port(&port);
    return 0;
}

int edi_node_options_to_config(edi_node_options *o, int require_name)
{
    edist_node_config *c = &o->cfg;
    edist_node_config_init(c);
    const char *sname = o->value[EDI_OPT_SNAME];
    const char *lname = o->value[EDI_OPT_NAME];
    if (sname[0] && lname[0])
        return edist_set_error(
            EDIST_EINVAL, "both sname (%s) and name (%s) are set: choose one",
            o->origin[EDI_OPT_SNAME], o->origin[EDI_OPT_NAME]);
    if (sname[0]) {
        c->name = sname;
        c->long_names = false;
    } else if (lname[0]) {
        c->name = lname;
        c->long_names = true;
    } else if (require_name) {
        return edist_set_error(EDIST_EINVAL,
                               "no node name: give --sname or --name");
    }
    c->cookie = o->value[EDI_OPT_COOKIE][0] ? o->value[EDI_OPT_COOKIE] : NULL;
    c->hidden = parse_bool(o->value[EDI_OPT_HIDDEN]) == 1;
    c->listen_address = o->value[EDI_OPT_LISTEN_ADDRESS][0]
                            ? o->value[EDI_OPT_LISTEN_ADDRESS]
                            : NULL;
    parse_port(o->value[EDI_OPT_LISTEN_PORT], &c->listen_port);
    parse_port(o->value[EDI_OPT_EPMD_PORT], &c->epmd_port);
    c->start_epmd = parse_bool(o->value[EDI_OPT_START_EPMD]) == 1;
    parse_seconds_ms(o->value[EDI_OPT_TICKTIME], &c->net_ticktime_ms);
    parse_seconds_ms(o->value[EDI_OPT_SETUPTIME], &c->net_setuptime_ms);
    c->connect_all = parse_bool(o->value[EDI_OPT_CONNECT_ALL]) == 1;
    uint64_t bytes;
    parse_count(o->value[EDI_OPT_RX_BUFFERS], &c->rx_buffers);
    if (strcmp(o->value[EDI_OPT_RX_RECYCLE_BUFFERS], "0") == 0)
        c->rx_recycle_buffers = EDIST_NODE_RX_RECYCLE_NONE;
    else
        parse_count(o->value[EDI_OPT_RX_RECYCLE_BUFFERS], &c->rx_recycle_buffers);
    if (parse_bytes(o->value[EDI_OPT_RX_RECYCLE_MAX_BYTES], &bytes) == 0)
        c->rx_recycle_max_bytes = (size_t)bytes;
    if (parse_bytes(o->value[EDI_OPT_MAX_MESSAGE_BYTES], &bytes) == 0)
        c->max_message_bytes = (size_t)bytes;
    if (parse_bytes(o->value[EDI_OPT_REASSEMBLY_LIMIT_BYTES], &bytes) == 0)
        c->reassembly_limit_bytes = (size_t)bytes;
    if (parse_bytes(o->value[EDI_OPT_SEND_QUEUE_LIMIT_BYTES], &bytes) == 0)
        c->send_queue_limit_bytes = (size_t)bytes;
    if (parse_bytes(o->value[EDI_OPT_LANE_QUEUE_LIMIT_BYTES], &bytes) == 0)
        c->lane_queue_limit_bytes = (size_t)bytes;
    parse_count(o->value[EDI_OPT_MAILBOX_MESSAGES], &c->mailbox_messages);
    parse_bytes(o->value[EDI_OPT_MAILBOX_BYTES], &c->mailbox_bytes);
    parse_count(o->value[EDI_OPT_MAILBOX_HARD_MESSAGES], &c->mailbox_hard_messages);
    parse_bytes(o->value[EDI_OPT_MAILBOX_HARD_BYTES], &c->mailbox_hard_bytes);
    parse_count(o->value[EDI_OPT_MAX_PROCESSES], &c->max_processes);
    if (parse_bytes(o->value[EDI_OPT_STACK_BYTES], &bytes) == 0)
        c->stack_bytes = (size_t)bytes;
    parse_count(o->value[EDI_OPT_MAX_PENDING_REQUESTS], &c->max_pending_requests);
    parse_bytes(o->value[EDI_OPT_MAX_PENDING_BYTES], &c->max_pending_bytes);
    c->transport = strcmp(o->value[EDI_OPT_TRANSPORT], "dpdk") == 0
                       ? EDIST_TRANSPORT_DPDK
                       : EDIST_TRANSPORT_TCP;
    if (c->transport == EDIST_TRANSPORT_DPDK && !o->value[EDI_OPT_DPDK_PORT][0])
        return edist_set_error(EDIST_EINVAL,
                               "transport dpdk (%s) needs dpdk_port: the DPDK "
                               "device edist peers are reached on",
                               o->origin[EDI_OPT_TRANSPORT]);
    c->dpdk_eal_args =
        o->value[EDI_OPT_DPDK_EAL_ARGS][0] ? o->value[EDI_OPT_DPDK_EAL_ARGS] : NULL;
    c->dpdk_port = o->value[EDI_OPT_DPDK_PORT][0] ? o->value[EDI_OPT_DPDK_PORT] : NULL;
    c->dpdk_udp_address =
        o->value[EDI_OPT_DPDK_UDP_ADDRESS][0] ? o->value[EDI_OPT_DPDK_UDP_ADDRESS] : NULL;
    parse_port(o->value[EDI_OPT_DPDK_UDP_PORT], &c->dpdk_udp_port);
    parse_count(o->value[EDI_OPT_DPDK_POOL_MBUFS], &c->dpdk_pool_mbufs);
    c->dpdk_gateway_mac =
        o->value[EDI_OPT_DPDK_GATEWAY_MAC][0] ? o->value[EDI_OPT_DPDK_GATEWAY_MAC] : NULL;
    parse_bytes(o->value[EDI_OPT_DPDK_HOLD_LIMIT_BYTES], &c->dpdk_hold_limit_bytes);
    parse_seconds_ms(o->value[EDI_OPT_DPDK_SETUP_TIME], &c->dpdk_setup_ms);
    parse_bytes(o->value[EDI_OPT_DPDK_SEND_BUFFER_BYTES], &c->dpdk_send_buffer_bytes);
    if (parse_bytes(o->value[EDI_OPT_DPDK_RECV_WINDOW_BYTES], &bytes) == 0)
        c->dpdk_recv_window_bytes = (uint32_t)bytes;
    if (parse_bytes(o->value[EDI_OPT_DPDK_KERNEL_WINDOW_BYTES], &bytes) == 0)
        c->dpdk_kernel_window_bytes = (uint32_t)bytes;
    parse_count(o->value[EDI_OPT_DPDK_RTO_MIN_US], &c->dpdk_rto_min_us);
    parse_count(o->value[EDI_OPT_DPDK_RTO_MAX_US], &c->dpdk_rto_max_us);
    parse_seconds_ms(o->value[EDI_OPT_DPDK_IDLE_PING], &c->dpdk_idle_ping_ms);
    parse_seconds_ms(o->value[EDI_OPT_DPDK_DEAD_AFTER], &c->dpdk_dead_after_ms);
    parse_seconds_ms(o->value[EDI_OPT_CLOSE_FLUSH_TIME], &c->close_flush_ms);
    parse_count(o->value[EDI_OPT_MAX_CLOSING_CONNECTIONS], &c->max_closing_connections);
    parse_count(o->value[EDI_OPT_AUTO_CONNECT_MAX_SIGNALS], &c->auto_connect_max_signals);
    parse_bytes(o->value[EDI_OPT_AUTO_CONNECT_MAX_BYTES], &c->auto_connect_max_bytes);
    parse_seconds_ms(o->value[EDI_OPT_GLOBAL_CALL_TIMEOUT], &c->global_call_timeout_ms);
    parse_count(o->value[EDI_OPT_SEND_OPEN_SEQUENCES], &c->send_open_sequences);
    parse_seconds_ms(o->value[EDI_OPT_RECEIVE_GRACE_TIME], &c->receive_grace_ms);
    parse_count(o->value[EDI_OPT_SERVICE_RESTARTS], &c->service_restarts);
    parse_seconds_ms(o->value[EDI_OPT_SERVICE_RESTART_PERIOD], &c->service_restart_period_ms);
    if (parse_bool(o->value[EDI_OPT_PUBLISH_STATS]) == 1)
        parse_seconds_ms(o->value[EDI_OPT_STATS_INTERVAL], &c->stats_interval_ms);
    c->stats_dir = o->value[EDI_OPT_STATS_DIR][0] ? o->value[EDI_OPT_STATS_DIR] : NULL;
    static const edist_idle idles[] = {EDIST_IDLE_ADAPTIVE, EDIST_IDLE_BUSY,
                                       EDIST_IDLE_SLEEP};
    c->idle =
        idles[enum_index(opts[EDI_OPT_IDLE].choices, o->value[EDI_OPT_IDLE])];
    c->log_level = (edist_log_level)enum_index(opts[EDI_OPT_LOG_LEVEL].choices,
                                               o->value[EDI_OPT_LOG_LEVEL]);
    /* Admission of incoming connections. */
    parse_seconds_ms(o->value[EDI_OPT_FIRST_MESSAGE_TIME],
                     &c->first_message_time_ms);
    parse_count(o->value[EDI_OPT_MAX_HANDSHAKES], &c->max_handshakes);
    parse_count(o->value[EDI_OPT_MAX_HANDSHAKES_PER_ADDRESS],
                &c->max_handshakes_per_address);
    c->epmd_address = o->value[EDI_OPT_EPMD_ADDRESS][0]
                          ? o->value[EDI_OPT_EPMD_ADDRESS]
                          : NULL;
    parse_seconds_ms(o->value[EDI_OPT_EPMD_IDLE_EXIT], &c->epmd_idle_exit_ms);
    /* Shards. */
    parse_count(o->value[EDI_OPT_SHARDS], &c->shards);
    /* "" is no pinning (not "ask the environment": the options read it). */
    c->shard_cores = o->value[EDI_OPT_SHARD_CORES];
    parse_count(o->value[EDI_OPT_SHARD_RING_ENTRIES], &c->shard_ring_entries);
    parse_count(o->value[EDI_OPT_SHARD_BACKLOG_LIMIT], &c->shard_backlog_limit);
    return 0;
}

size_t edi_node_options_format(const edi_node_options *o, char *buf, size_t cap)
{
    size_t need = 0;
    for (int i = 0; i < EDI_OPT_COUNT; i++) {
        const char *v = o->value[i];
        const char *origin = o->origin[i];
        char resolved[64];
        if (i == EDI_OPT_COOKIE && v[0]) {
            v = "********";
        } else if (i == EDI_OPT_EPMD_ADDRESS && !v[0]) {
            /* What the node will use, as for epmd_port. */
            const char *env = getenv("ERL_EPMD_ADDRESS");
            v = env && env[0] ? env : "(every interface)";
            if (env && env[0])
                origin = "env ERL_EPMD_ADDRESS";
        } else if (!v[0]) {
            v = i == EDI_OPT_COOKIE ? "(from $HOME/.erlang.cookie)" : "(unset)";
        } else if (i == EDI_OPT_EPMD_PORT && !strcmp(v, "0")) {
            /* Show what 0 stands for, as the node will resolve it. */
            snprintf(resolved, sizeof resolved, "%u", edi_epmd_default_port());
            v = resolved;
            if (getenv("ERL_EPMD_PORT"))
                origin = "env ERL_EPMD_PORT";
        } else if (i == EDI_OPT_LISTEN_PORT && !strcmp(v, "0")) {
            v = "0 (ephemeral)";
        }
        int n = snprintf(need < cap ? buf + need : NULL,
                         need < cap ? cap - need : 0, "%-26s = %-24s (%s)\n",
                         opts[i].key, v, origin);
        if (n > 0)
            need += (size_t)n;
    }
    if (cap && need >= cap)
        buf[cap - 1] = '\0';
    return need;
}
