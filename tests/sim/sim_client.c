/* sim_client.c - client operations on a node: propose, read, leadership
 * transfer, configuration change, compaction. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../raft/util/bytes.h"
#include "sim_internal.h"

/* ---- client operations ---- */

int sim_propose(struct sim* s, raft_id id, uint64_t* value_out)
{
    struct sim_node* n = &s->nodes[id];
    assert(n->alive);
    if (s->next_value >= SIM_PROPOSALS_MAX) {
        return -ENOSPC;
    }
    uint64_t v = s->next_value++;
    if (v >= s->props_cap) {
        s->props = sim__xrealloc(s->props, 2 * s->props_cap * sizeof *s->props);
        memset(s->props + s->props_cap, 0, s->props_cap * sizeof *s->props);
        s->props_cap *= 2;
    }
    uint8_t data[8];
    put_le64(data, v);
    struct raft_proposal p = {
        .ctx = v, .type = RAFT_ENTRY_NORMAL, .data = {data, sizeof data}};
    struct raft_event ev = {.type = RAFT_EV_PROPOSE, .now_ms = s->now};
    ev.propose.n = 1;
    ev.propose.props = &p;
    sim__trace(s, "n%" PRIu64 " PROPOSE v%" PRIu64, id, v);
    int rc = sim__node_step(s, n, &ev);
    if (rc != 0) {
        s->props[v].err = rc;
    }
    if (value_out != NULL) {
        *value_out = v;
    }
    return rc;
}

raft_index sim_value_index(const struct sim* s, uint64_t value)
{
    return value < s->next_value ? s->props[value].index : 0;
}

int sim_read(struct sim* s, raft_id id, uint64_t* ctx_out)
{
    struct sim_node* n = &s->nodes[id];
    assert(n->alive);
    if (s->next_read >= SIM_PROPOSALS_MAX) {
        return -ENOSPC;
    }
    uint64_t c = s->next_read++;
    if (c >= s->reads_cap) {
        s->reads = sim__xrealloc(s->reads, 2 * s->reads_cap * sizeof *s->reads);
        memset(s->reads + s->reads_cap, 0, s->reads_cap * sizeof *s->reads);
        s->reads_cap *= 2;
    }
    s->reads[c].required = s->applied_max;
    struct raft_event ev = {.type = RAFT_EV_READ_INDEX, .now_ms = s->now};
    ev.read.ctx = c;
    sim__trace(s, "n%" PRIu64 " READ ctx=%" PRIu64 " required=%" PRIu64, id, c,
               s->applied_max);
    int rc = sim__node_step(s, n, &ev);
    if (rc != 0) {
        s->reads[c].err = rc;
    }
    if (ctx_out != NULL) {
        *ctx_out = c;
    }
    return rc;
}

int sim_read_result(const struct sim* s, uint64_t ctx, raft_index* served)
{
    assert(ctx > 0 && ctx < s->next_read);
    *served = s->reads[ctx].served;
    return s->reads[ctx].err;
}

int sim_transfer(struct sim* s, raft_id leader, raft_id to)
{
    struct sim_node* n = &s->nodes[leader];
    assert(n->alive);
    struct raft_event ev = {.type = RAFT_EV_TRANSFER, .now_ms = s->now};
    ev.transfer.to = to;
    sim__trace(s, "n%" PRIu64 " TRANSFER to n%" PRIu64, leader, to);
    return sim__node_step(s, n, &ev);
}

int sim_conf_change(struct sim* s, raft_id leader, int op, raft_id target)
{
    struct sim_node* n = &s->nodes[leader];
    assert(n->alive);
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE, .now_ms = s->now};
    ev.conf.op = (uint8_t)op;
    ev.conf.server.id = target;
    ev.conf.server.role = RAFT_LEARNER;
    snprintf(ev.conf.server.name, sizeof ev.conf.server.name, "n%" PRIu64,
             target);
    snprintf(ev.conf.server.addr, sizeof ev.conf.server.addr,
             "127.0.0.%" PRIu64 ":7000", target);
    int rc = sim__node_step(s, n, &ev);
    sim__trace(s, "n%" PRIu64 " CONF op=%d n%" PRIu64 " -> %s", leader, op,
               target, rc ? raft_errname(rc) : "ok");
    return rc;
}

int sim_compact(struct sim* s, raft_id id, raft_index keep_from)
{
    struct sim_node* n = &s->nodes[id];
    assert(n->alive);
    raft_index at = n->sm.applied;
    raft_term term = sim__log_term(&n->shadow, at);
    if (at == 0 || term == 0) {
        return -EINVAL;
    }
    if (keep_from != 0 && keep_from <= n->shadow.base) {
        keep_from = 0;
    }
    void* img;
    size_t len = sim__image_encode(&n->sm, &img);
    struct raft_event ev = {.type = RAFT_EV_COMPACT, .now_ms = s->now};
    ev.compact.meta =
        (struct raft_snapshot_meta){.index = at,
                                    .term = term,
                                    .conf_index = n->sm.conf_index,
                                    .conf = n->sm.conf};
    ev.compact.image = (struct raft_buf){img, len};
    ev.compact.keep_from = keep_from;
    n->last_compact = at;
    int rc = sim__node_step(s, n, &ev);
    sim__trace(
        s, "n%" PRIu64 " COMPACT at %" PRIu64 " keep_from %" PRIu64 " -> %d",
        id, at, keep_from, rc);
    if (rc != 0) {
        free(img);
        return rc;
    }
    /* The image is durable with the app's store; the log drops its prefix. */
    free(n->compact_image);
    n->compact_image = img;
    n->compact_image_len = len;
    free(n->image);
    n->image = sim__xcalloc(1, len);
    memcpy(n->image, img, len);
    n->image_len = len;
    n->snap = ev.compact.meta;
    raft_index keep = keep_from ? keep_from : at + 1;
    sim__log_drop_before(&n->disk, keep);
    sim__log_drop_before(&n->shadow, keep);
    return 0;
}
