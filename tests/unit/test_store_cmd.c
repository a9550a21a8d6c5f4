/* test_store_cmd.c - the command codec: round trips, strict decoding of
 * truncated, extended and corrupted input (never over-reads: run under
 * ASan, the decoder gets exactly-sized heap copies). */
#include <errno.h>
#include <stdlib.h>

#include "../../store/store.h"
#include "check.h"

static void check_same(const struct store_cmd* a, const struct store_cmd* b)
{
    CHECK_EQ(a->op, b->op);
    CHECK_EQ(a->type, b->type);
    CHECK_EQ(a->flags, b->flags);
    CHECK_EQ(a->origin, b->origin);
    CHECK_EQ(a->seq, b->seq);
    CHECK_EQ(a->now_ns, b->now_ns);
    CHECK_EQ(a->parent, b->parent);
    CHECK_EQ(a->new_parent, b->new_parent);
    CHECK_EQ(a->ino, b->ino);
    CHECK_EQ(a->mode, b->mode);
    CHECK_EQ(a->uid, b->uid);
    CHECK_EQ(a->gid, b->gid);
    CHECK_EQ(a->set_mask, b->set_mask);
    CHECK_EQ(a->size, b->size);
    CHECK_EQ(a->atime_ns, b->atime_ns);
    CHECK_EQ(a->mtime_ns, b->mtime_ns);
    CHECK_EQ(a->reserve_pct, b->reserve_pct);
    CHECK((a->name == NULL) == (b->name == NULL));
    CHECK(a->name == NULL || strcmp(a->name, b->name) == 0);
    CHECK((a->new_name == NULL) == (b->new_name == NULL));
    CHECK(a->new_name == NULL || strcmp(a->new_name, b->new_name) == 0);
    CHECK_EQ(a->data_len, b->data_len);
    CHECK(a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

/* Decode from an exactly-sized heap copy (ASan catches over-reads). */
static int decode_copy(struct store_cmd* c,
                       const void* buf,
                       size_t len,
                       void** copy)
{
    *copy = malloc(len ? len : 1);
    CHECK(*copy != NULL);
    memcpy(*copy, buf, len);
    return store_cmd_decode(c, *copy, len);
}

static struct store_cmd sample(int i)
{
    static const char data[] = "key = value\n[section]\nx=1\n";
    struct store_cmd c = {
        .op = (uint8_t)(1 + i % 8),
        .flags = (uint32_t)(i % 16),
        .origin = 0x0102030405060708ull + (uint64_t)i,
        .seq = (uint64_t)i * 1000,
        .now_ns = -5 + i,
        .parent = 1,
        .name = i % 3 == 0 ? NULL : "file.conf",
        .new_parent = 77,
        .new_name = i % 2 ? "new-name" : NULL,
        .ino = 123456789,
        .mode = 0644,
        .uid = 1000,
        .gid = 1001,
        .set_mask = (uint32_t)(i % 64),
        .size = 1ull << 40,
        .atime_ns = INT64_MIN + i,
        .mtime_ns = INT64_MAX - i,
        .data = i % 4 ? data : NULL,
        .data_len = i % 4 ? sizeof(data) - 1 : 0,
    };
    return c;
}

static void test_round_trip(void)
{
    for (int i = 0; i < 64; i++) {
        struct store_cmd c = sample(i), d;
        size_t n = store_cmd_encoded_size(&c);
        uint8_t* buf = malloc(n);
        CHECK_EQ(store_cmd_encode(&c, buf, n), (long)n);
        CHECK_EQ(store_cmd_encode(&c, buf, n - 1), -ENOSPC);
        void* copy;
        CHECK_EQ(decode_copy(&d, buf, n, &copy), 0);
        check_same(&c, &d);
        /* strings point into the input */
        CHECK(d.name == NULL || ((const uint8_t*)d.name >= (uint8_t*)copy &&
                                 (const uint8_t*)d.name < (uint8_t*)copy + n));
        free(copy);
        free(buf);
    }
}

/* MKNOD: the type byte round-trips, and only the special types pass. */
static void test_mknod_type(void)
{
    struct store_cmd c = {.op = STORE_OP_MKNOD,
                          .type = STORE_CHR,
                          .parent = 1,
                          .name = "null",
                          .mode = 0666,
                          .size = 0x103},
                     d;
    uint8_t buf[256];
    long n = store_cmd_encode(&c, buf, sizeof(buf));
    CHECK(n > 0);
    void* copy;
    CHECK_EQ(decode_copy(&d, buf, (size_t)n, &copy), 0);
    check_same(&c, &d);
    free(copy);
    for (unsigned t = 0; t < 256; t++) {
        buf[2] = (uint8_t)t;
        int want = t >= STORE_FIFO && t <= STORE_BLK ? 0 : -EBADMSG;
        CHECK_EQ(decode_copy(&d, buf, (size_t)n, &copy), want);
        free(copy);
    }
}

static void test_truncated_and_extended(void)
{
    struct store_cmd c = sample(5), d;
    size_t n = store_cmd_encoded_size(&c);
    uint8_t* buf = calloc(1, n + 1);
    CHECK_EQ(store_cmd_encode(&c, buf, n), (long)n);
    for (size_t len = 0; len < n; len++) {
        void* copy;
        CHECK_EQ(decode_copy(&d, buf, len, &copy), -EBADMSG);
        free(copy);
    }
    void* copy;
    CHECK_EQ(decode_copy(&d, buf, n + 1, &copy), -EBADMSG);
    free(copy);
    CHECK_EQ(store_cmd_decode(&d, NULL, 0), -EBADMSG);
    free(buf);
}

static void test_malformed_fields(void)
{
    struct store_cmd c = sample(7), d;
    size_t n = store_cmd_encoded_size(&c);
    uint8_t *buf = malloc(n), *bad = malloc(n);
    CHECK_EQ(store_cmd_encode(&c, buf, n), (long)n);
    struct {
        size_t off;
        uint8_t val;
    } cases[] = {
        {0, 2},                   /* version */
        {1, 0},                   /* op */
        {1, 18},                  /* op (17: STORE_OP_RELEASE) */
        {2, 4},                   /* type: only MKNOD's */
        {3, 51},                  /* reserve_pct past 50 */
        {3, 0xff},                /* reserve_pct */
        {4, 0x40},                /* unknown flag */
        {68, 0x40},               /* unknown set bit */
        {96, 0xff},               /* name length */
        {100, 0xff}, {104, 0xff}, /* data length */
        {108, 1},                 /* reserved */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, buf, n);
        bad[cases[i].off] = cases[i].val;
        void* copy;
        CHECK_EQ(decode_copy(&d, bad, n, &copy), -EBADMSG);
        free(copy);
    }
    /* name without its NUL, and with an interior NUL */
    size_t name_at = 112, nl = strlen(c.name) + 1;
    memcpy(bad, buf, n);
    bad[name_at + nl - 1] = 'x';
    void* copy;
    CHECK_EQ(decode_copy(&d, bad, n, &copy), -EBADMSG);
    free(copy);
    memcpy(bad, buf, n);
    bad[name_at + 1] = 0;
    CHECK_EQ(decode_copy(&d, bad, n, &copy), -EBADMSG);
    free(copy);
    free(buf);
    free(bad);
}

/* Byte 3 carries the quota's root reserve: 0 encodes as the zero byte
 * it was before, 0..50 round-trips, more is refused both ways. */
static void test_reserve_pct(void)
{
    struct store_cmd c = sample(4), d;
    size_t n = store_cmd_encoded_size(&c);
    uint8_t* buf = malloc(n);
    for (unsigned pct = 0; pct <= STORE_RESERVE_PCT_MAX; pct += 5) {
        c.reserve_pct = (uint8_t)pct;
        CHECK_EQ(store_cmd_encode(&c, buf, n), (long)n);
        CHECK_EQ(buf[3], pct);
        void* copy;
        CHECK_EQ(decode_copy(&d, buf, n, &copy), 0);
        check_same(&c, &d);
        free(copy);
    }
    c.reserve_pct = STORE_RESERVE_PCT_MAX + 1;
    CHECK_EQ(store_cmd_encode(&c, buf, n), -EINVAL);
    free(buf);
}

/* The name reservation ops (16, 17) round-trip; STORE_CLAIM only on a
 * CREATE with STORE_WITH_DATA. */
static void test_reservations(void)
{
    struct store_cmd c = sample(1), d;
    uint8_t buf[512];
    void* copy;
    const struct {
        uint8_t op;
        uint32_t flags;
        int want;
    } cases[] = {
        {STORE_OP_RESERVE, 0, 0},
        {STORE_OP_RELEASE, 0, 0},
        {STORE_OP_CREATE, STORE_WITH_DATA | STORE_CLAIM, 0},
        {STORE_OP_CREATE, STORE_WITH_DATA | STORE_CLAIM | STORE_EXCL, 0},
        {STORE_OP_CREATE, STORE_CLAIM, -EBADMSG},
        {STORE_OP_RENAME, STORE_WITH_DATA | STORE_CLAIM, -EBADMSG},
        {STORE_OP_RESERVE, STORE_CLAIM, -EBADMSG},
        {STORE_OP_CREATE, STORE_WITH_DATA | STORE_REPLACE, 0},
        {STORE_OP_CREATE, STORE_REPLACE, -EBADMSG},
        {STORE_OP_RENAME, STORE_REPLACE, -EBADMSG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c.op = cases[i].op;
        c.flags = cases[i].flags;
        c.size = 5000000000ull;
        long n = store_cmd_encode(&c, buf, sizeof(buf));
        CHECK(n > 0);
        CHECK_EQ(decode_copy(&d, buf, (size_t)n, &copy), cases[i].want);
        if (cases[i].want == 0) {
            check_same(&c, &d);
        }
        free(copy);
    }
}

static void test_random_corruption(void)
{
    /* Every byte flipped in every bit: decode either fails cleanly or
     * yields a command whose strings are NUL-terminated inside the input. */
    struct store_cmd c = sample(9), d;
    size_t n = store_cmd_encoded_size(&c);
    uint8_t* buf = malloc(n);
    CHECK_EQ(store_cmd_encode(&c, buf, n), (long)n);
    unsigned ok = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            buf[i] ^= (uint8_t)(1u << b);
            void* copy;
            int rv = decode_copy(&d, buf, n, &copy);
            if (rv == 0) {
                ok++;
                if (d.name != NULL) {
                    CHECK(strlen(d.name) < n);
                }
                CHECK(d.data_len <= n);
            } else {
                CHECK_EQ(rv, -EBADMSG);
                bad++;
            }
            free(copy);
            buf[i] ^= (uint8_t)(1u << b);
        }
    }
    CHECK(ok > 0 && bad > 0);
    free(buf);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_mknod_type);
    RUN(test_truncated_and_extended);
    RUN(test_malformed_fields);
    RUN(test_reserve_pct);
    RUN(test_reservations);
    RUN(test_random_corruption);
    return 0;
}
