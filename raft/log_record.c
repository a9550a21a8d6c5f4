/* log_record.c - small helpers of the disk log: tracing, the sticky error,
 * segment file names, full reads, fsync of the directory, record checks
 * and the hard state encoding (log_internal.h).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/fileio.h"
#include "log_internal.h"

__attribute__((format(printf, 3, 4))) void rlog__trace(const struct rlog* l,
                                                       int level,
                                                       const char* fmt,
                                                       ...)
{
    if (l->tracer.emit == NULL || level < l->tracer.level) {
        return;
    }
    char msg[RLOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    l->tracer.emit(l->tracer.data, level, 0, msg);
}

/* Remember the first I/O failure: every later call returns it. */
int rlog__fail(struct rlog* l, int rv, const char* what)
{
    assert(rv < 0);
    if (l->err == 0) {
        l->err = rv;
        rlog__trace(l, RAFT_TRACE_ERROR, "log %s: %s failed: %s (sticky)",
                    l->dir, what, raft_strerror(rv));
    }
    return l->err;
}

void rlog__seg_name(char* out, raft_index first)
{
    snprintf(out, RLOG_NAME_MAX, "seg-%020" PRIu64, first);
}

/* "seg-" + exactly 20 digits; returns false for anything else. */
bool rlog__seg_parse_name(const char* name, raft_index* first)
{
    if (strncmp(name, "seg-", 4) != 0 || strlen(name) != 24) {
        return false;
    }
    uint64_t v = 0;
    for (unsigned i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *first = v;
    return v != 0;
}

int rlog__read_full(int fd, void* buf, size_t len, uint64_t off, size_t* got)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r =
            pread(fd, (uint8_t*)buf + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int rlog__sync_dir(struct rlog* l)
{
    return fsync(l->dirfd) != 0 ? -errno : 0;
}

/* Validate the record at buf[0..avail). Returns its total size, or 0 with
 * *why set when no valid record starts there. */
uint64_t rlog__rec_check(const uint8_t* buf,
                         uint64_t avail,
                         struct rlog_rec_hdr* h,
                         const char** why)
{
    if (avail < RLOG_REC_HDR_SIZE) {
        *why = "short header";
        return 0;
    }
    rlog__hdr_decode(h, buf);
    if (h->magic != RLOG_MAGIC) {
        *why = "bad magic";
        return 0;
    }
    if (h->version != RLOG_VERSION) {
        *why = "unknown version";
        return 0;
    }
    if (h->type < RLOG_REC_SEGMENT || h->type > RLOG_REC_META ||
        h->reserved0 != 0 || h->reserved1 != 0) {
        *why = "bad record type";
        return 0;
    }
    if (h->len > RAFT_ENTRY_DATA_MAX) {
        *why = "record longer than RAFT_ENTRY_DATA_MAX";
        return 0;
    }
    if (avail - RLOG_REC_HDR_SIZE < h->len) {
        *why = "short data";
        return 0;
    }
    if (rlog__checksum(buf, buf + RLOG_REC_HDR_SIZE, h->len) != h->checksum) {
        *why = "bad checksum";
        return 0;
    }
    return RLOG_REC_HDR_SIZE + (uint64_t)h->len;
}

/* True when any valid record starts in buf[from..size): a bad record
 * followed by valid data is corruption, not a torn tail. */
bool rlog__valid_follows(const uint8_t* buf, uint64_t from, uint64_t size)
{
    for (uint64_t p = from; p + RLOG_REC_HDR_SIZE <= size; p++) {
        if (get_le32(buf + p) != RLOG_MAGIC) {
            continue;
        }
        struct rlog_rec_hdr h;
        const char* why;
        if (rlog__rec_check(buf + p, size - p, &h, &why) != 0) {
            return true;
        }
    }
    return false;
}

void rlog__hs_encode(uint8_t out[RLOG_HS_DATA_SIZE],
                     const struct raft_hard_state* hs,
                     uint64_t seq)
{
    put_le64(out, hs->term);
    put_le64(out + 8, hs->vote);
    put_le64(out + 16, hs->commit);
    put_le64(out + 24, seq);
}
