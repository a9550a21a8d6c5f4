/* fs_pnew.c - pending new files: a deferred create (issue 11,
 * docs/consistency.md "Creating a file").
 *
 * A CREATE without O_EXCL of a name that does not exist (in this node's
 * applied state) is answered at once: the file is a pending new file of
 * this mount. Its content and attributes are a pending update like any
 * other (fs_write.c), in the write state keyed by its nodeid `pino`
 * (FS_PNODE_BASE + a counter: not a store ino, which the store assigns
 * only when the file is created). This mount shows it in LOOKUP, GETATTR,
 * READDIR and READ; other nodes see nothing of it. Its commit (the
 * writer's close, fsync, a rename by its writer, the settle timer, a clean
 * unmount) is ONE entry, STORE_OP_CREATE with STORE_WITH_DATA: the file
 * with its content, mode, owner and times. Once applied, pino becomes a
 * per-revision nodeid of the committed ino (fs__nodeid_adopt) and the
 * write state is re-keyed to that ino: the writer's open file goes on as
 * for any committed file.
 *
 * Why a local nodeid and not an ino the proposer picks: store inos are
 * assigned in apply order from one counter (never reused, below the 40
 * bits the snapshot views keep for them), the same on every replica; a
 * node-chosen range would need a node-unique, restart-proof number in
 * those bits. The FUSE layer maps nodeids to inos anyway (fs_nodeid.c),
 * so the binding at commit is local and the store stays as it was.
 *
 * Unlinked before its commit: no entry at all (the writer's descriptor
 * goes on writing into the void, as for an unlinked file). Renamed: its
 * name changes here; when the renamer is its writer, that rename is its
 * commit (one entry creating it at the destination), otherwise the writer's
 * close commits it under the new name. A failed commit (the directory was
 * removed: ENOENT; a directory or special file made there meanwhile:
 * EISDIR, EEXIST; quota, size, EIO) drops the file: the error is its
 * writer's close()'s, logged once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

bool fs__is_pnode(uint64_t nodeid)
{
    return nodeid >= FS_PNODE_BASE && nodeid < FS_FNODE_BASE;
}

struct fs_pnew* fs__pnew_find(const struct fs* f, uint64_t pino)
{
    struct fs_pnew* p;

    for (p = f->pnews; p != NULL; p = p->next) {
        if (p->pino == pino) {
            return p;
        }
    }
    return NULL;
}

struct fs_pnew* fs__pnew_named(const struct fs* f,
                               uint64_t parent,
                               const char* name)
{
    struct fs_pnew* p;

    for (p = f->pnews; p != NULL; p = p->next) {
        if (!p->unlinked && p->parent == parent && strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

int fs__pnew_attr(const struct fs* f, uint64_t pino, struct store_attr* a)
{
    const struct fs_pnew* p = fs__pnew_find(f, pino);

    if (p == NULL) {
        return -ENOENT;
    }
    fs__pnew_fill(p, a);
    return 0;
}

uint64_t fs__pnew_sino(const struct fs* f, uint64_t pino)
{
    const struct fs_pnew* p = fs__pnew_find(f, pino);

    return p != NULL ? p->sino : 0;
}

void fs__pnew_fill(const struct fs_pnew* p, struct store_attr* a)
{
    memset(a, 0, sizeof(*a));
    a->ino = p->pino;
    a->type = STORE_FILE;
    a->mode = p->mode;
    a->uid = p->uid;
    a->gid = p->gid;
    a->atime_ns = a->mtime_ns = a->ctime_ns = p->made_ns;
    a->nlink = p->unlinked ? 0 : 1;
}

int fs__pnew_path(const struct fs* f, uint64_t pino, char* buf, size_t cap)
{
    const struct fs_pnew* p = fs__pnew_find(f, pino);
    char dir[512];

    if (p == NULL) {
        return -ENOENT;
    }
    if (store_path(node_store(f->node), p->parent, dir, sizeof(dir)) != 0) {
        snprintf(buf, cap, "new file %s", p->name);
        return 0;
    }
    snprintf(buf, cap, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/",
             p->name);
    return 0;
}

static void pnew_release(struct fs* f, struct fs_pnew* p, fuse_req_t req);

/* A pending new file left dir without a commit: on this mount dir shows
 * the change in its times, as it showed the creation (fs__pnew_dir_attr);
 * nothing is committed, so other nodes never saw either. */
static void dir_touched(struct fs* f, uint64_t dir)
{
    struct fs_dtouch* free_slot = NULL;
    int64_t now = fs__now_ns();

    for (unsigned i = 0; i < FS_DTOUCH_MAX; i++) {
        struct fs_dtouch* t = &f->dtouch[i];
        if (t->dir == dir) {
            t->ns = now > t->ns ? now : t->ns;
            return;
        }
        if (t->dir == 0 && free_slot == NULL) {
            free_slot = t;
        }
    }
    if (free_slot == NULL) {
        free_slot = &f->dtouch[f->dtouch_next];
        f->dtouch_next = (f->dtouch_next + 1) % FS_DTOUCH_MAX;
    }
    free_slot->dir = dir;
    free_slot->ns = now;
}

static void pnew_free(struct fs* f, struct fs_pnew* p)
{
    struct fs_pnew** pp = &f->pnews;

    while (*pp != p) {
        pp = &(*pp)->next;
    }
    *pp = p->next;
    f->pending_bytes -= sizeof(*p);
    free(p);
}

void fs__pnew_drop(struct fs* f, uint64_t pino)
{
    struct fs_pnew* p = fs__pnew_find(f, pino);

    if (p == NULL) {
        return;
    }
    if (!p->unlinked) {
        fs__notify_push(&f->notify, pino, p->parent, p->name);
        dir_touched(f, p->parent); /* its name goes */
    }
    pnew_release(f, p, NULL); /* not committed: a failed update */
    pnew_free(f, p);
}

void fs__pnews_free(struct fs* f)
{
    while (f->pnews != NULL) {
        pnew_free(f, f->pnews);
    }
}

bool fs__pnew_forget(struct fs* f, uint64_t pino, uint64_t nlookup)
{
    struct fs_pnew* p = fs__pnew_find(f, pino);

    if (p == NULL) {
        return false;
    }
    p->nlookup = p->nlookup > nlookup ? p->nlookup - nlookup : 0;
    return true;
}

/* Make the pending new file (parent, name) and answer req's CREATE with
 * it: true; false when req was answered with an error. token: its
 * committed name reservation (O_EXCL), 0 none. */
static bool pnew_make(struct fs* f,
                      fuse_req_t req,
                      uint64_t parent,
                      const char* name,
                      mode_t mode,
                      struct fuse_file_info* fi,
                      uint64_t token,
                      uint64_t sino)
{
    const struct fuse_ctx* ctx = fuse_req_ctx(req);
    struct store_attr a;
    struct fs_pnew *p, **tail;
    struct fs_wino* w;
    int rv = store_getattr(node_store(f->node), parent, &a);

    if (rv == 0 && a.type != STORE_DIR) {
        rv = -ENOTDIR;
    }
    if (rv == 0) {
        /* past the path limit its commit would fail: refused now, as a
         * synchronous create is, not at its close (or silently, at the
         * settle timer's commit) */
        rv = store_path_fits(node_store(f->node), parent, name);
    }
    if (rv == 0 && f->pending_bytes + sizeof(*p) > f->o.pending_bytes_max) {
        rv = -ENOSPC;
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return false;
    }
    p = calloc(1, sizeof(*p));
    w = p != NULL ? fs__wino_get(f, FS_PNODE_BASE + f->pnode_next + 1) : NULL;
    if (w == NULL) {
        free(p);
        fuse_reply_err(req, ENOMEM);
        return false;
    }
    p->pino = FS_PNODE_BASE + ++f->pnode_next;
    p->parent = parent;
    memcpy(p->name, name, strlen(name) + 1);
    p->mode = mode & 07777;
    p->uid = ctx->uid;
    p->gid = ctx->gid;
    p->made_ns = fs__now_ns();
    p->token = token;
    p->sino = sino;
    p->resv_ns = (int64_t)fs__mono_ns();
    for (tail = &f->pnews; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = p;
    f->pending_bytes += sizeof(*p);
    /* Its update: empty so far, as after an O_TRUNC (the first FLUSH of
     * bash's `cmd > f` does not commit it). */
    rv = fs__upd_begin(f, w, true);
    if (rv != 0) {
        pnew_free(f, p);
        fs__wino_put(f, w);
        fuse_reply_err(req, -rv);
        return false;
    }
    w->u.unpriv = ctx->uid != 0;
    fs__owner_add(&w->u, (int32_t)ctx->pid);
    struct fuse_entry_param e;
    fs__pnew_fill(p, &a);
    fs__fill_entry(f, &a, &e); /* counts one lookup of pino */
    fs__file_open_flags(f, fi);
    if (fuse_reply_create(req, &e, fi) != 0) {
        /* not answered: nobody has it */
        fs__upd_free(f, &w->u);
        fs__wino_put(f, w);
        pnew_free(f, p);
        return false;
    }
    return true;
}

void fs__pnew_create(struct fs* f,
                     fuse_req_t req,
                     uint64_t parent,
                     const char* name,
                     mode_t mode,
                     struct fuse_file_info* fi)
{
    (void)pnew_make(f, req, parent, name, mode, fi, 0, 0);
}

/* ---- O_EXCL: the name's reservation ---- */

/* A RESERVE (or RELEASE: ttl 0) of token for (parent, name), with op's
 * reply; op NULL: an internal proposal nobody waits for. */
static void resv_propose(struct fs* f,
                         struct fs_op* op,
                         uint64_t token,
                         uint64_t parent,
                         const char* name)
{
    struct store_cmd c;

    memset(&c, 0, sizeof(c));
    c.op = name != NULL ? STORE_OP_RESERVE : STORE_OP_RELEASE;
    c.parent = parent;
    c.name = name;
    c.ino = token;
    c.size = name != NULL ? (uint64_t)f->resv_ttl_ns : 0;
    if (op == NULL) {
        op = fs__op_new(f, NULL, FS_REPLY_ERR);
        if (op == NULL) {
            return; /* out of memory: the reservation expires */
        }
    }
    fs__propose(f, op, &c);
}

/* Give up token's reservation (the file will not be committed): at once,
 * nobody waits (req NULL), or before req's UNLINK is answered. */
static void resv_release(struct fs* f, uint64_t token, fuse_req_t req)
{
    struct fs_op* op =
        token != 0 && req != NULL ? fs__op_new(f, req, FS_REPLY_ERR) : NULL;

    if (token == 0 || (req != NULL && op == NULL)) {
        if (req != NULL) {
            fuse_reply_err(req, 0); /* none, or out of memory: it expires */
        }
        return;
    }
    resv_propose(f, op, token, 0, NULL);
}

/* p will not be committed: its reservation goes (resv_release). */
static void pnew_release(struct fs* f, struct fs_pnew* p, fuse_req_t req)
{
    uint64_t token = p->token;

    p->token = 0;
    resv_release(f, token, req);
}

void fs__pnew_reserve(struct fs* f,
                      fuse_req_t req,
                      uint64_t parent,
                      const char* name,
                      mode_t mode,
                      struct fuse_file_info* fi)
{
    struct fs_op* op = fs__op_new(f, req, FS_REPLY_RESERVE);

    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    op->fi = *fi;
    op->ino = parent;
    op->mode = mode;
    memcpy(op->name, name, strlen(name) + 1);
    /* unique per pending file of this node: this run's nonce, a counter */
    op->token = f->resv_nonce ^ ++f->resv_next; /* bit 63: never 0 */
    resv_propose(f, op, op->token, parent, name);
}

void fs__pnew_reserved(struct fs_op* op, const struct store_result* res)
{
    struct fs* f = op->fs;

    if (res->err != 0) {
        fuse_reply_err(op->req, -res->err);
        return;
    }
    if (!pnew_make(f, op->req, op->ino, op->name, op->mode, &op->fi, op->token,
                   res->ino)) {
        resv_release(f, op->token, NULL); /* answered with an error */
    }
}

void fs__pnew_renew(struct fs* f, int64_t now_ns)
{
    struct fs_pnew* p;

    for (p = f->pnews; p != NULL; p = p->next) {
        struct fs_wino* w = fs__wino_find(f, p->pino);
        if (p->token == 0 || p->unlinked ||
            now_ns - p->resv_ns < f->resv_ttl_ns / 3 ||
            (w != NULL && (w->busy || w->q_head != NULL))) {
            continue; /* none, or its commit (which consumes it) in flight */
        }
        p->resv_ns = now_ns;
        /* under its current name: a rename by another process moved it */
        resv_propose(f, NULL, p->token, p->parent, p->name);
    }
}

bool fs__pnew_unlink(struct fs* f,
                     fuse_req_t req,
                     uint64_t parent,
                     const char* name)
{
    struct fs_pnew* p = fs__pnew_named(f, parent, name);
    struct store_attr a;

    if (p == NULL) {
        return false;
    }
    struct fs_wino* w = fs__wino_find(f, p->pino);
    if (w != NULL && (w->busy || w->q_head != NULL)) {
        return false; /* its commit is in flight: an UNLINK after it */
    }
    p->unlinked = true; /* its writer's close drops it */
    dir_touched(f, parent);
    if (store_lookup(node_store(f->node), parent, name, &a) == 0) {
        pnew_release(f, p, NULL);
        return false; /* made elsewhere meanwhile: that one goes too */
    }
    /* answered once its name is free for O_EXCL on every node (at once
     * without a reservation) */
    pnew_release(f, p, req);
    return true;
}

bool fs__pnew_rename(struct fs* f, fuse_req_t req, struct store_cmd* c)
{
    struct fs_pnew* p = fs__pnew_named(f, c->parent, c->name);
    struct fs_pnew* dst = fs__pnew_named(f, c->new_parent, c->new_name);
    int32_t tid = (int32_t)fuse_req_ctx(req)->pid;
    struct store_attr a;

    if (p == NULL) {
        if (dst != NULL &&
            (c->flags & (STORE_NOREPLACE | STORE_EXCHANGE)) == 0) {
            dst->unlinked = true; /* replaced by the renamed file */
            pnew_release(f, dst, NULL);
        }
        return false;
    }
    if (p == dst) {
        fuse_reply_err(req, 0);
        return true;
    }
    struct fs_wino* w = fs__wino_find(f, p->pino);
    if ((c->flags & STORE_EXCHANGE) != 0 || w == NULL) {
        fuse_reply_err(req, EINVAL); /* not with a file not created yet */
        return true;
    }
    if (w->busy || w->q_head != NULL) {
        fuse_reply_err(req, EBUSY); /* its commit is in flight */
        return true;
    }
    if ((c->flags & STORE_NOREPLACE) != 0 &&
        (dst != NULL || store_lookup(node_store(f->node), c->new_parent,
                                     c->new_name, &a) == 0)) {
        fuse_reply_err(req, EEXIST);
        return true;
    }
    if (store_getattr(node_store(f->node), c->new_parent, &a) != 0 ||
        a.type != STORE_DIR) {
        fuse_reply_err(req, ENOENT);
        return true;
    }
    int rv = store_path_fits(node_store(f->node), c->new_parent, c->new_name);
    if (rv != 0) {
        fuse_reply_err(req, -rv); /* its commit there would fail */
        return true;
    }
    if (dst != NULL) {
        dst->unlinked = true; /* replaced */
        pnew_release(f, dst, NULL);
    }
    dir_touched(f, p->parent);
    dir_touched(f, c->new_parent);
    p->parent = c->new_parent;
    memcpy(p->name, c->new_name, strlen(c->new_name) + 1);
    p->excl = (c->flags & STORE_NOREPLACE) != 0;
    p->renamed = true;
    if (!w->u.on || w->u.err != 0 ||
        (!fs__owner_is(&w->u, tid) && !fs__owners_gone(&w->u))) {
        /* another's unfinished file: its writer's close commits it under
         * the new name */
        fuse_reply_err(req, 0);
        return true;
    }
    /* write-temp-then-rename of a new temp file, or a file whose writers
     * are all gone (nothing unfinished): one entry creating it at the
     * destination */
    struct fs_op* op = fs__op_new(f, req, FS_REPLY_WRITE);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return true;
    }
    op->wop = FS_WOP_FSYNC;
    op->tid = tid;
    fs__commit_start(f, w, op, NULL);
    return true;
}

bool fs__pnew_cmd(struct fs* f,
                  uint64_t pino,
                  const struct fs_upd* u,
                  struct store_cmd* c)
{
    const struct fs_pnew* p = fs__pnew_find(f, pino);

    if (p == NULL || p->unlinked) {
        return false;
    }
    memset(c, 0, sizeof(*c));
    c->op = STORE_OP_CREATE;
    c->flags = STORE_WITH_DATA | (p->excl ? STORE_EXCL : 0) |
               (p->token != 0 ? STORE_CLAIM : 0) |
               (p->renamed ? STORE_REPLACE : 0);
    c->ino = p->token; /* CLAIM: consumes its reservation, whatever comes */
    c->size = (uint64_t)p->made_ns; /* its ctime (fs__commit_start) */
    c->parent = p->parent;
    c->name = p->name;
    c->mode = (u->set_mask & STORE_SET_MODE) ? u->mode : p->mode;
    c->uid = (u->set_mask & STORE_SET_UID) ? u->uid : p->uid;
    c->gid = (u->set_mask & STORE_SET_GID) ? u->gid : p->gid;
    return true;
}

struct fs_wino* fs__pnew_done(struct fs* f,
                              struct fs_wino* w,
                              const struct store_result* res)
{
    struct fs_pnew* p = fs__pnew_find(f, w->ino);
    uint64_t pino = w->ino;

    if (res->err != 0 || p == NULL) {
        if (p != NULL) {
            p->token = 0; /* its CLAIM consumed the reservation */
        }
        fs__pnew_drop(f, pino);
        return w;
    }
    uint64_t nlookup = p->nlookup;
    pnew_free(f, p);
    /* From now on the committed ino's: its writer's descriptor goes on
     * as for any committed file. */
    struct fs_wino* other = fs__wino_find(f, res->ino);
    fs__wino_unlink(f, w);
    if (other == NULL) {
        fs__wino_link(f, w, res->ino);
    } else {
        /* That ino has write state here already (a file of this name
         * made elsewhere and written on this mount meanwhile: the commit
         * replaced it). What is queued here goes behind it; an update
         * begun here since the commit started is dropped. */
        fs__wino_link(f, w, pino);
        fs__upd_free(f, &w->u);
        while (w->q_head != NULL) {
            struct fs_op* op = w->q_head;
            w->q_head = op->wnext;
            op->wnext = NULL;
            op->ino = res->ino;
            fs__wino_submit(f, other, op);
        }
        w->q_tail = NULL;
        w->busy = false;
        fs__wino_put(f, w);
        w = other;
    }
    fs__nodeid_adopt(f, pino, res->ino, nlookup);
    return w;
}

bool fs__pnew_in(const struct fs* f, uint64_t dir)
{
    const struct fs_pnew* p;

    for (p = f->pnews; p != NULL; p = p->next) {
        if (!p->unlinked && p->parent == dir) {
            return true;
        }
    }
    return false;
}

bool fs__pnew_dir_attr(struct fs* f, struct store_attr* a)
{
    const struct fs_pnew* p;
    bool changed = false;

    if (a->type != STORE_DIR) {
        return false;
    }
    for (unsigned i = 0; i < FS_DTOUCH_MAX; i++) {
        struct fs_dtouch* t = &f->dtouch[i];
        if (t->dir != a->ino) {
            continue;
        }
        if (t->ns <= a->mtime_ns && t->ns <= a->ctime_ns) {
            t->dir = 0; /* a commit since shows a later change */
            break;
        }
        a->mtime_ns = t->ns > a->mtime_ns ? t->ns : a->mtime_ns;
        a->ctime_ns = t->ns > a->ctime_ns ? t->ns : a->ctime_ns;
        changed = true;
        break;
    }
    for (p = f->pnews; p != NULL; p = p->next) {
        if (p->parent != a->ino) {
            continue;
        }
        if (p->made_ns > a->mtime_ns) {
            a->mtime_ns = p->made_ns;
            changed = true;
        }
        if (p->made_ns > a->ctime_ns) {
            a->ctime_ns = p->made_ns;
            changed = true;
        }
    }
    return changed;
}

int fs__pnew_readdir(struct fs* f,
                     uint64_t dir,
                     uint64_t after,
                     store_readdir_cb cb,
                     void* data)
{
    struct fs_pnew* p;
    struct store_attr a;

    for (p = f->pnews; p != NULL; p = p->next) {
        if (p->pino <= after || p->unlinked || p->parent != dir ||
            store_lookup(node_store(f->node), dir, p->name, &a) == 0) {
            continue;
        }
        fs__pnew_fill(p, &a);
        int rv = cb(data, p->name, &a);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}
