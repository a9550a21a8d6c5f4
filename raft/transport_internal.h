/* transport_internal.h - what the files of the TCP transport share.
 *
 * The transport is one module cut in files along its concerns:
 * transport.c (the API, peers and queues), transport_conn.c (connections:
 * dial, accept, handshake deadlines, reconnect, teardown) and
 * transport_io.c (frames on a connection: writing batches and HELLO,
 * reading and checking frames). The contract is transport.h; the wire
 * format docs/format-wire.md. Nothing outside raft/transport*.c includes
 * this header. Each function is described at its definition.
 */
#ifndef QFS_RAFT_TRANSPORT_INTERNAL_H
#define QFS_RAFT_TRANSPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* Incoming connections that have not finished their handshake: at most
 * this many from one address, and in all (past either, the oldest such
 * connection is evicted: a member's handshake takes milliseconds, a
 * stranger's idles until its deadline). */
#define UNAUTH_PER_ADDR_MAX 8
#define UNAUTH_MAX 64
/* Established incoming connections from nodes outside the configuration
 * (provisional peers, see handle_hello): a leader this node has not heard
 * of yet is one, so a few suffice; past this many a new one is refused. */
#define PROVISIONAL_MAX RAFT_SERVERS_MAX
#define REJECT_LOG_INTERVAL_MS 10000 /* per source address */
#define REJECT_LOG_SLOTS 32
/* Connections from an address that is no member's host: a token bucket
 * per address, ACCEPT_BURST deep, refilled at ACCEPT_RATE_PER_S; past it a
 * connection is closed as soon as it is accepted, before its TLS session
 * or any read (a flooder costs an accept and a close, not a handshake).
 * The last ACCEPT_SLOTS addresses are remembered (least recently seen
 * replaced). A member's host is never limited. */
#define ACCEPT_RATE_PER_S 16
#define ACCEPT_BURST 32
#define ACCEPT_SLOTS 64
#define TRANSPORT_STR_(x) #x
#define TRANSPORT_STR(x) TRANSPORT_STR_(x)
#define CIPHER_READ_BYTES ((size_t)64 << 10)
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
    /* Incoming, from an authenticated node whose id is not in the peer
     * table: only a leader's appends and snapshots are delivered, and
     * messages to it go back over this connection (q) until a
     * configuration gives it an address (transport_set_peer). */
    bool provisional;
    bool provisional_warned;     /* a dropped message was logged */
    struct fqueue q;             /* provisional: waiting to be written */
    size_t q_bytes;              /* provisional: waiting + in flight */
    char claimed[RAFT_NAME_MAX]; /* provisional: the name its certificate
                                    proved ("" with a shared secret) */
    raft_id remote;              /* node id from its HELLO */
    uint64_t incarnation;        /* from its HELLO (0: version 1, none) */
    uint64_t deadline_ms;
    /* The handshake deadline passed once; it is judged again after the
     * loop has polled this socket (a stalled process must read the HELLO
     * waiting for it before it calls the peer silent). */
    bool deadline_seen;
    struct tls* tls;  /* NULL: frames in the clear */
    bool tls_done;    /* handshake complete */
    uint8_t* wcipher; /* ciphertext of the data write in flight */
    uint8_t* rbuf;    /* <= FRAME_HEADER_BYTES + FRAME_BODY_MAX */
    size_t rlen, rcap;
    char name[RAFT_ADDR_MAX + 8]; /* remote address, for logs */
    char ip[RAFT_ADDR_MAX + 8];   /* remote address without the port */
};

struct peer {
    struct transport* t;
    raft_id id;
    char name[RAFT_NAME_MAX]; /* member name: its certificate's, its logs' */
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
    struct reject_log {
        char ip[RAFT_ADDR_MAX + 8];
        uint64_t last_ms;
        unsigned suppressed;
    } rejects[REJECT_LOG_SLOTS];
    struct accept_bucket {
        char ip[RAFT_ADDR_MAX + 8];
        uint64_t last_ms;
        uint64_t milli_tokens; /* tokens x 1000 */
    } buckets[ACCEPT_SLOTS];
    /* Ciphertext just read (libuv calls alloc then read for one stream at
     * a time, so one buffer serves all connections). */
    uint8_t cipher_in[CIPHER_READ_BYTES];
    unsigned handles_open;
    bool closing;
    void (*close_cb)(void* data);
    void* close_data;
};

/* ---- transport.c ---- */
__attribute__((format(printf, 3, 4))) void transport__trace(struct transport* t,
                                                            int level,
                                                            const char* fmt,
                                                            ...);
void transport__frame_header(uint8_t* h,
                             unsigned kind,
                             const uint8_t* body,
                             size_t len);
void transport__sockaddr_name(const struct sockaddr_storage* sa,
                              char* out,
                              size_t cap);
struct peer* transport__peer_find(const struct transport* t, raft_id id);
/* "n2" (the member name), or the hex id when the name is unknown. */
const char* transport__peer_label(const struct transport* t,
                                  raft_id id,
                                  char* buf,
                                  size_t cap);
void transport__fqueue_push(struct fqueue* q, struct frame* f);
struct frame* transport__fqueue_pop(struct fqueue* q);
void transport__fqueue_free(struct fqueue* q);

/* ---- transport_conn.c ---- */
void transport__maybe_finish_close(struct transport* t);
void transport__peer_timer_close_cb(uv_handle_t* h);
void transport__conn_close(struct conn* c);
void transport__conn_reject(struct conn* c, const char* why);
void transport__conn_refuse(struct conn* c, const char* why);
void transport__peer_connect(struct peer* p);
void transport__connection_cb(uv_stream_t* server, int status);
void transport__sweep_cb(uv_timer_t* timer);

/* ---- transport_io.c ---- */
void transport__conn_flush(struct conn* c);
int transport__send_hello(struct conn* c);
int transport__tls_start(struct conn* c);
void transport__alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
void transport__read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);

#endif
