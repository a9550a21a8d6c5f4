/* store.h - the replicated state machine: an MVCC namespace of files,
 * directories, symlinks and special files (FIFOs, sockets, devices),
 * materialized in an lz4-compressed append-only db file (DESIGN §2, §5;
 * byte format in docs/format.md).
 *
 * Threads: everything runs on the node's loop thread except
 * store_frame_write(), which the node's I/O thread calls (it touches only the
 * db fd and the frame it is given).
 *
 * Model. Every entry has a stable inode number (`ino`, assigned
 * deterministically at creation, kept across renames, never reused), a
 * type, mode/uid/gid, times, size, and MVCC fields: create_rev, mod_rev,
 * version (etcd's meaning). Keys are absolute paths ("/app/db.conf"); the
 * root "/" is ino 1 and always exists. A file, symlink or special file may
 * have further names (hard links, STORE_OP_LINK): every read by name
 * (lookup, readdir, views) answers the inode's attributes (its ino); the
 * inode's own name is its primary one (store_name, store_path), and
 * store_names lists them all. Every applied command that changes
 * anything gets the next revision (the same on every replica, because apply
 * is deterministic: time comes from the command, never the clock).
 * Live values are kept in memory; older versions are read back from the db
 * file through a bounded frame cache.
 *
 * Durability: store_apply changes memory and queues records. The node seals
 * the queued records into a frame (store_frame_seal), has the I/O thread
 * write + fdatasync it (store_frame_write), then reports it
 * (store_frame_done); store_durable_index() is then the raft index the db
 * file holds durably, and the raft log may be compacted up to it. On open,
 * frames are scanned, a torn tail is truncated, and the node replays raft
 * entries after store_applied_index().
 *
 * Errors: negative errno. Apply errors (ENOENT, EEXIST, ENOTEMPTY, ...) are
 * results of a command, identical on every replica, not failures of apply.
 */
#ifndef QFS_STORE_H
#define QFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ROOT_INO 1

/* The index of the raft entry a command came in (the node's log numbering:
 * the store only compares and records it). */
typedef uint64_t store_index;

/* Where the store's log lines go. Levels: the same numbers as the raft
 * tracer's (the node sends both to one sink). */
enum store_trace_level {
    STORE_TRACE_DEBUG = 0,
    STORE_TRACE_INFO = 1,
    STORE_TRACE_WARN = 2,
    STORE_TRACE_ERROR = 3,
};
struct store_tracer {
    void* data;
    void (*emit)(void* data, int level, const char* msg); /* may be NULL */
    int level; /* minimum level emitted */
};

enum store_type {
    STORE_FILE = 1,
    STORE_DIR = 2,
    STORE_SYMLINK = 3,
    /* Special files (STORE_OP_MKNOD): no content of their own; the kernel
     * of each node does their I/O (a FIFO or a socket is local to the
     * host that opens it). */
    STORE_FIFO = 4,
    STORE_SOCK = 5,
    STORE_CHR = 6, /* character device: rdev */
    STORE_BLK = 7, /* block device: rdev */
};

struct store_attr {
    uint64_t ino;
    uint8_t type;  /* enum store_type */
    uint32_t mode; /* permission bits only (07777) */
    uint32_t uid, gid;
    uint64_t size; /* bytes of content (symlink: target length) */
    int64_t atime_ns, mtime_ns, ctime_ns;
    uint64_t create_rev, mod_rev, version;
    uint32_t nlink; /* dirs: 2 + subdirectories; others: their names (1 +
                       hard links, STORE_OP_LINK) */
    uint64_t rdev;  /* STORE_CHR / STORE_BLK: the device number as the
                       FUSE protocol carries it; 0 otherwise */
};

/* The largest file_size_max store_open accepts (64 MiB). */
#define STORE_FILE_SIZE_LIMIT (64ull << 20)

struct store_options {
    uint64_t file_size_max;     /* EFBIG past this; default 1 MiB */
    uint64_t quota_bytes;       /* live bytes; ENOSPC past this (past
                                   less for a command with a reserve_pct);
                                   def 2 GiB */
    uint32_t name_max;          /* default 255 */
    uint32_t path_max;          /* default 4096 */
    uint64_t frame_cache_bytes; /* decompressed frames cached; def 64 MiB */
    /* Leave a torn tail on disk: store_open reports it in *rec and the store
     * writes nothing until store_drop_tail() (the node first checks that its
     * raft log can replay what the tail held). Default false: truncated at
     * open. */
    bool keep_torn_tail;
    struct store_tracer tracer;
};
void store_options_default(struct store_options* o);

struct store_recovery {
    uint64_t frames;       /* valid frames read */
    uint64_t torn_bytes;   /* bytes truncated from a torn/corrupt tail */
    char torn_reason[128]; /* what was wrong with the dropped tail */
    /* For the tail rule (docs/format-db.md "Torn tail rule"): */
    uint64_t torn_off;         /* where the valid prefix ends (tail start) */
    uint64_t revision;         /* revision held by the valid prefix */
    store_index applied_index; /* raft index applied by the valid prefix */
    /* Best effort, 0 if unknown: the highest last_rev / applied_index named
     * by a frame header still readable in the tail (checksum not proven). */
    uint64_t tail_rev_max;
    store_index tail_index_max;
};

struct store;

/* Open or create the db file at path and rebuild the index. A torn or
 * corrupt tail is truncated (reported in *rec and via the tracer). A bad
 * frame followed by a valid one is corruption: -EUCLEAN, the file is left
 * alone, and rec->torn_reason names the frame and offset. rec may be NULL. */
int store_open(const char* path,
               const struct store_options* o,
               struct store** out,
               struct store_recovery* rec);
void store_close(struct store* st);
/* With keep_torn_tail: truncate the torn tail store_open reported
 * (ftruncate + fdatasync; WARN via the tracer). 0 if there is none. Until
 * then the store refuses to seal frames or install images (-EIO). */
int store_drop_tail(struct store* st);

/* ---- reads of the current state (loop thread) ---- */

int store_getattr(struct store* st, uint64_t ino, struct store_attr* a);
/* -ENOENT, -ENOTDIR (parent not a dir), -ENAMETOOLONG. */
int store_lookup(struct store* st,
                 uint64_t parent,
                 const char* name,
                 struct store_attr* a);
/* Content of a file or a symlink's target. *data is borrowed until the next
 * store_apply / store_image_install. -EISDIR for a directory. */
int store_read(struct store* st, uint64_t ino, const void** data, size_t* len);
/* Children of a directory in name order, starting after `after` (NULL or ""
 * for the beginning). cb returns non-zero to stop (that value is returned).
 * name and attr are borrowed for the call. */
typedef int (*store_readdir_cb)(void* data,
                                const char* name,
                                const struct store_attr* a);
int store_readdir(struct store* st,
                  uint64_t dir,
                  const char* after,
                  store_readdir_cb cb,
                  void* data);
/* The attributes and content of live `ino` as of revision
 * `rev`, read back through the db file and the frame cache. *data is
 * malloc'd (caller frees; NULL for a directory). -ENOENT if ino did not
 * exist at rev (or is not live now), -EAGAIN if the needed frame is not
 * durable yet, -EUCLEAN on a bad record. */
int store_read_at(struct store* st,
                  uint64_t ino,
                  uint64_t rev,
                  struct store_attr* a,
                  void** data,
                  size_t* len);
/* Absolute path of a live ino into buf. -ENOENT, -ENAMETOOLONG. */
int store_path(struct store* st, uint64_t ino, char* buf, size_t cap);
/* The directory and name of a live ino other than the root: *parent and
 * the name (NUL-terminated) into buf. -ENOENT, -EINVAL (the root),
 * -ENAMETOOLONG. */
int store_name(struct store* st,
               uint64_t ino,
               uint64_t* parent,
               char* buf,
               size_t cap);

/* Whether the name may go in directory parent as far as the path limit
 * goes (what a CREATE checks): 0, -ENAMETOOLONG, -ENOENT, -ENOTDIR. */
int store_path_fits(struct store* st, uint64_t parent, const char* name);

/* Every name of live ino (hard links: docs/consistency.md), the primary
 * name first, then the others in the order they would become primary:
 * cb(data, parent, name, path) with the name's directory, the name and its
 * absolute path, in buf (cap bytes; borrowed for the call; buf NULL: path
 * NULL). Stops at the first non-zero cb result and returns it. -ENOENT,
 * -EINVAL (the root), -ENAMETOOLONG (a path past cap). */
typedef int (*store_names_cb)(void* data,
                              uint64_t parent,
                              const char* name,
                              const char* path);
int store_names(struct store* st,
                uint64_t ino,
                char* buf,
                size_t cap,
                store_names_cb cb,
                void* data);

struct store_stats {
    uint64_t revision;         /* last revision */
    uint64_t compact_revision; /* oldest revision still retained */
    store_index applied_index;
    store_index durable_index;
    uint64_t keys;       /* live entries */
    uint64_t live_bytes; /* content bytes of live entries */
    uint64_t quota_bytes;
    uint64_t db_bytes; /* size of the db file */
    uint64_t frames;
    uint64_t payload_raw_bytes;    /* records before lz4, over all frames */
    uint64_t payload_stored_bytes; /* frames on disk (headers included) */
    uint64_t origins;              /* entries in the dedup table */
};
void store_get_stats(const struct store* st, struct store_stats* s);
store_index store_applied_index(const struct store* st);
store_index store_durable_index(const struct store* st);

/* ---- commands (what a proposal carries) ---- */

enum store_op {
    STORE_OP_CREATE = 1, /* regular file; flags STORE_EXCL, STORE_TRUNC,
                            STORE_WITH_DATA */
    STORE_OP_MKDIR = 2,
    STORE_OP_SYMLINK = 3, /* data = target */
    STORE_OP_WRITE = 4,   /* replace ino's whole content with data; and
                             set the attributes set_mask selects (not
                             SIZE): one entry per file update; size, if
                             not 0, its ctime (not past now_ns) */
    STORE_OP_SETATTR = 5, /* set_mask selects fields */
    STORE_OP_UNLINK = 6,
    STORE_OP_RMDIR = 7,
    STORE_OP_RENAME = 8, /* flags STORE_NOREPLACE | STORE_EXCHANGE */
    /* History (store_history.h). */
    STORE_OP_SNAP_CREATE = 9, /* name: a named snapshot of the revision
                                 before this command; EEXIST, EINVAL */
    STORE_OP_SNAP_DROP = 10,  /* name; ENOENT */
    STORE_OP_COMPACT = 11,    /* size: forget history before this revision
                                 (clamped to the oldest named snapshot) */
    STORE_OP_RESTORE = 12,    /* name: snapshot name or "@REV"; new_name:
                                 absolute path of the subtree to reset ("/":
                                 the whole tree, reserved names excepted) */
    /* Outcomes (fs/node.c): carries the (origin, seq) of an earlier
     * proposal and changes nothing but the dedup table. Whichever of the
     * two is applied first wins; the other is a duplicate. */
    STORE_OP_CANCEL = 13,
    /* A special file: `type` (STORE_FIFO..STORE_BLK), mode, uid, gid;
     * `size` carries the device number of STORE_CHR / STORE_BLK (ignored
     * for the others). EEXIST on an existing name. */
    STORE_OP_MKNOD = 14,
    /* A hard link: a new name (parent, name) for the existing entry
     * `ino` (not a directory: EPERM). EEXIST on an existing name; ENOENT
     * when ino is gone. Result ino: ino (its nlink counts the new name).
     * The entry keeps its primary name; removing that name moves the
     * entry to its oldest other name (docs/consistency.md, "Hard
     * links"). */
    STORE_OP_LINK = 15,
    /* A name reservation (docs/consistency.md, "O_EXCL"): an O_EXCL
     * create answered before its content commits. (parent, name) becomes
     * reserved by the holder (origin, ino): `ino` is the holder's token
     * (non-zero, unique per pending file of the origin: not a store ino),
     * `size` its lifetime in ns (STORE_RESV_TTL_MIN..STORE_RESV_TTL_MAX,
     * -EINVAL otherwise). It is live while a later command's now_ns is
     * below now_ns + size (the proposers' wall clocks decide, identically
     * on every replica). A live reservation held by another makes
     * CREATE with STORE_EXCL or STORE_CLAIM, MKDIR, SYMLINK, MKNOD, LINK
     * and RENAME with STORE_NOREPLACE onto that name fail with EEXIST;
     * nothing else sees it: lookups, readdir, views, history, restore,
     * watchers, plain CREATE / RENAME onto the name go on as if it were
     * free. It makes no revision and no change callback.
     * Result: 0, the holder's own reservation renewed (its expiry moved);
     * EEXIST: the name exists or another holds it live; ENOENT, ENOTDIR,
     * ENAMETOOLONG, EPERM as for a CREATE of that name; ENOSPC: already
     * STORE_RESV_MAX live reservations. */
    STORE_OP_RESERVE = 16,
    /* Drop every reservation held by (origin, ino), wherever its name:
     * 0 whether or not one was held (idempotent). */
    STORE_OP_RELEASE = 17,
};
#define STORE_RESV_TTL_MIN (1000000000LL)          /* 1 s */
#define STORE_RESV_TTL_MAX (3600LL * 1000000000LL) /* 1 h */
#define STORE_RESV_MAX 4096

enum store_cmd_flags {
    STORE_EXCL = 1u << 0,      /* CREATE: fail with EEXIST if name exists */
    STORE_NOREPLACE = 1u << 1, /* RENAME_NOREPLACE */
    STORE_EXCHANGE = 1u << 2,  /* RENAME_EXCHANGE */
    STORE_TRUNC = 1u << 3,     /* CREATE of an existing file: truncate */
    /* RENAME of the regular file `ino` (the source) that also replaces its
     * content with data and sets the attributes set_mask selects, as a
     * WRITE would: one entry for write-temp-then-rename.
     * CREATE: the new file with its whole content (data), mode, uid, gid
     * and the times set_mask selects (ATIME, MTIME) in one entry; a
     * regular file of that name (made meanwhile) is replaced whole in
     * place, the last commit winning; EISDIR / EEXIST for another type.
     * `size`, when non-zero and not past now_ns: the time of the file's
     * last change on its writer's mount (0: now_ns), its ctime and its
     * atime/mtime unless set_mask sets them, and its directory's
     * mtime/ctime (never lowered). */
    STORE_WITH_DATA = 1u << 4,
    /* CREATE with STORE_WITH_DATA by the holder (origin, ino) of a
     * reservation (STORE_OP_RESERVE): the commit of an O_EXCL file. Every
     * reservation (origin, ino) holds is consumed, whatever the outcome;
     * EEXIST if another holds (parent, name) live; otherwise as
     * STORE_WITH_DATA (a regular file made meanwhile under that name, by a
     * plain create or rename, is replaced whole: the last commit wins). */
    STORE_CLAIM = 1u << 5,
    /* CREATE with STORE_WITH_DATA of a pending new file renamed before its
     * commit: an existing entry of that name (not a directory) loses the
     * name, as a RENAME over it would take it (its inode keeps its other
     * names), instead of being written in place. */
    STORE_REPLACE = 1u << 6,
};

enum store_set {
    STORE_SET_MODE = 1u << 0,
    STORE_SET_UID = 1u << 1,
    STORE_SET_GID = 1u << 2,
    STORE_SET_SIZE = 1u << 3, /* truncate/extend (zero-filled) */
    STORE_SET_ATIME = 1u << 4,
    STORE_SET_MTIME = 1u << 5,
};

/* A decoded command. Strings and data are borrowed (point into the encoded
 * bytes after decode). */
struct store_cmd {
    uint8_t op;          /* enum store_op */
    uint8_t type;        /* MKNOD: enum store_type; 0 for every other op */
    uint32_t flags;      /* enum store_cmd_flags */
    uint64_t origin;     /* proposing node id */
    uint64_t seq;        /* per-origin proposal id: (origin, seq) is applied
                            at most once */
    int64_t now_ns;      /* proposer's wall clock: ctime/mtime of the change */
    uint64_t parent;     /* CREATE/MKDIR/SYMLINK/UNLINK/RMDIR/RENAME source */
    const char* name;    /* NUL-terminated, <= name_max */
    uint64_t new_parent; /* RENAME */
    const char* new_name;
    uint64_t ino; /* WRITE / SETATTR target; RESERVE, RELEASE, CLAIM:
                     the holder's token */
    uint32_t mode, uid, gid;
    uint32_t set_mask; /* SETATTR: enum store_set */
    uint64_t size;     /* SETATTR: new size; MKNOD: rdev; RESERVE: ttl ns;
                          CREATE with data: its ctime */
    int64_t atime_ns, mtime_ns;
    const void* data; /* WRITE content, SYMLINK target */
    size_t data_len;
    /* The quota's root reserve (0..STORE_RESERVE_PCT_MAX): content may
     * grow only while the live bytes stay within quota x (100 -
     * reserve_pct) / 100. The proposer sets it: its
     * --quota-reserve-percent for a request of a uid other than 0, 0 for
     * root's. Carried in the command, so every replica takes the same
     * decision whatever its own flags (docs/operations.md, "Quota"). */
    uint8_t reserve_pct;
};
#define STORE_RESERVE_PCT_MAX 50

/* Encoded size, encode (returns bytes written or -ENOSPC), decode (strict
 * bounds checks; -EBADMSG on malformed input, never over-reads). */
size_t store_cmd_encoded_size(const struct store_cmd* c);
long store_cmd_encode(const struct store_cmd* c, void* buf, size_t cap);
int store_cmd_decode(struct store_cmd* c, const void* buf, size_t len);

/* ---- apply (loop thread) ---- */

/* What one applied command touched: for kernel cache invalidation. */
struct store_change {
    uint64_t ino;     /* entry whose attrs/content changed (0: none) */
    uint64_t parent;  /* directory whose entry `name` changed (0: none) */
    const char* name; /* borrowed for the callback */
    bool removed;     /* the name no longer refers to ino */
};
typedef void (*store_change_cb)(void* data, const struct store_change* c);

struct store_result {
    int err;           /* the command's result: 0 or -errno */
    uint64_t ino;      /* created / written entry */
    uint64_t revision; /* revision of the change (unchanged on error) */
    bool duplicate;    /* (origin, seq) was already applied: nothing done */
};

/* Apply the command carried by raft entry `index` (data/len from a
 * RAFT_ENTRY_NORMAL entry). Index must be store_applied_index() + 1 or
 * later (entries that do not carry commands advance it with
 * store_apply_index). Malformed command bytes are an error result
 * (-EBADMSG), identical on every replica. cb (may be NULL) is called for
 * each change. Returns 0 unless the store is unusable (sticky I/O error). */
int store_apply(struct store* st,
                store_index index,
                const void* cmd,
                size_t len,
                store_change_cb cb,
                void* cb_data,
                struct store_result* res);
/* Whether the command (origin, seq) was applied (or refused: used up
 * either way): 1 yes, 0 no, -1 unknown (older than the dedup window). */
int store_dedup_applied(const struct store* st, uint64_t origin, uint64_t seq);
/* What became of the command (origin, seq), from the replicated dedup
 * table: every replica answers alike, also one that received it only in an
 * installed image. RESULT: *res is the result store_apply gave (err, ino,
 * revision; duplicate false). */
enum store_outcome {
    STORE_OUTCOME_NONE,      /* not applied (yet) */
    STORE_OUTCOME_RESULT,    /* applied: its result in *res */
    STORE_OUTCOME_CANCELLED, /* used up by a STORE_OP_CANCEL (a fence) */
    STORE_OUTCOME_UNKNOWN,   /* used up, result not kept: older than the
                                window, or recorded without one (a db file
                                or image of an earlier version) */
};
enum store_outcome store_dedup_result(const struct store* st,
                                      uint64_t origin,
                                      uint64_t seq,
                                      struct store_result* res);
/* Advance the applied index over a NOOP/CONF entry. */
int store_apply_index(struct store* st, store_index index);

/* ---- durability (frames) ---- */

struct store_frame; /* sealed, compressed, with its file offset assigned */

/* Loop: seal queued records into *out (NULL when nothing is queued). */
int store_frame_seal(struct store* st, struct store_frame** out);
/* I/O thread: pwrite the frame at its offset and fdatasync the db file. */
int store_frame_write(struct store* st, struct store_frame* f);
/* The raft index a frame makes durable once written (any thread). */
store_index store_frame_applied_index(const struct store_frame* f);
/* Loop: the write finished with `err`; frees f. A non-zero err makes the
 * store refuse further applies (sticky). */
void store_frame_done(struct store* st, struct store_frame* f, int err);

/* ---- images: the store at one applied index, self-contained ---- */

/* Serialize the current state (live entries, revision, applied index, dedup
 * table, ino counter) into a malloc'd, checksummed buffer. */
int store_image_build(struct store* st, void** out, size_t* len);
/* Replace the whole state with an image: writes a new db file (tmp, fsync,
 * rename, fsync dir) and rebuilds the index. -EBADMSG on a corrupt image
 * (state untouched). -EBUSY while a sealed frame is not done yet (drain the
 * I/O thread first); queued, unsealed records are dropped (superseded). */
int store_image_install(struct store* st, const void* img, size_t len);

/* What an image's header says, checked (snapshot files carry an image). */
struct store_image_info {
    uint64_t revision;
    store_index applied_index;
    uint64_t keys; /* live entries, as store_stats counts them */
};
/* Check an image's header, length and checksum (not its records: install
 * does) and fill *info. -EBADMSG with a message in err (err may be NULL). */
int store_image_inspect(const void* img,
                        size_t len,
                        struct store_image_info* info,
                        char* err,
                        size_t err_cap);

#endif /* QFS_STORE_H */
