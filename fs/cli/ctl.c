/* ctl.c - control socket server, on the node's loop (ctl.h). The client
 * side of the subcommands is in ctl_client.c; history retention, which
 * this file once ran, is the node's (fs/node/node_retention.c).
 *
 * Clients (docs/security.md, "Local users"). The peer's uid is read at
 * accept (SO_PEERCRED): only root and the node's own effective uid are
 * served; anyone else gets one "error: permission denied" line. A served
 * client is in one of three states:
 *   reading  - its request line is not complete yet. It has
 *              CTL_IDLE_MS from its accept to complete it (a client that
 *              trickles bytes is closed too). With CTL_CLIENTS_MAX
 *              clients served, a new connection closes the oldest client
 *              still reading: idle clients cannot lock others out. A
 *              client whose request line already waits in its socket
 *              (accepted with many others in one turn, not read yet) is
 *              not idle and never closed so;
 *   busy     - its answer waits for a proposal or a membership change
 *              (the node answers those within its proposal timeouts);
 *              never closed early, since the callback holds the client;
 *   writing  - its answer is queued on the socket. Closed when none of
 *              it is taken for CTL_WRITE_STALL_MS (a client that does not
 *              read its snapshot image);
 *   watching - `quorumfs watch`: changes are streamed to it as the node
 *              applies them (below, "Watchers"). Never closed as idle, and
 *              not counted against CTL_CLIENTS_MAX: watchers have their
 *              own cap, CTL_WATCHERS_MAX.
 * All sockets are non-blocking and read through libuv: a request is
 * gathered across reads, nothing waits for a client. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../raft/tls.h"
#include "../../raft/util/datadir.h"
#include "ctl.h"
#include "identity.h"
#include "node_metrics.h"
#include "node_watch.h"

enum {
    CTL_CLIENTS_MAX = 64,       /* clients served at once */
    CTL_BACKLOG = 128,          /* connections the kernel holds for us */
    CTL_IDLE_MS = 2000,         /* from accept to a complete request line */
    CTL_WRITE_STALL_MS = 10000, /* an answer not read for this long */
    CTL_SWEEP_MS = 250,         /* the check of the two above */
    CTL_WATCHERS_MAX = 128,     /* watching clients at once */
    /* A watcher's lines queued on its socket (beyond the kernel's
     * buffer): past it, nothing more is formatted for it until some is
     * taken. Its backlog stays in the node's watch ring meanwhile. */
    CTL_WATCH_QUEUE_BYTES = 64 << 10,
    CTL_WATCH_CHUNK = 32 << 10, /* lines formatted per write */
};

enum ctl_client_state {
    CL_READING = 0,
    CL_BUSY,
    CL_WRITING,
    CL_REFUSED, /* told "permission denied"; its request is read and
                   dropped (its write must not fail), then closed */
    CL_WATCHING,
};

struct ctl {
    uv_loop_t* loop;
    struct node* node;
    const struct cli_log* log; /* the CLI's (borrowed) */
    uv_pipe_t server;
    uv_timer_t sweep; /* idle and stalled clients, while there are any */
    bool listening;
    bool closing;
    unsigned open_handles;   /* server + sweep */
    unsigned clients;        /* allocated (freed by their close callback) */
    unsigned served;         /* on the list, not watchers */
    unsigned watchers;       /* on the list, watching (or told to stop) */
    struct ctl_client* head; /* served clients, oldest accept first */
    struct ctl_client* tail;
    char path[PATH_MAX];
};

struct ctl_client {
    uv_pipe_t pipe;
    struct ctl* ctl;
    struct ctl_client *prev, *next; /* ctl's list of served clients */
    bool listed;
    bool closing;
    uint8_t state;     /* enum ctl_client_state */
    uint64_t since_ms; /* accept (reading) or last write progress */
    size_t queued;     /* bytes still queued at the last sweep */
    char req[CTL_REQUEST_MAX];
    size_t len;
    uv_write_t wreq;
    char* reply; /* text, or the head of a binary reply */
    void* extra; /* second buffer (snapshot image) */
    /* watching */
    bool watcher;       /* counted in ctl->watchers, not served */
    uint64_t cursor;    /* seq of the next watch ring event to look at */
    uint64_t min_rev;   /* --since: events before it are skipped */
    const char* prefix; /* the subtree watched (in req) */
    char sink[64];      /* what a watcher sends after its request */
};

static void handle_closed_cb(uv_handle_t* h);

static void ctl_maybe_free(struct ctl* c)
{
    if (c->closing && c->open_handles == 0 && c->clients == 0) {
        free(c);
    }
}

static void client_closed_cb(uv_handle_t* h)
{
    struct ctl_client* cl = h->data;
    struct ctl* c = cl->ctl;
    c->clients--;
    free(cl->reply);
    free(cl->extra);
    free(cl);
    ctl_maybe_free(c);
}

static void client_unlink(struct ctl_client* cl)
{
    struct ctl* c = cl->ctl;

    if (!cl->listed) {
        return;
    }
    if (cl->prev != NULL) {
        cl->prev->next = cl->next;
    } else {
        c->head = cl->next;
    }
    if (cl->next != NULL) {
        cl->next->prev = cl->prev;
    } else {
        c->tail = cl->prev;
    }
    cl->prev = cl->next = NULL;
    cl->listed = false;
    if (cl->watcher) {
        c->watchers--;
    } else {
        c->served--;
    }
}

/* Close the client's socket (once); freed by client_closed_cb. Never for a
 * client whose proposal is in flight: its callback holds it. */
static void client_close(struct ctl_client* cl)
{
    if (cl->closing) {
        return;
    }
    cl->closing = true;
    client_unlink(cl);
    uv_close((uv_handle_t*)&cl->pipe, client_closed_cb);
}

static void client_written_cb(uv_write_t* w, int status)
{
    struct ctl_client* cl = w->data;
    if (cl->state != CL_REFUSED || status != 0) {
        client_close(cl);
    }
}

/* Send reply (+ extra) and close; takes ownership of both buffers. */
static void client_send(struct ctl_client* cl,
                        char* reply,
                        size_t len,
                        void* extra,
                        size_t extra_len)
{
    uv_buf_t b[2];
    unsigned n = 1;

    cl->reply = reply;
    cl->extra = extra;
    cl->state = CL_WRITING;
    cl->since_ms = uv_now(cl->ctl->loop);
    cl->queued = SIZE_MAX;
    b[0] = uv_buf_init(reply, (unsigned)len);
    if (extra != NULL) {
        b[n++] = uv_buf_init(extra, (unsigned)extra_len);
    }
    cl->wreq.data = cl;
    if (uv_write(&cl->wreq, (uv_stream_t*)&cl->pipe, b, n, client_written_cb) !=
        0) {
        client_close(cl);
    }
}

static void client_printf(struct ctl_client* cl, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void client_printf(struct ctl_client* cl, const char* fmt, ...)
{
    char* s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        client_close(cl);
        return;
    }
    client_send(cl, s, (size_t)n, NULL, 0);
}

/* ---- requests that propose ---- */

static void restore_done_cb(void* data, const struct store_result* res)
{
    struct ctl_client* cl = data;
    if (res->err != 0) {
        client_printf(cl, "error: %s\n", strerror(-res->err));
    } else {
        client_printf(cl, "ok restored at revision %" PRIu64 "\n",
                      res->revision);
    }
}

static void compact_done_cb(void* data, const struct store_result* res)
{
    struct ctl_client* cl = data;
    struct store_stats s;

    if (res->err != 0) {
        client_printf(cl, "error: %s\n", strerror(-res->err));
        return;
    }
    node_compact_db(cl->ctl->node); /* here now, elsewhere at their tick */
    store_get_stats(node_store(cl->ctl->node), &s);
    client_printf(
        cl, "ok compact revision %" PRIu64 " (current revision %" PRIu64 ")\n",
        s.compact_revision, s.revision);
}

static int propose_for(struct ctl_client* cl,
                       struct store_cmd* c,
                       node_done_cb cb)
{
    int rv = node_propose(cl->ctl->node, c, cb, cl);
    if (rv != 0) {
        struct store_result res = {.err = rv};
        cb(cl, &res);
    }
    return 0;
}

static void req_restore(struct ctl_client* cl, char* args)
{
    char* path = strchr(args, '\t');
    struct store_cmd c;

    if (path == NULL || args[0] == '\0' || path[1] != '/') {
        client_printf(cl, "error: usage: restore NAME PATH\n");
        return;
    }
    *path++ = '\0';
    memset(&c, 0, sizeof(c));
    c.op = STORE_OP_RESTORE;
    c.name = args;
    c.new_name = path;
    propose_for(cl, &c, restore_done_cb);
}

static uint64_t default_compact_target(struct ctl* ctl)
{
    struct store_stats s;
    uint64_t keep = node_options_of(ctl->node)->history_revisions;

    store_get_stats(node_store(ctl->node), &s);
    return s.revision > keep ? s.revision - keep : 0;
}

static void req_compact(struct ctl_client* cl, const char* arg)
{
    struct store_stats s;
    struct store_cmd c;
    char* end;
    uint64_t rev = strtoull(arg, &end, 10);

    if (*end != '\0') {
        client_printf(cl, "error: bad revision '%s'\n", arg);
        return;
    }
    store_get_stats(node_store(cl->ctl->node), &s);
    if (rev == 0) {
        rev = default_compact_target(cl->ctl);
    }
    if (rev > s.revision) {
        client_printf(cl,
                      "error: revision %" PRIu64
                      " is past the current revision %" PRIu64 "\n",
                      rev, s.revision);
        return;
    }
    if (rev <= s.compact_revision) {
        client_printf(
            cl, "ok nothing to do: compact revision is already %" PRIu64 "\n",
            s.compact_revision);
        return;
    }
    memset(&c, 0, sizeof(c));
    c.op = STORE_OP_COMPACT;
    c.size = rev;
    propose_for(cl, &c, compact_done_cb);
}

/* "ok CONF_LEN IMAGE_LEN\n" + conf + image. */
static void req_snapshot_save(struct ctl_client* cl)
{
    struct raft_conf conf;
    void* img = NULL;
    size_t len = 0;
    int rv = node_snapshot_image(cl->ctl->node, &img, &len, &conf);

    if (rv != 0) {
        client_printf(cl, "error: %s\n", strerror(-rv));
        return;
    }
    size_t conf_len = raft_conf_encoded_size(&conf);
    char* head = malloc(64 + conf_len);
    if (head == NULL) {
        free(img);
        client_printf(cl, "error: out of memory\n");
        return;
    }
    int n = snprintf(head, 64, "ok %zu %zu\n", conf_len, len);
    if (raft_conf_encode(&conf, head + n, conf_len) != (int)conf_len) {
        free(head);
        free(img);
        client_printf(cl, "error: cannot encode the membership\n");
        return;
    }
    /* Two buffers: the image is not copied. */
    char* whole = realloc(head, (size_t)n + conf_len);
    client_send(cl, whole != NULL ? whole : head, (size_t)n + conf_len, img,
                len);
}

/* ---- watchers ----
 *
 * "watch\tSINCE\tPATH": the node answers "ok watching from revision
 * R" and then one line per change under PATH it applies, in revision
 * order: REV TAB OP TAB PATH [TAB PATH2], paths with \\, \t and \n
 * escaped. Events come from the node's watch ring (node_watch.h): a
 * watcher is a cursor into it, and lines are formatted only while the
 * watcher's socket queue is below CTL_WATCH_QUEUE_BYTES (the rest waits
 * in the ring, shared by all). A watcher whose cursor is in the oldest
 * sixteenth of a full ring (its next events are about to be dropped) is
 * sent "fell behind; resume with --since REV" (REV still in the ring) and
 * closed. The node never waits for a watcher. */

struct watch_write {
    uv_write_t req;
    struct ctl_client* cl;
    size_t len, cap;
    char buf[];
};

static void watch_pump(struct ctl_client* cl);

static void watch_written_cb(uv_write_t* w, int status)
{
    struct watch_write* ww = w->data;
    struct ctl_client* cl = ww->cl;
    free(ww);
    if (status != 0) {
        client_close(cl);
        return;
    }
    watch_pump(cl);
}

/* s escaped (\\, \t, \n) onto the end of *ww; false: no room. */
static bool put_escaped(struct watch_write* ww, const char* s)
{
    for (; *s != '\0'; s++) {
        if (ww->len + 2 > ww->cap) {
            return false;
        }
        char e = '\0';
        if (*s == '\\') {
            e = '\\';
        } else if (*s == '\t') {
            e = 't';
        } else if (*s == '\n') {
            e = 'n';
        }
        if (e != 0) {
            ww->buf[ww->len++] = '\\';
            ww->buf[ww->len++] = e;
        } else {
            ww->buf[ww->len++] = *s;
        }
    }
    return true;
}

/* One event's line onto *ww; false when it does not fit (nothing added). */
static bool put_event(struct watch_write* ww, const struct watch_event* ev)
{
    size_t start = ww->len;
    int n = snprintf(ww->buf + ww->len, ww->cap - ww->len, "%" PRIu64 "\t%s\t",
                     ev->revision, watch_op_name(ev->op));
    bool ok = n > 0 && (size_t)n < ww->cap - ww->len;
    if (ok) {
        ww->len += (size_t)n;
        ok = put_escaped(ww, ev->path);
    }
    if (ok && ev->path2 != NULL) {
        ok = ww->len + 1 < ww->cap;
        if (ok) {
            ww->buf[ww->len++] = '\t';
            ok = put_escaped(ww, ev->path2);
        }
    }
    ok = ok && ww->len + 1 <= ww->cap;
    if (!ok) {
        ww->len = start;
        return false;
    }
    ww->buf[ww->len++] = '\n';
    return true;
}

static void watch_fell_behind(struct ctl_client* cl, uint64_t rev)
{
    client_printf(cl,
                  "fell behind; resume with --since %" PRIu64
                  " (this watcher did not read its changes as fast as the "
                  "node applied them)\n",
                  rev);
}

/* Lines for the events after cl's cursor, until they are all written or
 * its socket queue is full. */
static void watch_pump(struct ctl_client* cl)
{
    /* A line is at most two paths, each escaped to twice its length. */
    const size_t cap = CTL_WATCH_CHUNK + 4 * WATCH_PATH_MAX + 64;
    struct watch_event ev;

    if (cl->state != CL_WATCHING || cl->closing) {
        return; /* (closed: the node may be stopping) */
    }
    struct watch_ring* r = node_watch_ring(cl->ctl->node);
    if (r == NULL) {
        return;
    }
    while (cl->cursor < watch_ring_next_seq(r) &&
           uv_stream_get_write_queue_size((uv_stream_t*)&cl->pipe) <
               CTL_WATCH_QUEUE_BYTES) {
        if (cl->cursor < watch_ring_first_seq(r)) {
            watch_fell_behind(cl, watch_ring_from_rev(r));
            return;
        }
        struct watch_write* ww = malloc(sizeof(*ww) + cap);
        if (ww == NULL) {
            client_close(cl);
            return;
        }
        ww->cl = cl;
        ww->len = 0;
        ww->cap = cap;
        while (ww->len < CTL_WATCH_CHUNK &&
               watch_ring_get(r, cl->cursor, &ev)) {
            if (ev.revision >= cl->min_rev &&
                watch_event_matches(&ev, cl->prefix) && !put_event(ww, &ev)) {
                break; /* cannot happen: cap holds the longest line */
            }
            cl->cursor++;
        }
        if (ww->len == 0) {
            free(ww);
            continue;
        }
        /* Queued until written: only the bytes of its lines. */
        struct watch_write* small = realloc(ww, sizeof(*ww) + ww->len);
        if (small != NULL) {
            ww = small;
            ww->cap = ww->len;
        }
        ww->req.data = ww;
        uv_buf_t b = uv_buf_init(ww->buf, (unsigned)ww->len);
        if (uv_write(&ww->req, (uv_stream_t*)&cl->pipe, &b, 1,
                     watch_written_cb) != 0) {
            free(ww);
            client_close(cl);
            return;
        }
    }
}

/* After events were added to a full ring: a watcher whose next event is
 * among the oldest sixteenth (dropped within that many changes) is told
 * to resume from it, while it is still held. */
static void watch_check_behind(struct ctl_client* cl)
{
    struct watch_event ev;

    if (cl->state != CL_WATCHING || cl->closing) {
        return;
    }
    struct watch_ring* r = node_watch_ring(cl->ctl->node);
    if (cl->cursor >= watch_ring_next_seq(r) || !watch_ring_full(r)) {
        return;
    }
    if (cl->cursor < watch_ring_first_seq(r)) {
        watch_fell_behind(cl, watch_ring_from_rev(r));
    } else if (cl->cursor - watch_ring_first_seq(r) <
                   watch_ring_count(r) / 16 &&
               watch_ring_get(r, cl->cursor, &ev)) {
        watch_fell_behind(cl, ev.revision);
    }
}

/* The node applied entries that added events: every watcher is pumped. */
static void watch_listener_cb(void* data)
{
    struct ctl* c = data;
    struct ctl_client *cl, *next;
    for (cl = c->head; cl != NULL; cl = next) {
        next = cl->next;
        if (cl->state == CL_WATCHING) {
            watch_pump(cl);
            watch_check_behind(cl);
        }
    }
}

static void watch_alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    struct ctl_client* cl = h->data;
    (void)suggested;
    *buf = uv_buf_init(cl->sink, sizeof(cl->sink));
}

/* A watcher's socket: anything it sends is dropped; its hang-up closes
 * it. */
static void watch_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf)
{
    (void)buf;
    if (nread < 0) {
        client_close(s->data);
    }
}

/* "watch\tSINCE\tPATH" (SINCE 0: from the next change). */
static void req_watch(struct ctl_client* cl, char* args)
{
    struct ctl* c = cl->ctl;
    struct watch_ring* r = node_watch_ring(c->node);
    char* path = strchr(args, '\t');
    char* end;

    if (path == NULL || path[1] != '/') {
        client_printf(cl, "error: usage: watch SINCE PATH\n");
        return;
    }
    *path++ = '\0';
    uint64_t since = strtoull(args, &end, 10);
    if (*end != '\0' || args[0] == '\0' || args[0] == '-') {
        client_printf(cl, "error: bad revision '%s'\n", args);
        return;
    }
    if (r == NULL) {
        client_printf(cl, "error: this node keeps no watch ring\n");
        return;
    }
    uint64_t from = watch_ring_from_rev(r);
    if (since != 0 && since < from) {
        client_printf(
            cl,
            "error: revision %" PRIu64
            " is older than this node can replay: the oldest is %" PRIu64
            " (%s)\n",
            since, from,
            watch_ring_full(r)
                ? "older changes were dropped from its watch ring, which "
                  "keeps the last --watch-events changes"
                : "the watch ring is kept in memory and starts when the "
                  "node starts");
        return;
    }
    if (c->watchers >= CTL_WATCHERS_MAX) {
        client_printf(cl,
                      "error: the node serves %d watchers already: retry "
                      "later\n",
                      CTL_WATCHERS_MAX);
        return;
    }
    if (since == 0) {
        since = watch_ring_next_rev(r);
    }
    cl->prefix = path;
    cl->min_rev = since;
    cl->cursor = watch_ring_seq_of(r, since);
    /* Counted as a watcher from now on (never evicted as idle). */
    c->served--;
    c->watchers++;
    cl->watcher = true;
    cl->state = CL_WATCHING;
    char head[64];
    int n = snprintf(head, sizeof(head),
                     "ok watching from revision %" PRIu64 "\n", since);
    struct watch_write* ww = malloc(sizeof(*ww) + (size_t)n);
    if (ww == NULL) {
        client_close(cl);
        return;
    }
    memcpy(ww->buf, head, (size_t)n);
    ww->cl = cl;
    ww->len = ww->cap = (size_t)n;
    ww->req.data = ww;
    uv_buf_t b = uv_buf_init(ww->buf, (unsigned)n);
    if (uv_write(&ww->req, (uv_stream_t*)&cl->pipe, &b, 1, watch_written_cb) !=
        0) {
        free(ww);
        client_close(cl);
        return;
    }
    /* Reading again: the client's hang-up closes the watcher. */
    uv_read_start((uv_stream_t*)&cl->pipe, watch_alloc_cb, watch_read_cb);
    watch_pump(cl);
}

/* ---- membership ---- */

static const char* conf_err_text(int err)
{
    switch (err) {
    case RAFT_EBEHIND:
        return "the learner is still catching up with the leader (or has "
               "not answered it lately): start it with the flags `member "
               "add` printed, and retry when `quorumfs member list` on the "
               "leader shows it reachable with a match index near the "
               "leader's";
    case RAFT_ECONFBUSY:
        return "another membership change is not committed yet (or the "
               "leader has not committed an entry of its term): retry in a "
               "moment";
    case RAFT_EBADCONF:
        return "refused by the leader (the last voter cannot be removed; "
               "only a learner can be promoted)";
    case RAFT_ENOTLEADER:
        return "no leader known: the cluster has no quorum now";
    case RAFT_ETRANSFER:
        return "a leadership transfer is running: retry in a moment";
    case -ETIMEDOUT:
        return "no answer within the proposal timeout: the change may still "
               "take effect; check `quorumfs member list`";
    case -EEXIST:
        return "a member of that name exists";
    case -EADDRINUSE:
        return "a member has that address";
    case -ENOENT:
        return "no member of that name";
    case -EALREADY:
        return "that member is a voter already";
    case -EPERM:
        return "this node is the one to remove and it is not the leader: it "
               "would not learn the outcome; run the command on another "
               "member";
    case -ENOSPC:
        return "the configuration is full";
    case -EAGAIN:
        return "too many membership changes waiting here";
    case -EDESTADDRREQ:
        return "a member has no peer address in the configuration: give it "
               "one first, on its node: `quorumfs member update NAME "
               "ADDR:PORT` with the peer security flags (docs/operations.md, "
               "\"Grow from one node\")";
    case -EOPNOTSUPP:
        return "this node runs without a peer listener: give it one first, "
               "with no restart: `quorumfs member update NAME ADDR:PORT` "
               "(its own name and address) with the peer security flags "
               "(docs/operations.md, \"Grow from one node\")";
    default:
        return err <= -1000 ? raft_strerror(err) : strerror(-err);
    }
}

static void member_done_cb(void* data, int err)
{
    struct ctl_client* cl = data;
    if (err != 0) {
        client_printf(cl, "error: %s\n", conf_err_text(err));
    } else {
        client_printf(cl, "ok committed\n");
    }
}

/* "update\tNAME\tADDR\tSECRET\tCERT\tKEY\tCA\tINSECURE" (absolute paths or
 * empty; INSECURE 0 or 1; checked by the client as mount checks them):
 * this node, running without a peer listener, starts one on ADDR and
 * records ADDR in the configuration (RAFT_CONF_SET_ADDR). Again on a node
 * that listens on ADDR already: the change only, or "ok" when it is
 * recorded. The listener stays when the change fails (a retry with the
 * same ADDR goes on from there). */
static void req_member_update(struct ctl_client* cl, char* args)
{
    char* f[8];
    unsigned k = 0;
    for (char* p = args; k < 8; k++) {
        f[k] = p;
        char* tab = strchr(p, '\t');
        if (tab == NULL) {
            k++;
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    if (k != 8) {
        client_printf(cl, "error: usage: member update NAME ADDR\n");
        return;
    }
    struct node* n = cl->ctl->node;
    const char *name = f[1], *addr = f[2];
    const char* self = node_options_of(n)->name;
    if (strcmp(name, self) != 0) {
        client_printf(cl,
                      "error: this node is %s: `member update` gives the "
                      "node it runs on its own peer address; run it on the "
                      "node of %s\n",
                      self, name);
        return;
    }
    const char* now = node_peer_addr(n);
    if (now != NULL && strcmp(now, addr) != 0) {
        client_printf(cl,
                      "error: this node listens for peers on %s already: "
                      "a member's address changes only with a restart "
                      "(docs/operations.md)\n",
                      now);
        return;
    }
    if (now == NULL) {
        struct tls_config* tls = NULL;
        struct tls_config_options t = {
            .secret_file = f[3][0] != '\0' ? f[3] : NULL,
            .cert_file = f[4][0] != '\0' ? f[4] : NULL,
            .key_file = f[5][0] != '\0' ? f[5] : NULL,
            .ca_file = f[6][0] != '\0' ? f[6] : NULL,
            .self_name = self};
        bool insecure = strcmp(f[7], "1") == 0;
        char err[TLS_ERROR_MAX + PATH_MAX];
        if (!insecure && t.secret_file == NULL && t.cert_file == NULL) {
            client_printf(cl, "error: peer security flags missing\n");
            return;
        }
        if (!insecure && tls_config_new(&t, &tls, err, sizeof(err)) != 0) {
            client_printf(cl, "error: %s\n", err);
            return;
        }
        int rv = node_peer_listen(n, addr, tls);
        if (rv != 0) {
            tls_config_free(tls);
            client_printf(cl, "error: cannot listen on %s: %s\n", addr,
                          strerror(-rv));
            return;
        }
    }
    int rv =
        node_conf_change(n, RAFT_CONF_SET_ADDR, name, addr, member_done_cb, cl);
    if (rv == -EALREADY) {
        client_printf(cl, "ok committed\n");
    } else if (rv != 0) {
        member_done_cb(cl, rv);
    }
}

/* "member\tadd\tNAME\tADDR" | "member\tpromote\tNAME" |
 * "member\tremove\tNAME" */
static void req_member(struct ctl_client* cl, char* args)
{
    char* name = strchr(args, '\t');
    if (name == NULL || name[1] == '\0') {
        client_printf(cl, "error: usage: member add|promote|remove NAME\n");
        return;
    }
    *name++ = '\0';
    char* addr = strchr(name, '\t');
    if (addr != NULL) {
        *addr++ = '\0';
    }
    uint8_t op;
    if (strcmp(args, "add") == 0 && addr != NULL && addr[0] != '\0') {
        op = RAFT_CONF_ADD_LEARNER;
    } else if (strcmp(args, "promote") == 0 && addr == NULL) {
        op = RAFT_CONF_PROMOTE;
    } else if (strcmp(args, "remove") == 0 && addr == NULL) {
        op = RAFT_CONF_REMOVE;
    } else {
        client_printf(cl,
                      "error: usage: member add NAME ADDR | promote NAME "
                      "| remove NAME\n");
        return;
    }
    int rv =
        node_conf_change(cl->ctl->node, op, name, addr, member_done_cb, cl);
    if (rv != 0) {
        member_done_cb(cl, rv);
    }
}

/* "transfer\tNAME": the leader starts a transfer; a follower asks the
 * leader to (RAFT_MSG_TRANSFER). */
static void req_transfer(struct ctl_client* cl, const char* to)
{
    struct node* n = cl->ctl->node;
    int rv = node_transfer_leadership(n, to);
    if (rv == 0) {
        client_printf(cl, "ok transfer %s\n",
                      node_is_leader(n) ? "started" : "asked of the leader");
    } else if (rv == -ENOENT) {
        client_printf(cl, "error: no member of that name\n");
    } else if (rv == -EAGAIN) {
        client_printf(cl,
                      "error: no leader is known: retry once one is "
                      "elected\n");
    } else {
        client_printf(cl, "error: the target is not a voter\n");
    }
}

static void answer(struct ctl_client* cl)
{
    struct node* n = cl->ctl->node;
    char* out = NULL;
    size_t len = 0;
    int rv;

    uv_read_stop((uv_stream_t*)&cl->pipe);
    cl->state = CL_BUSY; /* until client_send */
    if (strncmp(cl->req, "restore\t", 8) == 0) {
        req_restore(cl, cl->req + 8);
        return;
    }
    if (strncmp(cl->req, "compact\t", 8) == 0) {
        req_compact(cl, cl->req + 8);
        return;
    }
    if (strcmp(cl->req, "snapshot save") == 0) {
        req_snapshot_save(cl);
        return;
    }
    if (strncmp(cl->req, "member\tupdate\t", 14) == 0) {
        req_member_update(cl, cl->req + 7);
        return;
    }
    if (strncmp(cl->req, "member\t", 7) == 0) {
        req_member(cl, cl->req + 7);
        return;
    }
    if (strncmp(cl->req, "transfer\t", 9) == 0) {
        req_transfer(cl, cl->req + 9);
        return;
    }
    if (strncmp(cl->req, "watch\t", 6) == 0) {
        req_watch(cl, cl->req + 6);
        return;
    }
    if (strcmp(cl->req, "status json") == 0) {
        rv = node_status_json(n, &out, &len);
    } else if (strcmp(cl->req, "status text") == 0) {
        rv = node_status_text(n, &out, &len);
    } else if (strcmp(cl->req, "health") == 0) {
        rv = node_health_text(n, &out, &len);
    } else if (strcmp(cl->req, "members") == 0) {
        rv = node_members_text(n, &out, &len);
    } else if (strcmp(cl->req, "member list json") == 0 ||
               strcmp(cl->req, "member list text") == 0) {
        rv = node_member_list(n, cl->req[12] == 'j', &out, &len);
    } else if (strcmp(cl->req, "leader") == 0) {
        rv = node_leader_text(n, &out, &len);
    } else {
        client_printf(cl, "error: unknown request\n");
        return;
    }
    if (rv != 0) {
        client_printf(cl, "error: %s\n", strerror(-rv));
        return;
    }
    client_send(cl, out, len, NULL, 0);
}

static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    struct ctl_client* cl = h->data;
    (void)suggested;
    *buf = uv_buf_init(cl->req + cl->len,
                       (unsigned)(sizeof(cl->req) - 1 - cl->len));
}

static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf)
{
    struct ctl_client* cl = s->data;
    if (nread < 0) {
        client_close(cl);
        return;
    }
    if (cl->state == CL_REFUSED) {
        if (memchr(buf->base, '\n', (size_t)nread) != NULL) {
            client_close(cl); /* its request: dropped */
        }
        return; /* cl->len stays 0: the buffer is reused */
    }
    cl->len += (size_t)nread;
    cl->req[cl->len] = '\0';
    char* nl = strchr(cl->req, '\n');
    if (nl != NULL) {
        *nl = '\0';
        answer(cl);
    } else if (cl->len >= sizeof(cl->req) - 1) {
        client_close(cl); /* too long */
    }
}

/* Close reading clients past CTL_IDLE_MS and writing ones that took none
 * of their answer for CTL_WRITE_STALL_MS. Stops when no client is left
 * (ctl_close: closes the timer then). */
static void sweep_cb(uv_timer_t* t)
{
    struct ctl* c = t->data;
    uint64_t now = uv_now(c->loop);
    struct ctl_client *cl, *next;

    for (cl = c->head; cl != NULL; cl = next) {
        next = cl->next;
        if ((cl->state == CL_READING || cl->state == CL_REFUSED) &&
            now - cl->since_ms >= CTL_IDLE_MS) {
            client_close(cl);
        } else if (cl->state == CL_WRITING) {
            size_t q = uv_stream_get_write_queue_size((uv_stream_t*)&cl->pipe);
            if (q < cl->queued) {
                cl->queued = q; /* it reads: the clock starts again */
                cl->since_ms = now;
            } else if (now - cl->since_ms >= CTL_WRITE_STALL_MS) {
                client_close(cl);
            }
        }
    }
    if (c->head == NULL) {
        uv_timer_stop(t);
        if (c->closing) {
            uv_close((uv_handle_t*)t, handle_closed_cb);
        }
    }
}

/* The peer's uid may use the socket: root or the node's own euid. */
static bool peer_allowed(struct ctl_client* cl)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t*)&cl->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        len != sizeof(cred)) {
        return false;
    }
    return cred.uid == 0 || cred.uid == geteuid();
}

/* Whether cl's request line already waits in its socket, unread: the
 * loop accepted it with others in one turn and reads it next. */
static bool request_waiting(struct ctl_client* cl)
{
    char buf[CTL_REQUEST_MAX];
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t*)&cl->pipe, &fd) != 0) {
        return false;
    }
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    return n > 0 && memchr(buf, '\n', (size_t)n) != NULL;
}

/* The oldest client still sending its request (a refused one first) and
 * not merely unread (request_waiting), or NULL; *unread set when a client
 * passed over was so. */
static struct ctl_client* oldest_reading(struct ctl* c, bool* unread)
{
    struct ctl_client* reading = NULL;
    *unread = false;
    for (struct ctl_client* cl = c->head; cl != NULL; cl = cl->next) {
        if (cl->state == CL_REFUSED) {
            return cl;
        }
        if (cl->state == CL_READING && reading == NULL) {
            if (request_waiting(cl)) {
                *unread = true;
            } else {
                reading = cl;
            }
        }
    }
    return reading;
}

static void connection_cb(uv_stream_t* server, int status)
{
    struct ctl* c = server->data;
    if (status != 0 || c->closing) {
        return;
    }
    struct ctl_client* cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        return;
    }
    cl->ctl = c;
    uv_pipe_init(c->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    c->clients++;
    if (uv_accept(server, (uv_stream_t*)&cl->pipe) != 0) {
        client_close(cl);
        return;
    }
    if (c->served >= CTL_CLIENTS_MAX) {
        /* The newest connection wins over an idle one. Clients whose
         * request waits unread are not idle: past the cap by those (at
         * most CTL_CLIENTS_MAX more), they leave "reading" at once. */
        bool unread;
        struct ctl_client* old = oldest_reading(c, &unread);
        if (old != NULL) {
            client_close(old);
        } else if (!unread || c->served >= 2 * CTL_CLIENTS_MAX) {
            client_printf(cl,
                          "error: the node is answering %d control requests "
                          "already: retry in a moment\n",
                          CTL_CLIENTS_MAX);
            return;
        }
    }
    cl->listed = true;
    cl->prev = c->tail;
    if (c->tail != NULL) {
        c->tail->next = cl;
    } else {
        c->head = cl;
    }
    c->tail = cl;
    c->served++;
    cl->state = CL_READING;
    if (!peer_allowed(cl)) {
        /* One line, which a fresh socket's buffer takes at once; the
         * request is read and dropped so that the client's write of it
         * does not fail before it reads the line. */
        client_printf(cl,
                      "error: permission denied (the control socket serves "
                      "root and uid %u only)\n",
                      (unsigned)geteuid());
        if (cl->closing) {
            return;
        }
        cl->state = CL_REFUSED;
    }
    cl->since_ms = uv_now(c->loop);
    if (!uv_is_active((uv_handle_t*)&c->sweep)) {
        uv_timer_start(&c->sweep, sweep_cb, CTL_SWEEP_MS, CTL_SWEEP_MS);
    }
    if (uv_read_start((uv_stream_t*)&cl->pipe, alloc_cb, read_cb) != 0) {
        client_close(cl);
    }
}

/* ---- lifecycle ---- */

static void handle_closed_cb(uv_handle_t* h)
{
    struct ctl* c = h->data;
    c->open_handles--;
    ctl_maybe_free(c);
}

/* Metrics of the watchers (a node_metrics source): how many, the bytes
 * queued on their sockets, and how far the slowest is behind the ring. */
static void watch_metrics(void* data, struct node_metrics_buf* b)
{
    const struct ctl* c = data;
    const struct watch_ring* ring = node_watch_ring(c->node);
    uint64_t next = ring != NULL ? watch_ring_next_seq(ring) : 0;
    uint64_t queued = 0, behind = 0;
    for (const struct ctl_client* cl = c->head; cl != NULL; cl = cl->next) {
        if (cl->state != CL_WATCHING || cl->closing) {
            continue;
        }
        queued += uv_stream_get_write_queue_size((const uv_stream_t*)&cl->pipe);
        if (next > cl->cursor && next - cl->cursor > behind) {
            behind = next - cl->cursor;
        }
    }
    node_metrics_single(b, "quorumfs_watchers", "gauge",
                        "Clients of quorumfs watch on this node.", c->watchers);
    node_metrics_single(b, "quorumfs_watch_queue_bytes", "gauge",
                        "Lines queued on the watchers' sockets, in bytes.",
                        queued);
    node_metrics_single(b, "quorumfs_watch_queue_depth", "gauge",
                        "Changes the slowest watcher has not been sent yet "
                        "(it falls behind when the ring drops them).",
                        behind);
    node_metrics_single(b, "quorumfs_watch_ring_events", "gauge",
                        "Changes in this node's watch ring.",
                        ring != NULL ? watch_ring_count(ring) : 0);
}

struct ctl* ctl_start(uv_loop_t* loop,
                      struct node* n,
                      const char* data_dir,
                      const struct cli_log* log)
{
    struct ctl* c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->loop = loop;
    c->node = n;
    c->log = log;
    uv_timer_init(loop, &c->sweep);
    c->sweep.data = c;
    c->open_handles++;

    util_datadir_path(c->path, sizeof(c->path), data_dir, DATADIR_CTL_SOCK);
    unlink(c->path); /* stale from a crash; we hold the data dir lock */
    uv_pipe_init(loop, &c->server, 0);
    c->server.data = c;
    c->open_handles++;
    mode_t old = umask(0077);
    int rv = uv_pipe_bind(&c->server, c->path);
    umask(old);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t*)&c->server, CTL_BACKLOG, connection_cb);
    }
    if (rv != 0) {
        cli_log(c->log, RAFT_TRACE_WARN, "control socket %s: %s", c->path,
                uv_strerror(rv));
        uv_close((uv_handle_t*)&c->server, handle_closed_cb);
        return c;
    }
    c->listening = true;
    chmod(c->path, 0600);
    node_set_watch_listener(n, watch_listener_cb, c);
    if (node_metrics_add_source(n, watch_metrics, c) != 0) {
        cli_log(c->log, RAFT_TRACE_WARN,
                "control socket: no room for the watch "
                "metrics");
    }
    return c;
}

void ctl_close(struct ctl* c)
{
    if (c == NULL || c->closing) {
        return;
    }
    c->closing = true;
    node_set_watch_listener(c->node, NULL, NULL);
    node_metrics_remove_source(c->node, watch_metrics, c);
    if (c->listening) {
        unlink(c->path);
        uv_close((uv_handle_t*)&c->server, handle_closed_cb);
    }
    /* Clients still sending a request get none; the others finish (the
     * sweep goes on, and closes its timer once none is left). */
    struct ctl_client *cl, *next;
    for (cl = c->head; cl != NULL; cl = next) {
        next = cl->next;
        if (cl->state == CL_READING || cl->state == CL_WATCHING) {
            client_close(cl);
        }
    }
    if (c->head == NULL) {
        uv_timer_stop(&c->sweep);
        uv_close((uv_handle_t*)&c->sweep, handle_closed_cb);
    } else if (!uv_is_active((uv_handle_t*)&c->sweep)) {
        uv_timer_start(&c->sweep, sweep_cb, CTL_SWEEP_MS, CTL_SWEEP_MS);
    }
}
