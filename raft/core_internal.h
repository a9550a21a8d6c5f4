/* core_internal.h - the state of one raft core, shared by its .c files.
 *
 * Not a public header: only raft/core.c, election.c, replication.c,
 * readindex.c, membership.c and snapshot.c include it. Cross-file helpers are
 * named raft__verb_noun. Everything here runs inside one raft_step().
 *
 * Pointer lifetime: anything handed out in an update (messages and the
 * arrays they point to, entry data of truncated/compacted entries) stays
 * valid until the next raft_* call, which frees r->garbage first.
 */
#ifndef QFS_RAFT_CORE_INTERNAL_H
#define QFS_RAFT_CORE_INTERNAL_H

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "raft.h"

/* Per-step limits. */
enum {
    RAFT__MSGS_MAX = 16384,        /* messages in one update */
    RAFT__COMMIT_BATCH_MAX = 4096, /* committed entries in one update */
    RAFT__GARBAGE_MAX = 1 << 20,   /* deferred frees in one step */
};

enum raft__progress_state {
    PROGRESS_PROBE = 1,     /* one append in flight, find the match */
    PROGRESS_REPLICATE = 2, /* pipeline up to inflight_max appends */
    PROGRESS_SNAPSHOT = 3,  /* stream the snapshot image */
};

struct raft__progress {
    raft_id id;
    raft_index next;
    raft_index match;
    uint8_t state;
    bool probe_sent;    /* PROBE: an append is outstanding */
    bool recent_active; /* heard from since the last check-quorum round */
    uint64_t last_recv_ms;
    uint64_t read_ack;      /* highest read_seq echoed */
    raft_index sent_commit; /* highest commit sent that it can apply */
    /* Inflight window: last index of each pipelined append, oldest first. */
    raft_index inflight[RAFT_INFLIGHT_MAX];
    uint64_t inflight_len[RAFT_INFLIGHT_MAX]; /* entry bytes of each */
    uint64_t inflight_bytes;                  /* their sum */
    unsigned inflight_start;
    unsigned inflight_count;
    /* SNAPSHOT state. */
    raft_index snap_index; /* image being sent */
    uint64_t snap_offset;  /* next byte to send */
    bool snap_inflight;
    bool snap_last; /* the chunk in flight is the image's last: the peer
                     * may be installing it (answers when installed) */
    uint64_t snap_sent_ms;
    uint64_t snap_start_ms;      /* when this image's transfer began */
    raft_index snap_logged;      /* image whose transfer was last logged */
    raft_index snap_sent_logged; /* image whose arrival was last logged */
};

/* A ReadIndex request queued on the leader. */
struct raft__read {
    raft_id from; /* 0: local */
    uint64_t ctx;
    raft_index index;
    uint64_t seq; /* 0: waiting for a commit in the current term */
};

/* A follower's read forwarded to the leader. */
struct raft__fwd_read {
    uint64_t ctx;
    raft_id leader;
};

struct raft {
    struct raft_options opt;
    uint64_t now_ms;
    uint64_t prng;

    /* Persistent state. */
    raft_term term;
    raft_id vote;
    bool hs_dirty; /* term or vote changed in this step */

    /* Volatile state. */
    int role;
    raft_id leader;
    raft_index commit;
    raft_index leader_commit; /* follower: the highest commit index the
                                 current leader sent (0: none yet) */
    raft_index applied;
    raft_index persisted;
    uint64_t election_deadline_ms;
    uint64_t leader_contact_ms; /* last append/snapshot from the leader */
    bool leader_contact;
    bool catching_up;    /* opt.catch_up_first, until caught up with a leader */
    bool term_known;     /* catching up: enough voters told us their term */
    raft_term term_seen; /* highest term they told */
    raft_id term_answers[RAFT_SERVERS_MAX]; /* who answered */
    unsigned n_term_answers;
    uint64_t term_query_ms; /* ask again at */
    /* Was it a voter before it lost its storage? (catchup.c) */
    raft_index rejoin_commit; /* the commit index it caught up with */
    raft_index voter_from;    /* index of the configuration that made this
                                 node a voter (while it is one) */
    bool lost_vote; /* a voter since before rejoin_commit: never votes */

    /* In-memory log: entries[i] has index first_index + i; data owned. */
    struct raft_entry* entries;
    size_t n_entries;
    size_t cap_entries;
    raft_index first_index;
    raft_term base_term; /* term of first_index - 1 */

    /* Configuration: current (latest appended) and the one in effect at
     * first_index - 1 (for roll back after truncation). */
    struct raft_conf conf;
    raft_index conf_index;
    struct raft_conf base_conf;
    raft_index base_conf_index;

    /* Elections. */
    raft_id votes_granted[RAFT_SERVERS_MAX];
    raft_id votes_rejected[RAFT_SERVERS_MAX];
    unsigned n_granted;
    unsigned n_rejected;

    /* Leader. */
    struct raft__progress progress[RAFT_SERVERS_MAX];
    unsigned n_progress;
    uint64_t heartbeat_deadline_ms;
    uint64_t quorum_deadline_ms;
    raft_id transfer_to;
    uint64_t transfer_deadline_ms;
    bool commit_bcast; /* commit advanced: tell followers at step end */

    /* ReadIndex. */
    uint64_t read_seq;
    bool read_bcast;
    struct raft__read* reads;
    unsigned n_reads;
    struct raft__fwd_read* fwd_reads;
    unsigned n_fwd_reads;

    /* Snapshot image given by RAFT_EV_COMPACT (borrowed from the app). */
    bool have_image;
    struct raft_snapshot_meta image_meta;
    struct raft_buf image;
    void* own_image; /* an installed snapshot we keep serving, or NULL */

    /* Snapshot being received. */
    bool rx_active;
    bool rx_installing;
    raft_id rx_from;
    struct raft_snapshot_meta rx_meta;
    uint8_t* rx_buf;
    uint64_t rx_total;
    uint64_t rx_received;

    /* Update under construction. */
    struct raft_message* msgs;
    unsigned n_msgs;
    unsigned cap_msgs;
    raft_index truncate_from;
    raft_index new_from; /* first index appended in this step (0: none) */
    bool conf_changed;
    struct raft_read* out_reads;
    unsigned n_out_reads;
    struct raft_failure* failed_reads;
    unsigned n_failed_reads;
    struct raft_failure* failed_props;
    unsigned n_failed_props;
    bool snapshot_install;

    /* Deferred frees (see the header comment). */
    void** garbage;
    size_t n_garbage;
    size_t cap_garbage;
};

/* core.c */
void raft__trace(struct raft* r, int level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* For traces: server id's member name in the configuration (the current
 * one, else the base one), else "node " and the id in 16 hex digits; 0 is
 * "none". buf has RAFT__NAME_BUF bytes; RAFT__NAME gives each use a buffer
 * of its own that lives until the end of the enclosing statement's block. */
enum { RAFT__NAME_BUF = 40 };
const char* raft__name(const struct raft* r, raft_id id, char* buf);
#define RAFT__NAME(r, id) raft__name((r), (id), (char[RAFT__NAME_BUF]){0})
void* raft__scratch(struct raft* r, size_t size); /* freed at next call */
void raft__defer_free(struct raft* r, void* p);
struct raft_message* raft__msg(struct raft* r, int type, raft_id to);
raft_index raft__last_index(const struct raft* r);
bool raft__term_at(const struct raft* r, raft_index index, raft_term* term);
const struct raft_entry* raft__entry(const struct raft* r, raft_index index);
int raft__log_append(struct raft* r,
                     raft_term term,
                     uint8_t type,
                     const void* data,
                     size_t len);
void raft__log_truncate(struct raft* r, raft_index from);
void raft__log_reset(struct raft* r, raft_index index, raft_term term);
void raft__reset_election_timer(struct raft* r);
bool raft__is_voter(const struct raft* r, raft_id id);
unsigned raft__quorum(const struct raft* r);
void raft__fail_read(struct raft* r, uint64_t ctx, int err);
void raft__fail_proposal(struct raft* r, uint64_t ctx, int err);
void raft__emit_read(struct raft* r, uint64_t ctx, raft_index index);

/* election.c */
int raft__check_term(struct raft* r, const struct raft_message* m);
void raft__become_follower(struct raft* r, raft_term term, raft_id leader);
void raft__set_leader(struct raft* r, raft_id leader);
void raft__campaign(struct raft* r, bool pre, bool transfer);
void raft__recv_vote(struct raft* r, const struct raft_message* m);
void raft__recv_vote_resp(struct raft* r, const struct raft_message* m);
void raft__recv_timeout_now(struct raft* r, const struct raft_message* m);
void raft__tick_election(struct raft* r);

/* replication.c */
struct raft__progress* raft__progress_get(const struct raft* r, raft_id id);
void raft__progress_reset(struct raft__progress* p,
                          raft_id id,
                          raft_index next);
void raft__send_append(struct raft* r, struct raft__progress* p);
void raft__send_heartbeat(struct raft* r, struct raft__progress* p);
void raft__bcast_append(struct raft* r);
void raft__bcast_heartbeat(struct raft* r);
void raft__recv_append(struct raft* r, const struct raft_message* m);
void raft__recv_append_resp(struct raft* r, const struct raft_message* m);
void raft__maybe_commit(struct raft* r);
void raft__peer_restarted(struct raft* r, raft_id id);
void raft__tick_leader(struct raft* r);

/* readindex.c: reads, proposals, leadership transfer */
int raft__read_index(struct raft* r, uint64_t ctx);
void raft__recv_read_index(struct raft* r, const struct raft_message* m);
void raft__recv_read_index_resp(struct raft* r, const struct raft_message* m);
void raft__recv_transfer(struct raft* r, const struct raft_message* m);
void raft__reads_advance(struct raft* r);
void raft__reads_fail_all(struct raft* r, int err);
void raft__fwd_reads_fail(struct raft* r, raft_id leader, int err);
int raft__propose(struct raft* r,
                  const struct raft_proposal* props,
                  unsigned n);
void raft__recv_propose(struct raft* r, const struct raft_message* m);
void raft__recv_propose_resp(struct raft* r, const struct raft_message* m);
int raft__transfer(struct raft* r, raft_id to);
void raft__transfer_check(struct raft* r, struct raft__progress* p);

/* membership.c */
void raft__conf_apply_entry(struct raft* r, const struct raft_entry* e);
void raft__conf_rollback(struct raft* r, raft_index from);
void raft__conf_compact(struct raft* r, raft_index new_first);
void raft__progress_sync(struct raft* r);
int raft__conf_change(struct raft* r,
                      uint8_t op,
                      const struct raft_server* server,
                      uint64_t ctx);
/* A forwarded change (a RAFT_ENTRY_CONF proposal): 0 or a RAFT_E* code. */
int raft__conf_change_forwarded(struct raft* r, const struct raft_proposal* p);
void raft__conf_check_removed_leader(struct raft* r);

/* catchup.c */
bool raft__catchup_term_known(const struct raft* r);
void raft__catchup_tick(struct raft* r);
void raft__catchup_recv(struct raft* r, const struct raft_message* m);
void raft__rejoin_conf(struct raft* r, bool was_voter, raft_index index);
void raft__rejoin_eval(struct raft* r);

/* snapshot.c */
int raft__compact(struct raft* r,
                  const struct raft_snapshot_meta* meta,
                  struct raft_buf image,
                  raft_index keep_from);
void raft__send_snapshot(struct raft* r, struct raft__progress* p);
/* Back to PROBE at `next` (an abandoned or image-less snapshot). */
void raft__progress_probe(struct raft__progress* p, raft_index next);
void raft__recv_snapshot(struct raft* r, const struct raft_message* m);
void raft__recv_snapshot_resp(struct raft* r, const struct raft_message* m);
int raft__snapshot_installed(struct raft* r,
                             const struct raft_snapshot_meta* meta);
void raft__rx_reset(struct raft* r);

#endif /* QFS_RAFT_CORE_INTERNAL_H */
