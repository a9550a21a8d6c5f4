/* test_store_links.c - hard links in the store (STORE_OP_LINK): apply and
 * errors, nlink and ctime, removal of the primary name (the inode moves to
 * its oldest other name), rename over and onto names of one file, the
 * index rebuilt from the db file (replay, compaction, image install),
 * views of past revisions, restore of the whole tree and of a subtree, and
 * store_names. docs/consistency.md, "Hard links". */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../store/store_compact.h"
#include "../../store/store_history.h"
#include "check.h"
#include "history_env.h"

/* ---- helpers ---- */

static uint64_t mkdir_(struct env* e, uint64_t parent, const char* name)
{
    struct store_cmd c = {
        .op = STORE_OP_MKDIR, .parent = parent, .name = name, .mode = 0755};
    struct store_result r = run(e, &c);
    CHECK_EQ(r.err, 0);
    return r.ino;
}

static uint64_t file(struct env* e,
                     uint64_t parent,
                     const char* name,
                     const char* data)
{
    struct store_cmd c = {.op = STORE_OP_CREATE,
                          .flags = STORE_WITH_DATA | STORE_EXCL,
                          .parent = parent,
                          .name = name,
                          .mode = 0644,
                          .uid = 5,
                          .gid = 6,
                          .data = data,
                          .data_len = strlen(data)};
    struct store_result r = run(e, &c);
    CHECK_EQ(r.err, 0);
    return r.ino;
}

static int ln(struct env* e, uint64_t ino, uint64_t parent, const char* name)
{
    struct store_cmd c = {
        .op = STORE_OP_LINK, .ino = ino, .parent = parent, .name = name};
    struct store_result r = run(e, &c);
    if (r.err == 0) {
        CHECK_EQ(r.ino, ino);
    }
    return r.err;
}

static int unlink_(struct env* e, uint64_t parent, const char* name)
{
    struct store_cmd c = {
        .op = STORE_OP_UNLINK, .parent = parent, .name = name};
    return run(e, &c).err;
}

static int rename_(struct env* e,
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

static int rm(struct env* e, uint8_t op, uint64_t parent, const char* n)
{
    struct store_cmd c = {.op = op, .parent = parent, .name = n};
    return run(e, &c).err;
}

static int write_(struct env* e, uint64_t ino, const char* data)
{
    struct store_cmd c = {.op = STORE_OP_WRITE,
                          .ino = ino,
                          .data = data,
                          .data_len = strlen(data)};
    return run(e, &c).err;
}

static int restore_(struct env* e, const char* snap, const char* path)
{
    struct store_cmd c = {
        .op = STORE_OP_RESTORE, .name = snap, .new_name = path};
    return run(e, &c).err;
}

/* The attributes under parent/name: 0 if absent. */
static uint64_t look(struct env* e,
                     uint64_t parent,
                     const char* name,
                     struct store_attr* a)
{
    struct store_attr tmp;
    if (a == NULL) {
        a = &tmp;
    }
    return store_lookup(e->st, parent, name, a) == 0 ? a->ino : 0;
}

static void content_is(struct env* e, uint64_t ino, const char* want)
{
    const void* d;
    size_t len;
    CHECK_EQ(store_read(e->st, ino, &d, &len), 0);
    CHECK_EQ(len, strlen(want));
    CHECK(memcmp(d, want, len) == 0);
}

static uint32_t nlink(struct env* e, uint64_t ino)
{
    struct store_attr a;
    CHECK_EQ(store_getattr(e->st, ino, &a), 0);
    return a.nlink;
}

struct names {
    char all[512];
};

static int names_cb(void* data,
                    uint64_t parent,
                    const char* name,
                    const char* path)
{
    struct names* n = data;
    (void)parent;
    (void)name;
    strcat(n->all, path);
    strcat(n->all, ",");
    return 0;
}

static const char* names_of(struct env* e, uint64_t ino, struct names* n)
{
    char buf[256];
    n->all[0] = 0;
    CHECK_EQ(store_names(e->st, ino, buf, sizeof(buf), names_cb, n), 0);
    return n->all;
}

/* A tree without the per-change fields (a restore makes new revisions):
 * paths, inos, types, modes, owners, nlink and contents. */
static void tree_same_files(const struct tree* x, const struct tree* y)
{
    CHECK_EQ(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        if (strcmp(x->v[i].path, y->v[i].path) != 0) {
            fprintf(stderr, "path %s != %s\n", x->v[i].path, y->v[i].path);
            CHECK(false);
        }
        CHECK_EQ(x->v[i].a.type, y->v[i].a.type);
        CHECK_EQ(x->v[i].a.mode, y->v[i].a.mode);
        CHECK_EQ(x->v[i].a.nlink, y->v[i].a.nlink);
        CHECK_EQ(x->v[i].len, y->v[i].len);
        CHECK(x->v[i].len == 0 ||
              memcmp(x->v[i].data, y->v[i].data, x->v[i].len) == 0);
    }
}

static void live(struct env* e, struct tree* t)
{
    struct src s = {.st = e->st};
    capture(&s, t);
}

/* ---- tests ---- */

static void test_link_apply(void)
{
    struct env e;
    env_open(&e, "links");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t a = file(&e, 1, "a", "v1");
    struct store_attr before, at;
    CHECK_EQ(store_getattr(e.st, a, &before), 0);
    CHECK_EQ(before.nlink, 1);

    uint64_t rev = revision(&e);
    CHECK_EQ(ln(&e, a, d, "b"), 0);
    CHECK_EQ(revision(&e), rev + 1); /* one revision */
    CHECK_EQ(look(&e, d, "b", &at), a);
    CHECK_EQ(at.nlink, 2);
    CHECK_EQ(at.type, STORE_FILE);
    CHECK(at.ctime_ns > before.ctime_ns); /* the inode's ctime */
    CHECK_EQ(at.mtime_ns, before.mtime_ns);
    CHECK_EQ(at.uid, 5);
    CHECK_EQ(nlink(&e, a), 2);
    content_is(&e, a, "v1");

    /* errors (nothing changes) */
    rev = revision(&e);
    CHECK_EQ(ln(&e, a, d, "b"), -EEXIST);
    CHECK_EQ(ln(&e, a, 1, "a"), -EEXIST);
    CHECK_EQ(ln(&e, d, 1, "dd"), -EPERM); /* a directory */
    CHECK_EQ(ln(&e, 1, 1, "root"), -EPERM);
    CHECK_EQ(ln(&e, 999, 1, "x"), -ENOENT); /* no such inode */
    CHECK_EQ(ln(&e, a, 999, "x"), -ENOENT); /* no such directory */
    CHECK_EQ(ln(&e, a, a, "x"), -ENOTDIR);
    CHECK_EQ(ln(&e, a, 1, ".snapshots"), -EPERM);
    CHECK_EQ(ln(&e, a, 1, "x/y"), -EINVAL);
    CHECK_EQ(revision(&e), rev);

    /* one inode: a write and a chmod through either name show on both */
    CHECK_EQ(write_(&e, look(&e, d, "b", NULL), "v2 longer"), 0);
    content_is(&e, look(&e, 1, "a", NULL), "v2 longer");
    struct store_cmd c = {.op = STORE_OP_SETATTR,
                          .ino = a,
                          .set_mask = STORE_SET_MODE,
                          .mode = 0600};
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(look(&e, d, "b", &at), a);
    CHECK_EQ(at.mode, 0600);

    /* readdir shows the name with the inode's attributes */
    static struct kids k;
    k.n = 0;
    CHECK_EQ(store_readdir(e.st, d, NULL, kid_cb, &k), 0);
    CHECK_EQ(k.n, 1);
    CHECK(strcmp(k.names[0], "b") == 0);
    CHECK_EQ(k.inos[0], a);

    /* symlinks and special files too; a third name */
    struct store_cmd s = {.op = STORE_OP_SYMLINK,
                          .parent = 1,
                          .name = "sl",
                          .data = "target",
                          .data_len = 6};
    uint64_t sl = run(&e, &s).ino;
    CHECK_EQ(ln(&e, sl, d, "sl2"), 0);
    CHECK_EQ(look(&e, d, "sl2", &at), sl);
    CHECK_EQ(at.type, STORE_SYMLINK);
    struct store_cmd f = {
        .op = STORE_OP_MKNOD, .type = STORE_FIFO, .parent = 1, .name = "fifo"};
    uint64_t fifo = run(&e, &f).ino;
    CHECK_EQ(ln(&e, fifo, d, "fifo2"), 0);
    CHECK_EQ(nlink(&e, fifo), 2);
    CHECK_EQ(ln(&e, a, 1, "c"), 0);
    CHECK_EQ(nlink(&e, a), 3);
    struct names n;
    CHECK(strcmp(names_of(&e, a, &n), "/a,/d/b,/c,") == 0);

    /* a non-empty directory holding only a name entry stays non-empty */
    CHECK_EQ(rm(&e, STORE_OP_RMDIR, 1, "d"), -ENOTEMPTY);
    env_close(&e);
}

static void test_unlink_names(void)
{
    struct env e;
    env_open(&e, "links");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t a = file(&e, 1, "a", "data");
    CHECK_EQ(ln(&e, a, d, "b"), 0);
    CHECK_EQ(ln(&e, a, 1, "c"), 0);
    struct store_attr at;
    CHECK_EQ(store_getattr(e.st, a, &at), 0);
    int64_t ctime = at.ctime_ns;

    /* unlink the primary name: the inode moves to its oldest other name
     * (d/b, linked first), in one revision; content and ino kept */
    uint64_t rev = revision(&e);
    CHECK_EQ(unlink_(&e, 1, "a"), 0);
    CHECK_EQ(revision(&e), rev + 1);
    CHECK_EQ(look(&e, 1, "a", NULL), 0);
    CHECK_EQ(look(&e, d, "b", &at), a);
    CHECK_EQ(at.nlink, 2);
    CHECK(at.ctime_ns > ctime);
    content_is(&e, a, "data");
    uint64_t parent;
    char name[64];
    CHECK_EQ(store_name(e.st, a, &parent, name, sizeof(name)), 0);
    CHECK_EQ(parent, d);
    CHECK(strcmp(name, "b") == 0);
    struct names n;
    CHECK(strcmp(names_of(&e, a, &n), "/d/b,/c,") == 0);

    /* unlink a name entry: the primary stays */
    CHECK_EQ(unlink_(&e, 1, "c"), 0);
    CHECK_EQ(nlink(&e, a), 1);
    CHECK(strcmp(names_of(&e, a, &n), "/d/b,") == 0);
    /* the last name: the file goes */
    CHECK_EQ(unlink_(&e, d, "b"), 0);
    struct store_attr gone;
    CHECK_EQ(store_getattr(e.st, a, &gone), -ENOENT);
    struct store_stats s;
    store_get_stats(e.st, &s);
    CHECK_EQ(s.keys, 1); /* d only */
    CHECK_EQ(s.live_bytes, 0);
    env_close(&e);
}

static void test_rename_names(void)
{
    struct env e;
    env_open(&e, "links");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t a = file(&e, 1, "a", "A");
    uint64_t x = file(&e, 1, "x", "X");
    CHECK_EQ(ln(&e, a, d, "b"), 0);

    /* rename of a name onto another name of the same file: nothing */
    uint64_t rev = revision(&e);
    CHECK_EQ(rename_(&e, 1, "a", d, "b", 0), 0);
    CHECK_EQ(rename_(&e, d, "b", 1, "a", 0), 0);
    CHECK_EQ(rename_(&e, d, "b", 1, "a", STORE_EXCHANGE), 0);
    CHECK_EQ(revision(&e), rev);
    CHECK_EQ(look(&e, 1, "a", NULL), a);
    CHECK_EQ(look(&e, d, "b", NULL), a);
    CHECK_EQ(rename_(&e, d, "b", 1, "a", STORE_NOREPLACE), -EEXIST);

    /* rename of a name entry */
    CHECK_EQ(rename_(&e, d, "b", 1, "b2", 0), 0);
    CHECK_EQ(look(&e, 1, "b2", NULL), a);
    CHECK_EQ(look(&e, d, "b", NULL), 0);
    CHECK_EQ(nlink(&e, a), 2);

    /* rename over the primary name of a file with another name: the file
     * stays, under its other name */
    CHECK_EQ(rename_(&e, 1, "x", 1, "a", 0), 0);
    CHECK_EQ(look(&e, 1, "a", NULL), x);
    CHECK_EQ(look(&e, 1, "b2", NULL), a);
    CHECK_EQ(nlink(&e, a), 1);
    content_is(&e, a, "A");

    /* rename over a name entry: that name goes, the file keeps the other */
    CHECK_EQ(ln(&e, a, d, "n"), 0);
    uint64_t y = file(&e, 1, "y", "Y");
    CHECK_EQ(rename_(&e, 1, "y", d, "n", 0), 0);
    CHECK_EQ(look(&e, d, "n", NULL), y);
    CHECK_EQ(nlink(&e, a), 1);

    /* a name entry renamed over a regular file; and exchange */
    CHECK_EQ(ln(&e, a, d, "m"), 0);
    CHECK_EQ(rename_(&e, d, "m", 1, "a", 0), 0); /* replaces x */
    CHECK_EQ(look(&e, 1, "a", NULL), a);
    struct store_attr gone;
    CHECK_EQ(store_getattr(e.st, x, &gone), -ENOENT);
    CHECK_EQ(rename_(&e, 1, "a", d, "n", STORE_EXCHANGE), 0);
    CHECK_EQ(look(&e, d, "n", NULL), a);
    CHECK_EQ(look(&e, 1, "a", NULL), y);
    CHECK_EQ(nlink(&e, a), 2);

    /* write-temp-then-rename through a name entry writes the file */
    struct store_cmd c = {.op = STORE_OP_RENAME,
                          .flags = STORE_WITH_DATA,
                          .parent = d,
                          .name = "n",
                          .new_parent = 1,
                          .new_name = "moved",
                          .ino = a,
                          .data = "new",
                          .data_len = 3};
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(look(&e, 1, "moved", NULL), a);
    content_is(&e, a, "new");
    env_close(&e);
}

/* The index is derived: replay, compaction and image install give the
 * same tree (and nlink) as the live one. */
static void test_reload(void)
{
    struct env e;
    env_open(&e, "links");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t z = mkdir_(&e, d, "z");
    uint64_t a = file(&e, z, "a", "deep file"); /* deeper than its names */
    CHECK_EQ(ln(&e, a, 1, "b"), 0);
    CHECK_EQ(ln(&e, a, d, "c"), 0);
    CHECK_EQ(ln(&e, a, 1, "e"), 0);
    CHECK_EQ(unlink_(&e, z, "a"), 0); /* moved to /b */
    uint64_t f = file(&e, 1, "f", "other");
    CHECK_EQ(ln(&e, f, z, "f2"), 0);
    CHECK_EQ(write_(&e, a, "changed"), 0);
    struct tree want, got;
    live(&e, &want);

    flush(&e);
    env_reopen(&e);
    live(&e, &got);
    tree_eq(&want, &got);
    tree_free(&got);
    CHECK_EQ(nlink(&e, a), 3);
    struct names n;
    CHECK(strcmp(names_of(&e, a, &n), "/b,/d/c,/e,") == 0);

    /* unlink of the primary after a reload: the index was rebuilt */
    CHECK_EQ(unlink_(&e, 1, "b"), 0);
    CHECK(strcmp(names_of(&e, a, &n), "/d/c,/e,") == 0);
    tree_free(&want);
    live(&e, &want);

    struct store_cmd cc = {.op = STORE_OP_COMPACT, .size = revision(&e)};
    CHECK_EQ(run(&e, &cc).err, 0);
    compact_now(&e);
    env_reopen(&e);
    live(&e, &got);
    tree_eq(&want, &got);
    tree_free(&got);

    /* image install into a wiped store (links put before their target:
     * the image is breadth-first) */
    void* img;
    size_t len;
    CHECK_EQ(store_image_build(e.st, &img, &len), 0);
    struct env w;
    env_open(&w, "links-wiped");
    CHECK_EQ(store_image_install(w.st, img, len), 0);
    w.idx = store_applied_index(w.st);
    w.seq = e.seq;
    live(&w, &got);
    tree_eq(&want, &got);
    tree_free(&got);
    CHECK(strcmp(names_of(&w, a, &n), "/d/c,/e,") == 0);
    CHECK_EQ(unlink_(&w, d, "c"), 0); /* and it works from there */
    CHECK(strcmp(names_of(&w, a, &n), "/e,") == 0);
    flush(&w);
    env_reopen(&w); /* the BASE frames replay too */
    CHECK(strcmp(names_of(&w, a, &n), "/e,") == 0);
    env_close(&w);
    /* and over a lagging store that has other state */
    CHECK_EQ(ln(&e, f, 1, "lag"), 0);
    CHECK_EQ(store_image_install(e.st, img, len), 0);
    live(&e, &got);
    tree_eq(&want, &got);
    tree_free(&got);
    free(img);
    tree_free(&want);
    env_close(&e);
}

/* Views at past revisions show every name with the inode's state and
 * nlink then. */
static void test_views(void)
{
    struct env e;
    env_open(&e, "links");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t a = file(&e, 1, "a", "one");
    uint64_t r0 = revision(&e);
    CHECK_EQ(ln(&e, a, d, "b"), 0);
    uint64_t r1 = revision(&e);
    struct tree t1;
    live(&e, &t1);
    CHECK_EQ(write_(&e, a, "two"), 0);
    CHECK_EQ(unlink_(&e, 1, "a"), 0);
    CHECK_EQ(ln(&e, a, 1, "c"), 0);
    uint64_t r2 = revision(&e);
    struct tree t2;
    live(&e, &t2);
    CHECK_EQ(unlink_(&e, 1, "c"), 0);
    CHECK_EQ(unlink_(&e, d, "b"), 0);

    for (int pass = 0; pass < 2; pass++) {
        struct store_view* v;
        struct store_attr at;
        CHECK_EQ(store_view_open(e.st, r1, &v), 0);
        struct src s = {.st = e.st, .v = v};
        struct tree got;
        capture(&s, &got);
        tree_eq(&t1, &got);
        tree_free(&got);
        CHECK_EQ(store_view_lookup(v, d, "b", &at), 0);
        CHECK_EQ(at.ino, a);
        CHECK_EQ(at.nlink, 2);
        store_view_release(v);
        CHECK_EQ(store_view_open(e.st, r2, &v), 0);
        s.v = v;
        capture(&s, &got);
        tree_eq(&t2, &got);
        tree_free(&got);
        store_view_release(v);
        CHECK_EQ(store_view_open(e.st, r0, &v), 0);
        CHECK_EQ(store_view_lookup(v, a, "x", &at), -ENOTDIR);
        CHECK_EQ(store_view_lookup(v, 1, "a", &at), 0);
        CHECK_EQ(at.nlink, 1);
        store_view_release(v);
        /* again from the db file alone */
        flush(&e);
        env_reopen(&e);
    }
    tree_free(&t1);
    tree_free(&t2);
    env_close(&e);
}

static void test_restore_whole(void)
{
    struct env e;
    env_open(&e, "links");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t a = file(&e, 1, "a", "v1");
    CHECK_EQ(ln(&e, a, d, "b"), 0);
    struct tree at_r;
    live(&e, &at_r);
    char snap[32];
    snprintf(snap, sizeof(snap), "@%llu", (unsigned long long)revision(&e));

    /* the primary goes (the inode moves to /d/b), a write, a new name,
     * a new file with two names */
    CHECK_EQ(unlink_(&e, 1, "a"), 0);
    CHECK_EQ(write_(&e, a, "v2"), 0);
    CHECK_EQ(ln(&e, a, 1, "c"), 0);
    uint64_t n = file(&e, 1, "n", "new");
    CHECK_EQ(ln(&e, n, d, "n2"), 0);

    CHECK_EQ(restore_(&e, snap, "/"), 0);
    struct tree got;
    live(&e, &got);
    tree_same_files(&at_r, &got);
    tree_free(&got);
    CHECK_EQ(look(&e, 1, "a", NULL), a); /* the same inode, restored */
    CHECK_EQ(look(&e, d, "b", NULL), a);
    content_is(&e, a, "v1");
    struct names nm;
    CHECK(strcmp(names_of(&e, a, &nm), "/a,/d/b,") == 0);
    /* twice: nothing more */
    uint64_t rev = revision(&e);
    CHECK_EQ(restore_(&e, snap, "/"), 0);
    CHECK_EQ(revision(&e), rev);
    /* the restore replays */
    flush(&e);
    env_reopen(&e);
    live(&e, &got);
    tree_same_files(&at_r, &got);
    tree_free(&got);
    tree_free(&at_r);
    env_close(&e);
}

static void test_restore_subtree(void)
{
    struct env e;
    env_open(&e, "links");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t o = mkdir_(&e, 1, "o");
    uint64_t in = file(&e, d, "in", "in-v1");    /* primary inside */
    CHECK_EQ(ln(&e, in, o, "in-out"), 0);        /* a name outside */
    uint64_t out = file(&e, o, "out", "out-v1"); /* primary outside */
    CHECK_EQ(ln(&e, out, d, "out-in"), 0);       /* a name inside */
    uint64_t g = file(&e, o, "gone", "gone-v1"); /* removed later */
    CHECK_EQ(ln(&e, g, d, "g1"), 0);
    CHECK_EQ(ln(&e, g, d, "g2"), 0);
    char snap[32];
    snprintf(snap, sizeof(snap), "@%llu", (unsigned long long)revision(&e));

    CHECK_EQ(write_(&e, in, "in-v2"), 0);
    CHECK_EQ(write_(&e, out, "out-v2"), 0);
    CHECK_EQ(unlink_(&e, d, "out-in"), 0);
    CHECK_EQ(unlink_(&e, d, "g1"), 0);
    CHECK_EQ(unlink_(&e, d, "g2"), 0);
    CHECK_EQ(unlink_(&e, o, "gone"), 0);
    uint64_t late = file(&e, d, "late", "late"); /* not in the snapshot */
    CHECK_EQ(ln(&e, late, o, "late-out"), 0);

    CHECK_EQ(restore_(&e, snap, "/d"), 0);
    /* an inode restored in place shows its content through every name */
    CHECK_EQ(look(&e, d, "in", NULL), in);
    content_is(&e, in, "in-v1");
    CHECK_EQ(look(&e, o, "in-out", NULL), in);
    CHECK_EQ(nlink(&e, in), 2);
    /* a name of a live inode outside: the name again, the inode as now */
    CHECK_EQ(look(&e, d, "out-in", NULL), out);
    content_is(&e, out, "out-v2");
    CHECK_EQ(nlink(&e, out), 2);
    /* names of an inode gone since: one copy as of the revision */
    uint64_t g1 = look(&e, d, "g1", NULL);
    CHECK(g1 != 0 && g1 != g);
    CHECK_EQ(look(&e, d, "g2", NULL), g1);
    content_is(&e, g1, "gone-v1");
    CHECK_EQ(nlink(&e, g1), 2);
    CHECK_EQ(look(&e, o, "gone", NULL), 0); /* outside: not made again */
    /* a primary name the snapshot lacks goes; its name outside stays */
    CHECK_EQ(look(&e, d, "late", NULL), 0);
    CHECK_EQ(look(&e, o, "late-out", NULL), late);
    content_is(&e, late, "late");
    CHECK_EQ(nlink(&e, late), 1);
    struct tree want, got;
    live(&e, &want);
    /* twice: nothing more */
    uint64_t rev = revision(&e);
    CHECK_EQ(restore_(&e, snap, "/d"), 0);
    CHECK_EQ(revision(&e), rev);
    /* replay and image give the same */
    flush(&e);
    env_reopen(&e);
    live(&e, &got);
    tree_eq(&want, &got);
    tree_free(&got);
    tree_free(&want);
    env_close(&e);
}

int main(void)
{
    RUN(test_link_apply);
    RUN(test_unlink_names);
    RUN(test_rename_names);
    RUN(test_reload);
    RUN(test_views);
    RUN(test_restore_whole);
    RUN(test_restore_subtree);
    return 0;
}
