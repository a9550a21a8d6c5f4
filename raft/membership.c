/* membership.c - single-server membership changes (thesis 4.1) with
 * learners (4.2.1).
 *
 * A configuration takes effect as soon as its CONF entry is appended (on
 * the leader and on followers) and is rolled back if that entry is
 * truncated. Only one change may be uncommitted at a time, and the leader
 * must have committed an entry of its term first (the fix from the thesis
 * errata). A removed leader keeps replicating without counting itself and
 * steps down once the entry that removed it commits.
 */
#include "core_internal.h"

static void conf_set(struct raft* r,
                     const struct raft_conf* c,
                     raft_index index)
{
    bool was_voter = raft__is_voter(r, r->opt.id);
    r->conf = *c;
    r->conf_index = index;
    r->conf_changed = true;
    if (r->role == RAFT_LEADER) {
        raft__progress_sync(r);
    }
    raft__rejoin_conf(r, was_voter, index);
}

void raft__conf_apply_entry(struct raft* r, const struct raft_entry* e)
{
    assert(e->type == RAFT_ENTRY_CONF);
    struct raft_conf c;
    int rv = raft_conf_decode(&c, e->data.base, e->data.len);
    if (rv != 0) {
        raft__trace(r, RAFT_TRACE_ERROR, "bad conf entry %llu: %s",
                    (unsigned long long)e->index, raft_strerror(rv));
        return;
    }
    conf_set(r, &c, e->index);
    raft__trace(r, RAFT_TRACE_DEBUG, "conf at %llu: %u servers, %u voters",
                (unsigned long long)e->index, c.n, raft_conf_voters(&c));
}

/* Latest CONF entry in [lo, hi], decoded into *c; false if none. */
static bool conf_find(const struct raft* r,
                      raft_index lo,
                      raft_index hi,
                      struct raft_conf* c,
                      raft_index* at)
{
    for (raft_index i = hi; i >= lo && i > 0; i--) {
        const struct raft_entry* e = raft__entry(r, i);
        if (e != NULL && e->type == RAFT_ENTRY_CONF &&
            raft_conf_decode(c, e->data.base, e->data.len) == 0) {
            *at = i;
            return true;
        }
    }
    return false;
}

void raft__conf_rollback(struct raft* r, raft_index from)
{
    if (r->conf_index < from) {
        return;
    }
    struct raft_conf c;
    raft_index at;
    if (conf_find(r, r->first_index, from - 1, &c, &at)) {
        conf_set(r, &c, at);
    } else {
        conf_set(r, &r->base_conf, r->base_conf_index);
    }
    raft__trace(r, RAFT_TRACE_INFO, "conf rolled back to index %llu",
                (unsigned long long)r->conf_index);
}

void raft__conf_compact(struct raft* r, raft_index new_first)
{
    struct raft_conf c;
    raft_index at;
    if (new_first > r->first_index &&
        conf_find(r, r->first_index, new_first - 1, &c, &at)) {
        r->base_conf = c;
        r->base_conf_index = at;
    }
}

void raft__progress_sync(struct raft* r)
{
    struct raft__progress next[RAFT_SERVERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < r->conf.n; i++) {
        raft_id id = r->conf.servers[i].id;
        if (id == r->opt.id) {
            continue;
        }
        const struct raft__progress* old = raft__progress_get(r, id);
        if (old != NULL) {
            next[n] = *old;
        } else {
            raft__progress_reset(&next[n], id, raft__last_index(r) + 1);
            next[n].last_recv_ms = r->now_ms;
        }
        n++;
    }
    memcpy(r->progress, next, n * sizeof(next[0]));
    r->n_progress = n;
    if (r->transfer_to != 0 && !raft__is_voter(r, r->transfer_to)) {
        r->transfer_to = 0;
    }
}

static int conf_edit(struct raft* r,
                     struct raft_conf* c,
                     uint8_t op,
                     const struct raft_server* server)
{
    struct raft_server* s = (struct raft_server*)raft_conf_get(c, server->id);
    switch (op) {
    case RAFT_CONF_ADD_LEARNER:
        if (server->id == 0 || s != NULL || c->n == RAFT_SERVERS_MAX) {
            return RAFT_EBADCONF;
        }
        s = &c->servers[c->n++];
        *s = *server;
        s->role = RAFT_LEARNER;
        s->name[RAFT_NAME_MAX - 1] = '\0';
        s->addr[RAFT_ADDR_MAX - 1] = '\0';
        return 0;
    case RAFT_CONF_PROMOTE: {
        const struct raft__progress* p = raft__progress_get(r, server->id);
        if (s == NULL || s->role != RAFT_LEARNER || p == NULL) {
            return RAFT_EBADCONF;
        }
        /* Caught up: it has answered (match > 0) within an election
         * timeout and is at most one append batch behind. A learner that
         * never answered would be a voter that cannot vote. */
        if (p->match == 0 ||
            p->last_recv_ms + r->opt.election_ms <= r->now_ms ||
            p->match + RAFT_APPEND_ENTRIES_MAX < raft__last_index(r)) {
            return RAFT_EBEHIND;
        }
        s->role = RAFT_VOTER;
        return 0;
    }
    case RAFT_CONF_REMOVE:
        if (s == NULL || (s->role == RAFT_VOTER && raft_conf_voters(c) == 1)) {
            return RAFT_EBADCONF;
        }
        memmove(s, s + 1, (size_t)(&c->servers[c->n] - (s + 1)) * sizeof(*s));
        c->n--;
        return 0;
    case RAFT_CONF_SET_ADDR:
        if (s == NULL || server->addr[0] == '\0') {
            return RAFT_EBADCONF;
        }
        memcpy(s->addr, server->addr, RAFT_ADDR_MAX);
        s->addr[RAFT_ADDR_MAX - 1] = '\0';
        return 0;
    default:
        return RAFT_EBADCONF;
    }
}

/* A forwarded change: one RAFT_ENTRY_CONF proposal whose data is the op
 * byte and raft_conf_encode() of a one-server configuration. */
static int conf_forward(struct raft* r,
                        uint8_t op,
                        const struct raft_server* server,
                        uint64_t ctx)
{
    struct raft_conf one = {.n = 1};
    one.servers[0] = *server;
    one.servers[0].role = RAFT_LEARNER;
    size_t len = 1 + raft_conf_encoded_size(&one);
    uint8_t* data = raft__scratch(r, len);
    struct raft_proposal* p = raft__scratch(r, sizeof(*p));
    if (data == NULL || p == NULL) {
        return RAFT_ENOMEM;
    }
    data[0] = op;
    if (raft_conf_encode(&one, data + 1, len - 1) != (int)(len - 1)) {
        return RAFT_EBADCONF;
    }
    *p = (struct raft_proposal){
        .ctx = ctx, .type = RAFT_ENTRY_CONF, .data = {data, len}};
    struct raft_message* m = raft__msg(r, RAFT_MSG_PROPOSE, r->leader);
    if (m == NULL) {
        return RAFT_ENOMEM;
    }
    m->propose.n = 1;
    m->propose.props = p;
    return 0;
}

int raft__conf_change_forwarded(struct raft* r, const struct raft_proposal* p)
{
    struct raft_conf one;
    const uint8_t* d = p->data.base;
    if (p->data.len < 2 || d == NULL ||
        raft_conf_decode(&one, d + 1, p->data.len - 1) != 0 || one.n != 1) {
        return RAFT_EMALFORMED;
    }
    if (r->role != RAFT_LEADER) {
        return RAFT_ENOTLEADER; /* never forwarded twice */
    }
    return raft__conf_change(r, d[0], &one.servers[0], 0);
}

int raft__conf_change(struct raft* r,
                      uint8_t op,
                      const struct raft_server* server,
                      uint64_t ctx)
{
    if (r->role != RAFT_LEADER) {
        return r->leader != 0 ? conf_forward(r, op, server, ctx)
                              : RAFT_ENOTLEADER;
    }
    if (r->transfer_to != 0) {
        return RAFT_ETRANSFER;
    }
    raft_term t;
    if (!raft__term_at(r, r->commit, &t) || t != r->term ||
        r->conf_index > r->commit) {
        return RAFT_ECONFBUSY;
    }
    struct raft_conf c = r->conf;
    int rv = conf_edit(r, &c, op, server);
    if (rv != 0) {
        return rv;
    }
    uint8_t buf[2 + RAFT_SERVERS_MAX * (11 + RAFT_NAME_MAX + RAFT_ADDR_MAX)];
    int len = raft_conf_encode(&c, buf, sizeof(buf));
    assert(len > 0);
    raft__trace(r, RAFT_TRACE_DEBUG, "conf change op %d server %s (%016llx)",
                op, server->name, (unsigned long long)server->id);
    rv = raft__log_append(r, r->term, RAFT_ENTRY_CONF, buf, (size_t)len);
    if (rv != 0) {
        return rv;
    }
    raft__bcast_append(r);
    raft__maybe_commit(r);
    return 0;
}

void raft__conf_check_removed_leader(struct raft* r)
{
    if (r->role != RAFT_LEADER || raft__is_voter(r, r->opt.id) ||
        r->commit < r->conf_index) {
        return;
    }
    raft__trace(r, RAFT_TRACE_INFO,
                "removed from the configuration: stepping down");
    raft__become_follower(r, r->term, 0);
}
