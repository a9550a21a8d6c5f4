/* node_state_internal.h - struct node and the functions node*.c share (not a
 * contract: the node's own files and its unit test include it). */
#ifndef QFS_NODE_STATE_INTERNAL_H
#define QFS_NODE_STATE_INTERNAL_H

#include <limits.h>

#include "identity.h"
#include "node_internal.h"
#include "node_metrics.h"
#include "node_watch.h"

enum {
    NODE_WAITER_BUCKETS = 4096,
    /* Seal store frames at most this late: each frame costs an fdatasync
     * of the db file on the I/O thread, which delays the log syncs that
     * writers wait for; the raft log is the durable copy meanwhile. */
    NODE_FRAME_DELAY_MS = 100,
    NODE_SWEEP_MS = 50,      /* proposal deadlines; stall detection */
    NODE_STALL_MIN_MS = 100, /* a longer sweep gap is a loop stall */
    NODE_PROPOSE_BATCH_MAX = RAFT_PROPOSE_BATCH_MAX, /* per core step */
    NODE_STARTUP_LOG_MS = 5000, /* start-up barrier: progress every */
    /* malloc: blocks from this size are mmapped (returned on free), and an
     * arena's free top past this is given back (node.c, malloc_tune). */
    NODE_MALLOC_MMAP_MIN = 1 << 20,
    NODE_MALLOC_TRIM_MIN = 1 << 20,
    /* --snapshot-bytes: sizes of the newest applied entries are kept in a
     * ring of this many (the kept log tail is bounded by it too), each
     * entry counted with this much for its struct and malloc overhead. */
    NODE_LOG_LENS = 1 << 16,
    /* Encoded proposals held by waiters (each is also in the core's log,
     * an I/O job and the fs's write in flight): past this, the mount stops
     * reading FUSE requests until some complete (node_backlog_full). */
    NODE_PENDING_BYTES_MAX = 16 << 20,
    NODE_ENTRY_OVERHEAD = 64,
    /* --history-bytes: (revision, bytes applied) samples, one per
     * history_bytes / NODE_HIST_SAMPLE_DIV applied (fs/cli/ctl.c reads them) */
    NODE_HIST_SAMPLES = 256,
    NODE_HIST_SAMPLE_DIV = 64,
};

/* A membership change asked on this node (node_conf_change). Its ctx has
 * NODE_CONF_CTX_BIT set: proposal seqs never do. */
enum { NODE_CONF_REQS_MAX = 8 };
#define NODE_CONF_CTX_BIT (1ULL << 63)
struct node_conf_req {
    bool used;
    uint8_t op;
    uint64_t ctx;
    uint64_t deadline_ms; /* uv_now */
    raft_id leader;       /* the leader it was last sent to (0: none) */
    struct raft_server server;
    node_conf_cb cb;
    void* data;
};

/* A proposal made on this node, waiting for its entry to be applied. */
struct waiter {
    struct waiter* hnext;       /* hash chain by seq */
    struct waiter *prev, *next; /* by deadline; then the completion list */
    uint64_t seq;
    uint64_t deadline_ms;
    node_done_cb cb;
    void* data;
    void* cmd; /* encoded command, kept for re-proposal */
    size_t cmd_len;
    void* fence; /* its STORE_OP_CANCEL once fenced (proposed instead) */
    size_t fence_len;
    bool parked; /* refused for want of a leader: retry when one is known */
    bool fenced; /* past its first deadline: fence is proposed, not cmd */
    struct store_result res;
    uint64_t start_ns; /* uv_hrtime() at node_propose (metrics) */
};

struct read_waiter {
    struct read_waiter* next;
    uint64_t ctx;
    uint64_t deadline_ms;
    raft_index index;
    bool has_index;
    bool parked;
    uint64_t retry_ms; /* start-up barrier: ask again at (0: never) */
    uint64_t log_ms;   /* start-up barrier: say how far it is at */
    int err;
    node_read_cb cb;
    void* data;
};

struct db_compact_job;

/* Counters kept for the metrics only (node_metrics.c); loop thread. */
struct node_counters {
    uint64_t applied_entries;       /* committed entries applied since start */
    uint64_t leader_changes;        /* node__role_changed saw another leader */
    uint64_t snapshot_sends;        /* images whose first chunk was sent */
    uint64_t snapshot_installs;     /* images installed from the leader */
    struct node_hist proposal_hist; /* node_propose() to its answer */
};

/* node_watch.c: what a command about to be applied will change, read
 * before it changes the tree (the paths of an unlink or a rename). */
struct node_watch_pending {
    uint8_t op; /* enum watch_op; 0: the command changes no path */
    char path[WATCH_PATH_MAX];
    char path2[WATCH_PATH_MAX];
    /* WRITE, SETATTR of a file with several names (hard links): the
     * paths of its other names, each NUL-terminated (malloc'd; NULL:
     * none), an event each after the first, same revision. */
    char* more;
    size_t more_len;
};

struct node {
    uv_loop_t* loop;
    struct node_options opts;
    struct node_log logger;        /* this node's level and sink (node_io.c) */
    struct db_compact_job* db_job; /* the db rewrite in flight, one per node
                                      (node_snapshot.c) */
    char data_dir[PATH_MAX];
    char name[RAFT_NAME_MAX];
    raft_id id;
    uint64_t cluster_id;
    struct raft_conf initial_conf; /* --initial-cluster (or just us) */
    /* The member list the data dir was made with (identity file): the
     * configuration while the log holds none of its own ("" in data dirs
     * made before it was recorded: --initial-cluster is used then). */
    char identity_list[IDENTITY_LIST_MAX];
    struct raft_conf recorded_conf;
    bool have_recorded_conf;
    int lock_fd;

    struct raft* raft;
    struct raft_driver* driver; /* drives raft: raft/driver.h */
    struct rlog* log;
    struct rlog_loaded loaded; /* what rlog_open found (node_boot.c); its
                                  entries are valid until the first log
                                  change */
    struct store* store;
    struct transport* transport;
    /* The peer listener started at run time (node_peer_listen): its
     * address, and its TLS configuration, owned (freed once the transport
     * has closed). */
    char listen_addr[RAFT_ADDR_MAX];
    struct tls_config* own_tls;
    struct node_io io;

    uv_timer_t tick_timer, sweep_timer, frame_timer;
    /* Timers only flag their work; it runs in the check phase, after the
     * loop has polled its sockets (node.c: after_poll_cb). */
    uv_idle_t after_poll_idle;   /* makes that poll non-blocking */
    uv_check_t after_poll_check; /* runs the flagged work */
    bool tick_due, sweep_due;
    uint64_t clock_last_ms; /* uv_now at the last clock reading */
    uint64_t stalled_ms;    /* loop stalls taken out of the core's clock */
    uint64_t stalls;        /* how many */
    uv_prepare_t prepare;   /* flushes batched proposals */
    uint64_t batch[NODE_PROPOSE_BATCH_MAX]; /* seqs not yet stepped */
    unsigned n_batch;

    /* proposals */
    struct waiter* wtable[NODE_WAITER_BUCKETS];
    struct waiter *whead, *wtail;
    struct waiter *done_head, *done_tail;
    uint64_t n_waiters;
    uint64_t pending_bytes;  /* sum of the waiters' cmd_len */
    uint64_t n_fenced;       /* waiters whose cancel is out */
    uint64_t fence_retry_ms; /* next time fences are proposed again */
    uint64_t next_seq;
    bool leader_changed_since_propose;
    bool retry_pending;
    bool parked_any; /* a proposal was refused (e.g. during a transfer that
                        may be abandoned): the sweep retries it */
    uint64_t parked_retry_ms; /* not before this */
    /* reads */
    struct read_waiter *reads, *reads_done;
    uint64_t next_read_ctx;

    /* apply-side state for snapshot metas */
    raft_term applied_term;
    raft_index applied_conf_index;
    struct raft_conf applied_conf;
    raft_index last_compact_index;
    /* The applied part of the core's in-memory log, in bytes
     * (--snapshot-bytes): lengths of entries [lens_first, lens_next). */
    uint32_t* log_lens; /* NODE_LOG_LENS, entry i at i % NODE_LOG_LENS */
    raft_index lens_first, lens_next;
    uint64_t log_bytes;     /* applied entries still in the core's log */
    uint64_t log_kept;      /* of which kept by the last compaction */
    uint64_t applied_bytes; /* every entry applied since start */
    struct node_hist_sample {
        uint64_t revision, bytes;
    } hist[NODE_HIST_SAMPLES]; /* ring, oldest at hist_head */
    size_t hist_head, hist_count;
    raft_index restored_commit;
    bool need_image;
    void* image; /* last image given to the core */
    size_t image_len;
    bool image_empty;    /* the core holds an empty image (not a leader) */
    bool image_checking; /* inside node__image_check() */
    raft_index image_failed_at;   /* an image build failed at this index */
    raft_index release_failed_at; /* releasing the core's image did */

    struct io_job* deferred_done; /* finished jobs set aside by
                                     drain_frames(), handled first */
    unsigned depth;   /* nesting of step(): completions drain at 0 */
    bool compact_due; /* applied entries since the last compaction check:
                         run after the update (never stepped inside it) */
    unsigned batches_inflight, frames_inflight;
    raft_id last_leader;
    raft_id last_known_leader; /* the last nonzero last_leader (log lines) */
    int sticky_err;

    /* membership changes (node_members.c) */
    struct node_conf_req conf_reqs[NODE_CONF_REQS_MAX];
    uint64_t next_conf_ctx;
    struct raft_conf peers_conf;  /* the members the transport knows */
    raft_index logged_conf_index; /* node__conf_log's last */

    /* start-up (node_boot.c) */
    bool bootstrapped; /* started a brand-new cluster */
    bool catching_up;  /* the CATCHING-UP marker exists */

    /* watch (node_watch.c) */
    struct watch_ring* watch;
    struct node_watch_pending* watch_next; /* scratch for apply_one */
    bool watch_pending; /* events appended since the listener was told */
    void (*watch_cb)(void* data);
    void* watch_cb_data;

    /* stats */
    uint64_t proposals, timeouts, fences;
    struct node_counters counters; /* node_metrics.c */
    struct {
        node_metrics_source_cb cb; /* NULL: free slot */
        void* data;
    } metric_sources[NODE_METRICS_SOURCES_MAX];
    /* More status from the layer above (node_set_status_extra). */
    node_status_extra_cb status_extra;
    void* status_extra_data;

    /* shutdown */
    bool stopping, closing, transport_closing;
    unsigned handles_open;
    void (*stop_cb)(void* data);
    void* stop_data;
};

int node__step(struct node* n, struct raft_event* ev);
/* Creates n->driver for n->raft (node_boot.c, after raft_new). */
int node__driver_attach(struct node* n);
/* Frees n->driver, then n->raft (either may be NULL). */
void node__raft_free(struct node* n);
void node__tick_cb(uv_timer_t* t);
void node__flush_proposals(struct node* n);
void node__reads_check(struct node* n);
void node__retry_parked(struct node* n);
void node__io_job_finished(struct node* n, struct io_job* j);
void node__frame_flush(struct node* n);
void node__frame_schedule(struct node* n);
void node__maybe_compact(struct node* n);
/* Snapshot images on demand: builds one when the core wants one (a
 * follower is behind the leader's compacted log) and releases the core's
 * (ours, or an installed one it kept) when nobody needs it. */
void node__image_check(struct node* n);
void node__conf_applied(struct node* n, const struct raft_entry* e);
void node__stop_continue(struct node* n);

/* node_members.c: a failed proposal that is a membership change (true:
 * handled); completions and timeouts (after each update and sweep); all
 * of them failed with err (stop). */
bool node__conf_failed(struct node* n, uint64_t ctx, int err);
void node__conf_check(struct node* n);
/* Membership changes asked here and not in the configuration yet, sent to
 * a leader that is gone: sent again to the current one. Never called
 * while an update is handled (it steps the core): from the sweep. */
void node__conf_retry(struct node* n);
/* Whether a refusal of the core is for want of a leader (no leader known,
 * a transfer under way, the leader lost): tried again once one is known. */
bool node__retryable(int rv);
void node__conf_fail_all(struct node* n, int err);
/* One line naming the members when the configuration changed. */
void node__conf_log(struct node* n);

/* node_watch.c: the ring made after the store is open (-ENOMEM) and
 * freed; the event of one applied command: prepare before store_apply,
 * applied after it; a snapshot installed; the listener told once per batch
 * of applied entries (when any event was added). */
int node__watch_open(struct node* n);
void node__watch_close(struct node* n);
void node__watch_prepare(struct node* n,
                         const void* cmd,
                         size_t len,
                         struct node_watch_pending* p);
void node__watch_applied(struct node* n,
                         const struct node_watch_pending* p,
                         const struct store_result* res);
void node__watch_reset(struct node* n);
void node__watch_notify(struct node* n);

/* node_boot.c */
int node__open_disk(struct node* n);
void node__close_disk(struct node* n);
int node__start_raft(struct node* n);
int node__start_transport(struct node* n);
void node__sync_peers(struct node* n);
void node__drop_peers(struct node* n);
/* Store the cluster id learned at a handshake (identity file) and use it. */
int node__cluster_learned(struct node* n, uint64_t cluster_id);
void node__role_changed(struct node* n);
/* Remove the CATCHING-UP marker once the core has caught up. */
void node__catch_up_check(struct node* n);

/* node_check.c: the db file against the raft log at start (both open, the
 * db's torn tail, if any, still on disk). 0: consistent (a replayable torn
 * tail is truncated here); -EUCLEAN: refused, logged, nothing modified. */
int node__check_disk(struct node* n,
                     const char* db,
                     const struct store_recovery* rec,
                     const struct rlog_loaded* l);

/* ---- shared by the files of node.c (each described at its definition) ---- */

/* node.c */
uint64_t node__now_ms(struct node* n);
int64_t node__wall_ns(void);
int node__errno_of_raft(int rv);
void node__handle_update(struct node* n, const struct raft_update* u);
void node__after_poll_arm(struct node* n);
void node__history_sample(struct node* n);

/* node_propose.c */
struct waiter* node__waiter_find(struct node* n, uint64_t seq);
void node__complete_waiter(struct node* n,
                           struct waiter* w,
                           const struct store_result* res);
void node__fail_waiter(struct node* n, struct waiter* w, int err);
void node__complete_read(struct node* n, struct read_waiter* r, int err);
void node__drain_completions(struct node* n);
void node__prepare_cb(uv_prepare_t* p);
void node__sweep_cb(uv_timer_t* t);
void node__sweep_now(struct node* n);

/* node_apply.c */
void node__apply_committed(struct node* n,
                           const struct raft_entry* es,
                           unsigned count);

/* node_snapshot.c */
/* A line in n's log (node.c). */
void node__log(const struct node* n, int level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
void node__waiters_after_install(struct node* n);
/* Answer w from the store's dedup table if it knows what became of w's
 * (origin, seq): its result, or EIO when its fence won. tree: for a result
 * the table does not keep, answer success when the live tree shows the
 * effect (right after an image install only). Returns whether w was
 * answered (it is then gone). */
bool node__answer_from_table(struct node* n, struct waiter* w, bool tree);
void node__install_snapshot(struct node* n, const struct raft_update* u);
void node__io_done_cb(uv_async_t* a);
bool node__db_compact_busy(struct node* n);

#endif /* QFS_NODE_STATE_INTERNAL_H */
