/* mount.h - `quorumfs mount`: its flags (mount_flags.c: usage, parsing
 * and every check made before anything is written) and the running node
 * with its FUSE mount (mount.c). Shared by main.c and those two files of
 * fs/cli only. */
#ifndef QFS_MOUNT_H
#define QFS_MOUNT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../../raft/tls.h"
#include "node.h"

struct mount_opts {
    const char* mountpoint;
    const char* fuse_opts; /* extra -o options */
    bool foreground;
    bool linearizable;
    uint64_t pending_bytes; /* fs_options.pending_bytes_max (0: default) */
    uint64_t fuse_threads;  /* fs_reader_start's threads (0: default) */
    struct tls_config_options tls; /* --peer-* files */
    bool peer_insecure;
    bool reserve_set;     /* --quota-reserve-percent given */
    uint64_t reserve_pct; /* fs_options.quota_reserve_pct */
    struct node_options node;
    char data_dir[PATH_MAX];
    /* --listen-metrics ADDR:PORT (NULL: off) and its listening socket,
     * bound while the flags are checked (-1: none). */
    const char* listen_metrics;
    int metrics_fd;
};

/* The mount command's usage text. */
void mount_usage(FILE* out);
/* Parse and check the flags into *mo (node_options_default first): 0, or
 * 2 (usage error, message printed); --help prints the usage and exits 0.
 * With peer security it loads the files (mo->node.peer_tls). */
int mount_parse(int argc, char** argv, struct mount_opts* mo);
/* `quorumfs mount ...` (argv[0] is "mount"): the exit status. */
int mount_command(int argc, char** argv);
/* Whether `name` (without "--") is a flag of `quorumfs mount`: 1 when it
 * takes a value, 0 when not, -1 for no such flag. */
int mount_flag_takes_value(const char* name);
/* 0 when libfuse takes `opt` (one option, no comma) as a mount option,
 * else -EINVAL; says nothing. */
int mount_check_fuse_opt(const char* opt);

/* The peer security flags of a node that listens for peers on `listen`
 * (NULL: it does not): a secret file, or a certificate, its key and the
 * CA, or `insecure`; loaded into *out (t->self_name set by the caller;
 * NULL when insecure or no listener). 0, or 2 with the reason printed
 * after "CMD: " (the messages of `quorumfs mount`, also used by
 * `quorumfs member update`). */
int mount_peer_security(const char* cmd,
                        const struct tls_config_options* t,
                        bool insecure,
                        const char* listen,
                        struct tls_config** out);

/* fstab (mount_fstab.c): mount.fuse3 runs `quorumfs SOURCE MOUNTPOINT
 * -o OPTIONS`. Whether argv (the whole command line) has that form (an
 * absolute MOUNTPOINT, SOURCE no command's name), and the command that
 * maps the options to `quorumfs mount` flags and runs it (the exit
 * status; 2 with a message for an unknown option). */
bool mount_fstab_form(int argc, char** argv);
int mount_fstab_command(int argc, char** argv);

#endif /* QFS_MOUNT_H */
