/* test_conf.c - configuration codec: round trip, limits, malformed input. */
#include <errno.h>

#include "check.h"
#include "raft.h"

static void conf_fill(struct raft_conf* c, unsigned n)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    for (unsigned i = 0; i < n; i++) {
        c->servers[i].id = 100 + i;
        c->servers[i].role = (i % 3 == 2) ? RAFT_LEARNER : RAFT_VOTER;
        snprintf(c->servers[i].name, RAFT_NAME_MAX, "n%u", i);
        snprintf(c->servers[i].addr, RAFT_ADDR_MAX, "127.0.0.%u:%u", i + 1,
                 7000 + i);
    }
}

static void test_round_trip(void)
{
    for (unsigned n = 0; n <= RAFT_SERVERS_MAX; n++) {
        struct raft_conf c, d;
        uint8_t buf[2048];
        conf_fill(&c, n);
        size_t size = raft_conf_encoded_size(&c);
        int rv = raft_conf_encode(&c, buf, sizeof(buf));
        CHECK_EQ(rv, (long long)size);
        memset(&d, 0xaa, sizeof(d));
        CHECK_EQ(raft_conf_decode(&d, buf, size), 0);
        CHECK_EQ(d.n, n);
        for (unsigned i = 0; i < n; i++) {
            CHECK_EQ(d.servers[i].id, c.servers[i].id);
            CHECK_EQ(d.servers[i].role, c.servers[i].role);
            CHECK(strcmp(d.servers[i].name, c.servers[i].name) == 0);
            CHECK(strcmp(d.servers[i].addr, c.servers[i].addr) == 0);
        }
        CHECK_EQ(raft_conf_voters(&d), raft_conf_voters(&c));
    }
}

static void test_max_lengths(void)
{
    struct raft_conf c, d;
    uint8_t buf[4096];
    conf_fill(&c, RAFT_SERVERS_MAX);
    memset(c.servers[0].name, 'x', RAFT_NAME_MAX - 1);
    c.servers[0].name[RAFT_NAME_MAX - 1] = '\0';
    memset(c.servers[0].addr, 'y', RAFT_ADDR_MAX - 1);
    c.servers[0].addr[RAFT_ADDR_MAX - 1] = '\0';
    int rv = raft_conf_encode(&c, buf, sizeof(buf));
    CHECK(rv > 0);
    CHECK_EQ(raft_conf_decode(&d, buf, (size_t)rv), 0);
    CHECK_EQ(strlen(d.servers[0].name), RAFT_NAME_MAX - 1);
    CHECK_EQ(strlen(d.servers[0].addr), RAFT_ADDR_MAX - 1);
}

static void test_enospc(void)
{
    struct raft_conf c;
    uint8_t buf[2048];
    conf_fill(&c, 3);
    size_t size = raft_conf_encoded_size(&c);
    CHECK_EQ(raft_conf_encode(&c, buf, size - 1), -ENOSPC);
    CHECK_EQ(raft_conf_encode(&c, buf, size), (long long)size);
}

static void test_truncated(void)
{
    struct raft_conf c, d;
    uint8_t buf[2048];
    conf_fill(&c, 5);
    int size = raft_conf_encode(&c, buf, sizeof(buf));
    CHECK(size > 0);
    /* Every strict prefix is malformed; decode must not touch *d. */
    for (int len = 0; len < size; len++) {
        memset(&d, 0x55, sizeof(d));
        CHECK_EQ(raft_conf_decode(&d, buf, (size_t)len), RAFT_EMALFORMED);
        CHECK_EQ(d.n, 0x55555555u);
    }
    /* Trailing garbage is refused too. */
    buf[size] = 0;
    CHECK_EQ(raft_conf_decode(&d, buf, (size_t)size + 1), RAFT_EMALFORMED);
}

static void test_malformed_fields(void)
{
    struct raft_conf c, d;
    uint8_t buf[2048], bad[2048];
    conf_fill(&c, 2);
    int size = raft_conf_encode(&c, buf, sizeof(buf));
    CHECK(size > 0);

    memcpy(bad, buf, (size_t)size);
    bad[0] = 2; /* unknown version */
    CHECK_EQ(raft_conf_decode(&d, bad, (size_t)size), RAFT_EVERSION);

    memcpy(bad, buf, (size_t)size);
    bad[1] = RAFT_SERVERS_MAX + 1; /* too many servers */
    CHECK_EQ(raft_conf_decode(&d, bad, (size_t)size), RAFT_EMALFORMED);

    memcpy(bad, buf, (size_t)size);
    memset(bad + 2, 0, 8); /* id 0 */
    CHECK_EQ(raft_conf_decode(&d, bad, (size_t)size), RAFT_EMALFORMED);

    memcpy(bad, buf, (size_t)size);
    bad[10] = 7; /* bad role */
    CHECK_EQ(raft_conf_decode(&d, bad, (size_t)size), RAFT_EMALFORMED);

    memcpy(bad, buf, (size_t)size);
    bad[11] = RAFT_NAME_MAX; /* name too long (and overruns) */
    CHECK_EQ(raft_conf_decode(&d, bad, (size_t)size), RAFT_EMALFORMED);

    memcpy(bad, buf, (size_t)size);
    bad[12] = '\0'; /* NUL inside the name */
    CHECK_EQ(raft_conf_decode(&d, bad, (size_t)size), RAFT_EMALFORMED);

    /* Duplicate id: give server 1 the id of server 0. */
    struct raft_conf dup = c;
    dup.servers[1].id = dup.servers[0].id;
    int dsize = raft_conf_encode(&dup, bad, sizeof(bad));
    CHECK(dsize > 0);
    CHECK_EQ(raft_conf_decode(&d, bad, (size_t)dsize), RAFT_EMALFORMED);
}

static void test_fuzz_flips(void)
{
    /* Flipping any byte must either decode to a valid conf or fail cleanly. */
    struct raft_conf c, d;
    uint8_t buf[2048];
    conf_fill(&c, 4);
    int size = raft_conf_encode(&c, buf, sizeof(buf));
    CHECK(size > 0);
    for (int i = 0; i < size; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            int rv = raft_conf_decode(&d, buf, (size_t)size);
            CHECK(rv == 0 || rv == RAFT_EMALFORMED || rv == RAFT_EVERSION);
            if (rv == 0) {
                CHECK(d.n <= RAFT_SERVERS_MAX);
                for (unsigned k = 0; k < d.n; k++) {
                    CHECK(d.servers[k].id != 0);
                    CHECK(raft_conf_get(&d, d.servers[k].id) == &d.servers[k]);
                }
            }
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
}

static void test_get_and_names(void)
{
    struct raft_conf c;
    conf_fill(&c, 3);
    CHECK(raft_conf_get(&c, 101) == &c.servers[1]);
    CHECK(raft_conf_get(&c, 7) == NULL);
    CHECK_EQ(raft_conf_voters(&c), 2);
    CHECK(strcmp(raft_errname(RAFT_ENOTLEADER), "RAFT_ENOTLEADER") == 0);
    CHECK(strcmp(raft_strerror(RAFT_ETOOBIG),
                 "entry larger than RAFT_ENTRY_DATA_MAX") == 0);
    CHECK(strcmp(raft_strerror(-ENOSPC), strerror(ENOSPC)) == 0);
    CHECK(strcmp(raft_role_name(RAFT_LEADER), "leader") == 0);
    CHECK(strcmp(raft_msg_type_name(RAFT_MSG_TIMEOUT_NOW), "timeout_now") == 0);
    CHECK(strcmp(raft_msg_type_name(99), "unknown") == 0);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_max_lengths);
    RUN(test_enospc);
    RUN(test_truncated);
    RUN(test_malformed_fields);
    RUN(test_fuzz_flips);
    RUN(test_get_and_names);
    return 0;
}
