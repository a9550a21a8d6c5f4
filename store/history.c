/* history.c - the tree at a past revision, built from the db file.
 *
 * The db file is the history: a BASE prefix (the state at base_rev, written
 * by compaction or image install) then the records of every later command in
 * revision order. The tree at revision R is the BASE prefix plus every
 * PUT/DEL record with revision <= R, replayed in file order; then the
 * records in flight (sealed, not durable: raw copies kept by the store) and
 * the pending ones, so a build is exact at any time. An entry keeps its
 * attributes and the location of its content (frame, record), never the
 * content: readers fetch it through the frame cache (store__content_at).
 *
 * Cost: one pass over the frames up to R (stops at the first frame past
 * R); memory: one struct hist_ent + name per entry live at R, plus the names
 * of entries renamed during the pass (an arena, dropped when finalized).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "store_internal.h"

enum { HASH_MIN = 1024 };

struct builder {
    uint64_t rev;
    struct hist_ent* ents;
    size_t n, cap;
    uint32_t* hash; /* open addressing: index + 1, 0 = empty */
    size_t hcap;    /* power of two, > 2 * n */
    char* names;
    size_t names_len, names_cap;
};

uint64_t store__hist_oldest(const struct store* st)
{
    return st->s.compact_rev > st->base_rev ? st->s.compact_rev : st->base_rev;
}

int store__hist_check(struct store* st, uint64_t rev)
{
    if (rev > st->s.revision) {
        return -EINVAL;
    }
    uint64_t oldest = store__hist_oldest(st);
    if (rev < oldest) {
        store__trace(st, STORE_TRACE_INFO,
                     "revision %" PRIu64
                     " is compacted (oldest retained: %" PRIu64 ")",
                     rev, oldest);
        return -ENOENT;
    }
    return 0;
}

static size_t slot_of(uint64_t ino, size_t hcap)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 17) & (hcap - 1);
}

static int hash_grow(struct builder* b)
{
    size_t hcap = b->hcap == 0 ? HASH_MIN : 2 * b->hcap;
    uint32_t* h = calloc(hcap, sizeof(*h));
    if (h == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++) {
        size_t k = slot_of(b->ents[i].ino, hcap);
        while (h[k] != 0) {
            k = (k + 1) & (hcap - 1);
        }
        h[k] = (uint32_t)i + 1;
    }
    free(b->hash);
    b->hash = h;
    b->hcap = hcap;
    return 0;
}

/* The builder's entry for ino, created (not live) when absent. */
static struct hist_ent* ent_get(struct builder* b, uint64_t ino)
{
    if (2 * (b->n + 1) > b->hcap && hash_grow(b) != 0) {
        return NULL;
    }
    size_t k = slot_of(ino, b->hcap);
    while (b->hash[k] != 0) {
        struct hist_ent* e = &b->ents[b->hash[k] - 1];
        if (e->ino == ino) {
            return e;
        }
        k = (k + 1) & (b->hcap - 1);
    }
    if (b->n == b->cap) {
        size_t cap = b->cap == 0 ? 256 : 2 * b->cap;
        if (cap > UINT32_MAX - 1) {
            return NULL;
        }
        struct hist_ent* n = realloc(b->ents, cap * sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        b->ents = n;
        b->cap = cap;
    }
    struct hist_ent* e = &b->ents[b->n];
    memset(e, 0, sizeof(*e));
    e->ino = ino;
    b->hash[k] = (uint32_t)++b->n;
    return e;
}

static int name_set(struct builder* b,
                    struct hist_ent* e,
                    const char* name,
                    uint16_t len)
{
    if (len == 0 || (e->live && e->name_len == len &&
                     /* clang-tidy false positive: a live entry with a name has
                        its bytes in names (name_set). */
                     // NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker)
                     memcmp(b->names + e->name_off, name, len) == 0)) {
        return 0; /* unchanged: most PUTs */
    }
    if (b->names_len + len > b->names_cap) {
        size_t cap = b->names_cap == 0 ? 4096 : b->names_cap;
        while (cap < b->names_len + len) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return -ENOMEM;
        }
        char* n = realloc(b->names, cap);
        if (n == NULL) {
            return -ENOMEM;
        }
        b->names = n;
        b->names_cap = cap;
    }
    memcpy(b->names + b->names_len, name, len);
    e->name_off = (uint32_t)b->names_len;
    e->name_len = len;
    b->names_len += len;
    return 0;
}

static int feed_put(struct builder* b,
                    const struct store_rec* r,
                    uint64_t frame,
                    uint32_t rec)
{
    struct hist_ent* e = ent_get(b, r->ino);
    if (e == NULL || name_set(b, e, r->name, r->name_len) != 0) {
        return -ENOMEM;
    }
    e->parent = r->parent;
    e->type = r->type;
    e->mode = r->mode;
    e->uid = r->uid;
    e->gid = r->gid;
    e->create_rev = r->create_rev;
    e->mod_rev = r->mod_rev;
    e->version = r->version;
    e->atime_ns = r->atime_ns;
    e->mtime_ns = r->mtime_ns;
    e->ctime_ns = r->ctime_ns;
    e->size = r->content_len;
    e->rdev = store__rdev(r->type, r->content, r->content_len);
    e->target = r->type == STORE_LINK && r->content_len == STORE_LINK_LEN
                    ? get_le64(r->content)
                    : 0;
    e->loc_frame = frame;
    e->loc_rec = rec;
    e->live = 1;
    return 0;
}

/* Replay the records of one frame. 1: a record past the revision was met
 * (the build is complete), 0: go on, <0: error. */
static int feed(struct builder* b,
                const uint8_t* raw,
                size_t len,
                bool base,
                uint64_t frame)
{
    size_t pos = 0;
    while (pos < len) {
        struct store_anyrec r;
        long n = store__rec_decode(raw + pos, len - pos, &r);
        if (n < 0) {
            return -EUCLEAN;
        }
        uint64_t rev = r.tag == REC_PUT ? r.put.mod_rev : r.rev;
        if (!base && (r.tag == REC_PUT || r.tag == REC_DEL) && rev > b->rev) {
            return 1;
        }
        if (r.tag == REC_PUT) {
            int rv = feed_put(b, &r.put, frame, (uint32_t)pos);
            if (rv != 0) {
                return rv;
            }
        } else if (r.tag == REC_DEL) {
            struct hist_ent* e = ent_get(b, r.ino);
            if (e == NULL) {
                return -ENOMEM;
            }
            e->live = 0;
        }
        pos += (size_t)n;
    }
    return 0;
}

/* The durable file, then the in-flight frames, then the pending records. */
static int scan(struct store* st, struct builder* b)
{
    uint64_t off = 0;
    int rv = 0;
    while (off < st->durable_off && rv == 0) {
        struct frame_header h;
        uint8_t* raw = NULL;
        char why[64];
        rv = store__frame_read(st->fd, off, st->durable_off, &h, &raw, why,
                               sizeof(why));
        if (rv != 0) {
            store__trace(st, STORE_TRACE_ERROR,
                         "db %s: history read of frame at %" PRIu64 ": %s",
                         st->path, off, rv == -EBADMSG ? why : "I/O error");
            return rv == -EBADMSG ? -EUCLEAN : rv;
        }
        bool base = (h.flags & FRAME_F_BASE) != 0;
        rv = !base && h.first_rev > b->rev ? 1
                                           : feed(b, raw, h.raw_len, base, off);
        free(raw);
        off += FRAME_HEADER_LEN + h.comp_len;
    }
    for (size_t i = 0; i < st->ninflight && rv == 0; i++) {
        const struct inflight* f = &st->inflight[i];
        rv = feed(b, f->raw, f->len, false, f->off);
    }
    if (rv == 0) {
        rv = feed(b, st->pend.buf, st->pend.len, false, st->next_off);
    }
    return rv < 0 ? rv : 0;
}

static int cmp_ino(const void* a, const void* b)
{
    const struct hist_ent *x = a, *y = b;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int cmp_kid(const void* a, const void* b, void* arg)
{
    const struct store_hist* h = arg;
    const struct hist_ent* x = &h->ents[*(const uint32_t*)a];
    const struct hist_ent* y = &h->ents[*(const uint32_t*)b];
    if (x->parent != y->parent) {
        return x->parent < y->parent ? -1 : 1;
    }
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(h->names + x->name_off, h->names + y->name_off, n);
    if (c != 0) {
        return c;
    }
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* Keep the live entries only, with their names in a fresh arena. */
static int finalize(struct builder* b, struct store_hist* h)
{
    size_t live = 0, bytes = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->ents[i].live) {
            live++;
            bytes += b->ents[i].name_len;
        }
    }
    assert(live >= 1); /* the root */
    h->ents = malloc(live * sizeof(*h->ents));
    h->names = malloc(bytes + 1);
    h->kids = malloc(live * sizeof(*h->kids));
    if (h->ents == NULL || h->names == NULL || h->kids == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct hist_ent* e = &b->ents[i];
        if (e->live) {
            struct hist_ent* d = &h->ents[h->n++];
            *d = *e;
            d->name_off = (uint32_t)h->names_len;
            d->nsubdirs = 0;
            d->nlinks = 0;
            if (e->name_len > 0) { /* the root has no name */
                /* clang-tidy false positive: a live entry with a name has its
                 * bytes in names (name_set). */
                // NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker)
                memcpy(h->names + h->names_len, b->names + e->name_off,
                       e->name_len);
            }
            h->names_len += e->name_len;
        }
    }
    qsort(h->ents, h->n, sizeof(*h->ents), cmp_ino);
    for (size_t i = 0; i < h->n; i++) {
        if (h->ents[i].ino == STORE_ROOT_INO) {
            continue;
        }
        h->kids[h->nkids++] = (uint32_t)i;
        struct hist_ent* p =
            (struct hist_ent*)store__hist_find(h, h->ents[i].parent);
        if (p == NULL) {
            return -EUCLEAN; /* an orphan: the records contradict */
        }
        if (h->ents[i].type == STORE_DIR) {
            p->nsubdirs++;
        }
        if (h->ents[i].type == STORE_LINK) {
            /* a name entry: its target, live at this revision, counts it */
            struct hist_ent* t =
                (struct hist_ent*)store__hist_find(h, h->ents[i].target);
            if (t == NULL || t->type == STORE_DIR || t->type == STORE_LINK) {
                return -EUCLEAN;
            }
            t->nlinks++;
        }
    }
    qsort_r(h->kids, h->nkids, sizeof(*h->kids), cmp_kid, h);
    return 0;
}

int store__hist_build(struct store* st, uint64_t rev, struct store_hist** out)
{
    assert(st != NULL && out != NULL);
    int rv = store__hist_check(st, rev);
    if (rv != 0) {
        return rv;
    }
    struct builder b = {.rev = rev};
    struct store_hist* h = calloc(1, sizeof(*h));
    struct hist_ent* root = ent_get(&b, STORE_ROOT_INO);
    if (h == NULL || root == NULL) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    /* As store__state_init makes it. */
    root->type = STORE_DIR;
    root->mode = 0755;
    root->version = 1;
    root->live = 1;
    root->loc_frame = UINT64_MAX;
    rv = scan(st, &b);
    if (rv == 0) {
        h->rev = rev;
        h->gen = st->db_gen;
        rv = finalize(&b, h);
    }
    if (rv != 0) {
        goto err_after_alloc;
    }
    free(b.ents);
    free(b.hash);
    free(b.names);
    *out = h;
    return 0;

err_after_alloc:
    free(b.ents);
    free(b.hash);
    free(b.names);
    store__hist_free(h);
    return rv;
}

void store__hist_free(struct store_hist* h)
{
    if (h != NULL) {
        free(h->ents);
        free(h->kids);
        free(h->names);
        free(h);
    }
}

const struct hist_ent* store__hist_find(const struct store_hist* h,
                                        uint64_t ino)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->ents[mid].ino < ino) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < h->n && h->ents[lo].ino == ino ? &h->ents[lo] : NULL;
}

const char* store__hist_name(const struct store_hist* h,
                             const struct hist_ent* e)
{
    return h->names + e->name_off;
}

/* Compare child k with (parent, name): <0 if it sorts before. */
static int kid_cmp(const struct store_hist* h,
                   size_t k,
                   uint64_t parent,
                   const char* name,
                   size_t len)
{
    const struct hist_ent* e = &h->ents[h->kids[k]];
    if (e->parent != parent) {
        return e->parent < parent ? -1 : 1;
    }
    if (name == NULL) {
        return 1; /* every child sorts after "before the first" */
    }
    size_t n = e->name_len < len ? e->name_len : len;
    int c = memcmp(h->names + e->name_off, name, n);
    if (c != 0) {
        return c;
    }
    return e->name_len < len ? -1 : e->name_len > len;
}

size_t store__hist_child_after(const struct store_hist* h,
                               uint64_t parent,
                               const char* after,
                               size_t len)
{
    size_t lo = 0, hi = h->nkids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kid_cmp(h, mid, parent, after, len) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const struct hist_ent* store__hist_child(const struct store_hist* h,
                                         uint64_t parent,
                                         const char* name,
                                         size_t len)
{
    size_t lo = 0, hi = h->nkids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kid_cmp(h, mid, parent, name, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < h->nkids && kid_cmp(h, lo, parent, name, len) == 0) {
        return &h->ents[h->kids[lo]];
    }
    return NULL;
}

void store__hist_attr(const struct hist_ent* e, struct store_attr* a)
{
    memset(a, 0, sizeof(*a));
    a->ino = e->ino;
    a->type = e->type;
    a->mode = e->mode;
    a->uid = e->uid;
    a->gid = e->gid;
    a->size = store__special(e->type) ? 0 : e->size;
    a->rdev = e->rdev;
    a->atime_ns = e->atime_ns;
    a->mtime_ns = e->mtime_ns;
    a->ctime_ns = e->ctime_ns;
    a->create_rev = e->create_rev;
    a->mod_rev = e->mod_rev;
    a->version = e->version;
    a->nlink = e->type == STORE_DIR ? 2 + e->nsubdirs : 1 + e->nlinks;
}

const struct hist_ent* store__hist_resolve(const struct store_hist* h,
                                           const struct hist_ent* e)
{
    return e != NULL && e->type == STORE_LINK ? store__hist_find(h, e->target)
                                              : e;
}
