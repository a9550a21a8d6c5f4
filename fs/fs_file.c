/* fs_file.c - open files and the whole-file write path (DESIGN §3).
 *
 * Each open handle keeps a buffer. A write-open with O_TRUNC starts with an
 * empty, uncommitted buffer; otherwise the buffer is loaded from the store on
 * the first write (so `>>` and partial overwrites work). A commit proposes
 * STORE_OP_WRITE with the whole buffer:
 *   - on the FLUSH that follows a write (not on every flush: bash flushes
 *     once before it writes, when it closes the fd it dup2'ed),
 *   - on FSYNC when something is uncommitted,
 *   - on RELEASE when something is still uncommitted (an O_TRUNC open that
 *     never wrote commits the empty file here).
 * The reply to flush/fsync/release is sent from the proposal's callback, so
 * close() returns once the content is committed, durable and applied.
 * Writable handles use direct_io (one write() is one WRITE request up to
 * max_write, so a write crossing file_size_max fails whole with EFBIG);
 * read-only handles keep the page cache and copy the content at open.
 * A failed commit returns its error and drops the uncommitted content (the
 * application was told; a later write reloads the store's content).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

static struct fs_file* handle_of(const struct fuse_file_info* fi)
{
    assert(fi != NULL && fi->fh != 0);
    return (struct fs_file*)(uintptr_t)fi->fh;
}

static bool file_dirty(const struct fs_file* h)
{
    return h->gen != h->committed_gen;
}

struct fs_file* fs__file_new(struct fs* f, uint64_t ino, int flags)
{
    struct fs_file* h = calloc(1, sizeof(*h));

    if (h == NULL) {
        return NULL;
    }
    h->ino = ino;
    h->refs = 1;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    if (h->writable && (flags & O_TRUNC)) {
        h->loaded = true; /* empty and not yet committed */
        h->gen = 1;
    }
    /* Writable handles first, read-only ones after: only a writable handle
     * can hold uncommitted content, so the scans for dirty content stop at
     * the first read-only handle (a getattr must not walk every reader). */
    struct fs_file* at = h->writable ? &f->files : f->files.prev;
    h->next = at->next;
    h->prev = at;
    at->next->prev = h;
    at->next = h;
    return h;
}

static void file_drop_buffer(struct fs_file* h)
{
    free(h->buf);
    h->buf = NULL;
    h->len = h->cap = 0;
    h->loaded = false;
}

void fs__file_unref(struct fs* f, struct fs_file* h)
{
    assert(h->refs > 0);
    if (--h->refs > 0) {
        return;
    }
    h->prev->next = h->next;
    h->next->prev = h->prev;
    file_drop_buffer(h);
    free(h);
}

/* Grow h->buf to hold at least `need` bytes (need <= file_size_max). A
 * read-only handle never grows: it gets exactly what it holds (a small
 * allocation, served from malloc's per-thread cache on every `cat`); a
 * writer starts at 4 KiB and doubles. */
static int file_reserve(struct fs_file* h, size_t need)
{
    size_t cap = h->cap != 0 ? h->cap : (h->writable ? 4096 : need);
    char* p;

    if (need <= h->cap) {
        return 0;
    }
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(h->buf, cap > 0 ? cap : 1);
    if (p == NULL) {
        return -ENOMEM;
    }
    h->buf = p;
    h->cap = cap;
    return 0;
}

static int file_load(struct fs* f, struct fs_file* h)
{
    const void* data;
    size_t len;
    int rv;

    if (h->loaded) {
        return 0;
    }
    rv = store_read(node_store(f->node), h->ino, &data, &len);
    if (rv != 0) {
        return rv;
    }
    rv = file_reserve(h, len);
    if (rv != 0) {
        return rv;
    }
    if (len > 0) {
        memcpy(h->buf, data, len);
    }
    h->len = len;
    h->loaded = true;
    return 0;
}

void fs__file_resize(struct fs_file* h, uint64_t size)
{
    if (!h->loaded) {
        return; /* nothing buffered: the store's SETATTR is the truth */
    }
    if (size > h->len && file_reserve(h, size) == 0) {
        memset(h->buf + h->len, 0, size - h->len);
        h->len = size;
    } else if (size < h->len) {
        h->len = size;
    }
    h->gen++;
}

static void open_now(struct fs* f,
                     fuse_req_t req,
                     fuse_ino_t ino,
                     struct fuse_file_info* fi)
{
    struct store_attr a;
    struct fs_file* h;
    int rv;

    if (fs__is_snap(ino)) {
        fs__snap_open(f, req, ino, fi);
        return;
    }
    if (fs__is_virtual(ino)) {
        if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
            fuse_reply_err(req, EROFS);
            return;
        }
        h = fs__file_new(f, ino, fi->flags);
        if (h == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        h->is_virtual = true;
        rv = fs__virtual_open(f, h);
        if (rv != 0) {
            fs__file_unref(f, h);
            fuse_reply_err(req, -rv);
            return;
        }
        fi->direct_io = 1;
        fi->fh = (uint64_t)(uintptr_t)h;
        if (fuse_reply_open(req, fi) != 0) {
            fs__file_unref(f, h);
        }
        return;
    }
    rv = store_getattr(node_store(f->node), ino, &a);
    if (rv != 0) {
        /* The name was looked up, then replaced or removed before this
         * open: ESTALE makes the kernel look the path up again once. */
        fuse_reply_err(req, rv == -ENOENT ? ESTALE : -rv);
        return;
    }
    if (a.type == STORE_DIR) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    h = fs__file_new(f, ino, fi->flags);
    if (h == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    h->attr = a;
    if (!h->writable) {
        /* A reader sees the content as of its open (close-to-open), even
         * when a commit or a rename-over replaces it between two READs. */
        rv = file_load(f, h);
        if (rv != 0) {
            fs__file_unref(f, h);
            fuse_reply_err(req, -rv);
            return;
        }
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->keep_cache = 1; /* every change invalidates the kernel's cache */
    fi->noflush = h->writable ? 0 : 1;
    /* Writers bypass the page cache so that one write() is one WRITE: a
     * buffered write is split at page boundaries, and the part past the
     * size limit would fail after the part before it was accepted. */
    fi->direct_io = h->writable ? 1 : 0;
    if (fuse_reply_open(req, fi) != 0) {
        fs__file_unref(f, h);
    }
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

    if (!f->o.linearizable || fs__is_virtual(ino) || fs__is_snap(ino)) {
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
    fs__barrier(f, op);
}

/* A read-only handle serves the content of its open (close-to-open). If
 * the file changed since, this reply may have put that old content in the
 * page cache after the change's invalidation went out (keep_cache): queue
 * another one, which the notifier sends after this reply is in. */
static void read_stale_check(struct fs* f, const struct fs_file* h)
{
    struct store_attr cur;

    if (h->is_virtual || h->writable || !h->loaded) {
        return;
    }
    if (store_getattr(node_store(f->node), h->ino, &cur) != 0 ||
        cur.mod_rev != h->attr.mod_rev) {
        fs__notify_push(&f->notify, h->ino, 0, NULL);
    }
}

void fs_read(fuse_req_t req,
             fuse_ino_t ino,
             size_t size,
             off_t off,
             struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_file* h = handle_of(fi);
    const void* data;
    size_t len;
    int rv;

    if (h->is_virtual || (h->loaded && (file_dirty(h) || !h->writable))) {
        data = h->buf;
        len = h->len;
    } else {
        rv = store_read(node_store(f->node), ino, &data, &len);
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
    }
    if (off < 0 || (uint64_t)off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > len - (size_t)off) {
        size = len - (size_t)off;
    }
    fuse_reply_buf(req, (const char*)data + off, size);
    read_stale_check(f, h);
}

void fs_write(fuse_req_t req,
              fuse_ino_t ino,
              const char* buf,
              size_t size,
              off_t off,
              struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_file* h = handle_of(fi);
    uint64_t end;
    int rv;

    assert(h->ino == ino);
    if (h->is_virtual || !h->writable) {
        fuse_reply_err(req, h->is_virtual ? EROFS : EBADF);
        return;
    }
    end = (uint64_t)off + size;
    if (off < 0 || end > f->o.file_size_max) {
        fuse_reply_err(req, EFBIG); /* nothing of this write is kept */
        return;
    }
    rv = file_load(f, h);
    if (rv == 0) {
        rv = file_reserve(h, (size_t)end);
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    if ((size_t)off > h->len) {
        memset(h->buf + h->len, 0, (size_t)off - h->len);
    }
    memcpy(h->buf + off, buf, size);
    if (end > h->len) {
        h->len = (size_t)end;
    }
    h->gen++;
    h->wrote = true;
    fuse_reply_write(req, size);
}

/* Propose h's whole buffer; the reply goes out from fs__file_done. */
static void file_commit(struct fs* f,
                        fuse_req_t req,
                        struct fs_file* h,
                        bool release)
{
    struct fs_op* op = fs__op_new(f, req, FS_REPLY_COMMIT);
    struct store_cmd c;

    assert(h->loaded && file_dirty(h));
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        if (release) {
            fs__file_unref(f, h);
        }
        return;
    }
    op->file = h;
    op->gen = h->gen;
    op->release = release;
    h->refs++;
    h->wrote = false;
    memset(&c, 0, sizeof(c));
    c.op = STORE_OP_WRITE;
    c.ino = h->ino;
    c.data = h->buf != NULL ? h->buf : "";
    c.data_len = h->len;
    fs__propose(f, op, &c);
}

void fs__file_done(struct fs_op* op, const struct store_result* res)
{
    struct fs_file* h = op->file;
    struct fs* f = op->fs;

    assert(op->kind == FS_REPLY_COMMIT && h != NULL);
    if (res->err == 0) {
        if (op->gen > h->committed_gen) {
            h->committed_gen = op->gen;
        }
    } else {
        h->committed_gen = h->gen; /* dropped: the caller got the error */
        h->wrote = false;
    }
    if (!file_dirty(h)) {
        file_drop_buffer(h); /* reads go to the store again */
    }
    if (op->req != NULL) {
        fuse_reply_err(op->req, -res->err);
    }
    if (op->release) {
        fs__file_unref(f, h); /* the handle's own reference */
    }
    fs__file_unref(f, h); /* the commit's reference */
    op->file = NULL;
}

int fs__file_attr_for(const struct fs* f, uint64_t ino, struct store_attr* a)
{
    const struct fs_file* h;

    for (h = f->files.next; h != &f->files; h = h->next) {
        if (h->ino == ino && !h->is_virtual && h->attr.ino == ino) {
            *a = h->attr;
            a->nlink = 0;
            a->size = h->loaded ? h->len : a->size;
            return 0;
        }
    }
    return -ENOENT;
}

const struct fs_file* fs__file_dirty_for(const struct fs* f, uint64_t ino)
{
    const struct fs_file *h, *best = NULL;

    for (h = f->files.next; h != &f->files && h->writable; h = h->next) {
        if (h->ino == ino && h->loaded && file_dirty(h) &&
            (best == NULL || h->gen > best->gen)) {
            best = h;
        }
    }
    return best;
}

void fs__file_commit_ino(struct fs* f, uint64_t ino)
{
    struct fs_file *h, *next;

    for (h = f->files.next; h != &f->files && h->writable; h = next) {
        next = h->next;
        if (h->ino == ino && !h->is_virtual && h->loaded && file_dirty(h)) {
            file_commit(f, NULL, h, false);
        }
    }
}

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_file* h = handle_of(fi);

    if (!h->wrote || !h->loaded || !file_dirty(h)) {
        fuse_reply_err(req, 0);
        return;
    }
    file_commit(f, req, h, false);
}

void fs_fsync(fuse_req_t req,
              fuse_ino_t ino,
              int datasync,
              struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_file* h = handle_of(fi);

    if (!h->loaded || !file_dirty(h)) {
        fuse_reply_err(req, 0); /* everything committed is durable */
        return;
    }
    file_commit(f, req, h, false);
}

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_file* h = handle_of(fi);

    if (h->loaded && file_dirty(h) && !h->is_virtual) {
        file_commit(f, req, h, true);
        return;
    }
    fs__file_unref(f, h);
    fuse_reply_err(req, 0);
}
