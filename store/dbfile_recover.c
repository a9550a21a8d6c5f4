/* dbfile_recover.c - recovery of the db file at open: replay the valid
 * prefix of frames, and the torn tail rule (truncate a torn tail, refuse a
 * bad frame a valid one follows), store_drop_tail.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"

enum { SCAN_CHUNK = 1 << 20 };

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
    if (r->tag == REC_RESULT) {
        return r->res.revision <= h->last_rev; /* likewise */
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
        rv = store__pread_all(fd, chunk, n, pos);
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
        rv = store__pread_all(st->fd, chunk, n, pos);
        if (rv != 0) {
            break;
        }
        for (size_t i = 0; i + FRAME_HEADER_LEN <= n; i++) {
            struct frame_header h;
            if (get_le32(chunk + i) != FRAME_MAGIC) {
                continue;
            }
            store__frame_header_decode(chunk + i, &h);
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
