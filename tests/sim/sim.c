/* sim.c - the simulated cluster: event queue, network, disks, apps.
 * Contract in sim.h. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../../raft/util/bytes.h"
#include "sim_internal.h"

#define IMAGE_MAGIC 0x51465353494d494dull /* "QFSSIMIM" */
enum { IMAGE_HDR_BYTES = 48 };

/* ---- small utilities ---- */

static void* xcalloc(size_t n, size_t size)
{
    void* p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

static void* xrealloc(void* p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

uint64_t sim_rand(struct sim* s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

unsigned sim_rand_below(struct sim* s, unsigned n)
{
    assert(n > 0);
    return (unsigned)(sim_rand(s) % n);
}

static unsigned rand_range(struct sim* s, unsigned lo, unsigned hi)
{
    return hi <= lo ? lo : lo + sim_rand_below(s, hi - lo + 1);
}

uint64_t sim__hash(uint64_t h, const void* p, size_t n)
{
    const uint8_t* b = p;
    h ^= 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t entry_hash(uint8_t type, const void* data, size_t len)
{
    return sim__hash(sim__hash(0, &type, 1), data, len);
}

void sim__violate(struct sim* s, const char* fmt, ...)
{
    if (s->failed) {
        return;
    }
    s->failed = true;
    int k = snprintf(s->violation, sizeof s->violation,
                     "t=%" PRIu64 "ms: ", s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->violation + k, sizeof s->violation - (size_t)k, fmt, ap);
    va_end(ap);
    sim__trace(s, "VIOLATION %s", s->violation);
}

void sim__trace(struct sim* s, const char* fmt, ...)
{
    if (!s->cfg.trace) {
        return;
    }
    char* line = s->trace[s->trace_n % SIM_TRACE_LINES];
    int k = snprintf(line, SIM_TRACE_LINE_MAX, "%8" PRIu64 " ", s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, SIM_TRACE_LINE_MAX - (size_t)k, fmt, ap);
    va_end(ap);
    s->trace_n++;
    if (s->cfg.trace_out != NULL) {
        fprintf(s->cfg.trace_out, "%s\n", line);
    }
}

void sim_note(struct sim* s, const char* fmt, ...)
{
    if (!s->cfg.trace) {
        return;
    }
    char buf[SIM_TRACE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sim__trace(s, "-- %s", buf);
}

void sim_trace_dump(const struct sim* s, FILE* f, unsigned lines)
{
    unsigned n = s->trace_n < SIM_TRACE_LINES ? s->trace_n : SIM_TRACE_LINES;
    if (lines < n) {
        n = lines;
    }
    for (unsigned i = s->trace_n - n; i < s->trace_n; i++) {
        fprintf(f, "%s\n", s->trace[i % SIM_TRACE_LINES]);
    }
}

static void core_trace(void* data, int level, raft_id node, const char* msg)
{
    struct sim* s = data;
    sim__trace(s, "   n%" PRIu64 " core[%d]: %s", node, level, msg);
}

/* ---- logs ---- */

raft_index sim__log_last(const struct sim_log* l)
{
    return l->base + l->n;
}

raft_term sim__log_term(const struct sim_log* l, raft_index i)
{
    if (i == l->base) {
        return l->base_term;
    }
    if (i < l->base || i > l->base + l->n) {
        return 0;
    }
    return l->e[i - l->base - 1].term;
}

static void log_push(struct sim_log* l, const struct sim_ent* e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->e = xrealloc(l->e, l->cap * sizeof *l->e);
    }
    l->e[l->n++] = *e;
}

static void log_truncate(struct sim_log* l, raft_index from)
{
    while (l->n > 0 && l->base + l->n >= from) {
        free(l->e[--l->n].data);
    }
}

static void log_reset(struct sim_log* l, raft_index base, raft_term term)
{
    log_truncate(l, 0);
    l->base = base;
    l->base_term = term;
}

/* Drop entries < keep_from (they are covered by a snapshot). */
static void log_drop_before(struct sim_log* l, raft_index keep_from)
{
    if (keep_from <= l->base + 1) {
        return;
    }
    raft_index drop = keep_from - l->base - 1;
    if (drop > l->n) {
        drop = l->n;
    }
    raft_term t = sim__log_term(l, l->base + drop);
    for (raft_index i = 0; i < drop; i++) {
        free(l->e[i].data);
    }
    memmove(l->e, l->e + drop, (l->n - drop) * sizeof *l->e);
    l->n -= (unsigned)drop;
    l->base += drop;
    l->base_term = t;
}

static void log_free(struct sim_log* l)
{
    log_truncate(l, 0);
    free(l->e);
    memset(l, 0, sizeof *l);
}

/* ---- messages ---- */

static struct sim_msg* msg_copy(const struct raft_message* src)
{
    struct sim_msg* c = xcalloc(1, sizeof *c);
    if (raft_msg_clone(&c->m, src) != 0) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return c;
}

static void msg_free(struct sim_msg* c)
{
    if (c != NULL) {
        raft_msg_free(&c->m);
        free(c);
    }
}

static void msg_describe(const struct raft_message* m, char* buf, size_t cap)
{
    int k = snprintf(buf, cap, "%s %" PRIu64 "->%" PRIu64 " t%" PRIu64,
                     raft_msg_type_name(m->type), m->from, m->to, m->term);
    if (k < 0 || (size_t)k >= cap) {
        return;
    }
    buf += k;
    cap -= (size_t)k;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        snprintf(buf, cap,
                 " prev=%" PRIu64 "/t%" PRIu64 " n=%u commit=%" PRIu64
                 " rs=%" PRIu64,
                 m->append.prev_index, m->append.prev_term, m->append.n_entries,
                 m->append.commit, m->append.read_seq);
        break;
    case RAFT_MSG_APPEND_RESP:
        snprintf(buf, cap,
                 " %s index=%" PRIu64 " last=%" PRIu64 " ct=%" PRIu64
                 " ci=%" PRIu64,
                 m->append_resp.reject ? "REJECT" : "ok", m->append_resp.index,
                 m->append_resp.last_index, m->append_resp.conflict_term,
                 m->append_resp.conflict_index);
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        snprintf(buf, cap, " last=%" PRIu64 "/t%" PRIu64 "%s",
                 m->vote.last_index, m->vote.last_term,
                 m->vote.transfer ? " transfer" : "");
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        snprintf(buf, cap, " %s", m->vote_resp.granted ? "GRANTED" : "denied");
        break;
    case RAFT_MSG_SNAPSHOT:
        snprintf(buf, cap,
                 " snap=%" PRIu64 "/t%" PRIu64 " off=%" PRIu64
                 " len=%zu total=%" PRIu64,
                 m->snapshot.meta.index, m->snapshot.meta.term,
                 m->snapshot.offset, m->snapshot.chunk.len, m->snapshot.total);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        snprintf(buf, cap, " index=%" PRIu64 " next=%" PRIu64 "%s%s",
                 m->snapshot_resp.index, m->snapshot_resp.next_offset,
                 m->snapshot_resp.done ? " done" : "",
                 m->snapshot_resp.reject ? " REJECT" : "");
        break;
    case RAFT_MSG_PROPOSE:
        snprintf(buf, cap, " n=%u", m->propose.n);
        break;
    case RAFT_MSG_PROPOSE_RESP:
        snprintf(buf, cap, " err=%d n=%u", m->propose_resp.err,
                 m->propose_resp.n);
        break;
    case RAFT_MSG_READ_INDEX:
        snprintf(buf, cap, " ctx=%" PRIu64, m->read_index.ctx);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        snprintf(buf, cap, " ctx=%" PRIu64 " index=%" PRIu64 " err=%d",
                 m->read_index_resp.ctx, m->read_index_resp.index,
                 m->read_index_resp.err);
        break;
    default:
        break;
    }
}

/* ---- event queue (binary heap on (t, seq)) ---- */

static bool ev_before(const struct sim_ev* a, const struct sim_ev* b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void heap_push(struct sim* s, struct sim_ev ev)
{
    if (s->n_heap >= SIM_EVENTS_MAX) {
        msg_free(ev.msg);
        sim__violate(s, "harness: more than %u queued events",
                     (unsigned)SIM_EVENTS_MAX);
        return;
    }
    if (s->n_heap == s->heap_cap) {
        s->heap_cap *= 2;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
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

static struct sim_ev heap_pop(struct sim* s)
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

/* ---- network ---- */

static bool filtered(const struct sim* s, const struct raft_message* m)
{
    for (unsigned i = 0; i < s->n_filters; i++) {
        const struct sim_filter* f = &s->filters[i];
        if (f->from == m->from && f->to == m->to &&
            (f->type == 0 || f->type == m->type)) {
            return true;
        }
    }
    return false;
}

static void net_send(struct sim* s, struct sim_msg* c)
{
    const struct raft_message* m = &c->m;
    char d[160] = "";
    if (s->cfg.trace) {
        msg_describe(m, d, sizeof d);
    }
    if (m->to == 0 || m->to > SIM_NODES_MAX || m->to == m->from) {
        sim__violate(s, "contract: message to bad id (%s)", d);
        msg_free(c);
        return;
    }
    if (s->blocked[m->from][m->to] || filtered(s, m) ||
        sim_rand_below(s, 100) < s->drop_pct) {
        sim__trace(s, "drop %s", d);
        msg_free(c);
        return;
    }
    uint64_t delay = rand_range(s, s->cfg.delay_min_ms, s->cfg.delay_max_ms);
    c->from_inc = s->nodes[m->from].incarnation;
    if (sim_rand_below(s, 100) < s->dup_pct) {
        uint64_t d2 = rand_range(s, s->cfg.delay_min_ms, s->cfg.delay_max_ms);
        struct sim_msg* dup = msg_copy(m);
        dup->from_inc = c->from_inc;
        heap_push(s, (struct sim_ev){
                         .t = s->now + d2, .kind = SIM_EV_DELIVER, .msg = dup});
        sim__trace(s, "send(dup) %s", d);
    }
    sim__trace(s, "send %s", d);
    s->sent[m->from][m->to]++;
    heap_push(s, (struct sim_ev){
                     .t = s->now + delay, .kind = SIM_EV_DELIVER, .msg = c});
}

void sim_block(struct sim* s, raft_id from, raft_id to, bool blocked)
{
    assert(from >= 1 && from <= SIM_NODES_MAX && to >= 1 &&
           to <= SIM_NODES_MAX);
    s->blocked[from][to] = blocked;
    sim__trace(s, "net %s %" PRIu64 "->%" PRIu64, blocked ? "BLOCK" : "unblock",
               from, to);
}

void sim_isolate(struct sim* s, raft_id id)
{
    for (raft_id j = 1; j <= SIM_NODES_MAX; j++) {
        if (j != id) {
            s->blocked[id][j] = s->blocked[j][id] = true;
        }
    }
    sim__trace(s, "net ISOLATE n%" PRIu64, id);
}

void sim_heal(struct sim* s)
{
    memset(s->blocked, 0, sizeof s->blocked);
    s->n_filters = 0;
    sim__trace(s, "net HEAL");
}

void sim_set_faults(struct sim* s, unsigned drop_pct, unsigned dup_pct)
{
    s->drop_pct = drop_pct;
    s->dup_pct = dup_pct;
}

void sim_set_disk_delay(struct sim* s, raft_id id, unsigned ms)
{
    assert(id >= 1 && id <= SIM_NODES_MAX);
    s->disk_extra_ms[id] = ms;
}

void sim_filter(struct sim* s, raft_id from, raft_id to, int type, bool on)
{
    for (unsigned i = 0; i < s->n_filters; i++) {
        struct sim_filter* f = &s->filters[i];
        if (f->from == from && f->to == to && f->type == type) {
            if (!on) {
                *f = s->filters[--s->n_filters];
            }
            return;
        }
    }
    if (on) {
        assert(s->n_filters < sizeof s->filters / sizeof s->filters[0]);
        s->filters[s->n_filters++] = (struct sim_filter){from, to, type};
    }
}

/* ---- the application ---- */

static size_t image_encode(const struct sim_sm* sm, void** out)
{
    size_t conf_len = raft_conf_encoded_size(&sm->conf);
    uint8_t* p = xcalloc(1, IMAGE_HDR_BYTES + conf_len);
    put_le64(p, IMAGE_MAGIC);
    put_le64(p + 8, sm->applied);
    put_le64(p + 16, sm->count);
    put_le64(p + 24, sm->hash);
    put_le64(p + 32, sm->conf_index);
    put_le64(p + 40, conf_len);
    int rc = raft_conf_encode(&sm->conf, p + IMAGE_HDR_BYTES, conf_len);
    assert(rc == (int)conf_len);
    (void)rc;
    *out = p;
    return IMAGE_HDR_BYTES + conf_len;
}

static int image_decode(struct sim_sm* sm, const void* img, size_t len)
{
    const uint8_t* p = img;
    if (len < IMAGE_HDR_BYTES || get_le64(p) != IMAGE_MAGIC ||
        get_le64(p + 40) != len - IMAGE_HDR_BYTES) {
        return -EINVAL;
    }
    sm->applied = get_le64(p + 8);
    sm->count = get_le64(p + 16);
    sm->hash = get_le64(p + 24);
    sm->conf_index = get_le64(p + 32);
    return raft_conf_decode(&sm->conf, p + IMAGE_HDR_BYTES,
                            len - IMAGE_HDR_BYTES);
}

static void serve_reads(struct sim* s, struct sim_node* n)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n->n_reads; i++) {
        struct sim_read_req* rq = &n->reads[i];
        if (n->sm.applied >= rq->index) {
            checker__on_read(s, n, rq);
            s->reads[rq->ctx].served = n->sm.applied;
            sim__trace(s,
                       "n%" PRIu64 " read ctx=%" PRIu64 " served at %" PRIu64
                       " (index %" PRIu64 ", required %" PRIu64 ")",
                       n->id, rq->ctx, n->sm.applied, rq->index, rq->required);
        } else {
            n->reads[k++] = *rq;
        }
    }
    n->n_reads = k;
}

static void sm_apply(struct sim* s,
                     struct sim_node* n,
                     const struct raft_entry* e)
{
    if (e->index != n->sm.applied + 1) {
        sim__violate(s,
                     "contract: n%" PRIu64 " asked to apply %" PRIu64
                     " after applying %" PRIu64,
                     n->id, e->index, n->sm.applied);
        return;
    }
    if (e->type == RAFT_ENTRY_NORMAL) {
        if (e->data.len != 8) {
            sim__violate(s, "n%" PRIu64 " applied a NORMAL entry of %zu bytes",
                         n->id, e->data.len);
            return;
        }
        uint64_t v = get_le64(e->data.base);
        n->sm.count++;
        n->sm.hash = sim__hash(n->sm.hash, &v, sizeof v);
        if (v >= 1 && v < s->next_value && s->props[v].index == 0) {
            s->props[v].index = e->index;
        }
    } else if (e->type == RAFT_ENTRY_CONF) {
        struct raft_conf c;
        if (raft_conf_decode(&c, e->data.base, e->data.len) != 0) {
            sim__violate(s, "n%" PRIu64 " applied an undecodable CONF entry",
                         n->id);
            return;
        }
        n->sm.conf = c;
        n->sm.conf_index = e->index;
    }
    n->sm.applied = e->index;
    checker__on_apply(s, n, e);
}

/* ---- nodes ---- */

static int node_step(struct sim* s,
                     struct sim_node* n,
                     const struct raft_event* ev);

static void schedule_tick(struct sim* s, struct sim_node* n, uint64_t at)
{
    if (at <= s->now) {
        at = s->now + 1;
    }
    /* A pending earlier tick stays: "at the latest" allows early ticks, and
     * replacing it would starve the timer of a node that gets an update
     * every millisecond. */
    if (n->tick_pending && n->tick_at <= at) {
        return;
    }
    n->tick_pending = true;
    n->tick_at = at;
    n->tick_gen++;
    heap_push(s, (struct sim_ev){.t = at,
                                 .kind = SIM_EV_TICK,
                                 .node = (uint8_t)n->id,
                                 .gen = n->tick_gen});
}

static void write_free(struct sim_write* w)
{
    free(w->image);
    free(w);
}

/* Queues w on n's disk: writes complete in order; a write joins the one
 * waiting behind the write in flight (group commit: same fsync, same
 * completion time); one that makes nothing durable (messages waiting
 * behind earlier writes) takes no disk time of its own. */
static void disk_submit(struct sim* s,
                        struct sim_node* n,
                        struct sim_write* w,
                        bool durable)
{
    if (n->wq_tail != NULL && n->wq_tail != n->wq_head) {
        w->done_ms = n->wq_tail->done_ms;
    } else {
        uint64_t start = n->disk_free_ms > s->now ? n->disk_free_ms : s->now;
        w->done_ms = start + (durable ? rand_range(s, s->cfg.disk_min_ms,
                                                   s->cfg.disk_max_ms) +
                                            s->disk_extra_ms[n->id]
                                      : 0);
    }
    n->disk_free_ms = w->done_ms;
    if (n->wq_tail != NULL) {
        n->wq_tail->next = w;
    } else {
        n->wq_head = w;
    }
    n->wq_tail = w;
    heap_push(s, (struct sim_ev){.t = w->done_ms,
                                 .kind = SIM_EV_DISK,
                                 .node = (uint8_t)n->id,
                                 .gen = n->incarnation});
}

/* Step 1 of the contract, as seen by the core: the shadow log changes now,
 * the disk when the write completes. */
static void shadow_update(struct sim* s,
                          struct sim_node* n,
                          const struct raft_update* u)
{
    if (u->snapshot_install) {
        /* entries after the snapshot are dropped too: none may be
         * committed (a stale snapshot must be ignored) */
        checker__on_truncate(s, n, u->snapshot_meta.index + 1);
        log_reset(&n->shadow, u->snapshot_meta.index, u->snapshot_meta.term);
    }
    if (u->truncate_from != 0) {
        checker__on_truncate(s, n, u->truncate_from);
        log_truncate(&n->shadow, u->truncate_from);
    }
    for (unsigned i = 0; i < u->n_entries && !s->failed; i++) {
        const struct raft_entry* e = &u->entries[i];
        raft_index last = sim__log_last(&n->shadow);
        if (e->index != last + 1) {
            sim__violate(s,
                         "contract: n%" PRIu64 " appends index %" PRIu64
                         " after last %" PRIu64 " (truncate_from %" PRIu64 ")",
                         n->id, e->index, last, u->truncate_from);
            return;
        }
        raft_term prev = e->index - 1 < n->shadow.base
                             ? UINT64_MAX
                             : sim__log_term(&n->shadow, e->index - 1);
        checker__on_append(s, n, e, prev);
        log_push(&n->shadow,
                 &(struct sim_ent){
                     .term = e->term,
                     .type = e->type,
                     .len = (uint32_t)e->data.len,
                     .hash = entry_hash(e->type, e->data.base, e->data.len)});
    }
    if (u->n_entries > 0 &&
        (u->persist_index != u->entries[u->n_entries - 1].index ||
         u->persist_term != u->entries[u->n_entries - 1].term)) {
        sim__violate(s, "contract: n%" PRIu64 " persist_index/term mismatch",
                     n->id);
    }
}

/* ---- the driver's callbacks (raft/driver.h) ---- */

static uint64_t ops_now(void* data)
{
    struct sim_node* n = data;
    return n->sim->now;
}

static void ops_send(void* data, const struct raft_message* m)
{
    struct sim_node* n = data;
    net_send(n->sim, msg_copy(m));
}

/* Step 1, a received image: written to the disk before the update's
 * batch (the driver submits that after this returns). */
static void ops_install(void* data, const struct raft_update* u)
{
    struct sim_node* n = data;
    struct sim_write* w = xcalloc(1, sizeof *w);
    w->meta = u->snapshot_meta;
    w->image_len = u->snapshot_image.len;
    w->image = xcalloc(1, w->image_len);
    memcpy(w->image, u->snapshot_image.base, w->image_len);
    disk_submit(n->sim, n, w, true);
}

static void ops_persist(void* data, struct raft_batch* b)
{
    struct sim_node* n = data;
    struct sim_write* w = xcalloc(1, sizeof *w);
    w->batch = b;
    bool durable =
        b->truncate_from != 0 || b->n_entries > 0 || b->hard_state_changed;
    disk_submit(n->sim, n, w, durable);
}

/* Steps 3 and 4 of an update, and the checks on it. */
static void ops_update(void* data, int rc, const struct raft_update* u)
{
    struct sim_node* n = data;
    struct sim* s = n->sim;
    bool rewrote = u->truncate_from != 0 || u->snapshot_install;
    shadow_update(s, n, u);
    for (unsigned i = 0; i < u->n_committed && !s->failed; i++) {
        sm_apply(s, n, &u->committed[i]);
    }
    for (unsigned i = 0; i < u->n_reads; i++) {
        const struct raft_read* r = &u->reads[i];
        if (r->ctx == 0 || r->ctx >= s->next_read ||
            n->n_reads >= SIM_READS_MAX) {
            sim__violate(s, "n%" PRIu64 " reported unknown read ctx %" PRIu64,
                         n->id, r->ctx);
            break;
        }
        n->reads[n->n_reads++] =
            (struct sim_read_req){.ctx = r->ctx,
                                  .index = r->index,
                                  .required = s->reads[r->ctx].required};
    }
    for (unsigned i = 0; i < u->n_failed_reads; i++) {
        uint64_t c = u->failed_reads[i].ctx;
        if (c > 0 && c < s->next_read) {
            s->reads[c].err = u->failed_reads[i].err;
        }
    }
    for (unsigned i = 0; i < u->n_failed_proposals; i++) {
        uint64_t c = u->failed_proposals[i].ctx;
        if (c > 0 && c < s->next_value) {
            s->props[c].err = u->failed_proposals[i].err;
        }
    }
    serve_reads(s, n);
    uint64_t next = u->next_timeout_ms;
    if (s->cfg.trace) {
        sim__trace(
            s,
            "n%" PRIu64 " update rc=%d trunc=%" PRIu64
            " ents=%u hs=%d(t%" PRIu64 " v%" PRIu64 " c%" PRIu64
            ") snap=%d msgs=%u commit=%u reads=%u next=%" PRIu64,
            n->id, rc, u->truncate_from, u->n_entries, u->hard_state_changed,
            u->hard_state.term, u->hard_state.vote, u->hard_state.commit,
            u->snapshot_install, u->n_msgs, u->n_committed, u->n_reads, next);
    }
    /* u is dead from here on: raft_* queries may invalidate it. */
    schedule_tick(s, n, next ? next : s->now + s->cfg.election_ms);
    if (rewrote && raft_role(n->r) == RAFT_LEADER) {
        sim__violate(s,
                     "leader append-only: leader n%" PRIu64
                     " truncated or replaced its log",
                     n->id);
    }
    if (s->cfg.compact_every != 0 &&
        n->sm.applied >= n->last_compact + s->cfg.compact_every && !s->failed) {
        /* Not here: the core is never stepped inside an update's
         * handling. node_step runs it once the update is done. */
        raft_index keep = 0;
        if (sim_rand_below(s, 3) == 0 && n->sm.applied > 3) {
            keep = n->sm.applied - sim_rand_below(s, 3);
        }
        n->compact_due = true;
        n->compact_keep = keep;
    }
}

/* Steps ev through n's driver, then a compaction the update asked for. */
static int node_step(struct sim* s,
                     struct sim_node* n,
                     const struct raft_event* ev)
{
    assert(n->alive);
    int rc = raft_driver_step(n->d, *ev);
    while (n->compact_due && n->alive && !s->failed) {
        n->compact_due = false;
        sim_compact(s, n->id, n->compact_keep);
    }
    return rc;
}

/* A new core for n (n->r), driven by a new driver (n->d). */
static void node_new_core(struct sim* s, struct sim_node* n)
{
    struct raft_options o;
    raft_options_default(&o);
    o.id = n->id;
    o.seed = s->cfg.seed * 1000003u + n->id * 7919u + n->incarnation;
    o.heartbeat_ms = s->cfg.heartbeat_ms;
    o.election_ms = s->cfg.election_ms;
    o.pre_vote = s->cfg.pre_vote;
    o.check_quorum = s->cfg.check_quorum;
    o.bug_commit_old_term = s->cfg.bug_commit_old_term;
    o.catch_up_first = n->catch_up;
    if (s->cfg.trace) {
        o.tracer = (struct raft_tracer){
            .data = s, .emit = core_trace, .level = RAFT_TRACE_DEBUG};
    }
    n->r = raft_new(&o);
    struct raft_driver_ops ops = {.data = n,
                                  .now_ms = ops_now,
                                  .send = ops_send,
                                  .install = ops_install,
                                  .persist = ops_persist,
                                  .update = ops_update};
    n->sim = s;
    n->d = n->r != NULL ? raft_driver_new(n->r, &ops) : NULL;
    if (n->d == NULL) {
        fprintf(stderr, "sim: raft_new or raft_driver_new failed\n");
        abort();
    }
}

static void node_wipe(struct sim_node* n)
{
    while (n->wq_head != NULL) {
        struct sim_write* w = n->wq_head;
        n->wq_head = w->next;
        write_free(w);
    }
    n->wq_tail = NULL;
    n->compact_due = false;
    if (n->r != NULL) {
        /* As fs/node_boot.c's marker file: a node that had not caught up
         * when it crashed still has not after its restart. */
        n->catch_up = raft_catching_up(n->r);
        raft_driver_free(n->d); /* the batches in flight are lost */
        n->d = NULL;
        raft_free(n->r);
        n->r = NULL;
    }
    n->alive = false;
}

/* The transport's handshake: peers that can reach the restarted node see
 * its new incarnation (RAFT_EV_PEER_RESTARTED), as fs/node_boot.c reports
 * it. Stepped now: the HELLO precedes the node's first message. */
static void announce_restart(struct sim* s, struct sim_node* n)
{
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        struct sim_node* o = &s->nodes[id];
        if (o == n || !o->alive || s->blocked[n->id][id] ||
            s->blocked[id][n->id]) {
            continue;
        }
        struct raft_event ev = {.type = RAFT_EV_PEER_RESTARTED,
                                .now_ms = s->now};
        ev.peer.id = n->id;
        node_step(s, o, &ev);
    }
}

/* Bring a node up from its disk (restore) and the app from its image. */
static void node_boot(struct sim* s, struct sim_node* n)
{
    n->incarnation++;
    n->tick_pending = false;
    node_new_core(s, n);
    n->alive = true;
    n->disk_free_ms = s->now;
    n->n_reads = 0;
    n->commit_seen = 0;
    memset(&n->sm, 0, sizeof n->sm);
    n->sm.conf = n->snap.conf;
    n->sm.conf_index = n->snap.conf_index;
    if (n->snap.index > 0 &&
        image_decode(&n->sm, n->image, n->image_len) != 0) {
        sim__violate(s, "harness: n%" PRIu64 " image unreadable", n->id);
    }
    n->last_compact = n->sm.applied;
    /* the shadow log restarts as the durable log */
    log_reset(&n->shadow, n->disk.base, n->disk.base_term);
    unsigned first = 0;
    while (first < n->disk.n && n->disk.base + first + 1 <= n->snap.index) {
        first++;
    }
    struct raft_entry* es = xcalloc(n->disk.n, sizeof *es);
    unsigned k = 0;
    for (unsigned i = 0; i < n->disk.n; i++) {
        const struct sim_ent* d = &n->disk.e[i];
        log_push(&n->shadow, &(struct sim_ent){.term = d->term,
                                               .type = d->type,
                                               .len = d->len,
                                               .hash = d->hash});
        if (i >= first) {
            es[k++] = (struct raft_entry){.term = d->term,
                                          .index = n->disk.base + i + 1,
                                          .type = d->type,
                                          .data = {d->data, d->len}};
        }
    }
    sim__trace(s,
               "n%" PRIu64 " BOOT #%u hs=(t%" PRIu64 " v%" PRIu64 " c%" PRIu64
               ") snap=%" PRIu64 " entries=%u",
               n->id, n->incarnation, n->hs.term, n->hs.vote, n->hs.commit,
               n->snap.index, k);
    int rc = raft_restore(n->r, &n->hs, &n->snap, es, k, s->now);
    free(es);
    announce_restart(s, n);
    if (rc != 0) {
        sim__violate(s, "n%" PRIu64 " raft_restore failed: %s", n->id,
                     raft_strerror(rc));
        return;
    }
    schedule_tick(s, n, s->now + 1);
    /* raft_restore takes no image: hand the core the disk's snapshot image
     * at once, so it can send InstallSnapshot to followers that need it. */
    if (n->snap.index > 0) {
        free(n->compact_image);
        n->compact_image = xcalloc(1, n->image_len);
        memcpy(n->compact_image, n->image, n->image_len);
        n->compact_image_len = n->image_len;
        struct raft_event ev = {.type = RAFT_EV_COMPACT, .now_ms = s->now};
        ev.compact.meta = n->snap;
        ev.compact.image = (struct raft_buf){n->compact_image, n->image_len};
        ev.compact.keep_from =
            n->disk.base < n->snap.index ? n->disk.base + 1 : 0;
        int crc = node_step(s, n, &ev);
        if (crc != 0) {
            sim__violate(s, "n%" PRIu64 " refuses its own image at restart: %s",
                         n->id, raft_strerror(crc));
        }
    }
}

void sim_crash(struct sim* s, raft_id id)
{
    struct sim_node* n = &s->nodes[id];
    if (!n->alive) {
        return;
    }
    sim__trace(s, "n%" PRIu64 " CRASH", id);
    node_wipe(n);
}

void sim_restart(struct sim* s, raft_id id)
{
    struct sim_node* n = &s->nodes[id];
    if (n->alive || !n->exists) {
        return;
    }
    node_boot(s, n);
}

void sim_start_fresh(struct sim* s, raft_id id)
{
    assert(id >= 1 && id <= SIM_NODES_MAX);
    struct sim_node* n = &s->nodes[id];
    node_wipe(n);
    free(n->image);
    n->image = NULL;
    n->image_len = 0;
    log_reset(&n->disk, 0, 0);
    memset(&n->hs, 0, sizeof n->hs);
    memset(&n->snap, 0, sizeof n->snap); /* empty configuration */
    n->exists = true;
    sim__trace(s, "n%" PRIu64 " FRESH", id);
    node_boot(s, n);
}

void sim_wipe(struct sim* s, raft_id id)
{
    assert(id >= 1 && id <= SIM_NODES_MAX);
    struct sim_node* n = &s->nodes[id];
    node_wipe(n);
    free(n->image);
    n->image = NULL;
    n->image_len = 0;
    log_reset(&n->disk, 0, 0);
    memset(&n->hs, 0, sizeof n->hs);
    memset(&n->snap, 0, sizeof n->snap);
    n->snap.conf = s->initial_conf; /* as fs/node_boot.c: --initial-cluster */
    n->exists = true;
    n->catch_up = s->cfg.wipe_catch_up;
    sim__trace(s, "n%" PRIu64 " WIPED", id);
    node_boot(s, n);
}

void sim_tear_tail(struct sim* s, raft_id id, unsigned entries)
{
    assert(id >= 1 && id <= SIM_NODES_MAX);
    struct sim_node* n = &s->nodes[id];
    node_wipe(n); /* a crash: pending writes are lost */
    raft_index last = sim__log_last(&n->disk);
    raft_index keep = last - n->disk.base;
    keep = keep > entries ? keep - entries : 0;
    log_truncate(&n->disk, n->disk.base + keep + 1);
    if (n->hs.commit > sim__log_last(&n->disk)) {
        n->hs.commit = sim__log_last(&n->disk); /* as fs/node_boot.c */
    }
    sim__trace(s, "n%" PRIu64 " TORN log %" PRIu64 " -> %" PRIu64, id, last,
               sim__log_last(&n->disk));
    node_boot(s, n);
}

uint64_t sim_sent(const struct sim* s, raft_id from, raft_id to)
{
    assert(from >= 1 && from <= SIM_NODES_MAX && to >= 1 &&
           to <= SIM_NODES_MAX);
    return s->sent[from][to];
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
    log_reset(&n->disk, w->meta.index, w->meta.term);
    if (s->failed) {
        return;
    }
    struct sim_sm sm;
    memset(&sm, 0, sizeof sm);
    if (image_decode(&sm, n->image, n->image_len) != 0 ||
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
        serve_reads(s, n);
        struct raft_event ev = {.type = RAFT_EV_SNAPSHOT_INSTALLED};
        ev.installed.meta = w->meta;
        node_step(s, n, &ev);
    }
}

/* Batch b is on the disk: the disk log and hard state take it, then the
 * driver sends its messages and reports it persisted. */
static void batch_done(struct sim* s, struct sim_node* n, struct raft_batch* b)
{
    if (b->truncate_from != 0) {
        log_truncate(&n->disk, b->truncate_from);
    }
    for (unsigned i = 0; i < b->n_entries; i++) {
        const struct raft_entry* e = &b->entries[i];
        if (e->index != sim__log_last(&n->disk) + 1) {
            sim__violate(s, "contract: n%" PRIu64 " disk append not contiguous",
                         n->id);
            break;
        }
        void* data = xcalloc(1, e->data.len + 1);
        memcpy(data, e->data.base, e->data.len);
        log_push(&n->disk,
                 &(struct sim_ent){
                     .term = e->term,
                     .type = e->type,
                     .len = (uint32_t)e->data.len,
                     .hash = entry_hash(e->type, e->data.base, e->data.len),
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
    write_free(w);
}

static void process(struct sim* s, struct sim_ev* ev)
{
    struct sim_node* n = &s->nodes[ev->node];
    switch (ev->kind) {
    case SIM_EV_DELIVER: {
        struct sim_node* to = &s->nodes[ev->msg->m.to];
        char d[160] = "";
        if (s->cfg.trace) {
            msg_describe(&ev->msg->m, d, sizeof d);
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
            node_step(s, to, &rev);
        }
        msg_free(ev->msg);
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
            node_step(s, n, &tev);
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
        struct sim_ev ev = heap_pop(s);
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
    heap_push(s, (struct sim_ev){
                     .t = at, .kind = SIM_EV_RESTART, .node = (uint8_t)id});
}

/* ---- client operations ---- */

int sim_propose(struct sim* s, raft_id id, uint64_t* value_out)
{
    struct sim_node* n = &s->nodes[id];
    assert(n->alive);
    if (s->next_value >= SIM_PROPOSALS_MAX) {
        return -ENOSPC;
    }
    uint64_t v = s->next_value++;
    if (v >= s->props_cap) {
        s->props = xrealloc(s->props, 2 * s->props_cap * sizeof *s->props);
        memset(s->props + s->props_cap, 0, s->props_cap * sizeof *s->props);
        s->props_cap *= 2;
    }
    uint8_t data[8];
    put_le64(data, v);
    struct raft_proposal p = {
        .ctx = v, .type = RAFT_ENTRY_NORMAL, .data = {data, sizeof data}};
    struct raft_event ev = {.type = RAFT_EV_PROPOSE, .now_ms = s->now};
    ev.propose.n = 1;
    ev.propose.props = &p;
    sim__trace(s, "n%" PRIu64 " PROPOSE v%" PRIu64, id, v);
    int rc = node_step(s, n, &ev);
    if (rc != 0) {
        s->props[v].err = rc;
    }
    if (value_out != NULL) {
        *value_out = v;
    }
    return rc;
}

raft_index sim_value_index(const struct sim* s, uint64_t value)
{
    return value < s->next_value ? s->props[value].index : 0;
}

int sim_read(struct sim* s, raft_id id, uint64_t* ctx_out)
{
    struct sim_node* n = &s->nodes[id];
    assert(n->alive);
    if (s->next_read >= SIM_PROPOSALS_MAX) {
        return -ENOSPC;
    }
    uint64_t c = s->next_read++;
    if (c >= s->reads_cap) {
        s->reads = xrealloc(s->reads, 2 * s->reads_cap * sizeof *s->reads);
        memset(s->reads + s->reads_cap, 0, s->reads_cap * sizeof *s->reads);
        s->reads_cap *= 2;
    }
    s->reads[c].required = s->applied_max;
    struct raft_event ev = {.type = RAFT_EV_READ_INDEX, .now_ms = s->now};
    ev.read.ctx = c;
    sim__trace(s, "n%" PRIu64 " READ ctx=%" PRIu64 " required=%" PRIu64, id, c,
               s->applied_max);
    int rc = node_step(s, n, &ev);
    if (rc != 0) {
        s->reads[c].err = rc;
    }
    if (ctx_out != NULL) {
        *ctx_out = c;
    }
    return rc;
}

int sim_read_result(const struct sim* s, uint64_t ctx, raft_index* served)
{
    assert(ctx > 0 && ctx < s->next_read);
    *served = s->reads[ctx].served;
    return s->reads[ctx].err;
}

int sim_transfer(struct sim* s, raft_id leader, raft_id to)
{
    struct sim_node* n = &s->nodes[leader];
    assert(n->alive);
    struct raft_event ev = {.type = RAFT_EV_TRANSFER, .now_ms = s->now};
    ev.transfer.to = to;
    sim__trace(s, "n%" PRIu64 " TRANSFER to n%" PRIu64, leader, to);
    return node_step(s, n, &ev);
}

int sim_conf_change(struct sim* s, raft_id leader, int op, raft_id target)
{
    struct sim_node* n = &s->nodes[leader];
    assert(n->alive);
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE, .now_ms = s->now};
    ev.conf.op = (uint8_t)op;
    ev.conf.server.id = target;
    ev.conf.server.role = RAFT_LEARNER;
    snprintf(ev.conf.server.name, sizeof ev.conf.server.name, "n%" PRIu64,
             target);
    snprintf(ev.conf.server.addr, sizeof ev.conf.server.addr,
             "127.0.0.%" PRIu64 ":7000", target);
    int rc = node_step(s, n, &ev);
    sim__trace(s, "n%" PRIu64 " CONF op=%d n%" PRIu64 " -> %s", leader, op,
               target, rc ? raft_errname(rc) : "ok");
    return rc;
}

int sim_compact(struct sim* s, raft_id id, raft_index keep_from)
{
    struct sim_node* n = &s->nodes[id];
    assert(n->alive);
    raft_index at = n->sm.applied;
    raft_term term = sim__log_term(&n->shadow, at);
    if (at == 0 || term == 0) {
        return -EINVAL;
    }
    if (keep_from != 0 && keep_from <= n->shadow.base) {
        keep_from = 0;
    }
    void* img;
    size_t len = image_encode(&n->sm, &img);
    struct raft_event ev = {.type = RAFT_EV_COMPACT, .now_ms = s->now};
    ev.compact.meta =
        (struct raft_snapshot_meta){.index = at,
                                    .term = term,
                                    .conf_index = n->sm.conf_index,
                                    .conf = n->sm.conf};
    ev.compact.image = (struct raft_buf){img, len};
    ev.compact.keep_from = keep_from;
    n->last_compact = at;
    int rc = node_step(s, n, &ev);
    sim__trace(
        s, "n%" PRIu64 " COMPACT at %" PRIu64 " keep_from %" PRIu64 " -> %d",
        id, at, keep_from, rc);
    if (rc != 0) {
        free(img);
        return rc;
    }
    /* The image is durable with the app's store; the log drops its prefix. */
    free(n->compact_image);
    n->compact_image = img;
    n->compact_image_len = len;
    free(n->image);
    n->image = xcalloc(1, len);
    memcpy(n->image, img, len);
    n->image_len = len;
    n->snap = ev.compact.meta;
    raft_index keep = keep_from ? keep_from : at + 1;
    log_drop_before(&n->disk, keep);
    log_drop_before(&n->shadow, keep);
    return 0;
}

/* ---- queries ---- */

bool sim_alive(const struct sim* s, raft_id id)
{
    return id >= 1 && id <= SIM_NODES_MAX && s->nodes[id].alive;
}

struct raft* sim_raft(struct sim* s, raft_id id)
{
    return sim_alive(s, id) ? s->nodes[id].r : NULL;
}

raft_id sim_leader(const struct sim* s)
{
    raft_id best = 0;
    raft_term term = 0;
    for (raft_id i = 1; i <= SIM_NODES_MAX; i++) {
        const struct sim_node* n = &s->nodes[i];
        if (n->alive && raft_role(n->r) == RAFT_LEADER &&
            raft_current_term(n->r) >= term) {
            best = i;
            term = raft_current_term(n->r);
        }
    }
    return best;
}

raft_id sim_stable_leader(const struct sim* s)
{
    raft_id l = sim_leader(s);
    if (l == 0) {
        return 0;
    }
    raft_term t = raft_current_term(s->nodes[l].r);
    const struct raft_conf* c = raft_conf_current(s->nodes[l].r);
    for (unsigned i = 0; i < c->n; i++) {
        const struct sim_node* n = &s->nodes[c->servers[i].id];
        if (!n->alive) {
            continue;
        }
        if (raft_current_term(n->r) != t || raft_leader(n->r) != l) {
            return 0;
        }
    }
    return l;
}

raft_index sim_applied(const struct sim* s, raft_id id)
{
    return s->nodes[id].sm.applied;
}

uint64_t sim_sm_hash(const struct sim* s, raft_id id)
{
    return s->nodes[id].sm.hash;
}

raft_term sim_log_term(const struct sim* s, raft_id id, raft_index index)
{
    const struct sim_log* l = &s->nodes[id].shadow;
    return index > l->base ? sim__log_term(l, index) : 0;
}

raft_index sim_log_last(const struct sim* s, raft_id id)
{
    return sim__log_last(&s->nodes[id].shadow);
}

unsigned sim_installs(const struct sim* s)
{
    return s->installs;
}

bool sim_converged(struct sim* s, raft_id leader, raft_index min_index)
{
    if (!sim_alive(s, leader) || raft_role(s->nodes[leader].r) != RAFT_LEADER) {
        return false;
    }
    raft_index commit = raft_commit_index(s->nodes[leader].r);
    if (commit < min_index) {
        return false;
    }
    const struct raft_conf* c = raft_conf_current(s->nodes[leader].r);
    for (unsigned i = 0; i < c->n; i++) {
        const struct sim_node* n = &s->nodes[c->servers[i].id];
        if (c->servers[i].role == RAFT_VOTER && n->alive &&
            n->sm.applied < commit) {
            return false;
        }
    }
    return true;
}

/* ---- lifecycle ---- */

void sim_config_default(struct sim_config* c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->seed = seed;
    c->n_voters = 3;
    c->heartbeat_ms = 50;
    c->election_ms = 300;
    c->pre_vote = true;
    c->check_quorum = true;
    c->compact_every = 0;
    c->delay_min_ms = 1;
    c->delay_max_ms = 10;
    c->disk_min_ms = 1;
    c->disk_max_ms = 5;
    c->wipe_catch_up = true;
}

struct sim* sim_new(const struct sim_config* cfg)
{
    assert(cfg->n_voters >= 1 && cfg->n_voters <= 5);
    struct sim* s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->rng = cfg->seed ^ 0x5eed5eed5eedull;
    s->heap_cap = 1024;
    s->heap = xcalloc(s->heap_cap, sizeof *s->heap);
    s->props_cap = 1024;
    s->props = xcalloc(s->props_cap, sizeof *s->props);
    s->reads_cap = 1024;
    s->reads = xcalloc(s->reads_cap, sizeof *s->reads);
    s->next_value = 1;
    s->next_read = 1;
    s->drop_pct = cfg->drop_pct;
    s->dup_pct = cfg->dup_pct;
    if (cfg->trace) {
        s->trace = xcalloc(SIM_TRACE_LINES, sizeof *s->trace);
    }
    checker__init(s);
    struct raft_conf conf = {.n = cfg->n_voters};
    for (unsigned i = 0; i < cfg->n_voters; i++) {
        struct raft_server* sv = &conf.servers[i];
        sv->id = i + 1;
        sv->role = RAFT_VOTER;
        snprintf(sv->name, sizeof sv->name, "n%u", i + 1);
        snprintf(sv->addr, sizeof sv->addr, "127.0.0.%u:7000", i + 1);
    }
    s->initial_conf = conf;
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        s->nodes[id].id = id;
    }
    for (raft_id id = 1; id <= cfg->n_voters; id++) {
        struct sim_node* n = &s->nodes[id];
        n->exists = true;
        n->incarnation = 1;
        n->snap.conf = conf;
        n->sm.conf = conf;
        node_new_core(s, n);
        n->alive = true;
        int rc = raft_bootstrap(n->r, &conf, 0);
        if (rc != 0) {
            sim__violate(s, "raft_bootstrap failed: %s", raft_strerror(rc));
        }
        schedule_tick(s, n, 1);
    }
    return s;
}

void sim_free(struct sim* s)
{
    if (s == NULL) {
        return;
    }
    for (raft_id id = 1; id <= SIM_NODES_MAX; id++) {
        struct sim_node* n = &s->nodes[id];
        node_wipe(n);
        log_free(&n->disk);
        log_free(&n->shadow);
        free(n->image);
        free(n->compact_image);
    }
    while (s->n_heap > 0) {
        struct sim_ev ev = heap_pop(s);
        msg_free(ev.msg);
    }
    checker__free(s);
    free(s->heap);
    free(s->props);
    free(s->reads);
    free(s->trace);
    free(s);
}

const char* sim_failed(const struct sim* s)
{
    return s->failed ? s->violation : NULL;
}
