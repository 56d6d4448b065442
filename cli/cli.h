/* SPDX-License-Identifier: Apache-2.0 */
/* Subcommands of the edist program. Each returns the process exit code. */
#ifndef EDIST_CLI_H
#define EDIST_CLI_H

int cmd_term(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_epmd(int argc, char **argv);
int cmd_names(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_ping(int argc, char **argv);
int cmd_rpc(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* bench ping / bench local (cmd_stat.c): argv[1] is "ping" or "local". */
int cmd_bench_quick(int argc, char **argv);

/* A short-lived hidden, unpublished node for talking to target (a dotted
 * host means long names), as erl_call makes; epmd_port 0: the default. */
#include <stdint.h>
struct edist_node;
int cli_start_client(const char *what, const char *target, const char *cookie,
                     uint16_t epmd_port, struct edist_node **node);

/* Prints "edist: <what>: <strerror>[: <last error detail>]" to stderr. */
void cli_error(const char *what, int err);

#endif
