/* fs_kview.c - what the kernel may still hold of a changed inode.
 *
 * The kernel caches an inode's attributes (size included) and its pages
 * with long timeouts; an applied change reaches it through the notifier
 * thread (notify.c), some time after the store already holds the new
 * revision. In between, a reader whose kernel still has the old size could
 * be sent the new bytes: `666` read after `666666666` was written, or
 * `777` padded with NULs to the old length.
 *
 * So from the apply of a change to ino until its notification has been
 * sent, the requests that only observe ino are answered from the revision
 * before the change (the one the kernel may hold): GETATTR and the attrs of
 * LOOKUP and READDIRPLUS, with attribute timeout 0, and READ. Once the
 * notification is done, the kernel has dropped the old attributes and
 * pages; the next read() revalidates (attributes were invalidated or have
 * timeout 0), gets the new size and mtime, and the kernel drops any page
 * read in the meantime (auto_inval_data: a changed mtime or size
 * invalidates the pages), then reads the new revision. Each read() thus
 * sees one revision's size and bytes.
 *
 * A linearizable read barrier also waits here until every change applied
 * up to its read index has been sent to the kernel (fs__kview_wait): a
 * read that starts after a write was acknowledged anywhere sees it.
 *
 * Bounded: a view lives until its notification is done, so there are at
 * most as many as there are notifications waiting (the notifier's ring and
 * dropped set, fs_internal.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "../store/store_history.h"
#include "fs_internal.h"

static size_t kview_bucket(uint64_t ino)
{
    return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
           (FS_KVIEW_BUCKETS - 1);
}

static struct fs_kview* kview_find(const struct fs* f, uint64_t ino)
{
    struct fs_kview* k;

    for (k = f->kview_hash[kview_bucket(ino)]; k != NULL; k = k->hnext) {
        if (k->ino == ino) {
            return k;
        }
    }
    return NULL;
}

static void kview_drop(struct fs* f, struct fs_kview* k);

/* ino's view, if its notification is not done yet (the loop may not have
 * run done_async's callback yet: ask the notifier). */
static struct fs_kview* kview_live(struct fs* f, uint64_t ino)
{
    struct fs_kview* k;

    if (f->kviews.next == &f->kviews) {
        return NULL; /* the common case: every change notified */
    }
    k = kview_find(f, ino);
    if (k != NULL && k->seq <= fs__notify_done(&f->notify)) {
        kview_drop(f, k);
        return NULL;
    }
    return k;
}

static void kview_unlink_list(struct fs_kview* k)
{
    k->prev->next = k->next;
    k->next->prev = k->prev;
}

static void kview_append_list(struct fs* f, struct fs_kview* k)
{
    k->prev = f->kviews.prev;
    k->next = &f->kviews;
    f->kviews.prev->next = k;
    f->kviews.prev = k;
}

static void kview_drop(struct fs* f, struct fs_kview* k)
{
    struct fs_kview** p = &f->kview_hash[kview_bucket(k->ino)];

    while (*p != k) {
        p = &(*p)->hnext;
    }
    *p = k->hnext;
    kview_unlink_list(k);
    free(k);
}

void fs__kview_init(struct fs* f)
{
    f->kviews.next = f->kviews.prev = &f->kviews;
    f->kview_wait = NULL;
    f->kview_tail = &f->kview_wait;
}

void fs__kview_free(struct fs* f)
{
    while (f->kviews.next != &f->kviews) {
        kview_drop(f, f->kviews.next);
    }
    /* Waiting barriers are pending ops: fs_free answers them. */
    f->kview_wait = NULL;
    f->kview_tail = &f->kview_wait;
}

void fs__kview_changed(struct fs* f, uint64_t ino, uint64_t rev, uint64_t seq)
{
    struct fs_kview* k;

    assert(ino != 0);
    if (seq == 0) {
        return; /* nothing was queued */
    }
    k = kview_find(f, ino);
    if (k != NULL) {
        /* The kernel may still hold the older revision: keep it, and wait
         * for the later notification. The list stays in seq order. */
        k->seq = seq;
        kview_unlink_list(k);
        kview_append_list(f, k);
        return;
    }
    k = malloc(sizeof(*k));
    if (k == NULL) {
        return; /* the reader may see a stale size, as before views */
    }
    k->ino = ino;
    k->rev = rev;
    k->seq = seq;
    k->hnext = f->kview_hash[kview_bucket(ino)];
    f->kview_hash[kview_bucket(ino)] = k;
    kview_append_list(f, k);
}

bool fs__kview_attr(struct fs* f, uint64_t ino, struct store_attr* a)
{
    struct fs_kview* k;
    struct store_view* v;
    struct store_attr old;
    int rv;

    k = kview_live(f, ino);
    if (k == NULL || k->rev == 0 ||
        store_view_open(node_store(f->node), k->rev, &v) != 0) {
        return false;
    }
    rv = store_view_getattr(v, ino, &old);
    store_view_release(v);
    if (rv != 0) {
        return false; /* new since: the kernel cannot hold it */
    }
    *a = old;
    return true;
}

int fs__kview_read(struct fs* f, uint64_t ino, void** data, size_t* len)
{
    struct fs_kview* k;
    struct store_view* v;
    int rv;

    k = kview_live(f, ino);
    if (k == NULL || k->rev == 0 ||
        store_view_open(node_store(f->node), k->rev, &v) != 0) {
        return 0;
    }
    rv = store_view_read(v, ino, data, len);
    store_view_release(v);
    return rv == 0 ? 1 : 0;
}

void fs__kview_forget(struct fs* f, uint64_t ino)
{
    struct fs_kview* k;

    if (f->kviews.next == &f->kviews) {
        return;
    }
    k = kview_find(f, ino);
    if (k != NULL) {
        kview_drop(f, k);
    }
}

static void waiters_resume(struct fs* f, uint64_t done)
{
    struct fs_op* op;

    /* Waiters are in arrival order and each waits for what was pushed
     * when it arrived: a prefix of the list is ready. */
    while ((op = f->kview_wait) != NULL && op->kview_seq <= done) {
        f->kview_wait = op->wnext;
        if (f->kview_wait == NULL) {
            f->kview_tail = &f->kview_wait;
        }
        op->wnext = NULL;
        op->resume(op, 0);
    }
}

void fs__kview_wait(struct fs* f, struct fs_op* op)
{
    uint64_t pushed = fs__notify_pushed(&f->notify);

    assert(op->kind == FS_REPLY_BARRIER && op->resume != NULL);
    if (f->kview_wait == NULL && fs__notify_done(&f->notify) >= pushed) {
        fs__kview_notified(f); /* end the views before the reads */
        op->resume(op, 0);
        return;
    }
    op->kview_seq = pushed;
    op->wnext = NULL;
    *f->kview_tail = op;
    f->kview_tail = &op->wnext;
    /* The notifier may have finished between the two reads above. */
    fs__kview_notified(f);
}

void fs__kview_notified(struct fs* f)
{
    uint64_t done = fs__notify_done(&f->notify);

    /* clang-tidy false positive: kview_drop unlinks k before freeing it; the
     * path reads a freed head. */
    // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
    while (f->kviews.next != &f->kviews && f->kviews.next->seq <= done) {
        kview_drop(f, f->kviews.next);
    }
    waiters_resume(f, done);
}
