/* fuzz_log.c - libFuzzer target for the raft log on disk (raft/log.c:
 * meta slots, segment records, torn tails, the checks at open).
 *
 * Input: a mode byte, then up to FILES_MAX files, each
 *   [u8 kind][u64 first index][u32 length][bytes]
 * kind bit 0 set: the file is `meta`; clear: `seg-<first index>`.
 * mode bit 0: the harness walks each file's records and rewrites their
 * checksums (meta: both slots), so the fuzzer reaches the checks behind
 * them. mode bit 1: open with preallocate.
 * Oracles, besides "no crash, no sanitizer report": rlog_open returns 0 or
 * an error, never aborts; what opens is contiguous from the snapshot index
 * with terms that do not go back; it takes one more entry and a sync, and
 * opens again with no torn tail, the same hard state and the same entries
 * plus the new one.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_util.h"
#include "log.h"

enum {
    FILES_MAX = 8,
    REC_HDR = 40, /* docs/format-log.md */
    SLOT = 4096,
    SEGMENT_BYTES = 64 << 10,
};
#define LOG_MAGIC 0x474f4c51u

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* Rewrite the checksum of every record that fits, walking by length. */
static void fix_records(uint8_t* p, size_t n, size_t start, size_t end)
{
    size_t off = start;
    while (off + REC_HDR <= end && off + REC_HDR <= n) {
        if (fuzz_get32(p + off) != LOG_MAGIC) {
            return;
        }
        uint32_t len = fuzz_get32(p + off + 8);
        if (len > n - off - REC_HDR) {
            return;
        }
        uint64_t seed = XXH3_64bits(p + off, 32);
        fuzz_put64(p + off + 32,
                   XXH3_64bits_withSeed(p + off + REC_HDR, len, seed));
        off += REC_HDR + len;
    }
}

static void put_file(const char* dir,
                     uint8_t kind,
                     uint64_t first,
                     uint8_t* p,
                     size_t n,
                     bool fix)
{
    char path[512];
    if (kind & 1) {
        snprintf(path, sizeof(path), "%s/meta", dir);
        if (fix) {
            fix_records(p, n, 0, SLOT);
            fix_records(p, n, SLOT, 2 * SLOT);
        }
    } else {
        snprintf(path, sizeof(path), "%s/seg-%020" PRIu64, dir, first);
        if (fix) {
            fix_records(p, n, 0, n);
        }
    }
    fuzz_write_file(path, p, n);
}

struct summary {
    unsigned n;
    raft_index first;
    struct raft_hard_state hs;
    raft_index snap_index;
    uint64_t* sums; /* per entry: XXH3 of term, type and data */
};

static uint64_t entry_sum(const struct raft_entry* e)
{
    uint64_t seed = e->term * 4 + e->type;
    return XXH3_64bits_withSeed(e->data.base, e->data.len, seed);
}

/* Check what rlog_open loaded and remember it. */
static void summarize(const struct rlog_loaded* ld, struct summary* s)
{
    s->n = ld->n_entries;
    s->first = ld->snap.index + 1;
    s->hs = ld->hs;
    s->snap_index = ld->snap.index;
    s->sums = calloc(ld->n_entries + 1, sizeof(*s->sums));
    FUZZ_CHECK(s->sums != NULL);
    raft_term prev = ld->snap.term;
    for (unsigned i = 0; i < ld->n_entries; i++) {
        const struct raft_entry* e = &ld->entries[i];
        FUZZ_CHECK(e->index == s->first + i);
        FUZZ_CHECK(e->term >= prev);
        FUZZ_CHECK(e->type >= RAFT_ENTRY_NORMAL && e->type <= RAFT_ENTRY_CONF);
        prev = e->term;
        s->sums[i] = entry_sum(e);
    }
}

static void append_and_reopen(struct rlog* l,
                              const char* dir,
                              const struct rlog_options* o,
                              struct summary* s,
                              raft_term last_term)
{
    static const uint8_t payload[] = "fuzz";
    raft_index next = rlog_last_index(l) + 1;
    FUZZ_CHECK(next == s->first + s->n);
    struct raft_entry e = {.term = last_term,
                           .index = next,
                           .type = RAFT_ENTRY_NORMAL,
                           .data = {payload, sizeof(payload)}};
    if (next == 0 || next > UINT64_MAX / 2) {
        rlog_close(l);
        return; /* an index no raft core reaches: nothing to append */
    }
    FUZZ_CHECK(rlog_append(l, &e, 1) == 0);
    FUZZ_CHECK(rlog_sync(l) == 0);
    s->sums[s->n] = entry_sum(&e);
    rlog_close(l);
    struct rlog_loaded ld;
    FUZZ_CHECK(rlog_open(dir, o, &l, &ld) == 0);
    FUZZ_CHECK(ld.torn_bytes == 0 && !ld.fresh);
    FUZZ_CHECK(ld.n_entries == s->n + 1);
    FUZZ_CHECK(ld.snap.index == s->snap_index);
    FUZZ_CHECK(ld.hs.term == s->hs.term && ld.hs.vote == s->hs.vote &&
               ld.hs.commit == s->hs.commit);
    for (unsigned i = 0; i < ld.n_entries; i++) {
        FUZZ_CHECK(ld.entries[i].index == s->first + i);
        FUZZ_CHECK(entry_sum(&ld.entries[i]) == s->sums[i]);
    }
    rlog_close(l);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0];
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/log", fuzz_dir());
    fuzz_empty_dir(dir);
    rmdir(dir);
    FUZZ_CHECK(mkdir(dir, 0700) == 0);
    uint8_t* buf = malloc(size);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    size_t pos = 1;
    for (unsigned i = 0; i < FILES_MAX && size - pos >= 13; i++) {
        uint8_t kind = buf[pos];
        uint64_t first = fuzz_get64(buf + pos + 1);
        size_t n = fuzz_get32(buf + pos + 9);
        pos += 13;
        if (n > size - pos) {
            n = size - pos;
        }
        put_file(dir, kind, first, buf + pos, n, mode & 1);
        pos += n;
    }
    free(buf);
    struct rlog_options o = {.segment_bytes_max = SEGMENT_BYTES,
                             .preallocate = (mode & 2) != 0};
    struct rlog* l;
    struct rlog_loaded ld;
    int rv = rlog_open(dir, &o, &l, &ld);
    if (rv != 0) {
        FUZZ_CHECK(rv < 0);
        return 0;
    }
    struct summary s;
    summarize(&ld, &s);
    raft_term last_term =
        ld.n_entries > 0 ? ld.entries[ld.n_entries - 1].term : ld.snap.term;
    append_and_reopen(l, dir, &o, &s, last_term);
    free(s.sums);
    return 0;
}
