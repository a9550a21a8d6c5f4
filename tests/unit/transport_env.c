/* transport_env.c - the harness of the transport unit tests (see
 * transport_env.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "../../raft/util/bytes.h"
#include "check.h"
#include "transport_env.h"

uv_loop_t loop;
struct tls_config* tls_default;

/* ---- a node: a transport plus the messages it received ---- */

int on_cluster_id(void* data, uint64_t cluster_id)
{
    struct node* n = data;
    CHECK_EQ(n->learned, 0);
    n->learned = cluster_id;
    return 0;
}

static void on_peer_restart(void* data, raft_id id)
{
    struct node* n = data;
    n->n_restarts++;
    n->last_restart = id;
}

void on_message(void* data, const struct raft_message* m)
{
    struct node* n = data;
    CHECK(n->n_recv < RECV_MAX);
    CHECK_EQ(m->to, n->id);
    size_t len = raft_msg_encoded_size(m);
    uint8_t* buf = malloc(len);
    CHECK(buf != NULL);
    CHECK_EQ(raft_msg_encode(m, buf, len), (long)len);
    n->recv[n->n_recv] = buf;
    n->recv_len[n->n_recv++] = len;
    if (n->echo && m->type == RAFT_MSG_VOTE) {
        struct raft_message r = {.type = RAFT_MSG_VOTE_RESP,
                                 .from = n->id,
                                 .to = m->from,
                                 .term = m->term};
        r.vote_resp.granted = true;
        CHECK_EQ(transport_send(n->t, &r), 0); /* re-entrant send */
    }
    if (n->close_on_rx && !n->closed) {
        n->closed = true;
        transport_close(n->t, NULL, NULL);
    }
}

static void closed_cb(void* data)
{
    struct node* n = data;
    n->t = NULL;
}

/* A free TCP port on ip (bound, read back, closed). */
int free_port(const char* ip)
{
    uv_tcp_t tcp;
    struct sockaddr_in sa;
    CHECK_EQ(uv_ip4_addr(ip, 0, &sa), 0);
    CHECK_EQ(uv_tcp_init(&loop, &tcp), 0);
    CHECK_EQ(uv_tcp_bind(&tcp, (struct sockaddr*)&sa, 0), 0);
    int len = sizeof(sa);
    CHECK_EQ(uv_tcp_getsockname(&tcp, (struct sockaddr*)&sa, &len), 0);
    uv_close((uv_handle_t*)&tcp, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ntohs(sa.sin_port);
}

void node_init(struct node* n, raft_id id, const char* ip)
{
    memset(n, 0, sizeof(*n));
    n->id = id;
    snprintf(n->addr, sizeof(n->addr), "%s:%d", ip, free_port(ip));
}

/* QFS_TRACE=1 in the environment: the transports' logs on stderr. */
static void trace_emit(void* data, int level, raft_id node, const char* msg)
{
    (void)data;
    fprintf(stderr, "   [%d] node %llu: %s\n", level, (unsigned long long)node,
            msg);
}

void node_start(struct node* n, uint64_t cluster, size_t queue_max)
{
    struct transport_options o = {
        .self = n->id,
        .cluster_id = cluster,
        .listen_addr = n->addr,
        .queue_bytes_max = queue_max,
        .on_message = on_message,
        .incarnation = n->incarnation,
        .on_peer_restart = on_peer_restart,
        .on_cluster_id = on_cluster_id,
        .data = n,
        .tls = n->tls != NULL ? n->tls : tls_default,
        .tracer = {.emit = getenv("QFS_TRACE") != NULL ? trace_emit : NULL}};
    CHECK_EQ(transport_start(&loop, &o, &n->t), 0);
    n->closed = false;
}

static void node_free_recv(struct node* n)
{
    for (unsigned i = 0; i < n->n_recv; i++) {
        free(n->recv[i]);
    }
    n->n_recv = 0;
}

/* ---- running the loop ---- */

static void wake_cb(uv_timer_t* t)
{
    (void)t;
}

/* Run the loop until pred(arg) holds; false after timeout_ms. */
bool run_until(bool (*pred)(void*), void* arg, unsigned timeout_ms)
{
    uv_timer_t wake;
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, wake_cb, 5, 5);
    uv_update_time(&loop);
    uint64_t deadline = uv_now(&loop) + timeout_ms;
    bool ok = pred(arg);
    while (!ok && uv_now(&loop) < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
        ok = pred(arg);
    }
    uv_close((uv_handle_t*)&wake, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
}

bool never(void* arg)
{
    (void)arg;
    return false;
}

void run_for(unsigned ms)
{
    run_until(never, NULL, ms);
}

static bool has_count(void* arg)
{
    struct want* w = arg;
    return w->n->n_recv >= w->count;
}

void wait_recv(struct node* n, unsigned count)
{
    struct want w = {n, count};
    if (!run_until(has_count, &w, WAIT_MS)) {
        fprintf(stderr, "node %llu received %u of %u\n",
                (unsigned long long)n->id, n->n_recv, count);
        CHECK(false);
    }
}

bool is_connected(void* arg)
{
    struct link* l = arg;
    return transport_connected(l->from->t, l->to);
}

static bool all_closed(void* arg)
{
    struct node** ns = arg;
    for (unsigned i = 0; ns[i] != NULL; i++) {
        if (ns[i]->t != NULL) {
            return false;
        }
    }
    return true;
}

/* Close the nodes' transports and wait for the close callbacks. */
void close_nodes(struct node** ns)
{
    for (unsigned i = 0; ns[i] != NULL; i++) {
        if (ns[i]->t != NULL) {
            transport_close(ns[i]->t, closed_cb, ns[i]);
        }
    }
    CHECK(run_until(all_closed, ns, WAIT_MS));
    for (unsigned i = 0; ns[i] != NULL; i++) {
        node_free_recv(ns[i]);
    }
}

struct transport_stats stats(struct node* n)
{
    struct transport_stats s;
    transport_get_stats(n->t, &s);
    return s;
}

/* Send m from n and remember its encoding to compare with what arrives. */
void send_check(struct node* n,
                const struct raft_message* m,
                uint8_t** sent,
                size_t* sent_len,
                unsigned* n_sent)
{
    CHECK_EQ(transport_send(n->t, m), 0);
    size_t len = raft_msg_encoded_size(m);
    sent[*n_sent] = malloc(len);
    CHECK(sent[*n_sent] != NULL);
    CHECK_EQ(raft_msg_encode(m, sent[*n_sent], len), (long)len);
    sent_len[(*n_sent)++] = len;
}

/* ---- a raw TCP client, to send hand-made bytes ---- */

static void raw_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf)
{
    static char scratch[4096];
    (void)h;
    (void)size;
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void raw_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf)
{
    struct raw* r = s->data;
    (void)buf;
    if (n < 0) {
        r->eof = true;
    } else {
        r->n_in += (size_t)n;
    }
}

static void raw_written(uv_write_t* req, int status)
{
    (void)req;
    (void)status;
}

static void raw_connected(uv_connect_t* req, int status)
{
    struct raw* r = req->data;
    CHECK_EQ(status, 0);
    r->connected = true;
    CHECK_EQ(uv_read_start((uv_stream_t*)&r->tcp, raw_alloc, raw_read), 0);
    uv_buf_t b = uv_buf_init((char*)r->out, (unsigned)r->out_len);
    CHECK_EQ(uv_write(&r->wreq, (uv_stream_t*)&r->tcp, &b, 1, raw_written), 0);
}

static void raw_closed(uv_handle_t* h)
{
    struct raw* r = h->data;
    r->closed = true;
}

bool raw_done(void* arg)
{
    struct raw* r = arg;
    return r->eof;
}

static bool raw_is_closed(void* arg)
{
    struct raw* r = arg;
    return r->closed;
}

/* Frame header + body into out (docs/format-wire.md). */
size_t make_frame(uint8_t* out, unsigned kind, const void* body, size_t len)
{
    memcpy(out, "QFSP", 4);
    put_le(out + 4, 1, 2);
    put_le(out + 6, kind, 2);
    put_le(out + 8, len, 4);
    put_le(out + 12, XXH32(body, len, 0), 4);
    memcpy(out + 16, body, len);
    return 16 + len;
}

size_t make_hello_v2(uint8_t* out,
                     uint64_t cluster,
                     raft_id id,
                     uint64_t incarnation)
{
    uint8_t body[24];
    put_le(body, cluster, 8);
    put_le(body + 8, id, 8);
    put_le(body + 16, incarnation, 8);
    size_t len = make_frame(out, 1, body, sizeof(body));
    put_le(out + 4, 2, 2); /* frame version 2 */
    return len;
}

/* A version 1 HELLO (no incarnation): still accepted. */
size_t make_hello(uint8_t* out, uint64_t cluster, raft_id id)
{
    uint8_t body[16];
    put_le(body, cluster, 8);
    put_le(body + 8, id, 8);
    return make_frame(out, 1, body, sizeof(body));
}

/* Connect to n, send r->out, and wait until n closes the connection. */
void raw_expect_closed(struct node* n, struct raw* r, const char* what)
{
    struct sockaddr_in sa;
    char ip[32];
    int port;
    CHECK_EQ(sscanf(n->addr, "%31[^:]:%d", ip, &port), 2);
    CHECK_EQ(uv_ip4_addr(ip, port, &sa), 0);
    uint64_t rejected = stats(n).rejected_frames;
    CHECK_EQ(uv_tcp_init(&loop, &r->tcp), 0);
    r->tcp.data = r;
    r->creq.data = r;
    CHECK_EQ(
        uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr*)&sa, raw_connected),
        0);
    if (!run_until(raw_done, r, WAIT_MS)) {
        fprintf(stderr, "connection not closed after %s\n", what);
        CHECK(false);
    }
    CHECK_EQ(stats(n).rejected_frames, rejected + 1);
    uv_close((uv_handle_t*)&r->tcp, raw_closed);
    CHECK(run_until(raw_is_closed, r, WAIT_MS));
}

/* ---- TLS (raft/tls.h) ---- */

char tmpdir[64];

/* A secret file under tmpdir with this content and mode. */
const char* secret_file(const char* name, const char* content, int mode)
{
    static char path[8][128];
    static unsigned next;
    char* p = path[next++ % 8];
    snprintf(p, 128, "%s/%s", tmpdir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    CHECK_EQ(fchmod(fd, (mode_t)mode), 0);
    close(fd);
    return p;
}

struct tls_config* secret_config(const char* name, const char* content)
{
    struct tls_config_options o = {.secret_file =
                                       secret_file(name, content, 0600)};
    struct tls_config* c = NULL;
    char err[TLS_ERROR_MAX];
    CHECK_EQ(tls_config_new(&o, &c, err, sizeof(err)), 0);
    return c;
}

/* Open a raw connection to n from src_ip and send r->out. */
void raw_open_from(struct node* n, struct raw* r, const char* src_ip)
{
    struct sockaddr_in sa, src;
    char ip[32];
    int port;
    CHECK_EQ(sscanf(n->addr, "%31[^:]:%d", ip, &port), 2);
    CHECK_EQ(uv_ip4_addr(ip, port, &sa), 0);
    CHECK_EQ(uv_ip4_addr(src_ip, 0, &src), 0);
    CHECK_EQ(uv_tcp_init(&loop, &r->tcp), 0);
    r->tcp.data = r;
    r->creq.data = r;
    CHECK_EQ(uv_tcp_bind(&r->tcp, (struct sockaddr*)&src, 0), 0);
    CHECK_EQ(
        uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr*)&sa, raw_connected),
        0);
}

/* Open a raw connection to n from 127.0.0.3 (no member's host). */
void raw_open(struct node* n, struct raw* r)
{
    raw_open_from(n, r, "127.0.0.3");
}

void raw_close(struct raw* r)
{
    if (!uv_is_closing((uv_handle_t*)&r->tcp)) {
        uv_close((uv_handle_t*)&r->tcp, raw_closed);
    }
    CHECK(run_until(raw_is_closed, r, WAIT_MS));
}
