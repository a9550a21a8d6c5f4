/* sim.c - the simulated cluster: event queue, network, disks, apps.
 * Contract in sim.h. This file: small utilities (allocation, the random
 * generator, hashes, the trace) and the lifecycle (sim_new, sim_free);
 * the rest is sim_log.c, sim_net.c, sim_event.c, sim_app.c, sim_disk.c,
 * sim_node.c, sim_client.c and sim_query.c, sharing sim_internal.h. */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- small utilities ---- */

void* sim__xcalloc(size_t n, size_t size)
{
    void* p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

void* sim__xrealloc(void* p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

uint64_t sim_rand(struct sim* s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

unsigned sim_rand_below(struct sim* s, unsigned n)
{
    assert(n > 0);
    return (unsigned)(sim_rand(s) % n);
}

unsigned sim__rand_range(struct sim* s, unsigned lo, unsigned hi)
{
    return hi <= lo ? lo : lo + sim_rand_below(s, hi - lo + 1);
}

uint64_t sim__hash(uint64_t h, const void* p, size_t n)
{
    const uint8_t* b = p;
    h ^= 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t sim__entry_hash(uint8_t type, const void* data, size_t len)
{
    return sim__hash(sim__hash(0, &type, 1), data, len);
}

void sim__violate(struct sim* s, const char* fmt, ...)
{
    if (s->failed) {
        return;
    }
    s->failed = true;
    int k = snprintf(s->violation, sizeof s->violation,
                     "t=%" PRIu64 "ms: ", s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->violation + k, sizeof s->violation - (size_t)k, fmt, ap);
    va_end(ap);
    sim__trace(s, "VIOLATION %s", s->violation);
}

void sim__trace(struct sim* s, const char* fmt, ...)
{
    if (!s->cfg.trace) {
        return;
    }
    char* line = s->trace[s->trace_n % SIM_TRACE_LINES];
    int k = snprintf(line, SIM_TRACE_LINE_MAX, "%8" PRIu64 " ", s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, SIM_TRACE_LINE_MAX - (size_t)k, fmt, ap);
    va_end(ap);
    s->trace_n++;
    if (s->cfg.trace_out != NULL) {
        fprintf(s->cfg.trace_out, "%s\n", line);
    }
}

void sim_note(struct sim* s, const char* fmt, ...)
{
    if (!s->cfg.trace) {
        return;
    }
    char buf[SIM_TRACE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sim__trace(s, "-- %s", buf);
}

void sim_trace_dump(const struct sim* s, FILE* f, unsigned lines)
{
    unsigned n = s->trace_n < SIM_TRACE_LINES ? s->trace_n : SIM_TRACE_LINES;
    if (lines < n) {
        n = lines;
    }
    for (unsigned i = s->trace_n - n; i < s->trace_n; i++) {
        fprintf(f, "%s\n", s->trace[i % SIM_TRACE_LINES]);
    }
}

void sim__core_trace(void* data, int level, raft_id node, const char* msg)
{
    struct sim* s = data;
    sim__trace(s, "   n%" PRIu64 " core[%d]: %s", node, level, msg);
}

/* ---- lifecycle ---- */

void sim_config_default(struct sim_config* c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->seed = seed;
    c->n_voters = 3;
    c->heartbeat_ms = 50;
    c->election_ms = 300;
    c->pre_vote = true;
    c->check_quorum = true;
    c->compact_every = 0;
    c->delay_min_ms = 1;
    c->delay_max_ms = 10;
    c->disk_min_ms = 1;
    c->disk_max_ms = 5;
    c->wipe_catch_up = true;
}

struct sim* sim_new(const struct sim_config* cfg)
{
    assert(cfg->n_voters >= 1 && cfg->n_voters <= 5);
    struct sim* s = sim__xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->rng = cfg->seed ^ 0x5eed5eed5eedull;
    s->heap_cap = 1024;
    s->heap = sim__xcalloc(s->heap_cap, sizeof *s->heap);
    s->props_cap = 1024;
    s->props = sim__xcalloc(s->props_cap, sizeof *s->props);
    s->reads_cap = 1024;
    s->reads = sim__xcalloc(s->reads_cap, sizeof *s->reads);
    s->next_value = 1;
    s->next_read = 1;
    s->drop_pct = cfg->drop_pct;
    s->dup_pct = cfg->dup_pct;
    if (cfg->trace) {
        s->trace = sim__xcalloc(SIM_TRACE_LINES, sizeof *s->trace);
    }
    checker__init(s);
    struct raft_conf conf = {.n = cfg->n_voters};
    for (unsigned i = 0; i < cfg->n_voters; i++) {
        struct raft_server* sv = &conf.servers[i];
        sv->id = i + 1;
        sv->role = RAFT_VOTER;
        snprintf(sv->name, sizeof sv->name, "n%u", i + 1);
        snprintf(sv->addr, sizeof sv->addr, "127.0.0.%u:7000", i + 1);
    }
    s->initial_conf = conf;
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        s->nodes[id].id = id;
    }
    for (raft_id id = 1; id <= cfg->n_voters; id++) {
        struct sim_node* n = &s->nodes[id];
        n->exists = true;
        n->incarnation = 1;
        n->snap.conf = conf;
        n->sm.conf = conf;
        sim__node_new_core(s, n);
        n->alive = true;
        int rc = raft_bootstrap(n->r, &conf, 0);
        if (rc != 0) {
            sim__violate(s, "raft_bootstrap failed: %s", raft_strerror(rc));
        }
        sim__schedule_tick(s, n, 1);
    }
    return s;
}

void sim_free(struct sim* s)
{
    if (s == NULL) {
        return;
    }
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        struct sim_node* n = &s->nodes[id];
        sim__node_wipe(n);
        sim__log_free(&n->disk);
        sim__log_free(&n->shadow);
        free(n->image);
        free(n->compact_image);
    }
    while (s->n_heap > 0) {
        struct sim_ev ev = sim__heap_pop(s);
        sim__msg_free(ev.msg);
    }
    checker__free(s);
    free(s->heap);
    free(s->props);
    free(s->reads);
    free(s->trace);
    free(s);
}

const char* sim_failed(const struct sim* s)
{
    return s->failed ? s->violation : NULL;
}
