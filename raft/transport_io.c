/* transport_io.c - frames on one connection: batched writes of a peer's
 * queue, the HELLO exchange, and reading, checking and delivering frames
 * (docs/format-wire.md).
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
#include "transport_internal.h"

/* The frames c writes: its peer's queue, or a provisional peer's own. */
static struct fqueue* conn_queue(struct conn* c, size_t** bytes)
{
    if (c->peer != NULL) {
        *bytes = &c->peer->q_bytes;
        return &c->peer->q;
    }
    *bytes = &c->q_bytes;
    return &c->q;
}

static void write_cb(uv_write_t* req, int status)
{
    struct conn* c = req->data;
    struct transport* t = c->t;
    struct frame* f;
    size_t* q_bytes;
    conn_queue(c, &q_bytes);
    free(c->wcipher);
    c->wcipher = NULL;
    while ((f = transport__fqueue_pop(&c->inflight)) != NULL) {
        assert(*q_bytes >= f->len);
        *q_bytes -= f->len;
        if (status == 0) {
            t->stats.frames_out++;
            t->stats.bytes_out += f->len;
        }
        free(f);
    }
    c->writing = false;
    if (status != 0) {
        if (!c->closing) {
            transport__trace(t, RAFT_TRACE_INFO, "write to %s: %s", c->name,
                             uv_strerror(status));
            transport__conn_close(c);
        }
        return;
    }
    transport__conn_flush(c);
}

/* ---- TLS: what the session produced goes out in order ----
 *
 * Everything a session writes (handshake, alerts, records) is taken from
 * it right after the call that produced it and queued on the stream, so
 * the stream carries it in the session's order. Frames go in one data
 * write at a time (their ciphertext in c->wcipher, the frames kept in
 * c->inflight until it completes, as without TLS); the rest goes in raw
 * writes, each owning its bytes. */

struct raw_write {
    uv_write_t req;
    struct conn* c;
    uint8_t bytes[];
};

static void raw_write_cb(uv_write_t* req, int status)
{
    struct raw_write* w = req->data;
    struct conn* c = w->c;
    free(w);
    if (status != 0 && !c->closing) {
        transport__trace(c->t, RAFT_TRACE_INFO, "write to %s: %s", c->name,
                         uv_strerror(status));
        transport__conn_close(c);
    }
}

/* Queue what the session has produced. 0, or a libuv error. */
static int tls_flush_raw(struct conn* c)
{
    size_t n = tls_pending(c->tls);
    if (n == 0) {
        return 0;
    }
    struct raw_write* w = malloc(sizeof(*w) + n);
    if (w == NULL) {
        return UV_ENOMEM;
    }
    w->c = c;
    w->req.data = w;
    size_t got = tls_take(c->tls, w->bytes, n);
    assert(got == n);
    uv_buf_t buf = uv_buf_init((char*)w->bytes, (unsigned)got);
    int rv = uv_write(&w->req, (uv_stream_t*)&c->tcp, &buf, 1, raw_write_cb);
    if (rv != 0) {
        free(w);
    }
    c->t->stats.bytes_out += got;
    return rv;
}

/* The dialer's first flight (ClientHello). */
int transport__tls_start(struct conn* c)
{
    int rv = tls_handshake(c->tls);
    assert(rv <= 0); /* cannot be complete before the peer answered */
    if (rv < 0) {
        transport__trace(c->t, RAFT_TRACE_WARN, "TLS to %s: %s", c->name,
                         tls_error(c->tls));
        return UV_EPROTO;
    }
    return tls_flush_raw(c);
}

/* Encrypt the batch of frames into one buffer. 0, or a libuv error. */
static int tls_seal(struct conn* c, uv_buf_t* out)
{
    for (struct frame* f = c->inflight.head; f != NULL; f = f->next) {
        if (tls_write(c->tls, f->bytes, f->len) != 0) {
            transport__trace(c->t, RAFT_TRACE_WARN, "TLS to %s: %s", c->name,
                             tls_error(c->tls));
            return UV_EPROTO;
        }
    }
    size_t n = tls_pending(c->tls);
    assert(c->wcipher == NULL);
    c->wcipher = malloc(n);
    if (c->wcipher == NULL) {
        return UV_ENOMEM;
    }
    size_t got = tls_take(c->tls, c->wcipher, n);
    assert(got == n);
    *out = uv_buf_init((char*)c->wcipher, (unsigned)got);
    return 0;
}

/* Start one batched write of the waiting frames of an outgoing connection
 * (or of a provisional peer's incoming one). */
void transport__conn_flush(struct conn* c)
{
    size_t* q_bytes;
    struct fqueue* q = conn_queue(c, &q_bytes);
    if (c->writing || !c->established || c->closing || q->head == NULL) {
        return;
    }
    uv_buf_t bufs[WRITE_BATCH_MAX];
    unsigned n = 0;
    while (n < WRITE_BATCH_MAX && q->head != NULL) {
        struct frame* f = transport__fqueue_pop(q);
        bufs[n++] = uv_buf_init((char*)f->bytes, (unsigned)f->len);
        transport__fqueue_push(&c->inflight, f);
    }
    int rv = 0;
    if (c->tls != NULL) {
        rv = tls_seal(c, &bufs[0]);
        n = 1;
    }
    c->write_req.data = c;
    if (rv == 0) {
        rv = uv_write(&c->write_req, (uv_stream_t*)&c->tcp, bufs, n, write_cb);
    }
    if (rv != 0) {
        /* The callback will not run: release the batch here. */
        struct frame* f;
        while ((f = transport__fqueue_pop(&c->inflight)) != NULL) {
            *q_bytes -= f->len;
            free(f);
        }
        free(c->wcipher);
        c->wcipher = NULL;
        transport__trace(c->t, RAFT_TRACE_INFO, "write to %s: %s", c->name,
                         uv_strerror(rv));
        transport__conn_close(c);
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
        transport__trace(c->t, RAFT_TRACE_INFO, "hello to %s: %s", c->name,
                         uv_strerror(status));
        transport__conn_close(c);
    }
}

int transport__send_hello(struct conn* c)
{
    struct transport* t = c->t;
    uint8_t* body = c->hello + FRAME_HEADER_BYTES;
    put_le(body, t->o.cluster_id, 8);
    put_le(body + 8, t->o.self, 8);
    put_le(body + 16, t->o.incarnation, 8);
    transport__frame_header(c->hello, FRAME_KIND_HELLO, body, HELLO_BODY_BYTES);
    if (c->tls != NULL) {
        if (tls_write(c->tls, c->hello, sizeof(c->hello)) != 0) {
            return UV_EPROTO;
        }
        t->stats.frames_out++;
        return tls_flush_raw(c);
    }
    uv_buf_t buf = uv_buf_init((char*)c->hello, sizeof(c->hello));
    c->hello_req.data = c;
    return uv_write(&c->hello_req, (uv_stream_t*)&c->tcp, &buf, 1,
                    hello_write_cb);
}

static void established(struct conn* c, raft_id id)
{
    struct transport* t = c->t;
    char buf[32];
    c->established = true;
    c->remote = id;
    t->stats.connects++;
    transport__trace(t, RAFT_TRACE_INFO, "connected %s %s (%s%s)",
                     c->peer != NULL ? "to" : "from",
                     transport__peer_label(t, id, buf, sizeof(buf)), c->name,
                     c->tls != NULL ? ", TLS 1.3" : "");
    if (c->peer != NULL) {
        c->peer->backoff_ms = 0;
        uv_timer_stop(&c->peer->timer);
        transport__conn_flush(c);
        return;
    }
    /* A newer incoming connection from the same node replaces older ones. */
    for (struct conn* o = t->incoming; o != NULL; o = o->next) {
        if (o != c && o->remote == id && !o->closing) {
            transport__conn_close(o);
        }
    }
}

/* A HELLO with another incarnation than the last one seen from that node:
 * it restarted (and may have lost state), tell the owner. Version 1 HELLOs
 * carry none (0). */
static void note_incarnation(struct transport* t, raft_id id, uint64_t inc)
{
    struct peer* p = transport__peer_find(t, id);
    if (p == NULL || inc == 0 || inc == p->incarnation) {
        return;
    }
    bool restarted = p->incarnation != 0;
    p->incarnation = inc;
    if (restarted) {
        char buf[32];
        transport__trace(t, RAFT_TRACE_INFO, "%s restarted (incarnation %llx)",
                         transport__peer_label(t, id, buf, sizeof(buf)),
                         (unsigned long long)inc);
        if (t->o.on_peer_restart != NULL) {
            t->o.on_peer_restart(t->o.data, id);
        }
    }
}

/* Established incoming connections of provisional peers other than id's
 * (a newer connection from id replaces its older ones). */
static unsigned provisional_others(const struct transport* t, raft_id id)
{
    unsigned n = 0;
    for (const struct conn* o = t->incoming; o != NULL; o = o->next) {
        n += o->provisional && o->established && !o->closing && o->remote != id;
    }
    return n;
}

/* An incoming connection from a node of our cluster whose id is not in the
 * peer table. Raft has a server take a leader's appends whatever its own
 * configuration (thesis 4.1): a member that restarts with an older one
 * learns the newer one, and its leader's address, only from them. So such
 * a node is accepted as a provisional peer if it proved the id it claims
 * (certificate mode: its certificate names the member of that id; shared
 * secret: every holder is a member; without TLS nothing is proved
 * anyway), and handle_msg gives raft only its appends and snapshots: a
 * removed member, which keeps its certificate or the secret, cannot make
 * anyone vote for it or campaign. Refuses c (false) otherwise. */
static bool accept_provisional(struct conn* c, raft_id id)
{
    struct transport* t = c->t;
    char why[128];
    if (c->tls != NULL && !tls_peer_has_id(c->tls, id, t->o.name_id, c->claimed,
                                           sizeof(c->claimed))) {
        snprintf(why, sizeof(why),
                 "unexpected node id %016llx, and its certificate names no "
                 "member of that id",
                 (unsigned long long)id);
        transport__conn_refuse(c, why);
        return false;
    }
    if (provisional_others(t, id) >= PROVISIONAL_MAX) {
        snprintf(why, sizeof(why),
                 "unexpected node id %016llx, and %u nodes outside the "
                 "configuration are connected already",
                 (unsigned long long)id, (unsigned)PROVISIONAL_MAX);
        transport__conn_reject(c, why);
        return false;
    }
    c->provisional = true;
    transport__trace(t, RAFT_TRACE_INFO,
                     "%s%snode %016llx (%s) is not in the configuration: a "
                     "provisional peer, only its appends and snapshots are "
                     "taken",
                     c->claimed, c->claimed[0] != '\0' ? ", " : "",
                     (unsigned long long)id, c->name);
    return true;
}

static void handle_hello(struct conn* c, const uint8_t* body, size_t len)
{
    struct transport* t = c->t;
    uint64_t cluster = get_le(body, 8);
    raft_id id = get_le(body + 8, 8);
    uint64_t inc = len >= HELLO_BODY_BYTES ? get_le(body + 16, 8) : 0;
    if (c->established) {
        transport__conn_reject(c, "second HELLO");
        return;
    }
    /* A node with a fresh data dir may not know the id yet: it says 0, and
     * learns it from the answer of a node that knows it. */
    if (cluster != t->o.cluster_id && cluster != 0 && t->o.cluster_id == 0 &&
        t->o.on_cluster_id != NULL && transport__peer_find(t, id) != NULL &&
        t->o.on_cluster_id(t->o.data, cluster) == 0) {
        char buf[32];
        transport__trace(t, RAFT_TRACE_INFO,
                         "learned cluster id %016llx from %s",
                         (unsigned long long)cluster,
                         transport__peer_label(t, id, buf, sizeof(buf)));
        t->o.cluster_id = cluster;
    }
    bool known = cluster == t->o.cluster_id
                     ? cluster != 0
                     : cluster == 0 && t->o.cluster_id != 0;
    if (!known) {
        char why[96];
        snprintf(why, sizeof(why), "%s cluster id %llx (node %016llx)",
                 cluster == 0 ? "no" : "foreign", (unsigned long long)cluster,
                 (unsigned long long)id);
        transport__conn_reject(c, why);
        return;
    }
    /* An id outside the peer table may only dial us, and only with our
     * own cluster id: see accept_provisional. */
    const struct peer* claimed = transport__peer_find(t, id);
    if (id == 0 || id == t->o.self || (c->peer != NULL && c->peer->id != id) ||
        (claimed == NULL && (c->peer != NULL || cluster != t->o.cluster_id))) {
        char why[64];
        snprintf(why, sizeof(why), "unexpected node id %016llx",
                 (unsigned long long)id);
        transport__conn_reject(c, why);
        return;
    }
    /* With TLS the id must be one the peer proved: its certificate names
     * that member (shared secret: every holder is a member). */
    if (claimed != NULL && c->tls != NULL &&
        !tls_peer_is(c->tls, claimed->name)) {
        char why[128];
        snprintf(why, sizeof(why),
                 "its certificate does not name member '%s' (%016llx), "
                 "which it claims to be",
                 claimed->name, (unsigned long long)id);
        transport__conn_refuse(c, why);
        return;
    }
    if (claimed == NULL && !accept_provisional(c, id)) {
        return;
    }
    if (c->peer == NULL) {
        int rv = transport__send_hello(c);
        if (rv != 0) {
            transport__trace(t, RAFT_TRACE_INFO, "hello to %s: %s", c->name,
                             uv_strerror(rv));
            transport__conn_close(c);
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
    const struct peer* p = transport__peer_find(c->t, c->remote);
    return p != NULL && c->incarnation != 0 && p->incarnation != 0 &&
           c->incarnation != p->incarnation;
}

/* Whether m, from a provisional peer, goes to raft: a leader's append or
 * snapshot (heartbeats are appends); anything else (a vote or pre-vote
 * request, TimeoutNow, an answer) is dropped, counted and logged once per
 * connection. Once a configuration names the node, transport_set_peer
 * makes it an ordinary peer. */
static bool provisional_delivers(struct conn* c, const struct raft_message* m)
{
    struct transport* t = c->t;
    assert(transport__peer_find(t, c->remote) == NULL);
    if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT) {
        return true;
    }
    t->stats.provisional_dropped++;
    transport__trace(t,
                     c->provisional_warned ? RAFT_TRACE_DEBUG : RAFT_TRACE_WARN,
                     "dropping %s at term %llu from node %016llx (%s): not in "
                     "the configuration, only its appends and snapshots are "
                     "taken",
                     raft_msg_type_name(m->type), (unsigned long long)m->term,
                     (unsigned long long)c->remote, c->name);
    c->provisional_warned = true;
    return false;
}

static void handle_msg(struct conn* c, const uint8_t* body, size_t len)
{
    struct transport* t = c->t;
    if (!c->established) {
        transport__conn_reject(c, "message before HELLO");
        return;
    }
    if (conn_outlived(c)) {
        char buf[32];
        transport__trace(
            t, RAFT_TRACE_INFO, "closing %s: %s has restarted since its HELLO",
            c->name, transport__peer_label(t, c->remote, buf, sizeof(buf)));
        transport__conn_close(c);
        return;
    }
    struct raft_message m;
    struct raft_msg_arena arena;
    int rv = raft_msg_decode(&m, &arena, body, len);
    if (rv != 0) {
        transport__conn_reject(c, raft_strerror(rv));
        return;
    }
    if (m.from != c->remote || m.to != t->o.self) {
        raft_msg_arena_free(&arena);
        transport__conn_reject(
            c, "message not from the HELLO's node or not for us");
        return;
    }
    if (c->provisional && !provisional_delivers(c, &m)) {
        raft_msg_arena_free(&arena);
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
        transport__conn_reject(c, why);
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
            transport__conn_reject(c, "frame checksum mismatch");
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

/* Room in the read buffer for the rest of the current frame (at most one
 * maximal frame); NULL when out of memory. */
static uint8_t* rbuf_room(struct conn* c, size_t* room)
{
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
            return NULL;
        }
        c->rbuf = bigger;
        c->rcap = need;
    }
    assert(c->rlen < c->rcap);
    *room = c->rcap - c->rlen;
    return c->rbuf + c->rlen;
}

/* Room for what arrives: the frame being read, or with TLS the shared
 * ciphertext buffer (deciphered into the frame buffer by tls_input). */
void transport__alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    struct conn* c = h->data;
    (void)suggested;
    if (c->t->o.tls != NULL) {
        *buf = uv_buf_init((char*)c->t->cipher_in, sizeof(c->t->cipher_in));
        return;
    }
    size_t room = 0;
    uint8_t* p = rbuf_room(c, &room);
    /* NULL: transport__read_cb gets UV_ENOBUFS */
    *buf = uv_buf_init((char*)p, p != NULL ? (unsigned)room : 0);
}

/* Ciphertext arrived: advance the handshake (the dialer then says HELLO),
 * then decipher records into the frame buffer and handle their frames. */
static void tls_input(struct conn* c, const uint8_t* p, size_t n)
{
    /* An incoming connection gets its session with its first bytes: a
     * stranger that only connects costs no TLS state. */
    if (c->tls == NULL && (c->tls = tls_new(c->t->o.tls, false)) == NULL) {
        transport__conn_close(c);
        return;
    }
    if (tls_feed(c->tls, p, n) != 0) {
        transport__conn_close(c);
        return;
    }
    if (!c->tls_done) {
        int rv = tls_handshake(c->tls);
        if (tls_flush_raw(c) != 0 || rv < 0) {
            transport__conn_refuse(
                c, rv < 0 ? tls_error(c->tls) : "cannot write the handshake");
            return;
        }
        if (rv == 0) {
            return;
        }
        c->tls_done = true;
        if (c->peer != NULL && transport__send_hello(c) != 0) {
            transport__conn_close(c);
            return;
        }
    }
    for (;;) {
        size_t room = 0;
        uint8_t* dst = rbuf_room(c, &room);
        if (dst == NULL) {
            transport__trace(c->t, RAFT_TRACE_WARN, "read from %s: %s", c->name,
                             uv_strerror(UV_ENOBUFS));
            transport__conn_close(c);
            return;
        }
        long got = tls_read(c->tls, dst, room);
        if (got < 0) {
            if (got == -EPIPE) {
                transport__conn_close(c);
            } else {
                transport__conn_reject(c, tls_error(c->tls));
            }
            return;
        }
        if (got == 0) {
            break;
        }
        c->rlen += (size_t)got;
        conn_process(c);
        if (c->closing) {
            return;
        }
    }
    if (tls_flush_raw(c) != 0) { /* e.g. a key update's answer */
        transport__conn_close(c);
    }
}

void transport__read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf)
{
    struct conn* c = s->data;
    if (nread == 0 || c->closing) {
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF) {
            transport__trace(c->t, RAFT_TRACE_INFO, "read from %s: %s", c->name,
                             uv_strerror((int)nread));
        }
        transport__conn_close(c);
        return;
    }
    c->t->stats.bytes_in += (uint64_t)nread;
    if (c->t->o.tls != NULL) {
        tls_input(c, (const uint8_t*)buf->base, (size_t)nread);
        return;
    }
    assert(buf->base == (char*)c->rbuf + c->rlen);
    c->rlen += (size_t)nread;
    conn_process(c);
}
