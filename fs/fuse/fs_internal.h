/* fs_internal.h - shared state of the fs module's files (fs.c, fs_dir.c,
 * fs_read.c, fs_write.c, fs_grave.c, fs_cluster.c, notify.c, ...). Not a
 * public contract: see fs.h.
 *
 * Everything here is touched only by the loop thread, except struct
 * fs_notify, whose queue is shared with the notifier thread under its mutex.
 *
 * Pending requests: every handler that cannot reply at once allocates a
 * struct fs_op, links it into fs->pending and keeps its fuse_req_t until the
 * node's callback runs (node_done_cb / node_read_cb). The callback unlinks
 * the op and sends exactly one fuse_reply_*.
 */
#ifndef QFS_FS_INTERNAL_H
#define QFS_FS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs.h"
#include "node_metrics.h"

enum {
    FS_NAME_MAX = 255,              /* bytes in one name (NAME_MAX) */
    FS_NOTIFY_QUEUE_MAX = 1024,     /* invalidations waiting for the thread */
    FS_NOTIFY_DROPPED_MAX = 4096,   /* distinct inos remembered on overflow */
    FS_READDIR_SKIP_MAX = 1u << 20, /* entries walked to reach a seekdir */
    FS_BLOCK_SIZE = 4096,           /* statfs f_bsize, st_blocks unit */
    FS_VFILE_RING = 64,             /* /.cluster generations kept */
    FS_WRITE_MAX = 1 << 20,         /* max_write: bytes per WRITE */
    FS_GRAVES = 256,         /* removed inos still readable by their holders */
    FS_WINO_BUCKETS = 1024,  /* per-inode write state hash (power of 2) */
    FS_SETTLE_MS = 1000,     /* updates no writer will close commit */
    FS_DTOUCH_MAX = 64,      /* directories whose shown times are kept */
    FS_RESV_TTL_MS = 30000,  /* an O_EXCL name reservation's lifetime */
    FS_KVIEW_BUCKETS = 1024, /* kernel-view hash (power of 2) */
    FS_FNODE_BUCKETS = 4096, /* nodeid table hashes (power of 2) */
    FS_FNODES_MAX = 1 << 20, /* per-revision nodeids (fs_nodeid.c) */
};

/* Virtual inodes: a reserved range at the top of the ino space (store inos
 * count up from 1 and are never reused, so they cannot reach it). */
#define FS_VINO_BASE (UINT64_MAX - 64)
#define FS_VINO_CLUSTER (FS_VINO_BASE + 1)   /* /.cluster */
#define FS_VINO_STATUS (FS_VINO_BASE + 2)    /* /.cluster/status */
#define FS_VINO_MEMBERS (FS_VINO_BASE + 3)   /* /.cluster/members */
#define FS_VINO_LEADER (FS_VINO_BASE + 4)    /* /.cluster/leader */
#define FS_VINO_SNAPSHOTS (FS_VINO_BASE + 5) /* /.snapshots */
#define FS_VINO_METRICS (FS_VINO_BASE + 6)   /* /.cluster/metrics */
/* Generations of /.cluster files: FS_VFILE_BASE + generation. */
#define FS_VFILE_BASE (FS_VINO_BASE - (UINT64_C(1) << 40))
/* Entries of snapshot views (fs_snap.c): FS_SNAP_INO_BASE | root slot <<
 * FS_SNAP_ROOT_SHIFT | store ino, all below FS_VINO_BASE. */
#define FS_SNAP_INO_BASE (UINT64_C(1) << 63)
#define FS_SNAP_ROOT_SHIFT 40
#define FS_SNAP_STORE_INO_MASK ((UINT64_C(1) << FS_SNAP_ROOT_SHIFT) - 1)
enum { FS_SNAP_ROOTS_MAX = 4096 }; /* /.snapshots dirs the kernel may hold */
/* Per-revision nodeids of regular files (fs_nodeid.c): FS_FNODE_BASE + a
 * counter, between the store inos and the view inos. */
#define FS_FNODE_BASE (UINT64_C(1) << 62)
/* Pending new files (fs_pnew.c): FS_PNODE_BASE + a counter, below the
 * per-revision nodeids; once committed such a nodeid becomes one of them
 * (fs__nodeid_adopt). */
#define FS_PNODE_BASE (UINT64_C(1) << 61)
_Static_assert(FS_SNAP_INO_BASE +
                       ((uint64_t)FS_SNAP_ROOTS_MAX << FS_SNAP_ROOT_SHIFT) <
                   FS_VFILE_BASE,
               "view inos stay below the virtual inos");
#define FS_CLUSTER_NAME ".cluster"
#define FS_SNAPSHOTS_NAME ".snapshots"

/* Close-to-commit writes (fs_write.c, docs/consistency.md). An inode's
 * pending update on this mount: its whole new content (the committed
 * content patched by this mount's writes, or a truncation), attributes set
 * through it, and who wrote it. It becomes one proposal at its writer's
 * FLUSH (close), at FSYNC, at a rename by its writer, at the settle timer
 * (writes no writer will close: mmap write-back, truncations) or at a
 * clean unmount. */
enum { FS_UPD_OWNERS = 8 }; /* writer threads remembered per update */

struct fs_owner {
    int32_t tid;  /* the thread of a WRITE / SETATTR (FUSE's pid) */
    int32_t tgid; /* its process: 0 not resolved yet, -1 gone */
};

struct fs_upd {
    bool on;         /* an update exists */
    bool trunc_only; /* content is an O_TRUNC no write followed yet */
    bool inexact;    /* the kernel's pages differ from buf (append moved) */
    bool many;       /* more writers than owners[]: any FLUSH commits */
    bool unpriv;     /* a uid other than root wrote or resized it: its
                        commit may not use the quota's root reserve */
    int err;         /* discarded (positive errno): reported, not committed */
    char* buf;       /* content (on && !err), cap bytes allocated */
    size_t len, cap;
    uint32_t set_mask; /* STORE_SET_MODE|UID|GID|ATIME|MTIME joined */
    uint32_t mode, uid, gid;
    int64_t atime_ns, mtime_ns;
    struct fs_owner owners[FS_UPD_OWNERS];
    size_t n_owners;
    unsigned flushes; /* owner FLUSHes of a trunc_only update */
    int64_t touch_ns; /* last change (CLOCK_MONOTONIC): settle timer */
    /* Wall clock of the last content change (write, truncation) and of
     * the last change of any kind made through the update (0: none): the
     * mtime and ctime this mount shows until the commit sets its own. */
    int64_t mod_ns, chg_ns;
};

/* Per-inode write state (fs_wstate.c, fs_write.c). Exists while an inode has a
 * pending update, a commit in flight, or requests queued behind that commit:
 * commits of one inode are serialized, and every write-path request that
 * arrives while one is in flight waits for it in the queue. */
struct fs_wino {
    struct fs_wino *prev, *next; /* fs->winos */
    struct fs_wino* hnext;       /* fs->wino_hash bucket */
    uint64_t ino;
    struct fs_upd u;  /* pending (never while busy) */
    struct fs_upd fl; /* in flight (busy) */
    bool busy;        /* a commit of this ino is in flight */
    int done_err;     /* the last commit's result (positive errno) */
    bool running;     /* wino_run is on the stack */
    struct fs_op *q_head, *q_tail; /* waiting for that commit, FIFO */
    /* That commit has been applied here (fs__change_is_ours matched it):
     * the store holds it, or a later change, until its answer comes (the
     * answers of a batch of applied entries come after the batch). */
    bool fl_applied;
    /* That commit is a RENAME carrying the update (write-temp-then-rename)
     * to a name in this directory: its entry reports the file under that
     * name (fs__change_is_ours). 0: a plain commit. */
    uint64_t fl_rename_dir;
};

/* A pending new file of this mount (fs_pnew.c): made by a CREATE without
 * O_EXCL of a name that did not exist, answered at once, or by an O_EXCL
 * CREATE once its name reservation committed; its content and attributes
 * are the pending update of the write state keyed by `pino`, and its
 * commit is one STORE_OP_CREATE with STORE_WITH_DATA (and STORE_CLAIM).
 * Freed when that commit is done (pino then names the committed file) or
 * when it is dropped (unlinked, failed). */
struct fs_pnew {
    struct fs_pnew* next; /* fs->pnews, oldest first */
    uint64_t pino;        /* its nodeid, and its write state's key */
    uint64_t parent;      /* where it goes (a rename moves it) */
    char name[FS_NAME_MAX + 1];
    uint32_t mode, uid, gid; /* of the CREATE */
    int64_t made_ns;         /* wall clock of the CREATE */
    uint64_t nlookup;        /* the kernel's lookups of pino */
    bool unlinked;           /* removed before it was committed */
    bool excl;               /* renamed with RENAME_NOREPLACE: its create
                                may not replace a file made meanwhile */
    uint64_t token;          /* its name reservation's (STORE_OP_RESERVE): an
                                O_EXCL create; 0 none */
    int64_t resv_ns;         /* CLOCK_MONOTONIC of its last RESERVE (renewal) */
    uint64_t sino; /* the ino that reservation took: its st_ino (0 none) */
    bool renamed;  /* renamed before its commit: its commit takes the name
                      from a file there (STORE_REPLACE), as the rename did */
};

/* Generated /.cluster file contents: every lookup of a name gets a new
 * inode with its own immutable text, so a reader's page cache always holds
 * one consistent generation (fs_cluster.c). */
/* An inode changed whose notification (seq) has not been sent yet
 * (fs_kview.c). */
struct fs_kview {
    struct fs_kview *prev, *next; /* fs->kviews, by seq */
    struct fs_kview* hnext;       /* fs->kview_hash bucket */
    uint64_t ino;
    uint64_t seq; /* the notification that ends it */
};

struct fs_fnode; /* fs_nodeid.c */

/* What a request's nodeid names (fs__nodeid_ino). */
struct fs_nodeid {
    uint64_t ino;           /* the store ino (or a virtual / view ino) */
    uint64_t rev;           /* fnode: the revision it names */
    struct fs_fnode* fnode; /* NULL: not a per-revision nodeid */
    bool current;           /* answered from the store's current state */
    bool pending_ok;        /* may show this mount's pending update */
};

struct fs_vfile {
    uint64_t ino;  /* 0: free slot */
    uint64_t kind; /* FS_VINO_STATUS, _MEMBERS, _LEADER or _METRICS */
    int64_t made_ns;
    char* text;
    size_t len;
};

/* The reply a pending request expects. */
enum fs_reply {
    FS_REPLY_ERR = 1, /* fuse_reply_err(res->err) */
    FS_REPLY_ENTRY,   /* fuse_reply_entry of res->ino */
    FS_REPLY_CREATE,  /* fuse_reply_create of res->ino with op->fi */
    FS_REPLY_ATTR,    /* fuse_reply_attr of op->ino */
    FS_REPLY_WRITE,   /* a write-path request (fs_write.c) */
    FS_REPLY_BARRIER, /* a read barrier; op->resume continues the request */
    FS_REPLY_LINK,    /* fuse_reply_entry of res->ino through the nodeid
                         op->ino the LINK named (fs__nodeid_link) */
    FS_REPLY_RESERVE, /* an O_EXCL CREATE's name reservation: on success a
                         pending new file (fs__pnew_reserved) */
};

struct fs_op {
    struct fs_op *prev, *next; /* fs->pending */
    struct fs* fs;
    fuse_req_t req; /* NULL: an internal commit, nothing to reply */
    enum fs_reply kind;
    struct fuse_file_info fi; /* CREATE; the open / lookup being resumed */
    uint64_t ino;             /* ATTR / WRITE target; resumed lookup's parent */
    void (*resume)(struct fs_op* op, int err); /* BARRIER */
    char name[FS_NAME_MAX + 1]; /* resumed lookup, RESERVE's name */
    uint64_t token;             /* RESERVE: the reservation's token */
    /* FS_REPLY_WRITE (fs_write.c) */
    struct fs_op* wnext; /* fs_wino queue */
    int wop;             /* FS_WOP_* */
    int32_t tid;         /* the request's thread (0: the kernel's) */
    char* data;          /* WRITE bytes (libfuse's, or a copy) */
    bool data_owned;     /* data is our copy (a queued WRITE) */
    size_t size;         /* WRITE length */
    uint64_t off;        /* WRITE offset */
    bool append;         /* O_APPEND: at the end of the content */
    bool writepage;      /* the kernel's write-back of mmap'd pages */
    bool unpriv;         /* the requester's uid is not 0 (quota reserve) */
    bool trunc;          /* SETATTR: an O_TRUNC-like truncation to 0 */
    bool of_flight;      /* FLUSH/FSYNC: waits for a commit of its writes */
    uint64_t new_size;   /* SETATTR size */
    uint32_t set_mask;   /* SETATTR: STORE_SET_* joined to the update */
    uint32_t mode, uid, gid;
    int64_t atime_ns, mtime_ns;
    uint64_t kview_seq; /* BARRIER: notifications it waits for */
    bool after_notify;  /* BARRIER: also wait for the notifier (OPEN) */
};

enum {
    FS_WOP_WRITE = 1, /* WRITE: reply fuse_reply_write */
    FS_WOP_SETATTR,   /* SETATTR joined to the update: fuse_reply_attr */
    FS_WOP_FLUSH,     /* FLUSH: commit if the update is the caller's */
    FS_WOP_FSYNC,     /* FSYNC: commit; reply fuse_reply_err */
    FS_WOP_SETTLE,    /* internal: commit an update no writer will close */
    FS_WOP_RENAME,    /* RENAME carrying the update: fuse_reply_err */
    FS_WOP_LINK,      /* LINK of this mount's new file, queued behind its
                         commit: fs__link_committed */
};

struct fs_notify_item {
    uint64_t seq;    /* fs_notify.pushed when it was pushed */
    uint64_t ino;    /* inval_inode (0: none) */
    uint64_t parent; /* inval_entry(parent, name) (0: none) */
    uint64_t child;  /* non-zero: notify_delete(parent, child, name) */
    char name[FS_NAME_MAX + 1];
};

struct fs_notify {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stop;
    bool exited; /* the thread has left notify_main (under mu) */
    struct fuse_session* se;
    struct fs_notify_item q[FS_NOTIFY_QUEUE_MAX]; /* ring */
    size_t head, count;
    struct {
        uint64_t ino, seq; /* seq: the oldest dropped item of this ino */
    } dropped[FS_NOTIFY_DROPPED_MAX]; /* inos whose items were dropped */
    size_t n_dropped;
    uint64_t lost; /* overflow items not even recorded in dropped[] */
    /* Items are numbered 1, 2, ... as they are pushed. done: every item
     * numbered up to it has been sent to the kernel (or lost); the thread
     * raises it after each item and wakes the loop with done_async. */
    uint64_t pushed, done;
    uv_async_t* done_async; /* owned by the caller; may be NULL */
    /* Test hook (QFS_TEST_NOTIFY_DELAY_MS): the thread waits this long
     * before each item, a notifier that lags as under load. */
    unsigned delay_ms;
};

/* The request reader (fs_reader.c): its thread reads /dev/fuse, answers
 * the FLUSHes it can and queues the rest for the loop. Fields under mu
 * unless said otherwise. */
enum { FS_READER_QUEUE_BYTES = 2u << 20 };
struct fs_rreq;
struct fs_reader {
    /* Loop thread only: */
    bool inited;
    bool closing;   /* no request is processed */
    bool backlog;   /* the node's backlog is full: nothing is read */
    bool busy;      /* the loop reads the session's fd itself */
    unsigned quiet; /* busy: wake-ups in a row with at most one request */
    uint64_t busy_switches; /* idle -> busy, for the metrics */
    uv_poll_t* poll;        /* on the session's fd (busy mode) */
    uv_poll_cb poll_cb;
    struct fuse_buf fbuf; /* the loop's read buffer (busy mode) */
    /* Shared: */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* One per thread: its FLUSH answers, counted under its own mutex. */
    struct fs_reader_thread {
        struct fs* f;
        pthread_t thread;
        pthread_mutex_t mu;
        uint64_t fast_flushes, fast_ioctls;
        struct node_hist fast_lat; /* of the FLUSHes */
    } threads[FS_READER_THREADS_MAX];
    unsigned n_threads;
    int fd;                  /* the clone of the session's fd: the threads read
                                it; replies to what they read go to it */
    struct fuse_session* se; /* processed on the loop only */
    uv_async_t* async;
    struct fs_reader_hooks hooks;
    struct fs_rreq *head, **tail; /* the queue for the loop */
    uint64_t queued_bytes;
    atomic_bool hold; /* paused, closed or the queue full: look first */
    bool paused;      /* the loop asked for no reads (backlog, shutdown) */
    bool closed;      /* the thread is to leave */
    bool ended;       /* the thread stopped reading: end_err */
    bool end_told;
    int end_err;
};

struct fs {
    struct node* node;
    struct fs_options o;
    struct fs_op pending; /* list head */
    struct fs_wino winos; /* list head */
    /* Entries of winos: written on the loop, read by the reader thread (a
     * FLUSH with none is answered there). */
    atomic_size_t nwinos;
    struct fs_reader reader;
    struct fs_wino* wino_hash[FS_WINO_BUCKETS];
    uv_timer_t* settle;             /* fs_options.settle_timer */
    void (*quiesce_cb)(void* data); /* fs_quiesce: waiting for winos */
    void* quiesce_data;
    struct fs_vfile vfiles[FS_VFILE_RING];
    uint64_t vfile_next; /* generation counter */
    /* Inos removed lately and the revision that removed them: a process
     * that opened one before reads it as it was (fs_grave.c). */
    struct {
        uint64_t ino, rev;
    } graves[FS_GRAVES];
    size_t grave_next;
    struct fs_notify notify;
    struct fs_snap* snap; /* fs_snap.c; NULL until /.snapshots is used */
    /* Per-revision nodeids (fs_nodeid.c): hashed by nodeid and by ino. */
    struct fs_fnode* fnode_id[FS_FNODE_BUCKETS];
    struct fs_fnode* fnode_ino[FS_FNODE_BUCKETS];
    size_t n_fnodes, fnodes_peak;
    uint64_t fnode_next;      /* the last nodeid counter handed */
    uint64_t fnode_fallbacks; /* store inos handed past the bound */
    /* Inodes changed whose notification is not sent yet (fs_kview.c). */
    struct fs_kview* kview_hash[FS_KVIEW_BUCKETS];
    struct fs_kview kviews;    /* list head, in notification order */
    struct fs_op* kview_wait;  /* read barriers waiting for the notifier */
    struct fs_op** kview_tail; /* where the next waiter goes */
    uint64_t held_bytes;       /* copies of queued WRITEs (fs_held_bytes) */
    uint64_t pending_bytes;    /* buffers of updates (fs_options) */
    /* Failed writes, logged per cause (fs_write.c wfail_log). */
    struct fs_wfail {
        int64_t last_ns;     /* last line of this cause, 0: none yet */
        uint64_t suppressed; /* failures since, not logged */
    } wfail[5];
    struct fs_metrics* metrics; /* fs_metrics.c */
    struct fs_pnew* pnews;      /* pending new files (fs_pnew.c) */
    uint64_t pnode_next;        /* the last pending nodeid counter handed */
    uint64_t resv_nonce;        /* this run's high bits of reservation tokens */
    uint64_t resv_next;         /* the last reservation counter handed */
    int64_t resv_ttl_ns;        /* FS_RESV_TTL_MS (QFS_TEST_RESV_TTL_MS) */
    /* Test hook QFS_TEST_COMMIT_ANSWER_DELAY_MS: a commit of a file's
     * update is answered this long after it was applied here (the window
     * in which another node's change applies before the answer). */
    unsigned test_answer_delay_ms;
    /* The FUSE connection, MAJ << 20 | MIN of the mount's device
     * (fs_set_conn); 0: unknown. fs__owner_holds_mount needs it. */
    unsigned conn;
    /* Directories a pending new file left uncommitted (unlinked, renamed
     * away, dropped): this mount shows that change in their mtime/ctime
     * until the store's times pass it, so the times it showed never go
     * back (fs__pnew_dir_attr). Newest FS_DTOUCH_MAX, oldest replaced. */
    struct fs_dtouch {
        uint64_t dir; /* 0: free */
        int64_t ns;
    } dtouch[FS_DTOUCH_MAX];
    unsigned dtouch_next; /* the slot replaced next when all are taken */
};

/* fs_metrics.c: FUSE request counts and latencies, registered with the
 * node as a metrics source (-ENOMEM); freed with the fs. */
struct fs_metrics;
int fs__metrics_init(struct fs* f);
void fs__metrics_free(struct fs* f);
/* FUSE requests the kernel expects no reply to (FORGET, INTERRUPT, ...). */
bool fs__no_reply(uint32_t opcode);
/* A request the loop is about to process (read by the reader thread). */
void fs__metrics_request(struct fs* f, const void* buf, size_t len);
/* The reader threads' own answers: FLUSHes (count, latencies) and
 * IOCTLs (count). */
void fs__reader_fast_stats(struct fs* f,
                           uint64_t* n,
                           uint64_t* ioctls,
                           struct node_hist* lat);
/* The threads' fd (-1: none): a reply the session's fd refuses with ENOENT
 * answers a request read there (fs_metrics.c). */
int fs__reader_clone_fd(const struct fs* f);

/* fs.c */
/* st_ino: the store ino, or for a pending new file whose name is reserved
 * the ino the reservation took (its committed file's). */
void fs__attr_to_stat(const struct fs* f,
                      const struct store_attr* a,
                      struct stat* st);
void fs__fill_entry(struct fs* f,
                    const struct store_attr* a,
                    struct fuse_entry_param* e);
/* Reply ino's attributes from the store, with this mount's pending update
 * of a regular file as the requester may see it (then timeout 0). */
void fs__reply_attr(struct fs* f, fuse_req_t req, uint64_t ino);
struct fs_op* fs__op_new(struct fs* f, fuse_req_t req, enum fs_reply kind);
void fs__op_free(struct fs_op* op);
/* Propose c for op; on error replies and frees op. */
void fs__propose(struct fs* f, struct fs_op* op, struct store_cmd* c);
/* Read barrier (linearizable mode), then op->resume(op, err). */
void fs__barrier(struct fs* f, struct fs_op* op);
bool fs__name_bad(fuse_req_t req, const char* name);
int64_t fs__now_ns(void);
/* CLOCK_MONOTONIC in ns: durations and timeouts. */
uint64_t fs__mono_ns(void);

/* fs_read.c, fs_grave.c, fs_write.c */
/* A WRITE op's proposal finished (called by fs.c's proposal callback). */
void fs__write_done(struct fs_op* op, const struct store_result* res);
/* fs_write.c, fs_wstate.c, fs_owner.c: the pending update machinery, for
 * fs_wreq.c. */
/* ino's write state (NULL: none), or a new one (NULL: out of memory). */
struct fs_wino* fs__wino_find(const struct fs* f, uint64_t ino);
struct fs_wino* fs__wino_get(struct fs* f, uint64_t ino);
/* Free w if nothing is pending, in flight or queued. */
void fs__wino_put(struct fs* f, struct fs_wino* w);
/* A new write-path op of req (NULL: internal) for ino and its state *w;
 * NULL after answering req with ENOMEM. */
struct fs_op* fs__wop_for(struct fs* f,
                          fuse_req_t req,
                          uint64_t ino,
                          int wop,
                          struct fs_wino** w);
/* Run op now, or queue it behind w's commit in flight. Replies; w may be
 * freed on return. */
void fs__wino_submit(struct fs* f, struct fs_wino* w, struct fs_op* op);
/* Thread tid wrote u (0: the kernel's write-back, not an owner). */
void fs__owner_add(struct fs_upd* u, int32_t tid);
/* Whether thread tid may finish u: one of its writers' threads or
 * processes (/proc), or anyone when none is known to be alive. */
bool fs__owner_is(struct fs_upd* u, int32_t tid);
/* Whether tid is one of u's writer threads (no /proc read). */
bool fs__owner_tid(const struct fs_upd* u, int32_t tid);
/* Whether every thread that wrote u has exited (/proc, read now). */
bool fs__owners_gone(const struct fs_upd* u);
/* Whether the process of thread tid, or a process it forked, still holds
 * a descriptor of a file of this mount (any mount of its device); true
 * also when that cannot be told (/proc). */
bool fs__owner_holds_mount(const struct fs* f, int32_t tid);
/* Whether the process of thread tid holds a descriptor open for writing
 * of the file whose st_ino is one of inos on this mount: 1, 0, or -1 when
 * that cannot be told (/proc). */
int fs__owner_writes_file(const struct fs* f,
                          int32_t tid,
                          const uint64_t* inos,
                          int n_inos);
/* The update changed now: its content too when `content`. */
void fs__upd_stamp(struct fs_upd* u, bool content);
/* Start w's update if none: the committed content (none when trunc). */
int fs__upd_begin(struct fs* f, struct fs_wino* w, bool trunc);
/* Resize u's content (zero-filled); -ENOSPC past the pending bytes. */
int fs__upd_resize(struct fs* f, struct fs_upd* u, size_t len);
/* Propose w's pending update for op (a WRITE of it, or the RENAME c that
 * carries it); fs__write_done answers op. */
void fs__commit_start(struct fs* f,
                      struct fs_wino* w,
                      struct fs_op* op,
                      struct store_cmd* c);
/* fs_wstate.c, for fs_write.c: take w out of fs->winos and its hash
 * bucket (not freed). */
void fs__wino_unlink(struct fs* f, struct fs_wino* w);
/* Put an unlinked w back in under ino. */
void fs__wino_link(struct fs* f, struct fs_wino* w, uint64_t ino);
/* fs_quiesce's callback, on the next loop turn, once no inode has write
 * state. */
void fs__quiesce_check(struct fs* f);
/* Free u's buffer (and its pending bytes); u is zeroed. */
void fs__upd_free(struct fs* f, struct fs_upd* u);
/* Start the settle timer, unless it runs or an unmount waits. */
void fs__settle_arm(struct fs* f);

/* Overlay ino's pending update (size, joined attributes) on *a, the
 * store's attributes, as requester tid (-1: an entry's attributes) may see
 * it: 1 done, 2 there is one it may not see, 0 none. Non-zero: reply with
 * timeout 0, so the kernel asks again once it is committed. */
int fs__pending_attr(const struct fs* f, struct store_attr* a, int32_t tid);
/* The content of ino's pending update (or commit in flight) as requester
 * tid may see it, borrowed until the next write-path event: 1, or 0 when
 * there is none to show. */
int fs__pending_read(const struct fs* f,
                     uint64_t ino,
                     int32_t tid,
                     const void** data,
                     size_t* len);
/* SETATTR of a regular store file carrying c's fields (STORE_OP_SETATTR):
 * joined to its pending update, or proposed. Replies. with_fh: made
 * through an open file (ftruncate). */
void fs__setattr_file(struct fs* f,
                      fuse_req_t req,
                      const struct store_cmd* c,
                      int to_set,
                      bool with_fh);
/* RENAME: carries the source's pending update when the caller wrote it
 * (one entry). Replies. */
void fs__rename(struct fs* f, fuse_req_t req, struct store_cmd* c);
/* CREATE of a name that exists (no O_EXCL): reply from local state; an
 * O_TRUNC becomes the pending update's truncation. */
void fs__create_existing(struct fs* f,
                         fuse_req_t req,
                         const struct store_attr* a,
                         struct fuse_file_info* fi);
/* Open flags for every regular file reply (open, create). */
void fs__file_open_flags(const struct fs* f, struct fuse_file_info* fi);
void fs__settle_cb(uv_timer_t* t);
/* Whether the change to ino being applied is this mount's own commit in
 * flight, as its kernel already shows it (fs_on_change skips the
 * invalidation). True once per commit: it marks the commit applied. */
bool fs__change_is_ours(struct fs* f, const struct store_change* c);
/* ino was removed at revision rev (fs_on_change). */
void fs__grave_add(struct fs* f, uint64_t ino, uint64_t rev);
/* A removed ino as it was just before: attrs and (data != NULL) content,
 * malloc'd. -ESTALE when unknown or no longer retained. */
int fs__grave_read(struct fs* f,
                   uint64_t ino,
                   struct store_attr* a,
                   void** data,
                   size_t* len);
void fs__winos_free(struct fs* f);
void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
void fs_read(fuse_req_t req,
             fuse_ino_t ino,
             size_t size,
             off_t off,
             struct fuse_file_info* fi);
void fs_write(fuse_req_t req,
              fuse_ino_t ino,
              const char* buf,
              size_t size,
              off_t off,
              struct fuse_file_info* fi);
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
void fs_fsync(fuse_req_t req,
              fuse_ino_t ino,
              int datasync,
              struct fuse_file_info* fi);
void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);

/* fs_dir.c */
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
void fs_mknod(fuse_req_t req,
              fuse_ino_t parent,
              const char* name,
              mode_t mode,
              dev_t rdev);
void fs_create(fuse_req_t req,
               fuse_ino_t parent,
               const char* name,
               mode_t mode,
               struct fuse_file_info* fi);
void fs_symlink(fuse_req_t req,
                const char* link,
                fuse_ino_t parent,
                const char* name);
void fs_link(fuse_req_t req,
             fuse_ino_t ino,
             fuse_ino_t newparent,
             const char* newname);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
void fs_rename(fuse_req_t req,
               fuse_ino_t parent,
               const char* name,
               fuse_ino_t newparent,
               const char* newname,
               unsigned int flags);
void fs_setattr(fuse_req_t req,
                fuse_ino_t ino,
                struct stat* attr,
                int to_set,
                struct fuse_file_info* fi);
void fs_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
void fs_readdir(fuse_req_t req,
                fuse_ino_t ino,
                size_t size,
                off_t off,
                struct fuse_file_info* fi);
void fs_readdirplus(fuse_req_t req,
                    fuse_ino_t ino,
                    size_t size,
                    off_t off,
                    struct fuse_file_info* fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);

/* fs_cluster.c: virtual entries */
bool fs__is_virtual(uint64_t ino);
/* Root names reserved for virtual dirs; *vino set when name is one. */
bool fs__reserved_name(uint64_t parent, const char* name, uint64_t* vino);
void fs__virtual_attr(uint64_t vino, struct store_attr* a);
/* Lookup inside a virtual dir: 0, -ENOENT. */
int fs__virtual_lookup(uint64_t parent, const char* name, struct store_attr* a);
/* Child names of a virtual dir, index i (NULL past the end). */
const char* fs__virtual_child(uint64_t dir, size_t i, uint64_t* ino);
bool fs__is_vfile(uint64_t ino); /* a /.cluster file generation */
/* A new generation of the /.cluster file `vino`: attrs with its ino. */
int fs__vfile_make(struct fs* f, uint64_t vino, struct store_attr* a);
/* A generation's text (borrowed) and attrs: 0 or -ESTALE (recycled). */
int fs__vfile_get(struct fs* f,
                  uint64_t ino,
                  const char** text,
                  size_t* len,
                  struct store_attr* a);
void fs__vfiles_free(struct fs* f);

/* fs_snap.c: /.snapshots and its read-only views */
bool fs__is_snap(uint64_t ino); /* an entry of a view */
/* /.snapshots itself or anything under it. */
bool fs__in_snapshots(uint64_t ino);
/* Lookup in /.snapshots or in a view dir; replies. */
void fs__snap_lookup(struct fs* f,
                     fuse_req_t req,
                     uint64_t parent,
                     const char* name);
/* Attributes with the fuse ino; -ESTALE for an unknown root. */
int fs__snap_getattr(struct fs* f, uint64_t ino, struct store_attr* a);
void fs__snap_forget(struct fs* f, uint64_t ino, uint64_t nlookup);
/* Content or symlink target, malloc'd into *data (caller frees). */
int fs__snap_read(struct fs* f, uint64_t ino, void** data, size_t* len);
/* Children of /.snapshots or of a view dir in name order after `after`
 * (attrs carry fuse inos); cb returns non-zero to stop (returned). */
int fs__snap_readdir(struct fs* f,
                     uint64_t dir,
                     const char* after,
                     store_readdir_cb cb,
                     void* data);
/* mkdir / rmdir of /.snapshots/NAME: one proposal; replies. */
void fs__snap_mkdir(fuse_req_t req, const char* name);
void fs__snap_rmdir(fuse_req_t req, const char* name);
void fs__snap_free(struct fs* f);

/* fs_kview.c: inodes changed whose notification has not been sent yet:
 * entry replies of them get timeout 0 (a reply racing with the entry's
 * invalidation must not pin it), and linearizable read barriers wait for
 * the notifier. */
void fs__kview_init(struct fs* f);
void fs__kview_free(struct fs* f);
/* The change being applied touched ino; its invalidation is notification
 * seq. */
void fs__kview_changed(struct fs* f, uint64_t ino, uint64_t seq);
/* Whether a change of ino has not been sent to the kernel yet. */
bool fs__kview_pending(struct fs* f, uint64_t ino);
/* Resume op (a read barrier that has reached its index) once every change
 * applied so far has been sent to the kernel. */
void fs__kview_wait(struct fs* f, struct fs_op* op);
/* done_async fired: end the views and resume the barriers it covers. */
void fs__kview_notified(struct fs* f);

/* fs_pnew.c: pending new files (deferred creates) */
bool fs__is_pnode(uint64_t nodeid);
/* The pending new file of nodeid pino / named (parent, name): NULL if
 * none (an unlinked one is not found by name). */
struct fs_pnew* fs__pnew_find(const struct fs* f, uint64_t pino);
struct fs_pnew* fs__pnew_named(const struct fs* f,
                               uint64_t parent,
                               const char* name);
/* Its attributes before its pending update is overlaid: 0, -ENOENT. */
int fs__pnew_attr(const struct fs* f, uint64_t pino, struct store_attr* a);
/* The same, of p found already. */
void fs__pnew_fill(const struct fs_pnew* p, struct store_attr* a);
/* Its path, or "new file NAME" when its directory is gone (for the log):
 * 0, -ENOENT. */
int fs__pnew_path(const struct fs* f, uint64_t pino, char* buf, size_t cap);
/* A CREATE without O_EXCL of a name that does not exist: a pending new
 * file, answered now. Replies. */
void fs__pnew_create(struct fs* f,
                     fuse_req_t req,
                     uint64_t parent,
                     const char* name,
                     mode_t mode,
                     struct fuse_file_info* fi);
/* UNLINK / RENAME meeting a pending new file: true when handled
 * (replied). */
/* The ino the pending new file pino will have (0: not known yet). */
uint64_t fs__pnew_sino(const struct fs* f, uint64_t pino);
/* An O_EXCL CREATE (not linearizable): propose the name's reservation;
 * its commit makes the pending new file (fs__pnew_reserved). */
void fs__pnew_reserve(struct fs* f,
                      fuse_req_t req,
                      uint64_t parent,
                      const char* name,
                      mode_t mode,
                      struct fuse_file_info* fi);
/* The RESERVE of op committed (or failed): answer its CREATE. */
void fs__pnew_reserved(struct fs_op* op, const struct store_result* res);
/* The settle timer's turn: renew the reservations of pending new files
 * older than a third of their lifetime. */
void fs__pnew_renew(struct fs* f, int64_t now_ns);
bool fs__pnew_unlink(struct fs* f,
                     fuse_req_t req,
                     uint64_t parent,
                     const char* name);
bool fs__pnew_rename(struct fs* f, fuse_req_t req, struct store_cmd* c);
/* The CREATE that commits pino's update u into *c (false: there is none
 * to commit, the file was unlinked or dropped). */
bool fs__pnew_cmd(struct fs* f,
                  uint64_t pino,
                  const struct fs_upd* u,
                  struct store_cmd* c);
/* Its commit is done: on success w (keyed by pino) becomes the write
 * state of the committed ino and pino one of its nodeids; else the file
 * is dropped. Returns w, which may be another (the committed ino's). */
struct fs_wino* fs__pnew_done(struct fs* f,
                              struct fs_wino* w,
                              const struct store_result* res);
/* Whether dir holds a pending new file (rmdir: ENOTEMPTY). */
bool fs__pnew_in(const struct fs* f, uint64_t dir);
/* A directory's attributes as this mount sees them: its mtime and ctime
 * are at least the creation time of the pending new files made in it, as
 * a local file system's would be (the commit makes them the store's), and
 * the time a pending new file left it uncommitted (unlinked, renamed away,
 * dropped), so the times this mount showed never go back.
 * Returns whether a was changed (then its attributes must not be cached). */
bool fs__pnew_dir_attr(struct fs* f, struct store_attr* a);
/* Forget it (its update is gone): the name disappears from this mount. */
void fs__pnew_drop(struct fs* f, uint64_t pino);
/* The pending new files of dir after the one with nodeid `after` (0: all)
 * whose names the store does not have, oldest first (attrs carry their
 * nodeids); cb as store_readdir's. */
int fs__pnew_readdir(struct fs* f,
                     uint64_t dir,
                     uint64_t after,
                     store_readdir_cb cb,
                     void* data);
/* FORGET of a pending nodeid: true when it was one. */
bool fs__pnew_forget(struct fs* f, uint64_t pino, uint64_t nlookup);
void fs__pnews_free(struct fs* f);

/* fs_nodeid.c: per-revision nodeids of regular files */
/* A committed pending new file: its nodeid pino names ino's current
 * revision from now on, with nlookup lookups. */
void fs__nodeid_adopt(struct fs* f,
                      uint64_t pino,
                      uint64_t ino,
                      uint64_t nlookup);
bool fs__is_fnode(uint64_t nodeid);
/* The nodeid an entry reply hands the kernel for attrs a (the current
 * revision), counted as one lookup. update: this mount has an update of it
 * pending, which the reply shows: the nodeid it is written through. The
 * store ino for everything but regular store files in serializable mode
 * (and past the table's bound). */
uint64_t fs__nodeid_hand(struct fs* f, const struct store_attr* a, bool update);
/* An entry reply carrying nodeid did not reach the kernel. */
void fs__nodeid_unhand(struct fs* f, uint64_t nodeid);
/* The nodeid of LINK's reply for a (the inode, after the link): the
 * request's nodeid, moved to a's revision when it names that inode and
 * its content is a's (a link changes ctime and nlink only), so that the
 * kernel updates the inode it holds (nlink) rather than making a second
 * one; else as fs__nodeid_hand. Counts a lookup. */
/* The LINK op (FS_WOP_LINK: new parent in op->off, name in op->name) of a
 * new file of this mount, once its commit is done: ino, the committed
 * store ino (0: the commit failed, the file is gone). Proposes the link
 * or replies. fs_dir.c. */
void fs__link_committed(struct fs* f, struct fs_op* op, uint64_t ino);
uint64_t fs__nodeid_link(struct fs* f,
                         uint64_t nodeid,
                         const struct store_attr* a);
/* FORGET: the kernel dropped nlookup lookups of nodeid. */
void fs__nodeid_forget(struct fs* f, uint64_t nodeid, uint64_t nlookup);
/* What a request's nodeid names: 0, or -ESTALE for a forgotten one. */
int fs__nodeid_ino(struct fs* f, uint64_t nodeid, struct fs_nodeid* out);
/* A write-path request (WRITE, SETATTR) through nodeid: the store ino
 * (0: stale); the nodeid follows the file from now on. */
uint64_t fs__nodeid_write(struct fs* f, uint64_t nodeid);
/* The revision an fnode names: attrs and (data != NULL) content, malloc'd.
 * -ESTALE once it is compacted out of the history. */
int fs__nodeid_at(struct fs* f,
                  const struct fs_nodeid* id,
                  struct store_attr* a,
                  void** data,
                  size_t* len);
/* The kernel holds something other than the committed content of ino (a
 * discarded update): invalidate the nodeids that may show it. */
void fs__kernel_drop(struct fs* f, uint64_t ino);
/* fs_on_change of a change c that is not a removal: true when ino is a
 * regular file handled here (invalidations queued). ours: this mount's
 * commit as its kernel shows it. */
bool fs__nodeid_changed(struct fs* f, const struct store_change* c, bool ours);
void fs__fnodes_free(struct fs* f);
/* node_status_extra_cb (data: the fs): the table's size and the
 * invalidations the notifier has not sent yet. */
void fs__nodeid_status(void* data, bool json, char* buf, size_t cap);
/* The nodeid the kernel most likely holds ino under: its newest nodeid
 * with lookups (handed out last), else ino itself. */
uint64_t fs__nodeid_newest(const struct fs* f, uint64_t ino);

/* notify.c */
void fs__notify_init(struct fs_notify* n);
int fs__notify_start(struct fs_notify* n, struct fuse_session* se);
void fs__notify_stop(struct fs_notify* n);
/* Asks the thread to stop and waits up to timeout_ms for it: 0 once it
 * has, -ETIMEDOUT while it is still blocked in a notify. */
int fs__notify_stop_within(struct fs_notify* n, unsigned timeout_ms);
/* Queues the invalidation of ino's attributes and pages and of the entry
 * parent/name (either may be 0); returns its number (0: nothing queued). */
uint64_t fs__notify_push(struct fs_notify* n,
                         uint64_t ino,
                         uint64_t parent,
                         const char* name);
/* As fs__notify_push(n, 0, parent, name) for a name whose entry, nodeid
 * child, is gone from the tree: sent as notify_delete, so that the
 * kernel also drops the inode if it holds it under that nodeid (then
 * inotify watches on it get IN_DELETE_SELF: docs/operations.md, "Watch");
 * when it does not, an inval_entry as before. */
uint64_t fs__notify_push_delete(struct fs_notify* n,
                                uint64_t parent,
                                const char* name,
                                uint64_t child);
/* The highest number pushed so far, and the highest one up to which every
 * item has been sent to the kernel. */
uint64_t fs__notify_pushed(struct fs_notify* n);
uint64_t fs__notify_done(struct fs_notify* n);

#endif /* QFS_FS_INTERNAL_H */
