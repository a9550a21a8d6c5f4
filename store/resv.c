/* resv.c - name reservations (STORE_OP_RESERVE, STORE_OP_RELEASE and the
 * consuming part of STORE_CLAIM): the compare-and-create of an O_EXCL
 * create decided in the replicated order, its file committed later in one
 * entry (docs/format-db.md, "RESV").
 *
 * A reservation is replicated state (record REC_RESV) that makes no
 * revision and no change callback, and that no read sees. A command
 * judges liveness at max(its now_ns, the reservation clock), the clock
 * being the latest now_ns of a RESERVE applied: a reservation once expired
 * stays expired for every later command, so the RESERVE that drops every
 * expired one (bounding the table by STORE_RESV_MAX) changes no outcome.
 */
#include <assert.h>
#include <errno.h>

#include "store_internal.h"

static bool live_at(const struct store_resv* r, int64_t t)
{
    return t < r->expire_ns;
}

bool store__resv_blocks(const struct apply_ctx* x,
                        uint64_t parent,
                        const char* name)
{
    const struct store_state* s = &x->st->s;
    if (s->nresvs == 0) {
        return false;
    }
    const struct store_resv* r =
        store__resv_find(s, parent, name, strlen(name));
    return r != NULL && live_at(r, store__resv_time(s, x->c->now_ns));
}

/* Record + apply one REC_RESV removing reservation r (its copy: r goes). */
static void resv_remove(struct apply_ctx* x, const struct store_resv* r)
{
    char msg[96];
    struct store_resv_rec rec = {.flags = RESV_F_REMOVE,
                                 .parent = r->parent,
                                 .origin = r->origin,
                                 .token = r->token,
                                 .clock_ns = x->st->s.resv_clock,
                                 .name = r->name,
                                 .name_len = r->name_len};
    if (x->fatal != 0) {
        return;
    }
    int rv = store__pend_resv(x->st, &rec);
    if (rv == 0) {
        rv = store__resv_apply(&x->st->s, &rec, msg, sizeof(msg));
    }
    assert(rv == 0 || rv == -ENOMEM);
    x->fatal = rv;
}

/* Drop every reservation matching (origin, token) (expired_at < INT64_MAX:
 * every one expired at that time instead). */
static void resv_drop(struct apply_ctx* x,
                      uint64_t origin,
                      uint64_t token,
                      int64_t expired_at)
{
    struct store_state* s = &x->st->s;
    size_t i = 0;
    while (i < s->nresvs && x->fatal == 0) {
        const struct store_resv* r = &s->resvs[i];
        bool drop = expired_at != INT64_MAX
                        ? !live_at(r, expired_at)
                        : r->origin == origin && r->token == token;
        if (drop) {
            resv_remove(x, r); /* the next one moves to i */
        } else {
            i++;
        }
    }
}

void store__resv_consume(struct apply_ctx* x)
{
    resv_drop(x, x->c->origin, x->c->ino, INT64_MAX);
}

int store__op_release(struct apply_ctx* x)
{
    store__resv_consume(x);
    return 0;
}

/* Reservations live at t, but the one at `own` (the holder's renewal). */
static size_t live_others(const struct store_state* s,
                          int64_t t,
                          const struct store_resv* own)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nresvs; i++) {
        if (&s->resvs[i] != own && live_at(&s->resvs[i], t)) {
            n++;
        }
    }
    return n;
}

/* RESERVE of (c->parent, c->name) in d (checked as a CREATE by the
 * caller): EEXIST if the name exists or another holds it live, ENOSPC
 * past STORE_RESV_MAX live ones; else every expired reservation goes and
 * the holder's is set (new or renewed). */
int store__op_reserve(struct apply_ctx* x, struct entry* d)
{
    struct store_state* s = &x->st->s;
    const struct store_cmd* c = x->c;
    size_t len = strlen(c->name);
    int64_t t = store__resv_time(s, c->now_ns);
    const struct store_resv* r = store__resv_find(s, c->parent, c->name, len);
    bool mine = r != NULL && r->origin == c->origin && r->token == c->ino;
    if (r != NULL && !mine && live_at(r, t)) {
        return -EEXIST;
    }
    if (store__child(d, c->name, len) != NULL) {
        return -EEXIST;
    }
    const struct store_resv* renewed = mine && live_at(r, t) ? r : NULL;
    if (live_others(s, t, renewed) >= STORE_RESV_MAX) {
        return -ENOSPC;
    }
    /* The ino the file will get: taken now, so that its writer's st_ino
     * stays at the commit; a renewal keeps it. */
    uint64_t ino = mine && r->ino != 0 ? r->ino : s->next_ino++;
    s->resv_clock = t;     /* recorded by the records below */
    resv_drop(x, 0, 0, t); /* r too, if it expired */
    int64_t ttl = (int64_t)c->size;
    struct store_resv_rec rec = {
        .parent = c->parent,
        .origin = c->origin,
        .token = c->ino,
        .ino = ino,
        .expire_ns = c->now_ns > INT64_MAX - ttl ? INT64_MAX : c->now_ns + ttl,
        .clock_ns = t,
        .name = c->name,
        .name_len = (uint16_t)len,
    };
    char msg[96];
    int rv = x->fatal;
    if (rv == 0) {
        rv = store__pend_resv(x->st, &rec);
    }
    if (rv == 0) {
        rv = store__resv_apply(s, &rec, msg, sizeof(msg));
    }
    assert(rv == 0 || rv == -ENOMEM);
    x->fatal = rv;
    x->ino = ino;
    return 0;
}
