/* main.c - the quorumfs command: `quorumfs mount` runs a node and its FUSE
 * mount (mount.c, mount_flags.c); the other subcommands talk to a running
 * node over its control socket or work on files (ctl.h). Here: the
 * command table's top level, `help`, `--version`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check_perf.h"
#include "ctl.h"
#include "mount.h"

#define QFS_VERSION "0.1.0"

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
        "  quorumfs watch [PATH] [--since REV] [--json]\n"
        "                                       stream committed changes\n"
        "  quorumfs watch PATH --exec CMD [--debounce MS]\n"
        "                                       run CMD when PATH changes\n"
        "  quorumfs snapshot save FILE\n"
        "  quorumfs snapshot status FILE [--json]\n"
        "  quorumfs snapshot restore FILE --data-dir D --name N\n"
        "           [--initial-cluster LIST]    seed a new cluster\n"
        "  quorumfs check perf --mount M [--load s|m|l]\n"
        "                                       is this host fast enough?\n"
        "  quorumfs help [CMD] | CMD --help     usage of one command\n"
        "  quorumfs --help | --version\n"
        "  quorumfs NAME MOUNTPOINT -o OPTIONS  fstab: what mount.fuse3 runs\n"
        "                                       for a fuse.quorumfs line\n"
        "\n"
        "The commands that talk to a running node choose it with PATH\n"
        "(status, endpoint health: a quorumfs mountpoint or a data dir),\n"
        "--mount M (the node mounted on M), --data-dir D or --name N\n"
        "(data dir /var/lib/quorumfs/N); the default is\n"
        "/var/lib/quorumfs/default.\n"
        "Run `quorumfs help CMD` (or `quorumfs CMD --help`) for one\n"
        "command's usage and flags.\n");
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
            mount_usage(stdout);
            return 0;
        }
        if (strcmp(argv[2], "check") == 0) {
            check_usage(stdout);
            return 0;
        }
        if (!ctl_usage(argv[2], stdout)) {
            return unknown_command("quorumfs help", argv[2]);
        }
        return 0;
    }
    if (strcmp(argv[1], "mount") == 0) {
        return mount_command(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "check") == 0) {
        return check_command(argc - 1, argv + 1);
    }
    if (mount_fstab_form(argc, argv)) {
        return mount_fstab_command(argc, argv);
    }
    int rv = ctl_command(argc - 1, argv + 1);
    if (rv == -ENOSYS) {
        return unknown_command("quorumfs", argv[1]);
    }
    return rv;
}
