/* test_store.c - command semantics of the store: every op and its errors,
 * names and limits, the quota's root reserve, MVCC fields, dedup and
 * cancels, change callbacks. More in test_store_updates.c; the harness is
 * store_env.h. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "store_env.h"

/* store/store_internal.h STORE_DEDUP_WINDOW: seqs kept below the highest. */
enum { STORE_DEDUP_WINDOW_TEST = 64 };

static void test_root(void)
{
    struct env e;
    env_open(&e, NULL);
    struct store_attr a;
    CHECK_EQ(store_getattr(e.st, STORE_ROOT_INO, &a), 0);
    CHECK_EQ(a.type, STORE_DIR);
    CHECK_EQ(a.mode, 0755);
    CHECK_EQ(a.uid, 0);
    CHECK_EQ(a.create_rev, 0);
    CHECK_EQ(a.nlink, 2);
    char p[16];
    CHECK_EQ(store_path(e.st, STORE_ROOT_INO, p, sizeof(p)), 0);
    CHECK(strcmp(p, "/") == 0);
    env_close(&e);
}

static void test_create_write_read(void)
{
    struct env e;
    env_open(&e, NULL);
    uint64_t d, f, f2;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "app", 0, &d), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "db.conf", 0, &f), 0);
    CHECK(f > d && d > 1);
    struct store_attr a;
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.size, 0);
    CHECK_EQ(a.version, 1);
    CHECK_EQ(a.create_rev, a.mod_rev);
    uint64_t crev = a.create_rev;
    CHECK_EQ(wr(&e, f, "hello", 5), 0);
    const void* data;
    size_t len;
    CHECK_EQ(store_read(e.st, f, &data, &len), 0);
    CHECK_EQ(len, 5);
    CHECK_MEM(data, "hello", 5);
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.version, 2);
    CHECK_EQ(a.create_rev, crev);
    CHECK_EQ(a.mod_rev, crev + 1);
    CHECK_EQ(a.mtime_ns, e.now);
    /* existing file: same ino, unchanged; TRUNC: new version, size 0 */
    struct store_stats s0, s1;
    store_get_stats(e.st, &s0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "db.conf", 0, &f2), 0);
    CHECK_EQ(f2, f);
    store_get_stats(e.st, &s1);
    CHECK_EQ(s1.revision, s0.revision);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "db.conf", STORE_TRUNC, &f2), 0);
    CHECK_EQ(f2, f);
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.size, 0);
    CHECK_EQ(a.version, 3);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "db.conf", STORE_EXCL, NULL), -EEXIST);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "app", 0, NULL), -EISDIR);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 999, "x", 0, NULL), -ENOENT);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, f, "x", 0, NULL), -ENOTDIR);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, d, "db.conf", 0, NULL), -EEXIST);
    CHECK_EQ(mk(&e, STORE_OP_SYMLINK, d, "db.conf", 0, NULL), -EEXIST);
    /* path */
    char p[64];
    CHECK_EQ(store_path(e.st, f, p, sizeof(p)), 0);
    CHECK(strcmp(p, "/app/db.conf") == 0);
    CHECK_EQ(store_path(e.st, f, p, 5), -ENAMETOOLONG);
    /* write errors */
    CHECK_EQ(wr(&e, 999, "x", 1), -ENOENT);
    CHECK_EQ(wr(&e, d, "x", 1), -EISDIR);
    CHECK_EQ(store_read(e.st, d, &data, &len), -EISDIR);
    /* symlink */
    uint64_t l;
    CHECK_EQ(mk(&e, STORE_OP_SYMLINK, d, "link", 0, &l), 0);
    CHECK_EQ(store_read(e.st, l, &data, &len), 0);
    CHECK_EQ(len, 6);
    CHECK_MEM(data, "target", 6);
    CHECK_EQ(store_getattr(e.st, l, &a), 0);
    CHECK_EQ(a.type, STORE_SYMLINK);
    CHECK_EQ(a.size, 6);
    CHECK(e.changes > 0);
    env_close(&e);
}

static void test_names(void)
{
    struct env e;
    env_open(&e, NULL);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "", 0, NULL), -EINVAL);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, ".", 0, NULL), -EINVAL);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "..", 0, NULL), -EINVAL);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "a/b", 0, NULL), -EINVAL);
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = 0;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, longname, 0, NULL), -ENAMETOOLONG);
    longname[255] = 0;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, longname, 0, NULL), 0);
    struct store_attr a;
    longname[255] = 'n';
    CHECK_EQ(store_lookup(e.st, 1, longname, &a), -ENAMETOOLONG);
    /* reserved names at the root only */
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, ".snapshots", 0, NULL), -EPERM);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, ".cluster", 0, NULL), -EPERM);
    CHECK_EQ(rm(&e, STORE_OP_RMDIR, 1, ".snapshots"), -EPERM);
    CHECK_EQ(rm(&e, STORE_OP_UNLINK, 1, ".cluster"), -EPERM);
    uint64_t d, f;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "d", 0, &d), 0);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, d, ".snapshots", 0, NULL), 0);
    CHECK_EQ(mv(&e, d, ".snapshots", 1, ".snapshots", 0), -EPERM);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    CHECK_EQ(mv(&e, 1, "f", 1, ".cluster", 0), -EPERM);
    /* path_max */
    struct store_options o;
    store_options_default(&o);
    o.path_max = 12;
    struct env e2;
    env_open(&e2, &o);
    CHECK_EQ(mk(&e2, STORE_OP_MKDIR, 1, "abcde", 0, &d), 0);    /* /abcde */
    CHECK_EQ(mk(&e2, STORE_OP_CREATE, d, "12345", 0, NULL), 0); /* 12 */
    CHECK_EQ(mk(&e2, STORE_OP_CREATE, d, "123456", 0, NULL), -ENAMETOOLONG);
    env_close(&e2);
    env_close(&e);
}

static void test_limits(void)
{
    struct store_options o;
    store_options_default(&o);
    o.file_size_max = 100;
    o.quota_bytes = 150;
    struct env e;
    env_open(&e, &o);
    uint64_t f, g;
    char buf[200];
    memset(buf, 'x', sizeof(buf));
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "g", 0, &g), 0);
    CHECK_EQ(wr(&e, f, buf, 101), -EFBIG);
    CHECK_EQ(wr(&e, f, buf, 100), 0);
    CHECK_EQ(wr(&e, g, buf, 51), -ENOSPC);
    CHECK_EQ(wr(&e, g, buf, 50), 0);
    struct store_stats s;
    store_get_stats(e.st, &s);
    CHECK_EQ(s.live_bytes, 150);
    CHECK_EQ(wr(&e, f, buf, 60), 0); /* shrinking: allowed */
    struct store_cmd c = {.op = STORE_OP_SETATTR,
                          .ino = g,
                          .set_mask = STORE_SET_SIZE,
                          .size = 91};
    CHECK_EQ(run(&e, &c).err, -ENOSPC);
    c.size = 101;
    CHECK_EQ(run(&e, &c).err, -EFBIG);
    c.size = 90;
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(rm(&e, STORE_OP_UNLINK, 1, "f"), 0); /* deletes allowed */
    store_get_stats(e.st, &s);
    CHECK_EQ(s.live_bytes, 90);
    env_close(&e);
}

static struct store_result wr_pct(struct env* e,
                                  uint64_t ino,
                                  const char* data,
                                  size_t len,
                                  uint8_t pct)
{
    struct store_cmd c = {.op = STORE_OP_WRITE,
                          .ino = ino,
                          .data = data,
                          .data_len = len,
                          .reserve_pct = pct};
    return run(e, &c);
}

/* The quota's root reserve: a command carrying reserve_pct P grows
 * content only up to quota - floor(quota x P / 100); one with 0 (root's)
 * up to the quota. Every kind of growth is held to it; shrinking and
 * removing are not. */
static void test_quota_reserve(void)
{
    struct store_options o;
    store_options_default(&o);
    o.quota_bytes = 1000;
    struct env e;
    env_open(&e, &o);
    uint64_t f, g, h;
    char buf[1000];
    memset(buf, 'x', sizeof(buf));
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "g", 0, &g), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "h", 0, &h), 0);
    /* 10%: a limit of 900 live bytes */
    CHECK_EQ(wr_pct(&e, f, buf, 901, 10).err, -ENOSPC);
    struct store_result r = wr_pct(&e, f, buf, 900, 10);
    CHECK_EQ(r.err, 0);
    uint64_t rev = r.revision;
    CHECK_EQ(wr_pct(&e, g, buf, 1, 10).err, -ENOSPC);
    /* the refusal changed nothing */
    struct store_stats s;
    store_get_stats(e.st, &s);
    CHECK_EQ(s.live_bytes, 900);
    CHECK_EQ(s.revision, rev);
    /* a smaller reserve, and root's none, go further */
    CHECK_EQ(wr_pct(&e, g, buf, 50, 5).err, 0);
    CHECK_EQ(wr_pct(&e, g, buf, 51, 5).err, -ENOSPC);
    CHECK_EQ(wr_pct(&e, h, buf, 50, 0).err, 0);
    CHECK_EQ(wr_pct(&e, h, buf, 51, 0).err, -ENOSPC); /* the full quota */
    /* shrinking under a reserve is allowed, past its limit too */
    CHECK_EQ(wr_pct(&e, f, buf, 899, 50).err, 0);
    /* SETATTR size, SYMLINK and MKNOD content, RENAME with data */
    struct store_cmd c = {.op = STORE_OP_SETATTR,
                          .ino = f,
                          .set_mask = STORE_SET_SIZE,
                          .size = 900,
                          .reserve_pct = 10};
    CHECK_EQ(run(&e, &c).err, -ENOSPC);
    c.reserve_pct = 0;
    CHECK_EQ(run(&e, &c).err, 0);                /* root: 1000 live */
    CHECK_EQ(wr_pct(&e, f, buf, 700, 0).err, 0); /* 800 live */
    struct store_cmd sl = {.op = STORE_OP_SYMLINK,
                           .parent = 1,
                           .name = "l",
                           .mode = 0777,
                           .data = buf,
                           .data_len = 101,
                           .reserve_pct = 10};
    CHECK_EQ(run(&e, &sl).err, -ENOSPC);
    sl.data_len = 100;
    CHECK_EQ(run(&e, &sl).err, 0); /* 900 live */
    struct store_cmd dev = {.op = STORE_OP_MKNOD,
                            .type = STORE_CHR,
                            .parent = 1,
                            .name = "dev",
                            .mode = 0600,
                            .size = 7,
                            .reserve_pct = 10};
    CHECK_EQ(run(&e, &dev).err, -ENOSPC);
    /* an empty entry counts nothing: created under any reserve */
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "t", 0, NULL), 0);
    struct store_cmd mvd = {.op = STORE_OP_RENAME,
                            .flags = STORE_WITH_DATA,
                            .parent = 1,
                            .name = "t",
                            .new_parent = 1,
                            .new_name = "u",
                            .ino = ino_of(&e, 1, "t"),
                            .data = buf,
                            .data_len = 1,
                            .reserve_pct = 10};
    CHECK_EQ(run(&e, &mvd).err, -ENOSPC);
    mvd.reserve_pct = 0;
    CHECK_EQ(run(&e, &mvd).err, 0);
    /* a large quota does not overflow the limit's arithmetic */
    env_close(&e);
    o.quota_bytes = UINT64_MAX / 2;
    env_open(&e, &o);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    CHECK_EQ(wr_pct(&e, f, buf, 1000, 50).err, 0);
    env_close(&e);
    o.quota_bytes = 1099;
    env_open(&e, &o);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    /* 1099 - floor(1099 x 10 / 100) = 1099 - 109 = 990 */
    CHECK_EQ(wr_pct(&e, f, buf, 991, 10).err, -ENOSPC);
    CHECK_EQ(wr_pct(&e, f, buf, 990, 10).err, 0);
    env_close(&e);
}

static void test_setattr(void)
{
    struct env e;
    env_open(&e, NULL);
    uint64_t f, d;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "d", 0, &d), 0);
    CHECK_EQ(wr(&e, f, "abcdef", 6), 0);
    struct store_cmd c = {.op = STORE_OP_SETATTR,
                          .ino = f,
                          .set_mask = STORE_SET_MODE | STORE_SET_UID |
                                      STORE_SET_GID | STORE_SET_ATIME |
                                      STORE_SET_MTIME,
                          .mode = 0100600,
                          .uid = 5,
                          .gid = 6,
                          .atime_ns = 11,
                          .mtime_ns = 22};
    CHECK_EQ(run(&e, &c).err, 0);
    struct store_attr a;
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.mode, 0600);
    CHECK_EQ(a.uid, 5);
    CHECK_EQ(a.gid, 6);
    CHECK_EQ(a.atime_ns, 11);
    CHECK_EQ(a.mtime_ns, 22);
    CHECK_EQ(a.ctime_ns, e.now);
    c = (struct store_cmd){.op = STORE_OP_SETATTR,
                           .ino = f,
                           .set_mask = STORE_SET_SIZE,
                           .size = 3};
    CHECK_EQ(run(&e, &c).err, 0);
    const void* data;
    size_t len;
    CHECK_EQ(store_read(e.st, f, &data, &len), 0);
    CHECK_EQ(len, 3);
    CHECK_MEM(data, "abc", 3);
    c.size = 8;
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(store_read(e.st, f, &data, &len), 0);
    CHECK_EQ(len, 8);
    CHECK_MEM(data, "abc\0\0\0\0\0", 8);
    c.ino = d;
    CHECK_EQ(run(&e, &c).err, -EISDIR);
    c.ino = 999;
    CHECK_EQ(run(&e, &c).err, -ENOENT);
    env_close(&e);
}

/* A WRITE's size is the ctime its writer's mount showed (not past the
 * command's time; 0: the command's), its mtime the one it sets. */
static void test_write_times(void)
{
    struct env e;
    env_open(&e, NULL);
    uint64_t f;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, 1, "f", 0, &f), 0);
    struct store_cmd c = {.op = STORE_OP_WRITE,
                          .ino = f,
                          .data = "abc",
                          .data_len = 3,
                          .set_mask = STORE_SET_MTIME,
                          .mtime_ns = 500,
                          .size = 700};
    CHECK_EQ(run(&e, &c).err, 0);
    struct store_attr a;
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.mtime_ns, 500);
    CHECK_EQ(a.ctime_ns, 700);
    c.size = UINT64_MAX; /* past the command's time: the command's */
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.ctime_ns, e.now);
    c.size = 0;
    c.set_mask = 0;
    CHECK_EQ(run(&e, &c).err, 0);
    CHECK_EQ(store_getattr(e.st, f, &a), 0);
    CHECK_EQ(a.ctime_ns, e.now);
    CHECK_EQ(a.mtime_ns, e.now);
    env_close(&e);
}

static void test_remove(void)
{
    struct env e;
    env_open(&e, NULL);
    uint64_t d, f, sub;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "d", 0, &d), 0);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, d, "sub", 0, &sub), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, d, "f", 0, &f), 0);
    struct store_attr a;
    CHECK_EQ(store_getattr(e.st, d, &a), 0);
    CHECK_EQ(a.nlink, 3);
    CHECK_EQ(store_getattr(e.st, 1, &a), 0);
    CHECK_EQ(a.nlink, 3);
    int64_t before = a.mtime_ns;
    CHECK_EQ(rm(&e, STORE_OP_UNLINK, d, "nope"), -ENOENT);
    CHECK_EQ(rm(&e, STORE_OP_UNLINK, d, "sub"), -EISDIR);
    CHECK_EQ(rm(&e, STORE_OP_RMDIR, d, "f"), -ENOTDIR);
    CHECK_EQ(rm(&e, STORE_OP_RMDIR, 1, "d"), -ENOTEMPTY);
    e.changes = 0;
    CHECK_EQ(rm(&e, STORE_OP_UNLINK, d, "f"), 0);
    CHECK(e.changes >= 2);
    CHECK(e.last_removed.removed);
    CHECK_EQ(e.last_removed.ino, f);
    CHECK_EQ(e.last_removed.parent, d);
    CHECK_EQ(store_getattr(e.st, f, &a), -ENOENT);
    CHECK_EQ(rm(&e, STORE_OP_RMDIR, d, "sub"), 0);
    CHECK_EQ(store_getattr(e.st, d, &a), 0);
    CHECK_EQ(a.nlink, 2);
    CHECK_EQ(a.mtime_ns, e.now);
    CHECK_EQ(rm(&e, STORE_OP_RMDIR, 1, "d"), 0);
    CHECK_EQ(store_getattr(e.st, 1, &a), 0);
    CHECK(a.mtime_ns > before);
    CHECK_EQ(a.nlink, 2);
    /* recreate: new ino, version 1 */
    uint64_t d2;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "d", 0, &d2), 0);
    CHECK(d2 > f);
    CHECK_EQ(store_getattr(e.st, d2, &a), 0);
    CHECK_EQ(a.version, 1);
    struct store_stats s;
    store_get_stats(e.st, &s);
    CHECK_EQ(s.keys, 1);
    env_close(&e);
}

static void test_rename(void)
{
    struct env e;
    env_open(&e, NULL);
    uint64_t a, b, f, g, sub, empty;
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "a", 0, &a), 0);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, 1, "b", 0, &b), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, a, "f", 0, &f), 0);
    CHECK_EQ(mk(&e, STORE_OP_CREATE, b, "g", 0, &g), 0);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, a, "sub", 0, &sub), 0);
    CHECK_EQ(mk(&e, STORE_OP_MKDIR, b, "empty", 0, &empty), 0);
    CHECK_EQ(wr(&e, f, "F", 1), 0);
    struct store_stats st0, st1;
    store_get_stats(e.st, &st0);
    CHECK_EQ(mv(&e, a, "nope", b, "x", 0), -ENOENT);
    CHECK_EQ(mv(&e, 1, "a", sub, "x", 0), -EINVAL);
    CHECK_EQ(mv(&e, 1, "a", a, "x", 0), -EINVAL);
    CHECK_EQ(mv(&e, a, "f", b, "g", STORE_NOREPLACE), -EEXIST);
    CHECK_EQ(mv(&e, a, "f", b, "empty", 0), -EISDIR);
    CHECK_EQ(mv(&e, a, "sub", b, "g", 0), -ENOTDIR);
    CHECK_EQ(mv(&e, 1, "b", 1, "a", 0), -ENOTEMPTY);
    CHECK_EQ(mv(&e, a, "f", b, "zz", STORE_EXCHANGE), -ENOENT);
    CHECK_EQ(mv(&e, a, "f", b, "g", STORE_EXCHANGE | STORE_NOREPLACE), -EINVAL);
    store_get_stats(e.st, &st1); /* failed commands change nothing */
    CHECK_EQ(st1.revision, st0.revision);
    CHECK_EQ(st1.keys, st0.keys);
    CHECK_EQ(ino_of(&e, a, "f"), f);
    CHECK_EQ(ino_of(&e, b, "g"), g);
    struct store_stats s0, s1;
    store_get_stats(e.st, &s0);
    CHECK_EQ(mv(&e, a, "f", a, "f", 0), 0); /* onto itself: no-op */
    store_get_stats(e.st, &s1);
    CHECK_EQ(s1.revision, s0.revision);
    /* plain move keeps the ino and content */
    CHECK_EQ(mv(&e, a, "f", b, "f2", 0), 0);
    CHECK_EQ(ino_of(&e, b, "f2"), f);
    CHECK_EQ(ino_of(&e, a, "f"), 0);
    const void* data;
    size_t len;
    CHECK_EQ(store_read(e.st, f, &data, &len), 0);
    CHECK_MEM(data, "F", 1);
    /* replace a file */
    CHECK_EQ(mv(&e, b, "f2", b, "g", 0), 0);
    CHECK_EQ(ino_of(&e, b, "g"), f);
    struct store_attr at;
    CHECK_EQ(store_getattr(e.st, g, &at), -ENOENT);
    /* exchange */
    uint64_t h;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, a, "h", 0, &h), 0);
    CHECK_EQ(mv(&e, a, "h", b, "g", STORE_EXCHANGE), 0);
    CHECK_EQ(ino_of(&e, a, "h"), f);
    CHECK_EQ(ino_of(&e, b, "g"), h);
    /* exchange a dir with a file across dirs: nlink follows */
    CHECK_EQ(mv(&e, a, "sub", b, "g", STORE_EXCHANGE), 0);
    CHECK_EQ(ino_of(&e, b, "g"), sub);
    CHECK_EQ(ino_of(&e, a, "sub"), h);
    CHECK_EQ(store_getattr(e.st, a, &at), 0);
    CHECK_EQ(at.nlink, 2);
    CHECK_EQ(store_getattr(e.st, b, &at), 0);
    CHECK_EQ(at.nlink, 4); /* empty + g */
    /* move a directory subtree: one re-parent; paths follow */
    uint64_t deep;
    CHECK_EQ(mk(&e, STORE_OP_CREATE, sub, "deep", 0, &deep), 0);
    CHECK_EQ(mv(&e, b, "g", 1, "moved", 0), 0);
    char p[64];
    CHECK_EQ(store_path(e.st, deep, p, sizeof(p)), 0);
    CHECK(strcmp(p, "/moved/deep") == 0);
    /* dir over empty dir */
    CHECK_EQ(mv(&e, 1, "moved", b, "empty", 0), 0);
    CHECK_EQ(store_getattr(e.st, empty, &at), -ENOENT);
    CHECK_EQ(store_path(e.st, deep, p, sizeof(p)), 0);
    CHECK(strcmp(p, "/b/empty/deep") == 0);
    CHECK_EQ(store_getattr(e.st, b, &at), 0);
    CHECK_EQ(at.mtime_ns, e.now);
    env_close(&e);
}

static void test_dedup_and_errors(void)
{
    struct env e;
    env_open(&e, NULL);
    static uint8_t buf[4096];
    struct store_cmd c = {.op = STORE_OP_MKDIR,
                          .parent = 1,
                          .name = "x",
                          .origin = 3,
                          .seq = 10,
                          .mode = 0700};
    long n = store_cmd_encode(&c, buf, sizeof(buf));
    struct store_result r;
    CHECK_EQ(store_apply(e.st, 1, buf, (size_t)n, NULL, NULL, &r), 0);
    CHECK_EQ(r.err, 0);
    CHECK_EQ(r.revision, 1);
    CHECK_EQ(store_apply(e.st, 2, buf, (size_t)n, NULL, NULL, &r), 0);
    CHECK(r.duplicate);
    CHECK_EQ(store_applied_index(e.st), 2);
    /* out-of-order seqs inside the window are each applied once */
    for (uint64_t s = 5; s < 10; s++) {
        c.seq = s;
        c.name = "y";
        n = store_cmd_encode(&c, buf, sizeof(buf));
        CHECK_EQ(store_apply(e.st, 3 + 2 * s, buf, (size_t)n, NULL, NULL, &r),
                 0);
        CHECK(!r.duplicate);
        CHECK_EQ(r.err, s == 5 ? 0 : -EEXIST);
        CHECK_EQ(store_apply(e.st, 4 + 2 * s, buf, (size_t)n, NULL, NULL, &r),
                 0);
        CHECK(r.duplicate);
    }
    c.seq = 200;
    n = store_cmd_encode(&c, buf, sizeof(buf));
    CHECK_EQ(store_apply(e.st, 40, buf, (size_t)n, NULL, NULL, &r), 0);
    CHECK(!r.duplicate);
    c.seq = 100; /* older than the window: counts as duplicate */
    n = store_cmd_encode(&c, buf, sizeof(buf));
    CHECK_EQ(store_apply(e.st, 41, buf, (size_t)n, NULL, NULL, &r), 0);
    CHECK(r.duplicate);
    c.seq = 150; /* inside the window, never seen */
    n = store_cmd_encode(&c, buf, sizeof(buf));
    CHECK_EQ(store_apply(e.st, 42, buf, (size_t)n, NULL, NULL, &r), 0);
    CHECK(!r.duplicate);
    /* malformed command bytes: an error result, index advances */
    uint64_t rev = r.revision;
    CHECK_EQ(store_apply(e.st, 43, "junk", 4, NULL, NULL, &r), 0);
    CHECK_EQ(r.err, -EBADMSG);
    CHECK_EQ(r.revision, rev);
    CHECK_EQ(store_applied_index(e.st), 43);
    CHECK_EQ(store_apply_index(e.st, 45), 0);
    CHECK_EQ(store_applied_index(e.st), 45);
    env_close(&e);
}

/* Apply cmd (origin 9, seq) at the next index; returns the result. */
static struct store_result apply_as(struct env* e,
                                    struct store_cmd* c,
                                    uint64_t seq)
{
    static uint8_t buf[4096];
    c->origin = 9;
    c->seq = seq;
    long n = store_cmd_encode(c, buf, sizeof(buf));
    CHECK(n > 0);
    struct store_result r;
    CHECK_EQ(store_apply(e->st, ++e->idx, buf, (size_t)n, NULL, NULL, &r), 0);
    return r;
}

/* STORE_OP_CANCEL (fs/node.c fences a timed-out proposal with it): of a
 * proposal and its cancel, the first applied wins and the other is a
 * duplicate; the cancel makes no revision; the fence survives a reopen. */
static void test_cancel(void)
{
    struct env e;
    env_open(&e, NULL);
    struct store_cmd mkx = {
        .op = STORE_OP_MKDIR, .parent = 1, .name = "x", .mode = 0700};
    struct store_cmd mky = mkx;
    mky.name = "y";
    struct store_cmd cancel = {.op = STORE_OP_CANCEL};

    struct store_result r = apply_as(&e, &cancel, 20); /* cancel first */
    CHECK(!r.duplicate);
    CHECK_EQ(r.err, 0);
    CHECK_EQ(r.revision, 0);
    r = apply_as(&e, &mkx, 20);
    CHECK(r.duplicate);
    CHECK_EQ(ino_of(&e, 1, "x"), 0);
    r = apply_as(&e, &mky, 21); /* proposal first */
    CHECK(!r.duplicate);
    CHECK_EQ(r.revision, 1);
    r = apply_as(&e, &cancel, 21);
    CHECK(r.duplicate);
    CHECK(ino_of(&e, 1, "y") != 0);
    /* what a node asks after an image install (fs/node.c) */
    CHECK_EQ(store_dedup_applied(e.st, 9, 20), 1);
    CHECK_EQ(store_dedup_applied(e.st, 9, 21), 1);
    CHECK_EQ(store_dedup_applied(e.st, 9, 19), 0); /* in the window */
    CHECK_EQ(store_dedup_applied(e.st, 9, 22), 0); /* not yet */
    CHECK_EQ(store_dedup_applied(e.st, 8, 21), 0); /* unknown origin */
    r = apply_as(&e, &cancel, 200);
    CHECK_EQ(store_dedup_applied(e.st, 9, 100), -1); /* below the window */
    /* the fence is in the db: still a duplicate after a reopen */
    reopen(&e);
    r = apply_as(&e, &mkx, 20);
    CHECK(r.duplicate);
    CHECK_EQ(ino_of(&e, 1, "x"), 0);
    env_close(&e);
}

/* The outcome of (origin 9, seq) as store_dedup_result gives it. */
static enum store_outcome outcome(struct env* e,
                                  uint64_t seq,
                                  struct store_result* r)
{
    return store_dedup_result(e->st, 9, seq, r);
}

/* Each seq's result, as the proposer's waiter got it from store_apply. */
static void check_outcomes(struct env* e,
                           const struct store_result* want,
                           unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        struct store_result r;
        CHECK_EQ(outcome(e, 30 + i, &r), STORE_OUTCOME_RESULT);
        CHECK_EQ(r.err, want[i].err);
        CHECK_EQ(r.ino, want[i].ino);
        CHECK_EQ(r.revision, want[i].revision);
        CHECK(!r.duplicate);
    }
    struct store_result r;
    CHECK_EQ(outcome(e, 30 + count, &r), STORE_OUTCOME_CANCELLED);
    CHECK_EQ(outcome(e, 31 + count, &r), STORE_OUTCOME_NONE);
    CHECK_EQ(store_dedup_result(e->st, 8, 30, &r), STORE_OUTCOME_NONE);
}

/* The result of every command is replicated with its (origin, seq): it
 * survives the db file (recovery) and an image install, so a node that
 * learns of its command only from an image answers the real result
 * (fs/node/node_snapshot.c). Out of the window: unknown. */
static void test_results_replicated(void)
{
    struct env e;
    env_open(&e, NULL);
    struct store_cmd mk = {
        .op = STORE_OP_MKDIR, .parent = 1, .name = "x", .mode = 0700};
    struct store_cmd create = {
        .op = STORE_OP_CREATE, .parent = 1, .name = "f", .mode = 0600};
    struct store_cmd ren = {.op = STORE_OP_RENAME,
                            .parent = 1,
                            .name = "f",
                            .new_parent = 1,
                            .new_name = "g"};
    struct store_cmd rm = {.op = STORE_OP_RMDIR, .parent = 1, .name = "nope"};
    struct store_cmd cancel = {.op = STORE_OP_CANCEL};
    struct store_result want[5];
    want[0] = apply_as(&e, &mk, 30);
    want[1] = apply_as(&e, &mk, 31); /* EEXIST */
    want[2] = apply_as(&e, &create, 32);
    want[3] = apply_as(&e, &ren, 33);
    want[4] = apply_as(&e, &rm, 34); /* ENOENT */
    CHECK(want[0].ino != 0 && want[0].revision == 1);
    CHECK_EQ(want[1].err, -EEXIST);
    CHECK_EQ(want[1].revision, 1);
    CHECK(want[2].ino != 0 && want[2].revision == 2);
    CHECK_EQ(want[3].err, 0);
    CHECK_EQ(want[3].revision, 3);
    CHECK_EQ(want[4].err, -ENOENT);
    apply_as(&e, &cancel, 35);
    check_outcomes(&e, want, 5);

    /* recovery: the db file holds the results */
    reopen(&e);
    check_outcomes(&e, want, 5);

    /* image install: another store gets the same table */
    void* img;
    size_t len;
    CHECK_EQ(store_image_build(e.st, &img, &len), 0);
    struct env f;
    env_open(&f, NULL);
    CHECK_EQ(store_image_install(f.st, img, len), 0);
    check_outcomes(&f, want, 5);
    /* and its db file too (the image's BASE frames) */
    store_close(f.st);
    struct store_options def;
    store_options_default(&def);
    CHECK_EQ(store_open(f.path, &def, &f.st, NULL), 0);
    check_outcomes(&f, want, 5);
    /* the image it builds is the same bytes */
    void* img2;
    size_t len2;
    CHECK_EQ(store_image_build(f.st, &img2, &len2), 0);
    CHECK(len2 == len && memcmp(img, img2, len) == 0);
    free(img);
    free(img2);
    env_close(&f);

    /* a seq that left the window: applied, result no longer kept */
    struct store_result r;
    apply_as(&e, &cancel, 30 + STORE_DEDUP_WINDOW_TEST + 1);
    CHECK_EQ(outcome(&e, 30, &r), STORE_OUTCOME_UNKNOWN);
    CHECK_EQ(outcome(&e, 31, &r), STORE_OUTCOME_RESULT);
    CHECK_EQ(r.err, -EEXIST);
    env_close(&e);
}

int main(void)
{
    RUN(test_root);
    RUN(test_create_write_read);
    RUN(test_names);
    RUN(test_limits);
    RUN(test_quota_reserve);
    RUN(test_setattr);
    RUN(test_write_times);
    RUN(test_remove);
    RUN(test_rename);
    RUN(test_dedup_and_errors);
    RUN(test_cancel);
    RUN(test_results_replicated);
    return 0;
}
