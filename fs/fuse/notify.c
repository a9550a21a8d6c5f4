/* notify.c - the notifier thread: kernel cache invalidations for applied
 * changes, sent from a thread that never serves requests (DESIGN §1: a
 * notify can wait on a directory lock held by a request that waits for the
 * loop, so the loop must never notify).
 *
 * The loop pushes items into a bounded ring (FS_NOTIFY_QUEUE_MAX). When the
 * ring is full the oldest item is dropped, and invalidated conservatively:
 * its inos (the entry and, for a name change, the parent directory) go into
 * a bounded set, and the thread invalidates those inodes' attributes and
 * cached pages (for a directory: its cached listing) as soon as it can.
 * A dropped name's dentry itself cannot be invalidated without the name; it
 * stays cached until the kernel revalidates it (entry timeout) or a later
 * change to the same name queues it again. Past FS_NOTIFY_DROPPED_MAX
 * distinct inos, losses are only counted (n->lost).
 *
 * Items are numbered as they are pushed. After each item the thread raises
 * n->done to the highest number below every item still waiting (ring or
 * dropped set) and wakes the loop (done_async): the fs then knows which
 * changes the kernel can no longer hold stale attributes or pages of
 * (fs_kview.c).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../raft/util/deadline.h"
#include "fs_internal.h"

void fs__notify_init(struct fs_notify* n)
{
    memset(n, 0, sizeof(*n));
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cond, NULL);
}

static void dropped_add(struct fs_notify* n, uint64_t ino, uint64_t seq)
{
    size_t i;

    if (ino == 0) {
        return;
    }
    for (i = 0; i < n->n_dropped; i++) {
        if (n->dropped[i].ino == ino) {
            return; /* its older seq stays: the inval covers both */
        }
    }
    if (n->n_dropped == FS_NOTIFY_DROPPED_MAX) {
        n->lost++;
        return;
    }
    n->dropped[n->n_dropped].ino = ino;
    n->dropped[n->n_dropped].seq = seq;
    n->n_dropped++;
}

static uint64_t push_item(struct fs_notify* n,
                          uint64_t ino,
                          uint64_t parent,
                          const char* name,
                          uint64_t child)
{
    struct fs_notify_item* it;
    uint64_t seq;

    if (ino == 0 && parent == 0) {
        return 0;
    }
    pthread_mutex_lock(&n->mu);
    if (n->count == FS_NOTIFY_QUEUE_MAX) {
        it = &n->q[n->head];
        dropped_add(n, it->ino, it->seq);
        dropped_add(n, it->parent, it->seq);
        n->head = (n->head + 1) % FS_NOTIFY_QUEUE_MAX;
        n->count--;
    }
    seq = ++n->pushed;
    it = &n->q[(n->head + n->count) % FS_NOTIFY_QUEUE_MAX];
    it->seq = seq;
    it->ino = ino;
    it->parent = 0;
    it->child = 0;
    it->name[0] = '\0';
    if (parent != 0 && name != NULL && strlen(name) <= FS_NAME_MAX) {
        it->parent = parent;
        it->child = child;
        memcpy(it->name, name, strlen(name) + 1);
    } else if (parent != 0) {
        dropped_add(n, parent, seq); /* no usable name: the dir's inode */
    }
    n->count++;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->mu);
    return seq;
}

uint64_t fs__notify_push(struct fs_notify* n,
                         uint64_t ino,
                         uint64_t parent,
                         const char* name)
{
    return push_item(n, ino, parent, name, 0);
}

uint64_t fs__notify_push_delete(struct fs_notify* n,
                                uint64_t parent,
                                const char* name,
                                uint64_t child)
{
    return push_item(n, 0, parent, name, child);
}

uint64_t fs__notify_done(struct fs_notify* n)
{
    uint64_t done;

    pthread_mutex_lock(&n->mu);
    done = n->done;
    pthread_mutex_unlock(&n->mu);
    return done;
}

uint64_t fs__notify_pushed(struct fs_notify* n)
{
    uint64_t pushed;

    pthread_mutex_lock(&n->mu);
    pushed = n->pushed;
    pthread_mutex_unlock(&n->mu);
    return pushed;
}

/* Under n->mu, after an item was sent: everything below the oldest item
 * still waiting is done. The ring is in push order; dropped items are
 * older than every item in the ring. */
static void done_raise(struct fs_notify* n)
{
    uint64_t done = n->pushed;
    size_t i;

    if (n->count > 0) {
        done = n->q[n->head].seq - 1;
    }
    for (i = 0; i < n->n_dropped; i++) {
        if (n->dropped[i].seq - 1 < done) {
            done = n->dropped[i].seq - 1;
        }
    }
    if (done > n->done) {
        n->done = done;
        if (n->done_async != NULL) {
            uv_async_send(n->done_async);
        }
    }
}

static void notify_one(struct fuse_session* se, const struct fs_notify_item* it)
{
    /* -ENOENT: the kernel does not know the inode/entry; nothing cached. */
    if (it->ino != 0) {
        fuse_lowlevel_notify_inval_inode(se, it->ino, 0, 0);
    }
    /* notify_delete: -ENOENT when the kernel holds no inode of that
     * nodeid under the name, -ENOTEMPTY for a directory it still shows
     * entries of: the entry is invalidated all the same, and again below
     * (cheap) for any other refusal. */
    if (it->parent != 0 && it->child != 0 &&
        fuse_lowlevel_notify_delete(se, it->parent, it->child, it->name,
                                    strlen(it->name)) == 0) {
        return;
    }
    if (it->parent != 0) {
        fuse_lowlevel_notify_inval_entry(se, it->parent, it->name,
                                         strlen(it->name));
    }
}

static void* notify_main(void* arg)
{
    struct fs_notify* n = arg;
    struct fs_notify_item it;
    uint64_t ino;

    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->stop && n->count == 0 && n->n_dropped == 0) {
            pthread_cond_wait(&n->cond, &n->mu);
        }
        if (n->stop) {
            break;
        }
        if (n->n_dropped > 0) {
            /* Taken off the set only once sent: done stays below it. */
            ino = n->dropped[n->n_dropped - 1].ino;
            pthread_mutex_unlock(&n->mu);
            fuse_lowlevel_notify_inval_inode(n->se, ino, 0, 0);
            pthread_mutex_lock(&n->mu);
            for (size_t i = 0; i < n->n_dropped; i++) {
                if (n->dropped[i].ino == ino) {
                    n->dropped[i] = n->dropped[--n->n_dropped];
                    break;
                }
            }
            done_raise(n);
            continue;
        }
        it = n->q[n->head];
        n->head = (n->head + 1) % FS_NOTIFY_QUEUE_MAX;
        n->count--;
        pthread_mutex_unlock(&n->mu);
        if (n->delay_ms > 0) {
            struct timespec ts = {
                .tv_sec = n->delay_ms / 1000,
                .tv_nsec = (long)(n->delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        notify_one(n->se, &it);
        pthread_mutex_lock(&n->mu);
        done_raise(n);
    }
    n->exited = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int fs__notify_start(struct fs_notify* n, struct fuse_session* se)
{
    int rv;

    assert(!n->started);
    n->se = se;
    const char* delay = getenv("QFS_TEST_NOTIFY_DELAY_MS");
    n->delay_ms = delay != NULL ? (unsigned)strtoul(delay, NULL, 10) : 0;
    rv = pthread_create(&n->thread, NULL, notify_main, n);
    if (rv != 0) {
        return -rv;
    }
    n->started = true;
    return 0;
}

/* At shutdown the loop no longer reads requests, so a notify that waits
 * on a page a pending WRITE holds locked (invalidate_inode_pages2 under
 * fuse_reverse_inval_inode) would wait forever, and so would a join: the
 * caller bounds the wait and aborts the connection if it must (issue 13,
 * docs/architecture.md). */
int fs__notify_stop_within(struct fs_notify* n, unsigned timeout_ms)
{
    struct timespec until;
    int rv = 0;

    if (!n->started) {
        return 0;
    }
    until = util_deadline_ms(CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_broadcast(&n->cond);
    while (!n->exited && rv == 0) {
        rv = pthread_cond_timedwait(&n->cond, &n->mu, &until);
    }
    rv = n->exited ? 0 : -ETIMEDOUT;
    pthread_mutex_unlock(&n->mu);
    return rv;
}

void fs__notify_stop(struct fs_notify* n)
{
    if (n->started) {
        pthread_mutex_lock(&n->mu);
        n->stop = true;
        pthread_cond_signal(&n->cond);
        pthread_mutex_unlock(&n->mu);
        pthread_join(n->thread, NULL);
        n->started = false;
    }
    pthread_cond_destroy(&n->cond);
    pthread_mutex_destroy(&n->mu);
}
