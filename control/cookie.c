/* SPDX-License-Identifier: Apache-2.0 */
#include "control/cookie.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edist/error.h"

/* Anything longer cannot be a valid cookie file: at most 255 cookie bytes
 * followed by a little whitespace. Bounding the read keeps a hostile or
 * mistaken file (a log, a device) from being slurped. */
#define COOKIE_FILE_MAX_BYTES 4096
/* When another process wins the race to create the file we may read it
 * before its creator has written the cookie: retry that long. */
#define COOKIE_RACE_RETRIES 50
#define COOKIE_RACE_SLEEP_MS 20

int edi_cookie_check(const char *cookie)
{
    if (cookie == NULL)
        return edist_set_error(EDIST_EINVAL, "cookie: NULL");
    size_t len = strnlen(cookie, EDI_COOKIE_MAX_BYTES + 1);
    if (len == 0)
        return edist_set_error(EDIST_EINVAL, "cookie: empty");
    if (len > EDI_COOKIE_MAX_BYTES)
        return edist_set_error(EDIST_EINVAL, "cookie: longer than %d bytes",
                               EDI_COOKIE_MAX_BYTES);
    return 0;
}

/* Parse file content as auth.erl does: the cookie is the leading run of
 * printable ASCII; only '\n', '\r' and ' ' may follow. */
static int parse_cookie(const char *path, const unsigned char *data, size_t len,
                        char *buf, size_t cap)
{
    size_t n = 0;
    while (n < len && data[n] >= 0x20 && data[n] <= 0x7e)
        n++;
    for (size_t i = n; i < len; i++) {
        if (data[i] != '\n' && data[i] != '\r' && data[i] != ' ')
            return edist_set_error(EDIST_EAUTH,
                                   "cookie file %s: bad character 0x%02x "
                                   "at offset %zu",
                                   path, data[i], i);
    }
    if (n == 0)
        return edist_set_error(EDIST_EAUTH, "cookie file %s: empty cookie",
                               path);
    if (n > EDI_COOKIE_MAX_BYTES)
        return edist_set_error(EDIST_EAUTH,
                               "cookie file %s: cookie longer than %d bytes",
                               path, EDI_COOKIE_MAX_BYTES);
    if (n + 1 > cap)
        return edist_set_error(EDIST_ENOSPC,
                               "cookie: buffer of %zu bytes too small", cap);
    memcpy(buf, data, n);
    buf[n] = '\0';
    return (int)n;
}

/* Read and validate one cookie file. Returns the cookie length, 0 when the
 * file does not exist, or a negative error; *empty tells whether it was a
 * regular file with nothing in it (perhaps not written yet). */
static int read_cookie_file(const char *path, char *buf, size_t cap, bool *empty)
{
    *empty = false;
    /* O_NONBLOCK: a FIFO planted at the path must not hang us before the
     * type check below refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return edist_set_error(EDIST_EIO, "cookie file %s: %s", path,
                               strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return edist_set_error(EDIST_EIO, "cookie file %s: %s", path,
                               strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return edist_set_error(EDIST_EAUTH,
                               "cookie file %s is not a regular file", path);
    }
    /* Same rule and wording as erl: anyone else able to read the cookie
     * could impersonate us, anyone else able to write it could lock us
     * out or in. */
    if ((st.st_mode & 077) != 0) {
        close(fd);
        return edist_set_error(EDIST_EAUTH,
                               "cookie file %s must be accessible by owner "
                               "only (mode is 0%03o)",
                               path, (unsigned)(st.st_mode & 0777));
    }
    unsigned char data[COOKIE_FILE_MAX_BYTES + 1];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fd, data + have, sizeof data - have);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return edist_set_error(EDIST_EIO, "cookie file %s: %s", path,
                                   strerror(e));
        }
        if (r == 0)
            break;
        have += (size_t)r;
        if (have == sizeof data)
            break;
    }
    close(fd);
    *empty = have == 0;
    if (have > COOKIE_FILE_MAX_BYTES)
        return edist_set_error(EDIST_EAUTH,
                               "cookie file %s: larger than %d bytes", path,
                               COOKIE_FILE_MAX_BYTES);
    return parse_cookie(path, data, have, buf, cap);
}

static int random_bytes(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return edist_set_error(EDIST_EIO, "getrandom: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Fill out[0..n) with uniformly random letters A-Z. */
static int random_letters(char *out, size_t n)
{
    size_t filled = 0;
    while (filled < n) {
        unsigned char raw[64];
        int rc = random_bytes(raw, sizeof raw);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < sizeof raw && filled < n; i++) {
            /* 234 = 9 * 26: rejecting larger bytes removes modulo bias. */
            if (raw[i] < 234)
                out[filled++] = (char)('A' + raw[i] % 26);
        }
    }
    return 0;
}

/* Create path exclusively with a fresh cookie and mode 0400. Returns 0,
 * 1 if the file appeared meanwhile (another process created it), or a
 * negative error. */
static int create_cookie_file(const char *path)
{
    char cookie[EDI_COOKIE_GENERATED_BYTES];
    int rc = random_letters(cookie, sizeof cookie);
    if (rc < 0)
        return rc;
    int fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
    if (fd < 0) {
        if (errno == EEXIST)
            return 1;
        return edist_set_error(EDIST_EIO, "cannot create cookie file %s: %s",
                               path, strerror(errno));
    }
    /* The umask may only have narrowed 0400, but set it explicitly so the
     * file is exactly what erl creates. */
    if (fchmod(fd, 0400) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return edist_set_error(EDIST_EIO, "cookie file %s: chmod: %s", path,
                               strerror(e));
    }
    size_t off = 0;
    while (off < sizeof cookie) {
        ssize_t w = write(fd, cookie + off, sizeof cookie - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(path);
            return edist_set_error(EDIST_EIO, "cookie file %s: write: %s", path,
                                   strerror(e));
        }
        off += (size_t)w;
    }
    if (close(fd) != 0)
        return edist_set_error(EDIST_EIO, "cookie file %s: close: %s", path,
                               strerror(errno));
    return 0;
}

static void race_pause(void)
{
    struct timespec ts = {0, COOKIE_RACE_SLEEP_MS * 1000000L};
    nanosleep(&ts, NULL);
}

/* read_cookie_file, giving a file that may be in the middle of its creation
 * a moment: an empty one always (another process or thread may have just
 * created it), and, after we lost the race to create it, a missing or
 * refused one too (erl writes the cookie and only then narrows the mode to
 * 0400). */
static int read_settled(const char *path, char *buf, size_t cap, bool lost_race)
{
    bool empty;
    int rc = read_cookie_file(path, buf, cap, &empty);
    for (int attempt = 0; attempt < COOKIE_RACE_RETRIES; attempt++) {
        bool settling = rc == EDIST_EAUTH ? lost_race || empty : lost_race && rc == 0;
        if (!settling)
            break;
        race_pause();
        rc = read_cookie_file(path, buf, cap, &empty);
    }
    return rc;
}

static int join_path(char *out, size_t cap, const char *dir, const char *rest)
{
    int n = snprintf(out, cap, "%s/%s", dir, rest);
    if (n < 0 || (size_t)n >= cap)
        return edist_set_error(EDIST_EINVAL, "cookie: path %s/%s too long", dir,
                               rest);
    return 0;
}

int edi_cookie_load(const char *home_dir, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return edist_set_error(EDIST_EINVAL, "cookie: no buffer");
    if (home_dir == NULL || home_dir[0] == '\0')
        home_dir = getenv("HOME");
    if (home_dir != NULL && home_dir[0] == '\0')
        home_dir = NULL;

    char home_path[PATH_MAX];
    char xdg_path[PATH_MAX];
    bool have_xdg = false;
    const char *xdg = getenv("XDG_CONFIG_HOME");
    int rc;
    if (xdg != NULL && xdg[0] != '\0') {
        rc = join_path(xdg_path, sizeof xdg_path, xdg, "erlang/.erlang.cookie");
        if (rc < 0)
            return rc;
        have_xdg = true;
    } else if (home_dir != NULL) {
        rc = join_path(xdg_path, sizeof xdg_path, home_dir,
                       ".config/erlang/.erlang.cookie");
        if (rc < 0)
            return rc;
        have_xdg = true;
    }

    if (home_dir != NULL) {
        rc = join_path(home_path, sizeof home_path, home_dir, ".erlang.cookie");
        if (rc < 0)
            return rc;
        rc = read_settled(home_path, buf, cap, false);
        if (rc != 0)
            return rc;
    }
    if (have_xdg) {
        rc = read_settled(xdg_path, buf, cap, false);
        if (rc != 0)
            return rc;
    }
    /* Neither exists: create one where erl would (the XDG path only when
     * there is no home). */
    const char *create_at = home_dir != NULL ? home_path
                            : have_xdg       ? xdg_path
                                             : NULL;
    if (create_at == NULL)
        return edist_set_error(EDIST_ENOTFOUND,
                               "cookie: no home directory (HOME unset) and "
                               "no XDG_CONFIG_HOME");
    rc = create_cookie_file(create_at);
    if (rc < 0)
        return rc;
    rc = read_settled(create_at, buf, cap, rc == 1);
    if (rc == 0)
        return edist_set_error(EDIST_EIO, "cookie file %s vanished after creation", create_at);
    return rc;
}

/* ---- per-node table ------------------------------------------------------ */

struct cookie_entry {
    char *node;
    char cookie[EDI_COOKIE_MAX_BYTES + 1];
};

struct edi_cookies {
    pthread_mutex_t lock;
    bool has_default;
    char default_cookie[EDI_COOKIE_MAX_BYTES + 1];
    struct cookie_entry *entries;
    size_t count;
    size_t capacity;
};

int edi_cookies_new(const char *default_cookie, edi_cookies **out)
{
    if (out == NULL)
        return edist_set_error(EDIST_EINVAL, "cookies: NULL out");
    *out = NULL;
    if (default_cookie != NULL) {
        int rc = edi_cookie_check(default_cookie);
        if (rc < 0)
            return rc;
    }
    edi_cookies *t = calloc(1, sizeof *t);
    if (t == NULL)
        return edist_set_error(EDIST_ENOMEM, "cookies: out of memory");
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return edist_set_error(EDIST_ENOMEM, "cookies: mutex init failed");
    }
    if (default_cookie != NULL) {
        strcpy(t->default_cookie, default_cookie);
        t->has_default = true;
    }
    *out = t;
    return 0;
}

void edi_cookies_free(edi_cookies *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++)
        free(t->entries[i].node);
    free(t->entries);
    /* Cookies are secrets: do not leave them in freed memory. */
    explicit_bzero(t->default_cookie, sizeof t->default_cookie);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int edi_cookies_set_default(edi_cookies *t, const char *cookie)
{
    if (t == NULL)
        return edist_set_error(EDIST_EINVAL, "cookies: NULL table");
    if (cookie != NULL) {
        int rc = edi_cookie_check(cookie);
        if (rc < 0)
            return rc;
    }
    pthread_mutex_lock(&t->lock);
    if (cookie != NULL) {
        strcpy(t->default_cookie, cookie);
        t->has_default = true;
    } else {
        explicit_bzero(t->default_cookie, sizeof t->default_cookie);
        t->has_default = false;
    }
    pthread_mutex_unlock(&t->lock);
    return 0;
}

static struct cookie_entry *find_entry(edi_cookies *t, const char *node)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(t->entries[i].node, node) == 0)
            return &t->entries[i];
    return NULL;
}

int edi_cookies_set(edi_cookies *t, const char *node, const char *cookie)
{
    if (t == NULL || node == NULL || node[0] == '\0')
        return edist_set_error(EDIST_EINVAL, "cookies: bad node");
    if (cookie != NULL) {
        int rc = edi_cookie_check(cookie);
        if (rc < 0)
            return rc;
    }
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    struct cookie_entry *e = find_entry(t, node);
    if (cookie == NULL) {
        if (e != NULL) {
            free(e->node);
            explicit_bzero(e->cookie, sizeof e->cookie);
            *e = t->entries[--t->count];
        }
    } else if (e != NULL) {
        strcpy(e->cookie, cookie);
    } else if (t->count >= EDI_COOKIES_MAX_NODES) {
        rc = edist_set_error(EDIST_ENOMEM, "cookies: more than %d nodes",
                             EDI_COOKIES_MAX_NODES);
    } else {
        if (t->count == t->capacity) {
            size_t ncap = t->capacity ? t->capacity * 2 : 8;
            struct cookie_entry *ne = realloc(t->entries, ncap * sizeof *ne);
            if (ne == NULL) {
                rc = edist_set_error(EDIST_ENOMEM, "cookies: out of memory");
                goto out;
            }
            t->entries = ne;
            t->capacity = ncap;
        }
        char *dup = strdup(node);
        if (dup == NULL) {
            rc = edist_set_error(EDIST_ENOMEM, "cookies: out of memory");
            goto out;
        }
        e = &t->entries[t->count++];
        e->node = dup;
        strcpy(e->cookie, cookie);
    }
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int edi_cookies_get(edi_cookies *t, const char *node, char *buf, size_t cap)
{
    if (t == NULL || buf == NULL)
        return edist_set_error(EDIST_EINVAL, "cookies: bad argument");
    int rc;
    pthread_mutex_lock(&t->lock);
    const char *c = NULL;
    struct cookie_entry *e = node != NULL ? find_entry(t, node) : NULL;
    if (e != NULL)
        c = e->cookie;
    else if (t->has_default)
        c = t->default_cookie;
    if (c == NULL) {
        rc = edist_set_error(EDIST_ENOTFOUND, "no cookie for node %s",
                             node != NULL ? node : "(default)");
    } else {
        size_t len = strlen(c);
        if (len + 1 > cap) {
            rc = edist_set_error(EDIST_ENOSPC,
                                 "cookies: buffer of %zu bytes too small", cap);
        } else {
            memcpy(buf, c, len + 1);
            rc = (int)len;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

bool edi_cookies_has_node(edi_cookies *t, const char *node)
{
    if (t == NULL || node == NULL)
        return false;
    pthread_mutex_lock(&t->lock);
    bool has = find_entry(t, node) != NULL;
    pthread_mutex_unlock(&t->lock);
    return has;
}
