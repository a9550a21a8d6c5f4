/* test_log.c - unit tests of the raft log on disk (raft/log.c).
 *
 * Every test works in its own directory under /tmp and checks what a reopen
 * loads. `test_log --bench DIR` measures appends+sync per second instead.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "log_format.h"
#include "check.h"

enum {
    TEST_DATA_MAX = 2048, /* payload bytes of a test entry */
    TEST_ENTRIES_MAX = 4096,
    TEST_MSG_MAX = 512,
};

/* ---- fixtures ---- */

static char trace_last[TEST_MSG_MAX];
static int trace_count;

static void trace_emit(void* data, int level, raft_id node, const char* msg)
{
    (void)data;
    (void)node;
    (void)level;
    snprintf(trace_last, sizeof(trace_last), "%s", msg);
    trace_count++;
    if (getenv("TEST_LOG_VERBOSE") != NULL) {
        fprintf(stderr, "  trace[%d]: %s\n", level, msg);
    }
}

static struct rlog_options opts(uint64_t segment_bytes_max)
{
    struct rlog_options o = {
        .segment_bytes_max = segment_bytes_max,
        .tracer = {.data = NULL, .emit = trace_emit, .level = 0}};
    return o;
}

static int rm_one(const char* p, const struct stat* st, int flag, struct FTW* f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void tmpdir(char* out, size_t cap, const char* name)
{
    snprintf(out, cap, "/tmp/test_log.%s.XXXXXX", name);
    CHECK(mkdtemp(out) != NULL);
    /* The log creates its directory: use a child that does not exist. */
    strncat(out, "/log", cap - strlen(out) - 1);
}

static void rmdir_all(const char* dir)
{
    char parent[512];
    snprintf(parent, sizeof(parent), "%s", dir);
    *strrchr(parent, '/') = '\0';
    nftw(parent, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Deterministic payload of entry (index, term). */
static size_t data_len(raft_index i)
{
    return (size_t)((i * 37) % 300);
}

static uint8_t data_byte(raft_index i, raft_term t, size_t k)
{
    return (uint8_t)(i * 131 + t * 7 + k);
}

static uint8_t databuf[TEST_ENTRIES_MAX][TEST_DATA_MAX];

static struct raft_entry mk(raft_index i, raft_term t, size_t len)
{
    uint8_t* d = databuf[i % TEST_ENTRIES_MAX];
    for (size_t k = 0; k < len; k++) {
        d[k] = data_byte(i, t, k);
    }
    struct raft_entry e = {
        .term = t, .index = i, .type = (uint8_t)(1 + i % 3), .data = {d, len}};
    return e;
}

/* Append [from, to] with term t, in batches of `batch`. */
static void append_range(struct rlog* l,
                         raft_index from,
                         raft_index to,
                         raft_term t,
                         unsigned batch)
{
    static struct raft_entry es[TEST_ENTRIES_MAX];
    raft_index i = from;
    while (i <= to) {
        unsigned n = 0;
        while (n < batch && i <= to && n < TEST_ENTRIES_MAX) {
            es[n] = mk(i, t, data_len(i));
            n++;
            i++;
        }
        /* mk() reuses databuf slots: write each batch before the next. */
        CHECK_EQ(rlog_append(l, es, n), 0);
    }
}

static void check_entry(const struct raft_entry* e, raft_index i, raft_term t)
{
    CHECK_EQ(e->index, i);
    CHECK_EQ(e->term, t);
    CHECK_EQ(e->type, 1 + i % 3);
    CHECK_EQ(e->data.len, data_len(i));
    const uint8_t* d = e->data.base;
    for (size_t k = 0; k < e->data.len; k++) {
        CHECK_EQ(d[k], data_byte(i, t, k));
    }
}

/* Loaded entries are [snap+1, snap+n]; term_of(i) gives the expected term. */
static void check_loaded(const struct rlog_loaded* ld,
                         raft_index first,
                         raft_index last,
                         raft_term (*term_of)(raft_index))
{
    CHECK_EQ(ld->n_entries, last + 1 - first);
    CHECK_EQ(ld->snap.index + 1, first);
    for (raft_index i = first; i <= last; i++) {
        check_entry(&ld->entries[i - first], i, term_of(i));
    }
}

static raft_term term1(raft_index i)
{
    (void)i;
    return 1;
}

static unsigned count_segs(const char* dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c '^seg-'", dir);
    FILE* p = popen(cmd, "r");
    CHECK(p != NULL);
    unsigned n = 0;
    CHECK(fscanf(p, "%u", &n) == 1);
    pclose(p);
    return n;
}

static void seg_path(char* out, size_t cap, const char* dir, raft_index first)
{
    snprintf(out, cap, "%s/seg-%020llu", dir, (unsigned long long)first);
}

static size_t read_file(const char* path, uint8_t* buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, cap);
    CHECK(n >= 0 && (size_t)n < cap);
    close(fd);
    return (size_t)n;
}

static void write_file(const char* path, const uint8_t* buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, buf, n), (ssize_t)n);
    close(fd);
}

static struct raft_snapshot_meta mk_snap(raft_index i, raft_term t)
{
    struct raft_snapshot_meta s;
    memset(&s, 0, sizeof(s));
    s.index = i;
    s.term = t;
    s.conf_index = i > 3 ? i - 3 : 1;
    s.conf.n = 3;
    for (unsigned k = 0; k < 3; k++) {
        s.conf.servers[k].id = 10 + k;
        s.conf.servers[k].role = k == 2 ? RAFT_LEARNER : RAFT_VOTER;
        snprintf(s.conf.servers[k].name, RAFT_NAME_MAX, "node%u", k);
        snprintf(s.conf.servers[k].addr, RAFT_ADDR_MAX, "10.0.0.%u:7000", k);
    }
    return s;
}

static void check_snap(const struct raft_snapshot_meta* a,
                       const struct raft_snapshot_meta* b)
{
    CHECK_EQ(a->index, b->index);
    CHECK_EQ(a->term, b->term);
    CHECK_EQ(a->conf_index, b->conf_index);
    CHECK_EQ(a->conf.n, b->conf.n);
    for (unsigned k = 0; k < a->conf.n; k++) {
        CHECK_EQ(a->conf.servers[k].id, b->conf.servers[k].id);
        CHECK_EQ(a->conf.servers[k].role, b->conf.servers[k].role);
        CHECK(strcmp(a->conf.servers[k].name, b->conf.servers[k].name) == 0);
        CHECK(strcmp(a->conf.servers[k].addr, b->conf.servers[k].addr) == 0);
    }
}

static void check_hs(const struct raft_hard_state* a,
                     raft_term t,
                     raft_id v,
                     raft_index c)
{
    CHECK_EQ(a->term, t);
    CHECK_EQ(a->vote, v);
    CHECK_EQ(a->commit, c);
}

static struct rlog* reopen(struct rlog* l,
                           const char* dir,
                           uint64_t segmax,
                           struct rlog_loaded* ld)
{
    if (l != NULL) {
        rlog_close(l);
    }
    struct rlog_options o = opts(segmax);
    struct rlog* n = NULL;
    int rv = rlog_open(dir, &o, &n, ld);
    if (rv != 0) {
        fprintf(stderr, "rlog_open(%s): %s (%s)\n", dir, raft_strerror(rv),
                trace_last);
    }
    CHECK_EQ(rv, 0);
    return n;
}

/* ---- tests ---- */

static void test_roundtrip(void)
{
    char dir[256];
    tmpdir(dir, sizeof(dir), "roundtrip");
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 0, &ld);
    CHECK(ld.fresh);
    CHECK_EQ(ld.n_entries, 0);
    CHECK_EQ(ld.snap.index, 0);
    CHECK_EQ(rlog_last_index(l), 0);

    append_range(l, 1, 40, 1, 7);
    struct raft_hard_state hs = {.term = 3, .vote = 2, .commit = 7};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);
    CHECK_EQ(rlog_sync(l), 0); /* nothing new: a no-op */
    CHECK_EQ(rlog_last_index(l), 40);

    l = reopen(l, dir, 0, &ld);
    CHECK(!ld.fresh);
    CHECK_EQ(ld.torn_bytes, 0);
    check_hs(&ld.hs, 3, 2, 7);
    check_loaded(&ld, 1, 40, term1);
    CHECK_EQ(rlog_last_index(l), 40);

    /* The newest of several hard states wins. */
    hs = (struct raft_hard_state){.term = 4, .vote = 0, .commit = 30};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);
    hs.vote = 5;
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);

    /* Snapshot meta with a configuration. */
    struct raft_snapshot_meta snap = mk_snap(20, 1);
    CHECK_EQ(rlog_compact(l, &snap, 0), 0);
    l = reopen(l, dir, 0, &ld);
    check_hs(&ld.hs, 4, 5, 30);
    check_snap(&ld.snap, &snap);
    check_loaded(&ld, 21, 40, term1);

    /* Appending after reopen continues the same log. */
    append_range(l, 41, 45, 4, 2);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, 0, &ld);
    CHECK_EQ(ld.n_entries, 25);
    check_entry(&ld.entries[24], 45, 4);
    rlog_close(l);
    rmdir_all(dir);
}

static raft_term term_trunc(raft_index i)
{
    return i < 15 ? 1 : 2;
}

static void test_truncate(void)
{
    char dir[256];
    tmpdir(dir, sizeof(dir), "truncate");
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 0, &ld);
    append_range(l, 1, 10, 1, 10);
    struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 5};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0); /* an older record, kept */
    CHECK_EQ(rlog_sync(l), 0);
    append_range(l, 11, 20, 1, 10);
    hs.commit = 10;
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);

    /* The hard state record lies after index 15: cutting must keep it. */
    CHECK_EQ(rlog_truncate(l, 15), 0);
    CHECK_EQ(rlog_last_index(l), 14);
    CHECK_EQ(rlog_truncate(l, 99), 0); /* past the end: nothing */
    l = reopen(l, dir, 0, &ld);
    check_hs(&ld.hs, 1, 1, 10);
    check_loaded(&ld, 1, 14, term1);

    append_range(l, 15, 30, 2, 4);
    hs.term = 2;
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, 0, &ld);
    check_hs(&ld.hs, 2, 1, 10);
    check_loaded(&ld, 1, 30, term_trunc);

    /* Truncate unsynced appends, then append again, all in one batch. */
    append_range(l, 31, 40, 2, 10);
    CHECK_EQ(rlog_truncate(l, 25), 0);
    append_range(l, 25, 28, 3, 10);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, 0, &ld);
    CHECK_EQ(ld.n_entries, 28);
    check_entry(&ld.entries[23], 24, 2);
    check_entry(&ld.entries[24], 25, 3);
    check_entry(&ld.entries[27], 28, 3);
    rlog_close(l);
    rmdir_all(dir);
}

static raft_term term_seg(raft_index i)
{
    return i < 137 ? 1 : 2;
}

static void test_segments(void)
{
    char dir[256];
    tmpdir(dir, sizeof(dir), "segments");
    const uint64_t segmax = 2048;
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, segmax, &ld);
    append_range(l, 1, 300, 1, 13);
    struct raft_hard_state hs = {.term = 1, .vote = 3, .commit = 250};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);
    unsigned nseg = count_segs(dir);
    CHECK(nseg > 20);

    l = reopen(l, dir, segmax, &ld);
    check_loaded(&ld, 1, 300, term1);
    check_hs(&ld.hs, 1, 3, 250);
    uint8_t* buf = malloc(1 << 20);
    CHECK(buf != NULL);
    char p[600];

    /* Truncate across segment boundaries: later segments are deleted. */
    CHECK_EQ(rlog_truncate(l, 137), 0);
    CHECK(count_segs(dir) < nseg);
    append_range(l, 137, 160, 2, 5);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, segmax, &ld);
    check_loaded(&ld, 1, 160, term_seg);
    check_hs(&ld.hs, 1, 3, 250); /* its record was in a deleted segment */

    /* Every segment file starts with its first index and stays under the
     * limit (every entry here is smaller than segmax). */
    for (unsigned k = 0; k < ld.n_entries; k++) {
        seg_path(p, sizeof(p), dir, ld.entries[k].index);
        if (access(p, F_OK) == 0) {
            size_t n = read_file(p, buf, 1 << 20);
            CHECK(n <= segmax + RLOG_REC_HDR_SIZE + RLOG_HS_DATA_SIZE);
            struct rlog_rec_hdr h;
            rlog__hdr_decode(&h, buf);
            CHECK_EQ(h.type, RLOG_REC_SEGMENT);
            CHECK_EQ(h.index, ld.entries[k].index);
        }
    }
    /* Truncate exactly at a segment's first index: that segment is kept,
     * empty, and takes the new entries. */
    raft_index f = 160;
    for (; f > 1; f--) {
        seg_path(p, sizeof(p), dir, f);
        if (access(p, F_OK) == 0) {
            break;
        }
    }
    CHECK(f > 1);
    CHECK_EQ(rlog_truncate(l, f), 0);
    struct stat st;
    CHECK(stat(p, &st) == 0);
    CHECK_EQ(st.st_size, RLOG_REC_HDR_SIZE);
    struct raft_entry e = mk(f, 3, data_len(f));
    CHECK_EQ(rlog_append(l, &e, 1), 0);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, segmax, &ld);
    CHECK_EQ(ld.n_entries, f);
    check_entry(&ld.entries[f - 2], f - 1, term_seg(f - 1));
    check_entry(&ld.entries[f - 1], f, 3);
    free(buf);
    rlog_close(l);
    rmdir_all(dir);
}

static void test_compact(void)
{
    char dir[256], p[600], keep[600];
    tmpdir(dir, sizeof(dir), "compact");
    const uint64_t segmax = 1024;
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, segmax, &ld);
    struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 1};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0); /* lands in the 1st segment */
    append_range(l, 1, 200, 1, 9);
    CHECK_EQ(rlog_sync(l), 0);
    unsigned nseg = count_segs(dir);
    seg_path(keep, sizeof(keep), dir, 1);
    uint8_t* first = malloc(1 << 16);
    size_t first_n = read_file(keep, first, 1 << 16);

    struct raft_snapshot_meta snap = mk_snap(150, 1);
    CHECK_EQ(rlog_compact(l, &snap, 120), 0);
    CHECK(count_segs(dir) < nseg);
    CHECK(access(keep, F_OK) != 0); /* the first segment is gone */
    /* Entries >= keep_from are still on disk: find the segment holding 120
     * by walking down from 120 to the nearest segment name. */
    raft_index f = 120;
    for (; f > 0; f--) {
        seg_path(p, sizeof(p), dir, f);
        if (access(p, F_OK) == 0) {
            break;
        }
    }
    CHECK(f > 0);
    for (raft_index g = f - 1; g > 0; g--) {
        seg_path(p, sizeof(p), dir, g);
        CHECK(access(p, F_OK) != 0); /* nothing below it survives */
    }

    append_range(l, 201, 210, 1, 10);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, segmax, &ld);
    check_hs(&ld.hs, 1, 1, 1); /* its record was in a deleted segment */
    check_snap(&ld.snap, &snap);
    check_loaded(&ld, 151, 210, term1);

    /* A crash mid-compaction may leave old segments behind: open ignores
     * and removes segments wholly covered by the snapshot. */
    write_file(keep, first, first_n);
    l = reopen(l, dir, segmax, &ld);
    check_loaded(&ld, 151, 210, term1);
    CHECK(access(keep, F_OK) != 0);

    /* Compacting everything keeps the last segment and the log going. */
    snap = mk_snap(210, 1);
    CHECK_EQ(rlog_compact(l, &snap, 0), 0);
    CHECK_EQ(count_segs(dir), 1);
    append_range(l, 211, 215, 1, 5);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, segmax, &ld);
    check_loaded(&ld, 211, 215, term1);
    free(first);
    rlog_close(l);
    rmdir_all(dir);
}

static raft_term term_two(raft_index i)
{
    (void)i;
    return 2;
}

/* rlog_compact up to the last index keeps the last segment, all of it
 * <= the snapshot index; the next hard state record goes there (after
 * meta's), and appends roll to a new segment. At open that segment is no
 * longer the last one and is dropped: its hard state (a vote) must not go
 * with it. Found by fuzz_log: the hard state differed between two opens
 * (the first took the record, then deleted the only copy). */
static void test_compact_keeps_hard_state(void)
{
    char dir[256], p[600];
    tmpdir(dir, sizeof(dir), "compact-hs");
    const uint64_t segmax = 1024;
    struct rlog_loaded ld;
    /* r: the first index that does not fit its predecessor's segment
     * (found in a scratch log: the entry sizes are deterministic). */
    char scratch[256];
    tmpdir(scratch, sizeof(scratch), "compact-hs-scratch");
    struct rlog* l = reopen(NULL, scratch, segmax, &ld);
    raft_index r = 0;
    for (raft_index i = 1; i <= 100 && r == 0; i++) {
        append_range(l, i, i, 1, 1);
        seg_path(p, sizeof(p), scratch, i);
        r = i > 1 && access(p, F_OK) == 0 ? i : 0;
    }
    CHECK(r > 0);
    rlog_close(l);
    rmdir_all(scratch);
    seg_path(p, sizeof(p), dir, r);
    l = reopen(NULL, dir, segmax, &ld);
    append_range(l, 1, r - 1, 1, 1);
    CHECK_EQ(rlog_sync(l), 0);
    struct raft_snapshot_meta snap = mk_snap(r - 1, 1);
    CHECK_EQ(rlog_compact(l, &snap, 0), 0);
    CHECK_EQ(count_segs(dir), 1);
    struct raft_hard_state hs = {.term = 2, .vote = 11, .commit = r - 1};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0); /* the record: in the kept segment */
    append_range(l, r, r + 40, 2, 5);
    CHECK_EQ(rlog_sync(l), 0);
    CHECK(access(p, F_OK) == 0); /* seg-r: r rolled past the kept one */

    l = reopen(l, dir, segmax, &ld);
    check_hs(&ld.hs, 2, 11, r - 1);
    check_loaded(&ld, r, r + 40, term_two);
    l = reopen(l, dir, segmax, &ld); /* the dropped segment is gone now */
    check_hs(&ld.hs, 2, 11, r - 1);
    check_loaded(&ld, r, r + 40, term_two);
    rlog_close(l);
    rmdir_all(dir);
}

static raft_term term5(raft_index i)
{
    (void)i;
    return 5;
}

static void test_reset(void)
{
    char dir[256], p[600];
    tmpdir(dir, sizeof(dir), "reset");
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 0, &ld);
    append_range(l, 1, 50, 1, 50);
    struct raft_hard_state hs = {.term = 5, .vote = 9, .commit = 40};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);
    seg_path(p, sizeof(p), dir, 1);
    uint8_t* old = malloc(1 << 16);
    size_t old_n = read_file(p, old, 1 << 16);

    /* A snapshot inside the old log: its entries after 30 are dropped
     * too (they may conflict with the snapshot). */
    struct raft_snapshot_meta snap = mk_snap(30, 5);
    CHECK_EQ(rlog_reset(l, &snap), 0);
    CHECK_EQ(rlog_last_index(l), 30);
    CHECK_EQ(count_segs(dir), 0);
    l = reopen(l, dir, 0, &ld);
    CHECK_EQ(ld.n_entries, 0);
    check_snap(&ld.snap, &snap);
    check_hs(&ld.hs, 5, 9, 40);
    CHECK_EQ(rlog_last_index(l), 30);

    append_range(l, 31, 35, 5, 2);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, 0, &ld);
    check_loaded(&ld, 31, 35, term5);
    check_hs(&ld.hs, 5, 9, 40);

    /* A crash between the reset's meta and its unlinks leaves segments of
     * the previous epoch (here with entries 31..50 of term 1): open
     * deletes them instead of reading them. */
    write_file(p, old, old_n);
    l = reopen(l, dir, 0, &ld);
    check_loaded(&ld, 31, 35, term5);
    CHECK(access(p, F_OK) != 0);

    /* A snapshot ahead of the log. */
    snap = mk_snap(100, 6);
    CHECK_EQ(rlog_reset(l, &snap), 0);
    append_range(l, 101, 103, 6, 3);
    CHECK_EQ(rlog_sync(l), 0);
    l = reopen(l, dir, 0, &ld);
    check_snap(&ld.snap, &snap);
    CHECK_EQ(ld.n_entries, 3);
    check_entry(&ld.entries[2], 103, 6);
    check_hs(&ld.hs, 5, 9, 40);
    free(old);
    rlog_close(l);
    rmdir_all(dir);
}

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

static void test_bad_input(void)
{
    char dir[256];
    tmpdir(dir, sizeof(dir), "badinput");
    struct rlog_loaded ld;
    struct rlog* l = reopen(NULL, dir, 0, &ld);
    struct raft_entry e = mk(1, 1, 10);
    e.data.len = RAFT_ENTRY_DATA_MAX + 1;
    CHECK_EQ(rlog_append(l, &e, 1), RAFT_ETOOBIG);
    e = mk(1, 1, 10);
    CHECK_EQ(rlog_append(l, &e, 1), 0); /* not sticky: input, not I/O */
    struct raft_snapshot_meta snap = mk_snap(1, 1);
    snap.conf.servers[1].id = snap.conf.servers[0].id; /* duplicate id */
    CHECK_EQ(rlog_compact(l, &snap, 0), -EINVAL);
    CHECK_EQ(rlog_sync(l), 0);
    struct rlog_options o = opts((1ull << 30) + 1);
    struct rlog* l2;
    CHECK_EQ(rlog_open(dir, &o, &l2, &ld), -EINVAL);
    rlog_close(l);
    rmdir_all(dir);
}

/* ---- benchmark ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench(const char* base)
{
    static const unsigned batches[] = {1, 16, 128};
    struct statfs sf;
    CHECK(statfs(base, &sf) == 0);
    printf(
        "bench in %s (f_type 0x%lx), 100-byte entries, hard state each "
        "batch\n",
        base, (unsigned long)sf.f_type);
    for (unsigned b = 0; b < 3; b++) {
        char dir[600];
        snprintf(dir, sizeof(dir), "%s/bench-log-%u", base, batches[b]);
        struct rlog_loaded ld;
        struct rlog* l = reopen(NULL, dir, 0, &ld);
        static struct raft_entry es[128];
        raft_index next = rlog_last_index(l) + 1;
        unsigned rounds = 0;
        double t0 = now_s(), t = t0;
        while (t - t0 < 3.0 && rounds < 100000) {
            for (unsigned k = 0; k < batches[b]; k++) {
                es[k] = mk(next + k, 1, 100);
            }
            CHECK_EQ(rlog_append(l, es, batches[b]), 0);
            struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = next};
            CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
            CHECK_EQ(rlog_sync(l), 0);
            next += batches[b];
            rounds++;
            t = now_s();
        }
        double secs = t - t0;
        printf("batch %3u: %8.0f syncs/s %9.0f entries/s (%u rounds, %.2f s)\n",
               batches[b], rounds / secs, rounds * batches[b] / secs, rounds,
               secs);
        rlog_close(l);
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

/* Preallocated segments: the unused zero tail is not a torn tail, appends
 * continue after the last record across reopens, and a rolled segment is
 * cut back to its records (only the last segment may end in zeros). */
static void test_preallocate(void)
{
    char dir[256], path[512];
    tmpdir(dir, sizeof(dir), "prealloc");
    struct rlog_options o = opts(64 << 10);
    o.preallocate = true;
    struct rlog_loaded ld;
    struct rlog* l = NULL;
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), 0);
    append_range(l, 1, 10, 1, 7);
    struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 10};
    CHECK_EQ(rlog_set_hard_state(l, &hs), 0);
    CHECK_EQ(rlog_sync(l), 0);
    seg_path(path, sizeof(path), dir, 1);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK(st.st_size == 64 << 10); /* preallocated */
    rlog_close(l);
    for (int round = 0; round < 2; round++) {
        CHECK_EQ(rlog_open(dir, &o, &l, &ld), 0);
        CHECK_EQ(ld.torn_bytes, 0);
        check_loaded(&ld, 1, 10 + 10 * (raft_index)round, term1);
        append_range(l, 11 + 10 * (raft_index)round,
                     20 + 10 * (raft_index)round, 1, 7);
        CHECK_EQ(rlog_sync(l), 0);
        rlog_close(l);
    }
    /* Fill past one segment: the first one is cut back when it rolls. */
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), 0);
    append_range(l, 31, 2000, 1, 7);
    CHECK_EQ(rlog_sync(l), 0);
    rlog_close(l);
    CHECK_EQ(stat(path, &st), 0);
    CHECK(st.st_size != 64 << 10); /* no longer the preallocated size */
    CHECK_EQ(rlog_open(dir, &o, &l, &ld), 0);
    CHECK_EQ(ld.torn_bytes, 0);
    check_loaded(&ld, 1, 2000, term1);
    rlog_close(l);
}

int main(int argc, char** argv)
{
    if (argc == 3 && strcmp(argv[1], "--bench") == 0) {
        bench(argv[2]);
        return 0;
    }
    RUN(test_roundtrip);
    RUN(test_preallocate);
    RUN(test_truncate);
    RUN(test_segments);
    RUN(test_compact);
    RUN(test_compact_keeps_hard_state);
    RUN(test_reset);
    RUN(test_torn_every_byte);
    RUN(test_bitflip);
    RUN(test_corrupt_segments);
    RUN(test_bad_input);
    RUN(test_sticky_efbig);
    RUN(test_sticky_enospc);
    fprintf(stderr, "all log tests passed\n");
    return 0;
}
