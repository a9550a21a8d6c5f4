/* node_retention.c - history retention, the node's policy for how much
 * history the store keeps (node.h, "History retention"; docs/snapshots.md).
 *
 * On the leader, every NODE_RETENTION_CHECK_MS the history kept by the
 * store is compared with node_options.history_revisions and history_hours
 * (from samples of (time, revision) taken as the revision moves); past
 * either, one STORE_OP_COMPACT is proposed, at most one per
 * NODE_COMPACT_GAP_MIN_MS. Past history_bytes (checked every
 * NODE_RETENTION_TICK_MS, at most one compaction per
 * NODE_RETENTION_CHECK_MS) the history is cut to half of it. Every tick, on
 * every node, the db file is rewritten when the compact revision moved
 * (node_compact_db). The owner starts it once the node runs and closes it
 * before the node stops; memory is freed once its timer has closed and no
 * compaction it proposed is waiting for its answer. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node.h"
#include "node_internal.h"

struct retention_sample {
    uint64_t ms; /* CLOCK_REALTIME */
    uint64_t revision;
};

struct node_retention {
    struct node* n;
    uv_timer_t timer;
    bool timer_open;
    bool closing;
    bool compact_inflight;
    uint64_t last_compact_ms;
    uint64_t last_retention_ms;
    struct retention_sample* samples; /* ring of NODE_RETENTION_SAMPLES */
    size_t s_head, s_count;
    uint64_t bytes_target_sent; /* last target proposed for history_bytes */
};

static void maybe_free(struct node_retention* c)
{
    if (c->closing && !c->timer_open && !c->compact_inflight) {
        free(c->samples);
        free(c);
    }
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sample_push(struct node_retention* c,
                        uint64_t now,
                        uint64_t revision)
{
    uint64_t hours = node_options_of(c->n)->history_hours;
    uint64_t gap = hours * 3600 * 1000 / NODE_RETENTION_SAMPLES;
    struct retention_sample* last =
        c->s_count == 0 ? NULL
                        : &c->samples[(c->s_head + c->s_count - 1) %
                                      NODE_RETENTION_SAMPLES];

    if (last != NULL && (last->revision == revision || now < last->ms + gap)) {
        return;
    }
    if (c->s_count == NODE_RETENTION_SAMPLES) {
        c->s_head = (c->s_head + 1) % NODE_RETENTION_SAMPLES;
        c->s_count--;
    }
    /* clang-tidy false positive: samples is allocated with the ctl; the path
     * assumes it NULL with s_count > 0. */
    // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
    c->samples[(c->s_head + c->s_count) % NODE_RETENTION_SAMPLES] =
        (struct retention_sample){.ms = now, .revision = revision};
    c->s_count++;
}

/* The newest revision sampled at or before `when` (0: none known). */
static uint64_t revision_at(const struct node_retention* c, uint64_t when)
{
    uint64_t rev = 0;
    for (size_t i = 0; i < c->s_count; i++) {
        const struct retention_sample* s =
            &c->samples[(c->s_head + i) % NODE_RETENTION_SAMPLES];
        if (s->ms > when) {
            break;
        }
        rev = s->revision;
    }
    return rev;
}

/* --history-bytes: when more than the limit was applied after the compact
 * revision, the revision after which about half of it was applied (so a
 * db rewrite costs about what was written since the last one); else 0.
 * Known from the samples of this node's run only. */
static uint64_t bytes_target(const struct node_retention* c,
                             const struct store_stats* s)
{
    uint64_t limit = node_options_of(c->n)->history_bytes;
    uint64_t now = node_applied_bytes(c->n);
    uint64_t target = 0;
    bool over = false;

    uint64_t rev, bytes;
    for (size_t i = 0; limit > 0 && node_history_sample(c->n, i, &rev, &bytes);
         i++) {
        if (rev >= s->compact_revision && now - bytes > limit) {
            over = true; /* history since the compact revision is too big */
        }
        if (now - bytes >= limit / 2) {
            target = rev + 1; /* keep what came after this sample */
        }
    }
    if (!over || target > s->revision) {
        return over ? s->revision : 0;
    }
    return target > s->compact_revision ? target : 0;
}

static void retention_done_cb(void* data, const struct store_result* res)
{
    struct node_retention* c = data;
    c->compact_inflight = false;
    if (res->err != 0 && res->err != -ESHUTDOWN) {
        node_log(c->n, RAFT_TRACE_WARN, "automatic compaction: %s",
                 strerror(-res->err));
    }
    maybe_free(c);
}

/* The revision to compact to now, 0 for none: history is bounded by both
 * limits (a limit of 0 is off). */
static uint64_t retention_target(struct node_retention* c,
                                 const struct store_stats* s,
                                 uint64_t now)
{
    uint64_t keep = node_options_of(c->n)->history_revisions;
    uint64_t hours = node_options_of(c->n)->history_hours;
    uint64_t target = 0;

    if (keep > 0 && s->revision > keep) {
        uint64_t slack = keep / 10 > 0 ? keep / 10 : 1;
        if (s->revision - s->compact_revision > keep + slack) {
            target = s->revision - keep;
        }
    }
    if (hours > 0 && now > hours * 3600 * 1000) {
        uint64_t old = revision_at(c, now - hours * 3600 * 1000);
        if (old > target && old > s->compact_revision) {
            target = old + 1; /* forget what is older than `hours` */
        }
    }
    if (target > s->revision) {
        target = s->revision;
    }
    return target > s->compact_revision ? target : 0;
}

static void retention_cb(uv_timer_t* t)
{
    struct node_retention* c = t->data;
    struct store_stats s;
    uint64_t now = wall_ms();

    node_compact_db(c->n); /* -EALREADY / -EBUSY / -EAGAIN: next tick */
    store_get_stats(node_store(c->n), &s);
    bool check = now >= c->last_retention_ms + NODE_RETENTION_CHECK_MS;
    if (check) {
        c->last_retention_ms = now;
        sample_push(c, now, s.revision);
    }
    if (c->compact_inflight || !node_is_leader(c->n)) {
        return;
    }
    uint64_t target = 0;
    if (now >= c->last_compact_ms + NODE_RETENTION_CHECK_MS) {
        target = bytes_target(c, &s); /* write volume: no minute's gap */
        if (target <= c->bytes_target_sent) {
            target = 0; /* clamped by a named snapshot: nothing new */
        }
    }
    if (target != 0) {
        c->bytes_target_sent = target;
    } else if (check && (c->last_compact_ms == 0 ||
                         now >= c->last_compact_ms + NODE_COMPACT_GAP_MIN_MS)) {
        target = retention_target(c, &s, now);
    }
    if (target == 0) {
        return;
    }
    struct store_cmd cmd = {.op = STORE_OP_COMPACT, .size = target};
    c->compact_inflight = true;
    c->last_compact_ms = now;
    node_log(c->n, RAFT_TRACE_INFO,
             "history retention: compacting revisions before %" PRIu64
             " (revision %" PRIu64 ", compact revision %" PRIu64 ")",
             target, s.revision, s.compact_revision);
    if (node_propose(c->n, &cmd, retention_done_cb, c) != 0) {
        c->compact_inflight = false;
    }
}

static void timer_closed_cb(uv_handle_t* h)
{
    struct node_retention* c = h->data;
    c->timer_open = false;
    maybe_free(c);
}

struct node_retention* node_retention_start(uv_loop_t* loop, struct node* n)
{
    struct node_retention* c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->samples = calloc(NODE_RETENTION_SAMPLES, sizeof(*c->samples));
    if (c->samples == NULL) {
        free(c);
        return NULL;
    }
    c->n = n;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    uv_timer_start(&c->timer, retention_cb, NODE_RETENTION_TICK_MS,
                   NODE_RETENTION_TICK_MS);
    return c;
}

void node_retention_close(struct node_retention* c)
{
    if (c == NULL || c->closing) {
        return;
    }
    c->closing = true;
    uv_close((uv_handle_t*)&c->timer, timer_closed_cb);
}
