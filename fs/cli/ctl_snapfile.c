/* ctl_snapfile.c - the offline subcommands on snapshot files (no node
 * is running): `snapshot status FILE` checks a file and prints what it
 * holds; `snapshot restore FILE` has the node seed a new data dir from it
 * (node_seed_data_dir). `snapshot save` talks to a node: ctl_client.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../snapshot/snapshot.h"
#include "ctl_internal.h"
#include "node.h"

int ctl__snapshot_status(const char* file, bool json)
{
    struct snap_file_info info;
    char err[512];
    int rv = snap_file_load(file, &info, NULL, NULL, err, sizeof(err));

    if (rv != 0) {
        if (json) {
            printf("{\"file\":");
            ctl__print_json_string(file);
            printf(",\"ok\":false,\"error\":");
            ctl__print_json_string(err);
            printf("}\n");
        }
        fprintf(stderr, "quorumfs snapshot status: %s: %s\n", file, err);
        return 1;
    }
    if (json) {
        printf("{\"file\":");
        ctl__print_json_string(file);
        printf(",\"ok\":true,\"version\":%u,\"revision\":%" PRIu64
               ",\"applied_index\":%" PRIu64 ",\"keys\":%" PRIu64
               ",\"size\":%" PRIu64 ",\"image_bytes\":%" PRIu64
               ",\"checksum\":\"%016" PRIx64
               "\",\"checksum_verified\":true,\"members\":[",
               info.version, info.revision, info.applied_index, info.keys,
               info.file_bytes, info.image_bytes, info.checksum);
        for (unsigned i = 0; i < info.conf.n; i++) {
            printf("%s{\"name\":", i > 0 ? "," : "");
            ctl__print_json_string(info.conf.servers[i].name);
            printf(",\"addr\":");
            ctl__print_json_string(info.conf.servers[i].addr);
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

int ctl__snapshot_restore(const char* file,
                          const char* dir,
                          const char* name,
                          const char* cluster)
{
    struct snap_file_info info;
    struct raft_conf conf;
    char err[512];
    void* img = NULL;
    size_t len = 0;
    const char* step;
    int rv;

    if (dir == NULL || name == NULL) {
        fprintf(stderr,
                "quorumfs snapshot restore: needs --data-dir D (new or "
                "empty) and --name N\n");
        return ctl__usage_error("snapshot");
    }
    rv = snap_file_load(file, &info, &img, &len, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "quorumfs snapshot restore: %s: %s; nothing done\n",
                file, err);
        return 1;
    }
    rv = node_seed_data_dir(dir, name, cluster, img, len, info.applied_index,
                            &conf, &step);
    free(img);
    if (rv == 0) {
        printf("restored %s into %s: revision %" PRIu64 ", %" PRIu64
               " keys; node %s of a new cluster of %u (raft log starts "
               "after index %" PRIu64 ")\n",
               file, dir, info.revision, info.keys, name, conf.n,
               info.applied_index);
        return 0;
    }
    if (strcmp(step, "--initial-cluster") == 0) {
        fprintf(stderr,
                "quorumfs snapshot restore: bad --initial-cluster (expected "
                "n1=ADDR:PORT,... naming %s)\n",
                name);
        return 2;
    }
    if (strcmp(step, "target") == 0) {
        fprintf(stderr,
                "quorumfs snapshot restore: %s: %s; refusing to touch it "
                "(give a new or empty data dir)\n",
                dir, rv == -ENOTEMPTY ? "not empty" : strerror(-rv));
    } else if (strcmp(step, "parents") == 0) {
        fprintf(stderr,
                "quorumfs snapshot restore: cannot create the parent "
                "directories of %s: %s\n",
                dir, strerror(-rv));
    } else if (strcmp(step, "tmp") == 0) {
        fprintf(stderr,
                "quorumfs snapshot restore: cannot create %s.tmp: %s%s\n", dir,
                strerror(-rv),
                rv == -EEXIST ? " (left by an interrupted restore: remove it)"
                              : "");
    } else {
        fprintf(stderr, "quorumfs snapshot restore: %s: %s\n", step,
                strerror(-rv));
    }
    return 1;
}
