/* snapshot.c - log compaction and InstallSnapshot in chunks (thesis 5).
 *
 * The leader streams the image the app gave with RAFT_EV_COMPACT, one chunk
 * of RAFT_SNAPSHOT_CHUNK bytes in flight per follower, resuming from the
 * follower's next_offset and restarting at 0 when the image changed (unless
 * the follower holds the whole image and is installing it) or the
 * follower rejected. The follower collects chunks in memory (at most
 * RAFT_SNAPSHOT_BYTES_MAX), hands the complete image to the app with
 * update.snapshot_install and answers done after RAFT_EV_SNAPSHOT_INSTALLED.
 * An installed image is kept and served if this node becomes leader.
 */
#include <errno.h>

#include "core_internal.h"

/* Whether p's last chunk is in flight: the peer holds the whole image
 * and answers once it has installed it (an install of a large image takes
 * a while, and it drops chunks meanwhile). */
static bool installing(const struct raft__progress* p)
{
    return p->state == PROGRESS_SNAPSHOT && p->snap_inflight && p->snap_last;
}

/* After RAFT_EV_COMPACT gave a new image: transfers restart with it from
 * offset 0 (even at the same index: a rebuilt image need not be the same
 * bytes), and without an image they stop (the peers probe again, and ask
 * for one through raft_image_wanted when they answer). A peer that has
 * the whole image (its last chunk is in flight) is left to install it:
 * a chunk of the new one would be dropped unanswered while it installs,
 * and once installed it may catch up by log. Its answer moves it on
 * (raft__recv_snapshot_resp: by log, or the newest image from offset 0);
 * if none comes, the chunk is resent after an election timeout
 * (raft__tick_leader), from the newest image (raft__send_snapshot). */
static void restart_snapshots(struct raft* r)
{
    for (unsigned i = 0; i < r->n_progress; i++) {
        struct raft__progress* p = &r->progress[i];
        if (p->state != PROGRESS_SNAPSHOT) {
            continue;
        }
        if (installing(p) && p->snap_index != r->image_meta.index) {
            raft__trace(r, RAFT_TRACE_DEBUG,
                        "snapshot to %s: waiting for its install of %llu",
                        RAFT__NAME(r, p->id),
                        (unsigned long long)p->snap_index);
            continue;
        }
        if (!r->have_image) {
            raft__trace(r, RAFT_TRACE_INFO,
                        "snapshot to %s stopped: image released",
                        RAFT__NAME(r, p->id));
            raft__progress_probe(p, p->next);
        } else {
            p->snap_index = r->image_meta.index;
            p->snap_offset = 0;
            p->snap_inflight = false;
            p->snap_start_ms = r->now_ms;
            raft__send_snapshot(r, p);
        }
    }
}

static void set_image(struct raft* r,
                      const struct raft_snapshot_meta* meta,
                      struct raft_buf image,
                      void* owned)
{
    if (r->own_image != NULL && r->own_image != owned) {
        raft__defer_free(r, r->own_image);
    }
    r->own_image = owned;
    /* An empty image is no image: a node that keeps none (fs/node/node.c: a
     * follower, a lone server) must never stream an empty state. */
    r->have_image = image.len > 0;
    r->image_meta = *meta;
    r->image = image;
}

int raft__compact(struct raft* r,
                  const struct raft_snapshot_meta* meta,
                  struct raft_buf image,
                  raft_index keep_from)
{
    raft_term t;
    if (meta->index > r->applied || meta->conf.n > RAFT_SERVERS_MAX ||
        (image.len > 0 && image.base == NULL)) {
        return -EINVAL;
    }
    if (image.len > RAFT_SNAPSHOT_BYTES_MAX) {
        return -EFBIG;
    }
    if (!raft__term_at(r, meta->index, &t) || t != meta->term) {
        return -EINVAL; /* already compacted past it, or a wrong term */
    }
    set_image(r, meta, image, NULL);
    raft_index keep = meta->index + 1;
    if (keep_from != 0 && keep_from < keep) {
        keep = keep_from;
    }
    if (keep > r->first_index) {
        raft__term_at(r, keep - 1, &t);
        raft__conf_compact(r, keep);
        size_t drop = keep - r->first_index;
        for (size_t i = 0; i < drop; i++) {
            raft__defer_free(r, (void*)r->entries[i].data.base);
        }
        memmove(r->entries, r->entries + drop,
                (r->n_entries - drop) * sizeof(*r->entries));
        r->n_entries -= drop;
        r->first_index = keep;
        r->base_term = t;
    }
    raft__trace(r, RAFT_TRACE_DEBUG, "compacted: image %llu, log from %llu",
                (unsigned long long)meta->index,
                (unsigned long long)r->first_index);
    restart_snapshots(r);
    if (r->have_image && r->role == RAFT_LEADER) {
        /* Peers that waited for an image (start_snapshot found none). */
        for (unsigned i = 0; i < r->n_progress; i++) {
            struct raft__progress* p = &r->progress[i];
            if (p->id != r->opt.id && p->state != PROGRESS_SNAPSHOT &&
                p->next < r->first_index) {
                raft__send_append(r, p);
            }
        }
    }
    return 0;
}

bool raft_image_wanted(const struct raft* r)
{
    if (r->role != RAFT_LEADER) {
        return false;
    }
    for (unsigned i = 0; i < r->n_progress; i++) {
        const struct raft__progress* p = &r->progress[i];
        /* A transfer is not cut short by a slow answer (a follower
         * installing a large image). Otherwise only for a peer heard from
         * within an election timeout: a stopped or cut-off follower would
         * hold an image nobody reads. */
        if (p->id == r->opt.id) {
            continue;
        }
        if (p->state == PROGRESS_SNAPSHOT) {
            return true; /* until done or abandoned (raft__tick_leader) */
        }
        if (p->next < r->first_index &&
            p->last_recv_ms + r->opt.election_ms > r->now_ms) {
            return true;
        }
    }
    return false;
}

bool raft_image_held(const struct raft* r)
{
    return r->have_image;
}

void raft__send_snapshot(struct raft* r, struct raft__progress* p)
{
    assert(p->state == PROGRESS_SNAPSHOT);
    if (!r->have_image) {
        return;
    }
    if (p->snap_index != r->image_meta.index || p->snap_offset > r->image.len) {
        p->snap_index = r->image_meta.index;
        p->snap_offset = 0;
    }
    uint64_t left = r->image.len - p->snap_offset;
    struct raft_message* m = raft__msg(r, RAFT_MSG_SNAPSHOT, p->id);
    if (m == NULL) {
        return;
    }
    m->snapshot.meta = r->image_meta;
    m->snapshot.total = r->image.len;
    m->snapshot.offset = p->snap_offset;
    m->snapshot.chunk.base = (const uint8_t*)r->image.base + p->snap_offset;
    m->snapshot.chunk.len =
        left < RAFT_SNAPSHOT_CHUNK ? left : RAFT_SNAPSHOT_CHUNK;
    p->snap_inflight = true;
    p->snap_last = m->snapshot.chunk.len == left;
    p->snap_sent_ms = r->now_ms;
}

static bool chunk_valid(const struct raft_msg_snapshot* s)
{
    return s->total <= RAFT_SNAPSHOT_BYTES_MAX &&
           s->chunk.len <= RAFT_SNAPSHOT_CHUNK && s->offset <= s->total &&
           s->chunk.len <= s->total - s->offset &&
           (s->chunk.len == 0 || s->chunk.base != NULL) &&
           s->meta.conf.n <= RAFT_SERVERS_MAX && s->meta.index > 0;
}

static bool log_has(const struct raft* r, const struct raft_snapshot_meta* m)
{
    raft_term t;
    return raft__term_at(r, m->index, &t) && t == m->term;
}

/* Starts collecting a new image; false if it cannot be held. */
static bool rx_start(struct raft* r, const struct raft_message* m)
{
    free(r->rx_buf);
    r->rx_buf = malloc(m->snapshot.total ? m->snapshot.total : 1);
    r->rx_active = r->rx_buf != NULL;
    r->rx_meta = m->snapshot.meta;
    r->rx_total = m->snapshot.total;
    r->rx_received = 0;
    return r->rx_active;
}

/* Takes one chunk; returns false when the answer must wait for install. */
static bool rx_chunk(struct raft* r,
                     const struct raft_message* m,
                     struct raft_msg_snapshot_resp* resp)
{
    const struct raft_msg_snapshot* s = &m->snapshot;
    bool same = r->rx_active && r->rx_meta.index == s->meta.index &&
                r->rx_meta.term == s->meta.term && r->rx_total == s->total;
    if (!same && (s->offset != 0 || !rx_start(r, m))) {
        resp->reject = true;
        return true;
    }
    if (s->offset != r->rx_received) {
        resp->next_offset = r->rx_received; /* duplicate or gap: resume */
        return true;
    }
    if (s->chunk.len > 0) {
        memcpy(r->rx_buf + r->rx_received, s->chunk.base, s->chunk.len);
    }
    r->rx_received += s->chunk.len;
    r->rx_from = m->from;
    resp->next_offset = r->rx_received;
    if (r->rx_received < r->rx_total) {
        return true;
    }
    raft__trace(r, RAFT_TRACE_INFO,
                "received snapshot at index %llu (%llu bytes) from %s",
                (unsigned long long)s->meta.index,
                (unsigned long long)r->rx_total, RAFT__NAME(r, m->from));
    r->rx_installing = true;
    r->snapshot_install = true;
    return false;
}

void raft__recv_snapshot(struct raft* r, const struct raft_message* m)
{
    if (r->role == RAFT_LEADER) {
        return;
    }
    if (r->role != RAFT_FOLLOWER) {
        raft__become_follower(r, m->term, m->from);
    }
    raft__set_leader(r, m->from);
    r->leader_contact = true;
    r->leader_contact_ms = r->now_ms;
    raft__reset_election_timer(r);
    const struct raft_msg_snapshot* s = &m->snapshot;
    struct raft_msg_snapshot_resp resp = {s->meta.index, 0, false, false};
    if (!chunk_valid(s)) {
        resp.reject = true;
    } else if (s->meta.index <= r->commit || log_has(r, &s->meta)) {
        /* Stale, or a prefix of our log (thesis 5.1.1: keep the entries
         * after it, they may be counted replicas of committed entries). */
        if (s->meta.index > r->commit) {
            r->commit = s->meta.index;
        }
        resp.done = true;
        resp.next_offset = s->total;
    } else if (r->rx_installing || !rx_chunk(r, m, &resp)) {
        return; /* answered after RAFT_EV_SNAPSHOT_INSTALLED */
    }
    struct raft_message* out = raft__msg(r, RAFT_MSG_SNAPSHOT_RESP, m->from);
    if (out != NULL) {
        out->snapshot_resp = resp;
    }
}

int raft__snapshot_installed(struct raft* r,
                             const struct raft_snapshot_meta* meta)
{
    if (!r->rx_installing || meta->index != r->rx_meta.index) {
        return -EINVAL;
    }
    const struct raft_snapshot_meta* sm = &r->rx_meta;
    raft__log_reset(r, sm->index, sm->term);
    r->commit = r->commit > sm->index ? r->commit : sm->index;
    r->applied = sm->index;
    r->persisted = sm->index;
    r->base_conf = sm->conf;
    r->base_conf_index = sm->conf_index;
    bool was_voter = raft__is_voter(r, r->opt.id);
    r->conf = sm->conf;
    r->conf_index = sm->conf_index;
    r->conf_changed = true;
    raft__rejoin_conf(r, was_voter, sm->conf_index);
    struct raft_buf image = {r->rx_buf, r->rx_total};
    set_image(r, sm, image, r->rx_buf);
    r->rx_buf = NULL;
    r->rx_active = false;
    r->rx_installing = false;
    raft__trace(r, RAFT_TRACE_DEBUG, "snapshot %llu installed",
                (unsigned long long)sm->index);
    if (r->rx_from != 0 && r->rx_from != r->opt.id) {
        struct raft_message* out =
            raft__msg(r, RAFT_MSG_SNAPSHOT_RESP, r->rx_from);
        if (out != NULL) {
            out->snapshot_resp.index = sm->index;
            out->snapshot_resp.next_offset = r->rx_total;
            out->snapshot_resp.done = true;
        }
    }
    return 0;
}

void raft__recv_snapshot_resp(struct raft* r, const struct raft_message* m)
{
    if (r->role != RAFT_LEADER) {
        return;
    }
    struct raft__progress* p = raft__progress_get(r, m->from);
    if (p == NULL) {
        return;
    }
    const struct raft_msg_snapshot_resp* a = &m->snapshot_resp;
    p->recent_active = true;
    p->last_recv_ms = r->now_ms;
    if (a->done) {
        if (a->index > p->match) {
            p->match = a->index;
        }
        raft_term t;
        if (p->state == PROGRESS_SNAPSHOT && a->index != p->snap_index &&
            !raft__term_at(r, p->match, &t)) {
            /* Done for another image than the one being sent (a late or
             * duplicate answer: to a chunk resent after a timeout, or
             * from before a restart), and the log cannot go on from what
             * the peer has: the transfer goes on where it is instead of
             * starting again from offset 0. Its first chunk is resent if
             * it has no answer yet: the peer may have dropped it while it
             * installed the older image. */
            raft__trace(r, RAFT_TRACE_DEBUG,
                        "snapshot %llu done at %s; sending %llu goes on",
                        (unsigned long long)a->index, RAFT__NAME(r, m->from),
                        (unsigned long long)p->snap_index);
            if (p->snap_offset == 0) {
                p->snap_inflight = false;
            }
            raft__maybe_commit(r);
            if (r->role == RAFT_LEADER) {
                raft__send_append(r, p); /* the chunk, if none in flight */
            }
            return;
        }
        if (p->state == PROGRESS_SNAPSHOT) {
            bool again = p->snap_sent_logged == a->index;
            p->snap_sent_logged = a->index;
            raft__trace(r, again ? RAFT_TRACE_DEBUG : RAFT_TRACE_INFO,
                        "snapshot at index %llu (%llu bytes) sent to %s in "
                        "%llu ms",
                        (unsigned long long)a->index,
                        (unsigned long long)r->image.len,
                        RAFT__NAME(r, m->from),
                        (unsigned long long)(r->now_ms - p->snap_start_ms));
            p->state = PROGRESS_PROBE;
            p->next = p->match + 1;
            p->probe_sent = false;
            p->snap_inflight = false;
        } else if (p->next <= p->match) {
            /* sim fix (seed 7317): keep next > match. A reject that
             * arrived while the snapshot was installing moved the peer to
             * PROBE at next == index; without this the leader probed below
             * the follower's snapshot forever. */
            p->next = p->match + 1;
            p->probe_sent = false;
        }
        raft__maybe_commit(r);
        if (r->role == RAFT_LEADER) {
            raft__send_append(r, p);
        }
        return;
    }
    if (p->state != PROGRESS_SNAPSHOT || a->index != p->snap_index) {
        return; /* stale, or for an image we no longer send */
    }
    p->snap_offset = a->reject ? 0 : a->next_offset;
    p->snap_inflight = false;
    raft__send_snapshot(r, p);
}

void raft__rx_reset(struct raft* r)
{
    if (!r->rx_installing) {
        free(r->rx_buf);
        r->rx_buf = NULL;
        r->rx_active = false;
    }
}
