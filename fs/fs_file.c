/* fs_file.c - the file read and write paths (DESIGN §3, docs/consistency.md).
 *
 * No per-open state. Regular files are opened without a FUSE request: OPEN
 * is answered ENOSYS once (FUSE_NO_OPEN_SUPPORT) and FLUSH likewise, so the
 * kernel stops sending OPEN, FLUSH and RELEASE. A cached `cat` then costs no
 * request at all: every applied change invalidates the kernel's pages and
 * attributes of the inode it touched (fs_on_change), so the page cache is
 * the committed content; the one exception is this mount's own write, whose
 * content the kernel already holds (it wrote it through its page cache:
 * fs__change_is_ours). In linearizable mode OPEN stays (its ReadIndex
 * barrier) and drops the pages, but still keeps no state.
 *
 * Writes are write-through (no writeback cache: the kernel would trust its
 * own i_size over a remote change). Each WRITE request is one proposal of
 * the whole new content (the committed content patched), and the WRITE is
 * answered once it is committed, durable and applied: write() returns
 * after the data is safe, and a failure (no quorum: EIO; quota: ENOSPC;
 * size: EFBIG) is that write()'s error. One write() up to max_write (1 MiB)
 * is one WRITE, so `echo v > f`, `cp`, `cat > f` and editors that write a
 * file in one call produce one atomic update.
 *
 * O_TRUNC reaches us as SETATTR(size 0) before the write. It is deferred:
 * the inode reads as empty on this mount, and the next WRITE proposes the
 * truncated-and-written content as one entry (one proposal per `echo`). A
 * truncation that no write follows (`: > f`) commits after FS_SETTLE_MS, or
 * at fsync(), or before a proposal that must follow it.
 *
 * Commits of one inode are serialized: a WRITE that arrives while another
 * commit of the same inode is in flight waits in the inode's queue and then
 * patches the content that commit produced (two appenders keep both lines).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../store/store_history.h"
#include "fs_internal.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- per-inode state ---- */

static size_t wino_bucket(uint64_t ino)
{
    return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
           (FS_WINO_BUCKETS - 1);
}

static struct fs_wino* wino_find(const struct fs* f, uint64_t ino)
{
    struct fs_wino* w;

    for (w = f->wino_hash[wino_bucket(ino)]; w != NULL; w = w->hnext) {
        if (w->ino == ino) {
            return w;
        }
    }
    return NULL;
}

static void wino_unlink(struct fs* f, struct fs_wino* w)
{
    struct fs_wino** p = &f->wino_hash[wino_bucket(w->ino)];

    while (*p != w) {
        p = &(*p)->hnext;
    }
    *p = w->hnext;
    w->prev->next = w->next;
    w->next->prev = w->prev;
}

static struct fs_wino* wino_get(struct fs* f, uint64_t ino)
{
    struct fs_wino* w = wino_find(f, ino);

    if (w != NULL) {
        return w;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->ino = ino;
    w->next = f->winos.next;
    w->prev = &f->winos;
    f->winos.next->prev = w;
    f->winos.next = w;
    w->hnext = f->wino_hash[wino_bucket(ino)];
    f->wino_hash[wino_bucket(ino)] = w;
    return w;
}

static void quiesced_cb(uv_timer_t* t)
{
    struct fs* f = t->data;
    void (*cb)(void* data) = f->quiesce_cb;

    f->quiesce_cb = NULL;
    cb(f->quiesce_data);
}

static void quiesce_check(struct fs* f)
{
    if (f->quiesce_cb != NULL && f->winos.next == &f->winos) {
        uv_timer_start(f->settle, quiesced_cb, 0, 0); /* the next turn */
    }
}

static void wino_put(struct fs* f, struct fs_wino* w)
{
    if (w->trunc || w->busy || w->q_head != NULL) {
        return;
    }
    wino_unlink(f, w);
    free(w);
    quiesce_check(f);
}

static void settle_arm(struct fs* f)
{
    if (f->quiesce_cb == NULL && !uv_is_active((uv_handle_t*)f->settle)) {
        uv_timer_start(f->settle, fs__settle_cb, FS_SETTLE_MS, 0);
    }
}

/* The size this mount's kernel holds for ino while it has a truncation
 * deferred (0) or a commit in flight (the content being committed, which
 * its kernel wrote through its page cache): what replies carrying
 * attributes say here, so the kernel never pairs its own new size with the
 * committed old bytes. */
bool fs__pending_size(const struct fs* f, uint64_t ino, uint64_t* size)
{
    const struct fs_wino* w;

    if (f->winos.next == &f->winos) {
        return false; /* the common case: nothing deferred */
    }
    w = wino_find(f, ino);
    if (w == NULL) {
        return false;
    }
    if (w->trunc) {
        *size = 0;
        return true;
    }
    if (w->busy && w->inflight != NULL) {
        *size = w->inflight_len;
        return true;
    }
    return false;
}

void fs__file_open_flags(const struct fs* f, struct fuse_file_info* fi)
{
    fi->fh = 0;
    /* Linearizable: every read() is READs answered from the state the
     * open's barrier reached or a later one, never the kernel's cached
     * size or pages (those may be older than the barrier: fs_kview.c).
     * Shared writable mmap is then refused by the kernel (ENODEV). */
    fi->direct_io = f->o.linearizable ? 1 : 0;
    fi->keep_cache = f->o.linearizable ? 0 : 1;
    fi->noflush = 1;
}

/* ---- commits ---- */

static void op_drop(struct fs_op* op);

static void op_reply_err(struct fs_op* op, int err)
{
    if (op->req != NULL) {
        fuse_reply_err(op->req, err);
    }
}

static void reply_attr_of(struct fs* f, fuse_req_t req, uint64_t ino)
{
    struct store_attr a;
    struct stat st;
    uint64_t size;
    int rv = store_getattr(node_store(f->node), ino, &a);

    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    fs__attr_to_stat(&a, &st);
    if (fs__pending_size(f, ino, &size)) {
        st.st_size = (off_t)size;
        st.st_blocks = 0;
    }
    fuse_reply_attr(req, &st, f->o.attr_timeout_s);
    fs__kview_forget(f, ino); /* the kernel holds the current revision */
}

/* Build the content op produces from the committed content (or nothing,
 * after a deferred truncation) and propose it. The op is answered from
 * fs__write_done, or here on an error (and freed). */
static void commit_start(struct fs* f, struct fs_wino* w, struct fs_op* op)
{
    const void* base = NULL;
    size_t base_len = 0, len;
    uint64_t end = 0;
    struct store_cmd c;
    char* buf;
    int rv;

    if (!w->trunc) {
        rv = store_read(node_store(f->node), w->ino, &base, &base_len);
        if (rv != 0) {
            op_reply_err(op, rv == -ENOENT ? ESTALE : -rv);
            op_drop(op);
            return;
        }
    }
    uint64_t kernel_off = op->off;
    switch (op->wop) {
    case FS_WOP_WRITE:
        if (op->append) {
            op->off = base_len; /* the kernel's i_size may be stale */
        }
        end = op->off + op->size;
        if (end > f->o.file_size_max) {
            op_reply_err(op, EFBIG); /* nothing of this write is kept */
            op_drop(op);
            return;
        }
        len = end > base_len ? (size_t)end : base_len;
        break;
    case FS_WOP_RESIZE:
        len = (size_t)op->new_size;
        break;
    default: /* FSYNC, SETTLE: commit the truncation */
        assert(w->trunc);
        len = 0;
        break;
    }
    buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        op_reply_err(op, ENOMEM);
        op_drop(op);
        return;
    }
    if (len > 0) {
        size_t keep = base_len < len ? base_len : len;
        if (keep > 0) {
            memcpy(buf, base, keep);
        }
        memset(buf + keep, 0, len - keep);
    }
    if (op->wop == FS_WOP_WRITE && op->size > 0) {
        memcpy(buf + op->off, op->data, op->size);
    }
    if (op->data_owned) {
        f->held_bytes -= op->size;
        free(op->data);
    }
    op->data = NULL; /* libfuse's buffer is not ours past this request */
    op->data_owned = false;
    memset(&c, 0, sizeof(c));
    c.op = STORE_OP_WRITE;
    c.ino = w->ino;
    c.data = buf;
    c.data_len = len;
    w->trunc = false; /* it is part of this proposal */
    w->busy = true;
    /* The kernel wrote these bytes through its page cache (or truncated
     * it itself) at the same offsets: it holds this content already. */
    w->inflight = buf;
    w->inflight_len = len;
    w->inflight_exact = (op->wop == FS_WOP_WRITE && op->off == kernel_off) ||
                        op->wop == FS_WOP_RESIZE; /* answered with attrs */
    op->ino = w->ino;
    fs__propose(f, op, &c); /* on a refusal: fs__write_done, right away */
}

uint64_t fs_held_bytes(const struct fs* f)
{
    return f->held_bytes;
}

bool fs__change_is_ours(struct fs* f, uint64_t ino)
{
    const struct fs_wino* w;
    const void* data;
    size_t len;

    if (f->winos.next == &f->winos) {
        return false;
    }
    w = wino_find(f, ino);
    if (w == NULL || !w->busy || !w->inflight_exact ||
        store_read(node_store(f->node), ino, &data, &len) != 0 ||
        len != w->inflight_len) {
        return false;
    }
    return len == 0 || memcmp(data, w->inflight, len) == 0;
}

/* Start queued ops of w until one is in flight (or none is left); frees
 * w when nothing is left. Re-entered from fs__write_done when a proposal
 * fails at once: the outer call goes on. */
static void wino_run(struct fs* f, struct fs_wino* w)
{
    if (w->running) {
        return;
    }
    w->running = true;
    while (!w->busy && w->q_head != NULL) {
        struct fs_op* op = w->q_head;
        w->q_head = op->wnext;
        if (w->q_head == NULL) {
            w->q_tail = NULL;
        }
        op->wnext = NULL;
        if ((op->wop == FS_WOP_FSYNC || op->wop == FS_WOP_SETTLE) &&
            !w->trunc) {
            op_reply_err(op, 0); /* everything before it is committed */
            op_drop(op);
            continue;
        }
        commit_start(f, w, op);
    }
    w->running = false;
    wino_put(f, w);
}

void fs__write_done(struct fs_op* op, const struct store_result* res)
{
    struct fs* f = op->fs;
    struct fs_wino* w = wino_find(f, op->ino);

    assert(op->kind == FS_REPLY_WRITE);
    if (op->req != NULL) {
        if (res->err != 0) {
            fuse_reply_err(op->req, -res->err);
        } else if (op->wop == FS_WOP_WRITE) {
            fuse_reply_write(op->req, op->size);
        } else if (op->wop == FS_WOP_RESIZE) {
            reply_attr_of(f, op->req, op->ino);
        } else {
            fuse_reply_err(op->req, 0);
        }
    }
    if (w != NULL) {
        free(w->inflight);
        w->inflight = NULL;
        w->busy = false;
        if (res->err != 0) {
            /* The kernel holds what it wrote; the file is what was
             * committed before: make it read that again. */
            fs__notify_push(&f->notify, op->ino, 0, NULL);
        } else {
            fs__kview_forget(f, op->ino); /* it holds our revision */
        }
        wino_run(f, w);
    }
}

/* Queue op behind w's commit in flight, or start it now. Replies on
 * error. w may be freed on return. */
static void wino_submit(struct fs* f, struct fs_wino* w, struct fs_op* op)
{
    bool waits = w->busy || w->q_head != NULL;

    if (waits && op->wop == FS_WOP_WRITE && op->size > 0) {
        /* The request's buffer is libfuse's: keep a copy while queued. */
        char* copy = malloc(op->size);
        if (copy == NULL) {
            op_reply_err(op, ENOMEM);
            fs__op_free(op);
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

static struct fs_op* wop_new(struct fs* f, fuse_req_t req, int wop)
{
    struct fs_op* op = fs__op_new(f, req, FS_REPLY_WRITE);

    if (op == NULL) {
        if (req != NULL) {
            fuse_reply_err(req, ENOMEM);
        }
        return NULL;
    }
    op->wop = wop;
    return op;
}

/* A new write-path op for ino and its per-inode state; NULL after
 * answering req with ENOMEM. */
static struct fs_op* wop_for(struct fs* f,
                             fuse_req_t req,
                             uint64_t ino,
                             int wop,
                             struct fs_wino** w)
{
    struct fs_op* op;

    *w = wino_get(f, ino);
    if (*w == NULL) {
        fuse_reply_err(req, ENOMEM);
        return NULL;
    }
    op = wop_new(f, req, wop);
    if (op == NULL) {
        wino_put(f, *w);
    }
    return op;
}

static void op_drop(struct fs_op* op)
{
    if (op->data_owned) {
        op->fs->held_bytes -= op->size;
        free(op->data);
    }
    fs__op_free(op);
}

/* ---- deferred truncation ---- */

void fs__settle_cb(uv_timer_t* t)
{
    struct fs* f = t->data;
    struct fs_wino *w, *next;
    int64_t now = mono_ns(), wait_ns = 0;

    for (w = f->winos.next; w != &f->winos; w = next) {
        next = w->next;
        if (!w->trunc || w->busy) {
            continue; /* a busy inode settles when its commit is done */
        }
        if (now - w->trunc_ns < (int64_t)FS_SETTLE_MS * 1000000) {
            int64_t left =
                (int64_t)FS_SETTLE_MS * 1000000 - (now - w->trunc_ns);
            if (wait_ns == 0 || left < wait_ns) {
                wait_ns = left;
            }
            continue;
        }
        struct fs_op* op = wop_new(f, NULL, FS_WOP_SETTLE);
        if (op == NULL) {
            wait_ns = 1000000; /* out of memory: try again */
            continue;
        }
        wino_submit(f, w, op);
    }
    if (wait_ns > 0) {
        uv_timer_start(f->settle, fs__settle_cb,
                       (uint64_t)(wait_ns + 999999) / 1000000, 0);
    }
}

void fs_quiesce(struct fs* f, void (*cb)(void* data), void* data)
{
    struct fs_wino *w, *next;

    assert(f->quiesce_cb == NULL && cb != NULL);
    uv_timer_stop(f->settle);
    f->quiesce_cb = cb;
    f->quiesce_data = data;
    for (w = f->winos.next; w != &f->winos; w = next) {
        next = w->next;
        if (w->trunc && !w->busy) {
            struct fs_op* op = wop_new(f, NULL, FS_WOP_SETTLE);
            if (op == NULL) {
                w->trunc = false; /* out of memory: lost, as in a crash */
                wino_put(f, w);
                continue;
            }
            wino_submit(f, w, op);
        }
    }
    quiesce_check(f);
}

void fs__settle_ino(struct fs* f, uint64_t ino)
{
    struct fs_wino* w = wino_find(f, ino);
    struct fs_op* op;

    if (w == NULL || !w->trunc) {
        return;
    }
    op = wop_new(f, NULL, FS_WOP_SETTLE);
    if (op != NULL) {
        wino_submit(f, w, op);
    }
}

/* Truncates ino to 0 on this mount now: deferred, so that the next write
 * proposes it with its bytes, or, behind a commit in flight, queued as a
 * resize to 0 that answers req (NULL: nobody). 0: deferred (the caller
 * answers req); 1: queued (req is taken); -ENOMEM. */
static int truncate_soon(struct fs* f, uint64_t ino, fuse_req_t req)
{
    struct fs_wino* w = wino_get(f, ino);
    struct fs_op* op;

    if (w == NULL) {
        return -ENOMEM;
    }
    if (!w->busy) {
        w->trunc = true;
        w->trunc_ns = mono_ns();
        settle_arm(f);
        return 0;
    }
    op = fs__op_new(f, req, FS_REPLY_WRITE);
    if (op == NULL) {
        return -ENOMEM; /* w is busy: it stays */
    }
    op->wop = FS_WOP_RESIZE;
    op->new_size = 0;
    wino_submit(f, w, op);
    return 1;
}

void fs__setattr_size(struct fs* f,
                      fuse_req_t req,
                      uint64_t ino,
                      uint64_t size,
                      int to_set)
{
    struct fs_wino* w;
    struct fs_op* op;

    /* O_TRUNC arrives as SIZE|MTIME|CTIME with no file handle; ftruncate
     * and truncate(2) to 0 look the same and are deferred the same way. */
    if (size == 0 &&
        (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME |
                    FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) == 0) {
        int rv = truncate_soon(f, ino, req);
        if (rv < 0) {
            fuse_reply_err(req, -rv);
        } else if (rv == 0) {
            reply_attr_of(f, req, ino);
        }
        return;
    }
    op = wop_for(f, req, ino, FS_WOP_RESIZE, &w);
    if (op != NULL) {
        op->new_size = size;
        wino_submit(f, w, op);
    }
}

void fs__create_existing(struct fs* f,
                         fuse_req_t req,
                         const struct store_attr* a,
                         struct fuse_file_info* fi)
{
    struct fuse_entry_param e;

    if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY &&
        truncate_soon(f, a->ino, NULL) < 0) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fs__fill_entry(f, a, &e);
    uint64_t size;
    if (fs__pending_size(f, a->ino, &size)) {
        e.attr.st_size = (off_t)size;
        e.attr.st_blocks = 0;
    }
    fs__file_open_flags(f, fi);
    fuse_reply_create(req, &e, fi);
}

void fs__winos_free(struct fs* f)
{
    while (f->winos.next != &f->winos) {
        struct fs_wino* w = f->winos.next;
        while (w->q_head != NULL) {
            struct fs_op* op = w->q_head;
            w->q_head = op->wnext;
            op_reply_err(op, ESHUTDOWN);
            op_drop(op);
        }
        wino_unlink(f, w);
        free(w->inflight);
        free(w);
    }
}

/* ---- removed inodes ---- */

void fs__grave_add(struct fs* f, uint64_t ino, uint64_t rev)
{
    f->graves[f->grave_next].ino = ino;
    f->graves[f->grave_next].rev = rev;
    f->grave_next = (f->grave_next + 1) % FS_GRAVES;
}

/* A process that opened a file before it was removed or renamed over
 * still reads it (its pages are kept; this serves the ones it has not
 * read yet): the content and attrs as of the revision before the removal,
 * from the store's history. -ESTALE once that is gone. */
int fs__grave_read(struct fs* f,
                   uint64_t ino,
                   struct store_attr* a,
                   void** data,
                   size_t* len)
{
    struct store_view* v;
    size_t i;
    int rv;

    for (i = 0; i < FS_GRAVES; i++) {
        if (f->graves[i].ino == ino && f->graves[i].rev > 1) {
            break;
        }
    }
    if (i == FS_GRAVES) {
        return -ESTALE;
    }
    rv = store_view_open(node_store(f->node), f->graves[i].rev - 1, &v);
    if (rv != 0) {
        return -ESTALE;
    }
    rv = store_view_getattr(v, ino, a);
    a->nlink = 0; /* no name refers to it any more */
    if (rv == 0 && data != NULL) {
        rv =
            a->type == STORE_DIR ? -EISDIR : store_view_read(v, ino, data, len);
    }
    store_view_release(v);
    return rv == -ENOENT ? -ESTALE : rv;
}

/* ---- requests ---- */

static void open_now(struct fs* f,
                     fuse_req_t req,
                     fuse_ino_t ino,
                     struct fuse_file_info* fi)
{
    struct store_attr a;
    int rv;

    if (fs__is_snap(ino)) {
        rv = fs__snap_getattr(f, ino, &a);
        if (rv == 0 && a.type == STORE_DIR) {
            rv = -EISDIR;
        } else if (rv == 0 && ((fi->flags & O_ACCMODE) != O_RDONLY ||
                               (fi->flags & O_TRUNC))) {
            rv = -EROFS;
        }
    } else if (fs__is_vfile(ino)) {
        rv = (fi->flags & O_ACCMODE) != O_RDONLY ? -EROFS : 0;
    } else {
        rv = store_getattr(node_store(f->node), ino, &a);
        if (rv == -ENOENT) {
            rv = -ESTALE; /* replaced since the lookup: look up again */
        } else if (rv == 0 && a.type == STORE_DIR) {
            rv = -EISDIR;
        }
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    fs__file_open_flags(f, fi);
    if (fs__is_snap(ino) || fs__is_vfile(ino)) {
        fi->keep_cache = 1; /* immutable */
    }
    fuse_reply_open(req, fi);
}

static void open_resume(struct fs_op* op, int err)
{
    if (err != 0) {
        fuse_reply_err(op->req, -err);
    } else {
        open_now(op->fs, op->req, op->ino, &op->fi);
    }
    fs__op_free(op);
}

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_op* op;

    if (!f->o.linearizable) {
        /* The kernel stops sending OPEN (and RELEASE) for good. */
        fuse_reply_err(req, ENOSYS);
        return;
    }
    if (fs__is_vfile(ino) || fs__is_snap(ino)) {
        open_now(f, req, ino, fi);
        return;
    }
    op = fs__op_new(f, req, FS_REPLY_BARRIER);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    op->ino = ino;
    op->fi = *fi;
    op->resume = open_resume;
    op->after_notify = true; /* OPEN holds no directory lock */
    fs__barrier(f, op);
}

static void reply_slice(fuse_req_t req,
                        const void* data,
                        size_t len,
                        size_t size,
                        off_t off)
{
    if (off < 0 || (uint64_t)off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > len - (size_t)off) {
        size = len - (size_t)off;
    }
    fuse_reply_buf(req, (const char*)data + off, size);
}

void fs_read(fuse_req_t req,
             fuse_ino_t ino,
             size_t size,
             off_t off,
             struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    const void* data;
    size_t len;
    int rv;

    (void)fi;
    if (fs__is_snap(ino)) {
        void* copy = NULL;
        rv = fs__snap_read(f, ino, &copy, &len);
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
        reply_slice(req, copy, len, size, off);
        free(copy);
        return;
    }
    if (fs__is_vfile(ino)) {
        const char* text;
        struct store_attr a;
        rv = fs__vfile_get(f, ino, &text, &len, &a);
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
        reply_slice(req, text, len, size, off);
        return;
    }
    if (fs__is_virtual(ino)) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (!f->o.linearizable) {
        /* The revision the kernel may still hold (fs_kview.c). This mount's
         * own deferred truncation or commit in flight changes nothing
         * here: its kernel was answered size 0 for the truncation and
         * learns a commit's size from the WRITE reply, so a READ meanwhile
         * comes from a reader that still has the size of the revision it
         * was last told of. Never in linearizable mode: its opens read
         * with direct_io (the kernel's size plays no part), and the view
         * can be older than the open's barrier: it keeps the revision
         * before the first change not yet notified, and changes that
         * arrive while a barrier waits for the notifier keep it alive. */
        void* held = NULL;
        if (fs__kview_read(f, ino, &held, &len) == 1) {
            reply_slice(req, held, len, size, off);
            free(held);
            return;
        }
    }
    rv = store_read(node_store(f->node), ino, &data, &len);
    if (rv == -ENOENT) {
        struct store_attr a;
        void* old = NULL;
        rv = fs__grave_read(f, ino, &a, &old, &len);
        if (rv == 0) {
            reply_slice(req, old, len, size, off);
        } else {
            fuse_reply_err(req, -rv);
        }
        free(old);
        return;
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    reply_slice(req, data, len, size, off);
}

void fs_write(fuse_req_t req,
              fuse_ino_t ino,
              const char* buf,
              size_t size,
              off_t off,
              struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_wino* w;
    struct fs_op* op;

    if (fs__is_virtual(ino) || fs__is_snap(ino)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (off < 0 || (uint64_t)off + size > f->o.file_size_max) {
        fuse_reply_err(req, EFBIG); /* nothing of this write is kept */
        return;
    }
    op = wop_for(f, req, ino, FS_WOP_WRITE, &w);
    if (op == NULL) {
        return;
    }
    op->data = (char*)buf; /* borrowed; copied if queued */
    op->size = size;
    op->off = (uint64_t)off;
    op->append = (fi->flags & O_APPEND) != 0;
    wino_submit(f, w, op);
}

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    (void)ino;
    (void)fi;
    /* Writes are committed when they are written: close() has nothing to
     * do, and ENOSYS tells the kernel to stop sending FLUSH. */
    fuse_reply_err(req, ENOSYS);
}

void fs_fsync(fuse_req_t req,
              fuse_ino_t ino,
              int datasync,
              struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_wino* w = wino_find(f, ino);
    struct fs_op* op;

    (void)datasync;
    (void)fi;
    if (w == NULL || (!w->trunc && !w->busy)) {
        fuse_reply_err(req, 0); /* everything committed is durable */
        return;
    }
    op = wop_new(f, req, FS_WOP_FSYNC);
    if (op != NULL) {
        wino_submit(f, w, op);
    }
}

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0); /* no per-open state */
}
