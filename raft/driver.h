/* driver.h - one driver of the update contract (raft.h), for every user of
 * the core: the node (fs/node), the simulation (tests/sim) and the unit
 * tests (tests/unit/test_raft_basic.c).
 *
 * What it does, so each user does not write it again:
 *   - steps the core and hands each update's parts over in the contract's
 *     order: 1. install a received image (ops.install) and persist (a
 *     struct raft_batch, owned copies), 2. send (the
 *     messages raft_msg_sendable_now() allows at once; the others travel
 *     with the batch and are sent when it is durable), 3. apply, 4. results
 *     (ops.update sees the whole update for 3 and 4);
 *   - keeps batches in submission order: the backend completes them in
 *     order with raft_driver_persisted(), which sends their messages and
 *     reports RAFT_EV_PERSISTED;
 *   - never steps the core inside the handling of an update: an event the
 *     backend raises while it handles one (a compaction after an apply, an
 *     installed snapshot, a completion that arrives synchronously) is
 *     queued by raft_driver_post() and stepped after the update is done.
 *     raft_driver_step() asserts it is not called from inside an update.
 *
 * Threads: none; one caller thread. Pure: no I/O of its own.
 */
#ifndef QFS_RAFT_DRIVER_H
#define QFS_RAFT_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"

/* One update's persist part, copied out of the update (which dies at the
 * next step), and the messages that wait for it. The backend makes it
 * durable in submission order and then calls raft_driver_persisted(). */
struct raft_batch {
    struct raft_batch* next; /* the driver's list of batches in flight */
    raft_index truncate_from;
    unsigned n_entries;
    struct raft_entry* entries; /* data copied */
    raft_index persist_index;
    raft_term persist_term;
    bool hard_state_changed;
    struct raft_hard_state hard_state;
    /* Messages sent once this batch (and those before it) are durable:
     * deep copies (raft_msg_clone). */
    unsigned n_msgs;
    struct raft_message* msgs;
    void* backend; /* free for the backend's own state */
};

struct raft_driver_ops {
    void* data;
    /* The monotonic clock, in ms, stamped on every event stepped. */
    uint64_t (*now_ms)(void* data);
    /* Sends m (borrowed for the call). */
    void (*send)(void* data, const struct raft_message* m);
    /* u->snapshot_install: installs the received image, before anything
     * else of u (it is part of step 1, and u's batch follows it), then
     * posts RAFT_EV_SNAPSHOT_INSTALLED; the backend completes u's batch
     * only after the image is in place. The image is borrowed until
     * that event. */
    void (*install)(void* data, const struct raft_update* u);
    /* Makes b durable after the batches submitted before it; when done,
     * the backend calls raft_driver_persisted(d, b), from this call or
     * later. NULL: every batch is durable at once (tests). */
    void (*persist)(void* data, struct raft_batch* b);
    /* The update, after its batch was submitted and its early messages
     * sent: apply u->committed in order, serve
     * reads, answer failures, react to role and conf changes, rearm the
     * tick at u->next_timeout_ms. rc is what raft_step returned. Events
     * raised here go through raft_driver_post(). */
    void (*update)(void* data, int rc, const struct raft_update* u);
};

struct raft_driver;

struct raft_driver* raft_driver_new(struct raft* r,
                                    const struct raft_driver_ops* ops);
/* Frees the driver and every batch still in flight (their messages are
 * dropped, as a crash would). The core is the caller's. */
void raft_driver_free(struct raft_driver* d);

/* Steps an event (now_ms is set from ops.now_ms), hands the update over,
 * then steps the events posted meanwhile. Returns raft_step's result for
 * ev. Must not be called while an update is being handled (asserted):
 * there, use raft_driver_post(). */
int raft_driver_step(struct raft_driver* d, struct raft_event ev);
/* Queues an event to be stepped once no update is being handled: at once
 * when none is, else right after the current one. Copies ev (a RECEIVE's
 * message must outlive the queue: only internal events are posted).
 * Returns raft_step's result when stepped at once, 0 when queued, or
 * -ENOMEM. */
int raft_driver_post(struct raft_driver* d, struct raft_event ev);
/* Batch b is durable: sends its messages, reports RAFT_EV_PERSISTED for
 * its entries (posted), frees it. Batches must complete in order. */
void raft_driver_persisted(struct raft_driver* d, struct raft_batch* b);
/* Batch b could not be made durable (a disk error): it leaves the list,
 * in order, and is freed with its messages unsent and nothing reported.
 * The core then waits for it forever: the backend stops taking writes. */
void raft_driver_discard(struct raft_driver* d, struct raft_batch* b);
/* Whether an update is being handled now (for the backend's asserts). */
bool raft_driver_in_update(const struct raft_driver* d);
/* Batches submitted and not yet completed. */
unsigned raft_driver_batches_inflight(const struct raft_driver* d);

/* A deep copy of m (entries, proposals, chunk, ctxs). 0 or -ENOMEM (dst
 * then holds nothing to free). */
int raft_msg_clone(struct raft_message* dst, const struct raft_message* src);
/* Frees what raft_msg_clone allocated in m. */
void raft_msg_free(struct raft_message* m);

#endif
