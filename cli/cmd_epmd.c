/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "cli.h"

int cmd_epmd(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("edist epmd: not yet\n", stderr);
    return 1;
}

int cmd_names(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("edist names: not yet\n", stderr);
    return 1;
}
