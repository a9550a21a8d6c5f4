/* fuzz_store.h - store helpers for the fuzz targets: open a store with
 * default options, write every queued record durably, compare two stores
 * through their images (image building is deterministic: the same state
 * gives the same bytes, docs/format-db.md "Images"), check that a store
 * reopens into the same state, build a db file from raw frames. */
#ifndef QFS_FUZZ_STORE_H
#define QFS_FUZZ_STORE_H

#include <lz4.h>
#include <xxhash.h>

#include "fuzz_util.h"
#include "store.h"

enum {
    FUZZ_FRAME_HDR = 64,           /* frame header, docs/format-db.md */
    FUZZ_FRAME_RAW_MAX = 1u << 20, /* bound on one payload */
    FUZZ_FRAMES_MAX = 64,          /* frames built from one input */
};
#define FUZZ_FRAME_MAGIC 0x42444651u

static inline int fuzz_store_open(const char* path,
                                  bool keep_torn_tail,
                                  struct store** st,
                                  struct store_recovery* rec)
{
    struct store_options o;
    store_options_default(&o);
    o.keep_torn_tail = keep_torn_tail;
    o.frame_cache_bytes = 1u << 20;
    memset(rec, 0, sizeof(*rec));
    return store_open(path, &o, st, rec);
}

/* Seal the queued records into a frame, write it, report it done: what the
 * node's loop and I/O thread do. A healthy store on a scratch file never
 * fails this. */
static inline void fuzz_store_flush(struct store* st)
{
    struct store_frame* f = NULL;
    FUZZ_CHECK(store_frame_seal(st, &f) == 0);
    if (f != NULL) {
        int rv = store_frame_write(st, f);
        FUZZ_CHECK(rv == 0);
        store_frame_done(st, f, rv);
    }
}

/* The store's image (malloc'd). */
static inline uint8_t* fuzz_store_image(struct store* st, size_t* len)
{
    void* img = NULL;
    FUZZ_CHECK(store_image_build(st, &img, len) == 0);
    return img;
}

static inline bool fuzz_same(const uint8_t* a,
                             size_t alen,
                             const uint8_t* b,
                             size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* Close st and open path again: no torn tail, the same applied index and
 * the same state (equal images). The reopened store is closed too. Flush
 * st first (fuzz_store_flush): what is only queued is not in the file. */
static inline void fuzz_store_reopen_same(struct store* st, const char* path)
{
    size_t alen, blen;
    uint8_t* a = fuzz_store_image(st, &alen);
    store_index applied = store_applied_index(st);
    store_close(st);
    struct store_recovery rec;
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &rec) == 0);
    FUZZ_CHECK(rec.torn_bytes == 0);
    FUZZ_CHECK(store_applied_index(st) == applied);
    uint8_t* b = fuzz_store_image(st, &blen);
    FUZZ_CHECK(fuzz_same(a, alen, b, blen));
    free(a);
    free(b);
    store_close(st);
}

/* The db target's mode 1 (fuzz_db.c): well-checksummed frames from
 * [64-byte header][u32 raw_len][raw records]... (fix_magic: magic, version
 * and header_len too). malloc'd. */
static inline uint8_t* fuzz_build_frames(const uint8_t* p,
                                         size_t n,
                                         bool fix_magic,
                                         size_t* out_len)
{
    size_t cap = 0;
    uint8_t* out = NULL;
    size_t len = 0;
    for (unsigned i = 0; i < FUZZ_FRAMES_MAX && n >= FUZZ_FRAME_HDR + 4; i++) {
        uint32_t raw_len = fuzz_get32(p + FUZZ_FRAME_HDR);
        if (raw_len > n - FUZZ_FRAME_HDR - 4) {
            raw_len = (uint32_t)(n - FUZZ_FRAME_HDR - 4);
        }
        if (raw_len > FUZZ_FRAME_RAW_MAX) {
            raw_len = FUZZ_FRAME_RAW_MAX;
        }
        int bound = LZ4_compressBound((int)raw_len);
        if (len + FUZZ_FRAME_HDR + (size_t)bound > cap) {
            cap = 2 * (len + FUZZ_FRAME_HDR + (size_t)bound);
            out = realloc(out, cap);
            FUZZ_CHECK(out != NULL);
        }
        uint8_t* h = out + len;
        memcpy(h, p, FUZZ_FRAME_HDR);
        int comp = 0;
        if (raw_len > 0) {
            comp = LZ4_compress_default((const char*)p + FUZZ_FRAME_HDR + 4,
                                        (char*)h + FUZZ_FRAME_HDR, (int)raw_len,
                                        bound);
            FUZZ_CHECK(comp > 0);
        }
        if (fix_magic) {
            fuzz_put32(h, FUZZ_FRAME_MAGIC);
            fuzz_put16(h + 4, 1);
            fuzz_put16(h + 6, FUZZ_FRAME_HDR);
        }
        fuzz_put32(h + 16, raw_len);
        fuzz_put32(h + 20, (uint32_t)comp);
        uint64_t seed = XXH3_64bits(h, 56);
        fuzz_put64(h + 56, XXH3_64bits_withSeed(h + FUZZ_FRAME_HDR,
                                                (size_t)comp, seed));
        len += FUZZ_FRAME_HDR + (size_t)comp;
        p += FUZZ_FRAME_HDR + 4 + raw_len;
        n -= FUZZ_FRAME_HDR + 4 + raw_len;
    }
    *out_len = len;
    return out;
}

#endif /* QFS_FUZZ_STORE_H */
