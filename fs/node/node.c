/* node.c - one quorumfs node: wires the raft core, the disk log, the store
 * and the transport on one libuv loop (DESIGN §1, §3, §4).
 *
 * The core is stepped through raft/driver.c (the update contract: persist
 * batches go to the I/O thread, messages that vouch for them wait for
 * them, events raised while an update is handled are stepped after it).
 * This file holds the stepping, the driver's callbacks (an update's apply,
 * reads, failures, role and configuration changes), the node's lifecycle
 * and its accessors. The rest of the node: node_propose.c (proposals,
 * reads and their waiters, the sweep of deadlines), node_apply.c (apply to
 * the store), node_snapshot.c (log compaction, snapshot images, installs,
 * db file compaction), node_io.c (the I/O thread), node_boot.c (start-up),
 * node_members.c (membership changes), node_status.c, node_check.c.
 * Callbacks of completed proposals run after the update has been fully
 * handled (the core's borrowed pointers are dead by then), never from inside
 * node_propose() for the proposal being made.
 */
#include <errno.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#include <stdarg.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../raft/tls.h"
#include "node_internal.h"
#include "node_state_internal.h"
#include "node_watch.h"

/* ---- small helpers ---- */

/* The core's clock: monotonic milliseconds minus the time this process
 * was stalled (node__sweep_cb). A node that was not running (descheduled on an
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
            node__log(n, RAFT_TRACE_INFO,
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

uint64_t node__now_ms(struct node* n)
{
    uv_update_time(n->loop);
    return clock_read(n, uv_now(n->loop));
}

int64_t node__wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int node__errno_of_raft(int rv)
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

/* ---- stepping ---- */

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
        node__drain_completions(n);
        node__image_check(n);
    }
    return rv;
}

static void send_msgs(struct node* n,
                      const struct raft_message* msgs,
                      unsigned count)
{
    if (n->transport == NULL) {
        return;
    }
    for (unsigned i = 0; i < count; i++) {
        if (msgs[i].type == RAFT_MSG_SNAPSHOT && msgs[i].snapshot.offset == 0) {
            n->counters.snapshot_sends++;
        }
        int rv = transport_send(n->transport, &msgs[i]);
        if (rv != 0 && rv != -ENOBUFS) {
            char to[NODE_NAME_BUF];
            node__log(n, RAFT_TRACE_DEBUG, "send %s to %s: %s",
                      raft_msg_type_name(msgs[i].type),
                      node__name(msgs[i].to, to), strerror(-rv));
        }
    }
}

/* ---- the driver's callbacks (raft/driver.h) ---- */

static uint64_t ops_now(void* data)
{
    return node__now_ms(data);
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
        node__log(n, RAFT_TRACE_ERROR, "out of memory queuing a log batch");
        abort();
    }
    job->type = IO_JOB_BATCH;
    job->batch = b;
    n->batches_inflight++;
    node__io_submit(&n->io, job);
}

static void ops_install(void* data, const struct raft_update* u)
{
    node__install_snapshot(data, u);
}

static void ops_update(void* data, int rc, const struct raft_update* u)
{
    (void)rc;
    node__handle_update(data, u);
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
            node__complete_read(n, r, 0);
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
        struct waiter* w = node__waiter_find(n, u->failed_proposals[i].ctx);
        if (w == NULL) {
            continue;
        }
        if (node__retryable(u->failed_proposals[i].err)) {
            w->parked = true; /* re-proposed when a leader is known */
            n->parked_any = true;
        } else {
            node__fail_waiter(n, w,
                              node__errno_of_raft(u->failed_proposals[i].err));
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
void node__handle_update(struct node* n, const struct raft_update* u)
{
    if (u->n_committed > 0) {
        node__apply_committed(n, u->committed, u->n_committed);
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

static void after_poll_cb(uv_check_t* h)
{
    struct node* n = h->data;

    uv_idle_stop(&n->after_poll_idle);
    uv_check_stop(&n->after_poll_check);
    if (n->tick_due) {
        n->tick_due = false;
        struct raft_event ev = {.type = RAFT_EV_TICK};
        node__step(n, &ev);
    }
    if (n->sweep_due && n->raft != NULL) {
        n->sweep_due = false;
        node__sweep_now(n);
    }
}

void node__after_poll_arm(struct node* n)
{
    uv_idle_start(&n->after_poll_idle, after_poll_idle_cb);
    uv_check_start(&n->after_poll_check, after_poll_cb);
}

void node__tick_cb(uv_timer_t* t)
{
    struct node* n = t->data;

    n->tick_due = true;
    node__after_poll_arm(n);
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
    o->log_fd = STDERR_FILENO;
    o->log_tee_fd = -1;
    o->log_tee_level = RAFT_TRACE_WARN;
    o->watch_events = WATCH_RING_EVENTS_DEFAULT;
    o->watch_bytes = WATCH_RING_BYTES_DEFAULT;
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
void node__history_sample(struct node* n)
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
        if (ev.transfer.to == n->id && raft_role(n->raft) == RAFT_LEADER) {
            return 0;
        }
    }
    /* On a follower the core asks the leader (RAFT_MSG_TRANSFER). */
    int rv = node__step(n, &ev);
    if (rv == RAFT_ENOTLEADER) {
        return -EAGAIN;
    }
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
    uv_prepare_start(&n->prepare, node__prepare_cb);
    return uv_timer_start(&n->sweep_timer, node__sweep_cb, NODE_SWEEP_MS,
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
    n->next_seq = (uint64_t)node__wall_ns();
    /* Read ids likewise: a leader may still answer a read this node asked
     * before it restarted, and that answer (an older index) must not match
     * a new read that reuses the id. */
    n->next_read_ctx = (uint64_t)node__wall_ns();
    if (n->opts.proposal_timeout_ms == 0) {
        n->opts.proposal_timeout_ms = 5 * n->opts.election_ms;
    }
    node__log_init(&n->logger, o->log_level, o->log_fd, o->log_tee_fd,
                   o->log_tee_level);
    n->log_lens = calloc(NODE_LOG_LENS, sizeof(*n->log_lens));
    if (n->log_lens == NULL) {
        free(n);
        return -ENOMEM;
    }
    rv = node__open_disk(n);
    if (rv != 0) {
        goto err_after_alloc;
    }
    n->watch_next = calloc(1, sizeof(*n->watch_next));
    rv = n->watch_next != NULL ? node__watch_open(n) : -ENOMEM;
    if (rv != 0) {
        goto err_after_disk;
    }
    rv = node__start_raft(n);
    if (rv != 0) {
        goto err_after_disk;
    }
    rv = node__io_start(&n->io, loop, n->log, n->store, &n->logger,
                        node__io_done_cb, n);
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
    node__step(n, &ev);
    *out = n;
    return 0;

err_after_io:
    node__io_stop(&n->io);
    uv_close((uv_handle_t*)&n->io.done_async, NULL);
err_after_raft:
    node__raft_free(n);
err_after_disk:
    node__watch_close(n);
    free(n->watch_next);
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
        node__fail_waiter(n, n->whead, err);
    }
    while (n->reads != NULL) {
        node__complete_read(n, n->reads, err);
    }
    n->depth--;
    node__drain_completions(n);
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
        node__watch_close(n);
        free(n->watch_next);
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
    tls_config_free(n->own_tls); /* the sessions that used it are gone */
    n->own_tls = NULL;
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
    node__log(n, RAFT_TRACE_INFO, "node stopped cleanly");
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

/* ---- the node's log ---- */

void node__log(const struct node* n, int level, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    node__log_va(&n->logger, level, fmt, ap);
    va_end(ap);
}

void node_log(struct node* n, int level, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    node__log_va(&n->logger, level, fmt, ap);
    va_end(ap);
}

void node_log_tee(struct node* n, int fd, int min_level)
{
    n->logger.tee_level = min_level;
    n->logger.tee_fd = fd;
}
