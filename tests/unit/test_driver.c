/* test_driver.c - the shared driver of the update contract (raft/driver.h):
 * messages that vouch for persisted state wait for their batch, batches
 * complete in order, events posted while an update is handled are stepped
 * after it, message copies are deep. */
#include <stdbool.h>

#include "check.h"
#include "driver.h"
#include "raft.h"

enum { SENT_MAX = 64, BATCHES_MAX = 64 };

static uint64_t now = 1000;
static struct raft* core;
static struct raft_driver* drv;
static struct raft_message sent[SENT_MAX]; /* deep copies */
static unsigned n_sent;
static struct raft_batch* pending[BATCHES_MAX]; /* persisting, in order */
static unsigned n_pending;
static unsigned updates, in_update_seen, committed_seen;
static bool compact_on_commit;

static uint64_t ops_now(void* data)
{
    (void)data;
    return now;
}

static void ops_send(void* data, const struct raft_message* m)
{
    (void)data;
    CHECK(n_sent < SENT_MAX);
    CHECK_EQ(raft_msg_clone(&sent[n_sent++], m), 0);
}

static void ops_persist(void* data, struct raft_batch* b)
{
    (void)data;
    CHECK(n_pending < BATCHES_MAX);
    pending[n_pending++] = b;
}

static void ops_update(void* data, int rc, const struct raft_update* u)
{
    (void)data;
    (void)rc;
    updates++;
    if (raft_driver_in_update(drv)) {
        in_update_seen++;
    }
    committed_seen += u->n_committed;
    if (compact_on_commit && u->n_committed > 0) {
        /* An internal event raised inside update handling: it must not
         * be stepped here (the core is in the middle of an update). */
        struct raft_event ev = {.type = RAFT_EV_COMPACT};
        ev.compact.meta.index = u->committed[u->n_committed - 1].index;
        ev.compact.meta.term = u->committed[u->n_committed - 1].term;
        ev.compact.meta.conf = *raft_conf_current(core);
        raft_index first = raft_first_index(core);
        CHECK_EQ(raft_driver_post(drv, ev), 0);
        CHECK_EQ(raft_first_index(core), first); /* not yet */
        compact_on_commit = false;
    }
}

static void complete_first(void)
{
    CHECK(n_pending > 0);
    struct raft_batch* b = pending[0];
    for (unsigned i = 1; i < n_pending; i++) {
        pending[i - 1] = pending[i];
    }
    n_pending--;
    raft_driver_persisted(drv, b);
}

static void clear_sent(void)
{
    for (unsigned i = 0; i < n_sent; i++) {
        raft_msg_free(&sent[i]);
    }
    n_sent = 0;
}

static void start(unsigned voters)
{
    struct raft_options o;
    raft_options_default(&o);
    o.id = 1;
    o.seed = 7;
    core = raft_new(&o);
    CHECK(core != NULL);
    struct raft_conf conf;
    memset(&conf, 0, sizeof(conf));
    conf.n = voters;
    for (unsigned i = 0; i < voters; i++) {
        conf.servers[i].id = i + 1;
        conf.servers[i].role = RAFT_VOTER;
        snprintf(conf.servers[i].name, RAFT_NAME_MAX, "n%u", i + 1);
    }
    CHECK_EQ(raft_bootstrap(core, &conf, now), 0);
    struct raft_driver_ops ops = {.now_ms = ops_now,
                                  .send = ops_send,
                                  .persist = ops_persist,
                                  .update = ops_update};
    drv = raft_driver_new(core, &ops);
    CHECK(drv != NULL);
    updates = in_update_seen = committed_seen = 0;
}

static void stop(void)
{
    raft_driver_free(drv); /* frees the batches still pending */
    n_pending = 0;
    raft_free(core);
    clear_sent();
}

/* A vote answer vouches for the persisted vote: it is sent only once the
 * batch holding the new term and vote is durable. */
static void test_vote_waits_for_persist(void)
{
    start(3);
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE;
    m.from = 2;
    m.to = 1;
    m.term = 5;
    struct raft_event ev = {.type = RAFT_EV_RECEIVE};
    ev.msg = &m;
    CHECK_EQ(raft_driver_step(drv, ev), 0);
    CHECK_EQ(n_pending, 1);
    CHECK(pending[0]->hard_state_changed);
    CHECK_EQ(pending[0]->hard_state.vote, 2);
    CHECK_EQ(n_sent, 0); /* held with the batch */
    CHECK_EQ(raft_driver_batches_inflight(drv), 1);
    complete_first();
    CHECK_EQ(n_sent, 1);
    CHECK_EQ(sent[0].type, RAFT_MSG_VOTE_RESP);
    CHECK(sent[0].vote_resp.granted);
    CHECK_EQ(raft_driver_batches_inflight(drv), 0);
    CHECK_EQ(in_update_seen, updates); /* update runs inside the step */
    stop();
}

/* A lone leader commits an entry only once its batch is durable (the
 * driver reports RAFT_EV_PERSISTED); batches complete in submission
 * order; a compaction posted from the update that applied the entry runs
 * after that update. */
static void test_persist_order_and_posted_events(void)
{
    start(1);
    struct raft_event tick = {.type = RAFT_EV_TICK};
    for (unsigned i = 0; i < 40 && raft_role(core) != RAFT_LEADER; i++) {
        now += 100;
        raft_driver_step(drv, tick);
        while (n_pending > 0) {
            complete_first();
        }
    }
    CHECK(raft_role(core) == RAFT_LEADER);
    raft_index commit = raft_commit_index(core);
    uint64_t v1 = 11, v2 = 22;
    struct raft_proposal p = {.ctx = 1, .type = RAFT_ENTRY_NORMAL};
    p.data.base = &v1;
    p.data.len = sizeof(v1);
    struct raft_event pe = {.type = RAFT_EV_PROPOSE};
    pe.propose.n = 1;
    pe.propose.props = &p;
    CHECK_EQ(raft_driver_step(drv, pe), 0);
    p.ctx = 2;
    p.data.base = &v2;
    CHECK_EQ(raft_driver_step(drv, pe), 0);
    CHECK_EQ(n_pending, 2);
    /* The batch holds a copy: the proposal's buffer may change now. */
    v1 = 99;
    uint64_t got;
    memcpy(&got, pending[0]->entries[0].data.base, sizeof(got));
    CHECK_EQ(got, 11);
    CHECK_EQ(raft_commit_index(core), commit); /* nothing durable yet */
    compact_on_commit = true;
    unsigned before = committed_seen;
    complete_first();
    CHECK_EQ(raft_commit_index(core), commit + 1);
    CHECK_EQ(committed_seen, before + 1);
    /* The posted compaction ran once the update was handled. */
    CHECK(!compact_on_commit);
    CHECK_EQ(raft_first_index(core), commit + 2);
    complete_first();
    CHECK_EQ(raft_commit_index(core), commit + 2);
    CHECK_EQ(in_update_seen, updates);
    stop();
}

/* raft_msg_clone copies every payload; raft_msg_free releases it. */
static void test_msg_clone_is_deep(void)
{
    uint8_t data[3] = {1, 2, 3};
    struct raft_entry e = {.term = 2, .index = 7, .type = RAFT_ENTRY_NORMAL};
    e.data.base = data;
    e.data.len = sizeof(data);
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.append.n_entries = 1;
    m.append.entries = &e;
    struct raft_message c;
    CHECK_EQ(raft_msg_clone(&c, &m), 0);
    data[0] = 9;
    CHECK(c.append.entries != &e);
    CHECK_EQ(((const uint8_t*)c.append.entries[0].data.base)[0], 1);
    CHECK_EQ(c.append.entries[0].index, 7);
    raft_msg_free(&c);

    uint64_t ctxs[2] = {5, 6};
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_PROPOSE_RESP;
    m.propose_resp.n = 2;
    m.propose_resp.ctxs = ctxs;
    CHECK_EQ(raft_msg_clone(&c, &m), 0);
    ctxs[1] = 0;
    CHECK_EQ(c.propose_resp.ctxs[1], 6);
    raft_msg_free(&c);
}

int main(void)
{
    RUN(test_vote_waits_for_persist);
    RUN(test_persist_order_and_posted_events);
    RUN(test_msg_clone_is_deep);
    return 0;
}
