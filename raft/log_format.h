/* log_format.h - on-disk layout of the raft log (internal to log.c and its
 * unit test). The format is documented in docs/format-log.md.
 *
 * Every record, in a segment or in a meta slot, is a 40-byte little-endian
 * header followed by `len` bytes of data:
 *
 *   off size field
 *     0    4 magic        RLOG_MAGIC ("QLOG" read as bytes)
 *     4    1 version      RLOG_VERSION
 *     5    1 type         enum rlog_rec_type
 *     6    1 entry_type   enum raft_entry_type for RLOG_REC_ENTRY, else 0
 *     7    1 reserved     0
 *     8    4 len          data bytes (<= RAFT_ENTRY_DATA_MAX)
 *    12    4 reserved     0
 *    16    8 index
 *    24    8 term
 *    32    8 checksum     XXH3_64bits_withSeed(data, len,
 *                                             XXH3_64bits(header[0..32)))
 *
 * The checksum covers every header field before it and the data, so a
 * flipped bit anywhere in a record is detected.
 */
#ifndef QFS_RAFT_LOG_FORMAT_H
#define QFS_RAFT_LOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "util/bytes.h"
#include "raft.h"

#define RLOG_MAGIC 0x474f4c51u /* "QLOG" in little-endian byte order */
#define RLOG_VERSION 1

enum rlog_rec_type {
    RLOG_REC_SEGMENT = 1,    /* first record of a segment: index = first index
                                of the segment, term = log epoch, no data */
    RLOG_REC_ENTRY = 2,      /* a raft entry: index, term, entry_type, data */
    RLOG_REC_HARD_STATE = 3, /* data: term, vote, commit, seq (4 x u64) */
    RLOG_REC_META = 4,       /* a meta slot: see rlog_meta below */
};

/* Layout of the header; encoded field by field (little-endian), the struct
 * only pins the offsets and the size. */
struct rlog_rec_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t type;
    uint8_t entry_type;
    uint8_t reserved0;
    uint32_t len;
    uint32_t reserved1;
    uint64_t index;
    uint64_t term;
    uint64_t checksum;
};

enum {
    RLOG_REC_HDR_SIZE = 40,
    RLOG_REC_SUMMED = 32, /* header bytes covered before the data */
    RLOG_HS_DATA_SIZE = 32,
    /* A meta slot: one record padded to a fixed size; the file holds two. */
    RLOG_META_SLOT_SIZE = 4096,
    RLOG_META_SLOTS = 2,
    /* meta data: seq, epoch, hs.term, hs.vote, hs.commit, snap.index,
     * snap.term, snap.conf_index (8 x u64), u32 conf_len, conf bytes. */
    RLOG_META_FIXED_SIZE = 8 * 8 + 4,
    RLOG_META_CONF_MAX =
        RLOG_META_SLOT_SIZE - RLOG_REC_HDR_SIZE - RLOG_META_FIXED_SIZE,
};

_Static_assert(sizeof(struct rlog_rec_hdr) == RLOG_REC_HDR_SIZE,
               "record header is 40 bytes on disk");
_Static_assert(offsetof(struct rlog_rec_hdr, checksum) == RLOG_REC_SUMMED,
               "checksum is the last header field");
_Static_assert(offsetof(struct rlog_rec_hdr, index) == 16, "index offset");
/* The largest configuration encoding (raft/conf.c): 2 header bytes, then per
 * server 8 id + 1 role + 1+31 name + 1+63 addr. */
_Static_assert(2 + RAFT_SERVERS_MAX * (8 + 1 + RAFT_NAME_MAX + RAFT_ADDR_MAX) <=
                   RLOG_META_CONF_MAX,
               "a configuration fits in a meta slot");
_Static_assert(RAFT_ENTRY_DATA_MAX <= UINT32_MAX, "len is a u32");

static inline uint64_t rlog__checksum(const uint8_t* hdr,
                                      const void* data,
                                      size_t len)
{
    XXH64_hash_t seed = XXH3_64bits(hdr, RLOG_REC_SUMMED);
    return XXH3_64bits_withSeed(data, len, seed);
}

/* Encode a header (checksum included) for `len` bytes of `data`. */
static inline void rlog__hdr_encode(uint8_t out[RLOG_REC_HDR_SIZE],
                                    const struct rlog_rec_hdr* h,
                                    const void* data)
{
    memset(out, 0, RLOG_REC_HDR_SIZE);
    put_le32(out + offsetof(struct rlog_rec_hdr, magic), RLOG_MAGIC);
    out[offsetof(struct rlog_rec_hdr, version)] = RLOG_VERSION;
    out[offsetof(struct rlog_rec_hdr, type)] = h->type;
    out[offsetof(struct rlog_rec_hdr, entry_type)] = h->entry_type;
    put_le32(out + offsetof(struct rlog_rec_hdr, len), h->len);
    put_le64(out + offsetof(struct rlog_rec_hdr, index), h->index);
    put_le64(out + offsetof(struct rlog_rec_hdr, term), h->term);
    put_le64(out + RLOG_REC_SUMMED, rlog__checksum(out, data, h->len));
}

/* Decode the fixed fields of a header; no validation beyond the layout. */
static inline void rlog__hdr_decode(struct rlog_rec_hdr* h,
                                    const uint8_t in[RLOG_REC_HDR_SIZE])
{
    h->magic = get_le32(in + offsetof(struct rlog_rec_hdr, magic));
    h->version = in[offsetof(struct rlog_rec_hdr, version)];
    h->type = in[offsetof(struct rlog_rec_hdr, type)];
    h->entry_type = in[offsetof(struct rlog_rec_hdr, entry_type)];
    h->reserved0 = in[offsetof(struct rlog_rec_hdr, reserved0)];
    h->len = get_le32(in + offsetof(struct rlog_rec_hdr, len));
    h->reserved1 = get_le32(in + offsetof(struct rlog_rec_hdr, reserved1));
    h->index = get_le64(in + offsetof(struct rlog_rec_hdr, index));
    h->term = get_le64(in + offsetof(struct rlog_rec_hdr, term));
    h->checksum = get_le64(in + RLOG_REC_SUMMED);
}

#endif /* QFS_RAFT_LOG_FORMAT_H */
