/* SPDX-License-Identifier: Apache-2.0 */
/* The EAL, once per process (see dpdk.h). */
/* rte_intr_instance_alloc and its setters, the only way to give EAL's
 * interrupt thread a descriptor of ours, are still experimental in 22.11. */
#define ALLOW_EXPERIMENTAL_API
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_interrupts.h>
#include <rte_lcore.h>
#include <rte_log.h>

#include "dataplane/dpdk/dpdk.h"
#include "dataplane/dpdk/dpdk_internal.h"
#include "edist/error.h"

#define EAL_ARGS_MAX 64
#define EAL_LINE_BYTES 2048
#define DPDK_LOG_KEEP_BYTES 512
#define NO_HUGE_MEMORY_MB_DEFAULT 512u
#define LOG_LEVEL_DEFAULT 4u /* RTE_LOG_ERR */

enum eal_state { EAL_NEW, EAL_UP, EAL_FAILED, EAL_CLEANED };

static pthread_mutex_t eal_lock = PTHREAD_MUTEX_INITIALIZER;
static enum eal_state eal_state = EAL_NEW;
static int eal_error;
static char eal_error_text[600];
static char eal_user_args[EAL_LINE_BYTES];
static char eal_line[EAL_LINE_BYTES];

/* DPDK's log stream: every line goes to the configured sink; the last one
 * is kept, for the sentence of a failed init. Written from any DPDK
 * thread, hence the lock. */
static pthread_mutex_t dpdk_log_lock = PTHREAD_MUTEX_INITIALIZER;
static edi_log dpdk_log_sink;
static char dpdk_log_last[DPDK_LOG_KEEP_BYTES];
static char dpdk_log_partial[DPDK_LOG_KEEP_BYTES];
static size_t dpdk_log_partial_len;
static FILE *dpdk_log_stream;

static void dpdk_log_line_done(void)
{
    /* Drop the trailing blanks DPDK leaves, keep the line. */
    while (dpdk_log_partial_len > 0 &&
           (dpdk_log_partial[dpdk_log_partial_len - 1] == ' ' ||
            dpdk_log_partial[dpdk_log_partial_len - 1] == '\r'))
        dpdk_log_partial_len--;
    dpdk_log_partial[dpdk_log_partial_len] = '\0';
    if (dpdk_log_partial_len > 0) {
        memcpy(dpdk_log_last, dpdk_log_partial, dpdk_log_partial_len + 1);
        edi_logf(&dpdk_log_sink, EDIST_LOG_WARNING, "dpdk: %s", dpdk_log_partial);
    }
    dpdk_log_partial_len = 0;
}

static ssize_t dpdk_log_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    pthread_mutex_lock(&dpdk_log_lock);
    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            dpdk_log_line_done();
        } else if (dpdk_log_partial_len + 1 < sizeof(dpdk_log_partial)) {
            dpdk_log_partial[dpdk_log_partial_len++] = buf[i];
        }
    }
    pthread_mutex_unlock(&dpdk_log_lock);
    return (ssize_t)size;
}

void edi_dpdk_log_last(char *out, size_t cap)
{
    pthread_mutex_lock(&dpdk_log_lock);
    if (dpdk_log_partial_len > 0)
        dpdk_log_line_done();
    snprintf(out, cap, "%s", dpdk_log_last);
    dpdk_log_last[0] = '\0';
    pthread_mutex_unlock(&dpdk_log_lock);
}

static bool has_arg(char **argv, int argc, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
            return true;
    return false;
}

/* Hugepages usable: some free in /proc/meminfo and a hugetlbfs mounted.
 * (--in-memory needs no mount, but DPDK's hugepage discovery does.) */
static bool hugepages_usable(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return false;
    char line[256];
    long free_pages = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "HugePages_Free: %ld", &free_pages) == 1)
            break;
    fclose(f);
    if (free_pages <= 0)
        return false;
    f = fopen("/proc/mounts", "r");
    if (f == NULL)
        return false;
    bool mounted = false;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, " hugetlbfs ") != NULL)
            mounted = true;
    fclose(f);
    return mounted;
}

/* "0@(a,b,...)": lcore 0 is this thread on all the CPUs it may run on,
 * so EAL pins nothing and the thread keeps its affinity. */
static int lcores_arg(char *out, size_t cap)
{
    cpu_set_t set;
    if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) != 0)
        return -1;
    size_t len = (size_t)snprintf(out, cap, "--lcores=0@(");
    bool first = true;
    for (int cpu = 0; cpu < CPU_SETSIZE && len < cap; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%d", first ? "" : ",", cpu);
        first = false;
    }
    if (first || len + 2 > cap)
        return -1;
    snprintf(out + len, cap - len, ")");
    return 0;
}

/* Splits `args` (blank-separated) into argv[1..] of storage. */
static int split_args(const char *args, char *storage, size_t storage_cap, char **argv,
                      int argc, int argc_max)
{
    if (args == NULL)
        return argc;
    if (strlen(args) + 1 > storage_cap)
        return -1;
    strcpy(storage, args);
    for (char *save = NULL, *tok = strtok_r(storage, " \t\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\n", &save)) {
        if (argc >= argc_max)
            return -1;
        argv[argc++] = tok;
    }
    return argc;
}

/* DPDK makes a runtime directory per file prefix even when it writes
 * nothing in it: removed at cleanup or failure when empty (rmdir fails
 * otherwise, as it should). */
static char eal_runtime_dir[512];

/* The value of key=... in a --vdev's comma-separated options, into out
 * ("" when absent). */
static void vdev_option(const char *opts, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *p = opts; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t n = len - klen - 1;
            if (n >= cap)
                n = cap - 1;
            memcpy(out, p + klen + 1, n);
            out[n] = '\0';
            return;
        }
        p = end != NULL ? end + 1 : NULL;
    }
}

/* A memif server's socket file outlives a server that was killed, and
 * DPDK cannot listen on it again ("Address already in use": a restarted
 * node would stay on TCP). Before the EAL probes the devices, such a file
 * that nobody listens on (connect refused) is removed, with a line; one
 * that answers belongs to a live server and stays. */
static void memif_stale_sockets_remove(char **argv, int argc)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (strncmp(argv[i], "--vdev=", 7) == 0)
            v = argv[i] + 7;
        else if (strcmp(argv[i], "--vdev") == 0 && i + 1 < argc)
            v = argv[i + 1];
        if (v == NULL || strncmp(v, "net_memif", 9) != 0)
            continue;
        enum { SUN_PATH_BYTES = sizeof(((struct sockaddr_un *)0)->sun_path) };
        char role[16], abstract[8], path[SUN_PATH_BYTES + 1];
        vdev_option(v, "role", role, sizeof role);
        vdev_option(v, "socket-abstract", abstract, sizeof abstract);
        vdev_option(v, "socket", path, sizeof path);
        /* Servers named as such only (memif's default role is client: a
         * client must never remove its server's socket), with a path of
         * their own (the default socket is abstract), whole (DPDK refuses
         * a longer one anyway). */
        if (strcmp(role, "server") != 0 || strcmp(abstract, "no") != 0 || path[0] == '\0' ||
            strlen(path) >= SUN_PATH_BYTES)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        /* non-blocking: a live server that does not accept (stopped) must
         * not hold this node's start; only a refusal means nobody there */
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, path, strlen(path) + 1);
        int crc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        int err = errno;
        close(fd);
        if (crc != 0 && err == ECONNREFUSED && unlink(path) == 0)
            edi_logf(&dpdk_log_sink, EDIST_LOG_WARNING,
                     "dpdk: memif socket %s was left by a server that is gone: removed",
                     path);
    }
}

static void runtime_dir_note(char **argv, int argc)
{
    const char *prefix = "rte";
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "--file-prefix=", 14) == 0)
            prefix = argv[i] + 14;
    const char *base = "/var/run";
    if (getuid() != 0) {
        base = getenv("XDG_RUNTIME_DIR");
        if (base == NULL)
            base = "/tmp";
    }
    snprintf(eal_runtime_dir, sizeof(eal_runtime_dir), "%s/dpdk/%s", base, prefix);
}

static void runtime_dir_remove(void)
{
    if (eal_runtime_dir[0] == '\0')
        return;
    /* Not its parent dpdk/: another process may be between making it
     * and making its own directory in it. */
    (void)rmdir(eal_runtime_dir);
    eal_runtime_dir[0] = '\0';
}

static int eal_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int eal_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(eal_error_text, sizeof(eal_error_text), fmt, ap);
    va_end(ap);
    eal_error = err;
    eal_state = EAL_FAILED;
    return edist_set_error(err, "%s", eal_error_text);
}

/* ---- work on EAL's interrupt thread -------------------------------------------
 * PMDs run their control path on EAL's interrupt thread, one callback at
 * a time: memif its control socket, and its whole teardown when the peer
 * goes (memif_socket.c: memif_intr_handler -> memif_disconnect). What must
 * not overlap that runs there too: a callback of ours, on an eventfd
 * registered once with EAL, runs one job per wake-up while its caller
 * waits. EAL's cleanup then parks the thread in that callback for good:
 * rte_eal_cleanup unmaps DPDK's memory without stopping the thread, and a
 * wake-up after that (a teardown still running, or its wait list rebuilt:
 * the list still holds memif's listener, which 22.11 never unregisters,
 * its handle in DPDK's memory) faulted. */

typedef struct interrupt_job {
    void (*fn)(void *);
    void *arg;
    bool park; /* stay there once done */
    bool done;
} interrupt_job;

static pthread_mutex_t interrupt_job_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t interrupt_done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t interrupt_done = PTHREAD_COND_INITIALIZER;
static interrupt_job *_Atomic interrupt_job_next;
static _Atomic int interrupt_job_fd = -1; /* -1: jobs run on the caller's thread */
static struct rte_intr_handle *interrupt_job_handle;

static void interrupt_job_ready(void *unused)
{
    (void)unused;
    uint64_t wakeups;
    (void)!read(atomic_load(&interrupt_job_fd), &wakeups, sizeof(wakeups));
    interrupt_job *job = atomic_exchange(&interrupt_job_next, NULL);
    if (job == NULL)
        return;
    job->fn(job->arg);
    bool park = job->park;
    pthread_mutex_lock(&interrupt_done_lock);
    job->done = true; /* the caller's frame: not touched after this */
    pthread_cond_broadcast(&interrupt_done);
    pthread_mutex_unlock(&interrupt_done_lock);
    while (park)
        pause();
}

/* Under eal_lock, once the EAL is up. On failure jobs run on their
 * caller's thread, as before this existed. */
static void interrupt_jobs_start(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return;
    interrupt_job_handle = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
    if (interrupt_job_handle == NULL || rte_intr_fd_set(interrupt_job_handle, fd) != 0 ||
        rte_intr_type_set(interrupt_job_handle, RTE_INTR_HANDLE_EXT) != 0 ||
        rte_intr_callback_register(interrupt_job_handle, interrupt_job_ready, NULL) != 0) {
        rte_intr_instance_free(interrupt_job_handle);
        interrupt_job_handle = NULL;
        close(fd);
        return;
    }
    atomic_store(&interrupt_job_fd, fd);
}

static void interrupt_job_run(void (*fn)(void *), void *arg, bool park)
{
    if (atomic_load(&interrupt_job_fd) < 0 || rte_thread_is_intr()) {
        fn(arg);
        return;
    }
    interrupt_job job = {.fn = fn, .arg = arg, .park = park};
    pthread_mutex_lock(&interrupt_job_lock);
    atomic_store(&interrupt_job_next, &job);
    uint64_t one = 1;
    if (write(atomic_load(&interrupt_job_fd), &one, sizeof(one)) != sizeof(one)) {
        /* An eventfd refuses only at its 2^64-2 limit: not with one job. */
        atomic_store(&interrupt_job_next, NULL);
        pthread_mutex_unlock(&interrupt_job_lock);
        fn(arg);
        return;
    }
    pthread_mutex_lock(&interrupt_done_lock);
    while (!job.done)
        pthread_cond_wait(&interrupt_done, &interrupt_done_lock);
    pthread_mutex_unlock(&interrupt_done_lock);
    if (park)
        atomic_store(&interrupt_job_fd, -1); /* nothing will run there again */
    pthread_mutex_unlock(&interrupt_job_lock);
}

void edi_dpdk_on_interrupt_thread(void (*fn)(void *), void *arg)
{
    interrupt_job_run(fn, arg, false);
}

static void nothing(void *unused) { (void)unused; }

static int eal_start(const edi_dpdk_eal_config *cfg)
{
    static char storage[EAL_LINE_BYTES];
    static char extra[8][128];
    /* rte_eal_init keeps pointers into argv (and reorders it): it lives
     * as long as the process. */
    static char *argv[EAL_ARGS_MAX + 1];
    int argc = 0;
    argv[argc++] = "edist";
    argc = split_args(cfg->args, storage, sizeof(storage), argv, argc, EAL_ARGS_MAX - 12);
    if (argc < 0)
        return eal_fail(EDIST_EINVAL, "DPDK EAL did not start: too many or too long EAL arguments");

    int n_extra = 0;
    if (!has_arg(argv, argc, "--file-prefix")) {
        snprintf(extra[n_extra], sizeof(extra[0]), "--file-prefix=edist-%ld", (long)getpid());
        argv[argc++] = extra[n_extra++];
    }
    bool no_huge = has_arg(argv, argc, "--no-huge");
    if (!no_huge && !hugepages_usable()) {
        argv[argc++] = "--no-huge";
        no_huge = true;
    }
    /* No files shared with other processes: --in-memory with hugepages;
     * --no-huge is DPDK's legacy memory mode, which refuses --in-memory,
     * so --no-shconf there (same effect on the config files and the IPC
     * socket). Both only when the user chose no process model. */
    bool shared_model = has_arg(argv, argc, "--in-memory") ||
                        has_arg(argv, argc, "--no-shconf") ||
                        has_arg(argv, argc, "--proc-type");
    if (!shared_model)
        argv[argc++] = no_huge ? "--no-shconf" : "--in-memory";
    bool telemetry = has_arg(argv, argc, "--telemetry");
    if (no_huge) {
        if (!has_arg(argv, argc, "--single-file-segments"))
            argv[argc++] = "--single-file-segments";
        if (!has_arg(argv, argc, "-m") && !has_arg(argv, argc, "--socket-mem")) {
            uint32_t mb = cfg->no_huge_memory_mb ? cfg->no_huge_memory_mb
                                                 : NO_HUGE_MEMORY_MB_DEFAULT;
            argv[argc++] = "-m";
            snprintf(extra[n_extra], sizeof(extra[0]), "%u", mb);
            argv[argc++] = extra[n_extra++];
        }
    }
    if (!has_arg(argv, argc, "--lcores") && !has_arg(argv, argc, "-l") &&
        !has_arg(argv, argc, "-c")) {
        if (lcores_arg(extra[n_extra], sizeof(extra[0])) == 0)
            argv[argc++] = extra[n_extra++];
    }
    if (!has_arg(argv, argc, "--log-level")) {
        snprintf(extra[n_extra], sizeof(extra[0]), "--log-level=%u",
                 cfg->log_level ? cfg->log_level : LOG_LEVEL_DEFAULT);
        argv[argc++] = extra[n_extra++];
    }
    if (!has_arg(argv, argc, "--no-telemetry") && !has_arg(argv, argc, "--telemetry"))
        argv[argc++] = "--no-telemetry";
    argv[argc] = NULL;

    size_t len = 0;
    eal_line[0] = '\0';
    for (int i = 1; i < argc && len < sizeof(eal_line); i++)
        len += (size_t)snprintf(eal_line + len, sizeof(eal_line) - len, "%s%s",
                                i > 1 ? " " : "", argv[i]);
    runtime_dir_note(argv, argc);

    /* DPDK's lines to our sink from the start (rte_eal_init keeps a
     * stream set before it). */
    pthread_mutex_lock(&dpdk_log_lock);
    dpdk_log_sink = cfg->log != NULL ? *cfg->log : (edi_log){0};
    pthread_mutex_unlock(&dpdk_log_lock);
    if (dpdk_log_stream == NULL) {
        cookie_io_functions_t io = {.write = dpdk_log_write};
        dpdk_log_stream = fopencookie(NULL, "w", io);
        if (dpdk_log_stream != NULL) {
            setvbuf(dpdk_log_stream, NULL, _IOLBF, 0);
            rte_openlog_stream(dpdk_log_stream);
        }
    }

    memif_stale_sockets_remove(argv, argc);
    int rc = rte_eal_init(argc, argv);
    if (rc < 0) {
        int why = rte_errno;
        char last[DPDK_LOG_KEEP_BYTES];
        edi_dpdk_log_last(last, sizeof(last));
        runtime_dir_remove();
        if (last[0] != '\0')
            return eal_fail(EDIST_EIO, "DPDK EAL did not start (%s): %s", rte_strerror(why),
                            last);
        return eal_fail(EDIST_EIO, "DPDK EAL did not start: %s", rte_strerror(why));
    }
    eal_state = EAL_UP;
    interrupt_jobs_start();
    /* Nothing goes in the runtime directory when no files are shared and
     * telemetry is off: gone now, it cannot outlive a killed process. */
    if (!shared_model && !telemetry)
        runtime_dir_remove();
    return 0;
}

int edi_dpdk_eal_init(const edi_dpdk_eal_config *cfg)
{
    static const edi_dpdk_eal_config none;
    if (cfg == NULL)
        cfg = &none;
    const char *args = cfg->args != NULL ? cfg->args : "";
    pthread_mutex_lock(&eal_lock);
    int rc;
    switch (eal_state) {
    case EAL_NEW:
        snprintf(eal_user_args, sizeof(eal_user_args), "%s", args);
        rc = eal_start(cfg);
        break;
    case EAL_UP:
        rc = strcmp(args, eal_user_args) == 0
                 ? 0
                 : edist_set_error(EDIST_EINVAL,
                                   "DPDK EAL already started with other arguments (%s)",
                                   eal_user_args);
        break;
    case EAL_FAILED:
        rc = edist_set_error(eal_error, "%s", eal_error_text);
        break;
    default:
        rc = edist_set_error(EDIST_ECLOSED,
                             "DPDK EAL was cleaned up and cannot start again in this process");
        break;
    }
    pthread_mutex_unlock(&eal_lock);
    return rc;
}

bool edi_dpdk_eal_up(void)
{
    pthread_mutex_lock(&eal_lock);
    bool up = eal_state == EAL_UP;
    pthread_mutex_unlock(&eal_lock);
    return up;
}

const char *edi_dpdk_eal_args(void) { return eal_line; }

int edi_dpdk_thread_register(void)
{
    if (!edi_dpdk_eal_up())
        return edist_set_error(EDIST_EINVAL, "DPDK EAL not started");
    if (rte_lcore_id() != LCORE_ID_ANY)
        return 0;
    if (rte_thread_register() != 0)
        return edist_set_error(EDIST_ENOMEM, "no DPDK lcore left for this thread: %s",
                               rte_strerror(rte_errno));
    return 0;
}

void edi_dpdk_thread_unregister(void)
{
    /* lcore 0 is EAL's main lcore: never given back. */
    if (rte_lcore_id() != LCORE_ID_ANY && rte_lcore_id() != rte_get_main_lcore())
        rte_thread_unregister();
}

void edi_dpdk_eal_cleanup(void)
{
    pthread_mutex_lock(&eal_lock);
    if (eal_state == EAL_UP) {
        interrupt_job_run(nothing, NULL, true);
        rte_eal_cleanup();
        runtime_dir_remove();
    }
    if (eal_state != EAL_NEW)
        eal_state = EAL_CLEANED;
    pthread_mutex_unlock(&eal_lock);
}
