/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "edist/edist.h"
#include "args.h"
#include "cli.h"

static void usage(FILE *out)
{
    fputs("usage: edist COMMAND [ARGS]\n"
          "commands:\n"
          "  term encode 'TEXT'   write the external term format of TEXT to stdout\n"
          "  term decode          read an external term on stdin, print it as ~w\n"
          "  epmd [-port P] [-address A] [-daemon]  run the port mapper (epmd compatible)\n"
          "  names                what `epmd -names` prints\n"
          "  node --sname NAME    run a node until SIGTERM (edist node --help)\n"
          "  ping NODE            pong (exit 0) or pang (exit 1), as net_adm:ping\n"
          "  rpc NODE MOD FUN 'ARGS'  rpc:call; prints the result or {badrpc, R} (exit 1)\n"
          "  send NODE NAME 'TERM'  send TERM to the process registered as NAME\n"
          "  stat NODE            the node's live counters\n"
          "  bench pair --lane tcp  two nodes on this host: stream rate, round trips\n"
          "  bench ping NODE | bench local  quick round-trip, stream and spawn figures\n"
          "  demo                 walk through what edist does\n"
          "Each command takes --help (or -help). Options are spelled -name or\n"
          "--name alike, with erl's names beside edist's (-sname, -setcookie,\n"
          "-hidden, -connect_all false). Malformed values exit 2.\n"
          "edist --version prints the version.\n",
          out);
}

void cli_error(const char *what, int err)
{
    const char *detail = edist_last_error();
    if (detail[0])
        fprintf(stderr, "edist: %s: %s: %s\n", what, edist_strerror(err), detail);
    else
        fprintf(stderr, "edist: %s: %s\n", what, edist_strerror(err));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "term"))
        return cmd_term(argc - 1, argv + 1);
    if (!strcmp(cmd, "epmd"))
        return cmd_epmd(argc - 1, argv + 1);
    if (!strcmp(cmd, "names"))
        return cmd_names(argc - 1, argv + 1);
    if (!strcmp(cmd, "node"))
        return cmd_node(argc - 1, argv + 1);
    if (!strcmp(cmd, "ping"))
        return cmd_ping(argc - 1, argv + 1);
    if (!strcmp(cmd, "rpc"))
        return cmd_rpc(argc - 1, argv + 1);
    if (!strcmp(cmd, "send"))
        return cmd_send(argc - 1, argv + 1);
    if (!strcmp(cmd, "stat"))
        return cmd_stat(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo"))
        return cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-version")) {
        cli_print_version();
        return 0;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "-help") ||
        !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "edist: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
