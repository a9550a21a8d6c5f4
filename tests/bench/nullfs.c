/* nullfs.c - a null FUSE filesystem for benchmarks (not a test, not part of
 * quorumfs): an in-memory tree served through the libfuse low-level API, no
 * replication, no disk. It is the ceiling FUSE itself allows on this
 * machine for the operations loadgen issues.
 *
 *   nullfs MOUNTPOINT [--timeout S] [--no-keep-cache] [--single-thread]
 *                     [--open] [--no-flush] [-o FUSE_OPTS]
 *
 * Runs in the foreground until SIGINT/SIGTERM or `fusermount3 -u`. The
 * kernel-cache settings default to quorumfs's own (fs/fuse/fs.c,
 * fs/fuse/fs_read.c): entry and attribute timeouts of 3600 s, no OPEN
 * (answered ENOSYS, so the kernel stops sending OPEN and RELEASE), one
 * FLUSH per close() answered at once (quorumfs commits a pending update
 * there, and answers at once when there is none), no atomic_o_trunc
 * (O_TRUNC arrives as SETATTR), no writeback cache, so the two answer the
 * same FUSE requests per operation. --no-flush answers FLUSH with ENOSYS
 * too (the kernel stops sending it: quorumfs's pattern before
 * close-to-commit writes). --open answers OPEN and FLUSH (keep_cache on
 * every open, FOPEN_NOFLUSH on read-only opens, atomic_o_trunc:
 * quorumfs's request pattern before 2026-11-26).
 * --timeout 0 and --no-keep-cache turn kernel caching off.
 *
 * Supported: lookup, forget, getattr, setattr (mode, size, times), mkdir,
 * rmdir, create, mknod (regular files), open, read, write, flush, release,
 * fsync, unlink, rename (flags 0 and RENAME_NOREPLACE), opendir, readdir,
 * releasedir, statfs. Limits: NODES_MAX inodes (ENOSPC), FILE_BYTES_MAX per
 * file (EFBIG), NAME_BYTES_MAX per name (ENAMETOOLONG). One mutex guards the
 * whole tree: requests are short and the point is FUSE's own cost.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nullfs.h"

/* ---- handlers: each path ends in exactly one fuse_reply_* ---- */

static void nfs_init(void* userdata, struct fuse_conn_info* conn)
{
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    if (nfs.no_open) {
        /* The kernel skips OPEN after the first ENOSYS; with
         * atomic_o_trunc it would then drop O_TRUNC entirely. */
        conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    } else if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) {
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    }
}

static void nfs_lookup(fuse_req_t req, fuse_ino_t parent, const char* name)
{
    struct fuse_entry_param e;
    pthread_mutex_lock(&nfs.mu);
    uint32_t i = node_get(parent) != NULL ? child_find(parent, name) : 0;
    if (i == 0) {
        pthread_mutex_unlock(&nfs.mu);
        fuse_reply_err(req, ENOENT);
        return;
    }
    entry_fill(i, &nfs.nodes[i], &e);
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_entry(req, &e);
}

static void nfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    pthread_mutex_lock(&nfs.mu);
    struct node* n = node_get(ino);
    if (n != NULL) {
        n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
        node_free_if_unused((uint32_t)ino);
    }
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_none(req);
}

static void nfs_getattr(fuse_req_t req,
                        fuse_ino_t ino,
                        struct fuse_file_info* fi)
{
    struct stat st;
    pthread_mutex_lock(&nfs.mu);
    struct node* n = node_get(ino);
    if (n == NULL) {
        pthread_mutex_unlock(&nfs.mu);
        fuse_reply_err(req, ENOENT);
        return;
    }
    node_stat(ino, n, &st);
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_attr(req, &st, nfs.timeout_s);
}

static void nfs_setattr(fuse_req_t req,
                        fuse_ino_t ino,
                        struct stat* attr,
                        int to_set,
                        struct fuse_file_info* fi)
{
    struct stat st;
    int err = 0;
    pthread_mutex_lock(&nfs.mu);
    struct node* n = node_get(ino);
    if (n == NULL) {
        err = -ENOENT;
        goto out;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        err = S_ISREG(n->mode) ? file_truncate(n, (size_t)attr->st_size)
                               : -EISDIR;
        if (err != 0) {
            goto out;
        }
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
    }
    if (to_set & FUSE_SET_ATTR_MTIME) {
        n->mtime = attr->st_mtim;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        clock_gettime(CLOCK_REALTIME, &n->mtime);
    }
    clock_gettime(CLOCK_REALTIME, &n->ctime);
    node_stat(ino, n, &st);
out:
    pthread_mutex_unlock(&nfs.mu);
    if (err != 0) {
        fuse_reply_err(req, -err);
        return;
    }
    fuse_reply_attr(req, &st, nfs.timeout_s);
}

/* Makes a new node named NAME in PARENT; fills e. Called with the lock. */
static int node_make(fuse_ino_t parent,
                     const char* name,
                     mode_t mode,
                     struct fuse_entry_param* e)
{
    struct node* p = node_get(parent);
    uint32_t i;
    if (p == NULL || !S_ISDIR(p->mode)) {
        return p == NULL ? -ENOENT : -ENOTDIR;
    }
    if (strlen(name) > NAME_BYTES_MAX) {
        return -ENAMETOOLONG;
    }
    if (child_find(parent, name) != 0) {
        return -EEXIST;
    }
    char* dup = strdup(name);
    if (dup == NULL) {
        return -ENOMEM;
    }
    int err = node_alloc(&i);
    if (err != 0) {
        free(dup);
        return err;
    }
    struct node* n = &nfs.nodes[i];
    n->mode = mode;
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    n->ctime = n->mtime;
    child_link(i, parent, dup);
    entry_fill(i, n, e);
    return 0;
}

static void nfs_mkdir(fuse_req_t req,
                      fuse_ino_t parent,
                      const char* name,
                      mode_t mode)
{
    struct fuse_entry_param e;
    pthread_mutex_lock(&nfs.mu);
    int err = node_make(parent, name, S_IFDIR | (mode & 07777), &e);
    pthread_mutex_unlock(&nfs.mu);
    if (err != 0) {
        fuse_reply_err(req, -err);
        return;
    }
    fuse_reply_entry(req, &e);
}

static void nfs_mknod(fuse_req_t req,
                      fuse_ino_t parent,
                      const char* name,
                      mode_t mode,
                      dev_t rdev)
{
    struct fuse_entry_param e;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    pthread_mutex_lock(&nfs.mu);
    int err = node_make(parent, name, mode, &e);
    pthread_mutex_unlock(&nfs.mu);
    if (err != 0) {
        fuse_reply_err(req, -err);
        return;
    }
    fuse_reply_entry(req, &e);
}

static void open_flags(struct fuse_file_info* fi)
{
    fi->keep_cache = nfs.keep_cache ? 1 : 0;
    fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY ? 1 : 0;
}

static void nfs_create(fuse_req_t req,
                       fuse_ino_t parent,
                       const char* name,
                       mode_t mode,
                       struct fuse_file_info* fi)
{
    struct fuse_entry_param e;
    pthread_mutex_lock(&nfs.mu);
    int err = node_make(parent, name, S_IFREG | (mode & 07777), &e);
    pthread_mutex_unlock(&nfs.mu);
    if (err != 0) {
        fuse_reply_err(req, -err);
        return;
    }
    open_flags(fi);
    if (fuse_reply_create(req, &e, fi) != 0) {
        /* The kernel dropped the request: undo the lookup count. */
        pthread_mutex_lock(&nfs.mu);
        nfs.nodes[e.ino].nlookup--;
        pthread_mutex_unlock(&nfs.mu);
    }
}

static void nfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    int err = 0;
    if (nfs.no_open) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    pthread_mutex_lock(&nfs.mu);
    struct node* n = node_get(ino);
    if (n == NULL) {
        err = -ENOENT;
    } else if (S_ISDIR(n->mode)) {
        err = -EISDIR;
    } else if (fi->flags & O_TRUNC) {
        err = file_truncate(n, 0);
    }
    pthread_mutex_unlock(&nfs.mu);
    if (err != 0) {
        fuse_reply_err(req, -err);
        return;
    }
    open_flags(fi);
    fuse_reply_open(req, fi);
}

static void nfs_read(fuse_req_t req,
                     fuse_ino_t ino,
                     size_t size,
                     off_t off,
                     struct fuse_file_info* fi)
{
    char stackbuf[4096];
    pthread_mutex_lock(&nfs.mu);
    struct node* n = node_get(ino);
    if (n == NULL) {
        pthread_mutex_unlock(&nfs.mu);
        fuse_reply_err(req, ENOENT);
        return;
    }
    size_t len = 0;
    if ((size_t)off < n->size) {
        len = n->size - (size_t)off < size ? n->size - (size_t)off : size;
    }
    char* buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (buf == NULL) {
        pthread_mutex_unlock(&nfs.mu);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (len > 0) {
        memcpy(buf, n->data + off, len);
    }
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_buf(req, buf, len);
    if (buf != stackbuf) {
        free(buf);
    }
}

static void nfs_write(fuse_req_t req,
                      fuse_ino_t ino,
                      const char* buf,
                      size_t size,
                      off_t off,
                      struct fuse_file_info* fi)
{
    int err = 0;
    pthread_mutex_lock(&nfs.mu);
    struct node* n = node_get(ino);
    if (n == NULL) {
        err = -ENOENT;
    } else if (off < 0 || (size_t)off + size > FILE_BYTES_MAX) {
        err = -EFBIG;
    } else if ((size_t)off + size > n->size) {
        err = file_truncate(n, (size_t)off + size);
    }
    if (err == 0) {
        memcpy(n->data + off, buf, size);
        clock_gettime(CLOCK_REALTIME, &n->mtime);
    }
    pthread_mutex_unlock(&nfs.mu);
    if (err != 0) {
        fuse_reply_err(req, -err);
        return;
    }
    fuse_reply_write(req, size);
}

static void nfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, nfs.no_flush && nfs.no_open ? ENOSYS : 0);
}

static void nfs_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi)
{
    fuse_reply_err(req, 0);
}

static void nfs_fsync(fuse_req_t req,
                      fuse_ino_t ino,
                      int datasync,
                      struct fuse_file_info* fi)
{
    fuse_reply_err(req, 0);
}

static void nfs_remove(fuse_req_t req,
                       fuse_ino_t parent,
                       const char* name,
                       bool dir)
{
    int err = 0;
    pthread_mutex_lock(&nfs.mu);
    uint32_t i = node_get(parent) != NULL ? child_find(parent, name) : 0;
    if (i == 0) {
        err = -ENOENT;
    } else if (dir != S_ISDIR(nfs.nodes[i].mode)) {
        err = dir ? -ENOTDIR : -EISDIR;
    } else if (dir && nfs.nodes[i].nchildren > 0) {
        err = -ENOTEMPTY;
    } else {
        child_unlink(i);
        node_free_if_unused(i);
    }
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_err(req, -err);
}

static void nfs_unlink(fuse_req_t req, fuse_ino_t parent, const char* name)
{
    nfs_remove(req, parent, name, false);
}

static void nfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name)
{
    nfs_remove(req, parent, name, true);
}

/* Moves (parent, name) to (newparent, newname). Called with the lock. */
static int do_rename(fuse_ino_t parent,
                     const char* name,
                     fuse_ino_t newparent,
                     const char* newname,
                     unsigned int flags)
{
    if (flags & ~RENAME_NOREPLACE) {
        return -EINVAL;
    }
    struct node* np = node_get(newparent);
    if (node_get(parent) == NULL || np == NULL) {
        return -ENOENT;
    }
    if (!S_ISDIR(np->mode)) {
        return -ENOTDIR;
    }
    if (strlen(newname) > NAME_BYTES_MAX) {
        return -ENAMETOOLONG;
    }
    uint32_t src = child_find(parent, name);
    if (src == 0) {
        return -ENOENT;
    }
    uint32_t dst = child_find(newparent, newname);
    if (dst == src) {
        return 0;
    }
    if (dst != 0) {
        if (flags & RENAME_NOREPLACE) {
            return -EEXIST;
        }
        bool src_dir = S_ISDIR(nfs.nodes[src].mode);
        if (src_dir != S_ISDIR(nfs.nodes[dst].mode)) {
            return src_dir ? -ENOTDIR : -EISDIR;
        }
        if (src_dir && nfs.nodes[dst].nchildren > 0) {
            return -ENOTEMPTY;
        }
    }
    char* dup = strdup(newname);
    if (dup == NULL) {
        return -ENOMEM;
    }
    if (dst != 0) {
        child_unlink(dst);
        node_free_if_unused(dst);
    }
    child_unlink(src);
    child_link(src, newparent, dup);
    clock_gettime(CLOCK_REALTIME, &nfs.nodes[src].ctime);
    return 0;
}

static void nfs_rename(fuse_req_t req,
                       fuse_ino_t parent,
                       const char* name,
                       fuse_ino_t newparent,
                       const char* newname,
                       unsigned int flags)
{
    pthread_mutex_lock(&nfs.mu);
    int err = do_rename(parent, name, newparent, newname, flags);
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_err(req, -err);
}

static void nfs_opendir(fuse_req_t req,
                        fuse_ino_t ino,
                        struct fuse_file_info* fi)
{
    pthread_mutex_lock(&nfs.mu);
    struct node* n = node_get(ino);
    int err = n == NULL ? -ENOENT : (S_ISDIR(n->mode) ? 0 : -ENOTDIR);
    pthread_mutex_unlock(&nfs.mu);
    if (err != 0) {
        fuse_reply_err(req, -err);
        return;
    }
    fuse_reply_open(req, fi);
}

/* Offsets: 1 = ".", 2 = "..", 2 + k = the k-th child in sibling order. A
 * directory changing during a listing may skip or repeat names, which the
 * benchmark does not do. */
static void nfs_readdir(fuse_req_t req,
                        fuse_ino_t ino,
                        size_t size,
                        off_t off,
                        struct fuse_file_info* fi)
{
    static const size_t cap = READDIR_BUF_BYTES;
    size_t limit = size < cap ? size : cap;
    char* buf = malloc(limit);
    size_t used = 0;
    struct stat st;

    if (buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_lock(&nfs.mu);
    struct node* d = node_get(ino);
    if (d == NULL) {
        pthread_mutex_unlock(&nfs.mu);
        free(buf);
        fuse_reply_err(req, ENOENT);
        return;
    }
    memset(&st, 0, sizeof(st));
    off_t pos = 0;
    uint32_t c = d->child_head;
    for (pos = 0; pos < 2 + (off_t)d->nchildren; pos++) {
        const char* name;
        fuse_ino_t child;
        if (pos == 0) {
            name = ".";
            child = ino;
        } else if (pos == 1) {
            name = "..";
            child = d->parent != 0 ? d->parent : ino;
        } else {
            assert(c != 0);
            name = nfs.nodes[c].name;
            child = c;
            c = nfs.nodes[c].sib_next;
        }
        if (pos < off) {
            continue;
        }
        st.st_ino = child;
        st.st_mode = nfs.nodes[child].mode;
        size_t need = fuse_add_direntry(req, buf + used, limit - used, name,
                                        &st, pos + 1);
        if (need > limit - used) {
            break;
        }
        used += need;
    }
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void nfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    memset(&sv, 0, sizeof(sv));
    pthread_mutex_lock(&nfs.mu);
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_blocks = 1u << 20;
    sv.f_bfree = sv.f_blocks;
    sv.f_bavail = sv.f_blocks;
    sv.f_files = NODES_MAX - 1;
    sv.f_ffree = NODES_MAX - 1 - nfs.nodes_used;
    sv.f_favail = sv.f_ffree;
    sv.f_namemax = NAME_BYTES_MAX;
    pthread_mutex_unlock(&nfs.mu);
    fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops nfs_ops = {
    .init = nfs_init,
    .lookup = nfs_lookup,
    .forget = nfs_forget,
    .getattr = nfs_getattr,
    .setattr = nfs_setattr,
    .mknod = nfs_mknod,
    .mkdir = nfs_mkdir,
    .unlink = nfs_unlink,
    .rmdir = nfs_rmdir,
    .rename = nfs_rename,
    .open = nfs_open,
    .read = nfs_read,
    .write = nfs_write,
    .flush = nfs_flush,
    .release = nfs_ok,
    .fsync = nfs_fsync,
    .opendir = nfs_opendir,
    .readdir = nfs_readdir,
    .releasedir = nfs_ok,
    .statfs = nfs_statfs,
    .create = nfs_create,
};

static void usage(void)
{
    fprintf(stderr,
            "usage: nullfs MOUNTPOINT [--timeout S] [--no-keep-cache] "
            "[--single-thread] [--open] [--no-flush] [-o FUSE_OPTS]\n");
    exit(2);
}

static int serve(struct fuse_session* se, bool single)
{
    if (single) {
        return fuse_session_loop(se);
    }
    /* With FUSE_USE_VERSION 35 this is the 3.2 API: the config is the
     * public two-field struct (the opaque fuse_loop_cfg_* one belongs to
     * 3.12+ and would be misread here). Idle threads are kept. */
    struct fuse_loop_config cfg = {.clone_fd = 0,
                                   .max_idle_threads = LOOP_THREADS};
    return fuse_session_loop_mt(se, &cfg);
}

int main(int argc, char** argv)
{
    const char* mnt = NULL;
    const char* fuse_opts = NULL;
    bool single = false;
    int rc = 1;

    nfs.timeout_s = 3600.0;
    nfs.keep_cache = true;
    nfs.no_open = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            nfs.timeout_s = atof(argv[++i]);
        } else if (strcmp(argv[i], "--open") == 0) {
            nfs.no_open = false;
        } else if (strcmp(argv[i], "--no-flush") == 0) {
            nfs.no_flush = true;
        } else if (strcmp(argv[i], "--no-keep-cache") == 0) {
            nfs.keep_cache = false;
        } else if (strcmp(argv[i], "--single-thread") == 0) {
            single = true;
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            fuse_opts = argv[++i];
        } else if (argv[i][0] != '-' && mnt == NULL) {
            mnt = argv[i];
        } else {
            usage();
        }
    }
    if (mnt == NULL || nfs.timeout_s < 0) {
        usage();
    }
    nfs.nodes = calloc(NODES_MAX, sizeof(*nfs.nodes));
    if (nfs.nodes == NULL) {
        fprintf(stderr, "nullfs: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&nfs.mu, NULL);
    struct node* root = &nfs.nodes[FUSE_ROOT_ID];
    root->used = true;
    root->linked = true;
    root->mode = S_IFDIR | 0755;
    clock_gettime(CLOCK_REALTIME, &root->mtime);
    root->ctime = root->mtime;
    nfs.nodes_used = 1;
    nfs.free_next = FUSE_ROOT_ID + 1;

    static char opt_o[] = "-o", opt_default[] = "fsname=nullfs";
    char* fargv[] = {argv[0], opt_o,
                     fuse_opts != NULL ? (char*)fuse_opts : opt_default, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse_session* se =
        fuse_session_new(&args, &nfs_ops, sizeof(nfs_ops), NULL);
    if (se == NULL) {
        goto err_after_nodes;
    }
    if (fuse_set_signal_handlers(se) != 0) {
        goto err_after_session;
    }
    if (fuse_session_mount(se, mnt) != 0) {
        goto err_after_signals;
    }
    rc = serve(se, single) != 0 ? 1 : 0;
    fuse_session_unmount(se);
err_after_signals:
    fuse_remove_signal_handlers(se);
err_after_session:
    fuse_session_destroy(se);
err_after_nodes:
    fuse_opt_free_args(&args);
    for (uint32_t i = 0; i < NODES_MAX; i++) {
        free(nfs.nodes[i].name);
        free(nfs.nodes[i].data);
    }
    free(nfs.nodes);
    return rc;
}
