/* store_env.h - shared by the store's command tests (test_store.c,
 * test_store_updates.c): a store in a temp dir, commands applied through
 * store_apply with a change log, and short helpers for each op. Static
 * inline: each test uses what it needs. */
#ifndef QFS_TEST_STORE_ENV_H
#define QFS_TEST_STORE_ENV_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../store/store.h"
#include "../../store/store_history.h"
#include "check.h"

struct env {
    struct store* st;
    char dir[64];
    char path[96];
    store_index idx;
    uint64_t seq;
    int64_t now;
    int changes;
    struct store_change last_removed; /* name not kept */
};

static inline void env_open(struct env* e, const struct store_options* o)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/qfs-store-XXXXXX");
    CHECK(mkdtemp(e->dir) != NULL);
    snprintf(e->path, sizeof(e->path), "%s/db", e->dir);
    struct store_options def;
    store_options_default(&def);
    CHECK_EQ(store_open(e->path, o ? o : &def, &e->st, NULL), 0);
    e->now = 1000;
}

static inline void env_close(struct env* e)
{
    store_close(e->st);
    unlink(e->path);
    rmdir(e->dir);
}

/* Seals what apply queued into a frame and writes it to the db file. */
static inline void flush_frame(struct env* e)
{
    struct store_frame* f = NULL;
    CHECK_EQ(store_frame_seal(e->st, &f), 0);
    CHECK(f != NULL);
    CHECK_EQ(store_frame_write(e->st, f), 0);
    store_frame_done(e->st, f, 0);
}

/* Writes what is queued, closes the store and opens its db file again
 * with default options: the state must replay from the file. */
static inline void reopen(struct env* e)
{
    flush_frame(e);
    store_close(e->st);
    struct store_options def;
    store_options_default(&def);
    CHECK_EQ(store_open(e->path, &def, &e->st, NULL), 0);
}

static inline void on_change(void* data, const struct store_change* c)
{
    struct env* e = data;
    CHECK(c->ino != 0 || c->parent != 0);
    CHECK(c->parent == 0 || c->name != NULL);
    if (c->removed) {
        e->last_removed = *c;
        e->last_removed.name = NULL;
    }
    e->changes++;
}

static inline struct store_result run(struct env* e, struct store_cmd* c)
{
    static uint8_t buf[1 << 21];
    c->origin = 7;
    c->seq = ++e->seq;
    c->now_ns = ++e->now;
    long n = store_cmd_encode(c, buf, sizeof(buf));
    CHECK(n > 0);
    struct store_result res;
    CHECK_EQ(store_apply(e->st, ++e->idx, buf, (size_t)n, on_change, e, &res),
             0);
    CHECK(!res.duplicate);
    return res;
}

static inline int mk(struct env* e,
                     uint8_t op,
                     uint64_t parent,
                     const char* name,
                     uint32_t flags,
                     uint64_t* ino)
{
    struct store_cmd c = {.op = op,
                          .parent = parent,
                          .name = name,
                          .flags = flags,
                          .mode = 0644,
                          .uid = 1,
                          .gid = 2};
    if (op == STORE_OP_SYMLINK) {
        c.data = "target";
        c.data_len = 6;
    }
    struct store_result r = run(e, &c);
    if (ino != NULL) {
        *ino = r.ino;
    }
    return r.err;
}

static inline int wr(struct env* e, uint64_t ino, const char* data, size_t len)
{
    struct store_cmd c = {
        .op = STORE_OP_WRITE, .ino = ino, .data = data, .data_len = len};
    return run(e, &c).err;
}

static inline int rm(struct env* e,
                     uint8_t op,
                     uint64_t parent,
                     const char* name)
{
    struct store_cmd c = {.op = op, .parent = parent, .name = name};
    return run(e, &c).err;
}

static inline int mv(struct env* e,
                     uint64_t p,
                     const char* n,
                     uint64_t np,
                     const char* nn,
                     uint32_t flags)
{
    struct store_cmd c = {.op = STORE_OP_RENAME,
                          .parent = p,
                          .name = n,
                          .new_parent = np,
                          .new_name = nn,
                          .flags = flags};
    return run(e, &c).err;
}

static inline uint64_t ino_of(struct env* e, uint64_t parent, const char* name)
{
    struct store_attr a;
    int rv = store_lookup(e->st, parent, name, &a);
    return rv == 0 ? a.ino : 0;
}

#endif
