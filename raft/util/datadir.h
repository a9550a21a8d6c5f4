/* datadir.h - the names of the files in a node's data directory
 * (docs/architecture.md, "Data directory"): spelled once, here.
 */
#ifndef QFS_UTIL_DATADIR_H
#define QFS_UTIL_DATADIR_H

#include <stddef.h>

#define DATADIR_LOCK "LOCK"               /* flocked by the running node */
#define DATADIR_IDENTITY "identity"       /* node name, node id, cluster id */
#define DATADIR_LOG "log"                 /* raft log directory */
#define DATADIR_DB "db"                   /* the store's db file */
#define DATADIR_CTL_SOCK "ctl.sock"       /* control socket */
#define DATADIR_CATCHING_UP "CATCHING-UP" /* joined empty, not caught up */
#define DATADIR_NODE_LOG "quorumfs.log"   /* the node's log, in background */

/* "dir/name" into buf. 0, or -ENAMETOOLONG when it does not fit (buf then
 * holds a truncated, NUL-terminated path). */
int util_datadir_path(char* buf, size_t cap, const char* dir, const char* name);

#endif /* QFS_UTIL_DATADIR_H */
