/* snapshot.h - point-in-time views of the store and snapshot files
 * (DESIGN §5-6).
 *
 * Views. A view is the whole tree as it was at one revision, served from
 * the store's index and its db file (never from a copy made at snapshot
 * time: making a named snapshot only records a revision). Opening a view
 * builds, on demand, a compact index of the tree at that revision (ino ->
 * parent, name, attributes, db location of the content) by reading the db
 * file from its base (the last compaction) up to the revision, including
 * records not yet durable; contents are read back through the store's frame
 * cache. Views are immutable, reference-counted and cached (a bounded LRU of
 * SNAP_VIEWS_MAX views), so browsing a snapshot costs one build.
 *
 * History and compaction. Named snapshots, compaction and restore are
 * replicated store commands (STORE_OP_SNAP_CREATE / SNAP_DROP / COMPACT /
 * RESTORE in store.h), so every replica keeps exactly the same history.
 * A revision is retained while it is >= the store's compact revision;
 * compaction never passes the oldest named snapshot.
 *
 * Snapshot files. A self-contained, checksummed image of the store at one
 * revision plus the raft membership (docs/format-snapshot.md). The same
 * store image (store_image_build) is what raft's InstallSnapshot carries.
 *
 * Threads: views run on the loop thread.
 */
#ifndef QFS_SNAPSHOT_H
#define QFS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../raft/raft.h"
#include "../store/store.h"

enum {
    SNAP_VIEWS_MAX = 8,    /* views kept built (LRU) */
    SNAP_NAMES_MAX = 1024, /* named snapshots */
};

/* ---- views ---- */

struct snap_view;

/* A view of `rev` (1 <= rev <= current revision). -ENOENT with a log line
 * naming the compact revision when rev is compacted; -EINVAL for a future
 * revision. *out holds a reference: release it with snap_view_release. */
int snap_view_open(struct store* st, uint64_t rev, struct snap_view** out);
void snap_view_release(struct snap_view* v);
uint64_t snap_view_revision(const struct snap_view* v);

/* As their store_* counterparts, at the view's revision. Inos are the
 * store's inos as they were at that revision (root = STORE_ROOT_INO). */
int snap_view_getattr(struct snap_view* v, uint64_t ino, struct store_attr* a);
int snap_view_lookup(struct snap_view* v,
                     uint64_t parent,
                     const char* name,
                     struct store_attr* a);
/* Content (file) or target (symlink), malloc'd into *data (caller frees). */
int snap_view_read(struct snap_view* v, uint64_t ino, void** data, size_t* len);
int snap_view_readdir(struct snap_view* v,
                      uint64_t dir,
                      const char* after,
                      store_readdir_cb cb,
                      void* data);

/* Drop cached views (e.g. after the db file was rewritten). */
void snap_views_flush(struct store* st);

/* ---- named snapshots (replicated state kept by the store) ---- */

struct snap_info {
    char name[256];
    uint64_t revision;
    int64_t ctime_ns; /* when it was made (the proposer's clock) */
};
/* In name order; cb returns non-zero to stop. */
int snap_list(struct store* st,
              int (*cb)(void* data, const struct snap_info* s),
              void* data);
int snap_get(struct store* st, const char* name, struct snap_info* out);

/* ---- snapshot files ---- */

struct snap_file_info {
    uint32_t version;
    uint64_t revision;
    raft_index applied_index;
    uint64_t keys;
    uint64_t image_bytes;
    uint64_t file_bytes;
    uint64_t checksum;
    struct raft_conf conf; /* membership at the snapshot */
};

/* Write image + conf to path: path.tmp -> fsync -> rename -> fsync(dir). */
int snap_file_save(const char* path,
                   const void* image,
                   size_t len,
                   const struct raft_conf* conf,
                   char* err,
                   size_t err_cap);
/* Read and verify a snapshot file; *image is malloc'd (caller frees).
 * -EBADMSG / -EIO with a message in err (truncated, bad checksum, bad
 * magic or version). */
int snap_file_load(const char* path,
                   struct snap_file_info* info,
                   void** image,
                   size_t* len,
                   char* err,
                   size_t err_cap);

#endif /* QFS_SNAPSHOT_H */
