/* fuseconn.h - the FUSE connection of a node after kill -9: the start-up
 * clean-up of a dead previous instance's mount, and the watchdog that
 * aborts the connection when the node dies (docs/architecture.md "Restart
 * after kill -9").
 *
 * Connections are named by their device number: the `MAJ:MIN` of the
 * mount in /proc/self/mountinfo, and /sys/fs/fuse/connections/N with
 * N = MAJ << 20 | MIN. The node records its connection in the data dir's
 * LOCK file (second line: `fuse MAJ:MIN MOUNTPOINT`), so a later start can
 * prove that a mount is the one a dead node of this data dir left. Nothing
 * here stats or opens a path inside the mount: a hung mount would block the
 * caller too.
 *
 * Errors: negative errno; every refusal prints its reason on stderr. */
#ifndef QFS_FUSECONN_H
#define QFS_FUSECONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Before anything touches the mountpoint: if it is a quorumfs mount that a
 * dead node of data_dir left (the LOCK records its device, and the LOCK is
 * free or held by that node while it dies), abort the connection (so a
 * thread blocked in the kernel on it can exit), wait (bounded) for the old
 * process to let go of the LOCK, lazily unmount it, and say so on stderr.
 * 0: nothing there, or cleared. -EBUSY: a mount we cannot prove dead and
 * ours (a live owner, another device, no record): refused. */
int fuseconn_clear_stale(const char* mountpoint, const char* data_dir);

/* The FUSE fsname of this process's mount, "quorumfs:PID": the source
 * field of /proc/self/mountinfo then names the process that mounted it, so
 * the clean-up and the watchdog never take another node's mount (with a
 * reused device number) for a dead one's. */
void fuseconn_fsname(char* buf, size_t cap);

/* After the mount: record its device in data_dir/LOCK. *dev is set to the
 * connection number (0 if the mount is not found: nothing recorded). */
int fuseconn_record(const char* mountpoint,
                    const char* data_dir,
                    unsigned* conn);

/* A path field of /proc/self/mountinfo, whose space, tab, newline and
 * backslash are escaped as \ooo, unescaped in place. */
void fuseconn_mountinfo_unescape(char* s);

/* stderr appended to log_path (NULL: left as it is), stdin and stdout to
 * /dev/null: a process that runs in the background. */
void fuseconn_stdio_to(const char* log_path);

/* The watchdog: a small process forked before the node starts any thread.
 * It learns the connection number once mounted (arm) and aborts that
 * connection when the node's main thread dies without disarming it
 * (PR_SET_PDEATHSIG, and the pipe's EOF). log_path: where it writes what it
 * did (NULL: stderr). */
struct fuseconn_watchdog {
    pid_t pid; /* 0: not running */
    int fd;    /* write end of the pipe */
};
int fuseconn_watchdog_start(struct fuseconn_watchdog* w, const char* log_path);
/* Tell it the connection and the mountpoint. */
void fuseconn_watchdog_arm(struct fuseconn_watchdog* w,
                           unsigned conn,
                           const char* mountpoint);
/* Abort connection conn (/sys/fs/fuse/connections/conn/abort): every
 * pending request ends with an error. */
int fuseconn_abort(unsigned conn);
/* Orderly shutdown: it exits without touching anything. */
void fuseconn_watchdog_disarm(struct fuseconn_watchdog* w);

#endif /* QFS_FUSECONN_H */
