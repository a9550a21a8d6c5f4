/* fs.h - the FUSE low-level filesystem: translates requests into store reads
 * and node proposals (DESIGN §2-3). Runs on the node's loop thread: reader
 * threads read the FUSE fd and hand requests to the loop (fs_reader_start),
 * so handlers never block; a handler either replies at once or keeps its
 * fuse_req_t until its proposal's callback runs.
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
    /* Threads of the request reader (fs_reader_start): 0 for
     * FS_READER_THREADS_DEFAULT, at most FS_READER_THREADS_MAX. */
    unsigned reader_threads;
};
enum { FS_READER_THREADS_DEFAULT = 4, FS_READER_THREADS_MAX = 16 };
void fs_options_default(struct fs_options* o);

struct fs;

/* n is borrowed and must outlive the fs. */
struct fs* fs_new(struct node* n, const struct fs_options* o);
/* The mount's FUSE connection (fuseconn_record): MAJ << 20 | MIN of its
 * device. Until it is set, a truncation alone is never committed at its
 * writer's first close (fs_write.c do_finish). */
void fs_set_conn(struct fs* f, unsigned conn);
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

/* The request reader (fs_reader.c): threads reading a clone of the
 * session's fd answer a FLUSH themselves when this mount holds no write
 * state (a cached `cat`'s close, answered without waking the loop) and
 * hand every other request to the loop: async's callback calls
 * fs_reader_drain, which processes them through the session. While
 * requests pile up the loop reads the session's fd itself (poll). */
struct fs_reader_hooks {
    /* Before each request (loop): true to stop processing and reading
     * (the node's backlog is full); the caller resumes with
     * fs_reader_pause(f, false). May be NULL. */
    bool (*paused)(void* data);
    /* The thread stopped reading (loop): err 0 when the mount went away,
     * else -errno of the read. */
    void (*on_end)(void* data, int err);
    void* data;
};
/* After fuse_session_mount and fs_metrics_attach. async, and poll on
 * fuse_session_fd(se): initialized on the loop, not started, owned by the
 * caller (closed after fs_free). */
int fs_reader_start(struct fs* f,
                    struct fuse_session* se,
                    uv_async_t* async,
                    uv_poll_t* poll,
                    const struct fs_reader_hooks* hooks);
void fs_reader_drain(struct fs* f);
void fs_reader_pause(struct fs* f, bool paused);
/* Shutdown begins: no request is processed any more (queued ones are
 * answered EIO) and the thread reads no more after its current read. */
void fs_reader_close(struct fs* f);
/* After the loop: end the thread (cancelled in its read) and join it.
 * Also done by fs_free. */
void fs_reader_stop(struct fs* f);

/* The request table; pass `f` as the session's userdata. */
const struct fuse_lowlevel_ops* fs_lowlevel_ops(void);

/* store_change_cb for node_options.on_change (data = struct fs *). */
void fs_on_change(void* data, const struct store_change* c);

#endif /* QFS_FS_H */
