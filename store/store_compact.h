/* store_compact.h - rewriting the db file after STORE_OP_COMPACT (part of
 * the store's contract with store.h and store_history.h; byte format in
 * docs/format-db.md, "Compaction").
 *
 * STORE_OP_COMPACT only records the new compact revision C (replicated, the
 * same on every node). Each node then rewrites its own db file, off the
 * apply path, driven by the node:
 *
 *   if (store_compact_needed(st)) {
 *       rv = store_compact_begin(st, &c);      loop thread
 *       rv = store_compact_run(c);             any thread (e.g. the I/O
 *                                              thread, or a worker); reads
 *                                              and applies go on meanwhile
 *       drain the sealed frames in flight (as for store_image_install)
 *       rv = store_compact_finish(st, c);      loop thread: short switch
 *   }
 *
 * Crash safety: the old file stays complete until the rename (the commit
 * point); a leftover `<db>.compact` is deleted by store_open. Nothing has to
 * be done at restart: the node opens the store as usual, and if it still
 * needs compacting (store_compact_needed), starts again.
 * Test hooks: with QFS_CRASH_POINT set to compact-after-write,
 * compact-before-rename or compact-after-rename, the process calls
 * _exit(99) at that point.
 */
#ifndef QFS_STORE_COMPACT_H
#define QFS_STORE_COMPACT_H

#include <stdbool.h>

#include "store.h"

struct store_compaction;

/* The compact revision is past the oldest revision the db file holds and no
 * compaction is running. */
bool store_compact_needed(const struct store* st);

/* Loop. Start a rewrite to the store's compact revision. -EALREADY: nothing
 * to do; -EAGAIN: the records up to the compact revision are not durable
 * yet (seal/write frames, retry); -EBUSY: one is running; -EIO (sticky
 * error), or an open error. *c is owned by the caller until finish/abort. */
int store_compact_begin(struct store* st, struct store_compaction** c);

/* Any thread, once. Writes <db>.compact: the base state at the compact
 * revision + every later record durable at begin; fdatasync. Touches no
 * store state. Errors: -EIO/-ENOSPC..., -EUCLEAN (bad old frame), -ENOMEM;
 * on error call store_compact_abort. */
int store_compact_run(struct store_compaction* c);

/* Loop, after run returned 0. -EBUSY while a sealed frame is in flight
 * (drain, call again; c is still owned by the caller). Otherwise c is
 * consumed: 0 = the db file was replaced (views are rebuilt on next use);
 * -ECANCELED (an image was installed meanwhile), -EIO, or a write/rename
 * error = abandoned, the old file is kept and <db>.compact removed. A
 * failed fsync of the directory after the rename returns its error and makes
 * the store refuse further applies (sticky). */
int store_compact_finish(struct store* st, struct store_compaction* c);

/* Loop: drop a compaction that will not finish (run failed, shutdown). */
void store_compact_abort(struct store* st, struct store_compaction* c);

#endif /* QFS_STORE_COMPACT_H */
