/* raft_env.c - the harness of the raft core's direct tests (see
 * raft_env.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raft_env.h"

struct node nodes[N_MAX];
unsigned n_nodes;
bool cut[N_MAX + 1][N_MAX + 1]; /* cut[a][b]: a -> b dropped */
struct qmsg* queue;
unsigned q_head, q_tail;
uint64_t now;
unsigned drop_pct; /* random message loss, percent */
uint64_t test_rng = 1;
static raft_id term_leader[4096]; /* election safety: one leader a term */
/* Snapshot chunks at offset 0 sent to each node (transfers started or
 * restarted), lost or not. */
unsigned snap_starts[N_MAX + 1];

uint64_t rnd(void)
{
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return test_rng;
}

void* dup_mem(const void* p, size_t n)
{
    void* c = malloc(n ? n : 1);
    CHECK(c != NULL);
    if (n) {
        memcpy(c, p, n);
    }
    return c;
}

static void enqueue(const struct raft_message* m)
{
    if (m->type == RAFT_MSG_SNAPSHOT && m->snapshot.offset == 0 &&
        m->to <= N_MAX) {
        snap_starts[m->to]++;
    }
    if (cut[m->from][m->to] || (drop_pct && rnd() % 100 < drop_pct)) {
        return;
    }
    CHECK(q_tail - q_head < QUEUE_MAX);
    struct qmsg* q = &queue[q_tail++ % QUEUE_MAX];
    CHECK_EQ(raft_msg_clone(&q->m, m), 0);
}

void qmsg_free(struct qmsg* q)
{
    raft_msg_free(&q->m);
}

static void check_leader(struct node* n)
{
    if (raft_role(n->r) != RAFT_LEADER) {
        return;
    }
    raft_term t = raft_current_term(n->r);
    CHECK(t < 4096);
    if (term_leader[t] == 0) {
        term_leader[t] = raft_id_self(n->r);
    }
    CHECK_EQ(term_leader[t], raft_id_self(n->r));
}

/* The driver's ops (raft/driver.h): every batch is durable at once. */
static uint64_t ops_now(void* data)
{
    (void)data;
    return now;
}

static void ops_send(void* data, const struct raft_message* m)
{
    (void)data;
    enqueue(m);
}

/* Step 1's install: the image is in place at once. */
static void ops_install(void* data, const struct raft_update* u)
{
    struct node* n = data;
    free(n->image);
    n->image = dup_mem(u->snapshot_image.base, u->snapshot_image.len);
    n->image_len = u->snapshot_image.len;
    n->n_applied = 0;
    n->first_applied = u->snapshot_meta.index + 1;
    struct raft_event ev = {.type = RAFT_EV_SNAPSHOT_INSTALLED};
    ev.installed.meta = u->snapshot_meta;
    CHECK_EQ(raft_driver_post(n->d, ev), 0); /* after this update */
}

/* Steps 3 and 4 of an update (the driver did 1 and 2). */
static void ops_update(void* data, int rc, const struct raft_update* u)
{
    struct node* n = data;
    (void)rc;
    for (unsigned i = 0; i < u->n_committed; i++) {
        const struct raft_entry* e = &u->committed[i];
        CHECK_EQ(e->index, n->first_applied + n->n_applied);
        CHECK(n->n_applied < APPLIED_MAX);
        struct applied* a = &n->applied[n->n_applied++];
        a->term = e->term;
        a->type = e->type;
        a->value = 0;
        if (e->data.len >= 8) {
            memcpy(&a->value, e->data.base, 8);
        }
    }
    for (unsigned i = 0; i < u->n_reads && n->n_reads < 64; i++) {
        n->reads[n->n_reads] = u->reads[i].ctx;
        n->read_index[n->n_reads++] = u->reads[i].index;
    }
    for (unsigned i = 0; i < u->n_failed_reads && n->n_failed_reads < 64; i++) {
        n->failed_reads[n->n_failed_reads++] = u->failed_reads[i].err;
    }
    for (unsigned i = 0; i < u->n_failed_proposals && n->n_failed_props < 64;
         i++) {
        n->failed_props[n->n_failed_props++] = u->failed_proposals[i].ctx;
    }
    CHECK(u->next_timeout_ms >= now || u->next_timeout_ms == 0);
}

/* Steps one event through the node's driver, then the events it caused
 * (persisted, installed). */
int step(unsigned i, struct raft_event ev)
{
    struct node* n = &nodes[i];
    int rv = raft_driver_step(n->d, ev);
    check_leader(n);
    return rv;
}

void deliver_all(void)
{
    for (unsigned k = 0; k < 100000 && q_head != q_tail; k++) {
        struct qmsg q = queue[q_head++ % QUEUE_MAX];
        unsigned to = (unsigned)q.m.to - 1;
        if (to < n_nodes && nodes[to].up && !cut[q.m.from][q.m.to]) {
            struct raft_event ev = {.type = RAFT_EV_RECEIVE};
            ev.msg = &q.m;
            step(to, ev);
        }
        qmsg_free(&q);
    }
}

void run(uint64_t ms)
{
    uint64_t end = now + ms;
    while (now < end) {
        now += 10;
        for (unsigned i = 0; i < n_nodes; i++) {
            if (nodes[i].up) {
                step(i, (struct raft_event){.type = RAFT_EV_TICK});
            }
        }
        deliver_all();
    }
}

void cluster_start(unsigned n, unsigned voters, bool pre_vote)
{
    if (queue == NULL) {
        queue = calloc(QUEUE_MAX, sizeof(*queue));
        CHECK(queue != NULL);
    }
    q_head = q_tail = 0;
    memset(cut, 0, sizeof(cut));
    now = 1000;
    n_nodes = n;
    drop_pct = 0;
    memset(term_leader, 0, sizeof(term_leader));
    struct raft_conf conf;
    memset(&conf, 0, sizeof(conf));
    conf.n = voters;
    for (unsigned i = 0; i < voters; i++) {
        conf.servers[i].id = i + 1;
        conf.servers[i].role = RAFT_VOTER;
        snprintf(conf.servers[i].name, RAFT_NAME_MAX, "n%u", i + 1);
    }
    for (unsigned i = 0; i < n; i++) {
        struct raft_options o;
        raft_options_default(&o);
        o.id = i + 1;
        o.seed = 42 + i;
        o.pre_vote = pre_vote;
        memset(&nodes[i], 0, sizeof(nodes[i]));
        nodes[i].r = raft_new(&o);
        CHECK(nodes[i].r != NULL);
        struct raft_driver_ops ops = {.data = &nodes[i],
                                      .now_ms = ops_now,
                                      .send = ops_send,
                                      .install = ops_install,
                                      .update = ops_update};
        nodes[i].d = raft_driver_new(nodes[i].r, &ops);
        CHECK(nodes[i].d != NULL);
        nodes[i].up = true;
        nodes[i].first_applied = 1;
        if (i < voters) {
            CHECK_EQ(raft_bootstrap(nodes[i].r, &conf, now), 0);
        } else {
            /* A new node: empty configuration, waits for the leader. */
            struct raft_conf empty;
            memset(&empty, 0, sizeof(empty));
            struct raft_hard_state hs = {0, 0, 0};
            struct raft_snapshot_meta sm;
            memset(&sm, 0, sizeof(sm));
            sm.conf = empty;
            CHECK_EQ(raft_restore(nodes[i].r, &hs, &sm, NULL, 0, now), 0);
        }
    }
}

void cluster_stop(void)
{
    deliver_all();
    for (unsigned i = 0; i < n_nodes; i++) {
        raft_driver_free(nodes[i].d);
        raft_free(nodes[i].r);
        free(nodes[i].image);
    }
    while (q_head != q_tail) {
        qmsg_free(&queue[q_head++ % QUEUE_MAX]);
    }
}

int leader_of(void)
{
    int found = -1;
    for (unsigned i = 0; i < n_nodes; i++) {
        if (nodes[i].up && raft_role(nodes[i].r) == RAFT_LEADER) {
            found = (int)i;
        }
    }
    return found;
}

int propose(unsigned i, uint64_t value)
{
    struct raft_proposal p = {.ctx = value, .type = RAFT_ENTRY_NORMAL};
    p.data.base = &value;
    p.data.len = sizeof(value);
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.propose.n = 1;
    ev.propose.props = &p;
    return step(i, ev);
}

bool has_value(const struct node* n, uint64_t v)
{
    for (unsigned i = 0; i < n->n_applied; i++) {
        if (n->applied[i].type == RAFT_ENTRY_NORMAL &&
            n->applied[i].value == v) {
            return true;
        }
    }
    return false;
}

/* State machine safety: all nodes applied the same entry at each index. */
void check_applied_agree(void)
{
    for (unsigned a = 0; a < n_nodes; a++) {
        for (unsigned b = a + 1; b < n_nodes; b++) {
            const struct node *x = &nodes[a], *y = &nodes[b];
            raft_index lo = x->first_applied > y->first_applied
                                ? x->first_applied
                                : y->first_applied;
            raft_index hx = x->first_applied + x->n_applied;
            raft_index hy = y->first_applied + y->n_applied;
            raft_index hi = hx < hy ? hx : hy;
            for (raft_index i = lo; i < hi; i++) {
                const struct applied* ea = &x->applied[i - x->first_applied];
                const struct applied* eb = &y->applied[i - y->first_applied];
                CHECK_EQ(ea->term, eb->term);
                CHECK_EQ(ea->type, eb->type);
                CHECK_EQ(ea->value, eb->value);
            }
        }
    }
}

void isolate(unsigned i, bool on)
{
    for (unsigned j = 1; j <= N_MAX; j++) {
        cut[i + 1][j] = on;
        cut[j][i + 1] = on;
    }
}

int conf_change(unsigned i, uint8_t op, raft_id id)
{
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE};
    ev.conf.op = op;
    memset(&ev.conf.server, 0, sizeof(ev.conf.server));
    ev.conf.server.id = id;
    snprintf(ev.conf.server.addr, RAFT_ADDR_MAX, "127.0.0.%u:7000",
             (unsigned)id);
    return step(i, ev);
}
