/* index.c - the in-memory namespace: ino hash map, per-directory children
 * treaps ordered by name, the dedup table, and the three primitives that
 * change the replicated state (store_internal.h). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "store_internal.h"

/* ---- hash map ino -> entry (chained) ---- */

static size_t ino_bucket(const struct store_state* s, uint64_t ino)
{
    uint64_t h = ino * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (s->nbuckets - 1);
}

struct entry* store__find(const struct store_state* s, uint64_t ino)
{
    struct entry* e = s->buckets[ino_bucket(s, ino)];
    while (e != NULL && e->ino != ino) {
        e = e->hnext;
    }
    return e;
}

static int hash_grow(struct store_state* s)
{
    size_t n = s->nbuckets * 2;
    /* clang-tidy false positive: an array of pointers. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    struct entry** b = calloc(n, sizeof(*b));
    if (b == NULL) {
        return -ENOMEM;
    }
    struct entry** old = s->buckets;
    size_t old_n = s->nbuckets;
    s->buckets = b;
    s->nbuckets = n;
    for (size_t i = 0; i < old_n; i++) {
        struct entry* e = old[i];
        while (e != NULL) {
            struct entry* next = e->hnext;
            size_t k = ino_bucket(s, e->ino);
            e->hnext = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(old);
    return 0;
}

static int hash_insert(struct store_state* s, struct entry* e)
{
    if (s->nentries + 1 > s->nbuckets) {
        int rv = hash_grow(s);
        if (rv != 0) {
            return rv;
        }
    }
    size_t k = ino_bucket(s, e->ino);
    e->hnext = s->buckets[k];
    s->buckets[k] = e;
    s->nentries++;
    return 0;
}

static void hash_remove(struct store_state* s, struct entry* e)
{
    struct entry** link = &s->buckets[ino_bucket(s, e->ino)];
    while (*link != e) {
        assert(*link != NULL);
        link = &(*link)->hnext;
    }
    *link = e->hnext;
    s->nentries--;
}

/* ---- name entries by target ino (hard links) ---- */

static size_t link_bucket(const struct store_state* s, uint64_t target)
{
    uint64_t h = target * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (s->nlbuckets - 1);
}

static int link_grow(struct store_state* s)
{
    size_t n = s->nlbuckets == 0 ? 64 : s->nlbuckets * 2;
    /* clang-tidy false positive: an array of pointers. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    struct entry** b = calloc(n, sizeof(*b));
    if (b == NULL) {
        return -ENOMEM;
    }
    struct entry** old = s->lbuckets;
    size_t old_n = s->nlbuckets;
    s->lbuckets = b;
    s->nlbuckets = n;
    for (size_t i = 0; i < old_n; i++) {
        struct entry* e = old[i];
        while (e != NULL) {
            struct entry* next = e->lnext;
            size_t k = link_bucket(s, e->target);
            e->lnext = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(old);
    return 0;
}

/* Index name entry e (e->target set; room for it made by link_grow); its
 * target, if live, counts it. */
static void link_insert(struct store_state* s, struct entry* e)
{
    assert(s->nlinks + 1 <= s->nlbuckets);
    size_t k = link_bucket(s, e->target);
    e->lnext = s->lbuckets[k];
    s->lbuckets[k] = e;
    s->nlinks++;
    struct entry* t = store__find(s, e->target);
    if (t != NULL) {
        t->nlinks++;
    }
}

static void link_remove(struct store_state* s, struct entry* e)
{
    struct entry** link = &s->lbuckets[link_bucket(s, e->target)];
    while (*link != e) {
        assert(*link != NULL);
        link = &(*link)->lnext;
    }
    *link = e->lnext;
    e->lnext = NULL;
    s->nlinks--;
    struct entry* t = store__find(s, e->target);
    if (t != NULL) {
        assert(t->nlinks > 0);
        t->nlinks--;
    }
}

/* Name entries naming ino (an entry put after its names: image order). */
static uint32_t link_count(const struct store_state* s, uint64_t ino)
{
    uint32_t n = 0;
    if (s->nlbuckets == 0) {
        return 0;
    }
    for (struct entry* l = s->lbuckets[link_bucket(s, ino)]; l != NULL;
         l = l->lnext) {
        n += l->target == ino;
    }
    return n;
}

struct entry* store__link_next(const struct store_state* s,
                               uint64_t target,
                               uint64_t after)
{
    struct entry* best = NULL;
    if (s->nlbuckets == 0) {
        return NULL;
    }
    for (struct entry* l = s->lbuckets[link_bucket(s, target)]; l != NULL;
         l = l->lnext) {
        if (l->target == target && l->ino > after &&
            (best == NULL || l->ino < best->ino)) {
            best = l;
        }
    }
    return best;
}

struct entry* store__resolve(const struct store_state* s, struct entry* e)
{
    return e != NULL && e->type == STORE_LINK ? store__find(s, e->target) : e;
}

/* ---- children treap ---- */

static uint64_t prio(const struct entry* e)
{
    uint64_t z = e->ino + 0x9E3779B97F4A7C15ull; /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int name_cmp(const char* a, size_t alen, const char* b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

static int entry_cmp(const struct entry* e, const char* name, size_t len)
{
    return name_cmp(entry_name(e), e->name_len, name, len);
}

struct entry* store__child(const struct entry* dir,
                           const char* name,
                           size_t len)
{
    struct entry* t = dir->kids;
    while (t != NULL) {
        int c = entry_cmp(t, name, len);
        if (c == 0) {
            return t;
        }
        t = c < 0 ? t->right : t->left;
    }
    return NULL;
}

struct entry* store__child_after(const struct entry* dir,
                                 const char* after,
                                 size_t len)
{
    struct entry* t = dir->kids;
    struct entry* best = NULL;
    while (t != NULL) {
        if (after == NULL || entry_cmp(t, after, len) > 0) {
            best = t;
            t = t->left;
        } else {
            t = t->right;
        }
    }
    return best;
}

/* Iterative split of t into names < key (l) and names > key (r). */
static void treap_split(struct entry* t,
                        const struct entry* key,
                        struct entry** l,
                        struct entry** r)
{
    struct entry **lp = l, **rp = r;
    while (t != NULL) {
        if (entry_cmp(t, entry_name(key), key->name_len) < 0) {
            *lp = t;
            lp = &t->right;
            t = t->right;
        } else {
            *rp = t;
            rp = &t->left;
            t = t->left;
        }
    }
    *lp = NULL;
    *rp = NULL;
}

static struct entry* treap_merge(struct entry* a, struct entry* b)
{
    struct entry* res = NULL;
    struct entry** link = &res;
    while (a != NULL && b != NULL) {
        if (prio(a) > prio(b)) {
            *link = a;
            link = &a->right;
            a = a->right;
        } else {
            *link = b;
            link = &b->left;
            b = b->left;
        }
    }
    *link = a != NULL ? a : b;
    return res;
}

static void treap_insert(struct entry* dir, struct entry* e)
{
    uint64_t p = prio(e);
    struct entry** link = &dir->kids;
    while (*link != NULL && prio(*link) >= p) {
        int c = entry_cmp(*link, entry_name(e), e->name_len);
        assert(c != 0);
        link = c < 0 ? &(*link)->right : &(*link)->left;
    }
    treap_split(*link, e, &e->left, &e->right);
    *link = e;
}

static void treap_remove(struct entry* dir, struct entry* e)
{
    struct entry** link = &dir->kids;
    while (*link != e) {
        assert(*link != NULL);
        int c = entry_cmp(*link, entry_name(e), e->name_len);
        link = c < 0 ? &(*link)->right : &(*link)->left;
    }
    *link = treap_merge(e->left, e->right);
    e->left = e->right = NULL;
}

static void detach(struct store_state* s, struct entry* e)
{
    if (!e->attached || e == s->root) {
        return;
    }
    struct entry* p = store__find(s, e->parent);
    assert(p != NULL && p->type == STORE_DIR);
    treap_remove(p, e);
    p->nkids--;
    if (e->type == STORE_DIR) {
        p->nsubdirs--;
    }
    e->attached = 0;
}

static void attach(struct entry* p, struct entry* e)
{
    assert(!e->attached);
    treap_insert(p, e);
    p->nkids++;
    if (e->type == STORE_DIR) {
        p->nsubdirs++;
    }
    e->attached = 1;
}

/* ---- state ---- */

int store__state_init(struct store_state* s)
{
    memset(s, 0, sizeof(*s));
    s->nbuckets = STORE_HASH_BUCKETS_MIN;
    /* clang-tidy false positive: an array of pointers. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    if (s->buckets == NULL) {
        return -ENOMEM;
    }
    struct entry* r = calloc(1, sizeof(*r));
    if (r == NULL) {
        goto err_after_buckets;
    }
    r->buf = calloc(1, 1);
    if (r->buf == NULL) {
        goto err_after_root;
    }
    r->ino = STORE_ROOT_INO;
    r->type = STORE_DIR;
    r->mode = 0755;
    r->version = 1;
    r->attached = 1;
    r->loc_frame = UINT64_MAX;
    hash_insert(s, r); /* cannot fail: buckets are empty */
    s->root = r;
    s->next_ino = STORE_ROOT_INO + 1;
    return 0;

err_after_root:
    free(r);
err_after_buckets:
    free(s->buckets);
    s->buckets = NULL;
    return -ENOMEM;
}

void store__state_free(struct store_state* s)
{
    for (size_t i = 0; s->buckets != NULL && i < s->nbuckets; i++) {
        struct entry* e = s->buckets[i];
        while (e != NULL) {
            struct entry* next = e->hnext;
            free(e->buf);
            free(e);
            e = next;
        }
    }
    free(s->buckets);
    free(s->lbuckets);
    for (size_t i = 0; i < s->norigins; i++) {
        free(s->origins[i].res);
    }
    free(s->origins);
    for (size_t i = 0; i < s->nsnaps; i++) {
        free(s->snaps[i].name);
    }
    free(s->snaps);
    for (size_t i = 0; i < s->nresvs; i++) {
        free(s->resvs[i].name);
    }
    free(s->resvs);
    memset(s, 0, sizeof(*s));
}

static bool name_ok(const char* name, size_t len)
{
    if (len == 0 || len > STORE_NAME_LIMIT) {
        return false;
    }
    if (memchr(name, '/', len) != NULL || memchr(name, 0, len) != NULL) {
        return false;
    }
    return !(len == 1 && name[0] == '.') &&
           !(len == 2 && name[0] == '.' && name[1] == '.');
}

static int check_put(struct store_state* s,
                     const struct store_rec* r,
                     struct entry* e,
                     struct entry** parent,
                     char* msg,
                     size_t cap)
{
    if (r->type < STORE_FILE || r->type > STORE_LINK ||
        (r->type == STORE_DIR && r->content_len != 0) ||
        (r->type == STORE_LINK && (r->content_len != STORE_LINK_LEN ||
                                   get_le64(r->content) <= STORE_ROOT_INO ||
                                   get_le64(r->content) == r->ino ||
                                   get_le64(r->content) >= s->next_ino)) ||
        ((r->type == STORE_FIFO || r->type == STORE_SOCK) &&
         r->content_len != 0) ||
        ((r->type == STORE_CHR || r->type == STORE_BLK) &&
         r->content_len != STORE_RDEV_LEN) ||
        (r->mode & ~07777u) != 0) {
        snprintf(msg, cap, "ino %" PRIu64 ": bad type/mode", r->ino);
        return -EUCLEAN;
    }
    if (e != NULL && e->type != r->type) {
        snprintf(msg, cap, "ino %" PRIu64 ": type changed", r->ino);
        return -EUCLEAN;
    }
    if (r->ino == STORE_ROOT_INO) {
        if (r->type != STORE_DIR || r->parent != 0 || r->name_len != 0) {
            snprintf(msg, cap, "root record malformed");
            return -EUCLEAN;
        }
        *parent = NULL;
        return 0;
    }
    if (r->ino == 0 || r->ino >= s->next_ino ||
        !name_ok(r->name, r->name_len)) {
        snprintf(msg, cap, "ino %" PRIu64 ": bad ino or name", r->ino);
        return -EUCLEAN;
    }
    struct entry* p = store__find(s, r->parent);
    if (p == NULL || p->type != STORE_DIR || p == e) {
        snprintf(msg, cap, "ino %" PRIu64 ": parent %" PRIu64 " not a dir",
                 r->ino, r->parent);
        return -EUCLEAN;
    }
    *parent = p;
    return 0;
}

/* p[0..n) lies inside buf[0..len) (compared as addresses). */
static bool points_into(const void* p, size_t n, const char* buf, size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)buf;
    return n > 0 && a < b + len && b < a + n;
}

/* e's buffer can take r's name and content in place: same size, and what r
 * borrows from that buffer (store__rec_from_entry) sits where it goes. */
static bool buf_reusable(const struct entry* e,
                         const struct store_rec* r,
                         size_t len)
{
    if (e == NULL || len != (size_t)e->name_len + 1 + e->size) {
        return false;
    }
    if (points_into(r->name, r->name_len, e->buf, len) && r->name != e->buf) {
        return false;
    }
    return !points_into(r->content, r->content_len, e->buf, len) ||
           (const char*)r->content == e->buf + r->name_len + 1;
}

int store__state_put(struct store_state* s,
                     const struct store_rec* r,
                     uint64_t loc_frame,
                     uint32_t loc_rec,
                     char* msg,
                     size_t cap)
{
    struct entry* e = store__find(s, r->ino);
    struct entry* p = NULL;
    int rv = check_put(s, r, e, &p, msg, cap);
    if (rv != 0) {
        return rv;
    }
    size_t len = (size_t)r->name_len + 1 + r->content_len;
    char* buf;
    bool same_buf = buf_reusable(e, r, len);
    if (same_buf) {
        /* Same size (a directory touched, a value rewritten with one of
         * the same length): updated in place below, once the entry is
         * detached under its old name. A free + malloc per change leaves
         * holes that a long run turns into resident heap. */
        buf = e->buf;
    } else {
        buf = malloc(len);
        if (buf == NULL) {
            return -ENOMEM;
        }
        memcpy(buf, r->name, r->name_len);
        buf[r->name_len] = 0;
        if (r->content_len > 0) {
            memcpy(buf + r->name_len + 1, r->content, r->content_len);
        }
    }
    bool fresh = e == NULL;
    uint64_t target =
        r->type == STORE_LINK ? get_le64(r->content) : 0; /* before memmove */
    if (fresh) {
        if (r->type == STORE_LINK && s->nlinks + 1 > s->nlbuckets &&
            link_grow(s) != 0) {
            free(buf);
            return -ENOMEM;
        }
        e = calloc(1, sizeof(*e));
        if (e != NULL) {
            e->ino = r->ino;
            e->type = r->type;
            e->target = target;
        }
        if (e == NULL || hash_insert(s, e) != 0) {
            free(e);
            free(buf);
            return -ENOMEM;
        }
        if (r->type == STORE_LINK) {
            link_insert(s, e); /* cannot fail: room made above */
        }
        if (r->type != STORE_LINK) {
            e->nlinks = link_count(s, r->ino);
        }
    } else if (r->type == STORE_LINK && e->target != target) {
        link_remove(s, e); /* a restore pointing a name elsewhere */
        e->target = target;
        link_insert(s, e); /* cannot fail: the count did not grow */
    }
    bool moved = fresh || !e->attached || e->parent != r->parent ||
                 name_cmp(entry_name(e), e->name_len, r->name, r->name_len);
    if (moved && !fresh) {
        detach(s, e);
    }
    if (!fresh) {
        s->live_bytes -= e->size;
        if (!same_buf) {
            free(e->buf);
        }
    }
    if (same_buf) {
        memmove(buf, r->name, r->name_len);
        buf[r->name_len] = 0;
        if (r->content_len > 0) {
            memmove(buf + r->name_len + 1, r->content, r->content_len);
        }
    }
    e->buf = buf;
    e->name_len = r->name_len;
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
    e->loc_frame = loc_frame;
    e->loc_rec = loc_rec;
    s->live_bytes += e->size;
    if (moved && p != NULL) {
        struct entry* o = store__child(p, r->name, r->name_len);
        if (o != NULL) {
            detach(s, o); /* a later record of this command places it */
        }
        attach(p, e);
    }
    return 0;
}

int store__state_del(struct store_state* s, uint64_t ino, char* msg, size_t cap)
{
    struct entry* e = store__find(s, ino);
    if (e == NULL || e == s->root || e->nkids != 0 || e->nlinks != 0) {
        snprintf(msg, cap, "delete of ino %" PRIu64 ": %s", ino,
                 e == NULL ? "absent"
                           : "root, non-empty dir or inode with other names");
        return -EUCLEAN;
    }
    if (e->type == STORE_LINK) {
        link_remove(s, e);
    }
    detach(s, e);
    hash_remove(s, e);
    s->live_bytes -= e->size;
    free(e->buf);
    free(e);
    return 0;
}

int store__state_check(const struct store_state* s, char* msg, size_t cap)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct entry* e = s->buckets[i]; e != NULL; e = e->hnext) {
            if (!e->attached) {
                snprintf(msg, cap, "ino %" PRIu64 " left without a name",
                         e->ino);
                return -EUCLEAN;
            }
            const struct entry* t =
                e->type == STORE_LINK ? store__find(s, e->target) : NULL;
            if (e->type == STORE_LINK &&
                (t == NULL || t->type == STORE_DIR || t->type == STORE_LINK)) {
                snprintf(msg, cap,
                         "name entry %" PRIu64 ": target %" PRIu64
                         " absent or not a file",
                         e->ino, e->target);
                return -EUCLEAN;
            }
        }
    }
    return 0;
}

/* ---- dedup ---- */

static struct dedup_origin* origin_find(const struct store_state* s,
                                        uint64_t origin,
                                        size_t* pos)
{
    size_t lo = 0, hi = s->norigins;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->origins[mid].origin < origin) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *pos = lo;
    if (lo < s->norigins && s->origins[lo].origin == origin) {
        return &s->origins[lo];
    }
    return NULL;
}

/* Drop the origin with the lowest highest-seq (ties: lowest origin). */
static void evict_origin(struct store_state* s)
{
    size_t victim = 0;
    for (size_t i = 1; i < s->norigins; i++) {
        if (s->origins[i].high < s->origins[victim].high) {
            victim = i;
        }
    }
    free(s->origins[victim].res);
    memmove(&s->origins[victim], &s->origins[victim + 1],
            (s->norigins - victim - 1) * sizeof(s->origins[0]));
    s->norigins--;
}

bool store__dedup_seen(const struct store_state* s,
                       uint64_t origin,
                       uint64_t seq)
{
    size_t pos;
    if (origin == 0 || seq == 0) {
        return false;
    }
    const struct dedup_origin* o = origin_find(s, origin, &pos);
    if (o == NULL || seq > o->high) {
        return false;
    }
    if (seq == o->high || o->high - seq > STORE_DEDUP_WINDOW) {
        return true;
    }
    return (o->window >> (o->high - seq - 1)) & 1;
}

/* Keep res in o's slot of its seq, or forget what the slot held (res
 * NULL: the result of seq is not known). Seqs out of the window: nothing. */
static int result_keep(struct dedup_origin* o,
                       uint64_t seq,
                       const struct dedup_result* res)
{
    if (o->high - seq > STORE_DEDUP_WINDOW) {
        return 0;
    }
    if (o->res == NULL) {
        if (res == NULL) {
            return 0;
        }
        o->res = calloc(STORE_DEDUP_SLOTS, sizeof(*o->res));
        if (o->res == NULL) {
            return -ENOMEM;
        }
    }
    struct dedup_result* slot = &o->res[seq % STORE_DEDUP_SLOTS];
    if (res != NULL) {
        assert(res->seq == seq);
        *slot = *res;
    } else if (slot->seq != seq) {
        memset(slot, 0, sizeof(*slot));
    }
    return 0;
}

int store__dedup_mark(struct store_state* s,
                      uint64_t origin,
                      uint64_t seq,
                      const struct dedup_result* res)
{
    size_t pos;
    if (origin == 0 || seq == 0) {
        return 0;
    }
    struct dedup_origin* o = origin_find(s, origin, &pos);
    if (o == NULL) {
        if (s->norigins == STORE_ORIGINS_MAX) {
            evict_origin(s); /* deterministic: the same on every replica */
            origin_find(s, origin, &pos);
        }
        void* n = realloc(s->origins, (s->norigins + 1) * sizeof(*o));
        if (n == NULL) {
            return -ENOMEM;
        }
        s->origins = n;
        memmove(&s->origins[pos + 1], &s->origins[pos],
                (s->norigins - pos) * sizeof(*o));
        s->norigins++;
        o = &s->origins[pos];
        *o = (struct dedup_origin){.origin = origin, .high = seq};
        return result_keep(o, seq, res);
    }
    if (seq > o->high) {
        uint64_t shift = seq - o->high;
        o->window = shift >= STORE_DEDUP_WINDOW ? 0 : o->window << shift;
        if (shift <= STORE_DEDUP_WINDOW) {
            o->window |= 1ull << (shift - 1);
        }
        o->high = seq;
    } else if (seq < o->high && o->high - seq <= STORE_DEDUP_WINDOW) {
        o->window |= 1ull << (o->high - seq - 1);
    }
    return result_keep(o, seq, res);
}

const struct dedup_result* store__dedup_result(const struct store_state* s,
                                               uint64_t origin,
                                               uint64_t seq)
{
    size_t pos;
    if (origin == 0 || seq == 0) {
        return NULL;
    }
    const struct dedup_origin* o = origin_find(s, origin, &pos);
    if (o == NULL || o->res == NULL || seq > o->high ||
        o->high - seq > STORE_DEDUP_WINDOW) {
        return NULL;
    }
    const struct dedup_result* r = &o->res[seq % STORE_DEDUP_SLOTS];
    return r->seq == seq ? r : NULL;
}

/* ---- named snapshots ---- */

static int snap_cmp(const char* a, const char* b, size_t blen)
{
    size_t alen = strlen(a);
    return name_cmp(a, alen, b, blen);
}

/* Binary search: *pos = insertion point. */
static struct store_snap* snap_search(const struct store_state* s,
                                      const char* name,
                                      size_t len,
                                      size_t* pos)
{
    size_t lo = 0, hi = s->nsnaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (snap_cmp(s->snaps[mid].name, name, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *pos = lo;
    if (lo < s->nsnaps && snap_cmp(s->snaps[lo].name, name, len) == 0) {
        return &s->snaps[lo];
    }
    return NULL;
}

struct store_snap* store__snap_find(const struct store_state* s,
                                    const char* name,
                                    size_t len)
{
    size_t pos;
    return snap_search(s, name, len, &pos);
}

int store__snap_add(struct store_state* s,
                    const char* name,
                    size_t len,
                    uint64_t rev,
                    int64_t ctime_ns)
{
    size_t pos;
    assert(len > 0 && len <= STORE_SNAP_NAME_MAX);
    if (snap_search(s, name, len, &pos) != NULL) {
        return -EEXIST;
    }
    if (s->nsnaps == STORE_SNAPS_MAX) {
        return -ENOSPC;
    }
    char* copy = strndup(name, len);
    if (copy == NULL) {
        return -ENOMEM;
    }
    struct store_snap* n = realloc(s->snaps, (s->nsnaps + 1) * sizeof(*n));
    if (n == NULL) {
        free(copy);
        return -ENOMEM;
    }
    s->snaps = n;
    memmove(&n[pos + 1], &n[pos], (s->nsnaps - pos) * sizeof(*n));
    n[pos] = (struct store_snap){
        .name = copy, .revision = rev, .ctime_ns = ctime_ns};
    s->nsnaps++;
    return 0;
}

int store__snap_del(struct store_state* s, const char* name, size_t len)
{
    size_t pos;
    struct store_snap* sn = snap_search(s, name, len, &pos);
    if (sn == NULL) {
        return -ENOENT;
    }
    free(sn->name);
    memmove(&s->snaps[pos], &s->snaps[pos + 1],
            (s->nsnaps - pos - 1) * sizeof(s->snaps[0]));
    s->nsnaps--;
    return 0;
}

uint64_t store__snap_oldest(const struct store_state* s)
{
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < s->nsnaps; i++) {
        if (s->snaps[i].revision < oldest) {
            oldest = s->snaps[i].revision;
        }
    }
    return oldest;
}

/* ---- name reservations ---- */

static int resv_cmp(const struct store_resv* r,
                    uint64_t parent,
                    const char* name,
                    size_t len)
{
    if (r->parent != parent) {
        return r->parent < parent ? -1 : 1;
    }
    return name_cmp(r->name, r->name_len, name, len);
}

/* Binary search: *pos = insertion point. */
static struct store_resv* resv_search(const struct store_state* s,
                                      uint64_t parent,
                                      const char* name,
                                      size_t len,
                                      size_t* pos)
{
    size_t lo = 0, hi = s->nresvs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (resv_cmp(&s->resvs[mid], parent, name, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *pos = lo;
    if (lo < s->nresvs && resv_cmp(&s->resvs[lo], parent, name, len) == 0) {
        return &s->resvs[lo];
    }
    return NULL;
}

struct store_resv* store__resv_find(const struct store_state* s,
                                    uint64_t parent,
                                    const char* name,
                                    size_t len)
{
    size_t pos;
    return resv_search(s, parent, name, len, &pos);
}

int store__resv_set(struct store_state* s, const struct store_resv_rec* r)
{
    size_t pos;
    struct store_resv* v =
        resv_search(s, r->parent, r->name, r->name_len, &pos);
    if (v == NULL) {
        char* copy = strndup(r->name, r->name_len);
        if (copy == NULL) {
            return -ENOMEM;
        }
        struct store_resv* n = realloc(s->resvs, (s->nresvs + 1) * sizeof(*n));
        if (n == NULL) {
            free(copy);
            return -ENOMEM;
        }
        s->resvs = n;
        memmove(&n[pos + 1], &n[pos], (s->nresvs - pos) * sizeof(*n));
        v = &n[pos];
        *v = (struct store_resv){
            .parent = r->parent, .name = copy, .name_len = r->name_len};
        s->nresvs++;
    }
    v->origin = r->origin;
    v->token = r->token;
    v->ino = r->ino;
    v->expire_ns = r->expire_ns;
    return 0;
}

uint64_t store__resv_ino(const struct store_state* s,
                         uint64_t origin,
                         uint64_t token)
{
    for (size_t i = 0; i < s->nresvs; i++) {
        if (s->resvs[i].origin == origin && s->resvs[i].token == token) {
            return s->resvs[i].ino;
        }
    }
    return 0;
}

int store__resv_del(struct store_state* s,
                    uint64_t parent,
                    const char* name,
                    size_t len)
{
    size_t pos;
    struct store_resv* v = resv_search(s, parent, name, len, &pos);
    if (v == NULL) {
        return -ENOENT;
    }
    free(v->name);
    memmove(&s->resvs[pos], &s->resvs[pos + 1],
            (s->nresvs - pos - 1) * sizeof(s->resvs[0]));
    s->nresvs--;
    return 0;
}

int store__resv_apply(struct store_state* s,
                      const struct store_resv_rec* r,
                      char* msg,
                      size_t cap)
{
    if (r->clock_ns > s->resv_clock) {
        s->resv_clock = r->clock_ns;
    }
    if ((r->flags & RESV_F_CLOCK) != 0) {
        return 0;
    }
    if ((r->flags & RESV_F_REMOVE) == 0) {
        if (s->nresvs >= STORE_RESV_MAX &&
            store__resv_find(s, r->parent, r->name, r->name_len) == NULL) {
            snprintf(msg, cap, "more than %d reservations", STORE_RESV_MAX);
            return -EUCLEAN;
        }
        return store__resv_set(s, r);
    }
    const struct store_resv* v =
        store__resv_find(s, r->parent, r->name, r->name_len);
    if (v == NULL || v->origin != r->origin || v->token != r->token) {
        snprintf(msg, cap, "removal of an unknown reservation");
        return -EUCLEAN;
    }
    return store__resv_del(s, r->parent, r->name, r->name_len);
}

/* ---- helpers for readers ---- */

void store__attr(const struct entry* e, struct store_attr* a)
{
    memset(a, 0, sizeof(*a));
    a->ino = e->ino;
    a->type = e->type;
    a->mode = e->mode;
    a->uid = e->uid;
    a->gid = e->gid;
    a->size = store__special(e->type) ? 0 : e->size;
    a->rdev = store__rdev(e->type, entry_content(e), e->size);
    a->atime_ns = e->atime_ns;
    a->mtime_ns = e->mtime_ns;
    a->ctime_ns = e->ctime_ns;
    a->create_rev = e->create_rev;
    a->mod_rev = e->mod_rev;
    a->version = e->version;
    a->nlink = e->type == STORE_DIR ? 2 + e->nsubdirs : 1 + e->nlinks;
}

size_t store__path_len(const struct store_state* s, const struct entry* e)
{
    size_t len = 0;
    while (e != s->root) {
        len += 1 + e->name_len;
        e = store__find(s, e->parent);
        assert(e != NULL);
    }
    return len == 0 ? 1 : len;
}

struct entry** store__walk(const struct store_state* s)
{
    size_t n = s->nentries;
    /* clang-tidy false positive: an array of pointers. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    struct entry** out = malloc(n * sizeof(*out));
    /* clang-tidy false positive: an array of pointers. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    struct entry** stack = malloc(n * sizeof(*stack));
    if (out == NULL || stack == NULL) {
        free(out);
        free(stack);
        return NULL;
    }
    size_t head = 0, tail = 0;
    out[tail++] = s->root;
    while (head < tail) {
        struct entry* d = out[head++];
        size_t sp = 0;
        struct entry* t = d->kids;
        while (t != NULL || sp > 0) { /* in-order: children by name */
            while (t != NULL) {
                assert(sp < n);
                stack[sp++] = t;
                t = t->left;
            }
            t = stack[--sp];
            assert(tail < n);
            out[tail++] = t;
            t = t->right;
        }
    }
    assert(tail == n);
    free(stack);
    return out;
}
