/* view.c - point-in-time views (store_history.h): an LRU of trees built by
 * the history reader (history.c), reference-counted.
 *
 * The cache belongs to the store (st->views, freed by store_close) and
 * holds one reference on each cached view; store_view_open returns another.
 * A view whose db locations went stale (the db file was rewritten by a
 * compaction or replaced by an image: st->db_gen changed) rebuilds its
 * tree on the next content read; the cache is flushed on the next open.
 * Release every view before store_close.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "store_internal.h"

struct store_view {
    struct store* st;
    uint64_t rev;
    struct store_hist* h;
    unsigned refs;
    uint64_t used; /* LRU clock */
};

struct store_view_cache {
    struct store_view* v[STORE_VIEWS_MAX];
    size_t n;
    uint64_t clock;
    uint64_t gen; /* st->db_gen of the cached views */
};

static void view_unref(struct store_view* v)
{
    assert(v->refs > 0);
    if (--v->refs == 0) {
        store__hist_free(v->h);
        free(v);
    }
}

static void cache_drop_all(struct store_view_cache* c)
{
    for (size_t i = 0; i < c->n; i++) {
        view_unref(c->v[i]);
    }
    c->n = 0;
}

void store__views_free(struct store_view_cache* c)
{
    if (c != NULL) {
        cache_drop_all(c);
        free(c);
    }
}

static struct store_view_cache* cache_of(struct store* st)
{
    if (st->views == NULL) {
        struct store_view_cache* c = calloc(1, sizeof(*c));
        if (c == NULL) {
            return NULL;
        }
        c->gen = st->db_gen;
        st->views = c;
    }
    struct store_view_cache* c = st->views;
    if (c->gen != st->db_gen) {
        cache_drop_all(c);
        c->gen = st->db_gen;
    }
    return c;
}

void store_views_flush(struct store* st)
{
    assert(st != NULL);
    if (st->views != NULL) {
        cache_drop_all(st->views);
    }
}

static void cache_put(struct store_view_cache* c, struct store_view* v)
{
    if (c->n == STORE_VIEWS_MAX) {
        size_t old = 0;
        for (size_t i = 1; i < c->n; i++) {
            if (c->v[i]->used < c->v[old]->used) {
                old = i;
            }
        }
        view_unref(c->v[old]);
        c->v[old] = c->v[--c->n];
    }
    v->refs++;
    c->v[c->n++] = v;
}

int store_view_open(struct store* st, uint64_t rev, struct store_view** out)
{
    assert(st != NULL && out != NULL);
    int rv = store__hist_check(st, rev);
    if (rv != 0) {
        return rv;
    }
    struct store_view_cache* c = cache_of(st);
    if (c == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i]->rev == rev) {
            c->v[i]->used = ++c->clock;
            c->v[i]->refs++;
            *out = c->v[i];
            return 0;
        }
    }
    struct store_view* v = calloc(1, sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    rv = store__hist_build(st, rev, &v->h);
    if (rv != 0) {
        free(v);
        return rv;
    }
    v->st = st;
    v->rev = rev;
    v->refs = 1;
    v->used = ++c->clock;
    cache_put(c, v);
    *out = v;
    return 0;
}

void store_view_release(struct store_view* v)
{
    if (v != NULL) {
        view_unref(v);
    }
}

uint64_t store_view_revision(const struct store_view* v)
{
    assert(v != NULL);
    return v->rev;
}

int store_view_getattr(struct store_view* v, uint64_t ino, struct store_attr* a)
{
    assert(v != NULL && a != NULL);
    const struct hist_ent* e = store__hist_find(v->h, ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT; /* a name entry is no inode */
    }
    store__hist_attr(e, a);
    return 0;
}

int store_view_lookup(struct store_view* v,
                      uint64_t parent,
                      const char* name,
                      struct store_attr* a)
{
    assert(v != NULL && name != NULL && a != NULL);
    const struct hist_ent* d = store__hist_find(v->h, parent);
    if (d == NULL) {
        return -ENOENT;
    }
    size_t len;
    int kind = store__lookup_kind(d->type, name, v->st->opt.name_max, &len);
    if (kind < 0) {
        return kind;
    }
    const struct hist_ent* e = d;
    if (kind == STORE_LOOKUP_PARENT && d->ino != STORE_ROOT_INO) {
        e = store__hist_find(v->h, d->parent);
    } else if (kind == STORE_LOOKUP_CHILD) {
        e = store__hist_resolve(v->h,
                                store__hist_child(v->h, parent, name, len));
    }
    if (e == NULL) {
        return -ENOENT;
    }
    store__hist_attr(e, a);
    return 0;
}

/* The db file was rewritten since the build: rebuild (same tree). */
static int refresh(struct store_view* v)
{
    if (v->h->gen == v->st->db_gen) {
        return 0;
    }
    struct store_hist* h;
    int rv = store__hist_build(v->st, v->rev, &h);
    if (rv != 0) {
        return rv;
    }
    store__hist_free(v->h);
    v->h = h;
    return 0;
}

int store_view_read(struct store_view* v,
                    uint64_t ino,
                    void** data,
                    size_t* len)
{
    assert(v != NULL && data != NULL && len != NULL);
    int rv = refresh(v);
    if (rv != 0) {
        return rv;
    }
    const struct hist_ent* e = store__hist_find(v->h, ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT;
    }
    if (e->type == STORE_DIR) {
        return -EISDIR;
    }
    if (e->size == 0) {
        *data = malloc(1);
        *len = 0;
        return *data == NULL ? -ENOMEM : 0;
    }
    return store__content_at(v->st, e->loc_frame, e->loc_rec, ino, data, len);
}

int store_view_readdir(struct store_view* v,
                       uint64_t dir,
                       const char* after,
                       store_readdir_cb cb,
                       void* data)
{
    assert(v != NULL && cb != NULL);
    const struct store_hist* h = v->h;
    const struct hist_ent* d = store__hist_find(h, dir);
    if (d == NULL) {
        return -ENOENT;
    }
    if (d->type != STORE_DIR) {
        return -ENOTDIR;
    }
    if (after != NULL && after[0] == 0) {
        after = NULL;
    }
    size_t k =
        store__hist_child_after(h, dir, after, after ? strlen(after) : 0);
    for (; k < h->nkids && h->ents[h->kids[k]].parent == dir; k++) {
        const struct hist_ent* e = &h->ents[h->kids[k]];
        char name[STORE_NAME_LIMIT + 1];
        memcpy(name, store__hist_name(h, e), e->name_len);
        name[e->name_len] = 0;
        struct store_attr a;
        store__hist_attr(store__hist_resolve(h, e), &a);
        int rv = cb(data, name, &a);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}
