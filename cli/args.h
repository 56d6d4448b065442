/* SPDX-License-Identifier: Apache-2.0 */
/* The one argument parser of the edist program's commands, with erl's
 * habits: glibc's getopt_long_only, so `-sname x` and `--sname x` are the
 * same option, and each option may have erl's spelling beside it
 * (`-setcookie` for `--cookie`). -h/--help prints the command's usage on
 * stdout (exit 0), --version the version (exit 0); an unknown option, a
 * missing value, a malformed or out-of-range number, or the wrong number
 * of arguments prints one line saying which, and the usage, on stderr
 * (exit 2). Positional arguments may come before, between or after the
 * options. */
#ifndef EDIST_CLI_ARGS_H
#define EDIST_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum cli_kind {
    CLI_FLAG,    /* bool, no value */
    CLI_TEXT,    /* const char * */
    CLI_INT,     /* int64_t within [min, max] */
    CLI_PORT,    /* uint16_t, 1..65535 */
    CLI_SECONDS, /* int64_t milliseconds, from seconds with decimals, > 0 */
    CLI_BOOL,    /* bool from true/false (erl's -connect_all false) */
} cli_kind;

typedef struct cli_opt {
    const char *name;  /* --name and -name */
    const char *alias; /* erl's spelling, or NULL */
    cli_kind kind;
    void *out;
    int64_t min, max; /* CLI_INT */
} cli_opt;

/* The options most commands share. */
#define CLI_OPT_COOKIE(p) {"cookie", "setcookie", CLI_TEXT, (p), 0, 0}
#define CLI_OPT_EPMD_PORT(p) {"epmd-port", "epmd_port", CLI_PORT, (p), 0, 0}
#define CLI_OPT_TIMEOUT(p) {"timeout", NULL, CLI_SECONDS, (p), 0, 0}

typedef struct cli_command {
    const char *name;  /* "rpc", "bench ping" */
    const char *usage; /* the whole --help text */
    const cli_opt *opts;
    int nopts;
    int min_pos, max_pos;
} cli_command;

/* Exit codes of cli_parse besides 0 (parsed: go on). */
#define CLI_DONE 1000 /* help or version printed: exit 0 */

/* argv[0] is the command's name. Fills each option's out and pos[0..*npos).
 * Returns 0, CLI_DONE (exit 0), or 2 (printed; exit 2). */
int cli_parse(const cli_command *cmd, int argc, char **argv, const char **pos, int *npos);

/* The port mapper port a client uses: the option if given, else
 * $ERL_EPMD_PORT, else 4369. A malformed $ERL_EPMD_PORT is an error
 * (printed; returns 2), as a malformed flag is. */
int cli_epmd_port(const char *cmd, uint16_t flag, uint16_t *port);

/* Seconds with decimals ("0.5"), more than 0 and at most a day, into
 * milliseconds (at least 1). 0, or -1 when malformed. */
int cli_seconds_ms(const char *s, int64_t *ms);

/* The program's version line. */
void cli_print_version(void);

#endif
