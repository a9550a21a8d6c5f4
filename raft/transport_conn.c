/* transport_conn.c - connections of the transport: dialing peers (bound
 * to the listen IP), accepting, handshake deadlines, reconnect with
 * backoff, and teardown (memory released in close callbacks only).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        char buf[32];
        transport__trace(
            p->t, RAFT_TRACE_INFO, "handshake with %s (%s) timed out",
            transport__peer_label(p->t, p->id, buf, sizeof(buf)), p->addr);
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
    transport__fqueue_free(&c->q); /* a provisional peer's, not written */
    tls_free(c->tls);
    free(c->wcipher);
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
        char buf[32];
        c->t->stats.disconnects++;
        transport__trace(
            c->t, RAFT_TRACE_INFO, "disconnected from %s (%s)",
            transport__peer_label(c->t, c->remote, buf, sizeof(buf)), c->name);
    }
    uv_close((uv_handle_t*)&c->tcp, conn_close_cb);
}

/* Whether a refusal from `ip` is logged now: at most once per address per
 * REJECT_LOG_INTERVAL_MS; *suppressed gets how many were not logged since
 * the last line. */
static bool reject_log_due(struct transport* t,
                           const char* ip,
                           unsigned* suppressed)
{
    uint64_t now = uv_now(t->loop);
    struct reject_log* slot = NULL;
    struct reject_log* oldest = &t->rejects[0];
    for (unsigned i = 0; i < REJECT_LOG_SLOTS; i++) {
        struct reject_log* r = &t->rejects[i];
        if (r->ip[0] != '\0' && strcmp(r->ip, ip) == 0) {
            slot = r;
            break;
        }
        if (r->last_ms < oldest->last_ms) {
            oldest = r;
        }
    }
    if (slot != NULL && now - slot->last_ms < REJECT_LOG_INTERVAL_MS) {
        slot->suppressed++;
        return false;
    }
    if (slot == NULL) {
        slot = oldest;
        snprintf(slot->ip, sizeof(slot->ip), "%s", ip);
        slot->suppressed = 0;
    }
    *suppressed = slot->suppressed;
    slot->suppressed = 0;
    slot->last_ms = now;
    return true;
}

/* Log the refusal of c, rate-limited per source address. */
static void refuse_log(struct conn* c, const char* why)
{
    struct transport* t = c->t;
    unsigned suppressed = 0;
    if (reject_log_due(t, c->ip[0] != '\0' ? c->ip : c->name, &suppressed)) {
        if (suppressed > 0) {
            transport__trace(t, RAFT_TRACE_WARN,
                             "refused connection %s %s: %s (and %u more "
                             "from this address since the last report)",
                             c->peer != NULL ? "to" : "from", c->name, why,
                             suppressed);
        } else {
            transport__trace(t, RAFT_TRACE_WARN, "refused connection %s %s: %s",
                             c->peer != NULL ? "to" : "from", c->name, why);
        }
    }
}

/* A connection that did not prove it is a member (failed TLS handshake,
 * a name its certificate does not carry, no HELLO in time, evicted): log
 * it, rate-limited per source address, and close it. */
void transport__conn_refuse(struct conn* c, const char* why)
{
    if (c->closing) {
        return;
    }
    c->t->stats.refused_handshakes++;
    refuse_log(c, why);
    transport__conn_close(c);
}

/* A protocol violation: count it, log it, close this connection only. */
void transport__conn_reject(struct conn* c, const char* why)
{
    c->t->stats.rejected_frames++;
    if (!c->established) {
        transport__conn_refuse(c, why);
        return;
    }
    char buf[32];
    transport__trace(
        c->t, RAFT_TRACE_WARN, "rejected connection %s (%s): %s", c->name,
        transport__peer_label(c->t, c->remote, buf, sizeof(buf)), why);
    transport__conn_close(c);
}

static struct conn* conn_new(struct transport* t, struct peer* p)
{
    struct conn* c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    /* A dialer's session now; a listener's with its first bytes. */
    if (t->o.tls != NULL && p != NULL &&
        (c->tls = tls_new(t->o.tls, true)) == NULL) {
        free(c);
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
        /* TLS: the dialer's HELLO follows the handshake. */
        rv =
            c->tls != NULL ? transport__tls_start(c) : transport__send_hello(c);
    }
    if (rv != 0) {
        char buf[32];
        transport__trace(
            c->t, RAFT_TRACE_DEBUG, "connect to %s (%s): %s",
            transport__peer_label(c->t, c->peer->id, buf, sizeof(buf)), c->name,
            uv_strerror(rv));
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
        char buf[32];
        transport__trace(t, RAFT_TRACE_DEBUG, "connect to %s (%s): %s",
                         transport__peer_label(t, p->id, buf, sizeof(buf)),
                         p->addr, uv_strerror(rv));
        transport__conn_close(c); /* its close callback schedules a reconnect */
        return;
    }
    uv_timer_start(&p->timer, peer_timer_cb, HANDSHAKE_TIMEOUT_MS, 0);
}

/* Whether ip is the host of a member's address. */
static bool member_ip(const struct transport* t, const char* ip)
{
    for (unsigned i = 0; i < t->n_peers; i++) {
        const char* a = t->peers[i]->addr;
        const char* colon = strrchr(a, ':');
        size_t n = colon != NULL ? (size_t)(colon - a) : strlen(a);
        if (n >= 2 && a[0] == '[') { /* [v6]:port */
            a++;
            n -= 2;
        }
        if (strlen(ip) == n && strncmp(a, ip, n) == 0) {
            return true;
        }
    }
    return false;
}

/* Make room for c among the connections that have not finished their
 * handshake: past UNAUTH_PER_ADDR_MAX from its address, the oldest from
 * that address goes; past UNAUTH_MAX in all, the oldest from an address
 * that is no member's (else the oldest). Established members are never
 * evicted. */
static void admit(struct transport* t, struct conn* c)
{
    unsigned same = 0, all = 0;
    struct conn *old_same = NULL, *old_stranger = NULL, *old_any = NULL;
    for (struct conn* o = t->incoming; o != NULL; o = o->next) {
        if (o == c || o->established || o->closing) {
            continue;
        }
        all++;
        old_any = o; /* the list is newest first: the last is the oldest */
        if (strcmp(o->ip, c->ip) == 0) {
            same++;
            old_same = o;
        }
        if (!member_ip(t, o->ip)) {
            old_stranger = o;
        }
    }
    struct conn* victim = NULL;
    const char* why = NULL;
    if (same >= UNAUTH_PER_ADDR_MAX) {
        victim = old_same;
        why = "evicted: too many unfinished handshakes from this address";
    } else if (all >= UNAUTH_MAX) {
        victim = old_stranger != NULL ? old_stranger : old_any;
        why = "evicted: too many unfinished handshakes";
    }
    if (victim != NULL) {
        t->stats.evicted++;
        transport__conn_refuse(victim, why);
    }
}

/* Whether a connection from ip may go on to its handshake: a member's
 * host always; any other address while its bucket holds a token (see
 * ACCEPT_RATE_PER_S). */
static bool accept_allowed(struct transport* t, const char* ip)
{
    const uint64_t full = (uint64_t)ACCEPT_BURST * 1000;
    uint64_t now = uv_now(t->loop);
    struct accept_bucket* b = NULL;
    struct accept_bucket* oldest = &t->buckets[0];

    if (member_ip(t, ip)) {
        return true;
    }
    for (unsigned i = 0; i < ACCEPT_SLOTS; i++) {
        struct accept_bucket* s = &t->buckets[i];
        if (s->ip[0] != '\0' && strcmp(s->ip, ip) == 0) {
            b = s;
            break;
        }
        if (s->last_ms < oldest->last_ms) {
            oldest = s;
        }
    }
    if (b == NULL) {
        b = oldest;
        snprintf(b->ip, sizeof(b->ip), "%s", ip);
        b->milli_tokens = full;
    } else {
        /* ACCEPT_RATE_PER_S tokens a second: that many thousandths a ms. */
        uint64_t add = (now - b->last_ms) * ACCEPT_RATE_PER_S;
        b->milli_tokens =
            full - b->milli_tokens < add ? full : b->milli_tokens + add;
    }
    b->last_ms = now;
    if (b->milli_tokens < 1000) {
        return false;
    }
    b->milli_tokens -= 1000;
    return true;
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
        snprintf(c->ip, sizeof(c->ip), "%s", c->name);
        char* colon = strrchr(c->ip, ':');
        if (colon != NULL) {
            *colon = '\0';
        }
    }
    if (rv == 0 && c->ip[0] != '\0' && !accept_allowed(t, c->ip)) {
        t->stats.rate_limited++;
        refuse_log(
            c,
            "more than " TRANSPORT_STR(
                ACCEPT_RATE_PER_S) " connections a second from this address");
        transport__conn_close(c);
        return;
    }
    if (rv == 0) {
        admit(t, c);
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
        transport__conn_refuse(c, t->o.tls != NULL && !c->tls_done
                                      ? "no TLS handshake in time"
                                      : "no HELLO in time");
    }
}
