/* test_node.c - the node on a real libuv loop, real disk, no FUSE:
 *  - a single voter (no transport): proposals through the driver, log
 *    compaction while they run (stepped after the update that applied
 *    them, never inside it), then restarts from the data dir, which must
 *    replay to the same tree;
 *  - three members on one loop over TLS on 127.0.0.1/2/3: proposals on
 *    every member reach every store in one order; the leader stops, the
 *    other two elect and go on, and the old leader, restarted, catches up
 *    (the production sequencing of several nodes, which the sim models
 *    and the e2e tests reach only through FUSE). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../fs/node/identity.h"
#include "../../fs/node/node_state_internal.h"
#include "../../raft/tls.h"
#include "check.h"

enum { DIRS = 300 };

struct run {
    unsigned done, failed;
    unsigned unknown; /* EIO: the outcome is not known (counted apart) */
    bool stopped;
};

static void propose_cb(void* data, const struct store_result* res)
{
    struct run* r = data;
    r->done++;
    if (res->err == -EIO) {
        fprintf(stderr, "proposal outcome unknown (EIO)\n");
        r->unknown++;
    } else if (res->err != 0) {
        fprintf(stderr, "proposal failed: %s\n", strerror(-res->err));
        r->failed++;
    }
}

static void stop_cb(void* data)
{
    struct run* r = data;
    r->stopped = true;
}

static void options(struct node_options* o, const char* dir)
{
    node_options_default(o);
    o->data_dir = dir;
    o->snapshot_entries = 50; /* several compactions during the run */
    o->log_level = RAFT_TRACE_WARN;
}

static struct node* start(uv_loop_t* loop, const char* dir)
{
    struct node_options o;
    options(&o, dir);
    struct node* n = NULL;
    CHECK_EQ(node_start(loop, &o, &n), 0);
    CHECK(n != NULL);
    return n;
}

static void stop(uv_loop_t* loop, struct node* n)
{
    struct run r = {0};
    node_stop(n, stop_cb, &r);
    while (!r.stopped) {
        uv_run(loop, UV_RUN_ONCE);
    }
}

static void mkdir_cmd(struct store_cmd* c, const char* name)
{
    memset(c, 0, sizeof(*c));
    c->op = STORE_OP_MKDIR;
    c->parent = STORE_ROOT_INO;
    c->name = name;
    c->mode = 0755;
}

/* Every dir d0..d<count-1> exists in n's store. */
static void check_tree(struct node* n, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof(name), "d%u", i);
        struct store_attr a;
        CHECK_EQ(store_lookup(node_store(n), STORE_ROOT_INO, name, &a), 0);
    }
    struct store_attr a;
    CHECK_EQ(store_lookup(node_store(n), STORE_ROOT_INO, "nope", &a), -ENOENT);
}

static void test_proposals_compaction_restart(void)
{
    char dir[] = "/tmp/qfs-test-node-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);

    struct node* n = start(&loop, dir);
    struct run r = {0};
    static char names[DIRS][32];
    for (unsigned i = 0; i < DIRS; i++) {
        snprintf(names[i], sizeof(names[i]), "d%u", i);
        struct store_cmd c;
        mkdir_cmd(&c, names[i]);
        CHECK_EQ(node_propose(n, &c, propose_cb, &r), 0);
        if (i % 37 == 0) {
            /* Some proposals while others are in flight, some alone. */
            while (r.done < i + 1) {
                uv_run(&loop, UV_RUN_ONCE);
            }
        }
    }
    while (r.done < DIRS) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    CHECK_EQ(r.failed, 0);
    CHECK_EQ(r.unknown, 0); /* one node: every outcome is known */
    check_tree(n, DIRS);
    /* The log was compacted on the way (every 50 entries, keeping at
     * most 50): its first entry is past the first 200. */
    CHECK(raft_first_index(n->raft) > 200);
    /* The same name again: the store's answer, through the same path. */
    struct store_cmd c;
    mkdir_cmd(&c, names[0]);
    struct run again = {0};
    CHECK_EQ(node_propose(n, &c, propose_cb, &again), 0);
    while (again.done < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    CHECK_EQ(again.failed, 1); /* EEXIST */
    stop(&loop, n);

    /* Restart: the db file and the compacted log replay the same tree,
     * and the node takes proposals again. */
    for (unsigned round = 0; round < 2; round++) {
        n = start(&loop, dir);
        check_tree(n, DIRS);
        char extra[32];
        snprintf(extra, sizeof(extra), "after-restart-%u", round);
        mkdir_cmd(&c, extra);
        struct run one = {0};
        CHECK_EQ(node_propose(n, &c, propose_cb, &one), 0);
        while (one.done < 1) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        CHECK_EQ(one.failed, 0);
        CHECK_EQ(one.unknown, 0);
        stop(&loop, n);
    }
    n = start(&loop, dir);
    struct store_attr a;
    CHECK_EQ(store_lookup(node_store(n), STORE_ROOT_INO, "after-restart-1", &a),
             0);
    check_tree(n, DIRS);
    stop(&loop, n);

    CHECK_EQ(uv_loop_close(&loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

/* The text of the file at path (malloc'd, NUL-terminated). */
static char* slurp(const char* path)
{
    FILE* f = fopen(path, "r");
    CHECK(f != NULL);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char* s = strdup(buf);
    CHECK(s != NULL);
    return s;
}

/* Two nodes in one process log each to its own sink with its own level
 * (the log is the node's, not the process's): "a" at info, "b" at warn. */
static void test_logs_per_node(void)
{
    char dir_a[] = "/tmp/qfs-test-node-loga-XXXXXX";
    char dir_b[] = "/tmp/qfs-test-node-logb-XXXXXX";
    CHECK(mkdtemp(dir_a) != NULL && mkdtemp(dir_b) != NULL);
    char log_a[64], log_b[64];
    snprintf(log_a, sizeof(log_a), "%s.log", dir_a);
    snprintf(log_b, sizeof(log_b), "%s.log", dir_b);
    int fd_a = open(log_a, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    int fd_b = open(log_b, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    CHECK(fd_a >= 0 && fd_b >= 0);
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    struct node_options oa, ob;
    options(&oa, dir_a);
    oa.name = "a";
    oa.log_level = RAFT_TRACE_INFO;
    oa.log_fd = fd_a;
    options(&ob, dir_b);
    ob.name = "b";
    ob.log_level = RAFT_TRACE_WARN;
    ob.log_fd = fd_b;
    struct node *a = NULL, *b = NULL;
    CHECK_EQ(node_start(&loop, &oa, &a), 0);
    CHECK_EQ(node_start(&loop, &ob, &b), 0);
    /* Each says something of its own, at each level. */
    node_log(a, RAFT_TRACE_INFO, "line of a at info");
    node_log(a, RAFT_TRACE_WARN, "line of a at warn");
    node_log(b, RAFT_TRACE_INFO, "line of b at info");
    node_log(b, RAFT_TRACE_WARN, "line of b at warn");
    stop(&loop, a);
    stop(&loop, b);
    CHECK_EQ(uv_loop_close(&loop), 0);
    close(fd_a);
    close(fd_b);
    char* text_a = slurp(log_a);
    char* text_b = slurp(log_b);
    /* a's own lines, its raft core's and its loop's among them */
    CHECK(strstr(text_a, " info  line of a at info\n") != NULL);
    CHECK(strstr(text_a, " warn  line of a at warn\n") != NULL);
    CHECK(strstr(text_a, " info  raft: campaign for term 1\n") != NULL);
    CHECK(strstr(text_a, " info  node stopped cleanly\n") != NULL);
    CHECK(strstr(text_a, "of b") == NULL);
    CHECK(strstr(text_b, " warn  line of b at warn\n") != NULL);
    CHECK(strstr(text_b, " info ") == NULL); /* b's level: warn */
    CHECK(strstr(text_b, "of a") == NULL);
    free(text_a);
    free(text_b);
    unlink(log_a);
    unlink(log_b);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir_a, dir_b);
    CHECK_EQ(system(cmd), 0);
}

/* Log lines name nodes: a member by its name, an id no configuration
 * named by 16 hex digits. */
static void test_names_in_log_lines(void)
{
    struct raft_conf c = {.n = 1};
    c.servers[0].id = identity_node_id("n2");
    snprintf(c.servers[0].name, sizeof(c.servers[0].name), "n2");
    node__names_learn(&c);
    char buf[NODE_NAME_BUF];
    CHECK(strcmp(node__name(0, buf), "none") == 0);
    CHECK(strcmp(node__name(c.servers[0].id, buf), "n2") == 0);
    CHECK(strcmp(node__name(0x0123456789abcdefull, buf),
                 "node 0123456789abcdef") == 0);
}

/* ---- three members on one loop ---- */

enum { MEMBERS = 3, WAIT_MS = 15000 };

struct member {
    char name[8];
    char dir[64];
    char addr[32];
    struct node* n;
};

static char cluster_list[256];
static struct tls_config* tls;

static void wake_cb(uv_timer_t* t)
{
    (void)t;
}

/* Run the loop until pred(arg) holds; false after WAIT_MS. */
static bool run_until(uv_loop_t* loop, bool (*pred)(void*), void* arg)
{
    uv_timer_t wake;
    uv_timer_init(loop, &wake);
    uv_timer_start(&wake, wake_cb, 10, 10);
    uv_update_time(loop);
    uint64_t deadline = uv_now(loop) + WAIT_MS;
    bool ok = pred(arg);
    while (!ok && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_ONCE);
        ok = pred(arg);
    }
    uv_close((uv_handle_t*)&wake, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static void member_start(uv_loop_t* loop, struct member* m, bool existing)
{
    static struct node_options o[MEMBERS];
    struct node_options* mo = &o[m->name[1] - '1'];
    options(mo, m->dir);
    mo->name = m->name;
    mo->listen_peer = m->addr;
    mo->peer_tls = tls;
    mo->heartbeat_ms = 50;
    mo->election_ms = 300;
    mo->cluster_existing = existing;
    CHECK_EQ(identity_parse_cluster(cluster_list, mo->initial, &mo->n_initial),
             0);
    CHECK_EQ(node_start(loop, mo, &m->n), 0);
}

struct group {
    struct member* m;
    unsigned count; /* the first `count` members, the running ones */
};

/* Every running member names the same leader, one of them. */
static bool agreed_leader(void* arg)
{
    struct group* g = arg;
    raft_id l = raft_leader(g->m[0].n->raft);
    bool among = false;
    for (unsigned i = 0; i < g->count; i++) {
        if (raft_leader(g->m[i].n->raft) != l) {
            return false;
        }
        among = among || g->m[i].n->id == l;
    }
    return l != 0 && among;
}

struct want {
    struct run* r;
    unsigned done;
};

static bool proposals_done(void* arg)
{
    struct want* w = arg;
    return w->r->done >= w->done;
}

/* Every running member has applied what the leader committed. */
static bool caught_up(void* arg)
{
    struct group* g = arg;
    raft_index commit = 0;
    for (unsigned i = 0; i < g->count; i++) {
        raft_index c = raft_commit_index(g->m[i].n->raft);
        commit = c > commit ? c : commit;
    }
    for (unsigned i = 0; i < g->count; i++) {
        if (store_applied_index(node_store(g->m[i].n)) < commit) {
            return false;
        }
    }
    return true;
}

static struct member* leader_of(struct member* ms, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        if (raft_role(ms[i].n->raft) == RAFT_LEADER) {
            return &ms[i];
        }
    }
    CHECK(false);
    return NULL;
}

/* Timed-out proposals of the first `members` members (proposal_timeouts). */
static uint64_t timeouts_of(struct member* ms, unsigned members)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < members; i++) {
        t += ms[i].n->timeouts;
    }
    return t;
}

/* `count` mkdirs named PREFIX<i>, proposed round robin on the members.
 * None may fail, and none may be answered EIO but a proposal that timed
 * out (and whose fence did too: counted in proposal_timeouts, possible on
 * a loaded machine). A member that falls behind the leader's compacted
 * log (snapshot_entries 50, a slow TLS handshake) installs an image that
 * holds its own mkdirs and answers them with the results the image's
 * dedup table carries (fs/node/node_snapshot.c; test_image_answers takes
 * that path for sure); before, it answered those EIO. The callers'
 * check_dirs show that every one was applied. */
static void propose_dirs(uv_loop_t* loop,
                         struct member* ms,
                         unsigned members,
                         const char* prefix,
                         unsigned count)
{
    static char names[128][32];
    struct run r = {0};
    CHECK(count <= 128);
    uint64_t timeouts = timeouts_of(ms, members);
    for (unsigned i = 0; i < count; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%u", prefix, i);
        struct store_cmd c;
        mkdir_cmd(&c, names[i]);
        CHECK_EQ(node_propose(ms[i % members].n, &c, propose_cb, &r), 0);
    }
    struct want w = {&r, count};
    CHECK(run_until(loop, proposals_done, &w));
    CHECK_EQ(r.failed, 0);
    CHECK(r.unknown <= timeouts_of(ms, members) - timeouts);
}

static void check_dirs(struct node* n, const char* prefix, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        char name[32];
        struct store_attr a;
        snprintf(name, sizeof(name), "%s%u", prefix, i);
        CHECK_EQ(store_lookup(node_store(n), STORE_ROOT_INO, name, &a), 0);
    }
}

/* ---- a member's proposals consumed by an installed image ---- */

struct answer {
    bool done;
    struct store_result res;
};

static void answer_cb(void* data, const struct store_result* res)
{
    struct answer* a = data;
    a->done = true;
    a->res = *res;
}

struct answers {
    struct answer* a;
    unsigned count;
    struct group* g;
};

static bool answered_caught_up(void* arg)
{
    struct answers* as = arg;
    for (unsigned i = 0; i < as->count; i++) {
        if (!as->a[i].done) {
            return false;
        }
    }
    return caught_up(as->g);
}

/* Propose c on the leader as if `origin` had (a forwarded proposal). */
static void propose_as(struct node* leader,
                       uint64_t origin,
                       uint64_t seq,
                       struct store_cmd* c)
{
    static uint8_t buf[1024];
    c->origin = origin;
    c->seq = seq;
    c->now_ns = node__wall_ns();
    long len = store_cmd_encode(c, buf, sizeof(buf));
    CHECK(len > 0);
    struct raft_proposal p = {.type = RAFT_ENTRY_NORMAL,
                              .data = {buf, (size_t)len}};
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.propose.n = 1;
    ev.propose.props = &p;
    CHECK_EQ(node__step(leader, &ev), 0);
}

/* A follower's proposals that the cluster applies while it is away, and
 * that it then receives only inside the leader's image, are answered with
 * their real results: a mkdir succeeds (with its ino), a mkdir of an
 * existing name fails EEXIST. The follower's waiters are the two
 * proposals it makes again after a restart with the same (origin, seq)
 * (a forwarded proposal whose answer was lost with its member, replayed
 * deterministically); its log ends before the leader's first entry, so it
 * must install an image, and its waiters learn their fate from the
 * image's dedup table only (before, both were answered EIO). */
static void test_image_answers(uv_loop_t* loop, struct member* ms)
{
    struct member* l = leader_of(ms, MEMBERS);
    struct member* f = l == &ms[0] ? &ms[1] : &ms[0];
    uint64_t origin = f->n->id;
    uint64_t seq = f->n->next_seq + 1000; /* new to the dedup table */
    raft_index f_last = raft_last_index(f->n->raft);
    stop(loop, f->n);
    if (f != &ms[MEMBERS - 1]) { /* keep the running ones first */
        struct member tmp = *f;
        *f = ms[MEMBERS - 1];
        ms[MEMBERS - 1] = tmp;
        f = &ms[MEMBERS - 1];
    }
    l = leader_of(ms, MEMBERS - 1);
    struct store_cmd c;
    mkdir_cmd(&c, "img0");
    propose_as(l->n, origin, seq, &c);
    mkdir_cmd(&c, "a0"); /* exists: EEXIST */
    propose_as(l->n, origin, seq + 1, &c);
    propose_dirs(loop, ms, MEMBERS - 1, "c", 120);
    struct group two = {ms, MEMBERS - 1};
    CHECK(run_until(loop, caught_up, &two));
    struct store_attr img0;
    CHECK_EQ(store_lookup(node_store(l->n), STORE_ROOT_INO, "img0", &img0), 0);
    /* The leader's send queue toward the follower still holds the appends
     * of those entries (a queue outlives a peer's absence): the two
     * running members restart, so that only their logs can feed it. */
    for (unsigned i = 0; i < MEMBERS - 1; i++) {
        stop(loop, ms[i].n);
    }
    for (unsigned i = 0; i < MEMBERS - 1; i++) {
        member_start(loop, &ms[i], true);
    }
    CHECK(run_until(loop, agreed_leader, &two));
    l = leader_of(ms, MEMBERS - 1);
    /* The follower's log cannot be continued: an image it must take. */
    CHECK(raft_first_index(l->n->raft) > f_last + 1);

    member_start(loop, f, true);
    f->n->next_seq = seq - 1;
    struct answer a[2] = {{0}};
    mkdir_cmd(&c, "img0");
    CHECK_EQ(node_propose(f->n, &c, answer_cb, &a[0]), 0);
    CHECK_EQ(c.seq, seq);
    mkdir_cmd(&c, "a0");
    CHECK_EQ(node_propose(f->n, &c, answer_cb, &a[1]), 0);
    CHECK_EQ(c.seq, seq + 1);
    struct group all = {ms, MEMBERS};
    struct answers as = {a, 2, &all};
    CHECK(run_until(loop, answered_caught_up, &as));
    CHECK(f->n->counters.snapshot_installs >= 1);
    CHECK_EQ(a[0].res.err, 0); /* was EIO: outcome unknown */
    CHECK_EQ(a[0].res.ino, img0.ino);
    CHECK_EQ(a[0].res.revision, img0.create_rev);
    CHECK_EQ(a[1].res.err, -EEXIST); /* was EIO */
    check_dirs(f->n, "img", 1);
    check_dirs(f->n, "c", 120);
    check_dirs(f->n, "a", 60);
}

static void test_three_members(void)
{
    static struct member ms[MEMBERS];
    char secret[] = "/tmp/qfs-test-node-secret-XXXXXX";
    int fd = mkstemp(secret);
    CHECK(fd >= 0);
    const char* key = "a secret the three members share\n";
    CHECK_EQ(write(fd, key, strlen(key)), (ssize_t)strlen(key));
    close(fd);
    struct tls_config_options to = {.secret_file = secret};
    char err[TLS_ERROR_MAX];
    CHECK_EQ(tls_config_new(&to, &tls, err, sizeof(err)), 0);
    unlink(secret);

    cluster_list[0] = '\0';
    int base = 20000 + (int)(getpid() % 20000);
    for (unsigned i = 0; i < MEMBERS; i++) {
        struct member* m = &ms[i];
        snprintf(m->name, sizeof(m->name), "n%u", i + 1);
        snprintf(m->dir, sizeof(m->dir), "/tmp/qfs-test-node-n%u-XXXXXX",
                 i + 1);
        CHECK(mkdtemp(m->dir) != NULL);
        snprintf(m->addr, sizeof(m->addr), "127.0.0.%u:%d", i + 1,
                 base + (int)i);
        size_t len = strlen(cluster_list);
        snprintf(cluster_list + len, sizeof(cluster_list) - len,
                 "%sn%u=127.0.0.%u:%d", i > 0 ? "," : "", i + 1, i + 1,
                 base + (int)i);
    }
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    for (unsigned i = 0; i < MEMBERS; i++) {
        member_start(&loop, &ms[i], false);
    }
    struct group all = {ms, MEMBERS};
    CHECK(run_until(&loop, agreed_leader, &all));
    propose_dirs(&loop, ms, MEMBERS, "a", 60);
    CHECK(run_until(&loop, caught_up, &all));
    for (unsigned i = 0; i < MEMBERS; i++) {
        check_dirs(ms[i].n, "a", 60);
    }

    /* The leader stops; the two others elect one of them and go on. */
    struct member* old = leader_of(ms, MEMBERS);
    stop(&loop, old->n);
    if (old != &ms[MEMBERS - 1]) { /* keep the running ones first */
        struct member tmp = *old;
        *old = ms[MEMBERS - 1];
        ms[MEMBERS - 1] = tmp;
        old = &ms[MEMBERS - 1];
    }
    struct group two = {ms, MEMBERS - 1};
    CHECK(run_until(&loop, agreed_leader, &two));
    propose_dirs(&loop, ms, MEMBERS - 1, "b", 40);

    /* The old leader comes back and catches up. */
    member_start(&loop, old, true);
    CHECK(run_until(&loop, agreed_leader, &all));
    CHECK(run_until(&loop, caught_up, &all));
    check_dirs(old->n, "a", 60);
    check_dirs(old->n, "b", 40);
    struct store_stats s0, s1;
    store_get_stats(node_store(old->n), &s0);
    store_get_stats(node_store(ms[0].n), &s1);
    CHECK_EQ(s0.revision, s1.revision);

    test_image_answers(&loop, ms);

    for (unsigned i = 0; i < MEMBERS; i++) {
        stop(&loop, ms[i].n);
    }
    CHECK_EQ(uv_loop_close(&loop), 0);
    tls_config_free(tls);
    for (unsigned i = 0; i < MEMBERS; i++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", ms[i].dir);
        CHECK_EQ(system(cmd), 0);
    }
}

int main(void)
{
    RUN(test_names_in_log_lines);
    RUN(test_logs_per_node);
    RUN(test_proposals_compaction_restart);
    RUN(test_three_members);
    return 0;
}
