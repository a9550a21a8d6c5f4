/* conf.c - the configuration codec and lookups.
 *
 * Encoding (little-endian, version RAFT_CONF_VERSION):
 *   u8 version, u8 n (<= RAFT_SERVERS_MAX), then n times:
 *   u64 id (!= 0, unique), u8 role (RAFT_VOTER|RAFT_LEARNER),
 *   u8 name_len (< RAFT_NAME_MAX), name bytes (no NUL),
 *   u8 addr_len (< RAFT_ADDR_MAX), addr bytes (no NUL).
 * Decode checks every length against the bytes that remain and rejects
 * trailing bytes, so an input is accepted only if it is exactly one encoding.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "util/bytes.h"
#include "raft.h"

#define RAFT_CONF_VERSION 1
#define CONF_HEADER_BYTES 2
#define CONF_SERVER_FIXED_BYTES (8 + 1 + 1 + 1)

static size_t bounded_strlen(const char* s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != '\0') {
        n++;
    }
    return n;
}

size_t raft_conf_encoded_size(const struct raft_conf* c)
{
    assert(c != NULL);
    assert(c->n <= RAFT_SERVERS_MAX);
    size_t size = CONF_HEADER_BYTES;
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server* s = &c->servers[i];
        size += CONF_SERVER_FIXED_BYTES;
        size += bounded_strlen(s->name, RAFT_NAME_MAX - 1);
        size += bounded_strlen(s->addr, RAFT_ADDR_MAX - 1);
    }
    return size;
}

static uint8_t* put_u64(uint8_t* p, uint64_t v)
{
    put_le64(p, v);
    return p + 8;
}

static uint8_t* put_str(uint8_t* p, const char* s, size_t max)
{
    size_t n = bounded_strlen(s, max - 1);
    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

int raft_conf_encode(const struct raft_conf* c, void* buf, size_t cap)
{
    assert(c != NULL);
    assert(buf != NULL || cap == 0);
    assert(c->n <= RAFT_SERVERS_MAX);
    size_t need = raft_conf_encoded_size(c);
    if (cap < need) {
        return -ENOSPC;
    }
    assert(buf != NULL); /* need > 0: the version and count bytes */
    uint8_t* p = buf;
    *p++ = RAFT_CONF_VERSION;
    *p++ = (uint8_t)c->n;
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server* s = &c->servers[i];
        p = put_u64(p, s->id);
        *p++ = s->role;
        p = put_str(p, s->name, RAFT_NAME_MAX);
        p = put_str(p, s->addr, RAFT_ADDR_MAX);
    }
    assert((size_t)(p - (uint8_t*)buf) == need);
    return (int)need;
}

/* Reads a length-prefixed string into dst (NUL-terminated). */
static int get_str(const uint8_t** pp, size_t* left, char* dst, size_t max)
{
    if (*left < 1) {
        return RAFT_EMALFORMED;
    }
    size_t n = (*pp)[0];
    if (n >= max || *left - 1 < n) {
        return RAFT_EMALFORMED;
    }
    if (memchr(*pp + 1, '\0', n) != NULL) {
        return RAFT_EMALFORMED;
    }
    memcpy(dst, *pp + 1, n);
    dst[n] = '\0';
    *pp += 1 + n;
    *left -= 1 + n;
    return 0;
}

static int decode_server(struct raft_server* s,
                         const uint8_t** pp,
                         size_t* left)
{
    if (*left < 8 + 1) {
        return RAFT_EMALFORMED;
    }
    memset(s, 0, sizeof(*s));
    s->id = get_le64(*pp);
    s->role = (*pp)[8];
    *pp += 9;
    *left -= 9;
    if (s->id == 0 || (s->role != RAFT_VOTER && s->role != RAFT_LEARNER)) {
        return RAFT_EMALFORMED;
    }
    int rv = get_str(pp, left, s->name, RAFT_NAME_MAX);
    if (rv != 0) {
        return rv;
    }
    return get_str(pp, left, s->addr, RAFT_ADDR_MAX);
}

int raft_conf_decode(struct raft_conf* c, const void* buf, size_t len)
{
    assert(c != NULL);
    assert(buf != NULL || len == 0);
    const uint8_t* p = buf;
    size_t left = len;
    if (left < CONF_HEADER_BYTES) {
        return RAFT_EMALFORMED;
    }
    if (p[0] != RAFT_CONF_VERSION) {
        return RAFT_EVERSION;
    }
    struct raft_conf tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.n = p[1];
    if (tmp.n > RAFT_SERVERS_MAX) {
        return RAFT_EMALFORMED;
    }
    p += CONF_HEADER_BYTES;
    left -= CONF_HEADER_BYTES;
    for (unsigned i = 0; i < tmp.n; i++) {
        int rv = decode_server(&tmp.servers[i], &p, &left);
        if (rv != 0) {
            return rv;
        }
        if (raft_conf_get(&tmp, tmp.servers[i].id) != &tmp.servers[i]) {
            return RAFT_EMALFORMED; /* duplicate id */
        }
    }
    if (left != 0) {
        return RAFT_EMALFORMED;
    }
    *c = tmp;
    return 0;
}

const struct raft_server* raft_conf_get(const struct raft_conf* c, raft_id id)
{
    assert(c != NULL);
    assert(c->n <= RAFT_SERVERS_MAX);
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id == id) {
            return &c->servers[i];
        }
    }
    return NULL;
}

unsigned raft_conf_voters(const struct raft_conf* c)
{
    assert(c != NULL);
    assert(c->n <= RAFT_SERVERS_MAX);
    unsigned n = 0;
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].role == RAFT_VOTER) {
            n++;
        }
    }
    return n;
}
