/* node_propose.c - proposals and reads made on this node (node.h
 * node_propose, node_read_barrier): their waiters, batching into one step
 * per loop iteration, re-proposal after a leader change, fences of
 * proposals past their timeout, and the sweep of deadlines. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "node_internal.h"
#include "node_state_internal.h"

/* ---- waiters ---- */

static unsigned wbucket(uint64_t seq)
{
    return (unsigned)(seq % NODE_WAITER_BUCKETS);
}

struct waiter* node__waiter_find(struct node* n, uint64_t seq)
{
    for (struct waiter* w = n->wtable[wbucket(seq)]; w != NULL; w = w->hnext) {
        if (w->seq == seq) {
            return w;
        }
    }
    return NULL;
}

static void waiter_link(struct node* n, struct waiter* w)
{
    unsigned b = wbucket(w->seq);
    w->hnext = n->wtable[b];
    n->wtable[b] = w;
    /* By deadline. New proposals go last (constant timeout); a fenced one
     * (longer wait) walks back over the few proposed after it. */
    struct waiter* after = n->wtail;
    while (after != NULL && after->deadline_ms > w->deadline_ms) {
        after = after->prev;
    }
    w->prev = after;
    w->next = after != NULL ? after->next : n->whead;
    if (w->next != NULL) {
        w->next->prev = w;
    } else {
        n->wtail = w;
    }
    if (after != NULL) {
        after->next = w;
    } else {
        n->whead = w;
    }
    n->n_waiters++;
}

static void waiter_unlink(struct node* n, struct waiter* w)
{
    struct waiter** pp = &n->wtable[wbucket(w->seq)];
    while (*pp != w) {
        pp = &(*pp)->hnext;
    }
    *pp = w->hnext;
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        n->whead = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    } else {
        n->wtail = w->prev;
    }
    n->n_waiters--;
}

/* Queue a completion; callbacks run from node__drain_completions(). */
void node__complete_waiter(struct node* n,
                           struct waiter* w,
                           const struct store_result* res)
{
    waiter_unlink(n, w);
    if (w->start_ns != 0) {
        node_hist_observe(&n->counters.proposal_hist,
                          uv_hrtime() - w->start_ns);
    }
    w->res = *res;
    w->next = NULL;
    if (n->done_tail != NULL) {
        n->done_tail->next = w;
    } else {
        n->done_head = w;
    }
    n->done_tail = w;
}

void node__fail_waiter(struct node* n, struct waiter* w, int err)
{
    struct store_result res = {.err = err};
    node__complete_waiter(n, w, &res);
}

void node__complete_read(struct node* n, struct read_waiter* r, int err)
{
    /* unlink from the read list */
    struct read_waiter** pp = &n->reads;
    while (*pp != r) {
        pp = &(*pp)->next;
    }
    *pp = r->next;
    r->err = err;
    r->next = n->reads_done;
    n->reads_done = r;
}

void node__drain_completions(struct node* n)
{
    while (n->done_head != NULL || n->reads_done != NULL) {
        struct waiter* w = n->done_head;
        n->done_head = n->done_tail = NULL;
        struct read_waiter* r = n->reads_done;
        n->reads_done = NULL;
        while (w != NULL) {
            struct waiter* next = w->next;
            w->cb(w->data, &w->res);
            n->pending_bytes -= w->cmd_len + w->fence_len;
            n->n_fenced -= w->fenced ? 1 : 0;
            free(w->cmd);
            free(w->fence);
            free(w);
            w = next;
        }
        while (r != NULL) {
            struct read_waiter* next = r->next;
            r->cb(r->data, r->err);
            free(r);
            r = next;
        }
    }
}

/* ---- proposals ---- */

/* What to propose for w: its command, or its cancel once fenced. */
static struct raft_buf waiter_data(const struct waiter* w)
{
    return w->fenced ? (struct raft_buf){w->fence, w->fence_len}
                     : (struct raft_buf){w->cmd, w->cmd_len};
}

static int propose_waiter(struct node* n, struct waiter* w)
{
    struct raft_proposal p = {
        .ctx = w->seq,
        .type = RAFT_ENTRY_NORMAL,
        .data = waiter_data(w),
    };
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.propose.n = 1;
    ev.propose.props = &p;
    int rv = node__step(n, &ev);
    w->parked = node__retryable(rv);
    n->parked_any |= w->parked;
    return node__retryable(rv) ? 0 : rv;
}

void node__flush_proposals(struct node* n)
{
    struct raft_proposal props[NODE_PROPOSE_BATCH_MAX];
    uint64_t seqs[NODE_PROPOSE_BATCH_MAX];
    unsigned count = 0;

    for (unsigned i = 0; i < n->n_batch; i++) {
        struct waiter* w = node__waiter_find(n, n->batch[i]);
        if (w == NULL) {
            continue; /* timed out or failed meanwhile */
        }
        props[count] = (struct raft_proposal){
            .ctx = w->seq,
            .type = RAFT_ENTRY_NORMAL,
            .data = waiter_data(w),
        };
        seqs[count++] = w->seq;
    }
    n->n_batch = 0;
    if (count == 0 || n->stopping) {
        return;
    }
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.propose.n = count;
    ev.propose.props = props;
    n->depth++;
    int rv = node__step(n, &ev);
    for (unsigned i = 0; rv != 0 && i < count; i++) {
        struct waiter* w = node__waiter_find(n, seqs[i]);
        if (w == NULL) {
            continue;
        }
        if (node__retryable(rv)) {
            w->parked = true;
            n->parked_any = true;
        } else {
            node__fail_waiter(n, w, node__errno_of_raft(rv));
        }
    }
    n->depth--;
    if (n->depth == 0) {
        node__drain_completions(n);
    }
}

void node__prepare_cb(uv_prepare_t* p)
{
    struct node* n = p->data;
    if (n->n_batch > 0) {
        node__flush_proposals(n);
    }
    if (n->depth == 0) {
        node__drain_completions(n);
    }
}

int node_propose(struct node* n,
                 struct store_cmd* c,
                 node_done_cb cb,
                 void* data)
{
    struct waiter* w;
    long len;

    if (n->stopping) {
        return -ESHUTDOWN;
    }
    if (n->sticky_err != 0) {
        return -EROFS;
    }
    if (c->op == STORE_OP_WRITE && c->data_len > n->opts.store.file_size_max) {
        return -EFBIG;
    }
    c->origin = n->id;
    c->seq = ++n->next_seq;
    c->now_ns = node__wall_ns();
    size_t size = store_cmd_encoded_size(c);
    if (size > RAFT_ENTRY_DATA_MAX) {
        return -EFBIG;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    w->cmd = malloc(size);
    if (w->cmd == NULL) {
        free(w);
        return -ENOMEM;
    }
    len = store_cmd_encode(c, w->cmd, size);
    if (len < 0) {
        free(w->cmd);
        free(w);
        return (int)len;
    }
    w->cmd_len = (size_t)len;
    n->pending_bytes += w->cmd_len;
    w->seq = c->seq;
    w->cb = cb;
    w->data = data;
    w->deadline_ms = node__now_ms(n) + n->opts.proposal_timeout_ms;
    w->start_ns = uv_hrtime();
    waiter_link(n, w);
    n->proposals++;
    /* Batch: every proposal made during this loop iteration goes to the
     * core in one step (flushed by the prepare handle, right before the
     * loop blocks), so they share one log append and one message per
     * follower. */
    n->batch[n->n_batch++] = w->seq;
    if (n->n_batch == NODE_PROPOSE_BATCH_MAX) {
        node__flush_proposals(n);
    }
    return 0;
}

static struct read_waiter* read_find(struct node* n, uint64_t ctx)
{
    for (struct read_waiter* r = n->reads; r != NULL; r = r->next) {
        if (r->ctx == ctx) {
            return r;
        }
    }
    return NULL;
}

/* Ask the core for a read index for the waiting read `ctx`. The step may
 * complete the read at once (a single voter), so the waiter is looked up
 * again afterwards, never used across the step. */
static void read_index_step(struct node* n, uint64_t ctx)
{
    struct raft_event ev = {.type = RAFT_EV_READ_INDEX};
    ev.read.ctx = ctx;
    int rv = node__step(n, &ev);
    struct read_waiter* r = read_find(n, ctx);
    if (r == NULL) {
        return;
    }
    r->parked = node__retryable(rv);
    if (rv != 0 && !r->parked) {
        node__complete_read(n, r, node__errno_of_raft(rv));
    }
}

static int read_barrier(struct node* n,
                        uint64_t timeout_ms,
                        bool retry,
                        node_read_cb cb,
                        void* data)
{
    if (n->stopping) {
        return -ESHUTDOWN;
    }
    struct read_waiter* r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    r->ctx = ++n->next_read_ctx;
    r->cb = cb;
    r->data = data;
    r->deadline_ms = node__now_ms(n) + timeout_ms;
    r->retry_ms = retry ? node__now_ms(n) + n->opts.election_ms : 0;
    r->log_ms = node__now_ms(n) + NODE_STARTUP_LOG_MS;
    r->next = n->reads;
    n->reads = r;
    /* cb never runs inside this call: completions made by the step wait
     * for the prepare handle (right before the loop blocks). */
    n->depth++;
    read_index_step(n, r->ctx);
    n->depth--;
    return 0;
}

int node_read_barrier(struct node* n, node_read_cb cb, void* data)
{
    return read_barrier(n, n->opts.proposal_timeout_ms, false, cb, data);
}

int node_startup_barrier(struct node* n, node_read_cb cb, void* data)
{
    /* A brand-new cluster waits as any read does (then mounts what it
     * has): its members start empty, there is nothing to be behind. */
    uint64_t timeout_ms = node_startup_needs_cluster(n)
                              ? n->opts.catch_up_timeout_ms
                              : n->opts.proposal_timeout_ms;
    return read_barrier(n, timeout_ms, true, cb, data);
}

bool node_startup_needs_cluster(const struct node* n)
{
    return n->initial_conf.n > 1 && !n->bootstrapped;
}

/* A leader became known (or changed): proposals and reads that were refused
 * for want of one are tried again. Re-proposing an entry that did reach a
 * log is harmless: the store applies (origin, seq) at most once. */
void node__retry_parked(struct node* n)
{
    if (raft_leader(n->raft) == 0) {
        return;
    }
    bool all = n->leader_changed_since_propose;
    n->leader_changed_since_propose = false;
    /* Collect first: re-proposing steps the core, which may complete (and
     * unlink) other waiters while we walk. */
    uint64_t count = 0;
    for (struct waiter* w = n->whead; w != NULL; w = w->next) {
        count += (all || w->parked) ? 1 : 0;
    }
    uint64_t* seqs = count > 0 ? malloc(count * sizeof(*seqs)) : NULL;
    uint64_t k = 0;
    for (struct waiter* w = n->whead; w != NULL && seqs != NULL; w = w->next) {
        if (all || w->parked) {
            seqs[k++] = w->seq;
        }
    }
    for (uint64_t i = 0; i < k; i++) {
        struct waiter* w = node__waiter_find(n, seqs[i]);
        if (w == NULL) {
            continue;
        }
        int rv = propose_waiter(n, w);
        if (rv != 0) {
            node__fail_waiter(n, w, node__errno_of_raft(rv));
        }
    }
    free(seqs);
    uint64_t ctxs[64];
    unsigned nr = 0;
    for (struct read_waiter* r = n->reads; r != NULL && nr < 64; r = r->next) {
        if (r->parked) {
            ctxs[nr++] = r->ctx;
        }
    }
    for (unsigned i = 0; i < nr; i++) {
        if (read_find(n, ctxs[i]) != NULL) {
            read_index_step(n, ctxs[i]);
        }
    }
}

/* The start-up barrier is still waiting: say for what. */
static void startup_progress(struct node* n, const struct read_waiter* r)
{
    if (!r->has_index) {
        node__log(n, RAFT_TRACE_INFO,
                  "still waiting to learn the cluster's commit index "
                  "(leader %s)",
                  raft_leader(n->raft) != 0 ? "known" : "unknown");
        return;
    }
    node__log(n, RAFT_TRACE_INFO,
              "still catching up with the cluster: applied %" PRIu64
              " of %" PRIu64,
              store_applied_index(n->store), r->index);
}

/* A proposal past its deadline has an unknown fate: its entry may sit in
 * some log and be committed later. Answering EIO then would be a lie if it
 * is. So the node fences it instead: it proposes a STORE_OP_CANCEL with the
 * same (origin, seq) and waits one more timeout. The store applies an
 * (origin, seq) once, so whichever of the two is applied first decides:
 * the proposal (success, its result) or the cancel (EIO, and the proposal
 * can never be applied after it). The fence waits the proposal timeout
 * again, and at least 5 election timeouts: long enough for one election
 * (randomized in [e, 2e), plus pre-vote and vote rounds) on a loaded
 * machine, as the proposal may have timed out because its leader failed. Only a
 * fence that is not applied in time either leaves the outcome unknown: EIO.
 * Returns 0 when fenced. */
static int fence_waiter(struct node* n, struct waiter* w, uint64_t now)
{
    struct store_cmd c = {.op = STORE_OP_CANCEL,
                          .origin = n->id,
                          .seq = w->seq,
                          .now_ns = node__wall_ns()};
    size_t size = store_cmd_encoded_size(&c);
    if (n->n_batch == NODE_PROPOSE_BATCH_MAX) {
        node__flush_proposals(n); /* completions wait: the caller nests */
    }
    void* cmd = malloc(size);
    if (cmd == NULL || n->stopping) {
        free(cmd);
        return -ENOMEM;
    }
    long len = store_cmd_encode(&c, cmd, size);
    assert(len == (long)size);
    /* The command is never proposed again, only its cancel; it is kept to
     * check an installed image (node__waiters_after_install). */
    n->pending_bytes += (size_t)len;
    w->fence = cmd;
    w->fence_len = (size_t)len;
    w->fenced = true;
    waiter_unlink(n, w); /* back to the tail: deadlines stay ordered */
    uint64_t wait_ms = n->opts.proposal_timeout_ms;
    if (wait_ms < 5 * (uint64_t)n->opts.election_ms) {
        wait_ms = 5 * (uint64_t)n->opts.election_ms;
    }
    w->deadline_ms = now + wait_ms;
    waiter_link(n, w);
    n->fences++;
    n->n_fenced++;
    n->batch[n->n_batch++] = w->seq; /* flushed by the prepare handle */
    return 0;
}

/* A forwarded proposal can be lost (a full send queue drops frames, a
 * leader that is handing over refuses it): a cancel lost that way would
 * leave its proposal's fate unknown at the fence's deadline. A cancel is
 * idempotent, so each one still out is proposed again every election
 * timeout. */
static void fences_again(struct node* n, uint64_t now)
{
    if (n->n_fenced == 0 || now < n->fence_retry_ms) {
        return;
    }
    n->fence_retry_ms = now + n->opts.election_ms;
    for (struct waiter* w = n->whead;
         w != NULL && n->n_batch < NODE_PROPOSE_BATCH_MAX; w = w->next) {
        if (w->fenced && !w->parked) {
            n->batch[n->n_batch++] = w->seq; /* flushed by the prepare */
        }
    }
}

void node__sweep_cb(uv_timer_t* t)
{
    struct node* n = t->data;
    (void)node__now_ms(n); /* reads the clock: a stall is noticed before I/O */
    n->sweep_due = true;
    node__after_poll_arm(n);
}

void node__sweep_now(struct node* n)
{
    uint64_t now = node__now_ms(n);

    n->depth++;
    node__conf_check(n);
    node__conf_retry(n);
    fences_again(n, now);
    while (n->whead != NULL && n->whead->deadline_ms <= now) {
        struct waiter* w = n->whead;
        if (w->fenced || fence_waiter(n, w, now) != 0) {
            n->timeouts++;
            node__fail_waiter(n, w, -EIO);
        }
    }
    for (struct read_waiter* r = n->reads; r != NULL;) {
        struct read_waiter* next = r->next;
        if (r->deadline_ms <= now) {
            node__complete_read(n, r, -EIO);
        }
        r = next;
    }
    /* Start-up barriers ask again: the request or its answer was lost.
     * Collected first: a step may complete (and unlink) other reads. */
    uint64_t again[8];
    unsigned n_again = 0;
    for (struct read_waiter* r = n->reads; r != NULL && n_again < 8;
         r = r->next) {
        if (r->retry_ms != 0 && r->retry_ms <= now && !r->has_index) {
            r->retry_ms = now + n->opts.election_ms;
            again[n_again++] = r->ctx;
        }
        if (r->retry_ms != 0 && r->log_ms <= now) {
            r->log_ms = now + NODE_STARTUP_LOG_MS;
            startup_progress(n, r);
        }
    }
    for (unsigned i = 0; i < n_again; i++) {
        if (read_find(n, again[i]) != NULL) {
            read_index_step(n, again[i]);
        }
    }
    node__catch_up_check(n);
    if (n->parked_any && !n->retry_pending && now >= n->parked_retry_ms) {
        /* A refusal without a leader change (a transfer that was
         * abandoned) would otherwise wait for the deadline. At most every
         * 2 heartbeats: a leader handing over refuses each retry. */
        n->parked_any = false;
        n->retry_pending = true;
        n->parked_retry_ms = now + 2 * (uint64_t)n->opts.heartbeat_ms;
    }
    if (n->retry_pending) {
        n->retry_pending = false;
        node__retry_parked(n);
    }
    n->depth--;
    if (n->depth == 0) {
        node__drain_completions(n);
    }
}
