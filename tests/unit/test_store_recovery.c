/* test_store_recovery.c - the db file across restarts: reopen rebuilds the
 * same state (compared through store images, which carry every entry,
 * revision, applied index, ino counter and the dedup table), a torn tail
 * cut at every byte is truncated, a flipped bit anywhere is detected,
 * images round-trip and corrupt images are refused. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../store/store.h"
#include "check.h"

enum { FRAMES_MAX = 16 };

struct env {
    struct store* st;
    char dir[64];
    char path[96];
    store_index idx;
    uint64_t seq;
    /* after each sealed+written frame: file size and image */
    unsigned nframes;
    uint64_t end[FRAMES_MAX];
    store_index idx_at[FRAMES_MAX];
    uint64_t rev_at[FRAMES_MAX];
    void* img[FRAMES_MAX];
    size_t img_len[FRAMES_MAX];
};

static void env_init(struct env* e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/qfs-rec-XXXXXX");
    CHECK(mkdtemp(e->dir) != NULL);
    snprintf(e->path, sizeof(e->path), "%s/db", e->dir);
}

static struct store* reopen(const char* path,
                            int* err,
                            struct store_recovery* rec)
{
    struct store_options o;
    store_options_default(&o);
    struct store* st = NULL;
    *err = store_open(path, &o, &st, rec);
    return st;
}

static void env_free(struct env* e)
{
    if (e->st != NULL) {
        store_close(e->st);
    }
    for (unsigned i = 0; i < e->nframes; i++) {
        free(e->img[i]);
    }
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s.tmp", e->path);
    unlink(tmp);
    unlink(e->path);
    rmdir(e->dir);
}

static struct store_result run(struct env* e, struct store_cmd* c)
{
    static uint8_t buf[1 << 16];
    c->origin = 9;
    c->seq = ++e->seq;
    c->now_ns = 1000 + (int64_t)e->seq;
    long n = store_cmd_encode(c, buf, sizeof(buf));
    CHECK(n > 0);
    struct store_result res;
    CHECK_EQ(store_apply(e->st, ++e->idx, buf, (size_t)n, NULL, NULL, &res), 0);
    return res;
}

static uint64_t mk(struct env* e, uint8_t op, uint64_t parent, const char* name)
{
    struct store_cmd c = {.op = op,
                          .parent = parent,
                          .name = name,
                          .mode = 0640,
                          .uid = 3,
                          .gid = 4};
    if (op == STORE_OP_SYMLINK) {
        c.data = "../app/a.conf";
        c.data_len = strlen(c.data);
    }
    struct store_result r = run(e, &c);
    CHECK_EQ(r.err, 0);
    return r.ino;
}

static void wr(struct env* e, uint64_t ino, const char* s)
{
    struct store_cmd c = {
        .op = STORE_OP_WRITE, .ino = ino, .data = s, .data_len = strlen(s)};
    CHECK_EQ(run(e, &c).err, 0);
}

static void flush(struct env* e)
{
    struct store_frame* f;
    CHECK_EQ(store_frame_seal(e->st, &f), 0);
    CHECK(f != NULL);
    CHECK_EQ(store_frame_write(e->st, f), 0);
    store_frame_done(e->st, f, 0);
    CHECK(e->nframes < FRAMES_MAX);
    struct store_stats s;
    store_get_stats(e->st, &s);
    CHECK_EQ(s.durable_index, e->idx);
    e->end[e->nframes] = s.db_bytes;
    e->idx_at[e->nframes] = e->idx;
    e->rev_at[e->nframes] = s.revision;
    CHECK_EQ(
        store_image_build(e->st, &e->img[e->nframes], &e->img_len[e->nframes]),
        0);
    e->nframes++;
}

/* A workload over several frames: every record kind. */
static void workload(struct env* e)
{
    uint64_t etc = mk(e, STORE_OP_MKDIR, 1, "etc");
    uint64_t app = mk(e, STORE_OP_MKDIR, etc, "app");
    uint64_t a = mk(e, STORE_OP_CREATE, app, "a.conf");
    wr(e, a, "port = 8080\nhost = example.org\n");
    flush(e);
    uint64_t b = mk(e, STORE_OP_CREATE, app, "b.ini");
    wr(e, b, "[main]\nkey=value\n");
    mk(e, STORE_OP_SYMLINK, etc, "link");
    struct store_cmd c = {.op = STORE_OP_RENAME,
                          .parent = app,
                          .name = "a.conf",
                          .new_parent = app,
                          .new_name = "b.ini",
                          .flags = STORE_EXCHANGE};
    CHECK_EQ(run(e, &c).err, 0);
    flush(e);
    c = (struct store_cmd){.op = STORE_OP_RENAME,
                           .parent = etc,
                           .name = "app",
                           .new_parent = 1,
                           .new_name = "app2"};
    CHECK_EQ(run(e, &c).err, 0);
    c = (struct store_cmd){
        .op = STORE_OP_UNLINK, .parent = app, .name = "b.ini"};
    CHECK_EQ(run(e, &c).err, 0);
    c = (struct store_cmd){
        .op = STORE_OP_UNLINK, .parent = app, .name = "missing"};
    CHECK_EQ(run(e, &c).err, -ENOENT); /* failed: dedup still recorded */
    c = (struct store_cmd){.op = STORE_OP_SETATTR,
                           .ino = b,
                           .set_mask = STORE_SET_SIZE | STORE_SET_MODE,
                           .size = 4,
                           .mode = 0600};
    CHECK_EQ(run(e, &c).err, 0);
    flush(e);
    CHECK_EQ(store_apply_index(e->st, ++e->idx), 0); /* index-only frame */
    flush(e);
    uint64_t d = mk(e, STORE_OP_MKDIR, 1, "var");
    wr(e, mk(e, STORE_OP_CREATE, d, "last"), "the last frame's content");
    flush(e);
}

static void* slurp(const char* path, size_t* len)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct stat sb;
    CHECK_EQ(fstat(fd, &sb), 0);
    *len = (size_t)sb.st_size;
    void* buf = malloc(*len + 1);
    CHECK_EQ(pread(fd, buf, *len, 0), (long)*len);
    close(fd);
    return buf;
}

static void spit(const char* path, const void* buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, buf, len), (long)len);
    close(fd);
}

static void check_image(struct store* st, const void* img, size_t len)
{
    void* now;
    size_t n;
    CHECK_EQ(store_image_build(st, &now, &n), 0);
    CHECK_EQ(n, len);
    CHECK_MEM(now, img, n);
    free(now);
}

static void test_reopen_same_state(void)
{
    struct env e;
    env_init(&e);
    int err;
    e.st = reopen(e.path, &err, NULL);
    CHECK_EQ(err, 0);
    workload(&e);
    uint64_t seq = e.seq;
    store_close(e.st);
    struct store_recovery rec;
    e.st = reopen(e.path, &err, &rec);
    CHECK_EQ(err, 0);
    CHECK_EQ(rec.frames, e.nframes);
    CHECK_EQ(rec.torn_bytes, 0);
    check_image(e.st, e.img[e.nframes - 1], e.img_len[e.nframes - 1]);
    CHECK_EQ(store_applied_index(e.st), e.idx);
    CHECK_EQ(store_durable_index(e.st), e.idx);
    /* the dedup table came back: re-applying an old (origin, seq) is a
     * duplicate; the ino counter too: a new file gets a fresh ino */
    e.seq = seq - 1;
    struct store_cmd c = {.op = STORE_OP_MKDIR, .parent = 1, .name = "zz"};
    struct store_result r = run(&e, &c);
    CHECK(r.duplicate);
    e.seq = seq;
    uint64_t ino = mk(&e, STORE_OP_CREATE, 1, "new");
    struct store_attr a;
    CHECK_EQ(store_lookup(e.st, 1, "var", &a), 0);
    CHECK(ino == a.ino + 2); /* var, last, then new */
    /* keep going after the reopen: continuity across restarts */
    flush(&e);
    store_close(e.st);
    e.st = reopen(e.path, &err, &rec);
    CHECK_EQ(err, 0);
    check_image(e.st, e.img[e.nframes - 1], e.img_len[e.nframes - 1]);
    env_free(&e);
}

static void test_torn_tail_every_byte(void)
{
    struct env e;
    env_init(&e);
    int err;
    e.st = reopen(e.path, &err, NULL);
    workload(&e);
    store_close(e.st);
    e.st = NULL;
    size_t len;
    uint8_t* orig = slurp(e.path, &len);
    unsigned last = e.nframes - 1;
    uint64_t start = e.end[last - 1];
    CHECK_EQ(len, e.end[last]);
    for (uint64_t cut = start; cut < len; cut++) {
        spit(e.path, orig, (size_t)cut);
        struct store_recovery rec;
        struct store* st = reopen(e.path, &err, &rec);
        CHECK_EQ(err, 0);
        CHECK_EQ(rec.frames, last);
        CHECK_EQ(rec.torn_bytes, cut - start);
        if (cut > start) {
            char want[64];
            snprintf(want, sizeof(want), "frame %u at offset %" PRIu64, last,
                     start);
            CHECK(strstr(rec.torn_reason, want) != NULL);
            CHECK(strstr(rec.torn_reason, "short") != NULL);
        }
        check_image(st, e.img[last - 1], e.img_len[last - 1]);
        struct store_stats s;
        store_get_stats(st, &s);
        CHECK_EQ(s.db_bytes, start);
        store_close(st);
        size_t after;
        free(slurp(e.path, &after));
        CHECK_EQ(after, start); /* truncated on disk */
    }
    free(orig);
    env_free(&e);
}

static void test_bit_flips(void)
{
    struct env e;
    env_init(&e);
    int err;
    e.st = reopen(e.path, &err, NULL);
    workload(&e);
    store_close(e.st);
    e.st = NULL;
    size_t len;
    uint8_t* orig = slurp(e.path, &len);
    uint8_t* bad = malloc(len);
    unsigned last = e.nframes - 1;
    /* last frame: truncated, reason names it */
    for (uint64_t i = e.end[last - 1]; i < len; i++) {
        memcpy(bad, orig, len);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        spit(e.path, bad, len);
        struct store_recovery rec;
        struct store* st = reopen(e.path, &err, &rec);
        CHECK_EQ(err, 0);
        CHECK_EQ(rec.frames, last);
        CHECK_EQ(rec.torn_bytes, len - e.end[last - 1]);
        char want[64];
        snprintf(want, sizeof(want), "frame %u at offset %" PRIu64, last,
                 e.end[last - 1]);
        CHECK(strstr(rec.torn_reason, want) != NULL);
        check_image(st, e.img[last - 1], e.img_len[last - 1]);
        store_close(st);
    }
    /* a middle frame: refused, the file is left alone */
    unsigned mid = 1;
    for (uint64_t i = e.end[mid - 1]; i < e.end[mid]; i++) {
        memcpy(bad, orig, len);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        spit(e.path, bad, len);
        struct store_recovery rec;
        struct store* st = reopen(e.path, &err, &rec);
        CHECK_EQ(err, -EUCLEAN);
        CHECK(st == NULL);
        char want[64];
        snprintf(want, sizeof(want), "frame %u at offset %" PRIu64, mid,
                 e.end[mid - 1]);
        CHECK(strstr(rec.torn_reason, want) != NULL);
        size_t after;
        free(slurp(e.path, &after));
        CHECK_EQ(after, len);
    }
    free(bad);
    free(orig);
    env_free(&e);
}

/* keep_torn_tail (the node's mode): the tail stays on disk, the recovery
 * says where it starts, what the valid prefix holds and what the tail's
 * readable headers named; nothing is written until store_drop_tail. */
static void test_kept_torn_tail(void)
{
    struct env e;
    env_init(&e);
    int err;
    e.st = reopen(e.path, &err, NULL);
    workload(&e);
    store_close(e.st);
    e.st = NULL;
    size_t len;
    uint8_t* orig = slurp(e.path, &len);
    unsigned last = e.nframes - 1;
    uint64_t start = e.end[last - 1];
    struct store_options o;
    store_options_default(&o);
    o.keep_torn_tail = true;
    /* zero the payload only (header readable), then the whole frame */
    for (int whole = 0; whole < 2; whole++) {
        uint8_t* bad = malloc(len);
        memcpy(bad, orig, len);
        uint64_t from = whole ? start : start + 64;
        memset(bad + from, 0, len - from);
        spit(e.path, bad, len);
        free(bad);
        struct store_recovery rec;
        struct store* st = NULL;
        CHECK_EQ(store_open(e.path, &o, &st, &rec), 0);
        CHECK_EQ(rec.torn_off, start);
        CHECK_EQ(rec.torn_bytes, len - start);
        CHECK_EQ(rec.applied_index, e.idx_at[last - 1]);
        CHECK_EQ(rec.revision, e.rev_at[last - 1]);
        CHECK_EQ(rec.tail_index_max, whole ? 0 : e.idx_at[last]);
        CHECK_EQ(rec.tail_rev_max, whole ? 0 : e.rev_at[last]);
        check_image(st, e.img[last - 1], e.img_len[last - 1]);
        size_t now;
        free(slurp(e.path, &now));
        CHECK_EQ(now, len); /* left alone */
        /* no frame may be written over a tail still on disk */
        CHECK_EQ(store_apply_index(st, e.idx_at[last - 1] + 1), 0);
        struct store_frame* f = NULL;
        CHECK_EQ(store_frame_seal(st, &f), -EIO);
        CHECK_EQ(store_drop_tail(st), 0);
        free(slurp(e.path, &now));
        CHECK_EQ(now, start);
        CHECK_EQ(store_frame_seal(st, &f), 0);
        CHECK(f != NULL);
        CHECK_EQ(store_frame_write(st, f), 0);
        store_frame_done(st, f, 0);
        CHECK_EQ(store_durable_index(st), e.idx_at[last - 1] + 1);
        CHECK_EQ(store_drop_tail(st), 0); /* nothing left: no-op */
        store_close(st);
    }
    free(orig);
    env_free(&e);
}

static void test_image_round_trip(void)
{
    struct env e, f;
    env_init(&e);
    env_init(&f);
    int err;
    e.st = reopen(e.path, &err, NULL);
    workload(&e);
    f.st = reopen(f.path, &err, NULL);
    CHECK_EQ(err, 0);
    mk(&f, STORE_OP_CREATE, 1, "to-be-replaced");
    void* img;
    size_t len;
    CHECK_EQ(store_image_build(e.st, &img, &len), 0);
    /* corrupt images are refused, state untouched */
    void* before;
    size_t before_len;
    CHECK_EQ(store_image_build(f.st, &before, &before_len), 0);
    uint8_t* bad = malloc(len);
    for (size_t i = 0; i < len; i += 7) {
        memcpy(bad, img, len);
        bad[i] ^= 0x10;
        CHECK_EQ(store_image_install(f.st, bad, len), -EBADMSG);
    }
    CHECK_EQ(store_image_install(f.st, img, len - 1), -EBADMSG);
    check_image(f.st, before, before_len);
    /* install: same state; survives a reopen; writes continue */
    CHECK_EQ(store_image_install(f.st, img, len), 0);
    check_image(f.st, img, len);
    struct store_attr a;
    CHECK_EQ(store_lookup(f.st, 1, "to-be-replaced", &a), -ENOENT);
    CHECK_EQ(store_durable_index(f.st), e.idx);
    f.idx = e.idx;
    f.seq = e.seq;
    f.nframes = 0;
    uint64_t ino = mk(&f, STORE_OP_CREATE, 1, "after-install");
    flush(&f);
    store_close(f.st);
    struct store_recovery rec;
    f.st = reopen(f.path, &err, &rec);
    CHECK_EQ(err, 0);
    CHECK_EQ(rec.torn_bytes, 0);
    check_image(f.st, f.img[0], f.img_len[0]);
    CHECK_EQ(store_lookup(f.st, 1, "after-install", &a), 0);
    CHECK_EQ(a.ino, ino);
    free(bad);
    free(before);
    free(img);
    env_free(&e);
    env_free(&f);
}

static void test_sticky_write_error(void)
{
    struct env e;
    env_init(&e);
    int err;
    e.st = reopen(e.path, &err, NULL);
    mk(&e, STORE_OP_MKDIR, 1, "d");
    struct store_frame *f, *g;
    CHECK_EQ(store_frame_seal(e.st, &f), 0);
    mk(&e, STORE_OP_MKDIR, 1, "d2");
    CHECK_EQ(store_frame_seal(e.st, &g), 0);
    /* the first write fails (a file size limit of 0 bytes: EFBIG); the
     * second, already queued on the I/O thread, must not be written after
     * it even once writes could succeed again */
    struct rlimit old, zero;
    CHECK_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    zero = old;
    zero.rlim_cur = 0;
    void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK_EQ(setrlimit(RLIMIT_FSIZE, &zero), 0);
    int werr = store_frame_write(e.st, f);
    CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_xfsz);
    CHECK(werr < 0);
    CHECK_EQ(store_frame_write(e.st, g), werr);
    size_t len;
    free(slurp(e.path, &len));
    CHECK_EQ(len, 0);
    store_frame_done(e.st, f, werr);
    store_frame_done(e.st, g, werr);
    CHECK_EQ(store_durable_index(e.st), 0);
    struct store_cmd c = {.op = STORE_OP_MKDIR, .parent = 1, .name = "x"};
    uint8_t buf[256];
    long n = store_cmd_encode(&c, buf, sizeof(buf));
    struct store_result r;
    CHECK_EQ(store_apply(e.st, ++e.idx, buf, (size_t)n, NULL, NULL, &r), -EIO);
    CHECK_EQ(store_frame_seal(e.st, &f), -EIO);
    env_free(&e);
}

int main(void)
{
    RUN(test_reopen_same_state);
    RUN(test_torn_tail_every_byte);
    RUN(test_bit_flips);
    RUN(test_kept_torn_tail);
    RUN(test_image_round_trip);
    RUN(test_sticky_write_error);
    return 0;
}
