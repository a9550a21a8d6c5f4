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
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "fs_internal.h"

void fs__notify_init(struct fs_notify* n)
{
    memset(n, 0, sizeof(*n));
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cond, NULL);
}

static void dropped_add(struct fs_notify* n, uint64_t ino)
{
    size_t i;

    if (ino == 0) {
        return;
    }
    for (i = 0; i < n->n_dropped; i++) {
        if (n->dropped[i] == ino) {
            return;
        }
    }
    if (n->n_dropped == FS_NOTIFY_DROPPED_MAX) {
        n->lost++;
        return;
    }
    n->dropped[n->n_dropped++] = ino;
}

void fs__notify_push(struct fs_notify* n,
                     uint64_t ino,
                     uint64_t parent,
                     const char* name)
{
    struct fs_notify_item* it;

    if (ino == 0 && parent == 0) {
        return;
    }
    pthread_mutex_lock(&n->mu);
    if (n->count == FS_NOTIFY_QUEUE_MAX) {
        it = &n->q[n->head];
        dropped_add(n, it->ino);
        dropped_add(n, it->parent);
        n->head = (n->head + 1) % FS_NOTIFY_QUEUE_MAX;
        n->count--;
    }
    it = &n->q[(n->head + n->count) % FS_NOTIFY_QUEUE_MAX];
    it->ino = ino;
    it->parent = 0;
    it->name[0] = '\0';
    if (parent != 0 && name != NULL && strlen(name) <= FS_NAME_MAX) {
        it->parent = parent;
        memcpy(it->name, name, strlen(name) + 1);
    } else if (parent != 0) {
        dropped_add(n, parent); /* no usable name: the dir's inode */
    }
    n->count++;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->mu);
}

static void notify_one(struct fuse_session* se, const struct fs_notify_item* it)
{
    /* -ENOENT: the kernel does not know the inode/entry; nothing cached. */
    if (it->ino != 0) {
        fuse_lowlevel_notify_inval_inode(se, it->ino, 0, 0);
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
            ino = n->dropped[--n->n_dropped];
            pthread_mutex_unlock(&n->mu);
            fuse_lowlevel_notify_inval_inode(n->se, ino, 0, 0);
            pthread_mutex_lock(&n->mu);
            continue;
        }
        it = n->q[n->head];
        n->head = (n->head + 1) % FS_NOTIFY_QUEUE_MAX;
        n->count--;
        pthread_mutex_unlock(&n->mu);
        notify_one(n->se, &it);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int fs__notify_start(struct fs_notify* n, struct fuse_session* se)
{
    int rv;

    assert(!n->started);
    n->se = se;
    rv = pthread_create(&n->thread, NULL, notify_main, n);
    if (rv != 0) {
        return -rv;
    }
    n->started = true;
    return 0;
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
