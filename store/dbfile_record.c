/* dbfile_record.c - records of the db file: encoding, decoding and
 * applying one record (docs/format-db.md), and the pending frame that
 * apply queues records in until store_frame_seal (dbfile.c).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

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

void store__rec_result_encode(uint64_t origin,
                              const struct dedup_result* res,
                              uint8_t* p)
{
    assert(res->err <= 0 && res->err >= REC_RESULT_ERR_MIN);
    assert((res->flags & ~DEDUP_F_CANCEL) == 0);
    p[0] = REC_RESULT;
    p[1] = res->flags;
    put_le16(p + 2, 0);
    put_le32(p + 4, (uint32_t)res->err);
    put_le64(p + 8, origin);
    put_le64(p + 16, res->seq);
    put_le64(p + 24, res->revision);
    put_le64(p + 32, res->ino);
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

size_t store__rec_resv_size(const struct store_resv_rec* r)
{
    return REC_RESV_FIXED + (size_t)r->name_len;
}

void store__rec_resv_encode(const struct store_resv_rec* r, uint8_t* p)
{
    p[0] = REC_RESV;
    p[1] = r->flags;
    put_le16(p + 2, r->name_len);
    put_le32(p + 4, 0);
    put_le64(p + 8, r->parent);
    put_le64(p + 16, r->origin);
    put_le64(p + 24, r->token);
    put_le64(p + 32, (uint64_t)r->expire_ns);
    put_le64(p + 40, (uint64_t)r->clock_ns);
    put_le64(p + 48, r->ino);
    if (r->name_len > 0) {
        memcpy(p + REC_RESV_FIXED, r->name, r->name_len);
    }
}

/* The RESV records that rebuild a state's reservations: one per
 * reservation, each with the clock; only the clock when there is none.
 * i: the reservation (nresvs: the CLOCK record). */
static void meta_resv(const struct store_state* s,
                      size_t i,
                      struct store_resv_rec* r)
{
    *r = (struct store_resv_rec){.flags = RESV_F_CLOCK,
                                 .clock_ns = s->resv_clock};
    if (i < s->nresvs) {
        const struct store_resv* v = &s->resvs[i];
        *r = (struct store_resv_rec){.parent = v->parent,
                                     .origin = v->origin,
                                     .token = v->token,
                                     .ino = v->ino,
                                     .expire_ns = v->expire_ns,
                                     .clock_ns = s->resv_clock,
                                     .name = v->name,
                                     .name_len = v->name_len};
    }
}

/* How many RESV records meta_resv gives (0: no reservation, clock 0). */
static size_t meta_resv_count(const struct store_state* s)
{
    return s->nresvs > 0 ? s->nresvs : (s->resv_clock != 0 ? 1 : 0);
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
    for (size_t i = 0; i < meta_resv_count(s); i++) {
        struct store_resv_rec r;
        meta_resv(s, i, &r);
        n += store__rec_resv_size(&r);
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
        p += REC_COMPACT_FIXED;
    }
    for (size_t i = 0; i < meta_resv_count(s); i++) {
        struct store_resv_rec r;
        meta_resv(s, i, &r);
        store__rec_resv_encode(&r, p);
        p += store__rec_resv_size(&r);
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

static long decode_result(const uint8_t* p, size_t len, struct store_anyrec* r)
{
    if (len < REC_RESULT_FIXED) {
        return -EBADMSG;
    }
    int32_t err = (int32_t)get_le32(p + 4);
    if ((p[1] & ~DEDUP_F_CANCEL) != 0 || get_le16(p + 2) != 0 || err > 0 ||
        err < REC_RESULT_ERR_MIN) {
        return -EBADMSG;
    }
    r->origin = get_le64(p + 8);
    r->seq = get_le64(p + 16);
    r->res = (struct dedup_result){.seq = r->seq,
                                   .revision = get_le64(p + 24),
                                   .ino = get_le64(p + 32),
                                   .err = err,
                                   .flags = p[1]};
    return REC_RESULT_FIXED;
}

/* A reservation's name: as an entry name (no NUL, no '/', not "." or
 * ".."), 1..STORE_NAME_LIMIT bytes. */
static bool resv_name_ok(const char* name, size_t len)
{
    if (len == 0 || len > STORE_NAME_LIMIT || memchr(name, 0, len) != NULL ||
        memchr(name, '/', len) != NULL) {
        return false;
    }
    return !(len == 1 && name[0] == '.') &&
           !(len == 2 && name[0] == '.' && name[1] == '.');
}

static long decode_resv(const uint8_t* p, size_t len, struct store_anyrec* a)
{
    struct store_resv_rec* r = &a->resv;
    if (len < REC_RESV_FIXED || get_le32(p + 4) != 0) {
        return -EBADMSG;
    }
    r->flags = p[1];
    r->name_len = get_le16(p + 2);
    r->parent = get_le64(p + 8);
    r->origin = get_le64(p + 16);
    r->token = get_le64(p + 24);
    r->expire_ns = (int64_t)get_le64(p + 32);
    r->clock_ns = (int64_t)get_le64(p + 40);
    r->ino = get_le64(p + 48);
    r->name = (const char*)p + REC_RESV_FIXED;
    if ((r->flags & ~(RESV_F_REMOVE | RESV_F_CLOCK)) != 0 ||
        r->flags == (RESV_F_REMOVE | RESV_F_CLOCK) ||
        REC_RESV_FIXED + (size_t)r->name_len > len) {
        return -EBADMSG;
    }
    if (r->flags == RESV_F_CLOCK) {
        /* the clock alone: nothing else */
        if (r->name_len != 0 || r->parent != 0 || r->origin != 0 ||
            r->token != 0 || r->expire_ns != 0 || r->ino != 0) {
            return -EBADMSG;
        }
    } else if (r->parent == 0 || r->token == 0 ||
               !resv_name_ok(r->name, r->name_len) ||
               ((r->flags & RESV_F_REMOVE) != 0
                    ? r->expire_ns != 0 || r->ino != 0
                    : r->ino < 2)) {
        return -EBADMSG;
    }
    return (long)REC_RESV_FIXED + (long)r->name_len;
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
    case REC_RESULT:
        return decode_result(p, len, r);
    case REC_RESV:
        return decode_resv(p, len, r);
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
        return store__dedup_mark(s, r->origin, r->seq, NULL);
    case REC_RESULT:
        return store__dedup_mark(s, r->origin, r->seq, &r->res);
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
    case REC_RESV:
        return store__resv_apply(s, &r->resv, msg, cap);
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

int store__pend_result(struct store* st,
                       uint64_t origin,
                       const struct dedup_result* res)
{
    int rv = pend_reserve(&st->pend, REC_RESULT_FIXED);
    if (rv != 0) {
        return rv;
    }
    store__rec_result_encode(origin, res, st->pend.buf + st->pend.len);
    st->pend.len += REC_RESULT_FIXED;
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

int store__pend_resv(struct store* st, const struct store_resv_rec* r)
{
    size_t n = store__rec_resv_size(r);
    int rv = pend_reserve(&st->pend, n);
    if (rv != 0) {
        return rv;
    }
    store__rec_resv_encode(r, st->pend.buf + st->pend.len);
    st->pend.len += n;
    st->pend.records++;
    return 0;
}
