/* log.h - the raft log on disk: segment files plus crash-safe hard state.
 *
 * Synchronous functions, meant to be called from ONE I/O thread (never the
 * loop thread); the module has no threads and no libuv of its own, so unit
 * tests call it directly. Layout in the directory (docs/format.md):
 *   seg-<first index, 20 digits>   records: magic, version, type, index,
 *                                  term, entry type, length, checksum, data
 *   meta                           hard state + last snapshot meta, written
 *                                  crash-safely (see log.c for the order)
 * Commit discipline: rlog_append writes records (no sync); rlog_sync makes
 * every earlier append, truncation and hard state durable with one
 * fdatasync per touched file in steady state (group commit: the caller
 * batches every proposal that arrived while the previous sync ran).
 * Errors are sticky: after a failed write or fsync every call returns the
 * same error (never retry fsync and carry on).
 */
#ifndef QFS_RAFT_LOG_H
#define QFS_RAFT_LOG_H

#include "raft.h"

struct rlog;

struct rlog_options {
    uint64_t
        segment_bytes_max; /* roll to a new segment past this; def 64 MiB */
    struct raft_tracer tracer;
    /* fallocate each new segment to segment_bytes_max, so that syncing an
     * append need not commit a file size change; the unused tail is zeros,
     * which recovery skips silently. */
    bool preallocate;
};
/* The options every opener of a node's log uses (the node, and the offline
 * restore that seeds a data dir): 64 MiB segments, preallocated; no
 * tracer. */
void rlog_options_default(struct rlog_options* o);

/* What was on disk. Owned by the rlog (valid until the next call that
 * changes the log, or rlog_close). */
struct rlog_loaded {
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap; /* index 0: none */
    unsigned n_entries;             /* contiguous from snap.index + 1 */
    const struct raft_entry* entries;
    uint64_t torn_bytes; /* truncated from a torn tail at open */
    bool fresh;          /* the directory held no log */
};

/* Open (creating the directory if needed) and load. A torn or corrupt tail
 * of the last segment is truncated and logged via the tracer with the byte
 * count; corruption anywhere else is -EUCLEAN with a message naming the file
 * and offset (never silently dropped). */
int rlog_open(const char* dir,
              const struct rlog_options* o,
              struct rlog** out,
              struct rlog_loaded* loaded);
void rlog_close(struct rlog* l);

/* Append entries (contiguous, following the last index, or following a
 * prior rlog_truncate). Not durable until rlog_sync. */
int rlog_append(struct rlog* l, const struct raft_entry* e, unsigned n);
/* Drop entries >= from (conflict resolution). */
int rlog_truncate(struct rlog* l, raft_index from);
/* Record the hard state; durable at the next rlog_sync. */
int rlog_set_hard_state(struct rlog* l, const struct raft_hard_state* hs);
/* Make everything above durable. */
int rlog_sync(struct rlog* l);

/* Record a snapshot's meta durably (the image itself lives in the store) and
 * drop the whole segments whose entries are all < keep_from. */
int rlog_compact(struct rlog* l,
                 const struct raft_snapshot_meta* snap,
                 raft_index keep_from);
/* After installing a snapshot from the leader: drop every entry and restart
 * the log after snap->index, durably. */
int rlog_reset(struct rlog* l, const struct raft_snapshot_meta* snap);

raft_index rlog_last_index(const struct rlog* l);

#endif /* QFS_RAFT_LOG_H */
