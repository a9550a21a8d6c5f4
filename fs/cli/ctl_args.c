/* ctl_args.c - the client's arguments (ctl_internal.h): one usage text
 * per subcommand and the flags each takes, the command nearest to a
 * mistyped one, and which node a command talks to (PATH, --mount M,
 * --data-dir D, --name N). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../raft/util/datadir.h"
#include "ctl.h"
#include "ctl_internal.h"
#include "fuseconn.h"

/* ---- usage, one text per command ---- */

/* The flags that choose the node; every command that talks to one. */
#define TARGET_FLAGS                                                        \
    "  --mount M        the node mounted on M (its data dir is read from\n" \
    "                   M/.cluster/status)\n"                               \
    "  --data-dir D     the node whose data dir is D\n"                     \
    "  --name N         the node whose data dir is /var/lib/quorumfs/N\n"   \
    "                   (the default: /var/lib/quorumfs/default)\n"

struct cmd_usage {
    const char* name;
    const char* text;
};

static const struct cmd_usage usages[] = {
    {"status",
     "Usage: quorumfs status [PATH] [--json] [--mount M | --data-dir D | "
     "--name N]\n"
     "\n"
     "The state of a running node: role, term, leader, indexes, and its\n"
     "view of the cluster's health: every member's reachability, its lag\n"
     "in entries and the time since the leader last heard from it (lag\n"
     "and last heard are known on the leader; on another node reachable\n"
     "means connected to it). A member that is down shows as UNREACHABLE\n"
     "and the health line says degraded or unavailable.\n"
     "\n"
     "  PATH             a quorumfs mountpoint (or a path in one) or a data\n"
     "                   dir\n" TARGET_FLAGS
     "  --json           machine-readable output\n"
     "Exit status: 0 when the node answered, 1 when not, 2 for bad usage\n"
     "(`quorumfs endpoint health` exits 1 when a member is unhealthy).\n"},
    {"endpoint",
     "Usage: quorumfs endpoint health [PATH] [--json] [--mount M | "
     "--data-dir D | --name N]\n"
     "\n"
     "One line per member, healthy or unhealthy, as the node sees it (the\n"
     "leader: the member answered within an election timeout; another\n"
     "node: it is connected to the member), with its lag in entries and\n"
     "the time since the leader last heard from it; then the cluster's\n"
     "health. Run it on the leader for lag and last heard.\n"
     "\n"
     "  PATH             a quorumfs mountpoint (or a path in one) or a data\n"
     "                   dir\n" TARGET_FLAGS
     "  --json           machine-readable output\n"
     "Exit status: 0 when every member is healthy and a leader is known,\n"
     "1 otherwise (or when the node does not answer), 2 for bad usage.\n"},
    {"members",
     "Usage: quorumfs members [--mount M | --data-dir D | --name N]\n"
     "\n"
     "The members, one a line: NAME ID ADDRESS voter|learner [leader].\n"
     "`quorumfs member list` adds reachability and match indexes.\n"
     "\n" TARGET_FLAGS},
    {"leader",
     "Usage: quorumfs leader [--mount M | --data-dir D | --name N]\n"
     "       quorumfs leader transfer [--to N2] [--mount M | --data-dir D | "
     "--name N]\n"
     "\n"
     "Prints the leader's name (empty when none is known). `transfer`,\n"
     "run on any member's node (a follower asks the leader), hands\n"
     "leadership to another voter and waits (up to 5 s) for the new\n"
     "leader.\n"
     "\n"
     "  --to N2          the new leader (default: the most up-to-date\n"
     "                   voter)\n" TARGET_FLAGS},
    {"member",
     "Usage: quorumfs member list [--json] [TARGET]\n"
     "       quorumfs member add NAME ADDR:PORT [--learner] [--json] "
     "[TARGET]\n"
     "       quorumfs member promote NAME [TARGET]\n"
     "       quorumfs member remove NAME [TARGET]\n"
     "       quorumfs member update NAME ADDR:PORT PEER-SECURITY [TARGET]\n"
     "TARGET: --mount M | --data-dir D | --name N\n"
     "PEER-SECURITY: --peer-secret-file F | --peer-cert-file F\n"
     "  --peer-key-file F --peer-trusted-ca-file F | --peer-insecure\n"
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
     "  update   on a node started alone (no peer listener): NAME is\n"
     "           that node; it starts listening for peers on ADDR:PORT,\n"
     "           with no restart, and records the address in its\n"
     "           configuration; then `add` grows it into a cluster. At\n"
     "           its next start it needs --listen-peer and the same\n"
     "           peer security flags (it is refused without)\n"
     "\n" TARGET_FLAGS
     "  --json           machine-readable output (list, add)\n"
     "  --learner        add: as a learner (the default and only way)\n"
     "  --peer-secret-file FILE\n"
     "                   update: the secret shared by all members (mode\n"
     "                   0600; as for mount)\n"
     "  --peer-cert-file FILE\n"
     "                   update: this member's certificate (PEM)\n"
     "  --peer-key-file FILE\n"
     "                   update: its private key (PEM)\n"
     "  --peer-trusted-ca-file FILE\n"
     "                   update: the CA of every member's certificate\n"
     "  --peer-insecure  update: no peer authentication, no encryption\n"
     "                   (a trusted link only)\n"
     "See docs/operations.md (\"Membership\", \"Grow from one node\").\n"},
    {"restore",
     "Usage: quorumfs restore NAME|@REV [PATH] [--mount M | --data-dir D "
     "| --name N]\n"
     "\n"
     "Resets PATH (a path inside the quorumfs tree, default /) to its\n"
     "content in the named snapshot NAME or at revision REV: one\n"
     "replicated operation.\n"
     "\n" TARGET_FLAGS "See docs/snapshots.md.\n"},
    {"compact",
     "Usage: quorumfs compact [--revision R] [--mount M | --data-dir D | "
     "--name N]\n"
     "\n"
     "Forgets the history before revision R now (default: the current\n"
     "revision minus the node's --history-revisions).\n"
     "\n"
     "  --revision R     forget history before R\n" TARGET_FLAGS
     "See docs/snapshots.md.\n"},
    {"snapshot",
     "Usage: quorumfs snapshot save FILE [--mount M | --data-dir D | "
     "--name N]\n"
     "       quorumfs snapshot status FILE [--json]\n"
     "       quorumfs snapshot restore FILE --data-dir D --name N\n"
     "                [--initial-cluster n1=ADDR:PORT,...] "
     "[--listen-peer ADDR:PORT]\n"
     "\n"
     "  save     writes the running node's state to FILE\n"
     "  status   checks FILE and prints what it holds (offline)\n"
     "  restore  makes a new data dir D for node N from FILE, the first\n"
     "           node of a new cluster (offline; there --data-dir D is\n"
     "           the new data dir, new or empty, and --name N the new\n"
     "           node's name)\n"
     "\n"
     "  --json           status: machine-readable output\n"
     "  --initial-cluster LIST, --listen-peer ADDR:PORT\n"
     "                   restore: the new cluster, as for `quorumfs mount`\n"
     "The node save talks to:\n" TARGET_FLAGS "See docs/snapshots.md.\n"},
    {"watch",
     "Usage: quorumfs watch [PATH] [--since REV] [--json] [--mount M | "
     "--data-dir D | --name N]\n"
     "       quorumfs watch PATH --exec CMD [--debounce MS] [TARGET]\n"
     "\n"
     "Streams every committed change under PATH, made on any member, in\n"
     "revision order, one line each: REV OP PATH [-> NEWPATH], OP one of\n"
     "create mkdir symlink mknod write setattr unlink rmdir rename\n"
     "exchange restore reset. A file written between open and close is\n"
     "one write. PATH is a path in a quorumfs mount (which also chooses\n"
     "the node) or a path inside the tree (\"/app\"; default /).\n"
     "\n"
     "  --since REV      replay from revision REV first (from this node's\n"
     "                   in-memory ring of recent changes)\n"
     "  --json           one JSON object per line\n"
     "  --exec CMD       run /bin/sh -c CMD once changes under PATH have\n"
     "                   settled, never two at once, with QUORUMFS_REVISION\n"
     "                   and QUORUMFS_PATH set; its exit status is logged\n"
     "                   to stderr; a lost node is waited for\n"
     "  --debounce MS    how long changes must settle (default "
     "200)\n" TARGET_FLAGS
     "Exit status: 1 when the node refuses (e.g. REV too old), goes away or\n"
     "this watcher fell behind (the message names the --since to resume\n"
     "with); 2 for bad usage. See docs/operations.md (\"Watch\").\n"},
};

static const struct {
    const char* name;
    unsigned flags;
} cmd_flags[] = {
    {"status", F_JSON | F_TARGET},
    {"endpoint", F_JSON | F_TARGET},
    {"members", F_TARGET},
    {"leader", F_TARGET | F_TO},
    {"member", F_JSON | F_TARGET | F_LEARNER | F_PEER},
    {"restore", F_TARGET},
    {"compact", F_TARGET | F_REV},
    {"snapshot", F_JSON | F_TARGET | F_SEED},
    {"watch", F_JSON | F_TARGET | F_WATCH},
};

bool ctl_usage(const char* cmd, FILE* out)
{
    for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++) {
        if (strcmp(usages[i].name, cmd) == 0) {
            fputs(usages[i].text, out);
            return true;
        }
    }
    return false;
}

bool ctl__cmd_flags(const char* cmd, unsigned* flags)
{
    for (size_t i = 0; i < sizeof(cmd_flags) / sizeof(cmd_flags[0]); i++) {
        if (strcmp(cmd, cmd_flags[i].name) == 0) {
            *flags = cmd_flags[i].flags;
            return true;
        }
    }
    return false;
}

int ctl__usage_error(const char* cmd)
{
    fprintf(stderr, "Try `quorumfs %s --help`.\n", cmd);
    return 2;
}

/* ---- the nearest command ---- */

static const char* const commands[] = {
    "mount",   "status",  "endpoint", "members", "leader", "member",
    "restore", "compact", "snapshot", "watch",   "check",  "help",
};

/* Optimal string alignment distance (a swap of two neighbours is one
 * edit), capped at 9. */
static unsigned edit_distance(const char* a, const char* b)
{
    enum { W = 32 };
    size_t la = strlen(a), lb = strlen(b);
    unsigned d[W + 1][W + 1];
    if (la > W || lb > W) {
        return 9;
    }
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = (unsigned)i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = (unsigned)j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) {
                v = d[i][j - 1] + 1;
            }
            if (d[i - 1][j - 1] + cost < v) {
                v = d[i - 1][j - 1] + cost;
            }
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v) {
                v = d[i - 2][j - 2] + 1;
            }
            d[i][j] = v;
        }
    }
    return d[la][lb] < 9 ? d[la][lb] : 9;
}

/* The word of words (n of them) at most two edits from word, or NULL. */
static const char* nearest(const char* word, const char* const* words, size_t n)
{
    const char* best = NULL;
    unsigned best_d = 3; /* at most 2 edits */
    for (size_t i = 0; i < n; i++) {
        unsigned d = edit_distance(word, words[i]);
        if (d < best_d) {
            best_d = d;
            best = words[i];
        }
    }
    return best;
}

const char* ctl_nearest_command(const char* word)
{
    return nearest(word, commands, sizeof(commands) / sizeof(commands[0]));
}

/* The arguments each command takes: a subcommand word (NULL: none) and
 * how many arguments in all (the word included). */
static const struct {
    const char* cmd;
    const char* word;
    int min, max;
} arities[] = {
    {"status", NULL, 0, 1},        /* [PATH] */
    {"endpoint", "health", 1, 2},  /* health [PATH] */
    {"members", NULL, 0, 0},       /* */
    {"leader", NULL, 0, 0},        /* */
    {"leader", "transfer", 1, 1},  /* transfer */
    {"member", "list", 1, 1},      /* list */
    {"member", "add", 3, 3},       /* add NAME ADDR */
    {"member", "promote", 2, 2},   /* promote NAME */
    {"member", "remove", 2, 2},    /* remove NAME */
    {"member", "update", 3, 3},    /* update NAME ADDR */
    {"restore", NULL, 1, 2},       /* NAME|@REV [PATH] */
    {"compact", NULL, 0, 0},       /* */
    {"snapshot", "save", 2, 2},    /* save FILE */
    {"snapshot", "status", 2, 2},  /* status FILE */
    {"snapshot", "restore", 2, 2}, /* restore FILE */
    {"watch", NULL, 0, 1},         /* [PATH] */
};

enum { ARITIES = sizeof(arities) / sizeof(arities[0]) };

/* The subcommand words of cmd, in table order. */
static void words_of(const char* cmd, const char** words, size_t* n)
{
    *n = 0;
    for (size_t i = 0; i < ARITIES; i++) {
        if (strcmp(arities[i].cmd, cmd) == 0 && arities[i].word != NULL) {
            words[(*n)++] = arities[i].word;
        }
    }
}

int ctl__check_args(const char* cmd, int argc, char** argv)
{
    const char* words[ARITIES];
    size_t n;
    bool bare = false; /* cmd takes no subcommand word (or may omit it) */

    words_of(cmd, words, &n);
    for (size_t i = 0; i < ARITIES; i++) {
        if (strcmp(arities[i].cmd, cmd) != 0) {
            continue;
        }
        bool match = arities[i].word == NULL
                         ? n == 0 || argc == 0
                         : argc > 0 && strcmp(argv[0], arities[i].word) == 0;
        bare = bare || arities[i].word == NULL;
        if (!match) {
            continue;
        }
        if (argc < arities[i].min) {
            fprintf(stderr, "quorumfs %s%s%s: missing arguments\n", cmd,
                    arities[i].word != NULL ? " " : "",
                    arities[i].word != NULL ? arities[i].word : "");
            return ctl__usage_error(cmd);
        }
        if (argc > arities[i].max) {
            fprintf(stderr, "quorumfs %s: unexpected argument '%s'\n", cmd,
                    argv[arities[i].max]);
            return ctl__usage_error(cmd);
        }
        return 0;
    }
    if (n == 0) {
        return 0; /* not a client command: the caller says so */
    }
    if (argc == 0 && !bare) {
        fprintf(stderr, "quorumfs %s: expected ", cmd);
        for (size_t j = 0; j < n; j++) {
            fprintf(stderr, "%s%s",
                    j == 0      ? ""
                    : j + 1 < n ? ", "
                                : " or ",
                    words[j]);
        }
        fprintf(stderr, "\n");
        return ctl__usage_error(cmd);
    }
    const char* near = nearest(argv[0], words, n);
    fprintf(stderr, "quorumfs %s: unknown subcommand '%s'", cmd, argv[0]);
    if (near != NULL) {
        fprintf(stderr, "; did you mean '%s'?", near);
    }
    fprintf(stderr, "\n");
    return ctl__usage_error(cmd);
}

/* ---- which node: a data dir, or the node behind a mount ---- */

#define QFS_FSTYPE "fuse.quorumfs"

enum { STATUS_FILE_MAX = 1u << 20 };

bool ctl__is_data_dir(const char* path)
{
    char p[PATH_MAX + 16];
    struct stat sb;
    if (util_datadir_path(p, sizeof(p), path, DATADIR_IDENTITY) != 0) {
        return false;
    }
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Whether mountpoint mp holds the absolute path abs. */
static bool path_under(const char* abs, const char* mp)
{
    size_t n = strlen(mp);
    if (strcmp(mp, "/") == 0) {
        return true;
    }
    return strncmp(abs, mp, n) == 0 && (abs[n] == '\0' || abs[n] == '/');
}

/* The mount holding abs (the longest mountpoint; the last one of equal
 * length, the topmost): its mountpoint into mnt and whether it is a
 * quorumfs mount. -1: none found or mountinfo unreadable. With all, the
 * quorumfs mountpoints are printed instead (for an error message). */
static int mount_of(const char* abs,
                    char* mnt,
                    size_t cap,
                    bool* qfs,
                    FILE* all)
{
    FILE* f = fopen("/proc/self/mountinfo", "re");
    char* line = NULL;
    size_t lcap = 0, best = 0;
    int rv = -1;

    if (f == NULL) {
        return -1;
    }
    while (getline(&line, &lcap, f) > 0) {
        char mp[PATH_MAX * 4 + 1], fstype[64];
        int off = 0;
        if (sscanf(line, "%*u %*u %*u:%*u %*s %4096s %n", mp, &off) != 1) {
            continue;
        }
        char* dash = strstr(line + off, " - ");
        if (dash == NULL || sscanf(dash + 3, "%63s", fstype) != 1) {
            continue;
        }
        fuseconn_mountinfo_unescape(mp);
        if (all != NULL) {
            if (strcmp(fstype, QFS_FSTYPE) == 0) {
                fprintf(all, "  %s\n", mp);
                rv = 0;
            }
            continue;
        }
        size_t n = strlen(mp);
        if (path_under(abs, mp) && n >= best && n < cap) {
            best = n;
            memcpy(mnt, mp, n + 1);
            *qfs = strcmp(fstype, QFS_FSTYPE) == 0;
            rv = 0;
        }
    }
    free(line);
    fclose(f);
    return rv;
}

/* The data dir the node behind mountpoint mnt reports in its
 * /.cluster/status ("data_dir"). */
static int mount_data_dir(const char* cmd,
                          const char* mnt,
                          char* out,
                          size_t cap)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/.cluster/status", mnt);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "quorumfs %s: %s: %s (is its node running?)\n", cmd,
                path, strerror(errno));
        return -1;
    }
    char* buf = malloc(STATUS_FILE_MAX + 1);
    size_t got = 0;
    ssize_t r = 0;
    while (buf != NULL && got < STATUS_FILE_MAX) {
        r = read(fd, buf + got, STATUS_FILE_MAX - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    int err = errno;
    close(fd);
    if (buf == NULL || r < 0) {
        fprintf(stderr, "quorumfs %s: %s: %s\n", cmd, path,
                buf == NULL ? "out of memory" : strerror(err));
        free(buf);
        return -1;
    }
    buf[got] = '\0';
    const char* key = "\"data_dir\": \"";
    const char* p = strstr(buf, key);
    size_t n = 0;
    if (p != NULL) {
        for (p += strlen(key); *p != '\0' && *p != '"' && n + 1 < cap; p++) {
            if (*p == '\\' && p[1] != '\0') {
                p++; /* \" and \\: the node escapes nothing else in paths */
            }
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    bool ok = p != NULL && *p == '"' && n > 0;
    free(buf);
    if (!ok) {
        fprintf(stderr,
                "quorumfs %s: %s does not name the node's data dir (a node "
                "of an older version?): use --data-dir\n",
                cmd, path);
        return -1;
    }
    return 0;
}

/* The data dir of the node behind path: the node mounted where path is
 * (first: a file named identity may well be in a quorumfs tree), else
 * path itself when it is a data dir (unless only_mount). */
static int resolve_path(struct ctl_target* o, const char* path, bool only_mount)
{
    char abs[PATH_MAX], mnt[PATH_MAX];
    bool qfs = false;

    if (realpath(path, abs) == NULL) {
        int err = errno;
        fprintf(stderr, "quorumfs %s: %s: %s%s\n", o->cmd, path, strerror(err),
                err == ENOTCONN ? " (a quorumfs mount whose node is gone? "
                                  "give its --data-dir)"
                                : "");
        return -1;
    }
    if (mount_of(abs, mnt, sizeof(mnt), &qfs, NULL) == 0 && qfs) {
        return mount_data_dir(o->cmd, mnt, o->dir, sizeof(o->dir));
    }
    if (!only_mount && ctl__is_data_dir(abs)) {
        snprintf(o->dir, sizeof(o->dir), "%s", abs);
        return 0;
    }
    fprintf(stderr,
            "quorumfs %s: %s is neither a quorumfs mount%s nor a quorumfs "
            "data dir (no %s file)\n",
            o->cmd, path, only_mount ? "" : " (nor a path in one)",
            DATADIR_IDENTITY);
    return -1;
}

int ctl__tree_path(const char* path,
                   char* tree,
                   size_t tree_cap,
                   char* mnt,
                   size_t mnt_cap)
{
    char abs[PATH_MAX], cwd[PATH_MAX];
    bool qfs = false;

    if (realpath(path, abs) == NULL) {
        /* Not there (yet): as written, made absolute. */
        if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL) {
            fprintf(stderr, "quorumfs watch: getcwd: %s\n", strerror(errno));
            return -1;
        }
        int n = snprintf(abs, sizeof(abs), "%s%s%s", path[0] == '/' ? "" : cwd,
                         path[0] == '/' ? "" : "/", path);
        if (n < 0 || (size_t)n >= sizeof(abs)) {
            fprintf(stderr, "quorumfs watch: PATH too long\n");
            return -1;
        }
    }
    if (mount_of(abs, mnt, mnt_cap, &qfs, NULL) == 0 && qfs) {
        const char* rest = abs + (strcmp(mnt, "/") == 0 ? 0 : strlen(mnt));
        snprintf(tree, tree_cap, "%s", rest[0] == '\0' ? "/" : rest);
        return 1;
    }
    if (path[0] != '/') {
        fprintf(stderr,
                "quorumfs watch: %s is not in a quorumfs mount; give a path "
                "in one, or a path inside the tree starting with '/' and "
                "the node with --mount M or --data-dir D\n",
                path);
        return -1;
    }
    if (strlen(path) >= tree_cap) {
        fprintf(stderr, "quorumfs watch: PATH too long\n");
        return -1;
    }
    snprintf(tree, tree_cap, "%s", path);
    return 0;
}

int ctl__resolve_target(struct ctl_target* o)
{
    int given = (o->mount != NULL) + (o->data_dir != NULL) + (o->path != NULL);
    if (given > 1) {
        fprintf(stderr,
                "quorumfs %s: give one of PATH, --mount and --data-dir\n",
                o->cmd);
        return ctl__usage_error(o->cmd);
    }
    if (o->mount != NULL) {
        return resolve_path(o, o->mount, true) == 0 ? 0 : 1;
    }
    if (o->path != NULL) {
        return resolve_path(o, o->path, false) == 0 ? 0 : 1;
    }
    if (o->data_dir != NULL) {
        snprintf(o->dir, sizeof(o->dir), "%s", o->data_dir);
        if (!ctl__is_data_dir(o->dir)) {
            fprintf(stderr,
                    "quorumfs %s: --data-dir %s is not a quorumfs data dir "
                    "(no %s file)\n",
                    o->cmd, o->dir, DATADIR_IDENTITY);
            return 1;
        }
        return 0;
    }
    snprintf(o->dir, sizeof(o->dir), "/var/lib/quorumfs/%s",
             o->name != NULL ? o->name : "default");
    if (o->name == NULL && !ctl__is_data_dir(o->dir)) {
        /* The default names no node here: say which mounts there are. */
        char mnt[PATH_MAX];
        bool qfs;
        fprintf(stderr,
                "quorumfs %s: no node given and no data dir at %s; the "
                "quorumfs mounts here:\n",
                o->cmd, o->dir);
        if (mount_of("/", mnt, sizeof(mnt), &qfs, stderr) != 0) {
            fprintf(stderr, "  (none)\n");
        }
        fprintf(stderr, "Give PATH, --mount M or --data-dir D.\n");
        return 1;
    }
    return 0;
}
