/* node_check.c - the start-up checks between the db file and the raft log
 * (docs/architecture.md "Start-up checks", docs/format-db.md "Torn tail
 * rule").
 *
 * The db file holds the state up to its applied index A; the raft log holds
 * a snapshot index S (everything <= S was dropped from it, the db file had
 * it durably first) and the entries S+1..M. Replay at start applies the
 * log's entries after A. So the data dir is consistent only if
 *   S <= A         the log still holds every entry after the db's state,
 *   A <= M         the db has nothing the log never had (a lone server would
 *                  append new entries at indexes the store skips as applied),
 *   commit <= M    the log still holds every entry it recorded committed
 *                  (in a cluster the leader sends them again: a WARN).
 * A torn db tail may be dropped only where what it held can be replayed:
 * the db's valid prefix ends at A and S <= A (and, alone, the tail named no
 * index past M). Every other case refuses to start with a message naming
 * the file, the byte offsets, the revisions and raft indexes concerned;
 * nothing is modified (the torn tail is truncated only once it is known
 * to be replayable).
 *
 * One case is repaired rather than refused: in a cluster, A > M is the
 * crash window of a snapshot install (the image was written, the log reset
 * was not). Entries <= A are committed, so the leader sends them again or
 * an image; the store skips what it has, and this node cannot win an
 * election with a log shorter than a committed index.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node_state_internal.h"

/* The latest configuration the log knows (a CONF entry, else the
 * snapshot's, else the --initial-cluster one). */
static void latest_conf(const struct node* n,
                        const struct rlog_loaded* l,
                        struct raft_conf* c)
{
    *c = l->snap.conf.n > 0 ? l->snap.conf : n->initial_conf;
    for (unsigned i = l->n_entries; i > 0; i--) {
        const struct raft_entry* e = &l->entries[i - 1];
        if (e->type == RAFT_ENTRY_CONF &&
            raft_conf_decode(c, e->data.base, e->data.len) == 0) {
            return;
        }
    }
}

static bool alone(const struct node* n, const struct rlog_loaded* l)
{
    struct raft_conf c;
    latest_conf(n, l, &c);
    return c.n == 1 && c.servers[0].id == n->id;
}

static int refuse_tail(const struct node* n,
                       const char* db,
                       const struct store_recovery* rec,
                       raft_index s,
                       raft_index m)
{
    char lost_idx[96], lost_rev[96];
    raft_index a = rec->applied_index;
    int k = 0;
    /* Lost: what neither holds, a+1..s (the log starts after s), and what
     * the tail named past the log's end m. */
    if (s > a) {
        k = snprintf(lost_idx, sizeof(lost_idx),
                     "raft indexes %" PRIu64 "..%" PRIu64, a + 1, s);
    }
    if (rec->tail_index_max > m && k >= 0 && (size_t)k < sizeof(lost_idx)) {
        k += snprintf(lost_idx + k, sizeof(lost_idx) - (size_t)k,
                      "%s%" PRIu64 "..%" PRIu64,
                      k > 0 ? " and " : "raft indexes ", m + 1,
                      rec->tail_index_max);
    }
    if (k == 0) {
        snprintf(lost_idx, sizeof(lost_idx), "raft indexes after %" PRIu64, a);
    }
    if (rec->tail_rev_max > rec->revision) {
        snprintf(lost_rev, sizeof(lost_rev),
                 "revisions %" PRIu64 "..%" PRIu64 " at least",
                 rec->revision + 1, rec->tail_rev_max);
    } else {
        snprintf(lost_rev, sizeof(lost_rev),
                 "revisions after %" PRIu64 " (no frame header is readable)",
                 rec->revision);
    }
    node__log(n, RAFT_TRACE_ERROR,
              "db %s: bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64
              " bytes) do not validate (%s); the raft log cannot replay what "
              "they held: it holds entries %" PRIu64 "..%" PRIu64
              " only, the db's valid frames end at index %" PRIu64
              ", revision %" PRIu64
              ". Lost: %s, %s. Refusing to start; "
              "nothing was modified (docs/operations.md: a damaged data dir)",
              db, rec->torn_off, rec->torn_off + rec->torn_bytes,
              rec->torn_bytes, rec->torn_reason, s + 1, m, a, rec->revision,
              lost_idx, lost_rev);
    (void)n;
    return -EUCLEAN;
}

int node__check_disk(struct node* n,
                     const char* db,
                     const struct store_recovery* rec,
                     const struct rlog_loaded* l)
{
    raft_index a = rec->applied_index;
    raft_index s = l->snap.index;
    raft_index m = s + l->n_entries;
    bool lone = alone(n, l);

    assert(a == store_applied_index(n->store));
    if (rec->torn_bytes > 0 && (s > a || (lone && rec->tail_index_max > m))) {
        return refuse_tail(n, db, rec, s, m);
    }
    if (s > a) {
        node__log(n, RAFT_TRACE_ERROR,
                  "db %s holds index %" PRIu64 " (revision %" PRIu64
                  ") but the raft log was compacted to index %" PRIu64
                  ": raft indexes %" PRIu64 "..%" PRIu64
                  " are in neither. Refusing to start; nothing was modified",
                  db, a, rec->revision, s, a + 1, s);
        return -EUCLEAN;
    }
    if (l->hs.commit > m && lone) {
        node__log(n, RAFT_TRACE_ERROR,
                  "raft log of %s: its hard state records commit index "
                  "%" PRIu64 " but the log ends at %" PRIu64
                  ": committed entries %" PRIu64 "..%" PRIu64
                  " are lost. Refusing to start; the db was not modified",
                  n->data_dir, l->hs.commit, m, m + 1, l->hs.commit);
        return -EUCLEAN;
    }
    if (l->hs.commit > m) {
        node__log(n, RAFT_TRACE_WARN,
                  "raft log of %s: its hard state records commit index "
                  "%" PRIu64 " but the log ends at %" PRIu64
                  ": entries %" PRIu64 "..%" PRIu64
                  " are lost here; the leader sends them again",
                  n->data_dir, l->hs.commit, m, m + 1, l->hs.commit);
    }
    if (a > m && (lone || l->fresh)) {
        node__log(n, RAFT_TRACE_ERROR,
                  "db %s has index %" PRIu64 " but the raft log %s%" PRIu64
                  ": the data dir is inconsistent (a new entry would reuse an "
                  "index the db has applied). Refusing to start; nothing was "
                  "modified",
                  db, a, l->fresh ? "is new: it ends at " : "ends at ", m);
        return -EUCLEAN;
    }
    if (a > m) {
        node__log(n, RAFT_TRACE_WARN,
                  "db %s has index %" PRIu64
                  " but the raft log ends at "
                  "%" PRIu64
                  " (a snapshot install was cut short): entries up to "
                  "%" PRIu64 " are committed; the leader sends them again",
                  db, a, m, a);
    }
    if (rec->torn_bytes > 0) {
        int rv = store_drop_tail(n->store);
        if (rv != 0) {
            node__log(n, RAFT_TRACE_ERROR, "db %s: cannot truncate: %s", db,
                      strerror(-rv));
            return rv;
        }
        node__log(
            n, RAFT_TRACE_WARN,
            "db %s: dropped a torn tail of %" PRIu64 " bytes at offset %" PRIu64
            " (%s); the raft log replays entries %" PRIu64 "..%" PRIu64,
            db, rec->torn_bytes, rec->torn_off, rec->torn_reason, a + 1, m);
    }
    return 0;
}
