/* identity.h - who a node is: ids derived from names, the cluster id
 * derived from the initial member list, the data dir's identity file.
 * One place for these rules: the node checks a data dir against them at
 * start, and `quorumfs snapshot restore` seeds new data dirs with them. */
#ifndef QFS_IDENTITY_H
#define QFS_IDENTITY_H

#include <stdint.h>

#include "../../raft/raft.h"
#include "node.h"

/* FNV-1a 64 of a name: a node id (never 0). */
raft_id identity_node_id(const char* name);

/* Parse "n1=ADDR:PORT,n2=ADDR:PORT,..." into peers[0..*n). -EINVAL for a
 * malformed list, -ENAMETOOLONG for a name or address over the limits. */
int identity_parse_cluster(const char* list,
                           struct node_peer* peers,
                           unsigned* n);

/* The initial configuration (every member a voter) and the cluster id for
 * node `name` with members peers[0..n) (n == 0: a single-node cluster of
 * `name`). -EINVAL when name is not a member. */
int identity_initial(const char* name,
                     const struct node_peer* peers,
                     unsigned n,
                     struct raft_conf* conf,
                     uint64_t* cluster_id);

/* Write dir/identity: tmp -> fsync -> rename -> fsync(dir). */
int identity_write(const char* dir, const char* name, uint64_t cluster_id);

/* Read dir/identity. -ENOENT when there is none. name_cap >= 2. */
int identity_read(const char* dir,
                  char* name,
                  size_t name_cap,
                  raft_id* id,
                  uint64_t* cluster_id);

#endif /* QFS_IDENTITY_H */
