/* codec.h - raft messages to and from bytes (pure, no I/O).
 *
 * Wire layout (little-endian, documented in docs/format.md):
 *   u8 version (RAFT_CODEC_VERSION), u8 type, u16 flags, u64 from, u64 to,
 *   u64 term, then the type's body. Every length is bound-checked against
 *   the limits in raft.h before anything is read; decode never reads past
 *   `len` and never trusts a count without checking it against the bytes
 *   that remain.
 */
#ifndef QFS_RAFT_CODEC_H
#define QFS_RAFT_CODEC_H

#include "raft.h"

#define RAFT_CODEC_VERSION 1

/* Exact encoded size of m. */
size_t raft_msg_encoded_size(const struct raft_message* m);

/* Encode m into buf. Returns the number of bytes written, or -ENOSPC if cap
 * is smaller than raft_msg_encoded_size(m), or RAFT_ETOOBIG/RAFT_EMALFORMED if
 * m breaks a limit (the encoder refuses what the decoder would refuse). */
long raft_msg_encode(const struct raft_message* m, void* buf, size_t cap);

/* Storage a decoded message points into besides the input bytes. */
struct raft_msg_arena {
    struct raft_entry* entries; /* malloc'd, n_entries long */
    struct raft_proposal* props;
    uint64_t* ctxs;
};

/* Decode buf[0..len) into *m. Payloads (entry data, snapshot chunk,
 * proposal data) point into buf (borrowed: valid while buf is); arrays are
 * malloc'd into *arena and released with raft_msg_arena_free() (also safe
 * after a failed decode). Returns 0, RAFT_EMALFORMED (with nothing leaked),
 * RAFT_EVERSION, or RAFT_ENOMEM. */
int raft_msg_decode(struct raft_message* m,
                    struct raft_msg_arena* arena,
                    const void* buf,
                    size_t len);
void raft_msg_arena_free(struct raft_msg_arena* arena);

#endif /* QFS_RAFT_CODEC_H */
