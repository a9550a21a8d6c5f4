/* identity.h - who a node is: ids derived from names, the cluster id (a
 * random value made when a cluster is bootstrapped, docs/architecture.md),
 * the data dir's identity file.
 * One place for these rules: the node checks a data dir against them at
 * start, and `quorumfs snapshot restore` seeds new data dirs with them. */
#ifndef QFS_IDENTITY_H
#define QFS_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "../../raft/raft.h"
#include "node.h"

/* A member list as text ("n1=ADDR:PORT,..."), incl. NUL. */
#define IDENTITY_LIST_MAX 4096
/* The recorded list of a data dir made for a single node (no list). */
#define IDENTITY_LIST_SINGLE "-"

/* FNV-1a 64 of a name: a node id (never 0). */
raft_id identity_node_id(const char* name);

/* Parse "n1=ADDR:PORT,n2=ADDR:PORT,..." into peers[0..*n). -EINVAL for a
 * malformed list, -ENAMETOOLONG for a name or address over the limits. */
int identity_parse_cluster(const char* list,
                           struct node_peer* peers,
                           unsigned* n);

/* The initial configuration (every member a voter) for node `name` with
 * members peers[0..n) (n == 0: a single-node cluster of `name`). -EINVAL
 * when name is not a member. */
int identity_initial(const char* name,
                     const struct node_peer* peers,
                     unsigned n,
                     struct raft_conf* conf);

/* Whether `name` makes the cluster id when a new cluster is bootstrapped:
 * the first member of the list (or the only node). The others learn it
 * from the transport's handshake (docs/format-wire.md, section 3). */
bool identity_makes_cluster_id(const char* name,
                               const struct node_peer* peers,
                               unsigned n);

/* A new random cluster id (never 0), from getrandom(2). */
int identity_new_cluster_id(uint64_t* cluster_id);

/* Write dir/identity: tmp -> fsync -> rename -> fsync(dir). cluster_id 0:
 * not known yet (learned at the first handshake, then written again).
 * initial: the member list the data dir was made with ("n1=ADDR,...";
 * NULL or "": none, a single node), the configuration the node starts
 * from while its log holds none of its own. */
int identity_write(const char* dir,
                   const char* name,
                   uint64_t cluster_id,
                   const char* initial);

/* Read dir/identity. -ENOENT when there is none. name_cap >= 2.
 * *cluster_id is 0 when the file records none yet; initial (may be NULL)
 * gets the recorded member list, "" when none (older data dirs). */
int identity_read(const char* dir,
                  char* name,
                  size_t name_cap,
                  raft_id* id,
                  uint64_t* cluster_id,
                  char* initial,
                  size_t initial_cap);

/* peers[0..n) as "n1=ADDR,n2=ADDR" (-ENAMETOOLONG past cap). */
int identity_format_cluster(const struct node_peer* peers,
                            unsigned n,
                            char* out,
                            size_t cap);

#endif /* QFS_IDENTITY_H */
