/* test_transport.c - the TCP transport on one uv loop over 127.0.0.1/2/3:
 * every message type (large append batches and snapshot chunks included)
 * arrives intact and in order; a foreign cluster id, a garbage frame, a bad
 * checksum or an oversized length prefix closes only that connection (and is
 * counted); a peer that is down keeps the queue bounded and is reconnected
 * when it comes up; outgoing connections come from the listen address; a
 * node without a cluster id learns it at its first handshake; a node
 * outside the peer table is a provisional peer (only its appends and
 * snapshots delivered, answered over its connection); all of it
 * again with every connection in TLS. The defences with TLS on are in
 * test_transport_tls.c, the harness in transport_env.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <xxhash.h>

#include "../../raft/util/bytes.h"
#include "check.h"
#include "codec.h"
#include "transport_env.h"

/* ---- tests ---- */

static void test_bad_options(void)
{
    struct node a;
    node_init(&a, 1, "127.0.0.1");
    struct transport* t = NULL;
    const char* bad[] = {"127.0.0.1",       "127.0.0.1:", "localhost:80",
                         "127.0.0.1:99999", "[::1:80",    ""};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct transport_options o = {.self = 1,
                                      .listen_addr = bad[i],
                                      .on_message = on_message,
                                      .data = &a};
        CHECK_EQ(transport_start(&loop, &o, &t), -EINVAL);
    }
    node_start(&a, CLUSTER, 0);
    struct transport_options o = {
        .self = 2, .listen_addr = a.addr, .on_message = on_message, .data = &a};
    CHECK_EQ(transport_start(&loop, &o, &t), -EADDRINUSE);
    CHECK_EQ(transport_set_peer(a.t, 2, NULL, "nowhere"), -EINVAL);
    CHECK_EQ(transport_set_peer(a.t, 2, NULL, "127.0.0.2:0"), -EINVAL);
    struct raft_message m = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2};
    CHECK_EQ(transport_send(a.t, &m), -ENOENT);
    struct node* ns[] = {&a, NULL};
    close_nodes(ns);
}

/* Every message type between three nodes, with maximal payloads. */
static void test_exchange(void)
{
    struct node a, b, c;
    node_init(&a, 1, "127.0.0.1");
    node_init(&b, 2, "127.0.0.2");
    node_init(&c, 3, "127.0.0.3");
    struct node* all[] = {&a, &b, &c, NULL};
    for (unsigned i = 0; i < 3; i++) {
        node_start(all[i], CLUSTER, 0);
    }
    for (unsigned i = 0; i < 3; i++) {
        for (unsigned j = 0; j < 3; j++) {
            CHECK_EQ(
                transport_set_peer(all[i]->t, all[j]->id, NULL, all[j]->addr),
                0);
        }
    }
    b.echo = true;

    static uint8_t* sent[64];
    static size_t sent_len[64];
    unsigned n_sent = 0;
    uint8_t* big = malloc(RAFT_ENTRY_DATA_MAX);
    CHECK(big != NULL);
    for (size_t i = 0; i < RAFT_ENTRY_DATA_MAX; i++) {
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    }
    struct raft_entry* es = calloc(RAFT_APPEND_ENTRIES_MAX, sizeof(*es));
    CHECK(es != NULL);
    /* 511 entries of 2 KiB (just under RAFT_APPEND_BYTES_MAX) + one 4 MiB. */
    for (unsigned i = 0; i < RAFT_APPEND_ENTRIES_MAX; i++) {
        es[i] = (struct raft_entry){.term = 7,
                                    .index = 101 + i,
                                    .type = RAFT_ENTRY_NORMAL,
                                    .data = {big + i, 2048}};
    }
    es[RAFT_APPEND_ENTRIES_MAX - 1].data.len = RAFT_ENTRY_DATA_MAX;
    es[RAFT_APPEND_ENTRIES_MAX - 1].data.base = big;

    struct raft_message m = {.from = 1, .to = 2, .term = 7};
    m.type = RAFT_MSG_APPEND;
    m.append = (struct raft_msg_append){.prev_index = 100,
                                        .prev_term = 6,
                                        .commit = 99,
                                        .read_seq = 4,
                                        .n_entries = RAFT_APPEND_ENTRIES_MAX,
                                        .entries = es};
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.append.n_entries = 0; /* heartbeat */
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_APPEND_RESP;
    m.append_resp = (struct raft_msg_append_resp){.reject = true,
                                                  .index = 5,
                                                  .last_index = 4,
                                                  .conflict_term = 3,
                                                  .conflict_index = 2,
                                                  .read_seq = 1};
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_PREVOTE;
    m.vote = (struct raft_msg_vote){.last_index = 9, .last_term = 2};
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_VOTE_RESP;
    m.vote_resp.granted = true;
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_PREVOTE_RESP;
    send_check(&a, &m, sent, sent_len, &n_sent);
    /* A whole 2 MiB snapshot in 256 KiB chunks. */
    const size_t total = 8 * (size_t)RAFT_SNAPSHOT_CHUNK;
    for (size_t off = 0; off < total; off += RAFT_SNAPSHOT_CHUNK) {
        m.type = RAFT_MSG_SNAPSHOT;
        memset(&m.snapshot, 0, sizeof(m.snapshot));
        m.snapshot.meta.index = 1000;
        m.snapshot.meta.term = 6;
        m.snapshot.meta.conf_index = 1;
        m.snapshot.meta.conf.n = 3;
        for (unsigned i = 0; i < 3; i++) {
            m.snapshot.meta.conf.servers[i].id = all[i]->id;
            m.snapshot.meta.conf.servers[i].role = RAFT_VOTER;
            snprintf(m.snapshot.meta.conf.servers[i].addr, RAFT_ADDR_MAX, "%s",
                     all[i]->addr);
        }
        m.snapshot.total = total;
        m.snapshot.offset = off;
        m.snapshot.chunk = (struct raft_buf){big + off, RAFT_SNAPSHOT_CHUNK};
        send_check(&a, &m, sent, sent_len, &n_sent);
    }
    m.type = RAFT_MSG_SNAPSHOT_RESP;
    m.snapshot_resp = (struct raft_msg_snapshot_resp){
        .index = 1000, .next_offset = total, .done = true};
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_TIMEOUT_NOW;
    send_check(&a, &m, sent, sent_len, &n_sent);
    struct raft_proposal props[2] = {
        {.ctx = 1, .type = RAFT_ENTRY_NORMAL, .data = {big, 100}},
        {.ctx = 2,
         .type = RAFT_ENTRY_NORMAL,
         .data = {big, RAFT_ENTRY_DATA_MAX}},
    };
    m.type = RAFT_MSG_PROPOSE;
    m.propose = (struct raft_msg_propose){.n = 2, .props = props};
    send_check(&a, &m, sent, sent_len, &n_sent);
    uint64_t ctxs[3] = {1, 2, 3};
    m.type = RAFT_MSG_PROPOSE_RESP;
    m.propose_resp = (struct raft_msg_propose_resp){
        .err = RAFT_ENOTLEADER, .n = 3, .ctxs = ctxs};
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_READ_INDEX;
    m.read_index.ctx = 77;
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_READ_INDEX_RESP;
    m.read_index_resp =
        (struct raft_msg_read_index_resp){.ctx = 77, .index = 1000, .err = 0};
    send_check(&a, &m, sent, sent_len, &n_sent);
    m.type = RAFT_MSG_VOTE; /* last: b echoes a VOTE_RESP from its callback */
    m.vote = (struct raft_msg_vote){
        .last_index = 9, .last_term = 2, .transfer = true};
    send_check(&a, &m, sent, sent_len, &n_sent);

    /* The same large batch to c as well, concurrently. */
    struct raft_message mc = {
        .type = RAFT_MSG_APPEND, .from = 1, .to = 3, .term = 7};
    mc.append = (struct raft_msg_append){
        .prev_index = 100, .n_entries = RAFT_APPEND_ENTRIES_MAX, .entries = es};
    CHECK_EQ(transport_send(a.t, &mc), 0);

    wait_recv(&b, n_sent);
    CHECK_EQ(b.n_recv, n_sent);
    for (unsigned i = 0; i < n_sent; i++) {
        CHECK_EQ(b.recv_len[i], sent_len[i]);
        CHECK_MEM(b.recv[i], sent[i], sent_len[i]);
    }
    wait_recv(&c, 1);
    CHECK_EQ(c.recv_len[0], raft_msg_encoded_size(&mc));
    wait_recv(&a, 1); /* the echoed VOTE_RESP */
    struct raft_message r;
    struct raft_msg_arena arena;
    CHECK_EQ(raft_msg_decode(&r, &arena, a.recv[0], a.recv_len[0]), 0);
    CHECK_EQ(r.type, RAFT_MSG_VOTE_RESP);
    CHECK_EQ(r.from, 2);
    CHECK(r.vote_resp.granted);
    raft_msg_arena_free(&arena);

    struct transport_stats sa = stats(&a), sb = stats(&b);
    CHECK(sa.frames_out >= n_sent + 1);
    CHECK(sb.frames_in >= n_sent);
    CHECK(sa.bytes_out > 2 * (uint64_t)RAFT_ENTRY_DATA_MAX);
    CHECK_EQ(sa.rejected_frames + sb.rejected_frames, 0);
    CHECK_EQ(sa.dropped_queue_full, 0);
    CHECK(sa.connects >= 2);
    fprintf(stderr, "   a: frames out %llu, bytes out %llu\n",
            (unsigned long long)sa.frames_out,
            (unsigned long long)sa.bytes_out);
    for (unsigned i = 0; i < n_sent; i++) {
        free(sent[i]);
    }
    free(es);
    free(big);

    /* Removing a peer closes its connection; sends then fail. */
    struct link l = {&a, 2};
    CHECK(transport_connected(a.t, 2));
    transport_remove_peer(a.t, 2);
    CHECK(!run_until(is_connected, &l, 50));
    struct raft_message hb = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2};
    CHECK_EQ(transport_send(a.t, &hb), -ENOENT);
    close_nodes(all);
}

/* A node with another cluster id is refused and counted; nothing from it
 * is delivered. */
static void test_foreign_cluster(void)
{
    struct node a, d;
    node_init(&a, 1, "127.0.0.1");
    node_init(&d, 4, "127.0.0.3");
    node_start(&a, CLUSTER, 0);
    node_start(&d, CLUSTER + 1, 0);
    CHECK_EQ(transport_set_peer(a.t, 4, NULL, d.addr), 0);
    CHECK_EQ(transport_set_peer(d.t, 1, NULL, a.addr), 0);
    struct raft_message m = {
        .type = RAFT_MSG_VOTE, .from = 4, .to = 1, .term = 1};
    CHECK_EQ(transport_send(d.t, &m), 0);
    m.from = 1;
    m.to = 4;
    CHECK_EQ(transport_send(a.t, &m), 0);
    run_for(400); /* several reconnect attempts each way */
    struct transport_stats sa = stats(&a), sd = stats(&d);
    CHECK(sa.rejected_frames >= 1);
    CHECK(sd.rejected_frames >= 1);
    CHECK_EQ(sa.connects, 0);
    CHECK_EQ(sd.connects, 0);
    CHECK_EQ(a.n_recv, 0);
    CHECK_EQ(d.n_recv, 0);
    CHECK(!transport_connected(a.t, 4));
    CHECK(!transport_connected(d.t, 1));
    struct node* ns[] = {&a, &d, NULL};
    close_nodes(ns);
}

/* Garbage, a bad checksum, an oversized length, an unknown node and a
 * message from the wrong sender each close only their own connection. */
static void test_garbage(void)
{
    struct node a, b;
    node_init(&a, 1, "127.0.0.1");
    node_init(&b, 2, "127.0.0.2");
    node_start(&a, CLUSTER, 0);
    node_start(&b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(a.t, 2, NULL, b.addr), 0);
    CHECK_EQ(transport_set_peer(b.t, 1, NULL, a.addr), 0);
    /* Raw connections below speak as node 3 (nobody listens there). */
    char addr3[RAFT_ADDR_MAX];
    snprintf(addr3, sizeof(addr3), "127.0.0.3:%d", free_port("127.0.0.3"));
    CHECK_EQ(transport_set_peer(a.t, 3, NULL, addr3), 0);
    struct link l = {&b, 1};
    CHECK(run_until(is_connected, &l, WAIT_MS));

    struct raw r;
    memset(&r, 0, sizeof(r));
    memset(r.out, 0xab, 64);
    r.out_len = 64;
    raw_expect_closed(&a, &r, "garbage");

    memset(&r, 0, sizeof(r)); /* good HELLO, then a corrupted checksum */
    r.out_len = make_hello(r.out, CLUSTER, 3);
    struct raft_message m = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 3, .to = 1};
    uint8_t body[64];
    long blen = raft_msg_encode(&m, body, sizeof(body));
    CHECK(blen > 0);
    size_t flen = make_frame(r.out + r.out_len, 2, body, (size_t)blen);
    r.out[r.out_len + 12] ^= 1;
    r.out_len += flen;
    raw_expect_closed(&a, &r, "bad checksum");
    CHECK(r.n_in > 0); /* a answered the HELLO first */

    memset(&r, 0, sizeof(r)); /* a length prefix over the maximum: refused
                                 from the header alone, no body sent */
    r.out_len = make_hello(r.out, CLUSTER, 3);
    make_frame(r.out + r.out_len, 2, body, 0);
    put_le(r.out + r.out_len + 8, 64u << 20, 4);
    r.out_len += 16;
    raw_expect_closed(&a, &r, "oversized length");

    memset(&r, 0, sizeof(r)); /* a valid frame from the wrong node id */
    r.out_len = make_hello(r.out, CLUSTER, 3);
    m.from = 2;
    blen = raft_msg_encode(&m, body, sizeof(body));
    r.out_len += make_frame(r.out + r.out_len, 2, body, (size_t)blen);
    raw_expect_closed(&a, &r, "wrong sender");

    memset(&r, 0, sizeof(r)); /* a node id not in the peer table, without
                                 our cluster id (test_provisional_peer
                                 has one with it) */
    r.out_len = make_hello(r.out, 0, 9);
    raw_expect_closed(&a, &r, "unknown node");

    memset(&r, 0, sizeof(r)); /* an undecodable message body */
    r.out_len = make_hello(r.out, CLUSTER, 3);
    memset(body, 0x5a, 40);
    r.out_len += make_frame(r.out + r.out_len, 2, body, 40);
    raw_expect_closed(&a, &r, "malformed message");
    CHECK_EQ(a.n_recv, 0);

    /* b's own connection was never disturbed: messages still flow. */
    CHECK(transport_connected(b.t, 1));
    m.from = 2;
    CHECK_EQ(transport_send(b.t, &m), 0);
    wait_recv(&a, 1);
    CHECK_EQ(stats(&b).disconnects, 0);
    struct node* ns[] = {&a, &b, NULL};
    close_nodes(ns);
}

/* A peer that is down: its queue is bounded (drops counted); when it comes
 * up the connection is made (backoff) and the queued messages arrive. */
static void test_peer_down(void)
{
    struct node a, b;
    node_init(&a, 1, "127.0.0.1");
    node_init(&b, 2, "127.0.0.2");
    const size_t queue_max = 64u << 10;
    node_start(&a, CLUSTER, queue_max);
    CHECK_EQ(transport_set_peer(a.t, 2, NULL, b.addr), 0);
    static uint8_t data[1000];
    struct raft_entry e = {.term = 1,
                           .index = 1,
                           .type = RAFT_ENTRY_NORMAL,
                           .data = {data, sizeof(data)}};
    struct raft_message m = {
        .type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};
    m.append = (struct raft_msg_append){.n_entries = 1, .entries = &e};
    unsigned ok = 0, dropped = 0;
    for (unsigned i = 0; i < 200; i++) {
        e.term = i; /* tags the order */
        int rv = transport_send(a.t, &m);
        CHECK(rv == 0 || rv == -ENOBUFS);
        ok += rv == 0;
        dropped += rv == -ENOBUFS;
    }
    CHECK(ok > 0 && dropped > 0);
    CHECK(ok * (16 + raft_msg_encoded_size(&m)) <= queue_max);
    CHECK_EQ(stats(&a).dropped_queue_full, dropped);
    run_for(700); /* failing attempts: 0, 50, 100, 200, 400 ms */
    CHECK(!transport_connected(a.t, 2));
    CHECK_EQ(b.n_recv, 0);

    node_start(&b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(b.t, 1, NULL, a.addr), 0);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    struct link l = {&a, 2};
    CHECK(run_until(is_connected, &l, 3000)); /* backoff is capped at 2 s */
    fprintf(stderr, "   reconnected after %llu ms\n",
            (unsigned long long)(uv_now(&loop) - t0));
    wait_recv(&b, ok);
    run_for(50);
    CHECK_EQ(b.n_recv, ok);
    for (unsigned i = 0; i < ok; i++) { /* in order */
        struct raft_message r;
        struct raft_msg_arena arena;
        CHECK_EQ(raft_msg_decode(&r, &arena, b.recv[i], b.recv_len[i]), 0);
        CHECK_EQ(r.append.entries[0].term, i);
        raft_msg_arena_free(&arena);
    }

    /* b goes down again and comes back on the same address. */
    struct node* nb[] = {&b, NULL};
    close_nodes(nb);
    CHECK(!run_until(is_connected, &l, 100));
    node_start(&b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(b.t, 1, NULL, a.addr), 0);
    CHECK(run_until(is_connected, &l, 3000));
    CHECK_EQ(transport_send(a.t, &m), 0);
    wait_recv(&b, 1);
    CHECK(stats(&a).connects >= 2 && stats(&a).disconnects >= 1);
    struct node* ns[] = {&a, &b, NULL};
    close_nodes(ns);
}

/* ---- a raw server, to see what a dialing transport sends ---- */

struct rawsrv {
    uv_tcp_t listener;
    uv_tcp_t conn;
    bool accepted;
    char peer_ip[64];
    uint8_t in[64];
    size_t n_in;
    int closed;
};

static void srv_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf)
{
    struct rawsrv* s = h->data;
    (void)size;
    *buf = uv_buf_init((char*)s->in + s->n_in,
                       (unsigned)(sizeof(s->in) - s->n_in));
}

static void srv_read(uv_stream_t* st, ssize_t n, const uv_buf_t* buf)
{
    struct rawsrv* s = st->data;
    (void)buf;
    if (n > 0) {
        s->n_in += (size_t)n;
    }
}

static void srv_connection(uv_stream_t* l, int status)
{
    struct rawsrv* s = l->data;
    CHECK_EQ(status, 0);
    CHECK(!s->accepted);
    CHECK_EQ(uv_tcp_init(&loop, &s->conn), 0);
    s->conn.data = s;
    CHECK_EQ(uv_accept(l, (uv_stream_t*)&s->conn), 0);
    s->accepted = true;
    struct sockaddr_in sa;
    int len = sizeof(sa);
    CHECK_EQ(uv_tcp_getpeername(&s->conn, (struct sockaddr*)&sa, &len), 0);
    uv_ip4_name(&sa, s->peer_ip, sizeof(s->peer_ip));
    CHECK_EQ(uv_read_start((uv_stream_t*)&s->conn, srv_alloc, srv_read), 0);
}

static bool srv_has_hello(void* arg)
{
    struct rawsrv* s = arg;
    return s->n_in >= 40;
}

static void srv_closed(uv_handle_t* h)
{
    struct rawsrv* s = h->data;
    s->closed++;
}

static bool srv_all_closed(void* arg)
{
    struct rawsrv* s = arg;
    return s->closed == 2;
}

/* The dialer binds to its listen IP and opens with a HELLO. */
static void test_source_addr_and_hello(void)
{
    struct node a;
    node_init(&a, 5, "127.0.0.2");
    a.incarnation = 0x1122334455667788ull;
    node_start(&a, CLUSTER, 0);
    struct rawsrv s;
    memset(&s, 0, sizeof(s));
    int port = free_port("127.0.0.3");
    struct sockaddr_in sa;
    CHECK_EQ(uv_ip4_addr("127.0.0.3", port, &sa), 0);
    CHECK_EQ(uv_tcp_init(&loop, &s.listener), 0);
    s.listener.data = &s;
    CHECK_EQ(uv_tcp_bind(&s.listener, (struct sockaddr*)&sa, 0), 0);
    CHECK_EQ(uv_listen((uv_stream_t*)&s.listener, 4, srv_connection), 0);
    char addr[RAFT_ADDR_MAX];
    snprintf(addr, sizeof(addr), "127.0.0.3:%d", port);
    CHECK_EQ(transport_set_peer(a.t, 9, NULL, addr), 0);
    CHECK(run_until(srv_has_hello, &s, WAIT_MS));
    CHECK(strcmp(s.peer_ip, "127.0.0.2") == 0);
    CHECK_EQ(s.n_in, 40);
    uint8_t want[40];
    CHECK_EQ(make_hello_v2(want, CLUSTER, 5, a.incarnation), 40);
    CHECK_MEM(s.in, want, 40);
    CHECK(!transport_connected(a.t, 9)); /* no HELLO back yet */
    uv_close((uv_handle_t*)&s.conn, srv_closed);
    uv_close((uv_handle_t*)&s.listener, srv_closed);
    CHECK(run_until(srv_all_closed, &s, WAIT_MS));
    struct node* ns[] = {&a, NULL};
    close_nodes(ns);
}

/* transport_close from inside on_message: later frames are not delivered
 * and the close completes. */
/* A peer that comes back with another incarnation is reported once, on
 * both sides of the new connection's handshake; the first contact and a
 * reconnection of the same process are not restarts. A version 2 HELLO of
 * the wrong length is refused. */
static void test_peer_restart(void)
{
    struct node a, b;
    node_init(&a, 1, "127.0.0.1");
    node_init(&b, 2, "127.0.0.2");
    a.incarnation = 100;
    b.incarnation = 200;
    node_start(&a, CLUSTER, 0);
    node_start(&b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(a.t, 2, NULL, b.addr), 0);
    CHECK_EQ(transport_set_peer(b.t, 1, NULL, a.addr), 0);
    struct link la = {&a, 2}, lb = {&b, 1};
    CHECK(run_until(is_connected, &la, WAIT_MS));
    CHECK(run_until(is_connected, &lb, WAIT_MS));
    run_for(50);
    CHECK_EQ(a.n_restarts, 0);
    CHECK_EQ(b.n_restarts, 0);

    struct node* nb[] = {&b, NULL};
    close_nodes(nb);
    b.incarnation = 201;
    node_start(&b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(b.t, 1, NULL, a.addr), 0);
    CHECK(run_until(is_connected, &la, 3000));
    CHECK(run_until(is_connected, &lb, 3000));
    run_for(50);
    CHECK_EQ(a.n_restarts, 1);
    CHECK_EQ(a.last_restart, 2);
    CHECK_EQ(b.n_restarts, 0); /* b's transport is new: a is a first contact */

    if (tls_default == NULL) { /* hand-made frames travel in the clear */
        struct raw r;          /* bad length for a version 2 HELLO */
        memset(&r, 0, sizeof(r));
        r.out_len = make_hello_v2(r.out, CLUSTER, 2, 5);
        put_le(r.out + 8, 16, 4);
        raw_expect_closed(&a, &r, "v2 HELLO of 16 bytes");
        CHECK_EQ(a.n_restarts, 1);
    }

    struct node* ns[] = {&a, &b, NULL};
    close_nodes(ns);
}

/* Cluster id 0 ("not known yet"): a node that knows the id accepts it and
 * the other adopts the id (on_cluster_id), dialing or dialed; two nodes
 * that both say 0 are refused; a node that knows an id never adopts
 * another. */
static void test_cluster_id_learned(void)
{
    struct node a, b, c, d;
    node_init(&a, 1, "127.0.0.1");
    node_init(&b, 2, "127.0.0.2");
    node_init(&c, 3, "127.0.0.3");
    node_init(&d, 4, "127.0.0.3");
    node_start(&a, CLUSTER, 0);
    node_start(&b, 0, 0);
    node_start(&c, 0, 0);
    node_start(&d, CLUSTER + 1, 0);
    /* b dials a; a dials c (c learns it as the dialed side) */
    CHECK_EQ(transport_set_peer(b.t, 1, NULL, a.addr), 0);
    CHECK_EQ(transport_set_peer(a.t, 2, NULL, b.addr), 0);
    CHECK_EQ(transport_set_peer(a.t, 3, NULL, c.addr), 0);
    CHECK_EQ(transport_set_peer(c.t, 1, NULL, a.addr), 0);
    struct link ab = {&a, 2}, ac = {&a, 3};
    CHECK(run_until(is_connected, &ab, WAIT_MS));
    CHECK(run_until(is_connected, &ac, WAIT_MS));
    CHECK_EQ(b.learned, CLUSTER);
    CHECK_EQ(c.learned, CLUSTER);
    CHECK_EQ(a.learned, 0);
    /* d knows another id: d and a refuse each other, d adopts nothing */
    CHECK_EQ(transport_set_peer(d.t, 1, NULL, a.addr), 0);
    CHECK_EQ(transport_set_peer(a.t, 4, NULL, d.addr), 0);
    run_for(300);
    CHECK(!transport_connected(a.t, 4));
    CHECK_EQ(d.learned, 0);
    struct node* ns[] = {&a, &b, &c, &d, NULL};
    close_nodes(ns);

    /* two nodes that both say 0 */
    struct node e, f;
    node_init(&e, 5, "127.0.0.1");
    node_init(&f, 6, "127.0.0.2");
    node_start(&e, 0, 0);
    node_start(&f, 0, 0);
    CHECK_EQ(transport_set_peer(e.t, 6, NULL, f.addr), 0);
    CHECK_EQ(transport_set_peer(f.t, 5, NULL, e.addr), 0);
    run_for(300);
    CHECK(!transport_connected(e.t, 6));
    CHECK(stats(&e).rejected_frames + stats(&f).rejected_frames >= 1);
    CHECK_EQ(e.learned, 0);
    CHECK_EQ(f.learned, 0);
    struct node* ns2[] = {&e, &f, NULL};
    close_nodes(ns2);
}

static bool provisional_dropped(void* arg)
{
    struct want* w = arg;
    return stats(w->n).provisional_dropped >= w->count;
}

/* The type of the i-th message n received. */
static int recv_type(struct node* n, unsigned i)
{
    struct raft_message m;
    struct raft_msg_arena arena;
    CHECK_EQ(raft_msg_decode(&m, &arena, n->recv[i], n->recv_len[i]), 0);
    raft_msg_arena_free(&arena);
    return m.type;
}

/* A node of our cluster outside the peer table (a leader whose
 * configuration is newer than ours) dials us: it is a provisional peer.
 * Its appends and snapshots are delivered, its vote and pre-vote
 * requests, TimeoutNow and answers are dropped and counted; we answer it
 * over its own connection; once transport_set_peer names it, it is an
 * ordinary peer. */
static void test_provisional_peer(void)
{
    struct node a, d;
    node_init(&a, 1, "127.0.0.1");
    node_init(&d, 4, "127.0.0.3");
    node_start(&a, CLUSTER, 0);
    node_start(&d, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(d.t, 1, NULL, a.addr), 0); /* a: none */
    struct link l = {&d, 1};
    CHECK(run_until(is_connected, &l, WAIT_MS));

    int dropped[] = {RAFT_MSG_PREVOTE, RAFT_MSG_VOTE, RAFT_MSG_TIMEOUT_NOW,
                     RAFT_MSG_APPEND_RESP};
    struct raft_message m = {.from = 4, .to = 1, .term = 9};
    for (unsigned i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
        m.type = (uint8_t)dropped[i];
        CHECK_EQ(transport_send(d.t, &m), 0);
    }
    m.type = RAFT_MSG_APPEND; /* a heartbeat */
    CHECK_EQ(transport_send(d.t, &m), 0);
    m.type = RAFT_MSG_SNAPSHOT;
    memset(&m.snapshot, 0, sizeof(m.snapshot));
    m.snapshot.meta.index = 5;
    m.snapshot.meta.term = 2;
    m.snapshot.meta.conf_index = 1;
    m.snapshot.meta.conf.n = 1;
    m.snapshot.meta.conf.servers[0].id = 4;
    m.snapshot.meta.conf.servers[0].role = RAFT_VOTER;
    snprintf(m.snapshot.meta.conf.servers[0].addr, RAFT_ADDR_MAX, "%s", d.addr);
    m.snapshot.total = 3;
    m.snapshot.chunk = (struct raft_buf){"abc", 3};
    CHECK_EQ(transport_send(d.t, &m), 0);
    wait_recv(&a, 2);
    struct want w = {&a, 4};
    CHECK(run_until(provisional_dropped, &w, WAIT_MS));
    run_for(100);
    CHECK_EQ(a.n_recv, 2);
    CHECK_EQ(recv_type(&a, 0), RAFT_MSG_APPEND);
    CHECK_EQ(recv_type(&a, 1), RAFT_MSG_SNAPSHOT);
    CHECK_EQ(stats(&a).provisional_dropped, 4);
    CHECK(!transport_connected(a.t, 4)); /* no connection of its own */

    /* a answers over d's connection: it has no address for 4. */
    struct raft_message r = {
        .type = RAFT_MSG_APPEND_RESP, .from = 1, .to = 4, .term = 9};
    CHECK_EQ(transport_send(a.t, &r), 0);
    wait_recv(&d, 1);
    CHECK_EQ(recv_type(&d, 0), RAFT_MSG_APPEND_RESP);

    /* A configuration names 4: everything from it is delivered. */
    CHECK_EQ(transport_set_peer(a.t, 4, NULL, d.addr), 0);
    m.type = RAFT_MSG_VOTE;
    CHECK_EQ(transport_send(d.t, &m), 0);
    wait_recv(&a, 3);
    CHECK_EQ(recv_type(&a, 2), RAFT_MSG_VOTE);
    CHECK_EQ(stats(&a).provisional_dropped, 4);
    struct link back = {&a, 4};
    CHECK(run_until(is_connected, &back, WAIT_MS));
    struct node* ns[] = {&a, &d, NULL};
    close_nodes(ns);
}

static void test_close_in_callback(void)
{
    struct node a, b;
    node_init(&a, 1, "127.0.0.1");
    node_init(&b, 2, "127.0.0.2");
    node_start(&a, CLUSTER, 0);
    node_start(&b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(a.t, 2, NULL, b.addr), 0);
    CHECK_EQ(transport_set_peer(b.t, 1, NULL, a.addr), 0);
    b.close_on_rx = true;
    struct raft_message m = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2};
    for (unsigned i = 0; i < 10; i++) {
        CHECK_EQ(transport_send(a.t, &m), 0);
    }
    wait_recv(&b, 1);
    CHECK(b.closed);
    run_for(200);
    CHECK_EQ(b.n_recv, 1);
    b.t = NULL; /* closed with no callback: freed by the transport */
    struct node* ns[] = {&a, &b, NULL};
    close_nodes(ns);
}

/* Every exchange test again, with every connection in TLS (a shared
 * secret): the frames inside the records are the same. */
static void test_tls_exchange(void)
{
    tls_default = secret_config("shared", "correct horse battery staple\n");
    test_exchange();
    test_peer_down();
    test_peer_restart();
    test_close_in_callback();
    test_cluster_id_learned();
    test_provisional_peer();
    tls_config_free(tls_default);
    tls_default = NULL;
}

int main(void)
{
    CHECK_EQ(uv_loop_init(&loop), 0);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/qfs-transport-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    RUN(test_bad_options);
    RUN(test_exchange);
    RUN(test_foreign_cluster);
    RUN(test_garbage);
    RUN(test_peer_down);
    RUN(test_source_addr_and_hello);
    RUN(test_peer_restart);
    RUN(test_close_in_callback);
    RUN(test_cluster_id_learned);
    RUN(test_provisional_peer);
    RUN(test_tls_exchange);
    CHECK_EQ(uv_loop_close(&loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    CHECK_EQ(system(cmd), 0);
    return 0;
}
