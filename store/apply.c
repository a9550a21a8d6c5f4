/* apply.c - command semantics (POSIX through FUSE). Every command is checked
 * completely before anything changes, so a failed command changes nothing
 * but the applied index and the dedup table (and the reservations a
 * STORE_CLAIM consumes whatever its outcome: resv.c). Changes go through
 * commit_put / commit_del, which queue the record AND apply it with the same
 * primitive recovery uses. Time comes from the command (now_ns), never the
 * clock. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "store_internal.h"

void store__rec_from_entry(const struct entry* e, struct store_rec* r)
{
    memset(r, 0, sizeof(*r));
    r->ino = e->ino;
    r->parent = e->parent;
    r->type = e->type;
    r->mode = e->mode;
    r->uid = e->uid;
    r->gid = e->gid;
    r->create_rev = e->create_rev;
    r->mod_rev = e->mod_rev;
    r->version = e->version;
    r->atime_ns = e->atime_ns;
    r->mtime_ns = e->mtime_ns;
    r->ctime_ns = e->ctime_ns;
    r->prev_frame = e->loc_frame;
    r->prev_rec = e->loc_rec;
    r->name = entry_name(e);
    r->name_len = e->name_len;
    r->content = entry_content(e);
    r->content_len = (uint32_t)e->size;
}

/* Record + apply the new state of an entry at this command's revision. */
void store__commit_put(struct apply_ctx* x, struct store_rec* r)
{
    char msg[128];
    uint32_t rec_off;
    if (x->fatal != 0) {
        return;
    }
    r->mod_rev = x->rev;
    int rv = store__pend_put(x->st, r, &rec_off);
    if (rv == 0) {
        rv = store__state_put(&x->st->s, r, x->st->next_off, rec_off, msg,
                              sizeof(msg));
    }
    assert(rv == 0 || rv == -ENOMEM); /* apply checked the command */
    x->fatal = rv;
    x->changed = true;
}

void store__commit_del(struct apply_ctx* x, struct entry* e)
{
    char msg[128];
    if (x->fatal != 0) {
        return;
    }
    int rv = store__pend_del(x->st, e->ino, x->rev, e->loc_frame, e->loc_rec);
    if (rv == 0) {
        rv = store__state_del(&x->st->s, e->ino, msg, sizeof(msg));
    }
    assert(rv == 0 || rv == -ENOMEM);
    x->fatal = rv;
    x->changed = true;
}

/* A command's change time: the command's, or for a WRITE the time of the
 * update's last change on its writer's mount when it gives one (size, not
 * 0 and not past now_ns): the ctime that mount showed, whose kernel keeps
 * the attributes it was answered (fs/fuse/fs_write.c). */
static int64_t change_ns(const struct store_cmd* c)
{
    if (c->op != STORE_OP_WRITE || c->size == 0 ||
        c->size > (uint64_t)c->now_ns) {
        return c->now_ns;
    }
    return (int64_t)c->size;
}

/* An existing entry modified in place (attrs or content). */
static void modified(struct apply_ctx* x, struct store_rec* r)
{
    r->version++;
    r->ctime_ns = change_ns(x->c);
    store__commit_put(x, r);
}

void store__touch_dir(struct apply_ctx* x, struct entry* d)
{
    struct store_rec r;
    store__rec_from_entry(d, &r);
    r.mtime_ns = x->c->now_ns;
    modified(x, &r);
}

void store__notify(struct apply_ctx* x,
                   uint64_t ino,
                   uint64_t parent,
                   const char* name,
                   bool removed)
{
    if (x->cb != NULL && x->fatal == 0) {
        struct store_change ch = {
            .ino = ino, .parent = parent, .name = name, .removed = removed};
        x->cb(x->cb_data, &ch);
    }
}

/* ---- checks ---- */

static int get_dir(struct store* st, uint64_t ino, struct entry** d)
{
    *d = store__find(&st->s, ino);
    if (*d == NULL) {
        return -ENOENT;
    }
    return (*d)->type == STORE_DIR ? 0 : -ENOTDIR;
}

int store__check_name(struct store* st, const char* name)
{
    if (name == NULL || name[0] == 0 || strchr(name, '/') != NULL ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return -EINVAL;
    }
    return strlen(name) > st->opt.name_max ? -ENAMETOOLONG : 0;
}

bool store__reserved(uint64_t parent, const char* name)
{
    return parent == STORE_ROOT_INO &&
           (strcmp(name, ".snapshots") == 0 || strcmp(name, ".cluster") == 0);
}

/* Parent dir + valid name + not reserved: the start of every name op. */
static int check_dirent(struct store* st,
                        uint64_t parent,
                        const char* name,
                        struct entry** d)
{
    int rv = get_dir(st, parent, d);
    if (rv == 0) {
        rv = store__check_name(st, name);
    }
    if (rv == 0 && store__reserved(parent, name)) {
        rv = -EPERM;
    }
    return rv;
}

static int check_path(struct store* st, const struct entry* d, const char* name)
{
    size_t plen = d == st->s.root ? 0 : store__path_len(&st->s, d);
    return plen + 1 + strlen(name) > st->opt.path_max ? -ENAMETOOLONG : 0;
}

int store_path_fits(struct store* st, uint64_t parent, const char* name)
{
    struct entry* d;
    int rv = get_dir(st, parent, &d);
    return rv != 0 ? rv : check_path(st, d, name);
}

/* The live bytes a command may grow content to: the quota less the
 * root reserve it carries (floor(quota x pct / 100), without overflow).
 * The percentage comes from the command, the quota from the options (the
 * same on every node), so every replica decides alike. */
static uint64_t quota_limit(const struct store* st, uint8_t pct)
{
    uint64_t q = st->opt.quota_bytes;
    return q - (q / 100 * pct + q % 100 * pct / 100);
}

/* Would content growing from old_len to new_len pass the quota (less the
 * command's reserve)? */
static int check_quota(const struct apply_ctx* x,
                       uint64_t old_len,
                       uint64_t new_len)
{
    const struct store* st = x->st;
    if (new_len <= old_len) {
        return 0; /* shrinking is always allowed */
    }
    uint64_t live = st->s.live_bytes - old_len + new_len;
    return live > quota_limit(st, x->c->reserve_pct) ? -ENOSPC : 0;
}

static struct entry* child(struct entry* d, const char* name)
{
    return store__child(d, name, strlen(name));
}

/* ---- creation ---- */

static void set_content(const struct store_cmd* c, struct store_rec* r);
static int check_content(struct apply_ctx* x, uint64_t old_size);

/* The first record of a new entry named c->name in d: the next ino, this
 * revision, the command's time; mode and owner are the caller's. */
static void new_rec(struct apply_ctx* x,
                    const struct entry* d,
                    uint8_t type,
                    const void* content,
                    size_t len,
                    struct store_rec* r)
{
    const struct store_cmd* c = x->c;

    *r = (struct store_rec){
        .ino = x->st->s.next_ino,
        .parent = d->ino,
        .type = type,
        .create_rev = x->rev,
        .version = 1,
        .atime_ns = c->now_ns,
        .mtime_ns = c->now_ns,
        .ctime_ns = c->now_ns,
        .prev_frame = UINT64_MAX,
        .name = c->name,
        .name_len = (uint16_t)strlen(c->name),
        .content = content,
        .content_len = (uint32_t)len,
    };
}

/* A deferred create's creation time (CREATE with STORE_WITH_DATA: size,
 * when non-zero and not past the command's time), else the command's. */
static int64_t created_ns(const struct store_cmd* c)
{
    if (c->op != STORE_OP_CREATE || (c->flags & STORE_WITH_DATA) == 0 ||
        c->size == 0 || c->size > (uint64_t)c->now_ns) {
        return c->now_ns;
    }
    return (int64_t)c->size;
}

/* The directory of a deferred create: its times become the file's
 * creation time, never lowered (a later change keeps its own). */
static void touch_dir_at(struct apply_ctx* x, struct entry* d, int64_t t)
{
    struct store_rec r;
    store__rec_from_entry(d, &r);
    r.version++;
    r.mtime_ns = t > r.mtime_ns ? t : r.mtime_ns;
    r.ctime_ns = t > r.ctime_ns ? t : r.ctime_ns;
    store__commit_put(x, &r);
}

/* A new entry (parent d, the command's name); ino: the one its name's
 * reservation holds (STORE_CLAIM), 0 the next. */
static int create_entry(struct apply_ctx* x,
                        struct entry* d,
                        uint8_t type,
                        const void* content,
                        size_t len,
                        uint64_t ino)
{
    struct store* st = x->st;
    const struct store_cmd* c = x->c;
    int rv = check_path(st, d, c->name);
    if (rv != 0) {
        return rv;
    }
    struct store_rec r;
    new_rec(x, d, type, content, len, &r);
    r.mode = type == STORE_SYMLINK ? 0777 : c->mode & 07777;
    r.uid = c->uid;
    r.gid = c->gid;
    int64_t made = created_ns(c);
    if (c->op == STORE_OP_CREATE && (c->flags & STORE_WITH_DATA) != 0) {
        /* a deferred create: made when its writer created it, with the
         * times its writer set */
        r.atime_ns = r.mtime_ns = r.ctime_ns = made;
        if ((c->set_mask & STORE_SET_ATIME) != 0) {
            r.atime_ns = c->atime_ns;
        }
        if ((c->set_mask & STORE_SET_MTIME) != 0) {
            r.mtime_ns = c->mtime_ns;
        }
    }
    if (ino != 0) {
        r.ino = ino;
    } else {
        st->s.next_ino++;
    }
    store__commit_put(x, &r);
    if (made != c->now_ns) {
        touch_dir_at(x, d, made);
    } else {
        store__touch_dir(x, d);
    }
    x->ino = r.ino;
    store__notify(x, r.ino, d->ino, c->name, false);
    store__notify(x, d->ino, 0, NULL, false);
    return 0;
}

/* CREATE with STORE_WITH_DATA | STORE_REPLACE over the existing name n
 * (inode e, not a directory): the name is replaced as a RENAME over it
 * replaces it (e keeps its other names, or goes), then the file is
 * created. */
static int replace_name(struct apply_ctx* x,
                        struct entry* d,
                        struct entry* n,
                        struct entry* e,
                        uint64_t ino)
{
    const struct store_cmd* c = x->c;
    bool stays = e != n || e->nlinks > 0; /* the inode has other names */
    int rv = check_content(x, stays ? 0 : e->size);
    if (rv != 0) {
        return rv;
    }
    uint64_t old = e->ino;
    store__remove_name(x, n);
    store__notify(x, old, d->ino, c->name, true);
    if (stays) {
        store__notify(x, old, 0, NULL, false); /* its nlink and ctime */
    }
    return create_entry(x, d, STORE_FILE, c->data, c->data_len, ino);
}

/* CREATE with STORE_WITH_DATA: a new file and its whole first content,
 * mode, owner and the times set_mask selects, in one entry (a deferred
 * create, fs/fuse/fs_pnew.c). A regular file made under that name
 * meanwhile is replaced whole, in place (its ino stays): the last commit
 * wins, as for two writers of one file. */
static int create_with_data(struct apply_ctx* x, struct entry* d, uint64_t ino)
{
    const struct store_cmd* c = x->c;
    struct entry* n = child(d, c->name);
    struct entry* e = store__resolve(&x->st->s, n);
    if (e != NULL && (c->flags & STORE_EXCL) != 0) {
        return -EEXIST;
    }
    if (e != NULL && (c->flags & STORE_REPLACE) != 0 && e->type != STORE_DIR) {
        return replace_name(x, d, n, e, ino);
    }
    if (e != NULL && e->type != STORE_FILE) {
        return e->type == STORE_DIR ? -EISDIR : -EEXIST;
    }
    int rv = check_content(x, e != NULL ? e->size : 0);
    if (rv != 0) {
        return rv;
    }
    if (e == NULL) {
        return create_entry(x, d, STORE_FILE, c->data, c->data_len, ino);
    }
    struct store_rec r;
    store__rec_from_entry(e, &r);
    set_content(c, &r);
    r.mode = c->mode & 07777;
    r.uid = c->uid;
    r.gid = c->gid;
    modified(x, &r);
    x->ino = e->ino;
    store__notify(x, e->ino, 0, NULL, false);
    return 0;
}

/* STORE_CLAIM: the holder's reservations go whatever the outcome; then
 * EEXIST if another holds the name live, else CREATE with STORE_WITH_DATA.
 * Decode admits STORE_CLAIM only with STORE_WITH_DATA on a CREATE. */
static int op_claim(struct apply_ctx* x)
{
    struct entry* d;
    const struct store_cmd* c = x->c;
    assert((c->flags & STORE_WITH_DATA) != 0);
    /* the ino its reservation took: the file keeps the st_ino its writer
     * saw (0: none left, the next) */
    uint64_t ino = store__resv_ino(&x->st->s, c->origin, c->ino);
    store__resv_consume(x);
    int rv = check_dirent(x->st, c->parent, c->name, &d);
    if (rv != 0) {
        return rv;
    }
    if (store__resv_blocks(x, c->parent, c->name)) {
        return -EEXIST;
    }
    return create_with_data(x, d, ino);
}

static int op_create(struct apply_ctx* x)
{
    struct entry* d;
    const struct store_cmd* c = x->c;
    if ((c->flags & STORE_CLAIM) != 0) {
        return op_claim(x);
    }
    int rv = check_dirent(x->st, c->parent, c->name, &d);
    if (rv != 0) {
        return rv;
    }
    if ((c->flags & STORE_EXCL) != 0 &&
        store__resv_blocks(x, c->parent, c->name)) {
        return -EEXIST; /* reserved by a pending O_EXCL create */
    }
    if ((c->flags & STORE_WITH_DATA) != 0) {
        return create_with_data(x, d, 0);
    }
    struct entry* e = store__resolve(&x->st->s, child(d, c->name));
    if (e == NULL) {
        return create_entry(x, d, STORE_FILE, NULL, 0, 0);
    }
    if ((c->flags & STORE_EXCL) != 0) {
        return -EEXIST;
    }
    if (e->type == STORE_DIR) {
        return -EISDIR;
    }
    if (e->type != STORE_FILE) {
        return -EEXIST;
    }
    x->ino = e->ino;
    if ((c->flags & STORE_TRUNC) != 0) {
        struct store_rec r;
        store__rec_from_entry(e, &r);
        r.content_len = 0;
        r.mtime_ns = c->now_ns;
        modified(x, &r);
        store__notify(x, x->ino, 0, NULL, false);
    }
    return 0;
}

/* The command's (parent, name) may be created: the parent is a directory
 * the name may go in (check_dirent, *d), nothing has that name and no
 * live reservation holds it. */
static int check_new_dirent(struct apply_ctx* x, struct entry** d)
{
    const struct store_cmd* c = x->c;
    int rv = check_dirent(x->st, c->parent, c->name, d);
    if (rv != 0) {
        return rv;
    }
    if (child(*d, c->name) != NULL ||
        store__resv_blocks(x, c->parent, c->name)) {
        return -EEXIST;
    }
    return 0;
}

static int op_mkdir_symlink(struct apply_ctx* x)
{
    struct entry* d;
    const struct store_cmd* c = x->c;
    int rv = check_new_dirent(x, &d);
    if (rv != 0) {
        return rv;
    }
    if (c->op == STORE_OP_MKDIR) {
        return create_entry(x, d, STORE_DIR, NULL, 0, 0);
    }
    if (c->data_len == 0) {
        return -ENOENT;
    }
    if (c->data_len > x->st->opt.path_max) {
        return -ENAMETOOLONG;
    }
    rv = check_quota(x, 0, c->data_len);
    if (rv != 0) {
        return rv;
    }
    return create_entry(x, d, STORE_SYMLINK, c->data, c->data_len, 0);
}

/* A FIFO, socket or device node. A device's number is its content
 * (STORE_RDEV_LEN bytes, little-endian): records, images, history and
 * restore carry it as they carry any content. */
static int op_mknod(struct apply_ctx* x)
{
    struct entry* d;
    const struct store_cmd* c = x->c;
    int rv = check_new_dirent(x, &d);
    if (rv != 0) {
        return rv;
    }
    uint8_t rdev[STORE_RDEV_LEN];
    size_t len = 0;
    if (c->type == STORE_CHR || c->type == STORE_BLK) {
        put_le64(rdev, c->size);
        len = sizeof(rdev);
        rv = check_quota(x, 0, len);
        if (rv != 0) {
            return rv;
        }
    }
    return create_entry(x, d, c->type, rdev, len, 0);
}

/* ---- content and attributes ---- */

static int get_file(struct store* st, uint64_t ino, struct entry** e)
{
    *e = store__find(&st->s, ino);
    if (*e == NULL || (*e)->type == STORE_LINK) {
        return -ENOENT;
    }
    if ((*e)->type == STORE_DIR) {
        return -EISDIR;
    }
    return (*e)->type == STORE_FILE ? 0 : -EINVAL;
}

/* A WRITE's content and the attributes it sets (its own time for mtime,
 * unless it sets one). */
static void set_content(const struct store_cmd* c, struct store_rec* r)
{
    r->content = c->data;
    r->content_len = (uint32_t)c->data_len;
    r->mtime_ns = c->now_ns;
    if ((c->set_mask & STORE_SET_MODE) != 0) {
        r->mode = c->mode & 07777;
    }
    if ((c->set_mask & STORE_SET_UID) != 0) {
        r->uid = c->uid;
    }
    if ((c->set_mask & STORE_SET_GID) != 0) {
        r->gid = c->gid;
    }
    if ((c->set_mask & STORE_SET_ATIME) != 0) {
        r->atime_ns = c->atime_ns;
    }
    if ((c->set_mask & STORE_SET_MTIME) != 0) {
        r->mtime_ns = c->mtime_ns;
    }
}

/* Checks of a WRITE's content for a file of old_size bytes (0: new). */
static int check_content(struct apply_ctx* x, uint64_t old_size)
{
    if (x->c->data_len > x->st->opt.file_size_max) {
        return -EFBIG;
    }
    return check_quota(x, old_size, x->c->data_len);
}

static int op_write(struct apply_ctx* x)
{
    struct entry* e;
    const struct store_cmd* c = x->c;
    int rv = get_file(x->st, c->ino, &e);
    if (rv != 0) {
        return rv;
    }
    rv = check_content(x, e->size);
    if (rv != 0) {
        return rv;
    }
    struct store_rec r;
    store__rec_from_entry(e, &r);
    set_content(c, &r);
    modified(x, &r);
    x->ino = c->ino;
    store__notify(x, c->ino, 0, NULL, false);
    return 0;
}

static int op_setattr(struct apply_ctx* x)
{
    const struct store_cmd* c = x->c;
    struct entry* e = store__find(&x->st->s, c->ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT;
    }
    struct store_rec r;
    store__rec_from_entry(e, &r);
    uint8_t* buf = NULL;
    if ((c->set_mask & STORE_SET_SIZE) != 0) {
        int rv = get_file(x->st, c->ino, &e);
        if (rv == 0 && c->size > x->st->opt.file_size_max) {
            rv = -EFBIG;
        }
        if (rv == 0) {
            rv = check_quota(x, e->size, c->size);
        }
        if (rv != 0) {
            return rv;
        }
        buf = calloc(1, (size_t)c->size + 1);
        if (buf == NULL) {
            x->fatal = -ENOMEM;
            return 0;
        }
        memcpy(buf, entry_content(e), e->size < c->size ? e->size : c->size);
        r.content = buf;
        r.content_len = (uint32_t)c->size;
        r.mtime_ns = c->now_ns;
    }
    if ((c->set_mask & STORE_SET_MODE) != 0) {
        r.mode = c->mode & 07777;
    }
    if ((c->set_mask & STORE_SET_UID) != 0) {
        r.uid = c->uid;
    }
    if ((c->set_mask & STORE_SET_GID) != 0) {
        r.gid = c->gid;
    }
    if ((c->set_mask & STORE_SET_ATIME) != 0) {
        r.atime_ns = c->atime_ns;
    }
    if ((c->set_mask & STORE_SET_MTIME) != 0) {
        r.mtime_ns = c->mtime_ns;
    }
    modified(x, &r);
    free(buf);
    x->ino = c->ino;
    store__notify(x, c->ino, 0, NULL, false);
    return 0;
}

/* ---- removal ---- */

/* The inode t changed by a name added or removed: its ctime (nlink
 * changed with it). */
void store__touch_names(struct apply_ctx* x, struct entry* t)
{
    struct store_rec r;
    store__rec_from_entry(t, &r);
    modified(x, &r);
}

void store__remove_name(struct apply_ctx* x, struct entry* e)
{
    struct store_state* s = &x->st->s;
    if (e->type == STORE_LINK) {
        /* a name entry: the name goes, the inode stays with one less */
        struct entry* t = store__find(s, e->target);
        store__commit_del(x, e);
        if (t != NULL) {
            store__touch_names(x, t);
        }
        return;
    }
    struct entry* l = store__link_next(s, e->ino, 0);
    if (l == NULL) {
        store__commit_del(x, e);
        return;
    }
    /* The primary name of an inode with others: the inode moves to its
     * oldest other name (the lowest name entry ino), whose entry goes. */
    char name[STORE_NAME_LIMIT + 1];
    uint64_t parent = l->parent;
    memcpy(name, entry_name(l), l->name_len + 1u);
    store__commit_del(x, l);
    struct store_rec r;
    store__rec_from_entry(e, &r);
    r.parent = parent;
    r.name = name;
    r.name_len = (uint16_t)strlen(name);
    modified(x, &r);
}

static int op_remove(struct apply_ctx* x)
{
    struct entry* d;
    const struct store_cmd* c = x->c;
    int rv = check_dirent(x->st, c->parent, c->name, &d);
    if (rv != 0) {
        return rv;
    }
    struct entry* e = child(d, c->name);
    if (e == NULL) {
        return -ENOENT;
    }
    if (c->op == STORE_OP_UNLINK && e->type == STORE_DIR) {
        return -EISDIR;
    }
    if (c->op == STORE_OP_RMDIR && e->type != STORE_DIR) {
        return -ENOTDIR;
    }
    if (e->nkids != 0) {
        return -ENOTEMPTY;
    }
    struct entry* t = store__resolve(&x->st->s, e);
    uint64_t ino = t->ino;
    bool stays = t != e || t->nlinks > 0; /* the inode has other names */
    store__remove_name(x, e);
    store__touch_dir(x, d);
    store__notify(x, ino, d->ino, c->name, true);
    if (stays) {
        store__notify(x, ino, 0, NULL, false); /* its nlink and ctime */
    }
    store__notify(x, d->ino, 0, NULL, false);
    return 0;
}

/* STORE_OP_LINK: a new name (parent, name) for the inode c->ino. The
 * name is a name entry (STORE_LINK) whose content is the inode's ino; the
 * inode keeps its primary name and gets a new ctime. */
static int op_link(struct apply_ctx* x)
{
    struct entry* d;
    struct store* st = x->st;
    const struct store_cmd* c = x->c;
    struct entry* t = store__find(&st->s, c->ino);
    if (t == NULL || t->type == STORE_LINK) {
        return -ENOENT;
    }
    int rv = check_new_dirent(x, &d);
    if (rv != 0) {
        return rv;
    }
    if (t->type == STORE_DIR) {
        return -EPERM; /* link(2) of a directory */
    }
    if (t->nlinks >= STORE_NLINK_MAX - 1) {
        return -EMLINK;
    }
    rv = check_path(st, d, c->name);
    if (rv == 0) {
        rv = check_quota(x, 0, STORE_LINK_LEN);
    }
    if (rv != 0) {
        return rv;
    }
    uint8_t target[STORE_LINK_LEN];
    put_le64(target, t->ino);
    struct store_rec r;
    new_rec(x, d, STORE_LINK, target, STORE_LINK_LEN, &r);
    r.uid = t->uid;
    r.gid = t->gid;
    st->s.next_ino++;
    store__commit_put(x, &r);
    store__touch_names(x, t);
    store__touch_dir(x, d);
    x->ino = t->ino;
    store__notify(x, t->ino, d->ino, c->name, false);
    store__notify(x, t->ino, 0, NULL, false);
    store__notify(x, d->ino, 0, NULL, false);
    return 0;
}

/* ---- rename ---- */

/* Is `ino` the directory `anc` or inside it? */
static bool inside(struct store* st, uint64_t ino, const struct entry* anc)
{
    const struct entry* e = store__find(&st->s, ino);
    while (e != NULL) {
        if (e == anc) {
            return true;
        }
        if (e == st->s.root) {
            return false;
        }
        e = store__find(&st->s, e->parent);
    }
    return false;
}

struct mv {
    struct entry *sd, *dd; /* source and destination dirs */
    struct entry *src, *dst;
    struct entry *rs, *rd; /* what src and dst name (store__resolve) */
};

static int rename_check(struct apply_ctx* x, struct mv* m)
{
    struct store* st = x->st;
    const struct store_cmd* c = x->c;
    uint32_t f = c->flags;
    int rv = check_dirent(st, c->parent, c->name, &m->sd);
    if (rv == 0) {
        rv = check_dirent(st, c->new_parent, c->new_name, &m->dd);
    }
    if (rv == 0 && (f & STORE_NOREPLACE) && (f & STORE_EXCHANGE)) {
        rv = -EINVAL;
    }
    if (rv != 0) {
        return rv;
    }
    m->src = child(m->sd, c->name);
    m->dst = child(m->dd, c->new_name);
    if (m->src == NULL || ((f & STORE_EXCHANGE) && m->dst == NULL)) {
        return -ENOENT;
    }
    m->rs = store__resolve(&st->s, m->src);
    m->rd = store__resolve(&st->s, m->dst);
    if ((f & STORE_WITH_DATA) != 0) {
        /* the content of the file it renames: that file, no exchange */
        if ((f & STORE_EXCHANGE) != 0 || m->rs->ino != c->ino ||
            m->rs->type != STORE_FILE) {
            return -EINVAL;
        }
        rv = check_content(x, m->rs->size);
        if (rv == 0 && m->dst != NULL && m->rd != m->rs &&
            m->dst->type == STORE_FILE && m->dst->nlinks == 0) {
            /* the replaced file's bytes are freed by the same entry */
            rv = check_quota(x, m->rs->size + m->dst->size, c->data_len);
        }
        if (rv != 0) {
            return rv;
        }
    }
    if ((f & STORE_NOREPLACE) &&
        (m->dst != NULL || store__resv_blocks(x, c->new_parent, c->new_name))) {
        return -EEXIST;
    }
    if (m->src == m->dst || m->rs == m->rd) {
        return 0; /* POSIX: two names of one file: nothing is done */
    }
    if (m->src->type == STORE_DIR && inside(st, m->dd->ino, m->src)) {
        return -EINVAL;
    }
    if ((f & STORE_EXCHANGE) != 0) {
        if (m->dst->type == STORE_DIR && inside(st, m->sd->ino, m->dst)) {
            return -EINVAL;
        }
        rv = check_path(st, m->sd, c->name);
    } else if (m->dst != NULL) {
        if (m->src->type != STORE_DIR && m->dst->type == STORE_DIR) {
            return -EISDIR;
        }
        if (m->src->type == STORE_DIR && m->dst->type != STORE_DIR) {
            return -ENOTDIR;
        }
        if (m->dst->nkids != 0) {
            return -ENOTEMPTY;
        }
    }
    return rv != 0 ? rv : check_path(st, m->dd, c->new_name);
}

/* A RENAME with data of a name entry, or of a name of the same file as
 * the destination: the file's content, as a WRITE. */
static void write_with_rename(struct apply_ctx* x, struct entry* t)
{
    struct store_rec r;
    store__rec_from_entry(t, &r);
    set_content(x->c, &r);
    modified(x, &r);
    store__notify(x, t->ino, 0, NULL, false);
}

static void move_entry(struct apply_ctx* x,
                       struct entry* e,
                       struct entry* to,
                       const char* name)
{
    struct store_rec r;
    store__rec_from_entry(e, &r);
    if ((x->c->flags & STORE_WITH_DATA) != 0 && e->ino == x->c->ino) {
        set_content(x->c, &r);
    }
    r.parent = to->ino;
    r.name = name;
    r.name_len = (uint16_t)strlen(name);
    modified(x, &r);
}

static int op_rename(struct apply_ctx* x)
{
    struct mv m;
    const struct store_cmd* c = x->c;
    int rv = rename_check(x, &m);
    if (rv != 0) {
        return rv;
    }
    bool with_data = (c->flags & STORE_WITH_DATA) != 0;
    if (m.src == m.dst || m.rs == m.rd) {
        if (with_data) {
            write_with_rename(x, m.rs);
            x->ino = m.rs->ino;
        }
        return 0;
    }
    uint64_t src_ino = m.rs->ino, dst_ino = m.rd ? m.rd->ino : 0;
    struct entry* rs = m.rs;
    bool src_link = m.src != m.rs;
    if ((c->flags & STORE_EXCHANGE) != 0) {
        /* src takes dst's name (dst detached), then dst takes src's. */
        move_entry(x, m.src, m.dd, c->new_name);
        move_entry(x, m.dst, m.sd, c->name);
    } else {
        if (m.dst != NULL) {
            store__remove_name(x, m.dst);
        }
        move_entry(x, m.src, m.dd, c->new_name);
    }
    if (with_data && src_link) {
        write_with_rename(x, rs); /* the content goes to the file named */
    } else if (src_link) {
        store__touch_names(x, rs); /* a rename changes the file's ctime */
    }
    store__touch_dir(x, m.sd);
    if (m.dd != m.sd) {
        store__touch_dir(x, m.dd);
    }
    x->ino = src_ino;
    bool exch = (c->flags & STORE_EXCHANGE) != 0;
    store__notify(x, src_ino, c->parent, c->name, !exch);
    store__notify(x, src_ino, c->new_parent, c->new_name, false);
    if (dst_ino != 0) {
        store__notify(x, dst_ino, c->new_parent, c->new_name, !exch);
        if (exch) {
            store__notify(x, dst_ino, c->parent, c->name, false);
        }
        if (!exch && store__find(&x->st->s, dst_ino) != NULL) {
            store__notify(x, dst_ino, 0, NULL, false); /* one name less */
        }
    }
    store__notify(x, c->parent, 0, NULL, false);
    if (c->new_parent != c->parent) {
        store__notify(x, c->new_parent, 0, NULL, false);
    }
    return 0;
}

/* ---- name reservations (resv.c) ---- */

/* RESERVE: a holder token, a ttl in range, then the checks of a CREATE of
 * that name. */
static int op_reserve(struct apply_ctx* x)
{
    struct entry* d;
    const struct store_cmd* c = x->c;
    if (c->ino == 0 || c->size < (uint64_t)STORE_RESV_TTL_MIN ||
        c->size > (uint64_t)STORE_RESV_TTL_MAX) {
        return -EINVAL;
    }
    int rv = check_dirent(x->st, c->parent, c->name, &d);
    if (rv == 0) {
        rv = check_path(x->st, d, c->name);
    }
    return rv != 0 ? rv : store__op_reserve(x, d);
}

/* ---- entry points ---- */

static int run(struct apply_ctx* x)
{
    switch (x->c->op) {
    case STORE_OP_CREATE:
        return op_create(x);
    case STORE_OP_MKDIR:
    case STORE_OP_SYMLINK:
        return op_mkdir_symlink(x);
    case STORE_OP_WRITE:
        return op_write(x);
    case STORE_OP_SETATTR:
        return op_setattr(x);
    case STORE_OP_UNLINK:
    case STORE_OP_RMDIR:
        return op_remove(x);
    case STORE_OP_RENAME:
        return op_rename(x);
    case STORE_OP_SNAP_CREATE:
        return store__op_snap_create(x);
    case STORE_OP_SNAP_DROP:
        return store__op_snap_drop(x);
    case STORE_OP_COMPACT:
        return store__op_compact(x);
    case STORE_OP_RESTORE:
        return store__op_restore(x);
    case STORE_OP_CANCEL:
        return 0; /* only the DEDUP record: (origin, seq) is used up */
    case STORE_OP_MKNOD:
        return op_mknod(x);
    case STORE_OP_LINK:
        return op_link(x);
    case STORE_OP_RESERVE:
        return op_reserve(x);
    case STORE_OP_RELEASE:
        return store__op_release(x);
    default:
        return -EBADMSG; /* decode admits only known ops */
    }
}

int store_apply(struct store* st,
                store_index index,
                const void* cmd,
                size_t len,
                store_change_cb cb,
                void* cb_data,
                struct store_result* res)
{
    assert(st != NULL && res != NULL);
    assert(index > st->s.applied_index);
    memset(res, 0, sizeof(*res));
    if (st->io_err != 0) {
        return -EIO;
    }
    struct store_cmd c;
    res->revision = st->s.revision;
    if (store_cmd_decode(&c, cmd, len) != 0) {
        res->err = -EBADMSG;
        st->s.applied_index = index;
        return 0;
    }
    if (store__dedup_seen(&st->s, c.origin, c.seq)) {
        res->duplicate = true;
        st->s.applied_index = index;
        return 0;
    }
    struct apply_ctx x = {.st = st,
                          .c = &c,
                          .rev = st->s.revision + 1,
                          .cb = cb,
                          .cb_data = cb_data};
    int err = run(&x);
    int rv = x.fatal;
    if (rv == 0 && c.origin != 0 && c.seq != 0) {
        /* The result, as the proposer's waiter gets it, is replicated
         * with the (origin, seq): a node that sees this command only in an
         * installed image answers its waiter from the table. */
        struct dedup_result dr = {
            .seq = c.seq,
            .revision = x.changed ? x.rev : st->s.revision,
            .ino = err == 0 ? x.ino : 0,
            .err = err,
            .flags = c.op == STORE_OP_CANCEL ? DEDUP_F_CANCEL : 0,
        };
        rv = store__pend_result(st, c.origin, &dr);
        if (rv == 0) {
            rv = store__dedup_mark(&st->s, c.origin, c.seq, &dr);
        }
    }
    if (rv != 0) {
        st->io_err = rv; /* out of memory mid-command: unusable */
        store__trace(st, STORE_TRACE_ERROR,
                     "apply of index %" PRIu64
                     " failed (%d): store stops applying",
                     index, rv);
        return rv;
    }
    assert(err == 0 || !x.changed);
    if (x.changed) {
        st->s.revision = x.rev;
        res->revision = x.rev;
    }
    res->err = err;
    res->ino = err == 0 ? x.ino : 0;
    st->s.applied_index = index;
    return 0;
}

int store_dedup_applied(const struct store* st, uint64_t origin, uint64_t seq)
{
    assert(st != NULL);
    if (!store__dedup_seen(&st->s, origin, seq)) {
        return 0;
    }
    for (size_t i = 0; i < st->s.norigins; i++) {
        const struct dedup_origin* o = &st->s.origins[i];
        if (o->origin == origin) {
            return o->high - seq <= STORE_DEDUP_WINDOW ? 1 : -1;
        }
    }
    return -1;
}

enum store_outcome store_dedup_result(const struct store* st,
                                      uint64_t origin,
                                      uint64_t seq,
                                      struct store_result* res)
{
    assert(st != NULL && res != NULL);
    memset(res, 0, sizeof(*res));
    if (!store__dedup_seen(&st->s, origin, seq)) {
        return STORE_OUTCOME_NONE;
    }
    const struct dedup_result* r = store__dedup_result(&st->s, origin, seq);
    if (r == NULL) {
        return STORE_OUTCOME_UNKNOWN;
    }
    if (r->flags & DEDUP_F_CANCEL) {
        return STORE_OUTCOME_CANCELLED;
    }
    *res = (struct store_result){
        .err = r->err, .ino = r->ino, .revision = r->revision};
    return STORE_OUTCOME_RESULT;
}

int store_apply_index(struct store* st, store_index index)
{
    assert(st != NULL && index > st->s.applied_index);
    if (st->io_err != 0) {
        return -EIO;
    }
    st->s.applied_index = index;
    return 0;
}
