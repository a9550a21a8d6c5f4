/* driver.c - randomized runs: a chaos phase of client operations and
 * faults, then a liveness phase (faults stop, everything restarts) that must
 * elect a leader and apply every new proposal on every live voter within a
 * bounded simulated time. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "sim_internal.h"

enum {
    DRIVER_DOWN_MAX = 2,          /* nodes down at once during chaos */
    DRIVER_RESTART_MAX_MS = 2000, /* a crashed node restarts within this */
    LIVENESS_ELECT_MS = 10000,    /* bound to elect a stable leader */
    LIVENESS_APPLY_MS = 10000,    /* bound to apply the probe values */
    LIVENESS_VALUES = 3,          /* probe proposals after healing */
    LIVENESS_PROPOSE_TRIES = 50,
    IDLE_SETTLE_MS = 1000, /* a restarted follower catches up */
    IDLE_MS = 2000,        /* then the cluster idles this long */
    DRIVER_BURST_MAX = RAFT_APPEND_ENTRIES_MAX + 200, /* proposals in a burst */
};

void sim__schedule_restart(struct sim* s, raft_id id, uint64_t at);

static unsigned rnd(struct sim* s, unsigned lo, unsigned hi)
{
    return hi <= lo ? lo : lo + sim_rand_below(s, hi - lo + 1);
}

static raft_id random_alive(struct sim* s)
{
    raft_id ids[SIM_NODES_MAX];
    unsigned n = 0;
    for (raft_id i = 1; i <= SIM_NODES_MAX; i++) {
        if (s->nodes[i].alive) {
            ids[n++] = i;
        }
    }
    return n ? ids[sim_rand_below(s, n)] : 0;
}

static unsigned down_count(const struct sim* s)
{
    unsigned k = 0;
    for (raft_id i = 1; i <= SIM_NODES_MAX; i++) {
        k += s->nodes[i].exists && !s->nodes[i].alive;
    }
    return k;
}

static void act_crash(struct sim* s)
{
    if (down_count(s) >= DRIVER_DOWN_MAX) {
        return;
    }
    raft_id id = sim_leader(s);
    if (id == 0 || sim_rand_below(s, 2) == 0) {
        id = random_alive(s);
    }
    if (id == 0) {
        return;
    }
    sim_crash(s, id);
    sim__schedule_restart(s, id, s->now + rnd(s, 10, DRIVER_RESTART_MAX_MS));
}

static void act_partition(struct sim* s)
{
    raft_id l = sim_leader(s);
    switch (sim_rand_below(s, 4)) {
    case 0: /* isolate one node (often the leader) */
        sim_isolate(s, l && sim_rand_below(s, 2) ? l : random_alive(s));
        break;
    case 1: { /* leader keeps one follower: partial replication (Fig. 8) */
        if (l == 0) {
            break;
        }
        raft_id keep = random_alive(s);
        sim_isolate(s, l);
        if (keep != l && keep != 0) {
            sim_block(s, l, keep, false);
            sim_block(s, keep, l, false);
        }
        break;
    }
    case 2: { /* random split into two groups */
        uint8_t side[SIM_NODES_MAX + 1];
        for (raft_id i = 1; i <= SIM_NODES_MAX; i++) {
            side[i] = (uint8_t)sim_rand_below(s, 2);
        }
        for (raft_id i = 1; i <= SIM_NODES_MAX; i++) {
            for (raft_id j = 1; j <= SIM_NODES_MAX; j++) {
                if (i != j && side[i] != side[j]) {
                    s->blocked[i][j] = true;
                }
            }
        }
        sim__trace(s, "net SPLIT");
        break;
    }
    default: { /* one-way link cut */
        raft_id a = random_alive(s), b = random_alive(s);
        if (a != b) {
            sim_block(s, a, b, true);
        }
        break;
    }
    }
}

static void act_conf(struct sim* s)
{
    raft_id l = sim_leader(s);
    if (l == 0) {
        return;
    }
    const struct raft_conf* c = raft_conf_current(s->nodes[l].r);
    const struct raft_conf* applied = &s->nodes[l].sm.conf;
    unsigned voters = raft_conf_voters(c);
    raft_id learners[RAFT_SERVERS_MAX], members[RAFT_SERVERS_MAX];
    unsigned n_learners = 0, n_members = 0;
    for (unsigned i = 0; i < c->n; i++) {
        members[n_members++] = c->servers[i].id;
        if (c->servers[i].role == RAFT_LEARNER) {
            learners[n_learners++] = c->servers[i].id;
        }
    }
    switch (sim_rand_below(s, 3)) {
    case 0: { /* add a learner: a new id, else a removed node (with its
               * disk: an id is never reused with an empty disk, a voter
               * that forgets its vote and log breaks Raft's assumptions) */
        if (c->n >= 6) {
            break;
        }
        raft_id pick = 0;
        for (raft_id id = 1; id <= SIM_NODES_MAX && pick == 0; id++) {
            if (!s->nodes[id].exists) {
                pick = id;
            }
        }
        for (raft_id id = 1; id <= SIM_NODES_MAX && pick == 0; id++) {
            if (raft_conf_get(c, id) == NULL &&
                raft_conf_get(applied, id) == NULL) {
                pick = id;
            }
        }
        if (pick == 0) {
            break;
        }
        if (!s->nodes[pick].exists) {
            sim_start_fresh(s, pick);
        } else {
            sim_restart(s, pick);
        }
        sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, pick);
        break;
    }
    case 1:
        if (n_learners > 0) {
            sim_conf_change(s, l, RAFT_CONF_PROMOTE,
                            learners[sim_rand_below(s, n_learners)]);
        }
        break;
    default: {
        raft_id id = members[sim_rand_below(s, n_members)];
        const struct raft_server* sv = raft_conf_get(c, id);
        if (sv->role == RAFT_LEARNER || voters > 3) {
            sim_conf_change(s, l, RAFT_CONF_REMOVE, id);
        }
        break;
    }
    }
}

/* More proposals than one append message carries, on the leader: with a
 * partition and a crash this builds Figure 8 (many old-term entries on a
 * minority; a later leader sends them in several batches). */
static void act_burst(struct sim* s)
{
    raft_id l = sim_leader(s);
    if (l == 0) {
        return;
    }
    unsigned n = rnd(s, RAFT_APPEND_ENTRIES_MAX + 8, DRIVER_BURST_MAX);
    for (unsigned i = 0; i < n && sim_propose(s, l, NULL) == 0; i++) {
    }
}

static raft_id wait_new_leader(struct sim* s, raft_id not, unsigned max_ms)
{
    for (unsigned t = 0; t < max_ms && !s->failed; t++) {
        raft_id l = sim_leader(s);
        if (l != 0 && l != not ) {
            return l;
        }
        sim_run_for(s, 1);
    }
    return 0;
}

/* A nemesis for Figure 8 (5 voters): the leader appends a burst that only
 * one follower gets, and crashes; the next leader crashes right after its
 * election (its no-op on few nodes, in a newer term); the first comes back,
 * is re-elected with competing logs around, and crashes again at a random
 * moment while it re-replicates its old-term entries; then the second comes
 * back. Timings are random; the checker judges whatever happens. */
static void act_figure8(struct sim* s)
{
    raft_id l1 = sim_leader(s);
    if (l1 == 0 || down_count(s) > 0) {
        return;
    }
    const struct raft_conf* c = raft_conf_current(s->nodes[l1].r);
    raft_id voters[RAFT_SERVERS_MAX];
    unsigned nv = 0;
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].role == RAFT_VOTER && c->servers[i].id != l1) {
            voters[nv++] = c->servers[i].id;
        }
    }
    if (nv < 4) {
        return; /* needs a majority without l1 and f */
    }
    sim_note(s, "NEMESIS figure 8 from leader n%" PRIu64, l1);
    raft_id f = voters[sim_rand_below(s, nv)];
    sim_isolate(s, l1);
    if (f != l1) {
        sim_block(s, l1, f, false);
        sim_block(s, f, l1, false);
    }
    act_burst(s);
    sim_run_for(s, rnd(s, 5, 150));
    sim_crash(s, l1);
    sim_heal(s);
    if (f != l1) {
        sim_isolate(s, f); /* the next leader lacks the burst */
    }
    raft_id l2 = wait_new_leader(s, l1, 2000);
    if (l2 != 0) {
        /* its no-op reaches its disk but (mostly) nobody else */
        if (sim_rand_below(s, 4) != 0) {
            sim_isolate(s, l2);
        }
        sim_run_for(s, rnd(s, 0, 25));
        sim_crash(s, l2);
    }
    sim_heal(s);
    sim_restart(s, l1);
    raft_id l3 = wait_new_leader(s, l2, 2000);
    if (l3 != 0) {
        /* cut l3 off (its messages in flight are lost) and crash it at a
         * random moment, or as soon as its commit index moves */
        raft_index c0 = raft_commit_index(s->nodes[l3].r);
        unsigned ms = rnd(s, 1, 60);
        for (unsigned t = 0; t < ms && s->nodes[l3].alive && !s->failed; t++) {
            sim_run_for(s, 1);
            if (s->nodes[l3].alive && raft_commit_index(s->nodes[l3].r) != c0) {
                break;
            }
        }
        sim_isolate(s, l3); /* stays cut off until a later heal */
        sim_crash(s, l3);
    }
    if (l2 != 0) {
        sim_restart(s, l2);
    }
    if (l3 != 0) {
        sim__schedule_restart(s, l3, s->now + rnd(s, 100, 1000));
    }
}

static void random_action(struct sim* s)
{
    unsigned r = sim_rand_below(s, 100);
    raft_id id = random_alive(s);
    if (id == 0) {
        return;
    }
    if (r < 30) {
        sim_propose(s, id, NULL);
    } else if (r < 38) {
        sim_read(s, id, NULL);
    } else if (r < 44) {
        act_crash(s);
    } else if (r < 49) {
        act_partition(s);
    } else if (r < 55) {
        sim_heal(s);
    } else if (r < 57) {
        raft_id l = sim_leader(s);
        if (l != 0) {
            sim_transfer(s, l, sim_rand_below(s, 2) ? 0 : rnd(s, 1, 5));
        }
    } else if (r < 61) {
        act_conf(s);
    } else if (r < 63) {
        sim_compact(s, id, 0);
    } else if (r < 65) {
        sim_set_faults(s, rnd(s, 0, 10), rnd(s, 0, 5));
    } else if (r < 66 && sim_rand_below(s, 2) == 0) {
        act_burst(s);
    } else if (r < 67) {
        act_figure8(s);
    }
}

static bool have_stable_leader(struct sim* s, void* arg)
{
    (void)arg;
    return sim_stable_leader(s) != 0;
}

/* Client probes of the liveness phase. A probe whose leader lost its term
 * before applying it may be lost without an error (the core cannot know):
 * like a real client after a timeout, the driver proposes a fresh value. */
struct probe {
    uint64_t values[LIVENESS_VALUES];
    raft_id leader[LIVENESS_VALUES];
    raft_term term[LIVENESS_VALUES];
    unsigned n, retries;
};

static bool probe_lost(struct sim* s, const struct probe* p, unsigned i)
{
    struct raft* r = sim_raft(s, p->leader[i]);
    return sim_value_index(s, p->values[i]) == 0 &&
           (r == NULL || raft_role(r) != RAFT_LEADER ||
            raft_current_term(r) != p->term[i]);
}

static bool probes_done(struct sim* s, void* arg)
{
    const struct probe* p = arg;
    raft_index need = s->commit_max;
    for (unsigned i = 0; i < p->n; i++) {
        if (probe_lost(s, p, i)) {
            return true; /* re-propose */
        }
        raft_index at = sim_value_index(s, p->values[i]);
        if (at == 0) {
            return false;
        }
        need = at > need ? at : need;
    }
    raft_id l = sim_stable_leader(s);
    return p->n == LIVENESS_VALUES && l != 0 && sim_converged(s, l, need);
}

/* Propose probes that are missing or lost; false when no leader takes them. */
static bool probes_propose(struct sim* s, struct probe* p)
{
    for (unsigned i = 0; i < LIVENESS_VALUES; i++) {
        if (i < p->n && !probe_lost(s, p, i)) {
            continue;
        }
        raft_id l = sim_stable_leader(s);
        if (l == 0 || p->retries++ >= LIVENESS_PROPOSE_TRIES ||
            sim_propose(s, l, &p->values[i]) != 0) {
            return false;
        }
        p->leader[i] = l;
        p->term[i] = raft_current_term(s->nodes[l].r);
        if (i == p->n) {
            p->n++;
        }
    }
    return true;
}

static uint64_t sent_total(const struct sim* s)
{
    uint64_t n = 0;
    for (raft_id a = 1; a <= SIM_NODES_MAX; a++) {
        for (raft_id b = 1; b <= SIM_NODES_MAX; b++) {
            n += sim_sent(s, a, b);
        }
    }
    return n;
}

/* After liveness, with nothing to replicate: one follower restarts (the
 * leader probes it, RAFT_EV_PEER_RESTARTED) and the cluster idles. Idle, a
 * leader sends each peer a heartbeat per interval and gets its answer; a
 * pair of nodes that keeps answering each other at once (a probe storm)
 * sends thousands. Skipped when the leader changed in the window (an
 * election's messages are not idle ones). */
static int idle(struct sim* s)
{
    raft_id l = sim_stable_leader(s);
    raft_id f = 0;
    unsigned alive = 0;
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        if (sim_alive(s, id)) {
            alive++;
            f = f == 0 && id != l ? id : f;
        }
    }
    if (l == 0 || f == 0) {
        return 0;
    }
    sim_note(s, "IDLE: restart n%" PRIu64 ", then no proposals", f);
    sim_crash(s, f);
    sim_restart(s, f);
    if (sim_run_for(s, IDLE_SETTLE_MS) != 0) {
        return -1;
    }
    uint64_t m0 = sent_total(s);
    if (sim_run_for(s, IDLE_MS) != 0) {
        return -1;
    }
    if (sim_stable_leader(s) != l) {
        return 0;
    }
    uint64_t sent = sent_total(s) - m0;
    uint64_t bound =
        4 * (uint64_t)(alive - 1) * (IDLE_MS / s->cfg.heartbeat_ms + 1) + 64;
    if (sent > bound) {
        sim__violate(s,
                     "idle: %" PRIu64
                     " messages in %u ms with no proposals "
                     "(bound %" PRIu64 ", leader n%" PRIu64 ", n%" PRIu64
                     " restarted)",
                     sent, (unsigned)IDLE_MS, bound, l, f);
        return -1;
    }
    return 0;
}

static int liveness(struct sim* s)
{
    sim_note(s, "LIVENESS: heal, restart, no more faults");
    sim_heal(s);
    sim_set_faults(s, 0, 0);
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        sim_restart(s, id);
    }
    int rc = sim_run_until(s, have_stable_leader, NULL, LIVENESS_ELECT_MS);
    if (rc == -ETIMEDOUT) {
        sim__violate(s, "liveness: no stable leader %u ms after healing",
                     (unsigned)LIVENESS_ELECT_MS);
    }
    if (rc != 0) {
        return -1;
    }
    uint64_t deadline = s->now + LIVENESS_APPLY_MS;
    struct probe p = {.n = 0};
    while (!s->failed && s->now < deadline) {
        if (!probes_propose(s, &p)) {
            if (p.retries >= LIVENESS_PROPOSE_TRIES) {
                break;
            }
            sim_run_for(s, 50);
            continue;
        }
        rc = sim_run_until(s, probes_done, &p, deadline - s->now);
        bool lost = false;
        for (unsigned i = 0; i < p.n; i++) {
            lost |= probe_lost(s, &p, i);
        }
        if (rc == 0 && !lost) {
            return idle(s);
        }
    }
    raft_id l = sim_stable_leader(s);
    sim__violate(s,
                 "liveness: %u probes not applied on all live voters %u ms "
                 "after healing (leader n%" PRIu64 ", commit_max %" PRIu64
                 ", %u proposals)",
                 (unsigned)LIVENESS_VALUES, (unsigned)LIVENESS_APPLY_MS, l,
                 s->commit_max, p.retries);
    return -1;
}

int sim_random_run(struct sim* s, uint64_t chaos_ms)
{
    uint64_t end = s->now + chaos_ms;
    while (s->now < end && !s->failed) {
        if (sim_run_for(s, rnd(s, 5, 40)) != 0) {
            return -1;
        }
        random_action(s);
    }
    if (s->failed) {
        return -1;
    }
    return liveness(s);
}
