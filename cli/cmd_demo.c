/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "edist/edist.h"
#include "cli.h"

int cmd_demo(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    puts("edist demo: not yet");
    return 1;
}
