/* fuzz_db.c - libFuzzer target for the db file (store/dbfile*.c: frames,
 * records, recovery; store/cache.c: history reads through record
 * locations found in the file).
 *
 * Input: a mode byte, then the file.
 *   mode bit 0 clear: the rest is the db file, byte for byte.
 *   mode bit 0 set: the rest is frames as [64-byte header][u32 raw_len]
 *     [raw_len bytes of uncompressed records]; the harness compresses each
 *     payload and fills raw_len, comp_len and the checksum (and, with bit 1,
 *     magic, version and header_len), so the fuzzer reaches the record
 *     decoder and replay instead of stopping at checksums.
 *   mode bit 2: open with keep_torn_tail (then store_drop_tail).
 * Oracles, besides "no crash, no sanitizer report": store_open returns 0,
 * -EUCLEAN or -ENOMEM; history reads of what opened return 0 or an error;
 * a db that opened takes a new frame and opens again without a torn tail
 * into the same state (equal images).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_store.h"

enum {
    READS_MAX = 16, /* history reads per input */
};

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* History reads at a few (ino, revision) pairs: ino 1.. and revisions
 * spread over [0, revision]. */
static void read_history(struct store* st)
{
    struct store_stats s;
    store_get_stats(st, &s);
    for (unsigned i = 0; i < READS_MAX; i++) {
        uint64_t ino = 1 + i % 4;
        uint64_t rev = s.revision - s.revision / (1 + i / 4);
        struct store_attr a;
        void* buf = NULL;
        size_t len = 0;
        int rv = store_read_at(st, ino, rev, &a, &buf, &len);
        FUZZ_CHECK(rv <= 0);
        free(buf);
    }
}

/* A db that opened takes one more frame and reopens into the same state. */
static void write_and_reopen(struct store* st, const char* path)
{
    store_index next = store_applied_index(st) + 1;
    if (next < UINT64_MAX / 2) {
        FUZZ_CHECK(store_apply_index(st, next) == 0);
    }
    fuzz_store_flush(st);
    fuzz_store_reopen_same(st, path);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0];
    char path[512];
    snprintf(path, sizeof(path), "%s/db", fuzz_dir());
    if (mode & 1) {
        size_t len;
        uint8_t* file = fuzz_build_frames(data + 1, size - 1, mode & 2, &len);
        fuzz_write_file(path, file, len);
        free(file);
    } else {
        fuzz_write_file(path, data + 1, size - 1);
    }
    bool keep = (mode & 4) != 0;
    struct store* st;
    struct store_recovery rec;
    int rv = fuzz_store_open(path, keep, &st, &rec);
    if (rv != 0) {
        FUZZ_CHECK(rv == -EUCLEAN || rv == -ENOMEM);
        unlink(path);
        return 0;
    }
    FUZZ_CHECK(rec.torn_bytes == 0 || rec.torn_reason[0] != '\0');
    if (keep) {
        FUZZ_CHECK(store_drop_tail(st) == 0);
    }
    read_history(st);
    write_and_reopen(st, path);
    unlink(path);
    return 0;
}
