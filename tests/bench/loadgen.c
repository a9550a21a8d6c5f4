/* loadgen.c - a file-system load generator for benchmarks (not a test).
 *
 *   loadgen MODE DIR [-t THREADS] [-d SECONDS] [-s BYTES] [-k KEYS]
 *
 * MODE:
 *   write   open(O_WRONLY|O_CREAT|O_TRUNC) + write S bytes + close, over K
 *           names per thread (like `echo v > f`)
 *   read    open + read + close of files written in a setup phase
 *   stat    stat of those files
 *   rename  write a temp file, rename it over the target (like editors)
 * Each thread works in DIR/tNN/. Prints one line of JSON:
 *   {"mode":..,"threads":..,"seconds":..,"ops":..,"ops_per_s":..,
 *    "errors":..,"p50_us":..,"p99_us":..,"p999_us":..}
 * Latencies are recorded per operation (bounded by LAT_MAX per thread).
 * read/stat setup reuses files of the right size left by an earlier run.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { LAT_MAX = 1 << 20, THREADS_MAX = 1024, PATH_LEN = 4096 };

struct worker {
    pthread_t th;
    int idx;
    uint64_t ops, errors;
    uint32_t* lat_us; /* first LAT_MAX latencies */
    uint64_t n_lat;
    int first_errno;
};

static const char *mode, *dir;
static int threads = 1, keys = 100;
static double seconds = 5;
static size_t size = 100;
static volatile bool stop;
static char* payload;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int write_file(const char* path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return -errno;
    }
    ssize_t w = write(fd, payload, size);
    int err = w == (ssize_t)size ? 0 : (w < 0 ? -errno : -EIO);
    if (close(fd) != 0 && err == 0) {
        err = -errno;
    }
    return err;
}

static int read_file(const char* path)
{
    char buf[65536];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -errno;
    }
    ssize_t r = read(fd, buf, sizeof(buf));
    int err = r >= 0 ? 0 : -errno;
    close(fd);
    return err;
}

static int one_op(struct worker* w, uint64_t i)
{
    char path[PATH_LEN], tmp[PATH_LEN];
    struct stat st;
    snprintf(path, sizeof(path), "%s/t%02d/k%05d", dir, w->idx,
             (int)(i % (uint64_t)keys));
    if (strcmp(mode, "write") == 0) {
        return write_file(path);
    }
    if (strcmp(mode, "read") == 0) {
        return read_file(path);
    }
    if (strcmp(mode, "stat") == 0) {
        return stat(path, &st) == 0 ? 0 : -errno;
    }
    snprintf(tmp, sizeof(tmp), "%s/t%02d/.tmp%05d", dir, w->idx,
             (int)(i % (uint64_t)keys));
    int err = write_file(tmp);
    if (err == 0 && rename(tmp, path) != 0) {
        err = -errno;
    }
    return err;
}

static void* worker_main(void* arg)
{
    struct worker* w = arg;
    for (uint64_t i = 0; !stop; i++) {
        uint64_t t0 = now_ns();
        int err = one_op(w, i);
        uint64_t us = (now_ns() - t0) / 1000;
        if (err != 0) {
            if (w->errors++ == 0) {
                w->first_errno = -err;
            }
            continue;
        }
        w->ops++;
        if (w->n_lat < LAT_MAX) {
            w->lat_us[w->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        }
    }
    return NULL;
}

static int setup(void)
{
    char path[PATH_LEN];
    for (int t = 0; t < threads; t++) {
        snprintf(path, sizeof(path), "%s/t%02d", dir, t);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "loadgen: mkdir %s: %s\n", path, strerror(errno));
            return -1;
        }
        if (strcmp(mode, "read") != 0 && strcmp(mode, "stat") != 0) {
            continue;
        }
        for (int k = 0; k < keys; k++) {
            struct stat st;
            snprintf(path, sizeof(path), "%s/t%02d/k%05d", dir, t, k);
            /* Files left by an earlier run (same size) are reused: on a
             * replicated mount rewriting them costs seconds per run. */
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                (size_t)st.st_size == size) {
                continue;
            }
            int err = write_file(path);
            if (err != 0) {
                fprintf(stderr, "loadgen: setup %s: %s\n", path,
                        strerror(-err));
                return -1;
            }
        }
    }
    return 0;
}

static int cmp_u32(const void* a, const void* b)
{
    uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t* v, uint64_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen write|read|stat|rename DIR [-t THREADS] "
            "[-d SECONDS] [-s BYTES] [-k KEYS]\n");
    exit(2);
}

int main(int argc, char** argv)
{
    if (argc < 3) {
        usage();
    }
    mode = argv[1];
    dir = argv[2];
    if (strcmp(mode, "write") != 0 && strcmp(mode, "read") != 0 &&
        strcmp(mode, "stat") != 0 && strcmp(mode, "rename") != 0) {
        usage();
    }
    int c;
    optind = 3;
    while ((c = getopt(argc, argv, "t:d:s:k:")) != -1) {
        switch (c) {
        case 't':
            threads = atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 's':
            size = (size_t)atol(optarg);
            break;
        case 'k':
            keys = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (threads < 1 || threads > THREADS_MAX || keys < 1 || seconds <= 0 ||
        size > (1u << 20)) {
        usage();
    }
    payload = malloc(size + 1);
    for (size_t i = 0; i < size; i++) {
        payload[i] = (char)('a' + i % 26);
    }
    if (size > 0) {
        payload[size - 1] = '\n';
    }
    if (setup() != 0) {
        return 1;
    }
    struct worker* ws = calloc((size_t)threads, sizeof(*ws));
    for (int t = 0; t < threads; t++) {
        ws[t].idx = t;
        ws[t].lat_us = malloc(LAT_MAX * sizeof(uint32_t));
        pthread_create(&ws[t].th, NULL, worker_main, &ws[t]);
    }
    uint64_t t0 = now_ns();
    struct timespec d = {(time_t)seconds,
                         (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&d, NULL);
    stop = true;
    uint64_t ops = 0, errors = 0, n_lat = 0;
    int first_errno = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ws[t].th, NULL);
        ops += ws[t].ops;
        errors += ws[t].errors;
        n_lat += ws[t].n_lat;
        if (first_errno == 0) {
            first_errno = ws[t].first_errno;
        }
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    uint32_t* all = malloc((n_lat + 1) * sizeof(uint32_t));
    uint64_t k = 0;
    for (int t = 0; t < threads; t++) {
        memcpy(all + k, ws[t].lat_us, ws[t].n_lat * sizeof(uint32_t));
        k += ws[t].n_lat;
    }
    qsort(all, n_lat, sizeof(uint32_t), cmp_u32);
    printf(
        "{\"mode\":\"%s\",\"threads\":%d,\"seconds\":%.2f,\"ops\":%llu,"
        "\"ops_per_s\":%.0f,\"errors\":%llu,\"first_error\":\"%s\","
        "\"p50_us\":%u,\"p99_us\":%u,\"p999_us\":%u}\n",
        mode, threads, elapsed, (unsigned long long)ops, (double)ops / elapsed,
        (unsigned long long)errors,
        first_errno != 0 ? strerror(first_errno) : "", pct(all, n_lat, 0.50),
        pct(all, n_lat, 0.99), pct(all, n_lat, 0.999));
    free(all);
    for (int t = 0; t < threads; t++) {
        free(ws[t].lat_us);
    }
    free(ws);
    free(payload);
    return errors > 0 && ops == 0 ? 1 : 0;
}
