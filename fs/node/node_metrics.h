/* node_metrics.h - the node's metrics in the Prometheus text exposition
 * format 0.0.4 (docs/operations.md, "Metrics and health"), for
 * /.cluster/metrics and the --listen-metrics HTTP listener, and the
 * readiness rule of /readyz.
 *
 * Threads: everything here runs on the loop thread, except
 * node_hist_observe and node_hist_merge, which work on a histogram the
 * caller owns (the I/O thread keeps its fsync histogram under its mutex).
 *
 * Layers above the node (the FUSE mount, the watch) add their own metrics
 * through a source (node_metrics_add_source): a callback that appends
 * complete metric families to the text, on the loop thread.
 */
#ifndef QFS_NODE_METRICS_H
#define QFS_NODE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node;

/* Latency histograms: fixed bucket bounds in seconds, shared by every
 * quorumfs_*_seconds histogram (the last bucket is +Inf). */
enum { NODE_HIST_BOUNDS = 16 };
struct node_hist {
    uint64_t buckets[NODE_HIST_BOUNDS + 1]; /* not cumulative; [last]: +Inf */
    uint64_t count;
    uint64_t sum_ns;
};
/* Count one observation of ns nanoseconds. */
void node_hist_observe(struct node_hist* h, uint64_t ns);

/* The text being made: every append is bounded (NODE_METRICS_TEXT_MAX);
 * the first failure is kept in err and later appends do nothing. Starts
 * zeroed or with a malloc'd buf of cap bytes; buf is the caller's to free. */
enum { NODE_METRICS_TEXT_MAX = 4u << 20 };
struct node_metrics_buf {
    char* buf;
    size_t len, cap;
    int err; /* -ENOMEM, -E2BIG */
};
void node_metrics_printf(struct node_metrics_buf* b, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name type\n": once per family, first. */
void node_metrics_family(struct node_metrics_buf* b,
                         const char* name,
                         const char* type,
                         const char* help);
/* A family of one unlabelled sample: its HELP, TYPE and value. */
void node_metrics_single(struct node_metrics_buf* b,
                         const char* name,
                         const char* type,
                         const char* help,
                         uint64_t value);
/* A histogram's series (name_bucket{...,le=}, name_sum, name_count) under
 * its family line; labels: "" or `op="read"` (no braces). */
void node_metrics_hist(struct node_metrics_buf* b,
                       const char* name,
                       const char* labels,
                       const struct node_hist* h);

/* Sources of more metrics (at most NODE_METRICS_SOURCES_MAX): cb appends
 * whole families to b each time the text is made (the FUSE requests:
 * fs/fuse/fs_metrics.c; the watchers: fs/cli/ctl.c).
 * Errors: -ENOSPC (no free slot). remove: the source with that cb and
 * data (nothing if none). */
enum { NODE_METRICS_SOURCES_MAX = 4 };
typedef void (*node_metrics_source_cb)(void* data, struct node_metrics_buf* b);
int node_metrics_add_source(struct node* n,
                            node_metrics_source_cb cb,
                            void* data);
void node_metrics_remove_source(struct node* n,
                                node_metrics_source_cb cb,
                                void* data);

/* The whole text into a malloc'd buffer (*out, *len). -ENOMEM, -E2BIG. */
int node_metrics_text(struct node* n, char** out, size_t* len);

/* The node's part of /readyz: a leader is known, the start-up catch-up
 * is over, and this node has applied what it knows committed, give or take
 * NODE_READY_LAG_MAX entries (a follower applies an entry only once its
 * own copy is durable: under a steady write load it is always a few
 * behind). false with *why set (a static one-line reason) otherwise. */
enum { NODE_READY_LAG_MAX = 256 };
bool node_ready(struct node* n, const char** why);

#endif /* QFS_NODE_METRICS_H */
