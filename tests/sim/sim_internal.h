/* sim_internal.h - internals shared by the files of the simulated
 * cluster (sim.c, sim_log.c, sim_net.c, sim_event.c, sim_app.c,
 * sim_disk.c, sim_node.c, sim_client.c, sim_query.c), checker.c and
 * driver.c. */
#ifndef QFS_SIM_INTERNAL_H
#define QFS_SIM_INTERNAL_H

#include "driver.h"
#include "sim.h"

/* A message in flight: a deep copy (entries, data, chunks in one blob). */
struct sim_msg {
    struct raft_message m; /* a deep copy: raft_msg_clone */
    unsigned from_inc;     /* the sender's incarnation when it was sent */
};

/* One log entry as the harness stores it (disk and shadow logs). */
struct sim_ent {
    raft_term term;
    uint8_t type;
    uint32_t len;
    uint64_t hash; /* of type + data */
    void* data;    /* disk log only (NULL in the shadow log) */
};

struct sim_log {
    raft_index base; /* entries start at base + 1 */
    raft_term base_term;
    unsigned n, cap;
    struct sim_ent* e;
};

/* A write handed to the simulated disk, completed in order: a batch of
 * the driver (raft/driver.h), or the install of a received image. */
struct sim_write {
    struct sim_write* next;
    uint64_t done_ms;
    struct raft_batch* batch;       /* owned by the driver; NULL: an install */
    struct raft_snapshot_meta meta; /* install: the image's meta */
    void* image;
    size_t image_len;
};

/* The application: applied values folded into a running hash. */
struct sim_sm {
    raft_index applied;
    uint64_t count;
    uint64_t hash;
    raft_index conf_index; /* configuration as of `applied` */
    struct raft_conf conf;
};

struct sim_read_req {
    uint64_t ctx;
    raft_index index;    /* serve when applied >= index */
    raft_index required; /* max applied anywhere when the read started */
};

struct sim_node {
    struct sim* sim; /* for the driver's callbacks */
    raft_id id;
    bool alive;
    bool exists; /* has a disk */
    unsigned incarnation;
    bool catch_up; /* boot with raft_options.catch_up_first */
    struct raft* r;
    struct raft_driver* d; /* drives r through the update contract */
    uint64_t tick_gen;
    bool tick_pending; /* a tick event for tick_gen is queued */
    uint64_t tick_at;
    /* disk: durable state */
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
    void* image;
    size_t image_len;
    struct sim_log disk;
    /* pending writes (lost on crash) */
    struct sim_write *wq_head, *wq_tail;
    uint64_t disk_free_ms;
    /* the log as the core asked for it (durable + pending) */
    struct sim_log shadow;
    /* app */
    struct sim_sm sm;
    void* compact_image; /* borrowed by the core until the next compact */
    size_t compact_image_len;
    raft_index last_compact;
    /* A compaction decided while an update was handled, run after it. */
    bool compact_due;
    raft_index compact_keep;
    struct sim_read_req reads[SIM_READS_MAX];
    unsigned n_reads;
    /* checker */
    raft_index commit_seen;
    raft_term leader_term_seen; /* last term this node was seen leading */
};

enum sim_ev_kind {
    SIM_EV_DELIVER = 1,
    SIM_EV_DISK = 2,
    SIM_EV_TICK = 3,
    SIM_EV_RESTART = 4,
};

struct sim_ev {
    uint64_t t;
    uint64_t seq;
    uint8_t kind;
    uint8_t node;
    uint64_t gen;
    struct sim_msg* msg;
};

struct sim_proposal {
    raft_index index; /* first applied at (0: not yet) */
    int err;
};

struct sim_read_rec {
    raft_index required; /* max applied anywhere when the read started */
    raft_index served;   /* applied index the read was served at */
    int err;
};

struct sim_filter {
    raft_id from, to;
    int type;
};

struct sim {
    struct sim_config cfg;
    uint64_t rng;
    uint64_t now;
    uint64_t seq;
    struct sim_ev* heap;
    unsigned n_heap, heap_cap;
    struct sim_node nodes[SIM_NODES_MAX + 1];
    bool blocked[SIM_NODES_MAX + 1][SIM_NODES_MAX + 1];
    struct sim_filter filters[SIM_NODES_MAX * SIM_NODES_MAX];
    unsigned n_filters;
    unsigned drop_pct, dup_pct;
    unsigned disk_extra_ms[SIM_NODES_MAX + 1]; /* a slow disk per node */
    uint64_t next_value;
    struct sim_proposal* props; /* by value */
    uint64_t props_cap;
    uint64_t next_read;
    struct sim_read_rec* reads; /* by ctx */
    uint64_t reads_cap;
    unsigned installs;
    uint64_t sent[SIM_NODES_MAX + 1][SIM_NODES_MAX + 1]; /* by from, to */
    /* snapshot chunks at offset 0 (a transfer started or restarted) */
    uint64_t snap_starts[SIM_NODES_MAX + 1][SIM_NODES_MAX + 1];
    struct raft_conf initial_conf; /* what a wiped node restarts with */
    char violation[SIM_VIOLATION_MAX];
    bool failed;
    /* trace ring */
    char (*trace)[SIM_TRACE_LINE_MAX];
    unsigned trace_n;
    /* checker state */
    raft_id* leader_of_term; /* by term */
    raft_term n_terms;
    struct sim_commit* committed; /* by index */
    raft_index n_committed_cap;
    raft_index commit_max;  /* highest index known committed */
    raft_index applied_max; /* highest index applied on any node */
    struct sim_lm* lm;      /* log matching table (open addressing) */
    unsigned lm_cap, lm_n;
};

/* What the checker knows about an index. */
struct sim_commit {
    raft_term term; /* known committed with this term (0: unknown) */
    bool applied;   /* applied somewhere: entry fields below valid */
    uint8_t type;
    uint64_t ent_hash;
    uint64_t sm_hash; /* state machine hash after applying it */
    uint64_t sm_count;
};

/* Log matching: content of (index, term) and the term before it. */
struct sim_lm {
    raft_index index;
    raft_term term;
    raft_term prev_term; /* UINT64_MAX: unknown (compacted) */
    uint64_t hash;
};

/* sim.c */
void sim__violate(struct sim* s, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim__trace(struct sim* s, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
uint64_t sim__hash(uint64_t h, const void* p, size_t n);
/* calloc / realloc that abort when out of memory. */
void* sim__xcalloc(size_t n, size_t size);
void* sim__xrealloc(void* p, size_t size);
/* A random number in [lo, hi]. */
unsigned sim__rand_range(struct sim* s, unsigned lo, unsigned hi);
uint64_t sim__entry_hash(uint8_t type, const void* data, size_t len);
/* The core's tracer (raft_options.tracer.emit): into the trace. */
void sim__core_trace(void* data, int level, raft_id node, const char* msg);

/* sim_log.c */
raft_term sim__log_term(const struct sim_log* l, raft_index i);
raft_index sim__log_last(const struct sim_log* l);
void sim__log_push(struct sim_log* l, const struct sim_ent* e);
void sim__log_truncate(struct sim_log* l, raft_index from);
void sim__log_reset(struct sim_log* l, raft_index base, raft_term term);
/* Drop entries < keep_from (they are covered by a snapshot). */
void sim__log_drop_before(struct sim_log* l, raft_index keep_from);
void sim__log_free(struct sim_log* l);

/* sim_net.c */
struct sim_msg* sim__msg_copy(const struct raft_message* src);
void sim__msg_free(struct sim_msg* c);
void sim__msg_describe(const struct raft_message* m, char* buf, size_t cap);
/* Send c (owned from here on): delivered later, dropped or duplicated. */
void sim__net_send(struct sim* s, struct sim_msg* c);

/* sim_event.c */
void sim__heap_push(struct sim* s, struct sim_ev ev);
struct sim_ev sim__heap_pop(struct sim* s);

/* sim_app.c */
size_t sim__image_encode(const struct sim_sm* sm, void** out);
int sim__image_decode(struct sim_sm* sm, const void* img, size_t len);
void sim__serve_reads(struct sim* s, struct sim_node* n);
void sim__sm_apply(struct sim* s,
                   struct sim_node* n,
                   const struct raft_entry* e);

/* sim_disk.c */
void sim__schedule_tick(struct sim* s, struct sim_node* n, uint64_t at);
void sim__write_free(struct sim_write* w);
/* Queue w on n's disk: writes complete in order. */
void sim__disk_submit(struct sim* s,
                      struct sim_node* n,
                      struct sim_write* w,
                      bool durable);
/* Step 1 of the contract, as seen by the core: the shadow log changes. */
void sim__shadow_update(struct sim* s,
                        struct sim_node* n,
                        const struct raft_update* u);

/* sim_node.c */
/* Steps ev through n's driver, then a compaction the update asked for. */
int sim__node_step(struct sim* s,
                   struct sim_node* n,
                   const struct raft_event* ev);
/* A new core for n (n->r), driven by a new driver (n->d). */
void sim__node_new_core(struct sim* s, struct sim_node* n);
void sim__node_wipe(struct sim_node* n);

/* checker.c */
void checker__init(struct sim* s);
void checker__free(struct sim* s);
/* Before the shadow log of n changes. */
void checker__on_truncate(struct sim* s, struct sim_node* n, raft_index from);
void checker__on_append(struct sim* s,
                        struct sim_node* n,
                        const struct raft_entry* e,
                        raft_term prev_term);
void checker__on_apply(struct sim* s,
                       struct sim_node* n,
                       const struct raft_entry* e);
void checker__on_install(struct sim* s,
                         struct sim_node* n,
                         const struct raft_snapshot_meta* meta);
void checker__on_read(struct sim* s,
                      struct sim_node* n,
                      const struct sim_read_req* rq);
/* After every event: roles, terms, commit indexes. */
void checker__after_event(struct sim* s);

#endif /* QFS_SIM_INTERNAL_H */
