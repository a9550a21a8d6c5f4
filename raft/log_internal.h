/* log_internal.h - what the files of the disk log share (raft/log*.c).
 *
 * The log is one module cut in files along its concerns: log_record.c
 * (tracing, sticky errors, file names, record checks), log_meta.c (the
 * two meta slots), log_segment.c (segment files: index, roll, unlink),
 * log_open.c (loading and checking what is on disk) and log.c (the
 * writing calls). The contract is log.h; the format docs/format-log.md.
 * Nothing outside raft/log*.c includes this header.
 */
#ifndef QFS_RAFT_LOG_INTERNAL_H
#define QFS_RAFT_LOG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "log.h"
#include "log_format.h"

#define RLOG_SEGMENT_BYTES_DEFAULT (64ull << 20)
/* log.c zero_ahead: zeros written ahead of the appends, in steps of this */
#define RLOG_ZERO_AHEAD (1ull << 20)
#define RLOG_ZERO_CHUNK (64u << 10)
#define RLOG_SEGMENT_BYTES_LIMIT (1ull << 30) /* largest segment_bytes_max */
/* A segment may pass segment_bytes_max by one entry and a hard state. */
#define RLOG_SEGMENT_FILE_MAX   \
    (RLOG_SEGMENT_BYTES_LIMIT + \
     2ull * (RLOG_REC_HDR_SIZE + RAFT_ENTRY_DATA_MAX))

enum {
    RLOG_SEGMENTS_MAX = 1 << 16,           /* segment files in one log */
    RLOG_DIR_ENTRIES_MAX = (1 << 16) + 64, /* names read from the directory */
    RLOG_IOV_BATCH = 256, /* entries per pwritev (2 iovecs each) */
    RLOG_MSG_MAX = 512,   /* one tracer message */
    RLOG_NAME_MAX = 64,   /* a file name in the directory */
    RLOG_PATH_MAX = 4096,
};

_Static_assert(2 * RLOG_IOV_BATCH <= 1024, "stay under IOV_MAX");

/* The newest hard state record seen: the one with the highest seq. */
struct hs_best {
    uint64_t seq;
    struct raft_hard_state hs;
};

struct rlog_seg {
    raft_index first; /* from the name and the segment record */
    raft_index last;  /* last entry; first - 1 when empty */
    uint64_t size;    /* valid bytes */
    uint64_t* offs;   /* offs[i]: offset of the record of entry first + i */
    uint64_t offs_cap;
    uint8_t* buf;      /* open only: the file's bytes, entries point into it */
    struct hs_best hs; /* open only: its newest hard state record */
};

struct rlog {
    char dir[RLOG_PATH_MAX];
    int dirfd;
    int meta_fd;
    int fd;  /* last segment, open read-write; -1 when there is none */
    int err; /* sticky */
    uint64_t segment_bytes_max;
    bool preallocate;
    struct raft_tracer tracer;

    struct rlog_seg* segs;
    unsigned n_segs, cap_segs;
    bool fd_dirty;  /* written since the last fdatasync */
    bool need_roll; /* the last segment cannot take last_index + 1 */
    raft_index last_index;
    /* preallocate: bytes [0, zeroed) of the last segment were written
     * (records or zeros); 0 after a roll or a cut (log.c zero_ahead) */
    uint64_t zeroed;

    struct raft_hard_state hs;
    bool hs_dirty;
    uint64_t seq;       /* of the newest hard state write */
    uint64_t epoch;     /* bumped by rlog_reset */
    unsigned meta_slot; /* slot holding the newest meta */
    struct raft_snapshot_meta snap;

    struct raft_entry* loaded; /* handed out by rlog_open */
};

/* Each is described at its definition. */

/* ---- log_record.c ---- */
__attribute__((format(printf, 3, 4))) void rlog__trace(const struct rlog* l,
                                                       int level,
                                                       const char* fmt,
                                                       ...);
int rlog__fail(struct rlog* l, int rv, const char* what);
void rlog__seg_name(char* out, raft_index first);
bool rlog__seg_parse_name(const char* name, raft_index* first);
int rlog__read_full(int fd, void* buf, size_t len, uint64_t off, size_t* got);
int rlog__sync_dir(struct rlog* l);
uint64_t rlog__rec_check(const uint8_t* buf,
                         uint64_t avail,
                         struct rlog_rec_hdr* h,
                         const char** why);
bool rlog__valid_follows(const uint8_t* buf, uint64_t from, uint64_t size);
void rlog__hs_encode(uint8_t out[RLOG_HS_DATA_SIZE],
                     const struct raft_hard_state* hs,
                     uint64_t seq);

/* ---- log_meta.c ---- */
int rlog__meta_write(struct rlog* l);
int rlog__meta_create(struct rlog* l);
int rlog__meta_load(struct rlog* l);

/* ---- log_segment.c ---- */
int rlog__segs_push(struct rlog* l, raft_index first);
void rlog__seg_free(struct rlog_seg* s);
int rlog__seg_add_off(struct rlog_seg* s, uint64_t off);
int rlog__seg_roll(struct rlog* l, raft_index first);
int rlog__seg_unlink(struct rlog* l, raft_index first);
struct rlog_seg* rlog__seg_last(struct rlog* l);
void rlog__loaded_release(struct rlog* l);

#endif
