/* election.c - terms, votes, PreVote, leader election (thesis 3.4, 9.6).
 *
 * Term rules follow etcd's Step: a higher term makes us a follower except
 * for PREVOTE requests and granted PREVOTE responses; (pre)vote requests
 * are ignored while a leader lease holds under CheckQuorum unless they come
 * from a leadership transfer; lower-term appends and snapshots are answered
 * with our term so a stale leader steps down.
 */
#include "core_internal.h"

static bool heard_from_leader(const struct raft* r)
{
    if (r->role == RAFT_LEADER) {
        return true;
    }
    return r->leader != 0 && r->leader_contact &&
           r->now_ms < r->leader_contact_ms + r->opt.election_ms;
}

static void reply_stale(struct raft* r, const struct raft_message* m)
{
    struct raft_message* out;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        out = raft__msg(r, RAFT_MSG_APPEND_RESP, m->from);
        if (out != NULL) {
            out->append_resp.reject = true;
            out->append_resp.index = m->append.prev_index;
            out->append_resp.last_index = raft__last_index(r);
        }
        break;
    case RAFT_MSG_SNAPSHOT:
        out = raft__msg(r, RAFT_MSG_SNAPSHOT_RESP, m->from);
        if (out != NULL) {
            out->snapshot_resp.index = m->snapshot.meta.index;
            out->snapshot_resp.reject = true;
        }
        break;
    case RAFT_MSG_PREVOTE:
        out = raft__msg(r, RAFT_MSG_PREVOTE_RESP, m->from);
        if (out != NULL) {
            out->vote_resp.granted = false;
        }
        break;
    default:
        break;
    }
}

int raft__check_term(struct raft* r, const struct raft_message* m)
{
    if (m->term < r->term) {
        reply_stale(r, m);
        return -1;
    }
    if (m->term == r->term) {
        return 0;
    }
    bool vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;
    if (vote_req && !m->vote.transfer && r->opt.check_quorum &&
        heard_from_leader(r)) {
        raft__trace(r, RAFT_TRACE_DEBUG,
                    "ignoring %s from %s at term %llu: leader lease",
                    raft_msg_type_name(m->type), RAFT__NAME(r, m->from),
                    (unsigned long long)m->term);
        return -1;
    }
    if (m->type == RAFT_MSG_PREVOTE ||
        (m->type == RAFT_MSG_PREVOTE_RESP && m->vote_resp.granted)) {
        return 0; /* a term in the future that nobody campaigned in yet */
    }
    bool from_leader =
        m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT;
    raft__trace(r, RAFT_TRACE_INFO, "term %llu -> %llu (%s from %s)",
                (unsigned long long)r->term, (unsigned long long)m->term,
                raft_msg_type_name(m->type), RAFT__NAME(r, m->from));
    raft__become_follower(r, m->term, from_leader ? m->from : 0);
    return 0;
}

void raft__set_leader(struct raft* r, raft_id leader)
{
    if (leader == r->leader) {
        return;
    }
    raft__fwd_reads_fail(r, leader, RAFT_ELEADERLOST);
    r->leader = leader;
    r->leader_commit = 0;
    r->leader_contact = false;
    if (leader != 0 && leader != r->opt.id) {
        raft__trace(r, RAFT_TRACE_DEBUG, "leader is %s at term %llu",
                    RAFT__NAME(r, leader), (unsigned long long)r->term);
    }
}

void raft__become_follower(struct raft* r, raft_term term, raft_id leader)
{
    assert(term >= r->term);
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
        r->hs_dirty = true;
    }
    if (r->role == RAFT_LEADER) {
        raft__trace(r, RAFT_TRACE_INFO, "leader steps down at term %llu",
                    (unsigned long long)r->term);
        raft__reads_fail_all(r, RAFT_ELEADERLOST);
        r->transfer_to = 0;
        r->n_progress = 0;
    }
    r->role = RAFT_FOLLOWER;
    raft__set_leader(r, leader);
    raft__reset_election_timer(r);
}

static void become_leader(struct raft* r)
{
    assert(r->role == RAFT_CANDIDATE);
    r->role = RAFT_LEADER;
    raft__set_leader(r, r->opt.id);
    r->transfer_to = 0;
    r->n_progress = 0;
    raft__progress_sync(r);
    r->heartbeat_deadline_ms = r->now_ms + r->opt.heartbeat_ms;
    r->quorum_deadline_ms = r->now_ms + r->opt.election_ms;
    raft__trace(r, RAFT_TRACE_DEBUG, "became leader at term %llu",
                (unsigned long long)r->term);
    /* Thesis 6.4: commit an entry of the new term as soon as possible. */
    int rv = raft__log_append(r, r->term, RAFT_ENTRY_NOOP, NULL, 0);
    if (rv != 0) {
        raft__trace(r, RAFT_TRACE_ERROR, "cannot append noop: %s",
                    raft_strerror(rv));
    }
    raft__bcast_append(r);
    raft__maybe_commit(r);
}

static bool tally_has(const raft_id* ids, unsigned n, raft_id id)
{
    for (unsigned i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

/* Records a vote; returns +1 when won, -1 when lost, 0 when undecided. */
static int tally(struct raft* r, raft_id from, bool granted)
{
    if (raft__is_voter(r, from) &&
        !tally_has(r->votes_granted, r->n_granted, from) &&
        !tally_has(r->votes_rejected, r->n_rejected, from)) {
        assert(r->n_granted + r->n_rejected < RAFT_SERVERS_MAX);
        if (granted) {
            r->votes_granted[r->n_granted++] = from;
        } else {
            r->votes_rejected[r->n_rejected++] = from;
        }
    }
    unsigned q = raft__quorum(r);
    if (r->n_granted >= q) {
        return 1;
    }
    if (r->n_rejected >= q) {
        return -1;
    }
    return 0;
}

static void send_vote_requests(struct raft* r, bool pre, bool transfer)
{
    raft_index last = raft__last_index(r);
    raft_term last_term;
    raft__term_at(r, last, &last_term);
    for (unsigned i = 0; i < r->conf.n; i++) {
        const struct raft_server* s = &r->conf.servers[i];
        if (s->id == r->opt.id || s->role != RAFT_VOTER) {
            continue;
        }
        struct raft_message* m =
            raft__msg(r, pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE, s->id);
        if (m == NULL) {
            continue;
        }
        m->term = pre ? r->term + 1 : r->term;
        m->vote.last_index = last;
        m->vote.last_term = last_term;
        m->vote.transfer = transfer;
    }
}

/* Starts one round; returns tally(): +1 when won at once (single voter). */
static int start_round(struct raft* r, bool pre, bool transfer)
{
    if (pre) {
        r->role = RAFT_PRECANDIDATE;
    } else {
        r->role = RAFT_CANDIDATE;
        r->term++;
        r->vote = r->opt.id;
        r->hs_dirty = true;
    }
    raft__set_leader(r, 0);
    raft__reset_election_timer(r);
    r->n_granted = 0;
    r->n_rejected = 0;
    raft__trace(r, RAFT_TRACE_INFO, "%s for term %llu%s",
                pre ? "pre-campaign" : "campaign",
                (unsigned long long)(pre ? r->term + 1 : r->term),
                transfer ? " (transfer)" : "");
    int res = tally(r, r->opt.id, true);
    if (res <= 0) {
        send_vote_requests(r, pre, transfer);
    }
    return res;
}

void raft__campaign(struct raft* r, bool pre, bool transfer)
{
    assert(r->role != RAFT_LEADER);
    if (!raft__is_voter(r, r->opt.id)) {
        raft__reset_election_timer(r);
        return;
    }
    if (pre && start_round(r, true, transfer) <= 0) {
        return;
    }
    if (start_round(r, false, transfer) > 0) {
        become_leader(r);
    }
}

void raft__recv_vote(struct raft* r, const struct raft_message* m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    raft_index last = raft__last_index(r);
    raft_term last_term;
    raft__term_at(r, last, &last_term);
    bool up_to_date =
        m->vote.last_term > last_term ||
        (m->vote.last_term == last_term && m->vote.last_index >= last);
    bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
                    (pre && m->term > r->term);
    /* Thesis 9.6: no pre-vote while a leader is heard from. */
    bool lease = pre && !m->vote.transfer && heard_from_leader(r);
    /* A node that lost its storage may have voted in this term already,
     * and its empty log makes every candidate look up to date: it must not
     * help elect a leader that lacks entries it acknowledged. */
    bool grant =
        can_vote && up_to_date && !lease && !r->catching_up && !r->lost_vote;
    struct raft_message* out =
        raft__msg(r, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
    if (grant && !pre) {
        r->vote = m->from;
        r->hs_dirty = true;
        raft__reset_election_timer(r);
    }
    raft__trace(r, RAFT_TRACE_DEBUG, "%s %s to %s for term %llu",
                grant ? "grant" : "reject", raft_msg_type_name(m->type),
                RAFT__NAME(r, m->from), (unsigned long long)m->term);
    if (out != NULL) {
        out->term = grant && pre ? m->term : r->term;
        out->vote_resp.granted = grant;
    }
}

void raft__recv_vote_resp(struct raft* r, const struct raft_message* m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
    if (r->role != (pre ? RAFT_PRECANDIDATE : RAFT_CANDIDATE)) {
        return;
    }
    bool granted = m->vote_resp.granted;
    if (pre && m->term != (granted ? r->term + 1 : r->term)) {
        return; /* from an earlier round */
    }
    int res = tally(r, m->from, granted);
    if (res > 0) {
        if (pre) {
            raft__campaign(r, false, false);
        } else {
            become_leader(r);
        }
    } else if (res < 0) {
        raft__trace(r, RAFT_TRACE_INFO, "lost %s at term %llu",
                    pre ? "pre-vote" : "election", (unsigned long long)r->term);
        raft__become_follower(r, r->term, 0);
    }
}

void raft__recv_timeout_now(struct raft* r, const struct raft_message* m)
{
    if (r->role == RAFT_LEADER || !raft__is_voter(r, r->opt.id) ||
        r->rx_installing || r->catching_up || r->lost_vote) {
        return;
    }
    raft__trace(r, RAFT_TRACE_INFO, "timeout-now from %s: campaigning",
                RAFT__NAME(r, m->from));
    raft__campaign(r, false, true);
}

void raft__tick_election(struct raft* r)
{
    assert(r->role != RAFT_LEADER);
    if (r->now_ms < r->election_deadline_ms) {
        return;
    }
    /* Non-voters never campaign; neither does a node whose log is being
     * replaced by a snapshot (it would append to a log about to vanish),
     * nor one that lost its storage and has not caught up yet, or was a
     * voter before it lost it (catchup.c). */
    if (!raft__is_voter(r, r->opt.id) || r->rx_installing || r->catching_up ||
        r->lost_vote) {
        raft__reset_election_timer(r);
        return;
    }
    raft__campaign(r, r->opt.pre_vote, false);
}
