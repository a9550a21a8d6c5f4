/* main.c - the quorumfs command: `quorumfs mount` runs a node and its FUSE
 * mount; other subcommands talk to a running node (fs/cli/ctl.c).
 *
 * Start-up order: clear a mount left by a dead node of the data dir
 * (fuseconn.c) -> check the mountpoint -> fork (unless -f) -> fork the
 * watchdog (before any thread) -> node_start
 * (lock, log, db, replay, raft, transport) -> a read barrier (the store
 * catches up with what the cluster had committed; a cluster member that
 * cannot within --catch-up-timeout-ms exits with an error unless
 * --mount-stale) -> FUSE session mount -> record the connection in LOCK
 * and arm the watchdog -> the notifier thread -> poll the FUSE fd on the
 * loop -> tell the parent
 * "ready" (the parent exits 0).
 * Logs: with -f on stderr. Without -f the child logs to
 * DATA_DIR/quorumfs.log from its first line (log_to_file, before the
 * watchdog and node_start); until it is mounted its warnings and errors
 * are also written to the terminal of the waiting parent, so a start-up
 * that fails says why where it was started.
 * Shutdown (SIGTERM/SIGINT, or the mount going away): stop reading FUSE
 * requests, node_stop (pending operations fail, log and db are synced),
 * disarm the watchdog, unmount, exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "../../raft/tls.h"
#include "../../raft/transport.h"
#include "../../raft/util/datadir.h"
#include "../../raft/util/fileio.h"
#include "ctl.h"
#include "fs.h"
#include "fuseconn.h"
#include "identity.h"
#include "node.h"
#include "node_internal.h"

#define QFS_VERSION "0.1.0"

/* FUSE requests handled per poll callback before yielding to the loop. */
enum { FUSE_REQUESTS_PER_POLL = 64 };

struct mount_opts {
    const char* mountpoint;
    const char* fuse_opts; /* extra -o options */
    bool foreground;
    bool linearizable;
    uint64_t pending_bytes; /* fs_options.pending_bytes_max (0: default) */
    struct tls_config_options tls; /* --peer-* files */
    bool peer_insecure;
    bool reserve_set;     /* --quota-reserve-percent given */
    uint64_t reserve_pct; /* fs_options.quota_reserve_pct */
    struct node_options node;
    char data_dir[PATH_MAX];
};

struct app {
    uv_loop_t loop;
    uv_timer_t settle_timer; /* fs_options.settle_timer */
    uv_async_t notify_async; /* fs_options.notify_async */
    struct mount_opts* mo;
    struct node* node;
    struct fs* fs;
    struct fuse_session* se;
    struct ctl* ctl;
    struct node_retention* retention;
    struct fuse_buf buf;
    uv_poll_t fuse_poll;
    uv_timer_t resume_timer; /* backlog full: FUSE reads paused */
    uv_signal_t sigterm, sigint;
    int ready_fd; /* pipe to the waiting parent, -1 when none */
    int term_fd;  /* the parent's stderr until mounted (no -f), else -1 */
    struct fs_options fo;
    bool startup_failed;
    bool shutting_down;
    bool mounted;
    int exit_code;
    struct fuseconn_watchdog wd; /* aborts the connection if we die */
};

static void usage_main(FILE* out)
{
    fprintf(
        out,
        "quorumfs " QFS_VERSION
        " - a replicated configuration filesystem\n"
        "\n"
        "Usage:\n"
        "  quorumfs mount MOUNTPOINT [options]   run a node and mount it\n"
        "  quorumfs status [PATH] [--json]      state and health of a node\n"
        "  quorumfs endpoint health [PATH] [--json]\n"
        "                                       every member healthy?\n"
        "  quorumfs members                     the members, one a line\n"
        "  quorumfs leader [transfer [--to N]]  show or move the leader\n"
        "  quorumfs member list [--json]\n"
        "  quorumfs member add NAME ADDR:PORT [--learner]\n"
        "  quorumfs member promote|remove NAME  change the membership\n"
        "  quorumfs restore NAME|@REV [PATH]    reset PATH to a snapshot\n"
        "  quorumfs compact [--revision R]      forget old history now\n"
        "  quorumfs snapshot save FILE\n"
        "  quorumfs snapshot status FILE [--json]\n"
        "  quorumfs snapshot restore FILE --data-dir D --name N\n"
        "           [--initial-cluster LIST]    seed a new cluster\n"
        "  quorumfs help [CMD] | CMD --help     usage of one command\n"
        "  quorumfs --help | --version\n"
        "\n"
        "The commands that talk to a running node choose it with PATH\n"
        "(status, endpoint health: a quorumfs mountpoint or a data dir),\n"
        "--mount M (the node mounted on M), --data-dir D or --name N\n"
        "(data dir /var/lib/quorumfs/N); the default is\n"
        "/var/lib/quorumfs/default.\n"
        "Run `quorumfs help CMD` (or `quorumfs CMD --help`) for one\n"
        "command's usage and flags.\n");
}

static void usage_mount(FILE* out)
{
    fprintf(
        out,
        "Usage: quorumfs mount MOUNTPOINT [options]\n"
        "\n"
        "Runs a quorumfs node and mounts its tree on MOUNTPOINT (an existing\n"
        "empty directory). Returns once the mount is ready, unless -f.\n"
        "With no cluster options the node is a single-node cluster.\n"
        "\n"
        "Node:\n"
        "  --name N                   node name (default: default)\n"
        "  --data-dir D               data directory (default:\n"
        "                             /var/lib/quorumfs/NAME); created if\n"
        "                             missing; one node per data dir\n"
        "  -f, --foreground           stay in the foreground, log to stderr\n"
        "                             (otherwise log to D/quorumfs.log)\n"
        "  --log-level L              debug|info|warn|error (default info)\n"
        "\n"
        "Cluster (etcd's names):\n"
        "  --listen-peer ADDR:PORT    peer address of this node: its own\n"
        "                             entry in --initial-cluster (or\n"
        "                             0.0.0.0 / [::] with that port)\n"
        "  --initial-cluster LIST     n1=ADDR:PORT,n2=ADDR:PORT,...: numeric\n"
        "                             IPv4 or [IPv6] addresses, ports 1 to\n"
        "                             65535; no name or address twice\n"
        "  --initial-cluster-state S  new (default) or existing (restart, or\n"
        "                             rejoin with an empty data dir; such a\n"
        "                             node does not vote until caught up)\n"
        "  --cluster-id HEX           the cluster's id, as `quorumfs member\n"
        "                             add` prints it: a node joining a\n"
        "                             cluster with an empty data dir needs it\n"
        "  --catch-up-timeout-ms MS   at start, a cluster member mounts only\n"
        "                             once it has applied what the cluster\n"
        "                             had committed; it waits this long for\n"
        "                             that, then exits with an error\n"
        "                             (default 30000)\n"
        "  --mount-stale              if that wait fails, mount the local\n"
        "                             state anyway, maybe behind the cluster\n"
        "                             (disaster recovery only)\n"
        "  --heartbeat-ms MS          leader heartbeat (default 100); below\n"
        "                             --election-ms\n"
        "  --election-ms MS           election timeout base (default 1000)\n"
        "  --proposal-timeout-ms MS   a write waits this long for a quorum,\n"
        "                             then fails with EIO (default 5 x\n"
        "                             election)\n"
        "  --snapshot-entries N       compact the raft log every N applied\n"
        "                             entries (default 10000)\n"
        "  --snapshot-bytes BYTES     and when its applied entries in memory\n"
        "                             reach BYTES (default 16777216 = 16 MiB;\n"
        "                             0: no byte limit; else >= 1 MiB)\n"
        "\n"
        "Peer security (docs/security.md); a node with --listen-peer needs\n"
        "one of these:\n"
        "  --peer-secret-file FILE    a secret shared by all members (16 to\n"
        "                             4096 bytes, mode 0600): mutual TLS 1.3\n"
        "                             with it as pre-shared key; make one "
        "with\n"
        "                             `head -c 32 /dev/urandom | base64`\n"
        "  --peer-cert-file FILE      this member's certificate (PEM), naming\n"
        "                             it (SAN DNS:NAME or CN=NAME)\n"
        "  --peer-key-file FILE       its private key (PEM)\n"
        "  --peer-trusted-ca-file F   the CA that signs every member's\n"
        "                             certificate: mutual TLS 1.3, a peer\n"
        "                             must prove the member name it claims\n"
        "  --peer-insecure            no authentication and no encryption:\n"
        "                             anyone who reaches the peer port can\n"
        "                             write the tree (tests, trusted links)\n"
        "\n");
    fprintf(
        out,
        "History (/.snapshots/@REV, quorumfs restore):\n"
        "  --history-revisions N      keep at most N past revisions (default\n"
        "                             10000; 0: no limit)\n"
        "  --history-hours H          keep at most H hours of history\n"
        "                             (default 24; 0: no limit); named\n"
        "                             snapshots are always kept\n"
        "  --history-bytes BYTES      keep at most BYTES of past commands\n"
        "                             (default 536870912 = 512 MiB; 0: no\n"
        "                             limit; else >= 1 MiB)\n"
        "\n"
        "Filesystem:\n"
        "  -o OPT[,OPT...]            FUSE mount options, e.g. allow_other\n"
        "                             (default_permissions is always on)\n"
        "  --consistency C            serializable (default): reads from the\n"
        "                             local applied state; linearizable:\n"
        "                             lookups/opens confirm with the leader\n"
        "  --file-size-max BYTES      largest file (default 1048576, at\n"
        "                             most 67108864 = 64 MiB): EFBIG\n"
        "  --quota-bytes BYTES        total live bytes (default 33554432 =\n"
        "                             32 MiB): ENOSPC. Live values are held\n"
        "                             in memory: budget 150 MiB + 4 x the\n"
        "                             quota per node (docs/operations.md)\n"
        "  --quota-reserve-percent P  the last P%% of the quota is root's\n"
        "                             (default 5, 0 to 50): other uids get\n"
        "                             ENOSPC past quota x (100 - P) / 100.\n"
        "                             A write is held to the P of the node\n"
        "                             it is made on: set it alike on all\n"
        "  --pending-bytes BYTES      file updates written on this mount and\n"
        "                             not yet closed, in bytes (default\n"
        "                             16777216 = 16 MiB): past it a write\n"
        "                             fails with ENOSPC, its update dropped\n"
        "\n"
        "Times (MS) are 1 to 86400000 (a day). A bad flag is refused\n"
        "(exit status 2) before anything is written.\n"
        "\n"
        "The control socket D/ctl.sock (`quorumfs status`, `member`,\n"
        "`restore`, `compact`, `snapshot save`, `leader`) serves root and\n"
        "the uid the node runs as, no one else (docs/security.md).\n"
        "\n"
        "Stop with `fusermount3 -u MOUNTPOINT`, `umount MOUNTPOINT` or "
        "SIGTERM.\n");
}

static int parse_u64(const char* s, uint64_t* out)
{
    char* end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' ||
        strchr(s, '-') != NULL) { /* strtoull takes "-1" as 2^64 - 1 */
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_cluster(const char* list, struct node_options* o)
{
    return identity_parse_cluster(list, o->initial, &o->n_initial);
}

enum {
    OPT_NAME = 1000,
    OPT_DATA_DIR,
    OPT_LOG_LEVEL,
    OPT_LISTEN_PEER,
    OPT_INITIAL_CLUSTER,
    OPT_CLUSTER_STATE,
    OPT_HEARTBEAT,
    OPT_ELECTION,
    OPT_PROPOSAL_TIMEOUT,
    OPT_SNAPSHOT_ENTRIES,
    OPT_CONSISTENCY,
    OPT_FILE_SIZE_MAX,
    OPT_QUOTA,
    OPT_HISTORY_REVISIONS,
    OPT_HISTORY_HOURS,
    OPT_CATCH_UP_TIMEOUT,
    OPT_MOUNT_STALE,
    OPT_SNAPSHOT_BYTES,
    OPT_HISTORY_BYTES,
    OPT_PENDING_BYTES,
    OPT_CLUSTER_ID,
    OPT_PEER_SECRET,
    OPT_PEER_CERT,
    OPT_PEER_KEY,
    OPT_PEER_CA,
    OPT_PEER_INSECURE,
    OPT_QUOTA_RESERVE,
};

static const struct option mount_long[] = {
    {"help", no_argument, NULL, 'h'},
    {"foreground", no_argument, NULL, 'f'},
    {"name", required_argument, NULL, OPT_NAME},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"listen-peer", required_argument, NULL, OPT_LISTEN_PEER},
    {"initial-cluster", required_argument, NULL, OPT_INITIAL_CLUSTER},
    {"initial-cluster-state", required_argument, NULL, OPT_CLUSTER_STATE},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"election-ms", required_argument, NULL, OPT_ELECTION},
    {"proposal-timeout-ms", required_argument, NULL, OPT_PROPOSAL_TIMEOUT},
    {"snapshot-entries", required_argument, NULL, OPT_SNAPSHOT_ENTRIES},
    {"consistency", required_argument, NULL, OPT_CONSISTENCY},
    {"file-size-max", required_argument, NULL, OPT_FILE_SIZE_MAX},
    {"quota-bytes", required_argument, NULL, OPT_QUOTA},
    {"history-revisions", required_argument, NULL, OPT_HISTORY_REVISIONS},
    {"history-hours", required_argument, NULL, OPT_HISTORY_HOURS},
    {"catch-up-timeout-ms", required_argument, NULL, OPT_CATCH_UP_TIMEOUT},
    {"mount-stale", no_argument, NULL, OPT_MOUNT_STALE},
    {"snapshot-bytes", required_argument, NULL, OPT_SNAPSHOT_BYTES},
    {"history-bytes", required_argument, NULL, OPT_HISTORY_BYTES},
    {"pending-bytes", required_argument, NULL, OPT_PENDING_BYTES},
    {"cluster-id", required_argument, NULL, OPT_CLUSTER_ID},
    {"peer-secret-file", required_argument, NULL, OPT_PEER_SECRET},
    {"peer-cert-file", required_argument, NULL, OPT_PEER_CERT},
    {"peer-key-file", required_argument, NULL, OPT_PEER_KEY},
    {"peer-trusted-ca-file", required_argument, NULL, OPT_PEER_CA},
    {"peer-insecure", no_argument, NULL, OPT_PEER_INSECURE},
    {"quota-reserve-percent", required_argument, NULL, OPT_QUOTA_RESERVE},
    {NULL, 0, NULL, 0},
};

static int parse_level(const char* s)
{
    static const char* names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* The longest election timeout, heartbeat, proposal or catch-up wait a
 * flag may ask for: one day, in ms. */
#define MOUNT_MS_MAX 86400000u

/* Returns 0, or 1 with *why set to what the flag takes (the caller prints
 * the message; exit status 2: usage). */
static int parse_one(struct mount_opts* mo,
                     int c,
                     const char* arg,
                     const char** why)
{
    struct node_options* o = &mo->node;
    uint64_t v = 0;

    *why = "a whole number above 0";
    switch (c) {
    case 'f':
        mo->foreground = true;
        return 0;
    case 'o':
        mo->fuse_opts = arg;
        return 0;
    case OPT_MOUNT_STALE:
        o->mount_stale = true;
        return 0;
    case OPT_PEER_SECRET:
        mo->tls.secret_file = arg;
        return 0;
    case OPT_PEER_CERT:
        mo->tls.cert_file = arg;
        return 0;
    case OPT_PEER_KEY:
        mo->tls.key_file = arg;
        return 0;
    case OPT_PEER_CA:
        mo->tls.ca_file = arg;
        return 0;
    case OPT_PEER_INSECURE:
        mo->peer_insecure = true;
        return 0;
    case OPT_NAME:
        *why = "at most 31 bytes";
        o->name = arg;
        return strlen(arg) < RAFT_NAME_MAX ? 0 : 1;
    case OPT_DATA_DIR:
        o->data_dir = arg;
        return 0;
    case OPT_LISTEN_PEER:
        *why =
            "expected IP:PORT, a numeric IPv4 address or [IPv6] and a "
            "port up to 65535";
        o->listen_peer = arg;
        return transport_parse_addr(arg, &(struct sockaddr_storage){0}, true) !=
               0;
    case OPT_LOG_LEVEL:
        *why = "debug, info, warn or error";
        o->log_level = parse_level(arg);
        return o->log_level < 0;
    case OPT_INITIAL_CLUSTER:
        *why = "expected NAME=IP:PORT,NAME=IP:PORT,...";
        return parse_cluster(arg, o) != 0;
    case OPT_CLUSTER_STATE:
        *why = "new or existing";
        o->cluster_existing = strcmp(arg, "existing") == 0;
        return !(o->cluster_existing || strcmp(arg, "new") == 0);
    case OPT_CLUSTER_ID: {
        char* end;
        *why = "a hex number above 0";
        errno = 0;
        o->cluster_id = strtoull(arg, &end, 16);
        return errno != 0 || end == arg || *end != '\0' || arg[0] == '-' ||
               o->cluster_id == 0;
    }
    case OPT_CONSISTENCY:
        *why = "serializable or linearizable";
        mo->linearizable = strcmp(arg, "linearizable") == 0;
        return !(mo->linearizable || strcmp(arg, "serializable") == 0);
    case OPT_HISTORY_REVISIONS: /* 0 is allowed: no limit */
        *why = "a whole number, 0 for no limit";
        return parse_u64(arg, &o->history_revisions) != 0;
    case OPT_HISTORY_HOURS:
        *why = "a whole number of hours, 0 for no limit";
        return parse_u64(arg, &o->history_hours) != 0 ||
               o->history_hours > UINT64_MAX / 3600000;
    case OPT_SNAPSHOT_BYTES: /* 0: no byte limit; else at least 1 MiB */
        *why = "0 for no limit, or at least 1048576";
        return parse_u64(arg, &o->snapshot_bytes) != 0 ||
               (o->snapshot_bytes != 0 && o->snapshot_bytes < (1u << 20));
    case OPT_PENDING_BYTES:
        return parse_u64(arg, &mo->pending_bytes) != 0 ||
               mo->pending_bytes == 0;
    case OPT_QUOTA_RESERVE:
        *why = "a whole number of percent, 0 to 50";
        mo->reserve_set = true;
        return parse_u64(arg, &mo->reserve_pct) != 0 ||
               mo->reserve_pct > STORE_RESERVE_PCT_MAX;
    case OPT_HISTORY_BYTES: /* 0: no limit; else at least 1 MiB */
        *why = "0 for no limit, or at least 1048576";
        return parse_u64(arg, &o->history_bytes) != 0 ||
               (o->history_bytes != 0 && o->history_bytes < (1u << 20));
    case OPT_HEARTBEAT:
    case OPT_ELECTION:
    case OPT_PROPOSAL_TIMEOUT:
    case OPT_CATCH_UP_TIMEOUT:
        *why = "milliseconds, 1 to 86400000";
        if (parse_u64(arg, &v) != 0 || v == 0 || v > MOUNT_MS_MAX) {
            return 1;
        }
        break;
    case OPT_FILE_SIZE_MAX:
        *why = "1 to 67108864 bytes, 64 MiB";
        if (parse_u64(arg, &v) != 0 || v == 0 || v > STORE_FILE_SIZE_LIMIT) {
            return 1;
        }
        o->store.file_size_max = v;
        return 0;
    default:
        break;
    }
    if (parse_u64(arg, &v) != 0 || v == 0) {
        return 1;
    }
    switch (c) {
    case OPT_HEARTBEAT:
        o->heartbeat_ms = (unsigned)v;
        break;
    case OPT_ELECTION:
        o->election_ms = (unsigned)v;
        break;
    case OPT_PROPOSAL_TIMEOUT:
        o->proposal_timeout_ms = (unsigned)v;
        break;
    case OPT_CATCH_UP_TIMEOUT:
        o->catch_up_timeout_ms = (unsigned)v;
        break;
    case OPT_SNAPSHOT_ENTRIES:
        o->snapshot_entries = v;
        break;
    case OPT_QUOTA:
        o->store.quota_bytes = v;
        break;
    default:
        return 1;
    }
    return 0;
}

/* The flag of option c as typed ("--heartbeat-ms", "-o"). */
static void flag_name(int c, char* out, size_t cap)
{
    snprintf(out, cap, "-%c", c);
    for (const struct option* l = mount_long; l->name != NULL; l++) {
        if (l->val == c) {
            snprintf(out, cap, "--%s", l->name);
            return;
        }
    }
}

/* Whether a node listening on `listen` is reached at `peer`: the same
 * address and port, or a wildcard listen address (0.0.0.0, [::]) and the
 * same port. */
static bool peer_addr_matches(const struct sockaddr_storage* listen,
                              const struct sockaddr_storage* peer)
{
    if (listen->ss_family != peer->ss_family) {
        return false;
    }
    if (listen->ss_family == AF_INET) {
        const struct sockaddr_in* l = (const struct sockaddr_in*)listen;
        const struct sockaddr_in* p = (const struct sockaddr_in*)peer;
        return l->sin_port == p->sin_port &&
               (l->sin_addr.s_addr == p->sin_addr.s_addr ||
                l->sin_addr.s_addr == htonl(INADDR_ANY));
    }
    const struct sockaddr_in6* l = (const struct sockaddr_in6*)listen;
    const struct sockaddr_in6* p = (const struct sockaddr_in6*)peer;
    return l->sin6_port == p->sin6_port &&
           (memcmp(&l->sin6_addr, &p->sin6_addr, sizeof(p->sin6_addr)) == 0 ||
            IN6_IS_ADDR_UNSPECIFIED(&l->sin6_addr));
}

/* The members of --initial-cluster: valid addresses, no name or address
 * twice, and this node's entry is its --listen-peer (a wildcard listen
 * address, 0.0.0.0 or [::], matches any host with the same port).
 * Returns 0, or 2 with a message printed. */
static int check_cluster(const struct node_options* o)
{
    struct sockaddr_storage sa[RAFT_SERVERS_MAX];

    for (unsigned i = 0; i < o->n_initial; i++) {
        const struct node_peer* p = &o->initial[i];
        if (transport_parse_addr(p->addr, &sa[i], false) != 0) {
            fprintf(stderr,
                    "quorumfs mount: --initial-cluster: bad address in "
                    "'%s=%s' (expected IP:PORT, a numeric IPv4 address or "
                    "[IPv6] and a port from 1 to 65535)\n",
                    p->name, p->addr);
            return 2;
        }
        for (unsigned j = 0; j < i; j++) {
            const struct node_peer* q = &o->initial[j];
            bool same_name = strcmp(p->name, q->name) == 0;
            if (same_name || strcmp(p->addr, q->addr) == 0) {
                fprintf(stderr,
                        "quorumfs mount: --initial-cluster: '%s=%s' and "
                        "'%s=%s' have the same %s (each member needs its "
                        "own name and address)\n",
                        q->name, q->addr, p->name, p->addr,
                        same_name ? "name" : "address");
                return 2;
            }
        }
    }
    struct sockaddr_storage ls;
    if (o->listen_peer == NULL ||
        transport_parse_addr(o->listen_peer, &ls, true) != 0) {
        return 0;
    }
    for (unsigned i = 0; i < o->n_initial; i++) {
        if (strcmp(o->initial[i].name, o->name) != 0) {
            continue;
        }
        if (!peer_addr_matches(&ls, &sa[i])) {
            fprintf(stderr,
                    "quorumfs mount: --listen-peer %s is not this node's "
                    "address in --initial-cluster (%s=%s)\n",
                    o->listen_peer, o->initial[i].name, o->initial[i].addr);
            return 2;
        }
    }
    return 0;
}

/* A node with a peer listener proves its membership with a secret or a
 * certificate (docs/security.md), unless --peer-insecure says otherwise:
 * the files are loaded and checked here, before anything is written, so a
 * wrong file, an expired certificate or a wrong CA fails the start with
 * its reason. Returns 0, or 2 with a message printed. */
static int check_peer_security(struct mount_opts* mo)
{
    struct tls_config_options* t = &mo->tls;
    bool any = t->secret_file != NULL || t->cert_file != NULL ||
               t->key_file != NULL || t->ca_file != NULL;
    char err[TLS_ERROR_MAX + PATH_MAX];
    if (mo->node.listen_peer == NULL) {
        if (any || mo->peer_insecure) {
            fprintf(stderr,
                    "quorumfs mount: the --peer-* flags need --listen-peer "
                    "(a node without it has no peers)\n");
            return 2;
        }
        return 0;
    }
    if (mo->peer_insecure && any) {
        fprintf(stderr,
                "quorumfs mount: --peer-insecure and the --peer-secret-file "
                "/ certificate flags are exclusive\n");
        return 2;
    }
    if (mo->peer_insecure) {
        return 0;
    }
    if (!any) {
        fprintf(stderr,
                "quorumfs mount: a node with --listen-peer needs peer "
                "authentication: --peer-secret-file FILE, or "
                "--peer-cert-file, --peer-key-file and "
                "--peer-trusted-ca-file (docs/security.md); "
                "--peer-insecure lets anyone who reaches %s write the "
                "tree\n",
                mo->node.listen_peer);
        return 2;
    }
    t->self_name = mo->node.name;
    if (tls_config_new(t, &mo->node.peer_tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "quorumfs mount: %s\n", err);
        return 2;
    }
    return 0;
}

static int parse_mount(int argc, char** argv, struct mount_opts* mo)
{
    int c;

    node_options_default(&mo->node);
    optind = 1;
    while ((c = getopt_long(argc, argv, "hfo:", mount_long, NULL)) != -1) {
        const char* why = NULL;
        if (c == 'h') {
            usage_mount(stdout);
            exit(0);
        }
        if (c == '?' || parse_one(mo, c, optarg, &why) != 0) {
            if (c != '?') {
                char flag[64];
                flag_name(c, flag, sizeof(flag));
                fprintf(stderr, "quorumfs mount: %s: bad value '%s' (%s)\n",
                        flag, optarg, why);
            }
            fprintf(stderr, "Try `quorumfs mount --help`.\n");
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                "quorumfs mount: expected exactly one MOUNTPOINT\n"
                "Try `quorumfs mount --help`.\n");
        return 2;
    }
    mo->mountpoint = argv[optind];
    if (mo->node.n_initial > 0 && mo->node.listen_peer == NULL) {
        fprintf(stderr,
                "quorumfs mount: --initial-cluster needs "
                "--listen-peer\n");
        return 2;
    }
    if (mo->node.heartbeat_ms >= mo->node.election_ms) {
        fprintf(stderr,
                "quorumfs mount: --heartbeat-ms %u must be below "
                "--election-ms %u (the leader heartbeats several times per "
                "election timeout)\n",
                mo->node.heartbeat_ms, mo->node.election_ms);
        return 2;
    }
    if (check_cluster(&mo->node) != 0 || check_peer_security(mo) != 0) {
        return 2;
    }
    if (mo->node.data_dir == NULL) {
        snprintf(mo->data_dir, sizeof(mo->data_dir), "/var/lib/quorumfs/%s",
                 mo->node.name);
        mo->node.data_dir = mo->data_dir;
    }
    return 0;
}

static int check_mountpoint(const char* mnt)
{
    struct stat st;
    if (stat(mnt, &st) != 0) {
        fprintf(stderr, "quorumfs: mountpoint %s: %s\n", mnt, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "quorumfs: mountpoint %s is not a directory\n", mnt);
        return -1;
    }
    DIR* d = opendir(mnt);
    if (d == NULL) {
        fprintf(stderr, "quorumfs: mountpoint %s: %s\n", mnt, strerror(errno));
        return -1;
    }
    struct dirent* e;
    bool empty = true;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = false;
            break;
        }
    }
    closedir(d);
    if (!empty) {
        fprintf(stderr, "quorumfs: mountpoint %s is not empty\n", mnt);
        return -1;
    }
    return 0;
}

/* ---- running ---- */

static void begin_shutdown(struct app* a, const char* why);

static void fuse_poll_cb(uv_poll_t* p, int status, int events);

static bool backlog_full(struct app* a)
{
    return a->fs != NULL && node_backlog_full(a->node, fs_held_bytes(a->fs));
}

/* Memory is bounded in bytes (DESIGN §1): while the proposals waiting for
 * a quorum hold NODE_PENDING_BYTES_MAX, requests stay in the kernel's
 * queue (their writers wait there) instead of in our memory. */
static void resume_cb(uv_timer_t* t)
{
    struct app* a = t->data;
    if (a->shutting_down) {
        return;
    }
    if (backlog_full(a)) {
        uv_timer_start(&a->resume_timer, resume_cb, 1, 0);
        return;
    }
    uv_poll_start(&a->fuse_poll, UV_READABLE, fuse_poll_cb);
}

static void fuse_poll_cb(uv_poll_t* p, int status, int events)
{
    struct app* a = p->data;

    for (int i = 0; i < FUSE_REQUESTS_PER_POLL && !a->shutting_down; i++) {
        if (backlog_full(a)) {
            uv_poll_stop(&a->fuse_poll);
            a->resume_timer.data = a;
            uv_timer_start(&a->resume_timer, resume_cb, 1, 0);
            return;
        }
        int res = fuse_session_receive_buf(a->se, &a->buf);
        if (res == -EINTR) {
            continue;
        }
        if (res == -EAGAIN) {
            return;
        }
        if (res <= 0 || fuse_session_exited(a->se)) {
            a->mounted = res == 0 ? false : a->mounted;
            begin_shutdown(a, res == 0 ? "unmounted" : strerror(-res));
            return;
        }
        fuse_session_process_buf(a->se, &a->buf);
    }
}

static void node_stopped_cb(void* data)
{
    struct app* a = data;
    a->node = NULL;
    uv_stop(&a->loop);
}

/* Deferred truncations are committed and writes in flight answered. */
static void fs_quiesced_cb(void* data)
{
    struct app* a = data;
    node_stop(a->node, node_stopped_cb, a);
}

static void begin_shutdown(struct app* a, const char* why)
{
    if (a->shutting_down) {
        return;
    }
    a->shutting_down = true;
    node__log(RAFT_TRACE_INFO, "shutting down (%s)", why);
    uv_poll_stop(&a->fuse_poll);
    uv_timer_stop(&a->resume_timer);
    uv_signal_stop(&a->sigterm);
    uv_signal_stop(&a->sigint);
    if (a->ctl != NULL) {
        ctl_close(a->ctl);
        a->ctl = NULL;
    }
    node_retention_close(a->retention);
    a->retention = NULL;
    if (a->fs != NULL) {
        fs_quiesce(a->fs, fs_quiesced_cb, a); /* then the node stops */
        return;
    }
    node_stop(a->node, node_stopped_cb, a);
}

static void signal_cb(uv_signal_t* s, int signum)
{
    begin_shutdown(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int mount_fuse(struct app* a)
{
    char opts[1024];
    snprintf(opts, sizeof(opts),
             "default_permissions,fsname=quorumfs,subtype=quorumfs%s%s",
             a->mo->fuse_opts != NULL ? "," : "",
             a->mo->fuse_opts != NULL ? a->mo->fuse_opts : "");
    char* argv[] = {"quorumfs", "-o", opts, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);

    a->se = fuse_session_new(&args, fs_lowlevel_ops(),
                             sizeof(struct fuse_lowlevel_ops), a->fs);
    fuse_opt_free_args(&args);
    if (a->se == NULL) {
        node__log(RAFT_TRACE_ERROR,
                  "cannot create the FUSE session (options '%s')", opts);
        return -EINVAL;
    }
    if (fuse_session_mount(a->se, a->mo->mountpoint) != 0) {
        node__log(RAFT_TRACE_ERROR, "cannot mount on %s", a->mo->mountpoint);
        fuse_session_destroy(a->se);
        a->se = NULL;
        return -EIO;
    }
    a->mounted = true;
    unsigned conn;
    if (fuseconn_record(a->mo->mountpoint, a->mo->node.data_dir, &conn) == 0) {
        fuseconn_watchdog_arm(&a->wd, conn, a->mo->mountpoint);
    } else {
        node__log(RAFT_TRACE_WARN,
                  "cannot record the FUSE connection of %s: a restart after "
                  "kill -9 will not clear the mount by itself",
                  a->mo->mountpoint);
    }
    int fd = fuse_session_fd(a->se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rv = fs_start_notifier(a->fs, a->se);
    if (rv == 0) {
        rv = uv_poll_init(&a->loop, &a->fuse_poll, fd);
    }
    if (rv == 0) {
        a->fuse_poll.data = a;
        rv = uv_poll_start(&a->fuse_poll, UV_READABLE, fuse_poll_cb);
    }
    return rv;
}

static void tell_parent(struct app* a, char status)
{
    if (a->ready_fd >= 0) {
        if (write(a->ready_fd, &status, 1) != 1) {
            /* the parent is gone: nothing to tell */
        }
        close(a->ready_fd);
        a->ready_fd = -1;
    }
}

/* Without -f, in the child, before anything logs: stdio goes to
 * DATA_DIR/quorumfs.log (the data dir is made here if it is new), and the
 * parent's stderr is kept as a tee for warnings and errors until the mount
 * is ready (terminal_done). The parent waits on the ready pipe, not on
 * this fd, so it sees the lines before it exits. */
static void log_to_file(struct app* a)
{
    char path[PATH_MAX + 32];
    const char* dir = a->mo->node.data_dir;
    util_datadir_path(path, sizeof(path), dir, DATADIR_NODE_LOG);
    if (util_mkdir_parents(dir, 0700) == 0 && mkdir(dir, 0700) != 0 &&
        errno != EEXIST) {
        fprintf(stderr, "quorumfs: cannot create data dir %s: %s\n", dir,
                strerror(errno));
    }
    a->term_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    fuseconn_stdio_to(path);
    if (a->term_fd >= 0) {
        node__log_tee(a->term_fd, RAFT_TRACE_WARN);
    }
}

/* The tee to the parent's terminal ends: /dev/null takes the fd's place
 * (another thread may be writing a line to it right now). */
static void terminal_done(struct app* a)
{
    if (a->term_fd < 0) {
        return;
    }
    node__log_tee(-1, RAFT_TRACE_WARN);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, a->term_fd);
        close(null);
    }
}

static void notify_async_cb(uv_async_t* h)
{
    struct app* a = h->data;
    fs_notified(a->fs);
}

static void app_on_change(void* data, const struct store_change* c)
{
    struct app* a = data;
    if (a->fs != NULL) {
        fs_on_change(a->fs, c);
    }
}

/* The node has applied what was committed when it started (or gave up
 * waiting): mount, open the control socket, tell the waiting parent. */
static void startup_ready_cb(void* data, int err)
{
    struct app* a = data;
    if (err != 0 && node_startup_needs_cluster(a->node) &&
        !a->mo->node.mount_stale) {
        node__log(RAFT_TRACE_ERROR,
                  "could not catch up with the cluster within %u ms (%s): "
                  "not mounting a tree that may be behind it. Start enough "
                  "members for a quorum, raise --catch-up-timeout-ms, or "
                  "mount the local state anyway with --mount-stale",
                  a->mo->node.catch_up_timeout_ms, strerror(-err));
        a->startup_failed = true;
        node_stop(a->node, node_stopped_cb, a);
        return;
    }
    if (err != 0) {
        node__log(
            RAFT_TRACE_WARN,
            "no quorum to confirm the latest state (%s): mounting the "
            "local state as it is%s",
            strerror(-err),
            node_startup_needs_cluster(a->node) ? " (--mount-stale)" : "");
    }
    a->fs = fs_new(a->node, &a->fo);
    if (a->fs == NULL) {
        node__log(RAFT_TRACE_ERROR, "out of memory");
        a->startup_failed = true;
        node_stop(a->node, node_stopped_cb, a);
        return;
    }
    if (mount_fuse(a) != 0) {
        a->startup_failed = true;
        node_stop(a->node, node_stopped_cb, a);
        return;
    }
    a->ctl = ctl_start(&a->loop, a->node, a->mo->node.data_dir);
    a->retention = node_retention_start(&a->loop, a->node);
    uv_signal_init(&a->loop, &a->sigterm);
    uv_signal_init(&a->loop, &a->sigint);
    a->sigterm.data = a->sigint.data = a;
    uv_signal_start(&a->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&a->sigint, signal_cb, SIGINT);
    node__log(RAFT_TRACE_INFO, "quorumfs %s mounted on %s (data dir %s)",
              a->mo->node.name, a->mo->mountpoint, a->mo->node.data_dir);
    terminal_done(a);
    tell_parent(a, 'R');
}

static int run_node(struct app* a)
{
    struct fs_options fo;
    int rv;

    uv_loop_init(&a->loop);
    uv_timer_init(&a->loop, &a->settle_timer);
    uv_async_init(&a->loop, &a->notify_async, notify_async_cb);
    a->notify_async.data = a;
    uv_timer_init(&a->loop, &a->resume_timer);
    fs_options_default(&fo);
    fo.settle_timer = &a->settle_timer;
    fo.notify_async = &a->notify_async;
    fo.linearizable = a->mo->linearizable;
    if (a->mo->pending_bytes != 0) {
        fo.pending_bytes_max = a->mo->pending_bytes;
    }
    if (a->mo->reserve_set) {
        fo.quota_reserve_pct = (unsigned)a->mo->reserve_pct;
    }
    if (a->mo->node.store.file_size_max != 0) {
        fo.file_size_max = a->mo->node.store.file_size_max;
    } else {
        a->mo->node.store.file_size_max = fo.file_size_max;
    }
    /* The node replays its log inside node_start, before the fs exists:
     * changes are forwarded to the fs once it does (the kernel has cached
     * nothing before the mount anyway). */
    a->mo->node.on_change = app_on_change;
    a->mo->node.on_change_data = a;
    rv = node_start(&a->loop, &a->mo->node, &a->node);
    if (rv != 0) {
        node__log(
            RAFT_TRACE_ERROR, "cannot start the node: %s",
            rv == -EBUSY ? "data dir in use by another node" : strerror(-rv));
        return 1;
    }
    /* Mount only once the local store has caught up with what the cluster
     * (or, alone, this node's own log) had committed: a read barrier. A
     * member of a multi-node cluster that cannot within
     * --catch-up-timeout-ms does not mount (startup_ready_cb) unless
     * --mount-stale; a brand-new cluster gives up after the proposal
     * timeout and mounts the local state as it is, saying so. */
    a->fo = fo;
    if (node_startup_needs_cluster(a->node)) {
        node__log(RAFT_TRACE_INFO,
                  "waiting up to %u ms to apply what the cluster has "
                  "committed before mounting (--catch-up-timeout-ms)",
                  a->mo->node.catch_up_timeout_ms);
    }
    rv = node_startup_barrier(a->node, startup_ready_cb, a);
    if (rv != 0) {
        startup_ready_cb(a, rv);
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    if (a->startup_failed) {
        return 1;
    }
    fuseconn_watchdog_disarm(&a->wd); /* an orderly exit from here on */
    /* Also after an external unmount: it frees what fuse_session_mount
     * allocated (a poll on the dead fd tells it not to unmount again). */
    fuse_session_unmount(a->se);
    fs_free(a->fs);
    fuse_session_destroy(a->se);
    free(a->buf.mem);
    uv_walk(&a->loop, (uv_walk_cb)(void (*)(void))uv_close, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    return 0;
}

/* Without -f: fork; the parent waits until the child says the mount is
 * ready (exit 0) or the child fails (exit 1, its message already printed). */
static int daemonize(struct app* a)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("quorumfs: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("quorumfs: fork");
        return -1;
    }
    if (pid > 0) {
        char c = 0;
        close(p[1]);
        ssize_t r;
        do {
            r = read(p[0], &c, 1);
        } while (r < 0 && errno == EINTR);
        if (r == 1 && c == 'R') {
            exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        exit(1);
    }
    close(p[0]);
    setsid();
    a->ready_fd = p[1];
    return 0;
}

/* Before the node starts any thread (fork). Without it the start-up
 * clean-up of the next start still frees a hung mount. */
static void start_watchdog(struct app* a)
{
    char path[PATH_MAX + 32];
    if (getenv("QFS_NO_WATCHDOG") != NULL) {
        a->wd.fd = -1; /* test hook: the start-up clean-up alone */
        return;
    }
    util_datadir_path(path, sizeof(path), a->mo->node.data_dir,
                      DATADIR_NODE_LOG);
    int rv = fuseconn_watchdog_start(&a->wd, a->mo->foreground ? NULL : path);
    if (rv != 0) {
        node__log(RAFT_TRACE_WARN, "no watchdog (%s)", strerror(-rv));
    }
}

static int cmd_mount(int argc, char** argv)
{
    static struct mount_opts mo;
    static struct app a;
    int rv = parse_mount(argc, argv, &mo);

    if (rv != 0) {
        return rv;
    }
    /* A mount left by a dead node of this data dir (kill -9) is aborted
     * and unmounted first; nothing may stat the mountpoint before. */
    if (fuseconn_clear_stale(mo.mountpoint, mo.node.data_dir) != 0 ||
        check_mountpoint(mo.mountpoint) != 0) {
        return 1;
    }
    a.mo = &mo;
    a.ready_fd = -1;
    a.term_fd = -1;
    a.wd.fd = -1;
    signal(SIGPIPE, SIG_IGN);
    if (!mo.foreground) {
        if (daemonize(&a) != 0) {
            return 1;
        }
        log_to_file(&a);
    }
    start_watchdog(&a);
    rv = run_node(&a);
    tls_config_free(mo.node.peer_tls);
    fuseconn_watchdog_disarm(&a.wd);
    if (rv != 0 && a.term_fd >= 0) {
        char path[PATH_MAX + 32];
        util_datadir_path(path, sizeof(path), mo.node.data_dir,
                          DATADIR_NODE_LOG);
        node__log(RAFT_TRACE_ERROR, "not mounted; the whole log is in %s",
                  path);
    }
    terminal_done(&a);
    tell_parent(&a, 'F');
    return rv;
}

/* An unknown command: name it, suggest the nearest one, exit status 2. */
static int unknown_command(const char* prefix, const char* word)
{
    const char* near = ctl_nearest_command(word);
    fprintf(stderr, "%s: unknown command '%s'", prefix, word);
    if (near != NULL) {
        fprintf(stderr, "; did you mean '%s'?", near);
    }
    fprintf(stderr, "\nRun `quorumfs --help` for the commands.\n");
    return 2;
}

int main(int argc, char** argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage_main(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("quorumfs " QFS_VERSION "\n");
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) {
        /* `quorumfs help [CMD]`: the same text as `CMD --help`. */
        if (argc < 3 || strcmp(argv[2], "help") == 0) {
            usage_main(stdout);
            return 0;
        }
        if (strcmp(argv[2], "mount") == 0) {
            usage_mount(stdout);
            return 0;
        }
        if (!ctl_usage(argv[2], stdout)) {
            return unknown_command("quorumfs help", argv[2]);
        }
        return 0;
    }
    if (strcmp(argv[1], "mount") == 0) {
        return cmd_mount(argc - 1, argv + 1);
    }
    int rv = ctl_command(argc - 1, argv + 1);
    if (rv == -ENOSYS) {
        return unknown_command("quorumfs", argv[1]);
    }
    return rv;
}
