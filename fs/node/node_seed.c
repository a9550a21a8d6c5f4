/* node_seed.c - a new data dir from a store image, offline (`quorumfs
 * snapshot restore`; node.h, "Seeding a data dir"). It writes the data-dir
 * layout the node reads at start (node_boot.c): the identity file, the db
 * file holding the image, and a raft log that starts after the image. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../raft/log.h"
#include "../../raft/util/datadir.h"
#include "../../raft/util/fileio.h"
#include "identity.h"
#include "node.h"

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

int node_seed_data_dir(const char* dir,
                       const char* name,
                       const char* cluster,
                       const void* img,
                       size_t len,
                       raft_index applied_index,
                       struct raft_conf* conf,
                       const char** step)
{
    uint64_t cluster_id;
    char tmp[PATH_MAX];

    *step = "--initial-cluster";
    int rv = seed_conf(name, cluster, conf, &cluster_id);
    if (rv != 0) {
        return -EINVAL;
    }
    *step = "target";
    rv = seed_check_target(dir);
    if (rv != 0) {
        return rv;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", dir) >= (int)sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    /* The missing parents, as `quorumfs mount` creates those of its data
     * dir. */
    *step = "parents";
    rv = util_mkdir_parents(dir, 0700);
    if (rv != 0) {
        return rv;
    }
    *step = "tmp";
    if (mkdir(tmp, 0700) != 0) {
        return -errno;
    }
    /* Order: identity, db (image install: tmp, fsync, rename, fsync dir),
     * log (meta + hard state, fsync), fsync(D.tmp), rename(D.tmp, D),
     * fsync(parent): D appears complete or not at all. */
    *step = "identity";
    rv = identity_write(tmp, name, cluster_id,
                        cluster != NULL ? cluster : IDENTITY_LIST_SINGLE);
    if (rv == 0) {
        *step = "db";
        rv = seed_db(tmp, img, len);
    }
    if (rv == 0) {
        *step = "raft log";
        rv = seed_log(tmp, applied_index, conf);
    }
    if (rv == 0) {
        *step = "fsync";
        rv = util_fsync_dir(tmp);
    }
    if (rv == 0) {
        *step = "rename";
        rv = rename(tmp, dir) == 0 ? 0 : -errno;
    }
    if (rv == 0) {
        util_fsync_parent(dir);
        return 0;
    }
    nftw(tmp, remove_tree_cb, 16, FTW_DEPTH | FTW_PHYS);
    return rv;
}
