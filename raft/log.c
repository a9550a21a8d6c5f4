/* log.c - the raft log on disk (contract: log.h, format: docs/format-log.md).
 *
 * Files in the directory:
 *   seg-<first index, 20 digits>  a RLOG_REC_SEGMENT record (first index,
 *                                 log epoch), then RLOG_REC_ENTRY and
 *                                 RLOG_REC_HARD_STATE records, appended.
 *   meta                          two fixed slots (RLOG_META_SLOT_SIZE),
 *                                 each one RLOG_REC_META record: seq, epoch,
 *                                 hard state, last snapshot meta.
 *
 * Hard state: in steady state it is a record in the segment stream, written
 * by rlog_sync next to the batch's entries so ONE fdatasync makes both
 * durable (group commit). Every hard state write, in the stream or in meta,
 * carries a sequence number; at open the valid one with the highest seq
 * wins. Meta is rewritten (alternate slot -> fdatasync) only by truncate,
 * compact and reset, BEFORE they cut or delete any record, so those never
 * drop the newest hard state.
 *
 * Epoch: rlog_reset bumps the epoch in meta; segments stamped with an older
 * epoch are leftovers of an interrupted reset and are deleted at open.
 *
 * Durability of each call (the order is written where it happens):
 *   rlog_append        write only; durable at the next rlog_sync.
 *   rlog_set_hard_state memory only; its record is written by rlog_sync.
 *   rlog_sync          hard state record -> ONE fdatasync (last segment).
 *   rlog_truncate      durable when it returns (meta, unlinks, ftruncate,
 *                      each synced): never lost behind later appends.
 *   rlog_compact       rlog_sync, then meta durable, then unlinks.
 *   rlog_reset         meta (epoch + 1) durable, then unlinks.
 *   segment roll       fdatasync old -> tmp + fdatasync -> rename ->
 *                      fsync(dir), once per segment_bytes_max.
 *
 * rlog_loaded: entries point into buffers owned by the rlog, released by
 * the next call of any rlog_* function except rlog_last_index.
 *
 * Threads: none. One caller thread at a time (the node's I/O thread).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/fileio.h"
#include "log_internal.h"

/* ---- writing ---- */

/* Preallocated space (seg_roll) is allocated but unwritten: the first
 * write into each part of it changes the file's extent map, and the
 * fdatasync that follows must then write that metadata too (a second,
 * dependent device write). So zeros are written ahead of the appends, up
 * to RLOG_ZERO_AHEAD past the end, a step at a time: most syncs then
 * overwrite written blocks and flush data only (measured on this
 * machine's disk: a 3 KB append + fdatasync took 345-369 us into
 * fallocated space, 146-148 us into zeroed space, medians of 3 s). The
 * zeros are what preallocated space reads as, so recovery does not tell
 * them apart (log_open.c seg_cut_tail). Best effort: a failed zero write
 * (a full disk when fallocate was not supported) stops it until the next
 * segment, and the records are written as before. */
static void zero_ahead(struct rlog* l, uint64_t end)
{
    static const uint8_t zeros[RLOG_ZERO_CHUNK];

    if (!l->preallocate || end <= l->zeroed) {
        return;
    }
    uint64_t target = (end / RLOG_ZERO_AHEAD + 2) * RLOG_ZERO_AHEAD;
    if (target > l->segment_bytes_max) {
        target = l->segment_bytes_max;
    }
    for (uint64_t at = end; at < target;) {
        size_t k =
            target - at < sizeof(zeros) ? (size_t)(target - at) : sizeof(zeros);
        struct iovec iov = {(void*)zeros, k};
        if (util_pwritev_all(l->fd, &iov, 1, at) != 0) {
            l->zeroed = UINT64_MAX;
            return;
        }
        at += k;
    }
    l->zeroed = target > end ? target : end;
}

static int flush_iov(struct rlog* l, struct iovec* iov, int n, uint64_t off)
{
    if (n == 0) {
        return 0;
    }
    uint64_t len = 0;
    for (int i = 0; i < n; i++) {
        len += iov[i].iov_len;
    }
    int rv = util_pwritev_all(l->fd, iov, n, off);
    if (rv != 0) {
        return rlog__fail(l, rv, "segment write");
    }
    zero_ahead(l, off + len);
    l->fd_dirty = true;
    return 0;
}

static bool must_roll(const struct rlog* l, uint64_t rec)
{
    const struct rlog_seg* s = l->n_segs == 0 ? NULL : &l->segs[l->n_segs - 1];
    if (l->fd < 0 || s == NULL || l->need_roll) {
        return true;
    }
    return s->last >= s->first && s->size + rec > l->segment_bytes_max;
}

int rlog_append(struct rlog* l, const struct raft_entry* e, unsigned n)
{
    assert(l != NULL);
    assert(e != NULL || n == 0);
    if (l->err != 0) {
        return l->err;
    }
    rlog__loaded_release(l);
    for (unsigned i = 0; i < n; i++) {
        assert(e[i].index == l->last_index + 1 + i);
        assert(e[i].type >= RAFT_ENTRY_NORMAL && e[i].type <= RAFT_ENTRY_CONF);
        if (e[i].data.len > RAFT_ENTRY_DATA_MAX) {
            return RAFT_ETOOBIG; /* refused before anything is written */
        }
    }
    uint8_t hdrs[RLOG_IOV_BATCH][RLOG_REC_HDR_SIZE];
    struct iovec iov[2 * RLOG_IOV_BATCH];
    int n_iov = 0;
    uint64_t batch_off = 0;
    int rv;
    for (unsigned i = 0; i < n; i++) {
        uint64_t rec = RLOG_REC_HDR_SIZE + e[i].data.len;
        if (must_roll(l, rec) || n_iov == 2 * RLOG_IOV_BATCH) {
            rv = flush_iov(l, iov, n_iov, batch_off);
            n_iov = 0;
            if (rv == 0 && must_roll(l, rec)) {
                rv = rlog__seg_roll(l, e[i].index);
            }
            if (rv != 0) {
                return rv;
            }
        }
        struct rlog_seg* s = rlog__seg_last(l);
        if (n_iov == 0) {
            batch_off = s->size;
        }
        struct rlog_rec_hdr h = {.type = RLOG_REC_ENTRY,
                                 .entry_type = e[i].type,
                                 .len = (uint32_t)e[i].data.len,
                                 .index = e[i].index,
                                 .term = e[i].term};
        uint8_t* hdr = hdrs[n_iov / 2];
        rlog__hdr_encode(hdr, &h, e[i].data.base);
        iov[n_iov++] = (struct iovec){hdr, RLOG_REC_HDR_SIZE};
        iov[n_iov++] = (struct iovec){(void*)e[i].data.base, e[i].data.len};
        if (rlog__seg_add_off(s, s->size) != 0) {
            return rlog__fail(l, -ENOMEM, "append");
        }
        s->size += rec;
        l->last_index = e[i].index;
    }
    return flush_iov(l, iov, n_iov, batch_off);
}

int rlog_set_hard_state(struct rlog* l, const struct raft_hard_state* hs)
{
    assert(l != NULL && hs != NULL);
    if (l->err != 0) {
        return l->err;
    }
    rlog__loaded_release(l);
    assert(hs->term >= l->hs.term);
    l->hs = *hs;
    l->hs_dirty = true;
    return 0;
}

/* Order (group commit): the batch's entry records were written by
 * rlog_append -> the hard state record is written after them -> ONE
 * fdatasync of the last segment -> the batch and the hard state are durable
 * together (the commit point). A crash before that leaves a torn tail that
 * open truncates. */
int rlog_sync(struct rlog* l)
{
    assert(l != NULL);
    if (l->err != 0) {
        return l->err;
    }
    rlog__loaded_release(l);
    int rv;
    if (l->hs_dirty) {
        if (l->fd < 0 || l->need_roll) {
            rv = rlog__seg_roll(l, l->last_index + 1);
            if (rv != 0) {
                return rv;
            }
        }
        struct rlog_seg* s = rlog__seg_last(l);
        uint8_t hdr[RLOG_REC_HDR_SIZE], data[RLOG_HS_DATA_SIZE];
        rlog__hs_encode(data, &l->hs, l->seq + 1);
        struct rlog_rec_hdr h = {.type = RLOG_REC_HARD_STATE,
                                 .len = RLOG_HS_DATA_SIZE,
                                 .index = l->hs.commit,
                                 .term = l->hs.term};
        rlog__hdr_encode(hdr, &h, data);
        struct iovec iov[2] = {{hdr, sizeof(hdr)}, {data, sizeof(data)}};
        rv = flush_iov(l, iov, 2, s->size);
        if (rv != 0) {
            return rv;
        }
        s->size += sizeof(hdr) + sizeof(data);
        l->seq++;
        l->hs_dirty = false;
    }
    if (l->fd_dirty) {
        if (fdatasync(l->fd) != 0) {
            return rlog__fail(l, -errno, "segment fdatasync");
        }
        l->fd_dirty = false;
    }
    return 0;
}

/* Order: 1. meta (hard state + snapshot meta) -> fdatasync, so cutting
 * records never loses the newest hard state; 2. unlink the segments after
 * the one holding `from`, last first, fsync(dir) after each, so a crash
 * leaves a contiguous prefix; 3. ftruncate the segment holding `from` ->
 * fdatasync. The truncation is durable when this returns, before any later
 * append is written (no stale suffix can reappear behind new entries). */
int rlog_truncate(struct rlog* l, raft_index from)
{
    assert(l != NULL);
    if (l->err != 0) {
        return l->err;
    }
    rlog__loaded_release(l);
    assert(from > l->snap.index);
    if (from > l->last_index) {
        return 0;
    }
    int rv = rlog__meta_write(l);
    if (rv != 0) {
        return rv;
    }
    while (l->n_segs > 0 && rlog__seg_last(l)->first > from) {
        if (l->fd >= 0) {
            close(l->fd);
            l->fd = -1;
            l->fd_dirty = false;
        }
        rv = rlog__seg_unlink(l, rlog__seg_last(l)->first);
        if (rv == 0) {
            rv = rlog__sync_dir(l);
        }
        if (rv != 0) {
            return rlog__fail(l, rv, "truncate unlink");
        }
        rlog__seg_free(rlog__seg_last(l));
        l->n_segs--;
    }
    struct rlog_seg* s = rlog__seg_last(l);
    assert(s != NULL && s->first <= from && from <= s->last);
    if (l->fd < 0) {
        char name[RLOG_NAME_MAX];
        rlog__seg_name(name, s->first);
        l->fd = openat(l->dirfd, name, O_RDWR | O_CLOEXEC);
        if (l->fd < 0) {
            return rlog__fail(l, -errno, "truncate open");
        }
    }
    uint64_t off = s->offs[from - s->first];
    if (ftruncate(l->fd, (off_t)off) != 0) {
        return rlog__fail(l, -errno, "ftruncate");
    }
    l->zeroed = 0; /* the blocks past off are gone */
    if (fdatasync(l->fd) != 0) {
        return rlog__fail(l, -errno, "truncate fdatasync");
    }
    l->fd_dirty = false;
    s->size = off;
    s->last = from - 1;
    l->last_index = from - 1;
    l->need_roll = false;
    return 0;
}

static int check_conf(const struct raft_snapshot_meta* snap)
{
    uint8_t buf[RLOG_META_CONF_MAX];
    struct raft_conf c;
    int n = raft_conf_encode(&snap->conf, buf, sizeof(buf));
    /* Check before write: what meta stores must decode at the next open. */
    if (n < 0 || raft_conf_decode(&c, buf, (size_t)n) != 0) {
        return -EINVAL;
    }
    return 0;
}

/* Order: 1. meta with the new snapshot -> fdatasync (the commit point);
 * 2. unlink the segments whose entries are all < keep_from (never the last
 * one, which takes appends) -> fsync(dir). A crash in between leaves old
 * segments wholly <= snap.index, which open ignores and deletes. */
int rlog_compact(struct rlog* l,
                 const struct raft_snapshot_meta* snap,
                 raft_index keep_from)
{
    assert(l != NULL && snap != NULL);
    if (l->err != 0) {
        return l->err;
    }
    rlog__loaded_release(l);
    if (keep_from == 0) {
        keep_from = snap->index + 1;
    }
    assert(keep_from <= snap->index + 1);
    assert(snap->index >= l->snap.index);
    if (check_conf(snap) != 0) {
        return -EINVAL;
    }
    int rv = rlog_sync(l);
    if (rv != 0) {
        return rv;
    }
    l->snap = *snap;
    rv = rlog__meta_write(l);
    if (rv != 0) {
        return rv;
    }
    unsigned drop = 0;
    while (drop + 1 < l->n_segs && l->segs[drop].last < keep_from) {
        rv = rlog__seg_unlink(l, l->segs[drop].first);
        if (rv != 0) {
            return rlog__fail(l, rv, "compact unlink");
        }
        rlog__seg_free(&l->segs[drop]);
        drop++;
    }
    if (drop > 0) {
        memmove(l->segs, l->segs + drop, (l->n_segs - drop) * sizeof(*l->segs));
        l->n_segs -= drop;
        rv = rlog__sync_dir(l);
        if (rv != 0) {
            return rlog__fail(l, rv, "compact fsync(dir)");
        }
    }
    if (snap->index > l->last_index) {
        /* The snapshot is ahead of the log: continue after it. */
        l->last_index = snap->index;
        l->need_roll = true;
    }
    return 0;
}

/* Order: 1. meta with the new snapshot and epoch + 1 -> fdatasync (the
 * commit point: every existing segment is now stale); 2. unlink every
 * segment -> fsync(dir). A crash in between leaves stale-epoch segments,
 * which open deletes. */
int rlog_reset(struct rlog* l, const struct raft_snapshot_meta* snap)
{
    assert(l != NULL && snap != NULL);
    if (l->err != 0) {
        return l->err;
    }
    rlog__loaded_release(l);
    if (check_conf(snap) != 0) {
        return -EINVAL;
    }
    l->snap = *snap;
    l->epoch++;
    int rv = rlog__meta_write(l);
    if (rv != 0) {
        return rv;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
        l->fd_dirty = false;
    }
    for (unsigned i = 0; i < l->n_segs; i++) {
        rv = rlog__seg_unlink(l, l->segs[i].first);
        if (rv != 0) {
            return rlog__fail(l, rv, "reset unlink");
        }
        rlog__seg_free(&l->segs[i]);
    }
    l->n_segs = 0;
    rv = rlog__sync_dir(l);
    if (rv != 0) {
        return rlog__fail(l, rv, "reset fsync(dir)");
    }
    l->last_index = snap->index;
    l->need_roll = false;
    return 0;
}

raft_index rlog_last_index(const struct rlog* l)
{
    assert(l != NULL);
    return l->last_index;
}

void rlog_close(struct rlog* l)
{
    if (l == NULL) {
        return;
    }
    rlog__loaded_release(l);
    for (unsigned i = 0; i < l->n_segs; i++) {
        rlog__seg_free(&l->segs[i]);
    }
    free(l->segs);
    if (l->fd >= 0) {
        close(l->fd);
    }
    if (l->meta_fd >= 0) {
        close(l->meta_fd);
    }
    if (l->dirfd >= 0) {
        close(l->dirfd);
    }
    free(l);
}
