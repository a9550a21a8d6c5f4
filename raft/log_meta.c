/* log_meta.c - the meta file of the disk log: two slots, the valid one
 * with the highest seq wins (docs/format-log.md).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/fileio.h"
#include "log_internal.h"

static int meta_encode(uint8_t slot[RLOG_META_SLOT_SIZE],
                       const struct rlog* l,
                       uint64_t seq)
{
    uint8_t* d = slot + RLOG_REC_HDR_SIZE;
    memset(slot, 0, RLOG_META_SLOT_SIZE);
    int n = raft_conf_encode(&l->snap.conf, d + RLOG_META_FIXED_SIZE,
                             RLOG_META_CONF_MAX);
    if (n < 0) {
        return n;
    }
    const uint64_t fixed[8] = {seq,          l->epoch,          l->hs.term,
                               l->hs.vote,   l->hs.commit,      l->snap.index,
                               l->snap.term, l->snap.conf_index};
    for (unsigned i = 0; i < 8; i++) {
        put_le64(d + 8 * (size_t)i, fixed[i]);
    }
    put_le32(d + 64, (uint32_t)n);
    struct rlog_rec_hdr h = {.type = RLOG_REC_META,
                             .len = RLOG_META_FIXED_SIZE + (uint32_t)n,
                             .index = l->snap.index,
                             .term = l->snap.term};
    rlog__hdr_encode(slot, &h, d);
    return 0;
}

struct meta_val {
    uint64_t seq, epoch;
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
};

static bool meta_decode(const uint8_t* slot, uint64_t avail, struct meta_val* m)
{
    struct rlog_rec_hdr h;
    const char* why;
    if (rlog__rec_check(slot, avail, &h, &why) == 0 ||
        h.type != RLOG_REC_META || h.len < RLOG_META_FIXED_SIZE) {
        return false;
    }
    const uint8_t* d = slot + RLOG_REC_HDR_SIZE;
    uint64_t f[8];
    for (unsigned i = 0; i < 8; i++) {
        f[i] = get_le64(d + 8 * (size_t)i);
    }
    uint32_t conf_len = get_le32(d + 64);
    if (conf_len != h.len - RLOG_META_FIXED_SIZE) {
        return false;
    }
    memset(m, 0, sizeof(*m));
    if (raft_conf_decode(&m->snap.conf, d + RLOG_META_FIXED_SIZE, conf_len) !=
        0) {
        return false;
    }
    m->seq = f[0];
    m->epoch = f[1];
    m->hs = (struct raft_hard_state){f[2], f[3], f[4]};
    m->snap.index = f[5];
    m->snap.term = f[6];
    m->snap.conf_index = f[7];
    return m->seq != 0 && m->epoch != 0;
}

/* Order: write the slot NOT holding the current meta -> fdatasync -> the new
 * meta is the commit point. A crash mid-write tears only that slot; the
 * other one still holds the previous meta, and open picks the valid slot
 * with the highest seq. */
int rlog__meta_write(struct rlog* l)
{
    uint8_t slot[RLOG_META_SLOT_SIZE];
    unsigned next = 1 - l->meta_slot;
    int rv = meta_encode(slot, l, l->seq + 1);
    if (rv != 0) {
        return rlog__fail(l, rv, "meta encode");
    }
    struct iovec iov = {slot, sizeof(slot)};
    rv = util_pwritev_all(l->meta_fd, &iov, 1, (uint64_t)next * sizeof(slot));
    if (rv != 0) {
        return rlog__fail(l, rv, "meta write");
    }
    if (fdatasync(l->meta_fd) != 0) {
        return rlog__fail(l, -errno, "meta fdatasync");
    }
    l->seq++;
    l->meta_slot = next;
    l->hs_dirty = false; /* meta holds the newest hard state now */
    return 0;
}

/* A brand-new log. Order: write meta.tmp (slot 0 valid, slot 1 zero) ->
 * fdatasync -> rename to meta -> fsync(dir): then meta exists, complete. */
int rlog__meta_create(struct rlog* l)
{
    uint8_t* buf = calloc(RLOG_META_SLOTS, RLOG_META_SLOT_SIZE);
    if (buf == NULL) {
        return -ENOMEM;
    }
    l->seq = 1;
    l->epoch = 1;
    l->meta_slot = 0;
    int rv = meta_encode(buf, l, l->seq);
    assert(rv == 0); /* an empty configuration always fits */
    int fd = openat(l->dirfd, "meta.tmp",
                    O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = -errno;
        goto err_after_alloc;
    }
    struct iovec iov = {buf, (size_t)RLOG_META_SLOTS * RLOG_META_SLOT_SIZE};
    rv = util_pwritev_all(fd, &iov, 1, 0);
    if (rv == 0 && fdatasync(fd) != 0) {
        rv = -errno;
    }
    if (rv == 0 && renameat(l->dirfd, "meta.tmp", l->dirfd, "meta") != 0) {
        rv = -errno;
    }
    if (rv == 0) {
        rv = rlog__sync_dir(l);
    }
    if (rv != 0) {
        goto err_after_open;
    }
    l->meta_fd = fd;
    free(buf);
    return 0;

err_after_open:
    close(fd);
err_after_alloc:
    free(buf);
    return rv;
}

int rlog__meta_load(struct rlog* l)
{
    uint8_t* buf = malloc((size_t)RLOG_META_SLOTS * RLOG_META_SLOT_SIZE);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int rv;
    int fd = openat(l->dirfd, "meta", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rv = -errno;
        goto err_after_alloc;
    }
    size_t got;
    rv = rlog__read_full(fd, buf, (size_t)RLOG_META_SLOTS * RLOG_META_SLOT_SIZE,
                         0, &got);
    if (rv != 0) {
        goto err_after_open;
    }
    struct meta_val best = {0}, m = {0};
    for (unsigned i = 0; i < RLOG_META_SLOTS; i++) {
        uint64_t at = (uint64_t)i * RLOG_META_SLOT_SIZE;
        /* clang-tidy false positive: m.seq is read only when meta_decode
         * returned true, after it set m. */
        // NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
        uint64_t avail = got > at ? got - at : 0;
        if (avail > RLOG_META_SLOT_SIZE) {
            avail = RLOG_META_SLOT_SIZE;
        }
        if (meta_decode(buf + at, avail, &m) && m.seq > best.seq) {
            best = m;
            l->meta_slot = i;
        }
    }
    if (best.seq == 0) {
        rlog__trace(l, RAFT_TRACE_ERROR,
                    "log %s/meta: no valid slot (%zu bytes)", l->dir, got);
        rv = -EUCLEAN;
        goto err_after_open;
    }
    l->seq = best.seq;
    l->epoch = best.epoch;
    l->hs = best.hs;
    l->snap = best.snap;
    l->meta_fd = fd;
    free(buf);
    return 0;

err_after_open:
    close(fd);
err_after_alloc:
    free(buf);
    return rv;
}
