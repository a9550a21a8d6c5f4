/* fs_metrics.c - FUSE requests by type and their latency, for the node's
 * metrics text (a node_metrics source: quorumfs_fuse_requests_total and
 * quorumfs_fuse_request_duration_seconds, label op).
 *
 * A request's latency runs from the read of its message from /dev/fuse to
 * the write of its reply, whichever handler replies and however late (a
 * write waits for its commit). Both ends are seen in the session's I/O:
 * fs_metrics_attach gives the session a fuse_custom_io whose read and
 * writev are the plain system calls plus a look at the header (the
 * request's opcode and unique; the reply's unique). The reader threads
 * (fs_reader.c) read most requests: those they hand to the loop are
 * counted when the loop takes them (fs__metrics_request), those the loop
 * reads itself (busy mode) in mio_read; the FLUSHes a thread answers
 * itself it counts and times under its own mutex, added here when the
 * text is made. Replies written on the loop are timed here; the
 * notifier thread's writes are notifications (unique 0), which touch
 * nothing here.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"
#include "node_metrics.h"

enum {
    FS_MOPS = 64,         /* opcodes counted by number; the rest: "other" */
    FS_MREQ_SLOTS = 4096, /* requests in flight timed at once */
};

struct fs_metrics {
    uint64_t requests[FS_MOPS + 1]; /* [FS_MOPS]: opcodes past the table */
    uint64_t loop_reads; /* requests the loop read itself (busy mode) */
    struct node_hist lat[FS_MOPS + 1];
    /* Requests in flight by unique: slot (unique >> 1) % FS_MREQ_SLOTS
     * (the kernel steps uniques by 2). A request whose slot is taken is
     * counted but not timed. */
    struct fs_mreq {
        uint64_t unique; /* 0: free */
        uint64_t t0_ns;
        uint32_t op;
    } inflight[FS_MREQ_SLOTS];
};

static const char* const op_names[FS_MOPS] = {
    [FUSE_LOOKUP] = "lookup",
    [FUSE_FORGET] = "forget",
    [FUSE_GETATTR] = "getattr",
    [FUSE_SETATTR] = "setattr",
    [FUSE_READLINK] = "readlink",
    [FUSE_SYMLINK] = "symlink",
    [FUSE_MKNOD] = "mknod",
    [FUSE_MKDIR] = "mkdir",
    [FUSE_UNLINK] = "unlink",
    [FUSE_RMDIR] = "rmdir",
    [FUSE_RENAME] = "rename",
    [FUSE_LINK] = "link",
    [FUSE_OPEN] = "open",
    [FUSE_READ] = "read",
    [FUSE_WRITE] = "write",
    [FUSE_STATFS] = "statfs",
    [FUSE_RELEASE] = "release",
    [FUSE_FSYNC] = "fsync",
    [FUSE_SETXATTR] = "setxattr",
    [FUSE_GETXATTR] = "getxattr",
    [FUSE_LISTXATTR] = "listxattr",
    [FUSE_REMOVEXATTR] = "removexattr",
    [FUSE_FLUSH] = "flush",
    [FUSE_INIT] = "init",
    [FUSE_OPENDIR] = "opendir",
    [FUSE_READDIR] = "readdir",
    [FUSE_RELEASEDIR] = "releasedir",
    [FUSE_FSYNCDIR] = "fsyncdir",
    [FUSE_GETLK] = "getlk",
    [FUSE_SETLK] = "setlk",
    [FUSE_SETLKW] = "setlkw",
    [FUSE_ACCESS] = "access",
    [FUSE_CREATE] = "create",
    [FUSE_INTERRUPT] = "interrupt",
    [FUSE_BMAP] = "bmap",
    [FUSE_DESTROY] = "destroy",
    [FUSE_IOCTL] = "ioctl",
    [FUSE_POLL] = "poll",
    [FUSE_NOTIFY_REPLY] = "notify_reply",
    [FUSE_BATCH_FORGET] = "batch_forget",
    [FUSE_FALLOCATE] = "fallocate",
    [FUSE_READDIRPLUS] = "readdirplus",
    [FUSE_RENAME2] = "rename2",
    [FUSE_LSEEK] = "lseek",
    [FUSE_COPY_FILE_RANGE] = "copy_file_range",
};

static unsigned op_index(uint32_t opcode)
{
    return opcode < FS_MOPS && op_names[opcode] != NULL ? opcode : FS_MOPS;
}

bool fs__no_reply(uint32_t opcode)
{
    return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET ||
           opcode == FUSE_INTERRUPT || opcode == FUSE_NOTIFY_REPLY;
}

static void request_read(struct fs_metrics* m, const void* buf, ssize_t len)
{
    const struct fuse_in_header* h = buf;
    if (len < (ssize_t)sizeof(*h)) {
        return;
    }
    unsigned i = op_index(h->opcode);
    m->requests[i]++;
    if (fs__no_reply(h->opcode) || h->unique == 0) {
        return;
    }
    struct fs_mreq* r = &m->inflight[(h->unique >> 1) % FS_MREQ_SLOTS];
    if (r->unique == 0) {
        r->unique = h->unique;
        r->t0_ns = fs__mono_ns();
        r->op = i;
    }
}

static void reply_written(struct fs_metrics* m, uint64_t unique)
{
    struct fs_mreq* r = &m->inflight[(unique >> 1) % FS_MREQ_SLOTS];
    if (r->unique != unique) {
        return; /* not timed (slot taken) */
    }
    node_hist_observe(&m->lat[r->op], fs__mono_ns() - r->t0_ns);
    r->unique = 0;
}

void fs__metrics_request(struct fs* f, const void* buf, size_t len)
{
    if (f->metrics != NULL) {
        request_read(f->metrics, buf, (ssize_t)len);
    }
}

/* The loop's own reads (fs_reader.c's busy mode). */
static ssize_t mio_read(int fd, void* buf, size_t len, void* userdata)
{
    struct fs* f = userdata;
    ssize_t r = read(fd, buf, len);
    if (r > 0) {
        fs__metrics_request(f, buf, (size_t)r);
        if (f->metrics != NULL) {
            f->metrics->loop_reads++;
        }
    }
    return r;
}

static ssize_t mio_writev(int fd, struct iovec* iov, int count, void* userdata)
{
    struct fs* f = userdata;
    if (count > 0 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
        const struct fuse_out_header* h = iov[0].iov_base;
        /* unique 0: a notification (maybe from the notifier thread). */
        if (h->unique != 0 && f->metrics != NULL) {
            reply_written(f->metrics, h->unique);
        }
        ssize_t w = writev(fd, iov, count);
        int clone = h->unique != 0 ? fs__reader_clone_fd(f) : -1;
        if (w < 0 && errno == ENOENT && clone >= 0 && clone != fd) {
            /* read by a reader thread, on its clone of the fd */
            w = writev(clone, iov, count);
        }
        return w;
    }
    return writev(fd, iov, count);
}

static void fuse_metrics_text(void* data, struct node_metrics_buf* b)
{
    struct fs* f = data;
    const struct fs_metrics* m = f->metrics;
    char labels[64];
    uint64_t fast, ioctls;
    struct node_hist fast_lat, flush_lat = m->lat[FUSE_FLUSH];

    fs__reader_fast_stats(f, &fast, &ioctls, &fast_lat);
    for (unsigned i = 0; i <= NODE_HIST_BOUNDS; i++) {
        flush_lat.buckets[i] += fast_lat.buckets[i];
    }
    flush_lat.count += fast_lat.count;
    flush_lat.sum_ns += fast_lat.sum_ns;

    node_metrics_family(b, "quorumfs_fuse_requests_total", "counter",
                        "FUSE requests read from the kernel, by type.");
    for (unsigned i = 0; i <= FS_MOPS; i++) {
        uint64_t n = m->requests[i] + (i == FUSE_FLUSH ? fast : 0) +
                     (i == FUSE_IOCTL ? ioctls : 0);
        if (n != 0) {
            node_metrics_printf(
                b, "quorumfs_fuse_requests_total{op=\"%s\"} %llu\n",
                i < FS_MOPS ? op_names[i] : "other", (unsigned long long)n);
        }
    }
    node_metrics_single(b, "quorumfs_fuse_thread_flushes_total", "counter",
                        "FLUSHes answered by the reader threads (nothing "
                        "pending on this mount).",
                        fast);
    node_metrics_single(b, "quorumfs_fuse_loop_reads_total", "counter",
                        "FUSE requests the loop read itself while busy.",
                        m->loop_reads);
    node_metrics_single(b, "quorumfs_fuse_busy_switches_total", "counter",
                        "Times the loop took the reading over from the "
                        "reader threads.",
                        f->reader.busy_switches);
    node_metrics_family(b, "quorumfs_fuse_request_duration_seconds",
                        "histogram",
                        "From reading a FUSE request to writing its reply, "
                        "by type.");
    for (unsigned i = 0; i <= FS_MOPS; i++) {
        const struct node_hist* h = i == FUSE_FLUSH ? &flush_lat : &m->lat[i];
        if (h->count != 0) {
            snprintf(labels, sizeof(labels), "op=\"%s\"",
                     i < FS_MOPS ? op_names[i] : "other");
            node_metrics_hist(b, "quorumfs_fuse_request_duration_seconds",
                              labels, h);
        }
    }
}

int fs__metrics_init(struct fs* f)
{
    f->metrics = calloc(1, sizeof(*f->metrics));
    if (f->metrics == NULL) {
        return -ENOMEM;
    }
    return node_metrics_add_source(f->node, fuse_metrics_text, f);
}

void fs__metrics_free(struct fs* f)
{
    free(f->metrics);
    f->metrics = NULL;
}

int fs_metrics_attach(struct fs* f, struct fuse_session* se)
{
    static const struct fuse_custom_io io = {
        .read = mio_read,
        .writev = mio_writev,
    };
    return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}
