/* SPDX-License-Identifier: Apache-2.0 */
/* Cookies: the ~/.erlang.cookie file as erl reads and creates it, and the
 * per-node cookie table behind erlang:set_cookie/2 semantics.
 *
 * A cookie is a byte string of 1..EDI_COOKIE_MAX_BYTES bytes without NUL.
 * In Erlang it is an atom whose characters are hashed as latin-1 bytes, so
 * the same bytes give the same digest on both sides. */
#ifndef EDIST_CONTROL_COOKIE_H
#define EDIST_CONTROL_COOKIE_H

#include <stdbool.h>
#include <stddef.h>

/* An atom holds at most 255 characters; a longer cookie could not exist on
 * the BEAM side. */
#define EDI_COOKIE_MAX_BYTES 255
/* Length of a freshly generated cookie (as erl: 20 letters A-Z). */
#define EDI_COOKIE_GENERATED_BYTES 20

/* Read the node's default cookie the way erl does:
 *   1. HOME/.erlang.cookie, where HOME is home_dir or, when NULL, $HOME;
 *   2. if that does not exist, $XDG_CONFIG_HOME/erlang/.erlang.cookie
 *      (XDG_CONFIG_HOME defaulting to HOME/.config);
 *   3. if neither exists, create HOME/.erlang.cookie with 20 random
 *      uppercase letters and mode 0400.
 * The file must be a regular file that neither group nor others may access
 * (erl refuses otherwise: "must be accessible by owner only"). The cookie is
 * the leading run of printable ASCII (space included, as erl keeps it);
 * only newlines, carriage returns and spaces may follow it.
 * Writes the NUL-terminated cookie to buf (cap >= EDI_COOKIE_MAX_BYTES + 1
 * is always enough) and returns its length, or a negative edist_err with
 * detail: EDIST_EAUTH (bad mode, not a regular file, bad content),
 * EDIST_ENOTFOUND (no home directory), EDIST_EIO (OS error),
 * EDIST_ENOSPC (buf too small), EDIST_EINVAL. Blocks on file I/O; callable
 * from any thread. */
int edi_cookie_load(const char *home_dir, char *buf, size_t cap);

/* 0 if cookie can be used in a handshake (1..255 bytes), else EDIST_EINVAL
 * with detail. */
int edi_cookie_check(const char *cookie);

/* ---- per-node cookies ----------------------------------------------------
 * The cookie used for connections to and from a node: the one set for that
 * node, else the default. Thread-safe (an internal mutex): the node may set
 * cookies while handshakes look them up. */
typedef struct edi_cookies edi_cookies;

/* Create a table whose default cookie is default_cookie (may be NULL: then
 * lookups of nodes without their own cookie fail with EDIST_ENOTFOUND).
 * Returns 0 and *out, or EDIST_EINVAL / EDIST_ENOMEM. */
int edi_cookies_new(const char *default_cookie, edi_cookies **out);

void edi_cookies_free(edi_cookies *t);

/* Replace the default cookie (NULL removes it). 0 or EDIST_EINVAL. */
int edi_cookies_set_default(edi_cookies *t, const char *cookie);

/* Set the cookie for connections to/from node ("name@host"); NULL forgets
 * it so the default applies again. 0, EDIST_EINVAL or EDIST_ENOMEM (also
 * when the table already holds EDI_COOKIES_MAX_NODES entries). */
#define EDI_COOKIES_MAX_NODES 4096
int edi_cookies_set(edi_cookies *t, const char *node, const char *cookie);

/* Copy the cookie for node (NULL: the default) into buf, NUL-terminated.
 * Returns its length, EDIST_ENOTFOUND (no cookie at all) or EDIST_ENOSPC. */
int edi_cookies_get(edi_cookies *t, const char *node, char *buf, size_t cap);

/* Whether node has a cookie of its own (not the default). */
bool edi_cookies_has_node(edi_cookies *t, const char *node);

#endif
