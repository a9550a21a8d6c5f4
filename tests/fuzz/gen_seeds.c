/* gen_seeds.c - writes the seed corpus of one fuzz target into a directory:
 *   gen_seeds cmd|db|log|snapfile DIR
 * Every seed is built by the real writers (store_cmd_encode, the store's
 * frames, rlog_append/rlog_compact, snap_file_save), in each of the input
 * modes its target reads (see the target's header comment). */
#include <inttypes.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_store.h"
#include "../unit/conf3.h"
#include "log.h"
#include "snapshot.h"

enum { CMD_BUF = 1 << 16, SCRIPT_MAX = 32 };

struct script {
    uint8_t* cmd[SCRIPT_MAX];
    size_t len[SCRIPT_MAX];
    unsigned n;
    uint64_t seq;
};

static void add(struct script* s, struct store_cmd c)
{
    FUZZ_CHECK(s->n < SCRIPT_MAX);
    c.origin = 7;
    c.seq = ++s->seq;
    c.now_ns = 1000000 + (int64_t)s->seq;
    uint8_t* buf = malloc(CMD_BUF);
    FUZZ_CHECK(buf != NULL);
    long n = store_cmd_encode(&c, buf, CMD_BUF);
    FUZZ_CHECK(n > 0);
    s->cmd[s->n] = buf;
    s->len[s->n++] = (size_t)n;
}

/* A small tree touching every op: the inos are the ones the store assigns
 * in a fresh store (root 1, then 2, 3, ...). */
static void script_build(struct script* s)
{
    static const char text[] = "key = value\n";
    memset(s, 0, sizeof(*s));
    add(s, (struct store_cmd){
               .op = STORE_OP_MKDIR, .parent = 1, .name = "etc", .mode = 0755});
    add(s, (struct store_cmd){.op = STORE_OP_CREATE,
                              .parent = 2,
                              .name = "a.conf",
                              .mode = 0644,
                              .flags = STORE_EXCL});
    add(s, (struct store_cmd){.op = STORE_OP_WRITE,
                              .ino = 3,
                              .data = text,
                              .data_len = sizeof(text) - 1});
    add(s, (struct store_cmd){.op = STORE_OP_SYMLINK,
                              .parent = 2,
                              .name = "link",
                              .data = "a.conf",
                              .data_len = 6});
    add(s, (struct store_cmd){.op = STORE_OP_MKNOD,
                              .type = STORE_FIFO,
                              .parent = 2,
                              .name = "fifo",
                              .mode = 0640});
    add(s, (struct store_cmd){.op = STORE_OP_MKNOD,
                              .type = STORE_CHR,
                              .parent = 2,
                              .name = "null",
                              .mode = 0666,
                              .size = 0x103});
    add(s, (struct store_cmd){.op = STORE_OP_SNAP_CREATE, .name = "s1"});
    add(s, (struct store_cmd){.op = STORE_OP_SETATTR,
                              .ino = 3,
                              .set_mask = STORE_SET_MODE | STORE_SET_SIZE,
                              .mode = 0600,
                              .size = 4});
    add(s, (struct store_cmd){.op = STORE_OP_RENAME,
                              .parent = 2,
                              .name = "a.conf",
                              .new_parent = 1,
                              .new_name = "b.conf"});
    add(s, (struct store_cmd){
               .op = STORE_OP_WRITE, .ino = 3, .data = text, .data_len = 3});
    add(s,
        (struct store_cmd){.op = STORE_OP_UNLINK, .parent = 2, .name = "link"});
    add(s, (struct store_cmd){
               .op = STORE_OP_MKDIR, .parent = 2, .name = "d", .mode = 0700});
    add(s, (struct store_cmd){.op = STORE_OP_RMDIR, .parent = 2, .name = "d"});
    add(s, (struct store_cmd){
               .op = STORE_OP_RESTORE, .name = "s1", .new_name = "/etc"});
    add(s, (struct store_cmd){.op = STORE_OP_COMPACT, .size = 3});
    add(s, (struct store_cmd){.op = STORE_OP_CANCEL, .origin = 7, .seq = 99});
    add(s, (struct store_cmd){.op = STORE_OP_SNAP_DROP, .name = "s1"});
    /* a deferred create: the new file with its content and times */
    add(s, (struct store_cmd){.op = STORE_OP_CREATE,
                              .flags = STORE_WITH_DATA,
                              .parent = 1,
                              .name = "new.conf",
                              .mode = 0640,
                              .set_mask = STORE_SET_MTIME,
                              .mtime_ns = 5,
                              .data = text,
                              .data_len = sizeof(text) - 1});
    /* hard links: two names of b.conf (ino 3), then its primary name
     * goes (the file moves to /etc/a.link) */
    add(s, (struct store_cmd){
               .op = STORE_OP_LINK, .ino = 3, .parent = 2, .name = "a.link"});
    add(s, (struct store_cmd){
               .op = STORE_OP_LINK, .ino = 3, .parent = 1, .name = "c.link"});
    add(s, (struct store_cmd){
               .op = STORE_OP_UNLINK, .parent = 1, .name = "b.conf"});
    /* name reservations: an O_EXCL create committed in one entry (token
     * 1), and one released before its commit (token 2) */
    add(s, (struct store_cmd){.op = STORE_OP_RESERVE,
                              .parent = 2,
                              .name = "x.lock",
                              .ino = 1,
                              .size = STORE_RESV_TTL_MIN * 30});
    add(s, (struct store_cmd){.op = STORE_OP_RESERVE,
                              .parent = 1,
                              .name = "t.tmp",
                              .ino = 2,
                              .size = STORE_RESV_TTL_MIN});
    add(s, (struct store_cmd){.op = STORE_OP_RELEASE, .ino = 2});
    add(s, (struct store_cmd){.op = STORE_OP_CREATE,
                              .flags = STORE_WITH_DATA | STORE_CLAIM,
                              .parent = 2,
                              .name = "x.lock",
                              .ino = 1,
                              .mode = 0600,
                              .data = text,
                              .data_len = 4});
    /* one left in place: images and BASE frames carry it */
    add(s, (struct store_cmd){.op = STORE_OP_RESERVE,
                              .parent = 2,
                              .name = "y.swp",
                              .ino = 3,
                              .size = STORE_RESV_TTL_MAX});
}

static void script_free(struct script* s)
{
    for (unsigned i = 0; i < s->n; i++) {
        free(s->cmd[i]);
    }
}

static void put(const char* dir, const char* name, const void* p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fuzz_write_file(path, p, n);
}

/* mode byte + bytes */
static void put_mode(const char* dir,
                     const char* name,
                     uint8_t mode,
                     const uint8_t* p,
                     size_t n)
{
    uint8_t* b = malloc(n + 1);
    FUZZ_CHECK(b != NULL);
    b[0] = mode;
    memcpy(b + 1, p, n);
    put(dir, name, b, n + 1);
    free(b);
}

/* Commands [from, to) as the cmd target reads them. */
static void put_cmds(const char* dir,
                     const char* name,
                     const struct script* s,
                     unsigned from,
                     unsigned to)
{
    uint8_t* b = malloc((size_t)(to - from) * (CMD_BUF + 2));
    FUZZ_CHECK(b != NULL);
    size_t n = 0;
    for (unsigned i = from; i < to; i++) {
        fuzz_put16(b + n, (uint16_t)s->len[i]);
        memcpy(b + n + 2, s->cmd[i], s->len[i]);
        n += 2 + s->len[i];
    }
    put(dir, name, b, n);
    free(b);
}

static int gen_cmd(const char* dir)
{
    struct script s;
    script_build(&s);
    char name[64];
    for (unsigned i = 0; i < s.n; i++) {
        snprintf(name, sizeof(name), "one-%02u", i);
        put_cmds(dir, name, &s, i, i + 1);
    }
    put_cmds(dir, "all", &s, 0, s.n);
    put_cmds(dir, "first-half", &s, 0, s.n / 2);
    script_free(&s);
    return 0;
}

/* A store at path holding the script, one frame every `every` commands. */
static struct store* store_with_script(const char* path, unsigned every)
{
    unlink(path);
    struct store* st;
    struct store_recovery rec;
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &rec) == 0);
    struct script s;
    script_build(&s);
    for (unsigned i = 0; i < s.n; i++) {
        struct store_result res;
        FUZZ_CHECK(
            store_apply(st, i + 1, s.cmd[i], s.len[i], NULL, NULL, &res) == 0);
        if (i % every == every - 1) {
            fuzz_store_flush(st);
        }
    }
    fuzz_store_flush(st);
    script_free(&s);
    return st;
}

/* The db file as frames with raw payloads (the db target's mode 1). */
static uint8_t* unseal(const uint8_t* f, size_t n, size_t* out_len)
{
    uint8_t* out = malloc(64 * n + (64 << 20));
    FUZZ_CHECK(out != NULL);
    size_t len = 0, off = 0;
    while (off + 64 <= n) {
        uint32_t raw = fuzz_get32(f + off + 16);
        uint32_t comp = fuzz_get32(f + off + 20);
        FUZZ_CHECK(off + 64 + comp <= n && raw < (32u << 20));
        memcpy(out + len, f + off, 64);
        fuzz_put32(out + len + 64, raw);
        if (raw > 0) {
            FUZZ_CHECK(LZ4_decompress_safe((const char*)f + off + 64,
                                           (char*)out + len + 68, (int)comp,
                                           (int)raw) == (int)raw);
        }
        len += 68 + raw;
        off += 64 + comp;
    }
    *out_len = len;
    return out;
}

/* Records as an earlier version wrote them: every RESULT record (tag 7,
 * 40 bytes) becomes the DEDUP record (tag 3, 17 bytes) of its (origin,
 * seq), the rest is copied (docs/format-db.md). Returns the bytes written
 * to out (at most n). Record sizes by tag, from the format. */
static size_t downgrade_records(const uint8_t* p, size_t n, uint8_t* out)
{
    size_t pos = 0, len = 0;
    while (pos < n) {
        size_t size;
        switch (p[pos]) {
        case 1: /* PUT */
            size = pos + 96 <= n ? 96 + (size_t)fuzz_get16(p + pos + 2) +
                                       fuzz_get32(p + pos + 92)
                                 : n - pos;
            break;
        case 2: /* DEL */
            size = 29;
            break;
        case 3: /* DEDUP */
            size = 17;
            break;
        case 4: /* SNAP */
        case 5: /* SNAPDROP */
            size = (p[pos] == 4 ? 20 : 4) +
                   (pos + 4 <= n ? (size_t)fuzz_get16(p + pos + 2) : 0);
            break;
        case 6: /* COMPACT */
            size = 9;
            break;
        case 7: /* RESULT: u8 tag, u8 flags, u16 0, i32 err, origin, seq */
            if (pos + 40 > n) {
                size = n - pos;
                break;
            }
            out[len] = 3;
            memcpy(out + len + 1, p + pos + 8, 16);
            len += 17;
            pos += 40;
            continue;
        default:
            size = n - pos;
            break;
        }
        size = size > n - pos ? n - pos : size;
        memcpy(out + len, p + pos, size);
        len += size;
        pos += size;
    }
    return len;
}

/* Frames [64-byte header][u32 raw_len][raw] (mode 1) with their records
 * downgraded (the harness fixes lengths and checksums). */
static uint8_t* downgrade_frames(const uint8_t* u, size_t n, size_t* out_len)
{
    uint8_t* out = malloc(n);
    FUZZ_CHECK(out != NULL);
    size_t pos = 0, len = 0;
    while (pos + 68 <= n) {
        uint32_t raw = fuzz_get32(u + pos + 64);
        FUZZ_CHECK(pos + 68 + raw <= n);
        memcpy(out + len, u + pos, 64);
        size_t k = downgrade_records(u + pos + 68, raw, out + len + 68);
        fuzz_put32(out + len + 64, (uint32_t)k);
        len += 68 + k;
        pos += 68 + raw;
    }
    *out_len = len;
    return out;
}

/* A db file of an earlier version (frames, records without results)
 * opens; the commands are used up, their results unknown. path is
 * overwritten. */
static void check_dedup_only(const char* path, const uint8_t* frames, size_t n)
{
    size_t len;
    uint8_t* file = fuzz_build_frames(frames, n, false, &len);
    fuzz_write_file(path, file, len);
    free(file);
    struct store* st;
    struct store_recovery rec;
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &rec) == 0);
    struct store_result res;
    FUZZ_CHECK(store_dedup_result(st, 7, 1, &res) == STORE_OUTCOME_UNKNOWN);
    FUZZ_CHECK(store_dedup_result(st, 7, 99, &res) == STORE_OUTCOME_NONE);
    store_close(st);
}

static int gen_db(const char* dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/db", fuzz_dir());
    static const unsigned every[] = {1, 4, 100};
    for (unsigned k = 0; k < 3; k++) {
        struct store* st = store_with_script(path, every[k]);
        struct store_result res;
        FUZZ_CHECK(store_dedup_result(st, 7, 1, &res) == STORE_OUTCOME_RESULT);
        store_close(st);
        size_t n, un;
        uint8_t* f = fuzz_read_file(path, &n);
        FUZZ_CHECK(f != NULL && n > 0);
        char name[64];
        snprintf(name, sizeof(name), "raw-every%u", every[k]);
        put_mode(dir, name, 0, f, n);
        snprintf(name, sizeof(name), "torn-every%u", every[k]);
        put_mode(dir, name, 4, f, n - 7);
        uint8_t* u = unseal(f, n, &un);
        snprintf(name, sizeof(name), "frames-every%u", every[k]);
        put_mode(dir, name, 1, u, un);
        /* the same as an earlier version wrote it: DEDUP, no results */
        size_t dn;
        uint8_t* d = downgrade_frames(u, un, &dn);
        snprintf(name, sizeof(name), "frames-dedup-every%u", every[k]);
        put_mode(dir, name, 1, d, dn);
        check_dedup_only(path, d, dn);
        free(d);
        free(u);
        free(f);
    }
    /* A db written by an image install: BASE frames. */
    struct store* st = store_with_script(path, 4);
    size_t ilen;
    uint8_t* img = fuzz_store_image(st, &ilen);
    store_close(st);
    unlink(path);
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &(struct store_recovery){0}) ==
               0);
    FUZZ_CHECK(store_image_install(st, img, ilen) == 0);
    store_close(st);
    free(img);
    size_t n;
    uint8_t* f = fuzz_read_file(path, &n);
    FUZZ_CHECK(f != NULL);
    put_mode(dir, "raw-base", 0, f, n);
    free(f);
    unlink(path);
    return 0;
}

/* Pack the files of a log directory as the log target reads them. */
static void pack_log(const char* logdir,
                     const char* dir,
                     const char* name,
                     uint8_t mode)
{
    DIR* d = opendir(logdir);
    FUZZ_CHECK(d != NULL);
    size_t cap = 1 << 22, n = 1;
    uint8_t* b = malloc(cap);
    FUZZ_CHECK(b != NULL);
    b[0] = mode;
    struct dirent* de;
    while ((de = readdir(d)) != NULL) {
        uint64_t first = 0;
        bool meta = strcmp(de->d_name, "meta") == 0;
        if (!meta && sscanf(de->d_name, "seg-%" SCNu64, &first) != 1) {
            continue;
        }
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", logdir, de->d_name);
        size_t len;
        uint8_t* f = fuzz_read_file(path, &len);
        FUZZ_CHECK(f != NULL && n + 13 + len <= cap);
        b[n] = meta ? 1 : 0;
        fuzz_put64(b + n + 1, first);
        fuzz_put32(b + n + 9, (uint32_t)len);
        memcpy(b + n + 13, f, len);
        n += 13 + len;
        free(f);
    }
    closedir(d);
    put(dir, name, b, n);
    free(b);
}

static int gen_log(const char* dir)
{
    char logdir[512];
    snprintf(logdir, sizeof(logdir), "%s/log", fuzz_dir());
    struct rlog_options o = {.segment_bytes_max = 1024};
    struct rlog* l;
    struct rlog_loaded ld;
    fuzz_empty_dir(logdir);
    rmdir(logdir);
    FUZZ_CHECK(rlog_open(logdir, &o, &l, &ld) == 0);
    pack_log(logdir, dir, "fresh", 0);
    struct script s;
    script_build(&s);
    for (unsigned i = 0; i < s.n; i++) {
        struct raft_entry e = {
            .term = 1 + i / 5,
            .index = i + 1,
            .type = i == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL,
            .data = {s.cmd[i], s.len[i]}};
        FUZZ_CHECK(rlog_append(l, &e, 1) == 0);
        struct raft_hard_state hs = {
            .term = 1 + i / 5, .vote = 100, .commit = i};
        FUZZ_CHECK(rlog_set_hard_state(l, &hs) == 0);
        FUZZ_CHECK(rlog_sync(l) == 0);
    }
    script_free(&s);
    pack_log(logdir, dir, "entries", 0);
    pack_log(logdir, dir, "entries-fixed", 1);
    FUZZ_CHECK(rlog_truncate(l, 14) == 0);
    struct raft_snapshot_meta snap = {.index = 6, .term = 2, .conf_index = 1};
    test_conf3(&snap.conf, 7001);
    FUZZ_CHECK(rlog_compact(l, &snap, 5) == 0);
    rlog_close(l);
    pack_log(logdir, dir, "compacted", 0);
    pack_log(logdir, dir, "compacted-fixed", 1);
    o.preallocate = true;
    FUZZ_CHECK(rlog_open(logdir, &o, &l, &ld) == 0);
    struct raft_entry e = {
        .term = 3, .index = rlog_last_index(l) + 1, .type = RAFT_ENTRY_NOOP};
    FUZZ_CHECK(rlog_append(l, &e, 1) == 0);
    FUZZ_CHECK(rlog_sync(l) == 0);
    rlog_close(l);
    pack_log(logdir, dir, "preallocated", 2);
    fuzz_empty_dir(logdir);
    rmdir(logdir);
    return 0;
}

/* An image of an earlier version (records without results; img's header
 * gets its payload length and checksum here, docs/format-db.md "Images")
 * installs; the commands are used up, their results unknown. */
static void check_image_dedup_only(const char* path, uint8_t* img, size_t n)
{
    fuzz_put64(img + 40, n - 64);
    uint64_t seed = XXH3_64bits(img, 56);
    fuzz_put64(img + 56, XXH3_64bits_withSeed(img + 64, n - 64, seed));
    unlink(path);
    struct store* st;
    struct store_recovery rec;
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &rec) == 0);
    FUZZ_CHECK(store_image_install(st, img, n) == 0);
    struct store_result res;
    FUZZ_CHECK(store_dedup_result(st, 7, 1, &res) == STORE_OUTCOME_UNKNOWN);
    store_close(st);
    unlink(path);
}

static int gen_snapfile(const char* dir)
{
    char db[512], file[512];
    snprintf(db, sizeof(db), "%s/db", fuzz_dir());
    snprintf(file, sizeof(file), "%s/snap", fuzz_dir());
    struct store* st = store_with_script(db, 4);
    size_t ilen;
    uint8_t* img = fuzz_store_image(st, &ilen);
    store_close(st);
    unlink(db);
    struct raft_conf conf;
    test_conf3(&conf, 7001);
    char err[256];
    FUZZ_CHECK(snap_file_save(file, img, ilen, &conf, err, sizeof(err)) == 0);
    size_t n;
    uint8_t* f = fuzz_read_file(file, &n);
    FUZZ_CHECK(f != NULL);
    put_mode(dir, "file", 0, f, n);
    /* mode 1: [u32 conf_len][conf][image] */
    uint32_t conf_len = fuzz_get32(f + 8);
    uint8_t* b = malloc(4 + conf_len + ilen);
    FUZZ_CHECK(b != NULL);
    fuzz_put32(b, conf_len);
    memcpy(b + 4, f + 64, conf_len);
    memcpy(b + 4 + conf_len, img, ilen);
    put_mode(dir, "parts", 1, b, 4 + conf_len + ilen);
    /* the image as an earlier version built it: DEDUP, no results */
    size_t dlen = 4 + conf_len + 64;
    dlen += downgrade_records(img + 64, ilen - 64, b + dlen);
    put_mode(dir, "parts-dedup", 1, b, dlen);
    check_image_dedup_only(db, b + 4 + conf_len, dlen - 4 - conf_len);
    free(b);
    free(f);
    free(img);
    unlink(file);
    return 0;
}

int main(int argc, char** argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_seeds cmd|db|log|snapfile DIR\n");
        return 2;
    }
    const char* t = argv[1];
    if (strcmp(t, "cmd") == 0) {
        return gen_cmd(argv[2]);
    }
    if (strcmp(t, "db") == 0) {
        return gen_db(argv[2]);
    }
    if (strcmp(t, "log") == 0) {
        return gen_log(argv[2]);
    }
    if (strcmp(t, "snapfile") == 0) {
        return gen_snapfile(argv[2]);
    }
    fprintf(stderr, "gen_seeds: unknown target %s\n", t);
    return 2;
}
