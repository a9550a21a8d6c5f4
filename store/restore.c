/* restore.c - STORE_OP_RESTORE: in one revision, reset a subtree to its
 * state at a past revision (a named snapshot or "@REV").
 *
 * Built from the tree at that revision (history.c), so it is deterministic
 * on every replica holding the same history. Entries are matched by ino
 * inside the subtree: an entry live in the subtree and present in the
 * snapshot's subtree is updated in place (content, mode, owner, times,
 * name and parent: only if something differs); else the live entry at the
 * same place, of the same type, that no snapshot entry has by ino, is
 * reused (restoring twice changes nothing the second time); else the entry
 * is created again with a new ino (inos are never reused). Live entries of
 * the subtree matched by nothing are removed. Order of the records: the
 * snapshot's entries parents first (each lands under a parent already in place,
 * so no cycle can form; an entry holding its name is detached and placed or
 * deleted later in the same command), then the deletions deepest first.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "store_internal.h"

enum { RESTORE_DEPTH_MAX = STORE_PATH_LIMIT / 2 }; /* components of a path */

struct rs {
    struct apply_ctx* x;
    struct store_hist* h;
    const struct hist_ent* sroot; /* the subtree in the snapshot */
    struct entry* lparent;        /* live parent of the path (NULL: "/") */
    struct entry* lroot;          /* live entry at the path, or NULL */
    const char* last;             /* last component ("" for "/") */
    const struct hist_ent** S;    /* snapshot subtree, BFS */
    size_t ns;
    struct entry** L; /* live subtree, BFS */
    size_t nl;
    uint64_t* sinos; /* sorted inos of S and L */
    uint64_t* linos;
    uint64_t* newino; /* by index in h->ents: the live ino it becomes */
    uint8_t* claimed; /* by index in linos: matched by position */
};

static int parse_rev(const char* s, uint64_t* rev)
{
    char* end;
    if (s[1] < '0' || s[1] > '9') {
        return -ENOENT;
    }
    errno = 0;
    unsigned long long v = strtoull(s + 1, &end, 10);
    if (errno != 0 || *end != 0) {
        return -ENOENT;
    }
    *rev = v;
    return 0;
}

static int snapshot_rev(struct store* st, const char* name, uint64_t* rev)
{
    if (name == NULL || name[0] == 0) {
        return -ENOENT;
    }
    if (name[0] == '@') {
        return parse_rev(name, rev);
    }
    const struct store_snap* sn = store__snap_find(&st->s, name, strlen(name));
    if (sn == NULL) {
        return -ENOENT;
    }
    *rev = sn->revision;
    return 0;
}

/* Walk the path in the snapshot and in the live tree. */
static int resolve(struct rs* r, const char* path)
{
    struct store* st = r->x->st;
    if (path == NULL || path[0] != '/' || strlen(path) > st->opt.path_max) {
        return -EINVAL;
    }
    const struct hist_ent* s = store__hist_find(r->h, STORE_ROOT_INO);
    struct entry* l = st->s.root;
    struct entry* lp = NULL;
    const char* p = path;
    r->last = "";
    for (int depth = 0; depth < RESTORE_DEPTH_MAX; depth++) {
        while (*p == '/') {
            p++;
        }
        if (*p == 0) {
            break;
        }
        size_t n = strcspn(p, "/");
        if (n > st->opt.name_max || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.')) {
            return -EINVAL;
        }
        if (s == NULL || s->type != STORE_DIR) {
            return -ENOENT;
        }
        s = store__hist_child(r->h, s->ino, p, n);
        if (l == NULL || l->type != STORE_DIR) {
            return -ENOENT; /* the live parent must exist */
        }
        lp = l;
        l = store__child(l, p, n);
        r->last = p;
        p += n;
    }
    if (s == NULL) {
        return -ENOENT;
    }
    r->sroot = s;
    r->lparent = lp;
    r->lroot = l;
    return 0;
}

static int cmp_u64(const void* a, const void* b)
{
    uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
    return x < y ? -1 : x > y;
}

static bool has(const uint64_t* v, size_t n, uint64_t ino)
{
    return bsearch(&ino, v, n, sizeof(*v), cmp_u64) != NULL;
}

/* Both subtrees in BFS order, children by name. */
static int collect(struct rs* r)
{
    struct store_state* s = &r->x->st->s;
    /* clang-tidy false positive: arrays of pointers: sizeof(*p) with p a T**.
     */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    r->S = malloc(r->h->n * sizeof(*r->S));
    /* clang-tidy false positive: arrays of pointers: sizeof(*p) with p a T**.
     */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    r->L = malloc(s->nentries * sizeof(*r->L));
    r->sinos = malloc(r->h->n * sizeof(*r->sinos));
    r->linos = malloc(s->nentries * sizeof(*r->linos));
    r->newino = calloc(r->h->n, sizeof(*r->newino));
    r->claimed = calloc(s->nentries, 1);
    if (!r->S || !r->L || !r->sinos || !r->linos || !r->newino || !r->claimed) {
        return -ENOMEM;
    }
    r->S[r->ns++] = r->sroot;
    for (size_t i = 0; i < r->ns; i++) {
        const struct hist_ent* d = r->S[i];
        r->sinos[i] = d->ino;
        if (d->type != STORE_DIR) {
            continue;
        }
        size_t k = store__hist_child_after(r->h, d->ino, NULL, 0);
        for (; k < r->h->nkids && r->h->ents[r->h->kids[k]].parent == d->ino;
             k++) {
            const struct hist_ent* e = &r->h->ents[r->h->kids[k]];
            if (!store__reserved(d->ino, store__hist_name(r->h, e))) {
                assert(r->ns < r->h->n);
                r->S[r->ns++] = e;
            }
        }
    }
    if (r->lroot != NULL) {
        r->L[r->nl++] = r->lroot;
    }
    for (size_t i = 0; i < r->nl; i++) {
        /* clang-tidy false positive: L[0..nl) are written by collect before
         * this loop. */
        // NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign)
        struct entry* d = r->L[i];
        r->linos[i] = d->ino;
        struct entry* e = store__child_after(d, NULL, 0);
        for (uint32_t n = 0; e != NULL && n < d->nkids; n++) {
            if (!store__reserved(d->ino, entry_name(e))) {
                assert(r->nl < s->nentries);
                r->L[r->nl++] = e;
            }
            e = store__child_after(d, entry_name(e), e->name_len);
        }
    }
    qsort(r->sinos, r->ns, sizeof(uint64_t), cmp_u64);
    qsort(r->linos, r->nl, sizeof(uint64_t), cmp_u64);
    return 0;
}

static uint8_t* claim_of(struct rs* r, uint64_t ino)
{
    const uint64_t* p = bsearch(&ino, r->linos, r->nl, sizeof(ino), cmp_u64);
    return p != NULL ? &r->claimed[p - r->linos] : NULL;
}

/* The live entry a snapshot entry is restored into (NULL: create one):
 * the same ino in the live subtree, else the entry at the same place (same
 * type) that no snapshot entry has by ino, so that restoring twice changes
 * nothing the second time. */
static struct entry* match(struct rs* r,
                           const struct hist_ent* e,
                           uint64_t parent,
                           const char* name,
                           size_t len)
{
    struct store_state* s = &r->x->st->s;
    if (has(r->linos, r->nl, e->ino)) {
        struct entry* l = store__find(s, e->ino);
        if (l != NULL && l->type == e->type) {
            return l;
        }
    }
    struct entry* p = parent != 0 ? store__find(s, parent) : NULL;
    if (p == NULL || p->type != STORE_DIR) {
        return NULL;
    }
    struct entry* l = store__child(p, name, len);
    if (l == NULL || l->type != e->type || has(r->sinos, r->ns, l->ino)) {
        return NULL;
    }
    uint8_t* c = claim_of(r, l->ino);
    if (c == NULL || *c) {
        return NULL;
    }
    *c = 1;
    return l;
}

static bool kept(struct rs* r, const struct entry* l)
{
    const struct hist_ent* e = store__hist_find(r->h, l->ino);
    if (e != NULL && e->type == l->type && has(r->sinos, r->ns, l->ino)) {
        return true;
    }
    const uint8_t* c = claim_of(r, l->ino);
    return c != NULL && *c;
}

static int check_quota(struct rs* r)
{
    struct store* st = r->x->st;
    uint64_t drop = 0, add = 0;
    for (size_t i = 0; i < r->nl; i++) {
        drop += r->L[i]->size;
    }
    for (size_t i = 0; i < r->ns; i++) {
        const struct hist_ent* e = r->S[i];
        add += e->size;
        const struct hist_ent* t =
            e->type == STORE_LINK ? store__hist_find(r->h, e->target) : NULL;
        if (t != NULL && !has(r->sinos, r->ns, t->ino) &&
            store__find(&st->s, t->ino) == NULL) {
            add += t->size; /* a copy of a target gone since (at most) */
        }
    }
    if (add <= drop) {
        return 0;
    }
    return st->s.live_bytes - drop + add > st->opt.quota_bytes ? -ENOSPC : 0;
}

static bool same(const struct entry* l,
                 const struct store_rec* n,
                 const void* data,
                 size_t len)
{
    return l->parent == n->parent && l->name_len == n->name_len &&
           memcmp(entry_name(l), n->name, n->name_len) == 0 &&
           l->mode == n->mode && l->uid == n->uid && l->gid == n->gid &&
           l->atime_ns == n->atime_ns && l->mtime_ns == n->mtime_ns &&
           l->ctime_ns == n->ctime_ns && l->size == len &&
           (len == 0 || memcmp(entry_content(l), data, len) == 0);
}

/* Put one snapshot entry in place: the entry at `place` (its parent and
 * name in the snapshot), with the type, attributes and content of `src`
 * (place itself, or for a name entry whose target is gone, that target:
 * a copy). A name entry (src == place, STORE_LINK) gets `target`, the live
 * ino it names, as its content. */
static void restore_one(struct rs* r,
                        const struct hist_ent* place,
                        const struct hist_ent* src,
                        uint64_t target)
{
    struct apply_ctx* x = r->x;
    const struct hist_ent* e = place;
    void* data = NULL;
    size_t len = 0;
    if (src->type == STORE_LINK) {
        data = malloc(STORE_LINK_LEN);
        if (data == NULL) {
            x->fatal = -ENOMEM;
            return;
        }
        put_le64(data, target);
        len = STORE_LINK_LEN;
    } else if (src->type != STORE_DIR && src->size > 0) {
        int rv = store__content_at(x->st, src->loc_frame, src->loc_rec,
                                   src->ino, &data, &len);
        if (rv != 0) {
            x->fatal = rv == -ENOMEM ? rv : -EIO;
            return;
        }
    }
    uint64_t parent = 0;
    if (e == r->sroot) {
        parent = r->lparent != NULL ? r->lparent->ino : 0;
    } else {
        const struct hist_ent* sp = store__hist_find(r->h, e->parent);
        assert(sp != NULL && r->newino[sp - r->h->ents] != 0);
        parent = r->newino[sp - r->h->ents];
    }
    const char* name = e == r->sroot ? r->last : store__hist_name(r->h, e);
    uint16_t name_len =
        e == r->sroot ? (uint16_t)strcspn(r->last, "/") : e->name_len;
    /* match by the type the entry gets */
    struct hist_ent like = *e;
    like.type = src->type;
    struct entry* l = match(r, src == e ? e : &like, parent, name, name_len);
    struct store_rec n = {
        .ino = l != NULL ? l->ino : x->st->s.next_ino,
        .parent = parent,
        .type = src->type,
        .mode = src->mode,
        .uid = src->uid,
        .gid = src->gid,
        .create_rev = l != NULL ? l->create_rev : x->rev,
        .version = l != NULL ? l->version + 1 : 1,
        .atime_ns = src->atime_ns,
        .mtime_ns = src->mtime_ns,
        .ctime_ns = src->ctime_ns,
        .prev_frame = l != NULL ? l->loc_frame : UINT64_MAX,
        .prev_rec = l != NULL ? l->loc_rec : 0,
        .name = name,
        .name_len = name_len,
        .content = data,
        .content_len = (uint32_t)len,
    };
    r->newino[e - r->h->ents] = n.ino;
    if (l != NULL && same(l, &n, data, len)) {
        free(data);
        return;
    }
    char old[STORE_NAME_LIMIT + 1];
    uint64_t old_parent = l != NULL ? l->parent : 0;
    uint64_t old_target = l != NULL && l->type == STORE_LINK ? l->target : 0;
    bool moved =
        l != NULL && (l->parent != n.parent || l->name_len != n.name_len ||
                      memcmp(entry_name(l), n.name, n.name_len) != 0);
    if (moved) {
        memcpy(old, entry_name(l), l->name_len + 1u);
    }
    if (l == NULL) {
        x->st->s.next_ino++;
    }
    store__commit_put(x, &n);
    free(data);
    /* what the kernel and watchers know: a name entry's target */
    uint64_t ino = n.type == STORE_LINK ? target : n.ino;
    if (n.type == STORE_LINK) {
        /* a target outside the restored entries: a name more, a new
         * ctime (a restored one has the revision's times) */
        struct entry* t = has(r->sinos, r->ns, target)
                              ? NULL
                              : store__find(&x->st->s, target);
        if (t != NULL && t->mod_rev != x->rev) { /* not put here */
            store__touch_names(x, t);
        }
        struct entry* ot = old_target != 0 && old_target != target
                               ? store__find(&x->st->s, old_target)
                               : NULL;
        if (ot != NULL) {
            store__touch_names(x, ot);
        }
    }
    if (moved || (old_target != 0 && old_target != target)) {
        store__notify(x, old_target != 0 ? old_target : ino, old_parent, old,
                      true);
    }
    if (moved || l == NULL || (old_target != 0 && old_target != target)) {
        char now[STORE_NAME_LIMIT + 1];
        memcpy(now, n.name, n.name_len);
        now[n.name_len] = 0;
        store__notify(x, ino, n.parent, now, false);
    }
    store__notify(x, ino, 0, NULL, false);
}

/* The live ino a snapshot name entry names once restored: its target's
 * new ino when the target is restored too, else the target itself when
 * it is live (outside the subtree), else 0: the target is gone (the name
 * is restored as a copy of it). */
static uint64_t link_target(struct rs* r, const struct hist_ent* e)
{
    const struct hist_ent* t = store__hist_find(r->h, e->target);
    assert(t != NULL); /* the build checked it */
    if (has(r->sinos, r->ns, t->ino) && r->newino[t - r->h->ents] != 0) {
        return r->newino[t - r->h->ents];
    }
    const struct entry* l = store__find(&r->x->st->s, t->ino);
    if (l != NULL && l->type == t->type) {
        return l->ino;
    }
    return 0;
}

/* The snapshot's name entries, once every other entry is in place. */
static void restore_links(struct rs* r)
{
    for (size_t i = 0; i < r->ns && r->x->fatal == 0; i++) {
        const struct hist_ent* e = r->S[i];
        if (e->type != STORE_LINK) {
            continue;
        }
        const struct hist_ent* t = store__hist_find(r->h, e->target);
        uint64_t target = link_target(r, e);
        if (target == 0 && r->newino[t - r->h->ents] != 0) {
            target = r->newino[t - r->h->ents]; /* its copy, made before */
        }
        if (target != 0) {
            restore_one(r, e, e, target);
            continue;
        }
        /* The target is gone and outside the subtree: the name becomes a
         * copy of it as of the revision; its other names here name that
         * copy. */
        restore_one(r, e, t, 0);
        r->newino[t - r->h->ents] = r->newino[e - r->h->ents];
    }
}

static void remove_one(struct rs* r, struct entry* l)
{
    char name[STORE_NAME_LIMIT + 1];
    struct entry* t = store__resolve(&r->x->st->s, l);
    uint64_t ino = t != NULL ? t->ino : l->ino, parent = l->parent;
    bool named = l->attached; /* a detached one lost its name already */
    bool stays = t != l || l->nlinks > 0;
    memcpy(name, entry_name(l), l->name_len + 1u);
    if (l->type == STORE_LINK && has(r->sinos, r->ns, l->target)) {
        store__commit_del(r->x, l); /* its target has the revision's times */
    } else {
        store__remove_name(r->x, l);
    }
    if (named) {
        store__notify(r->x, ino, parent, name, true);
    }
    if (stays) {
        store__notify(r->x, ino, 0, NULL, false);
    }
}

static int restore_tree(struct rs* r, const char* path)
{
    int rv = resolve(r, path);
    if (rv == 0) {
        rv = collect(r);
        if (rv != 0) {
            r->x->fatal = rv;
            return 0;
        }
        rv = check_quota(r);
    }
    if (rv != 0) {
        return rv;
    }
    /* Every entry but the name entries, parents first; then the name
     * entries (leaves), whose targets are in place by then. */
    for (size_t i = 0; i < r->ns && r->x->fatal == 0; i++) {
        if (r->S[i]->type != STORE_LINK) {
            restore_one(r, r->S[i], r->S[i], 0);
        }
    }
    restore_links(r);
    /* Removals: the name entries first, so that an inode whose primary
     * name goes while it keeps other names moves to one of those (never
     * to a name removed next); then the rest, deepest first. */
    uint8_t* done = calloc(r->nl ? r->nl : 1, 1);
    if (done == NULL) {
        r->x->fatal = -ENOMEM;
        return 0;
    }
    for (size_t i = r->nl; i-- > 0 && r->x->fatal == 0;) {
        if (r->L[i]->type == STORE_LINK) {
            done[i] = 1;
            if (!kept(r, r->L[i])) {
                remove_one(r, r->L[i]);
            }
        }
    }
    for (size_t i = r->nl; i-- > 0 && r->x->fatal == 0;) {
        if (!done[i] && !kept(r, r->L[i])) {
            remove_one(r, r->L[i]);
        }
    }
    free(done);
    bool renamed = r->lroot == NULL || r->lroot->ino != r->sroot->ino;
    if (r->lparent != NULL && renamed && r->x->fatal == 0) {
        store__touch_dir(r->x, r->lparent);
        store__notify(r->x, r->lparent->ino, 0, NULL, false);
    }
    uint64_t ino = r->newino[r->sroot - r->h->ents];
    const struct entry* top = store__find(&r->x->st->s, ino);
    if (top != NULL && top->type == STORE_LINK) {
        ino = top->target; /* the path names a file through a name entry */
    }
    r->x->ino = ino;
    return 0;
}

int store__op_restore(struct apply_ctx* x)
{
    struct store* st = x->st;
    uint64_t rev = 0;
    int rv = snapshot_rev(st, x->c->name, &rev);
    if (rv != 0) {
        return rv;
    }
    if (rev > st->s.revision) {
        return -ENOENT; /* "@REV" of a revision not made yet */
    }
    if (rev < st->s.compact_rev) {
        return store__hist_check(st, rev); /* -ENOENT, logged */
    }
    struct rs r = {.x = x};
    rv = store__hist_build(st, rev, &r.h);
    if (rv != 0) {
        /* Every replica retains this revision; this one cannot read it
         * (history lost to an image install, or a bad db file): applying
         * anything else would diverge, so the store stops. */
        store__trace(st, STORE_TRACE_ERROR,
                     "restore of revision %" PRIu64
                     " cannot be applied here (%d): store stops applying",
                     rev, rv);
        x->fatal = rv == -ENOMEM ? rv : -EIO;
        return 0;
    }
    rv = restore_tree(&r, x->c->new_name);
    free(r.S);
    free(r.L);
    free(r.sinos);
    free(r.linos);
    free(r.newino);
    free(r.claimed);
    store__hist_free(r.h);
    return rv;
}
