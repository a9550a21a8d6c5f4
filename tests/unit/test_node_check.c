/* test_node_check.c - the start-up checks between the db file and the raft
 * log (fs/node_check.c), one rule per case: a torn db tail is dropped only
 * where the log replays it; a db behind the log's snapshot, a db ahead of a
 * lone node's (or a new) log and committed entries missing from a lone
 * node's log refuse and modify nothing; in a cluster a db ahead of the log
 * and a commit past it start with a WARN. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../fs/node/node_state_internal.h"
#include "check.h"

enum { ENTRIES_MAX = 64 };

struct env {
    char dir[64];
    char db[96];
    struct node n;
    struct raft_entry entries[ENTRIES_MAX];
    struct rlog_loaded l;
};

static uint64_t file_size(const char* path)
{
    struct stat sb;
    CHECK_EQ(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

/* A db file with one index-only frame per index in 1..applied; with
 * torn_to > applied, one more frame up to torn_to whose checksum is broken
 * (its header still names torn_to). */
static void make_db(struct env* e, raft_index applied, raft_index torn_to)
{
    struct store_options o;
    struct store* st;
    store_options_default(&o);
    unlink(e->db);
    CHECK_EQ(store_open(e->db, &o, &st, NULL), 0);
    raft_index last = torn_to > applied ? torn_to : applied;
    for (raft_index i = 1; i <= last; i++) {
        struct store_frame* f;
        CHECK_EQ(store_apply_index(st, i), 0);
        if (i <= applied || i == last) {
            CHECK_EQ(store_frame_seal(st, &f), 0);
            CHECK(f != NULL);
            CHECK_EQ(store_frame_write(st, f), 0);
            store_frame_done(st, f, 0);
        }
    }
    store_close(st);
    if (torn_to > applied) {
        int fd = open(e->db, O_WRONLY);
        CHECK(fd >= 0);
        /* the last 8 bytes: the checksum of the last (empty) frame */
        CHECK_EQ(pwrite(fd, "\xff\xff\xff\xff", 4, (off_t)file_size(e->db) - 8),
                 4);
        close(fd);
    }
}

/* Opens the db as the node does (torn tail kept) into e->n.store. */
static void open_db(struct env* e, struct store_recovery* rec)
{
    struct store_options o;
    store_options_default(&o);
    o.keep_torn_tail = true;
    CHECK_EQ(store_open(e->db, &o, &e->n.store, rec), 0);
}

/* The log as rlog_open would load it: snapshot at snap, entries up to last,
 * hard state commit; alone or one of three servers. */
static void make_log(struct env* e,
                     raft_index snap,
                     raft_index last,
                     raft_index commit,
                     bool alone)
{
    struct raft_conf c = {.n = alone ? 1 : 3};
    for (unsigned i = 0; i < c.n; i++) {
        c.servers[i].id = e->n.id + i;
    }
    memset(&e->l, 0, sizeof(e->l));
    e->l.snap.index = snap;
    e->l.snap.term = 1;
    e->l.snap.conf = c;
    e->l.hs.term = 1;
    e->l.hs.commit = commit;
    CHECK(last - snap <= ENTRIES_MAX);
    for (raft_index i = snap + 1; i <= last; i++) {
        e->entries[i - snap - 1] =
            (struct raft_entry){.term = 1, .index = i, .type = RAFT_ENTRY_NOOP};
    }
    e->l.n_entries = (unsigned)(last - snap);
    e->l.entries = e->entries;
    e->n.initial_conf = c;
}

static void env_init(struct env* e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/qfs-check-XXXXXX");
    CHECK(mkdtemp(e->dir) != NULL);
    snprintf(e->db, sizeof(e->db), "%s/db", e->dir);
    snprintf(e->n.data_dir, sizeof(e->n.data_dir), "%s", e->dir);
    e->n.id = 7;
}

static void env_free(struct env* e)
{
    if (e->n.store != NULL) {
        store_close(e->n.store);
        e->n.store = NULL;
    }
    unlink(e->db);
    rmdir(e->dir);
}

/* Runs the check; the db file must be unchanged when it refuses. */
static int check(struct env* e, struct store_recovery* rec)
{
    uint64_t before = file_size(e->db);
    int rv = node__check_disk(&e->n, e->db, rec, &e->l);
    if (rv != 0) {
        CHECK_EQ(file_size(e->db), before);
    }
    store_close(e->n.store);
    e->n.store = NULL;
    return rv;
}

static void test_consistent(void)
{
    struct env e;
    struct store_recovery rec;
    env_init(&e);
    make_db(&e, 10, 0);
    for (int alone = 0; alone < 2; alone++) {
        open_db(&e, &rec);
        make_log(&e, 5, 12, 11, alone);
        CHECK_EQ(check(&e, &rec), 0);
    }
    env_free(&e);
}

static void test_torn_tail_replayable(void)
{
    struct env e;
    struct store_recovery rec;
    env_init(&e);
    make_db(&e, 10, 14);
    uint64_t torn = file_size(e.db);
    open_db(&e, &rec);
    CHECK(rec.torn_bytes > 0);
    CHECK_EQ(rec.applied_index, 10);
    CHECK_EQ(rec.tail_index_max, 14);
    make_log(&e, 8, 14, 14, true); /* the log holds 9..14 */
    CHECK_EQ(check(&e, &rec), 0);
    CHECK_EQ(file_size(e.db), torn - rec.torn_bytes); /* dropped */
    env_free(&e);
}

static void test_torn_tail_beyond_the_log(void)
{
    struct env e;
    struct store_recovery rec;
    env_init(&e);
    make_db(&e, 10, 14);
    for (int alone = 0; alone < 2; alone++) {
        open_db(&e, &rec);
        make_log(&e, 12, 16, 16, alone); /* 11 and 12 are in neither */
        CHECK_EQ(check(&e, &rec), -EUCLEAN);
    }
    /* alone: the tail named index 14, the log ends at 13 */
    open_db(&e, &rec);
    make_log(&e, 9, 13, 13, true);
    CHECK_EQ(check(&e, &rec), -EUCLEAN);
    env_free(&e);
}

static void test_db_behind_the_snapshot(void)
{
    struct env e;
    struct store_recovery rec;
    env_init(&e);
    make_db(&e, 10, 0);
    open_db(&e, &rec);
    make_log(&e, 11, 15, 15, false);
    CHECK_EQ(check(&e, &rec), -EUCLEAN);
    env_free(&e);
}

static void test_db_ahead_of_the_log(void)
{
    struct env e;
    struct store_recovery rec;
    env_init(&e);
    make_db(&e, 10, 0);
    open_db(&e, &rec);
    make_log(&e, 0, 8, 8, true);
    CHECK_EQ(check(&e, &rec), -EUCLEAN); /* alone: indexes 9, 10 reused */
    open_db(&e, &rec);
    make_log(&e, 0, 8, 8, false);
    CHECK_EQ(check(&e, &rec), 0); /* cluster: a cut-short install */
    open_db(&e, &rec);
    make_log(&e, 0, 0, 0, false);
    e.l.fresh = true;
    CHECK_EQ(check(&e, &rec), -EUCLEAN); /* a new log under an old db */
    env_free(&e);
}

static void test_commit_past_the_log(void)
{
    struct env e;
    struct store_recovery rec;
    env_init(&e);
    make_db(&e, 10, 0);
    open_db(&e, &rec);
    make_log(&e, 5, 12, 14, true);
    CHECK_EQ(check(&e, &rec), -EUCLEAN);
    open_db(&e, &rec);
    make_log(&e, 5, 12, 14, false);
    CHECK_EQ(check(&e, &rec), 0); /* the leader sends 13, 14 again */
    env_free(&e);
}

int main(void)
{
    RUN(test_consistent);
    RUN(test_torn_tail_replayable);
    RUN(test_torn_tail_beyond_the_log);
    RUN(test_db_behind_the_snapshot);
    RUN(test_db_ahead_of_the_log);
    RUN(test_commit_past_the_log);
    return 0;
}
