/* sim_app.c - the application: applied values folded into a running
 * hash, its image (encode, decode), and reads served once applied. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>

#include "../../raft/util/bytes.h"
#include "sim_internal.h"

#define IMAGE_MAGIC 0x51465353494d494dull /* "QFSSIMIM" */
enum { IMAGE_HDR_BYTES = 48 };

/* ---- the application ---- */

size_t sim__image_encode(const struct sim_sm* sm, void** out)
{
    size_t conf_len = raft_conf_encoded_size(&sm->conf);
    uint8_t* p = sim__xcalloc(1, IMAGE_HDR_BYTES + conf_len);
    put_le64(p, IMAGE_MAGIC);
    put_le64(p + 8, sm->applied);
    put_le64(p + 16, sm->count);
    put_le64(p + 24, sm->hash);
    put_le64(p + 32, sm->conf_index);
    put_le64(p + 40, conf_len);
    int rc = raft_conf_encode(&sm->conf, p + IMAGE_HDR_BYTES, conf_len);
    assert(rc == (int)conf_len);
    (void)rc;
    *out = p;
    return IMAGE_HDR_BYTES + conf_len;
}

int sim__image_decode(struct sim_sm* sm, const void* img, size_t len)
{
    const uint8_t* p = img;
    if (len < IMAGE_HDR_BYTES || get_le64(p) != IMAGE_MAGIC ||
        get_le64(p + 40) != len - IMAGE_HDR_BYTES) {
        return -EINVAL;
    }
    sm->applied = get_le64(p + 8);
    sm->count = get_le64(p + 16);
    sm->hash = get_le64(p + 24);
    sm->conf_index = get_le64(p + 32);
    return raft_conf_decode(&sm->conf, p + IMAGE_HDR_BYTES,
                            len - IMAGE_HDR_BYTES);
}

void sim__serve_reads(struct sim* s, struct sim_node* n)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n->n_reads; i++) {
        struct sim_read_req* rq = &n->reads[i];
        if (n->sm.applied >= rq->index) {
            checker__on_read(s, n, rq);
            s->reads[rq->ctx].served = n->sm.applied;
            sim__trace(s,
                       "n%" PRIu64 " read ctx=%" PRIu64 " served at %" PRIu64
                       " (index %" PRIu64 ", required %" PRIu64 ")",
                       n->id, rq->ctx, n->sm.applied, rq->index, rq->required);
        } else {
            n->reads[k++] = *rq;
        }
    }
    n->n_reads = k;
}

void sim__sm_apply(struct sim* s,
                   struct sim_node* n,
                   const struct raft_entry* e)
{
    if (e->index != n->sm.applied + 1) {
        sim__violate(s,
                     "contract: n%" PRIu64 " asked to apply %" PRIu64
                     " after applying %" PRIu64,
                     n->id, e->index, n->sm.applied);
        return;
    }
    if (e->type == RAFT_ENTRY_NORMAL) {
        if (e->data.len != 8) {
            sim__violate(s, "n%" PRIu64 " applied a NORMAL entry of %zu bytes",
                         n->id, e->data.len);
            return;
        }
        uint64_t v = get_le64(e->data.base);
        n->sm.count++;
        n->sm.hash = sim__hash(n->sm.hash, &v, sizeof v);
        if (v >= 1 && v < s->next_value && s->props[v].index == 0) {
            s->props[v].index = e->index;
        }
    } else if (e->type == RAFT_ENTRY_CONF) {
        struct raft_conf c;
        if (raft_conf_decode(&c, e->data.base, e->data.len) != 0) {
            sim__violate(s, "n%" PRIu64 " applied an undecodable CONF entry",
                         n->id);
            return;
        }
        n->sm.conf = c;
        n->sm.conf_index = e->index;
    }
    n->sm.applied = e->index;
    checker__on_apply(s, n, e);
}
