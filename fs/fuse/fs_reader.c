/* fs_reader.c - how FUSE requests are read (fs.h, "The request reader").
 *
 * Why threads: with no-open, a cached `cat` costs one FUSE request, the
 * FLUSH of its close(), and the kernel sends it whether or not the file
 * was written. Answered on the loop, each one waits for the loop to wake
 * from epoll and go through libfuse; answered by a thread that is already
 * blocked in read(/dev/fuse) it is one wake-up and two system calls, and
 * with two threads waiting one is likely on the client's CPU
 * (docs/architecture.md, "Threads").
 *
 * Two modes, switched by the loop:
 *   - idle (the start): the reader threads, blocked in read() on a clone
 *     of the session's fd (FUSE_DEV_IOC_CLONE: same connection, its own
 *     queue of requests being answered), read every request. A FLUSH
 *     while this mount holds no write state at all (fs->nwinos is 0: no
 *     pending update, no commit in flight, no pending new file) is
 *     answered there with 0, exactly what fs_flush answers then. Every
 *     other request is copied into a bounded queue and handed to the loop
 *     (uv_async), where fs_reader_drain gives it to the session; its reply
 *     goes to the session's fd, which does not know it (ENOENT), and then
 *     to the clone (fs_metrics.c's writev).
 *   - busy: when FS_READER_BUSY_BATCH requests or more waited in the queue
 *     at one turn (writers keep the loop busy), the threads stop reading
 *     and the loop reads the session's own fd (non-blocking, polled), up
 *     to 64 requests per wake-up, with no hop through a thread: what it
 *     did before the threads existed. After FS_READER_QUIET_POLLS wake-ups
 *     in a row that found at most FS_READER_QUIET_MAX requests the threads
 *     would not have answered themselves (reads' FLUSHes and IOCTLs do not
 *     count: a read load goes back to the threads), back to idle.
 *
 * Why the threads' FLUSH answer is right without the loop: a writer's
 * FLUSH is sent after its write(), ftruncate() or open(O_TRUNC) has
 * returned, and those return after the loop has processed their request,
 * which made the inode's write state (fs__wino_link raises nwinos before
 * the reply is written). So a FLUSH that finds nwinos at 0 has nothing of
 * its own process to commit or to wait for. A FLUSH that races a write of
 * another thread (not yet answered) may be answered before it, which is
 * allowed: the two calls are concurrent; the loop, reading both, could
 * have processed them in that order as well.
 *
 * Bounds: the queue holds at most FS_READER_QUEUE_BYTES of copies (one
 * request more when empty); the threads do not read while it is full, in
 * busy mode, or while the loop has paused reading (the node's backlog is
 * full: requests then wait in the kernel's queue, as before). Shutdown:
 * fs_reader_close stops the loop's processing (what is queued then is
 * answered EIO), and fs_reader_stop cancels the threads in their read()
 * and joins them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"

/* The request buffer: libfuse's own size (FUSE_MAX_MAX_PAGES pages of data
 * and a page of headers), so that a request never comes back as too large. */
enum {
    FS_READER_PAGES = 256,
    FS_READER_BUF = (FS_READER_PAGES + 1) * 4096,
    /* Requests processed per loop turn before yielding to the loop. */
    FS_READER_PER_TURN = 64,
    /* Queued requests taken at one turn that make the loop read itself. */
    FS_READER_BUSY_BATCH = 4,
    /* Busy: wake-ups in a row with at most FS_READER_QUIET_MAX requests,
     * then idle. */
    FS_READER_QUIET_POLLS = 16,
    FS_READER_QUIET_MAX = 2,
};

struct fs_rreq {
    struct fs_rreq* next;
    size_t len;
    char buf[];
};

/* Answer unique with error err (0 or a positive errno) and no payload. */
static void reply_raw(int fd, uint64_t unique, int err)
{
    struct fuse_out_header oh = {
        .len = sizeof(oh),
        .error = -err,
        .unique = unique,
    };
    /* ENOENT: the request was interrupted and is gone; nothing to do. */
    (void)!write(fd, &oh, sizeof(oh));
}

/* Whether a reader thread answers this request itself (try_answer): an
 * IOCTL, or a FLUSH while the mount holds no write state. */
static bool thread_answers(const struct fs* f, const void* buf, size_t len)
{
    const struct fuse_in_header* h = buf;

    return len >= sizeof(*h) &&
           (h->opcode == FUSE_IOCTL ||
            (h->opcode == FUSE_FLUSH && atomic_load(&f->nwinos) == 0));
}

/* The fast path: 1 if the request was answered here. */
static int try_answer(struct fs_reader_thread* t,
                      const char* buf,
                      size_t len,
                      uint64_t t0)
{
    struct fs* f = t->f;
    struct fs_reader* r = &f->reader;
    const struct fuse_in_header* h = (const void*)buf;

    if (len >= sizeof(*h) && h->opcode == FUSE_IOCTL) {
        /* No ioctl is supported (fs_lowlevel_ops has none: libfuse would
         * answer ENOSYS). Python's open() asks one (isatty) each time. */
        reply_raw(r->fd, h->unique, ENOSYS);
        pthread_mutex_lock(&t->mu);
        t->fast_ioctls++;
        pthread_mutex_unlock(&t->mu);
        return 1;
    }
    if (!thread_answers(f, buf, len)) {
        return 0;
    }
    reply_raw(r->fd, h->unique, 0); /* a FLUSH with nothing pending */
    uint64_t t1 = fs__mono_ns();
    pthread_mutex_lock(&t->mu);
    t->fast_flushes++;
    node_hist_observe(&t->fast_lat, t1 - t0);
    pthread_mutex_unlock(&t->mu);
    return 1;
}

/* Under mu, after paused, closed or queued_bytes changed: whether a thread
 * must look before its next read. */
static void hold_update(struct fs_reader* r)
{
    atomic_store(&r->hold, r->paused || r->closed ||
                               r->queued_bytes >= FS_READER_QUEUE_BYTES);
}

/* Hand a copy to the loop. -ENOMEM: answered ENOMEM here instead. */
static void forward(struct fs* f, const char* buf, size_t len)
{
    struct fs_reader* r = &f->reader;
    struct fs_rreq* q = malloc(sizeof(*q) + len);

    if (q == NULL) {
        const struct fuse_in_header* h = (const void*)buf;
        if (len >= sizeof(*h) && !fs__no_reply(h->opcode)) {
            reply_raw(r->fd, h->unique, ENOMEM);
        }
        return;
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->buf, buf, len);
    pthread_mutex_lock(&r->mu);
    *r->tail = q;
    r->tail = &q->next;
    r->queued_bytes += len;
    hold_update(r);
    pthread_mutex_unlock(&r->mu);
    uv_async_send(r->async);
}

static void reader_end(struct fs_reader* r, int err)
{
    pthread_mutex_lock(&r->mu);
    r->ended = true;
    r->end_err = err;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(r->async);
}

static void* reader_main(void* arg)
{
    struct fs_reader_thread* t = arg;
    struct fs* f = t->f;
    struct fs_reader* r = &f->reader;
    int old;
    char* buf = malloc(FS_READER_BUF);

    if (buf == NULL) {
        reader_end(r, -ENOMEM);
        return NULL;
    }

    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    for (;;) {
        if (atomic_load(&r->hold)) {
            pthread_mutex_lock(&r->mu);
            while ((r->paused || r->queued_bytes >= FS_READER_QUEUE_BYTES) &&
                   !r->closed) {
                pthread_cond_wait(&r->cond, &r->mu);
            }
            bool closed = r->closed;
            pthread_mutex_unlock(&r->mu);
            if (closed) {
                break;
            }
        }
        /* The only cancellation point: fs_reader_stop ends a read that
         * waits for a request that will never come. */
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
        ssize_t n = read(r->fd, buf, FS_READER_BUF);
        int err = errno;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
        uint64_t t0 = fs__mono_ns();
        if (n < 0) {
            if (err == EINTR || err == EAGAIN || err == ENOENT) {
                continue; /* ENOENT: an interrupted request went away */
            }
            reader_end(r, err == ENODEV ? 0 : -err); /* ENODEV: unmounted */
            break;
        }
        if (n == 0) {
            reader_end(r, 0);
            break;
        }
        if (!try_answer(t, buf, (size_t)n, t0)) {
            forward(f, buf, (size_t)n);
        }
    }
    free(buf);
    return NULL;
}

/* Loop: the threads read unless the backlog is full, the loop reads
 * itself (busy) or shutdown has begun; the loop polls the session's fd
 * only when busy and neither of the others. */
static void apply_mode(struct fs_reader* r)
{
    pthread_mutex_lock(&r->mu);
    r->paused = r->backlog || r->busy || r->closing;
    hold_update(r);
    pthread_cond_broadcast(&r->cond);
    bool more = r->head != NULL || (r->ended && !r->end_told);
    pthread_mutex_unlock(&r->mu);
    if (r->busy && !r->backlog && !r->closing) {
        uv_poll_start(r->poll, UV_READABLE, r->poll_cb);
    } else {
        uv_poll_stop(r->poll);
    }
    if (more && !r->backlog) {
        uv_async_send(r->async); /* what waited in the queue */
    }
}

static void end_once(struct fs_reader* r, int err)
{
    pthread_mutex_lock(&r->mu);
    bool told = r->end_told;
    r->end_told = true;
    pthread_mutex_unlock(&r->mu);
    if (!told && !r->closing && r->hooks.on_end != NULL) {
        r->hooks.on_end(r->hooks.data, err);
    }
}

/* Before each request the loop processes: false when the backlog is full
 * (reading stops; the hooks resume it with fs_reader_pause). */
static bool may_process(struct fs_reader* r)
{
    if (r->closing || r->hooks.paused == NULL ||
        !r->hooks.paused(r->hooks.data)) {
        return true;
    }
    r->backlog = true;
    apply_mode(r);
    return false;
}

/* Busy mode: the loop reads the session's fd itself. */
static void poll_cb(uv_poll_t* p, int status, int events)
{
    struct fs* f = p->data;
    struct fs_reader* r = &f->reader;
    unsigned n = 0;

    (void)events;
    if (status < 0) {
        end_once(r, status == UV_EBADF ? 0 : -EIO);
        return;
    }
    for (int i = 0; i < FS_READER_PER_TURN && !r->closing; i++) {
        if (!may_process(r)) {
            return;
        }
        int res = fuse_session_receive_buf(r->se, &r->fbuf);
        if (res == -EINTR) {
            continue;
        }
        if (res == -EAGAIN) {
            break;
        }
        if (res <= 0 || fuse_session_exited(r->se)) {
            end_once(r, res == 0 ? 0 : res);
            return;
        }
        /* What keeps the loop busy is what the threads would hand it,
         * not the closes they would answer themselves: a read load must
         * not keep the loop reading. */
        if ((r->fbuf.flags & FUSE_BUF_IS_FD) != 0 ||
            !thread_answers(f, r->fbuf.mem, (size_t)res)) {
            n++;
        }
        fuse_session_process_buf(r->se, &r->fbuf);
        if (fuse_session_exited(r->se)) {
            end_once(r, 0);
            return;
        }
    }
    /* n: requests the threads would have handed the loop; at most two
     * of those a turn (a few lookups, a lone writer's requests) is quiet. */
    r->quiet = n <= FS_READER_QUIET_MAX ? r->quiet + 1 : 0;
    if (r->quiet >= FS_READER_QUIET_POLLS && !r->closing) {
        r->busy = false; /* back to the threads */
        r->quiet = 0;
        apply_mode(r);
    }
}

int fs_reader_start(struct fs* f,
                    struct fuse_session* se,
                    uv_async_t* async,
                    uv_poll_t* poll,
                    const struct fs_reader_hooks* hooks)
{
    struct fs_reader* r = &f->reader;
    int se_fd = fuse_session_fd(se);

    r->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (r->fd < 0) {
        return -errno;
    }
    uint32_t master = (uint32_t)se_fd;
    if (ioctl(r->fd, FUSE_DEV_IOC_CLONE, &master) != 0) {
        int err = errno;
        close(r->fd);
        r->fd = -1;
        return -err;
    }
    /* The loop reads it only when polled as readable (busy mode). */
    fcntl(se_fd, F_SETFL, fcntl(se_fd, F_GETFL) | O_NONBLOCK);
    r->se = se;
    r->async = async;
    r->poll = poll;
    r->poll_cb = poll_cb;
    poll->data = f;
    r->hooks = *hooks;
    r->tail = &r->head;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->inited = true;
    unsigned want = f->o.reader_threads == 0 ? FS_READER_THREADS_DEFAULT
                                             : f->o.reader_threads;
    want = want > FS_READER_THREADS_MAX ? FS_READER_THREADS_MAX : want;
    for (unsigned i = 0; i < want; i++) {
        struct fs_reader_thread* t = &r->threads[i];
        t->f = f;
        pthread_mutex_init(&t->mu, NULL);
        int rv = pthread_create(&t->thread, NULL, reader_main, t);
        if (rv != 0) {
            pthread_mutex_destroy(&t->mu);
            return -rv;
        }
        r->n_threads++;
    }
    return 0;
}

void fs_reader_pause(struct fs* f, bool paused)
{
    struct fs_reader* r = &f->reader;

    if (!r->inited) {
        return;
    }
    r->backlog = paused;
    apply_mode(r);
}

/* Take the next queued request (NULL: none). *ended set when the threads
 * have stopped reading (the error in *end_err) and the queue is empty. */
static struct fs_rreq* take(struct fs_reader* r, bool* ended, int* end_err)
{
    pthread_mutex_lock(&r->mu);
    struct fs_rreq* q = r->head;
    if (q != NULL) {
        r->head = q->next;
        if (r->head == NULL) {
            r->tail = &r->head;
        }
        bool was_full = r->queued_bytes >= FS_READER_QUEUE_BYTES;
        r->queued_bytes -= q->len;
        hold_update(r);
        if (was_full && r->queued_bytes < FS_READER_QUEUE_BYTES) {
            pthread_cond_broadcast(&r->cond);
        }
    }
    *ended = q == NULL && r->ended && !r->end_told;
    *end_err = r->end_err;
    pthread_mutex_unlock(&r->mu);
    return q;
}

void fs_reader_drain(struct fs* f)
{
    struct fs_reader* r = &f->reader;
    bool ended = false;
    int end_err = 0;
    unsigned taken = 0;

    if (!r->inited) {
        return;
    }
    for (int i = 0; i < FS_READER_PER_TURN; i++) {
        if (!may_process(r)) {
            return;
        }
        struct fs_rreq* q = take(r, &ended, &end_err);
        if (q == NULL) {
            break;
        }
        if (r->closing) {
            /* Shutting down: no request is processed any more. */
            const struct fuse_in_header* h = (const void*)q->buf;
            if (q->len >= sizeof(*h) && !fs__no_reply(h->opcode)) {
                reply_raw(r->fd, h->unique, EIO);
            }
            free(q);
            continue;
        }
        taken++;
        fs__metrics_request(f, q->buf, q->len);
        struct fuse_buf fb = {.mem = q->buf, .size = q->len};
        fuse_session_process_buf(r->se, &fb);
        free(q);
        if (fuse_session_exited(r->se)) {
            end_once(r, 0);
            return;
        }
    }
    if (ended) {
        end_once(r, end_err);
        return;
    }
    if (!r->busy && !r->closing && taken >= FS_READER_BUSY_BATCH) {
        r->busy = true; /* the loop reads itself while it is this busy */
        r->busy_switches++;
        r->quiet = 0;
        apply_mode(r);
        return;
    }
    pthread_mutex_lock(&r->mu);
    bool more = r->head != NULL || (r->ended && !r->end_told);
    pthread_mutex_unlock(&r->mu);
    if (more) {
        uv_async_send(r->async); /* the rest on the next turn */
    }
}

void fs_reader_close(struct fs* f)
{
    struct fs_reader* r = &f->reader;

    if (!r->inited) {
        return;
    }
    r->closing = true;
    apply_mode(r);
}

void fs_reader_stop(struct fs* f)
{
    struct fs_reader* r = &f->reader;

    if (!r->inited) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->closed = true;
    hold_update(r);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; i < r->n_threads; i++) {
        pthread_cancel(r->threads[i].thread);
        pthread_join(r->threads[i].thread, NULL);
        pthread_mutex_destroy(&r->threads[i].mu);
    }
    r->n_threads = 0;
    while (r->head != NULL) {
        struct fs_rreq* q = r->head;
        r->head = q->next;
        free(q);
    }
    r->tail = &r->head;
    r->queued_bytes = 0;
    free(r->fbuf.mem);
    r->fbuf.mem = NULL;
    close(r->fd);
    r->fd = -1;
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    r->inited = false;
}

int fs__reader_clone_fd(const struct fs* f)
{
    return f->reader.inited ? f->reader.fd : -1;
}

void fs__reader_fast_stats(struct fs* f,
                           uint64_t* n,
                           uint64_t* ioctls,
                           struct node_hist* lat)
{
    struct fs_reader* r = &f->reader;

    *n = 0;
    *ioctls = 0;
    memset(lat, 0, sizeof(*lat));
    if (!r->inited) {
        return;
    }
    for (unsigned i = 0; i < r->n_threads; i++) {
        struct fs_reader_thread* t = &r->threads[i];
        pthread_mutex_lock(&t->mu);
        *n += t->fast_flushes;
        *ioctls += t->fast_ioctls;
        for (unsigned b = 0; b <= NODE_HIST_BOUNDS; b++) {
            lat->buckets[b] += t->fast_lat.buckets[b];
        }
        lat->count += t->fast_lat.count;
        lat->sum_ns += t->fast_lat.sum_ns;
        pthread_mutex_unlock(&t->mu);
    }
}
