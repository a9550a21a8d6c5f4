/* fuzz_store.h - store helpers for the fuzz targets: open a store with
 * default options, write every queued record durably, compare two stores
 * through their images (image building is deterministic: the same state
 * gives the same bytes, docs/format-db.md "Images"), check that a store
 * reopens into the same state. */
#ifndef QFS_FUZZ_STORE_H
#define QFS_FUZZ_STORE_H

#include "fuzz_util.h"
#include "store.h"

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

#endif /* QFS_FUZZ_STORE_H */
