/* log_open.c - rlog_open: load and check what is on disk (segments,
 * torn tails, meta, the newest hard state).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"
#include "log_internal.h"

/* Creates the directory if missing. Order: mkdir -> fsync(parent) so the
 * new directory's entry is durable before anything is written in it. */
static int open_dir(struct rlog* l)
{
    if (mkdir(l->dir, 0700) == 0) {
        int rv = util_fsync_parent(l->dir);
        if (rv != 0) {
            return rv;
        }
    } else if (errno != EEXIST) {
        return -errno;
    }
    l->dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return l->dirfd < 0 ? -errno : 0;
}

static int cmp_index(const void* a, const void* b)
{
    raft_index x = *(const raft_index*)a, y = *(const raft_index*)b;
    return x < y ? -1 : x > y;
}

/* Lists the segments (sorted) and whether meta exists; removes *.tmp
 * leftovers of an interrupted create (never renamed, so never part of the
 * log). */
static int scan_dir(struct rlog* l,
                    raft_index** firsts,
                    unsigned* n,
                    bool* has_meta)
{
    int fd = dup(l->dirfd);
    if (fd < 0) {
        return -errno;
    }
    DIR* d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    raft_index* v = malloc(RLOG_SEGMENTS_MAX * sizeof(*v));
    int rv = v == NULL ? -ENOMEM : 0;
    unsigned seen = 0;
    *n = 0;
    *has_meta = false;
    struct dirent* de;
    while (rv == 0 && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        raft_index first;
        if (++seen > RLOG_DIR_ENTRIES_MAX) {
            rlog__trace(l, RAFT_TRACE_ERROR, "log %s: more than %d names",
                        l->dir, RLOG_DIR_ENTRIES_MAX);
            rv = -E2BIG;
        } else if (strcmp(de->d_name, "meta") == 0) {
            *has_meta = true;
        } else if (rlog__seg_parse_name(de->d_name, &first)) {
            if (*n == RLOG_SEGMENTS_MAX) {
                rv = -EMFILE;
            } else {
                v[(*n)++] = first;
            }
        } else if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
            if (unlinkat(l->dirfd, de->d_name, 0) != 0) {
                rv = -errno;
            }
        } else if (de->d_name[0] != '.') {
            rlog__trace(l, RAFT_TRACE_WARN, "log %s: ignoring unknown file %s",
                        l->dir, de->d_name);
        }
    }
    closedir(d);
    if (rv != 0) {
        free(v);
        return rv;
    }
    qsort(v, *n, sizeof(*v), cmp_index);
    *firsts = v;
    return 0;
}

/* Reads seg-<first> whole and checks its segment record. Returns 1 when it
 * is stale (an older epoch: an interrupted reset), 0 when pushed. */
static int seg_read(struct rlog* l, raft_index first)
{
    char name[RLOG_NAME_MAX];
    rlog__seg_name(name, first);
    int fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rv;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rv = -errno;
        goto err_after_open;
    }
    if ((uint64_t)st.st_size > RLOG_SEGMENT_FILE_MAX) {
        rlog__trace(l, RAFT_TRACE_ERROR, "log %s/%s: %jd bytes is too large",
                    l->dir, name, (intmax_t)st.st_size);
        rv = -EUCLEAN;
        goto err_after_open;
    }
    uint8_t* buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (buf == NULL) {
        rv = -ENOMEM;
        goto err_after_open;
    }
    size_t got;
    rv = rlog__read_full(fd, buf, (size_t)st.st_size, 0, &got);
    if (rv != 0) {
        goto err_after_alloc;
    }
    struct rlog_rec_hdr h;
    const char* why = "wrong record";
    if (rlog__rec_check(buf, got, &h, &why) == 0 ||
        h.type != RLOG_REC_SEGMENT || h.index != first || h.len != 0 ||
        h.term > l->epoch) {
        rlog__trace(l, RAFT_TRACE_ERROR,
                    "log %s/%s: corrupt segment record at offset 0 (%s)",
                    l->dir, name, why);
        rv = -EUCLEAN;
        goto err_after_alloc;
    }
    close(fd);
    if (h.term < l->epoch) {
        free(buf);
        return 1;
    }
    rv = rlog__segs_push(l, first);
    if (rv != 0) {
        free(buf);
        return rv;
    }
    rlog__seg_last(l)->buf = buf;
    rlog__seg_last(l)->size = got;
    return 0;

err_after_alloc:
    free(buf);
err_after_open:
    close(fd);
    return rv;
}

static bool all_zero(const uint8_t* p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Order: ftruncate -> fdatasync: the torn bytes are gone before anything
 * is appended after them. */
static int seg_cut_tail(struct rlog* l,
                        struct rlog_seg* s,
                        uint64_t off,
                        const char* why,
                        uint64_t* torn)
{
    char name[RLOG_NAME_MAX];
    rlog__seg_name(name, s->first);
    if (all_zero(s->buf + off, s->size - off)) {
        /* Preallocated space never written (seg_roll): not a torn tail.
         * Appends continue at `off`. */
        *torn = 0;
        s->size = off;
        return 0;
    }
    /* Count what was written: zeros after the last non-zero byte are
     * preallocated space, not part of the torn record. */
    uint64_t end = s->size;
    while (l->preallocate && end > off && s->buf[end - 1] == 0) {
        end--;
    }
    *torn = end - off;
    rlog__trace(l, RAFT_TRACE_WARN,
                "log %s/%s: torn tail: truncating %" PRIu64
                " bytes at offset %" PRIu64 " (%s)",
                l->dir, name, *torn, off, why);
    int fd = openat(l->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rv = 0;
    if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0) {
        rv = -errno;
    }
    if (rv == 0 && l->preallocate) {
        /* Best effort: allocated space again for the appends to come. */
        if (fallocate(fd, 0, 0, (off_t)l->segment_bytes_max) == 0) {
            fdatasync(fd);
        }
    }
    close(fd);
    s->size = off;
    return rv;
}

/* Walks the records after the segment record. A bad record is a torn tail
 * when it is in the last segment and no valid record follows it; anything
 * else is corruption (-EUCLEAN, naming the file and offset). */
static int seg_parse(struct rlog* l,
                     struct rlog_seg* s,
                     bool is_last,
                     uint64_t* torn)
{
    struct hs_best* best = &s->hs;
    char name[RLOG_NAME_MAX];
    rlog__seg_name(name, s->first);
    uint64_t off = RLOG_REC_HDR_SIZE;
    const char* why = "";
    while (off < s->size) {
        struct rlog_rec_hdr h;
        uint64_t rec = rlog__rec_check(s->buf + off, s->size - off, &h, &why);
        if (rec == 0) {
            if (is_last && !rlog__valid_follows(s->buf, off + 1, s->size)) {
                return seg_cut_tail(l, s, off, why, torn);
            }
            goto corrupt;
        }
        const uint8_t* data = s->buf + off + RLOG_REC_HDR_SIZE;
        if (h.type == RLOG_REC_ENTRY) {
            why = "entry out of sequence";
            if (h.index != s->last + 1 || h.entry_type < RAFT_ENTRY_NORMAL ||
                h.entry_type > RAFT_ENTRY_CONF) {
                goto corrupt;
            }
            if (rlog__seg_add_off(s, off) != 0) {
                return -ENOMEM;
            }
        } else if (h.type == RLOG_REC_HARD_STATE &&
                   h.len == RLOG_HS_DATA_SIZE) {
            uint64_t seq = get_le64(data + 24);
            if (seq > best->seq) {
                best->seq = seq;
                best->hs = (struct raft_hard_state){
                    get_le64(data), get_le64(data + 8), get_le64(data + 16)};
            }
        } else {
            why = "unexpected record type";
            goto corrupt;
        }
        off += rec;
    }
    return 0;

corrupt:
    rlog__trace(l, RAFT_TRACE_ERROR,
                "log %s/%s: corrupt record at offset %" PRIu64 " (%s)", l->dir,
                name, off, why);
    return -EUCLEAN;
}

/* Drops segments wholly <= snap.index (never the last one) and checks
 * that the rest is contiguous from snap.index + 1. Such a segment is a
 * leftover of an interrupted compaction, or the last segment when
 * rlog_compact ran up to the last index, which later appends rolled past:
 * then it may hold the newest hard state record (written after meta).
 * Order: meta (with the newest hard state, l->hs) durable -> unlink ->
 * fsync(dir), so dropping a segment never loses a hard state. */
static int segs_check(struct rlog* l)
{
    unsigned drop = 0;
    while (drop + 1 < l->n_segs && l->segs[drop].last <= l->snap.index) {
        drop++;
    }
    if (drop > 0) {
        int rv = rlog__meta_write(l);
        if (rv != 0) {
            return rv;
        }
    }
    for (unsigned i = 0; i < drop; i++) {
        int rv = rlog__seg_unlink(l, l->segs[i].first);
        if (rv != 0) {
            return rv;
        }
        rlog__seg_free(&l->segs[i]);
    }
    if (drop > 0) {
        memmove(l->segs, l->segs + drop, (l->n_segs - drop) * sizeof(*l->segs));
        l->n_segs -= drop;
        int rv = rlog__sync_dir(l);
        if (rv != 0) {
            return rv;
        }
    }
    raft_index expect = l->snap.index + 1;
    for (unsigned i = 0; i < l->n_segs; i++) {
        const struct rlog_seg* s = &l->segs[i];
        bool gap = i == 0 ? s->first > expect : s->first != expect;
        if (gap) {
            char name[RLOG_NAME_MAX];
            rlog__seg_name(name, s->first);
            rlog__trace(l, RAFT_TRACE_ERROR,
                        "log %s/%s: gap at offset 0: first index %" PRIu64
                        ", expected %" PRIu64,
                        l->dir, name, s->first, expect);
            return -EUCLEAN;
        }
        expect = s->last + 1;
    }
    const struct rlog_seg* s = rlog__seg_last(l);
    l->last_index =
        s != NULL && s->last > l->snap.index ? s->last : l->snap.index;
    l->need_roll = s != NULL && s->last < l->snap.index;
    return 0;
}

/* Entries after snap.index, pointing into the segment buffers. */
static int loaded_build(struct rlog* l, struct rlog_loaded* out)
{
    uint64_t n = l->last_index - l->snap.index;
    if (n > UINT32_MAX) {
        return -EOVERFLOW;
    }
    l->loaded = calloc(n > 0 ? n : 1, sizeof(*l->loaded));
    if (l->loaded == NULL) {
        return -ENOMEM;
    }
    raft_term prev = l->snap.term;
    uint64_t k = 0;
    for (unsigned i = 0; i < l->n_segs; i++) {
        const struct rlog_seg* s = &l->segs[i];
        for (raft_index idx = s->first; idx <= s->last; idx++) {
            if (idx <= l->snap.index) {
                continue;
            }
            uint64_t off = s->offs[idx - s->first];
            struct rlog_rec_hdr h;
            rlog__hdr_decode(&h, s->buf + off);
            assert(h.index == idx); /* checked by seg_parse */
            if (h.term < prev) {
                char name[RLOG_NAME_MAX];
                rlog__seg_name(name, s->first);
                rlog__trace(l, RAFT_TRACE_ERROR,
                            "log %s/%s: term goes back at offset %" PRIu64
                            " (index %" PRIu64 ", term %" PRIu64 " < %" PRIu64
                            ")",
                            l->dir, name, off, idx, h.term, prev);
                return -EUCLEAN;
            }
            prev = h.term;
            l->loaded[k++] = (struct raft_entry){
                .term = h.term,
                .index = idx,
                .type = h.entry_type,
                .data = {s->buf + off + RLOG_REC_HDR_SIZE, h.len}};
        }
    }
    assert(k == n);
    out->hs = l->hs;
    out->snap = l->snap;
    out->n_entries = (unsigned)n;
    out->entries = n > 0 ? l->loaded : NULL;
    return 0;
}

static int load_segments(struct rlog* l,
                         const raft_index* firsts,
                         unsigned n,
                         uint64_t* torn)
{
    unsigned stale = 0;
    int rv;
    for (unsigned i = 0; i < n; i++) {
        rv = seg_read(l, firsts[i]);
        if (rv < 0) {
            return rv;
        }
        if (rv == 1) { /* order: unlink stale ones, then fsync(dir) */
            stale++;
            rv = rlog__seg_unlink(l, firsts[i]);
            if (rv != 0) {
                return rv;
            }
        }
    }
    if (stale > 0) {
        rlog__trace(l, RAFT_TRACE_INFO, "log %s: removed %u stale segments",
                    l->dir, stale);
        rv = rlog__sync_dir(l);
        if (rv != 0) {
            return rv;
        }
    }
    for (unsigned i = 0; i < l->n_segs; i++) {
        rv = seg_parse(l, &l->segs[i], i + 1 == l->n_segs, torn);
        if (rv != 0) {
            return rv;
        }
    }
    /* The newest hard state: meta's or a segment's record, whichever has
     * the highest seq, including one in a segment segs_check drops (it
     * writes meta first). */
    for (unsigned i = 0; i < l->n_segs; i++) {
        if (l->segs[i].hs.seq > l->seq) {
            l->seq = l->segs[i].hs.seq;
            l->hs = l->segs[i].hs.hs;
        }
    }
    rv = segs_check(l);
    if (rv != 0 || l->n_segs == 0) {
        return rv;
    }
    char name[RLOG_NAME_MAX];
    rlog__seg_name(name, rlog__seg_last(l)->first);
    l->fd = openat(l->dirfd, name, O_RDWR | O_CLOEXEC);
    return l->fd < 0 ? -errno : 0;
}

void rlog_options_default(struct rlog_options* o)
{
    assert(o != NULL);
    memset(o, 0, sizeof(*o));
    o->segment_bytes_max = RLOG_SEGMENT_BYTES_DEFAULT;
    o->preallocate = true;
}

int rlog_open(const char* dir,
              const struct rlog_options* o,
              struct rlog** out,
              struct rlog_loaded* loaded)
{
    assert(dir != NULL && out != NULL && loaded != NULL);
    uint64_t seg_max = o != NULL ? o->segment_bytes_max : 0;
    if (seg_max == 0) {
        seg_max = RLOG_SEGMENT_BYTES_DEFAULT;
    }
    if (seg_max > RLOG_SEGMENT_BYTES_LIMIT || strlen(dir) >= RLOG_PATH_MAX) {
        return -EINVAL;
    }
    struct rlog* l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return -ENOMEM;
    }
    snprintf(l->dir, sizeof(l->dir), "%s", dir);
    l->dirfd = l->meta_fd = l->fd = -1;
    l->segment_bytes_max = seg_max;
    if (o != NULL) {
        l->tracer = o->tracer;
        l->preallocate = o->preallocate;
    }
    memset(loaded, 0, sizeof(*loaded));
    raft_index* firsts = NULL;
    unsigned n = 0;
    bool has_meta = false;
    int rv = open_dir(l);
    if (rv == 0) {
        rv = scan_dir(l, &firsts, &n, &has_meta);
    }
    if (rv != 0) {
        goto err_after_alloc;
    }
    if (!has_meta && n > 0) {
        rlog__trace(l, RAFT_TRACE_ERROR,
                    "log %s/meta: missing, %u segments exist", l->dir, n);
        rv = -EUCLEAN;
    } else if (!has_meta) {
        loaded->fresh = true;
        rv = rlog__meta_create(l);
    } else {
        rv = rlog__meta_load(l);
    }
    if (rv == 0) {
        rv = load_segments(l, firsts, n, &loaded->torn_bytes);
    }
    free(firsts);
    if (rv == 0) {
        rv = loaded_build(l, loaded);
    }
    if (rv != 0) {
        goto err_after_alloc;
    }
    *out = l;
    return 0;

err_after_alloc:
    rlog_close(l);
    memset(loaded, 0, sizeof(*loaded));
    return rv;
}
