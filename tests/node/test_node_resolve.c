/* SPDX-License-Identifier: Apache-2.0 */
/* A host name that takes seconds to resolve does not stall the node: run
 * by test_node_resolve.sh in a private network and mount namespace whose
 * only DNS server never answers. While one ping waits for the resolver,
 * a ping to a node given by address answers at once; the slow one ends
 * in pang with one clear reason. A node stopped during a lookup. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "edist/node.h"

static int64_t now_ms(void)
{
    return (int64_t)edi_now_ms();
}

static char last_failure[512];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void keep_log(void *user, edist_log_level level, const char *line)
{
    (void)user;
    (void)level;
    pthread_mutex_lock(&log_mu);
    if (strstr(line, "slow.example"))
        snprintf(last_failure, sizeof last_failure, "%s", line);
    pthread_mutex_unlock(&log_mu);
}

static edist_node *start(const char *name)
{
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = name;
    cfg.long_names = true;
    cfg.cookie = "resolvecookie";
    cfg.listen_address = "127.0.0.1";
    cfg.start_epmd = false; /* the script's port mapper */
    cfg.net_setuptime_ms = 15000;
    cfg.log = keep_log;
    edist_node *n = NULL;
    assert_int_equal(edist_node_start(&cfg, &n), 0);
    return n;
}

typedef struct slow_ping {
    edist_node *node;
    int rc;
    int64_t took_ms;
} slow_ping;

static void *ping_slow(void *arg)
{
    slow_ping *s = arg;
    int64_t t0 = now_ms();
    s->rc = edist_node_ping(s->node, "x@slow.example", 20000);
    s->took_ms = now_ms() - t0;
    return NULL;
}

static void test_slow_resolver(void **state)
{
    (void)state;
    edist_node *a = start("a@127.0.0.1");
    edist_node *b = start("b@127.0.0.1");
    slow_ping s = {a, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ping_slow, &s), 0);
    usleep(300 * 1000); /* the lookup is under way */
    for (int i = 0; i < 3; i++) {
        int64_t t0 = now_ms();
        assert_int_equal(edist_node_ping(a, "b@127.0.0.1", 5000), 0);
        int64_t took = now_ms() - t0;
        print_message("ping b while resolving: pong in %lld ms\n", (long long)took);
        assert_true(took < 1000);
        assert_int_equal(edist_node_disconnect(a, "b@127.0.0.1"), 0);
        usleep(100 * 1000);
    }
    pthread_join(t, NULL);
    print_message("ping x@slow.example: %d after %lld ms; log: %s\n", s.rc,
                  (long long)s.took_ms, last_failure);
    /* The resolver really was slow (else this test proves nothing), and
     * the ping failed with the reason logged. */
    assert_true(s.took_ms >= 1500);
    assert_int_not_equal(s.rc, 0);
    assert_non_null(strstr(last_failure, "resolve"));
    edist_node_stop(b);
    edist_node_stop(a);
}

/* A node stopped while one of its lookups is still waiting for the DNS
 * server: the stop waits for that thread, and nothing of the lookup is
 * touched after the node is gone (ASan builds check that). */
static void test_stop_during_lookup(void **state)
{
    (void)state;
    edist_node *c = start("c@127.0.0.1");
    int64_t t0 = now_ms();
    assert_int_equal(edist_node_connect(c, "y@slow.example", 300), EDIST_ETIMEDOUT);
    assert_true(now_ms() - t0 < 2000);
    t0 = now_ms();
    edist_node_stop(c);
    int64_t took = now_ms() - t0;
    print_message("stop with a lookup under way: %lld ms\n", (long long)took);
    assert_true(took < 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_resolver),
        cmocka_unit_test(test_stop_during_lookup),
    };
    return cmocka_run_group_tests_name("node_resolve", tests, NULL, NULL);
}
