/* mount_flags.c - the flags of `quorumfs mount` (mount.h): the usage
 * text, parsing, and the checks made before anything is written (each
 * refusal names its flag; exit status 2): values and ranges, the member
 * list and this node's entry in it, heartbeat below the election timeout,
 * and peer security (the secret or certificate files are loaded and
 * checked here). */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../raft/tls.h"
#include "../../raft/transport.h"
#include "identity.h"
#include "fs.h"
#include "metrics_http.h"
#include "mount.h"
#include "node.h"
#include "node_watch.h"

void mount_usage(FILE* out)
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
        "  --fuse-threads N           threads reading FUSE requests (default\n"
        "                             4, 1 to 16): they answer a reader's\n"
        "                             close and hand the rest to the node's\n"
        "                             loop (docs/architecture.md)\n"
        "  --watch-events N           changes kept in memory for `quorumfs\n"
        "                             watch --since` (default 65536, 16 to\n"
        "                             16777216; docs/operations.md, Watch)\n"
        "\n"
        "Metrics and health (docs/operations.md):\n"
        "  --listen-metrics ADDR:PORT serve GET /metrics (Prometheus text),\n"
        "                             /livez and /readyz over HTTP on\n"
        "                             ADDR:PORT (default: off). Use\n"
        "                             127.0.0.1: there is no authentication,\n"
        "                             and any other address shows the\n"
        "                             cluster's details to all who reach it\n"
        "                             (/.cluster/metrics has the same text)\n"
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
    OPT_LISTEN_METRICS,
    OPT_WATCH_EVENTS,
    OPT_FUSE_THREADS,
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
    {"listen-metrics", required_argument, NULL, OPT_LISTEN_METRICS},
    {"watch-events", required_argument, NULL, OPT_WATCH_EVENTS},
    {"fuse-threads", required_argument, NULL, OPT_FUSE_THREADS},
    {NULL, 0, NULL, 0},
};

int mount_flag_takes_value(const char* name)
{
    for (const struct option* l = mount_long; l->name != NULL; l++) {
        if (strcmp(l->name, name) == 0) {
            return l->has_arg == required_argument ? 1 : 0;
        }
    }
    return -1;
}

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
    case OPT_LISTEN_METRICS:
        *why =
            "expected ADDR:PORT, a numeric IPv4 address or [IPv6] and a "
            "port from 1 to 65535, e.g. 127.0.0.1:9479";
        mo->listen_metrics = arg;
        return transport_parse_addr(arg, &(struct sockaddr_storage){0},
                                    false) != 0;
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
    case OPT_FUSE_THREADS:
        *why = "a whole number, 1 to 16";
        return parse_u64(arg, &mo->fuse_threads) != 0 || mo->fuse_threads < 1 ||
               mo->fuse_threads > FS_READER_THREADS_MAX;
    case OPT_QUOTA_RESERVE:
        *why = "a whole number of percent, 0 to 50";
        mo->reserve_set = true;
        return parse_u64(arg, &mo->reserve_pct) != 0 ||
               mo->reserve_pct > STORE_RESERVE_PCT_MAX;
    case OPT_WATCH_EVENTS:
        *why = "a whole number, 16 to 16777216";
        return parse_u64(arg, &o->watch_events) != 0 ||
               o->watch_events < WATCH_RING_EVENTS_MIN ||
               o->watch_events > WATCH_RING_EVENTS_MAX;
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
 * its reason. The same rules and messages for `quorumfs member update`
 * (mount.h). */
int mount_peer_security(const char* cmd,
                        const struct tls_config_options* t,
                        bool insecure,
                        const char* listen,
                        struct tls_config** out)
{
    bool any = t->secret_file != NULL || t->cert_file != NULL ||
               t->key_file != NULL || t->ca_file != NULL;
    char err[TLS_ERROR_MAX + PATH_MAX];
    *out = NULL;
    if (listen == NULL) {
        if (any || insecure) {
            fprintf(stderr,
                    "%s: the --peer-* flags need --listen-peer "
                    "(a node without it has no peers)\n",
                    cmd);
            return 2;
        }
        return 0;
    }
    if (insecure && any) {
        fprintf(stderr,
                "%s: --peer-insecure and the --peer-secret-file "
                "/ certificate flags are exclusive\n",
                cmd);
        return 2;
    }
    if (insecure) {
        return 0;
    }
    if (!any) {
        fprintf(stderr,
                "%s: a node with --listen-peer needs peer "
                "authentication: --peer-secret-file FILE, or "
                "--peer-cert-file, --peer-key-file and "
                "--peer-trusted-ca-file (docs/security.md); "
                "--peer-insecure lets anyone who reaches %s write the "
                "tree\n",
                cmd, listen);
        return 2;
    }
    if (tls_config_new(t, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 2;
    }
    return 0;
}

static int check_peer_security(struct mount_opts* mo)
{
    mo->tls.self_name = mo->node.name;
    return mount_peer_security("quorumfs mount", &mo->tls, mo->peer_insecure,
                               mo->node.listen_peer, &mo->node.peer_tls);
}

/* --listen-metrics: the socket is bound now, so a port in use is refused
 * like any bad flag, before anything is written. */
static int listen_metrics(struct mount_opts* mo)
{
    struct sockaddr_storage ss;
    if (mo->listen_metrics == NULL) {
        return 0;
    }
    if (transport_parse_addr(mo->listen_metrics, &ss, false) != 0) {
        return 2; /* checked by parse_one */
    }
    mo->metrics_fd = metrics_http_listen(&ss);
    if (mo->metrics_fd < 0) {
        fprintf(stderr,
                "quorumfs mount: --listen-metrics %s: cannot listen: %s\n",
                mo->listen_metrics, strerror(-mo->metrics_fd));
        return 2;
    }
    return 0;
}

int mount_parse(int argc, char** argv, struct mount_opts* mo)
{
    int c;

    node_options_default(&mo->node);
    mo->metrics_fd = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hfo:", mount_long, NULL)) != -1) {
        const char* why = NULL;
        if (c == 'h') {
            mount_usage(stdout);
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
    if (check_cluster(&mo->node) != 0 || check_peer_security(mo) != 0 ||
        listen_metrics(mo) != 0) {
        return 2;
    }
    if (mo->node.data_dir == NULL) {
        snprintf(mo->data_dir, sizeof(mo->data_dir), "/var/lib/quorumfs/%s",
                 mo->node.name);
        mo->node.data_dir = mo->data_dir;
    }
    return 0;
}
