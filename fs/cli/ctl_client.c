/* ctl_client.c - the client side of the `quorumfs` subcommands (ctl.h):
 * requests over a node's control socket, and the offline `snapshot
 * restore` that builds a new data dir from a snapshot file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../raft/util/datadir.h"
#include "../../raft/util/fileio.h"
#include "../../raft/log.h"
#include "../../snapshot/snapshot.h"
#include "ctl.h"
#include "identity.h"

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
    const char* to; /* leader transfer --to */
    bool json;
    bool learner; /* member add --learner: the default (cmd_member) */
    bool has_revision;
    uint64_t revision;
    char def_dir[PATH_MAX];
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
        fprintf(stderr,
                "Usage: quorumfs restore NAME|@REV [PATH] "
                "[--data-dir D]\n");
        return 2;
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
        fprintf(stderr,
                "Usage: quorumfs compact [--revision R] "
                "[--data-dir D]\n");
        return 2;
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

static void print_json_string(const char* s)
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

static int cmd_snapshot_status(struct cli* o, const char* file)
{
    struct snap_file_info info;
    char err[512];
    int rv = snap_file_load(file, &info, NULL, NULL, err, sizeof(err));

    if (rv != 0) {
        if (o->json) {
            printf("{\"file\":");
            print_json_string(file);
            printf(",\"ok\":false,\"error\":");
            print_json_string(err);
            printf("}\n");
        }
        fprintf(stderr, "quorumfs snapshot status: %s: %s\n", file, err);
        return 1;
    }
    if (o->json) {
        printf("{\"file\":");
        print_json_string(file);
        printf(",\"ok\":true,\"version\":%u,\"revision\":%" PRIu64
               ",\"applied_index\":%" PRIu64 ",\"keys\":%" PRIu64
               ",\"size\":%" PRIu64 ",\"image_bytes\":%" PRIu64
               ",\"checksum\":\"%016" PRIx64
               "\",\"checksum_verified\":true,\"members\":[",
               info.version, info.revision, info.applied_index, info.keys,
               info.file_bytes, info.image_bytes, info.checksum);
        for (unsigned i = 0; i < info.conf.n; i++) {
            printf("%s{\"name\":", i > 0 ? "," : "");
            print_json_string(info.conf.servers[i].name);
            printf(",\"addr\":");
            print_json_string(info.conf.servers[i].addr);
            printf(",\"voter\":%s}",
                   info.conf.servers[i].role == RAFT_VOTER ? "true" : "false");
        }
        printf("]}\n");
        return 0;
    }
    printf(
        "file:           %s\n"
        "format version: %u\n"
        "revision:       %" PRIu64
        "\n"
        "applied index:  %" PRIu64
        "\n"
        "keys:           %" PRIu64
        "\n"
        "size:           %" PRIu64 " bytes (image %" PRIu64
        ")\n"
        "checksum:       %016" PRIx64
        " (verified)\n"
        "members:       ",
        file, info.version, info.revision, info.applied_index, info.keys,
        info.file_bytes, info.image_bytes, info.checksum);
    for (unsigned i = 0; i < info.conf.n; i++) {
        printf(" %s=%s%s", info.conf.servers[i].name, info.conf.servers[i].addr,
               info.conf.servers[i].role == RAFT_VOTER ? "" : " (learner)");
    }
    printf("\n");
    return 0;
}

/* ---- offline: a new data dir from a snapshot file ---- */

/* --initial-cluster into conf, by the rules the node checks at start
 * (identity.c), and the cluster id: a new random one made by the first
 * member of the list (or the only node), 0 for the others (they learn it
 * from the first one at their first handshake). */
static int seed_conf(const char* name,
                     const char* list,
                     struct raft_conf* conf,
                     uint64_t* cluster_id)
{
    struct node_peer peers[RAFT_SERVERS_MAX];
    unsigned n = 0;
    if (list != NULL) {
        int rv = identity_parse_cluster(list, peers, &n);
        if (rv != 0) {
            return rv;
        }
    }
    int rv = identity_initial(name, peers, n, conf);
    *cluster_id = 0;
    if (rv == 0 && identity_makes_cluster_id(name, peers, n)) {
        rv = identity_new_cluster_id(cluster_id);
    }
    return rv;
}

static int seed_db(const char* dir, const void* img, size_t len)
{
    char path[PATH_MAX + 16];
    struct store_options so;
    struct store* st;

    util_datadir_path(path, sizeof(path), dir, DATADIR_DB);
    store_options_default(&so);
    so.quota_bytes = UINT64_MAX / 2; /* the image's tree, whatever its size */
    int rv = store_open(path, &so, &st, NULL);
    if (rv != 0) {
        return rv;
    }
    rv = store_image_install(st, img, len);
    store_close(st);
    return rv;
}

/* The raft log starts after the image: snapshot meta at its applied index,
 * term 1, the new cluster's membership; nothing to replay. */
static int seed_log(const char* dir,
                    raft_index index,
                    const struct raft_conf* conf)
{
    char path[PATH_MAX + 16];
    struct rlog_options lo;
    struct rlog_loaded loaded;
    struct rlog* log;

    rlog_options_default(&lo);
    util_datadir_path(path, sizeof(path), dir, DATADIR_LOG);
    int rv = rlog_open(path, &lo, &log, &loaded);
    if (rv != 0) {
        return rv;
    }
    struct raft_snapshot_meta meta = {
        .index = index, .term = 1, .conf_index = index, .conf = *conf};
    struct raft_hard_state hs = {.term = 1, .vote = 0, .commit = index};
    rv = rlog_reset(log, &meta);
    if (rv == 0) {
        rv = rlog_set_hard_state(log, &hs);
    }
    if (rv == 0) {
        rv = rlog_sync(log);
    }
    rlog_close(log);
    return rv;
}

static int remove_tree_cb(const char* path,
                          const struct stat* sb,
                          int flag,
                          struct FTW* ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* D must not exist, or be an empty directory. */
static int seed_check_target(const char* dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (!S_ISDIR(sb.st_mode)) {
        return -ENOTDIR;
    }
    DIR* d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    struct dirent* de;
    int rv = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            rv = -ENOTEMPTY;
            break;
        }
    }
    closedir(d);
    return rv;
}

static int cmd_snapshot_restore(struct cli* o, const char* file)
{
    struct snap_file_info info;
    struct raft_conf conf;
    uint64_t cluster_id;
    char err[512], tmp[PATH_MAX];
    void* img = NULL;
    size_t len = 0;
    const char* step;
    int rv;

    if (o->dir == NULL || o->name == NULL) {
        fprintf(stderr,
                "Usage: quorumfs snapshot restore FILE --data-dir D "
                "--name N [--initial-cluster LIST] "
                "[--listen-peer ADDR]\n");
        return 2;
    }
    if (seed_conf(o->name, o->cluster, &conf, &cluster_id) != 0) {
        fprintf(stderr,
                "quorumfs snapshot restore: bad --initial-cluster (expected "
                "n1=ADDR:PORT,... naming %s)\n",
                o->name);
        return 2;
    }
    rv = snap_file_load(file, &info, &img, &len, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "quorumfs snapshot restore: %s: %s; nothing done\n",
                file, err);
        return 1;
    }
    rv = seed_check_target(o->dir);
    if (rv != 0) {
        fprintf(stderr,
                "quorumfs snapshot restore: %s: %s; refusing to touch it "
                "(give a new or empty data dir)\n",
                o->dir, rv == -ENOTEMPTY ? "not empty" : strerror(-rv));
        free(img);
        return 1;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", o->dir);
    /* The missing parents, as `quorumfs mount` creates those of its data
     * dir. */
    rv = util_mkdir_parents(o->dir, 0700);
    if (rv != 0) {
        fprintf(stderr,
                "quorumfs snapshot restore: cannot create the parent "
                "directories of %s: %s\n",
                o->dir, strerror(-rv));
        free(img);
        return 1;
    }
    if (mkdir(tmp, 0700) != 0) {
        fprintf(stderr, "quorumfs snapshot restore: cannot create %s: %s%s\n",
                tmp, strerror(errno),
                errno == EEXIST ? " (left by an interrupted restore: remove "
                                  "it)"
                                : "");
        free(img);
        return 1;
    }
    /* Order: identity, db (image install: tmp, fsync, rename, fsync dir),
     * log (meta + hard state, fsync), fsync(D.tmp), rename(D.tmp, D),
     * fsync(parent): D appears complete or not at all. */
    step = "identity";
    rv = identity_write(tmp, o->name, cluster_id,
                        o->cluster != NULL ? o->cluster : IDENTITY_LIST_SINGLE);
    if (rv == 0) {
        step = "db";
        rv = seed_db(tmp, img, len);
    }
    if (rv == 0) {
        step = "raft log";
        rv = seed_log(tmp, info.applied_index, &conf);
    }
    if (rv == 0) {
        step = "fsync";
        rv = util_fsync_dir(tmp);
    }
    if (rv == 0) {
        step = "rename";
        rv = rename(tmp, o->dir) == 0 ? 0 : -errno;
    }
    if (rv == 0) {
        util_fsync_parent(o->dir);
    }
    free(img);
    if (rv != 0) {
        fprintf(stderr, "quorumfs snapshot restore: %s: %s\n", step,
                strerror(-rv));
        nftw(tmp, remove_tree_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 1;
    }
    printf("restored %s into %s: revision %" PRIu64 ", %" PRIu64
           " keys; node %s of a new cluster of %u (raft log starts after "
           "index %" PRIu64 ")\n",
           file, o->dir, info.revision, info.keys, o->name, conf.n,
           info.applied_index);
    return 0;
}

/* ---- membership ---- */

static void usage_member(FILE* out)
{
    fprintf(out,
            "Usage: quorumfs member list [--json] [--data-dir D]\n"
            "       quorumfs member add NAME ADDR:PORT [--learner] [--json] "
            "[--data-dir D]\n"
            "       quorumfs member promote NAME [--data-dir D]\n"
            "       quorumfs member remove NAME [--data-dir D]\n"
            "\n"
            "Works from any member: the change is forwarded to the leader and\n"
            "the command returns once this node sees it committed.\n"
            "  list     members, ids, peer addresses, voter or learner, the\n"
            "           leader, reachability and match index (known on the\n"
            "           leader)\n"
            "  add      adds NAME as a learner (a non-voter: the core admits\n"
            "           new members as learners only, so --learner is the\n"
            "           default) and prints the flags NAME starts with\n"
            "  promote  makes a learner a voter; refused while it is behind\n"
            "  remove   removes a voter or a learner (the leader too: it\n"
            "           steps down once the removal is committed)\n"
            "See docs/operations.md (\"Membership\").\n");
}

/* The current members ("members" request: NAME ID ADDR ROLE [leader]) as
 * an --initial-cluster list, and the cluster id from the status. */
static int member_join_info(const char* dir,
                            char* list,
                            size_t cap,
                            char* cluster_id,
                            size_t id_cap)
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
    free(st);
    return rv;
}

static int member_print_join(struct cli* o, const char* name, const char* addr)
{
    char list[4096], cid[32];
    if (member_join_info(o->dir, list, sizeof(list), cid, sizeof(cid)) != 0) {
        fprintf(stderr,
                "quorumfs member add: added %s, but the member list could "
                "not be read back: see `quorumfs member list`\n",
                name);
        return 1;
    }
    if (o->json) {
        printf("{\"name\":");
        print_json_string(name);
        printf(",\"addr\":");
        print_json_string(addr);
        printf(",\"role\":\"learner\",\"initial_cluster\":");
        print_json_string(list);
        printf(",\"initial_cluster_state\":\"existing\",\"cluster_id\":");
        print_json_string(cid);
        printf("}\n");
        return 0;
    }
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
        "    --initial-cluster-state existing --cluster-id %s\n"
        "Once it has caught up: quorumfs member promote %s\n",
        name, addr, name, list, cid, name, name, addr, list, cid, name);
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
    bool add = strcmp(sub, "add") == 0 && argc == 3;
    bool one = (strcmp(sub, "promote") == 0 || strcmp(sub, "remove") == 0) &&
               argc == 2;
    if (!add && !one) {
        usage_member(stderr);
        return 2;
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
        return cmd_snapshot_status(o, argv[1]);
    }
    if (argc == 2 && strcmp(argv[0], "restore") == 0) {
        o->dir = o->dir == o->def_dir ? NULL : o->dir;
        return cmd_snapshot_restore(o, argv[1]);
    }
    fprintf(stderr,
            "Usage: quorumfs snapshot save FILE [--data-dir D]\n"
            "       quorumfs snapshot status FILE [--json]\n"
            "       quorumfs snapshot restore FILE --data-dir D --name N\n"
            "                [--initial-cluster n1=ADDR:PORT,...] "
            "[--listen-peer ADDR:PORT]\n");
    return 2;
}

/* `quorumfs leader transfer [--to N]`, sent to the leader's node: start
 * the transfer, then wait (bounded) for the new leader and print it. */
static int cmd_leader_transfer(struct cli* o)
{
    char req[CTL_REQUEST_MAX];
    char* out = NULL;
    size_t len = 0;

    snprintf(req, sizeof(req), "transfer\t%s", o->to != NULL ? o->to : "");
    if (ctl_request(o->dir, req) != 0 ||
        ctl_fetch(o->dir, "leader", &out, &len) != 0) {
        return 1;
    }
    char old[RAFT_NAME_MAX + 2];
    snprintf(old, sizeof(old), "%s", out);
    free(out);
    for (int i = 0; i < LEADER_WAIT_POLLS; i++) {
        usleep(100 * 1000);
        if (ctl_fetch(o->dir, "leader", &out, &len) != 0) {
            return 1;
        }
        bool moved = len > 1 && strcmp(out, old) != 0;
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

static void usage_client(const char* cmd)
{
    if (strcmp(cmd, "member") == 0) {
        usage_member(stdout);
        return;
    }
    printf(
        "Usage: quorumfs %s [options]\n"
        "  --data-dir D     the node's data dir (default "
        "/var/lib/quorumfs/NAME)\n"
        "  --name N         node name (default: default)\n"
        "  --json           machine-readable output (status)\n"
        "  --revision R     compact: forget history before R\n"
        "  --initial-cluster LIST, --listen-peer ADDR   snapshot restore\n"
        "  --to N           leader transfer: the new leader (default: the\n"
        "                   most up-to-date voter)\n"
        "See docs/snapshots.md.\n",
        cmd);
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
        O_LEARNER
    };
    static const struct option opts[] = {
        {"json", no_argument, NULL, O_JSON},
        {"data-dir", required_argument, NULL, O_DIR},
        {"name", required_argument, NULL, O_NAME},
        {"revision", required_argument, NULL, O_REV},
        {"initial-cluster", required_argument, NULL, O_CLUSTER},
        {"listen-peer", required_argument, NULL, O_PEER},
        {"to", required_argument, NULL, O_TO},
        {"learner", no_argument, NULL, O_LEARNER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char* const cmds[] = {"status",  "members", "leader",
                                       "restore", "compact", "snapshot",
                                       "member"};
    struct cli o = {.cmd = argv[0]};
    bool known = false;
    char* end;
    int c;

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        known = known || strcmp(o.cmd, cmds[i]) == 0;
    }
    if (!known) {
        return -ENOSYS;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_JSON:
            o.json = true;
            break;
        case O_DIR:
            o.dir = optarg;
            break;
        case O_NAME:
            o.name = optarg;
            break;
        case O_REV:
            o.has_revision = true;
            o.revision = strtoull(optarg, &end, 10);
            if (*end != '\0' || o.revision == 0) {
                fprintf(stderr, "quorumfs: bad --revision '%s'\n", optarg);
                return 2;
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
        case 'h':
            usage_client(o.cmd);
            return 0;
        default:
            return 2;
        }
    }
    if (o.dir == NULL) {
        snprintf(o.def_dir, sizeof(o.def_dir), "/var/lib/quorumfs/%s",
                 o.name != NULL ? o.name : "default");
        o.dir = o.def_dir;
    }
    argc -= optind;
    argv += optind;
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
    if (strcmp(o.cmd, "status") == 0) {
        return ctl_request(o.dir, o.json ? "status json" : "status text");
    }
    if (strcmp(o.cmd, "leader") == 0 && argc >= 1 &&
        strcmp(argv[0], "transfer") == 0) {
        return cmd_leader_transfer(&o);
    }
    return ctl_request(o.dir, o.cmd);
}
