/* node_watch.c - the watch ring (node_watch.h), and the node's side of it:
 * one event per command applied (the paths read before the command
 * changes the tree), a reset event per installed snapshot, and the
 * listener told after each batch of applied entries. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "node_state_internal.h"
#include "node_watch.h"

/* ---- the ring ---- */

struct watch_slot {
    uint64_t revision;
    uint8_t op;
    char* path;  /* malloc'd: path, NUL, then path2 and NUL for two */
    size_t cost; /* bytes counted against bytes_max */
    bool two;
};

struct watch_ring {
    struct watch_slot* slots; /* events_max; seq s at s % events_max */
    size_t events_max, bytes_max, bytes;
    uint64_t first_seq, next_seq;
    uint64_t from_rev, next_rev;
    bool full;
};

struct watch_ring* watch_ring_new(size_t events_max,
                                  size_t bytes_max,
                                  uint64_t from_rev)
{
    struct watch_ring* r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    if (events_max < WATCH_RING_EVENTS_MIN) {
        events_max = WATCH_RING_EVENTS_MIN;
    }
    if (events_max > WATCH_RING_EVENTS_MAX) {
        events_max = WATCH_RING_EVENTS_MAX;
    }
    r->slots = calloc(events_max, sizeof(*r->slots));
    if (r->slots == NULL) {
        free(r);
        return NULL;
    }
    r->events_max = events_max;
    r->bytes_max = bytes_max;
    r->from_rev = r->next_rev = from_rev;
    return r;
}

static void drop_oldest(struct watch_ring* r)
{
    assert(r->first_seq < r->next_seq);
    struct watch_slot* s = &r->slots[r->first_seq % r->events_max];
    r->bytes -= s->cost;
    r->from_rev = s->revision + 1;
    free(s->path);
    memset(s, 0, sizeof(*s));
    r->first_seq++;
    r->full = true;
}

void watch_ring_free(struct watch_ring* r)
{
    if (r == NULL) {
        return;
    }
    while (r->first_seq < r->next_seq) {
        drop_oldest(r);
    }
    free(r->slots);
    free(r);
}

static int append(struct watch_ring* r, const struct watch_event* ev);

int watch_ring_append(struct watch_ring* r, const struct watch_event* ev)
{
    assert(ev->path != NULL);
    if (ev->revision < r->next_rev) {
        return -EINVAL;
    }
    return append(r, ev);
}

int watch_ring_append_more(struct watch_ring* r, const struct watch_event* ev)
{
    assert(ev->path != NULL);
    if (r->first_seq == r->next_seq ||
        r->slots[(r->next_seq - 1) % r->events_max].revision != ev->revision) {
        return -EINVAL;
    }
    return append(r, ev);
}

static int append(struct watch_ring* r, const struct watch_event* ev)
{
    size_t l1 = strlen(ev->path) + 1;
    size_t l2 = ev->path2 != NULL ? strlen(ev->path2) + 1 : 0;
    size_t cost = l1 + l2 + WATCH_EVENT_OVERHEAD;
    char* p = malloc(l1 + l2);
    if (p == NULL) {
        while (r->first_seq < r->next_seq) {
            drop_oldest(r);
        }
        r->from_rev = r->next_rev = ev->revision + 1;
        return -ENOMEM;
    }
    memcpy(p, ev->path, l1);
    if (l2 > 0) {
        memcpy(p + l1, ev->path2, l2);
    }
    while (r->next_seq - r->first_seq >= r->events_max ||
           (r->first_seq < r->next_seq && r->bytes + cost > r->bytes_max)) {
        drop_oldest(r);
    }
    struct watch_slot* s = &r->slots[r->next_seq % r->events_max];
    *s = (struct watch_slot){.revision = ev->revision,
                             .op = ev->op,
                             .path = p,
                             .cost = cost,
                             .two = l2 > 0};
    r->bytes += cost;
    r->next_seq++;
    r->next_rev = ev->revision + 1;
    return 0;
}

uint64_t watch_ring_first_seq(const struct watch_ring* r)
{
    return r->first_seq;
}

uint64_t watch_ring_next_seq(const struct watch_ring* r)
{
    return r->next_seq;
}

uint64_t watch_ring_from_rev(const struct watch_ring* r)
{
    return r->from_rev;
}

uint64_t watch_ring_next_rev(const struct watch_ring* r)
{
    return r->next_rev;
}

bool watch_ring_full(const struct watch_ring* r)
{
    return r->full;
}

size_t watch_ring_count(const struct watch_ring* r)
{
    return (size_t)(r->next_seq - r->first_seq);
}

bool watch_ring_get(const struct watch_ring* r,
                    uint64_t seq,
                    struct watch_event* out)
{
    if (seq < r->first_seq || seq >= r->next_seq) {
        return false;
    }
    const struct watch_slot* s = &r->slots[seq % r->events_max];
    out->revision = s->revision;
    out->op = s->op;
    out->path = s->path;
    out->path2 = s->two ? s->path + strlen(s->path) + 1 : NULL;
    return true;
}

uint64_t watch_ring_seq_of(const struct watch_ring* r, uint64_t rev)
{
    uint64_t lo = r->first_seq, hi = r->next_seq; /* answer in [lo, hi] */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (r->slots[mid % r->events_max].revision < rev) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const char* watch_op_name(uint8_t op)
{
    static const char* const names[] = {
        [WATCH_CREATE] = "create",   [WATCH_MKDIR] = "mkdir",
        [WATCH_SYMLINK] = "symlink", [WATCH_MKNOD] = "mknod",
        [WATCH_WRITE] = "write",     [WATCH_SETATTR] = "setattr",
        [WATCH_UNLINK] = "unlink",   [WATCH_RMDIR] = "rmdir",
        [WATCH_RENAME] = "rename",   [WATCH_EXCHANGE] = "exchange",
        [WATCH_RESTORE] = "restore", [WATCH_RESET] = "reset",
        [WATCH_LINK] = "link",
    };
    if (op >= sizeof(names) / sizeof(names[0]) || names[op] == NULL) {
        return "unknown";
    }
    return names[op];
}

/* Whether path is dir or below it, by whole components. */
static bool path_under(const char* path, const char* dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') {
        n--; /* "/app/" is "/app" */
    }
    if (n == 1 && dir[0] == '/') {
        return true;
    }
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

bool watch_event_matches(const struct watch_event* ev, const char* prefix)
{
    bool wide = ev->op == WATCH_RENAME || ev->op == WATCH_EXCHANGE ||
                ev->op == WATCH_RESTORE || ev->op == WATCH_RESET ||
                ev->op == WATCH_RMDIR;
    if (path_under(ev->path, prefix) ||
        (wide && path_under(prefix, ev->path))) {
        return true;
    }
    return ev->path2 != NULL && (path_under(ev->path2, prefix) ||
                                 (wide && path_under(prefix, ev->path2)));
}

/* ---- the node's side ---- */

int node__watch_open(struct node* n)
{
    struct store_stats s;
    store_get_stats(n->store, &s);
    n->watch = watch_ring_new(n->opts.watch_events, n->opts.watch_bytes,
                              s.revision + 1);
    return n->watch != NULL ? 0 : -ENOMEM;
}

void node__watch_close(struct node* n)
{
    watch_ring_free(n->watch);
    n->watch = NULL;
    if (n->watch_next != NULL) {
        free(n->watch_next->more);
        n->watch_next->more = NULL;
        n->watch_next->more_len = 0;
    }
}

/* dir's path and "/name" into buf. */
static int child_path(struct node* n,
                      uint64_t dir,
                      const char* name,
                      char* buf,
                      size_t cap)
{
    int rv = store_path(n->store, dir, buf, cap);
    if (rv != 0) {
        return rv;
    }
    size_t len = strlen(buf);
    size_t need = strlen(name) + (len > 1 ? 1 : 0);
    if (len + need + 1 > cap) {
        return -ENAMETOOLONG;
    }
    if (len > 1) {
        buf[len++] = '/';
    }
    strcpy(buf + len, name);
    return 0;
}

/* store_names callback: keep every path but the first (the primary one,
 * the event's own). */
static int more_path(void* data,
                     uint64_t parent,
                     const char* name,
                     const char* path)
{
    struct node_watch_pending* p = data;
    (void)parent;
    (void)name;
    if (strcmp(path, p->path) == 0 && p->more == NULL) {
        return 0;
    }
    size_t l = strlen(path) + 1;
    char* m = realloc(p->more, p->more_len + l);
    if (m == NULL) {
        return -ENOMEM; /* those names get no event */
    }
    memcpy(m + p->more_len, path, l);
    p->more = m;
    p->more_len += l;
    return 0;
}

void node__watch_prepare(struct node* n,
                         const void* cmd,
                         size_t len,
                         struct node_watch_pending* p)
{
    struct store_cmd c;
    struct store_attr a;
    int rv = -EINVAL;

    p->op = 0;
    free(p->more);
    p->more = NULL;
    p->more_len = 0;
    if (n->watch == NULL || store_cmd_decode(&c, cmd, len) != 0) {
        return;
    }
    p->path2[0] = '\0';
    switch (c.op) {
    case STORE_OP_CREATE:
    case STORE_OP_MKDIR:
    case STORE_OP_SYMLINK:
    case STORE_OP_MKNOD:
    case STORE_OP_UNLINK:
    case STORE_OP_RMDIR:
        rv = child_path(n, c.parent, c.name, p->path, sizeof(p->path));
        p->op = c.op == STORE_OP_CREATE    ? WATCH_CREATE
                : c.op == STORE_OP_MKDIR   ? WATCH_MKDIR
                : c.op == STORE_OP_SYMLINK ? WATCH_SYMLINK
                : c.op == STORE_OP_MKNOD   ? WATCH_MKNOD
                : c.op == STORE_OP_UNLINK  ? WATCH_UNLINK
                                           : WATCH_RMDIR;
        if (rv == 0 && c.op == STORE_OP_CREATE &&
            (c.flags & STORE_WITH_DATA) != 0 &&
            store_lookup(n->store, c.parent, c.name, &a) == 0) {
            p->op = WATCH_WRITE; /* a new file's content over a file
                                    made meanwhile (last commit wins) */
        }
        break;
    case STORE_OP_WRITE:
    case STORE_OP_SETATTR:
        rv = store_path(n->store, c.ino, p->path, sizeof(p->path));
        p->op = c.op == STORE_OP_WRITE ? WATCH_WRITE : WATCH_SETATTR;
        if (rv == 0 && store_getattr(n->store, c.ino, &a) == 0 && a.nlink > 1) {
            /* every other name of the file (hard links): one event each */
            store_names(n->store, c.ino, p->path2, sizeof(p->path2), more_path,
                        p);
        }
        break;
    case STORE_OP_LINK:
        rv = store_path(n->store, c.ino, p->path, sizeof(p->path));
        if (rv == 0) {
            rv = child_path(n, c.parent, c.name, p->path2, sizeof(p->path2));
        }
        p->op = WATCH_LINK;
        break;
    case STORE_OP_RENAME:
        rv = child_path(n, c.parent, c.name, p->path, sizeof(p->path));
        if (rv == 0) {
            rv = child_path(n, c.new_parent, c.new_name, p->path2,
                            sizeof(p->path2));
        }
        p->op = (c.flags & STORE_EXCHANGE) != 0 ? WATCH_EXCHANGE : WATCH_RENAME;
        break;
    case STORE_OP_RESTORE:
        if (c.new_name != NULL && strlen(c.new_name) < sizeof(p->path)) {
            strcpy(p->path, c.new_name);
            rv = 0;
        }
        p->op = WATCH_RESTORE;
        break;
    default:
        return; /* history and outcomes change no path */
    }
    if (rv != 0) {
        p->op = 0; /* the command will fail the same way: no change */
    }
}

void node__watch_applied(struct node* n,
                         const struct node_watch_pending* p,
                         const struct store_result* res)
{
    if (p->op == 0 || res->err != 0 || res->duplicate ||
        res->revision < watch_ring_next_rev(n->watch)) {
        return;
    }
    struct watch_event ev = {
        .revision = res->revision,
        .op = p->op,
        .path = p->path,
        .path2 = p->op == WATCH_RENAME || p->op == WATCH_EXCHANGE ||
                         p->op == WATCH_LINK
                     ? p->path2
                     : NULL,
    };
    int rv = watch_ring_append(n->watch, &ev);
    for (size_t off = 0; rv == 0 && off < p->more_len;) {
        ev.path = p->more + off;
        rv = watch_ring_append_more(n->watch, &ev);
        off += strlen(p->more + off) + 1;
    }
    if (rv == -ENOMEM) {
        node__log(n, RAFT_TRACE_WARN,
                  "watch: out of memory: the watch ring restarts after "
                  "revision %" PRIu64,
                  res->revision);
    }
    n->watch_pending = true;
}

void node__watch_reset(struct node* n)
{
    struct store_stats s;
    if (n->watch == NULL) {
        return;
    }
    store_get_stats(n->store, &s);
    struct watch_event ev = {
        .revision = s.revision, .op = WATCH_RESET, .path = "/"};
    if (watch_ring_append(n->watch, &ev) == 0) {
        n->watch_pending = true;
    }
}

void node__watch_notify(struct node* n)
{
    if (!n->watch_pending) {
        return;
    }
    n->watch_pending = false;
    if (n->watch_cb != NULL) {
        n->watch_cb(n->watch_cb_data);
    }
}

struct watch_ring* node_watch_ring(struct node* n)
{
    return n->watch;
}

void node_set_watch_listener(struct node* n, void (*cb)(void*), void* data)
{
    n->watch_cb = cb;
    n->watch_cb_data = data;
}
