/* fs_dir.c - namespace requests: create/mkdir/mknod/symlink/unlink/rmdir/
 * rename/setattr (one proposal each, replied from the proposal's callback
 * with the store's result), readlink, and directory listing.
 *
 * Reserved names: `.cluster` and `.snapshots` at the root are virtual
 * directories (fs_cluster.c). Creating them gives EEXIST (mkdir) or EPERM,
 * removing or renaming them EPERM; any change inside them EROFS, except
 * mkdir/rmdir of a /.snapshots/NAME (a named snapshot, fs_snap.c). A
 * rename into or out of /.snapshots gives EXDEV.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

/* Replies and returns true when `name` may not be created in parent. */
static bool new_name_refused(fuse_req_t req,
                             fuse_ino_t parent,
                             const char* name,
                             int reserved_err)
{
    if (fs__name_bad(req, name)) {
        return true;
    }
    if (fs__is_virtual(parent) || fs__is_snap(parent)) {
        fuse_reply_err(req, EROFS);
        return true;
    }
    if (fs__reserved_name(parent, name, NULL)) {
        fuse_reply_err(req, reserved_err);
        return true;
    }
    return false;
}

/* Replies EEXIST and returns true when name is this mount's pending new
 * file (fs_pnew.c): as if it existed. */
static bool pending_name(fuse_req_t req, fuse_ino_t parent, const char* name)
{
    const struct fs* f = fuse_req_userdata(req);

    if (f->pnews == NULL || fs__pnew_named(f, parent, name) == NULL) {
        return false;
    }
    fuse_reply_err(req, EEXIST);
    return true;
}

static void cmd_init(fuse_req_t req,
                     struct store_cmd* c,
                     enum store_op op,
                     fuse_ino_t parent,
                     const char* name)
{
    const struct fuse_ctx* ctx = fuse_req_ctx(req);
    const struct fs* f = fuse_req_userdata(req);

    memset(c, 0, sizeof(*c));
    c->op = op;
    c->parent = parent;
    c->name = name;
    c->uid = ctx->uid;
    c->gid = ctx->gid;
    /* The quota's root reserve is root's only (fs_options); applied by
     * the store on every node from the command (store_cmd.reserve_pct). */
    c->reserve_pct = ctx->uid != 0 ? (uint8_t)f->o.quota_reserve_pct : 0;
}

/* Start a one-proposal request whose reply is of `kind`. */
static void propose_simple(fuse_req_t req,
                           struct store_cmd* c,
                           enum fs_reply kind)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_op* op = fs__op_new(f, req, kind);

    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fs__propose(f, op, c);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode)
{
    struct store_cmd c;

    if (parent == FS_VINO_SNAPSHOTS && !fs__name_bad(req, name)) {
        fs__snap_mkdir(req, name);
        return;
    }
    if (parent == FS_VINO_SNAPSHOTS ||
        new_name_refused(req, parent, name, EEXIST) ||
        pending_name(req, parent, name)) {
        return;
    }
    cmd_init(req, &c, STORE_OP_MKDIR, parent, name);
    c.mode = mode & 07777;
    propose_simple(req, &c, FS_REPLY_ENTRY);
}

void fs_mknod(fuse_req_t req,
              fuse_ino_t parent,
              const char* name,
              mode_t mode,
              dev_t rdev)
{
    struct store_cmd c;
    uint8_t type;

    if (new_name_refused(req, parent, name, EPERM) ||
        pending_name(req, parent, name)) {
        return;
    }
    switch (mode & S_IFMT) {
    case S_IFREG:
        cmd_init(req, &c, STORE_OP_CREATE, parent, name);
        c.mode = mode & 07777;
        c.flags = STORE_EXCL; /* mknod fails on an existing name */
        propose_simple(req, &c, FS_REPLY_ENTRY);
        return;
    case S_IFIFO:
        type = STORE_FIFO;
        break;
    case S_IFSOCK:
        type = STORE_SOCK;
        break;
    case S_IFCHR:
        type = STORE_CHR;
        break;
    case S_IFBLK:
        type = STORE_BLK;
        break;
    default:
        fuse_reply_err(req, EINVAL);
        return;
    }
    /* A special file is an entry like any other (one proposal); its I/O
     * is the kernel's on each node. The VFS has checked CAP_MKNOD for a
     * device before the request reaches us. rdev is the FUSE protocol's
     * 32-bit encoding, kept as is and handed back in getattr. */
    cmd_init(req, &c, STORE_OP_MKNOD, parent, name);
    c.type = type;
    c.mode = mode & 07777;
    if (type == STORE_CHR || type == STORE_BLK) {
        c.size = (uint64_t)rdev;
    }
    propose_simple(req, &c, FS_REPLY_ENTRY);
}

void fs_create(fuse_req_t req,
               fuse_ino_t parent,
               const char* name,
               mode_t mode,
               struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct store_attr a;
    struct store_cmd c;
    struct fs_op* op;

    if (new_name_refused(req, parent, name, EPERM)) {
        return;
    }
    struct fs_pnew* p =
        f->pnews != NULL ? fs__pnew_named(f, parent, name) : NULL;
    if (p != NULL && (fi->flags & O_EXCL)) {
        fuse_reply_err(req, EEXIST); /* this mount's pending new file */
        return;
    }
    if (p != NULL) {
        fs__pnew_fill(p, &a); /* open it again */
        fs__create_existing(f, req, &a, fi);
        return;
    }
    /* The kernel sends CREATE for a name it has no dentry for, which may
     * exist (made on another node): open it here, without a proposal, and
     * defer its O_TRUNC like an open's (fs_wreq.c). */
    if (!(fi->flags & O_EXCL) &&
        store_lookup(node_store(f->node), parent, name, &a) == 0) {
        if (a.type == STORE_DIR) {
            fuse_reply_err(req, EISDIR);
        } else if (a.type != STORE_FILE && a.type != STORE_SYMLINK) {
            /* a special file made elsewhere behind a negative dentry: the
             * kernel looks the name up again and opens it itself */
            fuse_reply_err(req, ESTALE);
        } else {
            fs__create_existing(f, req, &a, fi);
        }
        return;
    }
    if (!f->o.linearizable) {
        /* A new name: a pending new file of this mount, committed with
         * its content as one entry (fs_pnew.c). O_EXCL stays a
         * compare-and-create decided in the replicated order (lock
         * files): the name's reservation first, taken on every node but
         * seen by none. Linearizable mode shows nothing before its
         * commit. */
        if (fi->flags & O_EXCL) {
            fs__pnew_reserve(f, req, parent, name, mode, fi);
        } else {
            fs__pnew_create(f, req, parent, name, mode, fi);
        }
        return;
    }
    op = fs__op_new(f, req, FS_REPLY_CREATE);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    op->fi = *fi;
    cmd_init(req, &c, STORE_OP_CREATE, parent, name);
    c.mode = mode & 07777;
    if (fi->flags & O_EXCL) {
        c.flags |= STORE_EXCL;
    }
    if (fi->flags & O_TRUNC) {
        c.flags |= STORE_TRUNC; /* made by someone else meanwhile */
    }
    fs__propose(f, op, &c);
}

void fs_symlink(fuse_req_t req,
                const char* link,
                fuse_ino_t parent,
                const char* name)
{
    struct store_cmd c;

    if (new_name_refused(req, parent, name, EPERM) ||
        pending_name(req, parent, name)) {
        return;
    }
    cmd_init(req, &c, STORE_OP_SYMLINK, parent, name);
    c.mode = 0777;
    c.data = link;
    c.data_len = strlen(link);
    propose_simple(req, &c, FS_REPLY_ENTRY);
}

void fs_link(fuse_req_t req,
             fuse_ino_t ino,
             fuse_ino_t newparent,
             const char* newname)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_nodeid id;
    struct store_cmd c;

    if (fs__in_snapshots(newparent) || fs__is_snap(ino)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (fs__is_virtual(ino)) {
        fuse_reply_err(req, EPERM); /* /.cluster and its files */
        return;
    }
    if (new_name_refused(req, newparent, newname, EPERM) ||
        pending_name(req, newparent, newname)) {
        return;
    }
    /* A regular file's nodeid names a revision (fs_nodeid.c): the link
     * names the store ino, whatever revision the kernel holds. */
    if (fs__nodeid_ino(f, ino, &id) != 0) {
        fuse_reply_err(req, ESTALE);
        return;
    }
    if (fs__is_pnode(id.ino)) {
        /* This mount's new file, not committed yet (an empty file's
         * first close does not commit it): committed first, the link
         * queued behind that commit. */
        struct fs_wino* w;
        struct fs_op* cop = fs__wop_for(f, NULL, id.ino, FS_WOP_FSYNC, &w);
        if (cop == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        fs__wino_submit(f, w, cop);
        struct fs_op* lop = fs__wop_for(f, req, id.ino, FS_WOP_LINK, &w);
        if (lop != NULL) {
            lop->off = newparent;
            memcpy(lop->name, newname, strlen(newname) + 1);
            fs__wino_submit(f, w, lop);
        }
        return;
    }
    cmd_init(req, &c, STORE_OP_LINK, newparent, newname);
    c.ino = id.ino;
    struct fs_op* op = fs__op_new(f, req, FS_REPLY_LINK);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    op->ino = ino; /* the nodeid the kernel holds: the reply's */
    fs__propose(f, op, &c);
}

void fs__link_committed(struct fs* f, struct fs_op* op, uint64_t ino)
{
    struct store_cmd c;

    if (ino == 0) {
        fuse_reply_err(op->req, ENOENT); /* its commit failed: no file */
        fs__op_free(op);
        return;
    }
    cmd_init(op->req, &c, STORE_OP_LINK, op->off, op->name);
    c.ino = ino;
    op->kind = FS_REPLY_LINK; /* op->ino: the nodeid the kernel holds */
    fs__propose(f, op, &c);
}

/* Replies and returns true when the name may not be removed / renamed:
 * the same rules as for a new name, reserved names answering EPERM. */
static bool old_name_refused(fuse_req_t req,
                             fuse_ino_t parent,
                             const char* name)
{
    return new_name_refused(req, parent, name, EPERM);
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char* name)
{
    struct store_cmd c;

    if (old_name_refused(req, parent, name)) {
        return;
    }
    struct fs* f = fuse_req_userdata(req);
    if (f->pnews != NULL && fs__pnew_unlink(f, req, parent, name)) {
        return; /* a pending new file: no entry (fs_pnew.c) */
    }
    cmd_init(req, &c, STORE_OP_UNLINK, parent, name);
    propose_simple(req, &c, FS_REPLY_ERR);
}

/* Whether (parent, name) is a directory holding a pending new file of
 * this mount: not empty, whatever the store says. */
static bool holds_pnew(struct fs* f, uint64_t parent, const char* name)
{
    struct store_attr a;

    return f->pnews != NULL &&
           store_lookup(node_store(f->node), parent, name, &a) == 0 &&
           a.type == STORE_DIR && fs__pnew_in(f, a.ino);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name)
{
    struct store_cmd c;

    if (parent == FS_VINO_SNAPSHOTS && !fs__name_bad(req, name)) {
        fs__snap_rmdir(req, name);
        return;
    }
    if (parent == FS_VINO_SNAPSHOTS || old_name_refused(req, parent, name)) {
        return;
    }
    if (holds_pnew(fuse_req_userdata(req), parent, name)) {
        fuse_reply_err(req, ENOTEMPTY); /* a pending new file in it */
        return;
    }
    cmd_init(req, &c, STORE_OP_RMDIR, parent, name);
    propose_simple(req, &c, FS_REPLY_ERR);
}

void fs_rename(fuse_req_t req,
               fuse_ino_t parent,
               const char* name,
               fuse_ino_t newparent,
               const char* newname,
               unsigned int flags)
{
    struct store_cmd c;

    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fuse_reply_err(req, EINVAL); /* RENAME_WHITEOUT */
        return;
    }
    if (fs__in_snapshots(parent) != fs__in_snapshots(newparent)) {
        fuse_reply_err(req, EXDEV); /* into or out of /.snapshots */
        return;
    }
    if (old_name_refused(req, parent, name) ||
        old_name_refused(req, newparent, newname)) {
        return;
    }
    if (!(flags & RENAME_EXCHANGE) &&
        holds_pnew(fuse_req_userdata(req), newparent, newname)) {
        fuse_reply_err(req, ENOTEMPTY); /* its target is not empty here */
        return;
    }
    cmd_init(req, &c, STORE_OP_RENAME, parent, name);
    c.new_parent = newparent;
    c.new_name = newname;
    if (flags & RENAME_NOREPLACE) {
        c.flags |= STORE_NOREPLACE;
    }
    if (flags & RENAME_EXCHANGE) {
        c.flags |= STORE_EXCHANGE;
    }
    fs__rename(fuse_req_userdata(req), req, &c);
}

static int64_t time_ns(const struct timespec* ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* Whether c sets only mode/uid/gid, each to what the requester sees. */
static bool unchanged(struct fs* f,
                      fuse_req_t req,
                      const struct store_attr* a,
                      const struct store_cmd* c)
{
    struct store_attr cur = *a;

    if ((c->set_mask &
         ~(uint32_t)(STORE_SET_MODE | STORE_SET_UID | STORE_SET_GID)) != 0) {
        return false;
    }
    if (cur.type == STORE_FILE) {
        fs__pending_attr(f, &cur, (int32_t)fuse_req_ctx(req)->pid);
    }
    return (!(c->set_mask & STORE_SET_MODE) || cur.mode == c->mode) &&
           (!(c->set_mask & STORE_SET_UID) || cur.uid == c->uid) &&
           (!(c->set_mask & STORE_SET_GID) || cur.gid == c->gid);
}

void fs_setattr(fuse_req_t req,
                fuse_ino_t ino,
                struct stat* attr,
                int to_set,
                struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct store_cmd c;
    struct fs_op* op;
    int64_t now = fs__now_ns();

    if (fs__is_virtual(ino) || fs__is_snap(ino)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    /* A nodeid of a regular file names a revision (fs_nodeid.c): the
     * store ino from here on; this mount's change keeps that nodeid. */
    ino = fs__nodeid_write(f, ino);
    if (ino == 0) {
        fuse_reply_err(req, ESTALE);
        return;
    }
    cmd_init(req, &c, STORE_OP_SETATTR, 0, NULL);
    c.ino = ino;
    if (to_set & FUSE_SET_ATTR_MODE) {
        c.set_mask |= STORE_SET_MODE;
        c.mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        c.set_mask |= STORE_SET_UID;
        c.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        c.set_mask |= STORE_SET_GID;
        c.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if ((uint64_t)attr->st_size > f->o.file_size_max) {
            fuse_reply_err(req, EFBIG);
            return;
        }
        c.set_mask |= STORE_SET_SIZE;
        c.size = (uint64_t)attr->st_size;
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
        c.set_mask |= STORE_SET_ATIME;
        c.atime_ns =
            (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now : time_ns(&attr->st_atim);
    }
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
        c.set_mask |= STORE_SET_MTIME;
        c.mtime_ns =
            (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : time_ns(&attr->st_mtim);
    }
    if (c.set_mask == 0) { /* e.g. ctime only: nothing to propose */
        fs__reply_attr(f, req, ino);
        return;
    }
    if (fs__is_pnode(ino)) {
        /* a pending new file (fs_pnew.c): joined to its update */
        if (fs__pnew_find(f, ino) == NULL) {
            fuse_reply_err(req, ESTALE);
        } else {
            fs__setattr_file(f, req, &c, to_set, fi != NULL);
        }
        return;
    }
    struct store_attr a;
    int rv = store_getattr(node_store(f->node), ino, &a);
    if (rv == 0 && unchanged(f, req, &a, &c)) {
        /* chmod/chown to what it is already (vim's fchmod after its
         * fsync): no entry (ctime stays) */
        fs__reply_attr(f, req, ino);
        return;
    }
    if (rv == 0 && a.type == STORE_FILE) {
        /* Joined to this mount's pending update of the file when it is
         * the caller's (fs_write.c), else one proposal. */
        fs__setattr_file(f, req, &c, to_set, fi != NULL);
        return;
    }
    if (rv == 0 && (c.set_mask & STORE_SET_SIZE)) {
        rv = a.type == STORE_DIR ? -EISDIR : -EINVAL;
    }
    if (rv != 0) {
        /* ESTALE: removed since the lookup; the path is looked up again */
        fuse_reply_err(req, rv == -ENOENT ? ESTALE : -rv);
        return;
    }
    op = fs__op_new(f, req, FS_REPLY_ATTR);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    op->ino = ino;
    fs__propose(f, op, &c);
}

static void readlink_snap(struct fs* f, fuse_req_t req, fuse_ino_t ino)
{
    struct store_attr a;
    void* data = NULL;
    size_t len = 0;
    int rv = fs__snap_getattr(f, ino, &a);

    if (rv == 0 && a.type != STORE_SYMLINK) {
        rv = -EINVAL;
    }
    if (rv == 0) {
        rv = fs__snap_read(f, ino, &data, &len);
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    char* s = malloc(len + 1);
    if (s == NULL) {
        free(data);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (len > 0) {
        memcpy(s, data, len);
    }
    s[len] = '\0';
    fuse_reply_readlink(req, s);
    free(s);
    free(data);
}

void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fs* f = fuse_req_userdata(req);
    const void* data;
    size_t len;
    char* s;
    int rv;

    if (fs__is_snap(ino)) {
        readlink_snap(f, req, ino);
        return;
    }
    if (fs__is_virtual(ino)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    rv = store_read(node_store(f->node), ino, &data, &len);
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    s = malloc(len + 1);
    if (s == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(s, data, len);
    s[len] = '\0';
    fuse_reply_readlink(req, s);
    free(s);
}

/* ---- directory listing ----
 * Offsets number the entries 1..N in order: ".", "..", then (at the root)
 * the virtual dirs, then the store's children in name order. An open
 * directory remembers the name at its last offset, so a listing continues
 * with store_readdir(after = that name) and survives concurrent changes. */

struct fs_dir {
    uint64_t ino;
    off_t cursor_off; /* offset of the entry named cursor (0: none) */
    char cursor[FS_NAME_MAX + 1];
    /* After the store's children, this mount's pending new files
     * (fs_pnew.c), oldest first: the nodeid of the one at cursor_off
     * (0: the cursor is a store name). */
    uint64_t pend_cursor;
};

struct dir_fill {
    struct fs* f;
    fuse_req_t req;
    struct fs_dir* d;
    bool plus;
    char* buf;
    size_t size, used;
    off_t off;   /* offset of the last entry walked */
    off_t start; /* entries with offset <= start are skipped */
    uint64_t walked;
};

/* Add one entry; returns 1 when the reply buffer is full. */
static int dir_add(struct dir_fill* df,
                   const char* name,
                   const struct store_attr* a,
                   bool is_store)
{
    size_t n, rem = df->size - df->used;
    off_t next = df->off + 1;

    if (next > df->start) {
        if (df->plus) {
            struct fuse_entry_param e;
            fs__fill_entry(df->f, a, &e); /* counts a per-revision nodeid */
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
                fs__is_snap(a->ino) ||
                (fs__is_virtual(a->ino) && a->type == STORE_FILE)) {
                /* The kernel does not instantiate dots; view entries are
                 * counted only by lookup (fs_snap.c); a /.cluster file
                 * gets a new generation at each lookup (fs_cluster.c). */
                e.ino = 0;
            }
            n = fuse_add_direntry_plus(df->req, df->buf + df->used, rem, name,
                                       &e, next);
            if (n > rem) {
                fs__nodeid_unhand(df->f, e.ino); /* not in this reply */
            }
        } else {
            struct stat st;
            fs__attr_to_stat(df->f, a, &st);
            n = fuse_add_direntry(df->req, df->buf + df->used, rem, name, &st,
                                  next);
        }
        if (n > rem) {
            return 1;
        }
        df->used += n;
    }
    df->off = next;
    if (is_store) {
        memcpy(df->d->cursor, name, strlen(name) + 1);
        df->d->cursor_off = next;
        df->d->pend_cursor = fs__is_pnode(a->ino) ? a->ino : 0;
    }
    return 0;
}

static int dir_store_cb(void* data,
                        const char* name,
                        const struct store_attr* a)
{
    struct dir_fill* df = data;

    if (++df->walked > FS_READDIR_SKIP_MAX) {
        return 1;
    }
    if (fs__reserved_name(df->d->ino, name, NULL)) {
        return 0; /* shadowed by a virtual dir */
    }
    return dir_add(df, name, a, true);
}

static int dir_fixed(struct dir_fill* df, const struct store_attr* self)
{
    const char* name;
    struct store_attr a;
    uint64_t vino;
    size_t i;

    if (dir_add(df, ".", self, false) || dir_add(df, "..", self, false)) {
        return 1;
    }
    if (df->d->ino == STORE_ROOT_INO) {
        fs__virtual_attr(FS_VINO_CLUSTER, &a);
        if (dir_add(df, FS_CLUSTER_NAME, &a, false)) {
            return 1;
        }
        fs__virtual_attr(FS_VINO_SNAPSHOTS, &a);
        if (dir_add(df, FS_SNAPSHOTS_NAME, &a, false)) {
            return 1;
        }
    }
    for (i = 0; (name = fs__virtual_child(df->d->ino, i, &vino)) != NULL; i++) {
        fs__virtual_attr(vino, &a);
        if (dir_add(df, name, &a, false)) {
            return 1;
        }
    }
    return 0;
}

static void dir_list(fuse_req_t req,
                     size_t size,
                     off_t off,
                     struct fuse_file_info* fi,
                     bool plus)
{
    struct fs* f = fuse_req_userdata(req);
    struct dir_fill df = {.f = f, .req = req, .plus = plus};
    struct store_attr self;
    const char* after = NULL;
    int rv;

    df.d = (struct fs_dir*)(uintptr_t)fi->fh;
    df.size = size;
    df.start = off;
    df.buf = malloc(size);
    if (df.buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (fs__is_snap(df.d->ino)) {
        rv = fs__snap_getattr(f, df.d->ino, &self);
        if (rv != 0) {
            free(df.buf);
            fuse_reply_err(req, -rv);
            return;
        }
    } else if (fs__is_virtual(df.d->ino)) {
        fs__virtual_attr(df.d->ino, &self);
    } else {
        rv = store_getattr(node_store(f->node), df.d->ino, &self);
        if (rv != 0) {
            free(df.buf);
            fuse_reply_err(req, -rv);
            return;
        }
    }
    uint64_t pend_after = 0;
    if (off != 0 && off == df.d->cursor_off) {
        df.off = off; /* continue after the remembered name */
        after = df.d->cursor;
        pend_after = df.d->pend_cursor;
    } else if (dir_fixed(&df, &self) != 0) {
        goto reply;
    }
    /* Past a pending new file's cursor the store's children are listed
     * already; a virtual dir has none. */
    rv = 0;
    if (pend_after == 0 && fs__in_snapshots(df.d->ino)) {
        rv = fs__snap_readdir(f, df.d->ino, after, dir_store_cb, &df);
    } else if (pend_after == 0 && !fs__is_virtual(df.d->ino)) {
        rv = store_readdir(node_store(f->node), df.d->ino, after, dir_store_cb,
                           &df);
    }
    if (rv == 0 && f->pnews != NULL && !fs__is_virtual(df.d->ino) &&
        !fs__in_snapshots(df.d->ino)) {
        rv = fs__pnew_readdir(f, df.d->ino, pend_after, dir_store_cb, &df);
    }
    if (rv < 0) {
        free(df.buf);
        fuse_reply_err(req, -rv);
        return;
    }
reply:
    fuse_reply_buf(req, df.buf, df.used);
    free(df.buf);
}

void fs_readdir(fuse_req_t req,
                fuse_ino_t ino,
                size_t size,
                off_t off,
                struct fuse_file_info* fi)
{
    dir_list(req, size, off, fi, false);
}

void fs_readdirplus(fuse_req_t req,
                    fuse_ino_t ino,
                    size_t size,
                    off_t off,
                    struct fuse_file_info* fi)
{
    dir_list(req, size, off, fi, true);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct store_attr a;
    struct fs_dir* d;
    int rv;

    if (fs__is_snap(ino)) {
        rv = fs__snap_getattr(f, ino, &a);
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
    } else if (fs__is_virtual(ino)) {
        fs__virtual_attr(ino, &a);
    } else {
        rv = store_getattr(node_store(f->node), ino, &a);
        if (rv != 0) {
            fuse_reply_err(req, rv == -ENOENT ? ESTALE : -rv);
            return;
        }
    }
    if (a.type != STORE_DIR) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    d->ino = ino;
    fi->fh = (uint64_t)(uintptr_t)d;
    if (fuse_reply_open(req, fi) != 0) {
        free(d);
    }
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    free((struct fs_dir*)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}
