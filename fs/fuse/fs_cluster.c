/* fs_cluster.c - the virtual entries: /.cluster (status, members, leader,
 * metrics: read-only text generated from the node) and the /.snapshots
 * directory itself (its contents: fs_snap.c). Their inos live in a reserved
 * range above every store ino (FS_VINO_BASE).
 *
 * Regular files are opened without a request (fs_read.c), so a generated
 * file cannot be refreshed at open. Instead every lookup of a /.cluster
 * name (entry timeout 0: every path walk looks it up) makes a new
 * generation with its own ino (FS_VFILE_BASE + n) and immutable text; the
 * kernel caches its pages like any file's, and one reader sees one
 * consistent text. The last FS_VFILE_RING generations are kept.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_internal.h"
#include "node_metrics.h"

struct vfile {
    const char* name;
    uint64_t ino;
    int (*gen)(struct node* n, char** out, size_t* len);
};

static const struct vfile cluster_files[] = {
    {"leader", FS_VINO_LEADER, node_leader_text},
    {"members", FS_VINO_MEMBERS, node_members_text},
    {"metrics", FS_VINO_METRICS, node_metrics_text},
    {"status", FS_VINO_STATUS, node_status_json},
};
enum { CLUSTER_FILES = sizeof(cluster_files) / sizeof(cluster_files[0]) };

bool fs__is_virtual(uint64_t ino)
{
    return ino >= FS_VFILE_BASE;
}

bool fs__is_vfile(uint64_t ino)
{
    return ino >= FS_VFILE_BASE && ino < FS_VINO_BASE;
}

bool fs__reserved_name(uint64_t parent, const char* name, uint64_t* vino)
{
    uint64_t v = 0;

    if (parent != STORE_ROOT_INO) {
        return false;
    }
    if (strcmp(name, FS_CLUSTER_NAME) == 0) {
        v = FS_VINO_CLUSTER;
    } else if (strcmp(name, FS_SNAPSHOTS_NAME) == 0) {
        v = FS_VINO_SNAPSHOTS;
    } else {
        return false;
    }
    if (vino != NULL) {
        *vino = v;
    }
    return true;
}

void fs__virtual_attr(uint64_t vino, struct store_attr* a)
{
    struct timespec ts;

    assert(fs__is_virtual(vino));
    clock_gettime(CLOCK_REALTIME, &ts);
    memset(a, 0, sizeof(*a));
    a->ino = vino;
    a->atime_ns = a->mtime_ns = a->ctime_ns =
        (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (vino == FS_VINO_CLUSTER || vino == FS_VINO_SNAPSHOTS) {
        a->type = STORE_DIR;
        a->mode = 0555;
        a->nlink = 2;
    } else {
        a->type = STORE_FILE;
        a->mode = 0444;
        a->nlink = 1;
        a->size = 0; /* a generation carries the size (fs__vfile_get) */
    }
}

int fs__virtual_lookup(uint64_t parent, const char* name, struct store_attr* a)
{
    size_t i;

    if (parent != FS_VINO_CLUSTER) {
        return parent == FS_VINO_SNAPSHOTS ? -ENOENT : -ENOTDIR;
    }
    for (i = 0; i < CLUSTER_FILES; i++) {
        if (strcmp(name, cluster_files[i].name) == 0) {
            fs__virtual_attr(cluster_files[i].ino, a);
            return 0;
        }
    }
    return -ENOENT;
}

const char* fs__virtual_child(uint64_t dir, size_t i, uint64_t* ino)
{
    if (dir != FS_VINO_CLUSTER || i >= CLUSTER_FILES) {
        return NULL;
    }
    *ino = cluster_files[i].ino;
    return cluster_files[i].name;
}

int fs__vfile_make(struct fs* f, uint64_t vino, struct store_attr* a)
{
    struct fs_vfile* v;
    size_t i;
    char* out = NULL;
    size_t len = 0;
    int rv;

    for (i = 0; i < CLUSTER_FILES; i++) {
        if (cluster_files[i].ino == vino) {
            break;
        }
    }
    if (i == CLUSTER_FILES) {
        return -EISDIR;
    }
    rv = cluster_files[i].gen(f->node, &out, &len);
    if (rv != 0) {
        return rv;
    }
    /* Generations count up and wrap far below FS_VINO_BASE; a slot is
     * reused after FS_VFILE_RING newer ones (its reader gets ESTALE). */
    f->vfile_next = (f->vfile_next + 1) % (FS_VINO_BASE - FS_VFILE_BASE);
    v = &f->vfiles[f->vfile_next % FS_VFILE_RING];
    free(v->text);
    v->ino = FS_VFILE_BASE + f->vfile_next;
    v->text = out;
    v->len = len;
    v->made_ns = fs__now_ns();
    v->kind = vino;
    return fs__vfile_get(f, v->ino, NULL, NULL, a);
}

int fs__vfile_get(struct fs* f,
                  uint64_t ino,
                  const char** text,
                  size_t* len,
                  struct store_attr* a)
{
    const struct fs_vfile* v =
        &f->vfiles[(ino - FS_VFILE_BASE) % FS_VFILE_RING];

    if (!fs__is_vfile(ino) || v->ino != ino) {
        return -ESTALE;
    }
    if (text != NULL) {
        *text = v->text;
        *len = v->len;
    }
    fs__virtual_attr(v->kind, a);
    a->ino = ino;
    a->size = v->len;
    a->atime_ns = a->mtime_ns = a->ctime_ns = v->made_ns;
    return 0;
}

void fs__vfiles_free(struct fs* f)
{
    for (size_t i = 0; i < FS_VFILE_RING; i++) {
        free(f->vfiles[i].text);
        f->vfiles[i].text = NULL;
        f->vfiles[i].ino = 0;
    }
}
