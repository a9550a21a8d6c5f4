/* fuzz_snapfile.c - libFuzzer target for snapshot files (snapshot/file.c)
 * and the store images they carry (store/image.c, store_image_install: the
 * same bytes a leader sends in InstallSnapshot).
 *
 * Input: a mode byte, then
 *   mode bit 0 clear: the snapshot file, byte for byte;
 *   mode bit 0 set: [u32 conf_len][conf bytes][image bytes]; the harness
 *     writes the file header, the image's payload length and checksum, the
 *     header's revision, index and key count (read from the image as
 *     file.c does) and the trailer checksum, so the fuzzer reaches the conf
 *     decoder and the image's records.
 * Oracles, besides "no crash, no sanitizer report": snap_file_load returns
 * 0, -EBADMSG, -EFBIG or -ENOMEM, with a message on failure; an image that
 * installs gives a store that reopens into the same state, and installing
 * the image that store builds gives that same image again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_store.h"
#include "snapshot.h"

enum { FHDR = 64, TRAILER = 16, IHDR = 64, PUT_FIXED = 96 };
#define SNAP_FILE_MAGIC 0x4E534651u
#define SNAP_TRAILER_MAGIC 0x444E4553u

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* Live keys as file.c counts them: leading PUT records but the root's. */
static uint64_t count_keys(const uint8_t* img, size_t len)
{
    uint64_t keys = 0;
    uint32_t records = fuzz_get32(img + 8);
    size_t off = IHDR;
    for (uint32_t i = 0; i < records; i++) {
        if (len - off < PUT_FIXED || img[off] != 1) {
            break;
        }
        uint64_t rec = (uint64_t)PUT_FIXED + fuzz_get16(img + off + 2) +
                       fuzz_get32(img + off + 92);
        if (rec > len - off) {
            break;
        }
        keys += fuzz_get64(img + off + 16) != 1;
        off += (size_t)rec;
    }
    return keys;
}

/* Mode 1: a file with every length and checksum right. */
static uint8_t* build_file(const uint8_t* p, size_t n, size_t* out_len)
{
    uint32_t conf_len = n >= 4 ? fuzz_get32(p) : 0;
    p += n >= 4 ? 4 : n;
    n -= n >= 4 ? 4 : n;
    if (conf_len > n) {
        conf_len = (uint32_t)n;
    }
    size_t img_len = n - conf_len;
    size_t len = FHDR + n + TRAILER;
    uint8_t* f = calloc(1, len);
    FUZZ_CHECK(f != NULL);
    memcpy(f + FHDR, p, n);
    uint8_t* img = f + FHDR + conf_len;
    fuzz_put32(f, SNAP_FILE_MAGIC);
    fuzz_put16(f + 4, 1);
    fuzz_put16(f + 6, FHDR);
    fuzz_put32(f + 8, conf_len);
    fuzz_put64(f + 16, img_len);
    if (img_len >= IHDR) {
        fuzz_put64(img + 40, img_len - IHDR);
        uint64_t seed = XXH3_64bits(img, 56);
        fuzz_put64(img + 56,
                   XXH3_64bits_withSeed(img + IHDR, img_len - IHDR, seed));
        fuzz_put64(f + 24, fuzz_get64(img + 16));
        fuzz_put64(f + 32, fuzz_get64(img + 24));
        fuzz_put64(f + 40, count_keys(img, img_len));
    }
    uint8_t* tr = f + len - TRAILER;
    fuzz_put32(tr, SNAP_TRAILER_MAGIC);
    fuzz_put64(tr + 8, XXH3_64bits(f, len - TRAILER));
    *out_len = len;
    return f;
}

/* Install img into a fresh store at path; NULL when it is refused. */
static uint8_t* install(const char* path,
                        const void* img,
                        size_t len,
                        size_t* out_len)
{
    unlink(path);
    struct store* st;
    struct store_recovery rec;
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &rec) == 0);
    int rv = store_image_install(st, img, len);
    if (rv != 0) {
        FUZZ_CHECK(rv == -EBADMSG || rv == -ENOMEM);
        store_close(st);
        return NULL;
    }
    size_t alen, blen;
    uint8_t* a = fuzz_store_image(st, &alen);
    store_close(st);
    FUZZ_CHECK(fuzz_store_open(path, false, &st, &rec) == 0);
    FUZZ_CHECK(rec.torn_bytes == 0);
    uint8_t* b = fuzz_store_image(st, &blen);
    FUZZ_CHECK(fuzz_same(a, alen, b, blen));
    free(b);
    store_close(st);
    *out_len = alen;
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    char file[512], db[512];
    snprintf(file, sizeof(file), "%s/snap", fuzz_dir());
    snprintf(db, sizeof(db), "%s/db", fuzz_dir());
    if (data[0] & 1) {
        size_t len;
        uint8_t* f = build_file(data + 1, size - 1, &len);
        fuzz_write_file(file, f, len);
        free(f);
    } else {
        fuzz_write_file(file, data + 1, size - 1);
    }
    struct snap_file_info info;
    void* img = NULL;
    size_t len = 0;
    char err[256] = "";
    int rv = snap_file_load(file, &info, &img, &len, err, sizeof(err));
    unlink(file);
    if (rv != 0) {
        FUZZ_CHECK(rv == -EBADMSG || rv == -EFBIG || rv == -ENOMEM);
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(info.image_bytes == len);
    size_t alen, clen;
    uint8_t* a = install(db, img, len, &alen);
    free(img);
    if (a != NULL) {
        uint8_t* c = install(db, a, alen, &clen);
        FUZZ_CHECK(c != NULL);
        FUZZ_CHECK(fuzz_same(a, alen, c, clen));
        free(c);
        free(a);
    }
    unlink(db);
    return 0;
}
