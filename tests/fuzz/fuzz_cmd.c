/* fuzz_cmd.c - libFuzzer target for store commands: the bytes of a raft
 * entry, replicated to and applied by every node (store_cmd_decode,
 * store_apply).
 *
 * Input: up to CMDS_MAX commands, each a little-endian u16 length and that
 * many bytes. Oracles, besides "no crash, no sanitizer report":
 *   - a command that decodes is canonical: encoding it again gives exactly
 *     its bytes;
 *   - store_apply never fails (a malformed command is an -EBADMSG result,
 *     the same on every replica, not a failure of apply);
 *   - the db file written along the way (a frame every few commands)
 *     opens again without a torn tail into the same state: the image built
 *     after reopening equals the image built before closing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_store.h"

enum { CMDS_MAX = 64, FLUSH_EVERY = 4 };

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static void check_canonical(const uint8_t* p, size_t n)
{
    struct store_cmd c;
    int rv = store_cmd_decode(&c, p, n);
    if (rv != 0) {
        FUZZ_CHECK(rv == -EBADMSG);
        return;
    }
    FUZZ_CHECK(store_cmd_encoded_size(&c) == n);
    uint8_t* out = malloc(n);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(store_cmd_encode(&c, out, n) == (long)n);
    FUZZ_CHECK(memcmp(out, p, n) == 0);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/db", fuzz_dir());
    unlink(path);
    struct store* st;
    struct store_recovery rec;
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &rec) == 0);
    size_t pos = 0;
    store_index idx = 0;
    for (unsigned i = 0; i < CMDS_MAX && size - pos >= 2; i++) {
        size_t n = fuzz_get16(data + pos);
        pos += 2;
        if (n > size - pos) {
            n = size - pos;
        }
        check_canonical(data + pos, n);
        struct store_result res;
        FUZZ_CHECK(store_apply(st, ++idx, data + pos, n, NULL, NULL, &res) ==
                   0);
        FUZZ_CHECK(res.err <= 0);
        pos += n;
        if (i % FLUSH_EVERY == FLUSH_EVERY - 1) {
            fuzz_store_flush(st);
        }
    }
    fuzz_store_flush(st);
    FUZZ_CHECK(store_applied_index(st) == idx);
    fuzz_store_reopen_same(st, path);
    unlink(path);
    return 0;
}
