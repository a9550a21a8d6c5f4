/* raft_env.h - the harness of the raft core's direct tests
 * (test_raft_basic.c, test_raft_snapshot.c): a tiny in-process cluster of
 * up to N_MAX nodes driven through raft/driver.h with a synchronous disk
 * and a FIFO network that can cut links and drop messages, and checks of
 * election safety and applied logs. Node i (0-based) has raft id i + 1. */
#ifndef QFS_TEST_RAFT_ENV_H
#define QFS_TEST_RAFT_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver.h"
#include "raft.h"

enum { N_MAX = 5, QUEUE_MAX = 1 << 16, APPLIED_MAX = 4096 };

struct applied {
    raft_term term;
    uint8_t type;
    uint64_t value; /* first 8 bytes of data, 0 if shorter */
};

struct node {
    struct raft* r;
    bool up;
    struct applied applied[APPLIED_MAX];
    unsigned n_applied;
    raft_index first_applied; /* index of applied[0] */
    uint64_t reads[64];
    raft_index read_index[64];
    unsigned n_reads;
    int failed_reads[64];
    unsigned n_failed_reads;
    uint64_t failed_props[64];
    unsigned n_failed_props;
    struct raft_driver* d; /* drives r: raft/driver.h */
    void* image;           /* installed snapshot image */
    size_t image_len;
};

struct qmsg {
    struct raft_message m; /* a deep copy: raft_msg_clone */
};

extern struct node nodes[N_MAX];
extern unsigned n_nodes;
extern bool cut[N_MAX + 1][N_MAX + 1]; /* cut[a][b]: a -> b dropped */
extern struct qmsg* queue;             /* QUEUE_MAX, from q_head to q_tail */
extern unsigned q_head, q_tail;
extern uint64_t now;
extern unsigned drop_pct; /* random message loss, percent */
extern uint64_t test_rng;
/* Snapshot chunks at offset 0 sent to each node (transfers started or
 * restarted), lost or not. */
extern unsigned snap_starts[N_MAX + 1];

uint64_t rnd(void);
void* dup_mem(const void* p, size_t n);
void qmsg_free(struct qmsg* q);
/* The cluster: n nodes, the first `voters` of them voters. */
void cluster_start(unsigned n, unsigned voters, bool pre_vote);
void cluster_stop(void);
int step(unsigned i, struct raft_event ev);
void deliver_all(void);
void run(uint64_t ms); /* deliver and tick for ms of simulated time */
int leader_of(void);   /* -1: none */
int propose(unsigned i, uint64_t value);
bool has_value(const struct node* n, uint64_t v);
void check_applied_agree(void);
void isolate(unsigned i, bool on); /* cut node i off, both ways */
int conf_change(unsigned i, uint8_t op, raft_id id);

#endif
