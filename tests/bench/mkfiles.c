/* mkfiles.c - creates many small files for the scale benchmark (not a test).
 *
 *   mkfiles DIR -n FILES [-D DIRS] [-t THREADS] [-s BYTES]
 *
 * Makes DIR/d0000 .. DIR/d(DIRS-1) (DIRS = 0: the files go in DIR itself),
 * then FILES files of BYTES bytes each (default 100): file i is
 * DIR/d(i % DIRS)/f(i) written with open(O_CREAT|O_EXCL|O_WRONLY) + write +
 * close, by THREADS threads (default 16) taking every THREADS-th index.
 * Prints one JSON line: {"files":..,"dirs":..,"seconds":..,"files_per_s":..,
 * "errors":..,"first_error":..}. Exit status 1 if any file failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    THREADS_MAX = 1024,
    DIRS_MAX = 100000,
    FILES_MAX = 100000000,
    BYTES_MAX = 1 << 20,
    PATH_LEN = 4096
};

struct worker {
    pthread_t th;
    long first;
    long errors;
    int first_errno;
};

static const char* dir;
static long files, dirs, threads = 16;
static size_t size = 100;
static char* payload;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int make_one(long i)
{
    char path[PATH_LEN];
    if (dirs > 0) {
        snprintf(path, sizeof(path), "%s/d%04ld/f%08ld", dir, i % dirs, i);
    } else {
        snprintf(path, sizeof(path), "%s/f%08ld", dir, i);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
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

static void* worker_main(void* arg)
{
    struct worker* w = arg;
    for (long i = w->first; i < files; i += threads) {
        int err = make_one(i);
        if (err != 0 && w->errors++ == 0) {
            w->first_errno = -err;
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mkfiles DIR -n FILES [-D DIRS] [-t THREADS] [-s BYTES]\n");
    exit(2);
}

int main(int argc, char** argv)
{
    char path[PATH_LEN];
    int c;

    if (argc < 2 || argv[1][0] == '-') {
        usage();
    }
    dir = argv[1];
    optind = 2;
    while ((c = getopt(argc, argv, "n:D:t:s:")) != -1) {
        switch (c) {
        case 'n':
            files = atol(optarg);
            break;
        case 'D':
            dirs = atol(optarg);
            break;
        case 't':
            threads = atol(optarg);
            break;
        case 's':
            size = (size_t)atol(optarg);
            break;
        default:
            usage();
        }
    }
    if (files < 1 || files > FILES_MAX || dirs < 0 || dirs > DIRS_MAX ||
        threads < 1 || threads > THREADS_MAX || size > BYTES_MAX) {
        usage();
    }
    payload = malloc(size + 1);
    if (payload == NULL) {
        return 1;
    }
    for (size_t i = 0; i < size; i++) {
        payload[i] = (char)('a' + i % 26);
    }
    double t0 = now_s();
    for (long d = 0; d < dirs; d++) {
        snprintf(path, sizeof(path), "%s/d%04ld", dir, d);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "mkfiles: mkdir %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    struct worker* ws = calloc((size_t)threads, sizeof(*ws));
    if (ws == NULL) {
        return 1;
    }
    for (long t = 0; t < threads; t++) {
        ws[t].first = t;
        if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0) {
            fprintf(stderr, "mkfiles: pthread_create failed\n");
            return 1;
        }
    }
    long errors = 0;
    int first_errno = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(ws[t].th, NULL);
        errors += ws[t].errors;
        if (first_errno == 0) {
            first_errno = ws[t].first_errno;
        }
    }
    double secs = now_s() - t0;
    printf(
        "{\"files\":%ld,\"dirs\":%ld,\"seconds\":%.2f,\"files_per_s\":%.0f,"
        "\"errors\":%ld,\"first_error\":\"%s\"}\n",
        files, dirs, secs, (double)(files - errors) / secs, errors,
        first_errno != 0 ? strerror(first_errno) : "");
    free(ws);
    free(payload);
    return errors > 0 ? 1 : 0;
}
