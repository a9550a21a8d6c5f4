/* nullfs.h - the null FUSE filesystem's in-memory tree (nullfs_tree.c),
 * shared with its handlers (nullfs.c). A benchmark tool, not part of
 * quorumfs. */
#ifndef QFS_BENCH_NULLFS_H
#define QFS_BENCH_NULLFS_H

#define FUSE_USE_VERSION 35

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

enum {
    NODES_MAX = 1 << 21,           /* inode table size (index 0 unused) */
    BUCKETS = 1 << 18,             /* (parent, name) hash buckets */
    FILE_BYTES_MAX = 1 << 20,      /* largest file */
    NAME_BYTES_MAX = 255,          /* longest name */
    READDIR_BUF_BYTES = 64 * 1024, /* largest readdir reply */
    LOOP_THREADS = 10              /* idle worker threads kept */
};
_Static_assert((BUCKETS & (BUCKETS - 1)) == 0, "BUCKETS is a power of two");

struct node {
    bool used;
    fuse_ino_t parent;
    char* name;          /* owned; NULL for the root */
    uint32_t hash_next;  /* next node in the same bucket, 0 = end */
    uint32_t child_head; /* first child (directories), 0 = none */
    uint32_t sib_prev, sib_next;
    uint64_t nlookup;
    bool linked; /* still has a name in the tree */
    mode_t mode;
    uint32_t nchildren;
    char* data; /* owned; regular files */
    size_t size, cap;
    struct timespec mtime, ctime;
};

struct nullfs {
    pthread_mutex_t mu;
    struct node* nodes; /* NODES_MAX entries */
    uint32_t buckets[BUCKETS];
    uint32_t free_next; /* lowest index that may be free */
    uint64_t nodes_used;
    double timeout_s;
    bool keep_cache;
    bool no_open;  /* answer OPEN with ENOSYS (FUSE_NO_OPEN_SUPPORT) */
    bool no_flush; /* answer FLUSH with ENOSYS (the kernel stops sending it) */
};

extern struct nullfs nfs;

/* The tree; callers hold nfs.mu. */
struct node* node_get(fuse_ino_t ino);
uint32_t child_find(fuse_ino_t parent, const char* name);
void child_link(uint32_t i, fuse_ino_t parent, char* name);
void node_free_if_unused(uint32_t i);
void child_unlink(uint32_t i);
int node_alloc(uint32_t* out);
void node_stat(fuse_ino_t ino, const struct node* n, struct stat* st);
void entry_fill(fuse_ino_t ino, struct node* n, struct fuse_entry_param* e);
int file_truncate(struct node* n, size_t size);

#endif
