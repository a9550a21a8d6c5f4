/* driver.c - the one driver of the update contract (driver.h, raft.h).
 *
 * Order of one step (raft_driver_step):
 *   raft_step -> the update u
 *   1.   install: a received image goes to ops.install first.
 *   1+2. persist: if u changes the log or the hard state, installs an
 *        image, or messages must
 *        wait behind batches already in flight, a batch (owned copies of
 *        u's entries and of the messages that may not go yet) goes to
 *        ops.persist; the messages raft_msg_sendable_now() allows are sent
 *        first. Otherwise every message is sent at once.
 *   3+4. ops.update(u): apply, results, timers. Events it raises are
 *        posted and stepped after it returns, each with the same rules.
 * raft_driver_persisted(b): b's messages are sent, then RAFT_EV_PERSISTED
 * (posted: stepped at once unless an update is being handled).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

/* A posted event waiting for the update being handled to finish. */
struct posted {
    struct posted* next;
    struct raft_event ev;
};

struct raft_driver {
    struct raft* r;
    struct raft_driver_ops ops;
    unsigned depth; /* updates being handled (1 at most: asserted) */
    struct raft_batch *head, *tail; /* in flight, submission order */
    unsigned inflight;
    struct posted *q_head, *q_tail;
};

/* ---- messages ---- */

static void* dup_bytes(const void* p, size_t n)
{
    void* q = malloc(n > 0 ? n : 1);
    if (q != NULL && n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

static int clone_entries(struct raft_entry** out,
                         const struct raft_entry* src,
                         unsigned n)
{
    struct raft_entry* es = calloc(n > 0 ? n : 1, sizeof(*es));
    if (es == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        es[i] = src[i];
        es[i].data.base = dup_bytes(src[i].data.base, src[i].data.len);
        if (es[i].data.base == NULL) {
            for (unsigned j = 0; j < i; j++) {
                free((void*)es[j].data.base);
            }
            free(es);
            return -ENOMEM;
        }
    }
    *out = es;
    return 0;
}

static void free_entries(struct raft_entry* es, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        free((void*)es[i].data.base);
    }
    free(es);
}

static int clone_props(struct raft_message* dst, const struct raft_message* src)
{
    unsigned n = src->propose.n;
    struct raft_proposal* ps = calloc(n > 0 ? n : 1, sizeof(*ps));
    if (ps == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        ps[i] = src->propose.props[i];
        ps[i].data.base = dup_bytes(src->propose.props[i].data.base,
                                    src->propose.props[i].data.len);
        if (ps[i].data.base == NULL) {
            for (unsigned j = 0; j < i; j++) {
                free((void*)ps[j].data.base);
            }
            free(ps);
            return -ENOMEM;
        }
    }
    dst->propose.props = ps;
    return 0;
}

int raft_msg_clone(struct raft_message* dst, const struct raft_message* src)
{
    *dst = *src;
    switch (src->type) {
    case RAFT_MSG_APPEND: {
        struct raft_entry* es = NULL;
        int rv = clone_entries(&es, src->append.entries, src->append.n_entries);
        dst->append.entries = es;
        return rv;
    }
    case RAFT_MSG_SNAPSHOT:
        dst->snapshot.chunk.base =
            dup_bytes(src->snapshot.chunk.base, src->snapshot.chunk.len);
        return dst->snapshot.chunk.base != NULL ? 0 : -ENOMEM;
    case RAFT_MSG_PROPOSE:
        return clone_props(dst, src);
    case RAFT_MSG_PROPOSE_RESP:
        dst->propose_resp.ctxs = dup_bytes(
            src->propose_resp.ctxs, src->propose_resp.n * sizeof(uint64_t));
        return dst->propose_resp.ctxs != NULL ? 0 : -ENOMEM;
    default:
        return 0;
    }
}

void raft_msg_free(struct raft_message* m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        free_entries((struct raft_entry*)m->append.entries,
                     m->append.n_entries);
        m->append.entries = NULL;
        break;
    case RAFT_MSG_SNAPSHOT:
        free((void*)m->snapshot.chunk.base);
        m->snapshot.chunk.base = NULL;
        break;
    case RAFT_MSG_PROPOSE:
        for (unsigned i = 0; i < m->propose.n; i++) {
            free((void*)m->propose.props[i].data.base);
        }
        free((void*)m->propose.props);
        m->propose.props = NULL;
        break;
    case RAFT_MSG_PROPOSE_RESP:
        free((void*)m->propose_resp.ctxs);
        m->propose_resp.ctxs = NULL;
        break;
    default:
        break;
    }
}

/* ---- batches ---- */

static void batch_free(struct raft_batch* b)
{
    free_entries(b->entries, b->n_entries);
    for (unsigned i = 0; i < b->n_msgs; i++) {
        raft_msg_free(&b->msgs[i]);
    }
    free(b->msgs);
    free(b);
}

/* The batch of u: copies of its persist part and of the messages that may
 * not be sent yet. NULL when out of memory. */
static struct raft_batch* batch_new(const struct raft* r,
                                    const struct raft_update* u)
{
    struct raft_batch* b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->truncate_from = u->truncate_from;
    b->persist_index = u->persist_index;
    b->persist_term = u->persist_term;
    b->hard_state_changed = u->hard_state_changed;
    b->hard_state = u->hard_state;
    b->msgs = calloc(u->n_msgs > 0 ? u->n_msgs : 1, sizeof(*b->msgs));
    if (b->msgs == NULL ||
        clone_entries(&b->entries, u->entries, u->n_entries) != 0) {
        free(b->msgs);
        free(b);
        return NULL;
    }
    b->n_entries = u->n_entries;
    for (unsigned i = 0; i < u->n_msgs; i++) {
        if (raft_msg_sendable_now(r, u, &u->msgs[i])) {
            continue; /* sent before the batch is submitted */
        }
        if (raft_msg_clone(&b->msgs[b->n_msgs], &u->msgs[i]) != 0) {
            batch_free(b);
            return NULL;
        }
        b->n_msgs++;
    }
    return b;
}

/* Steps 1 and 2 of the contract for update u. */
static void persist_and_send(struct raft_driver* d, const struct raft_update* u)
{
    /* An installed image counts as a persist: u's messages wait for it. */
    bool persist = u->truncate_from != 0 || u->n_entries > 0 ||
                   u->hard_state_changed || u->snapshot_install;
    if (!persist && (u->n_msgs == 0 || d->inflight == 0)) {
        for (unsigned i = 0; i < u->n_msgs; i++) {
            d->ops.send(d->ops.data, &u->msgs[i]);
        }
        return;
    }
    for (unsigned i = 0; i < u->n_msgs; i++) {
        if (raft_msg_sendable_now(d->r, u, &u->msgs[i])) {
            d->ops.send(d->ops.data, &u->msgs[i]);
        }
    }
    struct raft_batch* b = batch_new(d->r, u);
    if (b == NULL) {
        /* The contract cannot be honoured without the copy: a node that
         * went on would acknowledge what it never wrote. */
        abort();
    }
    if (d->tail != NULL) {
        d->tail->next = b;
    } else {
        d->head = b;
    }
    d->tail = b;
    d->inflight++;
    if (d->ops.persist != NULL) {
        d->ops.persist(d->ops.data, b);
    } else {
        raft_driver_persisted(d, b);
    }
}

/* ---- stepping ---- */

struct raft_driver* raft_driver_new(struct raft* r,
                                    const struct raft_driver_ops* ops)
{
    assert(ops->now_ms != NULL && ops->send != NULL && ops->update != NULL);
    struct raft_driver* d = calloc(1, sizeof(*d));
    if (d != NULL) {
        d->r = r;
        d->ops = *ops;
    }
    return d;
}

void raft_driver_free(struct raft_driver* d)
{
    if (d == NULL) {
        return;
    }
    while (d->head != NULL) {
        struct raft_batch* b = d->head;
        d->head = b->next;
        batch_free(b);
    }
    while (d->q_head != NULL) {
        struct posted* p = d->q_head;
        d->q_head = p->next;
        free(p);
    }
    free(d);
}

static int step_one(struct raft_driver* d, struct raft_event* ev)
{
    struct raft_update u;
    ev->now_ms = d->ops.now_ms(d->ops.data);
    d->depth++;
    int rv = raft_step(d->r, ev, &u);
    if (u.snapshot_install) {
        assert(d->ops.install != NULL);
        d->ops.install(d->ops.data, &u);
    }
    persist_and_send(d, &u);
    d->ops.update(d->ops.data, rv, &u);
    d->depth--;
    return rv;
}

/* Steps the posted events, oldest first, each after the previous one's
 * update was handled. */
static void run_posted(struct raft_driver* d)
{
    while (d->depth == 0 && d->q_head != NULL) {
        struct posted* p = d->q_head;
        d->q_head = p->next;
        if (d->q_head == NULL) {
            d->q_tail = NULL;
        }
        struct raft_event ev = p->ev;
        free(p);
        step_one(d, &ev);
    }
}

int raft_driver_step(struct raft_driver* d, struct raft_event ev)
{
    assert(d->depth == 0 && "raft_driver_step inside an update: post it");
    int rv = step_one(d, &ev);
    run_posted(d);
    return rv;
}

int raft_driver_post(struct raft_driver* d, struct raft_event ev)
{
    /* Borrowed payloads would not outlive the queue. */
    assert(ev.type != RAFT_EV_RECEIVE && ev.type != RAFT_EV_PROPOSE);
    if (d->depth == 0) {
        int rv = step_one(d, &ev);
        run_posted(d);
        return rv;
    }
    struct posted* p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->ev = ev;
    if (d->q_tail != NULL) {
        d->q_tail->next = p;
    } else {
        d->q_head = p;
    }
    d->q_tail = p;
    return 0;
}

/* Takes b, the oldest batch in flight, off the list. */
static void batch_unlink(struct raft_driver* d, struct raft_batch* b)
{
    assert(b == d->head && "batches complete in submission order");
    d->head = b->next;
    if (d->head == NULL) {
        d->tail = NULL;
    }
    d->inflight--;
}

void raft_driver_discard(struct raft_driver* d, struct raft_batch* b)
{
    batch_unlink(d, b);
    batch_free(b);
}

void raft_driver_persisted(struct raft_driver* d, struct raft_batch* b)
{
    batch_unlink(d, b);
    for (unsigned i = 0; i < b->n_msgs; i++) {
        d->ops.send(d->ops.data, &b->msgs[i]);
    }
    struct raft_event ev = {.type = RAFT_EV_PERSISTED};
    ev.persisted.index = b->persist_index;
    ev.persisted.term = b->persist_term;
    bool report = b->n_entries > 0;
    batch_free(b);
    if (report && raft_driver_post(d, ev) != 0) {
        abort(); /* lost, the core would wait for it forever */
    }
}

bool raft_driver_in_update(const struct raft_driver* d)
{
    return d->depth > 0;
}

unsigned raft_driver_batches_inflight(const struct raft_driver* d)
{
    return d->inflight;
}
