/* transport.h - raft messages between nodes over TCP, on libuv.
 *
 * Security (docs/security.md): with a tls_config every connection is a
 * mutually authenticated TLS 1.3 session (tls.h) and frames travel inside
 * its records; the HELLO's node id must then be a member the peer proved
 * (its certificate names that member, or it holds the shared secret).
 * Without one (--peer-insecure) frames travel in the clear. Connections
 * that have not finished their handshake are capped per source address
 * and in total, the oldest evicted first; established members are never
 * evicted by strangers; an address that is no member's host may connect
 * ACCEPT_RATE_PER_S times a second (burst ACCEPT_BURST), and past that is
 * closed at accept, before any TLS work. Refusals are logged at most once per
 * address per REJECT_LOG_INTERVAL_MS, with the count of the ones not logged.
 *
 * Frames (docs/format-wire.md): u32 magic "QFSP", u16 version, u16 kind,
 * u32 body length, u32 checksum (xxh32 of the body), body. The first frame
 * on a connection, in each direction, is a HELLO carrying the cluster id,
 * the sender's node id and its incarnation; a peer with another cluster id,
 * or that dials us with an id it cannot prove, is logged and dropped. A
 * node that proves an id not in the peer table (a leader this node's
 * configuration is too old to name) is a provisional peer: only its
 * appends and snapshots reach on_message, and transport_send answers it
 * over its own connection until transport_set_peer gives it an address.
 * After the HELLO every frame carries one raft message encoded by
 * codec.h. A malformed frame closes that connection only.
 *
 * Each node keeps one outgoing connection per peer (bound to the node's own
 * listen address, so partition tests can filter by source address), with a
 * bounded send queue (transport_options.queue_bytes_max; when full, new
 * messages to that peer are dropped and counted: raft retransmits), and
 * reconnects with exponential backoff (50 ms doubling to 2 s). Incoming
 * connections deliver messages to on_message.
 *
 * All functions run on the loop thread.
 */
#ifndef QFS_RAFT_TRANSPORT_H
#define QFS_RAFT_TRANSPORT_H

#include <uv.h>

#include "raft.h"
#include "tls.h"

struct transport;

typedef void (*transport_message_cb)(void* data, const struct raft_message* m);
/* A peer's HELLO carried another incarnation than its previous one: the
 * peer process restarted (docs/format-wire.md, section 3). */
typedef void (*transport_restart_cb)(void* data, raft_id id);
/* A transport started with cluster_id 0 learned the cluster's id from a
 * peer's HELLO (docs/format-wire.md, section 3). Returns 0 to adopt it
 * (the owner has stored it), else the connection is refused. */
typedef int (*transport_cluster_cb)(void* data, uint64_t cluster_id);

struct transport_options {
    raft_id self;
    uint64_t cluster_id;     /* 0: not known yet; learned from the first peer
                                whose HELLO carries one (on_cluster_id) */
    const char* listen_addr; /* "IP:PORT"; also the source of outgoing
                                connections */
    size_t queue_bytes_max;  /* per peer; default 16 MiB when 0 */
    transport_message_cb on_message;      /* message borrowed for the call */
    uint64_t incarnation;                 /* this process's, in its HELLOs: any
                                             value that differs after a restart
                                             (0: none) */
    transport_restart_cb on_peer_restart; /* may be NULL */
    transport_cluster_cb on_cluster_id;   /* needed when cluster_id is 0 */
    void* data;
    struct raft_tracer tracer;
    struct tls_config* tls; /* borrowed; NULL: frames in the clear */
    /* The node id of a member name (certificate mode: how a provisional
     * peer's certificate proves its id). NULL: with certificates, no
     * provisional peers. */
    uint64_t (*name_id)(const char* name);
};

struct transport_stats {
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t dropped_queue_full; /* messages dropped: peer queue full */
    uint64_t rejected_frames;    /* malformed / bad checksum / foreign */
    uint64_t connects, disconnects;
    uint64_t refused_handshakes; /* TLS failed, or a name not proved */
    uint64_t evicted;            /* unauthenticated, over a cap */
    uint64_t rate_limited;       /* closed at accept: its address connected more
                                    than ACCEPT_RATE_PER_S a second */
    uint64_t provisional_dropped; /* messages from a provisional peer that
                                     are not a leader's (votes, ...) */
};

/* Parse a peer address, "a.b.c.d:port" or "[v6]:port" (numeric only, as
 * the transport dials and listens): 0, or -EINVAL. Port 0 (any free port)
 * only if port0_ok. The command line checks its flags with it. */
int transport_parse_addr(const char* s,
                         struct sockaddr_storage* sa,
                         bool port0_ok);

/* Create and start listening. Returns 0 or a negative errno (-EADDRINUSE,
 * -EINVAL for a bad address). *out is valid until transport_close's cb. */
int transport_start(uv_loop_t* loop,
                    const struct transport_options* o,
                    struct transport** out);

/* Add or update a peer's member name and address (from the raft
 * configuration). The name is what its certificate must carry, and what
 * the logs call it. Removing a peer closes its connections. */
int transport_set_peer(struct transport* t,
                       raft_id id,
                       const char* name,
                       const char* addr);
void transport_remove_peer(struct transport* t, raft_id id);

/* Encode and queue m for m->to (a peer, else a provisional peer's
 * connection). Never blocks; returns 0, -ENOENT (unknown peer), -ENOBUFS
 * (queue full, message dropped). m is borrowed. */
int transport_send(struct transport* t, const struct raft_message* m);

/* Whether a connection to id is currently established. */
bool transport_connected(const struct transport* t, raft_id id);
void transport_get_stats(const struct transport* t, struct transport_stats* s);

/* Close everything; cb runs once all handles are closed (then t is freed). */
void transport_close(struct transport* t, void (*cb)(void* data), void* data);

#endif /* QFS_RAFT_TRANSPORT_H */
