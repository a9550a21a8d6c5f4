/* mount_fstab.c - quorumfs as an fstab file system (mount.h): an fstab
 * line of type fuse.quorumfs makes mount(8) run mount.fuse3, which runs
 * `quorumfs SOURCE MOUNTPOINT -o OPTIONS` (found on sh's default PATH).
 * SOURCE is the node name; each option is a `quorumfs mount` flag as
 * NAME=VALUE (data_dir=/var/lib/quorumfs/n1, or data-dir=...; a value
 * with commas in double quotes: initial_cluster="n1=...,n2=...") or a
 * bare flag (mount_stale, peer_insecure); the rest are FUSE mount options
 * (rw, noatime, allow_other...), checked with libfuse before anything
 * runs. mount(8)'s own options (defaults, _netdev, nofail, noauto, x-*)
 * are dropped. Then it is `quorumfs mount` without -f: it returns once
 * the tree is mounted (docs/operations.md, "fstab"). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "mount.h"

/* Options of one fstab line, and the flags they become. */
enum { FSTAB_OPTS_MAX = 64, FSTAB_FUSE_OPTS_MAX = 1024, FSTAB_FLAG_MAX = 64 };

bool mount_fstab_form(int argc, char** argv)
{
    if (argc != 5 || strcmp(argv[3], "-o") != 0 || argv[2][0] != '/' ||
        argv[1][0] == '-' || strcmp(argv[1], "mount") == 0) {
        return false;
    }
    const char* near = ctl_nearest_command(argv[1]);
    return near == NULL || strcmp(near, argv[1]) != 0;
}

/* Split s in place at commas outside double quotes: at most max options
 * into opts, their quotes removed. Returns how many, or -1 when too many
 * or a quote is not closed. */
static int split_options(char* s, char** opts, int max)
{
    int n = 0;
    char* out = s;
    char* start = s;
    bool quoted = false;
    for (char* p = s;; p++) {
        if (*p == '"') {
            quoted = !quoted;
            continue;
        }
        if (*p == '\0' || (*p == ',' && !quoted)) {
            bool end = *p == '\0';
            *out++ = '\0';
            if (out - 1 > start) {
                if (n == max) {
                    return -1;
                }
                opts[n++] = start;
            }
            if (end) {
                return quoted ? -1 : n;
            }
            start = out;
            continue;
        }
        *out++ = *p;
    }
}

/* mount(8)'s and mount.fuse3's own options: not for the node. */
static bool mount_own_option(const char* o)
{
    static const char* const own[] = {
        "defaults", "auto",  "noauto", "nofail", "_netdev",     "user",
        "nouser",   "users", "owner",  "group",  "nosymfollow",
    };
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        if (strcmp(o, own[i]) == 0) {
            return true;
        }
    }
    return strncmp(o, "x-", 2) == 0 || strncmp(o, "comment=", 8) == 0;
}

static int refuse(const char* opt, const char* why)
{
    fprintf(stderr,
            "quorumfs: fstab option '%s': %s\n"
            "Options are `quorumfs mount` flags as NAME=VALUE "
            "(data_dir=/var/lib/quorumfs/NAME) and FUSE mount options; "
            "see `quorumfs mount --help` and docs/operations.md "
            "(\"fstab\").\n",
            opt, why);
    return 2;
}

/* One option: a flag (two words or one into argv at *n; its name
 * written into flag, FSTAB_FLAG_MAX bytes), a FUSE option (appended to
 * fuse), or dropped. 0, or 2 with a message printed. */
static int map_option(char* o,
                      char* flag,
                      char** argv,
                      int* n,
                      char* fuse,
                      size_t cap)
{
    char* eq = strchr(o, '=');
    size_t klen = eq != NULL ? (size_t)(eq - o) : strlen(o);
    if (mount_own_option(o)) {
        return 0;
    }
    if (klen + 3 > FSTAB_FLAG_MAX) {
        return refuse(o, "not a quorumfs mount flag nor a FUSE option");
    }
    snprintf(flag, FSTAB_FLAG_MAX, "--%.*s", (int)klen, o);
    for (char* p = flag + 2; *p != '\0'; p++) {
        if (*p == '_') {
            *p = '-';
        }
    }
    int takes = mount_flag_takes_value(flag + 2);
    if (strcmp(flag, "--name") == 0) {
        return refuse(o, "the node name is the fstab source (first field)");
    }
    if (strcmp(flag, "--foreground") == 0 || strcmp(flag, "--help") == 0) {
        return refuse(o, "not an fstab option (mount waits for the node)");
    }
    if (takes == 1 && (eq == NULL || eq[1] == '\0')) {
        return refuse(o, "needs a value (NAME=VALUE)");
    }
    if (takes == 0 && eq != NULL) {
        return refuse(o, "takes no value");
    }
    if (takes >= 0) {
        argv[(*n)++] = flag;
        if (takes == 1) {
            argv[(*n)++] = eq + 1;
        }
        return 0;
    }
    if (mount_check_fuse_opt(o) != 0) {
        return refuse(o, "not a quorumfs mount flag nor a FUSE mount option");
    }
    size_t len = strlen(fuse);
    if (len + strlen(o) + 2 > cap) {
        return refuse(o, "too many FUSE options");
    }
    snprintf(fuse + len, cap - len, "%s%s", len > 0 ? "," : "", o);
    return 0;
}

int mount_fstab_command(int argc, char** argv)
{
    char* opts[FSTAB_OPTS_MAX];
    /* "mount" MNT --name N, two words per option, -o FUSE, NULL */
    char* margv[4 + 2 * FSTAB_OPTS_MAX + 3];
    static char fuse[FSTAB_FUSE_OPTS_MAX];
    static char flags[FSTAB_OPTS_MAX][FSTAB_FLAG_MAX];
    int n = 0;

    if (argc != 5) {
        return 2;
    }
    int nopts = split_options(argv[4], opts, FSTAB_OPTS_MAX);
    if (nopts < 0) {
        fprintf(stderr,
                "quorumfs: fstab options: more than %d, or a \" not "
                "closed\n",
                FSTAB_OPTS_MAX);
        return 2;
    }
    margv[n++] = "mount";
    margv[n++] = argv[2];
    margv[n++] = "--name";
    margv[n++] = argv[1];
    for (int i = 0; i < nopts; i++) {
        int rv = map_option(opts[i], flags[i], margv, &n, fuse, sizeof(fuse));
        if (rv != 0) {
            return rv;
        }
    }
    if (fuse[0] != '\0') {
        margv[n++] = "-o";
        margv[n++] = fuse;
    }
    margv[n] = NULL;
    return mount_command(n, margv);
}
