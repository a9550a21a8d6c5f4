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

#include "../../raft/util/logline.h"
#include "node_internal.h"

/* ---- logging ---- */

void node__log_init(struct node_log* l,
                    int level,
                    int fd,
                    int tee_fd,
                    int tee_level)
{
    l->level = level;
    l->fd = fd;
    l->tee_fd = tee_fd;
    l->tee_level = tee_level;
    l->raft = (struct node_log_source){l, "raft: "};
    l->rlog = (struct node_log_source){l, "log: "};
    l->store = (struct node_log_source){l, "store: "};
    l->transport = (struct node_log_source){l, "transport: "};
}

/* ---- names ---- */

enum { NAMES_MAX = 4 * RAFT_SERVERS_MAX };

static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    raft_id id;
    char name[RAFT_NAME_MAX];
} names[NAMES_MAX];
static unsigned n_names;

void node__names_learn(const struct raft_conf* c)
{
    pthread_mutex_lock(&names_mu);
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server* s = &c->servers[i];
        unsigned j = 0;
        while (j < n_names && names[j].id != s->id) {
            j++;
        }
        if (s->id == 0 || s->name[0] == '\0' ||
            (j == n_names && n_names == NAMES_MAX)) {
            continue; /* full: the oldest names stay */
        }
        if (j == n_names) {
            n_names++;
        }
        names[j].id = s->id;
        snprintf(names[j].name, sizeof(names[j].name), "%s", s->name);
    }
    pthread_mutex_unlock(&names_mu);
}

static bool name_known(raft_id id, char* buf)
{
    bool found = false;
    pthread_mutex_lock(&names_mu);
    for (unsigned j = 0; j < n_names && !found; j++) {
        if (names[j].id == id) {
            snprintf(buf, NODE_NAME_BUF, "%s", names[j].name);
            found = true;
        }
    }
    pthread_mutex_unlock(&names_mu);
    return found;
}

const char* node__name(raft_id id, char* buf)
{
    if (id == 0) {
        return "none";
    }
    if (!name_known(id, buf)) {
        snprintf(buf, NODE_NAME_BUF, "node %016" PRIx64, id);
    }
    return buf;
}

static void log_emit(const struct node_log* l,
                     int level,
                     const char* prefix,
                     const char* msg)
{
    if (level < l->level) {
        return;
    }
    int tee = l->tee_fd;
    util_log_write(l->fd, level >= l->tee_level ? tee : -1, level, prefix, msg);
}

void node__log_va(const struct node_log* l,
                  int level,
                  const char* fmt,
                  va_list ap)
{
    char msg[UTIL_LOG_MSG_MAX];
    if (level < l->level) {
        return;
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_emit(l, level, "", msg);
}

void node__log_to(const struct node_log* l, int level, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    node__log_va(l, level, fmt, ap);
    va_end(ap);
}

void node__tracer_emit(void* data, int level, raft_id id, const char* msg)
{
    const struct node_log_source* src = data;
    (void)id;
    /* The core and the transport name nodes themselves (member names). */
    log_emit(src->log, level, src->prefix, msg);
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

/* A batch job's batch is the driver's (completed or discarded on the
 * loop before the job is freed). */
void node__io_job_free(struct io_job* job)
{
    free(job);
}

/* ---- the thread ---- */

static int run_job(struct node_io* io, struct io_job* job, bool* need_sync)
{
    int rv = 0;

    switch (job->type) {
    case IO_JOB_BATCH: {
        const struct raft_batch* b = job->batch;
        if (b->truncate_from != 0) {
            rv = rlog_truncate(io->log, b->truncate_from);
        }
        if (rv == 0 && b->n_entries > 0) {
            rv = rlog_append(io->log, b->entries, b->n_entries);
        }
        if (rv == 0 && b->hard_state_changed) {
            rv = rlog_set_hard_state(io->log, &b->hard_state);
        }
        if (b->truncate_from != 0 || b->n_entries > 0 ||
            b->hard_state_changed) {
            *need_sync = true;
        }
        return rv;
    }
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
            node__log_to(io->logger, RAFT_TRACE_ERROR,
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
                node__log_to(io->logger, RAFT_TRACE_ERROR,
                             "disk: job type %d failed: %s; refusing writes",
                             j->type, strerror(-err));
            }
            jobs++;
        }
        uint64_t sync_ns = 0;
        if (need_sync && err == 0) {
            uint64_t t0 = uv_hrtime();
            err = rlog_sync(io->log);
            sync_ns = uv_hrtime() - t0;
            syncs++;
            if (err != 0) {
                node__log_to(io->logger, RAFT_TRACE_ERROR,
                             "disk: log sync failed: %s", strerror(-err));
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
        if (syncs > 0) {
            node_hist_observe(&io->fsync_hist, sync_ns);
        }
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
                   const struct node_log* logger,
                   uv_async_cb done_cb,
                   void* data)
{
    int rv;

    memset(io, 0, sizeof(*io));
    io->logger = logger;
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

void node__io_fsync_hist(struct node_io* io, struct node_hist* out)
{
    pthread_mutex_lock(&io->mu);
    *out = io->fsync_hist;
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
