/* check_perf.c - `quorumfs check perf` (check_perf.h), the idea of
 * etcdctl's `check perf`: in under a minute, whether the cluster behind a
 * mount, seen from this host, is fast enough.
 *
 * 1. The disk: SYNC_COUNT appends of SYNC_BYTES to a temporary file in
 *    the node's data dir, each followed by fdatasync (what every raft log
 *    append waits for), timed one by one; the file is removed.
 * 2. The cluster: W writers (threads) for T seconds, each rewriting its
 *    own FILES_PER_WRITER files of FILE_BYTES in a directory of its own
 *    under the mount (open, write, close: one replicated update each,
 *    committed at close), every close() timed; then the files and the
 *    directory are removed.
 * PASS when nothing failed and every figure is within the load's
 * thresholds (struct load); else FAIL with one line per reason. The
 * figures are printed either way. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check_perf.h"
#include "ctl_internal.h"

enum {
    SYNC_COUNT = 200,       /* fdatasyncs timed */
    SYNC_BYTES = 4096,      /* appended before each */
    FILE_BYTES = 1024,      /* one update's content */
    FILES_PER_WRITER = 8,   /* files each writer rewrites in turn */
    WRITERS_MAX = 64,       /* threads */
    SAMPLES_MAX = 1 << 20,  /* close() latencies kept per writer */
    SECONDS_MAX = 3600,     /* --seconds */
    SYNC_P99_MAX_US = 10000 /* fdatasync p99: etcd's advice for its WAL */
};

/* A load and what it must achieve. */
struct load {
    char name;
    unsigned writers;
    unsigned seconds;
    unsigned min_writes_per_s; /* all writers together */
    unsigned close_p99_max_ms;
};

static const struct load loads[] = {
    {'s', 2, 10, 50, 100},
    {'m', 8, 20, 200, 200},
    {'l', 32, 30, 500, 500},
};

void check_usage(FILE* out)
{
    fprintf(
        out,
        "Usage: quorumfs check perf --mount M [--load s|m|l] [--seconds S]\n"
        "\n"
        "Whether the cluster behind the quorumfs mount M, seen from this\n"
        "host, is fast enough (etcdctl check perf's idea): the fdatasync\n"
        "latency of the node's data dir disk (%d syncs of %d bytes in a\n"
        "temporary file there), then a write load through M: W writers\n"
        "each rewriting %d files of %d bytes in a directory of its own\n"
        "for T seconds, every close() (the commit) timed; the files are\n"
        "removed after. Run it on a node's host, not on a busy cluster.\n"
        "\n"
        "  --mount M        the quorumfs mount to load (its node's data\n"
        "                   dir is read from M/.cluster/status)\n"
        "  --load L         s: 2 writers, 10 s, at least 50 writes/s,\n"
        "                   close() p99 at most 100 ms (default);\n"
        "                   m: 8 writers, 20 s, 200 writes/s, 200 ms;\n"
        "                   l: 32 writers, 30 s, 500 writes/s, 500 ms\n"
        "  --seconds S      run the load S seconds instead (1 to %d)\n"
        "PASS also needs no failed write and an fdatasync p99 of at most\n"
        "%d ms. Exit status: 0 PASS, 1 FAIL (each reason on a line), 2 for\n"
        "bad usage.\n",
        SYNC_COUNT, SYNC_BYTES, FILES_PER_WRITER, FILE_BYTES, SECONDS_MAX,
        SYNC_P99_MAX_US / 1000);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void* a, const void* b)
{
    int64_t x = *(const int64_t*)a, y = *(const int64_t*)b;
    return (x > y) - (x < y);
}

/* Percentile p (0 to 100) of n sorted samples. */
static int64_t pct(const int64_t* v, size_t n, unsigned p)
{
    size_t i = n * p / 100;
    return n == 0 ? 0 : v[i < n ? i : n - 1];
}

static void print_dist(const char* what, int64_t* v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_i64);
    printf("%s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%zu samples)\n", what,
           (double)pct(v, n, 50) / 1000, (double)pct(v, n, 99) / 1000,
           n > 0 ? (double)v[n - 1] / 1000 : 0.0, n);
}

/* ---- the disk ---- */

/* fdatasync latencies of SYNC_COUNT appends in dir into us[] (sorted);
 * 0, or -errno with a message printed. */
static int disk_check(const char* dir, int64_t* us)
{
    char path[PATH_MAX + 64];
    static char block[SYNC_BYTES];
    snprintf(path, sizeof(path), "%s/.check-perf-%ld.tmp", dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        fprintf(stderr, "quorumfs check perf: %s: %s\n", path, strerror(err));
        return -err;
    }
    memset(block, 'q', sizeof(block));
    int rv = 0;
    for (int i = 0; i < SYNC_COUNT && rv == 0; i++) {
        int64_t t0 = now_us();
        if (pwrite(fd, block, sizeof(block), (off_t)i * SYNC_BYTES) !=
                (ssize_t)sizeof(block) ||
            fdatasync(fd) != 0) {
            rv = errno != 0 ? -errno : -EIO;
            fprintf(stderr, "quorumfs check perf: %s: %s\n", path,
                    strerror(-rv));
        }
        us[i] = now_us() - t0;
    }
    close(fd);
    unlink(path);
    return rv;
}

/* ---- the write load ---- */

struct writer {
    pthread_t thread;
    char dir[PATH_MAX + 16];
    int64_t until_us;
    int64_t* samples; /* close() latencies, SAMPLES_MAX */
    size_t n;         /* writes that succeeded */
    size_t failed;
    int first_err; /* errno of the first failure */
};

static void writer_fail(struct writer* w, int err)
{
    w->first_err = w->failed == 0 ? err : w->first_err;
    w->failed++;
}

static void* writer_main(void* arg)
{
    struct writer* w = arg;
    char path[PATH_MAX + 48];
    char data[FILE_BYTES];
    for (uint64_t k = 0; now_us() < w->until_us; k++) {
        snprintf(path, sizeof(path), "%s/f%u", w->dir,
                 (unsigned)(k % FILES_PER_WRITER));
        memset(data, 'a' + (int)(k % 26), sizeof(data));
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            writer_fail(w, errno);
            continue;
        }
        bool ok = write(fd, data, sizeof(data)) == (ssize_t)sizeof(data);
        int err = errno;
        int64_t t0 = now_us();
        int c = close(fd);
        int64_t dt = now_us() - t0;
        if (!ok || c != 0) {
            writer_fail(w, !ok ? err : errno);
            continue;
        }
        if (w->n < SAMPLES_MAX) {
            w->samples[w->n] = dt;
        }
        w->n++;
    }
    return NULL;
}

/* The writers' files and directories, and the top directory, removed. */
static void remove_load(const char* top, struct writer* ws, unsigned n)
{
    char path[PATH_MAX + 48];
    for (unsigned i = 0; i < n; i++) {
        for (unsigned k = 0; k < FILES_PER_WRITER; k++) {
            snprintf(path, sizeof(path), "%s/f%u", ws[i].dir, k);
            unlink(path);
        }
        rmdir(ws[i].dir);
    }
    if (rmdir(top) != 0 && errno != ENOENT) {
        fprintf(stderr, "quorumfs check perf: cannot remove %s: %s\n", top,
                strerror(errno));
    }
}

struct load_result {
    size_t writes, failed;
    int first_err;
    double seconds;
    int64_t close_p99_us;
};

/* Runs load l for seconds on mount mnt: 0 with *r set, or 1 with a
 * message printed (nothing could be started). */
static int run_load(const char* mnt,
                    const struct load* l,
                    unsigned seconds,
                    struct load_result* r)
{
    char top[PATH_MAX];
    struct writer* ws = calloc(l->writers, sizeof(*ws));
    int64_t* all = NULL;
    size_t total = 0;
    unsigned started = 0;
    int rv = 1;

    snprintf(top, sizeof(top), "%s/.quorumfs-check-perf-%ld", mnt,
             (long)getpid());
    if (ws == NULL) {
        fprintf(stderr, "quorumfs check perf: out of memory\n");
        return 1;
    }
    if (mkdir(top, 0755) != 0) {
        fprintf(stderr, "quorumfs check perf: cannot create %s: %s\n", top,
                strerror(errno));
        goto out;
    }
    int64_t t0 = now_us();
    for (unsigned i = 0; i < l->writers; i++) {
        struct writer* w = &ws[i];
        snprintf(w->dir, sizeof(w->dir), "%s/w%u", top, i);
        w->until_us = t0 + (int64_t)seconds * 1000000;
        w->samples = malloc(SAMPLES_MAX * sizeof(*w->samples));
        if (w->samples == NULL || mkdir(w->dir, 0755) != 0 ||
            pthread_create(&w->thread, NULL, writer_main, w) != 0) {
            fprintf(stderr, "quorumfs check perf: cannot start writer %u: %s\n",
                    i, w->samples == NULL ? "out of memory" : strerror(errno));
            free(w->samples);
            w->samples = NULL;
            w->until_us = 0;
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
    }
    if (started < l->writers) {
        goto out;
    }
    memset(r, 0, sizeof(*r));
    r->seconds = (double)(now_us() - t0) / 1e6;
    for (unsigned i = 0; i < started; i++) {
        r->writes += ws[i].n;
        r->failed += ws[i].failed;
        r->first_err = r->first_err != 0 ? r->first_err : ws[i].first_err;
        total += ws[i].n < SAMPLES_MAX ? ws[i].n : SAMPLES_MAX;
    }
    all = malloc((total > 0 ? total : 1) * sizeof(*all));
    if (all == NULL) {
        fprintf(stderr, "quorumfs check perf: out of memory\n");
        goto out;
    }
    total = 0;
    for (unsigned i = 0; i < started; i++) {
        size_t n = ws[i].n < SAMPLES_MAX ? ws[i].n : SAMPLES_MAX;
        memcpy(all + total, ws[i].samples, n * sizeof(*all));
        total += n;
    }
    printf("writes: %zu in %.1f s = %.0f per s, %zu failed%s%s\n", r->writes,
           r->seconds, (double)r->writes / r->seconds, r->failed,
           r->failed > 0 ? ", the first: " : "",
           r->failed > 0 ? strerror(r->first_err) : "");
    print_dist("close()", all, total);
    r->close_p99_us = pct(all, total, 99);
    rv = 0;
out:
    remove_load(top, ws, started);
    for (unsigned i = 0; i < l->writers; i++) {
        free(ws[i].samples);
    }
    free(ws);
    free(all);
    return rv;
}

/* ---- the command ---- */

static int usage_error(const char* fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char* fmt, ...)
{
    va_list ap;
    fprintf(stderr, "quorumfs check: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry `quorumfs check --help`.\n");
    return 2;
}

/* The load named s into *l: 0, or -EINVAL (*l unchanged). */
static int load_named(const char* s, const struct load** l)
{
    for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
        if (strlen(s) == 1 && s[0] == loads[i].name) {
            *l = &loads[i];
            return 0;
        }
    }
    return -EINVAL;
}

static int parse(int argc,
                 char** argv,
                 const char** mount,
                 const struct load** l,
                 unsigned* seconds)
{
    enum { O_MOUNT = 1000, O_LOAD, O_SECONDS };
    static const struct option opts[] = {
        {"mount", required_argument, NULL, O_MOUNT},
        {"load", required_argument, NULL, O_LOAD},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char* end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_MOUNT:
            *mount = optarg;
            break;
        case O_LOAD:
            if (load_named(optarg, l) != 0) {
                return usage_error("--load: bad value '%s' (s, m or l)",
                                   optarg);
            }
            break;
        case O_SECONDS:
            errno = 0;
            *seconds = (unsigned)strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || optarg[0] == '-' ||
                *seconds == 0 || *seconds > SECONDS_MAX) {
                return usage_error("--seconds: bad value '%s' (1 to 3600)",
                                   optarg);
            }
            break;
        case 'h':
            check_usage(stdout);
            exit(0);
        case ':':
            return usage_error("flag '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc || strcmp(argv[optind], "perf") != 0) {
        return usage_error("expected perf%s%s", optind < argc ? ", not " : "",
                           optind < argc ? argv[optind] : "");
    }
    if (optind + 1 != argc) {
        return usage_error("unexpected argument '%s'", argv[optind + 1]);
    }
    if (*mount == NULL) {
        return usage_error("perf: give --mount M, the quorumfs mount to load");
    }
    return 0;
}

int check_command(int argc, char** argv)
{
    const char* mount = NULL;
    const struct load* l = &loads[0];
    unsigned seconds = 0;
    int64_t sync_us[SYNC_COUNT];
    struct load_result r = {0};

    int rv = parse(argc, argv, &mount, &l, &seconds);
    if (rv != 0) {
        return rv;
    }
    seconds = seconds != 0 ? seconds : l->seconds;
    struct ctl_target t = {.cmd = "check perf", .mount = mount};
    rv = ctl__resolve_target(&t);
    if (rv != 0) {
        return rv;
    }
    printf("load %c: %u writers for %u s through %s; data dir %s\n", l->name,
           l->writers, seconds, mount, t.dir);
    fflush(stdout);
    if (disk_check(t.dir, sync_us) != 0) {
        return 1;
    }
    print_dist("fdatasync", sync_us, SYNC_COUNT);
    int64_t sync_p99 = pct(sync_us, SYNC_COUNT, 99);
    fflush(stdout);
    if (run_load(mount, l, seconds, &r) != 0) {
        return 1;
    }
    int fails = 0;
    if (sync_p99 > SYNC_P99_MAX_US) {
        printf(
            "FAIL: fdatasync p99 %.1f ms is above %d ms: the data dir's "
            "disk is slow for a raft log (every commit waits for it)\n",
            (double)sync_p99 / 1000, SYNC_P99_MAX_US / 1000);
        fails++;
    }
    if (r.failed > 0) {
        printf("FAIL: %zu of %zu writes failed (the first: %s)\n", r.failed,
               r.failed + r.writes, strerror(r.first_err));
        fails++;
    }
    double per_s = (double)r.writes / r.seconds;
    if (per_s < l->min_writes_per_s) {
        printf("FAIL: %.0f writes per s is below %u (load %c)\n", per_s,
               l->min_writes_per_s, l->name);
        fails++;
    }
    if (r.close_p99_us > (int64_t)l->close_p99_max_ms * 1000) {
        printf(
            "FAIL: close() p99 %.1f ms is above %u ms (load %c): commits "
            "are slow (disks, network, or a busy leader)\n",
            (double)r.close_p99_us / 1000, l->close_p99_max_ms, l->name);
        fails++;
    }
    if (fails == 0) {
        printf(
            "PASS: fdatasync p99 at most %d ms, at least %u writes per s, "
            "close() p99 at most %u ms, no failed write (load %c)\n",
            SYNC_P99_MAX_US / 1000, l->min_writes_per_s, l->close_p99_max_ms,
            l->name);
    }
    return fails == 0 ? 0 : 1;
}
