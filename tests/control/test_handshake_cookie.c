/* SPDX-License-Identifier: Apache-2.0 */
/* Cookie files (creation, modes, content rules, XDG fallback), cross-checked
 * against what a real erl reads from the same file, and the per-node cookie
 * table. HOME and XDG_CONFIG_HOME point into temp dirs throughout. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/cookie.h"
#include "edist/error.h"

static char root[256];

static void rm_rf(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", path, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

/* A fresh home dir under root for each test. */
static void fresh_home(char *home, size_t cap, const char *tag)
{
    snprintf(home, cap, "%s/%s", root, tag);
    rm_rf(home);
    assert_int_equal(mkdir(home, 0700), 0);
}

static void write_file(const char *path, const char *data, size_t len,
                       mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/edist-h8-cookie-XXXXXX");
    if (mkdtemp(root) == NULL)
        return -1;
    /* Never look at the real user's files. */
    char xdg[PATH_MAX + 16];
    snprintf(xdg, sizeof xdg, "%s/xdg-unused", root);
    setenv("XDG_CONFIG_HOME", xdg, 1);
    setenv("HOME", root, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(root);
    return 0;
}

static void test_create(void **state)
{
    (void)state;
    char home[PATH_MAX], path[PATH_MAX + 32], c1[256], c2[256];
    fresh_home(home, sizeof home, "create");
    assert_int_equal(edi_cookie_load(home, c1, sizeof c1), 20);
    for (int i = 0; i < 20; i++)
        assert_true(c1[i] >= 'A' && c1[i] <= 'Z');
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0400);
    assert_int_equal(st.st_size, 20);
    /* Read back, not re-created. */
    assert_int_equal(edi_cookie_load(home, c2, sizeof c2), 20);
    assert_string_equal(c1, c2);
    /* A second home gets a different cookie. */
    fresh_home(home, sizeof home, "create2");
    assert_int_equal(edi_cookie_load(home, c2, sizeof c2), 20);
    assert_string_not_equal(c1, c2);
    /* NULL home means $HOME. */
    setenv("HOME", home, 1);
    assert_int_equal(edi_cookie_load(NULL, c1, sizeof c1), 20);
    assert_string_equal(c1, c2);
    setenv("HOME", root, 1);
}

static void test_modes(void **state)
{
    (void)state;
    char home[PATH_MAX], path[PATH_MAX + 32], c[256];
    fresh_home(home, sizeof home, "modes");
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    static const mode_t refused[] = {0644, 0640, 0604, 0440,
                                     0404, 0402, 0420, 0600 | 0001};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        write_file(path, "GOODCOOKIE", 10, refused[i]);
        assert_int_equal(edi_cookie_load(home, c, sizeof c), EDIST_EAUTH);
        assert_non_null(
            strstr(edist_last_error(), "must be accessible by owner only"));
        assert_non_null(strstr(edist_last_error(), path));
    }
    /* The refused file was left alone. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0601);
    static const mode_t accepted[] = {0400, 0600, 0700};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        write_file(path, "GOODCOOKIE", 10, accepted[i]);
        assert_int_equal(edi_cookie_load(home, c, sizeof c), 10);
        assert_string_equal(c, "GOODCOOKIE");
    }
}

static void test_not_regular(void **state)
{
    (void)state;
    char home[PATH_MAX], path[PATH_MAX + 32], c[256];
    fresh_home(home, sizeof home, "notreg");
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(edi_cookie_load(home, c, sizeof c), EDIST_EAUTH);
    assert_non_null(strstr(edist_last_error(), "not a regular file"));
    rmdir(path);
    /* A FIFO must be refused, not block us. */
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(edi_cookie_load(home, c, sizeof c), EDIST_EAUTH);
    assert_non_null(strstr(edist_last_error(), "not a regular file"));
    unlink(path);
    /* Unreadable by us: an OS error, not a silent re-creation. */
    if (geteuid() != 0) {
        write_file(path, "X", 1, 0000);
        assert_int_equal(edi_cookie_load(home, c, sizeof c), EDIST_EIO);
    }
}

static void test_content(void **state)
{
    (void)state;
    char home[PATH_MAX], path[PATH_MAX + 32], c[256];
    fresh_home(home, sizeof home, "content");
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    static const struct {
        const char *data;
        int rc;
        const char *cookie;
    } cases[] = {
        {"ABC\n", 3, "ABC"},
        {"ABC\r\n\n \n", 3, "ABC"},
        {"ABC", 3, "ABC"},
        /* As erl: spaces before the newline belong to the cookie. */
        {"A B  \n", 5, "A B  "},
        {"~!@#$%^&*()\n", 11, "~!@#$%^&*()"},
        {"", EDIST_EAUTH, NULL},
        {"\n\n", EDIST_EAUTH, NULL},
        {"AB\tC", EDIST_EAUTH, NULL},
        {"AB\nCD", EDIST_EAUTH, NULL},
        {"AB\x80", EDIST_EAUTH, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].data, strlen(cases[i].data), 0400);
        int rc = edi_cookie_load(home, c, sizeof c);
        assert_int_equal(rc, cases[i].rc);
        if (rc > 0)
            assert_string_equal(c, cases[i].cookie);
    }
    /* NUL inside. */
    write_file(path, "AB\0CD", 5, 0400);
    assert_int_equal(edi_cookie_load(home, c, sizeof c), EDIST_EAUTH);
    /* 255 bytes is the most an atom holds; 256 is refused. */
    char big[300];
    memset(big, 'Q', sizeof big);
    write_file(path, big, 255, 0400);
    assert_int_equal(edi_cookie_load(home, c, sizeof c), 255);
    write_file(path, big, 256, 0400);
    assert_int_equal(edi_cookie_load(home, c, sizeof c), EDIST_EAUTH);
    /* Buffer too small. */
    write_file(path, "ABCDEF", 6, 0400);
    assert_int_equal(edi_cookie_load(home, c, 6), EDIST_ENOSPC);
    assert_int_equal(edi_cookie_load(home, c, 7), 6);
    assert_int_equal(edi_cookie_load(home, NULL, 7), EDIST_EINVAL);
}

static void test_xdg(void **state)
{
    (void)state;
    char home[PATH_MAX], xdg[PATH_MAX + 32], dir[PATH_MAX + 64],
        path[PATH_MAX + 96], c[256];
    fresh_home(home, sizeof home, "xdg");
    snprintf(xdg, sizeof xdg, "%s/config", home);
    snprintf(dir, sizeof dir, "%s/erlang", xdg);
    assert_int_equal(mkdir(xdg, 0700), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/.erlang.cookie", dir);
    write_file(path, "XDGCOOKIE\n", 10, 0400);
    const char *saved = getenv("XDG_CONFIG_HOME");
    char keep[PATH_MAX + 16];
    snprintf(keep, sizeof keep, "%s", saved ? saved : "");
    setenv("XDG_CONFIG_HOME", xdg, 1);
    assert_int_equal(edi_cookie_load(home, c, sizeof c), 9);
    assert_string_equal(c, "XDGCOOKIE");
    /* ...and no home cookie was created. */
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    assert_int_equal(access(path, F_OK), -1);
    /* The home file wins when both exist. */
    write_file(path, "HOMECOOKIE", 10, 0400);
    assert_int_equal(edi_cookie_load(home, c, sizeof c), 10);
    assert_string_equal(c, "HOMECOOKIE");
    setenv("XDG_CONFIG_HOME", keep, 1);
}

struct racer {
    const char *home;
    char cookie[256];
    int rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    r->rc = edi_cookie_load(r->home, r->cookie, sizeof r->cookie);
    return NULL;
}

static void test_concurrent_create(void **state)
{
    (void)state;
    char home[PATH_MAX];
    fresh_home(home, sizeof home, "race");
    struct racer r[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        r[i].home = home;
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].rc, 20);
        assert_string_equal(r[i].cookie, r[0].cookie);
    }
}

/* ---- what real erl reads ---- */

/* Run erl with HOME=home and return the cookie it prints (or "" if it
 * failed). Distribution is started without epmd and without listening. */
static void erl_cookie(const char *home, char *out, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    char sname[64];
    snprintf(sname, sizeof sname, "h8cookie%d", (int)getpid());
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        close(p[0]);
        setenv("HOME", home, 1);
        /* No epmd is wanted; an unused port keeps it off 4369 anyway. */
        setenv("ERL_EPMD_PORT", "1", 1);
        execlp("erl", "erl", "-noshell", "-start_epmd", "false", "-dist_listen",
               "false", "-sname", sname, "-eval",
               "io:format(\"COOKIE[~s]~n\", [erlang:get_cookie()]), halt().",
               (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[1024];
    size_t have = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int n = poll(&pf, 1, 1000);
        if (n > 0) {
            ssize_t r = read(p[0], buf + have, sizeof buf - 1 - have);
            if (r <= 0)
                break;
            have += (size_t)r;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 20)
            break;
    }
    buf[have] = '\0';
    close(p[0]);
    kill(pid, SIGKILL); /* normally gone already: it halted */
    waitpid(pid, NULL, 0);
    out[0] = '\0';
    char *s = strstr(buf, "COOKIE[");
    char *e = s ? strstr(s, "]\n") : NULL;
    if (s && e && (size_t)(e - s - 7) < cap) {
        memcpy(out, s + 7, (size_t)(e - s - 7));
        out[e - s - 7] = '\0';
    }
}

static void test_same_as_erl(void **state)
{
    (void)state;
    char home[PATH_MAX], path[PATH_MAX + 32], ours[256], theirs[256];
    /* A cookie we create, erl reads. */
    fresh_home(home, sizeof home, "erl1");
    assert_int_equal(edi_cookie_load(home, ours, sizeof ours), 20);
    erl_cookie(home, theirs, sizeof theirs);
    assert_string_equal(ours, theirs);
    /* A cookie erl creates, we read (and accept its mode). */
    fresh_home(home, sizeof home, "erl2");
    erl_cookie(home, theirs, sizeof theirs);
    assert_int_equal(strlen(theirs), 20);
    assert_int_equal(edi_cookie_load(home, ours, sizeof ours), 20);
    assert_string_equal(ours, theirs);
    /* Trailing spaces before the newline: both keep them. */
    fresh_home(home, sizeof home, "erl3");
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    write_file(path, "SP ACE  \r\n", 10, 0400);
    erl_cookie(home, theirs, sizeof theirs);
    assert_int_equal(edi_cookie_load(home, ours, sizeof ours), 8);
    assert_string_equal(ours, theirs);
    /* And both refuse 0644. */
    chmod(path, 0644);
    erl_cookie(home, theirs, sizeof theirs);
    assert_string_equal(theirs, "");
    assert_int_equal(edi_cookie_load(home, ours, sizeof ours), EDIST_EAUTH);
}

/* ---- per-node table ---- */

static void test_table(void **state)
{
    (void)state;
    edi_cookies *t;
    char c[256];
    assert_int_equal(edi_cookies_new("", &t), EDIST_EINVAL);
    assert_int_equal(edi_cookies_new(NULL, &t), 0);
    assert_int_equal(edi_cookies_get(t, "a@h", c, sizeof c), EDIST_ENOTFOUND);
    assert_int_equal(edi_cookies_set_default(t, "DEF"), 0);
    assert_int_equal(edi_cookies_get(t, "a@h", c, sizeof c), 3);
    assert_string_equal(c, "DEF");
    assert_int_equal(edi_cookies_get(t, NULL, c, sizeof c), 3);
    assert_int_equal(edi_cookies_set(t, "a@h", "ACOOKIE"), 0);
    assert_true(edi_cookies_has_node(t, "a@h"));
    assert_false(edi_cookies_has_node(t, "b@h"));
    assert_int_equal(edi_cookies_get(t, "a@h", c, sizeof c), 7);
    assert_string_equal(c, "ACOOKIE");
    assert_int_equal(edi_cookies_get(t, "b@h", c, sizeof c), 3);
    assert_int_equal(edi_cookies_get(t, "a@h", c, 4), EDIST_ENOSPC);
    /* Replace, then forget. */
    assert_int_equal(edi_cookies_set(t, "a@h", "NEW"), 0);
    assert_int_equal(edi_cookies_get(t, "a@h", c, sizeof c), 3);
    assert_string_equal(c, "NEW");
    assert_int_equal(edi_cookies_set(t, "a@h", NULL), 0);
    assert_false(edi_cookies_has_node(t, "a@h"));
    assert_int_equal(edi_cookies_set(t, "a@h", NULL), 0);
    /* Bad arguments. */
    assert_int_equal(edi_cookies_set(t, "", "X"), EDIST_EINVAL);
    assert_int_equal(edi_cookies_set(t, NULL, "X"), EDIST_EINVAL);
    assert_int_equal(edi_cookies_set(t, "a@h", ""), EDIST_EINVAL);
    char big[300];
    memset(big, 'x', sizeof big);
    big[256] = '\0';
    assert_int_equal(edi_cookies_set(t, "a@h", big), EDIST_EINVAL);
    big[255] = '\0';
    assert_int_equal(edi_cookies_set(t, "a@h", big), 0);
    /* Bounded size. */
    char node[32];
    int rc = 0;
    for (int i = 0; i < EDI_COOKIES_MAX_NODES + 1 && rc == 0; i++) {
        snprintf(node, sizeof node, "n%d@h", i);
        rc = edi_cookies_set(t, node, "C");
    }
    assert_int_equal(rc, EDIST_ENOMEM);
    /* Removing from the middle keeps the others. */
    assert_int_equal(edi_cookies_set(t, "n5@h", NULL), 0);
    assert_int_equal(edi_cookies_get(t, "n6@h", c, sizeof c), 1);
    assert_int_equal(edi_cookies_get(t, "n5@h", c, sizeof c), 3);
    edi_cookies_free(t);
    edi_cookies_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_not_regular),
        cmocka_unit_test(test_content),
        cmocka_unit_test(test_xdg),
        cmocka_unit_test(test_concurrent_create),
        cmocka_unit_test(test_same_as_erl),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
