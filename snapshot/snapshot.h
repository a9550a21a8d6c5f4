/* snapshot.h - snapshot files: a self-contained, checksummed image of the
 * store at one revision plus the raft membership (DESIGN §6;
 * docs/format-snapshot.md). The store image inside is the store's
 * (store_image_build, store_image_inspect, store_image_install): the same
 * bytes raft's InstallSnapshot carries. Point-in-time views and named
 * snapshots are the store's: store/store_history.h.
 *
 * Threads: any (no shared state).
 */
#ifndef QFS_SNAPSHOT_H
#define QFS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../raft/raft.h"

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
