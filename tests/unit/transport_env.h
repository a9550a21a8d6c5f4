/* transport_env.h - the harness of the transport unit tests
 * (test_transport.c, test_transport_tls.c): nodes with a transport on one
 * uv loop over 127.0.0.1/2/3, running the loop until a condition holds, a
 * raw TCP client for hand-made bytes, secret files for TLS. */
#ifndef QFS_TEST_TRANSPORT_ENV_H
#define QFS_TEST_TRANSPORT_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "codec.h"
#include "tls.h"
#include "transport.h"

#define CLUSTER 0xc1c1c1c1u
#define RECV_MAX 4096
#define WAIT_MS 5000

extern uv_loop_t loop;
/* The TLS configuration node_start gives a node without its own (NULL:
 * frames in the clear): the exchange tests run both ways. */
extern struct tls_config* tls_default;
extern char tmpdir[64]; /* made by main */

struct node {
    raft_id id;
    char addr[RAFT_ADDR_MAX];
    struct transport* t;
    unsigned n_recv;
    uint8_t* recv[RECV_MAX]; /* each received message, re-encoded */
    size_t recv_len[RECV_MAX];
    bool echo;        /* answer VOTE with VOTE_RESP from the callback */
    bool close_on_rx; /* transport_close from the callback */
    bool closed;
    uint64_t incarnation;   /* sent in HELLOs (node_start) */
    unsigned n_restarts;    /* on_peer_restart calls */
    raft_id last_restart;   /* and the last id it named */
    uint64_t learned;       /* on_cluster_id: the id it adopted (0: none) */
    struct tls_config* tls; /* NULL: tls_default */
};

struct want {
    struct node* n;
    unsigned count;
};

struct link {
    struct node* from;
    raft_id to;
};

struct raw {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uint8_t out[256];
    size_t out_len;
    bool connected, eof, closed;
    size_t n_in;
};

/* Nodes: init (a free port on ip), start (callbacks record what
 * arrives), close; their transport's stats. */
int on_cluster_id(void* data, uint64_t cluster_id);
void on_message(void* data, const struct raft_message* m);
int free_port(const char* ip);
void node_init(struct node* n, raft_id id, const char* ip);
void node_start(struct node* n, uint64_t cluster, size_t queue_max);
/* The loop: until pred(arg) holds (false after timeout_ms), or for ms. */
bool run_until(bool (*pred)(void*), void* arg, unsigned timeout_ms);
bool never(void* arg);
void run_for(unsigned ms);
void wait_recv(struct node* n, unsigned count);
bool is_connected(void* arg);
void close_nodes(struct node** ns);
struct transport_stats stats(struct node* n);
void send_check(struct node* n,
                const struct raft_message* m,
                uint8_t** sent,
                size_t* sent_len,
                unsigned* n_sent);
/* A raw TCP client (from 127.0.0.3 unless told): hand-made frames and
 * HELLOs, and whether the node closed it. */
bool raw_done(void* arg);
size_t make_frame(uint8_t* out, unsigned kind, const void* body, size_t len);
size_t make_hello_v2(uint8_t* out,
                     uint64_t cluster,
                     raft_id id,
                     uint64_t incarnation);
size_t make_hello(uint8_t* out, uint64_t cluster, raft_id id);
void raw_expect_closed(struct node* n, struct raw* r, const char* what);
/* TLS: a secret file under tmpdir, and a configuration using one. */
const char* secret_file(const char* name, const char* content, int mode);
struct tls_config* secret_config(const char* name, const char* content);
void raw_open_from(struct node* n, struct raw* r, const char* src_ip);
void raw_open(struct node* n, struct raw* r);
void raw_close(struct raw* r);

#endif
