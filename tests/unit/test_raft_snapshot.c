/* test_raft_snapshot.c - the raft core's snapshots on the tiny in-process
 * cluster of raft_env.c: compaction and install, images made on demand,
 * chunked transfers kept across leader changes and never restarted by a
 * stale answer. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raft_env.h"

static void test_snapshot(void)
{
    cluster_start(4, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    for (uint64_t v = 1; v <= 20; v++) {
        CHECK_EQ(propose((unsigned)l, v), 0);
    }
    run(300);
    raft_index applied = raft_applied_index(nodes[l].r);
    CHECK_EQ(applied, 21);
    /* Image bigger than one chunk so it streams in several messages. */
    size_t len = RAFT_SNAPSHOT_CHUNK * 2 + 123;
    uint8_t* image = malloc(len);
    CHECK(image != NULL);
    for (size_t i = 0; i < len; i++) {
        image[i] = (uint8_t)(i * 7);
    }
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta.index = applied;
    ev.compact.meta.term = raft_current_term(nodes[l].r);
    ev.compact.meta.conf = *raft_conf_current(nodes[l].r);
    ev.compact.image.base = image;
    ev.compact.image.len = len;
    CHECK_EQ(step((unsigned)l, ev), 0);
    CHECK_EQ(raft_first_index(nodes[l].r), applied + 1);
    CHECK_EQ(conf_change((unsigned)l, RAFT_CONF_ADD_LEARNER, 4), 0);
    run(1000);
    CHECK(nodes[3].image != NULL);
    CHECK_EQ(nodes[3].image_len, len);
    CHECK_MEM(nodes[3].image, image, len);
    CHECK_EQ(raft_first_index(nodes[3].r), applied + 1);
    CHECK_EQ(raft_conf_current(nodes[3].r)->n, 4);
    CHECK_EQ(propose((unsigned)l, 77), 0);
    run(300);
    CHECK(has_value(&nodes[3], 77));
    CHECK_EQ(raft_commit_index(nodes[3].r), raft_commit_index(nodes[l].r));
    check_applied_agree();
    cluster_stop();
    free(image);
}

/* Images on demand (raft_image_wanted/held): a leader compacted with an
 * empty image wants one once a follower is behind its log, streams the one
 * it is given (dropping nothing more), and wants none after the transfer;
 * both sides can then release theirs with an empty image. */
static void test_snapshot_on_demand(void)
{
    cluster_start(4, 3, true);
    run(3000);
    int l = leader_of();
    CHECK(l >= 0);
    for (uint64_t v = 1; v <= 20; v++) {
        CHECK_EQ(propose((unsigned)l, v), 0);
    }
    run(300);
    raft_index applied = raft_applied_index(nodes[l].r);
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta.index = applied;
    ev.compact.meta.term = raft_current_term(nodes[l].r);
    ev.compact.meta.conf = *raft_conf_current(nodes[l].r);
    CHECK_EQ(step((unsigned)l, ev), 0); /* no image */
    CHECK(!raft_image_held(nodes[l].r));
    CHECK(!raft_image_wanted(nodes[l].r)); /* followers have everything */
    CHECK_EQ(conf_change((unsigned)l, RAFT_CONF_ADD_LEARNER, 4), 0);
    run(300);
    CHECK(raft_image_wanted(nodes[l].r));
    CHECK(nodes[3].image == NULL);
    size_t len = RAFT_SNAPSHOT_CHUNK + 5;
    uint8_t* image = calloc(1, len);
    CHECK(image != NULL);
    ev.compact.image.base = image;
    ev.compact.image.len = len;
    ev.compact.keep_from = raft_first_index(nodes[l].r); /* drop nothing */
    raft_index first = raft_first_index(nodes[l].r);
    CHECK_EQ(step((unsigned)l, ev), 0);
    CHECK_EQ(raft_first_index(nodes[l].r), first);
    CHECK(raft_image_held(nodes[l].r));
    run(1000);
    CHECK(nodes[3].image != NULL);
    CHECK_EQ(nodes[3].image_len, len);
    CHECK(!raft_image_wanted(nodes[l].r));
    CHECK(raft_image_held(nodes[3].r)); /* the installed one, kept */
    ev.compact.image.base = NULL;
    ev.compact.image.len = 0;
    ev.compact.keep_from = 1;
    CHECK_EQ(step((unsigned)l, ev), 0);
    CHECK(!raft_image_held(nodes[l].r));
    CHECK_EQ(propose((unsigned)l, 77), 0);
    run(300);
    CHECK(has_value(&nodes[3], 77));
    check_applied_agree();
    cluster_stop();
    free(image);
}

/* Gives leader l an image of `len` bytes at its applied index (keeping
 * its whole log, as fs/node.c does for an image asked for on demand), or
 * releases it with len 0. */
static void give_image(unsigned l, uint8_t* image, size_t len)
{
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta.index = raft_applied_index(nodes[l].r);
    ev.compact.meta.term = raft_current_term(nodes[l].r);
    ev.compact.meta.conf = *raft_conf_current(nodes[l].r);
    ev.compact.image.base = len > 0 ? image : NULL;
    ev.compact.image.len = len;
    ev.compact.keep_from = raft_first_index(nodes[l].r);
    CHECK_EQ(step(l, ev), 0);
}

/* An image transfer is not dropped because the follower is slow to
 * answer; released while it runs, the follower probes again and asks for
 * a new one, which is streamed even at the same index; a follower silent
 * for RAFT_SNAPSHOT_ABANDON_TIMEOUTS election timeouts is abandoned (the
 * image is no longer wanted for it) and served again once it answers. */
static void test_snapshot_transfer_kept(void)
{
    cluster_start(4, 3, true);
    run(3000);
    int li = leader_of();
    CHECK(li >= 0);
    unsigned l = (unsigned)li;
    raft_id lid = (raft_id)l + 1;
    for (uint64_t v = 1; v <= 20; v++) {
        CHECK_EQ(propose(l, v), 0);
    }
    run(300);
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta.index = raft_applied_index(nodes[l].r);
    ev.compact.meta.term = raft_current_term(nodes[l].r);
    ev.compact.meta.conf = *raft_conf_current(nodes[l].r);
    CHECK_EQ(step(l, ev), 0); /* no image */
    size_t len = RAFT_SNAPSHOT_CHUNK * 3;
    uint8_t* image = calloc(1, len);
    CHECK(image != NULL);

    /* The learner's answers are lost while an image is sent to it. */
    CHECK_EQ(conf_change(l, RAFT_CONF_ADD_LEARNER, 4), 0);
    run(300);
    CHECK(raft_image_wanted(nodes[l].r));
    cut[4][lid] = true;
    give_image(l, image, len);
    run(3500);
    CHECK(raft_image_wanted(nodes[l].r)); /* the transfer still runs */
    CHECK(nodes[3].image == NULL);
    /* Released mid-transfer: the learner goes back to probing. */
    give_image(l, NULL, 0);
    CHECK(!raft_image_held(nodes[l].r));
    CHECK(!raft_image_wanted(nodes[l].r)); /* not heard from lately */
    cut[4][lid] = false;
    run(300);
    CHECK(raft_image_wanted(nodes[l].r)); /* it answered: behind the log */
    give_image(l, image, len);            /* the same index as before */
    run(1000);
    CHECK(nodes[3].image != NULL);
    CHECK_EQ(nodes[3].image_len, len);
    CHECK(!raft_image_wanted(nodes[l].r));
    give_image(l, NULL, 0);

    /* Behind again: cut off while the leader moves on and compacts. */
    cut[lid][4] = cut[4][lid] = true;
    for (uint64_t v = 21; v <= 25; v++) {
        CHECK_EQ(propose(l, v), 0);
    }
    run(300);
    ev.compact.meta.index = raft_applied_index(nodes[l].r);
    CHECK_EQ(step(l, ev), 0); /* no image, log compacted past the learner */
    cut[lid][4] = cut[4][lid] = false;
    run(300);
    CHECK(raft_image_wanted(nodes[l].r)); /* it rejected: behind the log */
    cut[4][lid] = true; /* it hears the leader; its answers are lost */
    give_image(l, image, len);
    run(3500);
    CHECK(raft_image_wanted(nodes[l].r)); /* being sent, slowly */
    run((uint64_t)RAFT_SNAPSHOT_ABANDON_TIMEOUTS * 1000);
    CHECK(!raft_image_wanted(nodes[l].r)); /* abandoned: silent too long */
    give_image(l, NULL, 0);
    cut[4][lid] = false;
    run(300);
    CHECK(raft_image_wanted(nodes[l].r));
    give_image(l, image, len);
    run(1000);
    CHECK(!raft_image_wanted(nodes[l].r));
    CHECK_EQ(propose(l, 77), 0);
    run(300);
    CHECK(has_value(&nodes[3], 77));
    check_applied_agree();
    cluster_stop();
    free(image);
}

/* A follower that holds the whole image (its last chunk is in flight: it
 * is installing it) is not restarted by a compaction done as fs/node does
 * it (release the image, then give one at the new applied index, keeping
 * the log): it installs the image it has and catches up by log. Before,
 * the release sent it back to probing and the new image started a second
 * transfer from offset 0, whose first chunk replaced the nearly complete
 * one. */
static void test_snapshot_install_not_restarted(void)
{
    cluster_start(4, 3, true);
    run(3000);
    int li = leader_of();
    CHECK(li >= 0);
    unsigned l = (unsigned)li;
    raft_id lid = (raft_id)l + 1;
    for (uint64_t v = 1; v <= 20; v++) {
        CHECK_EQ(propose(l, v), 0);
    }
    run(300);
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta.index = raft_applied_index(nodes[l].r);
    ev.compact.meta.term = raft_current_term(nodes[l].r);
    ev.compact.meta.conf = *raft_conf_current(nodes[l].r);
    CHECK_EQ(step(l, ev), 0); /* no image */
    CHECK_EQ(conf_change(l, RAFT_CONF_ADD_LEARNER, 4), 0);
    run(300);
    CHECK(raft_image_wanted(nodes[l].r));
    raft_index first_image = raft_applied_index(nodes[l].r);
    size_t len = RAFT_SNAPSHOT_CHUNK * 2;
    uint8_t* image = calloc(1, len);
    uint8_t* image2 = calloc(1, len);
    CHECK(image != NULL && image2 != NULL);
    image[0] = 1;
    image2[0] = 2;
    give_image(l, image, len);

    /* Deliver until the image's last chunk to the learner is next; hold
     * it back (the learner "installs" meanwhile). */
    struct qmsg held;
    bool holding = false;
    for (unsigned k = 0; k < 1000 && q_head != q_tail; k++) {
        struct qmsg* q = &queue[q_head % QUEUE_MAX];
        if (q->m.type == RAFT_MSG_SNAPSHOT && q->m.to == 4 &&
            q->m.snapshot.offset + q->m.snapshot.chunk.len ==
                q->m.snapshot.total) {
            held = *q;
            q_head++;
            holding = true;
            break;
        }
        struct qmsg one = *q;
        q_head++;
        unsigned to = (unsigned)one.m.to - 1;
        if (to < n_nodes && nodes[to].up) {
            struct raft_event rev = {.type = RAFT_EV_RECEIVE};
            rev.msg = &one.m;
            step(to, rev);
        }
        qmsg_free(&one);
    }
    CHECK(holding);
    CHECK_EQ(held.m.snapshot.meta.index, first_image);

    /* The leader moves on and compacts: release, then a new image at the
     * new applied index (the log kept), while the learner installs. */
    unsigned starts = snap_starts[4];
    cut[lid][4] = true;
    for (uint64_t v = 21; v <= 25; v++) {
        CHECK_EQ(propose(l, v), 0);
    }
    run(100);
    CHECK(raft_applied_index(nodes[l].r) > first_image);
    give_image(l, NULL, 0);
    give_image(l, image2, len);
    run(100);
    cut[lid][4] = false;
    CHECK_EQ(snap_starts[4], starts); /* the transfer was not restarted */

    /* The learner installs the image it has, then catches up by log. */
    struct raft_event rev = {.type = RAFT_EV_RECEIVE};
    rev.msg = &held.m;
    step(3, rev);
    qmsg_free(&held);
    run(300);
    CHECK(nodes[3].image != NULL);
    CHECK_EQ(nodes[3].image_len, len);
    CHECK_EQ(((const uint8_t*)nodes[3].image)[0], 1);
    CHECK_EQ(snap_starts[4], starts);
    CHECK(has_value(&nodes[3], 25));
    CHECK(!raft_image_wanted(nodes[l].r));
    check_applied_agree();
    cluster_stop();
    free(image);
    free(image2);
}

/* Delivers queued messages until the next one is a snapshot chunk to `to`
 * at an offset past 0 (a transfer under way); true if found. */
static bool deliver_until_chunk_past_0(raft_id to)
{
    for (unsigned k = 0; k < 1000 && q_head != q_tail; k++) {
        struct qmsg* q = &queue[q_head % QUEUE_MAX];
        if (q->m.type == RAFT_MSG_SNAPSHOT && q->m.to == to &&
            q->m.snapshot.offset > 0) {
            return true;
        }
        struct qmsg one = *q;
        q_head++;
        unsigned i = (unsigned)one.m.to - 1;
        if (i < n_nodes && nodes[i].up && !cut[one.m.from][one.m.to]) {
            struct raft_event ev = {.type = RAFT_EV_RECEIVE};
            ev.msg = &one.m;
            step(i, ev);
        }
        qmsg_free(&one);
    }
    return false;
}

/* A late done answer for an image the follower installed earlier (a
 * duplicate: to a chunk resent after a timeout) does not restart the
 * transfer of a newer image under way: before, the leader went back to
 * probing and started the newer image again from offset 0. */
static void test_snapshot_stale_done(void)
{
    cluster_start(4, 3, true);
    run(3000);
    int li = leader_of();
    CHECK(li >= 0);
    unsigned l = (unsigned)li;
    raft_id lid = (raft_id)l + 1;
    for (uint64_t v = 1; v <= 20; v++) {
        CHECK_EQ(propose(l, v), 0);
    }
    run(300);
    struct raft_event ev = {.type = RAFT_EV_COMPACT};
    ev.compact.meta.index = raft_applied_index(nodes[l].r);
    ev.compact.meta.term = raft_current_term(nodes[l].r);
    ev.compact.meta.conf = *raft_conf_current(nodes[l].r);
    CHECK_EQ(step(l, ev), 0); /* no image */
    CHECK_EQ(conf_change(l, RAFT_CONF_ADD_LEARNER, 4), 0);
    run(300);
    raft_index first_image = raft_applied_index(nodes[l].r);
    size_t len = RAFT_SNAPSHOT_CHUNK * 3;
    uint8_t* image = calloc(1, len);
    uint8_t* image2 = calloc(1, len);
    CHECK(image != NULL && image2 != NULL);
    image[0] = 1;
    image2[0] = 2;
    give_image(l, image, len);
    run(1000);
    CHECK_EQ(((const uint8_t*)nodes[3].image)[0], 1);
    give_image(l, NULL, 0);

    /* Behind again: the leader compacts past it, then sends image2. */
    cut[lid][4] = cut[4][lid] = true;
    for (uint64_t v = 21; v <= 25; v++) {
        CHECK_EQ(propose(l, v), 0);
    }
    run(300);
    ev.compact.meta.index = raft_applied_index(nodes[l].r);
    CHECK_EQ(step(l, ev), 0); /* no image, log compacted past the learner */
    cut[lid][4] = cut[4][lid] = false;
    run(300);
    CHECK(raft_image_wanted(nodes[l].r));
    unsigned starts = snap_starts[4];
    give_image(l, image2, len);
    CHECK_EQ(snap_starts[4], starts + 1);
    CHECK(deliver_until_chunk_past_0(4));

    /* A duplicate done for the first image arrives now. */
    struct raft_message late = {.type = RAFT_MSG_SNAPSHOT_RESP,
                                .from = 4,
                                .to = lid,
                                .term = raft_current_term(nodes[l].r)};
    late.snapshot_resp.index = first_image;
    late.snapshot_resp.next_offset = len;
    late.snapshot_resp.done = true;
    struct raft_event rev = {.type = RAFT_EV_RECEIVE};
    rev.msg = &late;
    step(l, rev);
    run(1000);
    CHECK_EQ(snap_starts[4], starts + 1); /* one transfer of image2 */
    CHECK_EQ(((const uint8_t*)nodes[3].image)[0], 2);
    CHECK(!raft_image_wanted(nodes[l].r));
    CHECK_EQ(propose(l, 77), 0);
    run(300);
    CHECK(has_value(&nodes[3], 77));
    check_applied_agree();
    cluster_stop();
    free(image);
    free(image2);
}

int main(void)
{
    RUN(test_snapshot);
    RUN(test_snapshot_on_demand);
    RUN(test_snapshot_transfer_kept);
    RUN(test_snapshot_install_not_restarted);
    RUN(test_snapshot_stale_done);
    free(queue);
    return 0;
}
