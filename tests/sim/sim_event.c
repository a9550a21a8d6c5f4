/* sim_event.c - the event queue (a binary heap on (time, sequence)) and
 * event processing: deliveries, disk completions, ticks, restarts, and the
 * run loop that checks after every event. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- event queue (binary heap on (t, seq)) ---- */

static bool ev_before(const struct sim_ev* a, const struct sim_ev* b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

void sim__heap_push(struct sim* s, struct sim_ev ev)
{
    if (s->n_heap >= SIM_EVENTS_MAX) {
        sim__msg_free(ev.msg);
        sim__violate(s, "harness: more than %u queued events",
                     (unsigned)SIM_EVENTS_MAX);
        return;
    }
    if (s->n_heap == s->heap_cap) {
        s->heap_cap *= 2;
        s->heap = sim__xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    ev.seq = s->seq++;
    unsigned i = s->n_heap++;
    while (i > 0) {
        unsigned p = (i - 1) / 2;
        if (!ev_before(&ev, &s->heap[p])) {
            break;
        }
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = ev;
}

struct sim_ev sim__heap_pop(struct sim* s)
{
    assert(s->n_heap > 0);
    struct sim_ev top = s->heap[0];
    struct sim_ev last = s->heap[--s->n_heap];
    unsigned i = 0;
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= s->n_heap) {
            break;
        }
        if (c + 1 < s->n_heap && ev_before(&s->heap[c + 1], &s->heap[c])) {
            c++;
        }
        if (!ev_before(&s->heap[c], &last)) {
            break;
        }
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* ---- event processing ---- */

/* The image of install write w is on the disk: the app takes it, then the
 * core hears RAFT_EV_SNAPSHOT_INSTALLED. */
static void install_done(struct sim* s, struct sim_node* n, struct sim_write* w)
{
    n->snap = w->meta;
    free(n->image);
    n->image = w->image;
    n->image_len = w->image_len;
    w->image = NULL;
    sim__log_reset(&n->disk, w->meta.index, w->meta.term);
    if (s->failed) {
        return;
    }
    struct sim_sm sm;
    memset(&sm, 0, sizeof sm);
    if (sim__image_decode(&sm, n->image, n->image_len) != 0 ||
        sm.applied != w->meta.index) {
        sim__violate(s, "n%" PRIu64 " received a corrupt snapshot image",
                     n->id);
    } else if (sm.applied < n->sm.applied) {
        sim__violate(s,
                     "n%" PRIu64 " snapshot %" PRIu64
                     " would roll back applied %" PRIu64,
                     n->id, sm.applied, n->sm.applied);
    } else {
        n->sm = sm;
        n->last_compact = sm.applied;
        s->installs++;
        checker__on_install(s, n, &w->meta);
        sim__serve_reads(s, n);
        struct raft_event ev = {.type = RAFT_EV_SNAPSHOT_INSTALLED};
        ev.installed.meta = w->meta;
        sim__node_step(s, n, &ev);
    }
}

/* Batch b is on the disk: the disk log and hard state take it, then the
 * driver sends its messages and reports it persisted. */
static void batch_done(struct sim* s, struct sim_node* n, struct raft_batch* b)
{
    if (b->truncate_from != 0) {
        sim__log_truncate(&n->disk, b->truncate_from);
    }
    for (unsigned i = 0; i < b->n_entries; i++) {
        const struct raft_entry* e = &b->entries[i];
        if (e->index != sim__log_last(&n->disk) + 1) {
            sim__violate(s, "contract: n%" PRIu64 " disk append not contiguous",
                         n->id);
            break;
        }
        void* data = sim__xcalloc(1, e->data.len + 1);
        memcpy(data, e->data.base, e->data.len);
        sim__log_push(&n->disk,
                      &(struct sim_ent){.term = e->term,
                                        .type = e->type,
                                        .len = (uint32_t)e->data.len,
                                        .hash = sim__entry_hash(
                                            e->type, e->data.base, e->data.len),
                                        .data = data});
    }
    if (b->hard_state_changed) {
        n->hs = b->hard_state;
    }
    raft_driver_persisted(n->d, b);
    while (n->compact_due && n->alive && !s->failed) {
        n->compact_due = false;
        sim_compact(s, n->id, n->compact_keep);
    }
}

static void disk_done(struct sim* s, struct sim_node* n)
{
    struct sim_write* w = n->wq_head;
    assert(w != NULL && w->done_ms <= s->now);
    n->wq_head = w->next;
    if (n->wq_head == NULL) {
        n->wq_tail = NULL;
    }
    if (w->batch != NULL) {
        batch_done(s, n, w->batch);
    } else {
        install_done(s, n, w);
    }
    sim__write_free(w);
}

static void process(struct sim* s, struct sim_ev* ev)
{
    struct sim_node* n = &s->nodes[ev->node];
    switch (ev->kind) {
    case SIM_EV_DELIVER: {
        struct sim_node* to = &s->nodes[ev->msg->m.to];
        char d[160] = "";
        if (s->cfg.trace) {
            sim__msg_describe(&ev->msg->m, d, sizeof d);
        }
        if (!to->alive || s->blocked[ev->msg->m.from][ev->msg->m.to]) {
            sim__trace(s, "lost %s", d);
        } else if (ev->msg->from_inc != s->nodes[ev->msg->m.from].incarnation) {
            /* As raft/transport.c: once a node's new incarnation has said
             * HELLO, what its previous process sent is dropped. */
            sim__trace(s, "lost (old incarnation) %s", d);
        } else {
            sim__trace(s, "recv %s", d);
            struct raft_event rev = {.type = RAFT_EV_RECEIVE, .now_ms = s->now};
            rev.msg = &ev->msg->m;
            sim__node_step(s, to, &rev);
        }
        sim__msg_free(ev->msg);
        break;
    }
    case SIM_EV_DISK:
        if (n->alive && n->incarnation == ev->gen) {
            disk_done(s, n);
        }
        break;
    case SIM_EV_TICK:
        if (n->alive && n->tick_gen == ev->gen) {
            n->tick_pending = false;
            struct raft_event tev = {.type = RAFT_EV_TICK, .now_ms = s->now};
            sim__node_step(s, n, &tev);
        }
        break;
    case SIM_EV_RESTART:
        sim_restart(s, ev->node);
        break;
    default:
        assert(0);
    }
}

uint64_t sim_now(const struct sim* s)
{
    return s->now;
}

static int run(struct sim* s,
               uint64_t end,
               bool (*pred)(struct sim*, void*),
               void* arg)
{
    while (!s->failed) {
        if (pred != NULL && pred(s, arg)) {
            return 0;
        }
        if (s->n_heap == 0 || s->heap[0].t > end) {
            break;
        }
        struct sim_ev ev = sim__heap_pop(s);
        s->now = ev.t;
        process(s, &ev);
        checker__after_event(s);
    }
    if (s->failed) {
        return -1;
    }
    if (s->now < end) {
        s->now = end;
    }
    return pred != NULL ? (pred(s, arg) ? 0 : -ETIMEDOUT) : 0;
}

int sim_run_for(struct sim* s, uint64_t ms)
{
    return run(s, s->now + ms, NULL, NULL);
}

int sim_run_until(struct sim* s,
                  bool (*pred)(struct sim*, void*),
                  void* arg,
                  uint64_t max_ms)
{
    return run(s, s->now + max_ms, pred, arg);
}

void sim__schedule_restart(struct sim* s, raft_id id, uint64_t at);
void sim__schedule_restart(struct sim* s, raft_id id, uint64_t at)
{
    sim__heap_push(
        s,
        (struct sim_ev){.t = at, .kind = SIM_EV_RESTART, .node = (uint8_t)id});
}
