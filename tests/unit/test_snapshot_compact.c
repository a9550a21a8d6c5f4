/* test_snapshot_compact.c - compaction and restore.
 *
 * Size: 100,000 overwrites of the same 100 small files, then a compaction:
 * the db file must be at most 4x the lz4-compressed live data (printed).
 * Crash safety: a child process runs the compaction with QFS_CRASH_POINT
 * set to each hook and dies there; the parent reopens the store and checks
 * the whole tree (image bytes) and the history (views of every retained
 * revision against trees recorded while applying). Online: applies, seals
 * and frame writes between begin, run and finish. Restore of a subtree and
 * of the whole tree: one revision, contents/modes/owners/times back,
 * created entries removed, deleted ones back with new inos, deterministic
 * (replayed from the db file to the same image). */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../store/store_history.h"
#include "../../store/store_compact.h"
#include "check.h"
#include "history_env.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static uint64_t mkent(struct env* e,
                      uint8_t op,
                      uint64_t parent,
                      const char* name)
{
    struct store_cmd c = {.op = op,
                          .parent = parent,
                          .name = name,
                          .mode = 0644,
                          .uid = 10,
                          .gid = 20};
    if (op == STORE_OP_SYMLINK) {
        c.data = "../target";
        c.data_len = 9;
    }
    struct store_result r = run(e, &c);
    CHECK_EQ(r.err, 0);
    return r.ino;
}

static void wr(struct env* e, uint64_t ino, const char* data)
{
    struct store_cmd c = {.op = STORE_OP_WRITE,
                          .ino = ino,
                          .data = data,
                          .data_len = strlen(data)};
    CHECK_EQ(run(e, &c).err, 0);
}

static int simple(struct env* e,
                  uint8_t op,
                  uint64_t parent,
                  const char* name,
                  uint64_t np,
                  const char* nn)
{
    struct store_cmd c = {.op = op,
                          .parent = parent,
                          .name = name,
                          .new_parent = np,
                          .new_name = nn};
    return run(e, &c).err;
}

static void config_text(char* buf, size_t cap, uint32_t i, uint32_t gen)
{
    static const char* const levels[] = {"debug", "info", "warn", "error"};
    snprintf(buf, cap,
             "# service %u\nport = %u\nhost = node-%u.example.org\n"
             "timeout_ms = %u\nreplicas = %u\nlog_level = %s\n"
             "generation = %u\n",
             i, 8000 + rnd(1000), rnd(50), 100 * (1 + rnd(50)), 1 + rnd(5),
             levels[rnd(4)], gen);
}

static void image_of(struct store* st, void** img, size_t* len)
{
    CHECK_EQ(store_image_build(st, img, len), 0);
}

static void image_eq(struct store* st, const void* img, size_t len)
{
    void* now;
    size_t n;
    image_of(st, &now, &n);
    CHECK_EQ(n, len);
    CHECK_MEM(now, img, n);
    free(now);
}

static int compact_cmd(struct env* e, uint64_t target);

/* ---- size ---- */

static void test_overwrite_ratio(void)
{
    struct env e;
    env_open(&e, "compact");
    enum { FILES = 100, WRITES = 100000 };
    uint64_t ino[FILES];
    uint64_t dir = mkent(&e, STORE_OP_MKDIR, 1, "services");
    for (int i = 0; i < FILES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "svc-%02d.conf", i);
        ino[i] = mkent(&e, STORE_OP_CREATE, dir, name);
    }
    char buf[512];
    for (uint32_t w = 0; w < WRITES; w++) {
        config_text(buf, sizeof(buf), w % FILES, w / FILES);
        wr(&e, ino[w % FILES], buf);
        if (w % 500 == 499) {
            flush(&e);
        }
    }
    flush(&e);
    struct store_stats before, after;
    store_get_stats(e.st, &before);
    CHECK_EQ(compact_cmd(&e, before.revision), 0);
    void* img;
    size_t img_len;
    image_of(e.st, &img, &img_len);
    compact_now(&e);
    store_get_stats(e.st, &after);
    image_eq(e.st, img, img_len);
    /* The live data, lz4-compressed in one block. */
    size_t live = 0;
    char* all = malloc(FILES * 512);
    for (int i = 0; i < FILES; i++) {
        const void* d;
        size_t n;
        CHECK_EQ(store_read(e.st, ino[i], &d, &n), 0);
        memcpy(all + live, d, n);
        live += n;
    }
    CHECK_EQ(live, after.live_bytes);
    char* comp = malloc((size_t)LZ4_compressBound((int)live));
    int clen = LZ4_compress_default(all, comp, (int)live,
                                    LZ4_compressBound((int)live));
    CHECK(clen > 0);
    double ratio = (double)after.db_bytes / clen;
    fprintf(stderr,
            "  %d overwrites of %d files: db %" PRIu64 " bytes (%" PRIu64
            " frames) -> compacted %" PRIu64 " bytes (%" PRIu64
            " frames); live %zu bytes, lz4 %d bytes; db/lz4(live) = %.2f\n",
            WRITES, FILES, before.db_bytes, before.frames, after.db_bytes,
            after.frames, live, clen, ratio);
    CHECK(after.db_bytes <= 4 * (uint64_t)clen);
    CHECK_EQ(after.compact_revision, before.revision);
    /* Reopen: the same state from the compacted file, and it goes on. */
    env_reopen(&e);
    image_eq(e.st, img, img_len);
    wr(&e, ino[0], "after = compaction\n");
    flush(&e);
    env_reopen(&e);
    const void* d;
    size_t n;
    CHECK_EQ(store_read(e.st, ino[0], &d, &n), 0);
    CHECK(n == 19 && memcmp(d, "after = compaction\n", n) == 0);
    free(all);
    free(comp);
    free(img);
    env_close(&e);
}

/* ---- a history with every kind of change ---- */

enum { REVS_MAX = 8192 };
static struct tree expect[REVS_MAX];

static void record(struct env* e)
{
    uint64_t rev = revision(e);
    CHECK(rev < REVS_MAX);
    if (expect[rev].v == NULL) {
        struct src s = {.st = e->st};
        capture(&s, &expect[rev]);
    }
}

static void forget(void)
{
    for (size_t i = 0; i < REVS_MAX; i++) {
        tree_free(&expect[i]);
    }
}

static uint64_t ensure(struct env* e,
                       uint8_t op,
                       uint64_t parent,
                       const char* name)
{
    struct store_attr a;
    if (store_lookup(e->st, parent, name, &a) == 0) {
        return a.ino;
    }
    uint64_t ino = mkent(e, op, parent, name);
    record(e);
    return ino;
}

/* Writes, renames, deletes, chmod over a few dirs; records every revision. */
static void history(struct env* e, int steps)
{
    uint64_t d[3];
    d[0] = ensure(e, STORE_OP_MKDIR, 1, "app");
    d[1] = ensure(e, STORE_OP_MKDIR, d[0], "conf.d");
    d[2] = ensure(e, STORE_OP_MKDIR, 1, "etc");
    ensure(e, STORE_OP_SYMLINK, d[2], "current");
    char buf[512];
    for (int i = 0; i < steps; i++) {
        char name[32], other[32];
        uint64_t dir = d[rnd(3)];
        snprintf(name, sizeof(name), "f%u", rnd(30));
        snprintf(other, sizeof(other), "f%u", rnd(30));
        struct store_attr a;
        uint32_t op = rnd(10);
        if (op < 5) {
            if (store_lookup(e->st, dir, name, &a) != 0) {
                mkent(e, STORE_OP_CREATE, dir, name);
                record(e);
                CHECK_EQ(store_lookup(e->st, dir, name, &a), 0);
            }
            config_text(buf, sizeof(buf), (uint32_t)i, (uint32_t)i);
            wr(e, a.ino, buf);
        } else if (op < 7) {
            simple(e, STORE_OP_RENAME, dir, name, d[rnd(3)], other);
        } else if (op < 9) {
            simple(e, STORE_OP_UNLINK, dir, name, 0, NULL);
        } else if (store_lookup(e->st, dir, name, &a) == 0) {
            struct store_cmd c = {.op = STORE_OP_SETATTR,
                                  .ino = a.ino,
                                  .set_mask = STORE_SET_MODE | STORE_SET_GID,
                                  .mode = rnd(01000),
                                  .gid = rnd(100)};
            CHECK_EQ(run(e, &c).err, 0);
        }
        record(e);
        if (rnd(20) == 0) {
            flush(e);
        }
    }
    flush(e);
}

static void compare_view(struct env* e, uint64_t rev)
{
    struct store_view* v;
    CHECK_EQ(store_view_open(e->st, rev, &v), 0);
    struct src s = {.st = e->st, .v = v};
    struct tree t;
    capture(&s, &t);
    CHECK(expect[rev].v != NULL);
    tree_eq(&t, &expect[rev]);
    tree_free(&t);
    store_view_release(v);
}

static int compact_cmd(struct env* e, uint64_t target)
{
    struct store_cmd c = {.op = STORE_OP_COMPACT, .size = target};
    return run(e, &c).err;
}

static void check_history(struct env* e, uint64_t from)
{
    struct store_view* v;
    if (from > 0) {
        CHECK_EQ(store_view_open(e->st, from - 1, &v), -ENOENT);
    }
    for (uint64_t r = from; r <= revision(e); r += 1 + rnd(5)) {
        compare_view(e, r);
    }
    compare_view(e, revision(e));
}

static bool exists(const char* p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void test_crash_points(void)
{
    static const char* const points[] = {
        "compact-after-write", "compact-before-rename", "compact-after-rename"};
    for (size_t i = 0; i < 3; i++) {
        fprintf(stderr, "  crash at %s\n", points[i]);
        struct env e;
        env_open(&e, "compact");
        history(&e, 1500);
        uint64_t c_rev = revision(&e) / 2;
        CHECK_EQ(compact_cmd(&e, c_rev), 0);
        flush(&e);
        void* img;
        size_t len;
        image_of(e.st, &img, &len);
        struct store_stats before;
        store_get_stats(e.st, &before);
        store_close(e.st);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            struct store_options o = opts();
            struct store* st;
            if (store_open(e.path, &o, &st, NULL) != 0) {
                _exit(2);
            }
            setenv("QFS_CRASH_POINT", points[i], 1);
            struct store_compaction* c;
            if (store_compact_begin(st, &c) != 0 || store_compact_run(c) != 0) {
                _exit(3);
            }
            store_compact_finish(st, c);
            _exit(4); /* the crash point was not reached */
        }
        int status;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 99);
        char tmp[128];
        snprintf(tmp, sizeof(tmp), "%s.compact", e.path);
        CHECK_EQ(exists(tmp), i < 2); /* left behind unless renamed */
        struct store_options o = opts();
        CHECK_EQ(store_open(e.path, &o, &e.st, NULL), 0);
        CHECK(!exists(tmp)); /* deleted at open */
        struct store_stats st;
        store_get_stats(e.st, &st);
        CHECK_EQ(st.revision, before.revision);
        CHECK_EQ(st.compact_revision, c_rev);
        if (i < 2) {
            CHECK_EQ(st.db_bytes, before.db_bytes);
            CHECK(store_compact_needed(e.st));
        } else {
            CHECK(st.db_bytes < before.db_bytes);
            CHECK(!store_compact_needed(e.st));
        }
        image_eq(e.st, img, len);
        check_history(&e, c_rev);
        if (i < 2) { /* a restarted node finishes the job */
            compact_now(&e);
            image_eq(e.st, img, len);
            check_history(&e, c_rev);
        }
        /* and keeps working */
        history(&e, 100);
        env_reopen(&e);
        check_history(&e, c_rev);
        free(img);
        forget();
        env_close(&e);
    }
}

/* Applies, seals and writes go on between begin, run and finish. */
static void test_online(void)
{
    struct env e;
    env_open(&e, "compact");
    history(&e, 800);
    simple(&e, STORE_OP_MKDIR, 1, "unflushed", 0, NULL);
    record(&e);
    uint64_t c_rev = revision(&e);
    CHECK_EQ(compact_cmd(&e, c_rev), 0);
    struct store_compaction* c;
    CHECK_EQ(store_compact_begin(e.st, &c), -EAGAIN); /* C not durable */
    flush(&e);
    CHECK_EQ(store_compact_begin(e.st, &c), 0);
    struct store_compaction* c2;
    CHECK_EQ(store_compact_begin(e.st, &c2), -EBUSY);
    history(&e, 50); /* durable during run's part */
    CHECK_EQ(store_compact_run(c), 0);
    history(&e, 50); /* durable after run */
    struct store_frame* f;
    simple(&e, STORE_OP_MKDIR, 1, "late", 0, NULL);
    record(&e);
    CHECK_EQ(store_frame_seal(e.st, &f), 0);
    CHECK_EQ(store_compact_finish(e.st, c), -EBUSY);
    CHECK_EQ(store_frame_write(e.st, f), 0);
    store_frame_done(e.st, f, 0);
    /* pending at the switch: their locations must move too */
    struct store_attr a;
    CHECK_EQ(store_lookup(e.st, 1, "late", &a), 0);
    uint64_t late = mkent(&e, STORE_OP_CREATE, a.ino, "pending.conf");
    record(&e);
    wr(&e, late, "written = while compacting\n");
    record(&e);
    wr(&e, late, "written = again\n");
    record(&e);
    CHECK_EQ(store_compact_finish(e.st, c), 0);
    CHECK_EQ(store_compact_begin(e.st, &c), -EALREADY);
    check_history(&e, c_rev);
    /* store_read_at walks the rewritten prev links */
    struct store_attr at;
    void* d;
    size_t n;
    CHECK_EQ(store_read_at(e.st, late, revision(&e) - 1, &at, &d, &n), 0);
    CHECK(n == 27 && memcmp(d, "written = while compacting\n", n) == 0);
    free(d);
    void* img;
    size_t len;
    image_of(e.st, &img, &len);
    flush(&e);
    env_reopen(&e);
    image_eq(e.st, img, len);
    check_history(&e, c_rev);
    CHECK_EQ(store_read_at(e.st, late, revision(&e) - 1, &at, &d, &n), 0);
    CHECK_EQ(n, 27);
    free(d);
    free(img);
    forget();
    env_close(&e);
}

/* ---- restore ---- */

/* Paths, types, contents, modes, owners and times of one subtree equal
 * (inos and revisions may differ: restored entries are new versions). */
static void subtree_eq(const struct tree* x,
                       const char* px,
                       const struct tree* y,
                       const char* py)
{
    size_t lx = strlen(px), ly = strlen(py), ny = 0, nx = 0;
    for (size_t i = 0; i < y->n; i++) {
        ny += strncmp(y->v[i].path, py, ly) == 0;
    }
    for (size_t i = 0; i < x->n; i++) {
        const struct node* a = &x->v[i];
        if (strncmp(a->path, px, lx) != 0) {
            continue;
        }
        nx++;
        char want[600];
        snprintf(want, sizeof(want), "%s%s", py, a->path + lx);
        const struct node* b = NULL;
        for (size_t j = 0; j < y->n && b == NULL; j++) {
            if (strcmp(y->v[j].path, want) == 0) {
                b = &y->v[j];
            }
        }
        if (b == NULL) {
            fprintf(stderr, "missing %s\n", want);
        }
        CHECK(b != NULL);
        CHECK_EQ(a->a.type, b->a.type);
        CHECK_EQ(a->a.mode, b->a.mode);
        CHECK_EQ(a->a.uid, b->a.uid);
        CHECK_EQ(a->a.gid, b->a.gid);
        CHECK_EQ(a->a.mtime_ns, b->a.mtime_ns);
        CHECK_EQ(a->a.ctime_ns, b->a.ctime_ns);
        CHECK_EQ(a->len, b->len);
        CHECK(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
    }
    CHECK_EQ(nx, ny);
}

static int restore_cmd(struct env* e,
                       const char* snap,
                       const char* path,
                       struct store_result* out)
{
    struct store_cmd c = {
        .op = STORE_OP_RESTORE, .name = snap, .new_name = path};
    struct store_result r = run(e, &c);
    if (out != NULL) {
        *out = r;
    }
    return r.err;
}

static void live_tree(struct env* e, struct tree* t)
{
    struct src s = {.st = e->st};
    capture(&s, t);
}

static void snap_tree(struct env* e, const char* name, struct tree* t)
{
    struct store_snap_info si;
    CHECK_EQ(store_snap_get(e->st, name, &si), 0);
    struct store_view* v;
    CHECK_EQ(store_view_open(e->st, si.revision, &v), 0);
    struct src s = {.st = e->st, .v = v};
    capture(&s, t);
    store_view_release(v);
}

static void test_restore(void)
{
    struct env e;
    env_open(&e, "compact");
    history(&e, 300);
    struct store_attr app, etc, a;
    CHECK_EQ(store_lookup(e.st, 1, "app", &app), 0);
    CHECK_EQ(store_lookup(e.st, 1, "etc", &etc), 0);
    uint64_t keepme = mkent(&e, STORE_OP_CREATE, app.ino, "keepme");
    wr(&e, keepme, "original\n");
    uint64_t gone = mkent(&e, STORE_OP_CREATE, app.ino, "gone");
    wr(&e, gone, "will be deleted\n");
    uint64_t sub = mkent(&e, STORE_OP_MKDIR, app.ino, "sub");
    wr(&e, mkent(&e, STORE_OP_CREATE, sub, "deep"), "deep\n");
    struct store_cmd c = {.op = STORE_OP_SNAP_CREATE, .name = "s1"};
    CHECK_EQ(run(&e, &c).err, 0);
    struct tree snap;
    snap_tree(&e, "s1", &snap);

    /* Changes everywhere. */
    wr(&e, keepme, "changed\n");
    c = (struct store_cmd){.op = STORE_OP_SETATTR,
                           .ino = keepme,
                           .set_mask = STORE_SET_MODE | STORE_SET_UID,
                           .mode = 0600,
                           .uid = 99};
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(simple(&e, STORE_OP_UNLINK, app.ino, "gone", 0, NULL), 0);
    mkent(&e, STORE_OP_CREATE, app.ino, "new-since");
    CHECK_EQ(simple(&e, STORE_OP_RENAME, app.ino, "sub", etc.ino, "moved"), 0);
    uint64_t nd = mkent(&e, STORE_OP_MKDIR, app.ino, "newdir");
    CHECK_EQ(simple(&e, STORE_OP_RENAME, app.ino, "keepme", nd, "inside"), 0);
    wr(&e, mkent(&e, STORE_OP_CREATE, etc.ino, "outside"), "stays\n");
    struct tree before;
    live_tree(&e, &before);

    /* Errors change nothing. */
    uint64_t rev = revision(&e);
    CHECK_EQ(restore_cmd(&e, "nope", "/app", NULL), -ENOENT);
    CHECK_EQ(restore_cmd(&e, "s1", "/app/not-there", NULL), -ENOENT);
    CHECK_EQ(restore_cmd(&e, "s1", "relative", NULL), -EINVAL);
    CHECK_EQ(restore_cmd(&e, "@999999", "/", NULL), -ENOENT);
    CHECK_EQ(revision(&e), rev);

    /* Subtree: /app as in s1, one revision; /etc untouched. */
    struct store_result res;
    CHECK_EQ(restore_cmd(&e, "s1", "/app", &res), 0);
    CHECK_EQ(res.revision, rev + 1);
    CHECK_EQ(revision(&e), rev + 1);
    CHECK_EQ(res.ino, app.ino);
    struct tree now;
    live_tree(&e, &now);
    subtree_eq(&snap, "/app", &now, "/app");
    subtree_eq(&now, "/app", &snap, "/app");
    subtree_eq(&before, "/etc", &now, "/etc");
    subtree_eq(&now, "/etc", &before, "/etc");
    CHECK_EQ(store_lookup(e.st, app.ino, "keepme", &a), 0);
    CHECK_EQ(a.ino, keepme); /* changed in place, same ino */
    CHECK_EQ(store_lookup(e.st, app.ino, "gone", &a), 0);
    CHECK(a.ino != gone); /* deleted since: back with a new ino */
    CHECK_EQ(store_lookup(e.st, app.ino, "new-since", &a), -ENOENT);
    CHECK_EQ(store_lookup(e.st, app.ino, "newdir", &a), -ENOENT);
    CHECK_EQ(store_lookup(e.st, app.ino, "sub", &a), 0);
    CHECK(a.ino != sub); /* moved out of the subtree: a copy comes back */
    CHECK_EQ(store_lookup(e.st, etc.ino, "moved", &a), 0);
    CHECK_EQ(a.ino, sub);
    tree_free(&now);

    /* Again: nothing differs, no revision. */
    CHECK_EQ(restore_cmd(&e, "s1", "/app", &res), 0);
    CHECK_EQ(revision(&e), rev + 1);

    /* Whole tree, by revision. */
    struct store_snap_info si;
    CHECK_EQ(store_snap_get(e.st, "s1", &si), 0);
    char at[32];
    snprintf(at, sizeof(at), "@%" PRIu64, si.revision);
    CHECK_EQ(restore_cmd(&e, at, "/", &res), 0);
    CHECK_EQ(revision(&e), rev + 2);
    live_tree(&e, &now);
    subtree_eq(&snap, "/", &now, "/");
    subtree_eq(&now, "/", &snap, "/");
    tree_free(&now);
    CHECK_EQ(store_lookup(e.st, etc.ino, "outside", &a), -ENOENT);

    /* The records replay to the same state (deterministic), and the
     * history holds the restores as ordinary revisions. */
    void* img;
    size_t len;
    image_of(e.st, &img, &len);
    flush(&e);
    env_reopen(&e);
    image_eq(e.st, img, len);
    struct store_view* v;
    CHECK_EQ(store_view_open(e.st, rev, &v), 0);
    CHECK_EQ(store_view_lookup(v, etc.ino, "outside", &a), 0);
    store_view_release(v);
    free(img);
    tree_free(&snap);
    tree_free(&before);
    env_close(&e);
}

int main(void)
{
    RUN(test_restore);
    RUN(test_online);
    RUN(test_crash_points);
    RUN(test_overwrite_ratio);
    return 0;
}
