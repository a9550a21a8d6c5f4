/* fs.c - the fs object, the request table, lookup/getattr/statfs, and the
 * pending-request machinery shared by the other fs files (fs_internal.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fs_internal.h"

void fs_options_default(struct fs_options* o)
{
    assert(o != NULL);
    memset(o, 0, sizeof(*o));
    o->linearizable = false;
    o->entry_timeout_s = 3600.0;
    o->attr_timeout_s = 3600.0;
    o->file_size_max = 1u << 20;
    o->pending_bytes_max = 16u << 20;
    o->quota_reserve_pct = 5;
}

/* O_EXCL reservations (fs_pnew.c): this run's token nonce, and their
 * lifetime (the test hook QFS_TEST_RESV_TTL_MS shortens it). */
static void resv_init(struct fs* f)
{
    uint64_t nonce = 0;
    const char* ttl = getenv("QFS_TEST_RESV_TTL_MS");
    long ms = ttl != NULL ? strtol(ttl, NULL, 10) : 0;

    if (getrandom(&nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce)) {
        nonce = fs__mono_ns() ^ fs__now_ns(); /* unique enough per run */
    }
    f->resv_nonce = nonce | (UINT64_C(1) << 63);
    if (ms < STORE_RESV_TTL_MIN / 1000000 ||
        ms > STORE_RESV_TTL_MAX / 1000000) {
        ms = FS_RESV_TTL_MS;
    }
    f->resv_ttl_ns = (int64_t)ms * 1000000;
}

/* Test hook QFS_TEST_COMMIT_ANSWER_DELAY_MS (1..60000; else off). */
static void test_hooks_init(struct fs* f)
{
    const char* delay = getenv("QFS_TEST_COMMIT_ANSWER_DELAY_MS");
    long ms = delay != NULL ? strtol(delay, NULL, 10) : 0;

    f->test_answer_delay_ms = ms > 0 && ms <= 60000 ? (unsigned)ms : 0;
}

struct fs* fs_new(struct node* n, const struct fs_options* o)
{
    struct fs* f;

    assert(n != NULL);
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->node = n;
    if (fs__metrics_init(f) != 0) {
        free(f->metrics);
        free(f);
        return NULL;
    }
    if (o != NULL) {
        f->o = *o;
    } else {
        fs_options_default(&f->o);
    }
    if (f->o.file_size_max == 0) {
        f->o.file_size_max = 1u << 20;
    }
    if (f->o.pending_bytes_max == 0) {
        f->o.pending_bytes_max = 64u << 20;
    }
    f->pending.next = f->pending.prev = &f->pending;
    f->winos.next = f->winos.prev = &f->winos;
    assert(f->o.settle_timer != NULL);
    f->settle = f->o.settle_timer;
    f->settle->data = f;
    fs__notify_init(&f->notify);
    assert(f->o.notify_async != NULL);
    f->notify.done_async = f->o.notify_async;
    fs__kview_init(f);
    resv_init(f);
    test_hooks_init(f);
    node_set_status_extra(n, fs__nodeid_status, f);
    return f;
}

void fs_set_conn(struct fs* f, unsigned conn)
{
    f->conn = conn;
}

int fs_start_notifier(struct fs* f, struct fuse_session* se)
{
    assert(f != NULL && se != NULL);
    return fs__notify_start(&f->notify, se);
}

int fs_stop_notifier(struct fs* f, unsigned timeout_ms)
{
    return f != NULL ? fs__notify_stop_within(&f->notify, timeout_ms) : 0;
}

void fs_notified(struct fs* f)
{
    if (f != NULL) {
        fs__kview_notified(f);
    }
}

void fs_free(struct fs* f)
{
    if (f == NULL) {
        return;
    }
    /* No node_set_status_extra(NULL) here: the node is freed (its close
     * callbacks ran) before fs_free, when the loop has ended, and nothing
     * asks it for a status after that. */
    fs_reader_stop(f);
    fs__notify_stop(&f->notify);
    fs__metrics_free(f);
    fs__snap_free(f);
    uv_timer_stop(f->settle);
    fs__winos_free(f); /* queued writes */
    fs__pnews_free(f);
    fs__kview_free(f);
    /* The node is stopped first (its callbacks failed every pending
     * proposal with -ESHUTDOWN); whatever is left never gets a callback. */
    while (f->pending.next != &f->pending) {
        struct fs_op* op = f->pending.next;
        /* clang-tidy false positive: fs__op_free unlinks op before freeing it;
         * the path reads a freed head. */
        // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
        if (op->req != NULL) {
            fuse_reply_err(op->req, ESHUTDOWN);
        }
        fs__op_free(op);
    }
    fs__vfiles_free(f);
    fs__fnodes_free(f);
    free(f);
}

uint64_t fs__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t fs__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void fs__attr_to_stat(const struct fs* f,
                      const struct store_attr* a,
                      struct stat* st)
{
    mode_t type;

    memset(st, 0, sizeof(*st));
    switch (a->type) {
    case STORE_DIR:
        type = S_IFDIR;
        break;
    case STORE_SYMLINK:
        type = S_IFLNK;
        break;
    case STORE_FIFO:
        type = S_IFIFO;
        break;
    case STORE_SOCK:
        type = S_IFSOCK;
        break;
    case STORE_CHR:
        type = S_IFCHR;
        break;
    case STORE_BLK:
        type = S_IFBLK;
        break;
    default:
        type = S_IFREG;
        break;
    }
    st->st_ino = a->ino;
    if (f->pnews != NULL && fs__is_pnode(a->ino)) {
        uint64_t sino = fs__pnew_sino(f, a->ino);
        st->st_ino = sino != 0 ? sino : a->ino;
    }
    st->st_mode = type | (a->mode & 07777);
    st->st_nlink = a->nlink; /* 0: an open file no name refers to any more */
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_rdev = (dev_t)a->rdev; /* the kernel decodes it (new_decode_dev) */
    st->st_size = (off_t)a->size;
    /* The preferred I/O size is one WRITE: stdio and Python size their
     * buffers by it, so a file written through them (up to 1 MiB) reaches
     * us as one write() and is committed as one entry. */
    st->st_blksize = type == S_IFREG ? FS_WRITE_MAX : FS_BLOCK_SIZE;
    st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
    st->st_atim.tv_sec = a->atime_ns / 1000000000;
    st->st_atim.tv_nsec = a->atime_ns % 1000000000;
    st->st_mtim.tv_sec = a->mtime_ns / 1000000000;
    st->st_mtim.tv_nsec = a->mtime_ns % 1000000000;
    st->st_ctim.tv_sec = a->ctime_ns / 1000000000;
    st->st_ctim.tv_nsec = a->ctime_ns % 1000000000;
}

void fs__fill_entry(struct fs* f,
                    const struct store_attr* a,
                    struct fuse_entry_param* e)
{
    memset(e, 0, sizeof(*e));
    e->generation = 1;
    /* This mount's own pending update or commit in flight: every reply
     * that carries attributes shows it, and only until it is committed. */
    struct store_attr cur = *a;
    int pending = a->type == STORE_FILE ? fs__pending_attr(f, &cur, -1) : 0;
    /* A regular file's nodeid names this revision (fs_nodeid.c), or the
     * one this mount's update is written through. */
    e->ino = fs__nodeid_hand(f, a, pending == 1);
    fs__attr_to_stat(f, &cur, &e->attr); /* st_ino: the store ino */
    e->attr_timeout = pending ? 0 : f->o.attr_timeout_s;
    e->entry_timeout = f->o.entry_timeout_s;
    if (a->type == STORE_FILE && !fs__is_virtual(a->ino) &&
        fs__kview_pending(f, a->ino)) {
        /* Changed, and the invalidation of its entry is not sent yet: the
         * kernel may handle this reply after it (fs_kview.c). */
        e->entry_timeout = 0;
    }
}

void fs__reply_attr(struct fs* f, fuse_req_t req, uint64_t ino)
{
    struct store_attr a;
    struct stat st;
    double timeout = f->o.attr_timeout_s;
    int rv = store_getattr(node_store(f->node), ino, &a);

    if (rv == -ENOENT && fs__is_pnode(ino)) {
        rv = fs__pnew_attr(f, ino, &a); /* a pending new file */
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    if (a.type == STORE_FILE &&
        fs__pending_attr(f, &a, (int32_t)fuse_req_ctx(req)->pid) != 0 &&
        (f->o.linearizable || fs__is_pnode(ino))) {
        /* this mount's pending update: asked again until committed */
        timeout = 0;
    }
    /* Otherwise (serializable, an existing file) a SETATTR's answer keeps
     * the attribute timeout: the commit carries the times shown here
     * (fs__commit_start) and changes nothing else the kernel keeps (its
     * writes invalidate its mtime, ctime and size), so the next open's
     * permission check needs no GETATTR; a change from elsewhere while
     * the update is pending invalidates it (fs__nodeid_changed). */
    if (fs__pnew_dir_attr(f, &a)) {
        timeout = 0; /* its pending new files, until committed */
    }
    fs__attr_to_stat(f, &a, &st);
    fuse_reply_attr(req, &st, timeout);
}

bool fs__name_bad(fuse_req_t req, const char* name)
{
    if (strnlen(name, FS_NAME_MAX + 1) > FS_NAME_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return true;
    }
    return false;
}

/* ---- pending requests ---- */

struct fs_op* fs__op_new(struct fs* f, fuse_req_t req, enum fs_reply kind)
{
    struct fs_op* op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return NULL;
    }
    op->fs = f;
    op->req = req;
    op->kind = kind;
    op->next = f->pending.next;
    op->prev = &f->pending;
    f->pending.next->prev = op;
    f->pending.next = op;
    return op;
}

void fs__op_free(struct fs_op* op)
{
    op->prev->next = op->next;
    op->next->prev = op->prev;
    free(op);
}

static void reply_with_ino(struct fs_op* op, uint64_t ino)
{
    struct fs* f = op->fs;
    struct store_attr a;
    struct fuse_entry_param e;
    int rv = store_getattr(node_store(f->node), ino, &a);

    if (rv != 0) {
        fuse_reply_err(op->req, -rv);
        return;
    }
    if (op->kind == FS_REPLY_ATTR) {
        struct stat st;
        fs__attr_to_stat(f, &a, &st);
        fuse_reply_attr(op->req, &st, f->o.attr_timeout_s);
        return;
    }
    fs__fill_entry(f, &a, &e);
    if (op->kind == FS_REPLY_LINK) {
        /* fill_entry counted a lookup of its own nodeid: the inode the
         * kernel asked for takes the new name instead */
        uint64_t handed = e.ino;
        e.ino = fs__nodeid_link(f, op->ino, &a);
        fs__nodeid_unhand(f, handed);
        if (fuse_reply_entry(op->req, &e) != 0) {
            fs__nodeid_unhand(f, e.ino);
        }
        return;
    }
    if (op->kind == FS_REPLY_ENTRY) {
        if (fuse_reply_entry(op->req, &e) != 0) {
            fs__nodeid_unhand(f, e.ino);
        }
        return;
    }
    assert(op->kind == FS_REPLY_CREATE);
    fs__file_open_flags(f, &op->fi);
    if (fuse_reply_create(op->req, &e, &op->fi) != 0) {
        fs__nodeid_unhand(f, e.ino);
    }
}

/* The test hook's delayed answer of a commit (test_answer_delay_ms). */
struct delayed_answer {
    uv_timer_t timer;
    struct fs_op* op;
    struct store_result res;
};

static void delayed_answer_closed(uv_handle_t* h)
{
    free(h->data);
}

static void delayed_answer_cb(uv_timer_t* t)
{
    struct delayed_answer* d = t->data;

    fs__write_done(d->op, &d->res);
    fs__op_free(d->op);
    uv_close((uv_handle_t*)&d->timer, delayed_answer_closed);
}

/* 1 if op's answer was put off by the test hook. */
static int delay_answer(struct fs* f,
                        struct fs_op* op,
                        const struct store_result* res)
{
    struct delayed_answer* d;

    if (f->test_answer_delay_ms == 0 || (d = calloc(1, sizeof(*d))) == NULL) {
        return 0;
    }
    d->op = op;
    d->res = *res;
    d->timer.data = d;
    uv_timer_init(f->settle->loop, &d->timer);
    uv_timer_start(&d->timer, delayed_answer_cb, f->test_answer_delay_ms, 0);
    return 1;
}

static void propose_done_cb(void* data, const struct store_result* res)
{
    struct fs_op* op = data;

    assert(op != NULL && res != NULL);
    if (op->kind == FS_REPLY_WRITE) {
        if (delay_answer(op->fs, op, res)) {
            return;
        }
        fs__write_done(op, res);
    } else if (op->req == NULL) {
        /* an internal proposal (a reservation's renewal or release):
         * nobody to answer; a failed one expires */
    } else if (op->kind == FS_REPLY_RESERVE) {
        fs__pnew_reserved(op, res);
    } else if (res->err != 0) {
        fuse_reply_err(op->req, -res->err);
    } else if (op->kind == FS_REPLY_ERR) {
        fuse_reply_err(op->req, 0);
    } else {
        reply_with_ino(op, op->kind == FS_REPLY_ATTR ? op->ino : res->ino);
    }
    fs__op_free(op);
}

void fs__propose(struct fs* f, struct fs_op* op, struct store_cmd* c)
{
    int rv = node_propose(f->node, c, propose_done_cb, op);
    if (rv != 0) {
        struct store_result res = {.err = rv};
        propose_done_cb(op, &res);
    }
}

static void barrier_done_cb(void* data, int err)
{
    struct fs_op* op = data;

    if (err != 0) {
        op->resume(op, err);
        return;
    }
    /* Applied up to the read index. An OPEN also waits until the kernel
     * has been told of every change applied so far (fs_kview.c). Never a
     * LOOKUP: the kernel holds the parent directory's lock while it waits
     * for one, and the notifier may need that lock (inval_entry). */
    if (op->after_notify) {
        fs__kview_wait(op->fs, op);
    } else {
        op->resume(op, 0);
    }
}

void fs__barrier(struct fs* f, struct fs_op* op)
{
    int rv;

    assert(op->kind == FS_REPLY_BARRIER && op->resume != NULL);
    rv = node_read_barrier(f->node, barrier_done_cb, op);
    if (rv != 0) {
        op->resume(op, rv);
    }
}

/* ---- lookup / getattr / statfs ---- */

static void lookup_now(struct fs* f,
                       fuse_req_t req,
                       fuse_ino_t parent,
                       const char* name)
{
    struct store_attr a;
    struct fuse_entry_param e;
    const struct fs_pnew* p;
    uint64_t vino;
    int rv;

    if (fs__in_snapshots(parent)) {
        fs__snap_lookup(f, req, parent, name);
        return;
    }
    if (fs__reserved_name(parent, name, &vino)) {
        fs__virtual_attr(vino, &a);
        rv = 0;
    } else if (fs__is_virtual(parent)) {
        rv = fs__virtual_lookup(parent, name, &a);
    } else if ((p = fs__pnew_named(f, parent, name)) != NULL) {
        fs__pnew_fill(p, &a); /* this mount's pending new file (fs_pnew.c) */
        rv = 0;
    } else {
        rv = store_lookup(node_store(f->node), parent, name, &a);
    }
    if (rv == 0 && fs__is_virtual(a.ino) && a.type == STORE_FILE) {
        rv = fs__vfile_make(f, a.ino, &a); /* a new generation */
    }
    if (rv != 0) {
        fuse_reply_err(req, -rv);
        return;
    }
    fs__fill_entry(f, &a, &e);
    if (fs__is_vfile(a.ino)) {
        e.entry_timeout = 0; /* every open looks up a fresh text */
    } else if (fs__is_virtual(a.ino)) {
        e.attr_timeout = 1.0;
        e.entry_timeout = 1.0;
    }
    if (fuse_reply_entry(req, &e) != 0) {
        fs__nodeid_unhand(f, e.ino);
    }
}

static void lookup_resume(struct fs_op* op, int err)
{
    if (err != 0) {
        fuse_reply_err(op->req, -err);
    } else {
        lookup_now(op->fs, op->req, op->ino, op->name);
    }
    fs__op_free(op);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char* name)
{
    struct fs* f = fuse_req_userdata(req);
    struct fs_op* op;

    if (fs__name_bad(req, name)) {
        return;
    }
    if (!f->o.linearizable || fs__is_virtual(parent) || fs__is_snap(parent)) {
        lookup_now(f, req, parent, name);
        return;
    }
    op = fs__op_new(f, req, FS_REPLY_BARRIER);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    op->ino = parent;
    op->resume = lookup_resume;
    memcpy(op->name, name, strlen(name) + 1);
    fs__barrier(f, op);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    /* Store inos are stable and never reused: nothing to count. Snapshot
     * view inos are counted per /.snapshots root (fs_snap.c), per-revision
     * nodeids each (fs_nodeid.c). */
    if (fs__is_snap(ino)) {
        fs__snap_forget(fuse_req_userdata(req), ino, nlookup);
    } else {
        fs__nodeid_forget(fuse_req_userdata(req), ino, nlookup);
    }
    fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req,
                            size_t count,
                            struct fuse_forget_data* forgets)
{
    for (size_t i = 0; i < count; i++) {
        if (fs__is_snap(forgets[i].ino)) {
            fs__snap_forget(fuse_req_userdata(req), forgets[i].ino,
                            forgets[i].nlookup);
        } else {
            fs__nodeid_forget(fuse_req_userdata(req), forgets[i].ino,
                              forgets[i].nlookup);
        }
    }
    fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req,
                       fuse_ino_t ino,
                       struct fuse_file_info* fi)
{
    struct fs* f = fuse_req_userdata(req);
    struct store_attr a;
    struct stat st;
    struct fs_nodeid id = {.pending_ok = true};
    double timeout = f->o.attr_timeout_s;
    int rv;

    if (fs__is_snap(ino)) {
        rv = fs__snap_getattr(f, ino, &a);
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
        fs__attr_to_stat(f, &a, &st);
        if ((ino & FS_SNAP_STORE_INO_MASK) == STORE_ROOT_INO) {
            timeout = 1.0; /* a /.snapshots dir: may be dropped */
        }
        fuse_reply_attr(req, &st, timeout);
        return;
    }
    if (fs__is_vfile(ino)) {
        rv = fs__vfile_get(f, ino, NULL, NULL, &a);
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
    } else if (fs__is_virtual(ino)) {
        fs__virtual_attr(ino, &a);
        timeout = 1.0;
    } else {
        rv = fs__nodeid_ino(f, ino, &id);
        if (rv == 0 && !id.current && id.pending_ok &&
            store_getattr(node_store(f->node), id.ino, &a) == 0 &&
            fs__pending_attr(f, &a, (int32_t)fuse_req_ctx(req)->pid) == 1) {
            /* Written through: this mount's pending update. */
            fs__attr_to_stat(f, &a, &st);
            fuse_reply_attr(req, &st, 0);
            return;
        }
        if (rv == 0 && !id.current) {
            /* A nodeid of an older revision: that revision's attributes,
             * which never change (fs_nodeid.c); or of a file removed
             * since, nlink 0, with this mount's pending update if it was
             * written through (its writes stay readable until closed). */
            rv = fs__nodeid_at(f, &id, &a, NULL, NULL);
            if (rv != 0) {
                fuse_reply_err(req, -rv);
                return;
            }
            if (id.pending_ok && a.nlink == 0 &&
                fs__pending_attr(f, &a, (int32_t)fuse_req_ctx(req)->pid) == 1) {
                timeout = 0;
            }
            fs__attr_to_stat(f, &a, &st);
            fuse_reply_attr(req, &st, timeout);
            return;
        }
        if (rv != 0) {
            fuse_reply_err(req, -rv);
            return;
        }
        ino = id.ino;
        rv = store_getattr(node_store(f->node), ino, &a);
        if (rv == -ENOENT && fs__is_pnode(ino)) {
            rv = fs__pnew_attr(f, ino, &a); /* a pending new file */
        } else if (rv == -ENOENT) {
            /* fstat() of a file removed since it was opened (the kernel
             * does not say whether a GETATTR is an fstat; a path's stat
             * of a name removed on another node may see the old file until
             * the invalidation arrives, as it would see its content). */
            rv = fs__grave_read(f, ino, &a, NULL, NULL);
        }
        if (rv != 0) {
            /* ESTALE: stat() looks the path up again (see open). */
            fuse_reply_err(req, rv == -ENOENT ? ESTALE : -rv);
            return;
        }
    }
    if (!fs__is_virtual(ino) && a.type == STORE_FILE && id.pending_ok &&
        fs__pending_attr(f, &a, (int32_t)fuse_req_ctx(req)->pid) != 0) {
        timeout = 0; /* this mount's pending update, until committed */
    }
    if (!fs__is_virtual(ino) && fs__pnew_dir_attr(f, &a)) {
        timeout = 0; /* its pending new files, until committed */
    }
    fs__attr_to_stat(f, &a, &st);
    fuse_reply_attr(req, &st, timeout);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct fs* f = fuse_req_userdata(req);
    struct store_stats s;
    struct statvfs sv;
    uint64_t free_bytes, avail_bytes, q;
    uint64_t pct = f->o.quota_reserve_pct;

    store_get_stats(node_store(f->node), &s);
    free_bytes =
        s.quota_bytes > s.live_bytes ? s.quota_bytes - s.live_bytes : 0;
    /* Available to users other than root: below the root reserve, as the
     * store computes it (store/apply.c quota_limit). */
    q = s.quota_bytes -
        (s.quota_bytes / 100 * pct + s.quota_bytes % 100 * pct / 100);
    avail_bytes = q > s.live_bytes ? q - s.live_bytes : 0;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = FS_BLOCK_SIZE;
    sv.f_frsize = FS_BLOCK_SIZE;
    sv.f_blocks = s.quota_bytes / FS_BLOCK_SIZE;
    sv.f_bfree = free_bytes / FS_BLOCK_SIZE;
    sv.f_bavail = avail_bytes / FS_BLOCK_SIZE;
    sv.f_files = s.keys + free_bytes / FS_BLOCK_SIZE;
    sv.f_ffree = free_bytes / FS_BLOCK_SIZE;
    sv.f_favail = sv.f_ffree;
    sv.f_namemax = FS_NAME_MAX;
    fuse_reply_statfs(req, &sv);
}

static void fs_init(void* userdata, struct fuse_conn_info* conn)
{
    (void)userdata;
    /* Every write must reach us (fs_write.c), and the kernel must take the
     * size from us: no writeback cache. No atomic_o_trunc: without OPEN
     * requests O_TRUNC would be lost; the kernel sends SETATTR(size 0).
     * Applied changes invalidate explicitly (a regular file's entry: its
     * nodeids name one revision each, fs_nodeid.c), and auto_inval_data
     * makes a read() whose attributes were invalidated (or given with
     * timeout 0: this mount's pending update) revalidate them first and
     * drop pages of another mtime or size; valid attributes cost no
     * request. One write() up to 1 MiB is one WRITE (one proposal). */
    conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC);
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) {
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    }
    conn->max_write = FS_WRITE_MAX;
}

/* ---- invalidation ---- */

void fs_on_change(void* data, const struct store_change* c)
{
    struct fs* f = data;

    assert(f != NULL && c != NULL);
    if (c->removed && c->ino != 0) {
        /* The name is gone; the inode's pages stay for whoever has it
         * open. If it is dead, its last content stays readable. */
        struct store_attr a;
        if (store_getattr(node_store(f->node), c->ino, &a) == -ENOENT) {
            struct store_stats s;
            store_get_stats(node_store(f->node), &s);
            /* Called while the change applies: its revision is next. */
            fs__grave_add(f, c->ino, s.revision + 1);
            /* Dead: the kernel may drop its inode (a wrong nodeid is
             * refused there, and the entry only invalidated). */
            fs__notify_push_delete(&f->notify, c->parent, c->name,
                                   fs__nodeid_newest(f, c->ino));
            return;
        }
        fs__notify_push(&f->notify, 0, c->parent, c->name);
        return;
    }
    /* Ours: this mount's commit, content and attributes as its kernel
     * shows them; a RENAME carrying a pending update reports it as the
     * name the file now has (store/apply.c op_rename). */
    bool ours = fs__change_is_ours(f, c);
    if (c->ino != 0 && fs__nodeid_changed(f, c, ours)) {
        return; /* a regular file: its nodeids (fs_nodeid.c) */
    }
    if (ours && c->parent == 0) {
        return; /* our own write: the kernel already shows it */
    }
    uint64_t seq = fs__notify_push(&f->notify, c->ino, c->parent, c->name);
    if (c->ino != 0 && seq != 0) {
        fs__kview_changed(f, c->ino, seq);
    }
}

/* ---- write-path requests: the nodeid becomes the store ino here, so the
 * write path (fs_write.c) sees store inos only ---- */

static void fs_write_req(fuse_req_t req,
                         fuse_ino_t ino,
                         const char* buf,
                         size_t size,
                         off_t off,
                         struct fuse_file_info* fi)
{
    uint64_t sino = fs__nodeid_write(fuse_req_userdata(req), ino);

    if (sino == 0) {
        fuse_reply_err(req, ESTALE);
        return;
    }
    fs_write(req, sino, buf, size, off, fi);
}

static void fs_flush_req(fuse_req_t req,
                         fuse_ino_t ino,
                         struct fuse_file_info* fi)
{
    struct fs_nodeid id;

    if (fs__nodeid_ino(fuse_req_userdata(req), ino, &id) != 0) {
        fuse_reply_err(req, 0); /* nothing of ours behind a forgotten one */
        return;
    }
    fs_flush(req, id.ino, fi);
}

static void fs_fsync_req(fuse_req_t req,
                         fuse_ino_t ino,
                         int datasync,
                         struct fuse_file_info* fi)
{
    struct fs_nodeid id;

    if (fs__nodeid_ino(fuse_req_userdata(req), ino, &id) != 0) {
        fuse_reply_err(req, 0);
        return;
    }
    fs_fsync(req, id.ino, datasync, fi);
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .setattr = fs_setattr,
    .readlink = fs_readlink,
    .mknod = fs_mknod,
    .mkdir = fs_mkdir,
    .unlink = fs_unlink,
    .rmdir = fs_rmdir,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write_req,
    .flush = fs_flush_req,
    .release = fs_release,
    .fsync = fs_fsync_req,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .readdirplus = fs_readdirplus,
    .releasedir = fs_releasedir,
    .statfs = fs_statfs,
    .create = fs_create,
};

const struct fuse_lowlevel_ops* fs_lowlevel_ops(void)
{
    return &fs_ops;
}
