/* histcmd.c - the history commands that change no file: named snapshots
 * (STORE_OP_SNAP_CREATE / SNAP_DROP) and the compact revision
 * (STORE_OP_COMPACT). They make no revision (a named snapshot names the
 * current one) but are records of the db file (REC_SNAP, REC_SNAPDROP,
 * REC_COMPACT), part of images, and advance the applied index and the dedup
 * table like every command. Checked completely before anything changes. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>

#include "store_internal.h"

/* A snapshot name: file-name rules, at most 255 bytes, and not "@...",
 * which names a revision in /.snapshots. */
static int check_snap_name(struct store* st, const char* name)
{
    int rv = store__check_name(st, name);
    if (rv != 0) {
        return rv;
    }
    if (strlen(name) > STORE_SNAP_NAME_MAX) {
        return -ENAMETOOLONG;
    }
    return name[0] == '@' ? -EINVAL : 0;
}

int store__op_snap_create(struct apply_ctx* x)
{
    struct store* st = x->st;
    const char* name = x->c->name;
    int rv = check_snap_name(st, name);
    if (rv != 0) {
        return rv;
    }
    size_t len = strlen(name);
    if (store__snap_find(&st->s, name, len) != NULL) {
        return -EEXIST;
    }
    if (st->s.nsnaps == STORE_SNAPS_MAX) {
        return -ENOSPC;
    }
    /* O(1) in the tree size: only a name and a revision are recorded. */
    rv =
        store__pend_snap(st, name, (uint16_t)len, st->s.revision, x->c->now_ns);
    if (rv == 0) {
        rv = store__snap_add(&st->s, name, len, st->s.revision, x->c->now_ns);
    }
    assert(rv == 0 || rv == -ENOMEM);
    x->fatal = rv;
    return 0;
}

int store__op_snap_drop(struct apply_ctx* x)
{
    struct store* st = x->st;
    const char* name = x->c->name;
    if (name == NULL) {
        return -EINVAL;
    }
    size_t len = strlen(name);
    if (len == 0 || len > STORE_SNAP_NAME_MAX ||
        store__snap_find(&st->s, name, len) == NULL) {
        return -ENOENT;
    }
    int rv = store__pend_snapdrop(st, name, (uint16_t)len);
    if (rv == 0) {
        rv = store__snap_del(&st->s, name, len);
    }
    assert(rv == 0 || rv == -ENOMEM);
    x->fatal = rv;
    return 0;
}

/* Effective target = min(target, oldest named snapshot, current revision);
 * nothing happens unless it passes the current compact revision. The db
 * file is rewritten later, off the apply path (compact.c). */
int store__op_compact(struct apply_ctx* x)
{
    struct store* st = x->st;
    uint64_t target = x->c->size;
    uint64_t oldest = store__snap_oldest(&st->s);
    if (target > oldest) {
        target = oldest;
    }
    if (target > st->s.revision) {
        target = st->s.revision;
    }
    if (target <= st->s.compact_rev) {
        return 0;
    }
    int rv = store__pend_compact(st, target);
    if (rv == 0) {
        st->s.compact_rev = target;
        store__trace(st, STORE_TRACE_INFO,
                     "history compacted to revision %" PRIu64, target);
    }
    x->fatal = rv;
    return 0;
}
