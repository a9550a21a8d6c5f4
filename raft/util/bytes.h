/* bytes.h - little-endian fields: the byte order of every format quorumfs
 * writes (db frames and records, store images, the raft log, the wire,
 * snapshot files). Header-only and pure, so the raft core may use it.
 *
 * p must hold the field's bytes; no alignment is needed.
 */
#ifndef QFS_UTIL_BYTES_H
#define QFS_UTIL_BYTES_H

#include <stdint.h>

/* The low n bytes of v (n <= 8), least significant first. */
static inline void put_le(uint8_t* p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* n bytes (n <= 8), least significant first. */
static inline uint64_t get_le(const uint8_t* p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static inline void put_le16(uint8_t* p, uint16_t v)
{
    put_le(p, v, 2);
}
static inline void put_le32(uint8_t* p, uint32_t v)
{
    put_le(p, v, 4);
}
static inline void put_le64(uint8_t* p, uint64_t v)
{
    put_le(p, v, 8);
}
static inline uint16_t get_le16(const uint8_t* p)
{
    return (uint16_t)get_le(p, 2);
}
static inline uint32_t get_le32(const uint8_t* p)
{
    return (uint32_t)get_le(p, 4);
}
static inline uint64_t get_le64(const uint8_t* p)
{
    return get_le(p, 8);
}

#endif /* QFS_UTIL_BYTES_H */
