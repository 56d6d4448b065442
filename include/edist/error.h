/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes shared by every edist module.
 *
 * Every fallible function returns 0 (or a non-negative count) on success and
 * a negative edist_err on failure; nothing sets errno. Library code never
 * prints: it may attach detail to a thread-local "last error" string that the
 * CLI (or any caller) reads with edist_last_error(). */
#ifndef EDIST_ERROR_H
#define EDIST_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum edist_err {
    EDIST_OK = 0,
    EDIST_ENOMEM = -1,      /* allocation failed or a size limit was hit */
    EDIST_EINVAL = -2,      /* bad argument from the caller */
    EDIST_ENOSPC = -3,      /* caller-given buffer too small */
    EDIST_ETRUNC = -4,      /* input ends in the middle of a term */
    EDIST_EBADTAG = -5,     /* unknown or unexpected tag byte */
    EDIST_EBADTERM = -6,    /* malformed term (bad length, bad UTF-8, NaN...) */
    EDIST_EDEPTH = -7,      /* nesting deeper than the configured limit */
    EDIST_ETYPE = -8,       /* the next term is not of the requested type */
    EDIST_ERANGE = -9,      /* value does not fit the requested C type */
    EDIST_ESYNTAX = -10,    /* Erlang text syntax error */
    EDIST_EVERSION = -11,   /* missing or unknown version byte (131) */
    EDIST_ECOMPRESS = -12,  /* zlib error in a compressed term */
    EDIST_EUNSUPPORTED = -13, /* valid input we do not handle */
    EDIST_EIO = -14,        /* I/O error (see last error for detail) */
    EDIST_ENOTFOUND = -15,  /* named thing does not exist */
    EDIST_ETIMEDOUT = -16,
    EDIST_ECLOSED = -17,    /* peer or object closed */
    EDIST_EAGAIN = -18,     /* would block / queue full: try again later */
    EDIST_EPROTO = -19,     /* protocol violation by a peer */
    EDIST_EAUTH = -20,      /* cookie / authentication failure */
    EDIST_EEXIST = -21,     /* already exists (name taken) */
} edist_err;

/* Short, constant description of an error code; never NULL. */
const char *edist_strerror(int err);

/* The code's name as Erlang sees it ("einval" for EDIST_EINVAL,
 * "unknown" for a code not listed): an export that fails with a code
 * raises error {edist_error, Name}. Never NULL. */
const char *edist_error_name(int err);

/* Detail for the most recent error set on this thread with edist_set_error()
 * ("decode: bad tag 0x55 at offset 17"); "" if none. Valid until the next
 * call that sets an error on this thread. */
const char *edist_last_error(void);

/* Record detail for the caller and return err unchanged, so library code can
 * write `return edist_set_error(EDIST_EBADTAG, "bad tag %u at %zu", t, off);` */
int edist_set_error(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Put context in front of the detail already recorded on this thread and
 * return err unchanged: after a failed call,
 * `return edist_error_prefix(rc, "cannot register %s", name);` leaves
 * "cannot register x: <the detail>" ("cannot register x" alone when there
 * was none). The detail is never an argument, so it cannot be formatted
 * into itself; a line too long loses the end of the old detail. */
int edist_error_prefix(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Forget the last error detail. */
void edist_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
