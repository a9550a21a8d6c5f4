/* fs_wreq.c - the write-path requests (WRITE, FLUSH, FSYNC; SETATTR,
 * CREATE of an existing name and RENAME where they meet a pending update)
 * on top of the pending update machinery of fs_write.c, which says what
 * the model is (docs/consistency.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "fs_internal.h"

/* ---- requests ---- */

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
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    op = fs__wop_for(f, req, ino, FS_WOP_WRITE, &w);
    if (op == NULL) {
        return;
    }
    op->data = (char*)buf; /* borrowed; copied if queued */
    op->size = size;
    op->off = (uint64_t)off;
    op->append = (fi->flags & O_APPEND) != 0 && !fi->writepage;
    op->writepage = fi->writepage != 0;
    fs__wino_submit(f, w, op);
}

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_wino* w = fs__wino_find(f, ino);
    int32_t tid = (int32_t)fuse_req_ctx(req)->pid;
    bool of_flight = false;
    struct fs_op* op;

    (void)fi;
    /* Every close() on the mount sends one: the cheapest answer when the
     * inode has nothing pending (a cached `cat`). */
    if (w == NULL || (!w->u.on && w->q_head == NULL &&
                      (!w->busy || !(of_flight = fs__owner_is(&w->fl, tid))))) {
        fuse_reply_err(req, 0);
        return;
    }
    /* A writer's close waits for the commit of its writes in flight (a
     * FLUSH of its process may have started it), and reports its error. */
    op = fs__wop_for(f, req, ino, FS_WOP_FLUSH, &w);
    if (op != NULL) {
        op->of_flight = of_flight || (w->busy && fs__owner_is(&w->fl, tid));
        fs__wino_submit(f, w, op);
    }
}

void fs_fsync(fuse_req_t req,
              fuse_ino_t ino,
              int datasync,
              struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_wino* w = fs__wino_find(f, ino);
    struct fs_op* op;

    (void)datasync;
    (void)fi;
    if (w == NULL || (!w->u.on && w->q_head == NULL && !w->busy)) {
        fuse_reply_err(req, 0); /* everything committed is durable */
        return;
    }
    op = fs__wop_for(f, req, ino, FS_WOP_FSYNC, &w);
    if (op != NULL) {
        op->of_flight = w->busy; /* it waits for that commit */
        fs__wino_submit(f, w, op);
    }
}

/* Whether a SETATTR of ino by thread tid joins its pending update. */
static bool joins(struct fs* f, uint64_t ino, int32_t tid)
{
    struct fs_wino* w = fs__wino_find(f, ino);

    return w != NULL && (w->busy || w->q_head != NULL || w->u.on) &&
           (!w->u.on || fs__owner_is(&w->u, tid));
}

void fs__setattr_file(struct fs* f,
                      fuse_req_t req,
                      const struct store_cmd* c,
                      int to_set,
                      bool with_fh)
{
    int32_t tid = (int32_t)fuse_req_ctx(req)->pid;
    bool sized = (c->set_mask & STORE_SET_SIZE) != 0;
    /* O_TRUNC (and truncate(2) to 0) arrive as SIZE|MTIME|CTIME with no
     * file handle; ftruncate with one. */
    bool trunc =
        sized && !with_fh && c->size == 0 &&
        (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME |
                    FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) == 0;
    struct fs_wino* w;
    struct fs_op* op;

    /* A pending new file has nothing committed: every change joins it. */
    if (!trunc && !(sized && with_fh) && !fs__is_pnode(c->ino) &&
        !joins(f, c->ino, tid)) {
        /* Nothing of the caller's pending: its own entry. */
        op = fs__op_new(f, req, FS_REPLY_ATTR);
        if (op == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        op->ino = c->ino;
        fs__propose(f, op, (struct store_cmd*)c);
        return;
    }
    op = fs__wop_for(f, req, c->ino, FS_WOP_SETATTR, &w);
    if (op == NULL) {
        return;
    }
    op->trunc = trunc;
    op->new_size = c->size;
    /* An O_TRUNC's times are the commit's. */
    op->set_mask = trunc ? 0 : c->set_mask;
    op->mode = c->mode;
    op->uid = c->uid;
    op->gid = c->gid;
    op->atime_ns = c->atime_ns;
    op->mtime_ns = c->mtime_ns;
    fs__wino_submit(f, w, op);
}

void fs__create_existing(struct fs* f,
                         fuse_req_t req,
                         const struct store_attr* a,
                         struct fuse_file_info* fi)
{
    struct fuse_entry_param e;
    struct store_attr cur = *a;

    int32_t tid = (int32_t)fuse_req_ctx(req)->pid;
    bool trunc = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;

    if (trunc) {
        struct fs_wino* w = fs__wino_get(f, a->ino);
        int rv = w == NULL ? -ENOMEM : 0;
        if (rv == 0 && (w->busy || w->q_head != NULL)) {
            /* behind the commit in flight, as an O_TRUNC's SETATTR
             * would be (nobody to answer: the CREATE is answered now) */
            struct fs_op* op = fs__wop_for(f, NULL, a->ino, FS_WOP_SETATTR, &w);
            rv = op == NULL ? -ENOMEM : 0;
            if (op != NULL) {
                op->tid = tid;
                op->trunc = true;
                fs__wino_submit(f, w, op);
            }
        } else if (rv == 0) {
            if (w->u.on && w->u.err == 0) {
                rv = fs__upd_resize(f, &w->u, 0);
                fs__upd_stamp(&w->u, true);
            } else if (!w->u.on) {
                rv = fs__upd_begin(f, w, true);
            }
            if (rv == 0 && w->u.on) {
                fs__owner_add(&w->u, tid);
            }
            fs__wino_put(f, w);
        }
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
    }
    bool pending = fs__pending_attr(f, &cur, tid) != 0;
    fs__fill_entry(f, &cur, &e);
    if (pending || trunc) {
        e.attr_timeout = 0;
    }
    if (trunc) {
        e.attr.st_size = 0; /* the opener's view, queued or not */
        e.attr.st_blocks = 0;
    }
    fs__file_open_flags(f, fi);
    fuse_reply_create(req, &e, fi);
}

void fs__rename(struct fs* f, fuse_req_t req, struct store_cmd* c)
{
    int32_t tid = (int32_t)fuse_req_ctx(req)->pid;
    struct store_attr a;
    struct fs_wino* w = NULL;
    struct fs_op* op;

    if (f->pnews != NULL && fs__pnew_rename(f, req, c)) {
        return; /* a pending new file (fs_pnew.c) */
    }
    if ((c->flags & STORE_EXCHANGE) == 0 &&
        (c->parent != c->new_parent || strcmp(c->name, c->new_name) != 0) &&
        store_lookup(node_store(f->node), c->parent, c->name, &a) == 0 &&
        a.type == STORE_FILE) {
        w = fs__wino_find(f, a.ino);
    }
    if (w != NULL && w->u.on && w->u.err == 0 && !w->busy &&
        w->q_head == NULL && fs__owner_is(&w->u, tid)) {
        /* write-temp-then-rename: the content and the rename are one
         * entry */
        op = fs__op_new(f, req, FS_REPLY_WRITE);
        if (op == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        op->wop = FS_WOP_RENAME;
        op->tid = tid;
        c->flags |= STORE_WITH_DATA;
        fs__commit_start(f, w, op, c);
        return;
    }
    /* Otherwise a pending update stays with its inode, under the new
     * name. */
    op = fs__op_new(f, req, FS_REPLY_ERR);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fs__propose(f, op, c);
}
