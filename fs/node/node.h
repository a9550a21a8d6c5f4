/* node.h - one quorumfs node: the libuv loop that owns the raft core, the
 * on-disk log, the store and (for clusters) the peer transport.
 *
 * Threads: every function here runs on the loop thread. Disk work (log
 * append + fdatasync, db frame writes) runs on the node's I/O thread and
 * reports back through a uv_async; the caller never blocks.
 *
 * The write path (DESIGN §3): node_propose() encodes the command and steps it
 * into raft (a follower's core forwards it to the leader). When the entry is
 * committed, persisted and applied here, cb runs with the store's result.
 * If it is not applied within the proposal timeout, the node fences it (a
 * STORE_OP_CANCEL of the same (origin, seq): whichever is applied first
 * wins) and cb runs with the proposal's result if it won, -EIO if the
 * cancel won (never applied), or -EIO when neither is applied within the
 * fence's wait (outcome unknown: applied at most once, later or never).
 */
#ifndef QFS_NODE_H
#define QFS_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../../raft/raft.h"
#include "../../store/store.h"

struct tls_config; /* raft/tls.h */

struct node;

struct node_peer {
    char name[RAFT_NAME_MAX];
    char addr[RAFT_ADDR_MAX];
};

/* Defaults that bound a node's memory in bytes (docs/operations.md,
 * "Memory"): live values are held in memory, so the quota bounds them. */
#define NODE_QUOTA_BYTES_DEFAULT ((uint64_t)32 << 20)
#define NODE_SNAPSHOT_BYTES_DEFAULT ((uint64_t)16 << 20)
#define NODE_FRAME_CACHE_BYTES_DEFAULT ((uint64_t)16 << 20)

struct node_options {
    const char* data_dir;
    const char* name;            /* default "default" */
    const char* listen_peer;     /* NULL: single node, no transport */
    struct tls_config* peer_tls; /* borrowed; NULL: peers in the clear
                                    (--peer-insecure) */
    unsigned n_initial;          /* --initial-cluster members */
    struct node_peer initial[RAFT_SERVERS_MAX];
    bool cluster_existing;        /* --initial-cluster-state existing */
    uint64_t cluster_id;          /* --cluster-id (0: none given) */
    unsigned catch_up_timeout_ms; /* start-up wait for the cluster's commit
                                     (default 30000) */
    bool mount_stale;             /* mount local state if that wait fails */
    unsigned heartbeat_ms;        /* default 100 */
    unsigned election_ms;         /* default 1000 */
    unsigned proposal_timeout_ms; /* default 5 * election_ms */
    uint64_t snapshot_entries;    /* compact the log every N applied */
    uint64_t snapshot_bytes;      /* and when its applied entries hold this
                                     many bytes; keeps a quarter of it, all of
                                     it for followers (default 16 MiB, 0: no
                                     byte limit) */
    uint64_t history_bytes;       /* history kept, in bytes of commands
                                     applied (fs/cli/ctl.c); default 512 MiB,
                                     0: no limit */
    uint64_t history_revisions;   /* store history kept (revisions); the
                                     leader proposes STORE_OP_COMPACT past
                                     it (fs/cli/ctl.c); default 10000, 0: off */
    uint64_t history_hours;       /* and history younger than this; def 24 */
    struct store_options store;
    store_change_cb on_change; /* every applied change (invalidation);
                                  a change with ino == 0 and
                                  parent == 0 means the whole tree was
                                  replaced (snapshot installed) */
    void* on_change_data;
    int log_level;     /* RAFT_TRACE_*: this node's lines below it dropped */
    int log_fd;        /* this node's sink (default STDERR_FILENO); borrowed,
                          open until node_stop's callback */
    int log_tee_fd;    /* -1 (default), or a second sink for lines at */
    int log_tee_level; /* log_tee_level or above (node_log_tee) */
    /* The watch ring (node_watch.h): events and bytes kept (defaults
     * WATCH_RING_EVENTS_DEFAULT, WATCH_RING_BYTES_DEFAULT). */
    uint64_t watch_events;
    uint64_t watch_bytes;
};
void node_options_default(struct node_options* o);

/* Open the data dir (lock, log, db), replay, and start the core and the
 * transport on loop. Errors: -EBUSY (data dir locked by another process),
 * -EINVAL with a message logged (name not in the cluster, cluster id
 * mismatch), or an errno from disk. */
int node_start(uv_loop_t* loop,
               const struct node_options* o,
               struct node** out);
/* Fail pending proposals with -ESHUTDOWN, flush and sync the log and the
 * db, close handles; cb runs when everything is closed (then n is freed). */
void node_stop(struct node* n, void (*cb)(void* data), void* data);

/* A line in n's own log: its level (options.log_level) and sink
 * (options.log_fd); for the layers that serve this node (fs/fuse). Two
 * nodes of one process log each to its own sink. Any thread. */
void node_log(struct node* n, int level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* n's lines at min_level or above also go to fd from now on (fd -1: no
 * more). The fd is the caller's; it must stay open (e.g. /dev/null dup2'ed
 * over it) for as long as another thread may log. Loop thread. */
void node_log_tee(struct node* n, int fd, int min_level);

typedef void (*node_done_cb)(void* data, const struct store_result* res);

/* Propose a command. Fills c->origin, c->seq and c->now_ns. cb runs exactly
 * once (later, never from inside this call) unless an error is returned:
 * -ENAMETOOLONG / -EFBIG / -EINVAL for a command that breaks a limit,
 * -EROFS when the store has a sticky I/O error. */
int node_propose(struct node* n,
                 struct store_cmd* c,
                 node_done_cb cb,
                 void* data);

/* Linearizable read barrier (ReadIndex): cb(data, 0) once the local store
 * has applied everything committed before this call, or cb(data, -EIO)
 * after the proposal timeout. Runs cb exactly once, never inside the call. */
typedef void (*node_read_cb)(void* data, int err);
int node_read_barrier(struct node* n, node_read_cb cb, void* data);

/* The start-up barrier: as node_read_barrier, but it waits up to
 * catch_up_timeout_ms (the proposal timeout when the node bootstraps a new
 * cluster) and asks the leader again every election timeout
 * until it has an answer (a forwarded request can be lost while the
 * connections come up). */
int node_startup_barrier(struct node* n, node_read_cb cb, void* data);
/* Whether this node may be behind a cluster it can learn about: a member of
 * a multi-node cluster, unless it bootstraps a brand-new one (`new`, empty
 * data dir). Such a node must not mount its local state when the start-up
 * barrier fails (unless mount_stale). */
bool node_startup_needs_cluster(const struct node* n);

struct store* node_store(struct node* n);

/* Hand leadership to the member named `to` (NULL or "": the most
 * up-to-date voter) with TimeoutNow (thesis 3.10); on a follower the
 * leader is asked to (RAFT_MSG_TRANSFER). Returns 0 once the transfer
 * started or was asked for (it completes within an election timeout, or
 * is abandoned: watch the leader), -EAGAIN when no leader is known,
 * -EINVAL when `to` is not a voter of the configuration (known on the
 * leader only; a follower's request is then dropped there), -ENOENT for
 * an unknown name. */
int node_transfer_leadership(struct node* n, const char* to);

/* Snapshots (snapshot/snapshot.h). A store image of the applied state
 * (store_image_build: *image malloc'd, caller frees) and the membership as
 * of the same applied index, for `quorumfs snapshot save`. */
int node_snapshot_image(struct node* n,
                        void** image,
                        size_t* len,
                        struct raft_conf* conf);
/* Rewrite the db file without the history before the store's compact
 * revision (store_compact.h) when it is needed: begin now, the rewrite on
 * the libuv thread pool, the switch-over on the loop. 0: started;
 * -EALREADY: nothing to do; -EBUSY: one is running (or stopping); -EAGAIN:
 * records not durable yet (retry); other errors from the store. */
int node_compact_db(struct node* n);
struct watch_ring;
/* The watch ring of this node (node_watch.h; borrowed, NULL before the
 * node started), and the one listener told (on the loop) after each batch
 * of applied entries that added events to it; cb NULL: none. */
struct watch_ring* node_watch_ring(struct node* n);
void node_set_watch_listener(struct node* n, void (*cb)(void*), void* data);
/* The options the node runs with (borrowed). */
const struct node_options* node_options_of(struct node* n);
/* Whether this node is the leader now (retention proposes COMPACT there
 * only). */
bool node_is_leader(struct node* n);
/* Whether the proposals waiting here, plus `extra` bytes held by the
 * caller for writes not proposed yet, reach NODE_PENDING_BYTES_MAX: the
 * mount then stops reading requests until they drain (memory bound). */
bool node_backlog_full(const struct node* n, uint64_t extra);
/* Bytes of the raft entries this node applied since it started, and the
 * i-th oldest of the samples (revision, bytes applied after it) taken as
 * they grow by history_bytes / 64 (false past the last): history retention
 * by bytes (node_retention.c). */
uint64_t node_applied_bytes(const struct node* n);
bool node_history_sample(const struct node* n,
                         size_t i,
                         uint64_t* revision,
                         uint64_t* bytes);

/* History retention (node_retention.c, docs/snapshots.md): on the leader,
 * compactions that keep the history within history_revisions,
 * history_hours and history_bytes; on every node, the db file rewritten
 * when the compact revision moved. Started by the node's owner once the
 * node runs (NULL: out of memory); closed before node_stop (memory is
 * freed once its timer has closed and its proposal, if any, answered). */
enum {
    NODE_RETENTION_TICK_MS = 1000,   /* db rewrite check (node_compact_db) */
    NODE_RETENTION_CHECK_MS = 5000,  /* retention check period */
    NODE_RETENTION_SAMPLES = 17280,  /* (time, revision) samples kept */
    NODE_COMPACT_GAP_MIN_MS = 60000, /* between two automatic compactions */
};
struct node_retention;
struct node_retention* node_retention_start(uv_loop_t* loop, struct node* n);
void node_retention_close(struct node_retention* r);

/* Seeding a data dir (node_seed.c, `quorumfs snapshot restore`): a new
 * data dir DIR for member `name` of the cluster `cluster` (an
 * --initial-cluster list; NULL: a single node) from a store image whose
 * applied index is applied_index: the identity file (a new random cluster
 * id made by the list's first member, 0 for the others), the db file with
 * the image installed, and a raft log that starts after applied_index
 * (term 1, the new membership). DIR must not exist or be empty; missing
 * parents are created. Built in DIR.tmp and renamed: DIR appears complete
 * or not at all. 0 with *conf set; else a negative errno and *step names
 * what failed: "--initial-cluster" (-EINVAL), "target" (-ENOTEMPTY,
 * -ENOTDIR...), "parents", "tmp" (-EEXIST: left by an interrupted
 * restore), "identity", "db", "raft log", "fsync", "rename" (DIR.tmp is
 * removed). */
int node_seed_data_dir(const char* dir,
                       const char* name,
                       const char* cluster,
                       const void* img,
                       size_t len,
                       raft_index applied_index,
                       struct raft_conf* conf,
                       const char** step);

/* Text for /.cluster/ files and the control socket, into a malloc'd buffer
 * (*out, *len). JSON fields per DESIGN §7. */
int node_status_json(struct node* n, char** out, size_t* len);
/* Fields the mount adds to the status (the FUSE nodeid table): cb writes
 * them into buf (NUL-terminated, at most cap bytes) as JSON members
 * (`"a": 1, "b": 2`, json) or as text lines; NULL removes it. */
typedef void (*node_status_extra_cb)(void* data,
                                     bool json,
                                     char* buf,
                                     size_t cap);
void node_set_status_extra(struct node* n, node_status_extra_cb cb, void* data);
int node_status_text(struct node* n, char** out, size_t* len);
/* `quorumfs endpoint health`: this node's view of every member, for the
 * client to format (tab-separated lines; see node_status.c). */
int node_health_text(struct node* n, char** out, size_t* len);
int node_members_text(struct node* n, char** out, size_t* len);
/* `quorumfs member list`: every member with its id, address, role, whether
 * it leads, whether it is reachable and its match index (known on the
 * leader; this node's own last index; null otherwise), as JSON or as a
 * table for people. */
int node_member_list(struct node* n, bool json, char** out, size_t* len);

/* Membership changes (RAFT_CONF_ADD_LEARNER | PROMOTE | REMOVE) from any
 * node: the leader appends the change, a follower's core forwards it to
 * the leader. cb runs once, never inside the call: 0 once this node sees
 * the new configuration committed; a RAFT_E* code when the leader refused
 * it (RAFT_EBEHIND: the learner is behind; RAFT_ECONFBUSY: another change
 * is not committed yet); -ETIMEDOUT when neither happened within the
 * proposal timeout (the change may still take effect); -ESHUTDOWN. Errors
 * returned at once (cb does not run): -EEXIST (a member has that name),
 * -EADDRINUSE (or that address), -ENOENT (no member of that name),
 * -EALREADY (already a voter), -EPERM (removing this node from a node that
 * is not the leader: it would not learn the outcome), -ENOSPC (no room),
 * -ENAMETOOLONG, -EAGAIN (too many changes waiting), -EOPNOTSUPP (add on
 * a node that runs without a peer listener), -EDESTADDRREQ (a member has
 * no peer address in the configuration), or a RAFT_E* code
 * from the core (RAFT_ENOTLEADER: no leader known). */
/* RAFT_CONF_SET_ADDR gives member `name` the peer address addr (the
 * node must have a peer listener: -EOPNOTSUPP; -EALREADY when it has that
 * address, -EADDRINUSE when another member has it). */
typedef void (*node_conf_cb)(void* data, int err);
int node_conf_change(struct node* n,
                     uint8_t op,
                     const char* name,
                     const char* addr,
                     node_conf_cb cb,
                     void* data);
/* Start the peer listener of a node that runs without one (started with
 * no --listen-peer: `quorumfs member update`), on addr, with tls (NULL:
 * peers in the clear, --peer-insecure). On success the node owns tls
 * (freed once its transport has closed). -EALREADY when it listens on
 * addr already, -EEXIST when on another address, -ESHUTDOWN, or an errno
 * of transport_start (-EADDRINUSE, -EADDRNOTAVAIL...): tls stays the
 * caller's. */
int node_peer_listen(struct node* n, const char* addr, struct tls_config* tls);
/* The address the peer listener listens on; NULL when it has none. */
const char* node_peer_addr(const struct node* n);
int node_leader_text(struct node* n, char** out, size_t* len);
/* This node's role ("leader", "follower", "candidate", "learner") and the
 * leader's name (NULL when none is known), as `quorumfs status` shows
 * them; borrowed, valid until the next loop iteration (systemd's STATUS=
 * line, fs/cli/sdnotify.c). */
const char* node_role_name(struct node* n);
const char* node_leader_name(struct node* n);

#endif /* QFS_NODE_H */
