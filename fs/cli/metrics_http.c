/* metrics_http.c - the --listen-metrics HTTP listener (metrics_http.h).
 *
 * libmicrohttpd runs one internal thread (MHD_USE_INTERNAL_POLLING_THREAD)
 * that serves the clients one request at a time. For each request it
 * publishes a query (seq, what) under mu, wakes the loop with a uv_async
 * and waits on cond for the answer with that seq, up to
 * METRICS_HTTP_WAIT_MS. The loop's async callback makes the answer of the
 * newest query (the answer callback reads the node: loop-thread state)
 * and hands it over under mu. A late answer to a query already given up
 * is dropped. Stopping sets `closing` first, so a request waiting for the
 * loop returns 503 at once and MHD_stop_daemon can join the thread.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../raft/util/deadline.h"
#include "metrics_http.h"

enum { LISTEN_BACKLOG = 16 };

struct metrics_http {
    uv_async_t async;
    struct MHD_Daemon* daemon;
    metrics_http_answer_cb cb;
    void* data;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu */
    uint64_t asked, answered; /* query seqs */
    enum metrics_http_what what;
    int status;
    char* body;
    size_t len;
    bool closing;
};

int metrics_http_listen(const struct sockaddr_storage* addr)
{
    socklen_t alen = addr->ss_family == AF_INET6
                         ? (socklen_t)sizeof(struct sockaddr_in6)
                         : (socklen_t)sizeof(struct sockaddr_in);
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    /* A restart may bind while old connections linger in TIME_WAIT; two
     * live listeners still conflict (Linux refuses that without
     * SO_REUSEPORT). */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr*)addr, alen) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* ---- the loop side ---- */

static void async_cb(uv_async_t* a)
{
    struct metrics_http* h = a->data;
    pthread_mutex_lock(&h->mu);
    if (h->asked == h->answered || h->closing) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    uint64_t seq = h->asked;
    enum metrics_http_what what = h->what;
    pthread_mutex_unlock(&h->mu);

    char* body = NULL;
    size_t len = 0;
    int status = h->cb(h->data, what, &body, &len);

    pthread_mutex_lock(&h->mu);
    if (seq == h->asked && !h->closing) {
        free(h->body);
        h->body = body;
        h->len = len;
        h->status = status;
        h->answered = seq;
        body = NULL;
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->mu);
    free(body); /* asked again meanwhile: a newer query gets an answer */
}

/* ---- the HTTP thread ---- */

static enum MHD_Result reply(struct MHD_Connection* c,
                             unsigned status,
                             char* body,
                             size_t len,
                             const char* type)
{
    struct MHD_Response* r;
    if (body != NULL) {
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    } else {
        r = MHD_create_response_from_buffer(0, (void*)"",
                                            MHD_RESPMEM_PERSISTENT);
    }
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rv = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rv;
}

static enum MHD_Result reply_text(struct MHD_Connection* c,
                                  unsigned status,
                                  const char* text)
{
    return reply(c, status, strdup(text), strlen(text),
                 "text/plain; charset=utf-8");
}

/* Ask the loop; 0 with the answer, or -ETIMEDOUT / -ESHUTDOWN. */
static int ask_loop(struct metrics_http* h,
                    enum metrics_http_what what,
                    int* status,
                    char** body,
                    size_t* len)
{
    struct timespec deadline =
        util_deadline_ms(CLOCK_MONOTONIC, METRICS_HTTP_WAIT_MS);
    pthread_mutex_lock(&h->mu);
    uint64_t seq = ++h->asked;
    h->what = what;
    pthread_mutex_unlock(&h->mu);
    uv_async_send(&h->async);

    int rv = 0;
    pthread_mutex_lock(&h->mu);
    while (h->answered < seq && !h->closing && rv == 0) {
        rv = pthread_cond_timedwait(&h->cond, &h->mu, &deadline);
    }
    if (h->answered >= seq) {
        *status = h->status;
        *body = h->body;
        *len = h->len;
        h->body = NULL;
        rv = 0;
    } else {
        rv = h->closing ? -ESHUTDOWN : -ETIMEDOUT;
    }
    pthread_mutex_unlock(&h->mu);
    return rv;
}

static enum MHD_Result handler(void* cls,
                               struct MHD_Connection* c,
                               const char* url,
                               const char* method,
                               const char* version,
                               const char* upload_data,
                               size_t* upload_data_size,
                               void** con_cls)
{
    struct metrics_http* h = cls;
    enum metrics_http_what what;

    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "only GET and HEAD\n");
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a GET with a body: ignored */
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") == 0) {
        what = METRICS_HTTP_METRICS;
    } else if (strcmp(url, "/livez") == 0) {
        what = METRICS_HTTP_LIVEZ;
    } else if (strcmp(url, "/readyz") == 0) {
        what = METRICS_HTTP_READYZ;
    } else {
        return reply_text(c, MHD_HTTP_NOT_FOUND,
                          "not found: /metrics, /livez or /readyz\n");
    }
    int status = 0;
    char* body = NULL;
    size_t len = 0;
    int rv = ask_loop(h, what, &status, &body, &len);
    if (rv == -ETIMEDOUT) {
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "the node's loop did not answer within 2 s\n");
    }
    if (rv != 0) {
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "the node is shutting down\n");
    }
    return reply(c, (unsigned)status, body, len,
                 what == METRICS_HTTP_METRICS
                     ? "text/plain; version=0.0.4; charset=utf-8"
                     : "text/plain; charset=utf-8");
}

int metrics_http_start(uv_loop_t* loop,
                       int fd,
                       metrics_http_answer_cb cb,
                       void* data,
                       struct metrics_http** out)
{
    pthread_condattr_t ca;
    struct metrics_http* h = calloc(1, sizeof(*h));
    if (h == NULL) {
        close(fd);
        return -ENOMEM;
    }
    h->cb = cb;
    h->data = data;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    uv_async_init(loop, &h->async, async_cb);
    h->async.data = h;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, handler,
        h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT_S,
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        close(fd);
        metrics_http_stop(h);
        return -EIO;
    }
    *out = h;
    return 0;
}

static void closed_cb(uv_handle_t* a)
{
    struct metrics_http* h = a->data;
    free(h->body);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cond);
    free(h);
}

void metrics_http_stop(struct metrics_http* h)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->closing = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
    if (h->daemon != NULL) {
        MHD_stop_daemon(h->daemon); /* joins the thread, closes the socket */
        h->daemon = NULL;
    }
    uv_close((uv_handle_t*)&h->async, closed_cb);
}
