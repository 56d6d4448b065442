/* SPDX-License-Identifier: Apache-2.0 */
/* Arbitrary messages into the services every node runs: what a peer can
 * send to global_name_server, pg, rex, net_kernel and echo.
 *
 * The input's first byte picks the service; the rest must be one encoded
 * term (a leading 131 is accepted), as the node hands a peer's message to
 * a process only once it decodes (other inputs are skipped). The services
 * run in one runtime without distribution (started once), so whatever
 * they send to other nodes fails at once, as to a node that is down.
 * After each message the harness calls the same service with a request
 * it must answer (registered_names, which_groups, features_request,
 * is_auth, an echo): a service that died, hung or lost its name aborts
 * the run. ASan and UBSan see the rest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edist/proc.h"
#include "edist/term.h"
#include "runtime/services.h"
#include "runtime/services_internal.h"

typedef struct target {
    const char *name;
    edist_procid pid;
} target;

static target targets[] = {
    {"global_name_server", {0}}, {"pg", {0}}, {"rex", {0}}, {"net_kernel", {0}}, {"echo", {0}},
};
#define NTARGETS (sizeof targets / sizeof targets[0])

static edist_runtime *rt;
static edi_services *svc;
static edist_procid self;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.node_name = "fuzz@localhost";
    if (edist_runtime_start(&cfg, &rt) != 0 || edi_services_start(rt, NULL, &svc) != 0 ||
        edist_proc_attach_thread(rt, 0, &self) != 0) {
        fprintf(stderr, "fuzz_services: start: %s\n", edist_last_error());
        abort();
    }
    for (size_t i = 0; i < NTARGETS; i++)
        if (edist_whereis(targets[i].name, &targets[i].pid) != 0)
            abort();
    return 0;
}

static void enc_self_tuple(edist_buf *b, const char *atom)
{
    edist_enc_tuple(b, 2);
    edist_enc_procid(b, self);
    edist_enc_atomz(b, atom);
}

/* The service answers something it must answer; abort if it does not. */
static void probe(size_t t)
{
    edist_buf req, out;
    edist_buf_init(&req);
    edist_buf_init(&out);
    int rc;
    if (t <= 1) { /* gen_server calls */
        edist_enc_atomz(&req, t == 0 ? "registered_names" : "which_groups");
        rc = edi_svc_call(NULL, targets[t].name, NULL, NULL, req.data, req.len, &out, 20000);
    } else if (t == 3) {
        edist_enc_tuple(&req, 2);
        edist_enc_atomz(&req, "is_auth");
        edist_enc_atomz(&req, "fuzz@localhost");
        rc = edi_svc_call(NULL, targets[t].name, NULL, NULL, req.data, req.len, &out, 20000);
    } else { /* rex's {From, features_request}; echo's {From, Msg} */
        enc_self_tuple(&req, t == 2 ? "features_request" : "fuzz_probe");
        rc = edist_send(targets[t].pid, req.data, req.len);
        edist_term_view m;
        /* the answer: {features_reply, ...} from rex, the atom from echo */
        static const char *const want[] = {[2] = "{features_reply, _, _}", [4] = "fuzz_probe"};
        edist_pattern *p = NULL;
        edist_parse_error pe;
        if (rc == 0)
            rc = edist_pattern_compile(want[t], strlen(want[t]), &p, &pe);
        if (rc == 0)
            rc = edist_receive(p, NULL, 20000, &m);
        edist_pattern_free(p);
    }
    edist_procid now;
    if (rc != 0 || edist_whereis(targets[t].name, &now) != 0 ||
        !edist_procid_equal(now, targets[t].pid)) {
        fprintf(stderr, "fuzz_services: %s did not answer (%d: %s)\n", targets[t].name, rc,
                edist_last_error());
        abort();
    }
    edist_buf_free(&req);
    edist_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t t = data[0] % NTARGETS;
    /* one encoded term, as the services' API takes it */
    edist_term_view one;
    if (edi_svc_term_arg("fuzz", "term", data + 1, size - 1, &one) != 0)
        return 0;
    const uint8_t *term = one.ptr;
    size_t len = one.len;
    /* an exact-size copy, so a read past the end is seen */
    uint8_t *copy = malloc(len);
    if (!copy)
        return 0;
    memcpy(copy, term, len);
    int rc = edist_send(targets[t].pid, copy, len);
    free(copy);
    if (rc != 0)
        return 0;
    probe(t);
    /* what the services sent us (a From that was our pid) */
    edist_term_view m;
    while (edist_receive(NULL, NULL, 0, &m) == 0)
        ;
    return 0;
}
