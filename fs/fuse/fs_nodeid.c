/* fs_nodeid.c - per-revision FUSE nodeids for regular files (serializable
 * mode; docs/consistency.md "One revision per read").
 *
 * The kernel reads a file's size (i_size) and its page cache at different
 * moments; an invalidation of one inode falling between the two paired one
 * revision's size with another's bytes (issue 10 item 1). So the nodeid the
 * kernel is handed for a regular file (LOOKUP, READDIRPLUS, CREATE) names
 * one revision of it: a table entry (struct fs_fnode) maps the nodeid to
 * (store ino, rev), rev being the file's mod_rev when the kernel was told
 * of it. GETATTR and READ of that nodeid answer that revision (from the
 * store's history once the file has moved on), so a kernel inode's size
 * and pages always come from one revision, whatever the timing. A change
 * applied on this node from elsewhere does not touch the kernel inodes of
 * older revisions (a process that has the file open keeps reading the
 * revision it opened, close-to-open); it invalidates the directory entry,
 * and the next path lookup gets a nodeid of the new revision.
 *
 * This mount's own writes keep the nodeid they were made through: its
 * kernel performed them. A nodeid written through (`pend`) shows this
 * mount's pending update to GETATTR and READ (the writer's page cache
 * holds it) and is the one lookups hand out while the update is pending;
 * when there is none to show (only a truncation so far), it answers its
 * revision. The commit moves it to the new revision silently when the
 * kernel shows exactly that commit (fs__change_is_ours; a RENAME that
 * carried the update reports it under the file's new name); a change from
 * elsewhere while the update is pending, or its commit in flight not yet
 * applied, leaves it alone (the update replaces that change when
 * committed); a change applied after that commit, before its answer (the
 * same batch of entries), is an ordinary change from elsewhere; otherwise
 * it follows the file
 * with an invalidation of that nodeid (a discarded update, appends placed
 * elsewhere). A write through a nodeid of an older revision drops its
 * pages (the update is built from the current content).

 * st_ino stays the store ino. Directories, symlinks, /.cluster and
 * /.snapshots keep their numbering. Linearizable mode keeps store inos too
 * (its reads are direct I/O, and a nodeid of an older revision would serve
 * reads older than the open's barrier).
 *
 * Nodeids: FS_FNODE_BASE + a counter, never reused. Lookup counts: every
 * entry reply that carries a nodeid counts one (the kernel's nlookup);
 * FORGET and BATCH_FORGET subtract; an entry is freed at zero. Bound:
 * FS_FNODES_MAX entries. Past it, or out of memory, a file is handed its
 * store ino as before (the old numbering, changed in place and invalidated:
 * a read racing with a change may pair sizes again), counted in
 * fuse_nodeids_fallback.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../store/store_history.h"
#include "fs_internal.h"

struct fs_fnode {
    struct fs_fnode* id_next;  /* fs->fnode_id bucket */
    struct fs_fnode* ino_next; /* fs->fnode_ino bucket */
    uint64_t nodeid;
    uint64_t ino;
    uint64_t rev;     /* mod_rev of the revision its kernel inode holds */
    uint64_t nlookup; /* the kernel's lookup count */
    bool pend;        /* written through: shows this mount's pending update */
    bool dirty;       /* written since its last commit here: rev may not be
                         what its kernel holds */
};

static size_t bucket(uint64_t x)
{
    return (size_t)((x * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
           (FS_FNODE_BUCKETS - 1);
}

bool fs__is_fnode(uint64_t nodeid)
{
    /* a committed pending new file's nodeid is one (fs__nodeid_adopt) */
    return nodeid >= FS_PNODE_BASE && nodeid < FS_SNAP_INO_BASE;
}

static bool nodeids_on(const struct fs* f)
{
    return !f->o.linearizable;
}

static struct fs_fnode* fnode_find(const struct fs* f, uint64_t nodeid)
{
    struct fs_fnode* n;

    for (n = f->fnode_id[bucket(nodeid)]; n != NULL; n = n->id_next) {
        if (n->nodeid == nodeid) {
            return n;
        }
    }
    return NULL;
}

static void fnode_free(struct fs* f, struct fs_fnode* n)
{
    struct fs_fnode** p = &f->fnode_id[bucket(n->nodeid)];

    while (*p != n) {
        p = &(*p)->id_next;
    }
    *p = n->id_next;
    p = &f->fnode_ino[bucket(n->ino)];
    while (*p != n) {
        p = &(*p)->ino_next;
    }
    *p = n->ino_next;
    f->n_fnodes--;
    free(n);
}

void fs__fnodes_free(struct fs* f)
{
    for (size_t i = 0; i < FS_FNODE_BUCKETS; i++) {
        while (f->fnode_id[i] != NULL) {
            fnode_free(f, f->fnode_id[i]);
        }
    }
}

/* Whether this mount has an update of ino pending (or in flight). */
static bool has_update(const struct fs* f, uint64_t ino)
{
    struct store_attr a = {.ino = ino};

    return fs__pending_attr(f, &a, -1) == 1;
}

/* n (nodeid, ino set) joins both hash tables. */
static void fnode_link(struct fs* f, struct fs_fnode* n)
{
    n->id_next = f->fnode_id[bucket(n->nodeid)];
    f->fnode_id[bucket(n->nodeid)] = n;
    n->ino_next = f->fnode_ino[bucket(n->ino)];
    f->fnode_ino[bucket(n->ino)] = n;
    if (++f->n_fnodes > f->fnodes_peak) {
        f->fnodes_peak = f->n_fnodes;
    }
}

/* The entry of (ino, rev), made if there is none (nlookup 0); while this
 * mount has an update of ino pending, the nodeid it is written through. */
static struct fs_fnode* fnode_of(struct fs* f,
                                 uint64_t ino,
                                 uint64_t rev,
                                 bool update)
{
    struct fs_fnode *n, *match = NULL;

    for (n = f->fnode_ino[bucket(ino)]; n != NULL; n = n->ino_next) {
        if (n->ino == ino && update && n->pend) {
            return n;
        }
        if (n->ino == ino && n->rev == rev && match == NULL) {
            match = n;
        }
    }
    /* With an update pending and no nodeid written through yet, a new
     * one: a kernel inode of the committed revision may ignore the size
     * of a reply that races with its other replies (a CREATE with O_TRUNC
     * answered size 0 while a reader's GETATTR was in flight) and keep its
     * pages under the writes. */
    if (match != NULL && !update) {
        return match;
    }
    if (f->n_fnodes >= FS_FNODES_MAX || (n = calloc(1, sizeof(*n))) == NULL) {
        f->fnode_fallbacks++;
        return NULL;
    }
    n->nodeid = FS_FNODE_BASE + ++f->fnode_next;
    n->ino = ino;
    n->rev = rev;
    fnode_link(f, n);
    return n;
}

uint64_t fs__nodeid_hand(struct fs* f, const struct store_attr* a, bool update)
{
    struct fs_fnode* n;

    if (fs__is_pnode(a->ino)) {
        struct fs_pnew* p = fs__pnew_find(f, a->ino);
        if (p != NULL) {
            p->nlookup++; /* a pending new file (fs_pnew.c) */
        }
        return a->ino;
    }
    if (!nodeids_on(f) || a->type != STORE_FILE || fs__is_virtual(a->ino) ||
        fs__is_snap(a->ino)) {
        return a->ino;
    }
    n = fnode_of(f, a->ino, a->mod_rev, update);
    if (n == NULL) {
        return a->ino; /* the old numbering */
    }
    if (update && !n->pend) {
        /* The first nodeid shown this mount's update when none was written
         * through yet (a CREATE of an existing name with O_TRUNC, a write
         * through the old numbering) is the one it is written through. */
        n->pend = true;
    }
    n->nlookup++;
    return n->nodeid;
}

uint64_t fs__nodeid_link(struct fs* f,
                         uint64_t nodeid,
                         const struct store_attr* a)
{
    struct store* st = node_store(f->node);
    struct fs_fnode* n;
    struct store_attr old;
    const void* cur;
    void* d = NULL;
    size_t len = 0, cur_len;

    /* (a committed new file's nodeid is an fnode: fs__nodeid_adopt) */
    if (!fs__is_fnode(nodeid) || (n = fnode_find(f, nodeid)) == NULL ||
        n->ino != a->ino) {
        return fs__nodeid_hand(f, a, false);
    }
    if (!n->pend && n->rev != a->mod_rev) {
        /* Its kernel inode holds revision n->rev: it may show a's
         * revision only if the content is the same. */
        bool same = store_read_at(st, n->ino, n->rev, &old, &d, &len) == 0 &&
                    store_read(st, n->ino, &cur, &cur_len) == 0 &&
                    len == cur_len && (len == 0 || memcmp(d, cur, len) == 0);
        free(d);
        if (!same) {
            return fs__nodeid_hand(f, a, false);
        }
        n->rev = a->mod_rev;
    }
    n->nlookup++;
    return nodeid;
}

void fs__nodeid_unhand(struct fs* f, uint64_t nodeid)
{
    fs__nodeid_forget(f, nodeid, 1);
}

void fs__nodeid_forget(struct fs* f, uint64_t nodeid, uint64_t nlookup)
{
    struct fs_fnode* n;

    if (fs__is_pnode(nodeid) && fs__pnew_forget(f, nodeid, nlookup)) {
        return;
    }
    if (!fs__is_fnode(nodeid) || (n = fnode_find(f, nodeid)) == NULL) {
        return;
    }
    n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
    if (n->nlookup == 0) {
        fnode_free(f, n);
    }
}

int fs__nodeid_ino(struct fs* f, uint64_t nodeid, struct fs_nodeid* out)
{
    struct fs_fnode* n;
    struct store_attr a;

    memset(out, 0, sizeof(*out));
    if (!fs__is_fnode(nodeid) ||
        (fs__is_pnode(nodeid) && fs__pnew_find(f, nodeid) != NULL)) {
        /* a store ino, or a pending new file's (fs_pnew.c) */
        out->ino = nodeid;
        out->current = true;
        out->pending_ok = true;
        return 0;
    }
    n = fnode_find(f, nodeid);
    if (n == NULL) {
        return -ESTALE; /* forgotten: the kernel cannot name it */
    }
    out->ino = n->ino;
    out->fnode = n;
    bool live = store_getattr(node_store(f->node), n->ino, &a) == 0;
    if (n->dirty && live && n->rev != a.mod_rev && !has_update(f, n->ino)) {
        /* Written through, and the update is gone (committed as its
         * kernel does not show it, e.g. appends placed elsewhere): it
         * follows the file, its kernel drops what it has. */
        n->rev = a.mod_rev;
        n->pend = n->dirty = false;
        fs__notify_push(&f->notify, nodeid, 0, NULL);
    }
    out->rev = n->rev;
    /* A nodeid written through shows this mount's pending update; when
     * there is none to show (only a truncation so far), its revision. */
    out->pending_ok = n->pend;
    out->current = live && a.mod_rev == n->rev;
    return 0;
}

void fs__nodeid_adopt(struct fs* f,
                      uint64_t pino,
                      uint64_t ino,
                      uint64_t nlookup)
{
    struct store_attr a;
    struct fs_fnode* n;

    if (nlookup == 0 || store_getattr(node_store(f->node), ino, &a) != 0 ||
        (n = calloc(1, sizeof(*n))) == NULL) {
        return; /* the kernel holds it no more (or ESTALE from now on) */
    }
    n->nodeid = pino;
    n->ino = ino;
    n->rev = a.mod_rev;
    n->nlookup = nlookup;
    /* written through: its kernel inode holds exactly this commit, and
     * shows what this mount writes to it next */
    n->pend = true;
    fnode_link(f, n);
}

uint64_t fs__nodeid_write(struct fs* f, uint64_t nodeid)
{
    struct fs_nodeid id;
    struct store_attr a;

    if (fs__nodeid_ino(f, nodeid, &id) != 0) {
        return 0;
    }
    if (id.fnode == NULL) {
        return id.ino;
    }
    if (id.fnode->pend) {
        id.fnode->dirty = true;
        return id.ino;
    }
    if (!id.current && store_getattr(node_store(f->node), id.ino, &a) == 0) {
        /* Written through a nodeid of an older revision (opened before a
         * change from elsewhere): the update is built from the current
         * content, not from the pages its kernel has; it drops them and
         * reads the update. Until the update has content (a truncation
         * only), READs come from readers that sampled the older size: they
         * are answered that revision, which the nodeid keeps naming until
         * the update is committed. The name is looked up again, to this
         * nodeid (fnode_of). */
        uint64_t parent;
        char name[FS_NAME_MAX + 1];
        fs__notify_push(&f->notify, nodeid, 0, NULL);
        if (store_name(node_store(f->node), id.ino, &parent, name,
                       sizeof(name)) == 0) {
            fs__notify_push(&f->notify, 0, parent, name);
        }
    }
    id.fnode->pend = id.fnode->dirty = true;
    return id.ino;
}

int fs__nodeid_at(struct fs* f,
                  const struct fs_nodeid* id,
                  struct store_attr* a,
                  void** data,
                  size_t* len)
{
    struct store* st = node_store(f->node);
    struct store_attr cur;
    void* d = NULL;
    size_t l = 0;
    int rv;

    if (store_getattr(st, id->ino, &cur) == 0) {
        rv = store_read_at(st, id->ino, id->rev, a, &d, &l);
        /* The names it has now (hard links): nlink is the inode's, not
         * a revision's, and pairs with no page; so is the ctime of a
         * change of names or attributes only since (a link, an unlink of
         * another name: the kernel asks again right after one). */
        a->nlink = cur.nlink;
        if (rv == 0 && cur.ctime_ns > a->ctime_ns &&
            cur.mtime_ns == a->mtime_ns && cur.size == a->size) {
            a->ctime_ns = cur.ctime_ns;
        }
    } else {
        /* Removed since: the tree as of that revision. */
        struct store_view* v;
        rv = store_view_open(st, id->rev, &v);
        if (rv == 0) {
            rv = store_view_getattr(v, id->ino, a);
            if (rv == 0 && data != NULL) {
                rv = store_view_read(v, id->ino, &d, &l);
            }
            store_view_release(v);
        }
        a->nlink = 0; /* no name refers to it any more */
    }
    if (rv == 0 && a->mod_rev != id->rev) {
        rv = -ESTALE; /* that revision's record was compacted away */
    }
    if (rv != 0) {
        free(d);
        /* Compacted out of the history (or unreadable): the kernel looks
         * the path up again on ESTALE where it can (open, stat). */
        return rv == -ENOMEM ? rv : -ESTALE;
    }
    if (data != NULL) {
        *data = d;
        *len = l;
    } else {
        free(d);
    }
    return 0;
}

uint64_t fs__nodeid_newest(const struct fs* f, uint64_t ino)
{
    uint64_t best = ino;
    for (struct fs_fnode* n = f->fnode_ino[bucket(ino)]; n != NULL;
         n = n->ino_next) {
        if (n->ino == ino && n->nlookup > 0 &&
            (best == ino || n->nodeid > best)) {
            best = n->nodeid;
        }
    }
    return best;
}

void fs__kernel_drop(struct fs* f, uint64_t ino)
{
    struct store_attr a;
    struct fs_fnode* n;
    bool live = store_getattr(node_store(f->node), ino, &a) == 0;

    fs__notify_push(&f->notify, ino, 0, NULL); /* the old numbering */
    for (n = f->fnode_ino[bucket(ino)]; n != NULL; n = n->ino_next) {
        if (n->ino == ino && (n->pend || (live && n->rev == a.mod_rev))) {
            if (live) {
                n->rev = a.mod_rev;
            }
            n->dirty = false;
            fs__notify_push(&f->notify, n->nodeid, 0, NULL);
        }
    }
}

struct other_names {
    struct fs* f;
    uint64_t ino;
    bool first_seen;
};

/* store_names callback: the entry of every name but the primary one. */
static int invalidate_other(void* data,
                            uint64_t parent,
                            const char* name,
                            const char* path)
{
    struct other_names* o = data;
    (void)path;
    if (!o->first_seen) {
        o->first_seen = true; /* the primary name: pushed by the caller */
        return 0;
    }
    uint64_t seq = fs__notify_push(&o->f->notify, 0, parent, name);
    if (seq != 0) {
        fs__kview_changed(o->f, o->ino, seq);
    }
    return 0;
}

bool fs__nodeid_changed(struct fs* f, const struct store_change* c, bool ours)
{
    struct store* st = node_store(f->node);
    struct store_attr a;
    struct fs_fnode* n;
    bool held = false;
    uint64_t parent = c->parent, seq;
    char name[FS_NAME_MAX + 1];
    const char* nm = c->name;

    if (!nodeids_on(f) || store_getattr(st, c->ino, &a) != 0 ||
        a.type != STORE_FILE) {
        return false;
    }
    bool update = !ours && has_update(f, c->ino);
    for (n = f->fnode_ino[bucket(c->ino)]; n != NULL; n = n->ino_next) {
        if (n->ino != c->ino) {
            continue;
        }
        if (n->pend && ours) {
            /* Written through: its kernel shows exactly this commit. It
             * stays the nodeid written through (a write queued behind the
             * commit already went through it). */
            n->rev = a.mod_rev;
            n->dirty = false;
            continue;
        }
        if (n->pend && update) {
            /* A change from elsewhere while this mount's update is
             * pending: its kernel goes on showing the update, which
             * replaces that change when committed; but the attributes
             * it keeps from a SETATTR's answer (fs__reply_attr) may show
             * what the change replaced (a mode, an owner): asked again
             * (its pages are read again from the update). */
            fs__notify_push(&f->notify, n->nodeid, 0, NULL);
            continue;
        }
        if (n->pend && n->dirty) {
            /* Written through, nothing pending any more (discarded, or
             * committed as its kernel does not show it): it follows the
             * file and drops what it has. */
            n->pend = n->dirty = false;
            n->rev = a.mod_rev;
            fs__notify_push(&f->notify, n->nodeid, 0, NULL);
            continue;
        }
        n->pend = false; /* its kernel holds its revision: as any other */
        if (n->rev != a.mod_rev && n->nlookup > 0) {
            held = true; /* an older revision; its dentry must go */
        }
    }
    if (ours && !held) {
        return true; /* the kernel shows it already */
    }
    if (parent == 0) {
        if (!held && f->fnode_fallbacks == 0) {
            return true; /* the kernel holds no inode of it */
        }
        if (store_name(st, c->ino, &parent, name, sizeof(name)) != 0) {
            parent = 0;
        }
        nm = name;
        if (a.nlink > 1) {
            /* its other names (hard links) hold the old revision too */
            struct other_names o = {.f = f, .ino = c->ino};
            store_names(st, c->ino, NULL, 0, invalidate_other, &o);
        }
    }
    /* The store ino too: the old numbering, past the table's bound. */
    seq = fs__notify_push(&f->notify, ours ? 0 : c->ino, parent, nm);
    if (seq != 0) {
        /* Entry replies of it get timeout 0 until this is sent. */
        fs__kview_changed(f, c->ino, seq);
    }
    return true;
}

void fs__nodeid_status(void* data, bool json, char* buf, size_t cap)
{
    struct fs* f = data;
    /* Invalidations queued for the notifier and not yet sent: until they
     * are, this mount may still show what was changed before its applied
     * index (docs/consistency.md, "Kernel caching"). */
    uint64_t pushed = fs__notify_pushed(&f->notify);
    uint64_t done = fs__notify_done(&f->notify);
    uint64_t unsent = pushed > done ? pushed - done : 0;

    if (json) {
        snprintf(buf, cap,
                 "\"fuse_nodeids\": %zu, \"fuse_nodeids_peak\": %zu, "
                 "\"fuse_nodeids_max\": %u, \"fuse_nodeids_fallback\": "
                 "%" PRIu64 ", \"fuse_invalidations_unsent\": %" PRIu64,
                 f->n_fnodes, f->fnodes_peak, (unsigned)FS_FNODES_MAX,
                 f->fnode_fallbacks, unsent);
    } else {
        snprintf(buf, cap,
                 "fuse nodeids: %zu (peak %zu, max %u, fallback %" PRIu64
                 ")\nfuse invalidations unsent: %" PRIu64 "\n",
                 f->n_fnodes, f->fnodes_peak, (unsigned)FS_FNODES_MAX,
                 f->fnode_fallbacks, unsent);
    }
}
