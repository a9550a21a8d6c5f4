/* transport_conn.c - connections of the transport: dialing peers (bound
 * to the listen IP), accepting, handshake deadlines, reconnect with
 * backoff, and teardown (memory released in close callbacks only).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "transport_internal.h"

void transport__maybe_finish_close(struct transport* t)
{
    if (!t->closing || t->handles_open > 0) {
        return;
    }
    assert(t->n_peers == 0 && t->incoming == NULL);
    void (*cb)(void*) = t->close_cb;
    void* data = t->close_data;
    free(t);
    if (cb != NULL) {
        cb(data);
    }
}

static void maybe_free_peer(struct peer* p)
{
    if (p->removed && p->timer_closed && p->out == NULL) {
        transport__fqueue_free(&p->q);
        free(p);
    }
}

void transport__peer_timer_close_cb(uv_handle_t* h)
{
    struct peer* p = h->data;
    struct transport* t = p->t;
    p->timer_closed = true;
    t->handles_open--;
    maybe_free_peer(p);
    transport__maybe_finish_close(t);
}

/* The peer's timer: the reconnect delay when there is no connection, the
 * handshake deadline while one is being set up. */
static void peer_timer_cb(uv_timer_t* timer)
{
    struct peer* p = timer->data;
    assert(!p->removed);
    if (p->out == NULL) {
        transport__peer_connect(p);
    } else if (!p->out->established && !p->out->deadline_seen) {
        /* Timers run before the poll: look at the socket once more. */
        p->out->deadline_seen = true;
        uv_timer_start(&p->timer, peer_timer_cb, 1, 0);
    } else if (!p->out->established) {
        transport__trace(p->t, RAFT_TRACE_INFO,
                         "handshake with node %llu (%s) timed out",
                         (unsigned long long)p->id, p->addr);
        transport__conn_close(
            p->out); /* its close callback schedules a reconnect */
    }
}

static void schedule_reconnect(struct peer* p)
{
    p->backoff_ms = p->backoff_ms == 0 ? BACKOFF_MIN_MS : p->backoff_ms * 2;
    if (p->backoff_ms > BACKOFF_MAX_MS) {
        p->backoff_ms = BACKOFF_MAX_MS;
    }
    uv_timer_start(&p->timer, peer_timer_cb, p->backoff_ms, 0);
}

static void conn_close_cb(uv_handle_t* h)
{
    struct conn* c = h->data;
    struct transport* t = c->t;
    assert(c->inflight.head == NULL); /* write callbacks ran first */
    if (c->peer != NULL) {
        struct peer* p = c->peer;
        p->out = NULL;
        if (!p->removed) {
            schedule_reconnect(p);
        }
        maybe_free_peer(p);
    } else {
        struct conn** pp = &t->incoming;
        while (*pp != c) {
            pp = &(*pp)->next;
        }
        *pp = c->next;
        t->n_incoming--;
    }
    free(c->rbuf);
    free(c);
    t->handles_open--;
    transport__maybe_finish_close(t);
}

void transport__conn_close(struct conn* c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->established) {
        c->t->stats.disconnects++;
        transport__trace(c->t, RAFT_TRACE_INFO,
                         "disconnected from node %llu (%s)",
                         (unsigned long long)c->remote, c->name);
    }
    uv_close((uv_handle_t*)&c->tcp, conn_close_cb);
}

/* A protocol violation: count it, log it, close this connection only. */
void transport__conn_reject(struct conn* c, const char* why)
{
    c->t->stats.rejected_frames++;
    transport__trace(c->t, RAFT_TRACE_WARN,
                     "rejected connection %s (node %llu): %s", c->name,
                     (unsigned long long)c->remote, why);
    transport__conn_close(c);
}

static struct conn* conn_new(struct transport* t, struct peer* p)
{
    struct conn* c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->t = t;
    c->peer = p;
    c->deadline_ms = uv_now(t->loop) + HANDSHAKE_TIMEOUT_MS;
    int rv = uv_tcp_init(t->loop, &c->tcp);
    assert(rv == 0); /* uv_tcp_init cannot fail for AF_UNSPEC */
    (void)rv;
    c->tcp.data = c;
    t->handles_open++;
    return c;
}

static void connect_cb(uv_connect_t* req, int status)
{
    struct conn* c = req->data;
    if (c->closing) {
        return;
    }
    int rv = status;
    if (rv == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        uv_tcp_keepalive(&c->tcp, 1, 10);
        rv = uv_read_start((uv_stream_t*)&c->tcp, transport__alloc_cb,
                           transport__read_cb);
    }
    if (rv == 0) {
        rv = transport__send_hello(c);
    }
    if (rv != 0) {
        transport__trace(
            c->t, RAFT_TRACE_DEBUG, "connect to node %llu (%s): %s",
            (unsigned long long)c->peer->id, c->name, uv_strerror(rv));
        transport__conn_close(c);
    }
}

/* Dial p from our listen IP (port 0). Failures end in a reconnect. */
void transport__peer_connect(struct peer* p)
{
    struct transport* t = p->t;
    assert(p->out == NULL && !p->removed);
    struct conn* c = conn_new(t, p);
    if (c == NULL) {
        schedule_reconnect(p);
        return;
    }
    p->out = c;
    snprintf(c->name, sizeof(c->name), "%s", p->addr);
    struct sockaddr_storage src = t->listen_sa;
    if (src.ss_family == AF_INET) {
        ((struct sockaddr_in*)&src)->sin_port = 0;
    } else {
        ((struct sockaddr_in6*)&src)->sin6_port = 0;
    }
    int rv = uv_tcp_bind(&c->tcp, (const struct sockaddr*)&src, 0);
    if (rv == 0) {
        c->connect_req.data = c;
        rv = uv_tcp_connect(&c->connect_req, &c->tcp,
                            (const struct sockaddr*)&p->sa, connect_cb);
    }
    if (rv != 0) {
        transport__trace(t, RAFT_TRACE_DEBUG, "connect to node %llu (%s): %s",
                         (unsigned long long)p->id, p->addr, uv_strerror(rv));
        transport__conn_close(c); /* its close callback schedules a reconnect */
        return;
    }
    uv_timer_start(&p->timer, peer_timer_cb, HANDSHAKE_TIMEOUT_MS, 0);
}

void transport__connection_cb(uv_stream_t* server, int status)
{
    struct transport* t = server->data;
    if (status != 0) {
        transport__trace(t, RAFT_TRACE_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    struct conn* c = conn_new(t, NULL);
    if (c == NULL) {
        return; /* the connection waits in the backlog */
    }
    c->next = t->incoming;
    t->incoming = c;
    t->n_incoming++;
    struct sockaddr_storage sa;
    int sa_len = sizeof(sa);
    int rv = uv_accept(server, (uv_stream_t*)&c->tcp);
    if (rv == 0 &&
        uv_tcp_getpeername(&c->tcp, (struct sockaddr*)&sa, &sa_len) == 0) {
        transport__sockaddr_name(&sa, c->name, sizeof(c->name));
    }
    if (rv == 0 && t->n_incoming > INCOMING_MAX) {
        transport__trace(t, RAFT_TRACE_WARN, "too many connections, closing %s",
                         c->name);
        rv = UV_EMFILE;
    }
    if (rv == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        rv = uv_read_start((uv_stream_t*)&c->tcp, transport__alloc_cb,
                           transport__read_cb);
    }
    if (rv != 0) {
        transport__conn_close(c);
    }
}

/* Incoming connections that have not said HELLO in time are closed. */
void transport__sweep_cb(uv_timer_t* timer)
{
    struct transport* t = timer->data;
    uint64_t now = uv_now(t->loop);
    for (struct conn* c = t->incoming; c != NULL; c = c->next) {
        if (c->established || c->closing || now < c->deadline_ms) {
            continue;
        }
        if (!c->deadline_seen) {
            c->deadline_seen =
                true; /* judged at the next sweep, after a poll */
            continue;
        }
        transport__trace(t, RAFT_TRACE_INFO, "no HELLO from %s in time",
                         c->name);
        transport__conn_close(c);
    }
}
