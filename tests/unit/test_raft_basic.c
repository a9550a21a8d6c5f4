/* test_raft_basic.c - small direct tests of the raft core: a tiny in-process
 * cluster (synchronous disk, FIFO network with partitions; raft_env.c)
 * driven through raft_step: elections, commits, forwarding and reads,
 * failover, PreVote, transfer, membership, random faults, plus
 * single-message checks of the vote and append rules. Snapshots:
 * test_raft_snapshot.c. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raft_env.h"

static void test_single_node(void)
{
    cluster_start(1, 1, true);
    CHECK_EQ(propose(0, 7), RAFT_ENOTLEADER);
    run(10);
    CHECK_EQ(raft_role(nodes[0].r), RAFT_LEADER);
    CHECK_EQ(raft_current_term(nodes[0].r), 1);
    CHECK_EQ(propose(0, 7), 0);
    CHECK(has_value(&nodes[0], 7));
    CHECK_EQ(raft_commit_index(nodes[0].r), 2); /* noop + 7 */
    CHECK_EQ(raft_applied_index(nodes[0].r), 2);
    /* A single voter serves reads at once. */
    struct raft_event ev = {.type = RAFT_EV_READ_INDEX};
    ev.read.ctx = 99;
    CHECK_EQ(step(0, ev), 0);
    CHECK_EQ(nodes[0].n_reads, 1);
    CHECK_EQ(nodes[0].reads[0], 99);
    CHECK_EQ(nodes[0].read_index[0], 2);
    /* Oversized proposals are refused. */
    struct raft_proposal big = {.ctx = 1, .type = RAFT_ENTRY_NORMAL};
    big.data.base = "x";
    big.data.len = (size_t)RAFT_ENTRY_DATA_MAX + 1;
    ev = (struct raft_event){.type = RAFT_EV_PROPOSE};
    ev.propose.n = 1;
    ev.propose.props = &big;
    CHECK_EQ(step(0, ev), RAFT_ETOOBIG);
    cluster_stop();
}

static void test_three_elect_commit(void)
{
    cluster_start(3, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ(raft_leader(nodes[i].r), (raft_id)l + 1);
        CHECK_EQ(raft_current_term(nodes[i].r), 1);
    }
    for (uint64_t v = 100; v < 110; v++) {
        CHECK_EQ(propose((unsigned)l, v), 0);
    }
    run(500);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ(raft_commit_index(nodes[i].r), 11);
        CHECK_EQ(nodes[i].n_applied, 11);
        CHECK(has_value(&nodes[i], 109));
    }
    check_applied_agree();
    raft_index match;
    bool recent;
    unsigned f = (unsigned)(l + 1) % 3;
    CHECK_EQ(raft_peer_progress(nodes[l].r, f + 1, &match, &recent), 0);
    CHECK_EQ(match, 11);
    CHECK(recent);
    CHECK_EQ(raft_peer_progress(nodes[f].r, 1, &match, &recent), -ENOENT);
    /* What the leader committed, as each node knows it (status: a
     * follower's own lag). Cut off, a follower knows no more than the
     * last commit it was sent; back, it learns the new one. */
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ(raft_leader_commit_index(nodes[i].r), 11);
    }
    isolate(f, true);
    for (uint64_t v = 200; v < 205; v++) {
        CHECK_EQ(propose((unsigned)l, v), 0);
    }
    run(500);
    CHECK_EQ(raft_leader_commit_index(nodes[l].r), 16);
    CHECK_EQ(raft_leader_commit_index(nodes[f].r), 11);
    isolate(f, false);
    run(500);
    CHECK_EQ(raft_leader_commit_index(nodes[f].r), 16);
    CHECK_EQ(raft_commit_index(nodes[f].r), 16);
    cluster_stop();
}

static void test_forward_and_reads(void)
{
    cluster_start(3, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    unsigned f = (unsigned)(l + 1) % 3;
    CHECK_EQ(propose(f, 555), 0); /* forwarded */
    run(300);
    for (unsigned i = 0; i < 3; i++) {
        CHECK(has_value(&nodes[i], 555));
    }
    struct raft_event ev = {.type = RAFT_EV_READ_INDEX};
    ev.read.ctx = 11;
    CHECK_EQ(step((unsigned)l, ev), 0);
    CHECK_EQ(nodes[l].n_reads, 0); /* needs a heartbeat round */
    deliver_all();
    CHECK_EQ(nodes[l].n_reads, 1);
    CHECK_EQ(nodes[l].read_index[0], raft_commit_index(nodes[l].r));
    ev.read.ctx = 12;
    CHECK_EQ(step(f, ev), 0);
    deliver_all();
    CHECK_EQ(nodes[f].n_reads, 1);
    CHECK_EQ(nodes[f].reads[0], 12);
    CHECK_EQ(nodes[f].read_index[0], raft_commit_index(nodes[l].r));
    /* A PROPOSE that reaches a non-leader is refused with the ctxs, and
     * the origin reports them in failed_proposals. */
    unsigned g = (unsigned)(l + 2) % 3;
    uint64_t v = 4242;
    struct raft_proposal p = {.ctx = 77, .type = RAFT_ENTRY_NORMAL};
    p.data.base = &v;
    p.data.len = sizeof(v);
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_PROPOSE;
    m.from = g + 1;
    m.to = f + 1;
    m.term = raft_current_term(nodes[f].r);
    m.propose.n = 1;
    m.propose.props = &p;
    struct raft_event rev = {.type = RAFT_EV_RECEIVE};
    rev.msg = &m;
    step(f, rev);
    deliver_all();
    CHECK_EQ(nodes[g].n_failed_props, 1);
    CHECK_EQ(nodes[g].failed_props[0], 77);
    CHECK(!has_value(&nodes[f], 4242));
    cluster_stop();
}

static void test_leader_failover(void)
{
    cluster_start(3, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    CHECK_EQ(propose((unsigned)l, 1), 0);
    run(300);
    raft_term t0 = raft_current_term(nodes[l].r);
    /* A read queued on the leader fails when it loses leadership. */
    struct raft_event ev = {.type = RAFT_EV_READ_INDEX};
    ev.read.ctx = 5;
    isolate((unsigned)l, true);
    CHECK_EQ(step((unsigned)l, ev), 0);
    run(5000);
    /* CheckQuorum: the isolated leader stepped down. */
    CHECK(raft_role(nodes[l].r) != RAFT_LEADER);
    CHECK_EQ(nodes[l].n_failed_reads, 1);
    CHECK_EQ(nodes[l].failed_reads[0], RAFT_ELEADERLOST);
    int l2 = leader_of();
    CHECK(l2 >= 0 && l2 != l);
    CHECK(raft_current_term(nodes[l2].r) > t0);
    CHECK_EQ(propose((unsigned)l2, 2), 0);
    run(300);
    /* PreVote: the isolated node did not inflate its term. */
    CHECK_EQ(raft_current_term(nodes[l].r), t0);
    isolate((unsigned)l, false);
    run(2000);
    CHECK_EQ(leader_of(), l2); /* the rejoining node did not disrupt */
    for (unsigned i = 0; i < 3; i++) {
        CHECK(has_value(&nodes[i], 1));
        CHECK(has_value(&nodes[i], 2));
    }
    check_applied_agree();
    cluster_stop();
}

static void test_no_prevote_term_inflation(void)
{
    cluster_start(3, 3, false);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    unsigned f = (unsigned)(l + 1) % 3;
    isolate(f, true);
    run(5000);
    CHECK(raft_current_term(nodes[f].r) > raft_current_term(nodes[l].r));
    CHECK_EQ(leader_of(), l);
    isolate(f, false);
    run(5000);
    /* The higher term forced an election; the cluster recovers. */
    int l2 = leader_of();
    CHECK(l2 >= 0);
    CHECK_EQ(propose((unsigned)l2, 3), 0);
    run(300);
    for (unsigned i = 0; i < 3; i++) {
        CHECK(has_value(&nodes[i], 3));
    }
    check_applied_agree();
    cluster_stop();
}

/* raft_peer_last_heard: the leader's time since it last heard from a peer
 * (heartbeat answers keep it short; a cut peer's grows), -ENOENT elsewhere.
 */
static void test_peer_last_heard(void)
{
    uint64_t ago = 12345;
    raft_index match;
    bool recent;

    cluster_start(3, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    unsigned f = (unsigned)(l + 1) % 3;
    CHECK_EQ(raft_peer_last_heard(nodes[l].r, (raft_id)l + 1, &ago), 0);
    CHECK_EQ(ago, 0);
    CHECK_EQ(raft_peer_last_heard(nodes[l].r, f + 1, &ago), 0);
    CHECK(ago < 1000); /* within an election timeout */
    CHECK_EQ(raft_peer_last_heard(nodes[f].r, (raft_id)l + 1, &ago), -ENOENT);
    CHECK_EQ(raft_peer_last_heard(nodes[l].r, 99, &ago), -ENOENT);
    isolate(f, true);
    run(2500);
    CHECK_EQ(leader_of(), l); /* the other follower keeps its quorum */
    CHECK_EQ(raft_peer_last_heard(nodes[l].r, f + 1, &ago), 0);
    CHECK(ago >= 2000);
    CHECK_EQ(raft_peer_progress(nodes[l].r, f + 1, &match, &recent), 0);
    CHECK(!recent);
    isolate(f, false);
    run(1000);
    CHECK_EQ(raft_peer_last_heard(nodes[l].r, f + 1, &ago), 0);
    CHECK(ago < 1000);
    cluster_stop();
}

static void test_transfer(void)
{
    cluster_start(3, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    unsigned target = (unsigned)(l + 2) % 3;
    struct raft_event ev = {.type = RAFT_EV_TRANSFER};
    ev.transfer.to = target + 1;
    CHECK_EQ(step((unsigned)l, ev), 0);
    CHECK_EQ(propose((unsigned)l, 9), RAFT_ETRANSFER);
    deliver_all();
    CHECK_EQ(leader_of(), (int)target);
    /* Asked on a follower (the old leader): it asks the leader
     * (RAFT_MSG_TRANSFER), which hands leadership back to it. */
    run(300);
    CHECK_EQ(leader_of(), (int)target);
    CHECK_EQ(raft_role(nodes[l].r), RAFT_FOLLOWER);
    ev.transfer.to = (raft_id)l + 1;
    CHECK_EQ(step((unsigned)l, ev), 0);
    deliver_all();
    run(300);
    CHECK_EQ(leader_of(), l);
    /* On the leader, 0 picks the most up-to-date voter. */
    CHECK_EQ(step((unsigned)l, (struct raft_event){.type = RAFT_EV_TRANSFER}),
             0);
    cluster_stop();
}

static void test_membership(void)
{
    cluster_start(4, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    CHECK_EQ(conf_change(3, RAFT_CONF_ADD_LEARNER, 4), RAFT_ENOTLEADER);
    CHECK_EQ(conf_change((unsigned)l, RAFT_CONF_PROMOTE, 4), RAFT_EBADCONF);
    CHECK_EQ(conf_change((unsigned)l, RAFT_CONF_ADD_LEARNER, 4), 0);
    CHECK_EQ(conf_change((unsigned)l, RAFT_CONF_REMOVE, 4), RAFT_ECONFBUSY);
    CHECK_EQ(raft_conf_current(nodes[l].r)->n, 4);
    run(500);
    CHECK_EQ(raft_conf_current(nodes[3].r)->n, 4);
    CHECK_EQ(raft_conf_get(raft_conf_current(nodes[3].r), 4)->role,
             RAFT_LEARNER);
    CHECK_EQ(propose((unsigned)l, 44), 0);
    run(300);
    CHECK(has_value(&nodes[3], 44));
    CHECK_EQ(conf_change((unsigned)l, RAFT_CONF_PROMOTE, 4), 0);
    run(300);
    CHECK_EQ(raft_conf_voters(raft_conf_current(nodes[3].r)), 4);
    /* Remove the leader: it steps down once the change commits. */
    CHECK_EQ(conf_change((unsigned)l, RAFT_CONF_REMOVE, (raft_id)l + 1), 0);
    run(4000);
    int l2 = leader_of();
    CHECK(l2 >= 0 && l2 != l);
    CHECK_EQ(raft_conf_voters(raft_conf_current(nodes[l2].r)), 3);
    CHECK(raft_conf_get(raft_conf_current(nodes[l2].r), (raft_id)l + 1) ==
          NULL);
    CHECK_EQ(propose((unsigned)l2, 45), 0);
    run(300);
    for (unsigned i = 0; i < 4; i++) {
        if ((int)i != l) {
            CHECK(has_value(&nodes[i], 45));
        }
    }
    CHECK(raft_role(nodes[l].r) == RAFT_FOLLOWER);
    check_applied_agree();
    cluster_stop();
}

/* SET_ADDR: a member with no peer address gets one through a committed
 * configuration entry (the single node that starts its peer listener);
 * asked on a follower, the leader appends it. Name, role and membership
 * stay; an unknown member or an empty address is refused. */
static void test_set_addr(void)
{
    cluster_start(1, 1, true);
    run(3000);
    CHECK_EQ(leader_of(), 0);
    CHECK_EQ(raft_conf_get(raft_conf_current(nodes[0].r), 1)->addr[0], '\0');
    CHECK_EQ(conf_change(0, RAFT_CONF_SET_ADDR, 7), RAFT_EBADCONF);
    CHECK_EQ(conf_change(0, RAFT_CONF_SET_ADDR, 1), 0);
    run(300);
    const struct raft_conf* c = raft_conf_current(nodes[0].r);
    CHECK_EQ(c->n, 1);
    CHECK(strcmp(raft_conf_get(c, 1)->addr, "127.0.0.1:7000") == 0);
    CHECK(strcmp(raft_conf_get(c, 1)->name, "n1") == 0);
    CHECK_EQ(raft_conf_get(c, 1)->role, RAFT_VOTER);
    CHECK(raft_conf_index(nodes[0].r) > 0);
    CHECK(raft_commit_index(nodes[0].r) >= raft_conf_index(nodes[0].r));
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE};
    ev.conf.op = RAFT_CONF_SET_ADDR;
    ev.conf.server.id = 1;
    CHECK_EQ(step(0, ev), RAFT_EBADCONF); /* no address */
    cluster_stop();

    cluster_start(3, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    unsigned f = (unsigned)(l + 1) % 3;
    CHECK_EQ(conf_change(f, RAFT_CONF_SET_ADDR, f + 1), 0);
    run(500);
    for (unsigned i = 0; i < 3; i++) {
        c = raft_conf_current(nodes[i].r);
        CHECK_EQ(c->n, 3);
        CHECK_EQ(raft_conf_voters(c), 3);
        char want[RAFT_ADDR_MAX];
        snprintf(want, sizeof(want), "127.0.0.%u:7000", f + 1);
        CHECK(strcmp(raft_conf_get(c, f + 1)->addr, want) == 0);
        CHECK_EQ(raft_conf_get(c, (raft_id)l + 1)->addr[0], '\0');
    }
    CHECK_EQ(propose((unsigned)l, 46), 0);
    run(300);
    CHECK(has_value(&nodes[f], 46));
    check_applied_agree();
    cluster_stop();
}

/* Direct single-node checks of the vote rule (thesis 3.6.1 / 5.4.1). */
static void test_vote_rule(void)
{
    cluster_start(3, 3, false);
    struct raft_update u;
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE;
    m.from = 2;
    m.to = 1;
    m.term = 5;
    m.vote.last_index = 0;
    m.vote.last_term = 0;
    struct raft_event ev = {.type = RAFT_EV_RECEIVE, .now_ms = now};
    ev.msg = &m;
    CHECK_EQ(raft_step(nodes[0].r, &ev, &u), 0);
    CHECK(u.hard_state_changed);
    CHECK_EQ(u.hard_state.term, 5);
    CHECK_EQ(u.hard_state.vote, 2);
    CHECK_EQ(u.n_msgs, 1);
    CHECK_EQ(u.msgs[0].type, RAFT_MSG_VOTE_RESP);
    CHECK(u.msgs[0].vote_resp.granted);
    /* Same term, another candidate: refused (one vote per term). */
    m.from = 3;
    CHECK_EQ(raft_step(nodes[0].r, &ev, &u), 0);
    CHECK(!u.hard_state_changed);
    CHECK_EQ(u.n_msgs, 1);
    CHECK(!u.msgs[0].vote_resp.granted);
    /* Give node 1 an entry at term 5 through an append from leader 2. */
    struct raft_entry e = {.term = 5, .index = 1, .type = RAFT_ENTRY_NOOP};
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = 2;
    m.to = 1;
    m.term = 5;
    m.append.n_entries = 1;
    m.append.entries = &e;
    CHECK_EQ(raft_step(nodes[0].r, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.persist_index, 1);
    CHECK_EQ(u.n_msgs, 1);
    CHECK(!u.msgs[0].append_resp.reject);
    CHECK_EQ(u.msgs[0].append_resp.index, 1);
    /* A candidate at a higher term with a staler log is refused (but the
     * term is adopted). check_quorum would ignore it: advance time. */
    now += 5000;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE;
    m.from = 3;
    m.to = 1;
    m.term = 6;
    m.vote.last_index = 5;
    m.vote.last_term = 4;
    ev.now_ms = now;
    CHECK_EQ(raft_step(nodes[0].r, &ev, &u), 0);
    CHECK_EQ(raft_current_term(nodes[0].r), 6);
    CHECK_EQ(u.n_msgs, 1);
    CHECK(!u.msgs[0].vote_resp.granted);
    /* Conflicting append: prev mismatch gives hints. */
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = 3;
    m.to = 1;
    m.term = 6;
    m.append.prev_index = 1;
    m.append.prev_term = 4;
    CHECK_EQ(raft_step(nodes[0].r, &ev, &u), 0);
    CHECK_EQ(u.n_msgs, 1);
    CHECK(u.msgs[0].append_resp.reject);
    CHECK_EQ(u.msgs[0].append_resp.conflict_term, 5);
    CHECK_EQ(u.msgs[0].append_resp.conflict_index, 1);
    m.append.prev_index = 7;
    CHECK_EQ(raft_step(nodes[0].r, &ev, &u), 0);
    CHECK(u.msgs[0].append_resp.reject);
    CHECK_EQ(u.msgs[0].append_resp.conflict_term, 0);
    CHECK_EQ(u.msgs[0].append_resp.conflict_index, 2);
    /* Truncation of the conflicting suffix. */
    struct raft_entry e6 = {.term = 6, .index = 1, .type = RAFT_ENTRY_NOOP};
    m.append.prev_index = 0;
    m.append.prev_term = 0;
    m.append.n_entries = 1;
    m.append.entries = &e6;
    m.append.commit = 1;
    CHECK_EQ(raft_step(nodes[0].r, &ev, &u), 0);
    CHECK_EQ(u.truncate_from, 1);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].term, 6);
    CHECK_EQ(u.n_committed, 0); /* not persisted yet */
    struct raft_event pe = {.type = RAFT_EV_PERSISTED, .now_ms = now};
    pe.persisted.index = 1;
    pe.persisted.term = 5; /* stale report: ignored */
    CHECK_EQ(raft_step(nodes[0].r, &pe, &u), 0);
    CHECK_EQ(u.n_committed, 0);
    pe.persisted.term = 6;
    CHECK_EQ(raft_step(nodes[0].r, &pe, &u), 0);
    CHECK_EQ(u.n_committed, 1);
    CHECK_EQ(u.committed[0].term, 6);
    cluster_stop();
}

/* Random loss and partitions over several seeds: election safety (checked
 * on every step) and state machine safety, and progress once healed. */
static void test_random_faults(void)
{
    for (uint64_t seed = 1; seed <= 12; seed++) {
        cluster_start(5, 5, seed % 2 == 0);
        test_rng = seed * 0x9e3779b97f4a7c15ull;
        drop_pct = 10;
        uint64_t value = 1000 * seed;
        for (unsigned round = 0; round < 30; round++) {
            if (rnd() % 4 == 0) {
                isolate((unsigned)(rnd() % 5), rnd() % 2 == 0);
            }
            int l = leader_of();
            if (l >= 0) {
                int rv = propose((unsigned)l, ++value);
                CHECK(rv == 0 || rv == RAFT_ETRANSFER);
            }
            if (rnd() % 10 == 0 && l >= 0) {
                struct raft_event ev = {.type = RAFT_EV_TRANSFER};
                step((unsigned)l, ev);
            }
            run(200 + rnd() % 800);
            check_applied_agree();
        }
        memset(cut, 0, sizeof(cut));
        drop_pct = 0;
        run(5000);
        int l = leader_of();
        CHECK(l >= 0);
        CHECK_EQ(propose((unsigned)l, 1), 0);
        run(1000);
        for (unsigned i = 0; i < 5; i++) {
            CHECK(has_value(&nodes[i], 1));
            CHECK_EQ(raft_commit_index(nodes[i].r),
                     raft_commit_index(nodes[l].r));
        }
        check_applied_agree();
        fprintf(stderr, "seed %llu: term %llu, commit %llu, applied %u\n",
                (unsigned long long)seed,
                (unsigned long long)raft_current_term(nodes[l].r),
                (unsigned long long)raft_commit_index(nodes[l].r),
                nodes[l].n_applied);
        cluster_stop();
    }
}

int main(void)
{
    RUN(test_single_node);
    RUN(test_vote_rule);
    RUN(test_three_elect_commit);
    RUN(test_forward_and_reads);
    RUN(test_leader_failover);
    RUN(test_no_prevote_term_inflation);
    RUN(test_peer_last_heard);
    RUN(test_transfer);
    RUN(test_membership);
    RUN(test_set_addr);
    RUN(test_random_faults);
    free(queue);
    return 0;
}
