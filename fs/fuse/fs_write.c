/* fs_write.c - close-to-commit writes (DESIGN §3, docs/consistency.md).
 *
 * One file update, one entry. Every write-path request on a regular file
 * of this mount changes the inode's pending update (struct fs_upd): the
 * whole new content, built from the committed content (or nothing after
 * an O_TRUNC) patched with the written bytes, plus the attributes set
 * through it. WRITE is answered at once. The update becomes one
 * STORE_OP_WRITE proposal (content and joined attributes together) at:
 *
 *   - its writer's FLUSH (close): close() returns once the entry is
 *     committed, durable on a quorum and applied here, with its error
 *     (EIO: no quorum; ENOSPC: quota; EFBIG: size);
 *   - FSYNC / FDATASYNC, from anyone;
 *   - a RENAME of the file by its writer: the entry is the rename and the
 *     content together (write-temp-then-rename);
 *   - the settle timer, for updates no writer will close: the kernel's
 *     write-back of mmap'd pages (WRITEs of no thread) and truncations
 *     (O_TRUNC, truncate(2)) no write followed;
 *   - a clean unmount (fs_quiesce).
 *
 * Who wrote it. FUSE tells the thread of each request, not the open file:
 * an update remembers the threads that wrote it (owners). A FLUSH from
 * another thread commits only if it is of the same process, resolved
 * through /proc/TID/status on that rare path (or if no writer is alive any
 * more, or more threads wrote than are remembered). So a `cat` closing the
 * file while its writer is mid-way publishes nothing.
 *
 * bash `cmd > f` opens f, dup2s it and closes the original fd (a FLUSH)
 * before cmd writes: a FLUSH of an update that is only a truncation does
 * not commit it, the writer's next one does (`: > f` flushes twice), or
 * the settle timer.
 *
 * A failed update changes nothing anywhere: a write past the size limit
 * (EFBIG) or past the pending bytes (ENOSPC) discards the update at once;
 * the error is that write()'s and again its writer's close(); the kernel
 * is told to drop what it holds of the file. A failed commit (EIO, quota)
 * likewise. A file unlinked while open for writing: its update is dropped
 * at the close (nothing to commit to), as a local file's data would be.
 *
 * Commits of one inode are serialized: a request that arrives while one is
 * in flight waits in the inode's queue and then applies to a new update
 * built from the content that commit produced.
 *
 * A new file not committed yet (fs_pnew.c) has its update keyed by its
 * local nodeid; its commit is one STORE_OP_CREATE with STORE_WITH_DATA
 * (fs__pnew_cmd), and when done the state moves to the store ino
 * (fs__pnew_done). Removed before that, it is dropped without an entry.
 *
 * This file: the update, its commits, the settle timer and unmount.
 * fs_wstate.c: the per-inode state. fs_owner.c: who wrote an update.
 * fs_wreq.c: the requests.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"

/* ---- the pending update ---- */

/* The kernel holds something other than the committed content of ino
 * (a discarded update, a write placed elsewhere): make it read again. */
static void kernel_drop(struct fs* f, uint64_t ino)
{
    fs__kernel_drop(f, ino); /* the nodeids that may show it */
}

/* ---- failed writes in the log ---- */

/* A write that fails is logged with its cause: at most one line per cause
 * every WFAIL_PERIOD_NS; the next line says how many were not logged. */
#define WFAIL_PERIOD_NS INT64_C(10000000000)

enum wfail_cause {
    WFAIL_SIZE = 0, /* EFBIG: past the file size limit */
    WFAIL_PENDING,  /* ENOSPC: past the mount's pending bytes */
    WFAIL_QUOTA,    /* ENOSPC: the cluster's quota */
    WFAIL_COMMIT,   /* EIO: not committed */
    WFAIL_CREATE,   /* a new file's create refused (its directory gone) */
};
_Static_assert(WFAIL_CREATE + 1 == sizeof(((struct fs*)0)->wfail) /
                                       sizeof(((struct fs*)0)->wfail[0]),
               "one slot per cause");

/* "32 MiB" when bytes is a whole number of MiB or KiB, else "N bytes". */
static void fmt_bytes(char* buf, size_t cap, uint64_t bytes)
{
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) {
        snprintf(buf, cap, "%llu MiB", (unsigned long long)(bytes >> 20));
    } else if (bytes >= 1024 && bytes % 1024 == 0) {
        snprintf(buf, cap, "%llu KiB", (unsigned long long)(bytes >> 10));
    } else {
        snprintf(buf, cap, "%llu bytes", (unsigned long long)bytes);
    }
}

static void wfail_log_err(struct fs* f,
                          uint64_t ino,
                          enum wfail_cause cause,
                          int errnum)
{
    struct fs_wfail* s = &f->wfail[cause];
    int64_t now = (int64_t)fs__mono_ns();
    if (s->last_ns != 0 && now - s->last_ns < WFAIL_PERIOD_NS) {
        s->suppressed++;
        return;
    }
    char path[512], amount[32], why[160], more[96] = "";
    if (fs__is_pnode(ino)) {
        if (fs__pnew_path(f, ino, path, sizeof(path)) != 0) {
            snprintf(path, sizeof(path), "a new file (dropped)");
        }
    } else if (store_path(node_store(f->node), ino, path, sizeof(path)) != 0) {
        snprintf(path, sizeof(path), "inode %llu (removed)",
                 (unsigned long long)ino);
    }
    const char* err = "EIO";
    switch (cause) {
    case WFAIL_SIZE:
        err = "EFBIG";
        fmt_bytes(amount, sizeof(amount), f->o.file_size_max);
        snprintf(why, sizeof(why), "file size limit %s", amount);
        break;
    case WFAIL_PENDING:
        err = "ENOSPC";
        fmt_bytes(amount, sizeof(amount), f->o.pending_bytes_max);
        snprintf(why, sizeof(why),
                 "writes waiting to commit on this mount reached "
                 "--pending-bytes %s",
                 amount);
        break;
    case WFAIL_QUOTA: {
        struct store_stats st;
        err = "ENOSPC";
        store_get_stats(node_store(f->node), &st);
        fmt_bytes(amount, sizeof(amount), st.quota_bytes);
        snprintf(why, sizeof(why), "quota %s reached, %llu bytes live", amount,
                 (unsigned long long)st.live_bytes);
        break;
    }
    case WFAIL_COMMIT:
        snprintf(why, sizeof(why),
                 "not committed: no quorum or leader within the proposal "
                 "timeout");
        break;
    case WFAIL_CREATE:
        err = strerrorname_np(errnum);
        if (err == NULL) {
            err = "error";
        }
        snprintf(why, sizeof(why), "%s",
                 errnum == ENOENT
                     ? "its directory was removed before the new file was "
                       "committed; the file was dropped"
                     : "the new file could not be created under its name; "
                       "it was dropped");
        break;
    }
    if (s->suppressed > 0) {
        snprintf(more, sizeof(more),
                 "; %llu more such failures in the last %lld s not logged",
                 (unsigned long long)s->suppressed,
                 (long long)((now - s->last_ns) / 1000000000));
    }
    node_log(f->node, RAFT_TRACE_WARN, "write of %s failed: %s (%s)%s", path,
             err, why, more);
    s->last_ns = now;
    s->suppressed = 0;
}

static void wfail_log(struct fs* f, uint64_t ino, enum wfail_cause cause)
{
    wfail_log_err(f, ino, cause, 0);
}

/* A write-path request failed here with err (a positive errno). */
static void wfail_local(struct fs* f, uint64_t ino, int err)
{
    if (err == EFBIG) {
        wfail_log(f, ino, WFAIL_SIZE);
    } else if (err == ENOSPC) {
        wfail_log(f, ino, WFAIL_PENDING);
    }
}

/* Discard w's pending update with err: nothing of it is committed. */
static void upd_discard(struct fs* f, struct fs_wino* w, int err)
{
    struct fs_upd keep = w->u;

    keep.buf = NULL;
    fs__upd_free(f, &w->u);
    w->u = keep;
    w->u.cap = 0;
    w->u.len = 0;
    w->u.set_mask = 0;
    w->u.trunc_only = false;
    w->u.err = err;
    wfail_local(f, w->ino, err);
    w->u.touch_ns = (int64_t)fs__mono_ns();
    kernel_drop(f, w->ino);
    fs__settle_arm(f);
}

/* Room for len bytes in u's buffer; -ENOSPC past the pending bytes. */
static int upd_reserve(struct fs* f, struct fs_upd* u, size_t len)
{
    size_t cap;
    char* nb;

    if (len <= u->cap) {
        return 0;
    }
    cap = u->cap > 0 ? u->cap : 4096;
    while (cap < len) {
        cap *= 2;
    }
    if (cap > f->o.file_size_max && len <= f->o.file_size_max) {
        cap = (size_t)f->o.file_size_max;
    }
    if (f->pending_bytes - u->cap + cap > f->o.pending_bytes_max) {
        return -ENOSPC; /* logged by the caller (wfail_local) */
    }
    nb = realloc(u->buf, cap);
    if (nb == NULL) {
        return -ENOMEM;
    }
    f->pending_bytes += cap - u->cap;
    u->buf = nb;
    u->cap = cap;
    return 0;
}

void fs__upd_stamp(struct fs_upd* u, bool content)
{
    u->chg_ns = fs__now_ns();
    if (content) {
        u->mod_ns = u->chg_ns;
    }
}

/* Start an update of w if none: the committed content (none when trunc),
 * and the current attributes (nothing joined yet). */
int fs__upd_begin(struct fs* f, struct fs_wino* w, bool trunc)
{
    const void* base = NULL;
    size_t base_len = 0;
    int rv;

    if (w->u.on) {
        return 0;
    }
    assert(!w->busy);
    if (!trunc) {
        rv = store_read(node_store(f->node), w->ino, &base, &base_len);
        if (rv == -ENOENT) {
            base_len = 0; /* removed: written into the void, as locally */
        } else if (rv != 0) {
            return rv;
        }
    }
    memset(&w->u, 0, sizeof(w->u));
    rv = upd_reserve(f, &w->u, base_len);
    if (rv != 0) {
        return rv;
    }
    if (base_len > 0) {
        memcpy(w->u.buf, base, base_len);
    }
    w->u.len = base_len;
    w->u.on = true;
    w->u.trunc_only = trunc;
    w->u.touch_ns = (int64_t)fs__mono_ns();
    if (trunc) {
        fs__upd_stamp(&w->u, true);
    }
    fs__settle_arm(f);
    return 0;
}

/* Resize the update's content (zero-filled). */
int fs__upd_resize(struct fs* f, struct fs_upd* u, size_t len)
{
    int rv = upd_reserve(f, u, len);

    if (rv != 0) {
        return rv;
    }
    if (len > u->len) {
        memset(u->buf + u->len, 0, len - u->len);
    }
    u->len = len;
    return 0;
}

/* ---- requests on the update ---- */

static void op_drop(struct fs_op* op)
{
    if (op->data_owned) {
        op->fs->held_bytes -= op->size;
        free(op->data);
    }
    fs__op_free(op);
}

static void op_reply_err(struct fs_op* op, int err)
{
    if (op->req != NULL) {
        fuse_reply_err(op->req, err);
    }
}

/* Whether op's change of w may not use the quota's root reserve: its
 * requester is not root; for the kernel's write-back of mmap'd pages,
 * which names no writer, the file's owner is not root. */
static bool op_unpriv(struct fs* f,
                      const struct fs_wino* w,
                      const struct fs_op* op)
{
    struct store_attr a;

    if (!op->writepage) {
        return op->unpriv;
    }
    return store_getattr(node_store(f->node), w->ino, &a) != 0 || a.uid != 0;
}

/* A WRITE: patch the pending update; reply. Returns the errno replied. */
static int do_write(struct fs* f, struct fs_wino* w, struct fs_op* op)
{
    struct fs_upd* u = &w->u;
    uint64_t off = op->off, end;
    int rv;

    if (u->on && u->err != 0) {
        return u->err; /* discarded: nothing more is kept of it */
    }
    rv = fs__upd_begin(f, w, false);
    if (rv != 0) {
        wfail_local(f, w->ino, -rv);
        return -rv;
    }
    if (op->append) {
        off = u->len; /* the kernel's i_size may be another's */
    }
    end = off + op->size;
    if (end > f->o.file_size_max) {
        fs__owner_add(u, op->tid);
        upd_discard(f, w, EFBIG);
        return EFBIG;
    }
    if (end > u->len) {
        rv = fs__upd_resize(f, u, (size_t)end);
        if (rv != 0) {
            fs__owner_add(u, op->tid);
            upd_discard(f, w, -rv);
            return -rv;
        }
    }
    if (op->size > 0) {
        memcpy(u->buf + off, op->data, op->size);
    }
    u->unpriv = u->unpriv || op_unpriv(f, w, op);
    if (!op->writepage) {
        fs__owner_add(u, op->tid);
    }
    fs__upd_stamp(u, true);
    u->trunc_only = false;
    u->touch_ns = (int64_t)fs__mono_ns();
    if (off != op->off && !u->inexact) {
        u->inexact = true; /* its page cache has the bytes elsewhere */
        kernel_drop(f, w->ino);
    }
    return 0;
}

/* A SETATTR joined to the update (size and/or attributes). */
static int do_setattr(struct fs* f, struct fs_wino* w, struct fs_op* op)
{
    struct fs_upd* u = &w->u;
    int rv;

    if (u->on && u->err != 0) {
        return u->err;
    }
    rv = fs__upd_begin(f, w, op->trunc);
    if (rv != 0) {
        wfail_local(f, w->ino, -rv);
        return -rv;
    }
    if (op->trunc || (op->set_mask & STORE_SET_SIZE)) {
        rv = fs__upd_resize(f, u, op->trunc ? 0 : (size_t)op->new_size);
        if (rv != 0) {
            fs__owner_add(u, op->tid);
            upd_discard(f, w, -rv);
            return -rv;
        }
        if (!op->trunc) {
            u->trunc_only = false;
        } else if (u->trunc_only) {
            u->flushes = 0;
        }
    }
    u->unpriv = u->unpriv || op->unpriv;
    if (fs__is_pnode(w->ino) && (op->set_mask & ~(uint32_t)STORE_SET_SIZE)) {
        /* a new file given times or a mode (touch, cp): its next FLUSH
         * commits it, whether or not anything was written */
        u->trunc_only = false;
    }
    u->set_mask |= op->set_mask & ~(uint32_t)STORE_SET_SIZE;
    if (op->set_mask & STORE_SET_MODE) {
        u->mode = op->mode;
    }
    if (op->set_mask & STORE_SET_UID) {
        u->uid = op->uid;
    }
    if (op->set_mask & STORE_SET_GID) {
        u->gid = op->gid;
    }
    if (op->set_mask & STORE_SET_ATIME) {
        u->atime_ns = op->atime_ns;
    }
    if (op->set_mask & STORE_SET_MTIME) {
        u->mtime_ns = op->mtime_ns;
    }
    fs__owner_add(u, op->tid);
    fs__upd_stamp(u, op->trunc || (op->set_mask & STORE_SET_SIZE));
    u->touch_ns = (int64_t)fs__mono_ns();
    return 0;
}

/* Propose w's pending update for op, which the commit answers
 * (fs__write_done). c: NULL for a WRITE of the inode, or the RENAME that
 * carries it. */
void fs__commit_start(struct fs* f,
                      struct fs_wino* w,
                      struct fs_op* op,
                      struct store_cmd* c)
{
    struct store_cmd wc;
    struct store_attr a;

    assert(w->u.on && w->u.err == 0 && !w->busy);
    bool pnew = c == NULL && fs__is_pnode(w->ino);
    if (pnew && fs__pnew_cmd(f, w->ino, &w->u, &wc)) {
        c = &wc; /* a new file: one CREATE with its content (fs_pnew.c) */
    } else if (pnew) {
        fs__upd_free(f, &w->u); /* unlinked before its commit: no entry */
        fs__pnew_drop(f, w->ino);
        op_reply_err(op, 0);
        op_drop(op);
        return;
    }
    if (c == NULL &&
        store_getattr(node_store(f->node), w->ino, &a) == -ENOENT) {
        fs__upd_free(f, &w->u); /* unlinked while open: nothing to commit to */
        op_reply_err(op, 0);
        op_drop(op);
        return;
    }
    if (c == NULL) {
        memset(&wc, 0, sizeof(wc));
        wc.op = STORE_OP_WRITE;
        c = &wc;
        /* The times this mount showed (fs__pending_attr) are the ones
         * committed: its kernel may keep attributes it was answered while
         * the update was pending (fs__reply_attr), and the commit sends it
         * nothing. mtime: the last content change, else unchanged (a
         * chmod through the open file); ctime: the last change. */
        if ((w->u.set_mask & STORE_SET_MTIME) == 0) {
            w->u.set_mask |= STORE_SET_MTIME;
            w->u.mtime_ns = w->u.mod_ns != 0 ? w->u.mod_ns : a.mtime_ns;
        }
        wc.size = (uint64_t)w->u.chg_ns;
    }
    if (!pnew) {
        c->ino = w->ino; /* a pending new file's: its token (CLAIM) */
    }
    c->data = w->u.buf;
    c->data_len = w->u.len;
    c->set_mask = w->u.set_mask;
    if (pnew) {
        /* mode and owner: the create's, or as set (fs__pnew_cmd) */
        c->set_mask &= STORE_SET_ATIME | STORE_SET_MTIME;
    } else {
        c->mode = w->u.mode;
        c->uid = w->u.uid;
        c->gid = w->u.gid;
    }
    c->atime_ns = w->u.atime_ns;
    c->mtime_ns = w->u.mtime_ns;
    if (pnew) {
        /* a new file's times as this mount showed them (fs__pending_attr):
         * its mtime its last write's, its ctime (and its directory's) its
         * last change's; the creation's when nothing came after */
        if ((c->set_mask & STORE_SET_MTIME) == 0 && w->u.mod_ns != 0) {
            c->set_mask |= STORE_SET_MTIME;
            c->mtime_ns = w->u.mod_ns;
        }
        if (w->u.chg_ns != 0) {
            c->size = (uint64_t)w->u.chg_ns;
        }
    }
    /* Who wrote it decides the quota's reserve, not who closes it (a
     * RENAME carrying it: either). */
    if (w->u.unpriv) {
        c->reserve_pct = (uint8_t)f->o.quota_reserve_pct;
    }
    w->fl = w->u;
    memset(&w->u, 0, sizeof(w->u));
    w->busy = true;
    w->fl_applied = false;
    w->fl_rename_dir = c->op == STORE_OP_RENAME ? c->new_parent : 0;
    op->ino = w->ino;
    fs__propose(f, op, c); /* on a refusal: fs__write_done, right away */
}

/* Whether a FLUSH of thread tid, of the process that wrote w's update
 * (fs__owner_is) but not one of its writing threads, is not the writer's
 * close: another thread's, a reader's, which must not publish the update
 * while the writer is mid-file. A truncation alone is never published so
 * (the writer's descriptor may not be in the process's table yet: a
 * reader's close during the open(O_TRUNC) found none). Otherwise only
 * while the process still holds the file open for writing: when it does
 * not, the closed descriptor was the writer's, closed on another thread
 * (as Go's runtime may), and the update is committed; so it is when
 * /proc cannot tell, as before. */
static bool flush_not_writers(struct fs* f, struct fs_wino* w, int32_t tid)
{
    const struct fs_upd* u = &w->u;
    uint64_t inos[2] = {w->ino, 0};
    int n = 1;

    if (u->many || u->n_owners == 0 || fs__owner_tid(u, tid)) {
        return false;
    }
    if (u->trunc_only) {
        return true;
    }
    if (fs__is_pnode(w->ino) && (inos[1] = fs__pnew_sino(f, w->ino)) != 0) {
        n = 2; /* an O_EXCL new file shows its reserved ino */
    }
    return fs__owner_writes_file(f, tid, inos, n) == 1;
}

/* A FLUSH or FSYNC (or the settle timer) asks for the update: commit it,
 * or answer now. */
static void do_finish(struct fs* f, struct fs_wino* w, struct fs_op* op)
{
    struct fs_upd* u = &w->u;

    if (!u->on) {
        /* Everything before it is committed; it waited for a commit of
         * its own writes: that commit's result. */
        op_reply_err(op, op->of_flight ? w->done_err : 0);
        op_drop(op);
        return;
    }
    if (op->wop == FS_WOP_FLUSH) {
        if (!fs__owner_is(u, op->tid) || flush_not_writers(f, w, op->tid)) {
            op_reply_err(op, 0); /* another's unfinished update */
            op_drop(op);
            return;
        }
        if (u->err == 0 && u->trunc_only && u->flushes++ == 0 &&
            fs__owner_holds_mount(f, op->tid)) {
            /* bash's close of the original fd after dup2 (its fd 1 is
             * still on the mount), or a process whose child inherited the
             * descriptor: the write may come next. The writer's next FLUSH
             * or the settle timer commits a truncation alone. A writer
             * with no descriptor of the mount left has closed its last:
             * the truncation is its whole update, committed now. */
            u->touch_ns = (int64_t)fs__mono_ns();
            op_reply_err(op, 0);
            op_drop(op);
            return;
        }
    }
    if (u->err != 0) {
        int err = u->err;
        fs__upd_free(f, u); /* reported once, to its writer */
        if (fs__is_pnode(w->ino)) {
            fs__pnew_drop(f, w->ino); /* a new file: nothing of it */
        }
        op_reply_err(op, err);
        op_drop(op);
        return;
    }
    fs__commit_start(f, w, op, NULL);
}

/* Start queued ops of w until a commit is in flight (or none is left);
 * frees w when nothing is left. Re-entered from fs__write_done when a
 * proposal fails at once: the outer call goes on. */
static void wino_run(struct fs* f, struct fs_wino* w)
{
    if (w->running) {
        return;
    }
    w->running = true;
    while (!w->busy && w->q_head != NULL) {
        struct fs_op* op = w->q_head;
        int err;
        w->q_head = op->wnext;
        if (w->q_head == NULL) {
            w->q_tail = NULL;
        }
        op->wnext = NULL;
        switch (op->wop) {
        case FS_WOP_WRITE:
            err = do_write(f, w, op);
            if (err != 0) {
                op_reply_err(op, err);
            } else {
                fuse_reply_write(op->req, op->size);
            }
            op_drop(op);
            break;
        case FS_WOP_SETATTR:
            err = do_setattr(f, w, op);
            if (err != 0) {
                op_reply_err(op, err);
            } else if (op->req != NULL) {
                fs__reply_attr(f, op->req, w->ino);
            }
            op_drop(op);
            break;
        case FS_WOP_LINK:
            /* behind the commit of this new file: its store ino now */
            fs__link_committed(f, op, fs__is_pnode(w->ino) ? 0 : w->ino);
            break;
        default:
            do_finish(f, w, op);
            break;
        }
    }
    w->running = false;
    fs__wino_put(f, w);
}

void fs__write_done(struct fs_op* op, const struct store_result* res)
{
    struct fs* f = op->fs;
    struct fs_wino* w = fs__wino_find(f, op->ino);

    assert(op->kind == FS_REPLY_WRITE && w != NULL && w->busy);
    /* Logged before the reply: the writer's close() returns after it. */
    if (res->err == -ENOSPC) {
        wfail_log(f, op->ino, WFAIL_QUOTA);
    } else if (res->err == -EIO) {
        wfail_log(f, op->ino, WFAIL_COMMIT);
    } else if (res->err == -EFBIG) {
        wfail_log(f, op->ino, WFAIL_SIZE);
    } else if (res->err != 0 && fs__is_pnode(op->ino)) {
        wfail_log_err(f, op->ino, WFAIL_CREATE, -res->err);
    }
    if (op->req != NULL) {
        fuse_reply_err(op->req, res->err != 0 ? -res->err : 0);
    }
    w->busy = false;
    w->done_err = -res->err;
    if (res->err == 0) {
        fs__upd_free(f, &w->fl);
    } else if (op->wop == FS_WOP_RENAME && !w->u.on) {
        w->u = w->fl; /* the rename failed: the update stays pending */
        memset(&w->fl, 0, sizeof(w->fl));
        fs__settle_arm(f);
    } else {
        /* The kernel holds what was written; the file is what was
         * committed before: make it read that again. */
        fs__upd_free(f, &w->fl);
        kernel_drop(f, op->ino);
    }
    if (fs__is_pnode(op->ino)) {
        w = fs__pnew_done(f, w, res);
    }
    wino_run(f, w);
}

bool fs__change_is_ours(struct fs* f, const struct store_change* c)
{
    struct fs_wino* w = fs__wino_find(f, c->ino);
    const void* data;
    size_t len;

    /* Once applied, a later change is another's, even with the same bytes
     * (a chmod from elsewhere applied in the same batch). A change that
     * names the file is ours only as the new name of a RENAME this mount
     * committed the update with (a rename from elsewhere is not). */
    if (w == NULL || !w->busy || w->fl_applied || w->fl.inexact ||
        (c->parent != 0 && c->parent != w->fl_rename_dir) ||
        store_read(node_store(f->node), c->ino, &data, &len) != 0 ||
        len != w->fl.len) {
        return false;
    }
    if (len != 0 && memcmp(data, w->fl.buf, len) != 0) {
        return false;
    }
    w->fl_applied = true;
    return true;
}

/* Queue op behind w's commit in flight, or run it now. Replies on
 * error. w may be freed on return. */
void fs__wino_submit(struct fs* f, struct fs_wino* w, struct fs_op* op)
{
    bool waits = w->busy || w->q_head != NULL;

    if (waits && op->wop == FS_WOP_WRITE && op->size > 0) {
        /* The request's buffer is libfuse's: keep a copy while queued. */
        char* copy = malloc(op->size);
        if (copy == NULL) {
            op_reply_err(op, ENOMEM);
            fs__op_free(op);
            fs__wino_put(f, w);
            return;
        }
        memcpy(copy, op->data, op->size);
        op->data = copy;
        op->data_owned = true;
        f->held_bytes += op->size;
    }
    if (w->q_tail != NULL) {
        w->q_tail->wnext = op;
    } else {
        w->q_head = op;
    }
    w->q_tail = op;
    if (!waits) {
        wino_run(f, w);
    }
}

/* A new write-path op of req (NULL: internal) for ino, and the inode's
 * state; NULL after answering req with ENOMEM. */
struct fs_op* fs__wop_for(struct fs* f,
                          fuse_req_t req,
                          uint64_t ino,
                          int wop,
                          struct fs_wino** w)
{
    struct fs_op* op;

    *w = fs__wino_get(f, ino);
    if (*w == NULL) {
        if (req != NULL) {
            fuse_reply_err(req, ENOMEM);
        }
        return NULL;
    }
    op = fs__op_new(f, req, FS_REPLY_WRITE);
    if (op == NULL) {
        if (req != NULL) {
            fuse_reply_err(req, ENOMEM);
        }
        fs__wino_put(f, *w);
        return NULL;
    }
    op->wop = wop;
    op->ino = ino;
    op->tid = req != NULL ? (int32_t)fuse_req_ctx(req)->pid : 0;
    op->unpriv = req != NULL && fuse_req_ctx(req)->uid != 0;
    return op;
}

/* ---- the settle timer, unmount ---- */

/* Whether w's update is one that no writer will close and is due. */
static bool settle_due(struct fs_wino* w, int64_t now)
{
    struct fs_upd* u = &w->u;

    if (!u->on || w->busy || w->q_head != NULL ||
        now - u->touch_ns < (int64_t)FS_SETTLE_MS * 1000000) {
        return false;
    }
    /* Write-back only, a truncation no write followed, or writers that
     * are all gone (their exit closed their files: a FLUSH that did not
     * find them, e.g. from a process that inherited the fd). */
    return u->n_owners == 0 || u->many || u->trunc_only || fs__owners_gone(u);
}

void fs__settle_cb(uv_timer_t* t)
{
    struct fs* f = t->data;
    struct fs_wino *w, *next;
    int64_t now = (int64_t)fs__mono_ns();
    bool again = false;

    if (f->pnews != NULL) {
        fs__pnew_renew(f, now); /* O_EXCL reservations still pending */
    }
    for (w = f->winos.next; w != &f->winos; w = next) {
        next = w->next;
        if (!settle_due(w, now)) {
            again = again || w->u.on;
            continue;
        }
        struct fs_op* op = fs__wop_for(f, NULL, w->ino, FS_WOP_SETTLE, &w);
        if (op == NULL) {
            again = true; /* out of memory: try again */
            continue;
        }
        fs__wino_submit(f, w, op);
    }
    if (again) {
        uv_timer_start(f->settle, fs__settle_cb, FS_SETTLE_MS / 4, 0);
    }
}

void fs_quiesce(struct fs* f, void (*cb)(void* data), void* data)
{
    struct fs_wino *w, *next;

    assert(f->quiesce_cb == NULL && cb != NULL);
    uv_timer_stop(f->settle);
    f->quiesce_cb = cb;
    f->quiesce_data = data;
    /* Every pending update is committed (its writer's close never came:
     * the unmount is its end), after whatever is queued. */
    for (w = f->winos.next; w != &f->winos; w = next) {
        next = w->next;
        /* On failure fs__wop_for puts w back, which frees an idle one. */
        bool idle = !w->u.on && !w->busy && w->q_head == NULL && !w->running;
        struct fs_op* op = fs__wop_for(f, NULL, w->ino, FS_WOP_FSYNC, &w);
        if (op == NULL) {
            /* clang-tidy false positive: fs__wino_get returns this same w,
             * which the put did not free (not idle). */
            // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
            if (!idle && !w->busy && w->q_head == NULL) {
                fs__upd_free(f, &w->u); /* out of memory: lost, as in a crash */
                fs__wino_put(f, w);
            }
            continue;
        }
        fs__wino_submit(f, w, op);
    }
    fs__quiesce_check(f);
}

void fs__winos_free(struct fs* f)
{
    while (f->winos.next != &f->winos) {
        struct fs_wino* w = f->winos.next;
        /* clang-tidy false positive: w is unlinked before it is freed. */
        // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
        while (w->q_head != NULL) {
            struct fs_op* op = w->q_head;
            w->q_head = op->wnext;
            op_reply_err(op, ESHUTDOWN);
            op_drop(op);
        }
        fs__wino_unlink(f, w);
        fs__upd_free(f, &w->u);
        fs__upd_free(f, &w->fl);
        free(w);
    }
}
