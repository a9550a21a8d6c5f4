/* ctl_client.c - the client side of the `quorumfs` subcommands (ctl.h):
 * requests over a node's control socket, and the dispatch of every client
 * command (the offline snapshot file commands are ctl_snapfile.c's). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "../../raft/transport.h"
#include "../../raft/util/datadir.h"
#include "../../snapshot/snapshot.h"
#include "ctl.h"
#include "ctl_internal.h"
#include "mount.h"

/* ---- client ---- */

enum {
    LEADER_WAIT_POLLS = 50, /* x 100 ms */
    CTL_REPLY_BYTES_MAX = RAFT_SNAPSHOT_BYTES_MAX + (1u << 20),
    CTL_READ_CHUNK = 1u << 16,
};

struct cli {
    const char* cmd;
    const char* dir;
    const char* name;
    const char* cluster;
    const char* listen_peer;
    const char* to;      /* leader transfer --to */
    const char* mount;   /* --mount M */
    const char* dir_arg; /* --data-dir D as given */
    bool json;
    bool learner; /* member add --learner: the default (cmd_member) */
    /* member update: the peer security flags */
    struct tls_config_options tls;
    bool peer_insecure;
    bool peer_flags; /* any of them given */
    bool has_revision;
    uint64_t revision;
    struct ctl_target target;
    /* watch */
    uint64_t since;
    const char* exec;
    unsigned debounce_ms;
};

static int ctl_connect(const char* data_dir)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (util_datadir_path(sa.sun_path, sizeof(sa.sun_path), data_dir,
                          DATADIR_CTL_SOCK) != 0) {
        fprintf(stderr, "quorumfs: data dir path too long\n");
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "quorumfs: no node running with data dir %s (%s: %s)\n",
                data_dir, sa.sun_path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* Send req, read the whole reply into a malloc'd buffer (NUL-terminated). */
static int ctl_fetch(const char* data_dir,
                     const char* req,
                     char** out,
                     size_t* out_len)
{
    int fd = ctl_connect(data_dir);
    if (fd < 0) {
        return -1;
    }
    size_t len = strlen(req);
    if (write(fd, req, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        fprintf(stderr, "quorumfs: control socket: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    size_t cap = CTL_READ_CHUNK, got = 0;
    char* buf = malloc(cap + 1);
    ssize_t r = 0;
    while (buf != NULL) {
        if (got == cap) {
            char* p =
                cap < CTL_REPLY_BYTES_MAX ? realloc(buf, 2 * cap + 1) : NULL;
            if (p == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
        r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL || r < 0) {
        fprintf(stderr, "quorumfs: control socket: %s\n",
                buf == NULL ? "reply too large" : strerror(errno));
        free(buf);
        return -1;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return 0;
}

/* Text requests: print the reply; exit 1 when it is an error. */
static int ctl_request(const char* data_dir, const char* req)
{
    char* out;
    size_t len;

    if (ctl_fetch(data_dir, req, &out, &len) != 0) {
        return 1;
    }
    int rv = strncmp(out, "error: ", 7) == 0 ? 1 : 0;
    if (rv != 0) {
        fprintf(stderr, "quorumfs %s: %s", req, out + 7);
    } else if (strncmp(out, "ok ", 3) == 0) {
        fwrite(out + 3, 1, len - 3, stdout);
    } else {
        fwrite(out, 1, len, stdout);
    }
    free(out);
    return rv;
}

static int cmd_restore(struct cli* o, int argc, char** argv)
{
    char req[CTL_REQUEST_MAX];
    const char* path = argc > 1 ? argv[1] : "/";

    if (argc < 1 || argc > 2) {
        fprintf(stderr, "quorumfs restore: expected NAME|@REV [PATH]\n");
        return ctl__usage_error("restore");
    }
    if (path[0] != '/' || strpbrk(argv[0], "\t\n") != NULL ||
        strpbrk(path, "\t\n") != NULL) {
        fprintf(stderr,
                "quorumfs restore: PATH is a path inside the quorumfs tree, "
                "starting with '/' (e.g. /app)\n");
        return 2;
    }
    int n = snprintf(req, sizeof(req), "restore\t%s\t%s", argv[0], path);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        fprintf(stderr, "quorumfs restore: name or path too long\n");
        return 2;
    }
    char* out;
    size_t len;
    if (ctl_fetch(o->dir, req, &out, &len) != 0) {
        return 1;
    }
    int rv = 0;
    if (strncmp(out, "ok ", 3) == 0) {
        out[strcspn(out, "\n")] = '\0';
        printf("%s: reset to snapshot %s (%s)\n", path, argv[0], out + 3);
    } else {
        fprintf(stderr, "quorumfs restore %s %s: %s", argv[0], path,
                strncmp(out, "error: ", 7) == 0 ? out + 7 : out);
        rv = 1;
    }
    free(out);
    return rv;
}

static int cmd_compact(struct cli* o, int argc, char** argv)
{
    char req[64];

    if (argc != 0) {
        fprintf(stderr, "quorumfs compact: unexpected argument '%s'\n",
                argv[0]);
        return ctl__usage_error("compact");
    }
    snprintf(req, sizeof(req), "compact\t%" PRIu64,
             o->has_revision ? o->revision : 0);
    return ctl_request(o->dir, req);
}

static int cmd_snapshot_save(struct cli* o, const char* file)
{
    char* out;
    size_t len, conf_len, img_len;
    char err[512];
    int skip = 0;
    struct raft_conf conf;

    if (ctl_fetch(o->dir, "snapshot save", &out, &len) != 0) {
        return 1;
    }
    if (sscanf(out, "ok %zu %zu\n%n", &conf_len, &img_len, &skip) != 2 ||
        skip == 0 || (size_t)skip + conf_len + img_len != len) {
        fprintf(
            stderr, "quorumfs snapshot save: %s",
            strncmp(out, "error: ", 7) == 0 ? out + 7 : "malformed reply\n");
        free(out);
        return 1;
    }
    if (raft_conf_decode(&conf, out + skip, conf_len) != 0) {
        fprintf(stderr, "quorumfs snapshot save: bad membership in reply\n");
        free(out);
        return 1;
    }
    int rv = snap_file_save(file, out + skip + conf_len, img_len, &conf, err,
                            sizeof(err));
    free(out);
    if (rv != 0) {
        fprintf(stderr, "quorumfs snapshot save: %s\n", err);
        return 1;
    }
    struct snap_file_info info;
    rv = snap_file_load(file, &info, NULL, NULL, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "quorumfs snapshot save: reading back %s: %s\n", file,
                err);
        return 1;
    }
    printf("saved %s: revision %" PRIu64 ", %" PRIu64 " keys, %" PRIu64
           " bytes, %u members\n",
           file, info.revision, info.keys, info.file_bytes, info.conf.n);
    return 0;
}

void ctl__print_json_string(const char* s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            printf("\\%c", ch);
        } else if (ch < 0x20) {
            printf("\\u%04x", ch);
        } else {
            putchar(ch);
        }
    }
    putchar('"');
}

/* ---- membership ---- */

/* The current members ("members" request: NAME ID ADDR ROLE [leader]) as
 * an --initial-cluster list, and the cluster id from the status. */
static int member_join_info(const char* dir,
                            char* list,
                            size_t cap,
                            char* cluster_id,
                            size_t id_cap,
                            char* security,
                            size_t sec_cap)
{
    char *out = NULL, *st = NULL;
    size_t len = 0, pos = 0;
    if (ctl_fetch(dir, "members", &out, &len) != 0) {
        return -1;
    }
    list[0] = '\0';
    char* save = NULL;
    for (char* line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char name[RAFT_NAME_MAX], addr[RAFT_ADDR_MAX];
        if (sscanf(line, "%31s %*s %63s", name, addr) == 2) {
            int k = snprintf(list + pos, cap - pos, "%s%s=%s",
                             pos > 0 ? "," : "", name, addr);
            if (k < 0 || (size_t)k >= cap - pos) {
                free(out);
                return -1;
            }
            pos += (size_t)k;
        }
    }
    free(out);
    if (ctl_fetch(dir, "status json", &st, &len) != 0) {
        return -1;
    }
    const char* p = strstr(st, "\"cluster_id\": \"");
    int rv = -1;
    if (p != NULL) {
        p += strlen("\"cluster_id\": \"");
        size_t n = strcspn(p, "\"");
        if (n > 0 && n < id_cap) {
            memcpy(cluster_id, p, n);
            cluster_id[n] = '\0';
            rv = 0;
        }
    }
    p = strstr(st, "\"peer_security\": \"");
    snprintf(security, sec_cap, "%s", "");
    if (p != NULL) {
        p += strlen("\"peer_security\": \"");
        size_t n = strcspn(p, "\"");
        if (n < sec_cap) {
            memcpy(security, p, n);
            security[n] = '\0';
        }
    }
    free(st);
    return rv;
}

static int member_print_join(struct cli* o, const char* name, const char* addr)
{
    char list[4096], cid[32], sec[32];
    if (member_join_info(o->dir, list, sizeof(list), cid, sizeof(cid), sec,
                         sizeof(sec)) != 0) {
        fprintf(stderr,
                "quorumfs member add: added %s, but the member list could "
                "not be read back: see `quorumfs member list`\n",
                name);
        return 1;
    }
    if (o->json) {
        printf("{\"name\":");
        ctl__print_json_string(name);
        printf(",\"addr\":");
        ctl__print_json_string(addr);
        printf(",\"role\":\"learner\",\"initial_cluster\":");
        ctl__print_json_string(list);
        printf(",\"initial_cluster_state\":\"existing\",\"cluster_id\":");
        ctl__print_json_string(cid);
        printf(",\"peer_security\":");
        ctl__print_json_string(sec);
        printf("}\n");
        return 0;
    }
    /* The peer security flags the new member needs: the cluster's kind. */
    const char* flags =
        strcmp(sec, "insecure") == 0
            ? "    --peer-insecure (the members run without peer security)\n"
        : strcmp(sec, "certificates") == 0
            ? "    --peer-cert-file FILE --peer-key-file FILE (its own\n"
              "    certificate, naming it) --peer-trusted-ca-file FILE (the\n"
              "    cluster's CA; docs/security.md)\n"
            : "    --peer-secret-file FILE (a copy of the members' secret\n"
              "    file, mode 0600; docs/security.md)\n";
    printf(
        "added %s at %s as a learner (committed)\n"
        "\n"
        "QUORUMFS_NAME=%s\n"
        "QUORUMFS_INITIAL_CLUSTER=%s\n"
        "QUORUMFS_INITIAL_CLUSTER_STATE=existing\n"
        "QUORUMFS_CLUSTER_ID=%s\n"
        "\n"
        "Start %s with an empty data dir:\n"
        "  quorumfs mount MOUNTPOINT --name %s --data-dir DIR \\\n"
        "    --listen-peer %s \\\n"
        "    --initial-cluster %s \\\n"
        "    --initial-cluster-state existing --cluster-id %s \\\n"
        "%s"
        "Once it has caught up: quorumfs member promote %s\n",
        name, addr, name, list, cid, name, name, addr, list, cid, flags, name);
    return 0;
}

/* The address `member update` gives this node: a numeric IP:PORT the
 * others can dial (not a wildcard). */
static bool update_addr_ok(const char* addr)
{
    struct sockaddr_storage ss;
    if (transport_parse_addr(addr, &ss, false) != 0) {
        return false;
    }
    if (ss.ss_family == AF_INET) {
        return ((const struct sockaddr_in*)&ss)->sin_addr.s_addr !=
               htonl(INADDR_ANY);
    }
    return !IN6_IS_ADDR_UNSPECIFIED(
        &((const struct sockaddr_in6*)&ss)->sin6_addr);
}

/* `quorumfs member update NAME ADDR [--peer-* flags]`: the node (NAME,
 * which runs without a peer listener: the embedded single node) starts
 * one on ADDR with the peer security the flags give, checked here as
 * mount checks them, and records ADDR in the configuration (a committed
 * RAFT_CONF_SET_ADDR). The node loads the files again itself, by their
 * absolute paths. */
static int cmd_member_update(struct cli* o, const char* name, const char* addr)
{
    const char* cmd = "quorumfs member update";
    if (!update_addr_ok(addr)) {
        fprintf(stderr,
                "%s: bad ADDR '%s' (expected IP:PORT, a numeric IPv4 "
                "address or [IPv6], not a wildcard, and a port from 1 to "
                "65535: where the other members reach %s)\n",
                cmd, addr, name);
        return 2;
    }
    struct tls_config* tls = NULL;
    o->tls.self_name = name;
    if (mount_peer_security(cmd, &o->tls, o->peer_insecure, addr, &tls) != 0) {
        return 2;
    }
    tls_config_free(tls);
    const char* files[4] = {o->tls.secret_file, o->tls.cert_file,
                            o->tls.key_file, o->tls.ca_file};
    char abs[4][PATH_MAX];
    for (int i = 0; i < 4; i++) {
        abs[i][0] = '\0';
        if (files[i] != NULL && realpath(files[i], abs[i]) == NULL) {
            fprintf(stderr, "%s: %s: %s\n", cmd, files[i], strerror(errno));
            return 2;
        }
        if (strpbrk(abs[i], "\t\n") != NULL) {
            fprintf(stderr, "%s: %s: no tabs or newlines in a path\n", cmd,
                    abs[i]);
            return 2;
        }
    }
    char req[CTL_REQUEST_MAX];
    int k = snprintf(req, sizeof(req),
                     "member\tupdate\t%s\t%s\t%s\t%s\t%s\t%s\t%d", name, addr,
                     abs[0], abs[1], abs[2], abs[3], o->peer_insecure ? 1 : 0);
    if (k < 0 || (size_t)k >= sizeof(req)) {
        fprintf(stderr, "%s: the file paths are too long\n", cmd);
        return 2;
    }
    char* out;
    size_t len;
    if (ctl_fetch(o->dir, req, &out, &len) != 0) {
        return 1;
    }
    if (strncmp(out, "ok", 2) != 0) {
        fprintf(stderr, "%s %s: %s", cmd, name,
                strncmp(out, "error: ", 7) == 0 ? out + 7 : out);
        free(out);
        return 1;
    }
    free(out);
    printf(
        "%s listens for peers on %s (%s); its address is in the "
        "configuration (committed)\n"
        "Add members with: quorumfs member add NAME ADDR:PORT\n"
        "At its next start it needs --listen-peer %s, --initial-cluster "
        "(see `quorumfs member list`) and the same peer security flags\n",
        name, addr,
        o->peer_insecure             ? "insecure"
        : o->tls.secret_file != NULL ? "shared secret"
                                     : "certificates",
        addr);
    return 0;
}

static int cmd_member(struct cli* o, int argc, char** argv)
{
    char req[CTL_REQUEST_MAX];
    const char* sub = argc > 0 ? argv[0] : "";

    if (strcmp(sub, "list") == 0 && argc == 1) {
        return ctl_request(o->dir,
                           o->json ? "member list json" : "member list text");
    }
    bool update = strcmp(sub, "update") == 0 && argc == 3;
    if (o->peer_flags && !update) {
        fprintf(stderr,
                "quorumfs member %s: the --peer-* flags apply to `member "
                "update` only\n",
                sub);
        return ctl__usage_error("member");
    }
    bool add = (strcmp(sub, "add") == 0 || update) && argc == 3;
    bool one = (strcmp(sub, "promote") == 0 || strcmp(sub, "remove") == 0) &&
               argc == 2;
    if (!add && !one) {
        fprintf(stderr, "quorumfs member %s: wrong number of arguments\n", sub);
        return ctl__usage_error("member");
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '\0' || strpbrk(argv[i], "\t\n,= ") != NULL) {
            fprintf(stderr,
                    "quorumfs member %s: bad %s '%s' (no spaces, tabs, ',' "
                    "or '=')\n",
                    sub, i == 1 ? "NAME" : "ADDR", argv[i]);
            return 2;
        }
    }
    if (strlen(argv[1]) >= RAFT_NAME_MAX ||
        (add && strlen(argv[2]) >= RAFT_ADDR_MAX)) {
        fprintf(stderr, "quorumfs member %s: name or address too long\n", sub);
        return 2;
    }
    if (update) {
        return cmd_member_update(o, argv[1], argv[2]);
    }
    if (add && strchr(argv[2], ':') == NULL) {
        fprintf(stderr,
                "quorumfs member add: ADDR '%s' is not HOST:PORT (the new "
                "member's --listen-peer)\n",
                argv[2]);
        return 2;
    }
    snprintf(req, sizeof(req), "member\t%s\t%s%s%s", sub, argv[1],
             add ? "\t" : "", add ? argv[2] : "");
    char* out;
    size_t len;
    if (ctl_fetch(o->dir, req, &out, &len) != 0) {
        return 1;
    }
    if (strncmp(out, "ok", 2) != 0) {
        fprintf(stderr, "quorumfs member %s %s: %s", sub, argv[1],
                strncmp(out, "error: ", 7) == 0 ? out + 7 : out);
        free(out);
        return 1;
    }
    free(out);
    if (add) {
        return member_print_join(o, argv[1], argv[2]);
    }
    printf("%s %s (committed)\n",
           strcmp(sub, "promote") == 0 ? "promoted" : "removed", argv[1]);
    return 0;
}

/* ---- dispatch ---- */

static int cmd_snapshot(struct cli* o, int argc, char** argv)
{
    if (argc == 2 && strcmp(argv[0], "save") == 0) {
        return cmd_snapshot_save(o, argv[1]);
    }
    if (argc == 2 && strcmp(argv[0], "status") == 0) {
        return ctl__snapshot_status(argv[1], o->json);
    }
    if (argc == 2 && strcmp(argv[0], "restore") == 0) {
        o->dir = o->dir_arg; /* no default: the target must be named */
        return ctl__snapshot_restore(argv[1], o->dir, o->name, o->cluster);
    }
    fprintf(stderr, "quorumfs snapshot %s: expected one FILE\n", argv[0]);
    return ctl__usage_error("snapshot");
}

/* `quorumfs leader transfer [--to N]`, on any member (a follower asks
 * the leader): start the transfer, then wait (bounded) for the new leader
 * (N when given) and print it. */
static int cmd_leader_transfer(struct cli* o)
{
    char req[CTL_REQUEST_MAX];
    char* out = NULL;
    size_t len = 0;

    /* The leader before asking: on a follower the transfer may be done
     * before this node hears of it. */
    if (ctl_fetch(o->dir, "leader", &out, &len) != 0) {
        return 1;
    }
    char old[RAFT_NAME_MAX + 2];
    snprintf(old, sizeof(old), "%s", out);
    free(out);
    snprintf(req, sizeof(req), "transfer\t%s", o->to != NULL ? o->to : "");
    if (ctl_request(o->dir, req) != 0) {
        return 1;
    }
    char want[RAFT_NAME_MAX + 2] = "";
    if (o->to != NULL) {
        snprintf(want, sizeof(want), "%s\n", o->to);
    }
    if (want[0] != '\0' && strcmp(old, want) == 0) {
        printf("leader is now %s", old); /* already */
        return 0;
    }
    for (int i = 0; i < LEADER_WAIT_POLLS; i++) {
        usleep(100 * 1000);
        if (ctl_fetch(o->dir, "leader", &out, &len) != 0) {
            return 1;
        }
        bool moved = len > 1 && strcmp(out, old) != 0 &&
                     (want[0] == '\0' || strcmp(out, want) == 0);
        if (moved) {
            printf("leader is now %s", out);
        }
        free(out);
        if (moved) {
            return 0;
        }
    }
    fprintf(stderr,
            "quorumfs leader transfer: leadership did not move "
            "within %d s\n",
            LEADER_WAIT_POLLS / 10);
    return 1;
}

/* ---- endpoint health ---- */

struct health_member {
    char name[RAFT_NAME_MAX], addr[RAFT_ADDR_MAX], role[16];
    int reachable, leader, self;
    long long lag, heard_ms;
};

static void print_health_member(const struct health_member* m, bool have_leader)
{
    bool healthy = m->reachable && have_leader;
    printf("%s %s %s", m->name, m->addr, healthy ? "healthy" : "unhealthy");
    if (!m->reachable) {
        printf(": unreachable");
    } else if (!have_leader) {
        printf(": no leader known");
    }
    const char* sep = " (";
    if (m->leader) {
        printf("%sleader", sep);
        sep = ", ";
    }
    if (m->self) {
        printf("%sthis node", sep);
        sep = ", ";
    }
    if (strcmp(m->role, "learner") == 0) {
        printf("%slearner", sep);
        sep = ", ";
    }
    if (m->lag >= 0 && !m->self) {
        printf("%slag %lld entries", sep, m->lag);
        sep = ", ";
    }
    if (m->heard_ms >= 0 && !m->self) {
        printf("%slast heard %lld.%lld s ago", sep, m->heard_ms / 1000,
               m->heard_ms % 1000 / 100);
        sep = ", ";
    }
    printf("%s\n", sep[0] == ',' ? ")" : "");
}

static int cmd_endpoint_health(struct cli* o)
{
    char* out;
    size_t len;
    char state[32], view[16], node[RAFT_NAME_MAX], leader[RAFT_NAME_MAX];
    unsigned members, reachable, voters, voters_reachable, quorum;

    if (ctl_fetch(o->dir, "health", &out, &len) != 0) {
        return 1;
    }
    char* save = NULL;
    char* line = strtok_r(out, "\n", &save);
    if (line == NULL || strncmp(line, "error: ", 7) == 0 ||
        sscanf(line,
               "%31[^\t]\t%15[^\t]\t%31[^\t]\t%31[^\t]\t%u\t%u\t%u\t%u\t%u",
               state, view, node, leader, &members, &reachable, &voters,
               &voters_reachable, &quorum) != 9) {
        fprintf(stderr, "quorumfs endpoint health: %s",
                line != NULL && strncmp(line, "error: ", 7) == 0
                    ? line + 7
                    : "malformed reply (a node of another version?)");
        fprintf(stderr, "\n");
        free(out);
        return 1;
    }
    bool have_leader = strcmp(leader, "-") != 0;
    bool all = have_leader;
    if (o->json) {
        printf("{\"node\":");
        ctl__print_json_string(node);
        printf(",\"seen_from\":\"%s\",\"leader\":", view);
        if (have_leader) {
            ctl__print_json_string(leader);
        } else {
            printf("null");
        }
        printf(
            ",\"health\":\"%s\",\"members_reachable\":%u,\"members\":%u,"
            "\"voters_reachable\":%u,\"voters\":%u,\"quorum\":%u,"
            "\"endpoints\":[",
            state, reachable, members, voters_reachable, voters, quorum);
    }
    unsigned i = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        struct health_member m;
        if (sscanf(line, "%31[^\t]\t%63[^\t]\t%15[^\t]\t%d\t%d\t%d\t%lld\t%lld",
                   m.name, m.addr, m.role, &m.reachable, &m.leader, &m.self,
                   &m.lag, &m.heard_ms) != 8) {
            continue;
        }
        bool healthy = m.reachable && have_leader;
        all = all && healthy;
        if (o->json) {
            printf("%s{\"name\":", i++ > 0 ? "," : "");
            ctl__print_json_string(m.name);
            printf(",\"addr\":");
            ctl__print_json_string(m.addr);
            printf(
                ",\"role\":\"%s\",\"healthy\":%s,\"reachable\":%s,"
                "\"leader\":%s,\"self\":%s,\"lag_entries\":",
                m.role, healthy ? "true" : "false",
                m.reachable ? "true" : "false", m.leader ? "true" : "false",
                m.self ? "true" : "false");
            if (m.lag >= 0) {
                printf("%lld", m.lag);
            } else {
                printf("null");
            }
            printf(",\"last_heard_ms\":");
            if (m.heard_ms >= 0) {
                printf("%lld}", m.heard_ms);
            } else {
                printf("null}");
            }
        } else {
            print_health_member(&m, have_leader);
        }
    }
    free(out);
    if (o->json) {
        printf("]}\n");
    } else {
        printf(
            "health: %s (%u of %u members reachable, quorum %u of %u "
            "voters%s); seen from %s (%s)\n",
            state, reachable, members, quorum, voters,
            have_leader ? "" : ", no leader known", node,
            strcmp(view, "leader") == 0
                ? "the leader"
                : "not the leader: healthy means connected to it");
    }
    return all ? 0 : 1;
}

/* ---- watch ---- */

/* `quorumfs watch [PATH]`: the subtree from PATH (a path in a mount also
 * chooses the node, unless a flag does), then the stream (ctl_watch.c). */
static int cmd_watch(struct cli* o, int argc, char** argv)
{
    char tree[PATH_MAX], mnt[PATH_MAX];
    int in_mount = 0;

    snprintf(tree, sizeof(tree), "/");
    if (argc > 0) {
        in_mount =
            ctl__tree_path(argv[0], tree, sizeof(tree), mnt, sizeof(mnt));
        if (in_mount < 0) {
            return 2;
        }
    }
    if (strpbrk(tree, "\t\n") != NULL) {
        fprintf(stderr, "quorumfs watch: PATH holds a tab or a newline\n");
        return 2;
    }
    o->target = (struct ctl_target){.cmd = o->cmd,
                                    .mount = o->mount,
                                    .data_dir = o->dir_arg,
                                    .name = o->name};
    if (in_mount == 1 && o->mount == NULL && o->dir_arg == NULL &&
        o->name == NULL) {
        o->target.mount = mnt;
    }
    int rv = ctl__resolve_target(&o->target);
    if (rv != 0) {
        return rv;
    }
    if (o->debounce_ms != 0 && o->exec == NULL) {
        fprintf(stderr, "quorumfs watch: --debounce is for --exec\n");
        return ctl__usage_error(o->cmd);
    }
    if (o->exec != NULL && o->json) {
        fprintf(stderr, "quorumfs watch: --json does not apply to --exec\n");
        return ctl__usage_error(o->cmd);
    }
    struct ctl_watch_opts w = {.dir = o->target.dir,
                               .tree = tree,
                               .since = o->since,
                               .json = o->json,
                               .exec = o->exec,
                               .debounce_ms = o->debounce_ms != 0
                                                  ? o->debounce_ms
                                                  : CTL_WATCH_DEBOUNCE_MS};
    return ctl__watch(&w);
}

/* ---- commands ---- */

/* The flag a refused option was spelled as (getopt_long leaves the word
 * at argv[optind - 1], or optopt for a short one). */
static void bad_flag(const char* cmd, char** argv, int c)
{
    const char* word = argv[optind - 1];
    if (c == ':') {
        fprintf(stderr, "quorumfs %s: flag '%s' needs a value\n", cmd, word);
    } else if (optopt != 0 && optopt < 1000) {
        fprintf(stderr, "quorumfs %s: unknown flag '-%c'\n", cmd, optopt);
    } else if (optopt != 0) {
        fprintf(stderr, "quorumfs %s: flag '%s' takes no value\n", cmd, word);
    } else {
        fprintf(stderr, "quorumfs %s: unknown flag '%s'\n", cmd, word);
    }
}

int ctl_command(int argc, char** argv)
{
    enum {
        O_JSON = 1000,
        O_DIR,
        O_NAME,
        O_REV,
        O_CLUSTER,
        O_PEER,
        O_TO,
        O_LEARNER,
        O_MOUNT,
        O_SINCE,
        O_EXEC,
        O_DEBOUNCE,
        O_SECRET,
        O_CERT,
        O_KEY,
        O_CA,
        O_INSECURE,
    };
    static const struct option opts[] = {
        {"json", no_argument, NULL, O_JSON},
        {"data-dir", required_argument, NULL, O_DIR},
        {"mount", required_argument, NULL, O_MOUNT},
        {"name", required_argument, NULL, O_NAME},
        {"revision", required_argument, NULL, O_REV},
        {"initial-cluster", required_argument, NULL, O_CLUSTER},
        {"listen-peer", required_argument, NULL, O_PEER},
        {"to", required_argument, NULL, O_TO},
        {"learner", no_argument, NULL, O_LEARNER},
        {"since", required_argument, NULL, O_SINCE},
        {"exec", required_argument, NULL, O_EXEC},
        {"debounce", required_argument, NULL, O_DEBOUNCE},
        {"peer-secret-file", required_argument, NULL, O_SECRET},
        {"peer-cert-file", required_argument, NULL, O_CERT},
        {"peer-key-file", required_argument, NULL, O_KEY},
        {"peer-trusted-ca-file", required_argument, NULL, O_CA},
        {"peer-insecure", no_argument, NULL, O_INSECURE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cli o = {.cmd = argv[0]};
    unsigned allowed = 0;
    char* end;
    int c;

    if (!ctl__cmd_flags(o.cmd, &allowed)) {
        return -ENOSYS;
    }
    optind = 1;
    opterr = 0;
    int li = -1;
    while ((c = getopt_long(argc, argv, ":h", opts, &li)) != -1) {
        unsigned need = c == O_JSON                                 ? F_JSON
                        : c == O_DIR || c == O_MOUNT || c == O_NAME ? F_TARGET
                        : c == O_REV                                ? F_REV
                        : c == O_CLUSTER || c == O_PEER             ? F_SEED
                        : c == O_TO                                 ? F_TO
                        : c == O_LEARNER                            ? F_LEARNER
                        : c == O_SINCE || c == O_EXEC || c == O_DEBOUNCE
                            ? F_WATCH
                        : c >= O_SECRET && c <= O_INSECURE ? F_PEER
                                                           : 0;
        if (need != 0 && (allowed & need) == 0) {
            fprintf(stderr, "quorumfs %s: flag '--%s' does not apply here\n",
                    o.cmd, li >= 0 ? opts[li].name : "?");
            return ctl__usage_error(o.cmd);
        }
        switch (c) {
        case O_JSON:
            o.json = true;
            break;
        case O_DIR:
            o.dir_arg = optarg;
            break;
        case O_MOUNT:
            o.mount = optarg;
            break;
        case O_NAME:
            o.name = optarg;
            break;
        case O_REV:
            o.has_revision = true;
            o.revision = strtoull(optarg, &end, 10);
            if (*end != '\0' || o.revision == 0) {
                fprintf(stderr, "quorumfs compact: bad --revision '%s'\n",
                        optarg);
                return ctl__usage_error(o.cmd);
            }
            break;
        case O_CLUSTER:
            o.cluster = optarg;
            break;
        case O_PEER:
            o.listen_peer = optarg;
            break;
        case O_TO:
            o.to = optarg;
            break;
        case O_LEARNER:
            o.learner = true;
            break;
        case O_SINCE:
            errno = 0;
            o.since = strtoull(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || optarg[0] == '-' ||
                o.since == 0) {
                fprintf(stderr,
                        "quorumfs watch: bad --since '%s' (a revision, 1 or "
                        "more)\n",
                        optarg);
                return ctl__usage_error(o.cmd);
            }
            break;
        case O_EXEC:
            o.exec = optarg;
            break;
        case O_SECRET:
            o.tls.secret_file = optarg;
            o.peer_flags = true;
            break;
        case O_CERT:
            o.tls.cert_file = optarg;
            o.peer_flags = true;
            break;
        case O_KEY:
            o.tls.key_file = optarg;
            o.peer_flags = true;
            break;
        case O_CA:
            o.tls.ca_file = optarg;
            o.peer_flags = true;
            break;
        case O_INSECURE:
            o.peer_insecure = true;
            o.peer_flags = true;
            break;
        case O_DEBOUNCE: {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end != '\0' || optarg[0] == '-' || v == 0 || v > 86400000) {
                fprintf(stderr,
                        "quorumfs watch: bad --debounce '%s' (milliseconds, 1 "
                        "to 86400000)\n",
                        optarg);
                return ctl__usage_error(o.cmd);
            }
            o.debounce_ms = (unsigned)v;
            break;
        }
        case 'h':
            (void)ctl_usage(o.cmd, stdout);
            return 0;
        default:
            bad_flag(o.cmd, argv, c);
            return ctl__usage_error(o.cmd);
        }
    }
    argc -= optind;
    argv += optind;
    const char* path = NULL;
    bool offline = false;
    int rv = ctl__check_args(o.cmd, argc, argv);
    if (rv != 0) {
        return rv;
    }
    if (strcmp(o.cmd, "status") == 0 || strcmp(o.cmd, "endpoint") == 0) {
        int first = strcmp(o.cmd, "endpoint") == 0;
        path = argc > first ? argv[first] : NULL;
    } else if (strcmp(o.cmd, "snapshot") == 0) {
        offline = argc > 0 && (strcmp(argv[0], "status") == 0 ||
                               strcmp(argv[0], "restore") == 0);
        if (offline && o.mount != NULL) {
            fprintf(stderr, "quorumfs snapshot %s: --mount does not apply\n",
                    argv[0]);
            return ctl__usage_error(o.cmd);
        }
    }
    if (o.to != NULL && (argc < 1 || strcmp(argv[0], "transfer") != 0)) {
        fprintf(stderr, "quorumfs leader: --to is for `leader transfer`\n");
        return ctl__usage_error(o.cmd);
    }
    if (strcmp(o.cmd, "watch") == 0) {
        return cmd_watch(&o, argc, argv);
    }
    if (offline) {
        o.dir = o.dir_arg;
    } else {
        o.target = (struct ctl_target){.cmd = o.cmd,
                                       .path = path,
                                       .mount = o.mount,
                                       .data_dir = o.dir_arg,
                                       .name = o.name};
        rv = ctl__resolve_target(&o.target);
        if (rv != 0) {
            return rv;
        }
        o.dir = o.target.dir;
    }
    if (strcmp(o.cmd, "restore") == 0) {
        return cmd_restore(&o, argc, argv);
    }
    if (strcmp(o.cmd, "compact") == 0) {
        return cmd_compact(&o, argc, argv);
    }
    if (strcmp(o.cmd, "snapshot") == 0) {
        return cmd_snapshot(&o, argc, argv);
    }
    if (strcmp(o.cmd, "member") == 0) {
        return cmd_member(&o, argc, argv);
    }
    if (strcmp(o.cmd, "endpoint") == 0) {
        return cmd_endpoint_health(&o);
    }
    if (strcmp(o.cmd, "status") == 0) {
        return ctl_request(o.dir, o.json ? "status json" : "status text");
    }
    if (strcmp(o.cmd, "leader") == 0 && argc == 1) {
        return cmd_leader_transfer(&o);
    }
    return ctl_request(o.dir, o.cmd);
}
