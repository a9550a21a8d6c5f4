/* test_codec.c - raft message codec: round trips of every message type with
 * edge values, every truncation fails cleanly, and malformed inputs (bad
 * version/type/flags, counts larger than the bytes left, lengths over the
 * limits in raft.h) are refused without over-reading (inputs are copied into
 * exact-size heap buffers so ASan catches any read past the end). */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../raft/util/bytes.h"
#include "check.h"
#include "codec.h"

/* Offsets in the encoding (docs/format-wire.md). */
#define OFF_VERSION 0
#define OFF_TYPE 1
#define OFF_FLAGS 2
#define OFF_FROM 4
#define OFF_BODY 28
#define OFF_APPEND_N (OFF_BODY + 32)
#define OFF_APPEND_E0 (OFF_APPEND_N + 4)
#define OFF_E_INDEX 8
#define OFF_E_TYPE 16
#define OFF_E_LEN 17

/* Exhaustive truncation below this size; sampled above. */
#define TRUNC_EXHAUSTIVE_MAX (16u << 10)

static bool buf_eq(const struct raft_buf* a, const struct raft_buf* b)
{
    return a->len == b->len &&
           (a->len == 0 || memcmp(a->base, b->base, a->len) == 0);
}

static bool conf_eq(const struct raft_conf* a, const struct raft_conf* b)
{
    if (a->n != b->n) {
        return false;
    }
    for (unsigned i = 0; i < a->n; i++) {
        const struct raft_server *x = &a->servers[i], *y = &b->servers[i];
        if (x->id != y->id || x->role != y->role ||
            strcmp(x->name, y->name) != 0 || strcmp(x->addr, y->addr) != 0) {
            return false;
        }
    }
    return true;
}

static bool body_eq(const struct raft_message* a, const struct raft_message* b)
{
    switch (a->type) {
    case RAFT_MSG_APPEND: {
        const struct raft_msg_append *x = &a->append, *y = &b->append;
        if (x->prev_index != y->prev_index || x->prev_term != y->prev_term ||
            x->commit != y->commit || x->read_seq != y->read_seq ||
            x->n_entries != y->n_entries) {
            return false;
        }
        for (unsigned i = 0; i < x->n_entries; i++) {
            const struct raft_entry *e = &x->entries[i], *f = &y->entries[i];
            if (e->term != f->term || e->index != f->index ||
                e->type != f->type || !buf_eq(&e->data, &f->data)) {
                return false;
            }
        }
        return true;
    }
    case RAFT_MSG_APPEND_RESP:
        return a->append_resp.reject == b->append_resp.reject &&
               a->append_resp.index == b->append_resp.index &&
               a->append_resp.last_index == b->append_resp.last_index &&
               a->append_resp.conflict_term == b->append_resp.conflict_term &&
               a->append_resp.conflict_index == b->append_resp.conflict_index &&
               a->append_resp.read_seq == b->append_resp.read_seq;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        return a->vote.last_index == b->vote.last_index &&
               a->vote.last_term == b->vote.last_term &&
               a->vote.transfer == b->vote.transfer;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        return a->vote_resp.granted == b->vote_resp.granted;
    case RAFT_MSG_SNAPSHOT: {
        const struct raft_msg_snapshot *x = &a->snapshot, *y = &b->snapshot;
        return x->meta.index == y->meta.index && x->meta.term == y->meta.term &&
               x->meta.conf_index == y->meta.conf_index &&
               conf_eq(&x->meta.conf, &y->meta.conf) && x->total == y->total &&
               x->offset == y->offset && buf_eq(&x->chunk, &y->chunk);
    }
    case RAFT_MSG_SNAPSHOT_RESP:
        return a->snapshot_resp.index == b->snapshot_resp.index &&
               a->snapshot_resp.next_offset == b->snapshot_resp.next_offset &&
               a->snapshot_resp.done == b->snapshot_resp.done &&
               a->snapshot_resp.reject == b->snapshot_resp.reject;
    case RAFT_MSG_PROPOSE: {
        if (a->propose.n != b->propose.n) {
            return false;
        }
        for (unsigned i = 0; i < a->propose.n; i++) {
            const struct raft_proposal *p = &a->propose.props[i],
                                       *q = &b->propose.props[i];
            if (p->ctx != q->ctx || p->type != q->type ||
                !buf_eq(&p->data, &q->data)) {
                return false;
            }
        }
        return true;
    }
    case RAFT_MSG_PROPOSE_RESP:
        return a->propose_resp.err == b->propose_resp.err &&
               a->propose_resp.n == b->propose_resp.n &&
               (a->propose_resp.n == 0 ||
                memcmp(a->propose_resp.ctxs, b->propose_resp.ctxs,
                       8 * (size_t)a->propose_resp.n) == 0);
    case RAFT_MSG_READ_INDEX:
        return a->read_index.ctx == b->read_index.ctx;
    case RAFT_MSG_READ_INDEX_RESP:
        return a->read_index_resp.ctx == b->read_index_resp.ctx &&
               a->read_index_resp.index == b->read_index_resp.index &&
               a->read_index_resp.err == b->read_index_resp.err;
    case RAFT_MSG_TRANSFER:
        return a->transfer.to == b->transfer.to;
    default:
        return true; /* TIMEOUT_NOW: header only */
    }
}

static bool msg_eq(const struct raft_message* a, const struct raft_message* b)
{
    return a->type == b->type && a->from == b->from && a->to == b->to &&
           a->term == b->term && body_eq(a, b);
}

static uint8_t* encode_new(const struct raft_message* m, size_t* len)
{
    size_t size = raft_msg_encoded_size(m);
    uint8_t* buf = malloc(size);
    CHECK(buf != NULL);
    CHECK_EQ(raft_msg_encode(m, buf, size), (long)size);
    *len = size;
    return buf;
}

/* Decode an exact-size heap copy of buf[0..len); returns the decode code. */
static int decode_copy(const uint8_t* buf, size_t len)
{
    uint8_t* copy = malloc(len > 0 ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, buf, len);
    struct raft_message m;
    struct raft_msg_arena arena;
    int rv = raft_msg_decode(&m, &arena, copy, len);
    raft_msg_arena_free(&arena);
    free(copy);
    return rv;
}

static void check_truncations(const uint8_t* buf, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        if (len > TRUNC_EXHAUSTIVE_MAX && k > 4096 && k + 64 < len &&
            k % 65521 != 0) {
            continue; /* sample the middle of large encodings */
        }
        CHECK_EQ(decode_copy(buf, k), RAFT_EMALFORMED);
    }
}

/* Encode, decode, compare; check truncations, a trailing byte, too small a
 * capacity, and that re-encoding the decoded message gives the same bytes. */
static void roundtrip(const struct raft_message* m)
{
    size_t len;
    uint8_t* buf = encode_new(m, &len);
    CHECK_EQ(buf[OFF_VERSION], RAFT_CODEC_VERSION);
    CHECK_EQ(buf[OFF_TYPE], m->type);

    struct raft_message d;
    struct raft_msg_arena arena;
    CHECK_EQ(raft_msg_decode(&d, &arena, buf, len), 0);
    CHECK(msg_eq(m, &d));
    size_t len2;
    uint8_t* buf2 = encode_new(&d, &len2);
    CHECK_EQ(len2, len);
    CHECK_MEM(buf, buf2, len);
    free(buf2);
    raft_msg_arena_free(&arena);

    CHECK_EQ(raft_msg_encode(m, buf, len - 1), -ENOSPC);
    check_truncations(buf, len);

    uint8_t* longer = malloc(len + 1);
    CHECK(longer != NULL);
    memcpy(longer, buf, len);
    longer[len] = 0;
    CHECK_EQ(decode_copy(longer, len + 1), RAFT_EMALFORMED);
    free(longer);
    free(buf);
}

static struct raft_message header(uint8_t type)
{
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = 1;
    m.to = UINT64_MAX;
    m.term = UINT64_MAX - 1;
    return m;
}

static void fill_conf(struct raft_conf* c, unsigned n)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    for (unsigned i = 0; i < n; i++) {
        struct raft_server* s = &c->servers[i];
        s->id = i == 0 ? UINT64_MAX : i;
        s->role = i % 2 ? RAFT_LEARNER : RAFT_VOTER;
        memset(s->name, 'a' + (int)i, RAFT_NAME_MAX - 1);
        memset(s->addr, '0' + (int)i, RAFT_ADDR_MAX - 1);
    }
}

/* ---- round trips ---- */

static void test_small_types(void)
{
    struct raft_message m = header(RAFT_MSG_APPEND_RESP);
    for (int reject = 0; reject <= 1; reject++) {
        m.append_resp =
            (struct raft_msg_append_resp){.reject = reject,
                                          .index = UINT64_MAX,
                                          .last_index = 0,
                                          .conflict_term = 7,
                                          .conflict_index = UINT64_MAX - 3,
                                          .read_seq = 42};
        roundtrip(&m);
    }
    uint8_t vote_types[] = {RAFT_MSG_VOTE, RAFT_MSG_PREVOTE};
    for (unsigned t = 0; t < 2; t++) {
        for (int transfer = 0; transfer <= 1; transfer++) {
            m = header(vote_types[t]);
            m.vote = (struct raft_msg_vote){
                .last_index = UINT64_MAX, .last_term = 0, .transfer = transfer};
            roundtrip(&m);
            m = header((uint8_t)(vote_types[t] + 1)); /* the response */
            m.vote_resp.granted = transfer;
            roundtrip(&m);
        }
    }
    for (unsigned f = 0; f < 4; f++) {
        m = header(RAFT_MSG_SNAPSHOT_RESP);
        m.snapshot_resp =
            (struct raft_msg_snapshot_resp){.index = 9,
                                            .next_offset = UINT64_MAX,
                                            .done = f & 1,
                                            .reject = (f & 2) != 0};
        roundtrip(&m);
    }
    m = header(RAFT_MSG_TIMEOUT_NOW);
    m.from = UINT64_MAX;
    m.to = 1;
    m.term = 0;
    roundtrip(&m);
    m = header(RAFT_MSG_READ_INDEX);
    m.read_index.ctx = UINT64_MAX;
    roundtrip(&m);
    int errs[] = {0, RAFT_ENOTLEADER, INT_MIN};
    for (unsigned i = 0; i < 3; i++) {
        m = header(RAFT_MSG_READ_INDEX_RESP);
        m.read_index_resp = (struct raft_msg_read_index_resp){
            .ctx = 3, .index = UINT64_MAX, .err = errs[i]};
        roundtrip(&m);
    }
    raft_id tos[] = {0, 2, UINT64_MAX};
    for (unsigned i = 0; i < 3; i++) {
        m = header(RAFT_MSG_TRANSFER);
        m.transfer.to = tos[i];
        roundtrip(&m);
    }
}

static void test_append(void)
{
    static uint8_t payload[300];
    for (unsigned i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 7 + 1);
    }
    struct raft_entry* es = calloc(RAFT_APPEND_ENTRIES_MAX, sizeof(*es));
    CHECK(es != NULL);
    struct raft_message m = header(RAFT_MSG_APPEND);
    /* Heartbeat: no entries. */
    m.append = (struct raft_msg_append){.prev_index = UINT64_MAX,
                                        .prev_term = UINT64_MAX,
                                        .commit = UINT64_MAX,
                                        .read_seq = UINT64_MAX};
    roundtrip(&m);
    /* A few entries of each type, one empty. */
    for (unsigned i = 0; i < 3; i++) {
        es[i] = (struct raft_entry){
            .term = 5 + i,
            .index = 11 + i,
            .type = (uint8_t)(RAFT_ENTRY_NORMAL + i),
            .data = {i == 1 ? NULL : payload, i == 1 ? 0 : 100 * i + 1}};
    }
    m.append = (struct raft_msg_append){.prev_index = 10,
                                        .prev_term = 4,
                                        .commit = 9,
                                        .n_entries = 3,
                                        .entries = es};
    roundtrip(&m);
    /* The maximum count, ending at index UINT64_MAX. */
    uint64_t prev = UINT64_MAX - RAFT_APPEND_ENTRIES_MAX;
    for (unsigned i = 0; i < RAFT_APPEND_ENTRIES_MAX; i++) {
        es[i] = (struct raft_entry){.term = i,
                                    .index = prev + 1 + i,
                                    .type = RAFT_ENTRY_NORMAL,
                                    .data = {payload, i % sizeof(payload)}};
    }
    m.append = (struct raft_msg_append){.prev_index = prev,
                                        .n_entries = RAFT_APPEND_ENTRIES_MAX,
                                        .entries = es};
    roundtrip(&m);
    free(es);
}

/* Byte budget: one maximal entry alone, and a batch that overshoots
 * RAFT_APPEND_BYTES_MAX with its last entry only. */
static void test_append_big(void)
{
    uint8_t* big = malloc(RAFT_ENTRY_DATA_MAX + 1);
    CHECK(big != NULL);
    for (size_t i = 0; i <= RAFT_ENTRY_DATA_MAX; i++) {
        big[i] = (uint8_t)(i ^ (i >> 8));
    }
    struct raft_entry es[3];
    struct raft_message m = header(RAFT_MSG_APPEND);
    es[0] = (struct raft_entry){
        .term = 1, .index = 1, .type = 1, .data = {big, RAFT_ENTRY_DATA_MAX}};
    m.append = (struct raft_msg_append){.n_entries = 1, .entries = es};
    roundtrip(&m);

    es[0].data.len = RAFT_APPEND_BYTES_MAX / 2;
    es[1] = (struct raft_entry){.term = 1,
                                .index = 2,
                                .type = 1,
                                .data = {big, RAFT_APPEND_BYTES_MAX / 2}};
    es[2] = (struct raft_entry){
        .term = 1, .index = 3, .type = 1, .data = {big, RAFT_ENTRY_DATA_MAX}};
    m.append.n_entries = 3;
    roundtrip(&m);
    size_t len;
    uint8_t* buf = encode_new(&m, &len);
    CHECK(len > (size_t)RAFT_ENTRY_DATA_MAX + RAFT_APPEND_BYTES_MAX);

    /* Encoder refusals: too big an entry, too big a budget before the last. */
    es[2].data.len = RAFT_ENTRY_DATA_MAX + 1;
    CHECK_EQ(raft_msg_encode(&m, buf, len), RAFT_ETOOBIG);
    es[2].data.len = 1;
    es[1].data.len = RAFT_APPEND_BYTES_MAX / 2 + 1;
    CHECK_EQ(raft_msg_encode(&m, buf, len), RAFT_ETOOBIG);
    free(buf);

    /* Decoder: an entry length over RAFT_ENTRY_DATA_MAX (bytes present). */
    es[0].data.len = RAFT_ENTRY_DATA_MAX;
    m.append.n_entries = 1;
    size_t blen = raft_msg_encoded_size(&m) + 1;
    buf = malloc(blen);
    CHECK(buf != NULL);
    CHECK_EQ(raft_msg_encode(&m, buf, blen), (long)blen - 1);
    put_le(buf + OFF_APPEND_E0 + OFF_E_LEN, RAFT_ENTRY_DATA_MAX + 1, 4);
    CHECK_EQ(decode_copy(buf, blen), RAFT_EMALFORMED);
    free(buf);
    free(big);
}

static void test_snapshot(void)
{
    uint8_t* chunk = malloc(RAFT_SNAPSHOT_CHUNK);
    CHECK(chunk != NULL);
    for (size_t i = 0; i < RAFT_SNAPSHOT_CHUNK; i++) {
        chunk[i] = (uint8_t)(i * 31);
    }
    struct raft_message m = header(RAFT_MSG_SNAPSHOT);
    m.snapshot.meta.index = UINT64_MAX;
    m.snapshot.meta.term = 3;
    m.snapshot.meta.conf_index = UINT64_MAX - 1;
    fill_conf(&m.snapshot.meta.conf, RAFT_SERVERS_MAX);
    m.snapshot.total = RAFT_SNAPSHOT_BYTES_MAX;
    m.snapshot.offset = RAFT_SNAPSHOT_BYTES_MAX - RAFT_SNAPSHOT_CHUNK;
    m.snapshot.chunk = (struct raft_buf){chunk, RAFT_SNAPSHOT_CHUNK};
    roundtrip(&m);
    /* Empty image, empty configuration. */
    fill_conf(&m.snapshot.meta.conf, 0);
    m.snapshot.total = 0;
    m.snapshot.offset = 0;
    m.snapshot.chunk = (struct raft_buf){NULL, 0};
    roundtrip(&m);
    /* A one-server configuration with empty name and address. */
    m.snapshot.meta.conf.n = 1;
    m.snapshot.meta.conf.servers[0].id = 2;
    m.snapshot.meta.conf.servers[0].role = RAFT_VOTER;
    m.snapshot.total = 10;
    m.snapshot.offset = 3;
    m.snapshot.chunk = (struct raft_buf){chunk, 7};
    roundtrip(&m);

    /* Encoder refusals. */
    uint8_t buf[512];
    m.snapshot.offset = 4; /* 4 + 7 > 10 */
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_EMALFORMED);
    m.snapshot.offset = 3;
    m.snapshot.total = (uint64_t)RAFT_SNAPSHOT_BYTES_MAX + 1;
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_ETOOBIG);
    m.snapshot.total = 10;
    m.snapshot.meta.conf.servers[0].id = 0; /* conf decode would refuse */
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_EMALFORMED);
    m.snapshot.meta.conf.servers[0].id = 2;
    m.snapshot.chunk.len = RAFT_SNAPSHOT_CHUNK + 1;
    m.snapshot.total = RAFT_SNAPSHOT_BYTES_MAX;
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_ETOOBIG);
    free(chunk);
}

static void test_propose(void)
{
    static uint8_t data[64];
    memset(data, 0xab, sizeof(data));
    struct raft_proposal* ps = calloc(RAFT_PROPOSE_BATCH_MAX + 1, sizeof(*ps));
    uint64_t* ctxs = calloc(RAFT_PROPOSE_BATCH_MAX + 1, sizeof(*ctxs));
    CHECK(ps != NULL && ctxs != NULL);
    for (unsigned i = 0; i <= RAFT_PROPOSE_BATCH_MAX; i++) {
        ps[i] = (struct raft_proposal){.ctx = UINT64_MAX - i,
                                       .type = RAFT_ENTRY_NORMAL,
                                       .data = {data, i % sizeof(data)}};
        ctxs[i] = (uint64_t)i << 40 | i;
    }
    struct raft_message m = header(RAFT_MSG_PROPOSE);
    for (unsigned n = 0; n <= 2; n++) {
        m.propose = (struct raft_msg_propose){.n = n, .props = ps};
        roundtrip(&m);
    }
    m.propose.n = RAFT_PROPOSE_BATCH_MAX;
    roundtrip(&m);
    uint8_t buf[64];
    m.propose.n = RAFT_PROPOSE_BATCH_MAX + 1;
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_EMALFORMED);
    m.propose.n = 1;
    ps[0].type = 0;
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_EMALFORMED);

    m = header(RAFT_MSG_PROPOSE_RESP);
    m.propose_resp = (struct raft_msg_propose_resp){
        .err = RAFT_ENOTLEADER, .n = 0, .ctxs = ctxs};
    roundtrip(&m);
    m.propose_resp.n = 1;
    m.propose_resp.err = INT_MIN;
    roundtrip(&m);
    m.propose_resp.n = RAFT_PROPOSE_BATCH_MAX;
    roundtrip(&m);
    m.propose_resp.n = RAFT_PROPOSE_BATCH_MAX + 1;
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_EMALFORMED);
    m.propose_resp.n = 1;
    m.propose_resp.err = 1;
    CHECK_EQ(raft_msg_encode(&m, buf, sizeof(buf)), RAFT_EMALFORMED);
    free(ps);
    free(ctxs);
}

/* ---- malformed inputs ---- */

static void test_header_errors(void)
{
    struct raft_message m = header(RAFT_MSG_VOTE);
    size_t len;
    uint8_t* buf = encode_new(&m, &len);
    CHECK_EQ(decode_copy(buf, len), 0);

    buf[OFF_VERSION] = RAFT_CODEC_VERSION + 1;
    CHECK_EQ(decode_copy(buf, len), RAFT_EVERSION);
    buf[OFF_VERSION] = 0;
    CHECK_EQ(decode_copy(buf, len), RAFT_EVERSION);
    buf[OFF_VERSION] = RAFT_CODEC_VERSION;

    uint8_t bad_types[] = {0, RAFT_MSG_TYPE_MAX + 1, 0xff};
    for (unsigned i = 0; i < sizeof(bad_types); i++) {
        buf[OFF_TYPE] = bad_types[i];
        CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    }
    buf[OFF_TYPE] = RAFT_MSG_VOTE;

    put_le(buf + OFF_FLAGS, 0x2, 2); /* only bit 0 (transfer) is defined */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(buf + OFF_FLAGS, 0x8000, 2);
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(buf + OFF_FLAGS, 0x1, 2);
    CHECK_EQ(decode_copy(buf, len), 0);

    put_le(buf + OFF_FROM, 0, 8); /* node ids are never 0 */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    free(buf);

    /* Types without booleans refuse every flag; encoder refuses id 0. */
    m = header(RAFT_MSG_TIMEOUT_NOW);
    buf = encode_new(&m, &len);
    put_le(buf + OFF_FLAGS, 0x1, 2);
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    m.to = 0;
    CHECK_EQ(raft_msg_encode(&m, buf, len), RAFT_EMALFORMED);
    m.to = 1;
    m.type = RAFT_MSG_TYPE_MAX + 1;
    CHECK_EQ(raft_msg_encode(&m, buf, len), RAFT_EMALFORMED);
    free(buf);

    m = header(RAFT_MSG_READ_INDEX_RESP);
    m.read_index_resp.err = 5;
    uint8_t small[64];
    CHECK_EQ(raft_msg_encode(&m, small, sizeof(small)), RAFT_EMALFORMED);
    m.read_index_resp.err = -5;
    buf = encode_new(&m, &len);
    put_le(buf + len - 4, 5, 4); /* positive err on the wire */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    free(buf);
}

static void test_append_errors(void)
{
    static uint8_t data[8] = "abcdefg";
    struct raft_entry es[2] = {
        {.term = 1, .index = 6, .type = RAFT_ENTRY_NORMAL, .data = {data, 8}},
        {.term = 1, .index = 7, .type = RAFT_ENTRY_NOOP, .data = {NULL, 0}},
    };
    struct raft_message m = header(RAFT_MSG_APPEND);
    m.append = (struct raft_msg_append){
        .prev_index = 5, .n_entries = 2, .entries = es};
    size_t len;
    uint8_t* buf = encode_new(&m, &len);
    CHECK_EQ(decode_copy(buf, len), 0);
    uint8_t* e0 = buf + OFF_APPEND_E0;

    /* Counts larger than the bytes that remain, and over the limit. */
    uint32_t counts[] = {3, 1000, RAFT_APPEND_ENTRIES_MAX + 1, UINT32_MAX};
    for (unsigned i = 0; i < 4; i++) {
        put_le(buf + OFF_APPEND_N, counts[i], 4);
        CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    }
    put_le(buf + OFF_APPEND_N, 1, 4); /* fewer: trailing bytes */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(buf + OFF_APPEND_N, 2, 4);

    /* Entry length beyond the end, huge, and one byte short. */
    uint32_t lens[] = {9 + 21 + 1, UINT32_MAX, RAFT_ENTRY_DATA_MAX + 1};
    for (unsigned i = 0; i < 3; i++) {
        put_le(e0 + OFF_E_LEN, lens[i], 4);
        CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    }
    put_le(e0 + OFF_E_LEN, 7, 4); /* shifts the rest: misparsed */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(e0 + OFF_E_LEN, 8, 4);

    /* Entry type, index not following prev_index. */
    e0[OFF_E_TYPE] = 0;
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    e0[OFF_E_TYPE] = RAFT_ENTRY_CONF + 1;
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    e0[OFF_E_TYPE] = RAFT_ENTRY_NORMAL;
    put_le(e0 + OFF_E_INDEX, 7, 8);
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(e0 + OFF_E_INDEX, 6, 8);
    CHECK_EQ(decode_copy(buf, len), 0);

    /* prev_index + n overflows. */
    put_le(buf + OFF_BODY, UINT64_MAX - 1, 8);
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    free(buf);

    m.append.prev_index = 4; /* encoder: index must be prev_index + 1 + i */
    uint8_t out[256];
    CHECK_EQ(raft_msg_encode(&m, out, sizeof(out)), RAFT_EMALFORMED);
    m.append.prev_index = 5;
    m.append.n_entries = RAFT_APPEND_ENTRIES_MAX + 1;
    CHECK_EQ(raft_msg_encode(&m, out, sizeof(out)), RAFT_EMALFORMED);
}

static void test_snapshot_errors(void)
{
    static uint8_t chunk[16] = "0123456789abcde";
    struct raft_message m = header(RAFT_MSG_SNAPSHOT);
    fill_conf(&m.snapshot.meta.conf, 2);
    m.snapshot.total = 100;
    m.snapshot.offset = 84;
    m.snapshot.chunk = (struct raft_buf){chunk, 16};
    size_t len;
    uint8_t* buf = encode_new(&m, &len);
    size_t conf_len = raft_conf_encoded_size(&m.snapshot.meta.conf);
    uint8_t* conf_len_p = buf + OFF_BODY + 24;
    uint8_t* total_p = conf_len_p + 4 + conf_len;
    uint8_t* offset_p = total_p + 8;
    uint8_t* chunk_len_p = offset_p + 8;
    CHECK_EQ(decode_copy(buf, len), 0);

    put_le(offset_p, 85, 8); /* offset + chunk > total */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(offset_p, UINT64_MAX, 8);
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(offset_p, 84, 8);
    put_le(total_p, (uint64_t)RAFT_SNAPSHOT_BYTES_MAX + 1, 8);
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(total_p, 100, 8);
    uint32_t chunk_lens[] = {17, RAFT_SNAPSHOT_CHUNK + 1, UINT32_MAX, 15};
    for (unsigned i = 0; i < 4; i++) {
        put_le(chunk_len_p, chunk_lens[i], 4);
        CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    }
    put_le(chunk_len_p, 16, 4);
    uint32_t conf_lens[] = {(uint32_t)conf_len + 1, (uint32_t)conf_len - 1,
                            UINT32_MAX, 0};
    for (unsigned i = 0; i < 4; i++) {
        put_le(conf_len_p, conf_lens[i], 4);
        CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    }
    put_le(conf_len_p, conf_len, 4);
    conf_len_p[4] = 9; /* configuration version */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    conf_len_p[4] = 1;
    CHECK_EQ(decode_copy(buf, len), 0);
    free(buf);
}

static void test_propose_errors(void)
{
    static uint8_t data[4] = "xyz";
    struct raft_proposal p = {
        .ctx = 1, .type = RAFT_ENTRY_NORMAL, .data = {data, 4}};
    struct raft_message m = header(RAFT_MSG_PROPOSE);
    m.propose = (struct raft_msg_propose){.n = 1, .props = &p};
    size_t len;
    uint8_t* buf = encode_new(&m, &len);
    uint32_t counts[] = {2, RAFT_PROPOSE_BATCH_MAX + 1, UINT32_MAX, 0};
    for (unsigned i = 0; i < 4; i++) {
        put_le(buf + OFF_BODY, counts[i], 4);
        CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    }
    put_le(buf + OFF_BODY, 1, 4);
    put_le(buf + OFF_BODY + 4 + 9, UINT32_MAX, 4); /* data length */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    free(buf);

    uint64_t ctxs[2] = {1, 2};
    m = header(RAFT_MSG_PROPOSE_RESP);
    m.propose_resp = (struct raft_msg_propose_resp){
        .err = RAFT_ENOTLEADER, .n = 2, .ctxs = ctxs};
    buf = encode_new(&m, &len);
    put_le(buf + OFF_BODY + 4, 3, 4); /* count beyond the bytes */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(buf + OFF_BODY + 4, RAFT_PROPOSE_BATCH_MAX + 1, 4);
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    put_le(buf + OFF_BODY + 4, 2, 4);
    put_le(buf + OFF_BODY, 1, 4); /* positive err */
    CHECK_EQ(decode_copy(buf, len), RAFT_EMALFORMED);
    free(buf);
}

/* Byte mutations of valid encodings (deterministic): decode never crashes
 * or over-reads, and whatever decodes re-encodes to exactly the same bytes
 * (the encoding is canonical). */
static void test_mutations(void)
{
    static const uint8_t data[] = "0123456789";
    struct raft_entry es[2] = {
        {.term = 2, .index = 8, .type = RAFT_ENTRY_NORMAL, .data = {data, 10}},
        {.term = 2, .index = 9, .type = RAFT_ENTRY_CONF, .data = {data, 3}},
    };
    struct raft_message ms[4];
    ms[0] = header(RAFT_MSG_APPEND);
    ms[0].append = (struct raft_msg_append){
        .prev_index = 7, .n_entries = 2, .entries = es};
    ms[1] = header(RAFT_MSG_SNAPSHOT_RESP);
    ms[1].snapshot_resp.done = true;
    ms[2] = header(RAFT_MSG_SNAPSHOT);
    fill_conf(&ms[2].snapshot.meta.conf, 2);
    ms[2].snapshot.total = 10;
    ms[2].snapshot.chunk = (struct raft_buf){data, 10};
    ms[3] = header(RAFT_MSG_PROPOSE_RESP);
    uint64_t ctxs[2] = {5, 6};
    ms[3].propose_resp =
        (struct raft_msg_propose_resp){.err = -1, .n = 2, .ctxs = ctxs};
    uint64_t x = 0x9e3779b97f4a7c15u;
    unsigned decoded = 0, total = 0;
    for (unsigned k = 0; k < 4; k++) {
        size_t len;
        uint8_t* buf = encode_new(&ms[k], &len);
        for (unsigned iter = 0; iter < 5000; iter++, total++) {
            uint8_t* mut = malloc(len);
            CHECK(mut != NULL);
            memcpy(mut, buf, len);
            for (unsigned flips = 0; flips < 1 + iter % 3; flips++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                mut[(x >> 8) % len] ^= (uint8_t)(1u << (x % 8));
            }
            struct raft_message d;
            struct raft_msg_arena arena;
            int rv = raft_msg_decode(&d, &arena, mut, len);
            CHECK(rv == 0 || rv == RAFT_EMALFORMED || rv == RAFT_EVERSION);
            if (rv == 0) {
                decoded++;
                size_t len2;
                uint8_t* again = encode_new(&d, &len2);
                CHECK_EQ(len2, len);
                CHECK_MEM(again, mut, len);
                free(again);
            }
            raft_msg_arena_free(&arena);
            free(mut);
        }
        free(buf);
    }
    fprintf(stderr, "   mutants that still decode: %u of %u\n", decoded, total);
    CHECK(decoded > 0 && decoded < total);
}

int main(void)
{
    RUN(test_small_types);
    RUN(test_append);
    RUN(test_append_big);
    RUN(test_snapshot);
    RUN(test_propose);
    RUN(test_header_errors);
    RUN(test_append_errors);
    RUN(test_snapshot_errors);
    RUN(test_propose_errors);
    RUN(test_mutations);
    return 0;
}
