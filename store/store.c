/* store.c - open/close, reads of the current state, stats, tracing. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store_internal.h"

void store_options_default(struct store_options* o)
{
    assert(o != NULL);
    memset(o, 0, sizeof(*o));
    o->file_size_max = 1u << 20;
    o->quota_bytes = 2ull << 30;
    o->name_max = 255;
    o->path_max = 4096;
    o->frame_cache_bytes = 64u << 20;
}

void store__trace(struct store* st, int level, const char* fmt, ...)
{
    const struct store_tracer* t = &st->opt.tracer;
    if (t->emit == NULL || level < t->level) {
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t->emit(t->data, level, msg);
}

static int check_options(const struct store_options* o)
{
    if (o->name_max == 0 || o->name_max > STORE_NAME_LIMIT || o->path_max < 2 ||
        o->path_max > STORE_PATH_LIMIT ||
        o->file_size_max > STORE_FILE_SIZE_LIMIT) {
        return -EINVAL;
    }
    return 0;
}

/* fsync the directory holding path (a new name must survive a crash). */
int store_open(const char* path,
               const struct store_options* o,
               struct store** out,
               struct store_recovery* rec)
{
    struct store_recovery dummy;
    assert(path != NULL && o != NULL && out != NULL);
    if (rec == NULL) {
        rec = &dummy;
    }
    memset(rec, 0, sizeof(*rec));
    int rv = check_options(o);
    if (rv != 0) {
        return rv;
    }
    struct store* st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return -ENOMEM;
    }
    st->opt = *o;
    st->path = strdup(path);
    if (st->path == NULL) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    rv = store__state_init(&st->s);
    if (rv != 0) {
        goto err_after_path;
    }
    st->cache = store__cache_new(o->frame_cache_bytes);
    if (st->cache == NULL) {
        rv = -ENOMEM;
        goto err_after_state;
    }
    bool created = true;
    st->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (st->fd < 0 && errno == EEXIST) {
        created = false;
        st->fd = open(path, O_RDWR | O_CLOEXEC);
    }
    if (st->fd < 0) {
        rv = -errno;
        goto err_after_cache;
    }
    rv = store__compact_cleanup(st);
    if (rv == 0) {
        rv = created ? util_fsync_parent(path) : store__recover(st, rec);
    }
    if (rv != 0) {
        goto err_after_open;
    }
    *out = st;
    return 0;

err_after_open:
    close(st->fd);
err_after_cache:
    store__cache_free(st->cache);
err_after_state:
    store__state_free(&st->s);
err_after_path:
    free(st->path);
err_after_alloc:
    free(st);
    return rv;
}

void store_close(struct store* st)
{
    if (st == NULL) {
        return;
    }
    assert(!st->compacting); /* store_compact_abort first */
    store__views_free(st->views);
    close(st->fd);
    store__cache_free(st->cache);
    store__state_free(&st->s);
    free(st->pend.buf);
    for (size_t i = 0; i < st->ninflight; i++) {
        free(st->inflight[i].raw);
    }
    free(st->inflight);
    free(st->path);
    free(st);
}

/* ---- reads ---- */

static int path_of(struct store* st,
                   const struct entry* e,
                   char* buf,
                   size_t cap);

int store_getattr(struct store* st, uint64_t ino, struct store_attr* a)
{
    assert(st != NULL && a != NULL);
    const struct entry* e = store__find(&st->s, ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT; /* a name entry is no inode */
    }
    store__attr(e, a);
    return 0;
}

int store__lookup_kind(uint8_t dir_type,
                       const char* name,
                       uint32_t name_max,
                       size_t* len)
{
    if (dir_type != STORE_DIR) {
        return -ENOTDIR;
    }
    *len = strlen(name);
    if (*len > name_max) {
        return -ENAMETOOLONG;
    }
    if (strcmp(name, ".") == 0) {
        return STORE_LOOKUP_SELF;
    }
    if (strcmp(name, "..") == 0) {
        return STORE_LOOKUP_PARENT;
    }
    return STORE_LOOKUP_CHILD;
}

int store_lookup(struct store* st,
                 uint64_t parent,
                 const char* name,
                 struct store_attr* a)
{
    assert(st != NULL && name != NULL && a != NULL);
    const struct entry* d = store__find(&st->s, parent);
    if (d == NULL) {
        return -ENOENT;
    }
    size_t len;
    int kind = store__lookup_kind(d->type, name, st->opt.name_max, &len);
    if (kind < 0) {
        return kind;
    }
    const struct entry* e = d;
    if (kind == STORE_LOOKUP_PARENT && d != st->s.root) {
        e = store__find(&st->s, d->parent);
    } else if (kind == STORE_LOOKUP_CHILD) {
        e = store__resolve(&st->s, store__child(d, name, len));
    }
    if (e == NULL) {
        return -ENOENT;
    }
    store__attr(e, a);
    return 0;
}

int store_read(struct store* st, uint64_t ino, const void** data, size_t* len)
{
    assert(st != NULL && data != NULL && len != NULL);
    const struct entry* e = store__find(&st->s, ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT;
    }
    if (e->type == STORE_DIR) {
        return -EISDIR;
    }
    *data = entry_content(e);
    *len = e->size;
    return 0;
}

int store_readdir(struct store* st,
                  uint64_t dir,
                  const char* after,
                  store_readdir_cb cb,
                  void* data)
{
    assert(st != NULL && cb != NULL);
    const struct entry* d = store__find(&st->s, dir);
    if (d == NULL) {
        return -ENOENT;
    }
    if (d->type != STORE_DIR) {
        return -ENOTDIR;
    }
    if (after != NULL && after[0] == 0) {
        after = NULL;
    }
    const struct entry* e =
        store__child_after(d, after, after ? strlen(after) : 0);
    for (uint32_t n = 0; e != NULL && n < d->nkids; n++) {
        struct store_attr a;
        store__attr(store__resolve(&st->s, (struct entry*)e), &a);
        int rv = cb(data, entry_name(e), &a);
        if (rv != 0) {
            return rv;
        }
        e = store__child_after(d, entry_name(e), e->name_len);
    }
    return 0;
}

int store_path(struct store* st, uint64_t ino, char* buf, size_t cap)
{
    assert(st != NULL && buf != NULL);
    const struct entry* e = store__find(&st->s, ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT;
    }
    return path_of(st, e, buf, cap);
}

static int path_of(struct store* st,
                   const struct entry* e,
                   char* buf,
                   size_t cap)
{
    size_t len = store__path_len(&st->s, e);
    if (len + 1 > cap) {
        return -ENAMETOOLONG;
    }
    buf[len] = 0;
    if (e == st->s.root) {
        buf[0] = '/';
        return 0;
    }
    size_t pos = len;
    while (e != st->s.root) {
        pos -= e->name_len;
        memcpy(buf + pos, entry_name(e), e->name_len);
        buf[--pos] = '/';
        e = store__find(&st->s, e->parent);
    }
    assert(pos == 0);
    return 0;
}

int store_name(struct store* st,
               uint64_t ino,
               uint64_t* parent,
               char* buf,
               size_t cap)
{
    assert(st != NULL && parent != NULL && buf != NULL);
    const struct entry* e = store__find(&st->s, ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT;
    }
    if (e == st->s.root) {
        return -EINVAL;
    }
    if ((size_t)e->name_len + 1 > cap) {
        return -ENAMETOOLONG;
    }
    memcpy(buf, entry_name(e), e->name_len);
    buf[e->name_len] = 0;
    *parent = e->parent;
    return 0;
}

int store_names(struct store* st,
                uint64_t ino,
                char* buf,
                size_t cap,
                store_names_cb cb,
                void* data)
{
    assert(st != NULL && cb != NULL);
    const struct entry* e = store__find(&st->s, ino);
    if (e == NULL || e->type == STORE_LINK) {
        return -ENOENT;
    }
    if (e == st->s.root) {
        return -EINVAL;
    }
    uint64_t after = 0;
    while (e != NULL) {
        char name[STORE_NAME_LIMIT + 1];
        memcpy(name, entry_name(e), e->name_len);
        name[e->name_len] = 0;
        int rv = buf != NULL ? path_of(st, e, buf, cap) : 0;
        if (rv == 0) {
            rv = cb(data, e->parent, name, buf);
        }
        if (rv != 0) {
            return rv;
        }
        e = store__link_next(&st->s, ino, after);
        after = e != NULL ? e->ino : 0;
    }
    return 0;
}

void store_get_stats(const struct store* st, struct store_stats* s)
{
    assert(st != NULL && s != NULL);
    memset(s, 0, sizeof(*s));
    s->revision = st->s.revision;
    s->compact_revision = store__hist_oldest(st);
    s->applied_index = st->s.applied_index;
    s->durable_index = st->durable_index;
    s->keys = st->s.nentries - 1; /* the root is not a key */
    s->live_bytes = st->s.live_bytes;
    s->quota_bytes = st->opt.quota_bytes;
    s->db_bytes = st->durable_off;
    s->frames = st->frames;
    s->payload_raw_bytes = st->payload_raw;
    s->payload_stored_bytes = st->payload_stored;
    s->origins = st->s.norigins;
}

store_index store_applied_index(const struct store* st)
{
    return st->s.applied_index;
}

store_index store_durable_index(const struct store* st)
{
    return st->durable_index;
}
