/* test_store_resv.c - name reservations in the store (STORE_OP_RESERVE,
 * STORE_OP_RELEASE, STORE_CLAIM): what a live reservation refuses and
 * what it lets through, invisibility (reads, revision, change callback),
 * renewal, expiry by a later command's time and the reservation clock,
 * release, the claim (one revision, consumed whatever its outcome),
 * STORE_RESV_MAX, argument errors, and the table carried by replay,
 * compaction and images; a corrupt RESV record is refused at open. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <lz4.h>
#include <xxhash.h>

#include "../../store/store_compact.h"
#include "../../store/store_history.h"
#include "check.h"
#include "history_env.h"

#define SEC 1000000000LL

enum { A = 2, B = 3, OTHER = 7 }; /* origins */

/* ---- helpers ---- */

static int changes; /* change callbacks so far */

static void count_change(void* data, const struct store_change* c)
{
    (void)data;
    (void)c;
    changes++;
}

/* Apply c as origin at the env's next time (e->now + 1). */
static struct store_result as(struct env* e,
                              uint64_t origin,
                              struct store_cmd* c)
{
    struct store_result res = run_from(e, origin, c, count_change, NULL);
    CHECK(!res.duplicate);
    return res;
}

static uint64_t last_resv_ino; /* the ino the last RESERVE took */

static int reserve(struct env* e,
                   uint64_t origin,
                   uint64_t token,
                   uint64_t parent,
                   const char* name,
                   int64_t ttl)
{
    struct store_cmd c = {.op = STORE_OP_RESERVE,
                          .parent = parent,
                          .name = name,
                          .ino = token,
                          .size = (uint64_t)ttl};
    uint64_t rev = revision(e);
    int before = changes;
    struct store_result r = as(e, origin, &c);
    CHECK_EQ(revision(e), rev); /* never a revision */
    CHECK_EQ(r.revision, rev);
    CHECK_EQ(changes, before); /* never a change callback */
    /* the ino taken for the file, on success only */
    CHECK(r.err == 0 ? r.ino >= 2 : r.ino == 0);
    last_resv_ino = r.ino;
    return r.err;
}

static int release(struct env* e, uint64_t origin, uint64_t token)
{
    struct store_cmd c = {.op = STORE_OP_RELEASE, .ino = token};
    uint64_t rev = revision(e);
    int before = changes;
    struct store_result r = as(e, origin, &c);
    CHECK_EQ(revision(e), rev);
    CHECK_EQ(changes, before);
    return r.err;
}

static struct store_result claim(struct env* e,
                                 uint64_t origin,
                                 uint64_t token,
                                 uint64_t parent,
                                 const char* name,
                                 const char* data)
{
    struct store_cmd c = {.op = STORE_OP_CREATE,
                          .flags = STORE_WITH_DATA | STORE_CLAIM,
                          .parent = parent,
                          .name = name,
                          .ino = token,
                          .mode = 0600,
                          .uid = 5,
                          .gid = 6,
                          .data = data,
                          .data_len = strlen(data)};
    return as(e, origin, &c);
}

static int op(struct env* e, uint8_t o, uint64_t parent, const char* name)
{
    struct store_cmd c = {.op = o,
                          .parent = parent,
                          .name = name,
                          .mode = 0644,
                          .type = o == STORE_OP_MKNOD ? STORE_FIFO : 0};
    if (o == STORE_OP_SYMLINK) {
        c.data = "t";
        c.data_len = 1;
    }
    return as(e, OTHER, &c).err;
}

static int create(struct env* e,
                  uint64_t parent,
                  const char* name,
                  uint32_t flags,
                  uint64_t* ino)
{
    struct store_cmd c = {.op = STORE_OP_CREATE,
                          .parent = parent,
                          .name = name,
                          .flags = flags,
                          .mode = 0644};
    if ((flags & STORE_WITH_DATA) != 0) {
        c.data = "plain";
        c.data_len = 5;
    }
    struct store_result r = as(e, OTHER, &c);
    if (ino != NULL) {
        *ino = r.ino;
    }
    return r.err;
}

static int link_(struct env* e, uint64_t ino, uint64_t parent, const char* n)
{
    struct store_cmd c = {
        .op = STORE_OP_LINK, .ino = ino, .parent = parent, .name = n};
    return as(e, OTHER, &c).err;
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
    return as(e, OTHER, &c).err;
}

static uint64_t mkdir_(struct env* e, uint64_t parent, const char* name)
{
    struct store_cmd c = {
        .op = STORE_OP_MKDIR, .parent = parent, .name = name, .mode = 0755};
    struct store_result r = as(e, OTHER, &c);
    CHECK_EQ(r.err, 0);
    return r.ino;
}

static bool exists(struct env* e, uint64_t parent, const char* name)
{
    struct store_attr a;
    return store_lookup(e->st, parent, name, &a) == 0;
}

static size_t entries(struct env* e, uint64_t dir)
{
    static struct kids k;
    k.n = 0;
    CHECK_EQ(store_readdir(e->st, dir, NULL, kid_cb, &k), 0);
    return k.n;
}

static void content_is(struct env* e, uint64_t ino, const char* want)
{
    const void* d;
    size_t len;
    CHECK_EQ(store_read(e->st, ino, &d, &len), 0);
    CHECK_EQ(len, strlen(want));
    CHECK(memcmp(d, want, len) == 0);
}

static void image_of(struct env* e, void** img, size_t* len)
{
    CHECK_EQ(store_image_build(e->st, img, len), 0);
}

static void same_image(struct env* e, const void* img, size_t len)
{
    void* now;
    size_t n;
    image_of(e, &now, &n);
    CHECK_EQ(n, len);
    CHECK(memcmp(now, img, len) == 0);
    free(now);
}

/* ---- tests ---- */

/* A live reservation refuses EXCL creates, MKDIR, SYMLINK, MKNOD, LINK and
 * RENAME_NOREPLACE onto its name; nothing reads it. */
static void test_blocks(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t f;
    CHECK_EQ(create(&e, d, "src", STORE_EXCL, &f), 0);
    CHECK_EQ(reserve(&e, A, 10, d, "f", 10 * SEC), 0);
    CHECK(!exists(&e, d, "f"));
    CHECK_EQ(entries(&e, d), 1);
    /* nor does a view of the revision */
    struct store_view* v;
    CHECK_EQ(store_view_open(e.st, revision(&e), &v), 0);
    struct store_attr va;
    CHECK_EQ(store_view_lookup(v, d, "f", &va), -ENOENT);
    static struct kids k;
    CHECK_EQ(store_view_readdir(v, d, NULL, kid_cb, &k), 0);
    CHECK_EQ(k.n, 1);
    store_view_release(v);
    uint64_t rev = revision(&e);
    CHECK_EQ(create(&e, d, "f", STORE_EXCL, NULL), -EEXIST);
    CHECK_EQ(create(&e, d, "f", STORE_EXCL | STORE_WITH_DATA, NULL), -EEXIST);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), -EEXIST);
    CHECK_EQ(op(&e, STORE_OP_SYMLINK, d, "f"), -EEXIST);
    CHECK_EQ(op(&e, STORE_OP_MKNOD, d, "f"), -EEXIST);
    CHECK_EQ(link_(&e, f, d, "f"), -EEXIST);
    CHECK_EQ(rename_(&e, d, "src", d, "f", STORE_NOREPLACE), -EEXIST);
    CHECK_EQ(revision(&e), rev);
    CHECK(!exists(&e, d, "f"));
    /* the same name elsewhere is free */
    CHECK_EQ(op(&e, STORE_OP_MKDIR, 1, "f"), 0);
    /* plain rename onto it goes ahead (the reservation stays) */
    CHECK_EQ(rename_(&e, d, "src", d, "f", 0), 0);
    CHECK(exists(&e, d, "f"));
    CHECK_EQ(op(&e, STORE_OP_UNLINK, d, "f"), 0);
    CHECK_EQ(create(&e, d, "f", STORE_EXCL, NULL), -EEXIST); /* still */
    /* plain create, and a plain create with data, go ahead */
    CHECK_EQ(create(&e, d, "f", 0, NULL), 0);
    CHECK_EQ(op(&e, STORE_OP_UNLINK, d, "f"), 0);
    CHECK_EQ(create(&e, d, "f", STORE_WITH_DATA, NULL), 0);
    CHECK(exists(&e, d, "f"));
    env_close(&e);
}

/* RESERVE's own errors: EINVAL (token, ttl), those of a CREATE of the
 * name, EEXIST for an existing name (also a hard link's name). */
static void test_reserve_errors(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t f;
    CHECK_EQ(create(&e, d, "file", STORE_EXCL, &f), 0);
    CHECK_EQ(link_(&e, f, 1, "hard"), 0);
    CHECK_EQ(reserve(&e, A, 0, d, "x", 10 * SEC), -EINVAL);
    CHECK_EQ(reserve(&e, A, 1, d, "x", STORE_RESV_TTL_MIN - 1), -EINVAL);
    CHECK_EQ(reserve(&e, A, 1, d, "x", STORE_RESV_TTL_MAX + 1), -EINVAL);
    CHECK_EQ(reserve(&e, A, 1, d, "x", -1), -EINVAL);
    CHECK_EQ(reserve(&e, A, 1, 999, "x", 10 * SEC), -ENOENT);
    CHECK_EQ(reserve(&e, A, 1, f, "x", 10 * SEC), -ENOTDIR);
    CHECK_EQ(reserve(&e, A, 1, d, "a/b", 10 * SEC), -EINVAL);
    CHECK_EQ(reserve(&e, A, 1, d, "..", 10 * SEC), -EINVAL);
    CHECK_EQ(reserve(&e, A, 1, 1, ".snapshots", 10 * SEC), -EPERM);
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK_EQ(reserve(&e, A, 1, d, longname, 10 * SEC), -ENAMETOOLONG);
    CHECK_EQ(reserve(&e, A, 1, d, "file", 10 * SEC), -EEXIST);
    CHECK_EQ(reserve(&e, A, 1, 1, "hard", 10 * SEC), -EEXIST);
    CHECK_EQ(reserve(&e, A, 1, 1, "d", 10 * SEC), -EEXIST);
    /* the limits themselves are accepted */
    CHECK_EQ(reserve(&e, A, 1, d, "x", STORE_RESV_TTL_MIN), 0);
    CHECK_EQ(reserve(&e, A, 2, d, "y", STORE_RESV_TTL_MAX), 0);
    /* another holder: another origin, or another token of the origin */
    CHECK_EQ(reserve(&e, B, 1, d, "x", 10 * SEC), -EEXIST);
    CHECK_EQ(reserve(&e, A, 3, d, "x", 10 * SEC), -EEXIST);
    CHECK_EQ(release(&e, A, 1), 0);
    CHECK_EQ(release(&e, A, 1), 0); /* idempotent */
    CHECK_EQ(release(&e, B, 99), 0);
    CHECK_EQ(reserve(&e, A, 3, d, "x", 10 * SEC), 0);
    env_close(&e);
}

/* Expiry is decided by the later command's time; the holder renews. */
static void test_expiry_and_renewal(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    e.now = 100 * SEC;
    CHECK_EQ(reserve(&e, A, 1, d, "f", 2 * SEC), 0); /* to 102 s */
    e.now = 101 * SEC;
    CHECK_EQ(reserve(&e, B, 1, d, "f", 2 * SEC), -EEXIST);
    /* renewed at 101 s + 2 ns (each command is 1 ns after the last):
     * to 103 s + 2 ns */
    CHECK_EQ(reserve(&e, A, 1, d, "f", 2 * SEC), 0);
    e.now = 102 * SEC + SEC / 2;
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), -EEXIST); /* would pass at 102 */
    CHECK_EQ(reserve(&e, B, 1, d, "f", 2 * SEC), -EEXIST);
    e.now = 103 * SEC; /* the command runs at 103 s + 1 ns: still live */
    CHECK_EQ(create(&e, d, "f", STORE_EXCL, NULL), -EEXIST);
    /* at 103 s + 2 ns it is expired: another holder takes it */
    CHECK_EQ(reserve(&e, B, 1, d, "f", 2 * SEC), 0); /* to 105 s */
    CHECK_EQ(reserve(&e, A, 1, d, "f", 2 * SEC), -EEXIST);
    /* the holder renews its own expired reservation */
    e.now = 200 * SEC;
    CHECK_EQ(reserve(&e, B, 1, d, "f", 2 * SEC), 0); /* to 202 s */
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), -EEXIST);
    e.now = 203 * SEC;
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), 0);
    env_close(&e);
}

/* The reservation clock: once a RESERVE ran at t, a reservation expired
 * at t stays expired for a later command of an earlier time (which is
 * what makes dropping expired ones safe), also one set after it by a
 * proposer whose clock is behind; without such a RESERVE the command's
 * own time decides. */
static void test_clock(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    e.now = 100 * SEC;
    CHECK_EQ(reserve(&e, A, 1, d, "f", 2 * SEC), 0); /* to 102 s */
    e.now = 101 * SEC;
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), -EEXIST);
    e.now = 300 * SEC; /* a RESERVE elsewhere at 300 s: the clock */
    CHECK_EQ(reserve(&e, B, 1, d, "g", 2 * SEC), 0);
    e.now = 101 * SEC; /* a proposer whose clock is behind */
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), 0);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "g"), -EEXIST); /* live to 302 s */
    /* set at 101 s for 2 s: expired at once (the clock is at 300 s) */
    CHECK_EQ(reserve(&e, A, 2, d, "h", 2 * SEC), 0);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "h"), 0);
    /* a renewal to 303 s: live */
    CHECK_EQ(reserve(&e, B, 1, d, "g", 202 * SEC), 0);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "g"), -EEXIST);
    env_close(&e);
}

/* RELEASE frees the names of its holder, only those. */
static void test_release(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    CHECK_EQ(reserve(&e, A, 1, d, "f", 10 * SEC), 0);
    CHECK_EQ(reserve(&e, A, 1, d, "g", 10 * SEC), 0); /* two names, one token */
    CHECK_EQ(reserve(&e, A, 2, d, "h", 10 * SEC), 0);
    CHECK_EQ(reserve(&e, B, 1, d, "i", 10 * SEC), 0);
    CHECK_EQ(release(&e, A, 1), 0);
    CHECK_EQ(create(&e, d, "f", STORE_EXCL, NULL), 0);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "g"), 0);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "h"), -EEXIST);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "i"), -EEXIST);
    env_close(&e);
}

/* The claim: the file in one revision, the reservation consumed. */
static void test_claim(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    CHECK_EQ(reserve(&e, A, 1, d, "f", 10 * SEC), 0);
    CHECK_EQ(reserve(&e, A, 1, d, "f2", 10 * SEC), 0); /* same token */
    uint64_t rev = revision(&e);
    int before = changes;
    struct store_result r = claim(&e, A, 1, d, "f", "content");
    CHECK_EQ(r.err, 0);
    CHECK_EQ(revision(&e), rev + 1);
    CHECK_EQ(r.revision, rev + 1);
    CHECK(changes > before);
    struct store_attr a;
    CHECK_EQ(store_lookup(e.st, d, "f", &a), 0);
    CHECK_EQ(a.ino, r.ino);
    CHECK_EQ(a.mode, 0600);
    CHECK_EQ(a.uid, 5);
    CHECK_EQ(a.create_rev, rev + 1);
    CHECK_EQ(a.version, 1);
    content_is(&e, r.ino, "content");
    /* every name of the token is consumed */
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f2"), 0);
    CHECK_EQ(op(&e, STORE_OP_UNLINK, d, "f"), 0);
    CHECK_EQ(create(&e, d, "f", STORE_EXCL, NULL), 0);

    /* after a plain create made the file: replaced whole, same ino */
    CHECK_EQ(reserve(&e, A, 2, d, "p", 10 * SEC), 0);
    uint64_t p;
    CHECK_EQ(create(&e, d, "p", STORE_WITH_DATA, &p), 0);
    r = claim(&e, A, 2, d, "p", "mine");
    CHECK_EQ(r.err, 0);
    CHECK_EQ(r.ino, p);
    content_is(&e, p, "mine");

    /* with STORE_EXCL as well: EEXIST on an existing name */
    CHECK_EQ(reserve(&e, A, 3, d, "q", 10 * SEC), 0);
    CHECK_EQ(create(&e, d, "q", 0, NULL), 0);
    struct store_cmd c = {.op = STORE_OP_CREATE,
                          .flags = STORE_WITH_DATA | STORE_CLAIM | STORE_EXCL,
                          .parent = d,
                          .name = "q",
                          .ino = 3,
                          .data = "x",
                          .data_len = 1};
    CHECK_EQ(as(&e, A, &c).err, -EEXIST);

    /* the parent went meanwhile: ENOENT */
    uint64_t g = mkdir_(&e, d, "gone");
    CHECK_EQ(reserve(&e, A, 4, g, "x", 10 * SEC), 0);
    CHECK_EQ(op(&e, STORE_OP_RMDIR, d, "gone"), 0); /* not held back */
    CHECK_EQ(claim(&e, A, 4, g, "x", "y").err, -ENOENT);

    /* without a reservation: a plain create with data */
    CHECK_EQ(claim(&e, A, 5, d, "none", "z").err, 0);
    env_close(&e);
}

/* A claim against another's live reservation fails, its own reservations
 * are consumed anyway. */
static void test_claim_refused(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    e.now = 100 * SEC;
    CHECK_EQ(reserve(&e, A, 1, d, "f", 2 * SEC), 0);
    CHECK_EQ(reserve(&e, A, 1, d, "other", 60 * SEC), 0);
    e.now = 103 * SEC; /* A's "f" expired: B takes it */
    CHECK_EQ(reserve(&e, B, 7, d, "f", 60 * SEC), 0);
    uint64_t rev = revision(&e);
    CHECK_EQ(claim(&e, A, 1, d, "f", "late").err, -EEXIST);
    CHECK_EQ(revision(&e), rev);
    CHECK(!exists(&e, d, "f"));
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "other"), 0);   /* consumed */
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), -EEXIST); /* B's stays */
    CHECK_EQ(claim(&e, B, 7, d, "f", "b").err, 0);
    env_close(&e);
}

/* STORE_RESV_MAX live reservations at most; expired ones do not count. */
static void test_limit(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    char name[32];
    e.now = 100 * SEC;
    for (int i = 0; i < STORE_RESV_MAX; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        /* the first expires at 110 s, the others at 160 s */
        CHECK_EQ(
            reserve(&e, A, (uint64_t)i + 1, d, name, (i == 0 ? 10 : 60) * SEC),
            0);
    }
    void* full;
    size_t full_len;
    image_of(&e, &full, &full_len);
    CHECK_EQ(reserve(&e, B, 1, d, "more", 60 * SEC), -ENOSPC);
    CHECK_EQ(reserve(&e, A, 1, d, "n0", 60 * SEC), 0); /* renewal: fine */
    CHECK_EQ(release(&e, A, 2), 0);
    CHECK_EQ(reserve(&e, B, 1, d, "more", 60 * SEC), 0);
    CHECK_EQ(reserve(&e, B, 2, d, "more2", 60 * SEC), -ENOSPC);
    /* all but the last three expire at 160 s */
    e.now = 120 * SEC;
    CHECK_EQ(reserve(&e, A, 1, d, "n0", 100 * SEC), 0); /* to 220 s */
    e.now = 170 * SEC;
    CHECK_EQ(reserve(&e, B, 2, d, "more2", 60 * SEC), 0);
    /* expired ones were dropped: the image is small again */
    void* img;
    size_t len;
    image_of(&e, &img, &len);
    CHECK(len < full_len / 20);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "n0"), -EEXIST);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "n1"), 0);
    free(img);
    free(full);
    env_close(&e);
}

/* Replay, compaction and image install keep the reservations and the
 * clock: the same outcomes after each. */
static void check_outcomes(struct env* e, uint64_t d)
{
    /* "live" is held to 1000 s; "old" (to 102 s) is expired since the
     * clock passed 500 s, even for a command stamped 101 s */
    int64_t now = e->now;
    e->now = 101 * SEC;
    CHECK_EQ(op(e, STORE_OP_MKDIR, d, "old"), 0);
    CHECK_EQ(op(e, STORE_OP_MKDIR, d, "live"), -EEXIST);
    CHECK_EQ(op(e, STORE_OP_RMDIR, d, "old"), 0);
    e->now = now;
}

static uint64_t persist_setup(struct env* e)
{
    uint64_t d = mkdir_(e, 1, "d");
    e->now = 100 * SEC;
    CHECK_EQ(reserve(e, A, 1, d, "old", 2 * SEC), 0);
    CHECK_EQ(reserve(e, A, 2, d, "live", 900 * SEC), 0);
    e->now = 500 * SEC;
    CHECK_EQ(reserve(e, B, 1, d, "tmp", 10 * SEC), 0); /* clock: 500 s */
    CHECK_EQ(release(e, B, 1), 0);
    CHECK_EQ(create(e, d, "file", STORE_WITH_DATA, NULL), 0);
    return d;
}

static void test_persist(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = persist_setup(&e);
    void* img;
    size_t len;
    image_of(&e, &img, &len);
    flush(&e);
    env_reopen(&e);
    same_image(&e, img, len);
    check_outcomes(&e, d);

    /* compaction: the BASE frames carry them */
    struct store_cmd cc = {.op = STORE_OP_COMPACT, .size = revision(&e)};
    CHECK_EQ(as(&e, OTHER, &cc).err, 0);
    CHECK_EQ(reserve(&e, B, 3, d, "after", 900 * SEC), 0); /* past the cut */
    compact_now(&e);
    env_reopen(&e);
    check_outcomes(&e, d);
    CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "after"), -EEXIST);
    free(img);

    /* image install into another store */
    image_of(&e, &img, &len);
    struct env w;
    env_open(&w, "resv-wiped");
    CHECK_EQ(store_image_install(w.st, img, len), 0);
    same_image(&w, img, len);
    w.idx = store_applied_index(w.st);
    w.seq = e.seq;
    w.now = e.now;
    check_outcomes(&w, d);
    CHECK_EQ(op(&w, STORE_OP_MKDIR, d, "after"), -EEXIST);
    flush(&w);
    env_reopen(&w); /* and from its BASE frames */
    check_outcomes(&w, d);
    env_close(&w);
    free(img);
    env_close(&e);
}

/* The clock alone (no reservation left) is carried too. */
static void test_persist_clock(void)
{
    struct env e, w;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    e.now = 500 * SEC;
    CHECK_EQ(reserve(&e, A, 1, d, "x", 10 * SEC), 0);
    CHECK_EQ(release(&e, A, 1), 0);
    void* img;
    size_t len;
    image_of(&e, &img, &len);
    env_open(&w, "resv-wiped");
    CHECK_EQ(store_image_install(w.st, img, len), 0);
    w.idx = e.idx;
    w.seq = e.seq;
    struct env* both[2] = {&e, &w};
    for (int i = 0; i < 2; i++) {
        /* stamped 100 s, to 102 s: expired at once (clock 500 s) */
        both[i]->now = 100 * SEC;
        CHECK_EQ(reserve(both[i], A, 2, d, "y", 2 * SEC), 0);
        CHECK_EQ(op(both[i], STORE_OP_MKDIR, d, "y"), 0);
    }
    free(img);
    env_close(&w);
    env_close(&e);
}

/* ---- a corrupt RESV record ---- */

/* The offset of the last frame of a db file of len bytes. */
static uint64_t last_frame(const uint8_t* f, size_t len)
{
    uint64_t off = 0, last = 0;
    while (off + 64 <= len) {
        uint32_t comp;
        memcpy(&comp, f + off + 20, 4); /* comp_len (little-endian host) */
        last = off;
        off += 64 + (uint64_t)comp;
    }
    CHECK_EQ(off, len);
    return last;
}

typedef void (*mutate_fn)(uint8_t* raw, size_t* raw_len);

/* Rewrite the last frame of the db file with its payload mutated, with a
 * valid checksum: what replay sees is the mutated record. */
static void rewrite_last(const char* path, mutate_fn mutate)
{
    FILE* fp = fopen(path, "rb");
    CHECK(fp != NULL);
    static uint8_t f[1 << 20], raw[1 << 16], out[1 << 17];
    size_t len = fread(f, 1, sizeof(f), fp);
    fclose(fp);
    uint64_t off = last_frame(f, len);
    uint8_t* h = f + off;
    uint32_t raw_len, comp;
    memcpy(&raw_len, h + 16, 4);
    memcpy(&comp, h + 20, 4);
    CHECK_EQ(LZ4_decompress_safe((const char*)h + 64, (char*)raw, (int)comp,
                                 sizeof(raw)),
             (int)raw_len);
    size_t n = raw_len;
    mutate(raw, &n);
    int c =
        LZ4_compress_default((const char*)raw, (char*)out, (int)n, sizeof(out));
    CHECK(c > 0);
    raw_len = (uint32_t)n;
    comp = (uint32_t)c;
    memcpy(h + 16, &raw_len, 4);
    memcpy(h + 20, &comp, 4);
    uint64_t sum = XXH3_64bits_withSeed(out, (size_t)c, XXH3_64bits(h, 56));
    memcpy(h + 56, &sum, 8);
    memcpy(h + 64, out, (size_t)c);
    fp = fopen(path, "wb");
    CHECK(fp != NULL);
    CHECK_EQ(fwrite(f, 1, off + 64 + (size_t)c, fp), off + 64 + (size_t)c);
    fclose(fp);
}

/* The frame of one RESERVE: its RESV record first, then its RESULT. */
static void keep(uint8_t* raw, size_t* n)
{
    (void)n;
    CHECK_EQ(raw[0], 8);
}
static void bad_flags(uint8_t* raw, size_t* n)
{
    (void)n;
    raw[1] = 4;
}
static void both_flags(uint8_t* raw, size_t* n)
{
    (void)n;
    raw[1] = 3;
}
static void long_name(uint8_t* raw, size_t* n)
{
    (void)n;
    raw[2] = 0xff; /* past the payload */
}
static void clock_with_entry(uint8_t* raw, size_t* n)
{
    (void)n;
    raw[1] = 2; /* CLOCK, but with a name and a holder */
}
static void slash_name(uint8_t* raw, size_t* n)
{
    (void)n;
    raw[56] = '/';
}
static void zero_token(uint8_t* raw, size_t* n)
{
    (void)n;
    memset(raw + 24, 0, 8);
}
static void nonzero_pad(uint8_t* raw, size_t* n)
{
    (void)n;
    raw[5] = 1;
}
static void unknown_remove(uint8_t* raw, size_t* n)
{
    (void)n;
    raw[1] = 1; /* REMOVE of a reservation never set */
    memset(raw + 32, 0, 8);
    memset(raw + 48, 0, 8);
}
static void zero_ino(uint8_t* raw, size_t* n)
{
    (void)n;
    memset(raw + 48, 0, 8); /* a set without the ino it took */
}

/* The ino a RESERVE takes is the claimed file's (its writer's st_ino
 * stays), a renewal keeps it, and it survives a reopen. */
static void test_claim_keeps_reserved_ino(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    CHECK_EQ(reserve(&e, A, 1, d, "f", 10 * SEC), 0);
    uint64_t ino = last_resv_ino;
    CHECK_EQ(reserve(&e, A, 1, d, "f", 10 * SEC), 0); /* renewed */
    CHECK_EQ(last_resv_ino, ino);
    /* entries made meanwhile take later inos */
    uint64_t g = mkdir_(&e, d, "g");
    CHECK(g > ino);
    flush(&e);
    env_reopen(&e);
    CHECK_EQ(reserve(&e, A, 1, d, "f", 10 * SEC), 0);
    CHECK_EQ(last_resv_ino, ino);
    struct store_result r = claim(&e, A, 1, d, "f", "x");
    CHECK_EQ(r.err, 0);
    CHECK_EQ(r.ino, ino);
    struct store_attr a;
    CHECK_EQ(store_lookup(e.st, d, "f", &a), 0);
    CHECK_EQ(a.ino, ino);
    /* released: its ino is never used again */
    CHECK_EQ(reserve(&e, A, 2, d, "h", 10 * SEC), 0);
    uint64_t burnt = last_resv_ino;
    CHECK_EQ(release(&e, A, 2), 0);
    CHECK(mkdir_(&e, d, "h") > burnt);
    env_close(&e);
}

/* A deferred create's commit carries its creation time (size): the
 * file's times and its directory's, which are never lowered. */
static void test_deferred_create_times(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    e.now = 100 * SEC;
    CHECK_EQ(reserve(&e, A, 1, d, "f", 10 * SEC), 0);
    e.now = 102 * SEC;
    struct store_cmd c = {.op = STORE_OP_CREATE,
                          .flags = STORE_WITH_DATA | STORE_CLAIM,
                          .parent = d,
                          .name = "f",
                          .ino = 1,
                          .size = (uint64_t)(100 * SEC),
                          .mode = 0644,
                          .data = "x",
                          .data_len = 1};
    CHECK_EQ(as(&e, A, &c).err, 0);
    struct store_attr a, da;
    CHECK_EQ(store_lookup(e.st, d, "f", &a), 0);
    CHECK_EQ(a.ctime_ns, 100 * SEC);
    CHECK_EQ(a.mtime_ns, 100 * SEC);
    CHECK_EQ(store_getattr(e.st, d, &da), 0);
    CHECK_EQ(da.mtime_ns, 100 * SEC);
    CHECK_EQ(da.ctime_ns, 100 * SEC);
    /* a later change of the directory keeps its own time */
    e.now = 105 * SEC;
    mkdir_(&e, d, "g");
    c.name = "h";
    c.flags = STORE_WITH_DATA;
    c.size = (uint64_t)(103 * SEC);
    CHECK_EQ(as(&e, A, &c).err, 0);
    CHECK_EQ(store_getattr(e.st, d, &da), 0);
    CHECK_EQ(da.mtime_ns, 105 * SEC + 1);
    CHECK_EQ(store_lookup(e.st, d, "h", &a), 0);
    CHECK_EQ(a.ctime_ns, 103 * SEC);
    /* a time past the command's: the command's */
    c.name = "k";
    c.size = (uint64_t)(900 * SEC);
    CHECK_EQ(as(&e, A, &c).err, 0);
    CHECK_EQ(store_lookup(e.st, d, "k", &a), 0);
    CHECK_EQ(a.ctime_ns, e.now);
    env_close(&e);
}

/* STORE_REPLACE (a pending new file renamed over a name): the name is
 * taken from the file there as a rename takes it: a hard-linked target
 * keeps its other name and content, a lone one goes. */
static void test_replace_name(void)
{
    struct env e;
    env_open(&e, "resv");
    uint64_t d = mkdir_(&e, 1, "d");
    uint64_t t;
    CHECK_EQ(create(&e, d, "dst", STORE_WITH_DATA, &t), 0);
    struct store_cmd l = {
        .op = STORE_OP_LINK, .ino = t, .parent = d, .name = "lnk"};
    CHECK_EQ(as(&e, OTHER, &l).err, 0);
    struct store_cmd c = {.op = STORE_OP_CREATE,
                          .flags = STORE_WITH_DATA | STORE_REPLACE,
                          .parent = d,
                          .name = "dst",
                          .mode = 0644,
                          .data = "new",
                          .data_len = 3};
    struct store_result r = as(&e, A, &c);
    CHECK_EQ(r.err, 0);
    CHECK(r.ino != t);
    struct store_attr a;
    CHECK_EQ(store_lookup(e.st, d, "dst", &a), 0);
    CHECK_EQ(a.ino, r.ino);
    content_is(&e, r.ino, "new");
    CHECK_EQ(store_lookup(e.st, d, "lnk", &a), 0);
    CHECK_EQ(a.ino, t);
    CHECK_EQ(a.nlink, 1);
    /* without a second name the old inode goes */
    c.data = "newer";
    c.data_len = 5;
    uint64_t before = r.ino;
    r = as(&e, A, &c);
    CHECK_EQ(r.err, 0);
    CHECK_EQ(store_getattr(e.st, before, &a), -ENOENT);
    content_is(&e, r.ino, "newer");
    /* a directory there: EISDIR, nothing changed */
    c.name = "sub";
    mkdir_(&e, d, "sub");
    CHECK_EQ(as(&e, A, &c).err, -EISDIR);
    env_close(&e);
}

static void test_corrupt_record(void)
{
    const struct {
        mutate_fn fn;
        int want;
    } cases[] = {
        {keep, 0},
        {bad_flags, -EUCLEAN},
        {both_flags, -EUCLEAN},
        {long_name, -EUCLEAN},
        {clock_with_entry, -EUCLEAN},
        {slash_name, -EUCLEAN},
        {zero_token, -EUCLEAN},
        {nonzero_pad, -EUCLEAN},
        {unknown_remove, -EUCLEAN},
        {zero_ino, -EUCLEAN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct env e;
        env_open(&e, "resv");
        uint64_t d = mkdir_(&e, 1, "d");
        flush(&e);
        CHECK_EQ(reserve(&e, A, 1, d, "f", 60 * SEC), 0);
        flush(&e);
        store_close(e.st);
        rewrite_last(e.path, cases[i].fn);
        struct store_options o = opts();
        struct store_recovery rec;
        e.st = NULL;
        CHECK_EQ(store_open(e.path, &o, &e.st, &rec), cases[i].want);
        if (cases[i].want == 0) {
            CHECK_EQ(op(&e, STORE_OP_MKDIR, d, "f"), -EEXIST);
            env_close(&e);
        } else {
            unlink(e.path);
            rmdir(e.dir);
        }
    }
}

int main(void)
{
    RUN(test_blocks);
    RUN(test_reserve_errors);
    RUN(test_expiry_and_renewal);
    RUN(test_clock);
    RUN(test_release);
    RUN(test_claim);
    RUN(test_claim_refused);
    RUN(test_claim_keeps_reserved_ino);
    RUN(test_deferred_create_times);
    RUN(test_replace_name);
    RUN(test_limit);
    RUN(test_persist);
    RUN(test_persist_clock);
    RUN(test_corrupt_record);
    return 0;
}
