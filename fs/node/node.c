/* node.c - one quorumfs node: wires the raft core, the disk log, the store
 * and the transport on one libuv loop (DESIGN §1, §3, §4).
 *
 * Every raft_step produces one update, handled by handle_update() in the
 * order the core's contract demands:
 *   1. persist: entries + hard state go to the I/O thread as one job (group
 *      commit happens there); a received snapshot is installed first;
 *   2. send: the job's messages are sent when the job comes back durable,
 *      and RAFT_EV_PERSISTED is stepped then; an update with nothing to
 *      persist sends at once unless an earlier job is still in flight
 *      (messages never overtake an earlier persist);
 *   3. apply committed entries to the store (they are durable locally);
 *   4. complete proposals and reads.
 * Callbacks of completed proposals run after the update has been fully
 * handled (the core's borrowed pointers are dead by then), never from inside
 * node_propose() for the proposal being made.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../store/store_compact.h"
#include "node_internal.h"
#include "node_state_internal.h"

/* ---- small helpers ---- */

/* The core's clock: monotonic milliseconds minus the time this process
 * was stalled (sweep_cb). A node that was not running (descheduled on an
 * overloaded host, stopped) heard nothing because it listened to nothing;
 * counting that time as silence would make it campaign, or a leader step
 * down on check-quorum, with the heartbeats and replies that prove the
 * contrary unread in its sockets. Only liveness depends on this clock.
 *
 * The sweep timer wakes the loop every NODE_SWEEP_MS, so two readings of
 * the clock further apart than that plus NODE_STALL_MIN_MS mean the loop
 * did not run in between: all but NODE_SWEEP_MS of the gap is taken out.
 * The core's clock stays monotonic (it advances by at least that much). */
static uint64_t clock_read(struct node* n, uint64_t real)
{
    if (n->clock_last_ms != 0 &&
        real > n->clock_last_ms + NODE_SWEEP_MS + NODE_STALL_MIN_MS) {
        uint64_t gap = real - n->clock_last_ms - NODE_SWEEP_MS;
        n->stalled_ms += gap;
        n->stalls++;
        if (gap >= n->opts.election_ms / 2) {
            node__log(RAFT_TRACE_INFO,
                      "the loop stalled for %llu ms (not counted as silence "
                      "from peers)",
                      (unsigned long long)gap);
        }
    }
    if (real > n->clock_last_ms) {
        n->clock_last_ms = real;
    }
    return real - n->stalled_ms;
}

static uint64_t now_ms(struct node* n)
{
    uv_update_time(n->loop);
    return clock_read(n, uv_now(n->loop));
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int errno_of_raft(int rv)
{
    switch (rv) {
    case RAFT_ETOOBIG:
        return -EFBIG;
    case RAFT_EBUSY:
        return -EAGAIN;
    case RAFT_ECONFBUSY:
        return -EBUSY;
    case RAFT_EBADCONF:
        return -EINVAL;
    default:
        return rv <= -1000 ? -EIO : rv;
    }
}

bool node__retryable(int rv)
{
    return rv == RAFT_ENOTLEADER || rv == RAFT_ETRANSFER ||
           rv == RAFT_ELEADERLOST;
}

/* ---- waiters ---- */

static unsigned wbucket(uint64_t seq)
{
    return (unsigned)(seq % NODE_WAITER_BUCKETS);
}

static struct waiter* waiter_find(struct node* n, uint64_t seq)
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

/* Queue a completion; callbacks run from drain_completions(). */
static void complete_waiter(struct node* n,
                            struct waiter* w,
                            const struct store_result* res)
{
    waiter_unlink(n, w);
    w->res = *res;
    w->next = NULL;
    if (n->done_tail != NULL) {
        n->done_tail->next = w;
    } else {
        n->done_head = w;
    }
    n->done_tail = w;
}

static void fail_waiter(struct node* n, struct waiter* w, int err)
{
    struct store_result res = {.err = err};
    complete_waiter(n, w, &res);
}

static void complete_read(struct node* n, struct read_waiter* r, int err)
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

static void drain_completions(struct node* n)
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

/* ---- stepping ---- */

static void handle_update(struct node* n, const struct raft_update* u);

/* Steps ev through the driver (raft/driver.h), then what its updates
 * asked for that may step the core again: a compaction after applies
 * (never inside the update), an image wanted or released, parked
 * proposals. Completions (callbacks into the FUSE side) run only at the
 * outermost depth. Never called while an update is handled (the driver
 * asserts it): events raised there are posted. */
int node__step(struct node* n, struct raft_event* ev)
{
    n->depth++;
    int rv = raft_driver_step(n->driver, *ev);
    if (n->compact_due) {
        n->compact_due = false;
        node__maybe_compact(n);
    }
    n->depth--;
    if (n->depth == 0) {
        if (n->retry_pending && !n->stopping) {
            n->retry_pending = false;
            node__retry_parked(n);
        }
        drain_completions(n);
        node__image_check(n);
    }
    return rv;
}

static int step(struct node* n, struct raft_event* ev)
{
    return node__step(n, ev);
}

static void send_msgs(struct node* n,
                      const struct raft_message* msgs,
                      unsigned count)
{
    if (n->transport == NULL) {
        return;
    }
    for (unsigned i = 0; i < count; i++) {
        int rv = transport_send(n->transport, &msgs[i]);
        if (rv != 0 && rv != -ENOBUFS) {
            node__log(RAFT_TRACE_DEBUG, "send %s to %" PRIx64 ": %s",
                      raft_msg_type_name(msgs[i].type), msgs[i].to,
                      strerror(-rv));
        }
    }
}

/* ---- the driver's callbacks (raft/driver.h) ---- */

static uint64_t ops_now(void* data)
{
    return now_ms(data);
}

static void ops_send(void* data, const struct raft_message* m)
{
    send_msgs(data, m, 1);
}

/* A batch goes to the I/O thread, after the jobs queued before it. */
static void ops_persist(void* data, struct raft_batch* b)
{
    struct node* n = data;
    struct io_job* job = calloc(1, sizeof(*job));
    if (job == NULL) {
        /* Out of memory: we cannot honour the persist contract. Stop. */
        node__log(RAFT_TRACE_ERROR, "out of memory queuing a log batch");
        abort();
    }
    job->type = IO_JOB_BATCH;
    job->batch = b;
    n->batches_inflight++;
    node__io_submit(&n->io, job);
}

static void install_snapshot(struct node* n, const struct raft_update* u);
static void handle_update(struct node* n, const struct raft_update* u);

static void ops_install(void* data, const struct raft_update* u)
{
    install_snapshot(data, u);
}

static void ops_update(void* data, int rc, const struct raft_update* u)
{
    (void)rc;
    handle_update(data, u);
}

int node__driver_attach(struct node* n)
{
    struct raft_driver_ops ops = {.data = n,
                                  .now_ms = ops_now,
                                  .send = ops_send,
                                  .install = ops_install,
                                  .persist = ops_persist,
                                  .update = ops_update};
    n->driver = raft_driver_new(n->raft, &ops);
    return n->driver != NULL ? 0 : -ENOMEM;
}

void node__raft_free(struct node* n)
{
    raft_driver_free(n->driver);
    n->driver = NULL;
    raft_free(n->raft);
    n->raft = NULL;
}

static void apply_committed(struct node* n,
                            const struct raft_entry* es,
                            unsigned count);
static void handle_reads(struct node* n, const struct raft_update* u)
{
    for (unsigned i = 0; i < u->n_reads; i++) {
        for (struct read_waiter* r = n->reads; r != NULL; r = r->next) {
            if (r->ctx == u->reads[i].ctx) {
                r->index = u->reads[i].index;
                r->has_index = true;
                break;
            }
        }
    }
    for (unsigned i = 0; i < u->n_failed_reads; i++) {
        for (struct read_waiter* r = n->reads; r != NULL; r = r->next) {
            if (r->ctx == u->failed_reads[i].ctx) {
                r->parked = true; /* retried when a leader is known */
                break;
            }
        }
    }
    node__reads_check(n);
}

void node__reads_check(struct node* n)
{
    raft_index applied = store_applied_index(n->store);
    struct read_waiter* r = n->reads;
    while (r != NULL) {
        struct read_waiter* next = r->next;
        if (r->has_index && r->index <= applied) {
            complete_read(n, r, 0);
        }
        r = next;
    }
}

static void handle_failed_proposals(struct node* n, const struct raft_update* u)
{
    for (unsigned i = 0; i < u->n_failed_proposals; i++) {
        if (node__conf_failed(n, u->failed_proposals[i].ctx,
                              u->failed_proposals[i].err)) {
            continue;
        }
        struct waiter* w = waiter_find(n, u->failed_proposals[i].ctx);
        if (w == NULL) {
            continue;
        }
        if (node__retryable(u->failed_proposals[i].err)) {
            w->parked = true; /* re-proposed when a leader is known */
            n->parked_any = true;
        } else {
            fail_waiter(n, w, errno_of_raft(u->failed_proposals[i].err));
        }
    }
}

static void rearm_tick(struct node* n, uint64_t next_ms)
{
    uint64_t now = clock_read(n, uv_now(n->loop));
    uint64_t delay = next_ms > now ? next_ms - now : 0;
    if (delay > 60000) {
        delay = 60000;
    }
    uv_timer_start(&n->tick_timer, node__tick_cb, delay, 0);
}

/* Steps 3 and 4 of an update (the driver did the install, the persist
 * and the sends). Nothing here steps the core. */
static void handle_update(struct node* n, const struct raft_update* u)
{
    if (u->n_committed > 0) {
        apply_committed(n, u->committed, u->n_committed);
    }
    handle_reads(n, u);
    handle_failed_proposals(n, u);
    if (u->conf_changed) {
        node__sync_peers(n);
        node__conf_log(n);
    }
    if (u->role_changed) {
        node__role_changed(n);
    }
    node__conf_check(n);
    rearm_tick(n, u->next_timeout_ms);
}

/* Timer work waits until the loop has read its sockets. libuv runs due
 * timers before it polls for I/O: after a stall (the process descheduled
 * on an overloaded host, a long apply) an election or check-quorum tick
 * would otherwise count as silence the heartbeats and replies that are
 * sitting unread in the sockets, and a proposal sweep would fail writes
 * whose commits are there too. So a timer only flags its work and starts
 * an idle handle (the poll then does not block) and a check handle (run
 * right after the poll), which does it. */
static void after_poll_idle_cb(uv_idle_t* h)
{
    (void)h;
}

static void sweep_now(struct node* n);

static void after_poll_cb(uv_check_t* h)
{
    struct node* n = h->data;

    uv_idle_stop(&n->after_poll_idle);
    uv_check_stop(&n->after_poll_check);
    if (n->tick_due) {
        n->tick_due = false;
        struct raft_event ev = {.type = RAFT_EV_TICK};
        step(n, &ev);
    }
    if (n->sweep_due && n->raft != NULL) {
        n->sweep_due = false;
        sweep_now(n);
    }
}

static void after_poll_arm(struct node* n)
{
    uv_idle_start(&n->after_poll_idle, after_poll_idle_cb);
    uv_check_start(&n->after_poll_check, after_poll_cb);
}

void node__tick_cb(uv_timer_t* t)
{
    struct node* n = t->data;

    n->tick_due = true;
    after_poll_arm(n);
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
    int rv = step(n, &ev);
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
        struct waiter* w = waiter_find(n, n->batch[i]);
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
    int rv = step(n, &ev);
    for (unsigned i = 0; rv != 0 && i < count; i++) {
        struct waiter* w = waiter_find(n, seqs[i]);
        if (w == NULL) {
            continue;
        }
        if (node__retryable(rv)) {
            w->parked = true;
            n->parked_any = true;
        } else {
            fail_waiter(n, w, errno_of_raft(rv));
        }
    }
    n->depth--;
    if (n->depth == 0) {
        drain_completions(n);
    }
}

static void prepare_cb(uv_prepare_t* p)
{
    struct node* n = p->data;
    if (n->n_batch > 0) {
        node__flush_proposals(n);
    }
    if (n->depth == 0) {
        drain_completions(n);
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
    c->now_ns = wall_ns();
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
    w->deadline_ms = now_ms(n) + n->opts.proposal_timeout_ms;
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
    int rv = step(n, &ev);
    struct read_waiter* r = read_find(n, ctx);
    if (r == NULL) {
        return;
    }
    r->parked = node__retryable(rv);
    if (rv != 0 && !r->parked) {
        complete_read(n, r, errno_of_raft(rv));
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
    r->deadline_ms = now_ms(n) + timeout_ms;
    r->retry_ms = retry ? now_ms(n) + n->opts.election_ms : 0;
    r->log_ms = now_ms(n) + NODE_STARTUP_LOG_MS;
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
        struct waiter* w = waiter_find(n, seqs[i]);
        if (w == NULL) {
            continue;
        }
        int rv = propose_waiter(n, w);
        if (rv != 0) {
            fail_waiter(n, w, errno_of_raft(rv));
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
        node__log(RAFT_TRACE_INFO,
                  "still waiting to learn the cluster's commit index "
                  "(leader %s)",
                  raft_leader(n->raft) != 0 ? "known" : "unknown");
        return;
    }
    node__log(RAFT_TRACE_INFO,
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
                          .now_ns = wall_ns()};
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
     * check an installed image (waiters_after_install). */
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

static void sweep_cb(uv_timer_t* t)
{
    struct node* n = t->data;
    (void)now_ms(n); /* reads the clock: a stall is noticed before I/O */
    n->sweep_due = true;
    after_poll_arm(n);
}

static void sweep_now(struct node* n)
{
    uint64_t now = now_ms(n);

    n->depth++;
    node__conf_check(n);
    node__conf_retry(n);
    fences_again(n, now);
    while (n->whead != NULL && n->whead->deadline_ms <= now) {
        struct waiter* w = n->whead;
        if (w->fenced || fence_waiter(n, w, now) != 0) {
            n->timeouts++;
            fail_waiter(n, w, -EIO);
        }
    }
    for (struct read_waiter* r = n->reads; r != NULL;) {
        struct read_waiter* next = r->next;
        if (r->deadline_ms <= now) {
            complete_read(n, r, -EIO);
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
        drain_completions(n);
    }
}

/* ---- apply ---- */

static void on_applied_cmd(struct node* n,
                           const struct raft_entry* e,
                           const struct store_result* res)
{
    struct store_cmd c;
    if (store_cmd_decode(&c, e->data.base, e->data.len) != 0 ||
        c.origin != n->id) {
        return;
    }
    struct waiter* w = waiter_find(n, c.seq);
    if (w == NULL) {
        return;
    }
    if (res->duplicate) {
        /* Not applied by this entry; if it had been applied before, the
         * waiter would be gone: it was refused as too old (or consumed by
         * an installed image: its result is not known here). */
        fail_waiter(n, w, -EIO);
        return;
    }
    if (c.op == STORE_OP_CANCEL) {
        /* The fence won: the proposal is not applied and never will be. */
        n->timeouts++;
        fail_waiter(n, w, -EIO);
        return;
    }
    complete_waiter(n, w, res);
}

static void history_sample(struct node* n);

/* Counts e in the applied part of the in-memory log (--snapshot-bytes). */
static void log_lens_note(struct node* n, const struct raft_entry* e)
{
    uint64_t cost = e->data.len + NODE_ENTRY_OVERHEAD;
    if (e->index != n->lens_next) { /* the first, or after an install */
        n->lens_first = e->index;
    } else if (e->index - n->lens_first >= NODE_LOG_LENS) {
        n->lens_first++;
    }
    n->log_lens[e->index % NODE_LOG_LENS] =
        cost > UINT32_MAX ? UINT32_MAX : (uint32_t)cost;
    n->lens_next = e->index + 1;
    n->log_bytes += cost;
}

static void apply_one(struct node* n, const struct raft_entry* e)
{
    struct store_result res;
    int rv = 0;

    log_lens_note(n, e);

    if (e->index <= store_applied_index(n->store)) {
        /* Replay after a restart: the db file already has it. */
        n->applied_term = e->term;
        if (e->type == RAFT_ENTRY_CONF) {
            node__conf_applied(n, e);
        }
        return;
    }
    n->applied_bytes += e->data.len;
    switch (e->type) {
    case RAFT_ENTRY_NORMAL:
        rv = store_apply(n->store, e->index, e->data.base, e->data.len,
                         n->opts.on_change, n->opts.on_change_data, &res);
        if (rv == 0) {
            on_applied_cmd(n, e, &res);
            history_sample(n);
        }
        break;
    case RAFT_ENTRY_CONF:
        node__conf_applied(n, e);
        rv = store_apply_index(n->store, e->index);
        break;
    default:
        rv = store_apply_index(n->store, e->index);
        break;
    }
    if (rv != 0 && n->sticky_err == 0) {
        n->sticky_err = rv;
        node__log(RAFT_TRACE_ERROR,
                  "store apply failed at index %" PRIu64
                  ": %s; refusing writes",
                  e->index, strerror(-rv));
    }
    n->applied_term = e->term;
}

static void apply_committed(struct node* n,
                            const struct raft_entry* es,
                            unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        apply_one(n, &es[i]);
    }
    node__frame_schedule(n);
    n->compact_due = true; /* node__step runs it after the update */
}

/* ---- snapshots ---- */

/* The store refuses to install while a sealed frame is in flight: wait for
 * the I/O thread (installing blocks on fsyncs anyway), finish the frame
 * jobs now and keep every other finished job, in order, for io_done_cb
 * (they step the core, which must not happen inside handle_update). */
static void drain_frames(struct node* n)
{
    node__io_drain(&n->io);
    struct io_job* j = node__io_take_done(&n->io);
    struct io_job** tail = &n->deferred_done;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    while (j != NULL) {
        struct io_job* next = j->next;
        j->next = NULL;
        if (j->type == IO_JOB_FRAME) {
            store_frame_done(n->store, j->frame, j->err);
            n->frames_inflight--;
            j->frame = NULL;
            node__io_job_free(j);
        } else {
            *tail = j;
            tail = &j->next;
        }
        j = next;
    }
    if (n->deferred_done != NULL) {
        uv_async_send(&n->io.done_async);
    }
}

/* Whether the live tree shows that c, used up by an installed image, took
 * effect, and then its result: a WRITE whose content is the live one, a
 * CREATE (not exclusive) whose name is a regular file. Whether c or its
 * cancel won, the tree then holds what c asked for. */
static bool effect_in_tree(struct node* n,
                           const struct store_cmd* c,
                           struct store_result* res)
{
    struct store_attr a;
    const void* data;
    size_t len;
    struct store_stats s;

    store_get_stats(n->store, &s);
    *res = (struct store_result){.revision = s.revision};
    if (c->op == STORE_OP_WRITE) {
        res->ino = c->ino;
        return store_read(n->store, c->ino, &data, &len) == 0 &&
               len == c->data_len &&
               (len == 0 || memcmp(data, c->data, len) == 0);
    }
    if (c->op == STORE_OP_CREATE && (c->flags & STORE_EXCL) == 0 &&
        store_lookup(n->store, c->parent, c->name, &a) == 0 &&
        a.type == STORE_FILE) {
        res->ino = a.ino;
        return true;
    }
    return false;
}

/* An installed image may hold this node's proposals: their entries were
 * never applied here one by one, so their waiters learn nothing from the
 * apply path. Those whose effect the tree shows are answered success; the
 * others wait for their fence, whose duplicate answers EIO. */
static void waiters_after_install(struct node* n)
{
    struct waiter* w = n->whead;
    while (w != NULL) {
        struct waiter* next = w->next;
        struct store_cmd c;
        struct store_result res;
        if (store_dedup_applied(n->store, n->id, w->seq) == 1 &&
            store_cmd_decode(&c, w->cmd, w->cmd_len) == 0 &&
            effect_in_tree(n, &c, &res)) {
            complete_waiter(n, w, &res);
        }
        w = next;
    }
}

static void install_snapshot(struct node* n, const struct raft_update* u)
{
    const struct raft_snapshot_meta* m = &u->snapshot_meta;
    uv_timer_stop(&n->frame_timer);
    node__frame_flush(n);
    drain_frames(n);
    int rv = store_image_install(n->store, u->snapshot_image.base,
                                 u->snapshot_image.len);
    if (rv != 0) {
        node__log(RAFT_TRACE_ERROR,
                  "installing snapshot at index %" PRIu64 " failed: %s",
                  m->index, strerror(-rv));
        n->sticky_err = rv;
        return;
    }
    node__log(RAFT_TRACE_INFO,
              "installed snapshot at index %" PRIu64 " term %" PRIu64
              " (%zu bytes)",
              m->index, m->term, u->snapshot_image.len);
    n->applied_term = m->term;
    n->applied_conf = m->conf;
    n->applied_conf_index = m->conf_index;
    n->last_compact_index = m->index;
    n->log_bytes = 0; /* the core's log restarts after m->index */
    n->log_kept = 0;
    n->lens_next = 0;
    waiters_after_install(n);
    if (n->opts.on_change != NULL) {
        /* ino 0 and parent 0: the whole tree may have changed. */
        struct store_change c = {.ino = 0, .parent = 0};
        n->opts.on_change(n->opts.on_change_data, &c);
    }
    struct io_job* job = calloc(1, sizeof(*job));
    if (job == NULL) {
        abort();
    }
    job->type = IO_JOB_RESET;
    job->snap = *m;
    n->batches_inflight++;
    node__io_submit(&n->io, job);
}

static void io_done_cb(uv_async_t* a)
{
    struct node* n = a->data;
    struct io_job* j = n->deferred_done;
    n->deferred_done = NULL;
    if (j != NULL) {
        struct io_job* tail = j;
        while (tail->next != NULL) {
            tail = tail->next;
        }
        tail->next = node__io_take_done(&n->io);
    } else {
        j = node__io_take_done(&n->io);
    }

    n->depth++;
    while (j != NULL) {
        struct io_job* next = j->next;
        node__io_job_finished(n, j);
        j = next;
    }
    n->depth--;
    if (n->depth == 0) {
        drain_completions(n);
    }
    if (n->stopping) {
        node__stop_continue(n);
    }
}

void node__io_job_finished(struct node* n, struct io_job* j)
{
    if (j->err != 0 && n->sticky_err == 0) {
        n->sticky_err = j->err;
        node__log(RAFT_TRACE_ERROR, "disk error: %s; node refuses writes",
                  strerror(-j->err));
    }
    switch (j->type) {
    case IO_JOB_BATCH:
        n->batches_inflight--;
        if (j->err == 0) {
            /* Sends its messages, steps RAFT_EV_PERSISTED. */
            n->depth++;
            raft_driver_persisted(n->driver, j->batch);
            if (n->compact_due) {
                n->compact_due = false;
                node__maybe_compact(n);
            }
            n->depth--;
        } else {
            raft_driver_discard(n->driver, j->batch);
        }
        j->batch = NULL;
        break;
    case IO_JOB_FRAME:
        store_frame_done(n->store, j->frame, j->err);
        j->frame = NULL;
        n->frames_inflight--;
        break;
    case IO_JOB_RESET:
        n->batches_inflight--;
        if (j->err == 0) {
            struct raft_event ev = {.type = RAFT_EV_SNAPSHOT_INSTALLED};
            ev.installed.meta = j->snap;
            step(n, &ev);
        }
        break;
    default:
        break;
    }
    node__io_job_free(j);
}

/* Seal queued store records into a frame soon (the raft log is the durable
 * copy meanwhile; frames are batched to spare fsyncs). */
static void frame_timer_cb(uv_timer_t* t)
{
    node__frame_flush(t->data);
}

void node__frame_flush(struct node* n)
{
    struct store_frame* f = NULL;
    int rv = store_frame_seal(n->store, &f);
    if (rv != 0) {
        if (n->sticky_err == 0) {
            n->sticky_err = rv;
        }
        return;
    }
    if (f == NULL) {
        return;
    }
    struct io_job* job = calloc(1, sizeof(*job));
    if (job == NULL) {
        abort();
    }
    job->type = IO_JOB_FRAME;
    job->frame = f;
    n->frames_inflight++;
    node__io_submit(&n->io, job);
}

void node__frame_schedule(struct node* n)
{
    if (!uv_is_active((uv_handle_t*)&n->frame_timer)) {
        uv_timer_start(&n->frame_timer, frame_timer_cb, NODE_FRAME_DELAY_MS, 0);
    }
}

/* On a leader, the lowest match index of the followers that answered
 * recently (their next appends come from there); applied otherwise. */
static raft_index slowest_match(struct node* n, raft_index applied)
{
    raft_index low = applied;
    const struct raft_conf* c = raft_conf_current(n->raft);
    if (raft_role(n->raft) != RAFT_LEADER || c == NULL) {
        return low;
    }
    for (unsigned i = 0; i < c->n; i++) {
        raft_index match;
        bool recent;
        if (c->servers[i].id != n->id &&
            raft_peer_progress(n->raft, c->servers[i].id, &match, &recent) ==
                0 &&
            recent && match < low) {
            low = match;
        }
    }
    return low;
}

/* The first entry to keep after compacting at `applied`: the newest
 * entries, at most snapshot_entries of them and a quarter of
 * snapshot_bytes (for followers a little behind); on a leader, up to
 * snapshot_bytes, or the live data's size when no image is held, of
 * entries a follower that answered recently has not acknowledged yet (a
 * slow follower is cheaper to feed from the log than with an image, a
 * copy of the live data built with the loop stopped). *kept: their
 * bytes. */
static raft_index keep_from_of(struct node* n,
                               raft_index applied,
                               uint64_t* kept)
{
    uint64_t max_bytes =
        n->opts.snapshot_bytes > 0 ? n->opts.snapshot_bytes / 4 : UINT64_MAX;
    uint64_t max_needed =
        n->opts.snapshot_bytes > 0 ? n->opts.snapshot_bytes : UINT64_MAX;
    if (!raft_image_held(n->raft)) {
        /* An image would cost the live data's size: as many bytes of log
         * cost no more, and no CPU (the quota bounds both). */
        struct store_stats ss;
        store_get_stats(n->store, &ss);
        if (ss.live_bytes > max_needed) {
            max_needed = ss.live_bytes;
        }
    }
    raft_index needed = slowest_match(n, applied) + 1;
    raft_index k = applied + 1;
    uint64_t bytes = 0;
    while (k > n->lens_first && k - 1 < n->lens_next &&
           applied + 1 - k < n->opts.snapshot_entries) {
        uint64_t c = n->log_lens[(k - 1) % NODE_LOG_LENS];
        if (bytes + c > (k - 1 >= needed ? max_needed : max_bytes)) {
            break;
        }
        bytes += c;
        k--;
    }
    *kept = bytes;
    return k;
}

/* The snapshot meta of store_applied_index() (apply updates both). */
static struct raft_snapshot_meta applied_meta(const struct node* n,
                                              raft_index applied)
{
    struct raft_snapshot_meta meta = {
        .index = applied,
        .term = n->applied_term,
        .conf_index = n->applied_conf_index,
        .conf = n->applied_conf,
    };
    return meta;
}

/* Takes the core's image away (RAFT_EV_COMPACT with an empty one, keeping
 * the whole log) and frees ours: an image is a copy of the live data. */
static void image_release(struct node* n, raft_index applied)
{
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta = applied_meta(n, applied);
    ev.compact.keep_from = 1; /* drop nothing */
    if (step(n, &ev) != 0) {
        /* The core keeps its image (and ours stays alive with it). */
        n->release_failed_at = applied;
        node__log(RAFT_TRACE_WARN,
                  "snapshot image not released at index %" PRIu64, applied);
        return;
    }
    free(n->image); /* released: the core holds an empty image now */
    n->image = NULL;
    n->image_len = 0;
    n->image_empty = true;
    node__log(RAFT_TRACE_INFO, "snapshot image released at index %" PRIu64,
              applied);
}

static void compact_at(struct node* n,
                       raft_index applied,
                       bool with_image,
                       bool drop_log);

/* Gives the core a snapshot at `applied` and compacts the log before it
 * (keeping the tail keep_from_of() picks). with_image false: an empty
 * image (nobody needs one: see node__image_check). An image asked for by
 * the core (node__image_check) drops nothing from the log: a compaction
 * there would leave more followers behind it, each asking for the next. */
static void compact_now(struct node* n, raft_index applied, bool with_image)
{
    compact_at(n, applied, with_image, true);
}

static void compact_at(struct node* n,
                       raft_index applied,
                       bool with_image,
                       bool drop_log)
{
    void* img = NULL;
    size_t len = 0;
    if (with_image) {
        if (raft_image_held(n->raft)) {
            /* Free the old image before building the new one: two images
             * and the index would be three copies of the live data. */
            image_release(n, applied);
        }
        int rv = store_image_build(n->store, &img, &len);
        if (rv != 0) {
            node__log(RAFT_TRACE_WARN, "snapshot image: %s", strerror(-rv));
            return;
        }
    }
    /* The db file must hold everything up to `applied` before the log
     * drops it: the frame job precedes the compact job in the queue. */
    node__frame_flush(n);
    struct raft_snapshot_meta meta = applied_meta(n, applied);
    uint64_t kept = n->log_bytes;
    raft_index keep_from =
        drop_log ? keep_from_of(n, applied, &kept) : raft_first_index(n->raft);
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta = meta;
    ev.compact.image.base = img;
    ev.compact.image.len = len;
    ev.compact.keep_from = keep_from;
    void* old = n->image;
    n->image = img;
    n->image_len = len;
    n->image_empty = !with_image;
    if (drop_log) {
        n->last_compact_index = applied;
        n->need_image = false;
        n->log_bytes = kept;
        n->log_kept = kept; /* due again after bytes_due more */
    }
    step(n, &ev);
    free(old); /* the core released it when it took the new one */
    if (!drop_log) {
        node__log(RAFT_TRACE_INFO,
                  "snapshot image at index %" PRIu64
                  " (%zu bytes) for a "
                  "follower behind the log",
                  applied, len);
        return;
    }
    struct io_job* job = calloc(1, sizeof(*job));
    if (job == NULL) {
        abort();
    }
    job->type = IO_JOB_COMPACT;
    job->snap = meta;
    job->keep_from = keep_from;
    node__io_submit(&n->io, job);
    node__log(with_image ? RAFT_TRACE_INFO : RAFT_TRACE_DEBUG,
              "snapshot at index %" PRIu64
              " (%zu bytes%s); log kept from %" PRIu64,
              applied, len,
              with_image ? "" : ", no image: no follower needs one", keep_from);
}

void node__maybe_compact(struct node* n)
{
    raft_index applied = store_applied_index(n->store);
    /* An image costs its size to build (a leader with peers): build one
     * per that many bytes of log at most, so the cost stays at most the
     * write volume (the log may then hold up to the live data). */
    uint64_t bytes_due = n->opts.snapshot_bytes;
    if (raft_image_held(n->raft) && n->image_len > bytes_due) {
        bytes_due = n->image_len;
    }
    bool due = (n->opts.snapshot_entries > 0 &&
                applied >= n->last_compact_index + n->opts.snapshot_entries) ||
               (bytes_due > 0 && n->log_bytes >= n->log_kept + bytes_due);
    if (!(due || (n->need_image && applied >= n->restored_commit)) ||
        applied == 0 || n->sticky_err != 0 ||
        applied > raft_applied_index(n->raft)) {
        return; /* the last: a db ahead of the log (node_check.c) */
    }
    /* An image is a second copy of the whole store (values included) and
     * costs a pause of the loop to build: only a leader with a follower
     * behind its compacted log needs one (InstallSnapshot), and only
     * while it is sent (node__image_check). The log is compacted all the
     * same (the db file holds what it drops). While an image is being
     * sent a new one replaces it at each compaction. */
    compact_now(n, applied, raft_image_wanted(n->raft));
}

void node__image_check(struct node* n)
{
    if (n->image_checking || n->stopping) {
        return;
    }
    bool wanted = raft_image_wanted(n->raft);
    bool held = raft_image_held(n->raft);
    raft_index applied = store_applied_index(n->store);
    if (wanted == held || applied == 0 || n->sticky_err != 0 ||
        applied > raft_applied_index(n->raft)) {
        return;
    }
    if (applied == (wanted ? n->image_failed_at : n->release_failed_at)) {
        return; /* failed at this index: try again at the next */
    }
    if (wanted && node__db_compacting()) {
        return; /* one copy of the live data at a time: after the rewrite */
    }
    n->image_checking = true;
    if (wanted) {
        compact_at(n, applied, true, false);
        if (!raft_image_held(n->raft)) {
            n->image_failed_at = applied;
        }
    } else {
        image_release(n, applied);
    }
    n->image_checking = false;
}

void node__conf_applied(struct node* n, const struct raft_entry* e)
{
    struct raft_conf c;
    if (raft_conf_decode(&c, e->data.base, e->data.len) == 0) {
        n->applied_conf = c;
        n->applied_conf_index = e->index;
    }
}

/* ---- lifecycle ---- */

void node_options_default(struct node_options* o)
{
    memset(o, 0, sizeof(*o));
    o->name = "default";
    o->heartbeat_ms = 100;
    o->election_ms = 1000;
    o->catch_up_timeout_ms = 30000;
    o->snapshot_entries = 10000;
    o->snapshot_bytes = NODE_SNAPSHOT_BYTES_DEFAULT;
    o->history_bytes = 512u << 20;
    o->history_revisions = 10000;
    o->history_hours = 24;
    store_options_default(&o->store);
    /* Live values are held in memory: the quota bounds them, and with
     * them the node's memory (docs/operations.md, "Memory"). */
    o->store.quota_bytes = NODE_QUOTA_BYTES_DEFAULT;
    o->store.frame_cache_bytes = NODE_FRAME_CACHE_BYTES_DEFAULT;
    o->log_level = RAFT_TRACE_INFO;
}

int node_snapshot_image(struct node* n,
                        void** image,
                        size_t* len,
                        struct raft_conf* conf)
{
    if (n->sticky_err != 0) {
        return n->sticky_err;
    }
    /* Both describe store_applied_index(): apply updates them together. */
    int rv = store_image_build(n->store, image, len);
    if (rv == 0) {
        *conf = n->applied_conf;
    }
    return rv;
}

/* ---- db file compaction (store_compact.h), driven from fs/cli/ctl.c ----
 * begin on the loop, run on the libuv thread pool (reads and applies go on),
 * finish on the loop after draining sealed frames. One per process: a
 * process runs one node. */

struct db_compact_job {
    uv_work_t work;
    struct node* n;
    struct store_compaction* c;
    int rv;
};

static struct db_compact_job* db_job;

static bool node__db_compact_busy(struct node* n)
{
    return db_job != NULL && db_job->n == n;
}

static void db_compact_work_cb(uv_work_t* w)
{
    struct db_compact_job* job = w->data;
    job->rv = store_compact_run(job->c);
}

static void db_compact_after_cb(uv_work_t* w, int status)
{
    struct db_compact_job* job = w->data;
    struct node* n = job->n;
    int rv = status != 0 ? status : job->rv;

    db_job = NULL;
    if (rv != 0 || n->stopping || n->sticky_err != 0) {
        store_compact_abort(n->store, job->c);
        if (rv != 0) {
            node__log(RAFT_TRACE_WARN, "db compaction failed: %s",
                      strerror(-rv));
        }
    } else {
        rv = store_compact_finish(n->store, job->c);
        if (rv == -EBUSY) { /* a sealed frame in flight: wait for it */
            drain_frames(n);
            rv = store_compact_finish(n->store, job->c);
            if (rv == -EBUSY) {
                store_compact_abort(n->store, job->c);
            }
        }
        struct store_stats s;
        store_get_stats(n->store, &s);
        if (rv == 0) {
            node__log(RAFT_TRACE_INFO,
                      "db compacted to revision %" PRIu64 ": %" PRIu64 " bytes",
                      s.compact_revision, s.db_bytes);
        } else {
            node__log(RAFT_TRACE_WARN, "db compaction abandoned: %s",
                      strerror(-rv));
        }
    }
    free(job);
    if (n->stopping) {
        node__stop_continue(n);
        return;
    }
    node__image_check(n); /* an image may have waited for the rewrite */
}

bool node__db_compacting(void)
{
    return db_job != NULL;
}

int node_compact_db(struct node* n)
{
    struct store_compaction* c;

    if (db_job != NULL || n->stopping || n->sticky_err != 0) {
        return -EBUSY;
    }
    if (raft_image_held(n->raft)) {
        /* The rewrite builds the tree at the compact revision, contents
         * included: with an image that would be three copies of the live
         * data. It waits until the image is released (tried each tick). */
        return -EBUSY;
    }
    if (!store_compact_needed(n->store)) {
        return -EALREADY;
    }
    int rv = store_compact_begin(n->store, &c);
    if (rv == -EAGAIN) {
        node__frame_flush(n); /* make the records durable; retry later */
    }
    if (rv != 0) {
        return rv;
    }
    struct db_compact_job* job = calloc(1, sizeof(*job));
    if (job == NULL) {
        store_compact_abort(n->store, c);
        return -ENOMEM;
    }
    job->n = n;
    job->c = c;
    job->work.data = job;
    rv = uv_queue_work(n->loop, &job->work, db_compact_work_cb,
                       db_compact_after_cb);
    if (rv != 0) {
        store_compact_abort(n->store, c);
        free(job);
        return rv;
    }
    db_job = job;
    return 0;
}

const struct node_options* node_options_of(struct node* n)
{
    return &n->opts;
}

bool node_backlog_full(const struct node* n, uint64_t extra)
{
    return n->pending_bytes + extra >= NODE_PENDING_BYTES_MAX;
}

uint64_t node_applied_bytes(const struct node* n)
{
    return n->applied_bytes;
}

bool node_history_sample(const struct node* n,
                         size_t i,
                         uint64_t* revision,
                         uint64_t* bytes)
{
    if (i >= n->hist_count) {
        return false;
    }
    const struct node_hist_sample* s =
        &n->hist[(n->hist_head + i) % NODE_HIST_SAMPLES];
    *revision = s->revision;
    *bytes = s->bytes;
    return true;
}

/* Samples for --history-bytes, taken on apply: a burst of writes between
 * two retention checks still leaves samples to cut at. */
static void history_sample(struct node* n)
{
    uint64_t limit = n->opts.history_bytes;
    const struct node_hist_sample* last =
        n->hist_count == 0
            ? NULL
            : &n->hist[(n->hist_head + n->hist_count - 1) % NODE_HIST_SAMPLES];
    if (limit == 0 || (last != NULL && n->applied_bytes - last->bytes <
                                           limit / NODE_HIST_SAMPLE_DIV)) {
        return;
    }
    if (n->hist_count == NODE_HIST_SAMPLES) {
        n->hist_head = (n->hist_head + 1) % NODE_HIST_SAMPLES;
        n->hist_count--;
    }
    struct store_stats s;
    store_get_stats(n->store, &s);
    n->hist[(n->hist_head + n->hist_count) % NODE_HIST_SAMPLES] =
        (struct node_hist_sample){.revision = s.revision,
                                  .bytes = n->applied_bytes};
    n->hist_count++;
}

bool node_is_leader(struct node* n)
{
    return n->raft != NULL && raft_role(n->raft) == RAFT_LEADER;
}

struct store* node_store(struct node* n)
{
    return n->store;
}

int node_transfer_leadership(struct node* n, const char* to)
{
    struct raft_event ev = {.type = RAFT_EV_TRANSFER};
    if (to != NULL && to[0] != '\0') {
        const struct raft_conf* c = raft_conf_current(n->raft);
        for (unsigned i = 0; i < c->n; i++) {
            if (strcmp(c->servers[i].name, to) == 0) {
                ev.transfer.to = c->servers[i].id;
            }
        }
        if (ev.transfer.to == 0) {
            return -ENOENT;
        }
        if (ev.transfer.to == n->id) {
            return raft_role(n->raft) == RAFT_LEADER ? 0 : -EINVAL;
        }
    }
    if (raft_role(n->raft) != RAFT_LEADER) {
        return -EINVAL;
    }
    int rv = step(n, &ev);
    return rv == 0 ? 0 : -EINVAL;
}

static int start_timers(struct node* n)
{
    uv_timer_init(n->loop, &n->tick_timer);
    uv_timer_init(n->loop, &n->sweep_timer);
    uv_timer_init(n->loop, &n->frame_timer);
    n->tick_timer.data = n->sweep_timer.data = n->frame_timer.data = n;
    uv_idle_init(n->loop, &n->after_poll_idle);
    uv_check_init(n->loop, &n->after_poll_check);
    n->after_poll_idle.data = n->after_poll_check.data = n;
    uv_prepare_init(n->loop, &n->prepare);
    n->prepare.data = n;
    uv_prepare_start(&n->prepare, prepare_cb);
    return uv_timer_start(&n->sweep_timer, sweep_cb, NODE_SWEEP_MS,
                          NODE_SWEEP_MS);
}

/* glibc raises its mmap threshold (up to 32 MiB) each time a large mmapped
 * block is freed, and its trim threshold with it (2x): after that, every
 * arena keeps up to 64 MiB of freed memory at its top, resident. The db
 * rewrite (another thread, its own arena) frees hundreds of MiB at 1 M keys
 * and left 85 MiB resident over three arenas (measured). Fixed thresholds
 * keep big buffers in mmap (returned on free) and tops trimmed. */
static void malloc_tune(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, NODE_MALLOC_MMAP_MIN);
    mallopt(M_TRIM_THRESHOLD, NODE_MALLOC_TRIM_MIN);
#endif
}

int node_start(uv_loop_t* loop, const struct node_options* o, struct node** out)
{
    struct node* n = calloc(1, sizeof(*n));
    int rv;

    if (n == NULL) {
        return -ENOMEM;
    }
    malloc_tune();
    n->loop = loop;
    n->opts = *o;
    /* Proposal ids must never repeat across restarts (the store applies an
     * (origin, seq) at most once): start from the wall clock in ns. */
    n->next_seq = (uint64_t)wall_ns();
    /* Read ids likewise: a leader may still answer a read this node asked
     * before it restarted, and that answer (an older index) must not match
     * a new read that reuses the id. */
    n->next_read_ctx = (uint64_t)wall_ns();
    if (n->opts.proposal_timeout_ms == 0) {
        n->opts.proposal_timeout_ms = 5 * n->opts.election_ms;
    }
    node__set_log_level(o->log_level);
    n->log_lens = calloc(NODE_LOG_LENS, sizeof(*n->log_lens));
    if (n->log_lens == NULL) {
        free(n);
        return -ENOMEM;
    }
    rv = node__open_disk(n);
    if (rv != 0) {
        goto err_after_alloc;
    }
    rv = node__start_raft(n);
    if (rv != 0) {
        goto err_after_disk;
    }
    rv = node__io_start(&n->io, loop, n->log, n->store, io_done_cb, n);
    if (rv != 0) {
        goto err_after_raft;
    }
    rv = start_timers(n);
    if (rv != 0) {
        goto err_after_io;
    }
    rv = node__start_transport(n);
    if (rv != 0) {
        goto err_after_io;
    }
    /* First tick: a single voter elects itself, replay is emitted. */
    struct raft_event ev = {.type = RAFT_EV_TICK};
    step(n, &ev);
    *out = n;
    return 0;

err_after_io:
    node__io_stop(&n->io);
    uv_close((uv_handle_t*)&n->io.done_async, NULL);
err_after_raft:
    node__raft_free(n);
err_after_disk:
    node__close_disk(n);
err_after_alloc:
    free(n->log_lens);
    free(n);
    return rv;
}

static void fail_everything(struct node* n, int err)
{
    n->depth++;
    node__conf_fail_all(n, err);
    while (n->whead != NULL) {
        fail_waiter(n, n->whead, err);
    }
    while (n->reads != NULL) {
        complete_read(n, n->reads, err);
    }
    n->depth--;
    drain_completions(n);
}

void node_stop(struct node* n, void (*cb)(void* data), void* data)
{
    if (n->stopping) {
        return;
    }
    n->stopping = true;
    n->stop_cb = cb;
    n->stop_data = data;
    fail_everything(n, -ESHUTDOWN);
    uv_timer_stop(&n->tick_timer);
    uv_timer_stop(&n->sweep_timer);
    uv_timer_stop(&n->frame_timer);
    uv_idle_stop(&n->after_poll_idle);
    uv_check_stop(&n->after_poll_check);
    n->tick_due = n->sweep_due = false;
    node__frame_flush(n);
    node__stop_continue(n);
}

static void closed_cb(uv_handle_t* h)
{
    struct node* n = h->data;
    if (--n->handles_open == 0) {
        void (*cb)(void*) = n->stop_cb;
        void* data = n->stop_data;
        free(n->image);
        free(n->log_lens);
        free(n);
        if (cb != NULL) {
            cb(data);
        }
    }
}

static void transport_closed_cb(void* data)
{
    struct node* n = data;
    n->transport = NULL;
    node__stop_continue(n);
}

/* Called again whenever I/O completes: finishes once the disk is idle. */
void node__stop_continue(struct node* n)
{
    if (n->closing || n->batches_inflight > 0 || n->frames_inflight > 0 ||
        !node__io_idle(&n->io) || node__db_compact_busy(n)) {
        return;
    }
    if (n->transport != NULL) {
        if (!n->transport_closing) {
            n->transport_closing = true;
            transport_close(n->transport, transport_closed_cb, n);
        }
        return;
    }
    n->closing = true;
    node__io_stop(&n->io);
    node__raft_free(n);
    node__close_disk(n);
    node__log(RAFT_TRACE_INFO, "node stopped cleanly");
    uv_handle_t* hs[] = {
        (uv_handle_t*)&n->tick_timer,      (uv_handle_t*)&n->sweep_timer,
        (uv_handle_t*)&n->frame_timer,     (uv_handle_t*)&n->io.done_async,
        (uv_handle_t*)&n->prepare,         (uv_handle_t*)&n->after_poll_idle,
        (uv_handle_t*)&n->after_poll_check};
    n->handles_open = 7;
    for (unsigned i = 0; i < 7; i++) {
        hs[i]->data = n;
        uv_close(hs[i], closed_cb);
    }
}
