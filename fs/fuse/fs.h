/* fs.h - the FUSE low-level filesystem: translates requests into store reads
 * and node proposals (DESIGN §2-3). Runs on the node's loop thread: the FUSE
 * fd is polled on the loop, so handlers never block; a handler either replies
 * at once or keeps its fuse_req_t until its proposal's callback runs.
 * Kernel cache invalidations are queued to a notifier thread
 * (fs/fuse/notify.c), never sent from the loop (a notify can wait on a
 * directory lock held by a request that is waiting for us).
 */
#ifndef QFS_FS_H
#define QFS_FS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "../../store/store.h"
#include "node.h"

struct fs_options {
    bool linearizable;      /* ReadIndex barrier on lookup/open */
    double entry_timeout_s; /* kernel dentry cache; default 3600 (we
                               invalidate on every change) */
    double attr_timeout_s;  /* default 3600 */
    uint64_t file_size_max; /* EFBIG; default 1 MiB */
    /* Bytes of pending updates' content on this mount (close-to-commit
     * writes not yet committed); a write past it fails with ENOSPC and
     * discards its update. Default 64 MiB. */
    uint64_t pending_bytes_max;
    /* The quota's root reserve, in percent (0..STORE_RESERVE_PCT_MAX,
     * default 5): requests of a uid other than 0 may grow content only
     * while the live bytes stay within quota x (100 - it) / 100. Put in
     * every command this mount proposes (store_cmd.reserve_pct). */
    unsigned quota_reserve_pct;
    /* An initialized timer on the loop, owned by the caller (closed by it
     * after fs_free): commits updates no writer will close. Required. */
    uv_timer_t* settle_timer;
    /* An initialized async handle on the loop, owned by the caller (closed
     * after fs_free), whose callback calls fs_notified. Required. */
    uv_async_t* notify_async;
};
void fs_options_default(struct fs_options* o);

struct fs;

/* n is borrowed and must outlive the fs. */
struct fs* fs_new(struct node* n, const struct fs_options* o);
/* Start the notifier thread on se (call after the session is mounted). */
int fs_start_notifier(struct fs* f, struct fuse_session* se);
/* At shutdown, once no request is read any more: stops the notifier
 * thread, waiting up to timeout_ms. -ETIMEDOUT: it is blocked in a notify
 * that waits for a request nobody will answer; abort the connection
 * (fuseconn_abort), then fs_free joins it. */
int fs_stop_notifier(struct fs* f, unsigned timeout_ms);
/* The notifier has sent invalidations (called from notify_async's
 * callback, on the loop). */
void fs_notified(struct fs* f);
/* Orderly shutdown, once no new requests are read: commit every pending
 * update and wait for every write commit in flight; cb runs once
 * none is left (from a later loop iteration, never inside this call). */
void fs_quiesce(struct fs* f, void (*cb)(void* data), void* data);
/* Stop the notifier thread; drop open-file state; free. */
void fs_free(struct fs* f);

/* Bytes of write data queued behind commits in flight (copies kept until
 * their turn): with node_backlog_full, bounds what reading requests may
 * hold. */
uint64_t fs_held_bytes(const struct fs* f);

/* After fuse_session_mount: the session reads requests and writes replies
 * through fs_metrics.c's I/O functions, which time every request for the
 * metrics (quorumfs_fuse_*). 0 or the -errno of fuse_session_custom_io. */
int fs_metrics_attach(struct fs* f, struct fuse_session* se);

/* The request table; pass `f` as the session's userdata. */
const struct fuse_lowlevel_ops* fs_lowlevel_ops(void);

/* store_change_cb for node_options.on_change (data = struct fs *). */
void fs_on_change(void* data, const struct store_change* c);

#endif /* QFS_FS_H */
