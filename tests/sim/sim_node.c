/* sim_node.c - nodes on raft/driver.h: the driver's callbacks (send,
 * install, persist, update), stepping a node, and a node's lifecycle
 * (boot from its disk, crash, restart, wipe, torn tail). */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- the driver's callbacks (raft/driver.h) ---- */

static uint64_t ops_now(void* data)
{
    struct sim_node* n = data;
    return n->sim->now;
}

static void ops_send(void* data, const struct raft_message* m)
{
    struct sim_node* n = data;
    sim__net_send(n->sim, sim__msg_copy(m));
}

/* Step 1, a received image: written to the disk before the update's
 * batch (the driver submits that after this returns). */
static void ops_install(void* data, const struct raft_update* u)
{
    struct sim_node* n = data;
    struct sim_write* w = sim__xcalloc(1, sizeof *w);
    w->meta = u->snapshot_meta;
    w->image_len = u->snapshot_image.len;
    w->image = sim__xcalloc(1, w->image_len);
    memcpy(w->image, u->snapshot_image.base, w->image_len);
    sim__disk_submit(n->sim, n, w, true);
}

static void ops_persist(void* data, struct raft_batch* b)
{
    struct sim_node* n = data;
    struct sim_write* w = sim__xcalloc(1, sizeof *w);
    w->batch = b;
    bool durable =
        b->truncate_from != 0 || b->n_entries > 0 || b->hard_state_changed;
    sim__disk_submit(n->sim, n, w, durable);
}

/* Steps 3 and 4 of an update, and the checks on it. */
static void ops_update(void* data, int rc, const struct raft_update* u)
{
    struct sim_node* n = data;
    struct sim* s = n->sim;
    bool rewrote = u->truncate_from != 0 || u->snapshot_install;
    sim__shadow_update(s, n, u);
    for (unsigned i = 0; i < u->n_committed && !s->failed; i++) {
        sim__sm_apply(s, n, &u->committed[i]);
    }
    for (unsigned i = 0; i < u->n_reads; i++) {
        const struct raft_read* r = &u->reads[i];
        if (r->ctx == 0 || r->ctx >= s->next_read ||
            n->n_reads >= SIM_READS_MAX) {
            sim__violate(s, "n%" PRIu64 " reported unknown read ctx %" PRIu64,
                         n->id, r->ctx);
            break;
        }
        n->reads[n->n_reads++] =
            (struct sim_read_req){.ctx = r->ctx,
                                  .index = r->index,
                                  .required = s->reads[r->ctx].required};
    }
    for (unsigned i = 0; i < u->n_failed_reads; i++) {
        uint64_t c = u->failed_reads[i].ctx;
        if (c > 0 && c < s->next_read) {
            s->reads[c].err = u->failed_reads[i].err;
        }
    }
    for (unsigned i = 0; i < u->n_failed_proposals; i++) {
        uint64_t c = u->failed_proposals[i].ctx;
        if (c > 0 && c < s->next_value) {
            s->props[c].err = u->failed_proposals[i].err;
        }
    }
    sim__serve_reads(s, n);
    uint64_t next = u->next_timeout_ms;
    if (s->cfg.trace) {
        sim__trace(
            s,
            "n%" PRIu64 " update rc=%d trunc=%" PRIu64
            " ents=%u hs=%d(t%" PRIu64 " v%" PRIu64 " c%" PRIu64
            ") snap=%d msgs=%u commit=%u reads=%u next=%" PRIu64,
            n->id, rc, u->truncate_from, u->n_entries, u->hard_state_changed,
            u->hard_state.term, u->hard_state.vote, u->hard_state.commit,
            u->snapshot_install, u->n_msgs, u->n_committed, u->n_reads, next);
    }
    /* u is dead from here on: raft_* queries may invalidate it. */
    sim__schedule_tick(s, n, next ? next : s->now + s->cfg.election_ms);
    if (rewrote && raft_role(n->r) == RAFT_LEADER) {
        sim__violate(s,
                     "leader append-only: leader n%" PRIu64
                     " truncated or replaced its log",
                     n->id);
    }
    if (s->cfg.compact_every != 0 &&
        n->sm.applied >= n->last_compact + s->cfg.compact_every && !s->failed) {
        /* Not here: the core is never stepped inside an update's
         * handling. sim__node_step runs it once the update is done. */
        raft_index keep = 0;
        if (sim_rand_below(s, 3) == 0 && n->sm.applied > 3) {
            keep = n->sm.applied - sim_rand_below(s, 3);
        }
        n->compact_due = true;
        n->compact_keep = keep;
    }
}

/* Steps ev through n's driver, then a compaction the update asked for. */
int sim__node_step(struct sim* s,
                   struct sim_node* n,
                   const struct raft_event* ev)
{
    assert(n->alive);
    int rc = raft_driver_step(n->d, *ev);
    while (n->compact_due && n->alive && !s->failed) {
        n->compact_due = false;
        sim_compact(s, n->id, n->compact_keep);
    }
    return rc;
}

/* A new core for n (n->r), driven by a new driver (n->d). */
void sim__node_new_core(struct sim* s, struct sim_node* n)
{
    struct raft_options o;
    raft_options_default(&o);
    o.id = n->id;
    o.seed = s->cfg.seed * 1000003u + n->id * 7919u + n->incarnation;
    o.heartbeat_ms = s->cfg.heartbeat_ms;
    o.election_ms = s->cfg.election_ms;
    o.pre_vote = s->cfg.pre_vote;
    o.check_quorum = s->cfg.check_quorum;
    o.bug_commit_old_term = s->cfg.bug_commit_old_term;
    o.catch_up_first = n->catch_up;
    if (s->cfg.trace) {
        o.tracer = (struct raft_tracer){
            .data = s, .emit = sim__core_trace, .level = RAFT_TRACE_DEBUG};
    }
    n->r = raft_new(&o);
    struct raft_driver_ops ops = {.data = n,
                                  .now_ms = ops_now,
                                  .send = ops_send,
                                  .install = ops_install,
                                  .persist = ops_persist,
                                  .update = ops_update};
    n->sim = s;
    n->d = n->r != NULL ? raft_driver_new(n->r, &ops) : NULL;
    if (n->d == NULL) {
        fprintf(stderr, "sim: raft_new or raft_driver_new failed\n");
        abort();
    }
}

void sim__node_wipe(struct sim_node* n)
{
    while (n->wq_head != NULL) {
        struct sim_write* w = n->wq_head;
        n->wq_head = w->next;
        sim__write_free(w);
    }
    n->wq_tail = NULL;
    n->compact_due = false;
    if (n->r != NULL) {
        /* As fs/node_boot.c's marker file: a node that had not caught up
         * when it crashed still has not after its restart, and one that
         * lost its vote checks again. */
        n->catch_up = raft_catching_up(n->r) || raft_lost_vote(n->r);
        raft_driver_free(n->d); /* the batches in flight are lost */
        n->d = NULL;
        raft_free(n->r);
        n->r = NULL;
    }
    n->alive = false;
}

/* The transport's handshake: peers that can reach the restarted node see
 * its new incarnation (RAFT_EV_PEER_RESTARTED), as fs/node_boot.c reports
 * it. Stepped now: the HELLO precedes the node's first message. */
static void announce_restart(struct sim* s, struct sim_node* n)
{
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        struct sim_node* o = &s->nodes[id];
        if (o == n || !o->alive || s->blocked[n->id][id] ||
            s->blocked[id][n->id]) {
            continue;
        }
        struct raft_event ev = {.type = RAFT_EV_PEER_RESTARTED,
                                .now_ms = s->now};
        ev.peer.id = n->id;
        sim__node_step(s, o, &ev);
    }
}

/* Bring a node up from its disk (restore) and the app from its image. */
static void node_boot(struct sim* s, struct sim_node* n)
{
    n->incarnation++;
    n->tick_pending = false;
    sim__node_new_core(s, n);
    n->alive = true;
    n->disk_free_ms = s->now;
    n->n_reads = 0;
    n->commit_seen = 0;
    memset(&n->sm, 0, sizeof n->sm);
    n->sm.conf = n->snap.conf;
    n->sm.conf_index = n->snap.conf_index;
    if (n->snap.index > 0 &&
        sim__image_decode(&n->sm, n->image, n->image_len) != 0) {
        sim__violate(s, "harness: n%" PRIu64 " image unreadable", n->id);
    }
    n->last_compact = n->sm.applied;
    /* the shadow log restarts as the durable log */
    sim__log_reset(&n->shadow, n->disk.base, n->disk.base_term);
    unsigned first = 0;
    while (first < n->disk.n && n->disk.base + first + 1 <= n->snap.index) {
        first++;
    }
    struct raft_entry* es = sim__xcalloc(n->disk.n, sizeof *es);
    unsigned k = 0;
    for (unsigned i = 0; i < n->disk.n; i++) {
        const struct sim_ent* d = &n->disk.e[i];
        sim__log_push(&n->shadow, &(struct sim_ent){.term = d->term,
                                                    .type = d->type,
                                                    .len = d->len,
                                                    .hash = d->hash});
        if (i >= first) {
            es[k++] = (struct raft_entry){.term = d->term,
                                          .index = n->disk.base + i + 1,
                                          .type = d->type,
                                          .data = {d->data, d->len}};
        }
    }
    sim__trace(s,
               "n%" PRIu64 " BOOT #%u hs=(t%" PRIu64 " v%" PRIu64 " c%" PRIu64
               ") snap=%" PRIu64 " entries=%u",
               n->id, n->incarnation, n->hs.term, n->hs.vote, n->hs.commit,
               n->snap.index, k);
    int rc = raft_restore(n->r, &n->hs, &n->snap, es, k, s->now);
    free(es);
    announce_restart(s, n);
    if (rc != 0) {
        sim__violate(s, "n%" PRIu64 " raft_restore failed: %s", n->id,
                     raft_strerror(rc));
        return;
    }
    sim__schedule_tick(s, n, s->now + 1);
    /* raft_restore takes no image: hand the core the disk's snapshot image
     * at once, so it can send InstallSnapshot to followers that need it. */
    if (n->snap.index > 0) {
        free(n->compact_image);
        n->compact_image = sim__xcalloc(1, n->image_len);
        memcpy(n->compact_image, n->image, n->image_len);
        n->compact_image_len = n->image_len;
        struct raft_event ev = {.type = RAFT_EV_COMPACT, .now_ms = s->now};
        ev.compact.meta = n->snap;
        ev.compact.image = (struct raft_buf){n->compact_image, n->image_len};
        ev.compact.keep_from =
            n->disk.base < n->snap.index ? n->disk.base + 1 : 0;
        int crc = sim__node_step(s, n, &ev);
        if (crc != 0) {
            sim__violate(s, "n%" PRIu64 " refuses its own image at restart: %s",
                         n->id, raft_strerror(crc));
        }
    }
}

void sim_crash(struct sim* s, raft_id id)
{
    struct sim_node* n = &s->nodes[id];
    if (!n->alive) {
        return;
    }
    sim__trace(s, "n%" PRIu64 " CRASH", id);
    sim__node_wipe(n);
}

void sim_restart(struct sim* s, raft_id id)
{
    struct sim_node* n = &s->nodes[id];
    if (n->alive || !n->exists) {
        return;
    }
    node_boot(s, n);
}

/* Node id crashes and loses its disk: no image, no log, no hard state,
 * an empty configuration. */
static struct sim_node* disk_lost(struct sim* s, raft_id id)
{
    assert(id >= 1 && id <= SIM_NODES_MAX);
    struct sim_node* n = &s->nodes[id];
    sim__node_wipe(n);
    free(n->image);
    n->image = NULL;
    n->image_len = 0;
    sim__log_reset(&n->disk, 0, 0);
    memset(&n->hs, 0, sizeof n->hs);
    memset(&n->snap, 0, sizeof n->snap);
    n->exists = true;
    return n;
}

void sim_start_fresh(struct sim* s, raft_id id)
{
    struct sim_node* n = disk_lost(s, id); /* empty configuration */
    sim__trace(s, "n%" PRIu64 " FRESH", id);
    node_boot(s, n);
}

void sim_wipe(struct sim* s, raft_id id)
{
    struct sim_node* n = disk_lost(s, id);
    n->snap.conf = s->initial_conf; /* as fs/node_boot.c: --initial-cluster */
    n->catch_up = s->cfg.wipe_catch_up;
    sim__trace(s, "n%" PRIu64 " WIPED", id);
    node_boot(s, n);
}

void sim_tear_tail(struct sim* s, raft_id id, unsigned entries)
{
    assert(id >= 1 && id <= SIM_NODES_MAX);
    struct sim_node* n = &s->nodes[id];
    sim__node_wipe(n); /* a crash: pending writes are lost */
    raft_index last = sim__log_last(&n->disk);
    raft_index keep = last - n->disk.base;
    keep = keep > entries ? keep - entries : 0;
    sim__log_truncate(&n->disk, n->disk.base + keep + 1);
    if (n->hs.commit > sim__log_last(&n->disk)) {
        n->hs.commit = sim__log_last(&n->disk); /* as fs/node_boot.c */
    }
    sim__trace(s, "n%" PRIu64 " TORN log %" PRIu64 " -> %" PRIu64, id, last,
               sim__log_last(&n->disk));
    node_boot(s, n);
}

uint64_t sim_sent(const struct sim* s, raft_id from, raft_id to)
{
    assert(from >= 1 && from <= SIM_NODES_MAX && to >= 1 &&
           to <= SIM_NODES_MAX);
    return s->sent[from][to];
}

uint64_t sim_snap_starts(const struct sim* s, raft_id from, raft_id to)
{
    assert(from >= 1 && from <= SIM_NODES_MAX && to >= 1 &&
           to <= SIM_NODES_MAX);
    return s->snap_starts[from][to];
}
