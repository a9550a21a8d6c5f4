/* dbfile.c - the db file: records, frames, recovery, sealing and writing
 * (byte format: docs/format-db.md).
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
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>
#include <xxhash.h>

#include "store_internal.h"

enum { SCAN_CHUNK = 1 << 20 };

/* ---- records ---- */

size_t store__rec_put_size(const struct store_rec* r)
{
    return REC_PUT_FIXED + (size_t)r->name_len + r->content_len;
}

void store__rec_put_encode(const struct store_rec* r, uint8_t* p)
{
    p[0] = REC_PUT;
    p[1] = r->type;
    put_le16(p + 2, r->name_len);
    put_le32(p + 4, r->mode);
    put_le32(p + 8, r->uid);
    put_le32(p + 12, r->gid);
    put_le64(p + 16, r->ino);
    put_le64(p + 24, r->parent);
    put_le64(p + 32, r->create_rev);
    put_le64(p + 40, r->mod_rev);
    put_le64(p + 48, r->version);
    put_le64(p + 56, (uint64_t)r->atime_ns);
    put_le64(p + 64, (uint64_t)r->mtime_ns);
    put_le64(p + 72, (uint64_t)r->ctime_ns);
    put_le64(p + 80, r->prev_frame);
    put_le32(p + 88, r->prev_rec);
    put_le32(p + 92, r->content_len);
    memcpy(p + REC_PUT_FIXED, r->name, r->name_len);
    if (r->content_len > 0) {
        memcpy(p + REC_PUT_FIXED + r->name_len, r->content, r->content_len);
    }
}

void store__rec_del_encode(uint64_t ino,
                           uint64_t rev,
                           uint64_t prev_frame,
                           uint32_t prev_rec,
                           uint8_t* p)
{
    p[0] = REC_DEL;
    put_le64(p + 1, ino);
    put_le64(p + 9, rev);
    put_le64(p + 17, prev_frame);
    put_le32(p + 25, prev_rec);
}

void store__rec_dedup_encode(uint64_t origin, uint64_t seq, uint8_t* p)
{
    p[0] = REC_DEDUP;
    put_le64(p + 1, origin);
    put_le64(p + 9, seq);
}

void store__rec_snap_encode(const char* name,
                            uint16_t len,
                            uint64_t rev,
                            int64_t ctime_ns,
                            uint8_t* p)
{
    p[0] = REC_SNAP;
    p[1] = 0;
    put_le16(p + 2, len);
    put_le64(p + 4, rev);
    put_le64(p + 12, (uint64_t)ctime_ns);
    memcpy(p + REC_SNAP_FIXED, name, len);
}

void store__rec_snapdrop_encode(const char* name, uint16_t len, uint8_t* p)
{
    p[0] = REC_SNAPDROP;
    p[1] = 0;
    put_le16(p + 2, len);
    memcpy(p + REC_SNAPDROP_FIXED, name, len);
}

void store__rec_compact_encode(uint64_t rev, uint8_t* p)
{
    p[0] = REC_COMPACT;
    put_le64(p + 1, rev);
}

size_t store__meta_size(const struct store_state* s, uint32_t* records)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nsnaps; i++) {
        n += REC_SNAP_FIXED + strlen(s->snaps[i].name);
    }
    *records = (uint32_t)s->nsnaps;
    if (s->compact_rev != 0) {
        n += REC_COMPACT_FIXED;
        (*records)++;
    }
    return n;
}

void store__meta_encode(const struct store_state* s, uint8_t* p)
{
    for (size_t i = 0; i < s->nsnaps; i++) {
        const struct store_snap* sn = &s->snaps[i];
        uint16_t len = (uint16_t)strlen(sn->name);
        store__rec_snap_encode(sn->name, len, sn->revision, sn->ctime_ns, p);
        p += REC_SNAP_FIXED + len;
    }
    if (s->compact_rev != 0) {
        store__rec_compact_encode(s->compact_rev, p);
    }
}

static long decode_snap(const uint8_t* p, size_t len, struct store_anyrec* r)
{
    size_t fixed = r->tag == REC_SNAP ? REC_SNAP_FIXED : REC_SNAPDROP_FIXED;
    if (len < fixed || p[1] != 0) {
        return -EBADMSG;
    }
    r->sname_len = get_le16(p + 2);
    if (r->sname_len == 0 || r->sname_len > STORE_SNAP_NAME_MAX ||
        fixed + r->sname_len > len) {
        return -EBADMSG;
    }
    if (r->tag == REC_SNAP) {
        r->rev = get_le64(p + 4);
        r->sctime_ns = (int64_t)get_le64(p + 12);
    }
    r->sname = (const char*)p + fixed;
    if (memchr(r->sname, 0, r->sname_len) != NULL ||
        memchr(r->sname, '/', r->sname_len) != NULL) {
        return -EBADMSG;
    }
    return (long)(fixed + r->sname_len);
}

static long decode_put(const uint8_t* p, size_t len, struct store_rec* r)
{
    if (len < REC_PUT_FIXED) {
        return -EBADMSG;
    }
    r->type = p[1];
    r->name_len = get_le16(p + 2);
    r->mode = get_le32(p + 4);
    r->uid = get_le32(p + 8);
    r->gid = get_le32(p + 12);
    r->ino = get_le64(p + 16);
    r->parent = get_le64(p + 24);
    r->create_rev = get_le64(p + 32);
    r->mod_rev = get_le64(p + 40);
    r->version = get_le64(p + 48);
    r->atime_ns = (int64_t)get_le64(p + 56);
    r->mtime_ns = (int64_t)get_le64(p + 64);
    r->ctime_ns = (int64_t)get_le64(p + 72);
    r->prev_frame = get_le64(p + 80);
    r->prev_rec = get_le32(p + 88);
    r->content_len = get_le32(p + 92);
    if (r->content_len > STORE_FILE_SIZE_LIMIT ||
        (uint64_t)REC_PUT_FIXED + r->name_len + r->content_len > len) {
        return -EBADMSG;
    }
    r->name = (const char*)p + REC_PUT_FIXED;
    r->content = p + REC_PUT_FIXED + r->name_len;
    return (long)REC_PUT_FIXED + r->name_len + (long)r->content_len;
}

long store__rec_decode(const uint8_t* p, size_t len, struct store_anyrec* r)
{
    memset(r, 0, sizeof(*r));
    if (len < 1) {
        return -EBADMSG;
    }
    r->tag = p[0];
    switch (r->tag) {
    case REC_PUT:
        return decode_put(p, len, &r->put);
    case REC_DEL:
        if (len < REC_DEL_FIXED) {
            return -EBADMSG;
        }
        r->ino = get_le64(p + 1);
        r->rev = get_le64(p + 9);
        r->prev_frame = get_le64(p + 17);
        r->prev_rec = get_le32(p + 25);
        return REC_DEL_FIXED;
    case REC_DEDUP:
        if (len < REC_DEDUP_FIXED) {
            return -EBADMSG;
        }
        r->origin = get_le64(p + 1);
        r->seq = get_le64(p + 9);
        return REC_DEDUP_FIXED;
    case REC_SNAP:
    case REC_SNAPDROP:
        return decode_snap(p, len, r);
    case REC_COMPACT:
        if (len < REC_COMPACT_FIXED) {
            return -EBADMSG;
        }
        r->rev = get_le64(p + 1);
        return REC_COMPACT_FIXED;
    default:
        return -EBADMSG;
    }
}

int store__rec_apply(struct store_state* s,
                     const struct store_anyrec* r,
                     uint64_t loc_frame,
                     uint32_t loc_rec,
                     char* msg,
                     size_t cap)
{
    switch (r->tag) {
    case REC_PUT:
        return store__state_put(s, &r->put, loc_frame, loc_rec, msg, cap);
    case REC_DEL:
        return store__state_del(s, r->ino, msg, cap);
    case REC_DEDUP:
        return store__dedup_mark(s, r->origin, r->seq);
    case REC_SNAP: {
        int rv =
            store__snap_add(s, r->sname, r->sname_len, r->rev, r->sctime_ns);
        if (rv == -EEXIST || rv == -ENOSPC) {
            snprintf(msg, cap, "snapshot record: duplicate or too many");
            return -EUCLEAN;
        }
        return rv;
    }
    case REC_SNAPDROP:
        if (store__snap_del(s, r->sname, r->sname_len) != 0) {
            snprintf(msg, cap, "drop of an unknown snapshot");
            return -EUCLEAN;
        }
        return 0;
    case REC_COMPACT:
        if (r->rev < s->compact_rev) {
            snprintf(msg, cap, "compact revision %" PRIu64 " below %" PRIu64,
                     r->rev, s->compact_rev);
            return -EUCLEAN;
        }
        s->compact_rev = r->rev;
        return 0;
    default:
        assert(false);
        return -EUCLEAN;
    }
}

/* ---- pending records (apply) ---- */

static int pend_reserve(struct pending* p, size_t n)
{
    assert(p->len + n <= STORE_FRAME_RAW_MAX); /* node seals often enough */
    if (p->len + n <= p->cap) {
        return 0;
    }
    size_t cap = p->cap == 0 ? 4096 : p->cap;
    while (cap < p->len + n) {
        cap *= 2;
    }
    uint8_t* b = realloc(p->buf, cap);
    if (b == NULL) {
        return -ENOMEM;
    }
    p->buf = b;
    p->cap = cap;
    return 0;
}

int store__pend_put(struct store* st,
                    const struct store_rec* r,
                    uint32_t* rec_off)
{
    size_t n = store__rec_put_size(r);
    int rv = pend_reserve(&st->pend, n);
    if (rv != 0) {
        return rv;
    }
    *rec_off = (uint32_t)st->pend.len;
    store__rec_put_encode(r, st->pend.buf + st->pend.len);
    st->pend.len += n;
    st->pend.records++;
    return 0;
}

int store__pend_del(struct store* st,
                    uint64_t ino,
                    uint64_t rev,
                    uint64_t prev_frame,
                    uint32_t prev_rec)
{
    int rv = pend_reserve(&st->pend, REC_DEL_FIXED);
    if (rv != 0) {
        return rv;
    }
    store__rec_del_encode(ino, rev, prev_frame, prev_rec,
                          st->pend.buf + st->pend.len);
    st->pend.len += REC_DEL_FIXED;
    st->pend.records++;
    return 0;
}

int store__pend_dedup(struct store* st, uint64_t origin, uint64_t seq)
{
    int rv = pend_reserve(&st->pend, REC_DEDUP_FIXED);
    if (rv != 0) {
        return rv;
    }
    store__rec_dedup_encode(origin, seq, st->pend.buf + st->pend.len);
    st->pend.len += REC_DEDUP_FIXED;
    st->pend.records++;
    return 0;
}

int store__pend_snap(struct store* st,
                     const char* name,
                     uint16_t len,
                     uint64_t rev,
                     int64_t ctime_ns)
{
    int rv = pend_reserve(&st->pend, REC_SNAP_FIXED + (size_t)len);
    if (rv != 0) {
        return rv;
    }
    store__rec_snap_encode(name, len, rev, ctime_ns,
                           st->pend.buf + st->pend.len);
    st->pend.len += REC_SNAP_FIXED + (size_t)len;
    st->pend.records++;
    return 0;
}

int store__pend_snapdrop(struct store* st, const char* name, uint16_t len)
{
    int rv = pend_reserve(&st->pend, REC_SNAPDROP_FIXED + (size_t)len);
    if (rv != 0) {
        return rv;
    }
    store__rec_snapdrop_encode(name, len, st->pend.buf + st->pend.len);
    st->pend.len += REC_SNAPDROP_FIXED + (size_t)len;
    st->pend.records++;
    return 0;
}

int store__pend_compact(struct store* st, uint64_t rev)
{
    int rv = pend_reserve(&st->pend, REC_COMPACT_FIXED);
    if (rv != 0) {
        return rv;
    }
    store__rec_compact_encode(rev, st->pend.buf + st->pend.len);
    st->pend.len += REC_COMPACT_FIXED;
    st->pend.records++;
    return 0;
}

/* ---- frames ---- */

static void header_encode(const struct frame_header* h, uint8_t* p)
{
    put_le32(p, h->magic);
    put_le16(p + 4, h->version);
    put_le16(p + 6, h->header_len);
    put_le32(p + 8, h->flags);
    put_le32(p + 12, h->record_count);
    put_le32(p + 16, h->raw_len);
    put_le32(p + 20, h->comp_len);
    put_le64(p + 24, h->first_rev);
    put_le64(p + 32, h->last_rev);
    put_le64(p + 40, h->applied_index);
    put_le64(p + 48, h->next_ino);
    put_le64(p + 56, h->checksum);
}

static void header_decode(const uint8_t* p, struct frame_header* h)
{
    h->magic = get_le32(p);
    h->version = get_le16(p + 4);
    h->header_len = get_le16(p + 6);
    h->flags = get_le32(p + 8);
    h->record_count = get_le32(p + 12);
    h->raw_len = get_le32(p + 16);
    h->comp_len = get_le32(p + 20);
    h->first_rev = get_le64(p + 24);
    h->last_rev = get_le64(p + 32);
    h->applied_index = get_le64(p + 40);
    h->next_ino = get_le64(p + 48);
    h->checksum = get_le64(p + 56);
}

/* XXH3 over the header without its checksum, chained into the payload. */
static uint64_t frame_checksum(const uint8_t* hdr,
                               const uint8_t* payload,
                               size_t len)
{
    uint64_t seed = XXH3_64bits(hdr, offsetof(struct frame_header, checksum));
    return XXH3_64bits_withSeed(payload, len, seed);
}

bool store__frame_verify(const struct store_frame* f)
{
    struct frame_header h;
    if (f->len < FRAME_HEADER_LEN) {
        return false;
    }
    header_decode(f->bytes, &h);
    return h.magic == FRAME_MAGIC && h.version == FRAME_VERSION &&
           h.header_len == FRAME_HEADER_LEN &&
           f->len == FRAME_HEADER_LEN + (size_t)h.comp_len &&
           h.applied_index == f->applied_index &&
           frame_checksum(f->bytes, f->bytes + FRAME_HEADER_LEN, h.comp_len) ==
               h.checksum;
}

int store__frame_build(const uint8_t* raw,
                       size_t raw_len,
                       uint32_t records,
                       uint32_t flags,
                       uint64_t first_rev,
                       uint64_t last_rev,
                       store_index applied,
                       uint64_t next_ino,
                       uint64_t off,
                       struct store_frame** out)
{
    assert(raw_len <= STORE_FRAME_RAW_MAX && (raw != NULL || raw_len == 0));
    int bound = LZ4_compressBound((int)raw_len);
    struct store_frame* f =
        malloc(sizeof(*f) + FRAME_HEADER_LEN + (size_t)bound);
    if (f == NULL) {
        return -ENOMEM;
    }
    uint8_t* payload = f->bytes + FRAME_HEADER_LEN;
    int comp = 0;
    if (raw_len > 0) {
        comp = LZ4_compress_default((const char*)raw, (char*)payload,
                                    (int)raw_len, bound);
        assert(comp > 0);
    }
    struct frame_header h = {
        .magic = FRAME_MAGIC,
        .version = FRAME_VERSION,
        .header_len = FRAME_HEADER_LEN,
        .flags = flags,
        .record_count = records,
        .raw_len = (uint32_t)raw_len,
        .comp_len = (uint32_t)comp,
        .first_rev = first_rev,
        .last_rev = last_rev,
        .applied_index = applied,
        .next_ino = next_ino,
    };
    header_encode(&h, f->bytes);
    h.checksum = frame_checksum(f->bytes, payload, (size_t)comp);
    put_le64(f->bytes + 56, h.checksum);
    f->off = off;
    f->len = FRAME_HEADER_LEN + (size_t)comp;
    f->applied_index = applied;
    *out = f;
    return 0;
}

static int pread_all(int fd, void* buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n =
            pread(fd, (uint8_t*)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -EIO; /* the caller checked the file size */
        }
        done += (size_t)n;
    }
    return 0;
}

int store__frame_read(int fd,
                      uint64_t off,
                      uint64_t file_size,
                      struct frame_header* h,
                      uint8_t** raw,
                      char* reason,
                      size_t cap)
{
    uint8_t hb[FRAME_HEADER_LEN];
    assert(off <= file_size);
    if (file_size - off < FRAME_HEADER_LEN) {
        snprintf(reason, cap, "short header (%" PRIu64 " of %d bytes)",
                 file_size - off, FRAME_HEADER_LEN);
        return -EBADMSG;
    }
    int rv = pread_all(fd, hb, sizeof(hb), off);
    if (rv != 0) {
        return rv;
    }
    header_decode(hb, h);
    if (h->magic != FRAME_MAGIC) {
        snprintf(reason, cap, "bad magic");
        return -EBADMSG;
    }
    if (h->version != FRAME_VERSION || h->header_len != FRAME_HEADER_LEN) {
        snprintf(reason, cap, "bad version/header length");
        return -EBADMSG;
    }
    if (h->raw_len > STORE_FRAME_RAW_MAX ||
        h->comp_len > (uint32_t)LZ4_compressBound((int)h->raw_len) ||
        (h->raw_len > 0) != (h->comp_len > 0)) {
        snprintf(reason, cap, "bad length");
        return -EBADMSG;
    }
    uint64_t have = file_size - off - FRAME_HEADER_LEN;
    if (have < h->comp_len) {
        snprintf(reason, cap,
                 "short payload (%" PRIu64 " of %" PRIu32 " bytes)", have,
                 h->comp_len);
        return -EBADMSG;
    }
    uint8_t* comp = malloc(h->comp_len + 1); /* <= bytes in the file */
    uint8_t* out = NULL;
    if (comp == NULL) {
        return -ENOMEM;
    }
    rv = pread_all(fd, comp, h->comp_len, off + FRAME_HEADER_LEN);
    if (rv != 0) {
        goto err_after_alloc;
    }
    if (frame_checksum(hb, comp, h->comp_len) != h->checksum) {
        snprintf(reason, cap, "bad checksum");
        rv = -EBADMSG;
        goto err_after_alloc;
    }
    out = malloc(h->raw_len + 1); /* trusted now: checksummed */
    if (out == NULL) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    if (h->raw_len > 0 &&
        LZ4_decompress_safe((const char*)comp, (char*)out, (int)h->comp_len,
                            (int)h->raw_len) != (int)h->raw_len) {
        snprintf(reason, cap, "decompress error");
        rv = -EBADMSG;
        goto err_after_alloc;
    }
    free(comp);
    *raw = out;
    return 0;

err_after_alloc:
    free(comp);
    free(out);
    return rv;
}

/* ---- recovery ---- */

/* Messages may be cut to the caller's buffer (vsnprintf: no truncation
 * warning on purpose). */
static void say(char* dst, size_t cap, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char* dst, size_t cap, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

struct scan {
    uint64_t frameno;
    bool base_prefix; /* every frame so far was a BASE frame */
    char msg[160];
};

static int replay_check(struct store* st,
                        struct scan* sc,
                        const struct frame_header* h)
{
    struct store_state* s = &st->s;
    bool base = (h->flags & FRAME_F_BASE) != 0;
    if ((h->flags & ~FRAME_F_BASE) != 0 || (base && !sc->base_prefix)) {
        snprintf(sc->msg, sizeof(sc->msg), "unexpected flags 0x%" PRIx32,
                 h->flags);
        return -EUCLEAN;
    }
    if (!base &&
        (h->first_rev != s->revision + 1 || h->last_rev + 1 < h->first_rev ||
         h->applied_index < s->applied_index || h->next_ino < s->next_ino)) {
        snprintf(sc->msg, sizeof(sc->msg),
                 "discontinuous: revisions %" PRIu64 "..%" PRIu64
                 " after %" PRIu64 ", applied %" PRIu64 " after %" PRIu64,
                 h->first_rev, h->last_rev, s->revision, h->applied_index,
                 s->applied_index);
        return -EUCLEAN;
    }
    return 0;
}

static bool rec_rev_ok(const struct frame_header* h,
                       const struct store_anyrec* r)
{
    uint64_t lo = (h->flags & FRAME_F_BASE) ? 0 : h->first_rev;
    if (r->tag == REC_PUT) {
        return r->put.mod_rev >= lo && r->put.mod_rev <= h->last_rev;
    }
    if (r->tag == REC_DEL) {
        return r->rev >= lo && r->rev <= h->last_rev;
    }
    if (r->tag == REC_SNAP || r->tag == REC_COMPACT) {
        return r->rev <= h->last_rev; /* names a revision already made */
    }
    return true;
}

static int replay_frame(struct store* st,
                        struct scan* sc,
                        const struct frame_header* h,
                        const uint8_t* raw,
                        uint64_t off)
{
    struct store_state* s = &st->s;
    int rv = replay_check(st, sc, h);
    if (rv != 0) {
        return rv;
    }
    if ((h->flags & FRAME_F_BASE) == 0) {
        sc->base_prefix = false;
    } else {
        st->base_rev = h->last_rev;
    }
    s->next_ino = h->next_ino;
    size_t pos = 0;
    uint32_t n = 0;
    while (pos < h->raw_len) {
        struct store_anyrec r;
        long len = store__rec_decode(raw + pos, h->raw_len - pos, &r);
        if (len < 0 || n == h->record_count || !rec_rev_ok(h, &r)) {
            snprintf(sc->msg, sizeof(sc->msg),
                     "malformed record %" PRIu32 " at payload offset %zu", n,
                     pos);
            return -EUCLEAN;
        }
        rv = store__rec_apply(s, &r, off, (uint32_t)pos, sc->msg,
                              sizeof(sc->msg));
        if (rv != 0) {
            return rv;
        }
        pos += (size_t)len;
        n++;
    }
    if (n != h->record_count) {
        snprintf(sc->msg, sizeof(sc->msg),
                 "record count %" PRIu32 " != %" PRIu32, n, h->record_count);
        return -EUCLEAN;
    }
    s->revision = h->last_rev;
    s->applied_index = h->applied_index;
    return 0;
}

/* Is there a valid frame anywhere in (off, size)? *found = its offset. */
static int find_valid_after(int fd,
                            uint64_t off,
                            uint64_t size,
                            uint64_t* found)
{
    uint8_t* chunk = malloc(SCAN_CHUNK);
    if (chunk == NULL) {
        return -ENOMEM;
    }
    const uint8_t magic[4] = {'Q', 'F', 'D', 'B'};
    uint64_t pos = off + 1;
    int rv = 0;
    *found = UINT64_MAX;
    while (pos + sizeof(magic) <= size && *found == UINT64_MAX) {
        size_t n = (size_t)(size - pos < SCAN_CHUNK ? size - pos : SCAN_CHUNK);
        rv = pread_all(fd, chunk, n, pos);
        if (rv != 0) {
            break;
        }
        for (size_t i = 0; i + sizeof(magic) <= n; i++) {
            if (memcmp(chunk + i, magic, sizeof(magic)) != 0) {
                continue;
            }
            struct frame_header h;
            uint8_t* raw = NULL;
            char why[64];
            if (store__frame_read(fd, pos + i, size, &h, &raw, why,
                                  sizeof(why)) == 0) {
                free(raw);
                *found = pos + i;
                break;
            }
        }
        pos += n - (sizeof(magic) - 1); /* overlap a split magic */
        if (n < SCAN_CHUNK) {
            break;
        }
    }
    free(chunk);
    return rv;
}

/* Best effort: the highest revision and raft index named by a frame header
 * that still reads plausibly in the torn tail [off, size) (its checksum
 * failed or cannot be checked): what the tail held, for the message. */
static int tail_hints(struct store* st,
                      uint64_t off,
                      uint64_t size,
                      struct store_recovery* rec)
{
    uint8_t* chunk = malloc(SCAN_CHUNK);
    if (chunk == NULL) {
        return -ENOMEM;
    }
    const struct store_state* s = &st->s;
    uint64_t pos = off;
    int rv = 0;
    while (pos + FRAME_HEADER_LEN <= size) {
        size_t n = (size_t)(size - pos < SCAN_CHUNK ? size - pos : SCAN_CHUNK);
        rv = pread_all(st->fd, chunk, n, pos);
        if (rv != 0) {
            break;
        }
        for (size_t i = 0; i + FRAME_HEADER_LEN <= n; i++) {
            struct frame_header h;
            if (get_le32(chunk + i) != FRAME_MAGIC) {
                continue;
            }
            header_decode(chunk + i, &h);
            if (h.version != FRAME_VERSION ||
                h.header_len != FRAME_HEADER_LEN || h.last_rev < s->revision ||
                h.applied_index < s->applied_index ||
                h.last_rev - s->revision > (1ull << 40)) {
                continue;
            }
            if (h.last_rev > rec->tail_rev_max) {
                rec->tail_rev_max = h.last_rev;
            }
            if (h.applied_index > rec->tail_index_max) {
                rec->tail_index_max = h.applied_index;
            }
        }
        if (n < SCAN_CHUNK) {
            break;
        }
        pos += n - (FRAME_HEADER_LEN - 1); /* overlap a split header */
    }
    free(chunk);
    return rv;
}

static int tail_bad(struct store* st,
                    struct scan* sc,
                    uint64_t off,
                    uint64_t size,
                    const char* why,
                    struct store_recovery* rec)
{
    uint64_t next;
    int rv = find_valid_after(st->fd, off, size, &next);
    if (rv != 0) {
        return rv;
    }
    if (next != UINT64_MAX) {
        say(rec->torn_reason, sizeof(rec->torn_reason),
            "frame %" PRIu64 " at offset %" PRIu64
            ": %s, but a valid frame follows at offset %" PRIu64,
            sc->frameno, off, why, next);
        store__trace(st, STORE_TRACE_ERROR, "db %s corrupt: %s", st->path,
                     rec->torn_reason);
        return -EUCLEAN;
    }
    say(rec->torn_reason, sizeof(rec->torn_reason),
        "frame %" PRIu64 " at offset %" PRIu64 ": %s", sc->frameno, off, why);
    rec->torn_bytes = size - off;
    rec->torn_off = off;
    rv = tail_hints(st, off, size, rec);
    if (rv != 0) {
        return rv;
    }
    if (st->opt.keep_torn_tail) {
        st->tail_pending = true; /* the caller decides: store_drop_tail */
        return 0;
    }
    store__trace(st, STORE_TRACE_WARN,
                 "db %s: truncating %" PRIu64 " torn bytes: %s", st->path,
                 rec->torn_bytes, rec->torn_reason);
    if (ftruncate(st->fd, (off_t)off) != 0 || fdatasync(st->fd) != 0) {
        return -errno;
    }
    return 0;
}

/* Truncate order: ftruncate -> fdatasync; only then may a frame be written
 * at the tail's offset (st->next_off). */
int store_drop_tail(struct store* st)
{
    assert(st != NULL);
    if (!st->tail_pending) {
        return 0;
    }
    struct stat sb;
    if (fstat(st->fd, &sb) != 0) {
        return -errno;
    }
    assert((uint64_t)sb.st_size >= st->durable_off);
    store__trace(st, STORE_TRACE_WARN,
                 "db %s: truncating %" PRIu64 " torn bytes at offset %" PRIu64,
                 st->path, (uint64_t)sb.st_size - st->durable_off,
                 st->durable_off);
    if (ftruncate(st->fd, (off_t)st->durable_off) != 0 ||
        fdatasync(st->fd) != 0) {
        return -errno;
    }
    st->tail_pending = false;
    return 0;
}

int store__recover(struct store* st, struct store_recovery* rec)
{
    struct stat sb;
    if (fstat(st->fd, &sb) != 0) {
        return -errno;
    }
    uint64_t size = (uint64_t)sb.st_size, off = 0;
    struct scan sc = {.frameno = 0, .base_prefix = true};
    int rv = 0;
    while (off < size) {
        struct frame_header h;
        uint8_t* raw = NULL;
        char why[64];
        rv = store__frame_read(st->fd, off, size, &h, &raw, why, sizeof(why));
        if (rv == -EBADMSG) {
            rv = tail_bad(st, &sc, off, size, why, rec);
            break;
        }
        if (rv != 0) {
            return rv;
        }
        rv = replay_frame(st, &sc, &h, raw, off);
        free(raw);
        if (rv != 0) {
            say(rec->torn_reason, sizeof(rec->torn_reason),
                "frame %" PRIu64 " at offset %" PRIu64 ": %s", sc.frameno, off,
                sc.msg);
            store__trace(st, STORE_TRACE_ERROR, "db %s corrupt: %s", st->path,
                         rec->torn_reason);
            return rv == -ENOMEM ? rv : -EUCLEAN;
        }
        off += FRAME_HEADER_LEN + h.comp_len;
        sc.frameno++;
        st->payload_raw += h.raw_len;
        st->payload_stored += FRAME_HEADER_LEN + h.comp_len;
    }
    if (rv != 0) {
        return rv;
    }
    rv = store__state_check(&st->s, sc.msg, sizeof(sc.msg));
    if (rv != 0) {
        say(rec->torn_reason, sizeof(rec->torn_reason), "%s", sc.msg);
        return rv;
    }
    rec->frames = sc.frameno;
    st->frames = sc.frameno;
    st->next_off = st->durable_off = off;
    st->durable_index = st->sealed_index = st->s.applied_index;
    st->sealed_rev = st->durable_rev = st->s.revision;
    rec->revision = st->s.revision;
    rec->applied_index = st->s.applied_index;
    return 0;
}

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
