/* cache.c - a bounded LRU cache of decompressed db frames, and reads of
 * past versions through it (store_read_at). Records not durable yet are
 * read from memory: the pending records (at next_off) and the raw copies
 * of sealed frames in flight, so history reads are exact at any time. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "store_internal.h"

enum { CACHE_SLOTS_MAX = 4096 }; /* bound on cached frames */

struct cached {
    uint64_t off;
    uint8_t* raw;
    size_t len;
    uint64_t used; /* LRU clock */
};

struct store_frame_cache {
    uint64_t cap_bytes, bytes, clock;
    size_t n;
    struct cached slot[CACHE_SLOTS_MAX];
};

struct store_frame_cache* store__cache_new(uint64_t cap_bytes)
{
    struct store_frame_cache* c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->cap_bytes = cap_bytes;
    }
    return c;
}

void store__cache_clear(struct store_frame_cache* c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->slot[i].raw);
    }
    c->n = 0;
    c->bytes = 0;
}

void store__cache_free(struct store_frame_cache* c)
{
    if (c != NULL) {
        store__cache_clear(c);
        free(c);
    }
}

static void evict_one(struct store_frame_cache* c)
{
    size_t v = 0;
    for (size_t i = 1; i < c->n; i++) {
        if (c->slot[i].used < c->slot[v].used) {
            v = i;
        }
    }
    c->bytes -= c->slot[v].len;
    free(c->slot[v].raw);
    c->slot[v] = c->slot[--c->n];
}

int store__cache_get(struct store* st,
                     uint64_t off,
                     const uint8_t** raw,
                     size_t* len)
{
    struct store_frame_cache* c = st->cache;
    if (off == st->next_off) {
        *raw = st->pend.buf; /* queued, not sealed yet */
        *len = st->pend.len;
        return 0;
    }
    for (size_t i = 0; i < st->ninflight; i++) {
        if (st->inflight[i].off == off) {
            *raw = st->inflight[i].raw;
            *len = st->inflight[i].len;
            return 0;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->slot[i].off == off) {
            c->slot[i].used = ++c->clock;
            *raw = c->slot[i].raw;
            *len = c->slot[i].len;
            return 0;
        }
    }
    if (off >= st->durable_off) {
        return -EAGAIN; /* sealed but not written yet */
    }
    struct frame_header h;
    uint8_t* buf = NULL;
    char why[64];
    int rv = store__frame_read(st->fd, off, st->durable_off, &h, &buf, why,
                               sizeof(why));
    if (rv != 0) {
        return rv == -EBADMSG ? -EUCLEAN : rv;
    }
    while (c->n > 0 &&
           (c->n == CACHE_SLOTS_MAX || c->bytes + h.raw_len > c->cap_bytes)) {
        evict_one(c);
    }
    /* A frame larger than the cap is still cached alone, until the next. */
    c->slot[c->n] = (struct cached){
        .off = off, .raw = buf, .len = h.raw_len, .used = ++c->clock};
    c->n++;
    c->bytes += h.raw_len;
    *raw = buf;
    *len = h.raw_len;
    return 0;
}

int store__content_at(struct store* st,
                      uint64_t frame,
                      uint32_t rec,
                      uint64_t ino,
                      void** data,
                      size_t* len)
{
    const uint8_t* raw;
    size_t n;
    int rv = store__cache_get(st, frame, &raw, &n);
    if (rv != 0) {
        return rv;
    }
    struct store_anyrec any;
    if (rec >= n || store__rec_decode(raw + rec, n - rec, &any) < 0 ||
        any.tag != REC_PUT || any.put.ino != ino) {
        return -EUCLEAN;
    }
    *data = malloc((size_t)any.put.content_len + 1);
    if (*data == NULL) {
        return -ENOMEM;
    }
    memcpy(*data, any.put.content, any.put.content_len);
    *len = any.put.content_len;
    return 0;
}

/* Walk back from the entry's latest record along prev locations until a
 * record at or below rev. Bounded: each step goes to an older record. */
int store_read_at(struct store* st,
                  uint64_t ino,
                  uint64_t rev,
                  struct store_attr* a,
                  void** data,
                  size_t* len)
{
    assert(st != NULL && a != NULL && data != NULL && len != NULL);
    const struct entry* e = store__find(&st->s, ino);
    if (e == NULL || e->create_rev > rev || e->type == STORE_LINK) {
        return -ENOENT; /* a name entry is no inode */
    }
    uint64_t frame = e->loc_frame, prev_mod = UINT64_MAX;
    uint32_t at = e->loc_rec;
    struct store_rec r = {.type = e->type};
    bool found = e->mod_rev <= rev;
    if (found) {
        store__attr(e, a);
        r.content = entry_content(e);
        r.content_len = (uint32_t)e->size;
    }
    while (!found) {
        if (frame == UINT64_MAX) {
            return -ENOENT;
        }
        const uint8_t* raw;
        size_t n;
        int rv = store__cache_get(st, frame, &raw, &n);
        if (rv != 0) {
            return rv;
        }
        struct store_anyrec any;
        if (at >= n || store__rec_decode(raw + at, n - at, &any) < 0 ||
            any.tag != REC_PUT || any.put.ino != ino ||
            any.put.mod_rev >= prev_mod) {
            return -EUCLEAN;
        }
        r = any.put;
        prev_mod = r.mod_rev;
        found = r.mod_rev <= rev;
        frame = r.prev_frame;
        at = r.prev_rec;
    }
    if (prev_mod != UINT64_MAX) {
        memset(a, 0, sizeof(*a));
        a->ino = ino;
        a->type = r.type;
        a->mode = r.mode;
        a->uid = r.uid;
        a->gid = r.gid;
        a->size = r.content_len;
        a->atime_ns = r.atime_ns;
        a->mtime_ns = r.mtime_ns;
        a->ctime_ns = r.ctime_ns;
        a->create_rev = r.create_rev;
        a->mod_rev = r.mod_rev;
        a->version = r.version;
        a->nlink = r.type == STORE_DIR ? 2 : 1; /* subdirs not tracked */
    }
    *data = NULL;
    *len = r.content_len;
    if (r.type != STORE_DIR) {
        *data = malloc(r.content_len + 1);
        if (*data == NULL) {
            return -ENOMEM;
        }
        memcpy(*data, r.content, r.content_len);
    }
    return 0;
}
