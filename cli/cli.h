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

/* Prints "edist: <what>: <strerror>[: <last error detail>]" to stderr. */
void cli_error(const char *what, int err);

#endif
