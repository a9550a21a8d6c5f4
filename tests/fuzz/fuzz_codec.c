/* fuzz_codec.c - libFuzzer target for the raft message codec.
 *
 * Decodes arbitrary bytes. When they decode, the encoding must be canonical:
 * re-encoding gives exactly the input bytes, and decoding those again gives
 * the same message. Any crash, sanitizer report or abort() is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    struct raft_message m;
    struct raft_msg_arena arena;
    int rv = raft_msg_decode(&m, &arena, data, size);
    if (rv != 0) {
        if (rv != RAFT_EMALFORMED && rv != RAFT_EVERSION && rv != RAFT_ENOMEM) {
            abort();
        }
        return 0;
    }
    if (raft_msg_encoded_size(&m) != size) {
        abort();
    }
    uint8_t* out = malloc(size);
    if (out == NULL) {
        abort();
    }
    long n = raft_msg_encode(&m, out, size);
    if (n != (long)size || memcmp(out, data, size) != 0) {
        abort(); /* not canonical, or the encoder refuses a decoded message */
    }
    struct raft_message m2;
    struct raft_msg_arena arena2;
    if (raft_msg_decode(&m2, &arena2, out, size) != 0 || m2.type != m.type ||
        m2.from != m.from || m2.to != m.to || m2.term != m.term) {
        abort();
    }
    raft_msg_arena_free(&arena2);
    raft_msg_arena_free(&arena);
    free(out);
    return 0;
}
