/* dbfile.c - the db file: sealing and writing frames
 * (byte format: docs/format-db.md). Records are dbfile_record.c, frames
 * dbfile_frame.c, recovery dbfile_recover.c; they share store_internal.h.
 *
 * Write order (the commit protocol of the db file):
 *   store_apply queues records in memory
 *   -> store_frame_seal compresses them into a frame and assigns its offset
 *   -> store_frame_write: pwrite the frame -> fdatasync
 *   -> store_frame_done: durable_index advances (the commit point)
 *   -> the node may compact the raft log up to store_durable_index().
 * Torn tail rule: frames are validated in order; the first frame that is
 * short, has a bad magic/version/length, fails its checksum or does not
 * decompress ends the valid prefix. If no valid frame follows it, it is a
 * torn tail and is truncated; if one does, the file is corrupt (-EUCLEAN).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

/* ---- seal / write / done ---- */

store_index store_frame_applied_index(const struct store_frame* f)
{
    assert(f != NULL);
    return f->applied_index;
}

int store_frame_seal(struct store* st, struct store_frame** out)
{
    assert(st != NULL && out != NULL);
    *out = NULL;
    if (st->io_err != 0 || st->tail_pending) {
        return -EIO;
    }
    if (st->pend.records == 0 && st->s.applied_index == st->sealed_index) {
        return 0;
    }
    if (st->ninflight == st->inflight_cap) {
        size_t cap = st->inflight_cap == 0 ? 8 : 2 * st->inflight_cap;
        struct inflight* n = realloc(st->inflight, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        st->inflight = n;
        st->inflight_cap = cap;
    }
    struct store_frame* f;
    int rv = store__frame_build(
        st->pend.buf, st->pend.len, st->pend.records, 0, st->sealed_rev + 1,
        st->s.revision, st->s.applied_index, st->s.next_ino, st->next_off, &f);
    if (rv != 0) {
        return rv;
    }
    f->last_rev = st->s.revision;
    /* The raw records stay readable (views, store_read_at) until done. */
    st->inflight[st->ninflight++] = (struct inflight){
        .off = st->next_off,
        .raw = st->pend.buf,
        .len = st->pend.len,
        .last_rev = st->s.revision,
    };
    st->payload_raw += st->pend.len;
    st->payload_stored += f->len;
    st->next_off += f->len;
    st->sealed_index = st->s.applied_index;
    st->sealed_rev = st->s.revision;
    st->frames++;
    st->pend.buf = NULL;
    st->pend.len = 0;
    st->pend.cap = 0;
    st->pend.records = 0;
    *out = f;
    return 0;
}

/* Forget the raw copy of the oldest in-flight frame (it is at off). */
static void inflight_pop(struct store* st, uint64_t off)
{
    assert(st->ninflight > 0 && st->inflight[0].off == off);
    free(st->inflight[0].raw);
    memmove(&st->inflight[0], &st->inflight[1],
            (st->ninflight - 1) * sizeof(st->inflight[0]));
    st->ninflight--;
}

int store_frame_write(struct store* st, struct store_frame* f)
{
    assert(st != NULL && f != NULL && f->len >= FRAME_HEADER_LEN);
    assert(store__frame_verify(f)); /* check before write; recovery and
                                       the cache check after read */
    /* Order: pwrite the frame -> fdatasync -> (loop) store_frame_done
     * advances durable_index -> the node may compact its raft log. */
    int rv = atomic_load(&st->write_err);
    if (rv != 0) {
        return rv; /* an earlier frame failed: keep the file a prefix */
    }
    rv = util_pwrite_all(st->fd, f->bytes, f->len, f->off);
    if (rv == 0 && fdatasync(st->fd) != 0) {
        rv = -errno; /* never retried: the store stops applying */
    }
    if (rv != 0) {
        atomic_store(&st->write_err, rv);
    }
    return rv;
}

void store_frame_done(struct store* st, struct store_frame* f, int err)
{
    assert(st != NULL && f != NULL);
    if (st->ninflight > 0 && st->inflight[0].off == f->off) {
        inflight_pop(st, f->off);
    }
    if (err != 0) {
        if (st->io_err == 0) {
            store__trace(st, STORE_TRACE_ERROR,
                         "db %s: frame write at %" PRIu64
                         " failed (%d): "
                         "store stops applying",
                         st->path, f->off, err);
        }
        st->io_err = err;
    } else if (st->io_err == 0) {
        assert(f->off == st->durable_off); /* frames complete in order */
        assert(f->applied_index >= st->durable_index);
        st->durable_off = f->off + f->len;
        st->durable_index = f->applied_index;
        st->durable_rev = f->last_rev;
    }
    free(f);
}
