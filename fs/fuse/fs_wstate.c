/* fs_wstate.c - the per-inode write state of close-to-commit writes
 * (fs_write.c, docs/consistency.md): the table of inodes with write state
 * (find, get, put, unlink), the wait of an unmount (fs_quiesce) for that
 * table to empty, freeing an update's buffer, arming the settle timer, and
 * what a reader of this mount sees of a pending update (fs__pending_attr,
 * fs__pending_read).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

/* ---- per-inode state ---- */

static size_t wino_bucket(uint64_t ino)
{
    return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
           (FS_WINO_BUCKETS - 1);
}

struct fs_wino* fs__wino_find(const struct fs* f, uint64_t ino)
{
    struct fs_wino* w;

    if (f->winos.next == &f->winos) {
        return NULL; /* the common case: nothing pending */
    }
    for (w = f->wino_hash[wino_bucket(ino)]; w != NULL; w = w->hnext) {
        if (w->ino == ino) {
            return w;
        }
    }
    return NULL;
}

void fs__wino_unlink(struct fs* f, struct fs_wino* w)
{
    struct fs_wino** p = &f->wino_hash[wino_bucket(w->ino)];

    while (*p != w) {
        p = &(*p)->hnext;
    }
    *p = w->hnext;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    atomic_fetch_sub(&f->nwinos, 1);
}

void fs__wino_link(struct fs* f, struct fs_wino* w, uint64_t ino)
{
    /* Before anything is answered for it (fs_reader.c's FLUSH). */
    atomic_fetch_add(&f->nwinos, 1);
    w->ino = ino;
    w->next = f->winos.next;
    w->prev = &f->winos;
    f->winos.next->prev = w;
    f->winos.next = w;
    w->hnext = f->wino_hash[wino_bucket(ino)];
    f->wino_hash[wino_bucket(ino)] = w;
}

struct fs_wino* fs__wino_get(struct fs* f, uint64_t ino)
{
    struct fs_wino* w = fs__wino_find(f, ino);

    if (w != NULL) {
        return w;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    fs__wino_link(f, w, ino);
    return w;
}

static void quiesced_cb(uv_timer_t* t)
{
    struct fs* f = t->data;
    void (*cb)(void* data) = f->quiesce_cb;

    f->quiesce_cb = NULL;
    cb(f->quiesce_data);
}

void fs__quiesce_check(struct fs* f)
{
    if (f->quiesce_cb != NULL && f->winos.next == &f->winos) {
        uv_timer_start(f->settle, quiesced_cb, 0, 0); /* the next turn */
    }
}

void fs__upd_free(struct fs* f, struct fs_upd* u)
{
    f->pending_bytes -= u->cap;
    free(u->buf);
    memset(u, 0, sizeof(*u));
}

void fs__wino_put(struct fs* f, struct fs_wino* w)
{
    if (w->u.on || w->busy || w->q_head != NULL || w->running) {
        return;
    }
    fs__wino_unlink(f, w);
    free(w);
    fs__quiesce_check(f);
}

void fs__settle_arm(struct fs* f)
{
    if (f->quiesce_cb == NULL && !uv_is_active((uv_handle_t*)f->settle)) {
        uv_timer_start(f->settle, fs__settle_cb, FS_SETTLE_MS, 0);
    }
}

/* The update of ino this mount reads (pending, or in flight): *hidden set
 * when there is one that requester tid may not see. Serializable: every
 * process of the mount sees it (one page cache, like a local file
 * system). Linearizable (direct reads, no page cache): only the threads
 * that wrote it, so that no other reader sees a value before its commit
 * (tid -1: a reply to no one in particular, an entry's attributes). */
static const struct fs_upd* upd_visible(const struct fs* f,
                                        uint64_t ino,
                                        int32_t tid,
                                        bool* hidden)
{
    const struct fs_wino* w = fs__wino_find(f, ino);
    const struct fs_upd* u = NULL;

    *hidden = false;
    if (w == NULL) {
        return NULL;
    }
    if (w->u.on && w->u.err == 0) {
        u = &w->u;
    } else if (w->busy && w->fl.err == 0 && !w->fl_applied) {
        /* Applied: the store has it, or what came after it in the log
         * (another node's change applied in the same batch). */
        u = &w->fl;
    }
    if (u != NULL && f->o.linearizable && !fs__owner_tid(u, tid)) {
        *hidden = true;
        return NULL;
    }
    return u;
}

int fs__pending_attr(const struct fs* f, struct store_attr* a, int32_t tid)
{
    bool hidden;
    const struct fs_upd* u = upd_visible(f, a->ino, tid, &hidden);

    if (u == NULL) {
        return hidden ? 2 : 0;
    }
    a->size = u->len;
    if (u->set_mask & STORE_SET_MODE) {
        a->mode = u->mode;
    }
    if (u->set_mask & STORE_SET_UID) {
        a->uid = u->uid;
    }
    if (u->set_mask & STORE_SET_GID) {
        a->gid = u->gid;
    }
    if (u->set_mask & STORE_SET_ATIME) {
        a->atime_ns = u->atime_ns;
    }
    if (u->set_mask & STORE_SET_MTIME) {
        a->mtime_ns = u->mtime_ns;
    } else if (u->mod_ns != 0) {
        a->mtime_ns = u->mod_ns; /* written or truncated here */
    }
    if (u->chg_ns != 0) {
        a->ctime_ns = u->chg_ns;
    }
    return 1;
}

int fs__pending_read(const struct fs* f,
                     uint64_t ino,
                     int32_t tid,
                     const void** data,
                     size_t* len)
{
    bool hidden;
    const struct fs_upd* u = upd_visible(f, ino, tid, &hidden);

    /* A truncation no write followed yet: this mount's kernel was told
     * size 0 and reads nothing, so a READ now comes from a reader that
     * sampled the size before it; the committed content is what goes
     * with that size (an empty reply would be zero-filled to it). */
    if (u == NULL || (u->trunc_only && !fs__is_pnode(ino))) {
        return 0; /* (a new file has no committed content: its own) */
    }
    *data = u->buf;
    *len = u->len;
    return 1;
}

uint64_t fs_held_bytes(const struct fs* f)
{
    return f->held_bytes;
}
