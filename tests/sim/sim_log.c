/* sim_log.c - the harness's logs (struct sim_log): a node's disk log and
 * its shadow log (the log as the core asked for it). */
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- logs ---- */

raft_index sim__log_last(const struct sim_log* l)
{
    return l->base + l->n;
}

raft_term sim__log_term(const struct sim_log* l, raft_index i)
{
    if (i == l->base) {
        return l->base_term;
    }
    if (i < l->base || i > l->base + l->n) {
        return 0;
    }
    return l->e[i - l->base - 1].term;
}

void sim__log_push(struct sim_log* l, const struct sim_ent* e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->e = sim__xrealloc(l->e, l->cap * sizeof *l->e);
    }
    l->e[l->n++] = *e;
}

void sim__log_truncate(struct sim_log* l, raft_index from)
{
    while (l->n > 0 && l->base + l->n >= from) {
        free(l->e[--l->n].data);
    }
}

void sim__log_reset(struct sim_log* l, raft_index base, raft_term term)
{
    sim__log_truncate(l, 0);
    l->base = base;
    l->base_term = term;
}

/* Drop entries < keep_from (they are covered by a snapshot). */
void sim__log_drop_before(struct sim_log* l, raft_index keep_from)
{
    if (keep_from <= l->base + 1) {
        return;
    }
    raft_index drop = keep_from - l->base - 1;
    if (drop > l->n) {
        drop = l->n;
    }
    raft_term t = sim__log_term(l, l->base + drop);
    for (raft_index i = 0; i < drop; i++) {
        free(l->e[i].data);
    }
    memmove(l->e, l->e + drop, (l->n - drop) * sizeof *l->e);
    l->n -= (unsigned)drop;
    l->base += drop;
    l->base_term = t;
}

void sim__log_free(struct sim_log* l)
{
    sim__log_truncate(l, 0);
    free(l->e);
    memset(l, 0, sizeof *l);
}
