/* SPDX-License-Identifier: Apache-2.0 */
/* Membership: nodes() and the up links by name, nodeup/nodedown
 * subscriptions (monitor_nodes, monitor_node) and their events. */
#include "control/netkernel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- subscriptions ------------------------------------------------------- */

void edi_nki_subs_sweep(edi_nk *nk)
{
    if (nk->dispatching)
        return;
    size_t j = 0;
    for (size_t i = 0; i < nk->sub_count; i++) {
        if (nk->subs[i]->removed)
            free(nk->subs[i]);
        else
            nk->subs[j++] = nk->subs[i];
    }
    nk->sub_count = j;
}

nk_sub *edi_nki_sub_find(edi_nk *nk, uint64_t handle)
{
    for (size_t i = 0; i < nk->sub_count; i++)
        if (nk->subs[i]->handle == handle && !nk->subs[i]->removed)
            return nk->subs[i];
    return NULL;
}

void edi_nki_fire_one(edi_nk *nk, nk_sub *s, const edist_node_event *ev)
{
    nk->dispatching++;
    s->fn(s->user, ev);
    nk->dispatching--;
}

/* nodeup / nodedown to every subscriber that asked for this kind of node;
 * nodedown also fires (and ends) the monitor_node subscriptions of peer. */
void edi_nki_emit_event(edi_nk *nk, bool up, const char *peer, bool hidden,
                        const char *reason, uint64_t flags, uint64_t conn_id)
{
    edist_node_event ev = {.up = up,
                           .node = peer,
                           .hidden = hidden,
                           .reason = up ? NULL : reason,
                           .flags = flags,
                           .connection_id = conn_id};
    unsigned kind = hidden ? EDIST_NODES_HIDDEN : EDIST_NODES_VISIBLE;
    nk->dispatching++;
    size_t n = nk->sub_count; /* subscriptions made by callbacks wait */
    for (size_t i = 0; i < n; i++) {
        nk_sub *s = nk->subs[i];
        if (s->removed)
            continue;
        if (s->one_node) {
            if (up || strcmp(s->peer, peer) != 0)
                continue;
            s->removed = true;
            s->fn(s->user, &ev);
        } else if (s->kinds & kind) {
            s->fn(s->user, &ev);
        }
    }
    nk->dispatching--;
    edi_nki_subs_sweep(nk);
}

/* ---- membership ---------------------------------------------------------- */

edi_link *edi_nki_up_link(edi_nk *nk, const char *peer)
{
    edi_peer *p = edi_ct_find(&nk->table, peer);
    if (!p || (p->state != EDI_PEER_UP && p->state != EDI_PEER_UP_PENDING) ||
        !p->owner)
        return NULL;
    return p->owner;
}

bool edi_nk_is_up(edi_nk *nk, const char *peer)
{
    return edi_nki_up_link(nk, peer) != NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool selected(const edi_peer *p, unsigned sel)
{
    if (p->state != EDI_PEER_UP && p->state != EDI_PEER_UP_PENDING)
        return false;
    if (sel & EDIST_NODES_CONNECTED)
        return true;
    return p->hidden ? (sel & EDIST_NODES_HIDDEN) != 0
                     : (sel & EDIST_NODES_VISIBLE) != 0;
}

int edi_nk_nodes(edi_nk *nk, unsigned selectors, edist_node_list *out)
{
    out->count = 0;
    out->names = NULL;
    size_t n = (selectors & EDIST_NODES_THIS) ? 1 : 0;
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        n += selected(p, selectors);
    if (n == 0)
        return 0;
    char **names = calloc(n, sizeof *names);
    if (!names)
        return edist_set_error(EDIST_ENOMEM, "nodes: no memory");
    size_t i = 0;
    if (selectors & EDIST_NODES_THIS)
        names[i++] = strdup(nk->name);
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        if (selected(p, selectors))
            names[i++] = strdup(p->name);
    for (size_t k = 0; k < n; k++) {
        if (!names[k]) {
            for (size_t j = 0; j < n; j++)
                free(names[j]);
            free(names);
            return edist_set_error(EDIST_ENOMEM, "nodes: no memory");
        }
    }
    qsort(names, n, sizeof *names, cmp_str);
    out->count = n;
    out->names = names;
    return 0;
}

void edi_nki_enc_nodes(edi_nk *nk, edist_buf *s, unsigned selectors)
{
    size_t n = 0;
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        n += selected(p, selectors);
    if (n == 0) {
        edist_enc_nil(s);
        return;
    }
    edist_enc_list(s, (uint32_t)n);
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        if (selected(p, selectors))
            edist_enc_atomz(s, p->name);
    edist_enc_nil(s);
}

static int sub_add(edi_nk *nk, nk_sub **out)
{
    edi_nki_subs_sweep(nk);
    if (nk->sub_count >= EDIST_NODE_MAX_MONITORS)
        return edist_set_error(EDIST_ENOMEM, "too many node monitors (%d)",
                               EDIST_NODE_MAX_MONITORS);
    nk_sub *s = calloc(1, sizeof *s);
    if (!s)
        return edist_set_error(EDIST_ENOMEM, "no memory for a monitor");
    s->handle = ++nk->next_id;
    nk->subs[nk->sub_count++] = s;
    *out = s;
    return 0;
}

int edi_nk_monitor_nodes(edi_nk *nk, unsigned kinds, edist_node_event_fn fn,
                         void *user, uint64_t *handle)
{
    if (!fn)
        return edist_set_error(EDIST_EINVAL, "monitor_nodes: no callback");
    nk_sub *s = NULL; /* set by sub_add on success; for -O3 -Werror */
    int rc = sub_add(nk, &s);
    if (rc)
        return rc;
    s->kinds = kinds & (EDIST_NODES_VISIBLE | EDIST_NODES_HIDDEN);
    if (!s->kinds)
        s->kinds = EDIST_NODES_VISIBLE;
    s->fn = fn;
    s->user = user;
    if (handle)
        *handle = s->handle;
    return 0;
}

int edi_nk_monitor_node(edi_nk *nk, const char *peer, edist_node_event_fn fn,
                        void *user, uint64_t *handle)
{
    if (!fn)
        return edist_set_error(EDIST_EINVAL, "monitor_node: no callback");
    if (!edi_nki_valid_peer(nk, peer))
        return EDIST_EINVAL;
    /* a nodedown callback that watches again would start a connection
     * the stop then fails, and so on until its grace runs out */
    if (nk->shutting_down)
        return edist_set_error(EDIST_ECLOSED, "monitor_node: the node is stopping");
    nk_sub *s = NULL; /* set by sub_add on success; for -O3 -Werror */
    int rc = sub_add(nk, &s);
    if (rc)
        return rc;
    s->one_node = true;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    s->fn = fn;
    s->user = user;
    if (handle)
        *handle = s->handle;
    if (edi_nki_up_link(nk, peer) || !strcmp(peer, nk->name))
        return 0;
    /* Not connected: try, and report nodedown if that fails. */
    nk_op *o = edi_nki_op_new(nk, OP_MONITOR_NODE, peer, NULL, NULL,
                              nk->cfg.setuptime_ms + 1000);
    if (!o) {
        s->removed = true;
        edi_nki_subs_sweep(nk);
        return EDIST_EAGAIN; /* edi_nki_op_new said why */
    }
    o->sub_handle = s->handle;
    edi_nki_want_connection(nk, peer, o);
    return 0;
}

int edi_nk_demonitor(edi_nk *nk, uint64_t handle)
{
    nk_sub *s = edi_nki_sub_find(nk, handle);
    if (!s)
        return edist_set_error(EDIST_ENOTFOUND, "no monitor %llu",
                               (unsigned long long)handle);
    s->removed = true;
    edi_nki_subs_sweep(nk);
    return 0;
}
