/* sdnotify.h - tells systemd how a foreground node is doing (Type=notify
 * services, examples/quorumfs@.service; docs/operations.md, "systemd"):
 * READY=1 once the tree is mounted and caught up, STATUS= with the role
 * and the leader while it runs (refreshed when they change, at most once
 * per SDNOTIFY_STATUS_MS), STOPPING=1 on the way down. Everything here is
 * a no-op unless NOTIFY_SOCKET is set and the node runs with -f (a
 * daemonized child is not the service's main process). Loop thread only. */
#ifndef QFS_SDNOTIFY_H
#define QFS_SDNOTIFY_H

#include <stdbool.h>
#include <uv.h>

#include "cli_log.h"
#include "node.h"

enum {
    SDNOTIFY_STATUS_MS = 1000, /* STATUS= refresh period (rate limit) */
    SDNOTIFY_STATUS_MAX = 160, /* bytes of one STATUS= text */
};

struct sdnotify {
    bool on;          /* NOTIFY_SOCKET set and in the foreground */
    bool timer_init;  /* timer initialized (closed by the loop's owner) */
    bool warned;      /* a failed send was logged */
    uv_timer_t timer; /* the STATUS= refresh */
    struct node* node;
    const struct cli_log* log;      /* the CLI's (borrowed) */
    char last[SDNOTIFY_STATUS_MAX]; /* the STATUS= text last sent */
};

/* Whether to notify at all: foreground and NOTIFY_SOCKET set. */
void sdnotify_init(struct sdnotify* s,
                   bool foreground,
                   const struct cli_log* log);
/* STATUS=text (printf format), sent only when it differs from the last. */
void sdnotify_status(struct sdnotify* s, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* READY=1 with the role and leader, and the refresh timer started on
 * loop (its handle is closed with the loop's other handles). */
void sdnotify_ready(struct sdnotify* s, uv_loop_t* loop, struct node* n);
/* STOPPING=1 and STATUS=why; the refresh timer stops. */
void sdnotify_stopping(struct sdnotify* s, const char* why);

#endif /* QFS_SDNOTIFY_H */
