/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime's intrusive hash table (edi_htab, runtime/registry.c) and the
 * byte hash every table uses (edi_hash_bytes): insert, find, remove, growth,
 * colliding hashes, and the spread of the buckets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/runtime_internal.h"

typedef struct item {
    edi_hnode h;
    uint64_t key;
    bool in;
} item;

static uint64_t key_hash(uint64_t key)
{
    return edi_hash_bytes(&key, sizeof key, 0x7e57);
}

/* The item with key, or NULL; *probes counts the nodes looked at. */
static item *find(const edi_htab *t, uint64_t key, size_t *probes)
{
    uint64_t h = key_hash(key);
    for (edi_hnode *x = edi_htab_next_with(t, h, NULL); x; x = edi_htab_next_with(t, h, x)) {
        (*probes)++;
        if (((item *)x)->key == key)
            return (item *)x;
    }
    return NULL;
}

static size_t longest_chain(const edi_htab *t)
{
    size_t longest = 0;
    for (size_t b = 0; t->buckets && b <= t->mask; b++) {
        size_t n = 0;
        for (edi_hnode *x = t->buckets[b]; x; x = x->next)
            n++;
        longest = n > longest ? n : longest;
    }
    return longest;
}

#define N_ITEMS 20000u

static void insert_find_remove_grow(void **state)
{
    (void)state;
    edi_htab t;
    edi_htab_init(&t);
    size_t probes = 0;
    assert_null(find(&t, 1, &probes)); /* empty: no buckets yet */
    item *items = calloc(N_ITEMS, sizeof *items);
    assert_non_null(items);
    size_t masks_seen = 0, last_mask = 0;
    for (uint32_t i = 0; i < N_ITEMS; i++) {
        items[i].key = (uint64_t)i * 3; /* dense keys, as ids are */
        assert_int_equal(edi_htab_insert(&t, &items[i].h, key_hash(items[i].key)), 0);
        items[i].in = true;
        /* the table grows with its contents: never more than one node per
         * bucket on average */
        assert_true(t.count <= t.mask + 1);
        if (t.mask != last_mask) {
            masks_seen++;
            last_mask = t.mask;
        }
    }
    assert_int_equal(t.count, N_ITEMS);
    assert_true(masks_seen > 8); /* it did grow, many times */
    /* every key found, each in about one probe */
    probes = 0;
    for (uint32_t i = 0; i < N_ITEMS; i++)
        assert_ptr_equal(find(&t, items[i].key, &probes), &items[i]);
    assert_true(probes == N_ITEMS); /* nodes of other keys share no hash */
    assert_true(longest_chain(&t) <= 12);
    /* absent keys cost no key comparison */
    probes = 0;
    for (uint32_t i = 0; i < N_ITEMS; i++)
        assert_null(find(&t, (uint64_t)i * 3 + 1, &probes));
    assert_int_equal(probes, 0);
    /* remove every other one; the rest stay */
    for (uint32_t i = 0; i < N_ITEMS; i += 2) {
        edi_htab_remove(&t, &items[i].h);
        items[i].in = false;
    }
    assert_int_equal(t.count, N_ITEMS / 2);
    for (uint32_t i = 0; i < N_ITEMS; i++)
        assert_ptr_equal(find(&t, items[i].key, &probes), items[i].in ? &items[i] : NULL);
    /* and they can come back */
    for (uint32_t i = 0; i < N_ITEMS; i += 2)
        assert_int_equal(edi_htab_insert(&t, &items[i].h, key_hash(items[i].key)), 0);
    for (uint32_t i = 0; i < N_ITEMS; i++)
        assert_ptr_equal(find(&t, items[i].key, &probes), &items[i]);
    for (uint32_t i = 0; i < N_ITEMS; i++)
        edi_htab_remove(&t, &items[i].h);
    assert_int_equal(t.count, 0);
    assert_null(find(&t, 3, &probes));
    edi_htab_destroy(&t);
    assert_null(t.buckets);
    free(items);
}

/* Nodes of one hash: all of them are walked, in any order, and removing
 * one leaves the others. */
static void equal_hashes(void **state)
{
    (void)state;
    edi_htab t;
    edi_htab_init(&t);
    item items[40];
    for (int i = 0; i < 40; i++) {
        items[i].key = (uint64_t)i;
        assert_int_equal(edi_htab_insert(&t, &items[i].h, 42), 0);
    }
    int seen = 0;
    for (edi_hnode *x = edi_htab_next_with(&t, 42, NULL); x; x = edi_htab_next_with(&t, 42, x))
        seen++;
    assert_int_equal(seen, 40);
    edi_htab_remove(&t, &items[17].h);
    uint64_t keys = 0;
    seen = 0;
    for (edi_hnode *x = edi_htab_next_with(&t, 42, NULL); x; x = edi_htab_next_with(&t, 42, x)) {
        keys += ((item *)x)->key;
        seen++;
    }
    assert_int_equal(seen, 39);
    assert_int_equal(keys, 39 * 40 / 2 - 17);
    assert_null(edi_htab_next_with(&t, 43, NULL));
    edi_htab_destroy(&t);
}

/* The byte hash: the length counts, every byte counts, the seed counts. */
static void byte_hash(void **state)
{
    (void)state;
    uint8_t a[64] = {0}, b[64] = {0};
    assert_true(edi_hash_bytes(a, 3, 0) != edi_hash_bytes(a, 4, 0));
    assert_true(edi_hash_bytes(a, 0, 0) != edi_hash_bytes(a, 0, 1));
    for (size_t n = 1; n <= sizeof a; n++) {
        for (size_t i = 0; i < n; i++) {
            b[i] ^= 1;
            assert_true(edi_hash_bytes(a, n, 9) != edi_hash_bytes(b, n, 9));
            b[i] ^= 1;
        }
        assert_true(edi_hash_bytes(a, n, 9) == edi_hash_bytes(b, n, 9));
    }
    /* the low bits (the bucket index) of dense keys are spread */
    unsigned buckets[64] = {0};
    for (uint64_t k = 0; k < 64 * 64; k++)
        buckets[edi_hash_bytes(&k, sizeof k, 0) & 63]++;
    for (int i = 0; i < 64; i++)
        assert_true(buckets[i] > 20 && buckets[i] < 120);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(insert_find_remove_grow),
        cmocka_unit_test(equal_hashes),
        cmocka_unit_test(byte_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
