/* sim_disk.c - a node's simulated disk: writes queued and completed in
 * order (group commit), the shadow log updated as the core asks, and the
 * node's tick timer. */
#include <inttypes.h>
#include <stdlib.h>

#include "sim_internal.h"

/* ---- nodes ---- */

void sim__schedule_tick(struct sim* s, struct sim_node* n, uint64_t at)
{
    if (at <= s->now) {
        at = s->now + 1;
    }
    /* A pending earlier tick stays: "at the latest" allows early ticks, and
     * replacing it would starve the timer of a node that gets an update
     * every millisecond. */
    if (n->tick_pending && n->tick_at <= at) {
        return;
    }
    n->tick_pending = true;
    n->tick_at = at;
    n->tick_gen++;
    sim__heap_push(s, (struct sim_ev){.t = at,
                                      .kind = SIM_EV_TICK,
                                      .node = (uint8_t)n->id,
                                      .gen = n->tick_gen});
}

void sim__write_free(struct sim_write* w)
{
    free(w->image);
    free(w);
}

/* Queues w on n's disk: writes complete in order; a write joins the one
 * waiting behind the write in flight (group commit: same fsync, same
 * completion time); one that makes nothing durable (messages waiting
 * behind earlier writes) takes no disk time of its own. */
void sim__disk_submit(struct sim* s,
                      struct sim_node* n,
                      struct sim_write* w,
                      bool durable)
{
    if (n->wq_tail != NULL && n->wq_tail != n->wq_head) {
        w->done_ms = n->wq_tail->done_ms;
    } else {
        uint64_t start = n->disk_free_ms > s->now ? n->disk_free_ms : s->now;
        w->done_ms = start + (durable ? sim__rand_range(s, s->cfg.disk_min_ms,
                                                        s->cfg.disk_max_ms) +
                                            s->disk_extra_ms[n->id]
                                      : 0);
    }
    n->disk_free_ms = w->done_ms;
    if (n->wq_tail != NULL) {
        n->wq_tail->next = w;
    } else {
        n->wq_head = w;
    }
    n->wq_tail = w;
    sim__heap_push(s, (struct sim_ev){.t = w->done_ms,
                                      .kind = SIM_EV_DISK,
                                      .node = (uint8_t)n->id,
                                      .gen = n->incarnation});
}

/* Step 1 of the contract, as seen by the core: the shadow log changes now,
 * the disk when the write completes. */
void sim__shadow_update(struct sim* s,
                        struct sim_node* n,
                        const struct raft_update* u)
{
    if (u->snapshot_install) {
        /* entries after the snapshot are dropped too: none may be
         * committed (a stale snapshot must be ignored) */
        checker__on_truncate(s, n, u->snapshot_meta.index + 1);
        sim__log_reset(&n->shadow, u->snapshot_meta.index,
                       u->snapshot_meta.term);
    }
    if (u->truncate_from != 0) {
        checker__on_truncate(s, n, u->truncate_from);
        sim__log_truncate(&n->shadow, u->truncate_from);
    }
    for (unsigned i = 0; i < u->n_entries && !s->failed; i++) {
        const struct raft_entry* e = &u->entries[i];
        raft_index last = sim__log_last(&n->shadow);
        if (e->index != last + 1) {
            sim__violate(s,
                         "contract: n%" PRIu64 " appends index %" PRIu64
                         " after last %" PRIu64 " (truncate_from %" PRIu64 ")",
                         n->id, e->index, last, u->truncate_from);
            return;
        }
        raft_term prev = e->index - 1 < n->shadow.base
                             ? UINT64_MAX
                             : sim__log_term(&n->shadow, e->index - 1);
        checker__on_append(s, n, e, prev);
        sim__log_push(&n->shadow, &(struct sim_ent){
                                      .term = e->term,
                                      .type = e->type,
                                      .len = (uint32_t)e->data.len,
                                      .hash = sim__entry_hash(
                                          e->type, e->data.base, e->data.len)});
    }
    if (u->n_entries > 0 &&
        (u->persist_index != u->entries[u->n_entries - 1].index ||
         u->persist_term != u->entries[u->n_entries - 1].term)) {
        sim__violate(s, "contract: n%" PRIu64 " persist_index/term mismatch",
                     n->id);
    }
}
