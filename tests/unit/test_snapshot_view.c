/* test_snapshot_view.c - views of past revisions against the history.
 *
 * A scripted random sequence of changes (creates, writes, renames of files
 * and directories, deletes, chmod, symlinks) is applied; after every
 * command that makes a revision, the test records the whole live tree
 * (paths, attributes, contents) as the expected tree of that revision.
 * Views of random revisions must equal them: with records durable, in
 * flight and pending; after a reopen; after a compaction (revisions >= the
 * compact revision; older ones give ENOENT). Named snapshots: errors,
 * listing, no revision, and a creation cost independent of the tree size. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../store/store_history.h"
#include "../../store/store_compact.h"
#include "check.h"
#include "history_env.h"

/* ---- the scripted history ---- */

enum { REVS_MAX = 4096, OPS = 700 };

static struct tree expect[REVS_MAX];
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void record(struct env* e)
{
    uint64_t rev = revision(e);
    CHECK(rev < REVS_MAX);
    if (expect[rev].v != NULL) {
        return; /* no new revision */
    }
    struct src s = {.st = e->st};
    capture(&s, &expect[rev]);
}

/* A random live entry: dirs only if want_dir. */
static bool pick(struct env* e,
                 bool want_dir,
                 uint64_t* ino,
                 char* name,
                 uint64_t* parent)
{
    struct src s = {.st = e->st};
    struct tree t;
    capture(&s, &t);
    size_t cand[1024], n = 0;
    for (size_t i = 0; i < t.n && n < 1024; i++) {
        if ((t.v[i].a.type == STORE_DIR) == want_dir) {
            cand[n++] = i;
        }
    }
    bool ok = n > 0;
    if (ok) {
        const struct node* x = &t.v[cand[rnd((uint32_t)n)]];
        *ino = x->a.ino;
        const char* slash = strrchr(x->path, '/');
        snprintf(name, 256, "%s", slash + 1);
        struct store_attr pa;
        char pp[512];
        snprintf(pp, sizeof(pp), "%.*s", (int)(slash - x->path), x->path);
        *parent = STORE_ROOT_INO;
        for (size_t i = 0; i < t.n; i++) {
            if (strcmp(t.v[i].path, pp[0] ? pp : "/") == 0) {
                pa = t.v[i].a;
                *parent = pa.ino;
            }
        }
    }
    tree_free(&t);
    return ok;
}

static void random_op(struct env* e)
{
    uint64_t ino = 0, parent = 0, dir = 0, dparent = 0;
    char name[256], dname[256], nn[32];
    snprintf(nn, sizeof(nn), "n%u", rnd(40));
    struct store_cmd c = {.uid = rnd(3), .gid = rnd(3), .mode = 0640};
    char data[300];
    switch (rnd(10)) {
    case 0:
    case 1: /* create a file */
        pick(e, true, &dir, dname, &dparent);
        c.op = STORE_OP_CREATE;
        c.parent = dir;
        c.name = nn;
        break;
    case 2: /* mkdir */
        pick(e, true, &dir, dname, &dparent);
        c.op = rnd(4) == 0 ? STORE_OP_SYMLINK : STORE_OP_MKDIR;
        c.parent = dir;
        c.name = nn;
        c.data = "some/target";
        c.data_len = 11;
        break;
    case 3:
    case 4:
    case 5: /* write */
        if (!pick(e, false, &ino, name, &parent)) {
            return;
        }
        c.op = STORE_OP_WRITE;
        c.ino = ino;
        c.data_len = rnd(200);
        for (size_t i = 0; i < c.data_len; i++) {
            data[i] = (char)('a' + rnd(26));
        }
        c.data = data;
        break;
    case 6: /* rename a file or a dir */
        if (!pick(e, rnd(3) == 0, &ino, name, &parent) || ino == 1) {
            return;
        }
        pick(e, true, &dir, dname, &dparent);
        c.op = STORE_OP_RENAME;
        c.parent = parent;
        c.name = name;
        c.new_parent = dir;
        c.new_name = nn;
        c.flags = rnd(4) == 0 ? STORE_EXCHANGE : 0;
        break;
    case 7: /* delete */
        if (!pick(e, rnd(3) == 0, &ino, name, &parent) || ino == 1) {
            return;
        }
        struct store_attr a;
        CHECK_EQ(store_getattr(e->st, ino, &a), 0);
        c.op = a.type == STORE_DIR ? STORE_OP_RMDIR : STORE_OP_UNLINK;
        c.parent = parent;
        c.name = name;
        break;
    default: /* chmod / chown / utimes */
        if (!pick(e, rnd(2) == 0, &ino, name, &parent)) {
            return;
        }
        c.op = STORE_OP_SETATTR;
        c.ino = ino;
        c.set_mask = STORE_SET_MODE | (rnd(2) ? STORE_SET_UID : 0) |
                     (rnd(2) ? STORE_SET_MTIME : 0);
        c.mode = rnd(07777);
        c.uid = rnd(5);
        c.mtime_ns = (int64_t)rnd(1000000);
        break;
    }
    run(e, &c);
    record(e);
}

static void compare_view(struct env* e, uint64_t rev)
{
    struct store_view* v;
    CHECK_EQ(store_view_open(e->st, rev, &v), 0);
    CHECK_EQ(store_view_revision(v), rev);
    struct src s = {.st = e->st, .v = v};
    struct tree t;
    capture(&s, &t);
    CHECK(expect[rev].v != NULL);
    tree_eq(&t, &expect[rev]);
    tree_free(&t);
    store_view_release(v);
}

static void compare_random(struct env* e, uint64_t lo, int count)
{
    uint64_t hi = revision(e);
    for (int i = 0; i < count; i++) {
        compare_view(e, lo + rnd((uint32_t)(hi - lo + 1)));
    }
    compare_view(e, lo);
    compare_view(e, hi);
}

static int snap_cmd(struct env* e, uint8_t op, const char* name)
{
    struct store_cmd c = {.op = op, .name = name};
    return run(e, &c).err;
}

static int compact_cmd(struct env* e, uint64_t target)
{
    struct store_cmd c = {.op = STORE_OP_COMPACT, .size = target};
    return run(e, &c).err;
}

static void test_views_random_history(void)
{
    struct env e;
    env_open(&e, "view");
    record(&e); /* revision 0: the root alone */
    for (int i = 0; i < OPS; i++) {
        random_op(&e);
        if (rnd(8) == 0) {
            flush(&e);
        }
    }
    uint64_t last = revision(&e);
    fprintf(stderr, "  %" PRIu64 " revisions\n", last);
    CHECK(last > OPS / 2);
    /* Part durable, part pending. */
    compare_random(&e, 0, 30);
    /* A sealed frame in flight, then more pending records. */
    struct store_frame* f;
    random_op(&e);
    random_op(&e);
    CHECK_EQ(store_frame_seal(e.st, &f), 0);
    CHECK(f != NULL);
    uint64_t in_flight = revision(&e);
    random_op(&e);
    random_op(&e);
    store_views_flush(e.st);
    compare_view(&e, in_flight);
    compare_view(&e, revision(&e));
    void* d;
    size_t n;
    struct store_attr a;
    CHECK_EQ(store_frame_write(e.st, f), 0);
    store_frame_done(e.st, f, 0);
    flush(&e);
    (void)d, (void)n, (void)a;

    /* Reopen: the same history from the file alone. */
    env_reopen(&e);
    compare_random(&e, 0, 30);

    /* Future revision, compaction. */
    struct store_view* v;
    CHECK_EQ(store_view_open(e.st, revision(&e) + 1, &v), -EINVAL);
    uint64_t keep = revision(&e) / 3, target = revision(&e) / 2;
    for (int i = 0; i < 10; i++) {
        random_op(&e);
    }
    CHECK_EQ(revision(&e) >= keep, true);
    /* A named snapshot at the current revision clamps the compaction. */
    uint64_t mid = revision(&e);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, "before-compact"), 0);
    CHECK_EQ(compact_cmd(&e, mid + 100), 0);
    struct store_stats st;
    store_get_stats(e.st, &st);
    CHECK_EQ(st.compact_revision, mid); /* clamped to the snapshot */
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_DROP, "before-compact"), 0);
    (void)keep, (void)target;
    for (int i = 0; i < 20; i++) {
        random_op(&e);
    }
    uint64_t before = st.db_bytes;
    compact_now(&e);
    store_get_stats(e.st, &st);
    fprintf(stderr,
            "  compacted to %" PRIu64 ": db %" PRIu64 " -> %" PRIu64 " bytes\n",
            mid, before, st.db_bytes);
    CHECK_EQ(st.compact_revision, mid);
    CHECK_EQ(store_view_open(e.st, mid - 1, &v), -ENOENT);
    CHECK_EQ(store_view_open(e.st, 0, &v), -ENOENT);
    compare_random(&e, mid, 20);
    for (int i = 0; i < 20; i++) {
        random_op(&e);
    }
    compare_random(&e, mid, 10);
    flush(&e);
    env_reopen(&e);
    compare_random(&e, mid, 20);
    CHECK_EQ(store_view_open(e.st, mid - 1, &v), -ENOENT);
    /* The live tree survived everything. */
    struct tree live;
    struct src s = {.st = e.st};
    capture(&s, &live);
    tree_eq(&live, &expect[revision(&e)]);
    tree_free(&live);
    env_close(&e);
}

/* A view held across a compaction reads its contents from the new file. */
static void test_view_across_compaction(void)
{
    struct env e;
    env_open(&e, "view");
    record(&e);
    for (int i = 0; i < 200; i++) {
        random_op(&e);
    }
    flush(&e);
    uint64_t r = revision(&e);
    struct store_view* v;
    CHECK_EQ(store_view_open(e.st, r, &v), 0);
    CHECK_EQ(compact_cmd(&e, r), 0);
    for (int i = 0; i < 30; i++) {
        random_op(&e);
    }
    compact_now(&e);
    struct src s = {.st = e.st, .v = v};
    struct tree t;
    capture(&s, &t);
    tree_eq(&t, &expect[r]);
    tree_free(&t);
    store_view_release(v);
    compare_view(&e, r);
    compare_view(&e, revision(&e));
    env_close(&e);
}

static int list_cb(void* data, const struct store_snap_info* s)
{
    char* out = data;
    strcat(out, s->name);
    strcat(out, ",");
    return 0;
}

static void test_named_snapshots(void)
{
    struct env e;
    env_open(&e, "view");
    struct store_cmd c = {.op = STORE_OP_MKDIR, .parent = 1, .name = "etc"};
    CHECK_EQ(run(&e, &c).err, 0);
    uint64_t rev = revision(&e);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, "b"), 0);
    CHECK_EQ(revision(&e), rev); /* no revision for a snapshot */
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, "b"), -EEXIST);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, ""), -EINVAL);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, "x/y"), -EINVAL);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, ".."), -EINVAL);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, "@12"), -EINVAL);
    char longname[300];
    memset(longname, 'a', 299);
    longname[299] = 0;
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, longname), -ENAMETOOLONG);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_DROP, "nope"), -ENOENT);
    c = (struct store_cmd){.op = STORE_OP_MKDIR, .parent = 1, .name = "var"};
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, "a"), 0);
    struct store_snap_info si;
    CHECK_EQ(store_snap_get(e.st, "b", &si), 0);
    CHECK_EQ(si.revision, rev);
    CHECK_EQ(store_snap_get(e.st, "a", &si), 0);
    CHECK_EQ(si.revision, rev + 1);
    CHECK(si.ctime_ns == e.now);
    CHECK_EQ(store_snap_get(e.st, "c", &si), -ENOENT);
    char list[64] = "";
    CHECK_EQ(store_snap_list(e.st, list_cb, list), 0);
    CHECK(strcmp(list, "a,b,") == 0);
    /* Durable and part of images: reopen and an image round trip. */
    flush(&e);
    env_reopen(&e);
    list[0] = 0;
    CHECK_EQ(store_snap_list(e.st, list_cb, list), 0);
    CHECK(strcmp(list, "a,b,") == 0);
    void* img;
    size_t len;
    CHECK_EQ(store_image_build(e.st, &img, &len), 0);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_DROP, "b"), 0);
    CHECK_EQ(store_snap_get(e.st, "b", &si), -ENOENT);
    CHECK_EQ(store_image_install(e.st, img, len), 0);
    free(img);
    CHECK_EQ(store_snap_get(e.st, "b", &si), 0);
    CHECK_EQ(si.revision, rev);
    /* The view of a named snapshot: etc but no var. */
    struct store_view* v;
    struct store_attr a;
    /* After an image install, history before it is not on this node. */
    CHECK_EQ(store_view_open(e.st, rev, &v), -ENOENT);
    c = (struct store_cmd){.op = STORE_OP_MKDIR, .parent = 1, .name = "usr"};
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(snap_cmd(&e, STORE_OP_SNAP_CREATE, "c"), 0);
    CHECK_EQ(store_snap_get(e.st, "c", &si), 0);
    CHECK_EQ(store_view_open(e.st, si.revision, &v), 0);
    CHECK_EQ(store_view_lookup(v, 1, "usr", &a), 0);
    CHECK_EQ(store_view_lookup(v, 1, "etc", &a), 0);
    CHECK_EQ(store_view_lookup(v, 1, "nope", &a), -ENOENT);
    store_view_release(v);
    CHECK_EQ(store_view_open(e.st, si.revision - 1, &v), 0);
    CHECK_EQ(store_view_lookup(v, 1, "usr", &a), -ENOENT);
    store_view_release(v);
    env_close(&e);
}

/* Making a named snapshot records a name and a revision: the memory it
 * takes does not depend on the tree size. */
static size_t snapshot_cost(int files)
{
    struct env e;
    env_open(&e, "view");
    for (int i = 0; i < files; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        struct store_cmd c = {.op = STORE_OP_CREATE, .parent = 1, .name = name};
        CHECK_EQ(run(&e, &c).err, 0);
        if (i % 1000 == 999) {
            flush(&e);
        }
    }
    flush(&e);
    struct store_cmd c = {.op = STORE_OP_SNAP_CREATE, .name = "cheap"};
    uint8_t buf[256];
    c.origin = 7;
    c.seq = ++e.seq;
    long n = store_cmd_encode(&c, buf, sizeof(buf));
    struct store_result res;
    struct mallinfo2 m0 = mallinfo2();
    CHECK_EQ(store_apply(e.st, ++e.idx, buf, (size_t)n, NULL, NULL, &res), 0);
    struct mallinfo2 m1 = mallinfo2();
    CHECK_EQ(res.err, 0);
    struct store_stats st;
    store_get_stats(e.st, &st);
    CHECK_EQ(st.keys, (uint64_t)files);
    env_close(&e);
    return m1.uordblks - m0.uordblks;
}

static void test_snapshot_cost(void)
{
    size_t small = snapshot_cost(10), big = snapshot_cost(20000);
    fprintf(stderr,
            "  snapshot of 10 files: %zu bytes allocated, of 20000: "
            "%zu\n",
            small, big);
    /* Equal but for malloc's chunk rounding (a reused free chunk may be a
     * few bytes larger); 2000x the tree would cost >= 2000x per entry. */
    CHECK(big <= small + 64 && small <= big + 64);
    CHECK(big < 16384);
}

int main(void)
{
    RUN(test_named_snapshots);
    RUN(test_snapshot_cost);
    RUN(test_views_random_history);
    for (size_t i = 0; i < REVS_MAX; i++) {
        tree_free(&expect[i]);
    }
    RUN(test_view_across_compaction);
    for (size_t i = 0; i < REVS_MAX; i++) {
        tree_free(&expect[i]);
    }
    return 0;
}
