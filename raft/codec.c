/* codec.c - raft messages to and from bytes (pure, no I/O).
 *
 * The byte-by-byte layout is in docs/format-wire.md. In short, all integers
 * are little-endian and every message is
 *
 *   u8 version, u8 type, u16 flags, u64 from, u64 to, u64 term, body
 *
 * where `flags` carries the message's booleans (one bit each, defined per
 * type below; unknown bits are malformed) and the body is fixed per type
 * except for three counted arrays (append entries, proposals, proposal
 * contexts) and two length-prefixed byte strings (entry/proposal data,
 * snapshot chunk; plus the snapshot meta's configuration, encoded by
 * raft_conf_encode()).
 *
 * The encoding is canonical: decode accepts an input only if it is exactly
 * one encoding (no trailing bytes, booleans only 0/1, known flags only), so
 * encode(decode(x)) == x byte for byte. The fuzzer checks that.
 *
 * Limits (checked by both sides, the encoder refuses what the decoder
 * refuses):
 *   - from, to != 0; version == RAFT_CODEC_VERSION; 1 <= type <= TYPE_MAX.
 *   - APPEND: n_entries <= RAFT_APPEND_ENTRIES_MAX; entry i has index
 *     prev_index + 1 + i; type NORMAL/NOOP/CONF; data <= RAFT_ENTRY_DATA_MAX;
 *     the data of all entries but the last sums to <= RAFT_APPEND_BYTES_MAX
 *     (a batch may overshoot the byte budget by its last entry, so one
 *     maximal entry always fits).
 *   - PROPOSE: n <= RAFT_PROPOSE_BATCH_MAX, same data rules as APPEND.
 *   - PROPOSE_RESP: n <= RAFT_PROPOSE_BATCH_MAX; err <= 0.
 *   - READ_INDEX_RESP: err <= 0.
 *   - SNAPSHOT: chunk <= RAFT_SNAPSHOT_CHUNK; total <= RAFT_SNAPSHOT_BYTES_MAX;
 *     offset + chunk <= total; the configuration decodes with
 *     raft_conf_decode() and is at most CODEC_CONF_BYTES_MAX bytes.
 * Hence every valid encoding is at most CODEC_MSG_BYTES_MAX bytes.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/bytes.h"
#include "codec.h"

/* ---- layout constants ---- */

#define CODEC_HEADER_BYTES (1 + 1 + 2 + 8 + 8 + 8)
#define CODEC_ENTRY_FIXED_BYTES (8 + 8 + 1 + 4) /* term index type len */
#define CODEC_PROP_FIXED_BYTES (8 + 1 + 4)      /* ctx type len */
#define CODEC_APPEND_FIXED_BYTES (8 + 8 + 8 + 8 + 4)
#define CODEC_APPEND_RESP_BYTES ((size_t)5 * 8)
#define CODEC_VOTE_BYTES (8 + 8)
#define CODEC_SNAP_FIXED_BYTES (8 + 8 + 8 + 4 + 8 + 8 + 4)
#define CODEC_SNAP_RESP_BYTES (8 + 8)
#define CODEC_PROPOSE_FIXED_BYTES 4
#define CODEC_PROPOSE_RESP_FIXED_BYTES (4 + 4)
#define CODEC_READ_INDEX_BYTES 8
#define CODEC_READ_INDEX_RESP_BYTES (8 + 8 + 4)
#define CODEC_TRANSFER_BYTES 8

/* A configuration: 2 header bytes + per server id, role, two strings. */
#define CODEC_CONF_BYTES_MAX 1024
_Static_assert(2 + RAFT_SERVERS_MAX * (8 + 1 + 1 + 1 + (RAFT_NAME_MAX - 1) +
                                       (RAFT_ADDR_MAX - 1)) <=
                   CODEC_CONF_BYTES_MAX,
               "a full configuration fits CODEC_CONF_BYTES_MAX");

/* Payload bytes of one append / propose batch (see the limits above). */
#define CODEC_BATCH_DATA_MAX \
    ((size_t)RAFT_APPEND_BYTES_MAX + (size_t)RAFT_ENTRY_DATA_MAX)

/* The largest valid encoding of any message (docs/format-wire.md). */
#define CODEC_MSG_BYTES_MAX                                      \
    (CODEC_HEADER_BYTES + CODEC_APPEND_FIXED_BYTES +             \
     (size_t)RAFT_APPEND_ENTRIES_MAX * CODEC_ENTRY_FIXED_BYTES + \
     CODEC_BATCH_DATA_MAX)
_Static_assert(CODEC_HEADER_BYTES + CODEC_SNAP_FIXED_BYTES +
                       CODEC_CONF_BYTES_MAX + RAFT_SNAPSHOT_CHUNK <=
                   CODEC_MSG_BYTES_MAX,
               "snapshot chunks fit the message maximum");
_Static_assert(CODEC_PROPOSE_FIXED_BYTES +
                       RAFT_PROPOSE_BATCH_MAX * CODEC_PROP_FIXED_BYTES <=
                   CODEC_APPEND_FIXED_BYTES +
                       RAFT_APPEND_ENTRIES_MAX * CODEC_ENTRY_FIXED_BYTES,
               "proposal batches fit the message maximum");
_Static_assert(CODEC_MSG_BYTES_MAX < (size_t)LONG_MAX,
               "encode returns the size as a long");
_Static_assert(RAFT_ENTRY_DATA_MAX <= UINT32_MAX &&
                   RAFT_SNAPSHOT_CHUNK <= UINT32_MAX,
               "lengths are encoded as u32");
_Static_assert(sizeof(int) == 4, "errors are encoded as i32");

/* Flag bits, per message type. */
#define CODEC_F_REJECT 0x1u   /* APPEND_RESP, SNAPSHOT_RESP */
#define CODEC_F_DONE 0x2u     /* SNAPSHOT_RESP */
#define CODEC_F_TRANSFER 0x1u /* VOTE, PREVOTE */
#define CODEC_F_GRANTED 0x1u  /* VOTE_RESP, PREVOTE_RESP */

static unsigned flags_allowed(uint8_t type)
{
    switch (type) {
    case RAFT_MSG_APPEND_RESP:
        return CODEC_F_REJECT;
    case RAFT_MSG_SNAPSHOT_RESP:
        return CODEC_F_REJECT | CODEC_F_DONE;
    /* clang-tidy 14 reports two labels sharing one return as clones. */
    // NOLINTNEXTLINE(bugprone-branch-clone)
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        return CODEC_F_TRANSFER;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        return CODEC_F_GRANTED;
    default:
        return 0;
    }
}

static bool entry_type_valid(uint8_t type)
{
    return type == RAFT_ENTRY_NORMAL || type == RAFT_ENTRY_NOOP ||
           type == RAFT_ENTRY_CONF;
}

/* ---- writer: the caller checked the capacity up front ---- */

struct writer {
    uint8_t* p;
};

static void put_u8(struct writer* w, uint8_t v)
{
    *w->p++ = v;
}

static void put_u16(struct writer* w, uint16_t v)
{
    put_le16(w->p, v);
    w->p += 2;
}

static void put_u32(struct writer* w, uint32_t v)
{
    put_le32(w->p, v);
    w->p += 4;
}

static void put_u64(struct writer* w, uint64_t v)
{
    put_le64(w->p, v);
    w->p += 8;
}

static void put_bytes(struct writer* w, const struct raft_buf* b)
{
    put_u32(w, (uint32_t)b->len);
    if (b->len > 0) {
        memcpy(w->p, b->base, b->len);
        w->p += b->len;
    }
}

/* ---- reader: a sticky error; never reads past the end ---- */

struct reader {
    const uint8_t* p;
    size_t left;
    bool bad;
};

static bool take(struct reader* r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t get_u8(struct reader* r)
{
    if (!take(r, 1)) {
        return 0;
    }
    uint8_t v = r->p[0];
    r->p++;
    r->left--;
    return v;
}

/* n bytes, little-endian (0 once the input is short). */
static uint64_t get_n(struct reader* r, unsigned n)
{
    if (!take(r, n)) {
        return 0;
    }
    uint64_t v = get_le(r->p, n);
    r->p += n;
    r->left -= n;
    return v;
}

static uint16_t get_u16(struct reader* r)
{
    return (uint16_t)get_n(r, 2);
}

static uint32_t get_u32(struct reader* r)
{
    return (uint32_t)get_n(r, 4);
}

static uint64_t get_u64(struct reader* r)
{
    return get_n(r, 8);
}

/* A u32 length (<= max) and that many bytes, borrowed from the input. */
static void get_bytes(struct reader* r, struct raft_buf* b, size_t max)
{
    size_t len = get_u32(r);
    if (len > max || !take(r, len)) {
        r->bad = true;
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = len > 0 ? r->p : NULL;
    b->len = len;
    r->p += len;
    r->left -= len;
}

/* ---- size ---- */

static size_t body_size(const struct raft_message* m)
{
    size_t size = 0;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        size = CODEC_APPEND_FIXED_BYTES;
        for (unsigned i = 0; i < m->append.n_entries; i++) {
            size += CODEC_ENTRY_FIXED_BYTES + m->append.entries[i].data.len;
        }
        return size;
    case RAFT_MSG_APPEND_RESP:
        return CODEC_APPEND_RESP_BYTES;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        return CODEC_VOTE_BYTES;
    case RAFT_MSG_SNAPSHOT:
        return CODEC_SNAP_FIXED_BYTES +
               raft_conf_encoded_size(&m->snapshot.meta.conf) +
               m->snapshot.chunk.len;
    case RAFT_MSG_SNAPSHOT_RESP:
        return CODEC_SNAP_RESP_BYTES;
    case RAFT_MSG_PROPOSE:
        size = CODEC_PROPOSE_FIXED_BYTES;
        for (unsigned i = 0; i < m->propose.n; i++) {
            size += CODEC_PROP_FIXED_BYTES + m->propose.props[i].data.len;
        }
        return size;
    case RAFT_MSG_PROPOSE_RESP:
        return CODEC_PROPOSE_RESP_FIXED_BYTES + 8 * (size_t)m->propose_resp.n;
    case RAFT_MSG_READ_INDEX:
        return CODEC_READ_INDEX_BYTES;
    case RAFT_MSG_READ_INDEX_RESP:
        return CODEC_READ_INDEX_RESP_BYTES;
    case RAFT_MSG_TRANSFER:
        return CODEC_TRANSFER_BYTES;
    default: /* VOTE_RESP, PREVOTE_RESP, TIMEOUT_NOW, and invalid types */
        return 0;
    }
}

size_t raft_msg_encoded_size(const struct raft_message* m)
{
    assert(m != NULL);
    return CODEC_HEADER_BYTES + body_size(m);
}

/* ---- validation (shared by encode; decode applies the same rules) ---- */

/* Running check of a batch's payloads: each <= RAFT_ENTRY_DATA_MAX and all
 * but the last summing to <= RAFT_APPEND_BYTES_MAX. */
static int batch_add(size_t* sum, size_t len, unsigned i, unsigned n)
{
    if (len > RAFT_ENTRY_DATA_MAX) {
        return RAFT_ETOOBIG;
    }
    if (i + 1 < n) {
        *sum += len;
        if (*sum > RAFT_APPEND_BYTES_MAX) {
            return RAFT_ETOOBIG;
        }
    }
    return 0;
}

static int validate_append(const struct raft_msg_append* a)
{
    if (a->n_entries > RAFT_APPEND_ENTRIES_MAX) {
        return RAFT_EMALFORMED;
    }
    if (a->n_entries > 0 && a->prev_index > UINT64_MAX - a->n_entries) {
        return RAFT_EMALFORMED;
    }
    size_t sum = 0;
    for (unsigned i = 0; i < a->n_entries; i++) {
        const struct raft_entry* e = &a->entries[i];
        if (e->index != a->prev_index + 1 + i || !entry_type_valid(e->type)) {
            return RAFT_EMALFORMED;
        }
        int rv = batch_add(&sum, e->data.len, i, a->n_entries);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int validate_propose(const struct raft_msg_propose* p)
{
    if (p->n > RAFT_PROPOSE_BATCH_MAX) {
        return RAFT_EMALFORMED;
    }
    size_t sum = 0;
    for (unsigned i = 0; i < p->n; i++) {
        if (!entry_type_valid(p->props[i].type)) {
            return RAFT_EMALFORMED;
        }
        int rv = batch_add(&sum, p->props[i].data.len, i, p->n);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int validate_conf(const struct raft_conf* c)
{
    uint8_t tmp[CODEC_CONF_BYTES_MAX];
    struct raft_conf back;
    if (c->n > RAFT_SERVERS_MAX) {
        return RAFT_EMALFORMED;
    }
    int n = raft_conf_encode(c, tmp, sizeof(tmp));
    if (n < 0) {
        return RAFT_EMALFORMED;
    }
    /* The decoder checks ids, roles and duplicates: refuse what it would. */
    return raft_conf_decode(&back, tmp, (size_t)n) == 0 ? 0 : RAFT_EMALFORMED;
}

static int validate_snapshot(const struct raft_msg_snapshot* s)
{
    if (s->chunk.len > RAFT_SNAPSHOT_CHUNK ||
        s->total > RAFT_SNAPSHOT_BYTES_MAX) {
        return RAFT_ETOOBIG;
    }
    if (s->offset > s->total || s->chunk.len > s->total - s->offset) {
        return RAFT_EMALFORMED;
    }
    return validate_conf(&s->meta.conf);
}

static int validate(const struct raft_message* m)
{
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->from == 0 ||
        m->to == 0) {
        return RAFT_EMALFORMED;
    }
    switch (m->type) {
    case RAFT_MSG_APPEND:
        return validate_append(&m->append);
    case RAFT_MSG_SNAPSHOT:
        return validate_snapshot(&m->snapshot);
    case RAFT_MSG_PROPOSE:
        return validate_propose(&m->propose);
    case RAFT_MSG_PROPOSE_RESP:
        if (m->propose_resp.n > RAFT_PROPOSE_BATCH_MAX ||
            m->propose_resp.err > 0) {
            return RAFT_EMALFORMED;
        }
        return 0;
    case RAFT_MSG_READ_INDEX_RESP:
        return m->read_index_resp.err > 0 ? RAFT_EMALFORMED : 0;
    default:
        return 0;
    }
}

/* ---- encode ---- */

static unsigned flags_of(const struct raft_message* m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
        return m->append_resp.reject ? CODEC_F_REJECT : 0;
    case RAFT_MSG_SNAPSHOT_RESP:
        return (m->snapshot_resp.reject ? CODEC_F_REJECT : 0) |
               (m->snapshot_resp.done ? CODEC_F_DONE : 0);
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        return m->vote.transfer ? CODEC_F_TRANSFER : 0;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        return m->vote_resp.granted ? CODEC_F_GRANTED : 0;
    default:
        return 0;
    }
}

static void encode_append(struct writer* w, const struct raft_msg_append* a)
{
    put_u64(w, a->prev_index);
    put_u64(w, a->prev_term);
    put_u64(w, a->commit);
    put_u64(w, a->read_seq);
    put_u32(w, a->n_entries);
    for (unsigned i = 0; i < a->n_entries; i++) {
        const struct raft_entry* e = &a->entries[i];
        put_u64(w, e->term);
        put_u64(w, e->index);
        put_u8(w, e->type);
        put_bytes(w, &e->data);
    }
}

static void encode_snapshot(struct writer* w, const struct raft_msg_snapshot* s)
{
    put_u64(w, s->meta.index);
    put_u64(w, s->meta.term);
    put_u64(w, s->meta.conf_index);
    size_t conf_len = raft_conf_encoded_size(&s->meta.conf);
    put_u32(w, (uint32_t)conf_len);
    int n = raft_conf_encode(&s->meta.conf, w->p, conf_len);
    assert(n >= 0 && (size_t)n == conf_len);
    w->p += n;
    put_u64(w, s->total);
    put_u64(w, s->offset);
    put_bytes(w, &s->chunk);
}

static void encode_body(struct writer* w, const struct raft_message* m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        encode_append(w, &m->append);
        break;
    case RAFT_MSG_APPEND_RESP:
        put_u64(w, m->append_resp.index);
        put_u64(w, m->append_resp.last_index);
        put_u64(w, m->append_resp.conflict_term);
        put_u64(w, m->append_resp.conflict_index);
        put_u64(w, m->append_resp.read_seq);
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        put_u64(w, m->vote.last_index);
        put_u64(w, m->vote.last_term);
        break;
    case RAFT_MSG_SNAPSHOT:
        encode_snapshot(w, &m->snapshot);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        put_u64(w, m->snapshot_resp.index);
        put_u64(w, m->snapshot_resp.next_offset);
        break;
    case RAFT_MSG_PROPOSE:
        put_u32(w, m->propose.n);
        for (unsigned i = 0; i < m->propose.n; i++) {
            put_u64(w, m->propose.props[i].ctx);
            put_u8(w, m->propose.props[i].type);
            put_bytes(w, &m->propose.props[i].data);
        }
        break;
    case RAFT_MSG_PROPOSE_RESP:
        put_u32(w, (uint32_t)m->propose_resp.err);
        put_u32(w, m->propose_resp.n);
        for (unsigned i = 0; i < m->propose_resp.n; i++) {
            put_u64(w, m->propose_resp.ctxs[i]);
        }
        break;
    case RAFT_MSG_READ_INDEX:
        put_u64(w, m->read_index.ctx);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        put_u64(w, m->read_index_resp.ctx);
        put_u64(w, m->read_index_resp.index);
        put_u32(w, (uint32_t)m->read_index_resp.err);
        break;
    case RAFT_MSG_TRANSFER:
        put_u64(w, m->transfer.to);
        break;
    default: /* VOTE_RESP, PREVOTE_RESP, TIMEOUT_NOW: header only */
        break;
    }
}

long raft_msg_encode(const struct raft_message* m, void* buf, size_t cap)
{
    assert(m != NULL);
    assert(buf != NULL || cap == 0);
    int rv = validate(m);
    if (rv != 0) {
        return rv;
    }
    size_t size = raft_msg_encoded_size(m);
    assert(size <= CODEC_MSG_BYTES_MAX); /* implied by validate() */
    if (cap < size) {
        return -ENOSPC;
    }
    assert(buf != NULL); /* size > 0: a message has a header */
    struct writer w = {.p = buf};
    put_u8(&w, RAFT_CODEC_VERSION);
    put_u8(&w, m->type);
    put_u16(&w, (uint16_t)flags_of(m));
    put_u64(&w, m->from);
    put_u64(&w, m->to);
    put_u64(&w, m->term);
    encode_body(&w, m);
    assert((size_t)(w.p - (uint8_t*)buf) == size);
    return (long)size;
}

/* ---- decode ---- */

static int decode_append(struct reader* r,
                         struct raft_msg_append* a,
                         struct raft_msg_arena* arena)
{
    a->prev_index = get_u64(r);
    a->prev_term = get_u64(r);
    a->commit = get_u64(r);
    a->read_seq = get_u64(r);
    uint32_t n = get_u32(r);
    /* Check the count against the limit and the bytes left before malloc. */
    if (r->bad || n > RAFT_APPEND_ENTRIES_MAX ||
        (size_t)n * CODEC_ENTRY_FIXED_BYTES > r->left ||
        (n > 0 && a->prev_index > UINT64_MAX - n)) {
        return RAFT_EMALFORMED;
    }
    a->n_entries = n;
    a->entries = NULL;
    if (n == 0) {
        return 0;
    }
    arena->entries = calloc(n, sizeof(*arena->entries));
    if (arena->entries == NULL) {
        return RAFT_ENOMEM;
    }
    size_t sum = 0;
    for (unsigned i = 0; i < n && !r->bad; i++) {
        struct raft_entry* e = &arena->entries[i];
        e->term = get_u64(r);
        e->index = get_u64(r);
        e->type = get_u8(r);
        get_bytes(r, &e->data, RAFT_ENTRY_DATA_MAX);
        if (r->bad || e->index != a->prev_index + 1 + i ||
            !entry_type_valid(e->type) ||
            batch_add(&sum, e->data.len, i, n) != 0) {
            return RAFT_EMALFORMED;
        }
    }
    a->entries = arena->entries;
    return r->bad ? RAFT_EMALFORMED : 0;
}

static int decode_snapshot(struct reader* r, struct raft_msg_snapshot* s)
{
    s->meta.index = get_u64(r);
    s->meta.term = get_u64(r);
    s->meta.conf_index = get_u64(r);
    uint32_t conf_len = get_u32(r);
    if (r->bad || conf_len > CODEC_CONF_BYTES_MAX || conf_len > r->left) {
        return RAFT_EMALFORMED;
    }
    if (raft_conf_decode(&s->meta.conf, r->p, conf_len) != 0) {
        return RAFT_EMALFORMED;
    }
    r->p += conf_len;
    r->left -= conf_len;
    s->total = get_u64(r);
    s->offset = get_u64(r);
    get_bytes(r, &s->chunk, RAFT_SNAPSHOT_CHUNK);
    if (r->bad || s->total > RAFT_SNAPSHOT_BYTES_MAX || s->offset > s->total ||
        s->chunk.len > s->total - s->offset) {
        return RAFT_EMALFORMED;
    }
    return 0;
}

static int decode_propose(struct reader* r,
                          struct raft_msg_propose* p,
                          struct raft_msg_arena* arena)
{
    uint32_t n = get_u32(r);
    if (r->bad || n > RAFT_PROPOSE_BATCH_MAX ||
        (size_t)n * CODEC_PROP_FIXED_BYTES > r->left) {
        return RAFT_EMALFORMED;
    }
    p->n = n;
    p->props = NULL;
    if (n == 0) {
        return 0;
    }
    arena->props = calloc(n, sizeof(*arena->props));
    if (arena->props == NULL) {
        return RAFT_ENOMEM;
    }
    size_t sum = 0;
    for (unsigned i = 0; i < n && !r->bad; i++) {
        struct raft_proposal* prop = &arena->props[i];
        prop->ctx = get_u64(r);
        prop->type = get_u8(r);
        get_bytes(r, &prop->data, RAFT_ENTRY_DATA_MAX);
        if (r->bad || !entry_type_valid(prop->type) ||
            batch_add(&sum, prop->data.len, i, n) != 0) {
            return RAFT_EMALFORMED;
        }
    }
    p->props = arena->props;
    return r->bad ? RAFT_EMALFORMED : 0;
}

static int decode_propose_resp(struct reader* r,
                               struct raft_msg_propose_resp* p,
                               struct raft_msg_arena* arena)
{
    p->err = (int32_t)get_u32(r);
    uint32_t n = get_u32(r);
    if (r->bad || p->err > 0 || n > RAFT_PROPOSE_BATCH_MAX ||
        (size_t)n * 8 > r->left) {
        return RAFT_EMALFORMED;
    }
    p->n = n;
    p->ctxs = NULL;
    if (n == 0) {
        return 0;
    }
    arena->ctxs = calloc(n, sizeof(*arena->ctxs));
    if (arena->ctxs == NULL) {
        return RAFT_ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        arena->ctxs[i] = get_u64(r);
    }
    p->ctxs = arena->ctxs;
    return r->bad ? RAFT_EMALFORMED : 0;
}

static int decode_body(struct reader* r,
                       struct raft_message* m,
                       unsigned flags,
                       struct raft_msg_arena* arena)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        return decode_append(r, &m->append, arena);
    case RAFT_MSG_APPEND_RESP:
        m->append_resp.reject = (flags & CODEC_F_REJECT) != 0;
        m->append_resp.index = get_u64(r);
        m->append_resp.last_index = get_u64(r);
        m->append_resp.conflict_term = get_u64(r);
        m->append_resp.conflict_index = get_u64(r);
        m->append_resp.read_seq = get_u64(r);
        return 0;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        m->vote.transfer = (flags & CODEC_F_TRANSFER) != 0;
        m->vote.last_index = get_u64(r);
        m->vote.last_term = get_u64(r);
        return 0;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        m->vote_resp.granted = (flags & CODEC_F_GRANTED) != 0;
        return 0;
    case RAFT_MSG_SNAPSHOT:
        return decode_snapshot(r, &m->snapshot);
    case RAFT_MSG_SNAPSHOT_RESP:
        m->snapshot_resp.reject = (flags & CODEC_F_REJECT) != 0;
        m->snapshot_resp.done = (flags & CODEC_F_DONE) != 0;
        m->snapshot_resp.index = get_u64(r);
        m->snapshot_resp.next_offset = get_u64(r);
        return 0;
    case RAFT_MSG_PROPOSE:
        return decode_propose(r, &m->propose, arena);
    case RAFT_MSG_PROPOSE_RESP:
        return decode_propose_resp(r, &m->propose_resp, arena);
    case RAFT_MSG_READ_INDEX:
        m->read_index.ctx = get_u64(r);
        return 0;
    case RAFT_MSG_READ_INDEX_RESP:
        m->read_index_resp.ctx = get_u64(r);
        m->read_index_resp.index = get_u64(r);
        m->read_index_resp.err = (int32_t)get_u32(r);
        return m->read_index_resp.err > 0 ? RAFT_EMALFORMED : 0;
    case RAFT_MSG_TRANSFER:
        m->transfer.to = get_u64(r);
        return 0;
    default: /* TIMEOUT_NOW */
        return 0;
    }
}

int raft_msg_decode(struct raft_message* m,
                    struct raft_msg_arena* arena,
                    const void* buf,
                    size_t len)
{
    assert(m != NULL && arena != NULL);
    assert(buf != NULL || len == 0);
    memset(arena, 0, sizeof(*arena));
    memset(m, 0, sizeof(*m));
    struct reader r = {.p = buf, .left = len, .bad = false};
    if (len < CODEC_HEADER_BYTES) {
        return RAFT_EMALFORMED;
    }
    if (get_u8(&r) != RAFT_CODEC_VERSION) {
        return RAFT_EVERSION;
    }
    m->type = get_u8(&r);
    unsigned flags = get_u16(&r);
    m->from = get_u64(&r);
    m->to = get_u64(&r);
    m->term = get_u64(&r);
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->from == 0 ||
        m->to == 0 || (flags & ~flags_allowed(m->type)) != 0) {
        return RAFT_EMALFORMED;
    }
    int rv = decode_body(&r, m, flags, arena);
    if (rv == 0 && (r.bad || r.left != 0)) {
        rv = RAFT_EMALFORMED; /* short body or trailing bytes */
    }
    if (rv != 0) {
        raft_msg_arena_free(arena);
        memset(m, 0, sizeof(*m));
        return rv;
    }
    return 0;
}

void raft_msg_arena_free(struct raft_msg_arena* arena)
{
    assert(arena != NULL);
    free(arena->entries);
    free(arena->props);
    free(arena->ctxs);
    memset(arena, 0, sizeof(*arena));
}
