/* node_io.c - the node's I/O thread: raft log appends with group commit, db
 * frame writes, log compaction; plus message deep copies and logging.
 *
 * Group commit: the loop queues jobs while a round is running; a round takes
 * every queued job (up to IO_ROUND_JOBS_MAX), executes them in order and ends
 * with ONE rlog_sync for all the batches it appended. Only then are the jobs
 * handed back to the loop, which sends their messages and reports
 * RAFT_EV_PERSISTED. Order per round:
 *   rlog_truncate/rlog_append/rlog_set_hard_state (no sync)
 *   -> store frame pwrite + fdatasync (its own file)
 *   -> rlog_compact (after the frames it depends on, which precede it in
 *      the queue, are durable)
 *   -> rlog_sync: the round's batches are durable (commit point)
 *   -> hand back to the loop.
 * Errors are sticky: after one failed job every later job fails with the
 * same error and the node stops taking writes.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node_internal.h"

/* ---- logging ---- */

static int log_level = RAFT_TRACE_INFO;

void node__set_log_level(int level)
{
    log_level = level;
}

static void log_vemit(int level,
                      const char* prefix,
                      const char* fmt,
                      va_list ap) __attribute__((format(printf, 3, 0)));

static void log_vemit(int level,
                      const char* prefix,
                      const char* fmt,
                      va_list ap)
{
    static const char* names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    struct tm tm;
    char msg[1024];

    if (level < log_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
            tm.tm_sec, ts.tv_nsec / 1000000,
            names[level < 0 ? 0 : (level > 3 ? 3 : level)], prefix, msg);
}

void node__log(int level, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vemit(level, "", fmt, ap);
    va_end(ap);
}

static void log_plain(int level, const char* prefix, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_plain(int level, const char* prefix, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vemit(level, prefix, fmt, ap);
    va_end(ap);
}

void node__tracer_emit(void* data, int level, raft_id id, const char* msg)
{
    const char* prefix = data != NULL ? data : "";
    (void)id;
    log_plain(level, prefix, "%s", msg);
}

_Static_assert((int)STORE_TRACE_DEBUG == (int)RAFT_TRACE_DEBUG &&
                   (int)STORE_TRACE_INFO == (int)RAFT_TRACE_INFO &&
                   (int)STORE_TRACE_WARN == (int)RAFT_TRACE_WARN &&
                   (int)STORE_TRACE_ERROR == (int)RAFT_TRACE_ERROR,
               "one sink, one set of levels");

void node__store_tracer_emit(void* data, int level, const char* msg)
{
    node__tracer_emit(data, level, 0, msg);
}

/* ---- message copies ---- */

static void* dup_bytes(const void* p, size_t n)
{
    void* q = malloc(n > 0 ? n : 1);
    if (q != NULL && n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

static int clone_entries(struct raft_message* dst,
                         const struct raft_message* src)
{
    unsigned n = src->append.n_entries;
    struct raft_entry* es = calloc(n > 0 ? n : 1, sizeof(*es));
    if (es == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        es[i] = src->append.entries[i];
        es[i].data.base = dup_bytes(src->append.entries[i].data.base,
                                    src->append.entries[i].data.len);
        if (es[i].data.base == NULL) {
            for (unsigned j = 0; j < i; j++) {
                free((void*)es[j].data.base);
            }
            free(es);
            return -ENOMEM;
        }
    }
    dst->append.entries = es;
    return 0;
}

static int clone_props(struct raft_message* dst, const struct raft_message* src)
{
    unsigned n = src->propose.n;
    struct raft_proposal* ps = calloc(n > 0 ? n : 1, sizeof(*ps));
    if (ps == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        ps[i] = src->propose.props[i];
        ps[i].data.base = dup_bytes(src->propose.props[i].data.base,
                                    src->propose.props[i].data.len);
        if (ps[i].data.base == NULL) {
            for (unsigned j = 0; j < i; j++) {
                free((void*)ps[j].data.base);
            }
            free(ps);
            return -ENOMEM;
        }
    }
    dst->propose.props = ps;
    return 0;
}

int node__msg_clone(struct raft_message* dst, const struct raft_message* src)
{
    *dst = *src;
    switch (src->type) {
    case RAFT_MSG_APPEND:
        return clone_entries(dst, src);
    case RAFT_MSG_SNAPSHOT:
        dst->snapshot.chunk.base =
            dup_bytes(src->snapshot.chunk.base, src->snapshot.chunk.len);
        return dst->snapshot.chunk.base != NULL ? 0 : -ENOMEM;
    case RAFT_MSG_PROPOSE:
        return clone_props(dst, src);
    case RAFT_MSG_PROPOSE_RESP:
        dst->propose_resp.ctxs = dup_bytes(
            src->propose_resp.ctxs, src->propose_resp.n * sizeof(uint64_t));
        return dst->propose_resp.ctxs != NULL ? 0 : -ENOMEM;
    default:
        return 0;
    }
}

void node__msg_free(struct raft_message* m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        for (unsigned i = 0; i < m->append.n_entries; i++) {
            free((void*)m->append.entries[i].data.base);
        }
        free((void*)m->append.entries);
        break;
    case RAFT_MSG_SNAPSHOT:
        free((void*)m->snapshot.chunk.base);
        break;
    case RAFT_MSG_PROPOSE:
        for (unsigned i = 0; i < m->propose.n; i++) {
            free((void*)m->propose.props[i].data.base);
        }
        free((void*)m->propose.props);
        break;
    case RAFT_MSG_PROPOSE_RESP:
        free((void*)m->propose_resp.ctxs);
        break;
    default:
        break;
    }
}

void node__io_job_free(struct io_job* job)
{
    for (unsigned i = 0; i < job->n_entries; i++) {
        free((void*)job->entries[i].data.base);
    }
    free(job->entries);
    for (unsigned i = 0; i < job->n_msgs; i++) {
        node__msg_free(&job->msgs[i]);
    }
    free(job->msgs);
    free(job);
}

/* ---- the thread ---- */

static int run_job(struct node_io* io, struct io_job* job, bool* need_sync)
{
    int rv = 0;

    switch (job->type) {
    case IO_JOB_BATCH:
        if (job->truncate_from != 0) {
            rv = rlog_truncate(io->log, job->truncate_from);
        }
        if (rv == 0 && job->n_entries > 0) {
            rv = rlog_append(io->log, job->entries, job->n_entries);
        }
        if (rv == 0 && job->has_hs) {
            rv = rlog_set_hard_state(io->log, &job->hs);
        }
        if (job->truncate_from != 0 || job->n_entries > 0 || job->has_hs) {
            *need_sync = true;
        }
        return rv;
    case IO_JOB_FRAME:
        rv = store_frame_write(io->store, job->frame);
        if (rv == 0) {
            io->db_index = store_frame_applied_index(job->frame);
        }
        return rv;
    case IO_JOB_COMPACT:
        /* The log may drop only what the db file holds durably (the frame
         * jobs precede this one): past it, a torn db tail could not be
         * replayed at the next start (docs/format-db.md). */
        if (job->snap.index > io->db_index) {
            node__log(RAFT_TRACE_ERROR,
                      "log compaction to index %" PRIu64
                      " refused: the db file holds index %" PRIu64 " only",
                      job->snap.index, io->db_index);
            return -EIO;
        }
        /* Make earlier appends durable first: compaction must never make
         * the log claim less than what was already acknowledged. */
        if (*need_sync) {
            rv = rlog_sync(io->log);
            *need_sync = false;
        }
        return rv != 0 ? rv : rlog_compact(io->log, &job->snap, job->keep_from);
    case IO_JOB_RESET:
        if (*need_sync) {
            rv = rlog_sync(io->log);
            *need_sync = false;
        }
        if (rv == 0) {
            rv = rlog_reset(io->log, &job->snap);
        }
        if (rv == 0) {
            io->db_index = job->snap.index; /* the image was installed */
        }
        return rv;
    default:
        return -EINVAL;
    }
}

static struct io_job* take_round(struct node_io* io)
{
    struct io_job *head = io->queue_head, *tail = head;
    unsigned n = 1;

    while (tail->next != NULL && n < IO_ROUND_JOBS_MAX) {
        tail = tail->next;
        n++;
    }
    io->queue_head = tail->next;
    if (io->queue_head == NULL) {
        io->queue_tail = NULL;
    }
    tail->next = NULL;
    return head;
}

static void finish_round(struct node_io* io, struct io_job* head)
{
    assert(head != NULL); /* take_round takes at least one job */
    struct io_job* tail = head;
    while (tail->next != NULL) {
        tail = tail->next;
    }
    pthread_mutex_lock(&io->mu);
    if (io->done_tail != NULL) {
        io->done_tail->next = head;
    } else {
        io->done_head = head;
    }
    io->done_tail = tail;
    pthread_mutex_unlock(&io->mu);
    uv_async_send(&io->done_async);
}

static void* io_main(void* arg)
{
    struct node_io* io = arg;

    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (io->queue_head == NULL && !io->stop) {
            pthread_cond_wait(&io->cond, &io->mu);
        }
        if (io->queue_head == NULL && io->stop) {
            break;
        }
        struct io_job* round = take_round(io);
        int err = io->sticky_err;
        io->busy = true;
        pthread_mutex_unlock(&io->mu);

        bool need_sync = false;
        uint64_t jobs = 0, syncs = 0;
        for (struct io_job* j = round; j != NULL; j = j->next) {
            j->err = err != 0 ? err : run_job(io, j, &need_sync);
            if (j->err != 0 && err == 0) {
                err = j->err;
                node__log(RAFT_TRACE_ERROR,
                          "disk: job type %d failed: %s; refusing writes",
                          j->type, strerror(-err));
            }
            jobs++;
        }
        if (need_sync && err == 0) {
            err = rlog_sync(io->log);
            syncs++;
            if (err != 0) {
                node__log(RAFT_TRACE_ERROR, "disk: log sync failed: %s",
                          strerror(-err));
                for (struct io_job* j = round; j != NULL; j = j->next) {
                    if (j->err == 0 && j->type == IO_JOB_BATCH) {
                        j->err = err;
                    }
                }
            }
        }
        finish_round(io, round);
        pthread_mutex_lock(&io->mu);
        /* The stats are read by the loop (node__io_stats): under mu. */
        io->rounds++;
        io->jobs += jobs;
        io->syncs += syncs;
        if (err != 0) {
            io->sticky_err = err;
        }
        io->busy = false;
        pthread_cond_broadcast(&io->idle_cond);
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

int node__io_start(struct node_io* io,
                   uv_loop_t* loop,
                   struct rlog* log,
                   struct store* store,
                   uv_async_cb done_cb,
                   void* data)
{
    int rv;

    memset(io, 0, sizeof(*io));
    io->log = log;
    io->store = store;
    io->db_index = store_durable_index(store);
    pthread_mutex_init(&io->mu, NULL);
    pthread_cond_init(&io->cond, NULL);
    pthread_cond_init(&io->idle_cond, NULL);
    rv = uv_async_init(loop, &io->done_async, done_cb);
    if (rv != 0) {
        return rv;
    }
    io->done_async.data = data;
    rv = pthread_create(&io->thread, NULL, io_main, io);
    if (rv != 0) {
        return -rv;
    }
    io->started = true;
    return 0;
}

void node__io_submit(struct node_io* io, struct io_job* job)
{
    job->next = NULL;
    pthread_mutex_lock(&io->mu);
    if (io->queue_tail != NULL) {
        io->queue_tail->next = job;
    } else {
        io->queue_head = job;
    }
    io->queue_tail = job;
    pthread_cond_signal(&io->cond);
    pthread_mutex_unlock(&io->mu);
}

struct io_job* node__io_take_done(struct node_io* io)
{
    pthread_mutex_lock(&io->mu);
    struct io_job* head = io->done_head;
    io->done_head = io->done_tail = NULL;
    pthread_mutex_unlock(&io->mu);
    return head;
}

void node__io_drain(struct node_io* io)
{
    pthread_mutex_lock(&io->mu);
    while (io->queue_head != NULL || io->busy) {
        pthread_cond_wait(&io->idle_cond, &io->mu);
    }
    pthread_mutex_unlock(&io->mu);
}

void node__io_stats(struct node_io* io,
                    uint64_t* rounds,
                    uint64_t* syncs,
                    uint64_t* jobs)
{
    pthread_mutex_lock(&io->mu);
    *rounds = io->rounds;
    *syncs = io->syncs;
    *jobs = io->jobs;
    pthread_mutex_unlock(&io->mu);
}

bool node__io_idle(struct node_io* io)
{
    pthread_mutex_lock(&io->mu);
    bool idle = io->queue_head == NULL && !io->busy;
    pthread_mutex_unlock(&io->mu);
    return idle;
}

void node__io_stop(struct node_io* io)
{
    if (!io->started) {
        return;
    }
    pthread_mutex_lock(&io->mu);
    io->stop = true;
    pthread_cond_signal(&io->cond);
    pthread_mutex_unlock(&io->mu);
    pthread_join(io->thread, NULL);
    io->started = false;
}
