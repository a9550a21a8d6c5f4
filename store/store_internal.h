/* store_internal.h - internals shared by the store's files (not a public API).
 * Only the .c files of store/ include it (tests/run.sh fails otherwise):
 * every other module and every test uses store.h, store_history.h and
 * store_compact.h.
 *
 * The replicated state (struct store_state) is changed ONLY through three
 * primitives: store__state_put (the full new state of one entry),
 * store__state_del (an entry disappears) and store__dedup_mark (a command id
 * was applied). Apply calls them live and writes the same records into the
 * pending frame; recovery and image install call them on decoded records.
 * So replaying the db file takes exactly the path apply took.
 */
#ifndef QFS_STORE_INTERNAL_H
#define QFS_STORE_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

#include "../raft/util/bytes.h"
#include "../raft/util/fileio.h"
#include "store.h"
#include "store_history.h"

/* ---- limits ---- */
enum {
    STORE_NAME_LIMIT = 1024,  /* upper bound for name_max */
    STORE_PATH_LIMIT = 65536, /* upper bound for path_max */
    STORE_ORIGINS_MAX = 1024, /* dedup table: distinct origins */
    STORE_DEDUP_WINDOW = 64,  /* seqs tracked below the highest */
    STORE_DEDUP_SLOTS = STORE_DEDUP_WINDOW + 1, /* results: window + high */
    STORE_HASH_BUCKETS_MIN = 1024,
    STORE_SNAP_NAME_MAX = 255, /* fits struct store_snap_info.name */
};
/* Content of a STORE_CHR / STORE_BLK entry: its device number, u64 LE. */
enum { STORE_RDEV_LEN = 8 };
/* A name entry (hard link, STORE_OP_LINK): a second name of another entry,
 * its target. Its content is the target's ino (u64 LE, STORE_LINK_LEN
 * bytes); its own ino, mode, owner and times are only bookkeeping. Never
 * shown: reads resolve it to its target (store__resolve). The target keeps
 * its own (parent, name): its primary name. Internal: reads never return
 * this type. */
enum { STORE_LINK = 8, STORE_LINK_LEN = 8, STORE_NLINK_MAX = 65000 };
/* Uncompressed frame payload. The node must seal at least this often. */
#define STORE_FRAME_RAW_MAX (1u << 30)
_Static_assert(STORE_FRAME_RAW_MAX <= 0x7E000000, "within LZ4_MAX_INPUT_SIZE");
_Static_assert(STORE_FILE_SIZE_LIMIT * 4 < STORE_FRAME_RAW_MAX,
               "a frame holds several of the largest records");

/* ---- the index ---- */

/* One live entry. Name and content share one allocation: buf = name, NUL,
 * content. Children of a directory form a treap ordered by name (memcmp
 * order), priority = a hash of the ino (deterministic, no rand()). */
struct entry {
    struct entry* hnext;        /* ino hash chain */
    struct entry *left, *right; /* in the parent's children treap */
    struct entry* kids;         /* dirs: root of the children treap */
    char* buf;                  /* name NUL content */
    uint64_t ino, parent;
    uint64_t create_rev, mod_rev, version;
    int64_t atime_ns, mtime_ns, ctime_ns;
    uint64_t size;      /* content bytes */
    uint64_t loc_frame; /* db location of the latest record: frame */
    uint32_t loc_rec;   /*   offset and offset inside its payload */
    uint32_t mode, uid, gid;
    uint32_t nkids, nsubdirs;
    uint16_t name_len;
    uint8_t type;
    uint8_t attached; /* linked in its parent's treap (root: always) */
    /* Hard links, derived (never stored): rebuilt by store__state_put /
     * store__state_del from the name entries, so no count can drift. */
    struct entry* lnext; /* STORE_LINK: chain in the state's link hash */
    uint64_t target;     /* STORE_LINK: the target's ino */
    uint32_t nlinks;     /* others: name entries naming it (its nlink - 1) */
};

static inline const char* entry_name(const struct entry* e)
{
    return e->buf;
}
static inline const uint8_t* entry_content(const struct entry* e)
{
    return (const uint8_t*)e->buf + e->name_len + 1;
}

/* The result of one applied (origin, seq), kept while seq is within the
 * window: replicated state, so that a node that learns of its own command
 * only through an installed image answers its waiter with the real result
 * (record REC_RESULT, docs/format-db.md). */
enum { DEDUP_F_CANCEL = 1 }; /* a STORE_OP_CANCEL used the (origin, seq) */
struct dedup_result {
    uint64_t seq; /* 0: empty slot */
    uint64_t revision, ino;
    int32_t err;   /* 0 or -errno */
    uint8_t flags; /* DEDUP_F_* */
};
_Static_assert(sizeof(struct dedup_result) == 32,
               "results: 1024 origins x 65 slots x 32 bytes at most");

struct dedup_origin {
    uint64_t origin;
    uint64_t high;   /* highest seq applied */
    uint64_t window; /* bit i: seq high-1-i applied */
    /* STORE_DEDUP_SLOTS results, slot seq % STORE_DEDUP_SLOTS (malloc'd at
     * the first result; NULL: none known). A slot holding another seq: the
     * result of seq is not known (written by a version without results). */
    struct dedup_result* res;
};

/* A named snapshot: replicated state (records REC_SNAP / REC_SNAPDROP). */
struct store_snap {
    char* name; /* malloc'd, NUL-terminated */
    uint64_t revision;
    int64_t ctime_ns;
};

/* A name reservation (STORE_OP_RESERVE): replicated state (record
 * REC_RESV), invisible to every read. Live for a command judged at time t
 * (store__resv_time) while t < expire_ns. */
struct store_resv {
    uint64_t parent;
    uint64_t origin, token; /* the holder */
    uint64_t ino;           /* the ino the claimed file gets */
    int64_t expire_ns;
    char* name; /* malloc'd, NUL-terminated */
    uint16_t name_len;
};

struct store_state {
    struct entry** buckets;
    size_t nbuckets; /* power of two */
    size_t nentries; /* including the root */
    struct entry* root;
    uint64_t revision;
    uint64_t next_ino;
    store_index applied_index;
    uint64_t live_bytes;
    struct dedup_origin* origins; /* sorted by origin */
    size_t norigins;
    struct store_snap* snaps; /* sorted by name (strcmp) */
    size_t nsnaps;
    uint64_t compact_rev; /* replicated: revisions below are forgotten */
    /* Name entries by target ino (chained through entry.lnext): the index
     * from an inode to its other names. Derived, like the ino hash. */
    struct entry** lbuckets;
    size_t nlbuckets; /* power of two */
    size_t nlinks;    /* name entries */
    /* Name reservations, sorted by (parent, name); at most STORE_RESV_MAX
     * (a RESERVE drops every expired one before it adds one). */
    struct store_resv* resvs;
    size_t nresvs;
    /* The reservation clock: the latest now_ns of a RESERVE applied. A
     * command is judged at max(its now_ns, this): once expired, a
     * reservation stays expired, so dropping it changes no outcome. */
    int64_t resv_clock;
};

/* A record: the full new state of one entry (PUT), also the unit of the db
 * file and images. Strings/content borrowed. */
struct store_rec {
    uint64_t ino, parent;
    uint8_t type;
    uint32_t mode, uid, gid;
    uint64_t create_rev, mod_rev, version;
    int64_t atime_ns, mtime_ns, ctime_ns;
    uint64_t prev_frame; /* db location of this ino's previous record */
    uint32_t prev_rec;   /*   (UINT64_MAX: none) */
    const char* name;
    uint16_t name_len;
    const void* content;
    uint32_t content_len;
};

enum rec_tag {
    REC_PUT = 1,
    REC_DEL = 2,
    REC_DEDUP = 3,
    REC_SNAP = 4,     /* a named snapshot was made */
    REC_SNAPDROP = 5, /* a named snapshot was dropped */
    REC_COMPACT = 6,  /* the compact revision advanced */
    REC_RESULT = 7,   /* DEDUP with the command's result */
    REC_RESV = 8,     /* a name reservation set or removed; the clock */
};
enum {
    REC_PUT_FIXED = 96,
    REC_DEL_FIXED = 29,
    REC_DEDUP_FIXED = 17,
    REC_SNAP_FIXED = 20,
    REC_SNAPDROP_FIXED = 4,
    REC_COMPACT_FIXED = 9,
    REC_RESULT_FIXED = 40,
    REC_RESV_FIXED = 56,
};
/* REC_RESV flags: REMOVE drops the reservation of (parent, name) (its
 * holder must match); CLOCK carries only the clock (images and BASE
 * frames without a reservation); neither: set (insert or replace). */
enum { RESV_F_REMOVE = 1, RESV_F_CLOCK = 2 };

/* A REC_RESV record. name borrowed (not NUL-terminated when decoded). */
struct store_resv_rec {
    uint8_t flags;
    uint64_t parent, origin, token;
    uint64_t ino; /* set: the ino taken for the file (>= 2); else 0 */
    int64_t expire_ns;
    int64_t clock_ns; /* the reservation clock becomes max(it, this) */
    const char* name;
    uint16_t name_len;
};
/* Results a REC_RESULT may carry: 0 or -errno (-1..-4095). */
enum { REC_RESULT_ERR_MIN = -4095 };

/* A decoded record of any kind. */
struct store_anyrec {
    uint8_t tag;
    struct store_rec put;    /* REC_PUT */
    uint64_t ino, rev;       /* REC_DEL */
    uint64_t prev_frame;     /* REC_DEL */
    uint32_t prev_rec;       /* REC_DEL */
    uint64_t origin, seq;    /* REC_DEDUP, REC_RESULT */
    struct dedup_result res; /* REC_RESULT (res.seq = seq) */
    const char* sname;       /* REC_SNAP, REC_SNAPDROP (not NUL-terminated) */
    uint16_t sname_len;
    int64_t sctime_ns;          /* REC_SNAP; rev = its revision */
    struct store_resv_rec resv; /* REC_RESV */
};                              /* REC_COMPACT: rev = the compact revision */

int store__state_init(struct store_state* s);
void store__state_free(struct store_state* s);
struct entry* store__find(const struct store_state* s, uint64_t ino);
struct entry* store__child(const struct entry* dir,
                           const char* name,
                           size_t len);
/* What a LOOKUP name names in its directory (store_lookup,
 * store_view_lookup). */
enum store_lookup_kind {
    STORE_LOOKUP_SELF,   /* "." */
    STORE_LOOKUP_PARENT, /* "..": the root's is the root */
    STORE_LOOKUP_CHILD,  /* any other name: a child, *len bytes long */
};
/* The checks of a LOOKUP of name in an entry of type dir_type: -ENOTDIR,
 * -ENAMETOOLONG (over name_max), or the enum store_lookup_kind of name
 * with its length in *len. */
int store__lookup_kind(uint8_t dir_type,
                       const char* name,
                       uint32_t name_max,
                       size_t* len);
/* Smallest child with name > after (after NULL: the first). */
struct entry* store__child_after(const struct entry* dir,
                                 const char* after,
                                 size_t len);
/* Apply a PUT. -EUCLEAN (msg filled) if it contradicts the state, -ENOMEM.
 * An entry occupying the target name is detached (a later record of the
 * same command re-attaches or deletes it). */
int store__state_put(struct store_state* s,
                     const struct store_rec* r,
                     uint64_t loc_frame,
                     uint32_t loc_rec,
                     char* msg,
                     size_t cap);
int store__state_del(struct store_state* s,
                     uint64_t ino,
                     char* msg,
                     size_t cap);
/* Dedup table. seq 0 or origin 0: never a duplicate, not recorded. */
bool store__dedup_seen(const struct store_state* s,
                       uint64_t origin,
                       uint64_t seq);
/* Mark (origin, seq) applied, with its result (res->seq == seq; NULL: not
 * known, a REC_DEDUP). The result is kept while seq is in the window.
 * -ENOMEM. */
int store__dedup_mark(struct store_state* s,
                      uint64_t origin,
                      uint64_t seq,
                      const struct dedup_result* res);
/* The kept result of (origin, seq), or NULL. */
const struct dedup_result* store__dedup_result(const struct store_state* s,
                                               uint64_t origin,
                                               uint64_t seq);
/* Named snapshots. add: -EEXIST, -ENOSPC, -ENOMEM; del: -ENOENT. */
struct store_snap* store__snap_find(const struct store_state* s,
                                    const char* name,
                                    size_t len);
int store__snap_add(struct store_state* s,
                    const char* name,
                    size_t len,
                    uint64_t rev,
                    int64_t ctime_ns);
int store__snap_del(struct store_state* s, const char* name, size_t len);
/* Oldest revision a named snapshot names (UINT64_MAX: none). */
uint64_t store__snap_oldest(const struct store_state* s);
/* Name reservations. find: NULL if none; set: insert or replace (holder
 * and expiry), -ENOMEM; del: -ENOENT. */
struct store_resv* store__resv_find(const struct store_state* s,
                                    uint64_t parent,
                                    const char* name,
                                    size_t len);
int store__resv_set(struct store_state* s, const struct store_resv_rec* r);
/* The ino of the first reservation (origin, token) holds; 0 none. */
uint64_t store__resv_ino(const struct store_state* s,
                         uint64_t origin,
                         uint64_t token);
int store__resv_del(struct store_state* s,
                    uint64_t parent,
                    const char* name,
                    size_t len);
/* The time a command of now_ns judges reservations at. */
static inline int64_t store__resv_time(const struct store_state* s,
                                       int64_t now_ns)
{
    return now_ns > s->resv_clock ? now_ns : s->resv_clock;
}
/* Apply a REC_RESV record (replay, install): -EUCLEAN (msg) on a REMOVE
 * of an absent reservation or of another holder's, -ENOMEM. */
int store__resv_apply(struct store_state* s,
                      const struct store_resv_rec* r,
                      char* msg,
                      size_t cap);
/* The entry a name stands for: a name entry's target, else e itself
 * (NULL if a name entry's target is absent: never in a checked state). */
struct entry* store__resolve(const struct store_state* s, struct entry* e);
/* The name entry of target with the smallest ino above `after` (0: the
 * first), or NULL: its other names in ino order. */
struct entry* store__link_next(const struct store_state* s,
                               uint64_t target,
                               uint64_t after);
/* Every entry attached to a live parent, every name entry's target live
 * and not a directory (check after a replay). */
int store__state_check(const struct store_state* s, char* msg, size_t cap);
/* Fill a public attr from an entry. */
void store__attr(const struct entry* e, struct store_attr* a);
/* Is `type` a special file (no content of its own: FIFO, socket, device)? */
static inline bool store__special(uint8_t type)
{
    return type >= STORE_FIFO && type <= STORE_BLK;
}
/* The device number a special entry's content holds (0: none). */
static inline uint64_t store__rdev(uint8_t type,
                                   const void* content,
                                   uint64_t len)
{
    return (type == STORE_CHR || type == STORE_BLK) && len == STORE_RDEV_LEN
               ? get_le64(content)
               : 0;
}
/* Length of the absolute path of e ("/" = 1). */
size_t store__path_len(const struct store_state* s, const struct entry* e);
/* Children of every directory, parents before children (BFS). Returns a
 * malloc'd array of s->nentries entries, or NULL (-ENOMEM). */
struct entry** store__walk(const struct store_state* s);

/* ---- records (dbfile_record.c) ---- */
size_t store__rec_put_size(const struct store_rec* r);
void store__rec_put_encode(const struct store_rec* r, uint8_t* p);
void store__rec_del_encode(uint64_t ino,
                           uint64_t rev,
                           uint64_t prev_frame,
                           uint32_t prev_rec,
                           uint8_t* p);
void store__rec_dedup_encode(uint64_t origin, uint64_t seq, uint8_t* p);
void store__rec_result_encode(uint64_t origin,
                              const struct dedup_result* res,
                              uint8_t* p);
void store__rec_snap_encode(const char* name,
                            uint16_t len,
                            uint64_t rev,
                            int64_t ctime_ns,
                            uint8_t* p);
void store__rec_snapdrop_encode(const char* name, uint16_t len, uint8_t* p);
void store__rec_compact_encode(uint64_t rev, uint8_t* p);
size_t store__rec_resv_size(const struct store_resv_rec* r);
void store__rec_resv_encode(const struct store_resv_rec* r, uint8_t* p);
/* DEDUP and RESULT records that rebuild one origin exactly (p NULL: size
 * only). Returns their bytes; *records += their count. */
size_t store__dedup_emit(const struct dedup_origin* o,
                         uint8_t* p,
                         uint32_t* records);
/* Size of the SNAP/COMPACT/RESV records of a state (images, base). */
size_t store__meta_size(const struct store_state* s, uint32_t* records);
/* Encode them at p (store__meta_size bytes). */
void store__meta_encode(const struct store_state* s, uint8_t* p);
/* Decode one record at p[0..len). Returns its size, or -EBADMSG. */
long store__rec_decode(const uint8_t* p, size_t len, struct store_anyrec* r);
/* Apply a decoded record to s. */
int store__rec_apply(struct store_state* s,
                     const struct store_anyrec* r,
                     uint64_t loc_frame,
                     uint32_t loc_rec,
                     char* msg,
                     size_t cap);

/* ---- the store ---- */
struct pending {
    uint8_t* buf;
    size_t len, cap;
    uint32_t records;
};

/* A sealed frame's raw records, kept until store_frame_done so that views
 * and reads of history are exact before the frame is durable. */
struct inflight {
    uint64_t off;
    uint8_t* raw;
    size_t len;
    uint64_t last_rev;
};

struct store {
    struct store_options opt;
    struct store_state s;
    char* path;
    int fd;
    int io_err; /* sticky: a frame write failed */
    /* I/O thread only: after a failed write, later frames are not written
     * (a hole followed by a valid frame would read as corruption). */
    _Atomic int write_err;
    uint64_t next_off;    /* file offset of the next sealed frame */
    uint64_t durable_off; /* file end after the last done frame */
    store_index durable_index;
    store_index sealed_index; /* applied index of the last sealed frame */
    uint64_t sealed_rev;      /* revision of the last sealed frame */
    uint64_t frames;          /* frames in the file (valid + sealed) */
    uint64_t payload_raw, payload_stored; /* totals over frames */
    struct pending pend;
    struct store_frame_cache* cache;
    /* history (issue 5) */
    struct inflight* inflight; /* sealed frames not done, in seal order
                                  (as many as the node keeps in flight) */
    size_t ninflight, inflight_cap;
    uint64_t durable_rev; /* revision held by the durable file */
    uint64_t base_rev;    /* revision of the file's BASE prefix (0: none):
                             older revisions are not in this file */
    uint64_t db_gen;      /* bumped whenever locations change (rewrite,
                             image install): views rebuild */
    bool compacting;      /* a store_compaction is between begin/finish */
    bool tail_pending;    /* keep_torn_tail: a torn tail is still on disk */
    struct store_view_cache* views; /* view.c: NULL until the first view */
};

/* Frame header (64 bytes on disk, little-endian; docs/format-db.md). */
struct frame_header {
    uint32_t magic;
    uint16_t version;
    uint16_t header_len;
    uint32_t flags;
    uint32_t record_count;
    uint32_t raw_len;
    uint32_t comp_len;
    uint64_t first_rev;
    uint64_t last_rev;
    uint64_t applied_index;
    uint64_t next_ino;
    uint64_t checksum;
};
_Static_assert(sizeof(struct frame_header) == 64, "frame header is 64 bytes");
_Static_assert(offsetof(struct frame_header, checksum) == 56,
               "checksum is the last field");
#define FRAME_MAGIC 0x42444651u /* "QFDB" */
#define FRAME_VERSION 1
#define FRAME_HEADER_LEN 64
#define FRAME_F_BASE 1u /* written by image install: sets the state */

struct store_frame {
    uint64_t off;              /* file offset */
    uint64_t last_rev;         /* revision durable once written */
    size_t len;                /* header + compressed payload */
    store_index applied_index; /* durable once written */
    uint8_t bytes[];
};

void store__trace(struct store* st, int level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Queue records in the pending frame (apply, dbfile_record.c). -ENOMEM. */
int store__pend_put(struct store* st,
                    const struct store_rec* r,
                    uint32_t* rec_off);
int store__pend_del(struct store* st,
                    uint64_t ino,
                    uint64_t rev,
                    uint64_t prev_frame,
                    uint32_t prev_rec);
/* A RESULT record: (origin, res->seq) applied with its result. */
int store__pend_result(struct store* st,
                       uint64_t origin,
                       const struct dedup_result* res);

int store__pend_snap(struct store* st,
                     const char* name,
                     uint16_t len,
                     uint64_t rev,
                     int64_t ctime_ns);
int store__pend_snapdrop(struct store* st, const char* name, uint16_t len);
int store__pend_compact(struct store* st, uint64_t rev);
int store__pend_resv(struct store* st, const struct store_resv_rec* r);

/* ---- apply (apply.c), shared with the history commands ---- */

/* One command being applied. */
struct apply_ctx {
    struct store* st;
    const struct store_cmd* c;
    uint64_t rev; /* revision of this command's change */
    store_change_cb cb;
    void* cb_data;
    bool changed; /* a revision is made (set by commit_put/del) */
    int fatal;    /* -ENOMEM / -EIO: the store cannot continue */
    uint64_t ino; /* result ino */
};

void store__rec_from_entry(const struct entry* e, struct store_rec* r);
/* Queue + apply the new state of an entry at x->rev (sets mod_rev). */
void store__commit_put(struct apply_ctx* x, struct store_rec* r);
void store__commit_del(struct apply_ctx* x, struct entry* e);
/* Bump d's mtime/ctime/version (its entries changed). */
void store__touch_dir(struct apply_ctx* x, struct entry* d);
/* Remove the name e (its entry must be detachable: no children). A name
 * entry goes and its target's ctime changes; an inode's primary name with
 * other names moves the inode to the oldest of them (the lowest name
 * entry ino), whose entry goes; else the entry goes. */
void store__remove_name(struct apply_ctx* x, struct entry* e);
/* The inode t gained or lost a name: a new ctime (and version). */
void store__touch_names(struct apply_ctx* x, struct entry* t);
void store__notify(struct apply_ctx* x,
                   uint64_t ino,
                   uint64_t parent,
                   const char* name,
                   bool removed);
/* A valid entry name: -EINVAL, -ENAMETOOLONG. */
int store__check_name(struct store* st, const char* name);
/* The reserved names of the root (.snapshots, .cluster). */
bool store__reserved(uint64_t parent, const char* name);
/* The history commands (histcmd.c, restore.c): the command's result. */
int store__op_snap_create(struct apply_ctx* x);
int store__op_snap_drop(struct apply_ctx* x);
int store__op_compact(struct apply_ctx* x);
int store__op_restore(struct apply_ctx* x);
/* Name reservations (resv.c). */
int store__op_reserve(struct apply_ctx* x, struct entry* d);
int store__op_release(struct apply_ctx* x);
/* CLAIM: drop every reservation of the command's holder (origin, ino). */
void store__resv_consume(struct apply_ctx* x);
/* Does a live reservation hold (parent, name) for this command? */
bool store__resv_blocks(const struct apply_ctx* x,
                        uint64_t parent,
                        const char* name);

/* Scan the db file, rebuild st->s, truncate a torn tail (dbfile_recover.c). */
int store__recover(struct store* st, struct store_recovery* rec);

/* ---- frames (dbfile_frame.c) ---- */
/* Decode a frame header (FRAME_HEADER_LEN bytes at p), unchecked. */
void store__frame_header_decode(const uint8_t* p, struct frame_header* h);
/* pread exactly len bytes at off (-EIO at end of file, -errno). */
int store__pread_all(int fd, void* buf, size_t len, uint64_t off);
/* Read and verify the frame at off: header + decompressed payload
 * (malloc'd *raw). -EBADMSG with reason, -EIO. */
int store__frame_read(int fd,
                      uint64_t off,
                      uint64_t file_size,
                      struct frame_header* h,
                      uint8_t** raw,
                      char* reason,
                      size_t cap);
/* Build a sealed frame from raw records. */
int store__frame_build(const uint8_t* raw,
                       size_t raw_len,
                       uint32_t records,
                       uint32_t flags,
                       uint64_t first_rev,
                       uint64_t last_rev,
                       store_index applied,
                       uint64_t next_ino,
                       uint64_t off,
                       struct store_frame** out);
/* The frame's header and checksum are consistent (before a write). */
bool store__frame_verify(const struct store_frame* f);

/* ---- frame cache (cache.c) ---- */
struct store_frame_cache* store__cache_new(uint64_t cap_bytes);
void store__cache_free(struct store_frame_cache* c);
/* Decompressed payload of the frame at off (borrowed until the next cache
 * call). */
int store__cache_get(struct store* st,
                     uint64_t off,
                     const uint8_t** raw,
                     size_t* len);
void store__cache_clear(struct store_frame_cache* c);
/* Copy of the content of the PUT record at (frame, rec) for ino (any frame:
 * durable, in flight or pending). *data malloc'd. -EUCLEAN on mismatch. */
int store__content_at(struct store* st,
                      uint64_t frame,
                      uint32_t rec,
                      uint64_t ino,
                      void** data,
                      size_t* len);

/* ---- history (history.c): the tree at a past revision ---- */

/* One entry of a past tree. Compact: attributes + db location of the
 * content (never the content). */
struct hist_ent {
    uint64_t ino, parent;
    uint64_t create_rev, mod_rev, version;
    int64_t atime_ns, mtime_ns, ctime_ns;
    uint64_t size;
    uint64_t rdev;      /* STORE_CHR / STORE_BLK */
    uint64_t loc_frame; /* PUT record holding the content */
    uint32_t loc_rec;
    uint32_t mode, uid, gid;
    uint32_t name_off; /* into hist.names */
    uint32_t nsubdirs;
    uint64_t target; /* STORE_LINK: the target's ino */
    uint32_t nlinks; /* others: name entries naming it at this revision */
    uint16_t name_len;
    uint8_t type;
    uint8_t live; /* build only */
};

/* The tree at one revision: immutable once built. */
struct store_hist {
    uint64_t rev;
    uint64_t gen; /* st->db_gen when built: locations valid while equal */
    size_t n;
    struct hist_ent* ents; /* sorted by ino */
    uint32_t* kids;        /* indexes of ents sorted by (parent, name) */
    size_t nkids;          /* n - 1: every entry but the root */
    char* names;
    size_t names_len;
};

/* Can revision rev be built? -ENOENT (compacted: traced with the oldest
 * retained revision), -EINVAL (future). */
int store__hist_check(struct store* st, uint64_t rev);
/* Oldest revision this store can build (max of compact and base). */
uint64_t store__hist_oldest(const struct store* st);
/* Build the tree at rev from the db file, in-flight frames and pending
 * records. *out malloc'd (store__hist_free). */
int store__hist_build(struct store* st, uint64_t rev, struct store_hist** out);
void store__hist_free(struct store_hist* h);
const struct hist_ent* store__hist_find(const struct store_hist* h,
                                        uint64_t ino);
const char* store__hist_name(const struct store_hist* h,
                             const struct hist_ent* e);
/* Position in h->kids of the first child of parent with name > after
 * (after NULL: the first child). The children of parent are the entries
 * from there while their parent matches (h->nkids: none). */
size_t store__hist_child_after(const struct store_hist* h,
                               uint64_t parent,
                               const char* after,
                               size_t len);
const struct hist_ent* store__hist_child(const struct store_hist* h,
                                         uint64_t parent,
                                         const char* name,
                                         size_t len);
void store__hist_attr(const struct hist_ent* e, struct store_attr* a);
/* A name entry's target at the tree's revision, else e. */
const struct hist_ent* store__hist_resolve(const struct store_hist* h,
                                           const struct hist_ent* e);

/* ---- views (view.c) ---- */

/* Free the view cache (store_close; every view released). NULL: nothing. */
void store__views_free(struct store_view_cache* c);

/* Delete a leftover <db>.compact (open). */
int store__compact_cleanup(struct store* st);
/* Crash hooks for tests: _exit(99) if $QFS_CRASH_POINT equals point. */
void store__crash_point(const char* point);

#endif /* QFS_STORE_INTERNAL_H */
