/* fuzz_util.h - helpers shared by the fuzz targets and the seed generator:
 * a private scratch directory, whole-file writes and reads, little-endian
 * fields, and FUZZ_CHECK (an oracle that failed: print, then abort(), which
 * libFuzzer reports as a crash and saves the input).
 *
 * The scratch directory is made once per process under $FUZZ_TMPDIR, else
 * /dev/shm (no disk I/O per run), else /tmp, and removed at exit. */
#ifndef QFS_FUZZ_UTIL_H
#define QFS_FUZZ_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: oracle failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                   \
            abort();                                                          \
        }                                                                     \
    } while (0)

static char fuzz__dir[256];

/* Remove every file in dir (one level of subdirectories too), not dir. */
static inline void fuzz_empty_dir(const char* dir)
{
    DIR* d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent* de;
    char path[512];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) != 0) {
            fuzz_empty_dir(path); /* a directory: depth 1 by construction */
            rmdir(path);
        }
    }
    closedir(d);
}

static inline void fuzz__cleanup(void)
{
    if (fuzz__dir[0] != '\0') {
        fuzz_empty_dir(fuzz__dir);
        rmdir(fuzz__dir);
    }
}

/* The process's scratch directory (created on first use). */
static inline const char* fuzz_dir(void)
{
    if (fuzz__dir[0] == '\0') {
        const char* base = getenv("FUZZ_TMPDIR");
        if (base == NULL) {
            base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        }
        snprintf(fuzz__dir, sizeof(fuzz__dir), "%s/qfs-fuzz-XXXXXX", base);
        if (mkdtemp(fuzz__dir) == NULL) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz__cleanup);
    }
    return fuzz__dir;
}

static inline void fuzz_write_file(const char* path,
                                   const void* data,
                                   size_t len)
{
    FILE* f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) ||
        fclose(f) != 0) {
        perror(path);
        abort(); /* the harness's own failure, not a finding */
    }
}

/* Whole file into a malloc'd buffer; NULL if it cannot be read. */
static inline uint8_t* fuzz_read_file(const char* path, size_t* len)
{
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t* buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            uint8_t* nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
            }
            buf = nb;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

static inline uint16_t fuzz_get16(const uint8_t* p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t fuzz_get32(const uint8_t* p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t fuzz_get64(const uint8_t* p)
{
    return (uint64_t)fuzz_get32(p) | (uint64_t)fuzz_get32(p + 4) << 32;
}

static inline void fuzz_put16(uint8_t* p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void fuzz_put32(uint8_t* p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void fuzz_put64(uint8_t* p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

#endif /* QFS_FUZZ_UTIL_H */
