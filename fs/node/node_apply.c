/* node_apply.c - committed entries applied to the store, in order: the
 * proposer's waiter answered, the watch ring's event recorded
 * (node_watch.c), configuration entries noted, the log's
 * entry sizes kept for byte-bounded compaction. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "node_internal.h"
#include "node_state_internal.h"

/* ---- apply ---- */

static void on_applied_cmd(struct node* n,
                           const struct raft_entry* e,
                           const struct store_result* res)
{
    struct store_cmd c;
    if (store_cmd_decode(&c, e->data.base, e->data.len) != 0 ||
        c.origin != n->id) {
        return;
    }
    struct waiter* w = node__waiter_find(n, c.seq);
    if (w == NULL) {
        return;
    }
    if (res->duplicate) {
        /* Not applied by this entry; if it had been applied before, the
         * waiter would be gone, unless an installed image consumed it:
         * the dedup table has its result (or its fence's). Else it was
         * refused as too old: unknown. */
        if (!node__answer_from_table(n, w, false)) {
            node__fail_waiter(n, w, -EIO);
        }
        return;
    }
    if (c.op == STORE_OP_CANCEL) {
        /* The fence won: the proposal is not applied and never will be. */
        n->timeouts++;
        node__fail_waiter(n, w, -EIO);
        return;
    }
    node__complete_waiter(n, w, res);
}

/* Counts e in the applied part of the in-memory log (--snapshot-bytes). */
static void log_lens_note(struct node* n, const struct raft_entry* e)
{
    uint64_t cost = e->data.len + NODE_ENTRY_OVERHEAD;
    if (e->index != n->lens_next) { /* the first, or after an install */
        n->lens_first = e->index;
    } else if (e->index - n->lens_first >= NODE_LOG_LENS) {
        n->lens_first++;
    }
    n->log_lens[e->index % NODE_LOG_LENS] =
        cost > UINT32_MAX ? UINT32_MAX : (uint32_t)cost;
    n->lens_next = e->index + 1;
    n->log_bytes += cost;
}

static void apply_one(struct node* n, const struct raft_entry* e)
{
    struct store_result res;
    int rv = 0;

    log_lens_note(n, e);

    if (e->index <= store_applied_index(n->store)) {
        /* Replay after a restart: the db file already has it. */
        n->applied_term = e->term;
        if (e->type == RAFT_ENTRY_CONF) {
            node__conf_applied(n, e);
        }
        return;
    }
    n->applied_bytes += e->data.len;
    n->counters.applied_entries++;
    switch (e->type) {
    case RAFT_ENTRY_NORMAL:
        node__watch_prepare(n, e->data.base, e->data.len, n->watch_next);
        rv = store_apply(n->store, e->index, e->data.base, e->data.len,
                         n->opts.on_change, n->opts.on_change_data, &res);
        if (rv == 0) {
            node__watch_applied(n, n->watch_next, &res);
            on_applied_cmd(n, e, &res);
            node__history_sample(n);
        }
        break;
    case RAFT_ENTRY_CONF:
        node__conf_applied(n, e);
        rv = store_apply_index(n->store, e->index);
        break;
    default:
        rv = store_apply_index(n->store, e->index);
        break;
    }
    if (rv != 0 && n->sticky_err == 0) {
        n->sticky_err = rv;
        node__log(n, RAFT_TRACE_ERROR,
                  "store apply failed at index %" PRIu64
                  ": %s; refusing writes",
                  e->index, strerror(-rv));
    }
    n->applied_term = e->term;
}

void node__apply_committed(struct node* n,
                           const struct raft_entry* es,
                           unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        apply_one(n, &es[i]);
    }
    node__frame_schedule(n);
    node__watch_notify(n);
    n->compact_due = true; /* node__step runs it after the update */
}
