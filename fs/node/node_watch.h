/* node_watch.h - the watch ring: the last committed changes this node
 * applied, one event per applied command (revision, operation, path, and
 * for a rename the new path), kept in memory for `quorumfs watch`
 * (docs/operations.md, "Watch").
 *
 * Every node records the changes it applies itself (node_apply.c), so a
 * watcher on any node sees every committed change once, in revision order,
 * whichever node made it. A file update is one event: writes between open
 * and close are one command (close-to-commit), so no event names a
 * half-written file.
 *
 * Bounds: at most events_max events and bytes_max bytes of paths; the
 * oldest are dropped first. The ring starts empty when the node starts (its
 * first replayable revision is the store's revision then, plus one). When
 * the node installs a snapshot from the leader, the changes it skips are
 * not known one by one: one WATCH_RESET event (path "/", the revision the
 * snapshot holds) stands for all of them.
 *
 * Events are numbered by a sequence number (seq) that only grows: a
 * reader keeps the seq of the next event it wants; events [first_seq,
 * next_seq) are held. Loop thread only; no locking. */
#ifndef QFS_NODE_WATCH_H
#define QFS_NODE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WATCH_RING_EVENTS_DEFAULT = 65536,
    WATCH_RING_EVENTS_MIN = 16,
    WATCH_RING_EVENTS_MAX = 1 << 24,
    WATCH_RING_BYTES_DEFAULT = 8 << 20, /* paths, plus 64 per event */
    WATCH_EVENT_OVERHEAD = 64,
    /* The longest path an event holds, with its NUL (the store's path_max
     * is at most 65536). */
    WATCH_PATH_MAX = 65536 + 1,
};

enum watch_op {
    WATCH_CREATE = 1,
    WATCH_MKDIR,
    WATCH_SYMLINK,
    WATCH_MKNOD,
    WATCH_WRITE,
    WATCH_SETATTR,
    WATCH_UNLINK,
    WATCH_RMDIR,
    WATCH_RENAME,   /* path -> path2 */
    WATCH_EXCHANGE, /* path <-> path2 (RENAME_EXCHANGE) */
    WATCH_RESTORE,  /* path: the subtree reset to a snapshot */
    WATCH_RESET,    /* "/": a snapshot from the leader replaced the tree */
    WATCH_LINK,     /* path2: a new name (hard link) of the file at path */
};

struct watch_event {
    uint64_t revision;
    uint8_t op;        /* enum watch_op */
    const char* path;  /* absolute path in the tree; borrowed */
    const char* path2; /* RENAME, EXCHANGE: the other path; LINK: the new
                          name; else NULL */
};

struct watch_ring;

/* A ring holding at most events_max events (clamped to [MIN, MAX]) and
 * bytes_max bytes; from_rev: the first revision it will hold in full (the
 * store's revision + 1). NULL: out of memory. */
struct watch_ring* watch_ring_new(size_t events_max,
                                  size_t bytes_max,
                                  uint64_t from_rev);
void watch_ring_free(struct watch_ring* r);

/* Append an event (strings are copied); the oldest are dropped to make
 * room. revision must be greater than the last one's (-EINVAL if not:
 * nothing added). -ENOMEM: not added, and the ring is cleared and starts
 * again after this revision (a reader that needs it learns it is gone). */
int watch_ring_append(struct watch_ring* r, const struct watch_event* ev);
/* Append one more event of the last event's revision (a change of a file
 * with several names: one event per name). -EINVAL if ev's revision is not
 * the last event's (or the ring holds none); else as watch_ring_append.
 * Dropping any event of a revision makes that revision unreplayable
 * (from_rev moves past it). */
int watch_ring_append_more(struct watch_ring* r, const struct watch_event* ev);

uint64_t watch_ring_first_seq(const struct watch_ring* r);
uint64_t watch_ring_next_seq(const struct watch_ring* r);
/* The oldest revision whose change (if it had one) the ring still holds:
 * every change from it on is in the ring. */
uint64_t watch_ring_from_rev(const struct watch_ring* r);
/* The revision after the last event (from_rev when the ring is empty). */
uint64_t watch_ring_next_rev(const struct watch_ring* r);
/* Whether the ring has dropped events to make room (it is full). */
bool watch_ring_full(const struct watch_ring* r);
/* The events held, for a bound on how far behind a reader may be. */
size_t watch_ring_count(const struct watch_ring* r);
/* The event numbered seq (strings borrowed until the next append): false
 * when it is not held. */
bool watch_ring_get(const struct watch_ring* r,
                    uint64_t seq,
                    struct watch_event* out);
/* The seq of the first event with a revision >= rev (next_seq when
 * none). Callers check rev >= from_rev first. */
uint64_t watch_ring_seq_of(const struct watch_ring* r, uint64_t rev);

/* "create", "write", ... */
const char* watch_op_name(uint8_t op);
/* Whether ev concerns the subtree at prefix (an absolute path; "/" is
 * everything): a path of ev is prefix or below it, compared by whole
 * components; a rename, exchange, restore or reset of an ancestor of
 * prefix concerns it too (the subtree moved or was replaced). */
bool watch_event_matches(const struct watch_event* ev, const char* prefix);

#endif /* QFS_NODE_WATCH_H */
