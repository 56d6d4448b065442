/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "edist/error.h"

/* One detail string per thread: errors are produced and read on the thread
 * that made the failing call, and no lock is needed. */
static _Thread_local char last_error[512];

const char *edist_strerror(int err)
{
    switch (err) {
    case EDIST_OK: return "success";
    case EDIST_ENOMEM: return "out of memory or size limit reached";
    case EDIST_EINVAL: return "invalid argument";
    case EDIST_ENOSPC: return "buffer too small";
    case EDIST_ETRUNC: return "input truncated";
    case EDIST_EBADTAG: return "unknown or unexpected tag";
    case EDIST_EBADTERM: return "malformed term";
    case EDIST_EDEPTH: return "nesting too deep";
    case EDIST_ETYPE: return "term has another type";
    case EDIST_ERANGE: return "value out of range";
    case EDIST_ESYNTAX: return "syntax error";
    case EDIST_EVERSION: return "missing or unknown version byte";
    case EDIST_ECOMPRESS: return "bad compressed term";
    case EDIST_EUNSUPPORTED: return "not supported";
    case EDIST_EIO: return "I/O error";
    case EDIST_ENOTFOUND: return "not found";
    case EDIST_ETIMEDOUT: return "timed out";
    case EDIST_ECLOSED: return "closed";
    case EDIST_EAGAIN: return "resource busy, try again";
    case EDIST_EPROTO: return "protocol error";
    case EDIST_EAUTH: return "authentication failed";
    case EDIST_EEXIST: return "already exists";
    }
    return "unknown error";
}

const char *edist_error_name(int err)
{
    switch (err) {
    case EDIST_OK: return "ok";
    case EDIST_ENOMEM: return "enomem";
    case EDIST_EINVAL: return "einval";
    case EDIST_ENOSPC: return "enospc";
    case EDIST_ETRUNC: return "etrunc";
    case EDIST_EBADTAG: return "ebadtag";
    case EDIST_EBADTERM: return "ebadterm";
    case EDIST_EDEPTH: return "edepth";
    case EDIST_ETYPE: return "etype";
    case EDIST_ERANGE: return "erange";
    case EDIST_ESYNTAX: return "esyntax";
    case EDIST_EVERSION: return "eversion";
    case EDIST_ECOMPRESS: return "ecompress";
    case EDIST_EUNSUPPORTED: return "eunsupported";
    case EDIST_EIO: return "eio";
    case EDIST_ENOTFOUND: return "enotfound";
    case EDIST_ETIMEDOUT: return "etimedout";
    case EDIST_ECLOSED: return "eclosed";
    case EDIST_EAGAIN: return "eagain";
    case EDIST_EPROTO: return "eproto";
    case EDIST_EAUTH: return "eauth";
    case EDIST_EEXIST: return "eexist";
    }
    return "unknown";
}

const char *edist_last_error(void)
{
    return last_error;
}

int edist_set_error(int err, const char *fmt, ...)
{
    /* Formatted aside first: callers add context to the error they got,
     * passing edist_last_error() itself as an argument, and vsnprintf
     * into the buffer it reads from would garble it. */
    char line[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    memcpy(last_error, line, sizeof line);
    return err;
}

int edist_error_prefix(int err, const char *fmt, ...)
{
    char line[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        line[0] = '\0';
    size_t used = strlen(line);
    if (last_error[0] && used + 2 < sizeof line) {
        /* Cut to what fits: the end of the old detail goes first. */
        line[used++] = ':';
        line[used++] = ' ';
        size_t len = strnlen(last_error, sizeof line - 1 - used);
        memcpy(line + used, last_error, len);
        line[used + len] = '\0';
    }
    memcpy(last_error, line, sizeof line);
    return err;
}

void edist_clear_error(void)
{
    last_error[0] = '\0';
}
