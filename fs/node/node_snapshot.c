/* node_snapshot.c - log compaction and snapshot images (a leader builds
 * one only while a follower needs it), installing a received image, the
 * completion of I/O jobs, and the online db file compaction driven from
 * fs/cli/ctl.c. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../../store/store_compact.h"
#include "node_internal.h"
#include "node_state_internal.h"

/* ---- snapshots ---- */

/* The store refuses to install while a sealed frame is in flight: wait for
 * the I/O thread (installing blocks on fsyncs anyway), finish the frame
 * jobs now and keep every other finished job, in order, for node__io_done_cb
 * (they step the core, which must not happen inside node__handle_update). */
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
 * CREATE (not exclusive, not a STORE_CLAIM, which another holder's
 * reservation may have refused) whose name is a regular file (with the
 * content it carries, if any). Name reservations (RESERVE, RELEASE)
 * change no file: never shown by the tree. Whether c or its cancel won, the
 * tree then holds what c asked for. Only for an image whose dedup table does
 * not carry the result (written by an earlier version). */
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
    if (c->op == STORE_OP_CREATE &&
        (c->flags & (STORE_EXCL | STORE_CLAIM)) == 0 &&
        store_lookup(n->store, c->parent, c->name, &a) == 0 &&
        a.type == STORE_FILE) {
        res->ino = a.ino;
        if ((c->flags & STORE_WITH_DATA) != 0) {
            /* a new file with its content: that content */
            return store_read(n->store, a.ino, &data, &len) == 0 &&
                   len == c->data_len &&
                   (len == 0 || memcmp(data, c->data, len) == 0);
        }
        return true;
    }
    return false;
}

bool node__answer_from_table(struct node* n, struct waiter* w, bool tree)
{
    struct store_result res;
    switch (store_dedup_result(n->store, n->id, w->seq, &res)) {
    case STORE_OUTCOME_RESULT:
        node__complete_waiter(n, w, &res);
        return true;
    case STORE_OUTCOME_CANCELLED:
        /* The fence won: the proposal is not applied and never will be. */
        n->timeouts++;
        node__fail_waiter(n, w, -EIO);
        return true;
    case STORE_OUTCOME_UNKNOWN: {
        struct store_cmd c;
        if (tree && store_cmd_decode(&c, w->cmd, w->cmd_len) == 0 &&
            effect_in_tree(n, &c, &res)) {
            node__complete_waiter(n, w, &res);
            return true;
        }
        return false;
    }
    case STORE_OUTCOME_NONE:
    default:
        return false;
    }
}

/* An installed image may hold this node's proposals: their entries were
 * never applied here one by one, so their waiters learn nothing from the
 * apply path. The image's dedup table carries each one's result (or that
 * its fence won): they are answered with it. Those it does not know wait
 * (for their entry, or their fence). */
void node__waiters_after_install(struct node* n)
{
    struct waiter* w = n->whead;
    while (w != NULL) {
        struct waiter* next = w->next;
        (void)node__answer_from_table(n, w, true);
        w = next;
    }
}

void node__install_snapshot(struct node* n, const struct raft_update* u)
{
    const struct raft_snapshot_meta* m = &u->snapshot_meta;
    uv_timer_stop(&n->frame_timer);
    node__frame_flush(n);
    drain_frames(n);
    int rv = store_image_install(n->store, u->snapshot_image.base,
                                 u->snapshot_image.len);
    if (rv != 0) {
        node__log(n, RAFT_TRACE_ERROR,
                  "installing snapshot at index %" PRIu64 " failed: %s",
                  m->index, strerror(-rv));
        n->sticky_err = rv;
        return;
    }
    char from[NODE_NAME_BUF];
    node__log(n, RAFT_TRACE_INFO,
              "installed snapshot at index %" PRIu64 " term %" PRIu64
              " (%zu bytes) from %s",
              m->index, m->term, u->snapshot_image.len,
              node__name(raft_leader(n->raft), from));
    n->counters.snapshot_installs++;
    n->applied_term = m->term;
    n->applied_conf = m->conf;
    n->applied_conf_index = m->conf_index;
    n->last_compact_index = m->index;
    n->log_bytes = 0; /* the core's log restarts after m->index */
    n->log_kept = 0;
    n->lens_next = 0;
    node__waiters_after_install(n);
    node__watch_reset(n);
    node__watch_notify(n);
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

void node__io_done_cb(uv_async_t* a)
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
        node__drain_completions(n);
    }
    if (n->stopping) {
        node__stop_continue(n);
    }
}

void node__io_job_finished(struct node* n, struct io_job* j)
{
    if (j->err != 0 && n->sticky_err == 0) {
        n->sticky_err = j->err;
        node__log(n, RAFT_TRACE_ERROR, "disk error: %s; node refuses writes",
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
            node__step(n, &ev);
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
    if (node__step(n, &ev) != 0) {
        /* The core keeps its image (and ours stays alive with it). */
        n->release_failed_at = applied;
        node__log(n, RAFT_TRACE_WARN,
                  "snapshot image not released at index %" PRIu64, applied);
        return;
    }
    free(n->image); /* released: the core holds an empty image now */
    n->image = NULL;
    n->image_len = 0;
    n->image_empty = true;
    node__log(n, RAFT_TRACE_INFO, "snapshot image released at index %" PRIu64,
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
            node__log(n, RAFT_TRACE_WARN, "snapshot image: %s", strerror(-rv));
            return;
        }
    }
    /* The db file must hold everything up to `applied` before the log
     * drops it: the frame job precedes the compact job in the queue. */
    node__frame_flush(n);
    struct raft_snapshot_meta meta = applied_meta(n, applied);
    uint64_t kept = n->log_bytes;
    uint64_t log_before = n->log_bytes;
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
    node__step(n, &ev);
    free(old); /* the core released it when it took the new one */
    if (!drop_log) {
        node__log(n, RAFT_TRACE_INFO,
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
    node__log(n, RAFT_TRACE_INFO,
              "log compacted: snapshot at index %" PRIu64
              " (%zu bytes%s); log kept from index %" PRIu64 " (%" PRIu64
              " bytes reclaimed)",
              applied, len,
              with_image ? "" : ", no image: no follower needs one", keep_from,
              log_before > kept ? log_before - kept : 0);
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
    if (wanted && node__db_compact_busy(n)) {
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
 * finish on the loop after draining sealed frames. One at a time per node
 * (n->db_job). */

struct db_compact_job {
    uv_work_t work;
    struct node* n;
    struct store_compaction* c;
    int rv;
    uint64_t db_bytes_before; /* for the log line */
    uint64_t start_ms;
};

bool node__db_compact_busy(struct node* n)
{
    return n->db_job != NULL;
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

    assert(n->db_job == job);
    n->db_job = NULL;
    if (rv != 0 || n->stopping || n->sticky_err != 0) {
        store_compact_abort(n->store, job->c);
        if (rv != 0) {
            node__log(n, RAFT_TRACE_WARN, "db compaction failed: %s",
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
            uint64_t before = job->db_bytes_before;
            node__log(n, RAFT_TRACE_INFO,
                      "db compacted to revision %" PRIu64 ": %" PRIu64
                      " bytes reclaimed, %" PRIu64 " bytes left, in %" PRIu64
                      " ms",
                      s.compact_revision,
                      before > s.db_bytes ? before - s.db_bytes : 0, s.db_bytes,
                      uv_now(n->loop) - job->start_ms);
        } else {
            node__log(n, RAFT_TRACE_WARN, "db compaction abandoned: %s",
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

int node_compact_db(struct node* n)
{
    struct store_compaction* c;

    if (n->db_job != NULL || n->stopping || n->sticky_err != 0) {
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
    struct store_stats st;
    store_get_stats(n->store, &st);
    job->db_bytes_before = st.db_bytes;
    job->start_ms = uv_now(n->loop);
    rv = uv_queue_work(n->loop, &job->work, db_compact_work_cb,
                       db_compact_after_cb);
    if (rv != 0) {
        store_compact_abort(n->store, c);
        free(job);
        return rv;
    }
    n->db_job = job;
    return 0;
}
