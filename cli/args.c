/* SPDX-License-Identifier: Apache-2.0 */
#include "args.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/epmd_client.h"
#include "edist/error.h"
#include "edist/version.h"

#define CLI_MAX_OPTS 64
#define OPT_BASE 1000 /* getopt's value of option i: clear of 1, '?', ':', 'h' */

void cli_print_version(void)
{
    printf("edist %s (library %s)\n", EDIST_VERSION_STRING, edist_version());
}

static int bad(const cli_command *cmd, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "edist %s: ", cmd->name);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    fputs(cmd->usage, stderr);
    return 2;
}

static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_seconds_ms(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 86400.0)
        return -1;
    *ms = (int64_t)(v * 1000.0 + 0.5);
    if (*ms == 0)
        *ms = 1;
    return 0;
}

static int set_value(const cli_command *cmd, const cli_opt *o, const char *v)
{
    int64_t n;
    switch (o->kind) {
    case CLI_FLAG:
        *(bool *)o->out = true;
        return 0;
    case CLI_TEXT:
        if (!v[0])
            return bad(cmd, "--%s: an empty value%s", o->name, "");
        *(const char **)o->out = v;
        return 0;
    case CLI_INT:
        if (parse_int(v, o->min, o->max, &n) != 0) {
            char range[64];
            snprintf(range, sizeof range, "%lld..%lld", (long long)o->min, (long long)o->max);
            fprintf(stderr, "edist %s: --%s: '%s' is not a whole number in %s\n", cmd->name,
                    o->name, v, range);
            fputs(cmd->usage, stderr);
            return 2;
        }
        *(int64_t *)o->out = n;
        return 0;
    case CLI_PORT:
        if (parse_int(v, 1, 65535, &n) != 0)
            return bad(cmd, "--%s: '%s' is not a port (1..65535)", o->name, v);
        *(uint16_t *)o->out = (uint16_t)n;
        return 0;
    case CLI_SECONDS:
        if (cli_seconds_ms(v, &n) != 0)
            return bad(cmd, "--%s: '%s' is not a time in seconds (e.g. 5 or 0.5)", o->name, v);
        *(int64_t *)o->out = n;
        return 0;
    case CLI_BOOL:
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
            *(bool *)o->out = true;
        else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
            *(bool *)o->out = false;
        else
            return bad(cmd, "--%s: '%s' is not true or false", o->name, v);
        return 0;
    }
    return 2;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, const char **pos, int *npos)
{
    struct option lo[2 * CLI_MAX_OPTS + 3];
    int n = 0;
    for (int i = 0; i < cmd->nopts && i < CLI_MAX_OPTS; i++) {
        int has = cmd->opts[i].kind == CLI_FLAG ? no_argument : required_argument;
        lo[n++] = (struct option){cmd->opts[i].name, has, NULL, OPT_BASE + i};
        if (cmd->opts[i].alias)
            lo[n++] = (struct option){cmd->opts[i].alias, has, NULL, OPT_BASE + i};
    }
    lo[n++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n++] = (struct option){"version", no_argument, NULL, 'V'};
    lo[n] = (struct option){0, 0, 0, 0};
    *npos = 0;
    /* "-": positional arguments come back in order (as 1), between the
     * options; ":": a missing value is told apart from an unknown option. */
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int c = getopt_long_only(argc, argv, "-:h", lo, &idx);
        if (c == -1)
            break;
        if (c == 1) {
            if (*npos >= cmd->max_pos)
                return bad(cmd, "unexpected argument '%s'%s", optarg, "");
            pos[(*npos)++] = optarg;
            continue;
        }
        if (c == 'h') {
            fputs(cmd->usage, stdout);
            return CLI_DONE;
        }
        if (c == 'V') {
            cli_print_version();
            return CLI_DONE;
        }
        if (c == ':')
            return bad(cmd, "%s needs a value%s", argv[optind - 1], "");
        if (c == '?')
            return bad(cmd, "unknown option '%s'%s", argv[optind - 1], "");
        int rc = set_value(cmd, &cmd->opts[c - OPT_BASE], optarg);
        if (rc)
            return rc;
    }
    for (; optind < argc; optind++) { /* after "--" */
        if (*npos >= cmd->max_pos)
            return bad(cmd, "unexpected argument '%s'%s", argv[optind], "");
        pos[(*npos)++] = argv[optind];
    }
    if (*npos < cmd->min_pos)
        return bad(cmd, "missing arguments%s%s", "", "");
    return 0;
}

int cli_epmd_port(const char *cmd, uint16_t flag, uint16_t *port)
{
    if (flag) {
        *port = flag;
        return 0;
    }
    if (edi_epmd_env_port(port) != 0) {
        fprintf(stderr, "edist %s: %s\n", cmd, edist_last_error());
        return 2;
    }
    return 0;
}
