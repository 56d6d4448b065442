/* SPDX-License-Identifier: Apache-2.0 */
/* Tables: a small intrusive hash table, registered names, exported
 * functions, the process-wide table of node names, references, and the
 * conversions of pids to and from the codec's view.
 *
 * Node names are interned once per program so that a pid is four
 * integers: lookups are lock-free (an open-addressing index whose slots
 * are written once, with release stores), insertions take a mutex. Names
 * are never removed: a program meets few nodes, and a pid of a node long
 * gone must still print. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "runtime/runtime_internal.h"

/* ---- exit reasons ------------------------------------------------------------------ */

static const uint8_t r_normal[] = {EDIST_TAG_SMALL_ATOM_UTF8, 6, 'n', 'o', 'r', 'm', 'a', 'l'};
static const uint8_t r_kill[] = {EDIST_TAG_SMALL_ATOM_UTF8, 4, 'k', 'i', 'l', 'l'};
static const uint8_t r_killed[] = {EDIST_TAG_SMALL_ATOM_UTF8, 6, 'k', 'i', 'l', 'l', 'e', 'd'};
static const uint8_t r_noproc[] = {EDIST_TAG_SMALL_ATOM_UTF8, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
static const uint8_t r_noconnection[] = {EDIST_TAG_SMALL_ATOM_UTF8, 12, 'n', 'o', 'c', 'o', 'n',
                                         'n', 'e', 'c', 't', 'i', 'o', 'n'};
static const uint8_t r_shutdown[] = {EDIST_TAG_SMALL_ATOM_UTF8, 8, 's', 'h', 'u', 't',
                                     'd', 'o', 'w', 'n'};
static const uint8_t r_abandoned[] = {EDIST_TAG_SMALL_ATOM_UTF8, 9, 'a', 'b', 'a', 'n', 'd',
                                      'o', 'n', 'e', 'd'};

static const uint8_t r_mailbox_overflow[] = {EDIST_TAG_SMALL_ATOM_UTF8, 16, 'm', 'a', 'i', 'l',
                                             'b', 'o', 'x', '_', 'o', 'v', 'e', 'r', 'f', 'l',
                                             'o', 'w'};

const edist_term_view edist_reason_normal = {r_normal, sizeof r_normal};
const edist_term_view edist_reason_kill = {r_kill, sizeof r_kill};
const edist_term_view edist_reason_killed = {r_killed, sizeof r_killed};
const edist_term_view edist_reason_noproc = {r_noproc, sizeof r_noproc};
const edist_term_view edist_reason_noconnection = {r_noconnection, sizeof r_noconnection};
const edist_term_view edist_reason_shutdown = {r_shutdown, sizeof r_shutdown};
const edist_term_view edi_reason_abandoned = {r_abandoned, sizeof r_abandoned};
const edist_term_view edist_reason_mailbox_overflow = {r_mailbox_overflow,
                                                       sizeof r_mailbox_overflow};

bool edi_reason_static(edist_term_view v)
{
    return v.ptr == r_normal || v.ptr == r_kill || v.ptr == r_killed || v.ptr == r_noproc ||
           v.ptr == r_noconnection || v.ptr == r_shutdown || v.ptr == r_abandoned ||
           v.ptr == r_mailbox_overflow;
}

/* ---- hash tables ------------------------------------------------------------------- */

void edi_htab_init(edi_htab *t)
{
    t->buckets = NULL;
    t->mask = 0;
    t->count = 0;
}

void edi_htab_destroy(edi_htab *t)
{
    free(t->buckets);
    edi_htab_init(t);
}

static void htab_grow(edi_htab *t)
{
    size_t n = (t->mask + 1) * 2;
    edi_hnode **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep the old array: longer chains, still correct */
    for (size_t i = 0; i <= t->mask; i++) {
        edi_hnode *x = t->buckets[i];
        while (x) {
            edi_hnode *next = x->next;
            size_t j = x->hash & (n - 1);
            x->next = b[j];
            b[j] = x;
            x = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = n - 1;
}

int edi_htab_insert(edi_htab *t, edi_hnode *n, uint64_t hash)
{
    if (!t->buckets) {
        t->buckets = calloc(16, sizeof *t->buckets);
        if (!t->buckets)
            return EDIST_ENOMEM;
        t->mask = 15;
    } else if (t->count > t->mask) {
        htab_grow(t);
    }
    n->hash = hash;
    size_t i = hash & t->mask;
    n->next = t->buckets[i];
    t->buckets[i] = n;
    t->count++;
    return 0;
}

void edi_htab_remove(edi_htab *t, edi_hnode *n)
{
    if (!t->buckets)
        return;
    edi_hnode **pp = &t->buckets[n->hash & t->mask];
    while (*pp) {
        if (*pp == n) {
            *pp = n->next;
            n->next = NULL;
            t->count--;
            return;
        }
        pp = &(*pp)->next;
    }
}

edi_hnode *edi_htab_next_with(const edi_htab *t, uint64_t hash, edi_hnode *after)
{
    if (!t->buckets)
        return NULL;
    edi_hnode *x = after ? after->next : t->buckets[hash & t->mask];
    while (x && x->hash != hash)
        x = x->next;
    return x;
}

/* ---- atoms ---------------------------------------------------------------------------- */

bool edi_atom_text_ok(const char *s, size_t len)
{
    if (len == 0 || len > EDIST_ATOM_MAX_BYTES)
        return false;
    size_t chars = 0;
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < len; chars++) {
        uint8_t c = p[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len || (n == 1 && c == 0))
            return false;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        i += n;
    }
    return chars <= EDIST_ATOM_MAX_CHARS;
}

bool edi_term_is_atom(edist_term_view t, const char *atom)
{
    edist_cursor c;
    edist_cursor_init(&c, t.ptr, t.len);
    edist_atom a;
    if (edist_dec_atom(&c, &a) != 0 || c.pos != t.len)
        return false;
    size_t n = strlen(atom);
    return a.len == n && memcmp(a.ptr, atom, n) == 0; /* ASCII: same in latin-1 */
}

/* ---- node names --------------------------------------------------------------------------- */

#define NODE_CHUNK 1024u
#define NODE_CHUNKS (EDIST_MAX_NODE_NAMES / NODE_CHUNK)
#define NODE_INDEX_SLOTS (2u * EDIST_MAX_NODE_NAMES)

typedef struct node_entry {
    uint32_t len;
    char name[];
} node_entry;

static _Atomic(node_entry *) *node_chunks[NODE_CHUNKS];
static _Atomic uint32_t node_index_slots[NODE_INDEX_SLOTS]; /* index + 1, 0 = empty */
static _Atomic uint32_t node_count;
static pthread_mutex_t node_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t node_once = PTHREAD_ONCE_INIT;

static node_entry *node_get(uint32_t i)
{
    _Atomic(node_entry *) *chunk = node_chunks[i / NODE_CHUNK];
    /* acquire: pairs with the release store in node_insert. */
    return chunk ? atomic_load_explicit(&chunk[i % NODE_CHUNK], memory_order_acquire) : NULL;
}

static int64_t node_find(const char *name, size_t len, uint64_t h)
{
    for (uint32_t probe = 0; probe < NODE_INDEX_SLOTS; probe++) {
        uint32_t slot = (uint32_t)((h + probe) % NODE_INDEX_SLOTS);
        /* acquire: pairs with the release store of the slot. */
        uint32_t v = atomic_load_explicit(&node_index_slots[slot], memory_order_acquire);
        if (v == 0)
            return -1;
        node_entry *e = node_get(v - 1);
        if (e && e->len == len && memcmp(e->name, name, len) == 0)
            return v - 1;
    }
    return -1;
}

static int64_t node_insert(const char *name, size_t len)
{
    uint64_t h = edi_hash_bytes(name, len, 0);
    int64_t found = node_find(name, len, h);
    if (found >= 0)
        return found;
    pthread_mutex_lock(&node_mu);
    found = node_find(name, len, h);
    if (found >= 0) {
        pthread_mutex_unlock(&node_mu);
        return found;
    }
    uint32_t i = atomic_load(&node_count);
    if (i >= EDIST_MAX_NODE_NAMES) {
        pthread_mutex_unlock(&node_mu);
        return edist_set_error(EDIST_ENOMEM, "node names: the table is full (%u)",
                               EDIST_MAX_NODE_NAMES);
    }
    if (!node_chunks[i / NODE_CHUNK]) {
        node_chunks[i / NODE_CHUNK] = calloc(NODE_CHUNK, sizeof(_Atomic(node_entry *)));
        if (!node_chunks[i / NODE_CHUNK]) {
            pthread_mutex_unlock(&node_mu);
            return edist_set_error(EDIST_ENOMEM, "node names: no memory");
        }
    }
    node_entry *e = malloc(sizeof *e + len + 1);
    if (!e) {
        pthread_mutex_unlock(&node_mu);
        return edist_set_error(EDIST_ENOMEM, "node names: no memory");
    }
    e->len = (uint32_t)len;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    atomic_store_explicit(&node_chunks[i / NODE_CHUNK][i % NODE_CHUNK], e, memory_order_release);
    for (uint32_t probe = 0;; probe++) {
        uint32_t slot = (uint32_t)((h + probe) % NODE_INDEX_SLOTS);
        if (atomic_load_explicit(&node_index_slots[slot], memory_order_relaxed) == 0) {
            atomic_store_explicit(&node_index_slots[slot], i + 1, memory_order_release);
            break;
        }
    }
    atomic_store(&node_count, i + 1);
    pthread_mutex_unlock(&node_mu);
    return i;
}

static void node_init(void)
{
    node_insert("nonode@nohost", 13); /* index 0 */
}

/* Every pid that arrives names its node: the few names a thread sees most
 * (its own node, its peers) are answered from a small per-thread cache
 * without hashing. Entries are never freed, so keeping pointers is safe. */
#define NODE_CACHE_WAYS 4
static _Thread_local struct {
    const node_entry *e;
    uint32_t index;
} node_cache[NODE_CACHE_WAYS];
static _Thread_local unsigned node_cache_next;

int64_t edist_node_name_index(const char *name, size_t len)
{
    if (!name || len == 0 || len > EDIST_ATOM_MAX_BYTES)
        return edist_set_error(EDIST_EINVAL, "node name: empty or too long");
    for (unsigned i = 0; i < NODE_CACHE_WAYS; i++) {
        const node_entry *e = node_cache[i].e;
        if (e && e->len == len && memcmp(e->name, name, len) == 0)
            return node_cache[i].index;
    }
    pthread_once(&node_once, node_init);
    int64_t index = node_insert(name, len);
    if (index >= 0) {
        unsigned w = node_cache_next++ % NODE_CACHE_WAYS;
        node_cache[w].e = node_get((uint32_t)index);
        node_cache[w].index = (uint32_t)index;
    }
    return index;
}

int edi_rt_node_intern(const char *name, size_t len, uint32_t *index)
{
    int64_t i = edist_node_name_index(name, len);
    if (i < 0)
        return (int)i;
    *index = (uint32_t)i;
    return 0;
}

const char *edi_rt_node_name(uint32_t index, size_t *len)
{
    pthread_once(&node_once, node_init);
    node_entry *e = index < atomic_load(&node_count) ? node_get(index) : NULL;
    if (!e)
        e = node_get(0);
    if (len)
        *len = e->len;
    return e->name;
}

const char *edist_procid_node(edist_procid p)
{
    return edi_rt_node_name(p.node, NULL);
}

/* ---- pids ----------------------------------------------------------------------------------- */

void edist_procid_to_pid(edist_procid p, edist_pid *out)
{
    size_t len;
    out->node.ptr = edi_rt_node_name(p.node, &len);
    out->node.len = (uint32_t)len;
    out->node.latin1 = 0;
    out->id = p.id;
    out->serial = p.serial;
    out->creation = p.creation;
}

/* Latin-1 atom text as UTF-8 into out (cap >= 2 * len). */
static size_t latin1_to_utf8(const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)in[i];
        if (c < 0x80) {
            out[n++] = (char)c;
        } else {
            out[n++] = (char)(0xC0 | (c >> 6));
            out[n++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return n;
}

static int intern_atom(const edist_atom *a, uint32_t *index)
{
    if (a->latin1) {
        char tmp[2 * EDIST_ATOM_MAX_CHARS];
        size_t n = latin1_to_utf8(a->ptr, a->len > EDIST_ATOM_MAX_CHARS ? EDIST_ATOM_MAX_CHARS
                                                                        : a->len, tmp);
        return edi_rt_node_intern(tmp, n, index);
    }
    return edi_rt_node_intern(a->ptr, a->len, index);
}

int edist_procid_from_pid(const edist_pid *pid, edist_procid *out)
{
    if (!pid || !out)
        return edist_set_error(EDIST_EINVAL, "procid_from_pid: no pid");
    uint32_t node;
    int rc = intern_atom(&pid->node, &node);
    if (rc)
        return rc;
    out->node = node;
    out->id = pid->id;
    out->serial = pid->serial;
    out->creation = pid->creation;
    return 0;
}

int edist_enc_procid(edist_buf *b, edist_procid p)
{
    edist_pid v;
    edist_procid_to_pid(p, &v);
    return edist_enc_pid(b, &v);
}

int edist_dec_procid(edist_cursor *c, edist_procid *out)
{
    size_t pos = c->pos;
    edist_pid v;
    int rc = edist_dec_pid(c, &v);
    if (rc)
        return rc;
    rc = edist_procid_from_pid(&v, out);
    if (rc)
        c->pos = pos;
    return rc;
}

/* ---- references -------------------------------------------------------------------------------- */

int edi_refkey_from_ref(const edist_ref *r, edi_refkey *k)
{
    memset(k, 0, sizeof *k);
    if (r->len == 0 || r->len > EDIST_REF_MAX_WORDS)
        return edist_set_error(EDIST_EINVAL, "ref: %u words", r->len);
    int rc = intern_atom(&r->node, &k->node);
    if (rc)
        return rc;
    k->creation = r->creation;
    k->len = r->len;
    memcpy(k->w, r->ids, r->len * sizeof(uint32_t));
    return 0;
}

void edi_refkey_to_ref(const edi_refkey *k, edist_ref *r)
{
    memset(r, 0, sizeof *r);
    size_t len;
    r->node.ptr = edi_rt_node_name(k->node, &len);
    r->node.len = (uint32_t)len;
    r->creation = k->creation;
    r->len = k->len;
    memcpy(r->ids, k->w, k->len * sizeof(uint32_t));
}

uint64_t edi_refkey_hash(const edi_refkey *k)
{
    return edi_hash_bytes(k, sizeof *k, 0x5e5);
}

bool edi_refkey_equal(const edi_refkey *a, const edi_refkey *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

void edi_make_refkey(edi_rt *rt, edi_refkey *k)
{
    /* Erlang's layout of a 3-word reference: 18 bits, then 32, then 32. */
    uint64_t n = atomic_fetch_add_explicit(&rt->g->ref_counter, 1, memory_order_relaxed);
    memset(k, 0, sizeof *k);
    k->node = rt->node_index;
    k->creation = rt->creation;
    k->len = 3;
    k->w[0] = (uint32_t)(n & 0x3FFFF);
    k->w[1] = (uint32_t)(n >> 18);
    k->w[2] = (uint32_t)(n >> 50);
}

bool edist_ref_equal(const edist_ref *a, const edist_ref *b)
{
    if (a->creation != b->creation || a->len != b->len || a->len > EDIST_REF_MAX_WORDS ||
        a->node.len != b->node.len || memcmp(a->node.ptr, b->node.ptr, a->node.len) != 0)
        return false;
    return memcmp(a->ids, b->ids, a->len * sizeof(uint32_t)) == 0;
}

int edist_runtime_make_ref(edist_runtime *rt, edist_ref *ref)
{
    if (!rt || !ref)
        return edist_set_error(EDIST_EINVAL, "make_ref: no runtime");
    edi_refkey k;
    edi_make_refkey(rt, &k);
    edi_refkey_to_ref(&k, ref);
    return 0;
}

int edist_make_ref(edist_ref *ref)
{
    edi_proc *p = edi_current;
    if (!p)
        return edist_set_error(EDIST_EINVAL, "make_ref: the caller is not a process");
    return edist_runtime_make_ref(p->rt, ref);
}

/* Seed the counter so that two incarnations with the same name and
 * creation (creation 0: no distribution) do not repeat references. */
static void refs_seed(edi_shards *g)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = edi_now_ns();
    atomic_store(&g->ref_counter, r & ((UINT64_C(1) << 48) - 1));
}

/* ---- registered names -------------------------------------------------------------------------
 * One table for the node (every shard's processes), under a mutex:
 * registering is rare, and a send by name looks the pid up and then goes
 * the way a send to that pid goes. A process keeps a flag (named) so that
 * only the processes that were given a name take the lock when they end. */

static uint64_t name_hash(const char *name, size_t len)
{
    return edi_hash_bytes(name, len, 0x4e);
}

static uint64_t pid_hash(edist_procid pid)
{
    return edi_hash_bytes(&pid, sizeof pid, 0x9d);
}

#define REGNAME_OF_PID(x) ((edi_regname *)(void *)((char *)(x)-offsetof(edi_regname, by_pid)))

/* Under names_mu. */
static edi_regname *find_name(edi_shards *g, const char *name, size_t len)
{
    uint64_t h = name_hash(name, len);
    for (edi_hnode *n = edi_htab_next_with(&g->names, h, NULL); n;
         n = edi_htab_next_with(&g->names, h, n)) {
        edi_regname *r = (edi_regname *)n;
        if (r->len == len && memcmp(r->name, name, len) == 0)
            return r;
    }
    return NULL;
}

static edi_regname *find_pid(edi_shards *g, edist_procid pid)
{
    uint64_t h = pid_hash(pid);
    for (edi_hnode *n = edi_htab_next_with(&g->names_by_pid, h, NULL); n;
         n = edi_htab_next_with(&g->names_by_pid, h, n)) {
        edi_regname *r = REGNAME_OF_PID(n);
        if (edist_procid_equal(r->pid, pid))
            return r;
    }
    return NULL;
}

static void remove_name(edi_shards *g, edi_regname *r)
{
    edi_htab_remove(&g->names, &r->h);
    edi_htab_remove(&g->names_by_pid, &r->by_pid);
    free(r);
}

void edi_registry_init(edi_shards *g)
{
    pthread_mutex_init(&g->names_mu, NULL);
    edi_htab_init(&g->names);
    edi_htab_init(&g->names_by_pid);
    pthread_mutex_init(&g->export_mu, NULL);
    edi_htab_init(&g->exports);
    refs_seed(g);
}

static void exports_destroy(edi_shards *g);

void edi_registry_destroy(edi_shards *g)
{
    for (size_t b = 0; g->names.buckets && b <= g->names.mask; b++) {
        edi_hnode *x = g->names.buckets[b];
        while (x) {
            edi_hnode *n = x->next;
            free(x);
            x = n;
        }
    }
    edi_htab_destroy(&g->names);
    edi_htab_destroy(&g->names_by_pid);
    pthread_mutex_destroy(&g->names_mu);
    exports_destroy(g);
    pthread_mutex_destroy(&g->export_mu);
}

int edi_name_lookup(edi_rt *rt, const char *name, size_t len, edist_procid *pid)
{
    edi_shards *g = rt->g;
    pthread_mutex_lock(&g->names_mu);
    edi_regname *r = find_name(g, name, len);
    if (r)
        *pid = r->pid;
    pthread_mutex_unlock(&g->names_mu);
    return r ? 0 : EDIST_ENOTFOUND;
}

int edi_name_register(edi_rt *rt, const char *name, size_t len, edist_procid pid, edi_proc *p)
{
    if (!edi_atom_text_ok(name, len) || (len == 9 && memcmp(name, "undefined", 9) == 0))
        return edist_set_error(EDIST_EINVAL, "register: bad name");
    edi_shards *g = rt->g;
    edi_rt *owner = edi_rt_owner(rt, pid);
    /* Alive: on its shard for certain; from another, a look at its table
     * (one that ends before it hears of the name drops it then). */
    if (p ? p->state >= EDI_ST_EXITING : !owner || !edi_proc_probe(owner, pid))
        return edist_set_error(EDIST_ENOTFOUND, "register: no such process");
    edi_regname *r = malloc(sizeof *r + len + 1);
    if (!r)
        return edist_set_error(EDIST_ENOMEM, "register: no memory");
    r->pid = pid;
    r->len = len;
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    pthread_mutex_lock(&g->names_mu);
    int rc = 0;
    edi_regname *had;
    if (find_name(g, name, len)) {
        rc = edist_set_error(EDIST_EEXIST, "register: %.*s is taken", (int)len, name);
    } else if ((had = find_pid(g, pid)) != NULL) {
        rc = edist_set_error(EDIST_EEXIST, "register: the process is registered as %s",
                             had->name);
    } else if (edi_htab_insert(&g->names, &r->h, name_hash(name, len)) != 0) {
        rc = edist_set_error(EDIST_ENOMEM, "register: no memory");
    } else if (edi_htab_insert(&g->names_by_pid, &r->by_pid, pid_hash(pid)) != 0) {
        edi_htab_remove(&g->names, &r->h);
        rc = edist_set_error(EDIST_ENOMEM, "register: no memory");
    }
    pthread_mutex_unlock(&g->names_mu);
    if (rc) {
        free(r);
        return rc;
    }
    if (p)
        p->named = 1;
    else
        edi_out_named(rt, pid); /* its shard marks it (or drops the name) */
    return 0;
}

void edi_name_drop_pid(edi_rt *rt, edist_procid pid)
{
    edi_shards *g = rt->g;
    pthread_mutex_lock(&g->names_mu);
    edi_regname *r = find_pid(g, pid);
    if (r)
        remove_name(g, r);
    pthread_mutex_unlock(&g->names_mu);
}

void edi_name_drop(edi_rt *rt, edi_proc *p)
{
    if (!p->named)
        return;
    p->named = 0;
    edi_name_drop_pid(rt, edi_proc_pid(p));
}

void edi_name_marked(edi_rt *rt, edist_procid pid)
{
    edi_proc *p = edi_proc_alive(rt, pid);
    if (p)
        p->named = 1;
    else
        edi_name_drop_pid(rt, pid); /* it ended before it heard */
}

typedef struct reg_ctx {
    const char *name;
    edist_procid pid;
} reg_ctx;

static int do_register(edi_rt *rt, void *arg)
{
    reg_ctx *c = arg;
    edi_proc *p = edi_proc_alive(rt, c->pid);
    if (!p)
        return edist_set_error(EDIST_ENOTFOUND, "register: no such process");
    return edi_name_register(rt, c->name, strlen(c->name), c->pid, p);
}

int edist_runtime_register(edist_runtime *rt, const char *name, edist_procid pid)
{
    if (!rt || !name)
        return edist_set_error(EDIST_EINVAL, "register: no runtime or name");
    edi_rt *owner = edi_rt_owner(rt, pid);
    if (!owner)
        return edist_set_error(EDIST_ENOTFOUND, "register: no such process");
    /* On the owner's thread, or waiting for it; a shard's thread never
     * waits for a sibling: it registers from where it is. */
    edi_rt *here = edi_rt_here(rt);
    if (here && here != owner)
        return edi_name_register(here, name, strlen(name), pid, NULL);
    reg_ctx c = {.name = name, .pid = pid};
    return edi_rt_run(owner, do_register, &c);
}

int edist_register(const char *name, edist_procid pid)
{
    edi_proc *p = edi_current;
    if (!p)
        return edist_set_error(EDIST_EINVAL, "register: the caller is not a process");
    return edist_runtime_register(p->rt, name, pid);
}

int edist_runtime_unregister(edist_runtime *rt, const char *name)
{
    if (!rt || !name)
        return edist_set_error(EDIST_EINVAL, "unregister: no runtime or name");
    edi_shards *g = rt->g;
    pthread_mutex_lock(&g->names_mu);
    edi_regname *r = find_name(g, name, strlen(name));
    if (r)
        remove_name(g, r); /* its process's flag stays: it looks once more at exit */
    pthread_mutex_unlock(&g->names_mu);
    if (!r)
        return edist_set_error(EDIST_ENOTFOUND, "unregister: %s is not registered", name);
    return 0;
}

int edist_unregister(const char *name)
{
    edi_proc *p = edi_current;
    if (!p)
        return edist_set_error(EDIST_EINVAL, "unregister: the caller is not a process");
    return edist_runtime_unregister(p->rt, name);
}

int edist_runtime_whereis(edist_runtime *rt, const char *name, edist_procid *pid)
{
    if (!rt || !name || !pid)
        return edist_set_error(EDIST_EINVAL, "whereis: no runtime or name");
    return edi_name_lookup(rt, name, strlen(name), pid);
}

int edist_whereis(const char *name, edist_procid *pid)
{
    edi_proc *p = edi_current;
    if (!p)
        return edist_set_error(EDIST_EINVAL, "whereis: the caller is not a process");
    return edist_runtime_whereis(p->rt, name, pid);
}

int64_t edist_registered(edist_runtime *rt, char ***names)
{
    if (!rt || !names)
        return edist_set_error(EDIST_EINVAL, "registered: no runtime");
    edi_shards *g = rt->g;
    pthread_mutex_lock(&g->names_mu);
    size_t n = g->names.count, k = 0;
    char **out = calloc(n ? n : 1, sizeof(char *));
    for (size_t b = 0; out && g->names.buckets && b <= g->names.mask; b++) {
        for (edi_hnode *x = g->names.buckets[b]; x; x = x->next) {
            char *s = strdup(((edi_regname *)x)->name);
            if (!s) {
                edist_names_free(out, k);
                out = NULL;
                break;
            }
            out[k++] = s;
        }
    }
    pthread_mutex_unlock(&g->names_mu);
    if (!out)
        return edist_set_error(EDIST_ENOMEM, "registered: no memory");
    *names = out;
    return (int64_t)k;
}

void edist_names_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ---- exported functions -------------------------------------------------------------------------- */

typedef struct export_entry {
    edi_hnode h;
    edist_exported_fn fn;
    void *user;
    uint32_t arity;
    size_t mlen, flen;
    char text[]; /* module NUL function NUL */
} export_entry;

static uint64_t export_hash(const char *m, size_t ml, const char *f, size_t fl, uint32_t arity)
{
    uint64_t h = edi_hash_bytes(m, ml, arity);
    return edi_hash_bytes(f, fl, h);
}

static export_entry *export_find(edi_shards *g, const char *m, size_t ml, const char *f,
                                 size_t fl, uint32_t arity)
{
    uint64_t h = export_hash(m, ml, f, fl, arity);
    for (edi_hnode *n = edi_htab_next_with(&g->exports, h, NULL); n;
         n = edi_htab_next_with(&g->exports, h, n)) {
        export_entry *e = (export_entry *)n;
        if (e->arity == arity && e->mlen == ml && e->flen == fl && !memcmp(e->text, m, ml) &&
            !memcmp(e->text + ml + 1, f, fl))
            return e;
    }
    return NULL;
}

int edist_export_function(edist_runtime *rt, const char *module, const char *function,
                          uint32_t arity, edist_exported_fn fn, void *user)
{
    if (!rt || !module || !function || !fn)
        return edist_set_error(EDIST_EINVAL, "export: missing argument");
    size_t ml = strlen(module), fl = strlen(function);
    if (!edi_atom_text_ok(module, ml) || !edi_atom_text_ok(function, fl) || arity > 255)
        return edist_set_error(EDIST_EINVAL, "export: bad name or arity");
    edi_shards *g = rt->g;
    pthread_mutex_lock(&g->export_mu);
    export_entry *e = export_find(g, module, ml, function, fl, arity);
    if (e) {
        e->fn = fn;
        e->user = user;
        pthread_mutex_unlock(&g->export_mu);
        return 0;
    }
    e = malloc(sizeof *e + ml + fl + 2);
    if (!e) {
        pthread_mutex_unlock(&g->export_mu);
        return edist_set_error(EDIST_ENOMEM, "export: no memory");
    }
    e->fn = fn;
    e->user = user;
    e->arity = arity;
    e->mlen = ml;
    e->flen = fl;
    memcpy(e->text, module, ml + 1);
    memcpy(e->text + ml + 1, function, fl + 1);
    int rc = edi_htab_insert(&g->exports, &e->h, export_hash(module, ml, function, fl, arity));
    pthread_mutex_unlock(&g->export_mu);
    if (rc) {
        free(e);
        return edist_set_error(EDIST_ENOMEM, "export: no memory");
    }
    return 0;
}

int edist_export_lookup(edist_runtime *rt, const char *module, const char *function,
                        uint32_t arity, edist_exported_fn *fn, void **user)
{
    if (!rt || !module || !function)
        return edist_set_error(EDIST_EINVAL, "export_lookup: missing argument");
    edi_shards *g = rt->g;
    pthread_mutex_lock(&g->export_mu);
    export_entry *e = export_find(g, module, strlen(module), function, strlen(function), arity);
    if (e) {
        if (fn)
            *fn = e->fn;
        if (user)
            *user = e->user;
    }
    pthread_mutex_unlock(&g->export_mu);
    return e ? 0 : EDIST_ENOTFOUND;
}

static void exports_destroy(edi_shards *g)
{
    for (size_t b = 0; g->exports.buckets && b <= g->exports.mask; b++) {
        edi_hnode *x = g->exports.buckets[b];
        while (x) {
            edi_hnode *n = x->next;
            free(x);
            x = n;
        }
    }
    edi_htab_destroy(&g->exports);
}

int edi_export_call(edist_exported_fn fn, void *user, const char *module,
                    const char *function, const edist_term_view *args,
                    uint32_t arity, edist_buf *result)
{
    edi_proc *self = edi_current;
    edi_export_run run = {module, function, arity};
    const edi_export_run *outer = NULL;
    if (self) {
        outer = self->running_export;
        self->running_export = &run;
    }
    /* The handler reads it on this thread: keep the store before the call. */
    atomic_signal_fence(memory_order_seq_cst);
    int rc = fn(user, args, arity, result);
    atomic_signal_fence(memory_order_seq_cst);
    if (self)
        self->running_export = outer;
    return rc;
}
