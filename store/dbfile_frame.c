/* dbfile_frame.c - frames of the db file: the 64-byte header, its
 * checksum, building a sealed frame, verifying one before it is written,
 * and reading one back (docs/format-db.md).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <lz4.h>
#include <xxhash.h>

#include "store_internal.h"

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

void store__frame_header_decode(const uint8_t* p, struct frame_header* h)
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
    store__frame_header_decode(f->bytes, &h);
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

int store__pread_all(int fd, void* buf, size_t len, uint64_t off)
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
    int rv = store__pread_all(fd, hb, sizeof(hb), off);
    if (rv != 0) {
        return rv;
    }
    store__frame_header_decode(hb, h);
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
    rv = store__pread_all(fd, comp, h->comp_len, off + FRAME_HEADER_LEN);
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
