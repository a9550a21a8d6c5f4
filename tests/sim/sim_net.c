/* sim_net.c - the simulated network: messages (deep copies, their
 * description in the trace), sending with delays, drops, duplicates,
 * partitions and filters. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- messages ---- */

struct sim_msg* sim__msg_copy(const struct raft_message* src)
{
    struct sim_msg* c = sim__xcalloc(1, sizeof *c);
    if (raft_msg_clone(&c->m, src) != 0) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return c;
}

void sim__msg_free(struct sim_msg* c)
{
    if (c != NULL) {
        raft_msg_free(&c->m);
        free(c);
    }
}

void sim__msg_describe(const struct raft_message* m, char* buf, size_t cap)
{
    int k = snprintf(buf, cap, "%s %" PRIu64 "->%" PRIu64 " t%" PRIu64,
                     raft_msg_type_name(m->type), m->from, m->to, m->term);
    if (k < 0 || (size_t)k >= cap) {
        return;
    }
    buf += k;
    cap -= (size_t)k;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        snprintf(buf, cap,
                 " prev=%" PRIu64 "/t%" PRIu64 " n=%u commit=%" PRIu64
                 " rs=%" PRIu64,
                 m->append.prev_index, m->append.prev_term, m->append.n_entries,
                 m->append.commit, m->append.read_seq);
        break;
    case RAFT_MSG_APPEND_RESP:
        snprintf(buf, cap,
                 " %s index=%" PRIu64 " last=%" PRIu64 " ct=%" PRIu64
                 " ci=%" PRIu64,
                 m->append_resp.reject ? "REJECT" : "ok", m->append_resp.index,
                 m->append_resp.last_index, m->append_resp.conflict_term,
                 m->append_resp.conflict_index);
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        snprintf(buf, cap, " last=%" PRIu64 "/t%" PRIu64 "%s",
                 m->vote.last_index, m->vote.last_term,
                 m->vote.transfer ? " transfer" : "");
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        snprintf(buf, cap, " %s", m->vote_resp.granted ? "GRANTED" : "denied");
        break;
    case RAFT_MSG_SNAPSHOT:
        snprintf(buf, cap,
                 " snap=%" PRIu64 "/t%" PRIu64 " off=%" PRIu64
                 " len=%zu total=%" PRIu64,
                 m->snapshot.meta.index, m->snapshot.meta.term,
                 m->snapshot.offset, m->snapshot.chunk.len, m->snapshot.total);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        snprintf(buf, cap, " index=%" PRIu64 " next=%" PRIu64 "%s%s",
                 m->snapshot_resp.index, m->snapshot_resp.next_offset,
                 m->snapshot_resp.done ? " done" : "",
                 m->snapshot_resp.reject ? " REJECT" : "");
        break;
    case RAFT_MSG_PROPOSE:
        snprintf(buf, cap, " n=%u", m->propose.n);
        break;
    case RAFT_MSG_PROPOSE_RESP:
        snprintf(buf, cap, " err=%d n=%u", m->propose_resp.err,
                 m->propose_resp.n);
        break;
    case RAFT_MSG_READ_INDEX:
        snprintf(buf, cap, " ctx=%" PRIu64, m->read_index.ctx);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        snprintf(buf, cap, " ctx=%" PRIu64 " index=%" PRIu64 " err=%d",
                 m->read_index_resp.ctx, m->read_index_resp.index,
                 m->read_index_resp.err);
        break;
    default:
        break;
    }
}

/* ---- network ---- */

static bool filtered(const struct sim* s, const struct raft_message* m)
{
    for (unsigned i = 0; i < s->n_filters; i++) {
        const struct sim_filter* f = &s->filters[i];
        if (f->from == m->from && f->to == m->to &&
            (f->type == 0 || f->type == m->type)) {
            return true;
        }
    }
    return false;
}

void sim__net_send(struct sim* s, struct sim_msg* c)
{
    const struct raft_message* m = &c->m;
    char d[160] = "";
    if (s->cfg.trace) {
        sim__msg_describe(m, d, sizeof d);
    }
    if (m->to == 0 || m->to > SIM_NODES_MAX || m->to == m->from) {
        sim__violate(s, "contract: message to bad id (%s)", d);
        sim__msg_free(c);
        return;
    }
    if (s->blocked[m->from][m->to] || filtered(s, m) ||
        sim_rand_below(s, 100) < s->drop_pct) {
        sim__trace(s, "drop %s", d);
        sim__msg_free(c);
        return;
    }
    uint64_t delay =
        sim__rand_range(s, s->cfg.delay_min_ms, s->cfg.delay_max_ms);
    c->from_inc = s->nodes[m->from].incarnation;
    if (sim_rand_below(s, 100) < s->dup_pct) {
        uint64_t d2 =
            sim__rand_range(s, s->cfg.delay_min_ms, s->cfg.delay_max_ms);
        struct sim_msg* dup = sim__msg_copy(m);
        dup->from_inc = c->from_inc;
        sim__heap_push(
            s, (struct sim_ev){
                   .t = s->now + d2, .kind = SIM_EV_DELIVER, .msg = dup});
        sim__trace(s, "send(dup) %s", d);
    }
    sim__trace(s, "send %s", d);
    s->sent[m->from][m->to]++;
    if (m->type == RAFT_MSG_SNAPSHOT && m->snapshot.offset == 0) {
        s->snap_starts[m->from][m->to]++;
    }
    sim__heap_push(
        s,
        (struct sim_ev){.t = s->now + delay, .kind = SIM_EV_DELIVER, .msg = c});
}

void sim_block(struct sim* s, raft_id from, raft_id to, bool blocked)
{
    assert(from >= 1 && from <= SIM_NODES_MAX && to >= 1 &&
           to <= SIM_NODES_MAX);
    s->blocked[from][to] = blocked;
    sim__trace(s, "net %s %" PRIu64 "->%" PRIu64, blocked ? "BLOCK" : "unblock",
               from, to);
}

void sim_isolate(struct sim* s, raft_id id)
{
    for (raft_id j = 1; j <= SIM_NODES_MAX; j++) {
        if (j != id) {
            s->blocked[id][j] = s->blocked[j][id] = true;
        }
    }
    sim__trace(s, "net ISOLATE n%" PRIu64, id);
}

void sim_heal(struct sim* s)
{
    memset(s->blocked, 0, sizeof s->blocked);
    s->n_filters = 0;
    sim__trace(s, "net HEAL");
}

void sim_set_faults(struct sim* s, unsigned drop_pct, unsigned dup_pct)
{
    s->drop_pct = drop_pct;
    s->dup_pct = dup_pct;
}

void sim_set_disk_delay(struct sim* s, raft_id id, unsigned ms)
{
    assert(id >= 1 && id <= SIM_NODES_MAX);
    s->disk_extra_ms[id] = ms;
}

void sim_filter(struct sim* s, raft_id from, raft_id to, int type, bool on)
{
    for (unsigned i = 0; i < s->n_filters; i++) {
        struct sim_filter* f = &s->filters[i];
        if (f->from == from && f->to == to && f->type == type) {
            if (!on) {
                *f = s->filters[--s->n_filters];
            }
            return;
        }
    }
    if (on) {
        assert(s->n_filters < sizeof s->filters / sizeof s->filters[0]);
        s->filters[s->n_filters++] = (struct sim_filter){from, to, type};
    }
}
