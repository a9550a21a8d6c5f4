/* fs_read.c - the file read path: opens and reads (DESIGN §3,
 * docs/consistency.md); the write path is fs_write.c, removed inodes
 * fs_grave.c.
 *
 * No per-open state. Regular files are opened without a FUSE request: OPEN
 * is answered ENOSYS once (FUSE_NO_OPEN_SUPPORT), so the kernel stops
 * sending OPEN and RELEASE. FLUSH is kept (a writer's close commits its
 * update) and answered at once when the inode has nothing pending, so a
 * cached `cat` costs that one request. A regular file's nodeid names one
 * revision (fs_nodeid.c): READ of it answers that revision, or this
 * mount's pending update through the nodeid it is written through, which
 * its kernel wrote through its page cache. In linearizable mode OPEN stays
 * (its ReadIndex barrier) and reads are direct I/O from the store, nodeids
 * are store inos, and no state is kept either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "fs_internal.h"

void fs__file_open_flags(const struct fs* f, struct fuse_file_info* fi)
{
    fi->fh = 0;
    /* Linearizable: every read() is READs answered from the state the
     * open's barrier reached or a later one, never the kernel's cached
     * size or pages (those may be older than the barrier: fs_kview.c).
     * Shared writable mmap is then refused by the kernel (ENODEV). */
    fi->direct_io = f->o.linearizable ? 1 : 0;
    fi->keep_cache = f->o.linearizable ? 0 : 1;
    /* Every close() sends a FLUSH: a writer's commits its update
     * (fs_write.c). */
    fi->noflush = 0;
}

/* ---- requests ---- */

static void open_now(struct fs* f,
                     fuse_req_t req,
                     fuse_ino_t ino,
                     struct fuse_file_info* fi)
{
    struct store_attr a = {.ino = 0};
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
    } else if (a.type == STORE_FILE && (fi->flags & O_ACCMODE) == O_RDONLY) {
        /* Linearizable: a read-only open reads the revision its barrier
         * reached, whole (close-to-open, as the per-revision nodeids of
         * serializable mode): a `cat` whose second read() comes after a
         * commit does not get the old bytes and then the new ones past
         * the old size. A descriptor open for writing reads the current
         * content (its own commits). */
        fi->fh = a.mod_rev;
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

/* READ of the revision id names (its ino at id->rev): those bytes, or
 * the error fs__nodeid_at gives. */
static void reply_revision(fuse_req_t req,
                           struct fs* f,
                           const struct fs_nodeid* id,
                           size_t size,
                           off_t off)
{
    struct store_attr a;
    void* old = NULL;
    size_t len;
    int rv = fs__nodeid_at(f, id, &a, &old, &len);
    if (rv == 0) {
        reply_slice(req, old, len, size, off);
    } else {
        fuse_reply_err(req, -rv);
    }
    free(old);
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
    struct fs_nodeid id;
    rv = fs__nodeid_ino(f, ino, &id);
    if (rv == 0 && !id.current && id.pending_ok &&
        fs__pending_read(f, id.ino, (int32_t)fuse_req_ctx(req)->pid, &data,
                         &len)) {
        /* Written through: this mount's pending update. */
        reply_slice(req, data, len, size, off);
        return;
    }
    if (rv == 0 && !id.current) {
        /* A nodeid of an older revision: its bytes, which go with the
         * size its kernel inode has (fs_nodeid.c). */
        reply_revision(req, f, &id, size, off);
        return;
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    ino = id.ino;
    if (id.pending_ok &&
        fs__pending_read(f, ino, (int32_t)fuse_req_ctx(req)->pid, &data,
                         &len)) {
        /* This mount's own pending update (or commit in flight): what
         * its kernel was told and wrote through its page cache. */
        reply_slice(req, data, len, size, off);
        return;
    }
    if (fi != NULL && fi->fh != 0 && f->o.linearizable) {
        /* A read-only open's revision (open_now). */
        struct store_attr a;
        if (store_getattr(node_store(f->node), ino, &a) != 0 ||
            a.mod_rev != fi->fh) {
            struct fs_nodeid at = {.ino = ino, .rev = fi->fh};
            reply_revision(req, f, &at, size, off);
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

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0); /* no per-open state */
}
