/* catchup.c - a node that lost its storage rejoins (raft_options
 * .catch_up_first; docs/raft.md, "A node that lost its storage").
 *
 * It forgot its term as well as its vote and its log. Before it answers
 * any leader it learns a term at least as high as the one it had: it asks
 * the other voters (a PREVOTE of term 0, which every server answers with a
 * refusal carrying its own term, or, at term 0, with a plain answer) and
 * waits for answers from N - q + 1 of them, where q is the quorum. The
 * leader of the term it had was elected by q servers, q - 1 of them
 * others, so that many answers include one of them, whose term is at least
 * as high (terms never decrease). Without this a deposed leader that has
 * not heard of the newer term (no CheckQuorum, or the wiped node itself
 * gives it its majority) could count the node's acknowledgements and
 * commit entries over ones its newer term had committed with the node's
 * forgotten acknowledgement.
 *
 * It has caught up when it holds the commit index of a leader's append
 * whose entry is of that leader's term (replication.c). Then it must not
 * vote as the member it was (thesis 3.8, 4.4: a server that lost its
 * storage rejoins as a new server): it checks which configuration made it
 * a voter. One at or below the commit index it caught up with
 * (rejoin_commit) may have existed before it lost its storage, so it may
 * have been that voter; it then never grants a vote, never campaigns and
 * ignores TimeoutNow (lost_vote), until a later configuration removes it
 * or makes it a learner and another makes it a voter again (the replace
 * procedure: remove, add, promote). A learner that was added, joined
 * empty and is promoted after it caught up is a voter from an index past
 * rejoin_commit and votes; one promoted before it had caught up is taken
 * for the voter it may have been (it has to be replaced: promote refuses
 * a learner that is far behind, so this needs a promote in the last
 * moments of its catch-up).
 */
#include "core_internal.h"

static unsigned others_needed(const struct raft* r)
{
    unsigned n = raft_conf_voters(&r->conf);
    unsigned others = raft__is_voter(r, r->opt.id) ? n - 1 : n;
    unsigned need = n - raft__quorum(r) + 1;
    return need < others ? need : others;
}

static bool answered(const struct raft* r, raft_id id)
{
    for (unsigned i = 0; i < r->n_term_answers; i++) {
        if (r->term_answers[i] == id) {
            return true;
        }
    }
    return false;
}

/* Whether the node may answer leaders yet. */
bool raft__catchup_term_known(const struct raft* r)
{
    return !r->catching_up || r->term_known;
}

void raft__catchup_tick(struct raft* r)
{
    if (raft__catchup_term_known(r) || r->now_ms < r->term_query_ms) {
        return;
    }
    r->term_query_ms = r->now_ms + r->opt.heartbeat_ms;
    for (unsigned i = 0; i < r->conf.n; i++) {
        const struct raft_server* s = &r->conf.servers[i];
        if (s->id == r->opt.id || s->role != RAFT_VOTER || answered(r, s->id)) {
            continue;
        }
        struct raft_message* m = raft__msg(r, RAFT_MSG_PREVOTE, s->id);
        if (m != NULL) {
            m->term = 0; /* below every term: always answered */
        }
    }
}

/* An answer to the query, before the term rules see it (they adopt a
 * higher term as for any message). */
void raft__catchup_recv(struct raft* r, const struct raft_message* m)
{
    if (raft__catchup_term_known(r) || m->type != RAFT_MSG_PREVOTE_RESP ||
        !raft__is_voter(r, m->from) || answered(r, m->from)) {
        return;
    }
    assert(r->n_term_answers < RAFT_SERVERS_MAX);
    r->term_answers[r->n_term_answers++] = m->from;
    if (m->term > r->term_seen) {
        r->term_seen = m->term;
    }
    if (r->n_term_answers < others_needed(r)) {
        return;
    }
    r->term_known = true;
    raft__trace(
        r, RAFT_TRACE_INFO,
        "%u voters answered, highest term %llu: answering leaders "
        "from term %llu",
        r->n_term_answers, (unsigned long long)r->term_seen,
        (unsigned long long)(r->term_seen > r->term ? r->term_seen : r->term));
}

/* ---- was it a voter before it lost its storage? ---- */

void raft__rejoin_conf(struct raft* r, bool was_voter, raft_index index)
{
    if (raft__is_voter(r, r->opt.id) && !was_voter) {
        r->voter_from = index;
    }
    raft__rejoin_eval(r);
}

void raft__rejoin_eval(struct raft* r)
{
    if (!r->opt.catch_up_first || r->catching_up) {
        return;
    }
    bool lost = r->rejoin_commit != 0 && raft__is_voter(r, r->opt.id) &&
                r->voter_from <= r->rejoin_commit;
    if (lost == r->lost_vote) {
        return;
    }
    r->lost_vote = lost;
    if (lost) {
        raft__trace(r, RAFT_TRACE_ERROR,
                    "this node was a voter (configuration at index %llu) "
                    "before it lost its storage: it will not vote; replace "
                    "it (member remove, wipe, member add, promote)",
                    (unsigned long long)r->voter_from);
    } else {
        raft__trace(r, RAFT_TRACE_INFO,
                    "a voter again from configuration %llu: voting",
                    (unsigned long long)r->voter_from);
    }
}
