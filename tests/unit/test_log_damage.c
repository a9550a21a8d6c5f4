/* test_log_damage.c - the raft log on disk against damage: a torn tail
 * at every byte, bit flips, broken and missing segments, and disk errors
 * (ENOSPC, EFBIG) that stay sticky. Harness: log_env.h. */
#include "log_env.h"

/* Cuts the last record at every byte offset: open recovers exactly the
 * records before it and reports the cut bytes. */
static void test_torn_every_byte(void)
{
    char dir[256], p[600];
    tmpdir(dir, sizeof(dir), "torn");
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 0, &ld);
    struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 2};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    append_range(l, 1, 5, 1, 5);
    CHECK_EQ(rlog_sync(l), 0);
    struct raft_entry e = mk(6, 1, data_len(6));
    CHECK_EQ(rlog_append(l, &e, 1), 0);
    CHECK_EQ(rlog_sync(l), 0);
    rlog_close(l);

    seg_path(p, sizeof(p), dir, 1);
    static uint8_t full[1 << 16];
    size_t size = read_file(p, full, sizeof(full));
    size_t rec = RLOG_REC_HDR_SIZE + data_len(6), start = size - rec;
    for (size_t cut = start; cut < size; cut++) {
        write_file(p, full, cut);
        trace_count = 0;
        l = reopen(NULL, dir, 0, &ld);
        CHECK_EQ(ld.torn_bytes, cut - start);
        check_loaded(&ld, 1, 5, term1);
        check_hs(&ld.hs, 1, 1, 2);
        CHECK_EQ(rlog_last_index(l), 5);
        if (cut > start) {
            char want[64];
            snprintf(want, sizeof(want), "truncating %zu bytes at offset %zu",
                     cut - start, start);
            CHECK(strstr(trace_last, want) != NULL);
        }
        struct stat st;
        CHECK(stat(p, &st) == 0);
        CHECK_EQ(st.st_size, start); /* the torn bytes are gone */
        if (cut == start + 1 || cut == size - 1) {
            /* The log goes on after the cut. */
            CHECK_EQ(rlog_append(l, &e, 1), 0);
            CHECK_EQ(rlog_sync(l), 0);
            l = reopen(l, dir, 0, &ld);
            CHECK_EQ(ld.torn_bytes, 0);
            CHECK_EQ(ld.n_entries, 6);
            check_entry(&ld.entries[5], 6, 1);
        }
        rlog_close(l);
    }

    /* A torn hard state record: the previous hard state wins. */
    write_file(p, full, size);
    l = reopen(NULL, dir, 0, &ld);
    hs.term = 2;
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);
    rlog_close(l);
    size_t with_hs = read_file(p, full, sizeof(full));
    CHECK_EQ(with_hs, size + RLOG_REC_HDR_SIZE + RLOG_HS_DATA_SIZE);
    write_file(p, full, with_hs - 1);
    l = reopen(NULL, dir, 0, &ld);
    check_hs(&ld.hs, 1, 1, 2);
    CHECK_EQ(ld.torn_bytes, RLOG_REC_HDR_SIZE + RLOG_HS_DATA_SIZE - 1);
    CHECK_EQ(ld.n_entries, 6);
    rlog_close(l);
    rmdir_all(dir);
}

static void test_bitflip(void)
{
    char dir[256], p[600];
    tmpdir(dir, sizeof(dir), "bitflip");
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 0, &ld);
    struct raft_entry es[5];
    for (unsigned i = 0; i < 5; i++) {
        es[i] = mk(i + 1, 1, 100);
    }
    CHECK_EQ(rlog_append(l, es, 5), 0);
    CHECK_EQ(rlog_sync(l), 0);
    rlog_close(l);
    seg_path(p, sizeof(p), dir, 1);
    static uint8_t full[1 << 16], bad[1 << 16];
    size_t size = read_file(p, full, sizeof(full));
    size_t rec = RLOG_REC_HDR_SIZE + 100;
    CHECK_EQ(size, RLOG_REC_HDR_SIZE + 5 * rec);

    /* A flipped bit anywhere in the last record: a torn tail. */
    size_t last = size - rec;
    size_t where[] = {last,      last + 5,  last + 17,
                      last + 33, last + 40, size - 1};
    for (unsigned k = 0; k < sizeof(where) / sizeof(where[0]); k++) {
        memcpy(bad, full, size);
        bad[where[k]] ^= 0x10;
        write_file(p, bad, size);
        l = reopen(NULL, dir, 0, &ld);
        CHECK_EQ(ld.torn_bytes, rec);
        CHECK_EQ(ld.n_entries, 4);
        rlog_close(l);
    }

    /* A flipped bit in a middle record (valid data follows): -EUCLEAN,
     * naming the file and the offset, and nothing is truncated. */
    size_t mid = RLOG_REC_HDR_SIZE + 2 * rec;
    size_t mwhere[] = {mid, mid + 9, mid + 60};
    for (unsigned k = 0; k < 3; k++) {
        memcpy(bad, full, size);
        bad[mwhere[k]] ^= 0x01;
        write_file(p, bad, size);
        struct rlog_options o = opts(0);
        int rv = rlog_open(dir, &o, &l, &ld);
        CHECK_EQ(rv, -EUCLEAN);
        char want[64];
        snprintf(want, sizeof(want), "offset %zu", mid);
        CHECK(strstr(trace_last, want) != NULL);
        CHECK(strstr(trace_last, "seg-00000000000000000001") != NULL);
        struct stat st;
        CHECK(stat(p, &st) == 0);
        CHECK_EQ(st.st_size, size);
    }

    /* A length past RAFT_ENTRY_DATA_MAX in the middle: corruption. */
    memcpy(bad, full, size);
    put_le32(bad + mid + 8, RAFT_ENTRY_DATA_MAX + 1);
    write_file(p, bad, size);
    struct rlog_options o = opts(0);
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), -EUCLEAN);
    CHECK(strstr(trace_last, "RAFT_ENTRY_DATA_MAX") != NULL);
    write_file(p, full, size);
    rmdir_all(dir);
}

static void test_corrupt_segments(void)
{
    char dir[256], p[600];
    tmpdir(dir, sizeof(dir), "corruptseg");
    const uint64_t segmax = 1024;
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, segmax, &ld);
    append_range(l, 1, 60, 1, 60);
    CHECK_EQ(rlog_sync(l), 0);
    rlog_close(l);
    /* Find the first two segments. */
    raft_index segs[3];
    unsigned n = 0;
    for (raft_index i = 1; i <= 60 && n < 3; i++) {
        seg_path(p, sizeof(p), dir, i);
        if (access(p, F_OK) == 0) {
            segs[n++] = i;
        }
    }
    CHECK_EQ(n, 3);

    /* The last record of a segment that is not the last: -EUCLEAN. */
    static uint8_t full[1 << 16], bad[1 << 16];
    seg_path(p, sizeof(p), dir, segs[0]);
    size_t size = read_file(p, full, sizeof(full));
    memcpy(bad, full, size);
    bad[size - 1] ^= 0x80;
    write_file(p, bad, size);
    struct rlog_options o = opts(segmax);
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), -EUCLEAN);
    CHECK(strstr(trace_last, "seg-00000000000000000001") != NULL);
    write_file(p, full, size);

    /* A missing middle segment: a gap. */
    char p2[600], moved[620];
    seg_path(p2, sizeof(p2), dir, segs[1]);
    snprintf(moved, sizeof(moved), "%s.moved", dir);
    CHECK(rename(p2, moved) == 0);
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), -EUCLEAN);
    CHECK(strstr(trace_last, "gap") != NULL);
    CHECK(rename(moved, p2) == 0);

    /* Meta missing while segments exist: corruption, not a fresh log. */
    char meta[600], mmoved[620];
    snprintf(meta, sizeof(meta), "%s/meta", dir);
    snprintf(mmoved, sizeof(mmoved), "%s.meta", dir);
    CHECK(rename(meta, mmoved) == 0);
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), -EUCLEAN);
    CHECK(rename(mmoved, meta) == 0);

    /* One torn meta slot: the other one is used. */
    uint8_t mbuf[RLOG_META_SLOTS * RLOG_META_SLOT_SIZE];
    size_t mn = read_file(meta, mbuf, sizeof(mbuf) + 1);
    CHECK_EQ(mn, sizeof(mbuf));
    l = reopen(NULL, dir, segmax, &ld);
    struct raft_snapshot_meta snap = mk_snap(10, 1);
    CHECK_EQ(rlog_compact(l, &snap, 1), 0); /* slot 1, no unlink */
    rlog_close(l);
    uint8_t mbuf2[sizeof(mbuf)];
    read_file(meta, mbuf2, sizeof(mbuf2) + 1);
    mbuf2[RLOG_META_SLOT_SIZE + 50] ^= 1; /* tear slot 1 */
    write_file(meta, mbuf2, sizeof(mbuf2));
    l = reopen(NULL, dir, segmax, &ld);
    CHECK_EQ(ld.snap.index, 0); /* slot 0: before the compaction */
    CHECK_EQ(ld.n_entries, 60);
    rlog_close(l);
    mbuf2[50] ^= 1; /* both torn */
    write_file(meta, mbuf2, sizeof(mbuf2));
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), -EUCLEAN);
    CHECK(strstr(trace_last, "meta") != NULL);
    rmdir_all(dir);
}

static void check_sticky(struct rlog* l, int err)
{
    struct raft_entry e = mk(rlog_last_index(l) + 1, 1, 10);
    struct raft_hard_state hs = {.term = 9, .vote = 1, .commit = 1};
    struct raft_snapshot_meta snap = mk_snap(1, 1);
    CHECK_EQ(rlog_append(l, &e, 1), err);
    CHECK_EQ(rlog_sync(l), err);
    CHECK_EQ(rlog_set_hard_state(l, &hs), err);
    CHECK_EQ(rlog_truncate(l, 2), err);
    CHECK_EQ(rlog_compact(l, &snap, 0), err);
    CHECK_EQ(rlog_reset(l, &snap), err);
    CHECK_EQ(rlog_sync(l), err);
}

/* Fill the disk until a write fails; returns the error. */
static int fill_until_error(struct rlog* l, raft_index* last_ok)
{
    for (raft_index i = rlog_last_index(l) + 1; i < 100000; i++) {
        struct raft_entry e = mk(i, 1, TEST_DATA_MAX);
        int rv = rlog_append(l, &e, 1);
        if (rv == 0 && i % 8 == 0) {
            rv = rlog_sync(l);
            if (rv == 0) {
                *last_ok = i;
            }
        }
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* A real ENOSPC on a small tmpfs (needs root; skipped otherwise). */
static void test_sticky_enospc(void)
{
    char mnt[256];
    snprintf(mnt, sizeof(mnt), "/tmp/test_log.tmpfs.XXXXXX");
    CHECK(mkdtemp(mnt) != NULL);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
        fprintf(stderr, "   SKIP: mount tmpfs: %s\n", strerror(errno));
        rmdir(mnt);
        return;
    }
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/log", mnt);
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 64 << 10, &ld);
    raft_index last_ok = 0;
    int err = fill_until_error(l, &last_ok);
    CHECK_EQ(err, -ENOSPC);
    CHECK(last_ok > 0);
    check_sticky(l, err);
    rlog_close(l);

    /* What was synced survives; a partial record is a torn tail. */
    l = reopen(NULL, dir, 64 << 10, &ld);
    CHECK(ld.n_entries >= last_ok);
    for (unsigned k = 0; k < ld.n_entries; k++) {
        CHECK_EQ(ld.entries[k].index, k + 1);
        CHECK_EQ(ld.entries[k].data.len, TEST_DATA_MAX);
        const uint8_t* d = ld.entries[k].data.base;
        CHECK_EQ(d[TEST_DATA_MAX - 1], data_byte(k + 1, 1, TEST_DATA_MAX - 1));
    }
    rlog_close(l);
    CHECK(umount(mnt) == 0);
    rmdir(mnt);
}

/* A real EFBIG from RLIMIT_FSIZE (works without root). */
static void test_sticky_efbig(void)
{
    char dir[256];
    tmpdir(dir, sizeof(dir), "efbig");
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 0, &ld);
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 64 << 10;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    raft_index last_ok = 0;
    int err = fill_until_error(l, &last_ok);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK_EQ(err, -EFBIG);
    check_sticky(l, err); /* even with the limit lifted */
    rlog_close(l);
    l = reopen(NULL, dir, 0, &ld);
    CHECK(ld.n_entries >= last_ok);
    rlog_close(l);
    rmdir_all(dir);
}

int main(void)
{
    RUN(test_torn_every_byte);
    RUN(test_bitflip);
    RUN(test_corrupt_segments);
    RUN(test_sticky_efbig);
    RUN(test_sticky_enospc);
    fprintf(stderr, "all log damage tests passed\n");
    return 0;
}
