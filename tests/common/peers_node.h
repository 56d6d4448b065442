/* SPDX-License-Identifier: Apache-2.0 */
/* Start an in-process edist node the way the tests with real peers need
 * it: a unique name, 127.0.0.1 only, the port mapper of ERL_EPMD_PORT
 * (peers_env_setup) and never one of its own. Header only, for cmocka
 * programs linked with the library: include after <cmocka.h>. */
#ifndef EDIST_TESTS_PEERS_NODE_H
#define EDIST_TESTS_PEERS_NODE_H

#include "edist/error.h"
#include "edist/node.h"
#include "peers.h"

/* cfg: everything else the test wants (name, listen_address and
 * start_epmd are set here). The node, or the test fails after printing
 * why. */
static inline edist_node *peers_node_start(edist_node_config *cfg,
                                           const char *prefix)
{
    char name[64]; /* edist_node_start copies it */
    peers_unique_name(name, sizeof name, prefix);
    cfg->name = name;
    cfg->listen_address = PEERS_HOST;
    cfg->start_epmd = false;
    edist_node *n = NULL;
    int rc = edist_node_start(cfg, &n);
    if (rc)
        print_message("start %s: %s: %s\n", name, edist_strerror(rc),
                      edist_last_error());
    assert_int_equal(rc, 0);
    return n;
}

#endif
