/* cli_log.h - the CLI's own log lines (the mount command's start-up and
 * shutdown, the control socket, systemd's notify socket): the format of
 * the node's lines (raft/util/logline.h), written to the process's stderr
 * (DATA_DIR/quorumfs.log once a daemon has moved it there), its warnings
 * and errors also to the starting terminal until the mount is ready
 * (docs/operations.md, "Logs"). The node logs on its own (node_options
 * log_fd): the CLI never writes through the node's logger. */
#ifndef QFS_CLI_LOG_H
#define QFS_CLI_LOG_H

#include <stdatomic.h>

struct cli_log {
    int level;          /* RAFT_TRACE_*: lines below it are dropped */
    int fd;             /* the sink */
    _Atomic int tee_fd; /* -1: none */
    _Atomic int tee_level;
};

/* Lines at level and above to fd; no tee. */
void cli_log_init(struct cli_log* l, int level, int fd);
/* Lines at min_level or above also go to fd (-1: no more). The fd is the
 * caller's and must stay open while another thread may log. */
void cli_log_tee(struct cli_log* l, int fd, int min_level);
/* One line (any thread). */
void cli_log(const struct cli_log* l, int level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* QFS_CLI_LOG_H */
