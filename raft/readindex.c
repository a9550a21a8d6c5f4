/* readindex.c - linearizable reads (thesis 6.4), proposals and their
 * forwarding, and leadership transfer (thesis 3.10).
 *
 * ReadIndex on the leader: a read waits until the leader committed an entry
 * of its term, then takes index = commit and a sequence number; every append
 * carries the latest sequence and followers echo it; once a quorum of voters
 * echoed a sequence, the reads up to it are confirmed. Followers forward
 * reads to the leader and fail them with RAFT_ELEADERLOST if it changes.
 */
#include <errno.h>

#include "core_internal.h"

/* ---- ReadIndex ---- */

static bool committed_in_term(const struct raft* r)
{
    raft_term t;
    return raft__term_at(r, r->commit, &t) && t == r->term;
}

static void reads_assign(struct raft* r)
{
    if (!committed_in_term(r)) {
        return;
    }
    bool any = false;
    for (unsigned i = 0; i < r->n_reads; i++) {
        if (r->reads[i].seq == 0) {
            if (!any) {
                r->read_seq++;
                any = true;
            }
            r->reads[i].index = r->commit;
            r->reads[i].seq = r->read_seq;
        }
    }
    if (any) {
        r->read_bcast = true;
    }
}

/* Highest read sequence acknowledged by a quorum of voters. */
static uint64_t reads_confirmed(const struct raft* r)
{
    uint64_t acks[RAFT_SERVERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < r->conf.n; i++) {
        const struct raft_server* s = &r->conf.servers[i];
        if (s->role != RAFT_VOTER) {
            continue;
        }
        if (s->id == r->opt.id) {
            acks[n++] = r->read_seq;
        } else {
            const struct raft__progress* p = NULL;
            for (unsigned k = 0; k < r->n_progress; k++) {
                if (r->progress[k].id == s->id) {
                    p = &r->progress[k];
                }
            }
            acks[n++] = p ? p->read_ack : 0;
        }
    }
    if (n == 0) {
        return 0;
    }
    for (unsigned i = 1; i < n; i++) {
        for (unsigned j = i; j > 0 && acks[j - 1] < acks[j]; j--) {
            uint64_t tmp = acks[j];
            acks[j] = acks[j - 1];
            acks[j - 1] = tmp;
        }
    }
    return acks[raft__quorum(r) - 1];
}

static void read_answer(struct raft* r, const struct raft__read* rd, int err)
{
    if (rd->from == 0) {
        if (err == 0) {
            raft__emit_read(r, rd->ctx, rd->index);
        } else {
            raft__fail_read(r, rd->ctx, err);
        }
        return;
    }
    struct raft_message* m = raft__msg(r, RAFT_MSG_READ_INDEX_RESP, rd->from);
    if (m != NULL) {
        m->read_index_resp.ctx = rd->ctx;
        m->read_index_resp.index = err == 0 ? rd->index : 0;
        m->read_index_resp.err = err;
    }
}

void raft__reads_advance(struct raft* r)
{
    if (r->role != RAFT_LEADER || r->n_reads == 0) {
        return;
    }
    reads_assign(r);
    uint64_t confirmed = reads_confirmed(r);
    unsigned k = 0;
    while (k < r->n_reads && r->reads[k].seq != 0 &&
           r->reads[k].seq <= confirmed) {
        read_answer(r, &r->reads[k], 0);
        k++;
    }
    if (k > 0) {
        memmove(r->reads, r->reads + k, (r->n_reads - k) * sizeof(*r->reads));
        r->n_reads -= k;
    }
}

void raft__reads_fail_all(struct raft* r, int err)
{
    for (unsigned i = 0; i < r->n_reads; i++) {
        read_answer(r, &r->reads[i], err);
    }
    r->n_reads = 0;
}

void raft__fwd_reads_fail(struct raft* r, raft_id leader, int err)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < r->n_fwd_reads; i++) {
        if (r->fwd_reads[i].leader == leader) {
            r->fwd_reads[kept++] = r->fwd_reads[i];
        } else {
            raft__fail_read(r, r->fwd_reads[i].ctx, err);
        }
    }
    r->n_fwd_reads = kept;
}

static int leader_read(struct raft* r, raft_id from, uint64_t ctx)
{
    if (r->n_reads == RAFT_READS_MAX) {
        return RAFT_EBUSY;
    }
    struct raft__read* rd = &r->reads[r->n_reads++];
    rd->from = from;
    rd->ctx = ctx;
    rd->index = 0;
    rd->seq = 0;
    raft__reads_advance(r);
    return 0;
}

int raft__read_index(struct raft* r, uint64_t ctx)
{
    if (r->role == RAFT_LEADER) {
        return leader_read(r, 0, ctx);
    }
    if (r->leader == 0) {
        return RAFT_ENOTLEADER;
    }
    if (r->n_fwd_reads == RAFT_READS_MAX) {
        return RAFT_EBUSY;
    }
    struct raft_message* m = raft__msg(r, RAFT_MSG_READ_INDEX, r->leader);
    if (m == NULL) {
        return RAFT_ENOMEM;
    }
    m->read_index.ctx = ctx;
    r->fwd_reads[r->n_fwd_reads].ctx = ctx;
    r->fwd_reads[r->n_fwd_reads].leader = r->leader;
    r->n_fwd_reads++;
    return 0;
}

void raft__recv_read_index(struct raft* r, const struct raft_message* m)
{
    int err = r->role == RAFT_LEADER
                  ? leader_read(r, m->from, m->read_index.ctx)
                  : RAFT_ELEADERLOST;
    if (err != 0) {
        struct raft__read rd = {m->from, m->read_index.ctx, 0, 0};
        read_answer(r, &rd, err);
    }
}

void raft__recv_read_index_resp(struct raft* r, const struct raft_message* m)
{
    const struct raft_msg_read_index_resp* a = &m->read_index_resp;
    for (unsigned i = 0; i < r->n_fwd_reads; i++) {
        if (r->fwd_reads[i].ctx != a->ctx ||
            r->fwd_reads[i].leader != m->from) {
            continue;
        }
        memmove(&r->fwd_reads[i], &r->fwd_reads[i + 1],
                (r->n_fwd_reads - i - 1) * sizeof(*r->fwd_reads));
        r->n_fwd_reads--;
        if (a->err < 0) {
            raft__fail_read(r, a->ctx, a->err);
        } else {
            raft__emit_read(r, a->ctx, a->index);
        }
        return;
    }
}

/* ---- proposals ---- */

static int props_check(const struct raft_proposal* props, unsigned n)
{
    if (n > RAFT_PROPOSE_BATCH_MAX || (n > 0 && props == NULL)) {
        return -EINVAL;
    }
    for (unsigned i = 0; i < n; i++) {
        if (props[i].type != RAFT_ENTRY_NORMAL ||
            (props[i].data.len > 0 && props[i].data.base == NULL)) {
            return -EINVAL;
        }
        if (props[i].data.len > RAFT_ENTRY_DATA_MAX) {
            return RAFT_ETOOBIG;
        }
    }
    return 0;
}

static int leader_append(struct raft* r,
                         const struct raft_proposal* props,
                         unsigned n)
{
    assert(r->role == RAFT_LEADER);
    if (r->transfer_to != 0) {
        return RAFT_ETRANSFER;
    }
    for (unsigned i = 0; i < n; i++) {
        int rv = raft__log_append(r, r->term, RAFT_ENTRY_NORMAL,
                                  props[i].data.base, props[i].data.len);
        if (rv != 0) {
            return rv; /* the ones before are in the log */
        }
    }
    raft__bcast_append(r);
    raft__maybe_commit(r);
    return 0;
}

/* Forwards props[0..n) to the leader in batches the codec accepts. */
static int forward(struct raft* r,
                   const struct raft_proposal* props,
                   unsigned n)
{
    unsigned i = 0;
    while (i < n) {
        unsigned k = 0;
        size_t bytes = 0;
        while (i + k < n && (k == 0 || bytes + props[i + k].data.len <=
                                           RAFT_APPEND_BYTES_MAX)) {
            bytes += props[i + k].data.len;
            k++;
        }
        struct raft_proposal* copy = raft__scratch(r, k * sizeof(*copy));
        if (copy == NULL) {
            return RAFT_ENOMEM;
        }
        for (unsigned j = 0; j < k; j++) {
            copy[j] = props[i + j];
            void* data = raft__scratch(r, copy[j].data.len);
            if (data == NULL) {
                return RAFT_ENOMEM;
            }
            if (copy[j].data.len > 0) {
                memcpy(data, copy[j].data.base, copy[j].data.len);
            }
            copy[j].data.base = data;
        }
        struct raft_message* m = raft__msg(r, RAFT_MSG_PROPOSE, r->leader);
        if (m == NULL) {
            return RAFT_ENOMEM;
        }
        m->propose.n = k;
        m->propose.props = copy;
        i += k;
    }
    return 0;
}

int raft__propose(struct raft* r, const struct raft_proposal* props, unsigned n)
{
    int rv = props_check(props, n);
    if (rv != 0 || n == 0) {
        return rv;
    }
    if (r->role == RAFT_LEADER) {
        return leader_append(r, props, n);
    }
    if (r->leader == 0) {
        return RAFT_ENOTLEADER;
    }
    return forward(r, props, n);
}

void raft__recv_propose(struct raft* r, const struct raft_message* m)
{
    const struct raft_msg_propose* a = &m->propose;
    bool conf =
        a->n == 1 && a->props != NULL && a->props[0].type == RAFT_ENTRY_CONF;
    int err = conf ? raft__conf_change_forwarded(r, &a->props[0])
                   : props_check(a->props, a->n);
    if (err == 0 && !conf) {
        err = r->role == RAFT_LEADER ? leader_append(r, a->props, a->n)
                                     : RAFT_ENOTLEADER;
    }
    if (err == 0 || a->n > RAFT_PROPOSE_BATCH_MAX || a->props == NULL) {
        return;
    }
    uint64_t* ctxs = raft__scratch(r, a->n * sizeof(*ctxs));
    struct raft_message* out = raft__msg(r, RAFT_MSG_PROPOSE_RESP, m->from);
    if (ctxs == NULL || out == NULL) {
        return;
    }
    for (unsigned i = 0; i < a->n; i++) {
        ctxs[i] = a->props[i].ctx;
    }
    out->propose_resp.err = err < 0 ? err : RAFT_ENOTLEADER;
    out->propose_resp.n = a->n;
    out->propose_resp.ctxs = ctxs;
}

void raft__recv_propose_resp(struct raft* r, const struct raft_message* m)
{
    const struct raft_msg_propose_resp* a = &m->propose_resp;
    if (a->n > RAFT_PROPOSE_BATCH_MAX || (a->n > 0 && a->ctxs == NULL)) {
        return;
    }
    for (unsigned i = 0; i < a->n; i++) {
        raft__fail_proposal(r, a->ctxs[i],
                            a->err < 0 ? a->err : RAFT_ENOTLEADER);
    }
}

/* ---- leadership transfer ---- */

static raft_id transfer_pick(struct raft* r)
{
    raft_id best = 0;
    raft_index best_match = 0;
    for (unsigned i = 0; i < r->n_progress; i++) {
        const struct raft__progress* p = &r->progress[i];
        if (raft__is_voter(r, p->id) && (best == 0 || p->match > best_match)) {
            best = p->id;
            best_match = p->match;
        }
    }
    return best;
}

void raft__transfer_check(struct raft* r, struct raft__progress* p)
{
    if (r->transfer_to != p->id || p->match != raft__last_index(r)) {
        return;
    }
    raft__trace(r, RAFT_TRACE_INFO, "transfer: timeout-now to %s",
                RAFT__NAME(r, p->id));
    raft__msg(r, RAFT_MSG_TIMEOUT_NOW, p->id);
}

int raft__transfer(struct raft* r, raft_id to)
{
    if (r->role != RAFT_LEADER) {
        /* Asked on a follower: the leader starts it (like a forwarded
         * proposal, but without an answer: the asker sees the leader
         * change, or not). */
        if (r->role != RAFT_FOLLOWER || r->leader == 0) {
            return RAFT_ENOTLEADER;
        }
        struct raft_message* m = raft__msg(r, RAFT_MSG_TRANSFER, r->leader);
        m->transfer.to = to;
        raft__trace(r, RAFT_TRACE_INFO, "transfer to %s: asked of leader %s",
                    to != 0 ? RAFT__NAME(r, to) : "the best voter",
                    RAFT__NAME(r, r->leader));
        return 0;
    }
    if (to == 0) {
        to = transfer_pick(r);
    }
    if (to == r->opt.id) {
        return 0;
    }
    struct raft__progress* p = raft__progress_get(r, to);
    if (to == 0 || p == NULL || !raft__is_voter(r, to)) {
        return RAFT_EBADCONF;
    }
    if (r->transfer_to != 0) {
        return r->transfer_to == to ? 0 : RAFT_ETRANSFER;
    }
    r->transfer_to = to;
    r->transfer_deadline_ms = r->now_ms + r->opt.election_ms;
    raft__trace(r, RAFT_TRACE_INFO, "transfer leadership to %s",
                RAFT__NAME(r, to));
    if (p->match == raft__last_index(r)) {
        raft__transfer_check(r, p);
    } else {
        raft__send_append(r, p);
    }
    return 0;
}

/* A member asked for a transfer (raft__transfer on a follower). */
void raft__recv_transfer(struct raft* r, const struct raft_message* m)
{
    if (r->role != RAFT_LEADER || raft__progress_get(r, m->from) == NULL) {
        raft__trace(r, RAFT_TRACE_DEBUG,
                    "transfer asked by %s: not the leader, dropped",
                    RAFT__NAME(r, m->from));
        return;
    }
    int rv = raft__transfer(r, m->transfer.to);
    if (rv != 0) {
        raft__trace(r, RAFT_TRACE_INFO, "transfer asked by %s refused: %s",
                    RAFT__NAME(r, m->from), raft_strerror(rv));
    }
}
