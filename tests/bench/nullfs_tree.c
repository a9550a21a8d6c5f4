/* nullfs_tree.c - the null FUSE filesystem's in-memory tree: inodes in
 * one table, (parent, name) hashed into buckets, children in sibling
 * lists. Callers hold nfs.mu. A benchmark tool, not part of quorumfs. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nullfs.h"

struct nullfs nfs;

static uint32_t name_hash(fuse_ino_t parent, const char* name)
{
    uint64_t h = 1469598103934665603ull ^ parent;
    for (const char* p = name; *p != '\0'; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32)) & (BUCKETS - 1);
}

struct node* node_get(fuse_ino_t ino)
{
    if (ino == 0 || ino >= NODES_MAX || !nfs.nodes[ino].used) {
        return NULL;
    }
    return &nfs.nodes[ino];
}

uint32_t child_find(fuse_ino_t parent, const char* name)
{
    uint32_t i = nfs.buckets[name_hash(parent, name)];
    while (i != 0) {
        struct node* n = &nfs.nodes[i];
        if (n->parent == parent && strcmp(n->name, name) == 0) {
            return i;
        }
        i = n->hash_next;
    }
    return 0;
}

/* Gives node i the name (parent, name): hash chain and sibling list. */
void child_link(uint32_t i, fuse_ino_t parent, char* name)
{
    struct node* n = &nfs.nodes[i];
    struct node* p = &nfs.nodes[parent];
    uint32_t b = name_hash(parent, name);

    assert(!n->linked);
    n->parent = parent;
    n->name = name;
    n->hash_next = nfs.buckets[b];
    nfs.buckets[b] = i;
    n->sib_prev = 0;
    n->sib_next = p->child_head;
    if (p->child_head != 0) {
        nfs.nodes[p->child_head].sib_prev = i;
    }
    p->child_head = i;
    p->nchildren++;
    n->linked = true;
}

void node_free_if_unused(uint32_t i)
{
    struct node* n = &nfs.nodes[i];
    if (n->linked || n->nlookup > 0 || i == FUSE_ROOT_ID) {
        return;
    }
    free(n->data);
    memset(n, 0, sizeof(*n));
    nfs.nodes_used--;
    if (i < nfs.free_next) {
        nfs.free_next = i;
    }
}

void child_unlink(uint32_t i)
{
    struct node* n = &nfs.nodes[i];
    struct node* p = &nfs.nodes[n->parent];
    uint32_t* link = &nfs.buckets[name_hash(n->parent, n->name)];

    assert(n->linked);
    while (*link != i) {
        assert(*link != 0);
        link = &nfs.nodes[*link].hash_next;
    }
    *link = n->hash_next;
    if (n->sib_prev != 0) {
        nfs.nodes[n->sib_prev].sib_next = n->sib_next;
    } else {
        p->child_head = n->sib_next;
    }
    if (n->sib_next != 0) {
        nfs.nodes[n->sib_next].sib_prev = n->sib_prev;
    }
    p->nchildren--;
    free(n->name);
    n->name = NULL;
    n->linked = false;
}

int node_alloc(uint32_t* out)
{
    for (uint32_t i = nfs.free_next; i < NODES_MAX; i++) {
        if (!nfs.nodes[i].used) {
            nfs.nodes[i].used = true;
            nfs.free_next = i + 1;
            nfs.nodes_used++;
            *out = i;
            return 0;
        }
    }
    return -ENOSPC;
}

void node_stat(fuse_ino_t ino, const struct node* n, struct stat* st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = n->mode;
    st->st_nlink = S_ISDIR(n->mode) ? 2 + n->nchildren : 1;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_size = (off_t)n->size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    st->st_mtim = n->mtime;
    st->st_ctim = n->ctime;
    st->st_atim = n->mtime;
}

void entry_fill(fuse_ino_t ino, struct node* n, struct fuse_entry_param* e)
{
    memset(e, 0, sizeof(*e));
    e->ino = ino;
    e->generation = 1;
    e->attr_timeout = nfs.timeout_s;
    e->entry_timeout = nfs.timeout_s;
    node_stat(ino, n, &e->attr);
    n->nlookup++;
}

int file_truncate(struct node* n, size_t size)
{
    if (size > FILE_BYTES_MAX) {
        return -EFBIG;
    }
    if (size > n->cap) {
        char* d = realloc(n->data, size);
        if (d == NULL) {
            return -ENOMEM;
        }
        n->data = d;
        n->cap = size;
    }
    if (size > n->size) {
        memset(n->data + n->size, 0, size - n->size);
    }
    n->size = size;
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    n->ctime = n->mtime;
    return 0;
}
