/* transport.c - raft messages between nodes over TCP, on libuv.
 *
 * Frame (docs/format-wire.md), all integers little-endian:
 *   u32 magic "QFSP", u16 version, u16 kind, u32 body length,
 *   u32 checksum (XXH32 of the body, seed 0), body.
 * Kinds: HELLO (body: u64 cluster id, u64 node id, and from version 2 u64
 * incarnation) and MSG (body: one raft_msg_encode() encoding). A HELLO whose
 * incarnation differs from the last one seen from that node means the node
 * restarted: on_peer_restart tells the owner (the leader re-probes it). A
 * length prefix over FRAME_BODY_MAX is malformed, so a connection's read buffer
 * never exceeds one maximal frame.
 *
 * Connections. Each peer has at most one outgoing connection, bound to the
 * node's listen IP (port 0) so partition tests can filter by source address.
 * The dialer sends HELLO first; the listener checks it (same cluster id, a
 * node id in the peer table, not our own) and answers with its own HELLO,
 * which the dialer checks the same way (and that it is the node it dialed).
 * Only then is the connection established and the peer's queue flushed.
 * A listener also takes a dialer of its own cluster id whose node id is
 * not in the peer table, if it proved that id (a leader whose
 * configuration is newer than ours): a provisional peer, which gets only
 * its appends and snapshots delivered and is answered over that
 * connection until transport_set_peer names it.
 * After that either side may send MSG frames; a message is delivered only
 * if its `from` is the HELLO's node id and its `to` is us. Any violation
 * closes that connection only (rejected_frames is counted); the dialer
 * reconnects with backoff 50 ms doubling to 2 s, reset by a handshake.
 *
 * Queues. transport_send() encodes the message into a frame at once (m is
 * borrowed) and appends it to the peer's queue; queue bytes count frames
 * waiting and frames being written. A frame that would take the queue over
 * queue_bytes_max is dropped and counted. Frames are written in batches of
 * at most WRITE_BATCH_MAX with one uv_write in flight per connection; frames
 * in flight when a connection breaks are lost (raft retransmits), frames
 * still waiting go out on the next connection.
 *
 * Re-entrancy: on_message runs from the read callback with the message
 * borrowed for the call. It may call transport_send, transport_set_peer,
 * transport_remove_peer and even transport_close; frames after a closing
 * call are not delivered. Memory is released only from close callbacks.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "util/bytes.h"
#include "codec.h"
#include "transport_internal.h"

__attribute__((format(printf, 3, 4))) void transport__trace(struct transport* t,
                                                            int level,
                                                            const char* fmt,
                                                            ...)
{
    if (t->o.tracer.emit == NULL || level < t->o.tracer.level) {
        return;
    }
    char msg[TRACE_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t->o.tracer.emit(t->o.tracer.data, level, t->o.self, msg);
}

void transport__frame_header(uint8_t* h,
                             unsigned kind,
                             const uint8_t* body,
                             size_t len)
{
    assert(len <= FRAME_BODY_MAX);
    put_le(h, TRANSPORT_MAGIC, 4);
    put_le(h + 4, TRANSPORT_VERSION, 2);
    put_le(h + 6, kind, 2);
    put_le(h + 8, len, 4);
    put_le(h + 12, XXH32(body, len, 0), 4);
}

/* "a.b.c.d:port" or "[v6]:port" (numeric only). Port 0 only if allowed. */
int transport_parse_addr(const char* s,
                         struct sockaddr_storage* sa,
                         bool port0_ok)
{
    char host[RAFT_ADDR_MAX];
    size_t n = s != NULL ? strnlen(s, RAFT_ADDR_MAX) : RAFT_ADDR_MAX;
    if (n == 0 || n >= RAFT_ADDR_MAX) {
        return -EINVAL;
    }
    const char* colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0') {
        return -EINVAL;
    }
    const char* h = s;
    size_t hlen = (size_t)(colon - s);
    bool v6 = s[0] == '[';
    if (v6) {
        if (hlen < 3 || colon[-1] != ']') {
            return -EINVAL;
        }
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    unsigned long port = 0;
    for (const char* p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            return -EINVAL;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535 || (port == 0 && !port0_ok)) {
        return -EINVAL;
    }
    memset(sa, 0, sizeof(*sa));
    int rv = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6*)sa)
                : uv_ip4_addr(host, (int)port, (struct sockaddr_in*)sa);
    return rv == 0 ? 0 : -EINVAL;
}

void transport__sockaddr_name(const struct sockaddr_storage* sa,
                              char* out,
                              size_t cap)
{
    char ip[64] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in* a = (const struct sockaddr_in*)sa;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6* a = (const struct sockaddr_in6*)sa;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

struct peer* transport__peer_find(const struct transport* t, raft_id id)
{
    for (unsigned i = 0; i < t->n_peers; i++) {
        if (t->peers[i]->id == id) {
            return t->peers[i];
        }
    }
    return NULL;
}

void transport__fqueue_push(struct fqueue* q, struct frame* f)
{
    f->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = f;
    } else {
        q->head = f;
    }
    q->tail = f;
    q->n++;
}

struct frame* transport__fqueue_pop(struct fqueue* q)
{
    struct frame* f = q->head;
    if (f != NULL) {
        q->head = f->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        q->n--;
    }
    return f;
}

void transport__fqueue_free(struct fqueue* q)
{
    struct frame* f;
    while ((f = transport__fqueue_pop(q)) != NULL) {
        free(f);
    }
}

static void listener_close_cb(uv_handle_t* h)
{
    struct transport* t = h->data;
    t->handles_open--;
    transport__maybe_finish_close(t);
}

int transport_start(uv_loop_t* loop,
                    const struct transport_options* o,
                    struct transport** out)
{
    assert(loop != NULL && o != NULL && out != NULL);
    assert(o->self != 0 && o->on_message != NULL);
    struct sockaddr_storage sa;
    int rv = transport_parse_addr(o->listen_addr, &sa, true);
    if (rv != 0) {
        return rv;
    }
    struct transport* t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    t->loop = loop;
    t->o = *o;
    snprintf(t->listen_addr, sizeof(t->listen_addr), "%s", o->listen_addr);
    t->o.listen_addr = t->listen_addr;
    if (t->o.queue_bytes_max == 0) {
        t->o.queue_bytes_max = QUEUE_BYTES_DEFAULT;
    }
    t->listen_sa = sa;
    uv_tcp_init(loop, &t->listener);
    t->listener.data = t;
    t->handles_open++;
    rv = uv_tcp_bind(&t->listener, (const struct sockaddr*)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t*)&t->listener, LISTEN_BACKLOG,
                       transport__connection_cb);
    }
    if (rv != 0) {
        goto err_after_listener;
    }
    uv_timer_init(loop, &t->sweep);
    t->sweep.data = t;
    t->handles_open++;
    uv_timer_start(&t->sweep, transport__sweep_cb, SWEEP_INTERVAL_MS,
                   SWEEP_INTERVAL_MS);
    transport__trace(t, RAFT_TRACE_INFO, "listening on %s (%s)", t->listen_addr,
                     t->o.tls != NULL ? tls_config_mode(t->o.tls)
                                      : "no TLS: --peer-insecure");
    *out = t;
    return 0;

err_after_listener:
    transport__trace(t, RAFT_TRACE_ERROR, "listen on %s: %s", t->listen_addr,
                     uv_strerror(rv));
    t->closing = true; /* no close_cb: freed quietly once the handle closes */
    uv_close((uv_handle_t*)&t->listener, listener_close_cb);
    return rv;
}

const char* transport__peer_label(const struct transport* t,
                                  raft_id id,
                                  char* buf,
                                  size_t cap)
{
    const struct peer* p = transport__peer_find(t, id);
    if (p != NULL && p->name[0] != '\0') {
        return p->name;
    }
    snprintf(buf, cap, "node %016llx", (unsigned long long)id);
    return buf;
}

int transport_set_peer(struct transport* t,
                       raft_id id,
                       const char* name,
                       const char* addr)
{
    assert(t != NULL && !t->closing && id != 0);
    struct sockaddr_storage sa;
    int rv = transport_parse_addr(addr, &sa, false);
    if (rv != 0) {
        return rv;
    }
    if (id == t->o.self) {
        return 0; /* no connection to ourselves */
    }
    struct peer* p = transport__peer_find(t, id);
    if (p != NULL) {
        if (name != NULL && name[0] != '\0') {
            snprintf(p->name, sizeof(p->name), "%s", name);
        }
        if (strcmp(p->addr, addr) != 0) {
            snprintf(p->addr, sizeof(p->addr), "%s", addr);
            p->sa = sa;
            if (p->out != NULL) {
                transport__conn_close(
                    p->out); /* reconnects to the new address */
            }
        }
        return 0;
    }
    if (t->n_peers == PEERS_MAX) {
        return -ENOSPC;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->t = t;
    p->id = id;
    snprintf(p->name, sizeof(p->name), "%s", name != NULL ? name : "");
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->sa = sa;
    uv_timer_init(t->loop, &p->timer);
    p->timer.data = p;
    t->handles_open++;
    t->peers[t->n_peers++] = p;
    /* A provisional peer (transport_io.c) that a configuration names now:
     * its connection is an ordinary member's from here on. */
    for (struct conn* c = t->incoming; c != NULL; c = c->next) {
        if (c->provisional && c->remote == id) {
            c->provisional = false;
            char buf[32];
            transport__trace(t, RAFT_TRACE_INFO,
                             "%s (%s) is in the configuration now: no longer "
                             "a provisional peer",
                             transport__peer_label(t, id, buf, sizeof(buf)),
                             c->name);
        }
    }
    transport__peer_connect(p);
    return 0;
}

void transport_remove_peer(struct transport* t, raft_id id)
{
    assert(t != NULL);
    struct peer* p = transport__peer_find(t, id);
    if (p == NULL) {
        return;
    }
    for (unsigned i = 0; i < t->n_peers; i++) {
        if (t->peers[i] == p) {
            t->peers[i] = t->peers[--t->n_peers];
            break;
        }
    }
    p->removed = true;
    transport__fqueue_free(&p->q); /* frames in flight are freed by write_cb */
    if (p->out != NULL) {
        transport__conn_close(p->out);
    }
    for (struct conn* c = t->incoming; c != NULL; c = c->next) {
        if (c->remote == id) {
            transport__conn_close(c);
        }
    }
    uv_close((uv_handle_t*)&p->timer, transport__peer_timer_close_cb);
}

/* The connection of provisional peer id (transport_io.c, handle_hello). */
static struct conn* provisional_conn(const struct transport* t, raft_id id)
{
    for (struct conn* c = t->incoming; c != NULL; c = c->next) {
        if (c->provisional && c->established && !c->closing &&
            c->remote == id) {
            return c;
        }
    }
    return NULL;
}

int transport_send(struct transport* t, const struct raft_message* m)
{
    assert(t != NULL && m != NULL && !t->closing);
    struct peer* p = transport__peer_find(t, m->to);
    /* A node outside the configuration that spoke to us (a leader we do
     * not know yet) is answered over its own connection: we have no
     * address for it. */
    struct conn* pc = p == NULL ? provisional_conn(t, m->to) : NULL;
    if (p == NULL && pc == NULL) {
        return -ENOENT;
    }
    struct fqueue* q = p != NULL ? &p->q : &pc->q;
    size_t* q_bytes = p != NULL ? &p->q_bytes : &pc->q_bytes;
    long rv = raft_msg_encode(m, NULL, 0); /* validates before sizing */
    if (rv != -ENOSPC) {
        return (int)rv; /* RAFT_ETOOBIG / RAFT_EMALFORMED: a bug upstream */
    }
    size_t len = raft_msg_encoded_size(m);
    assert(len <= FRAME_BODY_MAX); /* implied by the codec's limits */
    size_t flen = FRAME_HEADER_BYTES + len;
    if (*q_bytes + flen > t->o.queue_bytes_max) {
        t->stats.dropped_queue_full++;
        return -ENOBUFS;
    }
    struct frame* f = malloc(sizeof(*f) + flen);
    if (f == NULL) {
        return -ENOMEM;
    }
    f->len = flen;
    rv = raft_msg_encode(m, f->bytes + FRAME_HEADER_BYTES, len);
    assert(rv == (long)len);
    transport__frame_header(f->bytes, FRAME_KIND_MSG,
                            f->bytes + FRAME_HEADER_BYTES, len);
    transport__fqueue_push(q, f);
    *q_bytes += flen;
    if (p == NULL) {
        transport__conn_flush(pc);
    } else if (p->out != NULL) {
        transport__conn_flush(p->out);
    }
    return 0;
}

bool transport_connected(const struct transport* t, raft_id id)
{
    assert(t != NULL);
    const struct peer* p = transport__peer_find(t, id);
    return p != NULL && p->out != NULL && p->out->established &&
           !p->out->closing;
}

void transport_get_stats(const struct transport* t, struct transport_stats* s)
{
    assert(t != NULL && s != NULL);
    *s = t->stats;
}

static void sweep_close_cb(uv_handle_t* h)
{
    struct transport* t = h->data;
    t->handles_open--;
    transport__maybe_finish_close(t);
}

void transport_close(struct transport* t, void (*cb)(void* data), void* data)
{
    assert(t != NULL && !t->closing);
    t->closing = true;
    t->close_cb = cb;
    t->close_data = data;
    while (t->n_peers > 0) {
        transport_remove_peer(t, t->peers[0]->id);
    }
    for (struct conn* c = t->incoming; c != NULL; c = c->next) {
        transport__conn_close(c);
    }
    uv_close((uv_handle_t*)&t->sweep, sweep_close_cb);
    uv_close((uv_handle_t*)&t->listener, listener_close_cb);
}
