/* fs_snap.c - /.snapshots: named snapshots as directories, read-only views
 * of past revisions (store/store_history.h), mkdir/rmdir as replicated
 * proposals (STORE_OP_SNAP_CREATE / SNAP_DROP).
 *
 * Inodes. A view's entries get FUSE inos in a reserved range below the
 * virtual inos:  FS_SNAP_INO_BASE | root << FS_SNAP_ROOT_SHIFT | store ino.
 * A "root" is one directory of /.snapshots as the kernel knows it: a name
 * (NAME or @REV) and the revision it shows. Roots live in a table of
 * FS_SNAP_ROOTS_MAX slots; a slot counts the kernel's lookups of every ino
 * under it (forget subtracts) and is reused for another (name, revision)
 * only when that count is zero, so an ino the kernel holds always means the
 * same entry of the same view. Two names showing the same revision get two
 * roots (a directory inode may have only one parent).
 *
 * Views are opened per request (store_view_open; the snapshot module keeps
 * the last STORE_VIEWS_MAX built) and released before the reply.
 * Everything under /.snapshots is read-only: the callers in fs*.c refuse
 * writes with EROFS (EXDEV for a rename across its border).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../store/store_history.h"
#include "fs_internal.h"

struct snap_root {
    bool used;
    bool named;       /* NAME (else @REV) */
    uint64_t rev;     /* revision shown */
    int64_t ctime_ns; /* NAME: when it was made */
    uint64_t nlookup; /* kernel references to inos of this root */
    char name[FS_NAME_MAX + 1];
};

struct fs_snap {
    struct snap_root roots[FS_SNAP_ROOTS_MAX];
    unsigned next; /* where the search for a free slot starts */
};

bool fs__is_snap(uint64_t ino)
{
    return ino >= FS_SNAP_INO_BASE && ino < FS_VFILE_BASE;
}

bool fs__in_snapshots(uint64_t ino)
{
    return ino == FS_VINO_SNAPSHOTS || fs__is_snap(ino);
}

static unsigned root_of(uint64_t fino)
{
    return (unsigned)((fino & ~FS_SNAP_INO_BASE) >> FS_SNAP_ROOT_SHIFT);
}

static uint64_t store_ino_of(uint64_t fino)
{
    return fino & FS_SNAP_STORE_INO_MASK;
}

static uint64_t fino_of(unsigned root, uint64_t store_ino)
{
    return FS_SNAP_INO_BASE | ((uint64_t)root << FS_SNAP_ROOT_SHIFT) |
           store_ino;
}

static struct fs_snap* snap_state(struct fs* f)
{
    if (f->snap == NULL) {
        f->snap = calloc(1, sizeof(*f->snap));
    }
    return f->snap;
}

void fs__snap_free(struct fs* f)
{
    free(f->snap);
    f->snap = NULL;
}

/* "@REV" -> rev; 0 when name is not of that form. */
static uint64_t parse_at_rev(const char* name)
{
    char* end;
    if (name[0] != '@' || name[1] < '0' || name[1] > '9') {
        return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(name + 1, &end, 10);
    if (errno != 0 || *end != '\0') {
        return 0;
    }
    return (uint64_t)v;
}

/* The root slot showing (name, rev), allocated if needed: -1 when every
 * slot is held by the kernel. */
static int root_get(struct fs* f,
                    const char* name,
                    uint64_t rev,
                    bool named,
                    int64_t ctime_ns)
{
    struct fs_snap* s = snap_state(f);
    int free_slot = -1;

    if (s == NULL) {
        return -1;
    }
    for (unsigned i = 0; i < FS_SNAP_ROOTS_MAX; i++) {
        struct snap_root* r = &s->roots[i];
        if (r->used && r->rev == rev && r->named == named &&
            strcmp(r->name, name) == 0) {
            r->ctime_ns = ctime_ns;
            return (int)i;
        }
    }
    for (unsigned k = 0; k < FS_SNAP_ROOTS_MAX; k++) {
        unsigned i = (s->next + k) % FS_SNAP_ROOTS_MAX;
        if (!s->roots[i].used || s->roots[i].nlookup == 0) {
            free_slot = (int)i;
            break;
        }
    }
    if (free_slot < 0) {
        return -1;
    }
    struct snap_root* r = &s->roots[free_slot];
    memset(r, 0, sizeof(*r));
    r->used = true;
    r->named = named;
    r->rev = rev;
    r->ctime_ns = ctime_ns;
    snprintf(r->name, sizeof(r->name), "%s", name);
    s->next = ((unsigned)free_slot + 1) % FS_SNAP_ROOTS_MAX;
    return free_slot;
}

static struct snap_root* root_at(struct fs* f, uint64_t fino)
{
    unsigned i = root_of(fino);
    if (f->snap == NULL || i >= FS_SNAP_ROOTS_MAX || !f->snap->roots[i].used) {
        return NULL;
    }
    return &f->snap->roots[i];
}

/* Resolve a /.snapshots name: 0 with *root set, or -ENOENT/-ENOSPC. */
static int root_lookup(struct fs* f, const char* name, int* root)
{
    struct store* st = node_store(f->node);
    struct store_snap_info si;
    uint64_t rev = parse_at_rev(name);
    int i;

    if (rev != 0) {
        struct store_stats ss;
        store_get_stats(st, &ss);
        if (rev > ss.revision) {
            return -ENOENT;
        }
        struct store_view* v;
        int rv = store_view_open(st, rev, &v); /* logs a compacted rev */
        if (rv != 0) {
            return rv == -EINVAL ? -ENOENT : rv;
        }
        store_view_release(v);
        i = root_get(f, name, rev, false, 0);
    } else {
        int rv = store_snap_get(st, name, &si);
        if (rv != 0) {
            return rv;
        }
        i = root_get(f, name, si.revision, true, si.ctime_ns);
    }
    if (i < 0) {
        return -ENOSPC;
    }
    *root = i;
    return 0;
}

/* Attributes of a view entry as the kernel sees it (fuse ino, read-only
 * root). */
static void attr_out(const struct snap_root* r,
                     unsigned root,
                     struct store_attr* a)
{
    if (a->ino == STORE_ROOT_INO) {
        a->mode = 0555;
        if (r->named) {
            a->atime_ns = a->mtime_ns = a->ctime_ns = r->ctime_ns;
        }
    }
    a->ino = fino_of(root, a->ino);
}

static int view_open_for(struct fs* f,
                         uint64_t fino,
                         struct snap_root** r,
                         struct store_view** v)
{
    *r = root_at(f, fino);
    if (*r == NULL) {
        return -ESTALE;
    }
    return store_view_open(node_store(f->node), (*r)->rev, v);
}

int fs__snap_getattr(struct fs* f, uint64_t ino, struct store_attr* a)
{
    struct snap_root* r;
    struct store_view* v;
    int rv;

    if (ino == FS_VINO_SNAPSHOTS) {
        fs__virtual_attr(ino, a);
        return 0;
    }
    rv = view_open_for(f, ino, &r, &v);
    if (rv != 0) {
        return rv;
    }
    rv = store_view_getattr(v, store_ino_of(ino), a);
    store_view_release(v);
    if (rv == 0) {
        attr_out(r, root_of(ino), a);
    }
    return rv;
}

int fs__snap_read(struct fs* f, uint64_t ino, void** data, size_t* len)
{
    struct snap_root* r;
    struct store_view* v;
    int rv = view_open_for(f, ino, &r, &v);

    if (rv != 0) {
        return rv;
    }
    rv = store_view_read(v, store_ino_of(ino), data, len);
    store_view_release(v);
    return rv;
}

static void reply_entry(struct fs* f,
                        fuse_req_t req,
                        const struct store_attr* a,
                        double timeout_s)
{
    struct fuse_entry_param e;
    struct snap_root* r = root_at(f, a->ino);

    assert(r != NULL);
    fs__fill_entry(f, a, &e);
    e.attr_timeout = timeout_s;
    e.entry_timeout = timeout_s;
    r->nlookup++;
    if (fuse_reply_entry(req, &e) != 0) {
        r->nlookup--; /* interrupted: the kernel holds nothing */
    }
}

void fs__snap_lookup(struct fs* f,
                     fuse_req_t req,
                     uint64_t parent,
                     const char* name)
{
    struct store_attr a;
    struct snap_root* r;
    struct store_view* v;
    int root, rv;

    if (parent == FS_VINO_SNAPSHOTS) {
        rv = root_lookup(f, name, &root);
        if (rv == 0) {
            rv = fs__snap_getattr(f, fino_of((unsigned)root, STORE_ROOT_INO),
                                  &a);
        }
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
        /* Short: a dropped snapshot must disappear on every mount. */
        reply_entry(f, req, &a, 1.0);
        return;
    }
    assert(fs__is_snap(parent));
    rv = view_open_for(f, parent, &r, &v);
    if (rv == 0) {
        rv = store_view_lookup(v, store_ino_of(parent), name, &a);
        store_view_release(v);
    }
    if (rv == 0 && a.ino > FS_SNAP_STORE_INO_MASK) {
        rv = -EOVERFLOW;
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    attr_out(r, root_of(parent), &a);
    reply_entry(f, req, &a, f->o.entry_timeout_s); /* views never change */
}

void fs__snap_forget(struct fs* f, uint64_t ino, uint64_t nlookup)
{
    struct snap_root* r = root_at(f, ino);

    if (r == NULL) {
        return;
    }
    r->nlookup = r->nlookup > nlookup ? r->nlookup - nlookup : 0;
}

/* ---- listing ---- */

struct list_ctx {
    struct fs* f;
    const char* after;
    unsigned root;
    struct snap_root* r;
    store_readdir_cb cb;
    void* data;
    int stop;
};

static int list_names_cb(void* data, const struct store_snap_info* s)
{
    struct list_ctx* lc = data;
    struct store_attr a;

    if (lc->after != NULL && strcmp(s->name, lc->after) <= 0) {
        return 0;
    }
    int i = root_get(lc->f, s->name, s->revision, true, s->ctime_ns);
    fs__virtual_attr(FS_VINO_SNAPSHOTS, &a);
    a.atime_ns = a.mtime_ns = a.ctime_ns = s->ctime_ns;
    a.ino = i >= 0 ? fino_of((unsigned)i, STORE_ROOT_INO)
                   : FS_SNAP_INO_BASE | STORE_ROOT_INO;
    lc->stop = lc->cb(lc->data, s->name, &a);
    return lc->stop;
}

static int list_view_cb(void* data,
                        const char* name,
                        const struct store_attr* a)
{
    struct list_ctx* lc = data;
    struct store_attr out = *a;

    attr_out(lc->r, lc->root, &out);
    lc->stop = lc->cb(lc->data, name, &out);
    return lc->stop;
}

int fs__snap_readdir(struct fs* f,
                     uint64_t dir,
                     const char* after,
                     store_readdir_cb cb,
                     void* data)
{
    struct list_ctx lc = {.f = f, .after = after, .cb = cb, .data = data};
    struct store_view* v;
    int rv;

    if (after != NULL && after[0] == '\0') {
        lc.after = NULL;
    }
    if (dir == FS_VINO_SNAPSHOTS) {
        rv = store_snap_list(node_store(f->node), list_names_cb, &lc);
        return rv < 0 ? rv : lc.stop;
    }
    rv = view_open_for(f, dir, &lc.r, &v);
    if (rv != 0) {
        return rv;
    }
    lc.root = root_of(dir);
    rv = store_view_readdir(v, store_ino_of(dir), lc.after, list_view_cb, &lc);
    store_view_release(v);
    return rv < 0 ? rv : lc.stop;
}

/* ---- mkdir / rmdir in /.snapshots: one replicated proposal each ---- */

static void snap_mkdir_done(void* data, const struct store_result* res)
{
    struct fs_op* op = data;
    struct fs* f = op->fs;
    struct store_attr a;
    int root, rv = res->err;

    if (rv == 0) {
        rv = root_lookup(f, op->name, &root);
    }
    if (rv == 0) {
        rv = fs__snap_getattr(f, fino_of((unsigned)root, STORE_ROOT_INO), &a);
    }
    if (rv != 0) {
        fuse_reply_err(op->req, -rv);
    } else {
        reply_entry(f, op->req, &a, 1.0);
    }
    fs__op_free(op);
}

static void snap_rmdir_done(void* data, const struct store_result* res)
{
    struct fs_op* op = data;

    fuse_reply_err(op->req, -res->err);
    fs__op_free(op);
}

static void snap_propose(fuse_req_t req,
                         enum store_op sop,
                         const char* name,
                         node_done_cb cb)
{
    struct fs* f = fuse_req_userdata(req);
    struct store_cmd c;
    struct fs_op* op;

    if (name[0] == '@') {
        fuse_reply_err(req, sop == STORE_OP_SNAP_CREATE ? EINVAL : EROFS);
        return;
    }
    op = fs__op_new(f, req, FS_REPLY_BARRIER); /* replied by cb */
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(op->name, name, strlen(name) + 1);
    memset(&c, 0, sizeof(c));
    c.op = (uint8_t)sop;
    c.name = op->name;
    int rv = node_propose(f->node, &c, cb, op);
    if (rv != 0) {
        struct store_result res = {.err = rv};
        cb(op, &res);
    }
}

void fs__snap_mkdir(fuse_req_t req, const char* name)
{
    snap_propose(req, STORE_OP_SNAP_CREATE, name, snap_mkdir_done);
}

void fs__snap_rmdir(fuse_req_t req, const char* name)
{
    snap_propose(req, STORE_OP_SNAP_DROP, name, snap_rmdir_done);
}
