/* metrics_http.h - the --listen-metrics HTTP listener: GET /metrics,
 * /livez and /readyz (docs/operations.md, "Metrics and health"), served
 * by libmicrohttpd on its own thread. The answers are made on the loop
 * thread (the node's state is the loop's): the HTTP thread asks through a
 * uv_async and waits for the text, at most METRICS_HTTP_WAIT_MS; a loop
 * that does not answer by then gets 503, never a hung client.
 *
 * Only loopback is sane for ADDR: the listener has no authentication and
 * the metrics name the members and tell the cluster's state
 * (docs/security.md). */
#ifndef QFS_METRICS_HTTP_H
#define QFS_METRICS_HTTP_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

enum {
    METRICS_HTTP_WAIT_MS = 2000,   /* the loop's answer, then 503 */
    METRICS_HTTP_CONNECTIONS = 16, /* clients at once */
    METRICS_HTTP_TIMEOUT_S = 10,   /* an idle client is dropped */
};

/* A listening TCP socket on addr (close-on-exec): the fd, or -errno
 * (-EADDRINUSE...). Made while the flags are checked, so a port that is
 * taken is a usage error before anything is written. */
int metrics_http_listen(const struct sockaddr_storage* addr);

enum metrics_http_what {
    METRICS_HTTP_METRICS = 1, /* /metrics */
    METRICS_HTTP_LIVEZ,       /* /livez */
    METRICS_HTTP_READYZ,      /* /readyz */
};

/* Runs on the loop thread: the answer to `what`, as an HTTP status and a
 * malloc'd body (*body, *len: taken by the listener; NULL for none). */
typedef int (*metrics_http_answer_cb)(void* data,
                                      enum metrics_http_what what,
                                      char** body,
                                      size_t* len);

struct metrics_http;

/* Serve on fd (taken: closed by metrics_http_stop, or here on error).
 * 0 with *out set, -ENOMEM, -EIO (libmicrohttpd refused to start). */
int metrics_http_start(uv_loop_t* loop,
                       int fd,
                       metrics_http_answer_cb cb,
                       void* data,
                       struct metrics_http** out);
/* On the loop thread: a waiting request gets 503, the HTTP thread is
 * joined, the socket closed; the memory is freed once the async handle
 * has closed (the loop must run on). NULL: nothing. */
void metrics_http_stop(struct metrics_http* h);

#endif /* QFS_METRICS_HTTP_H */
