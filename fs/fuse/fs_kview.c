/* fs_kview.c - changes the kernel has not been told of yet.
 *
 * An applied change reaches the kernel through the notifier thread
 * (notify.c), some time after the store holds it. Until its notification
 * has been sent:
 *
 *   - entry replies (LOOKUP, READDIRPLUS) of the changed inode get entry
 *     timeout 0 (fs__fill_entry): a reply that the kernel handles after the
 *     entry's invalidation must not pin it for the long entry timeout;
 *   - a linearizable read barrier of an OPEN waits here until every change
 *     applied up to its read index has been sent to the kernel
 *     (fs__kview_wait): a read that starts after a write was acknowledged
 *     anywhere sees it.
 *
 * Reads do not need it any more: a regular file's nodeid names one
 * revision in serializable mode (fs_nodeid.c), so its size and pages never
 * change under a reader, and linearizable reads are direct I/O. (Until
 * per-revision nodeids, GETATTR and READ of a changed inode were answered
 * from the revision before the change here until its notification was
 * sent; that narrowed the size/bytes race of issue 10 item 1 but could not
 * close it.)
 *
 * Bounded: an entry lives until its notification is done, so there are at
 * most as many as there are notifications waiting (the notifier's ring and
 * dropped set, fs_internal.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

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

void fs__kview_changed(struct fs* f, uint64_t ino, uint64_t seq)
{
    struct fs_kview* k;

    assert(ino != 0);
    if (seq == 0) {
        return; /* nothing was queued */
    }
    k = kview_find(f, ino);
    if (k != NULL) {
        /* Wait for the later notification. The list stays in seq
         * order. */
        k->seq = seq;
        kview_unlink_list(k);
        kview_append_list(f, k);
        return;
    }
    k = malloc(sizeof(*k));
    if (k == NULL) {
        return; /* entries get the long timeout */
    }
    k->ino = ino;
    k->seq = seq;
    k->hnext = f->kview_hash[kview_bucket(ino)];
    f->kview_hash[kview_bucket(ino)] = k;
    kview_append_list(f, k);
}

bool fs__kview_pending(struct fs* f, uint64_t ino)
{
    return kview_live(f, ino) != NULL;
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
