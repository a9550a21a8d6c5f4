/* core.c - lifecycle, the in-memory log, the update and raft_step dispatch.
 *
 * See raft.h for the contract. The other parts of the core live in
 * election.c, replication.c, readindex.c, membership.c and snapshot.c and
 * share struct raft through core_internal.h.
 */
#include <errno.h>
#include <stdio.h>

#include "core_internal.h"

#define TRACE_MSG_MAX 256

void raft_options_default(struct raft_options* o)
{
    assert(o != NULL);
    memset(o, 0, sizeof(*o));
    o->heartbeat_ms = 100;
    o->election_ms = 1000;
    o->pre_vote = true;
    o->check_quorum = true;
    o->inflight_max = RAFT_INFLIGHT_MAX;
    o->inflight_bytes_max = RAFT_INFLIGHT_BYTES_DEFAULT;
    o->tracer.level = RAFT_TRACE_INFO;
}

struct raft* raft_new(const struct raft_options* o)
{
    assert(o != NULL);
    assert(o->id != 0);
    assert(o->heartbeat_ms > 0 && o->election_ms > o->heartbeat_ms);
    assert(o->inflight_max >= 1 && o->inflight_max <= RAFT_INFLIGHT_MAX);
    struct raft* r = calloc(1, sizeof(*r));
    if (r == NULL) {
        goto err;
    }
    r->opt = *o;
    r->prng = o->seed ^ (o->id * 0x9e3779b97f4a7c15ull);
    r->role = RAFT_FOLLOWER;
    r->first_index = 1;
    r->catching_up = o->catch_up_first;
    r->reads = calloc(RAFT_READS_MAX, sizeof(*r->reads));
    if (r->reads == NULL) {
        goto err_after_alloc;
    }
    r->fwd_reads = calloc(RAFT_READS_MAX, sizeof(*r->fwd_reads));
    if (r->fwd_reads == NULL) {
        goto err_after_alloc;
    }
    r->out_reads = calloc(RAFT_READS_MAX, sizeof(*r->out_reads));
    if (r->out_reads == NULL) {
        goto err_after_alloc;
    }
    /* Failed reads: the leader's queue and the forwarded ones at once. */
    r->failed_reads =
        calloc(2 * (size_t)RAFT_READS_MAX, sizeof(*r->failed_reads));
    if (r->failed_reads == NULL) {
        goto err_after_alloc;
    }
    r->failed_props = calloc(RAFT_PROPOSE_BATCH_MAX, sizeof(*r->failed_props));
    if (r->failed_props == NULL) {
        goto err_after_alloc;
    }
    return r;

err_after_alloc:
    raft_free(r);
err:
    return NULL;
}

static void garbage_collect(struct raft* r)
{
    for (size_t i = 0; i < r->n_garbage; i++) {
        free(r->garbage[i]);
    }
    r->n_garbage = 0;
}

void raft_free(struct raft* r)
{
    if (r == NULL) {
        return;
    }
    garbage_collect(r);
    free(r->garbage);
    for (size_t i = 0; i < r->n_entries; i++) {
        free((void*)r->entries[i].data.base);
    }
    free(r->entries);
    free(r->msgs);
    free(r->reads);
    free(r->fwd_reads);
    free(r->out_reads);
    free(r->failed_reads);
    free(r->failed_props);
    free(r->rx_buf);
    free(r->own_image);
    free(r);
}

/* ---- helpers shared by the core's files ---- */

void raft__trace(struct raft* r, int level, const char* fmt, ...)
{
    if (r->opt.tracer.emit == NULL || level < r->opt.tracer.level) {
        return;
    }
    char buf[TRACE_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    r->opt.tracer.emit(r->opt.tracer.data, level, r->opt.id, buf);
}

const char* raft__name(const struct raft* r, raft_id id, char* buf)
{
    const struct raft_server* s = raft_conf_get(&r->conf, id);
    if (s == NULL) {
        s = raft_conf_get(&r->base_conf, id);
    }
    if (id == 0) {
        return "none";
    }
    if (s != NULL && s->name[0] != '\0') {
        return s->name;
    }
    snprintf(buf, RAFT__NAME_BUF, "node %016llx", (unsigned long long)id);
    return buf;
}

void raft__defer_free(struct raft* r, void* p)
{
    if (p == NULL) {
        return;
    }
    if (r->n_garbage == r->cap_garbage) {
        size_t cap = r->cap_garbage ? 2 * r->cap_garbage : 64;
        void** g = cap <= RAFT__GARBAGE_MAX
                       ? realloc(r->garbage, cap * sizeof(*g))
                       : NULL;
        if (g == NULL) {
            /* Cannot defer: nothing handed out in this step points at
             * truncated data on the paths that get here, so free now. */
            free(p);
            return;
        }
        r->garbage = g;
        r->cap_garbage = cap;
    }
    r->garbage[r->n_garbage++] = p;
}

void* raft__scratch(struct raft* r, size_t size)
{
    void* p = malloc(size ? size : 1);
    if (p == NULL) {
        return NULL;
    }
    raft__defer_free(r, p);
    return p;
}

/* Queues a message; returns NULL (and drops it: raft tolerates loss) when
 * out of memory or over RAFT__MSGS_MAX. */
struct raft_message* raft__msg(struct raft* r, int type, raft_id to)
{
    assert(to != 0 && to != r->opt.id);
    if (r->n_msgs == r->cap_msgs) {
        unsigned cap = r->cap_msgs ? 2 * r->cap_msgs : 16;
        struct raft_message* m =
            cap <= RAFT__MSGS_MAX ? realloc(r->msgs, cap * sizeof(*m)) : NULL;
        if (m == NULL) {
            raft__trace(r, RAFT_TRACE_WARN, "dropping %s to %s",
                        raft_msg_type_name(type), RAFT__NAME(r, to));
            return NULL;
        }
        r->msgs = m;
        r->cap_msgs = cap;
    }
    struct raft_message* m = &r->msgs[r->n_msgs++];
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)type;
    m->from = r->opt.id;
    m->to = to;
    m->term = r->term;
    return m;
}

static uint64_t prng_next(struct raft* r)
{
    /* splitmix64 */
    uint64_t z = (r->prng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void raft__reset_election_timer(struct raft* r)
{
    uint64_t base = r->opt.election_ms;
    r->election_deadline_ms = r->now_ms + base + prng_next(r) % base;
}

bool raft__is_voter(const struct raft* r, raft_id id)
{
    const struct raft_server* s = raft_conf_get(&r->conf, id);
    return s != NULL && s->role == RAFT_VOTER;
}

unsigned raft__quorum(const struct raft* r)
{
    return raft_conf_voters(&r->conf) / 2 + 1;
}

void raft__fail_read(struct raft* r, uint64_t ctx, int err)
{
    assert(r->n_failed_reads < 2 * RAFT_READS_MAX);
    r->failed_reads[r->n_failed_reads].ctx = ctx;
    r->failed_reads[r->n_failed_reads].err = err;
    r->n_failed_reads++;
}

void raft__fail_proposal(struct raft* r, uint64_t ctx, int err)
{
    if (r->n_failed_props == RAFT_PROPOSE_BATCH_MAX) {
        return; /* one PROPOSE_RESP per step at most; cannot happen */
    }
    r->failed_props[r->n_failed_props].ctx = ctx;
    r->failed_props[r->n_failed_props].err = err;
    r->n_failed_props++;
}

void raft__emit_read(struct raft* r, uint64_t ctx, raft_index index)
{
    assert(r->n_out_reads < RAFT_READS_MAX);
    r->out_reads[r->n_out_reads].ctx = ctx;
    r->out_reads[r->n_out_reads].index = index;
    r->n_out_reads++;
}

/* ---- the in-memory log ---- */

raft_index raft__last_index(const struct raft* r)
{
    return r->first_index + r->n_entries - 1;
}

bool raft__term_at(const struct raft* r, raft_index index, raft_term* term)
{
    if (index + 1 == r->first_index) {
        *term = r->base_term;
        return true;
    }
    if (index < r->first_index || index > raft__last_index(r)) {
        *term = 0;
        return false;
    }
    *term = r->entries[index - r->first_index].term;
    return true;
}

const struct raft_entry* raft__entry(const struct raft* r, raft_index index)
{
    if (index < r->first_index || index > raft__last_index(r)) {
        return NULL;
    }
    return &r->entries[index - r->first_index];
}

/* Appends a copy of data at last_index + 1. A CONF entry takes effect. */
int raft__log_append(struct raft* r,
                     raft_term term,
                     uint8_t type,
                     const void* data,
                     size_t len)
{
    assert(len <= RAFT_ENTRY_DATA_MAX);
    assert(term >= r->base_term);
    if (r->n_entries == r->cap_entries) {
        size_t cap = r->cap_entries ? 2 * r->cap_entries : 64;
        struct raft_entry* e = realloc(r->entries, cap * sizeof(*e));
        if (e == NULL) {
            return RAFT_ENOMEM;
        }
        r->entries = e;
        r->cap_entries = cap;
    }
    void* copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return RAFT_ENOMEM;
    }
    if (len > 0) {
        memcpy(copy, data, len);
    }
    struct raft_entry* e = &r->entries[r->n_entries++];
    e->term = term;
    e->index = raft__last_index(r);
    e->type = type;
    e->data.base = copy;
    e->data.len = len;
    if (r->new_from == 0) {
        r->new_from = e->index;
    }
    if (type == RAFT_ENTRY_CONF) {
        raft__conf_apply_entry(r, e);
    }
    return 0;
}

/* Drops entries >= from (a conflicting suffix), rolling back the conf. */
void raft__log_truncate(struct raft* r, raft_index from)
{
    assert(from >= r->first_index && from <= raft__last_index(r));
    assert(from > r->commit);
    for (raft_index i = from; i <= raft__last_index(r); i++) {
        raft__defer_free(r, (void*)r->entries[i - r->first_index].data.base);
    }
    r->n_entries = from - r->first_index;
    if (r->truncate_from == 0 || from < r->truncate_from) {
        r->truncate_from = from;
    }
    if (r->new_from >= from) {
        r->new_from = 0;
    }
    if (r->persisted >= from) {
        r->persisted = from - 1;
    }
    raft__conf_rollback(r, from);
}

/* Empties the log: the next entry is index + 1 and index has term. */
void raft__log_reset(struct raft* r, raft_index index, raft_term term)
{
    for (size_t i = 0; i < r->n_entries; i++) {
        raft__defer_free(r, (void*)r->entries[i].data.base);
    }
    r->n_entries = 0;
    r->first_index = index + 1;
    r->base_term = term;
    r->new_from = 0;
}

/* ---- lifecycle ---- */

static int restore_check(const struct raft_snapshot_meta* snap,
                         const struct raft_entry* entries,
                         unsigned n)
{
    raft_term prev = snap->term;
    for (unsigned i = 0; i < n; i++) {
        const struct raft_entry* e = &entries[i];
        if (e->index != snap->index + 1 + i || e->term < prev ||
            e->data.len > RAFT_ENTRY_DATA_MAX ||
            (e->data.len > 0 && e->data.base == NULL) ||
            e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_CONF) {
            return RAFT_EMALFORMED;
        }
        prev = e->term;
    }
    return 0;
}

int raft_restore(struct raft* r,
                 const struct raft_hard_state* hs,
                 const struct raft_snapshot_meta* snap,
                 const struct raft_entry* entries,
                 unsigned n_entries,
                 uint64_t now_ms)
{
    assert(r != NULL && hs != NULL && snap != NULL);
    assert(r->n_entries == 0 && r->term == 0);
    int rv = restore_check(snap, entries, n_entries);
    if (rv != 0) {
        return rv;
    }
    r->now_ms = now_ms;
    r->term = hs->term;
    r->vote = hs->vote;
    r->conf = snap->conf;
    r->conf_index = snap->conf_index;
    r->base_conf = snap->conf;
    r->base_conf_index = snap->conf_index;
    r->voter_from = snap->conf_index;
    raft__log_reset(r, snap->index, snap->term);
    for (unsigned i = 0; i < n_entries; i++) {
        const struct raft_entry* e = &entries[i];
        rv = raft__log_append(r, e->term, e->type, e->data.base, e->data.len);
        if (rv != 0) {
            return rv;
        }
    }
    r->new_from = 0;
    raft_index last = raft__last_index(r);
    r->commit = hs->commit > snap->index ? hs->commit : snap->index;
    r->commit = r->commit < last ? r->commit : last;
    r->applied = snap->index;
    r->persisted = last;
    r->role = RAFT_FOLLOWER;
    raft__reset_election_timer(r);
    if (raft_conf_voters(&r->conf) == 1 && raft__is_voter(r, r->opt.id)) {
        r->election_deadline_ms = now_ms; /* elect itself at the first tick */
    }
    raft__trace(r, RAFT_TRACE_INFO,
                "restored term %llu vote %s snapshot %llu last %llu",
                (unsigned long long)r->term, RAFT__NAME(r, r->vote),
                (unsigned long long)snap->index, (unsigned long long)last);
    return 0;
}

int raft_bootstrap(struct raft* r,
                   const struct raft_conf* conf,
                   uint64_t now_ms)
{
    assert(r != NULL && conf != NULL);
    if (conf->n == 0 || conf->n > RAFT_SERVERS_MAX ||
        raft_conf_voters(conf) == 0) {
        return RAFT_EBADCONF;
    }
    struct raft_hard_state hs = {0, 0, 0};
    struct raft_snapshot_meta snap;
    memset(&snap, 0, sizeof(snap));
    snap.conf = *conf;
    return raft_restore(r, &hs, &snap, NULL, 0, now_ms);
}

/* ---- raft_step ---- */

static void step_begin(struct raft* r, uint64_t now_ms)
{
    garbage_collect(r);
    assert(now_ms >= r->now_ms);
    r->now_ms = now_ms;
    r->n_msgs = 0;
    r->truncate_from = 0;
    r->new_from = 0;
    r->conf_changed = false;
    r->n_out_reads = 0;
    r->n_failed_reads = 0;
    r->n_failed_props = 0;
    r->snapshot_install = false;
    r->hs_dirty = false;
    r->commit_bcast = false;
    r->read_bcast = false;
}

static bool msg_valid(const struct raft* r, const struct raft_message* m)
{
    return m->type >= RAFT_MSG_APPEND && m->type <= RAFT_MSG_TYPE_MAX &&
           m->from != 0 && m->from != r->opt.id && m->to == r->opt.id;
}

static void recv_msg(struct raft* r, const struct raft_message* m)
{
    if (!msg_valid(r, m)) {
        raft__trace(r, RAFT_TRACE_WARN, "dropping invalid message type %d",
                    m->type);
        return;
    }
    switch (m->type) {
    case RAFT_MSG_PROPOSE:
        raft__recv_propose(r, m);
        return;
    case RAFT_MSG_PROPOSE_RESP:
        raft__recv_propose_resp(r, m);
        return;
    case RAFT_MSG_READ_INDEX:
        raft__recv_read_index(r, m);
        return;
    case RAFT_MSG_READ_INDEX_RESP:
        raft__recv_read_index_resp(r, m);
        return;
    case RAFT_MSG_TRANSFER:
        raft__recv_transfer(r, m);
        return;
    default:
        break;
    }
    if (!raft__catchup_term_known(r)) {
        raft__catchup_recv(r, m);
        if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT) {
            return; /* no leader is answered before the term is known */
        }
    }
    if (raft__check_term(r, m) != 0) {
        return;
    }
    switch (m->type) {
    case RAFT_MSG_APPEND:
        raft__recv_append(r, m);
        break;
    case RAFT_MSG_APPEND_RESP:
        raft__recv_append_resp(r, m);
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        raft__recv_vote(r, m);
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        raft__recv_vote_resp(r, m);
        break;
    case RAFT_MSG_SNAPSHOT:
        raft__recv_snapshot(r, m);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        raft__recv_snapshot_resp(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        raft__recv_timeout_now(r, m);
        break;
    default:
        assert(false);
    }
}

bool raft_msg_sendable_now(const struct raft* r,
                           const struct raft_update* u,
                           const struct raft_message* m)
{
    if (raft_msg_sendable_early(m)) {
        return true;
    }
    /* An update that truncates lowers r->persisted first (log_truncate),
     * so the index test alone would do; the update tests keep the rule
     * obviously safe (no term, vote or log change rides on this answer). */
    return m->type == RAFT_MSG_APPEND_RESP && !m->append_resp.reject &&
           m->append_resp.index <= r->persisted && !u->hard_state_changed &&
           u->truncate_from == 0 && u->n_entries == 0 && !u->snapshot_install;
}

static void persisted(struct raft* r, raft_index index, raft_term term)
{
    raft_term t;
    if (index <= r->persisted || !raft__term_at(r, index, &t) || t != term) {
        return; /* stale: truncated or overwritten since */
    }
    r->persisted = index;
    if (r->role == RAFT_LEADER) {
        raft__maybe_commit(r);
    }
}

static int dispatch(struct raft* r, const struct raft_event* ev)
{
    switch (ev->type) {
    case RAFT_EV_TICK:
        if (r->role == RAFT_LEADER) {
            raft__tick_leader(r);
        } else {
            raft__catchup_tick(r);
            raft__tick_election(r);
        }
        return 0;
    case RAFT_EV_RECEIVE:
        assert(ev->msg != NULL);
        recv_msg(r, ev->msg);
        return 0;
    case RAFT_EV_PERSISTED:
        persisted(r, ev->persisted.index, ev->persisted.term);
        return 0;
    case RAFT_EV_PROPOSE:
        return raft__propose(r, ev->propose.props, ev->propose.n);
    case RAFT_EV_READ_INDEX:
        return raft__read_index(r, ev->read.ctx);
    case RAFT_EV_CONF_CHANGE:
        return raft__conf_change(r, ev->conf.op, &ev->conf.server,
                                 ev->conf.ctx);
    case RAFT_EV_TRANSFER:
        return raft__transfer(r, ev->transfer.to);
    case RAFT_EV_SNAPSHOT_INSTALLED:
        return raft__snapshot_installed(r, &ev->installed.meta);
    case RAFT_EV_COMPACT:
        return raft__compact(r, &ev->compact.meta, ev->compact.image,
                             ev->compact.keep_from);
    case RAFT_EV_PEER_RESTARTED:
        raft__peer_restarted(r, ev->peer.id);
        return 0;
    default:
        return -EINVAL;
    }
}

static uint64_t next_timeout(const struct raft* r)
{
    raft_index ready = r->commit < r->persisted ? r->commit : r->persisted;
    if (r->applied < ready && !r->rx_installing) {
        return r->now_ms; /* more committed entries than one batch */
    }
    if (r->role != RAFT_LEADER) {
        if (!raft__catchup_term_known(r) &&
            r->term_query_ms < r->election_deadline_ms) {
            return r->term_query_ms;
        }
        return r->election_deadline_ms;
    }
    uint64_t t = r->heartbeat_deadline_ms;
    if (r->opt.check_quorum && r->quorum_deadline_ms < t) {
        t = r->quorum_deadline_ms;
    }
    if (r->transfer_to != 0 && r->transfer_deadline_ms < t) {
        t = r->transfer_deadline_ms;
    }
    return t;
}

static void step_end(struct raft* r, struct raft_update* u)
{
    if (r->role == RAFT_LEADER && (r->read_bcast || r->commit_bcast)) {
        raft__bcast_heartbeat(r);
    }
    memset(u, 0, sizeof(*u));
    u->truncate_from = r->truncate_from;
    if (r->new_from != 0) {
        raft_index last = raft__last_index(r);
        assert(r->new_from >= r->first_index && r->new_from <= last);
        assert(r->truncate_from == 0 || r->truncate_from <= r->new_from);
        u->entries = raft__entry(r, r->new_from);
        u->n_entries = (unsigned)(last - r->new_from + 1);
        u->persist_index = last;
        u->persist_term = raft__entry(r, last)->term;
    }
    u->hard_state_changed = r->hs_dirty;
    u->hard_state.term = r->term;
    u->hard_state.vote = r->vote;
    u->hard_state.commit = r->commit;
    if (r->snapshot_install) {
        u->snapshot_install = true;
        u->snapshot_meta = r->rx_meta;
        u->snapshot_image.base = r->rx_buf;
        u->snapshot_image.len = r->rx_total;
    }
    u->n_msgs = r->n_msgs;
    u->msgs = r->msgs;
    raft_index ready = r->commit < r->persisted ? r->commit : r->persisted;
    /* Nothing is applied on top of a snapshot being installed. */
    if (r->applied < ready && !r->rx_installing) {
        raft_index n = ready - r->applied;
        n = n < RAFT__COMMIT_BATCH_MAX ? n : RAFT__COMMIT_BATCH_MAX;
        assert(r->applied + 1 >= r->first_index);
        u->committed = raft__entry(r, r->applied + 1);
        u->n_committed = (unsigned)n;
        r->applied += n;
    }
    u->n_reads = r->n_out_reads;
    u->reads = r->out_reads;
    u->n_failed_reads = r->n_failed_reads;
    u->failed_reads = r->failed_reads;
    u->n_failed_proposals = r->n_failed_props;
    u->failed_proposals = r->failed_props;
    u->conf_changed = r->conf_changed;
    u->next_timeout_ms = next_timeout(r);
}

int raft_step(struct raft* r,
              const struct raft_event* ev,
              struct raft_update* u)
{
    assert(r != NULL && ev != NULL && u != NULL);
    step_begin(r, ev->now_ms);
    int role = r->role;
    raft_id leader = r->leader;
    raft_term term = r->term;
    int rv = dispatch(r, ev);
    step_end(r, u);
    u->role_changed = role != r->role || leader != r->leader || term != r->term;
    return rv;
}

/* ---- queries ---- */

int raft_role(const struct raft* r)
{
    return r->role;
}

raft_id raft_id_self(const struct raft* r)
{
    return r->opt.id;
}

raft_term raft_current_term(const struct raft* r)
{
    return r->term;
}

raft_id raft_leader(const struct raft* r)
{
    return r->leader;
}

raft_index raft_commit_index(const struct raft* r)
{
    return r->commit;
}

raft_index raft_leader_commit_index(const struct raft* r)
{
    if (r->role == RAFT_LEADER) {
        return r->commit;
    }
    return r->leader != 0 ? r->leader_commit : 0;
}

bool raft_lost_vote(const struct raft* r)
{
    return r->lost_vote;
}

bool raft_catching_up(const struct raft* r)
{
    return r->catching_up;
}

raft_index raft_applied_index(const struct raft* r)
{
    return r->applied;
}

raft_index raft_last_index(const struct raft* r)
{
    return raft__last_index(r);
}

raft_index raft_first_index(const struct raft* r)
{
    return r->first_index;
}

raft_index raft_conf_index(const struct raft* r)
{
    return r->conf_index;
}

const struct raft_conf* raft_conf_current(const struct raft* r)
{
    return &r->conf;
}

int raft_peer_progress(const struct raft* r,
                       raft_id id,
                       raft_index* match,
                       bool* recent)
{
    if (r->role != RAFT_LEADER) {
        return -ENOENT;
    }
    if (id == r->opt.id) {
        *match = r->persisted;
        *recent = true;
        return 0;
    }
    const struct raft__progress* p = raft__progress_get(r, id);
    if (p == NULL) {
        return -ENOENT;
    }
    *match = p->match;
    *recent = p->last_recv_ms + r->opt.election_ms > r->now_ms;
    return 0;
}

int raft_peer_last_heard(const struct raft* r, raft_id id, uint64_t* ms_ago)
{
    if (r->role != RAFT_LEADER) {
        return -ENOENT;
    }
    if (id == r->opt.id) {
        *ms_ago = 0;
        return 0;
    }
    const struct raft__progress* p = raft__progress_get(r, id);
    if (p == NULL) {
        return -ENOENT;
    }
    *ms_ago = r->now_ms > p->last_recv_ms ? r->now_ms - p->last_recv_ms : 0;
    return 0;
}
