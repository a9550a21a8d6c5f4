/* checker.c - the safety properties, checked on every update and after
 * every event of a simulation (Raft paper Figure 3, thesis 3.6):
 *
 *   election safety     at most one leader per term
 *   leader append-only  a leader never truncates or replaces its log
 *                       (checked in sim_node.c, where the update is seen)
 *   log matching        (index, term) identifies the content and the term
 *                       of the entry before it, on every node
 *   leader completeness every entry known committed is in the log of every
 *                       leader elected afterwards, and no node ever drops a
 *                       committed entry from its log
 *   state machine safety every node applies the same entry at an index, and
 *                       its state after it (hash, count) is the same
 *   linearizable reads  a ReadIndex read is served at an index >= every
 *                       index applied anywhere before the read started
 *   contract            applied entries are durable on the applying node
 *
 * "Known committed" is the union of every node's commit index (taken from
 * the node's log as the core wrote it) and every applied entry.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

#define PREV_UNKNOWN UINT64_MAX

static void* grow(void* p, size_t old_n, size_t new_n, size_t size)
{
    p = realloc(p, new_n * size);
    if (p == NULL) {
        abort();
    }
    memset((char*)p + old_n * size, 0, (new_n - old_n) * size);
    return p;
}

void checker__init(struct sim* s)
{
    s->n_terms = 64;
    s->leader_of_term = grow(NULL, 0, s->n_terms, sizeof *s->leader_of_term);
    s->n_committed_cap = 256;
    s->committed = grow(NULL, 0, s->n_committed_cap, sizeof *s->committed);
    s->lm_cap = 1024;
    s->lm = grow(NULL, 0, s->lm_cap, sizeof *s->lm);
}

void checker__free(struct sim* s)
{
    free(s->leader_of_term);
    free(s->committed);
    free(s->lm);
}

static struct sim_commit* commit_at(struct sim* s, raft_index i)
{
    if (i >= s->n_committed_cap) {
        raft_index cap = s->n_committed_cap;
        while (cap <= i) {
            cap *= 2;
        }
        s->committed =
            grow(s->committed, s->n_committed_cap, cap, sizeof *s->committed);
        s->n_committed_cap = cap;
    }
    return &s->committed[i];
}

/* Record that (i, term) is committed. */
static void note_committed(struct sim* s,
                           raft_id who,
                           raft_index i,
                           raft_term term)
{
    struct sim_commit* c = commit_at(s, i);
    if (c->term != 0 && c->term != term) {
        sim__violate(s,
                     "state machine safety: index %" PRIu64
                     " committed with term %" PRIu64 " and (by n%" PRIu64
                     ") term %" PRIu64,
                     i, c->term, who, term);
        return;
    }
    c->term = term;
    if (i > s->commit_max) {
        s->commit_max = i;
    }
}

/* ---- log matching: open-addressing table keyed by (index, term) ---- */

static unsigned lm_slot(const struct sim* s, raft_index i, raft_term t)
{
    uint64_t h = (i * 0x9e3779b97f4a7c15ull) ^ (t * 0xc2b2ae3d27d4eb4full);
    return (unsigned)(h ^ (h >> 29)) & (s->lm_cap - 1);
}

static struct sim_lm* lm_find(struct sim* s,
                              raft_index i,
                              raft_term t,
                              bool* found)
{
    unsigned k = lm_slot(s, i, t);
    for (;;) {
        struct sim_lm* e = &s->lm[k];
        if (e->index == 0) {
            *found = false;
            return e;
        }
        if (e->index == i && e->term == t) {
            *found = true;
            return e;
        }
        k = (k + 1) & (s->lm_cap - 1);
    }
}

static void lm_grow(struct sim* s)
{
    struct sim_lm* old = s->lm;
    unsigned old_cap = s->lm_cap;
    s->lm_cap *= 2;
    s->lm = grow(NULL, 0, s->lm_cap, sizeof *s->lm);
    for (unsigned k = 0; k < old_cap; k++) {
        if (old[k].index != 0) {
            bool found;
            *lm_find(s, old[k].index, old[k].term, &found) = old[k];
        }
    }
    free(old);
}

void checker__on_append(struct sim* s,
                        struct sim_node* n,
                        const struct raft_entry* e,
                        raft_term prev_term)
{
    if (e->term == 0 || e->index == 0) {
        sim__violate(
            s, "contract: n%" PRIu64 " appends entry %" PRIu64 "/t%" PRIu64,
            n->id, e->index, e->term);
        return;
    }
    if (prev_term != PREV_UNKNOWN && prev_term > e->term) {
        sim__violate(s,
                     "log matching: n%" PRIu64 " entry %" PRIu64 "/t%" PRIu64
                     " follows a higher term %" PRIu64,
                     n->id, e->index, e->term, prev_term);
        return;
    }
    uint8_t type = e->type;
    uint64_t h = sim__hash(sim__hash(0, &type, 1), e->data.base, e->data.len);
    if (2 * (s->lm_n + 1) > s->lm_cap) {
        lm_grow(s);
    }
    bool found;
    struct sim_lm* m = lm_find(s, e->index, e->term, &found);
    if (!found) {
        *m = (struct sim_lm){e->index, e->term, prev_term, h};
        s->lm_n++;
        return;
    }
    if (m->hash != h) {
        sim__violate(s,
                     "log matching: n%" PRIu64
                     " has a different entry at %" PRIu64 "/t%" PRIu64
                     " than another node",
                     n->id, e->index, e->term);
    } else if (prev_term != PREV_UNKNOWN && m->prev_term != PREV_UNKNOWN &&
               prev_term != m->prev_term) {
        sim__violate(s,
                     "log matching: entry %" PRIu64 "/t%" PRIu64
                     " follows term %" PRIu64 " on n%" PRIu64
                     " but term %" PRIu64 " elsewhere",
                     e->index, e->term, prev_term, n->id, m->prev_term);
    } else if (m->prev_term == PREV_UNKNOWN) {
        m->prev_term = prev_term;
    }
}

void checker__on_truncate(struct sim* s, struct sim_node* n, raft_index from)
{
    raft_index last = sim__log_last(&n->shadow);
    if (from <= n->shadow.base) {
        from = n->shadow.base + 1;
    }
    for (raft_index i = from; i <= last && i < s->n_committed_cap; i++) {
        raft_term t = sim__log_term(&n->shadow, i);
        if (s->committed[i].term != 0 && s->committed[i].term == t) {
            sim__violate(s,
                         "leader completeness: n%" PRIu64
                         " drops committed entry %" PRIu64 "/t%" PRIu64
                         " from its log",
                         n->id, i, t);
            return;
        }
    }
}

void checker__on_apply(struct sim* s,
                       struct sim_node* n,
                       const struct raft_entry* e)
{
    raft_index i = e->index;
    /* contract 3: applied entries are durable on this node */
    if (i > n->snap.index && i > n->disk.base &&
        (i > sim__log_last(&n->disk) ||
         sim__log_term(&n->disk, i) != e->term)) {
        sim__violate(s,
                     "contract: n%" PRIu64 " applies %" PRIu64 "/t%" PRIu64
                     " which is not durable in its log",
                     n->id, i, e->term);
        return;
    }
    uint8_t type = e->type;
    uint64_t h = sim__hash(sim__hash(0, &type, 1), e->data.base, e->data.len);
    note_committed(s, n->id, i, e->term);
    struct sim_commit* c = commit_at(s, i);
    if (!c->applied) {
        c->applied = true;
        c->type = e->type;
        c->ent_hash = h;
        c->sm_hash = n->sm.hash;
        c->sm_count = n->sm.count;
        if (i > s->applied_max) {
            s->applied_max = i;
        }
        return;
    }
    if (c->type != e->type || c->ent_hash != h) {
        sim__violate(s,
                     "state machine safety: n%" PRIu64
                     " applies a different entry at %" PRIu64,
                     n->id, i);
    } else if (c->sm_hash != n->sm.hash || c->sm_count != n->sm.count) {
        sim__violate(s,
                     "state machine safety: n%" PRIu64 " state after %" PRIu64
                     " differs (count %" PRIu64 " vs %" PRIu64 ")",
                     n->id, i, n->sm.count, c->sm_count);
    }
}

void checker__on_install(struct sim* s,
                         struct sim_node* n,
                         const struct raft_snapshot_meta* meta)
{
    note_committed(s, n->id, meta->index, meta->term);
    struct sim_commit* c = commit_at(s, meta->index);
    if (!c->applied) {
        sim__violate(s,
                     "state machine safety: n%" PRIu64
                     " installs a snapshot at %" PRIu64 " that no node applied",
                     n->id, meta->index);
    } else if (c->sm_hash != n->sm.hash || c->sm_count != n->sm.count) {
        sim__violate(s,
                     "state machine safety: n%" PRIu64 " snapshot at %" PRIu64
                     " has a different state",
                     n->id, meta->index);
    }
}

void checker__on_read(struct sim* s,
                      struct sim_node* n,
                      const struct sim_read_req* rq)
{
    if (rq->index < rq->required || n->sm.applied < rq->required) {
        sim__violate(s,
                     "linearizability: n%" PRIu64 " read ctx=%" PRIu64
                     " at index %" PRIu64 " but %" PRIu64
                     " was applied before the read started",
                     n->id, rq->ctx, rq->index, rq->required);
    }
}

static void check_new_leader(struct sim* s, struct sim_node* n, raft_term t)
{
    if (t >= s->n_terms) {
        raft_term cap = s->n_terms;
        while (cap <= t) {
            cap *= 2;
        }
        s->leader_of_term =
            grow(s->leader_of_term, s->n_terms, cap, sizeof *s->leader_of_term);
        s->n_terms = cap;
    }
    if (s->leader_of_term[t] != 0 && s->leader_of_term[t] != n->id) {
        sim__violate(s,
                     "election safety: n%" PRIu64 " and n%" PRIu64
                     " both lead term %" PRIu64,
                     s->leader_of_term[t], n->id, t);
        return;
    }
    s->leader_of_term[t] = n->id;
    sim__trace(s, "n%" PRIu64 " is LEADER of term %" PRIu64, n->id, t);
    raft_index last = sim__log_last(&n->shadow);
    for (raft_index i = n->shadow.base + 1; i <= s->commit_max; i++) {
        raft_term ct = s->committed[i].term;
        if (ct == 0) {
            continue;
        }
        if (i > last || sim__log_term(&n->shadow, i) != ct) {
            sim__violate(s,
                         "leader completeness: leader n%" PRIu64
                         " of term %" PRIu64 " lacks committed entry %" PRIu64
                         "/t%" PRIu64,
                         n->id, t, i, ct);
            return;
        }
    }
}

static void check_commit(struct sim* s, struct sim_node* n)
{
    raft_index ci = raft_commit_index(n->r);
    raft_index last = sim__log_last(&n->shadow);
    raft_index upto = ci < last ? ci : last;
    if (n->commit_seen < n->shadow.base) {
        n->commit_seen = n->shadow.base;
    }
    for (raft_index i = n->commit_seen + 1; i <= upto && !s->failed; i++) {
        note_committed(s, n->id, i, sim__log_term(&n->shadow, i));
    }
    if (upto > n->commit_seen) {
        n->commit_seen = upto;
    }
}

void checker__after_event(struct sim* s)
{
    for (raft_id id = 1; id <= SIM_NODES_MAX && !s->failed; id++) {
        struct sim_node* n = &s->nodes[id];
        if (!n->alive) {
            continue;
        }
        check_commit(s, n);
        if (raft_role(n->r) == RAFT_LEADER) {
            raft_term t = raft_current_term(n->r);
            if (n->leader_term_seen != t) {
                n->leader_term_seen = t;
                check_new_leader(s, n, t);
            }
        }
    }
}
