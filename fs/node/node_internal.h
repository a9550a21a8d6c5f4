/* node_internal.h - shared between node.c, node_io.c and node_status.c. */
#ifndef QFS_NODE_INTERNAL_H
#define QFS_NODE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>

#include "../../raft/log.h"
#include "../../raft/transport.h"
#include "../../raft/driver.h"
#include "node.h"
#include "node_metrics.h"

/* ---- the I/O thread (node_io.c) ---- */

enum io_job_type {
    IO_JOB_BATCH = 1,   /* truncate + append entries + hard state */
    IO_JOB_FRAME = 2,   /* write one sealed store frame (+ fdatasync) */
    IO_JOB_COMPACT = 3, /* persist snapshot meta, drop old segments */
    IO_JOB_RESET = 4,   /* log restarts after an installed snapshot */
};

/* One unit of disk work, created on the loop, executed in FIFO order on the
 * I/O thread, handed back to the loop when durable. */
struct io_job {
    struct io_job* next;
    uint8_t type;
    int err; /* result, set by the I/O thread */
    /* BATCH: the driver's batch (raft/driver.h), read by the I/O thread,
     * owned by the driver (completed or discarded on the loop). */
    struct raft_batch* batch;
    /* FRAME */
    struct store_frame* frame;
    /* COMPACT / RESET */
    struct raft_snapshot_meta snap;
    raft_index keep_from;
};

/* Bounds: a batch round takes at most this many jobs (the rest ride the next
 * round, keeping one round's latency bounded). */
enum { IO_ROUND_JOBS_MAX = 4096 };

struct node_io {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct io_job *queue_head, *queue_tail; /* loop -> I/O thread */
    struct io_job *done_head, *done_tail;   /* I/O thread -> loop */
    bool stop;
    bool started;
    bool busy; /* a round is running */
    pthread_cond_t idle_cond;
    int sticky_err;
    uv_async_t done_async;
    struct rlog* log;
    struct store* store;
    const struct node_log* logger; /* the node's (any thread) */
    raft_index db_index; /* I/O thread: the db file holds this durably */
    uint64_t rounds, syncs, jobs; /* stats, under mu: node__io_stats */
    struct node_hist fsync_hist;  /* rlog_sync durations, under mu */
};

int node__io_start(struct node_io* io,
                   uv_loop_t* loop,
                   struct rlog* log,
                   struct store* store,
                   const struct node_log* logger,
                   uv_async_cb done_cb,
                   void* data);
/* Queue a job (takes ownership). */
void node__io_submit(struct node_io* io, struct io_job* job);
/* The I/O thread's counters (any thread). */
void node__io_stats(struct node_io* io,
                    uint64_t* rounds,
                    uint64_t* syncs,
                    uint64_t* jobs);
/* A copy of the log fsync histogram (any thread). */
void node__io_fsync_hist(struct node_io* io, struct node_hist* out);
/* Take every finished job, in submission order. */
struct io_job* node__io_take_done(struct node_io* io);
/* Stop the thread after it finished every queued job. */
void node__io_stop(struct node_io* io);
void node__io_job_free(struct io_job* job);
bool node__io_idle(struct node_io* io);
/* Block until every queued job has run (finished jobs wait in the done
 * list). Only for rare, already-blocking paths (snapshot install). */
void node__io_drain(struct node_io* io);

/* ---- messages ---- */
/* Deep copy of a message (entries, payloads, arrays). Returns 0/-ENOMEM. */

/* ---- logging: each node its own level and sink ---- */

struct node_log;
/* The data of one module's tracer (raft core, log, store, transport):
 * its node's log and the prefix of its lines. */
struct node_log_source {
    const struct node_log* log;
    const char* prefix;
};
struct node_log {
    int level; /* lines below it are dropped (options.log_level) */
    int fd;    /* the sink (options.log_fd) */
    /* A second sink for lines at tee_level or above (-1: none): the
     * terminal that started a daemonized node, until it is mounted. Set
     * from the loop, read by any thread. */
    _Atomic int tee_fd;
    _Atomic int tee_level;
    struct node_log_source raft, rlog, store, transport;
};

/* Set up l (the sources point into l: it must not move afterwards). */
void node__log_init(struct node_log* l,
                    int level,
                    int fd,
                    int tee_fd,
                    int tee_level);
/* A line to l (any thread). */
void node__log_to(const struct node_log* l, int level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
void node__log_va(const struct node_log* l,
                  int level,
                  const char* fmt,
                  va_list ap) __attribute__((format(printf, 3, 0)));
/* Tracer emit functions; data is a struct node_log_source. */
void node__tracer_emit(void* data, int level, raft_id id, const char* msg);
/* The same sink for the store's tracer (struct store_tracer). */
void node__store_tracer_emit(void* data, int level, const char* msg);

/* Names of the nodes in log lines. Every configuration the node sees is
 * learned (never forgotten: a removed member keeps its name).
 * node__name writes into buf (NODE_NAME_BUF bytes) and returns the member
 * name of id, "node " and its id in 16 hex digits when no name is known,
 * or "none" for 0. Thread-safe. */
enum { NODE_NAME_BUF = 40 };
void node__names_learn(const struct raft_conf* c);
const char* node__name(raft_id id, char* buf);

#endif /* QFS_NODE_INTERNAL_H */
