/* fs_grave.c - removed inodes: the inos removed lately and the revision
 * that removed them, so that a process that opened one before still reads
 * it as it was (from the store's history).
 */
#include <errno.h>

#include "../../store/store_history.h"
#include "fs_internal.h"

void fs__grave_add(struct fs* f, uint64_t ino, uint64_t rev)
{
    f->graves[f->grave_next].ino = ino;
    f->graves[f->grave_next].rev = rev;
    f->grave_next = (f->grave_next + 1) % FS_GRAVES;
}

/* A process that opened a file before it was removed or renamed over
 * still reads it (its pages are kept; this serves the ones it has not
 * read yet): the content and attrs as of the revision before the removal,
 * from the store's history. -ESTALE once that is gone. */
int fs__grave_read(struct fs* f,
                   uint64_t ino,
                   struct store_attr* a,
                   void** data,
                   size_t* len)
{
    struct store_view* v;
    size_t i;
    int rv;

    for (i = 0; i < FS_GRAVES; i++) {
        if (f->graves[i].ino == ino && f->graves[i].rev > 1) {
            break;
        }
    }
    if (i == FS_GRAVES) {
        return -ESTALE;
    }
    rv = store_view_open(node_store(f->node), f->graves[i].rev - 1, &v);
    if (rv != 0) {
        return -ESTALE;
    }
    rv = store_view_getattr(v, ino, a);
    a->nlink = 0; /* no name refers to it any more */
    if (rv == 0 && data != NULL) {
        rv =
            a->type == STORE_DIR ? -EISDIR : store_view_read(v, ino, data, len);
    }
    store_view_release(v);
    return rv == -ENOENT ? -ESTALE : rv;
}
