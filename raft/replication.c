/* replication.c - log replication (thesis 3.5, 10.2): per-follower progress
 * with probe/replicate/snapshot states and a bounded inflight window, fast
 * backtracking with conflict hints, heartbeats and the commit rule
 * (Figure 8: only entries of the current term are committed by counting).
 */
#include "core_internal.h"

/* ---- progress and the inflight window ---- */

struct raft__progress* raft__progress_get(const struct raft* r, raft_id id)
{
    for (unsigned i = 0; i < r->n_progress; i++) {
        if (r->progress[i].id == id) {
            /* const in, mutable out (as strchr): read-only callers keep
             * a const pointer */
            return (struct raft__progress*)&r->progress[i];
        }
    }
    return NULL;
}

void raft__progress_reset(struct raft__progress* p, raft_id id, raft_index next)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->next = next;
    p->state = PROGRESS_PROBE;
    p->recent_active = true;
}

/* Full at inflight_max appends or inflight_bytes_max bytes of entry data
 * in flight (back-pressure: a slow follower gets fewer appends in flight,
 * so the sender's queue to it stays bounded in bytes). */
static bool inflight_full(const struct raft* r, const struct raft__progress* p)
{
    return p->inflight_count >= r->opt.inflight_max ||
           (r->opt.inflight_bytes_max > 0 && p->inflight_count > 0 &&
            p->inflight_bytes >= r->opt.inflight_bytes_max);
}

static void inflight_add(struct raft__progress* p,
                         raft_index last,
                         uint64_t bytes)
{
    assert(p->inflight_count < RAFT_INFLIGHT_MAX);
    unsigned at = (p->inflight_start + p->inflight_count) % RAFT_INFLIGHT_MAX;
    p->inflight[at] = last;
    p->inflight_len[at] = bytes;
    p->inflight_bytes += bytes;
    p->inflight_count++;
}

static void inflight_free_first(struct raft__progress* p)
{
    if (p->inflight_count > 0) {
        p->inflight_bytes -= p->inflight_len[p->inflight_start];
        p->inflight_start = (p->inflight_start + 1) % RAFT_INFLIGHT_MAX;
        p->inflight_count--;
    }
}

static void inflight_free_to(struct raft__progress* p, raft_index index)
{
    while (p->inflight_count > 0 && p->inflight[p->inflight_start] <= index) {
        inflight_free_first(p);
    }
}

static void progress_to(struct raft__progress* p, int state, raft_index next)
{
    p->state = (uint8_t)state;
    p->next = next;
    p->probe_sent = false;
    p->inflight_start = 0;
    p->inflight_count = 0;
    p->inflight_bytes = 0;
    p->snap_inflight = false;
}

void raft__progress_probe(struct raft__progress* p, raft_index next)
{
    progress_to(p, PROGRESS_PROBE, next);
}

/* ---- sending ---- */

/* Entries [from, ...] that fit in one append (codec rule: the data of all
 * but the last entry sums to <= RAFT_APPEND_BYTES_MAX). */
static unsigned append_batch(const struct raft* r, raft_index from)
{
    raft_index last = raft__last_index(r);
    unsigned n = 0;
    size_t bytes = 0;
    while (from + n <= last && n < RAFT_APPEND_ENTRIES_MAX) {
        size_t len = raft__entry(r, from + n)->data.len;
        if (n > 0 && bytes + len > RAFT_APPEND_BYTES_MAX) {
            break;
        }
        bytes += len;
        n++;
    }
    return n;
}

static void start_snapshot(struct raft* r, struct raft__progress* p)
{
    if (!r->have_image) {
        raft__trace(r, RAFT_TRACE_WARN,
                    "peer %s needs index %llu, compacted, and no image",
                    RAFT__NAME(r, p->id), (unsigned long long)p->next);
        return;
    }
    progress_to(p, PROGRESS_SNAPSHOT, p->next);
    p->snap_index = r->image_meta.index;
    p->snap_offset = 0;
    /* Logged once per image and peer: a transfer that starts again (the
     * peer answered for an older one, or probed again) says so at debug. */
    bool again = p->snap_logged == p->snap_index;
    p->snap_logged = p->snap_index;
    if (!again) {
        p->snap_start_ms = r->now_ms;
    }
    raft__trace(r, again ? RAFT_TRACE_DEBUG : RAFT_TRACE_INFO,
                "sending snapshot at index %llu (%llu bytes) to %s",
                (unsigned long long)p->snap_index,
                (unsigned long long)r->image.len, RAFT__NAME(r, p->id));
    raft__send_snapshot(r, p);
}

/* Sends one append to p if its state allows; returns true if sent. */
/* The commit index a follower can have learnt from what we sent it. */
static void note_sent_commit(struct raft__progress* p, raft_index commit)
{
    if (commit > p->sent_commit) {
        p->sent_commit = commit;
    }
}

static bool send_one(struct raft* r, struct raft__progress* p, bool if_empty)
{
    if (p->state == PROGRESS_SNAPSHOT) {
        if (!p->snap_inflight) {
            raft__send_snapshot(r, p);
        }
        return false;
    }
    if ((p->state == PROGRESS_PROBE && p->probe_sent) ||
        (p->state == PROGRESS_REPLICATE && inflight_full(r, p))) {
        return false;
    }
    raft_index prev = p->next - 1;
    raft_term prev_term;
    if (!raft__term_at(r, prev, &prev_term)) {
        start_snapshot(r, p);
        return false;
    }
    unsigned n = append_batch(r, p->next);
    if (n == 0 && !if_empty && p->state == PROGRESS_REPLICATE) {
        return false;
    }
    struct raft_entry* ents = NULL;
    if (n > 0) {
        ents = raft__scratch(r, n * sizeof(*ents));
        if (ents == NULL) {
            return false;
        }
        memcpy(ents, raft__entry(r, p->next), n * sizeof(*ents));
    }
    struct raft_message* m = raft__msg(r, RAFT_MSG_APPEND, p->id);
    if (m == NULL) {
        return false;
    }
    m->append.prev_index = prev;
    m->append.prev_term = prev_term;
    m->append.commit = r->commit;
    m->append.read_seq = r->read_seq;
    m->append.n_entries = n;
    m->append.entries = ents;
    note_sent_commit(p, r->commit < prev + n ? r->commit : prev + n);
    if (p->state == PROGRESS_REPLICATE && n > 0) {
        uint64_t bytes = 0;
        for (unsigned i = 0; i < n; i++) {
            bytes += ents[i].data.len;
        }
        p->next += n;
        inflight_add(p, p->next - 1, bytes);
    } else if (p->state == PROGRESS_PROBE) {
        p->probe_sent = true;
    }
    return n > 0;
}

void raft__send_append(struct raft* r, struct raft__progress* p)
{
    /* Fill the window: bounded by inflight_max sends. */
    for (unsigned i = 0; i < r->opt.inflight_max; i++) {
        if (!send_one(r, p, false) || p->state != PROGRESS_REPLICATE) {
            return;
        }
    }
}

void raft__send_heartbeat(struct raft* r, struct raft__progress* p)
{
    raft_index prev = p->match;
    raft_term prev_term;
    if (!raft__term_at(r, prev, &prev_term)) {
        prev = 0; /* compacted: the follower answers with its commit */
        prev_term = 0;
    }
    struct raft_message* m = raft__msg(r, RAFT_MSG_APPEND, p->id);
    if (m == NULL) {
        return;
    }
    m->append.prev_index = prev;
    m->append.prev_term = prev_term;
    /* The whole commit index: the follower applies at most what matches
     * prev (min(commit, matched)), and a node catching up after losing its
     * storage learns from it how far it must get before it votes again. */
    m->append.commit = r->commit;
    m->append.read_seq = r->read_seq;
    note_sent_commit(p, r->commit < p->match ? r->commit : p->match);
}

void raft__bcast_append(struct raft* r)
{
    for (unsigned i = 0; i < r->n_progress; i++) {
        raft__send_append(r, &r->progress[i]);
    }
}

void raft__bcast_heartbeat(struct raft* r)
{
    for (unsigned i = 0; i < r->n_progress; i++) {
        raft__send_heartbeat(r, &r->progress[i]);
    }
    r->heartbeat_deadline_ms = r->now_ms + r->opt.heartbeat_ms;
    r->read_bcast = false;
    r->commit_bcast = false;
}

/* ---- follower: receiving appends ---- */

static bool append_valid(const struct raft_message* m)
{
    const struct raft_msg_append* a = &m->append;
    if (a->n_entries > RAFT_APPEND_ENTRIES_MAX ||
        (a->n_entries > 0 && a->entries == NULL)) {
        return false;
    }
    raft_term prev_term = a->prev_term;
    for (unsigned i = 0; i < a->n_entries; i++) {
        const struct raft_entry* e = &a->entries[i];
        if (e->index != a->prev_index + 1 + i || e->term < prev_term ||
            e->term > m->term || e->data.len > RAFT_ENTRY_DATA_MAX ||
            (e->data.len > 0 && e->data.base == NULL) ||
            e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_CONF) {
            return false;
        }
        prev_term = e->term;
    }
    return true;
}

/* First index of `term` at or before `index` (terms never decrease along
 * the log, so a binary search). */
static raft_index first_of_term(const struct raft* r,
                                raft_index index,
                                raft_term term)
{
    raft_index lo = r->first_index, hi = index;
    while (lo < hi) {
        raft_index mid = lo + (hi - lo) / 2;
        raft_term t;
        raft__term_at(r, mid, &t);
        if (t >= term) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static void reject_append(struct raft* r,
                          const struct raft_message* m,
                          struct raft_message* out)
{
    raft_index prev = m->append.prev_index;
    raft_index last = raft__last_index(r);
    out->append_resp.reject = true;
    out->append_resp.index = prev;
    if (prev > last) {
        out->append_resp.conflict_term = 0;
        out->append_resp.conflict_index = last + 1;
        return;
    }
    raft_term t;
    raft__term_at(r, prev, &t);
    out->append_resp.conflict_term = t;
    out->append_resp.conflict_index =
        prev < r->first_index ? prev : first_of_term(r, prev, t);
}

/* Appends the new part of m's entries; returns the last index known to
 * match the leader's log. */
static raft_index append_entries(struct raft* r, const struct raft_message* m)
{
    const struct raft_msg_append* a = &m->append;
    raft_index matched = a->prev_index;
    for (unsigned i = 0; i < a->n_entries; i++) {
        const struct raft_entry* e = &a->entries[i];
        raft_term t;
        if (raft__term_at(r, e->index, &t)) {
            if (t == e->term) {
                matched = e->index;
                continue;
            }
            if (e->index <= r->commit) {
                raft__trace(r, RAFT_TRACE_ERROR,
                            "leader %s conflicts at committed %llu",
                            RAFT__NAME(r, m->from),
                            (unsigned long long)e->index);
                return matched;
            }
            raft__trace(r, RAFT_TRACE_INFO, "truncating log from %llu",
                        (unsigned long long)e->index);
            raft__log_truncate(r, e->index);
        }
        if (raft__log_append(r, e->term, e->type, e->data.base, e->data.len) !=
            0) {
            return matched;
        }
        matched = e->index;
    }
    return matched;
}

void raft__recv_append(struct raft* r, const struct raft_message* m)
{
    if (r->role == RAFT_LEADER) {
        raft__trace(r, RAFT_TRACE_ERROR, "second leader %s at term %llu",
                    RAFT__NAME(r, m->from), (unsigned long long)r->term);
        return;
    }
    if (r->role != RAFT_FOLLOWER) {
        raft__become_follower(r, m->term, m->from);
    }
    raft__set_leader(r, m->from);
    if (r->catching_up && r->vote == 0) {
        /* The leader won this term: counting our vote for it can never
         * elect a second leader, and it keeps us from granting one. */
        r->vote = m->from;
        r->hs_dirty = true;
    }
    r->leader_contact = true;
    r->leader_contact_ms = r->now_ms;
    raft__reset_election_timer(r);
    if (!append_valid(m)) {
        raft__trace(r, RAFT_TRACE_WARN, "malformed append from %s",
                    RAFT__NAME(r, m->from));
        return;
    }
    if (m->append.commit > r->leader_commit) {
        r->leader_commit = m->append.commit;
    }
    if (r->rx_installing && m->append.n_entries > 0) {
        return; /* the log is being replaced by a snapshot */
    }
    struct raft_message* out = raft__msg(r, RAFT_MSG_APPEND_RESP, m->from);
    if (out == NULL) {
        return;
    }
    out->append_resp.read_seq = m->append.read_seq;
    raft_index prev = m->append.prev_index;
    raft_term t;
    if (prev + 1 < r->first_index) {
        /* Below our snapshot: everything up to commit matches. */
        out->append_resp.index = r->commit;
    } else if (!raft__term_at(r, prev, &t) || t != m->append.prev_term) {
        reject_append(r, m, out);
    } else {
        raft_index matched = append_entries(r, m);
        raft_index c = m->append.commit < matched ? m->append.commit : matched;
        if (c > r->commit) {
            r->commit = c;
        }
        out->append_resp.index = matched;
        raft_term ct;
        if (r->catching_up && matched >= m->append.commit &&
            raft__term_at(r, m->append.commit, &ct) && ct == m->term) {
            /* Caught up with a commit index the leader reached in its own
             * term: every entry committed before is at or below it (a new
             * leader's commit index starts behind until it commits an
             * entry of its term; catching up with that would be with
             * nothing). */
            r->catching_up = false;
            r->rejoin_commit = m->append.commit;
            raft__trace(r, RAFT_TRACE_INFO,
                        "caught up with leader %s at commit %llu in term "
                        "%llu",
                        RAFT__NAME(r, m->from),
                        (unsigned long long)m->append.commit,
                        (unsigned long long)r->term);
            raft__rejoin_eval(r);
        }
    }
    out->append_resp.last_index = raft__last_index(r);
}

/* ---- leader: append responses and commit ---- */

/* Largest index <= index whose term is <= term (etcd findConflictByTerm). */
static raft_index last_of_term(const struct raft* r,
                               raft_index index,
                               raft_term term)
{
    raft_index lo = r->first_index - 1, hi = index;
    while (lo < hi) {
        raft_index mid = hi - (hi - lo) / 2;
        raft_term t;
        raft__term_at(r, mid, &t);
        if (t <= term) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

static void handle_reject(struct raft* r,
                          struct raft__progress* p,
                          const struct raft_message* m)
{
    const struct raft_msg_append_resp* a = &m->append_resp;
    raft_index rejected = a->index;
    if (p->state == PROGRESS_REPLICATE) {
        if (rejected <= p->match) {
            return; /* stale */
        }
    } else if (p->state != PROGRESS_PROBE || rejected != p->next - 1) {
        return; /* stale, or a snapshot is under way */
    }
    raft_index next = a->conflict_index;
    if (a->conflict_term != 0 && rejected > 0 &&
        rejected <= raft__last_index(r) + 1 && rejected >= r->first_index) {
        raft_index i = last_of_term(r, rejected - 1, a->conflict_term);
        raft_term t;
        if (raft__term_at(r, i, &t) && t == a->conflict_term) {
            next = i + 1;
        }
    }
    next = next < rejected ? next : rejected;
    next = next > p->match + 1 ? next : p->match + 1;
    raft__trace(r, RAFT_TRACE_DEBUG, "peer %s rejected %llu, next %llu",
                RAFT__NAME(r, p->id), (unsigned long long)rejected,
                (unsigned long long)next);
    progress_to(p, PROGRESS_PROBE, next);
    raft__send_append(r, p);
}

static void handle_accept(struct raft* r,
                          struct raft__progress* p,
                          const struct raft_message* m)
{
    raft_index index = m->append_resp.index;
    bool progressed = index > p->match;
    /* A probe accepted at the match we already had (a caught-up peer that
     * restarted, with nothing new to send) ends the probe as well. Left in
     * PROBE, every such answer sent the next empty probe, and the two
     * exchanged appends without end until the next write (etcd: Match ==
     * Index in StateProbe). */
    bool probe_matched = p->state == PROGRESS_PROBE && index == p->match;
    if (p->state == PROGRESS_PROBE) {
        p->probe_sent = false;
    }
    raft_term t;
    if (probe_matched) {
        progress_to(p, PROGRESS_REPLICATE, index + 1);
    } else if (progressed) {
        p->match = index;
        if (p->state == PROGRESS_SNAPSHOT && !raft__term_at(r, index, &t)) {
            /* A follower being sent an image answered a heartbeat with
             * its commit (an image it installed), which our log cannot
             * go on from: the transfer goes on (replicating would start
             * it again from offset 0). */
        } else if (p->state != PROGRESS_REPLICATE) {
            progress_to(p, PROGRESS_REPLICATE, index + 1);
        } else if (p->next <= index) {
            p->next = index + 1;
        }
        inflight_free_to(p, index);
        raft__maybe_commit(r);
        raft__transfer_check(r, p);
        if (r->role != RAFT_LEADER) {
            return; /* stepped down after committing its removal */
        }
        /* A follower that answered after the entry committed would learn
         * the commit only at the next heartbeat: tell it now (etcd's
         * CanBumpCommit), so its local apply (and a write proposed
         * there) does not wait a heartbeat interval. */
        raft_index can = r->commit < p->match ? r->commit : p->match;
        if (can > p->sent_commit && !r->commit_bcast) {
            raft__send_heartbeat(r, p);
        }
    } else if (p->state == PROGRESS_REPLICATE && inflight_full(r, p)) {
        inflight_free_first(p); /* a heartbeat answer: unstick after loss */
    }
    if (!progressed && p->match < raft__last_index(r) &&
        p->state == PROGRESS_REPLICATE) {
        send_one(r, p, true); /* lost appends show up as a reject */
    }
    raft__send_append(r, p);
}

/* Whether the answer shows that p's log went backwards: its last index is
 * below the match it acknowledged, or it rejects an index at or below that
 * match. Raft assumes stable storage (thesis 3.8), so this means the
 * follower lost entries: a wiped data dir, a torn log tail. Without this the
 * leader keeps next > match forever and the two exchange rejections without
 * end (a probe at match + 1 that can never succeed). */
static bool peer_regressed(const struct raft__progress* p,
                           const struct raft_msg_append_resp* a)
{
    if (p->state == PROGRESS_SNAPSHOT || p->match == 0) {
        return false; /* the snapshot replaces its log anyway */
    }
    return a->last_index < p->match || (a->reject && a->index <= p->match);
}

/* Forget what p acknowledged and probe again from what it says it has.
 * The new match is 0, not its last index: entries it holds now may come
 * from an older leader (a wiped node accepts any term), so only an accepted
 * probe sets match again. A stale or duplicated answer can look the same;
 * it costs one probe, and lowering match never undoes a commit. At most one
 * probe goes out per answer (PROBE state), so there is no storm. */
static void peer_reprobe(struct raft* r,
                         struct raft__progress* p,
                         const struct raft_msg_append_resp* a)
{
    raft_index next = a->last_index + 1;
    if (a->reject && a->index < next) {
        next = a->index;
    }
    next = next > 0 ? next : 1;
    raft__trace(r, RAFT_TRACE_WARN,
                "peer %s lost entries: it has up to %llu, acknowledged "
                "%llu; probing from %llu",
                RAFT__NAME(r, p->id), (unsigned long long)a->last_index,
                (unsigned long long)p->match, (unsigned long long)next);
    p->match = 0;
    p->sent_commit = 0;
    progress_to(p, PROGRESS_PROBE, next);
    raft__send_append(r, p);
}

/* The peer restarted: appends in flight to it are lost, a snapshot it was
 * receiving is gone with its memory, and its log may have lost its tail.
 * Probe it from its match: an answer below match then resets match
 * (peer_regressed), an accepted one resumes replication. One probe. */
void raft__peer_restarted(struct raft* r, raft_id id)
{
    struct raft__progress* p =
        r->role == RAFT_LEADER ? raft__progress_get(r, id) : NULL;
    if (p == NULL) {
        return;
    }
    raft__trace(r, RAFT_TRACE_INFO, "peer %s restarted: probing from %llu",
                RAFT__NAME(r, id), (unsigned long long)p->match + 1);
    progress_to(p, PROGRESS_PROBE, p->match + 1);
    raft__send_append(r, p);
}

void raft__recv_append_resp(struct raft* r, const struct raft_message* m)
{
    if (r->role != RAFT_LEADER) {
        return;
    }
    struct raft__progress* p = raft__progress_get(r, m->from);
    if (p == NULL) {
        return;
    }
    p->recent_active = true;
    p->last_recv_ms = r->now_ms;
    if (m->append_resp.read_seq > p->read_ack &&
        m->append_resp.read_seq <= r->read_seq) {
        p->read_ack = m->append_resp.read_seq;
        raft__reads_advance(r);
    }
    if (peer_regressed(p, &m->append_resp)) {
        peer_reprobe(r, p, &m->append_resp);
    } else if (m->append_resp.reject) {
        handle_reject(r, p, m);
    } else {
        handle_accept(r, p, m);
    }
}

void raft__maybe_commit(struct raft* r)
{
    assert(r->role == RAFT_LEADER);
    raft_index m[RAFT_SERVERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < r->conf.n; i++) {
        const struct raft_server* s = &r->conf.servers[i];
        if (s->role != RAFT_VOTER) {
            continue;
        }
        const struct raft__progress* p = raft__progress_get(r, s->id);
        m[n++] = s->id == r->opt.id ? r->persisted : (p ? p->match : 0);
    }
    if (n == 0) {
        return;
    }
    for (unsigned i = 1; i < n; i++) { /* insertion sort, descending */
        for (unsigned j = i; j > 0 && m[j - 1] < m[j]; j--) {
            raft_index tmp = m[j];
            m[j] = m[j - 1];
            m[j - 1] = tmp;
        }
    }
    raft_index idx = m[raft__quorum(r) - 1];
    raft_term t;
    if (idx <= r->commit || !raft__term_at(r, idx, &t)) {
        return;
    }
    if (t != r->term && !r->opt.bug_commit_old_term) {
        return; /* Figure 8: never commit an old term by counting */
    }
    r->commit = idx;
    r->commit_bcast = true;
    raft__reads_advance(r);
    raft__conf_check_removed_leader(r);
}

void raft__tick_leader(struct raft* r)
{
    assert(r->role == RAFT_LEADER);
    if (r->now_ms >= r->heartbeat_deadline_ms) {
        raft__bcast_heartbeat(r);
        for (unsigned i = 0; i < r->n_progress; i++) {
            struct raft__progress* p = &r->progress[i];
            if (p->state != PROGRESS_SNAPSHOT) {
                continue;
            }
            if (r->now_ms >=
                p->last_recv_ms + RAFT_SNAPSHOT_ABANDON_TIMEOUTS *
                                      (uint64_t)r->opt.election_ms) {
                /* Silent for long (stopped, cut off, gone): stop holding
                 * the image for it. It probes again when it answers, and
                 * asks for an image then (raft_image_wanted). */
                raft__trace(r, RAFT_TRACE_WARN,
                            "snapshot to %s abandoned: no answer",
                            RAFT__NAME(r, p->id));
                raft__progress_probe(p, p->next);
            } else if (p->snap_inflight &&
                       r->now_ms >= p->snap_sent_ms + r->opt.election_ms) {
                p->snap_inflight = false; /* lost: resend the chunk */
                raft__send_snapshot(r, p);
            }
        }
    }
    if (r->transfer_to != 0 && r->now_ms >= r->transfer_deadline_ms) {
        raft__trace(r, RAFT_TRACE_WARN, "transfer to %s timed out",
                    RAFT__NAME(r, r->transfer_to));
        r->transfer_to = 0;
    }
    if (!r->opt.check_quorum || r->now_ms < r->quorum_deadline_ms) {
        return;
    }
    unsigned active = raft__is_voter(r, r->opt.id) ? 1 : 0;
    for (unsigned i = 0; i < r->n_progress; i++) {
        struct raft__progress* p = &r->progress[i];
        if (p->recent_active && raft__is_voter(r, p->id)) {
            active++;
        }
        p->recent_active = false;
    }
    r->quorum_deadline_ms = r->now_ms + r->opt.election_ms;
    if (active < raft__quorum(r)) {
        raft__trace(r, RAFT_TRACE_WARN, "check-quorum failed (%u active)",
                    active);
        raft__become_follower(r, r->term, 0);
    }
}
