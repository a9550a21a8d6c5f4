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
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "util/bytes.h"
#include "codec.h"
#include "transport.h"

#define TRANSPORT_MAGIC 0x50534651u /* bytes "QFSP" read as a LE u32 */
#define TRANSPORT_VERSION 2         /* sent; 1 and 2 are accepted */
#define FRAME_HEADER_BYTES 16
#define FRAME_KIND_HELLO 1
#define FRAME_KIND_MSG 2
#define HELLO_V1_BODY_BYTES 16 /* cluster id, node id */
#define HELLO_BODY_BYTES 24    /* v2: and the sender's incarnation */
/* Largest MSG body: codec.c's largest encoding (a maximal append batch:
 * RAFT_APPEND_BYTES_MAX + RAFT_ENTRY_DATA_MAX of payload plus 21 bytes per
 * entry and 64 bytes of header) rounded up. */
#define FRAME_BODY_MAX ((size_t)6 << 20)
_Static_assert((size_t)RAFT_APPEND_BYTES_MAX + RAFT_ENTRY_DATA_MAX +
                       (size_t)RAFT_APPEND_ENTRIES_MAX * 21 + 64 <=
                   FRAME_BODY_MAX,
               "a maximal append batch fits in one frame");
_Static_assert((size_t)RAFT_SNAPSHOT_CHUNK + 4096 <= FRAME_BODY_MAX,
               "a snapshot chunk fits in one frame");

#define QUEUE_BYTES_DEFAULT ((size_t)16 << 20)
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define HANDSHAKE_TIMEOUT_MS 2000 /* connect + HELLO exchange */
#define SWEEP_INTERVAL_MS 250     /* checks incoming handshake deadlines */
#define PEERS_MAX (2 * RAFT_SERVERS_MAX)
#define INCOMING_MAX (4 * RAFT_SERVERS_MAX)
#define WRITE_BATCH_MAX 64
#define READ_BUF_MIN ((size_t)64 << 10)
#define LISTEN_BACKLOG 64
#define TRACE_MSG_MAX 256

struct frame {
    struct frame* next;
    size_t len; /* header + body */
    uint8_t bytes[];
};

struct fqueue {
    struct frame *head, *tail;
    unsigned n;
};

struct peer;

struct conn {
    struct transport* t;
    struct peer* peer; /* outgoing: the peer dialed; NULL when incoming */
    struct conn* next; /* incoming list */
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t hello_req;
    uint8_t hello[FRAME_HEADER_BYTES + HELLO_BODY_BYTES];
    uv_write_t write_req;
    struct fqueue inflight; /* frames of the uv_write in flight */
    bool writing;
    bool established; /* HELLOs exchanged */
    bool closing;
    raft_id remote;       /* node id from its HELLO */
    uint64_t incarnation; /* from its HELLO (0: version 1, none) */
    uint64_t deadline_ms;
    /* The handshake deadline passed once; it is judged again after the
     * loop has polled this socket (a stalled process must read the HELLO
     * waiting for it before it calls the peer silent). */
    bool deadline_seen;
    uint8_t* rbuf; /* <= FRAME_HEADER_BYTES + FRAME_BODY_MAX */
    size_t rlen, rcap;
    char name[RAFT_ADDR_MAX + 8]; /* remote address, for logs */
};

struct peer {
    struct transport* t;
    raft_id id;
    char addr[RAFT_ADDR_MAX];
    struct sockaddr_storage sa;
    struct conn* out;
    uv_timer_t timer; /* reconnect delay, or handshake timeout */
    unsigned backoff_ms;
    uint64_t incarnation; /* from its last HELLO (0: none yet) */
    struct fqueue q;      /* waiting to be written */
    size_t q_bytes;       /* waiting + in flight */
    bool removed;
    bool timer_closed;
};

struct transport {
    uv_loop_t* loop;
    struct transport_options o;
    char listen_addr[RAFT_ADDR_MAX];
    struct sockaddr_storage listen_sa;
    uv_tcp_t listener;
    uv_timer_t sweep;
    struct peer* peers[PEERS_MAX];
    unsigned n_peers;
    struct conn* incoming;
    unsigned n_incoming;
    struct transport_stats stats;
    unsigned handles_open;
    bool closing;
    void (*close_cb)(void* data);
    void* close_data;
};

static void conn_close(struct conn* c);
static void conn_flush(struct conn* c);
static void peer_connect(struct peer* p);

/* ---- helpers ---- */

__attribute__((format(printf, 3, 4))) static void trace(struct transport* t,
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

static void frame_header(uint8_t* h,
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
static int parse_addr(const char* s, struct sockaddr_storage* sa, bool port0_ok)
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

static void sockaddr_name(const struct sockaddr_storage* sa,
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

static struct peer* peer_find(const struct transport* t, raft_id id)
{
    for (unsigned i = 0; i < t->n_peers; i++) {
        if (t->peers[i]->id == id) {
            return t->peers[i];
        }
    }
    return NULL;
}

static void fqueue_push(struct fqueue* q, struct frame* f)
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

static struct frame* fqueue_pop(struct fqueue* q)
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

static void fqueue_free(struct fqueue* q)
{
    struct frame* f;
    while ((f = fqueue_pop(q)) != NULL) {
        free(f);
    }
}

/* ---- teardown ---- */

static void maybe_finish_close(struct transport* t)
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
        fqueue_free(&p->q);
        free(p);
    }
}

static void peer_timer_close_cb(uv_handle_t* h)
{
    struct peer* p = h->data;
    struct transport* t = p->t;
    p->timer_closed = true;
    t->handles_open--;
    maybe_free_peer(p);
    maybe_finish_close(t);
}

/* The peer's timer: the reconnect delay when there is no connection, the
 * handshake deadline while one is being set up. */
static void peer_timer_cb(uv_timer_t* timer)
{
    struct peer* p = timer->data;
    assert(!p->removed);
    if (p->out == NULL) {
        peer_connect(p);
    } else if (!p->out->established && !p->out->deadline_seen) {
        /* Timers run before the poll: look at the socket once more. */
        p->out->deadline_seen = true;
        uv_timer_start(&p->timer, peer_timer_cb, 1, 0);
    } else if (!p->out->established) {
        trace(p->t, RAFT_TRACE_INFO, "handshake with node %llu (%s) timed out",
              (unsigned long long)p->id, p->addr);
        conn_close(p->out); /* its close callback schedules a reconnect */
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
    maybe_finish_close(t);
}

static void conn_close(struct conn* c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->established) {
        c->t->stats.disconnects++;
        trace(c->t, RAFT_TRACE_INFO, "disconnected from node %llu (%s)",
              (unsigned long long)c->remote, c->name);
    }
    uv_close((uv_handle_t*)&c->tcp, conn_close_cb);
}

/* A protocol violation: count it, log it, close this connection only. */
static void conn_reject(struct conn* c, const char* why)
{
    c->t->stats.rejected_frames++;
    trace(c->t, RAFT_TRACE_WARN, "rejected connection %s (node %llu): %s",
          c->name, (unsigned long long)c->remote, why);
    conn_close(c);
}

/* ---- writing ---- */

static void write_cb(uv_write_t* req, int status)
{
    struct conn* c = req->data;
    struct transport* t = c->t;
    struct frame* f;
    while ((f = fqueue_pop(&c->inflight)) != NULL) {
        assert(c->peer->q_bytes >= f->len);
        c->peer->q_bytes -= f->len;
        if (status == 0) {
            t->stats.frames_out++;
            t->stats.bytes_out += f->len;
        }
        free(f);
    }
    c->writing = false;
    if (status != 0) {
        if (!c->closing) {
            trace(t, RAFT_TRACE_INFO, "write to %s: %s", c->name,
                  uv_strerror(status));
            conn_close(c);
        }
        return;
    }
    conn_flush(c);
}

/* Start one batched write of the waiting frames of an outgoing connection. */
static void conn_flush(struct conn* c)
{
    struct peer* p = c->peer;
    if (p == NULL || c->writing || !c->established || c->closing ||
        p->q.head == NULL) {
        return;
    }
    uv_buf_t bufs[WRITE_BATCH_MAX];
    unsigned n = 0;
    while (n < WRITE_BATCH_MAX && p->q.head != NULL) {
        struct frame* f = fqueue_pop(&p->q);
        bufs[n++] = uv_buf_init((char*)f->bytes, (unsigned)f->len);
        fqueue_push(&c->inflight, f);
    }
    c->write_req.data = c;
    int rv = uv_write(&c->write_req, (uv_stream_t*)&c->tcp, bufs, n, write_cb);
    if (rv != 0) {
        /* The callback will not run: release the batch here. */
        struct frame* f;
        while ((f = fqueue_pop(&c->inflight)) != NULL) {
            p->q_bytes -= f->len;
            free(f);
        }
        trace(c->t, RAFT_TRACE_INFO, "write to %s: %s", c->name,
              uv_strerror(rv));
        conn_close(c);
        return;
    }
    c->writing = true;
}

static void hello_write_cb(uv_write_t* req, int status)
{
    struct conn* c = req->data;
    if (status == 0) {
        c->t->stats.frames_out++;
        c->t->stats.bytes_out += sizeof(c->hello);
    } else if (!c->closing) {
        trace(c->t, RAFT_TRACE_INFO, "hello to %s: %s", c->name,
              uv_strerror(status));
        conn_close(c);
    }
}

static int send_hello(struct conn* c)
{
    struct transport* t = c->t;
    uint8_t* body = c->hello + FRAME_HEADER_BYTES;
    put_le(body, t->o.cluster_id, 8);
    put_le(body + 8, t->o.self, 8);
    put_le(body + 16, t->o.incarnation, 8);
    frame_header(c->hello, FRAME_KIND_HELLO, body, HELLO_BODY_BYTES);
    uv_buf_t buf = uv_buf_init((char*)c->hello, sizeof(c->hello));
    c->hello_req.data = c;
    return uv_write(&c->hello_req, (uv_stream_t*)&c->tcp, &buf, 1,
                    hello_write_cb);
}

/* ---- reading ---- */

static void established(struct conn* c, raft_id id)
{
    struct transport* t = c->t;
    c->established = true;
    c->remote = id;
    t->stats.connects++;
    trace(t, RAFT_TRACE_INFO, "connected %s node %llu (%s)",
          c->peer != NULL ? "to" : "from", (unsigned long long)id, c->name);
    if (c->peer != NULL) {
        c->peer->backoff_ms = 0;
        uv_timer_stop(&c->peer->timer);
        conn_flush(c);
        return;
    }
    /* A newer incoming connection from the same node replaces older ones. */
    for (struct conn* o = t->incoming; o != NULL; o = o->next) {
        if (o != c && o->remote == id && !o->closing) {
            conn_close(o);
        }
    }
}

/* A HELLO with another incarnation than the last one seen from that node:
 * it restarted (and may have lost state), tell the owner. Version 1 HELLOs
 * carry none (0). */
static void note_incarnation(struct transport* t, raft_id id, uint64_t inc)
{
    struct peer* p = peer_find(t, id);
    if (p == NULL || inc == 0 || inc == p->incarnation) {
        return;
    }
    bool restarted = p->incarnation != 0;
    p->incarnation = inc;
    if (restarted) {
        trace(t, RAFT_TRACE_INFO, "node %llu restarted (incarnation %llx)",
              (unsigned long long)id, (unsigned long long)inc);
        if (t->o.on_peer_restart != NULL) {
            t->o.on_peer_restart(t->o.data, id);
        }
    }
}

static void handle_hello(struct conn* c, const uint8_t* body, size_t len)
{
    struct transport* t = c->t;
    uint64_t cluster = get_le(body, 8);
    raft_id id = get_le(body + 8, 8);
    uint64_t inc = len >= HELLO_BODY_BYTES ? get_le(body + 16, 8) : 0;
    if (c->established) {
        conn_reject(c, "second HELLO");
        return;
    }
    if (cluster != t->o.cluster_id) {
        char why[96];
        snprintf(why, sizeof(why), "foreign cluster id %llx (node %llu)",
                 (unsigned long long)cluster, (unsigned long long)id);
        conn_reject(c, why);
        return;
    }
    if (id == 0 || id == t->o.self || peer_find(t, id) == NULL ||
        (c->peer != NULL && c->peer->id != id)) {
        char why[64];
        snprintf(why, sizeof(why), "unexpected node id %llu",
                 (unsigned long long)id);
        conn_reject(c, why);
        return;
    }
    if (c->peer == NULL) {
        int rv = send_hello(c);
        if (rv != 0) {
            trace(t, RAFT_TRACE_INFO, "hello to %s: %s", c->name,
                  uv_strerror(rv));
            conn_close(c);
            return;
        }
    }
    c->incarnation = inc;
    established(c, id);
    note_incarnation(t, id, inc);
}

/* Whether c comes from an earlier process of its node: that node has said
 * HELLO since with another incarnation. What the dead process still had in
 * flight (an acknowledgement of entries it then lost, say) must not reach
 * raft after the new process was seen. */
static bool conn_outlived(const struct conn* c)
{
    const struct peer* p = peer_find(c->t, c->remote);
    return p != NULL && c->incarnation != 0 && p->incarnation != 0 &&
           c->incarnation != p->incarnation;
}

static void handle_msg(struct conn* c, const uint8_t* body, size_t len)
{
    struct transport* t = c->t;
    if (!c->established) {
        conn_reject(c, "message before HELLO");
        return;
    }
    if (conn_outlived(c)) {
        trace(t, RAFT_TRACE_INFO,
              "closing %s: node %llu has restarted since its HELLO", c->name,
              (unsigned long long)c->remote);
        conn_close(c);
        return;
    }
    struct raft_message m;
    struct raft_msg_arena arena;
    int rv = raft_msg_decode(&m, &arena, body, len);
    if (rv != 0) {
        conn_reject(c, raft_strerror(rv));
        return;
    }
    if (m.from != c->remote || m.to != t->o.self) {
        raft_msg_arena_free(&arena);
        conn_reject(c, "message not from the HELLO's node or not for us");
        return;
    }
    t->o.on_message(t->o.data, &m);
    raft_msg_arena_free(&arena);
}

/* Body length of the frame at the head of the read buffer, after checking
 * its header; -1 if the header is malformed (the connection is closed). */
static long frame_check_header(struct conn* c, const uint8_t* h)
{
    uint64_t magic = get_le(h, 4), version = get_le(h + 4, 2);
    uint64_t kind = get_le(h + 6, 2), len = get_le(h + 8, 4);
    const char* why = NULL;
    if (magic != TRANSPORT_MAGIC) {
        why = "bad frame magic";
    } else if (version < 1 || version > TRANSPORT_VERSION) {
        why = "unsupported frame version";
    } else if (kind == FRAME_KIND_HELLO) {
        size_t want = version == 1 ? HELLO_V1_BODY_BYTES : HELLO_BODY_BYTES;
        why = len == want ? NULL : "bad HELLO length";
    } else if (kind == FRAME_KIND_MSG) {
        why = len <= FRAME_BODY_MAX ? NULL : "frame longer than the maximum";
    } else {
        why = "unknown frame kind";
    }
    if (why != NULL) {
        conn_reject(c, why);
        return -1;
    }
    return (long)len;
}

/* Handle every complete frame in the read buffer (bounded by its bytes). */
static void conn_process(struct conn* c)
{
    size_t off = 0;
    while (!c->closing && c->rlen - off >= FRAME_HEADER_BYTES) {
        const uint8_t* h = c->rbuf + off;
        long len = frame_check_header(c, h);
        if (len < 0) {
            return;
        }
        if (c->rlen - off - FRAME_HEADER_BYTES < (size_t)len) {
            break; /* the rest of the body has not arrived */
        }
        const uint8_t* body = h + FRAME_HEADER_BYTES;
        if (XXH32(body, (size_t)len, 0) != get_le(h + 12, 4)) {
            conn_reject(c, "frame checksum mismatch");
            return;
        }
        c->t->stats.frames_in++;
        off += FRAME_HEADER_BYTES + (size_t)len;
        if (get_le(h + 6, 2) == FRAME_KIND_HELLO) {
            handle_hello(c, body, (size_t)len);
        } else {
            handle_msg(c, body, (size_t)len); /* may close c, even t */
        }
    }
    if (c->closing) {
        return; /* the buffer is released by the close callback */
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if (c->rcap > READ_BUF_MIN && c->rlen < FRAME_HEADER_BYTES) {
        uint8_t* small = realloc(c->rbuf, READ_BUF_MIN); /* give back */
        if (small != NULL) {
            c->rbuf = small;
            c->rcap = READ_BUF_MIN;
        }
    }
}

/* Room for the rest of the current frame (at most one maximal frame). */
static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    struct conn* c = h->data;
    size_t need = READ_BUF_MIN;
    if (c->rlen >= FRAME_HEADER_BYTES) {
        size_t len = get_le(c->rbuf + 8, 4);
        assert(len <= FRAME_BODY_MAX); /* checked by conn_process */
        if (FRAME_HEADER_BYTES + len > need) {
            need = FRAME_HEADER_BYTES + len;
        }
    }
    if (c->rcap < need) {
        uint8_t* bigger = realloc(c->rbuf, need);
        if (bigger == NULL) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->rbuf = bigger;
        c->rcap = need;
    }
    assert(c->rlen < c->rcap);
    *buf = uv_buf_init((char*)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf)
{
    struct conn* c = s->data;
    if (nread == 0 || c->closing) {
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF) {
            trace(c->t, RAFT_TRACE_INFO, "read from %s: %s", c->name,
                  uv_strerror((int)nread));
        }
        conn_close(c);
        return;
    }
    assert(buf->base == (char*)c->rbuf + c->rlen);
    c->rlen += (size_t)nread;
    c->t->stats.bytes_in += (uint64_t)nread;
    conn_process(c);
}

/* ---- connections ---- */

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
        rv = uv_read_start((uv_stream_t*)&c->tcp, alloc_cb, read_cb);
    }
    if (rv == 0) {
        rv = send_hello(c);
    }
    if (rv != 0) {
        trace(c->t, RAFT_TRACE_DEBUG, "connect to node %llu (%s): %s",
              (unsigned long long)c->peer->id, c->name, uv_strerror(rv));
        conn_close(c);
    }
}

/* Dial p from our listen IP (port 0). Failures end in a reconnect. */
static void peer_connect(struct peer* p)
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
        trace(t, RAFT_TRACE_DEBUG, "connect to node %llu (%s): %s",
              (unsigned long long)p->id, p->addr, uv_strerror(rv));
        conn_close(c); /* its close callback schedules a reconnect */
        return;
    }
    uv_timer_start(&p->timer, peer_timer_cb, HANDSHAKE_TIMEOUT_MS, 0);
}

static void connection_cb(uv_stream_t* server, int status)
{
    struct transport* t = server->data;
    if (status != 0) {
        trace(t, RAFT_TRACE_WARN, "accept: %s", uv_strerror(status));
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
        sockaddr_name(&sa, c->name, sizeof(c->name));
    }
    if (rv == 0 && t->n_incoming > INCOMING_MAX) {
        trace(t, RAFT_TRACE_WARN, "too many connections, closing %s", c->name);
        rv = UV_EMFILE;
    }
    if (rv == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        rv = uv_read_start((uv_stream_t*)&c->tcp, alloc_cb, read_cb);
    }
    if (rv != 0) {
        conn_close(c);
    }
}

/* Incoming connections that have not said HELLO in time are closed. */
static void sweep_cb(uv_timer_t* timer)
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
        trace(t, RAFT_TRACE_INFO, "no HELLO from %s in time", c->name);
        conn_close(c);
    }
}

/* ---- API ---- */

static void listener_close_cb(uv_handle_t* h)
{
    struct transport* t = h->data;
    t->handles_open--;
    maybe_finish_close(t);
}

int transport_start(uv_loop_t* loop,
                    const struct transport_options* o,
                    struct transport** out)
{
    assert(loop != NULL && o != NULL && out != NULL);
    assert(o->self != 0 && o->on_message != NULL);
    struct sockaddr_storage sa;
    int rv = parse_addr(o->listen_addr, &sa, true);
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
                       connection_cb);
    }
    if (rv != 0) {
        goto err_after_listener;
    }
    uv_timer_init(loop, &t->sweep);
    t->sweep.data = t;
    t->handles_open++;
    uv_timer_start(&t->sweep, sweep_cb, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
    trace(t, RAFT_TRACE_INFO, "listening on %s", t->listen_addr);
    *out = t;
    return 0;

err_after_listener:
    trace(t, RAFT_TRACE_ERROR, "listen on %s: %s", t->listen_addr,
          uv_strerror(rv));
    t->closing = true; /* no close_cb: freed quietly once the handle closes */
    uv_close((uv_handle_t*)&t->listener, listener_close_cb);
    return rv;
}

int transport_set_peer(struct transport* t, raft_id id, const char* addr)
{
    assert(t != NULL && !t->closing && id != 0);
    struct sockaddr_storage sa;
    int rv = parse_addr(addr, &sa, false);
    if (rv != 0) {
        return rv;
    }
    if (id == t->o.self) {
        return 0; /* no connection to ourselves */
    }
    struct peer* p = peer_find(t, id);
    if (p != NULL) {
        if (strcmp(p->addr, addr) != 0) {
            snprintf(p->addr, sizeof(p->addr), "%s", addr);
            p->sa = sa;
            if (p->out != NULL) {
                conn_close(p->out); /* reconnects to the new address */
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
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->sa = sa;
    uv_timer_init(t->loop, &p->timer);
    p->timer.data = p;
    t->handles_open++;
    t->peers[t->n_peers++] = p;
    peer_connect(p);
    return 0;
}

void transport_remove_peer(struct transport* t, raft_id id)
{
    assert(t != NULL);
    struct peer* p = peer_find(t, id);
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
    fqueue_free(&p->q); /* frames in flight are freed by write_cb */
    if (p->out != NULL) {
        conn_close(p->out);
    }
    for (struct conn* c = t->incoming; c != NULL; c = c->next) {
        if (c->remote == id) {
            conn_close(c);
        }
    }
    uv_close((uv_handle_t*)&p->timer, peer_timer_close_cb);
}

int transport_send(struct transport* t, const struct raft_message* m)
{
    assert(t != NULL && m != NULL && !t->closing);
    struct peer* p = peer_find(t, m->to);
    if (p == NULL) {
        return -ENOENT;
    }
    long rv = raft_msg_encode(m, NULL, 0); /* validates before sizing */
    if (rv != -ENOSPC) {
        return (int)rv; /* RAFT_ETOOBIG / RAFT_EMALFORMED: a bug upstream */
    }
    size_t len = raft_msg_encoded_size(m);
    assert(len <= FRAME_BODY_MAX); /* implied by the codec's limits */
    size_t flen = FRAME_HEADER_BYTES + len;
    if (p->q_bytes + flen > t->o.queue_bytes_max) {
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
    frame_header(f->bytes, FRAME_KIND_MSG, f->bytes + FRAME_HEADER_BYTES, len);
    fqueue_push(&p->q, f);
    p->q_bytes += flen;
    if (p->out != NULL) {
        conn_flush(p->out);
    }
    return 0;
}

bool transport_connected(const struct transport* t, raft_id id)
{
    assert(t != NULL);
    const struct peer* p = peer_find(t, id);
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
    maybe_finish_close(t);
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
        conn_close(c);
    }
    uv_close((uv_handle_t*)&t->sweep, sweep_close_cb);
    uv_close((uv_handle_t*)&t->listener, listener_close_cb);
}
