/* raft.h - a pure, deterministic Raft consensus core (no I/O, no clock).
 *
 * The core follows the Raft paper and Ongaro's thesis (2014). It never
 * performs I/O, never reads a clock and never calls rand(): time comes in
 * with every event (`now_ms`), randomness from `raft_options.seed`.
 *
 * Driving it:
 *
 *   raft_init()            once, then raft_restore() with what the disk holds
 *                          (or raft_bootstrap() for a brand-new cluster).
 *   raft_step(r, &ev, &u)  for every event; `u` is the one update out.
 *
 * Contract for an update (the order is the safety argument, thesis 3.8):
 *   1. persist: if u.truncate_from != 0, drop log entries >= truncate_from;
 *      append u.entries[0..n_entries); write u.hard_state if
 * u.hard_state_changed. If u.snapshot_install is set, install the snapshot
 * image (store and log) BEFORE appending entries, then report
 * RAFT_EV_SNAPSHOT_INSTALLED.
 *   2. after that is durable: send u.msgs[0..n_msgs) (those for which
 *      raft_msg_sendable_early() is true may go before), then report
 *      RAFT_EV_PERSISTED with u.persist_index / u.persist_term (only when
 *      u.n_entries > 0; hard state alone needs no event).
 *   3. apply u.committed[0..n_committed) in order (they are always entries
 *      this node has reported persisted).
 *   4. serve u.reads (each read may be served once the state machine has
 *      applied at least reads[i].index), fail u.failed_proposals and
 *      u.failed_reads with their error codes.
 *   5. call raft_step(RAFT_EV_TICK) at u.next_timeout_ms at the latest.
 * Steps 1-2 may be asynchronous (group commit): the caller may keep stepping
 * other events while a persist is in flight, as long as the updates are
 * persisted in the order they were produced and each update's messages are
 * sent only after its own persist (and all earlier ones) completed.
 *
 * Ownership: every pointer in an update is borrowed from the core and valid
 * until the next call of any raft_* function on the same `struct raft`.
 * Event payloads are borrowed from the caller for the duration of raft_step;
 * the core copies what it keeps.
 *
 * Errors: 0 or a negative code; the core's own codes are in the RAFT_E*
 * range below (see raft_strerror). Programmer errors are assertions.
 */
#ifndef QFS_RAFT_H
#define QFS_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id; /* node id, never 0 */
typedef uint64_t raft_index;
typedef uint64_t raft_term;

/* Limits (named maxima, STYLE: a limit on everything). */
enum {
    RAFT_SERVERS_MAX = 9,             /* voters + learners in a configuration */
    RAFT_NAME_MAX = 32,               /* incl. NUL */
    RAFT_ADDR_MAX = 64,               /* "host:port", incl. NUL */
    RAFT_ENTRY_DATA_MAX = 4u << 20,   /* one entry's payload */
    RAFT_APPEND_ENTRIES_MAX = 512,    /* entries in one append message */
    RAFT_APPEND_BYTES_MAX = 1u << 20, /* payload bytes in one append msg */
    RAFT_INFLIGHT_MAX = 64,           /* pipelined appends per follower */
    RAFT_INFLIGHT_BYTES_DEFAULT = 8u << 20, /* their entry bytes, default */
    RAFT_SNAPSHOT_CHUNK = 256u << 10,       /* bytes per snapshot chunk */
    RAFT_SNAPSHOT_BYTES_MAX = 1u << 30,
    /* A leader stops sending an image to a follower silent for this many
     * election timeouts (and stops wanting one for it). */
    RAFT_SNAPSHOT_ABANDON_TIMEOUTS = 10,
    RAFT_PROPOSE_BATCH_MAX = 256, /* proposals in one forward message */
    RAFT_READS_MAX = 4096,        /* pending ReadIndex requests */
};

/* Error codes: a reserved range below -1000, one table in raft_strerror. */
#define RAFT_ERRORS(X)                                                         \
    X(RAFT_ENOTLEADER, -1001, "not the leader and no leader known")            \
    X(RAFT_ETRANSFER, -1002, "leadership transfer in progress")                \
    X(RAFT_ECONFBUSY, -1003, "a configuration change is already in flight")    \
    X(RAFT_ELEADERLOST, -1004, "leadership lost before the request completed") \
    X(RAFT_ETOOBIG, -1005, "entry larger than RAFT_ENTRY_DATA_MAX")            \
    X(RAFT_EBADCONF, -1006, "invalid configuration change")                    \
    X(RAFT_EBUSY, -1007, "too many pending requests")                          \
    X(RAFT_EMALFORMED, -1008, "malformed message or entry")                    \
    X(RAFT_ECOMPACTED, -1009, "index is compacted")                            \
    X(RAFT_EVERSION, -1010, "unsupported format version")                      \
    X(RAFT_ENOMEM, -1011, "out of memory")                                     \
    X(RAFT_EBEHIND, -1012, "the learner is behind or silent")

enum raft_error {
/* name is an enumerator: it cannot be parenthesized. */
/* NOLINTNEXTLINE(bugprone-macro-parentheses) */
#define RAFT__ERR_ENUM(name, code, msg) name = code,
    RAFT_ERRORS(RAFT__ERR_ENUM)
#undef RAFT__ERR_ENUM
};

/* Name and message of a RAFT_E* code, or strerror(-code) for an errno. */
const char* raft_strerror(int code);
const char* raft_errname(int code);

enum raft_role {
    RAFT_FOLLOWER = 1,
    RAFT_PRECANDIDATE = 2,
    RAFT_CANDIDATE = 3,
    RAFT_LEADER = 4,
};
const char* raft_role_name(int role);

/* ---- log entries and configurations ---- */

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1, /* application command */
    RAFT_ENTRY_NOOP = 2,   /* appended by a new leader (thesis 6.4) */
    RAFT_ENTRY_CONF = 3,   /* data = raft_conf_encode() of the new config */
};

struct raft_buf {
    const void* base;
    size_t len;
};

struct raft_entry {
    raft_term term;
    raft_index index;
    uint8_t type;
    struct raft_buf data;
};

enum raft_server_role {
    RAFT_VOTER = 1,
    RAFT_LEARNER = 2, /* receives the log, does not vote or count to quorum */
};

struct raft_server {
    raft_id id;
    uint8_t role; /* enum raft_server_role */
    char name[RAFT_NAME_MAX];
    char addr[RAFT_ADDR_MAX];
};

struct raft_conf {
    unsigned n;
    struct raft_server servers[RAFT_SERVERS_MAX];
};

/* Encoded size of a configuration (bytes) and codec. The encoding is
 * versioned and bound-checked; decode returns RAFT_EMALFORMED/RAFT_EVERSION on
 * bad input and never reads past len. encode returns the bytes written or
 * -ENOSPC if cap is too small. */
size_t raft_conf_encoded_size(const struct raft_conf* c);
int raft_conf_encode(const struct raft_conf* c, void* buf, size_t cap);
int raft_conf_decode(struct raft_conf* c, const void* buf, size_t len);
const struct raft_server* raft_conf_get(const struct raft_conf* c, raft_id id);
unsigned raft_conf_voters(const struct raft_conf* c);

/* Persistent state (thesis Figure 3.1): written before messages go out. */
struct raft_hard_state {
    raft_term term;
    raft_id vote;      /* 0: none in this term */
    raft_index commit; /* may lag; recovered conservatively */
};

/* Describes a snapshot image: the state machine after applying `index`. */
struct raft_snapshot_meta {
    raft_index index;
    raft_term term;
    raft_index conf_index; /* index of the entry that produced `conf` */
    struct raft_conf conf;
};

/* ---- messages ---- */

enum raft_msg_type {
    RAFT_MSG_APPEND = 1, /* AppendEntries; heartbeat when n_entries == 0 */
    RAFT_MSG_APPEND_RESP = 2,
    RAFT_MSG_VOTE = 3,
    RAFT_MSG_VOTE_RESP = 4,
    RAFT_MSG_PREVOTE = 5, /* term = the term the sender would campaign in */
    RAFT_MSG_PREVOTE_RESP = 6,
    RAFT_MSG_SNAPSHOT = 7, /* one InstallSnapshot chunk */
    RAFT_MSG_SNAPSHOT_RESP = 8,
    RAFT_MSG_TIMEOUT_NOW = 9,   /* leadership transfer: campaign now */
    RAFT_MSG_PROPOSE = 10,      /* follower forwards proposals to the leader */
    RAFT_MSG_PROPOSE_RESP = 11, /* leader refuses forwarded proposals */
    RAFT_MSG_READ_INDEX = 12,   /* follower asks the leader for a read index */
    RAFT_MSG_READ_INDEX_RESP = 13,
    RAFT_MSG_TRANSFER = 14, /* a member asks the leader for a transfer */
    RAFT_MSG_TYPE_MAX = 14,
};
const char* raft_msg_type_name(int type);

struct raft_msg_append {
    raft_index prev_index;
    raft_term prev_term;
    raft_index commit;
    uint64_t read_seq;  /* ReadIndex round this message confirms (0: none) */
    unsigned n_entries; /* <= RAFT_APPEND_ENTRIES_MAX */
    const struct raft_entry* entries;
};

struct raft_msg_append_resp {
    bool reject;
    raft_index index;          /* accepted: last index matched; reject: the
                                  prev_index that was rejected */
    raft_index last_index;     /* follower's last log index */
    raft_term conflict_term;   /* reject: term at prev_index (0: no entry) */
    raft_index conflict_index; /* reject: first index of conflict_term, or
                                  last_index + 1 when the log is short */
    uint64_t read_seq;         /* echo of the append's read_seq */
};

struct raft_msg_vote {
    raft_index last_index;
    raft_term last_term;
    bool transfer; /* campaign caused by TimeoutNow: ignore leader lease */
};

struct raft_msg_vote_resp {
    bool granted;
};

struct raft_msg_snapshot {
    struct raft_snapshot_meta meta;
    uint64_t total;        /* image size in bytes */
    uint64_t offset;       /* of this chunk */
    struct raft_buf chunk; /* <= RAFT_SNAPSHOT_CHUNK */
};

struct raft_msg_snapshot_resp {
    raft_index index;     /* snapshot index this answers */
    uint64_t next_offset; /* bytes received so far (resume point) */
    bool done;            /* whole image received and installed */
    bool reject;          /* stale term or unusable: leader restarts at 0 */
};

struct raft_proposal {
    uint64_t ctx; /* caller's tag, echoed in failures; not replicated */
    uint8_t type; /* RAFT_ENTRY_NORMAL */
    struct raft_buf data;
};

struct raft_msg_propose {
    unsigned n; /* <= RAFT_PROPOSE_BATCH_MAX */
    const struct raft_proposal* props;
};

struct raft_msg_propose_resp {
    int err; /* why the leader refused */
    unsigned n;
    const uint64_t* ctxs;
};

struct raft_msg_read_index {
    uint64_t ctx;
};

struct raft_msg_read_index_resp {
    uint64_t ctx;
    raft_index index; /* valid when err == 0 */
    int err;
};

/* RAFT_EV_TRANSFER stepped on a follower, sent to the leader, which
 * starts the transfer (no answer: the asker sees the leader change). */
struct raft_msg_transfer {
    raft_id to; /* 0: the most up-to-date voter */
};

struct raft_message {
    uint8_t type; /* enum raft_msg_type */
    raft_id from;
    raft_id to;
    raft_term term;
    union {
        struct raft_msg_append append;
        struct raft_msg_append_resp append_resp;
        struct raft_msg_vote vote; /* VOTE and PREVOTE */
        struct raft_msg_vote_resp vote_resp;
        struct raft_msg_snapshot snapshot;
        struct raft_msg_snapshot_resp snapshot_resp;
        struct raft_msg_propose propose;
        struct raft_msg_propose_resp propose_resp;
        struct raft_msg_read_index read_index;
        struct raft_msg_read_index_resp read_index_resp;
        struct raft_msg_transfer transfer;
    };
};

/* Whether m may be sent before the update that produced it is durable: a
 * leader's appends and snapshot chunks (the leader counts itself only at
 * its persisted index: thesis 10.2.1), forwarded proposals and reads, their
 * answers, and TimeoutNow. The others (append and snapshot
 * acknowledgements, votes and vote requests) vouch for persisted state and
 * must wait for the persist (step 2 of the update contract). */
bool raft_msg_sendable_early(const struct raft_message* m);

/* Whether m, a message of update u that r just returned, may be sent before
 * u (and the persists in flight before it) are durable: the messages of
 * raft_msg_sendable_early(), and an accepted append answer that vouches
 * only for entries this node has already reported persisted (its index is
 * at most the persisted index) from an update that changes neither the
 * hard state nor the log. That is a follower answering a heartbeat while
 * its disk is busy: the leader's CheckQuorum and ReadIndex wait for those
 * answers, and holding them behind an unrelated fsync can cost a
 * leadership when the disk stalls. Callers use this instead of
 * raft_msg_sendable_early() both to send early and to leave the message
 * out of the persist. */
struct raft;
struct raft_update;
bool raft_msg_sendable_now(const struct raft* r,
                           const struct raft_update* u,
                           const struct raft_message* m);

/* ---- events in ---- */

enum raft_event_type {
    RAFT_EV_TICK = 1,       /* time passed; no payload */
    RAFT_EV_RECEIVE = 2,    /* a message arrived from a peer */
    RAFT_EV_PERSISTED = 3,  /* entries up to (index, term) are durable */
    RAFT_EV_PROPOSE = 4,    /* propose commands (leader appends, follower
                               forwards, otherwise refused synchronously) */
    RAFT_EV_READ_INDEX = 5, /* ask for a linearizable read point */
    RAFT_EV_CONF_CHANGE = 6,
    RAFT_EV_TRANSFER = 7, /* transfer leadership to `transfer.to` (0: best) */
    RAFT_EV_SNAPSHOT_INSTALLED = 8, /* the image from u.snapshot_install is in
                                       place (store replaced, log reset) */
    RAFT_EV_COMPACT = 9,         /* the app took a snapshot image at an applied
                                    index: the log before it may be dropped */
    RAFT_EV_PEER_RESTARTED = 10, /* the transport saw peer.id restart (a
                                    new incarnation in its handshake): a
                                    leader probes it again from its match,
                                    so a log it lost is found at once */
};

enum raft_conf_op {
    RAFT_CONF_ADD_LEARNER = 1,
    RAFT_CONF_PROMOTE = 2,  /* learner -> voter (RAFT_EBEHIND until it has
                               answered within an election timeout and is
                               at most RAFT_APPEND_ENTRIES_MAX behind) */
    RAFT_CONF_REMOVE = 3,   /* voter or learner; may remove the leader */
    RAFT_CONF_SET_ADDR = 4, /* a member's peer address becomes server.addr
                               (a non-empty one); role and membership stay:
                               a single node that starts its peer listener
                               records where the others reach it */
};

struct raft_event {
    uint8_t type;    /* enum raft_event_type */
    uint64_t now_ms; /* monotonic; must never go backwards */
    union {
        const struct raft_message* msg; /* RECEIVE */
        struct {
            raft_index index;
            raft_term term;
        } persisted;
        struct {
            unsigned n;
            const struct raft_proposal* props;
        } propose;
        struct {
            uint64_t ctx;
        } read;
        struct {
            uint8_t op;                /* enum raft_conf_op */
            struct raft_server server; /* id (+ name/addr for ADD_LEARNER,
                                          addr for SET_ADDR) */
            uint64_t ctx; /* a follower forwards the change to the leader
                             (RAFT_MSG_PROPOSE, one proposal of type
                             RAFT_ENTRY_CONF); the leader's refusal comes
                             back as a failed proposal with this ctx */
        } conf;
        struct {
            raft_id to;
        } transfer;
        struct {
            raft_id id;
        } peer; /* PEER_RESTARTED */
        struct {
            struct raft_snapshot_meta meta;
        } installed;
        struct {
            /* Image of the state machine right after applying meta.index
             * (<= the core's applied index). Borrowed: the caller keeps
             * `image` alive and unchanged until the next RAFT_EV_COMPACT or
             * raft_close(); the core streams it to followers that need it. */
            struct raft_snapshot_meta meta;
            struct raft_buf image;
            raft_index keep_from; /* keep entries >= keep_from in the log
                                     (lets slow followers catch up from the
                                     log); 0 = meta.index + 1 */
        } compact;
    };
};

/* ---- the update out ---- */

struct raft_read {
    uint64_t ctx;
    raft_index index; /* serve once applied >= index */
};

struct raft_failure {
    uint64_t ctx;
    int err; /* RAFT_E* */
};

struct raft_update {
    /* 1. persist */
    raft_index truncate_from; /* 0: nothing to truncate */
    unsigned n_entries;
    const struct raft_entry* entries;
    raft_index persist_index; /* last of entries (valid if n_entries) */
    raft_term persist_term;
    bool hard_state_changed;
    struct raft_hard_state hard_state;
    /* A complete snapshot image received from the leader: install it (it
     * replaces the state machine and the whole log), then report
     * RAFT_EV_SNAPSHOT_INSTALLED. Borrowed until that event. */
    bool snapshot_install;
    struct raft_snapshot_meta snapshot_meta;
    struct raft_buf snapshot_image;

    /* 2. send (after 1 is durable) */
    unsigned n_msgs;
    const struct raft_message* msgs;

    /* 3. apply, in order */
    unsigned n_committed;
    const struct raft_entry* committed;

    /* 4. results */
    unsigned n_reads;
    const struct raft_read* reads;
    unsigned n_failed_reads;
    const struct raft_failure* failed_reads;
    unsigned n_failed_proposals;
    const struct raft_failure* failed_proposals;

    /* Informational. */
    bool role_changed;        /* role, leader or term changed in this step */
    bool conf_changed;        /* raft_conf_current() changed (appended or
                                 rolled back) */
    uint64_t next_timeout_ms; /* call RAFT_EV_TICK at this time */
};

/* ---- lifecycle ---- */

enum raft_trace_level {
    RAFT_TRACE_DEBUG = 0,
    RAFT_TRACE_INFO = 1,
    RAFT_TRACE_WARN = 2,
    RAFT_TRACE_ERROR = 3
};

struct raft_tracer {
    void* data;
    void (*emit)(void* data, int level, raft_id node, const char* msg);
    int level; /* minimum level emitted */
};

struct raft_options {
    raft_id id;
    uint64_t seed;         /* election timeout randomization */
    unsigned heartbeat_ms; /* default 100 */
    unsigned election_ms;  /* base; actual in [base, 2*base), def 1000 */
    bool pre_vote;         /* default true */
    bool check_quorum;     /* default true */
    unsigned inflight_max; /* <= RAFT_INFLIGHT_MAX, default 64 */
    /* Entry bytes in flight per follower: no new append while the ones not
     * yet acknowledged hold this many (one is always allowed); 0 = no
     * limit. Default RAFT_INFLIGHT_BYTES_DEFAULT (8 MiB). */
    uint64_t inflight_bytes_max;
    struct raft_tracer tracer; /* emit may be NULL */
    /* This node's storage is new but its cluster is not: it may have voted
     * before it lost its disk, and acknowledged entries it no longer has.
     * It first learns a term at least as high as the one it had (a term
     * query to the other voters; it answers no leader until enough have
     * answered). Until it has caught up with a leader (accepted an append
     * whose commit index its log reaches) it grants no vote or pre-vote,
     * does not campaign and ignores TimeoutNow; it records the leader it
     * learns a term from as its vote in that term (docs/raft.md, "A node
     * that lost its storage"). */
    bool catch_up_first;
    /* Testing only: plant a known safety bug so the checker can be shown to
     * catch it (commit an old-term entry by counting replicas, Figure 8). */
    bool bug_commit_old_term;
};

/* Fill defaults; id must be set by the caller afterwards. */
void raft_options_default(struct raft_options* o);

struct raft; /* opaque */

/* Allocate a core. Returns NULL on allocation failure. */
struct raft* raft_new(const struct raft_options* o);
void raft_free(struct raft* r);

/* Load persistent state from disk before the first raft_step: the hard state,
 * the last snapshot's meta (index 0 if none) and the entries after it
 * (contiguous from snap->index + 1). Copies everything. The configuration is
 * the latest CONF entry in `entries`, else snap->conf. */
int raft_restore(struct raft* r,
                 const struct raft_hard_state* hs,
                 const struct raft_snapshot_meta* snap,
                 const struct raft_entry* entries,
                 unsigned n_entries,
                 uint64_t now_ms);

/* Start a brand-new cluster: as raft_restore of an empty disk whose initial
 * configuration is `conf` (index 0 snapshot meta with term 0). Every member
 * of a new cluster bootstraps with the same conf. A single-voter conf elects
 * itself at the first tick. */
int raft_bootstrap(struct raft* r,
                   const struct raft_conf* conf,
                   uint64_t now_ms);

/* Feed one event; fills *u (see the contract above). Returns 0, or a RAFT_E*
 * code for an event refused synchronously (PROPOSE with no leader known,
 * during a transfer, or too big; CONF_CHANGE when busy/invalid, or not the
 * leader and no leader known (a follower forwards it: the leader's refusal
 * is a failed proposal, its acceptance a CONF entry in the log; PROMOTE of a
 * learner that is behind: RAFT_EBEHIND);
 * TRANSFER when not leader). On error *u is still valid and must be
 * processed (it may carry messages produced before the refusal). */
int raft_step(struct raft* r,
              const struct raft_event* ev,
              struct raft_update* u);

/* ---- queries (cheap, no side effects) ---- */
int raft_role(const struct raft* r);
raft_id raft_id_self(const struct raft* r);
raft_term raft_current_term(const struct raft* r);
raft_id raft_leader(const struct raft* r); /* 0 when unknown */
raft_index raft_commit_index(const struct raft* r);
/* What the leader has committed as far as this node knows: its own commit
 * index on the leader; on a follower the highest commit index the current
 * leader sent (it may be past this node's log while it catches up); 0
 * when no leader has sent one. For status: how far a follower is behind. */
raft_index raft_leader_commit_index(const struct raft* r);
raft_index raft_applied_index(const struct raft* r); /* emitted to apply */
raft_index raft_last_index(const struct raft* r);
raft_index raft_first_index(const struct raft* r); /* first in memory log */
/* Snapshot images on demand: a leader needs one only while a follower is
 * behind its compacted log. raft_image_wanted: this node is the leader and
 * some peer heard from within an election timeout needs an index the log
 * no longer has, or an image is being sent to some peer (until the
 * transfer ends, the peer leaves the configuration, or it is silent for
 * RAFT_SNAPSHOT_ABANDON_TIMEOUTS election timeouts); give the core one
 * (RAFT_EV_COMPACT with a non-empty image), it streams it. Releasing the
 * image while a transfer runs moves that peer back to probing. raft_image_held:
 * the core holds a non-empty image (given with RAFT_EV_COMPACT, or an installed
 * one it keeps). An image held and not wanted may be released with
 * RAFT_EV_COMPACT and an empty image. */
bool raft_image_wanted(const struct raft* r);
bool raft_image_held(const struct raft* r);
const struct raft_conf* raft_conf_current(const struct raft* r);
/* Index of the entry that produced raft_conf_current() (0: bootstrap). */
raft_index raft_conf_index(const struct raft* r);
/* Whether the core still waits to catch up before it votes
 * (raft_options.catch_up_first). */
bool raft_catching_up(const struct raft* r);
/* Caught up after losing its storage, and a voter by a configuration that
 * existed before it rejoined: it was that voter, so it never votes again
 * under that configuration (catchup.c). The operator replaces it. */
bool raft_lost_vote(const struct raft* r);
/* Leader's view of a peer: match index and whether it answered within the
 * last election timeout. Returns -ENOENT when not leader or unknown id. */
int raft_peer_progress(const struct raft* r,
                       raft_id id,
                       raft_index* match,
                       bool* recent);
/* Leader's view of a peer: milliseconds since it last heard from it, on the
 * core's clock (since it became leader, or since the peer joined the
 * configuration, when it has not heard from it since). Returns -ENOENT
 * when not leader or unknown id; 0 for itself. */
int raft_peer_last_heard(const struct raft* r, raft_id id, uint64_t* ms_ago);

#endif /* QFS_RAFT_H */
