/* ctl_internal.h - shared by the client side of the subcommands
 * (ctl_client.c), its argument handling (ctl_args.c) and the offline
 * snapshot file commands (ctl_snapfile.c). */
#ifndef QFS_CTL_INTERNAL_H
#define QFS_CTL_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The flags each command takes (the rest are refused, naming the help). */
enum {
    F_JSON = 1u << 0,
    F_TARGET = 1u << 1, /* --mount, --data-dir, --name */
    F_REV = 1u << 2,
    F_SEED = 1u << 3, /* --initial-cluster, --listen-peer */
    F_TO = 1u << 4,
    F_LEARNER = 1u << 5,
    F_WATCH = 1u << 6,           /* --since, --exec, --debounce */
    F_PEER = 1u << 7,            /* --peer-* (member update) */
    CTL_WATCH_DEBOUNCE_MS = 200, /* watch --exec: default --debounce */
};

/* The flags cmd takes into *flags; false when cmd is no client command. */
bool ctl__cmd_flags(const char* cmd, unsigned* flags);
/* "Try `quorumfs CMD --help`." on stderr; returns 2 (the exit status). */
int ctl__usage_error(const char* cmd);
/* The arguments of cmd (after the flags): its subcommand word, if it has
 * some, and their number. 0, or 2 once the error is printed (naming the
 * nearest subcommand to a mistyped one). */
int ctl__check_args(const char* cmd, int argc, char** argv);
/* Whether path is a data dir (it holds an identity file). */
bool ctl__is_data_dir(const char* path);

/* Which node a command talks to: at most one of path (a data dir, or a
 * path in a quorumfs mount), mount (a path in a quorumfs mount: the data
 * dir is read from MOUNTPOINT/.cluster/status) and data_dir; else name
 * (/var/lib/quorumfs/NAME) or /var/lib/quorumfs/default (which must then
 * be a data dir: if not, the error lists this host's quorumfs mounts). */
struct ctl_target {
    const char* cmd; /* for messages */
    const char* path;
    const char* mount;
    const char* data_dir;
    const char* name;
    char dir[PATH_MAX]; /* out: the data dir */
};
/* 0: dir is set; 1: an error was printed; 2: usage error. */
int ctl__resolve_target(struct ctl_target* t);

/* s as a JSON string (quoted, escaped) on stdout. */
void ctl__print_json_string(const char* s);

/* `snapshot status FILE [--json]` and `snapshot restore FILE --data-dir
 * DIR --name NAME [--initial-cluster LIST]` (ctl_snapfile.c): the exit
 * status, messages printed. */
int ctl__snapshot_status(const char* file, bool json);
int ctl__snapshot_restore(const char* file,
                          const char* dir,
                          const char* name,
                          const char* cluster);

/* Where `quorumfs watch PATH` looks: a path in a quorumfs mount gives
 * the path inside the tree (into tree) and the mountpoint (into mnt: 1);
 * any other absolute PATH is a path inside the tree already (0; the node
 * is chosen by the flags). -1: an error was printed. */
int ctl__tree_path(const char* path,
                   char* tree,
                   size_t tree_cap,
                   char* mnt,
                   size_t mnt_cap);

/* `quorumfs watch` (ctl_watch.c): the node's data dir, the subtree, and
 * the flags. Returns the exit status (it returns only on an error or when
 * the node goes away without --exec). */
struct ctl_watch_opts {
    const char* dir;
    const char* tree;
    uint64_t since; /* 0: from the next change */
    bool json;
    const char* exec; /* NULL: print the changes */
    unsigned debounce_ms;
};
int ctl__watch(const struct ctl_watch_opts* o);

#endif /* QFS_CTL_INTERNAL_H */
