/* sim_query.c - queries on the cluster: who is alive and leading, what
 * each node applied and holds in its log, convergence. */

#include "sim_internal.h"

/* ---- queries ---- */

bool sim_alive(const struct sim* s, raft_id id)
{
    return id >= 1 && id <= SIM_NODES_MAX && s->nodes[id].alive;
}

struct raft* sim_raft(struct sim* s, raft_id id)
{
    return sim_alive(s, id) ? s->nodes[id].r : NULL;
}

raft_id sim_leader(const struct sim* s)
{
    raft_id best = 0;
    raft_term term = 0;
    for (raft_id i = 1; i <= SIM_NODES_MAX; i++) {
        const struct sim_node* n = &s->nodes[i];
        if (n->alive && raft_role(n->r) == RAFT_LEADER &&
            raft_current_term(n->r) >= term) {
            best = i;
            term = raft_current_term(n->r);
        }
    }
    return best;
}

raft_id sim_stable_leader(const struct sim* s)
{
    raft_id l = sim_leader(s);
    if (l == 0) {
        return 0;
    }
    raft_term t = raft_current_term(s->nodes[l].r);
    const struct raft_conf* c = raft_conf_current(s->nodes[l].r);
    for (unsigned i = 0; i < c->n; i++) {
        const struct sim_node* n = &s->nodes[c->servers[i].id];
        if (!n->alive) {
            continue;
        }
        if (raft_current_term(n->r) != t || raft_leader(n->r) != l) {
            return 0;
        }
    }
    return l;
}

raft_index sim_applied(const struct sim* s, raft_id id)
{
    return s->nodes[id].sm.applied;
}

uint64_t sim_sm_hash(const struct sim* s, raft_id id)
{
    return s->nodes[id].sm.hash;
}

raft_term sim_log_term(const struct sim* s, raft_id id, raft_index index)
{
    const struct sim_log* l = &s->nodes[id].shadow;
    return index > l->base ? sim__log_term(l, index) : 0;
}

raft_index sim_log_last(const struct sim* s, raft_id id)
{
    return sim__log_last(&s->nodes[id].shadow);
}

unsigned sim_installs(const struct sim* s)
{
    return s->installs;
}

bool sim_converged(struct sim* s, raft_id leader, raft_index min_index)
{
    if (!sim_alive(s, leader) || raft_role(s->nodes[leader].r) != RAFT_LEADER) {
        return false;
    }
    raft_index commit = raft_commit_index(s->nodes[leader].r);
    if (commit < min_index) {
        return false;
    }
    const struct raft_conf* c = raft_conf_current(s->nodes[leader].r);
    for (unsigned i = 0; i < c->n; i++) {
        const struct sim_node* n = &s->nodes[c->servers[i].id];
        if (c->servers[i].role == RAFT_VOTER && n->alive &&
            n->sm.applied < commit) {
            return false;
        }
    }
    return true;
}
