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

/* `count` mkdirs named PREFIX<i>, proposed round robin on the members.
 * None may fail; EIO (outcome unknown) is allowed: a member that falls
 * behind the leader's compacted log (snapshot_entries 50, a slow TLS
 * handshake on a loaded machine) installs an image that holds its own
 * mkdirs, and a mkdir consumed by an image is answered EIO
 * (fs/node/node_snapshot.c effect_in_tree: only writes and creates can be
 * told from the tree). The callers' check_dirs show that every one was
 * applied. */
static void propose_dirs(uv_loop_t* loop,
                         struct member* ms,
                         unsigned members,
                         const char* prefix,
                         unsigned count)
{
    static char names[128][32];
    struct run r = {0};
    CHECK(count <= 128);
    for (unsigned i = 0; i < count; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%u", prefix, i);
        struct store_cmd c;
        mkdir_cmd(&c, names[i]);
        CHECK_EQ(node_propose(ms[i % members].n, &c, propose_cb, &r), 0);
    }
    struct want w = {&r, count};
    CHECK(run_until(loop, proposals_done, &w));
    CHECK_EQ(r.failed, 0);
    if (r.unknown > 0) {
        fprintf(stderr, "%u of %u mkdirs %s*: outcome unknown (EIO)\n",
                r.unknown, count, prefix);
    }
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
    RUN(test_proposals_compaction_restart);
    RUN(test_three_members);
    return 0;
}
