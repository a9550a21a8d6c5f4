/* test_snapshot_file.c - snapshot files (snapshot/file.c): a round trip of a
 * real store image and membership, the image installs into a new store with
 * the same tree, and every truncation and every single-bit flip of the file
 * is refused with a message. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../snapshot/snapshot.h"
#include "../../store/store.h"
#include "check.h"
#include "conf3.h"

struct env {
    struct store* st;
    char dir[64];
    char db[96];
    char file[96];
    raft_index idx;
    uint64_t seq;
};

static void env_open(struct env* e)
{
    struct store_options o;

    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/qfs-snapfile-XXXXXX");
    CHECK(mkdtemp(e->dir) != NULL);
    snprintf(e->db, sizeof(e->db), "%s/db", e->dir);
    snprintf(e->file, sizeof(e->file), "%s/snap.qfs", e->dir);
    store_options_default(&o);
    CHECK_EQ(store_open(e->db, &o, &e->st, NULL), 0);
}

static struct store_result run(struct env* e, struct store_cmd* c)
{
    static uint8_t buf[1 << 16];
    struct store_result res;

    c->origin = 3;
    c->seq = ++e->seq;
    c->now_ns = 1000 + (int64_t)e->seq;
    long n = store_cmd_encode(c, buf, sizeof(buf));
    CHECK(n > 0);
    CHECK_EQ(store_apply(e->st, ++e->idx, buf, (size_t)n, NULL, NULL, &res), 0);
    CHECK_EQ(res.err, 0);
    return res;
}

/* /etc (dir), /etc/a.conf ("alpha"), /etc/link -> a.conf, /b (empty). */
static void fill(struct env* e)
{
    struct store_cmd c = {.op = STORE_OP_MKDIR,
                          .parent = STORE_ROOT_INO,
                          .name = "etc",
                          .mode = 0755};
    uint64_t etc = run(e, &c).ino;
    c = (struct store_cmd){
        .op = STORE_OP_CREATE, .parent = etc, .name = "a.conf", .mode = 0640};
    uint64_t a = run(e, &c).ino;
    c = (struct store_cmd){
        .op = STORE_OP_WRITE, .ino = a, .data = "alpha", .data_len = 5};
    run(e, &c);
    c = (struct store_cmd){.op = STORE_OP_SYMLINK,
                           .parent = etc,
                           .name = "link",
                           .mode = 0777,
                           .data = "a.conf",
                           .data_len = 6};
    run(e, &c);
    c = (struct store_cmd){.op = STORE_OP_CREATE,
                           .parent = STORE_ROOT_INO,
                           .name = "b",
                           .mode = 0600};
    run(e, &c);
    c = (struct store_cmd){.op = STORE_OP_MKNOD,
                           .type = STORE_FIFO,
                           .parent = etc,
                           .name = "fifo",
                           .mode = 0640};
    run(e, &c);
    c = (struct store_cmd){.op = STORE_OP_MKNOD,
                           .type = STORE_BLK,
                           .parent = etc,
                           .name = "disk",
                           .mode = 0660,
                           .size = 0x800};
    run(e, &c);
}

static void write_bytes(const char* path, const void* p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, p, len), (long long)len);
    CHECK_EQ(close(fd), 0);
}

static void* read_bytes(const char* path, size_t* len)
{
    struct stat sb;
    CHECK_EQ(stat(path, &sb), 0);
    void* p = malloc((size_t)sb.st_size);
    CHECK(p != NULL);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    CHECK_EQ(read(fd, p, (size_t)sb.st_size), sb.st_size);
    close(fd);
    *len = (size_t)sb.st_size;
    return p;
}

static void test_round_trip(void)
{
    struct env e;
    struct raft_conf conf, *got;
    struct snap_file_info info;
    struct store_stats stats;
    void *img, *back;
    size_t len, back_len;
    char err[256] = "";

    env_open(&e);
    fill(&e);
    store_get_stats(e.st, &stats);
    CHECK_EQ(store_image_build(e.st, &img, &len), 0);
    test_conf3(&conf, 7000);
    CHECK_EQ(snap_file_save(e.file, img, len, &conf, err, sizeof(err)), 0);
    CHECK(access(e.file, F_OK) == 0);
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s.tmp", e.file);
    CHECK(access(tmp, F_OK) != 0); /* renamed away */

    CHECK_EQ(snap_file_load(e.file, &info, &back, &back_len, err, sizeof(err)),
             0);
    CHECK_EQ(back_len, len);
    CHECK_MEM(back, img, len);
    CHECK_EQ(info.version, 1);
    CHECK_EQ(info.revision, stats.revision);
    CHECK_EQ(info.applied_index, e.idx);
    CHECK_EQ(info.keys, stats.keys); /* etc, a.conf, link, b, fifo, disk */
    CHECK_EQ(info.keys, 6);
    CHECK_EQ(info.image_bytes, len);
    size_t flen;
    free(read_bytes(e.file, &flen));
    CHECK_EQ(info.file_bytes, flen);
    got = &info.conf;
    CHECK_EQ(got->n, 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ(got->servers[i].id, conf.servers[i].id);
        CHECK_EQ(got->servers[i].role, conf.servers[i].role);
        CHECK(strcmp(got->servers[i].name, conf.servers[i].name) == 0);
        CHECK(strcmp(got->servers[i].addr, conf.servers[i].addr) == 0);
    }

    /* Info only (no image wanted). */
    struct snap_file_info info2;
    CHECK_EQ(snap_file_load(e.file, &info2, NULL, NULL, err, sizeof(err)), 0);
    CHECK_EQ(info2.checksum, info.checksum);

    /* The image installs into a fresh store: the same tree. */
    char db2[128];
    struct store* st2;
    struct store_options o;
    struct store_attr a;
    const void* data;
    size_t dlen;
    snprintf(db2, sizeof(db2), "%s/db2", e.dir);
    store_options_default(&o);
    CHECK_EQ(store_open(db2, &o, &st2, NULL), 0);
    CHECK_EQ(store_image_install(st2, back, back_len), 0);
    CHECK_EQ(store_applied_index(st2), e.idx);
    CHECK_EQ(store_lookup(st2, STORE_ROOT_INO, "etc", &a), 0);
    uint64_t etc = a.ino;
    CHECK_EQ(store_lookup(st2, etc, "a.conf", &a), 0);
    CHECK_EQ(a.mode, 0640);
    CHECK_EQ(store_read(st2, a.ino, &data, &dlen), 0);
    CHECK_EQ(dlen, 5);
    CHECK_MEM(data, "alpha", 5);
    CHECK_EQ(store_lookup(st2, etc, "link", &a), 0);
    CHECK_EQ(a.type, STORE_SYMLINK);
    CHECK_EQ(store_lookup(st2, etc, "fifo", &a), 0);
    CHECK_EQ(a.type, STORE_FIFO);
    CHECK_EQ(a.mode, 0640);
    CHECK_EQ(store_lookup(st2, etc, "disk", &a), 0);
    CHECK_EQ(a.type, STORE_BLK);
    CHECK_EQ(a.rdev, 0x800);
    store_close(st2);
    unlink(db2);

    /* Saving over an existing file replaces it atomically. */
    CHECK_EQ(snap_file_save(e.file, img, len, &conf, err, sizeof(err)), 0);
    CHECK_EQ(snap_file_load(e.file, &info2, NULL, NULL, err, sizeof(err)), 0);

    /* A corrupt image is refused at save time, nothing written. */
    ((uint8_t*)img)[len - 1] ^= 1;
    char other[128];
    snprintf(other, sizeof(other), "%s/other.qfs", e.dir);
    err[0] = '\0';
    CHECK_EQ(snap_file_save(other, img, len, &conf, err, sizeof(err)),
             -EBADMSG);
    CHECK(err[0] != '\0');
    CHECK(access(other, F_OK) != 0);

    free(img);
    free(back);
    store_close(e.st);
    unlink(e.db);
    unlink(e.file);
    rmdir(e.dir);
}

static void test_damage_refused(void)
{
    struct env e;
    struct raft_conf conf;
    struct snap_file_info info;
    void *img, *out;
    size_t len, out_len, flen;
    char err[256];
    char bad[128];

    env_open(&e);
    fill(&e);
    CHECK_EQ(store_image_build(e.st, &img, &len), 0);
    test_conf3(&conf, 7000);
    CHECK_EQ(snap_file_save(e.file, img, len, &conf, err, sizeof(err)), 0);
    uint8_t* good = read_bytes(e.file, &flen);
    /* Thousands of small files: on tmpfs when there is one. */
    snprintf(bad, sizeof(bad), "%s/qfs-snapfile-bad-%d.qfs",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : e.dir, (int)getpid());

    /* Every truncation, including the empty file. */
    for (size_t n = 0; n < flen; n++) {
        write_bytes(bad, good, n);
        err[0] = '\0';
        out = NULL;
        CHECK_EQ(snap_file_load(bad, &info, &out, &out_len, err, sizeof(err)),
                 -EBADMSG);
        CHECK(out == NULL);
        CHECK(err[0] != '\0');
    }
    /* A truncation past the header names itself. */
    write_bytes(bad, good, flen - 1);
    CHECK_EQ(snap_file_load(bad, &info, NULL, NULL, err, sizeof(err)),
             -EBADMSG);
    CHECK(strstr(err, "truncated") != NULL);

    /* Every single-bit flip. */
    uint8_t* copy = malloc(flen);
    CHECK(copy != NULL);
    unsigned refused = 0;
    for (size_t i = 0; i < flen; i++) {
        for (int b = 0; b < 8; b++) {
            memcpy(copy, good, flen);
            copy[i] ^= (uint8_t)(1u << b);
            write_bytes(bad, copy, flen);
            err[0] = '\0';
            int rv = snap_file_load(bad, &info, NULL, NULL, err, sizeof(err));
            if (rv != -EBADMSG || err[0] == '\0') {
                fprintf(stderr, "flip of byte %zu bit %d accepted (%d)\n", i, b,
                        rv);
                exit(1);
            }
            refused++;
        }
    }
    CHECK_EQ(refused, flen * 8);

    /* Trailing garbage is refused too. */
    uint8_t* longer = malloc(flen + 1);
    CHECK(longer != NULL);
    memcpy(longer, good, flen);
    longer[flen] = 0;
    write_bytes(bad, longer, flen + 1);
    CHECK_EQ(snap_file_load(bad, &info, NULL, NULL, err, sizeof(err)),
             -EBADMSG);

    /* A missing file: the errno, with the path in the message. */
    unlink(bad);
    CHECK_EQ(snap_file_load(bad, &info, NULL, NULL, err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "qfs-snapfile-bad-") != NULL);

    /* The original is still good. */
    CHECK_EQ(snap_file_load(e.file, &info, NULL, NULL, err, sizeof(err)), 0);

    free(longer);
    free(copy);
    free(good);
    free(img);
    store_close(e.st);
    unlink(e.db);
    unlink(e.file);
    rmdir(e.dir);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_damage_refused);
    return 0;
}
