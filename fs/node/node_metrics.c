/* node_metrics.c - the node's metrics as Prometheus text (node_metrics.h,
 * docs/operations.md "Metrics and health"). The figures come from where
 * `quorumfs status` reads them (the core, the store's stats, the I/O
 * thread's counters, the transport) plus the few counters the node keeps
 * for this (struct node_counters); nothing is counted twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_metrics.h"
#include "node_state_internal.h"

/* Bucket upper bounds, in ns and as printed (le="..."). */
static const uint64_t hist_bounds_ns[NODE_HIST_BOUNDS] = {
    100000,     250000,     500000,     1000000,     2500000,   5000000,
    10000000,   25000000,   50000000,   100000000,   250000000, 500000000,
    1000000000, 2500000000, 5000000000, 10000000000,
};
static const char* const hist_bounds_text[NODE_HIST_BOUNDS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10",
};

void node_hist_observe(struct node_hist* h, uint64_t ns)
{
    unsigned i = 0;
    while (i < NODE_HIST_BOUNDS && ns > hist_bounds_ns[i]) {
        i++;
    }
    h->buckets[i]++;
    h->count++;
    h->sum_ns += ns;
}

void node_metrics_printf(struct node_metrics_buf* b, const char* fmt, ...)
{
    va_list ap;
    if (b->err != 0) {
        return;
    }
    for (;;) {
        /* An empty buffer (buf NULL, cap 0) is sized by the first call. */
        char* at = b->buf != NULL ? b->buf + b->len : NULL;
        va_start(ap, fmt);
        int need = vsnprintf(at, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (need < 0) {
            b->err = -EINVAL;
            return;
        }
        if ((size_t)need < b->cap - b->len) {
            b->len += (size_t)need;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)need + 64;
        if (cap > NODE_METRICS_TEXT_MAX) {
            b->err = -E2BIG;
            return;
        }
        char* nb = realloc(b->buf, cap);
        if (nb == NULL) {
            b->err = -ENOMEM;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

void node_metrics_family(struct node_metrics_buf* b,
                         const char* name,
                         const char* type,
                         const char* help)
{
    node_metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

void node_metrics_single(struct node_metrics_buf* b,
                         const char* name,
                         const char* type,
                         const char* help,
                         uint64_t value)
{
    node_metrics_family(b, name, type, help);
    node_metrics_printf(b, "%s %llu\n", name, (unsigned long long)value);
}

void node_metrics_hist(struct node_metrics_buf* b,
                       const char* name,
                       const char* labels,
                       const struct node_hist* h)
{
    const char* sep = labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;
    for (unsigned i = 0; i < NODE_HIST_BOUNDS; i++) {
        cum += h->buckets[i];
        node_metrics_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name,
                            labels, sep, hist_bounds_text[i], cum);
    }
    node_metrics_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name,
                        labels, sep, h->count);
    const char* lb = labels[0] != '\0' ? "{" : "";
    const char* rb = labels[0] != '\0' ? "}" : "";
    node_metrics_printf(b, "%s_sum%s%s%s %" PRIu64 ".%09" PRIu64 "\n", name, lb,
                        labels, rb, h->sum_ns / 1000000000,
                        h->sum_ns % 1000000000);
    node_metrics_printf(b, "%s_count%s%s%s %" PRIu64 "\n", name, lb, labels, rb,
                        h->count);
}

int node_metrics_add_source(struct node* n,
                            node_metrics_source_cb cb,
                            void* data)
{
    for (unsigned i = 0; i < NODE_METRICS_SOURCES_MAX; i++) {
        if (n->metric_sources[i].cb == NULL) {
            n->metric_sources[i].cb = cb;
            n->metric_sources[i].data = data;
            return 0;
        }
    }
    return -ENOSPC;
}

void node_metrics_remove_source(struct node* n,
                                node_metrics_source_cb cb,
                                void* data)
{
    for (unsigned i = 0; i < NODE_METRICS_SOURCES_MAX; i++) {
        if (n->metric_sources[i].cb == cb &&
            n->metric_sources[i].data == data) {
            n->metric_sources[i].cb = NULL;
            n->metric_sources[i].data = NULL;
        }
    }
}

/* One family of one unlabeled sample. */
static void one(struct node_metrics_buf* b,
                const char* name,
                const char* type,
                const char* help,
                uint64_t v)
{
    node_metrics_family(b, name, type, help);
    node_metrics_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* A label value: \, " and newline escaped (format 0.0.4). */
static void label_value(char* out, size_t cap, const char* s)
{
    size_t o = 0;
    for (; *s != '\0' && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

static void raft_metrics(struct node* n, struct node_metrics_buf* b)
{
    const struct node_counters* c = &n->counters;
    raft_index commit = raft_commit_index(n->raft);
    one(b, "quorumfs_term", "gauge", "The current raft term.",
        raft_current_term(n->raft));
    one(b, "quorumfs_is_leader", "gauge", "1 if this node is the leader.",
        raft_role(n->raft) == RAFT_LEADER ? 1 : 0);
    one(b, "quorumfs_has_leader", "gauge", "1 if this node knows a leader.",
        raft_leader(n->raft) != 0 ? 1 : 0);
    one(b, "quorumfs_catching_up", "gauge",
        "1 while this node, started with no storage of its own, catches up "
        "(it does not vote).",
        raft_catching_up(n->raft) ? 1 : 0);
    one(b, "quorumfs_lost_vote", "gauge",
        "1 if this node was a voter before it lost its storage: it does "
        "not vote and must be replaced.",
        raft_lost_vote(n->raft) ? 1 : 0);
    one(b, "quorumfs_leader_changes_total", "counter",
        "Times the leader this node knows changed (to none included).",
        c->leader_changes);
    one(b, "quorumfs_commit_index", "gauge",
        "The highest log index this node knows committed.", commit);
    one(b, "quorumfs_last_index", "gauge", "The last index of the raft log.",
        raft_last_index(n->raft));
    one(b, "quorumfs_proposals_total", "counter",
        "Commands proposed through this node.", n->proposals);
    one(b, "quorumfs_proposal_timeouts_total", "counter",
        "Proposals not applied within the proposal timeout.", n->timeouts);
    one(b, "quorumfs_proposals_pending", "gauge",
        "Proposals waiting to be applied.", n->n_waiters);
    node_metrics_family(b, "quorumfs_proposal_duration_seconds", "histogram",
                        "From a proposal to its answer (applied here, or "
                        "failed).");
    node_metrics_hist(b, "quorumfs_proposal_duration_seconds", "",
                      &c->proposal_hist);
    one(b, "quorumfs_applied_entries_total", "counter",
        "Committed raft entries applied to the store since start.",
        c->applied_entries);
    one(b, "quorumfs_snapshot_sends_total", "counter",
        "Snapshot images this node started sending to a follower.",
        c->snapshot_sends);
    one(b, "quorumfs_snapshot_installs_total", "counter",
        "Snapshot images received from the leader and installed.",
        c->snapshot_installs);
}

/* The leader's view of every member: match index and lag behind the
 * commit index. Followers know no match indexes: nothing then. */
static void member_metrics(struct node* n, struct node_metrics_buf* b)
{
    const struct raft_conf* conf = raft_conf_current(n->raft);
    raft_index commit = raft_commit_index(n->raft);
    if (raft_role(n->raft) != RAFT_LEADER) {
        return;
    }
    node_metrics_family(b, "quorumfs_member_lag_entries", "gauge",
                        "Leader only: entries up to the commit index that a "
                        "member's log lacks (commit index - match index).");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            node_metrics_family(b, "quorumfs_member_match_index", "gauge",
                                "Leader only: the highest log index known "
                                "replicated on a member.");
        }
        for (unsigned i = 0; i < conf->n; i++) {
            const struct raft_server* s = &conf->servers[i];
            raft_index match = raft_last_index(n->raft);
            bool reachable = true;
            if (s->id != n->id &&
                raft_peer_progress(n->raft, s->id, &match, &reachable) != 0) {
                continue;
            }
            char name[RAFT_NAME_MAX * 2 + 1];
            label_value(name, sizeof(name), s->name);
            if (pass == 0) {
                node_metrics_printf(
                    b,
                    "quorumfs_member_lag_entries{member=\"%s\"} %" PRIu64 "\n",
                    name, commit > match ? commit - match : 0);
            } else {
                node_metrics_printf(
                    b,
                    "quorumfs_member_match_index{member=\"%s\"} %" PRIu64 "\n",
                    name, match);
            }
        }
    }
}

static void store_metrics(struct node* n, struct node_metrics_buf* b)
{
    struct store_stats ss;
    store_get_stats(n->store, &ss);
    raft_index commit = raft_commit_index(n->raft);
    one(b, "quorumfs_applied_index", "gauge",
        "The last log index applied to the store.", ss.applied_index);
    one(b, "quorumfs_apply_lag_entries", "gauge",
        "Committed entries this node has not applied yet.",
        commit > ss.applied_index ? commit - ss.applied_index : 0);
    one(b, "quorumfs_revision", "gauge", "The store's revision.", ss.revision);
    one(b, "quorumfs_keys", "gauge", "Files, directories and links stored.",
        ss.keys);
    one(b, "quorumfs_db_size_bytes", "gauge", "Size of the db file.",
        ss.db_bytes);
    one(b, "quorumfs_live_bytes", "gauge",
        "Bytes of the current tree (counted against the quota).",
        ss.live_bytes);
    one(b, "quorumfs_disk_error", "gauge",
        "1 once a disk error stopped writes on this node.",
        n->sticky_err != 0 ? 1 : 0);
}

static void io_metrics(struct node* n, struct node_metrics_buf* b)
{
    uint64_t rounds, syncs, jobs;
    struct node_hist h;
    node__io_stats(&n->io, &rounds, &syncs, &jobs);
    node__io_fsync_hist(&n->io, &h);
    one(b, "quorumfs_log_syncs_total", "counter",
        "fdatasync calls that made raft log appends durable.", syncs);
    node_metrics_family(b, "quorumfs_log_fsync_duration_seconds", "histogram",
                        "Duration of the raft log's fdatasync.");
    node_metrics_hist(b, "quorumfs_log_fsync_duration_seconds", "", &h);
    if (n->transport != NULL) {
        struct transport_stats ts;
        transport_get_stats(n->transport, &ts);
        one(b, "quorumfs_peer_frames_received_total", "counter",
            "Frames received from peers.", ts.frames_in);
        one(b, "quorumfs_peer_frames_sent_total", "counter",
            "Frames sent to peers.", ts.frames_out);
        one(b, "quorumfs_peer_connects_total", "counter",
            "Peer connections made.", ts.connects);
    }
}

int node_metrics_text(struct node* n, char** out, size_t* len)
{
    struct node_metrics_buf b = {.cap = 8192};
    b.buf = malloc(b.cap);
    if (b.buf == NULL) {
        return -ENOMEM;
    }
    raft_metrics(n, &b);
    member_metrics(n, &b);
    store_metrics(n, &b);
    io_metrics(n, &b);
    for (unsigned i = 0; i < NODE_METRICS_SOURCES_MAX; i++) {
        if (n->metric_sources[i].cb != NULL) {
            n->metric_sources[i].cb(n->metric_sources[i].data, &b);
        }
    }
    if (b.err != 0) {
        free(b.buf);
        return b.err;
    }
    *out = b.buf;
    *len = b.len;
    return 0;
}

bool node_ready(struct node* n, const char** why)
{
    struct store_stats ss;
    if (n->stopping) {
        *why = "the node is stopping";
        return false;
    }
    if (n->sticky_err != 0) {
        *why = "a disk error stopped writes on this node";
        return false;
    }
    if (raft_leader(n->raft) == 0) {
        *why = "no leader known";
        return false;
    }
    /* A node that lost its vote has caught up (it serves its mount; the
     * marker stays for its next start): ready, and its metrics and status
     * say it must be replaced. */
    if (raft_catching_up(n->raft) ||
        (n->catching_up && !raft_lost_vote(n->raft))) {
        *why = "catching up with the cluster after start";
        return false;
    }
    store_get_stats(n->store, &ss);
    if (ss.applied_index + NODE_READY_LAG_MAX < raft_commit_index(n->raft)) {
        *why = "behind: committed entries not applied yet";
        return false;
    }
    return true;
}
