/* compact.c - rewriting the db file without the history before the compact
 * revision C, online (docs/format-db.md, "Compaction").
 *
 * The new file is `<db>.compact`: BASE frames holding the state at C (every
 * entry live at C, the dedup table, the named snapshots, the compact
 * revision and the name reservations with their clock, as of the last
 * record of revision <= C), then every later
 * record, frame by frame, with its prev location rewritten to the new
 * file. Three steps:
 *   begin  (loop): note C, the durable end of the old file and a dup of its
 *                  fd; nothing else is shared with run.
 *   run    (any thread): replay the old file up to the cut, write the base
 *                  and the later frames that were durable at begin, fsync.
 *   finish (loop, no frame in flight): copy the frames made durable during
 *                  run, fsync, rename over the db, fsync the directory (the
 *                  commit point), switch fds, fix the locations of live
 *                  entries and pending records.
 * Crash safety: until the rename the old file is complete and untouched;
 * the new one is complete (fsynced) before the rename. A leftover
 * `<db>.compact` is deleted at open. Crash hooks for tests:
 * QFS_CRASH_POINT = compact-after-write | compact-before-rename |
 * compact-after-rename makes the process _exit(99) there.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store_compact.h"
#include "store_internal.h"

#define COMPACT_BASE_RAW_MAX (4u << 20) /* raw bytes of one BASE frame */
_Static_assert(COMPACT_BASE_RAW_MAX <= STORE_FRAME_RAW_MAX, "a frame");
enum { MAP_MIN = 1024 };

struct loc {
    uint64_t ino; /* 0: empty slot */
    uint64_t frame;
    uint32_t rec;
};

struct wbuf {
    uint8_t* buf;
    size_t len, cap;
    uint32_t records;
};

struct store_compaction {
    struct store* st; /* begin/finish only (loop) */
    uint64_t gen;     /* st->db_gen at begin */
    uint64_t target;  /* C */
    int old_fd;       /* dup of the db fd: run reads through it */
    uint64_t cut_off; /* old file: durable end at begin (run's part) */
    uint64_t old_end; /* old file: copied up to here */
    char* tmp;
    int fd;
    uint64_t new_off; /* end of the new file */
    uint64_t frames, raw, stored;
    bool base_done;
    struct loc* map; /* ino -> last record in the new file */
    size_t nmap, mapcap;
    struct wbuf w;
    char err[160];
};

void store__crash_point(const char* point)
{
    const char* want = getenv("QFS_CRASH_POINT");
    if (want != NULL && strcmp(want, point) == 0) {
        _exit(99);
    }
}

/* A rewrite replays the whole state into a second index (run, on another
 * thread, so in another malloc arena) and frees it: hundreds of bytes per
 * key that glibc keeps resident, fragmented, after free (measured: 15 MiB
 * with 200,000 keys, ~80 B/key). Hand the free pages back to the kernel
 * once the rewrite is over. A few ms per rewrite; rewrites are rare. */
static void release_free_memory(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* ---- ino -> location map ---- */

static size_t map_slot(uint64_t ino, size_t cap)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 19) & (cap - 1);
}

static struct loc* map_find(struct store_compaction* c, uint64_t ino)
{
    if (c->mapcap == 0) {
        return NULL;
    }
    size_t k = map_slot(ino, c->mapcap);
    while (c->map[k].ino != 0) {
        if (c->map[k].ino == ino) {
            return &c->map[k];
        }
        k = (k + 1) & (c->mapcap - 1);
    }
    return NULL;
}

static int map_set(struct store_compaction* c,
                   uint64_t ino,
                   uint64_t frame,
                   uint32_t rec)
{
    struct loc* l = map_find(c, ino);
    if (l == NULL) {
        if (4 * (c->nmap + 1) > 3 * c->mapcap) { /* load <= 3/4 */
            size_t cap = c->mapcap == 0 ? MAP_MIN : 2 * c->mapcap;
            struct loc* m = calloc(cap, sizeof(*m));
            if (m == NULL) {
                return -ENOMEM;
            }
            for (size_t i = 0; i < c->mapcap; i++) {
                if (c->map[i].ino != 0) {
                    size_t k = map_slot(c->map[i].ino, cap);
                    while (m[k].ino != 0) {
                        k = (k + 1) & (cap - 1);
                    }
                    m[k] = c->map[i];
                }
            }
            free(c->map);
            c->map = m;
            c->mapcap = cap;
        }
        size_t k = map_slot(ino, c->mapcap);
        while (c->map[k].ino != 0) {
            k = (k + 1) & (c->mapcap - 1);
        }
        l = &c->map[k];
        l->ino = ino;
        c->nmap++;
    }
    l->frame = frame;
    l->rec = rec;
    return 0;
}

/* ---- writing the new file ---- */

static int w_reserve(struct wbuf* w, size_t n)
{
    if (w->len + n <= w->cap) {
        return 0;
    }
    size_t cap = w->cap == 0 ? 65536 : w->cap;
    while (cap < w->len + n) {
        cap *= 2;
    }
    uint8_t* b = realloc(w->buf, cap);
    if (b == NULL) {
        return -ENOMEM;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

/* Append one record (bytes p[0..n)), its prev location rewritten. */
static int w_rec(struct store_compaction* c,
                 const struct store_anyrec* r,
                 const uint8_t* p,
                 size_t n)
{
    int rv = w_reserve(&c->w, n);
    if (rv != 0) {
        return rv;
    }
    uint8_t* q = c->w.buf + c->w.len;
    memcpy(q, p, n);
    if (r->tag == REC_PUT || r->tag == REC_DEL) {
        uint64_t ino = r->tag == REC_PUT ? r->put.ino : r->ino;
        const struct loc* l = map_find(c, ino);
        size_t at = r->tag == REC_PUT ? 80 : 17; /* prev_frame, prev_rec */
        put_le64(q + at, l != NULL ? l->frame : UINT64_MAX);
        put_le32(q + at + 8, l != NULL ? l->rec : 0);
        if (r->tag == REC_PUT) {
            rv = map_set(c, ino, c->new_off, (uint32_t)c->w.len);
        }
    }
    c->w.len += n;
    c->w.records++;
    return rv;
}

/* Seal the buffered records into one frame at the end of the new file. */
static int w_flush(struct store_compaction* c,
                   const struct frame_header* like,
                   uint32_t flags,
                   uint64_t first_rev)
{
    struct store_frame* f;
    int rv = store__frame_build(c->w.buf, c->w.len, c->w.records, flags,
                                first_rev, like->last_rev, like->applied_index,
                                like->next_ino, c->new_off, &f);
    if (rv != 0) {
        return rv;
    }
    rv = util_pwrite_all(c->fd, f->bytes, f->len, f->off);
    c->new_off += f->len;
    c->stored += f->len;
    c->raw += c->w.len;
    c->frames++;
    c->w.len = 0;
    c->w.records = 0;
    free(f);
    return rv;
}

/* The state at C as BASE frames: entries parents first, dedup, meta. */
static int write_base(struct store_compaction* c,
                      struct store_state* ns,
                      const struct frame_header* like)
{
    struct frame_header h = *like;
    h.last_rev = c->target;
    struct entry** all = store__walk(ns);
    if (all == NULL) {
        return -ENOMEM;
    }
    int rv = 0;
    /* clang-tidy false positive: ns is NULL only after the base is written
     * (asserted in copy_frame). */
    // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
    for (size_t i = 0; i < ns->nentries && rv == 0; i++) {
        struct store_rec r;
        store__rec_from_entry(all[i], &r);
        r.prev_frame = UINT64_MAX;
        r.prev_rec = 0;
        size_t n = store__rec_put_size(&r);
        if (c->w.len + n > COMPACT_BASE_RAW_MAX && c->w.len > 0) {
            rv = w_flush(c, &h, FRAME_F_BASE, 0);
        }
        if (rv == 0) {
            rv = w_reserve(&c->w, n);
        }
        if (rv == 0) {
            rv = map_set(c, r.ino, c->new_off, (uint32_t)c->w.len);
        }
        if (rv == 0) {
            store__rec_put_encode(&r, c->w.buf + c->w.len);
            c->w.len += n;
            c->w.records++;
        }
    }
    free(all);
    uint32_t meta_records;
    size_t meta = store__meta_size(ns, &meta_records);
    size_t dedup = 0;
    uint32_t dedup_records = 0;
    for (size_t i = 0; i < ns->norigins; i++) {
        dedup += store__dedup_emit(&ns->origins[i], NULL, &dedup_records);
    }
    if (rv == 0) {
        rv = w_reserve(&c->w, dedup + meta);
    }
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < ns->norigins; i++) {
        c->w.len += store__dedup_emit(&ns->origins[i], c->w.buf + c->w.len,
                                      &c->w.records);
    }
    store__meta_encode(ns, c->w.buf + c->w.len);
    c->w.len += meta;
    c->w.records += meta_records;
    c->base_done = true;
    return w_flush(c, &h, FRAME_F_BASE, 0);
}

/* One old frame: records before the cut go into ns (replayed as recovery
 * does), the rest is copied. */
static int copy_frame(struct store_compaction* c,
                      struct store_state* ns,
                      const struct frame_header* h,
                      const uint8_t* raw)
{
    /* Only store_compact_run passes a state; finish copies the tail after
     * the base (written by run) and passes NULL. */
    assert(ns != NULL || c->base_done);
    bool base = (h->flags & FRAME_F_BASE) != 0;
    uint64_t first_rev = h->first_rev;
    size_t pos = 0;
    int rv = 0;
    if (!c->base_done) {
        ns->next_ino = h->next_ino;
    }
    while (pos < h->raw_len && rv == 0) {
        struct store_anyrec r;
        long n = store__rec_decode(raw + pos, h->raw_len - pos, &r);
        if (n < 0) {
            snprintf(c->err, sizeof(c->err), "bad record in the old file");
            return -EUCLEAN;
        }
        uint64_t rev = r.tag == REC_PUT ? r.put.mod_rev : r.rev;
        bool changes = r.tag == REC_PUT || r.tag == REC_DEL;
        if (!c->base_done && !base && changes && rev > c->target) {
            rv = write_base(c, ns, h); /* the cut */
            first_rev = c->target + 1;
            store__state_free(ns);
        }
        if (rv == 0 && !c->base_done) {
            rv = store__rec_apply(ns, &r, 0, 0, c->err, sizeof(c->err));
        } else if (rv == 0) {
            rv = w_rec(c, &r, raw + pos, (size_t)n);
        }
        pos += (size_t)n;
    }
    if (rv == 0 && !c->base_done) {
        /* clang-tidy false positive: ns is NULL only after the base is written
         * (asserted in copy_frame). */
        // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
        ns->revision = h->last_rev;
        ns->applied_index = h->applied_index;
    }
    if (rv == 0 && c->base_done && (c->w.records > 0 || !base)) {
        rv = w_flush(c, h, 0, first_rev);
    }
    return rv;
}

/* Old frames [from, to): copy them (and replay those before the cut). */
static int copy_range(struct store_compaction* c,
                      struct store_state* ns,
                      uint64_t from,
                      uint64_t to)
{
    uint64_t off = from;
    while (off < to) {
        struct frame_header h;
        uint8_t* raw = NULL;
        char why[64];
        int rv =
            store__frame_read(c->old_fd, off, to, &h, &raw, why, sizeof(why));
        if (rv != 0) {
            snprintf(c->err, sizeof(c->err), "old frame at %" PRIu64 ": %s",
                     off, rv == -EBADMSG ? why : "read error");
            return rv == -EBADMSG ? -EUCLEAN : rv;
        }
        rv = copy_frame(c, ns, &h, raw);
        free(raw);
        if (rv != 0) {
            return rv;
        }
        off += FRAME_HEADER_LEN + h.comp_len;
    }
    c->old_end = to;
    return 0;
}

/* ---- the three steps ---- */

bool store_compact_needed(const struct store* st)
{
    assert(st != NULL);
    return !st->compacting && st->io_err == 0 &&
           st->s.compact_rev > st->base_rev;
}

int store_compact_begin(struct store* st, struct store_compaction** out)
{
    assert(st != NULL && out != NULL);
    *out = NULL;
    if (st->io_err != 0 || st->tail_pending) {
        return -EIO;
    }
    if (st->compacting) {
        return -EBUSY;
    }
    if (st->s.compact_rev <= st->base_rev) {
        return -EALREADY; /* the file holds no history before C */
    }
    if (st->durable_rev < st->s.compact_rev) {
        return -EAGAIN; /* seal and write the frames up to C first */
    }
    struct store_compaction* c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    size_t n = strlen(st->path) + sizeof(".compact");
    c->tmp = malloc(n);
    if (c->tmp == NULL) {
        free(c);
        return -ENOMEM;
    }
    snprintf(c->tmp, n, "%s.compact", st->path);
    c->old_fd = dup(st->fd);
    c->fd = open(c->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (c->old_fd < 0 || c->fd < 0) {
        int rv = -errno;
        if (c->old_fd >= 0) {
            close(c->old_fd);
        }
        if (c->fd >= 0) {
            close(c->fd);
            unlink(c->tmp);
        }
        free(c->tmp);
        free(c);
        return rv;
    }
    c->st = st;
    c->gen = st->db_gen;
    c->target = st->s.compact_rev;
    c->cut_off = st->durable_off;
    st->compacting = true;
    store__trace(st, STORE_TRACE_INFO,
                 "db %s: compaction to revision %" PRIu64 " begins (%" PRIu64
                 " bytes)",
                 st->path, c->target, c->cut_off);
    *out = c;
    return 0;
}

int store_compact_run(struct store_compaction* c)
{
    assert(c != NULL);
    /* Order: replay + write base and later frames -> fsync the new file
     * (complete before anything points at it). */
    struct store_state ns;
    int rv = store__state_init(&ns);
    if (rv != 0) {
        return rv;
    }
    rv = copy_range(c, &ns, 0, c->cut_off);
    if (rv == 0 && !c->base_done) {
        /* Every record is <= C: the whole file is the base. */
        struct frame_header h = {.last_rev = c->target,
                                 .applied_index = ns.applied_index,
                                 .next_ino = ns.next_ino};
        rv = write_base(c, &ns, &h);
    }
    store__state_free(&ns); /* idempotent: freed at the cut already */
    if (rv == 0 && fdatasync(c->fd) != 0) {
        rv = -errno;
    }
    if (rv == 0) {
        store__crash_point("compact-after-write");
    }
    return rv;
}

/* The pending records get locations in the new file: prev of each PUT/DEL
 * is the ino's last record there (or an earlier pending one). Pure: called
 * after the commit point. */
static void fix_pending(struct store_compaction* c, uint64_t pend_off)
{
    struct store* st = c->st;
    size_t pos = 0;
    while (pos < st->pend.len) {
        struct store_anyrec r;
        long n = store__rec_decode(st->pend.buf + pos, st->pend.len - pos, &r);
        assert(n > 0);
        if (r.tag == REC_PUT || r.tag == REC_DEL) {
            uint64_t ino = r.tag == REC_PUT ? r.put.ino : r.ino;
            uint8_t* q = st->pend.buf + pos + (r.tag == REC_PUT ? 80 : 17);
            const struct loc* l = map_find(c, ino);
            uint64_t pf = get_le64(q);
            if (pf != st->next_off) { /* not an earlier pending record */
                put_le64(q, l != NULL ? l->frame : UINT64_MAX);
                put_le32(q + 8, l != NULL ? l->rec : 0);
            } else {
                put_le64(q, pend_off);
            }
        }
        pos += (size_t)n;
    }
}

/* Live entries point at their latest record in the new file. */
static void fix_entries(struct store_compaction* c, uint64_t pend_off)
{
    struct store_state* s = &c->st->s;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct entry* e = s->buckets[i]; e != NULL; e = e->hnext) {
            if (e->loc_frame == c->st->next_off) {
                e->loc_frame = pend_off; /* a pending record */
                continue;
            }
            const struct loc* l = map_find(c, e->ino);
            assert(l != NULL || e->loc_frame == UINT64_MAX);
            if (l != NULL) {
                e->loc_frame = l->frame;
                e->loc_rec = l->rec;
            }
        }
    }
}

static void compaction_free(struct store_compaction* c, bool unlink_tmp)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    if (unlink_tmp) {
        unlink(c->tmp);
    }
    close(c->old_fd);
    c->st->compacting = false;
    free(c->map);
    free(c->w.buf);
    free(c->tmp);
    free(c);
    release_free_memory();
}

void store_compact_abort(struct store* st, struct store_compaction* c)
{
    assert(st != NULL && c != NULL && c->st == st);
    compaction_free(c, true);
}

/* Commit point passed: take over the new file (nothing can fail). */
static void compact_switch(struct store_compaction* c)
{
    struct store* st = c->st;
    uint64_t pend_off = c->new_off;
    fix_pending(c, pend_off);
    fix_entries(c, pend_off);
    close(st->fd);
    st->fd = c->fd;
    c->fd = -1;
    st->next_off = st->durable_off = c->new_off;
    st->frames = c->frames;
    st->payload_raw = c->raw;
    st->payload_stored = c->stored;
    st->base_rev = c->target;
    st->db_gen++; /* locations changed: views rebuild */
    store__cache_clear(st->cache);
}

int store_compact_finish(struct store* st, struct store_compaction* c)
{
    assert(st != NULL && c != NULL && c->st == st);
    if (st->next_off != st->durable_off) {
        return -EBUSY; /* a sealed frame is in flight: drain, call again */
    }
    int rv = 0;
    if (st->io_err != 0 || c->gen != st->db_gen) {
        rv = st->io_err != 0 ? -EIO : -ECANCELED; /* e.g. image installed */
        goto err;
    }
    /* Order: copy the frames made durable during run -> fdatasync ->
     * rename over the db -> fsync the directory (commit point) -> switch. */
    rv = copy_range(c, NULL, c->old_end, st->durable_off);
    if (rv == 0 && fdatasync(c->fd) != 0) {
        rv = -errno;
    }
    if (rv != 0) {
        goto err;
    }
    store__crash_point("compact-before-rename");
    if (rename(c->tmp, st->path) != 0) {
        rv = -errno;
        goto err;
    }
    rv = util_fsync_parent(st->path);
    if (rv != 0) {
        st->io_err = rv; /* the rename may or may not be durable */
        store__trace(st, STORE_TRACE_ERROR,
                     "db %s: fsync of the directory after compaction failed "
                     "(%d): store stops applying",
                     st->path, rv);
    }
    store__crash_point("compact-after-rename");
    uint64_t before = st->durable_off;
    compact_switch(c);
    store__trace(st, STORE_TRACE_INFO,
                 "db %s: compacted to revision %" PRIu64 ": %" PRIu64
                 " -> %" PRIu64 " bytes",
                 st->path, c->target, before, st->durable_off);
    compaction_free(c, false);
    return rv;

err:
    store__trace(st, STORE_TRACE_WARN,
                 "db %s: compaction to revision %" PRIu64 " abandoned (%d)%s%s",
                 st->path, c->target, rv, c->err[0] ? ": " : "", c->err);
    compaction_free(c, true);
    return rv;
}

/* At open: a leftover rewrite is incomplete by definition (the rename is
 * the commit point): delete it. */
int store__compact_cleanup(struct store* st)
{
    size_t n = strlen(st->path) + sizeof(".compact");
    char* tmp = malloc(n);
    if (tmp == NULL) {
        return -ENOMEM;
    }
    snprintf(tmp, n, "%s.compact", st->path);
    int rv = 0;
    if (unlink(tmp) == 0) {
        store__trace(st, STORE_TRACE_WARN,
                     "db %s: deleted an unfinished compaction (%s)", st->path,
                     tmp);
    } else if (errno != ENOENT) {
        rv = -errno;
    }
    free(tmp);
    return rv;
}
