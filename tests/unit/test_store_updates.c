/* test_store_updates.c - the store beyond single commands: in-place
 * updates and whole-content entries, special files, big directories and
 * memory per key, reading past versions. Harness: store_env.h. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "store_env.h"

struct lister {
    char last[64];
    uint64_t n;
    uint64_t stop_at;
};

static int list_cb(void* data, const char* name, const struct store_attr* a)
{
    struct lister* l = data;
    CHECK(l->n == 0 || strcmp(l->last, name) < 0);
    CHECK(a->ino != 0);
    snprintf(l->last, sizeof(l->last), "%s", name);
    l->n++;
    return l->n == l->stop_at ? 42 : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_big_dir_and_memory(void)
{
    enum { N = 100000 };
    struct env e;
    env_open(&e, NULL);
    uint64_t d;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "big", 0, &d), 0);
    struct store_frame* f;
    CHECK_EQ(store_frame_seal(e.st, &f), 0);
    CHECK_EQ(store_frame_write(e.st, f), 0);
    store_frame_done(e.st, f, 0);
    struct mallinfo2 m0 = mallinfo2();
    double t0 = now_s();
    /* pseudo-random insertion order */
    for (uint64_t i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "key-%08" PRIu64, (i * 7919) % N);
        CHECK_EQ(mk(&e, STORE_OP_CREATE, d, name, 0, NULL), 0);
        if (i % 4096 == 4095) { /* drop the queued records */
            CHECK_EQ(store_frame_seal(e.st, &f), 0);
            store_frame_done(e.st, f, 0); /* not written: memory test */
        }
    }
    CHECK_EQ(store_frame_seal(e.st, &f), 0);
    store_frame_done(e.st, f, 0);
    double t1 = now_s();
    struct mallinfo2 m1 = mallinfo2();
    double per_key = (double)(m1.uordblks - m0.uordblks) / N;
    if (m1.uordblks == m0.uordblks) { /* a sanitizer's allocator */
        fprintf(stderr, "  100k creates: %.2fs (mallinfo2 unavailable)\n",
                t1 - t0);
    } else {
        fprintf(stderr, "  100k creates: %.2fs, memory per key: %.1f B\n",
                t1 - t0, per_key);
        CHECK(per_key < 300);
    }
    struct lister l = {.n = 0};
    CHECK_EQ(store_readdir(e.st, d, NULL, list_cb, &l), 0);
    CHECK_EQ(l.n, N);
    double t2 = now_s();
    fprintf(stderr, "  list 100k: %.3fs\n", t2 - t1);
    CHECK(t2 - t1 < 2.0);
    /* resume after a name; stop early */
    struct lister l2 = {.n = 0, .stop_at = 10};
    CHECK_EQ(store_readdir(e.st, d, "key-00050000", list_cb, &l2), 42);
    CHECK(strcmp(l2.last, "key-00050010") == 0);
    struct store_attr a;
    CHECK_EQ(store_lookup(e.st, d, "key-00099999", &a), 0);
    CHECK_EQ(store_getattr(e.st, d, &a), 0);
    CHECK_EQ(a.nlink, 2);
    CHECK_EQ(store_readdir(e.st, a.ino + 1, NULL, list_cb, &l), -ENOTDIR);
    CHECK_EQ(store_readdir(e.st, 99999999, NULL, list_cb, &l), -ENOENT);
    env_close(&e);
}

static void test_read_at(void)
{
    struct env e;
    env_open(&e, NULL);
    uint64_t f;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    uint64_t revs[4];
    const char* vals[4] = {"one", "two!", "three", "4"};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(wr(&e, f, vals[i], strlen(vals[i])), 0);
        struct store_attr a;
        CHECK_EQ(store_getattr(e.st, f, &a), 0);
        revs[i] = a.mod_rev;
        struct store_frame* fr;
        CHECK_EQ(store_frame_seal(e.st, &fr), 0);
        CHECK_EQ(store_frame_write(e.st, fr), 0);
        store_frame_done(e.st, fr, 0);
    }
    for (int round = 0; round < 2; round++) { /* live, then reopened */
        for (int i = 0; i < 4; i++) {
            struct store_attr a;
            void* data;
            size_t len;
            CHECK_EQ(store_read_at(e.st, f, revs[i], &a, &data, &len), 0);
            CHECK_EQ(len, strlen(vals[i]));
            CHECK_MEM(data, vals[i], len);
            CHECK_EQ(a.mod_rev, revs[i]);
            free(data);
        }
        store_close(e.st);
        struct store_options o;
        store_options_default(&o);
        CHECK_EQ(store_open(e.path, &o, &e.st, NULL), 0);
    }
    struct store_attr a;
    void* data;
    size_t len;
    CHECK_EQ(store_read_at(e.st, f, 0, &a, &data, &len), -ENOENT);
    env_close(&e);
}

/* Changes that keep an entry's name + content size update its buffer in
 * place (index.c): renames to a name of the same length must still move
 * the entry in its directory, same-size rewrites must not disturb the old
 * versions (read back from the db), attribute changes keep the content. */
struct names {
    char v[8][16];
    int n;
};

static int names_cb(void* data, const char* name, const struct store_attr* a)
{
    struct names* l = data;
    (void)a;
    CHECK(l->n < 8);
    snprintf(l->v[l->n++], sizeof(l->v[0]), "%s", name);
    return 0;
}

static void check_names(struct env* e, uint64_t dir, const char* want)
{
    struct names l = {.n = 0};
    CHECK_EQ(store_readdir(e->st, dir, NULL, names_cb, &l), 0);
    char got[128] = "";
    for (int i = 0; i < l.n; i++) {
        strcat(got, i > 0 ? " " : "");
        strcat(got, l.v[i]);
    }
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "  readdir: got \"%s\", want \"%s\"\n", got, want);
    }
    CHECK(strcmp(got, want) == 0);
}

static void check_content(struct env* e, uint64_t ino, const char* want)
{
    const void* data;
    size_t len;
    CHECK_EQ(store_read(e->st, ino, &data, &len), 0);
    CHECK_EQ(len, strlen(want));
    CHECK_MEM(data, want, len);
}

static void test_in_place_updates(void)
{
    struct env e;
    env_open(&e, NULL);
    uint64_t d, aa, bb, cc;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "dd", 0, &d), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "bb", 0, &bb), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "aa", 0, &aa), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "cc", 0, &cc), 0);
    CHECK_EQ(wr(&e, aa, "12345", 5), 0);
    CHECK_EQ(wr(&e, bb, "xyz", 3), 0);
    struct store_attr a0, a1;
    CHECK_EQ(store_getattr(e.st, aa, &a0), 0);
    struct store_frame* f;
    CHECK_EQ(store_frame_seal(e.st, &f), 0);
    CHECK_EQ(store_frame_write(e.st, f), 0);
    store_frame_done(e.st, f, 0);
    /* same-size rewrite: new content live, the old one in history */
    CHECK_EQ(wr(&e, aa, "abcde", 5), 0);
    check_content(&e, aa, "abcde");
    void* old;
    size_t old_len;
    CHECK_EQ(store_read_at(e.st, aa, a0.mod_rev, &a1, &old, &old_len), 0);
    CHECK_EQ(old_len, 5);
    CHECK_MEM(old, "12345", 5);
    free(old);
    /* same-length renames in one directory: order and lookups follow */
    CHECK_EQ(mv(&e, d, "bb", d, "zz", 0), 0);
    CHECK_EQ(ino_of(&e, d, "bb"), 0);
    CHECK_EQ(ino_of(&e, d, "zz"), bb);
    check_names(&e, d, "aa cc zz");
    check_content(&e, bb, "xyz");
    CHECK_EQ(mv(&e, d, "zz", d, "ab", 0), 0);
    check_names(&e, d, "aa ab cc");
    CHECK_EQ(ino_of(&e, d, "ab"), bb);
    /* same-length rename over an existing entry */
    CHECK_EQ(mv(&e, d, "ab", d, "cc", 0), 0);
    check_names(&e, d, "aa cc");
    CHECK_EQ(ino_of(&e, d, "cc"), bb);
    check_content(&e, bb, "xyz");
    /* exchange of two same-length names with different content sizes */
    CHECK_EQ(mv(&e, d, "aa", d, "cc", STORE_EXCHANGE), 0);
    CHECK_EQ(ino_of(&e, d, "aa"), bb);
    CHECK_EQ(ino_of(&e, d, "cc"), aa);
    check_content(&e, aa, "abcde");
    check_content(&e, bb, "xyz");
    /* attribute change: content kept */
    struct store_cmd c = {.op = STORE_OP_SETATTR,
                          .ino = aa,
                          .set_mask = STORE_SET_MODE,
                          .mode = 0600};
    CHECK_EQ(run(&e, &c).err, 0);
    check_content(&e, aa, "abcde");
    CHECK_EQ(store_getattr(e.st, aa, &a1), 0);
    CHECK_EQ(a1.mode, 0600);
    /* the directory, touched by every change above, keeps its name */
    CHECK_EQ(ino_of(&e, 1, "dd"), d);
    char p[32];
    CHECK_EQ(store_path(e.st, aa, p, sizeof(p)), 0);
    CHECK(strcmp(p, "/dd/cc") == 0);
    /* everything replays to the same state */
    reopen(&e);
    check_names(&e, d, "aa cc");
    check_content(&e, aa, "abcde");
    check_content(&e, bb, "xyz");
    CHECK_EQ(ino_of(&e, d, "cc"), aa);
    env_close(&e);
}

/* One file update, one entry (issue 11): a WRITE carries the attributes
 * set through the update; a RENAME carries the content of the file it
 * moves, checked whole before anything changes. */
static void test_update_entries(void)
{
    struct store_options o;
    store_options_default(&o);
    o.file_size_max = 100;
    o.quota_bytes = 150;
    struct env e;
    env_open(&e, &o);
    uint64_t f, t, d;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "tmp", 0, &t), 0);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "d", 0, &d), 0);
    struct store_cmd c = {.op = STORE_OP_WRITE,
                          .ino = f,
                          .data = "abc",
                          .data_len = 3,
                          .set_mask = STORE_SET_MODE | STORE_SET_UID |
                                      STORE_SET_GID | STORE_SET_MTIME,
                          .mode = 0600,
                          .uid = 5,
                          .gid = 6,
                          .mtime_ns = 22};
    struct store_stats s0, s1;
    store_get_stats(e.st, &s0);
    CHECK_EQ(run(&e, &c).err, 0);
    store_get_stats(e.st, &s1);
    CHECK_EQ(s1.revision, s0.revision + 1);
    struct store_attr a;
    const void* data;
    size_t len;
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.mode, 0600);
    CHECK_EQ(a.uid, 5);
    CHECK_EQ(a.gid, 6);
    CHECK_EQ(a.mtime_ns, 22);
    CHECK_EQ(a.size, 3);
    /* without MTIME the content's time is the command's */
    c.set_mask = 0;
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.mtime_ns, e.now);
    CHECK_EQ(a.mode, 0600);

    /* RENAME tmp -> f with tmp's new content: one revision */
    struct store_cmd r = {.op = STORE_OP_RENAME,
                          .parent = 1,
                          .name = "tmp",
                          .new_parent = 1,
                          .new_name = "f",
                          .flags = STORE_WITH_DATA,
                          .ino = t,
                          .data = "new",
                          .data_len = 3};
    char big[120];
    memset(big, 'x', sizeof(big));
    /* refused whole: another ino, too big, over the quota, a directory */
    r.ino = f;
    CHECK_EQ(run(&e, &r).err, -EINVAL);
    r.ino = t;
    r.data = big;
    r.data_len = 101;
    CHECK_EQ(run(&e, &r).err, -EFBIG);
    uint64_t g;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "g", 0, &g), 0);
    CHECK_EQ(wr(&e, g, big, 100), 0);
    r.data_len = 60; /* 100 (g) + 3 (f) + 60 > 150 */
    CHECK_EQ(run(&e, &r).err, -ENOSPC);
    r.name = "d";
    r.ino = d;
    r.data_len = 1;
    CHECK_EQ(run(&e, &r).err, -EINVAL);
    CHECK_EQ(store_read(e.st, t, &data, &len), 0);
    CHECK_EQ(len, 0);
    CHECK_EQ(ino_of(&e, 1, "tmp"), t);
    store_get_stats(e.st, &s0);
    r.name = "tmp";
    r.ino = t;
    r.data = "new";
    r.data_len = 3;
    r.set_mask = STORE_SET_MODE;
    r.mode = 0640;
    CHECK_EQ(run(&e, &r).err, 0);
    store_get_stats(e.st, &s1);
    CHECK_EQ(s1.revision, s0.revision + 1);
    CHECK_EQ(ino_of(&e, 1, "tmp"), 0);
    CHECK_EQ(ino_of(&e, 1, "f"), t);
    CHECK_EQ(store_read(e.st, t, &data, &len), 0);
    CHECK_EQ(len, 3);
    CHECK_MEM(data, "new", 3);
    CHECK_EQ(store_getattr(e.st, t, &a), 0);
    CHECK_EQ(a.mode, 0640);
    CHECK_EQ(store_getattr(e.st, f, &a), -ENOENT);
    env_close(&e);
}

/* FIFOs, sockets and device nodes: one MKNOD each, with type and rdev kept
 * through the db file (a reopen), an image install and a past revision. */
/* A deferred create (issue 11): CREATE with its content, mode, owner and
 * times is one revision; a file made meanwhile is replaced whole in place;
 * refused whole for a directory, a missing parent, past the size limit. */
static void test_create_with_data(void)
{
    struct store_options o;
    store_options_default(&o);
    o.file_size_max = 100;
    struct env e;
    env_open(&e, &o);
    struct store_cmd c = {.op = STORE_OP_CREATE,
                          .flags = STORE_WITH_DATA,
                          .parent = 1,
                          .name = "new",
                          .mode = 0640,
                          .uid = 7,
                          .gid = 8,
                          .set_mask = STORE_SET_MTIME | STORE_SET_ATIME,
                          .atime_ns = 11,
                          .mtime_ns = 22,
                          .data = "abc",
                          .data_len = 3};
    struct store_stats s0, s1;
    store_get_stats(e.st, &s0);
    struct store_result r = run(&e, &c);
    CHECK_EQ(r.err, 0);
    store_get_stats(e.st, &s1);
    CHECK_EQ(s1.revision, s0.revision + 1);
    struct store_attr a;
    CHECK_EQ(store_lookup(e.st, 1, "new", &a), 0);
    CHECK_EQ(a.ino, r.ino);
    CHECK_EQ(a.mode, 0640);
    CHECK_EQ(a.uid, 7);
    CHECK_EQ(a.gid, 8);
    CHECK_EQ(a.atime_ns, 11);
    CHECK_EQ(a.mtime_ns, 22);
    check_content(&e, r.ino, "abc");
    /* made meanwhile: the last commit wins, the ino stays */
    uint64_t ino = r.ino;
    c.data = "xy";
    c.data_len = 2;
    c.mode = 0600;
    c.set_mask = 0;
    r = run(&e, &c);
    CHECK_EQ(r.err, 0);
    CHECK_EQ(r.ino, ino);
    CHECK_EQ(store_getattr(e.st, ino, &a), 0);
    CHECK_EQ(a.mode, 0600);
    CHECK_EQ(a.version, 2);
    check_content(&e, ino, "xy");
    /* refused whole */
    c.flags |= STORE_EXCL;
    CHECK_EQ(run(&e, &c).err, -EEXIST);
    c.flags = STORE_WITH_DATA;
    uint64_t d;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "d", 0, &d), 0);
    c.name = "d";
    CHECK_EQ(run(&e, &c).err, -EISDIR);
    c.parent = 999;
    c.name = "x";
    CHECK_EQ(run(&e, &c).err, -ENOENT);
    c.parent = 1;
    char big[101];
    memset(big, 'x', sizeof(big));
    c.data = big;
    c.data_len = sizeof(big);
    CHECK_EQ(run(&e, &c).err, -EFBIG);
    CHECK_EQ(store_lookup(e.st, 1, "x", &a), -ENOENT);
    env_close(&e);
}

static int mknod_(struct env* e,
                  uint64_t parent,
                  const char* name,
                  uint8_t type,
                  uint64_t rdev)
{
    struct store_cmd c = {.op = STORE_OP_MKNOD,
                          .type = type,
                          .parent = parent,
                          .name = name,
                          .mode = 0640,
                          .uid = 3,
                          .gid = 4,
                          .size = rdev};
    return run(e, &c).err;
}

static void check_special(struct store* st,
                          const char* name,
                          uint8_t type,
                          uint64_t rdev)
{
    struct store_attr a;
    CHECK_EQ(store_lookup(st, STORE_ROOT_INO, name, &a), 0);
    CHECK_EQ(a.type, type);
    CHECK_EQ(a.mode, 0640);
    CHECK_EQ(a.uid, 3);
    CHECK_EQ(a.size, 0);
    CHECK_EQ(a.rdev, rdev);
    CHECK_EQ(a.nlink, 1);
}

static void check_specials(struct store* st)
{
    check_special(st, "fifo", STORE_FIFO, 0);
    check_special(st, "sock", STORE_SOCK, 0);
    check_special(st, "chr", STORE_CHR, 0x103);
    check_special(st, "blk", STORE_BLK, 0xfffff07c8ull);
}

static void test_special_files(void)
{
    struct env e;
    env_open(&e, NULL);
    CHECK_EQ(mknod_(&e, 1, "fifo", STORE_FIFO, 99), 0); /* rdev ignored */
    CHECK_EQ(mknod_(&e, 1, "sock", STORE_SOCK, 0), 0);
    CHECK_EQ(mknod_(&e, 1, "chr", STORE_CHR, 0x103), 0);
    CHECK_EQ(mknod_(&e, 1, "blk", STORE_BLK, 0xfffff07c8ull), 0);
    struct store_stats ss;
    store_get_stats(e.st, &ss);
    uint64_t rev = ss.revision;
    check_specials(e.st);
    /* an existing name, a bad parent, a type the codec refuses */
    CHECK_EQ(mknod_(&e, 1, "fifo", STORE_FIFO, 0), -EEXIST);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "chr", STORE_EXCL, NULL), -EEXIST);
    CHECK_EQ(mknod_(&e, ino_of(&e, 1, "fifo"), "x", STORE_FIFO, 0), -ENOTDIR);
    CHECK_EQ(mknod_(&e, 1, ".snapshots", STORE_FIFO, 0), -EPERM);
    CHECK_EQ(mknod_(&e, 1, "d", STORE_DIR, 0), -EBADMSG);
    CHECK_EQ(mknod_(&e, 1, "f", STORE_FILE, 0), -EBADMSG);
    /* no content to write or truncate; attributes as any entry's */
    CHECK_EQ(wr(&e, ino_of(&e, 1, "fifo"), "x", 1), -EINVAL);
    struct store_cmd c = {.op = STORE_OP_SETATTR,
                          .ino = ino_of(&e, 1, "chr"),
                          .set_mask = STORE_SET_SIZE,
                          .size = 0};
    CHECK_EQ(run(&e, &c).err, -EINVAL);
    c.set_mask = STORE_SET_UID;
    c.uid = 3;
    CHECK_EQ(run(&e, &c).err, 0);
    /* a past revision */
    struct store_view* v;
    CHECK_EQ(store_view_open(e.st, rev, &v), 0);
    struct store_attr a;
    CHECK_EQ(store_view_lookup(v, STORE_ROOT_INO, "blk", &a), 0);
    CHECK_EQ(a.type, STORE_BLK);
    CHECK_EQ(a.rdev, 0xfffff07c8ull);
    CHECK_EQ(a.size, 0);
    CHECK_EQ(store_view_lookup(v, STORE_ROOT_INO, "sock", &a), 0);
    CHECK_EQ(a.type, STORE_SOCK);
    store_view_release(v);
    /* the db file: reopened */
    reopen(&e);
    check_specials(e.st);
    /* an image, installed in another store */
    void* img;
    size_t len;
    CHECK_EQ(store_image_build(e.st, &img, &len), 0);
    struct store_image_info info;
    CHECK_EQ(store_image_inspect(img, len, &info, NULL, 0), 0);
    CHECK_EQ(info.keys, 4);
    char db2[128];
    snprintf(db2, sizeof(db2), "%s/db2", e.dir);
    struct store* st2;
    struct store_options def;
    store_options_default(&def);
    CHECK_EQ(store_open(db2, &def, &st2, NULL), 0);
    CHECK_EQ(store_image_install(st2, img, len), 0);
    check_specials(st2);
    store_close(st2);
    unlink(db2);
    free(img);
    env_close(&e);
}

int main(void)
{
    RUN(test_update_entries);
    RUN(test_create_with_data);
    RUN(test_special_files);
    RUN(test_big_dir_and_memory);
    RUN(test_read_at);
    RUN(test_in_place_updates);
    return 0;
}
