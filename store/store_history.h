/* store_history.h - the store's past: point-in-time views and the named
 * snapshots (DESIGN §5; docs/snapshots.md). Part of the store's contract,
 * next to store.h (the present) and store_compact.h (forgetting the past).
 *
 * Views. A view is the whole tree as it was at one revision, served from
 * the store's index and its db file (never from a copy made at snapshot
 * time: making a named snapshot only records a revision). Opening a view
 * builds, on demand, a compact index of the tree at that revision (ino ->
 * parent, name, attributes, db location of the content) by reading the db
 * file from its base (the last compaction) up to the revision, including
 * records not yet durable; contents are read back through the store's frame
 * cache. Views are immutable, reference-counted and cached by the store (a
 * bounded LRU of STORE_VIEWS_MAX views), so browsing a snapshot costs one
 * build. A view whose db locations went stale (the db file was rewritten by
 * a compaction or replaced by an image) rebuilds its tree on its next
 * content read.
 *
 * History and compaction. Named snapshots, compaction and restore are
 * replicated store commands (STORE_OP_SNAP_CREATE / SNAP_DROP / COMPACT /
 * RESTORE in store.h), so every replica keeps exactly the same history.
 * A revision is retained while it is >= the store's compact revision;
 * compaction never passes the oldest named snapshot.
 *
 * Threads: the loop thread, as every store read. Release every view before
 * store_close.
 */
#ifndef QFS_STORE_HISTORY_H
#define QFS_STORE_HISTORY_H

#include <stdint.h>

#include "store.h"

enum {
    STORE_VIEWS_MAX = 8,    /* views kept built (LRU) */
    STORE_SNAPS_MAX = 1024, /* named snapshots */
};

/* ---- views ---- */

struct store_view;

/* A view of `rev` (1 <= rev <= current revision). -ENOENT with a log line
 * naming the compact revision when rev is compacted; -EINVAL for a future
 * revision; -ENOMEM. *out holds a reference: release it with
 * store_view_release. */
int store_view_open(struct store* st, uint64_t rev, struct store_view** out);
/* Drop a reference (NULL: nothing). */
void store_view_release(struct store_view* v);
uint64_t store_view_revision(const struct store_view* v);

/* As their store_* counterparts, at the view's revision. Inos are the
 * store's inos as they were at that revision (root = STORE_ROOT_INO). */
int store_view_getattr(struct store_view* v,
                       uint64_t ino,
                       struct store_attr* a);
int store_view_lookup(struct store_view* v,
                      uint64_t parent,
                      const char* name,
                      struct store_attr* a);
/* Content (file) or target (symlink), malloc'd into *data (caller frees).
 * -EISDIR, -ENOENT, -EUCLEAN on a bad record, or a rebuild's error. */
int store_view_read(struct store_view* v,
                    uint64_t ino,
                    void** data,
                    size_t* len);
int store_view_readdir(struct store_view* v,
                       uint64_t dir,
                       const char* after,
                       store_readdir_cb cb,
                       void* data);

/* Drop the cached views (references held by callers stay valid). */
void store_views_flush(struct store* st);

/* ---- named snapshots (replicated state) ---- */

struct store_snap_info {
    char name[256]; /* NUL-terminated */
    uint64_t revision;
    int64_t ctime_ns; /* when it was made (the proposer's clock) */
};
/* In name order; cb returns non-zero to stop (that value is returned).
 * info is borrowed for the call. */
int store_snap_list(struct store* st,
                    int (*cb)(void* data, const struct store_snap_info* info),
                    void* data);
/* -ENOENT if there is no snapshot of that name. */
int store_snap_get(struct store* st,
                   const char* name,
                   struct store_snap_info* out);

#endif /* QFS_STORE_HISTORY_H */
