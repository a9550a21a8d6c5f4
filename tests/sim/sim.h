/* sim.h - deterministic simulation of a cluster of pure raft cores.
 *
 * Every node is a real `struct raft` (raft.h) driven through the update
 * contract: persist -> send -> apply. Time is simulated (a priority queue of
 * message deliveries, disk completions, ticks and restarts); the network
 * delays, drops, duplicates and reorders messages and honours partitions and
 * one-way link cuts; each node has a simulated disk whose writes complete in
 * order after a latency, and a crash loses every write not yet completed.
 * Nothing here reads a clock or calls rand(): a run is a pure function of
 * its configuration (seed included), so a failing seed reproduces exactly.
 *
 * The checker (checker.c) runs after every event and on every update:
 * election safety, leader append-only, log matching, leader completeness,
 * state machine safety, ReadIndex linearizability and the update contract.
 * The first violation stops the run; sim_failed() then returns its text.
 */
#ifndef QFS_SIM_H
#define QFS_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "raft.h"

enum {
    SIM_NODES_MAX = 12,           /* node ids 1..SIM_NODES_MAX */
    SIM_EVENTS_MAX = 1u << 20,    /* queued events (a run past this fails) */
    SIM_TRACE_LINES = 80,         /* tail of the trace kept for a failure */
    SIM_TRACE_LINE_MAX = 240,     /* bytes per trace line */
    SIM_VIOLATION_MAX = 512,      /* bytes of the violation text */
    SIM_READS_MAX = 256,          /* pending reads per node */
    SIM_PROPOSALS_MAX = 1u << 16, /* proposals in one run */
};

struct sim_config {
    uint64_t seed;
    unsigned n_voters; /* initial voters 1..n_voters (1..5) */
    unsigned heartbeat_ms, election_ms;
    bool pre_vote, check_quorum;
    bool bug_commit_old_term; /* plant the Figure-8 bug in every core */
    unsigned compact_every;   /* compact after this many applied; 0: never */
    /* network: per-message delay in [delay_min, delay_max] ms */
    unsigned delay_min_ms, delay_max_ms;
    unsigned drop_pct, dup_pct; /* percent of messages dropped/duplicated */
    unsigned disk_min_ms, disk_max_ms; /* write latency */
    bool wipe_catch_up; /* sim_wipe boots with catch_up_first (default) */
    bool trace;         /* keep a trace (ring buffer of the last lines) */
    FILE* trace_out;    /* also print every trace line here (NULL: don't) */
};

void sim_config_default(struct sim_config* c, uint64_t seed);

struct sim;

struct sim* sim_new(const struct sim_config* c);
void sim_free(struct sim* s);

/* Violation text of the first failed check, or NULL while all checks hold. */
const char* sim_failed(const struct sim* s);
/* Print the kept trace tail to f. */
void sim_trace_dump(const struct sim* s, FILE* f, unsigned lines);
/* Record a harness note in the trace. */
void sim_note(struct sim* s, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

uint64_t sim_now(const struct sim* s);
/* Process events until time now + ms (stops early on a violation).
 * Returns 0 or -1 after a violation. */
int sim_run_for(struct sim* s, uint64_t ms);
/* Run until pred() holds (checked after every event) or max_ms passed.
 * Returns 0 when pred held, -ETIMEDOUT, or -1 after a violation. */
int sim_run_until(struct sim* s,
                  bool (*pred)(struct sim*, void*),
                  void* arg,
                  uint64_t max_ms);

/* ---- nodes ---- */
bool sim_alive(const struct sim* s, raft_id id);
struct raft* sim_raft(struct sim* s, raft_id id); /* NULL when down */
/* The live leader with the highest term, 0 if none. */
raft_id sim_leader(const struct sim* s);
/* A leader every live member of its configuration agrees on, 0 if none. */
raft_id sim_stable_leader(const struct sim* s);
raft_index sim_applied(const struct sim* s, raft_id id); /* state machine */
uint64_t sim_sm_hash(const struct sim* s, raft_id id);
/* Term of entry `index` in the node's log as the core wrote it (0: none or
 * compacted). */
raft_term sim_log_term(const struct sim* s, raft_id id, raft_index index);
raft_index sim_log_last(const struct sim* s, raft_id id);

void sim_crash(struct sim* s, raft_id id);
/* Restart from what the node's disk holds (raft_restore). */
void sim_restart(struct sim* s, raft_id id);
/* Start a brand-new node with an empty disk (joining an existing cluster). */
void sim_start_fresh(struct sim* s, raft_id id);

/* Crash the node and lose its whole disk, then start it again with the
 * initial configuration, like a node restarted on an empty data dir with
 * `--initial-cluster-state existing`. */
void sim_wipe(struct sim* s, raft_id id);
/* Crash the node, drop the last `entries` entries of its durable log (a torn
 * tail; the hard state's commit is clamped to what is left) and restart. */
void sim_tear_tail(struct sim* s, raft_id id, unsigned entries);
/* Messages sent so far from -> to (duplicates not counted). */
uint64_t sim_sent(const struct sim* s, raft_id from, raft_id to);
/* Snapshot chunks at offset 0 sent from -> to: image transfers started or
 * restarted from the beginning (duplicates not counted). */
uint64_t sim_snap_starts(const struct sim* s, raft_id from, raft_id to);

/* Add `ms` to every write of the node's disk (0: back to normal). */
void sim_set_disk_delay(struct sim* s, raft_id id, unsigned ms);

/* ---- network ---- */
void sim_block(struct sim* s, raft_id from, raft_id to, bool blocked);
void sim_isolate(struct sim* s, raft_id id); /* both directions, all peers */
void sim_heal(struct sim* s);                /* unblock every link */
void sim_set_faults(struct sim* s, unsigned drop_pct, unsigned dup_pct);
/* Drop every message of type `type` from->to (0 = any) until cleared. */
void sim_filter(struct sim* s, raft_id from, raft_id to, int type, bool on);

/* ---- client operations (return raft_step's code) ---- */
/* Propose one NORMAL entry carrying a fresh unique value (*value_out). */
int sim_propose(struct sim* s, raft_id id, uint64_t* value_out);
/* Index where the value was applied first (0: not yet applied anywhere). */
raft_index sim_value_index(const struct sim* s, uint64_t value);
/* Start a ReadIndex read; *ctx_out identifies it. */
int sim_read(struct sim* s, raft_id id, uint64_t* ctx_out);
/* Index a read was served at (0: not yet), or the error it failed with. */
int sim_read_result(const struct sim* s, uint64_t ctx, raft_index* served);
int sim_transfer(struct sim* s, raft_id leader, raft_id to);
int sim_conf_change(struct sim* s, raft_id leader, int op, raft_id target);
/* Take a snapshot image at the node's applied index (RAFT_EV_COMPACT). */
int sim_compact(struct sim* s, raft_id id, raft_index keep_from);

/* Every live voter of `leader`'s configuration applied up to the leader's
 * commit index (and that index is >= min_index). */
bool sim_converged(struct sim* s, raft_id leader, raft_index min_index);

/* Number of snapshot installs that completed (all nodes). */
unsigned sim_installs(const struct sim* s);

/* One randomized run of a seed: chaos phase, then heal + liveness check.
 * Returns 0 or -1 (violation text in sim_failed()). */
int sim_random_run(struct sim* s, uint64_t chaos_ms);

/* Deterministic PRNG (splitmix64) shared by the harness and the tests. */
uint64_t sim_rand(struct sim* s);
unsigned sim_rand_below(struct sim* s, unsigned n);

#endif /* QFS_SIM_H */
