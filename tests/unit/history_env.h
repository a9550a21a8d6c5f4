/* history_env.h - shared by the history unit tests: a store in a temp
 * dir driven by commands, and whole-tree captures (live or of a view) to
 * compare revisions. Static inline: each test uses what it needs. */
#ifndef QFS_TEST_HISTORY_ENV_H
#define QFS_TEST_HISTORY_ENV_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../store/store_history.h"
#include "../../store/store_compact.h"
#include "check.h"

/* ---- environment ---- */

struct env {
    struct store* st;
    char dir[64];
    char path[96];
    store_index idx;
    uint64_t seq;
    int64_t now;
};

static inline struct store_options opts(void)
{
    struct store_options o;
    store_options_default(&o);
    return o;
}

static inline void env_open(struct env* e, const char* name)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/qfs-%s-XXXXXX", name);
    CHECK(mkdtemp(e->dir) != NULL);
    snprintf(e->path, sizeof(e->path), "%s/db", e->dir);
    struct store_options o = opts();
    CHECK_EQ(store_open(e->path, &o, &e->st, NULL), 0);
    e->now = 1000000;
}

static inline void env_reopen(struct env* e)
{
    store_close(e->st);
    struct store_options o = opts();
    CHECK_EQ(store_open(e->path, &o, &e->st, NULL), 0);
}

static inline void env_close(struct env* e)
{
    store_close(e->st);
    char p[128];
    snprintf(p, sizeof(p), "%s.compact", e->path);
    unlink(p);
    unlink(e->path);
    rmdir(e->dir);
}

/* Apply c as proposed by origin at the env's next time (e->now + 1),
 * cb(data) told of each change (cb may be NULL). */
static inline struct store_result run_from(struct env* e,
                                           uint64_t origin,
                                           struct store_cmd* c,
                                           store_change_cb cb,
                                           void* data)
{
    static uint8_t buf[1 << 16];
    c->origin = origin;
    c->seq = ++e->seq;
    c->now_ns = ++e->now;
    long n = store_cmd_encode(c, buf, sizeof(buf));
    CHECK(n > 0);
    struct store_result res;
    CHECK_EQ(store_apply(e->st, ++e->idx, buf, (size_t)n, cb, data, &res), 0);
    return res;
}

static inline struct store_result run(struct env* e, struct store_cmd* c)
{
    return run_from(e, 7, c, NULL, NULL);
}

static inline void flush(struct env* e)
{
    struct store_frame* f;
    CHECK_EQ(store_frame_seal(e->st, &f), 0);
    if (f != NULL) {
        int rv = store_frame_write(e->st, f);
        CHECK_EQ(rv, 0);
        store_frame_done(e->st, f, rv);
    }
}

static inline uint64_t revision(struct env* e)
{
    struct store_stats s;
    store_get_stats(e->st, &s);
    return s.revision;
}

static inline void compact_now(struct env* e)
{
    flush(e);
    struct store_compaction* c;
    CHECK_EQ(store_compact_begin(e->st, &c), 0);
    CHECK_EQ(store_compact_run(c), 0);
    CHECK_EQ(store_compact_finish(e->st, c), 0);
}

/* ---- trees ---- */

struct node {
    char path[512];
    struct store_attr a;
    char* data;
    size_t len;
};

struct tree {
    struct node* v;
    size_t n, cap;
};

struct src {
    struct store* st;
    struct store_view* v;
};

struct kids {
    char names[256][256];
    uint64_t inos[256];
    size_t n;
};

static inline int kid_cb(void* data,
                         const char* name,
                         const struct store_attr* a)
{
    struct kids* k = data;
    CHECK(k->n < 256 && strlen(name) < 256);
    strcpy(k->names[k->n], name);
    k->inos[k->n++] = a->ino;
    return 0;
}

static inline void src_attr(struct src* s, uint64_t ino, struct store_attr* a)
{
    CHECK_EQ(
        s->v ? store_view_getattr(s->v, ino, a) : store_getattr(s->st, ino, a),
        0);
}

static inline void src_read(struct src* s,
                            uint64_t ino,
                            char** data,
                            size_t* len)
{
    if (s->v != NULL) {
        void* d;
        CHECK_EQ(store_view_read(s->v, ino, &d, len), 0);
        *data = d;
        return;
    }
    const void* d;
    CHECK_EQ(store_read(s->st, ino, &d, len), 0);
    *data = malloc(*len + 1);
    memcpy(*data, d, *len);
}

static inline void tree_add(struct tree* t,
                            struct src* s,
                            const char* path,
                            uint64_t ino)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = realloc(t->v, t->cap * sizeof(*t->v));
    }
    struct node* n = &t->v[t->n++];
    memset(n, 0, sizeof(*n));
    snprintf(n->path, sizeof(n->path), "%s", path);
    src_attr(s, ino, &n->a);
    if (n->a.type != STORE_DIR) {
        src_read(s, ino, &n->data, &n->len);
        CHECK_EQ(n->len, n->a.size);
    }
}

/* Breadth-first, children in name order. */
static inline void capture(struct src* s, struct tree* t)
{
    memset(t, 0, sizeof(*t));
    tree_add(t, s, "/", STORE_ROOT_INO);
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].a.type != STORE_DIR) {
            continue;
        }
        static struct kids k;
        k.n = 0;
        uint64_t dir = t->v[i].a.ino;
        CHECK_EQ(s->v ? store_view_readdir(s->v, dir, NULL, kid_cb, &k)
                      : store_readdir(s->st, dir, NULL, kid_cb, &k),
                 0);
        char base[512];
        snprintf(base, sizeof(base), "%s", t->v[i].path);
        for (size_t j = 0; j < k.n; j++) {
            char p[600];
            snprintf(p, sizeof(p), "%s%s%s", strcmp(base, "/") ? base : "", "/",
                     k.names[j]);
            tree_add(t, s, p, k.inos[j]);
        }
    }
}

static inline void tree_free(struct tree* t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].data);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static inline void attr_eq(const struct store_attr* x,
                           const struct store_attr* y)
{
    CHECK_EQ(x->ino, y->ino);
    CHECK_EQ(x->type, y->type);
    CHECK_EQ(x->mode, y->mode);
    CHECK_EQ(x->uid, y->uid);
    CHECK_EQ(x->gid, y->gid);
    CHECK_EQ(x->size, y->size);
    CHECK_EQ(x->atime_ns, y->atime_ns);
    CHECK_EQ(x->mtime_ns, y->mtime_ns);
    CHECK_EQ(x->ctime_ns, y->ctime_ns);
    CHECK_EQ(x->create_rev, y->create_rev);
    CHECK_EQ(x->mod_rev, y->mod_rev);
    CHECK_EQ(x->version, y->version);
    CHECK_EQ(x->nlink, y->nlink);
}

static inline void tree_eq(const struct tree* x, const struct tree* y)
{
    CHECK_EQ(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        if (strcmp(x->v[i].path, y->v[i].path) != 0) {
            fprintf(stderr, "path %s != %s\n", x->v[i].path, y->v[i].path);
            CHECK(false);
        }
        attr_eq(&x->v[i].a, &y->v[i].a);
        CHECK_EQ(x->v[i].len, y->v[i].len);
        CHECK(x->v[i].len == 0 ||
              memcmp(x->v[i].data, y->v[i].data, x->v[i].len) == 0);
    }
}

#endif /* QFS_TEST_HISTORY_ENV_H */
