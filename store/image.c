/* image.c - self-contained images of the store at one applied index, and
 * installing one (docs/format-db.md, "Images").
 *
 * Image = 64-byte header (magic "QFIM", version, header length, record
 * count, revision, applied index, ino counter, payload length, checksum) +
 * payload: a PUT record for every live entry, parents before children, then
 * DEDUP/RESULT records that rebuild the dedup table exactly (results
 * included), then SNAP/COMPACT records and RESV records that rebuild the
 * name reservations and their clock (store__meta_encode). The payload uses the
 * db file's record encoding, so install writes it as BASE frames.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <xxhash.h>

#include "store_internal.h"

#define IMAGE_MAGIC 0x4D494651u /* "QFIM" */
enum { IMAGE_VERSION = 1, IMAGE_HEADER_LEN = 64 };

struct image_header {
    uint32_t magic;
    uint16_t version;
    uint16_t header_len;
    uint32_t record_count;
    uint32_t zero;
    uint64_t revision;
    uint64_t applied_index;
    uint64_t next_ino;
    uint64_t payload_len;
    uint64_t zero2;
    uint64_t checksum;
};
_Static_assert(sizeof(struct image_header) == IMAGE_HEADER_LEN,
               "image header is 64 bytes");

static uint64_t image_checksum(const uint8_t* img, size_t len)
{
    uint64_t seed = XXH3_64bits(img, 56);
    return XXH3_64bits_withSeed(img + IMAGE_HEADER_LEN, len - IMAGE_HEADER_LEN,
                                seed);
}

/* One applied seq of o: a RESULT record when its result is kept, else a
 * DEDUP record (p NULL: size only). Returns its size. */
static size_t emit_seq(const struct dedup_origin* o, uint64_t seq, uint8_t* p)
{
    const struct dedup_result* r =
        o->res != NULL ? &o->res[seq % STORE_DEDUP_SLOTS] : NULL;
    if (r != NULL && r->seq == seq) {
        if (p != NULL) {
            store__rec_result_encode(o->origin, r, p);
        }
        return REC_RESULT_FIXED;
    }
    if (p != NULL) {
        store__rec_dedup_encode(o->origin, seq, p);
    }
    return REC_DEDUP_FIXED;
}

/* Records that rebuild one origin: window seqs ascending, then high. */
size_t store__dedup_emit(const struct dedup_origin* o,
                         uint8_t* p,
                         uint32_t* records)
{
    size_t n = 0;
    for (int i = STORE_DEDUP_WINDOW - 1; i >= 0; i--) {
        if ((o->window >> i) & 1) {
            n += emit_seq(o, o->high - 1 - (uint64_t)i, p ? p + n : NULL);
            (*records)++;
        }
    }
    n += emit_seq(o, o->high, p ? p + n : NULL);
    (*records)++;
    return n;
}

static void entry_rec(const struct entry* e, struct store_rec* r)
{
    *r = (struct store_rec){
        .ino = e->ino,
        .parent = e->parent,
        .type = e->type,
        .mode = e->mode,
        .uid = e->uid,
        .gid = e->gid,
        .create_rev = e->create_rev,
        .mod_rev = e->mod_rev,
        .version = e->version,
        .atime_ns = e->atime_ns,
        .mtime_ns = e->mtime_ns,
        .ctime_ns = e->ctime_ns,
        .prev_frame = UINT64_MAX,
        .name = entry_name(e),
        .name_len = e->name_len,
        .content = entry_content(e),
        .content_len = (uint32_t)e->size,
    };
}

int store_image_build(struct store* st, void** out, size_t* len)
{
    assert(st != NULL && out != NULL && len != NULL);
    const struct store_state* s = &st->s;
    struct entry** all = store__walk(s);
    if (all == NULL) {
        return -ENOMEM;
    }
    size_t size = IMAGE_HEADER_LEN, records = 0;
    for (size_t i = 0; i < s->nentries; i++) {
        struct store_rec r;
        entry_rec(all[i], &r);
        size += store__rec_put_size(&r);
        records++;
    }
    uint32_t dedup_records = 0;
    for (size_t i = 0; i < s->norigins; i++) {
        size += store__dedup_emit(&s->origins[i], NULL, &dedup_records);
    }
    records += dedup_records;
    uint32_t meta_records;
    size_t meta = store__meta_size(s, &meta_records);
    size += meta;
    records += meta_records;
    uint8_t* img = malloc(size);
    if (img == NULL) {
        free(all);
        return -ENOMEM;
    }
    size_t pos = IMAGE_HEADER_LEN;
    for (size_t i = 0; i < s->nentries; i++) {
        struct store_rec r;
        entry_rec(all[i], &r);
        store__rec_put_encode(&r, img + pos);
        pos += store__rec_put_size(&r);
    }
    free(all);
    for (size_t i = 0; i < s->norigins; i++) {
        pos += store__dedup_emit(&s->origins[i], img + pos, &dedup_records);
    }
    store__meta_encode(s, img + pos);
    pos += meta;
    assert(pos == size && records <= UINT32_MAX);
    memset(img, 0, IMAGE_HEADER_LEN);
    put_le32(img, IMAGE_MAGIC);
    put_le16(img + 4, IMAGE_VERSION);
    put_le16(img + 6, IMAGE_HEADER_LEN);
    put_le32(img + 8, (uint32_t)records);
    put_le64(img + 16, s->revision);
    put_le64(img + 24, s->applied_index);
    put_le64(img + 32, s->next_ino);
    put_le64(img + 40, size - IMAGE_HEADER_LEN);
    put_le64(img + 56, image_checksum(img, size));
    *out = img;
    *len = size;
    return 0;
}

/* ---- inspect (snapshot files) ---- */

static int inspect_fail(char* err, size_t cap, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int inspect_fail(char* err, size_t cap, const char* fmt, ...)
{
    if (err != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

int store_image_inspect(const void* image,
                        size_t len,
                        struct store_image_info* info,
                        char* err,
                        size_t cap)
{
    assert(info != NULL);
    const uint8_t* img = image;
    if (img == NULL || len < IMAGE_HEADER_LEN) {
        return inspect_fail(err, cap, "store image too short (%zu bytes)", len);
    }
    if (get_le32(img) != IMAGE_MAGIC || get_le16(img + 4) != IMAGE_VERSION ||
        get_le16(img + 6) != IMAGE_HEADER_LEN) {
        return inspect_fail(err, cap,
                            "store image: bad magic, version or header "
                            "length");
    }
    if (get_le64(img + 40) != len - IMAGE_HEADER_LEN) {
        return inspect_fail(err, cap,
                            "store image: payload length %" PRIu64
                            " does not match %zu bytes",
                            get_le64(img + 40), len - IMAGE_HEADER_LEN);
    }
    if (image_checksum(img, len) != get_le64(img + 56)) {
        return inspect_fail(err, cap, "store image: checksum mismatch");
    }
    info->revision = get_le64(img + 16);
    info->applied_index = get_le64(img + 24);
    info->keys = 0;
    /* Count the leading PUT records (every live entry, the root first);
     * bounded by the record count. */
    uint32_t records = get_le32(img + 8);
    size_t off = IMAGE_HEADER_LEN;
    for (uint32_t i = 0; i < records; i++) {
        if (len - off < REC_PUT_FIXED || img[off] != REC_PUT) {
            break;
        }
        uint64_t rec = (uint64_t)REC_PUT_FIXED + get_le16(img + off + 2) +
                       get_le32(img + off + 92);
        if (rec > len - off) {
            return inspect_fail(err, cap,
                                "store image: record %u overruns the image", i);
        }
        if (get_le64(img + off + 16) != STORE_ROOT_INO) {
            info->keys++; /* live entries, as store_stats counts them */
        }
        off += (size_t)rec;
    }
    return 0;
}

/* ---- install ---- */

struct install {
    struct store_state ns;
    int fd;
    char* tmp;
    uint64_t off; /* end of the new file */
    uint64_t frames;
    uint64_t revision, applied, next_ino;
    uint32_t records;
};

/* Records of one BASE frame: apply them to the new state, write the frame. */
static int install_chunk(struct install* in,
                         const uint8_t* raw,
                         size_t len,
                         uint32_t count)
{
    char msg[128];
    size_t pos = 0;
    while (pos < len) {
        struct store_anyrec r;
        long n = store__rec_decode(raw + pos, len - pos, &r);
        if (n < 0 || r.tag == REC_DEL || r.tag == REC_SNAPDROP ||
            (r.tag == REC_RESV && (r.resv.flags & RESV_F_REMOVE) != 0) ||
            (r.tag == REC_PUT && r.put.mod_rev > in->revision) ||
            ((r.tag == REC_SNAP || r.tag == REC_COMPACT) &&
             r.rev > in->revision) ||
            (r.tag == REC_RESULT && r.res.revision > in->revision)) {
            return -EBADMSG;
        }
        int rv = store__rec_apply(&in->ns, &r, in->off, (uint32_t)pos, msg,
                                  sizeof(msg));
        if (rv != 0) {
            return rv == -ENOMEM ? rv : -EBADMSG;
        }
        pos += (size_t)n;
    }
    struct store_frame* f;
    int rv = store__frame_build(raw, len, count, FRAME_F_BASE, 0, in->revision,
                                in->applied, in->next_ino, in->off, &f);
    if (rv != 0) {
        return rv;
    }
    rv = util_pwrite_all(in->fd, f->bytes, f->len, f->off);
    in->off += f->len;
    in->frames++;
    free(f);
    return rv;
}

/* Split the payload at record boundaries into frames of bounded size. */
static int install_frames(struct install* in, const uint8_t* p, size_t len)
{
    size_t start = 0, pos = 0;
    uint32_t count = 0, total = 0;
    while (pos < len) {
        struct store_anyrec r;
        long n = store__rec_decode(p + pos, len - pos, &r);
        if (n < 0) {
            return -EBADMSG;
        }
        if (pos + (size_t)n - start > STORE_FRAME_RAW_MAX) {
            int rv = install_chunk(in, p + start, pos - start, count);
            if (rv != 0) {
                return rv;
            }
            start = pos;
            count = 0;
        }
        pos += (size_t)n;
        count++;
        total++;
    }
    if (total != in->records) {
        return -EBADMSG;
    }
    return install_chunk(in, p + start, pos - start, count);
}

static int verify_header(const uint8_t* p, size_t len, struct install* in)
{
    if (p == NULL || len < IMAGE_HEADER_LEN || get_le32(p) != IMAGE_MAGIC ||
        get_le16(p + 4) != IMAGE_VERSION ||
        get_le16(p + 6) != IMAGE_HEADER_LEN ||
        get_le64(p + 40) != len - IMAGE_HEADER_LEN ||
        get_le64(p + 56) != image_checksum(p, len)) {
        return -EBADMSG;
    }
    in->records = get_le32(p + 8);
    in->revision = get_le64(p + 16);
    in->applied = get_le64(p + 24);
    in->next_ino = get_le64(p + 32);
    return in->next_ino > STORE_ROOT_INO ? 0 : -EBADMSG;
}

/* Take over the new state and file (nothing can fail any more). */
static void install_swap(struct store* st, struct install* in)
{
    close(st->fd);
    st->fd = in->fd;
    store__state_free(&st->s);
    st->s = in->ns;
    st->s.revision = in->revision;
    st->s.applied_index = in->applied;
    st->next_off = st->durable_off = in->off;
    st->durable_index = st->sealed_index = in->applied;
    st->sealed_rev = st->durable_rev = in->revision;
    st->base_rev = in->revision; /* older history is not in the image */
    st->db_gen++;                /* locations changed: views rebuild */
    st->frames = in->frames;
    st->pend.len = 0;
    st->pend.records = 0;
    store__cache_clear(st->cache);
    free(in->tmp);
}

int store_image_install(struct store* st, const void* img, size_t len)
{
    assert(st != NULL);
    struct install in = {.fd = -1};
    char msg[128];
    if (st->io_err != 0 || st->tail_pending) {
        return -EIO;
    }
    if (st->next_off != st->durable_off) {
        return -EBUSY; /* a sealed frame is still being written */
    }
    int rv = verify_header(img, len, &in);
    if (rv != 0) {
        return rv;
    }
    rv = store__state_init(&in.ns);
    if (rv != 0) {
        return rv;
    }
    in.ns.next_ino = in.next_ino;
    size_t n = strlen(st->path) + 5;
    in.tmp = malloc(n);
    if (in.tmp == NULL) {
        rv = -ENOMEM;
        goto err_after_state;
    }
    snprintf(in.tmp, n, "%s.tmp", st->path);
    in.fd = open(in.tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in.fd < 0) {
        rv = -errno;
        goto err_after_tmp;
    }
    rv = install_frames(&in, (const uint8_t*)img + IMAGE_HEADER_LEN,
                        len - IMAGE_HEADER_LEN);
    if (rv == 0 && store__state_check(&in.ns, msg, sizeof(msg)) != 0) {
        rv = -EBADMSG;
    }
    if (rv != 0) {
        goto err_after_open;
    }
    /* Order: write frames -> fsync tmp -> rename over the db -> fsync dir
     * -> swap in memory (the commit point). */
    if (fsync(in.fd) != 0 || rename(in.tmp, st->path) != 0) {
        rv = -errno;
        goto err_after_open;
    }
    rv = util_fsync_parent(st->path);
    if (rv != 0) {
        st->io_err = rv; /* the rename may or may not be durable */
    }
    install_swap(st, &in);
    return rv;

err_after_open:
    close(in.fd);
    unlink(in.tmp);
err_after_tmp:
    free(in.tmp);
err_after_state:
    store__state_free(&in.ns);
    return rv;
}
