/* log_env.h - shared by the raft log's unit tests (test_log.c,
 * test_log_damage.c): options, temp dirs, entries whose bytes follow from
 * (index, term), checks of what a reopen loads, raw segment file access.
 * Static inline: each test uses what it needs. */
#ifndef QFS_TEST_LOG_ENV_H
#define QFS_TEST_LOG_ENV_H

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

static inline void trace_emit(void* data,
                              int level,
                              raft_id node,
                              const char* msg)
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

static inline struct rlog_options opts(uint64_t segment_bytes_max)
{
    struct rlog_options o = {
        .segment_bytes_max = segment_bytes_max,
        .tracer = {.data = NULL, .emit = trace_emit, .level = 0}};
    return o;
}

static inline int rm_one(const char* p,
                         const struct stat* st,
                         int flag,
                         struct FTW* f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static inline void tmpdir(char* out, size_t cap, const char* name)
{
    snprintf(out, cap, "/tmp/test_log.%s.XXXXXX", name);
    CHECK(mkdtemp(out) != NULL);
    /* The log creates its directory: use a child that does not exist. */
    strncat(out, "/log", cap - strlen(out) - 1);
}

static inline void rmdir_all(const char* dir)
{
    char parent[512];
    snprintf(parent, sizeof(parent), "%s", dir);
    *strrchr(parent, '/') = '\0';
    nftw(parent, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Deterministic payload of entry (index, term). */
static inline size_t data_len(raft_index i)
{
    return (size_t)((i * 37) % 300);
}

static inline uint8_t data_byte(raft_index i, raft_term t, size_t k)
{
    return (uint8_t)(i * 131 + t * 7 + k);
}

static uint8_t databuf[TEST_ENTRIES_MAX][TEST_DATA_MAX];

static inline struct raft_entry mk(raft_index i, raft_term t, size_t len)
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
static inline void append_range(struct rlog* l,
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

static inline void check_entry(const struct raft_entry* e,
                               raft_index i,
                               raft_term t)
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
static inline void check_loaded(const struct rlog_loaded* ld,
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

static inline raft_term term1(raft_index i)
{
    (void)i;
    return 1;
}

static inline unsigned count_segs(const char* dir)
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

static inline void seg_path(char* out,
                            size_t cap,
                            const char* dir,
                            raft_index first)
{
    snprintf(out, cap, "%s/seg-%020llu", dir, (unsigned long long)first);
}

static inline size_t read_file(const char* path, uint8_t* buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, cap);
    CHECK(n >= 0 && (size_t)n < cap);
    close(fd);
    return (size_t)n;
}

static inline void write_file(const char* path, const uint8_t* buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, buf, n), (ssize_t)n);
    close(fd);
}

static inline struct raft_snapshot_meta mk_snap(raft_index i, raft_term t)
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

static inline void check_snap(const struct raft_snapshot_meta* a,
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

static inline void check_hs(const struct raft_hard_state* a,
                            raft_term t,
                            raft_id v,
                            raft_index c)
{
    CHECK_EQ(a->term, t);
    CHECK_EQ(a->vote, v);
    CHECK_EQ(a->commit, c);
}

static inline struct rlog* reopen(struct rlog* l,
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

#endif
