/* test_node.c - the node on a real libuv loop, real disk, no FUSE and no
 * transport (a single voter): proposals through the driver, log
 * compaction while they run (stepped after the update that applied
 * them, never inside it), then restarts from the data dir, which must
 * replay to the same tree. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../fs/node/node_state_internal.h"
#include "check.h"

enum { DIRS = 300 };

struct run {
    unsigned done, failed;
    bool stopped;
};

static void propose_cb(void* data, const struct store_result* res)
{
    struct run* r = data;
    r->done++;
    if (res->err != 0) {
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

int main(void)
{
    RUN(test_names_in_log_lines);
    RUN(test_proposals_compaction_restart);
    return 0;
}
