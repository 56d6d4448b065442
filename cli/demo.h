/* SPDX-License-Identifier: Apache-2.0 */
/* The parts of `edist demo` (cmd_demo.c, demo_dist.c). */
#ifndef EDIST_CLI_DEMO_H
#define EDIST_CLI_DEMO_H

#include <stdbool.h>

/* One line per step: "  [ ok ] what -> result" or "  [FAIL] ...". */
void demo_step(int ok, const char *what, const char *result);
/* Steps failed so far. */
int demo_failed(void);
/* The distributed walkthrough; returns the number of failed steps. pause:
 * wait for a line on stdin once every node is up. */
int demo_dist(bool pause);
/* The child that plays node2@localhost: `edist demo --node2 EPMD_PORT`. */
int demo_node2(const char *epmd_port);

#endif
